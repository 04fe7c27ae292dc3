#!/usr/bin/env python3
"""The closing line of scripts/test.sh: `otpd: N passed, N failed, N skipped` over every part.

    scripts/test-summary.py LOG_DIR SKIPPED_PARTS EXIT_STATUS

LOG_DIR holds one `<part>.log` per part that ran, and `<part>.failed` when that part exited
non-zero. A part is counted by what its output holds:

- cargo's `test result:` lines: passed, failed, and ignored as skipped. Tests that printed
  `SKIPPED <test>: <why>` returned early and cargo counted them as passed: they move to skipped.
- schemathesis's `N generated, N passed, N failed, N skipped` lines of test cases, one per run.
- a part's own `<word>: N passed, N failed[, N skipped]` line (scripts/test-deb.sh,
  scripts/readme-examples.sh).
- otherwise the part is one test that passed or failed (the architecture check).

A part that failed without any failure in its counts (a build error, a schemathesis warning)
adds one failure, and so does a run that stopped early (EXIT_STATUS non-zero), so the line never
says 0 failed for a red run. SKIPPED_PARTS counts parts that did not run at all (no Python venv,
no PostgreSQL).
"""

import pathlib
import re
import sys

CARGO = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
OWN = re.compile(r"^\w[\w-]*: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")
SKIPPED = re.compile(r"SKIPPED [A-Za-z0-9_:]+: .*")
SCHEMATHESIS = re.compile(r"\d+ generated,")


def count(text: str) -> tuple[int, int, int, bool]:
    """(passed, failed, skipped, whether the output counted anything itself)"""
    lines = text.splitlines()
    cargo = [m for m in map(CARGO.match, lines) if m]
    if cargo:
        passed = sum(int(m[1]) for m in cargo)
        failed = sum(int(m[2]) for m in cargo)
        skipped = sum(int(m[3]) for m in cargo)
        moved = min(len({m[0] for line in lines for m in [SKIPPED.search(line)] if m}), passed)
        return passed - moved, failed, skipped + moved, True
    # One summary line per schemathesis run (the user API, then the admin API): add them up.
    runs = [line for line in lines if SCHEMATHESIS.search(line)]
    if runs:
        def n(word: str) -> int:
            return sum(int(m[1]) for line in runs for m in [re.search(rf"(\d+) {word}", line)] if m)
        return n("passed"), n("failed") + n("errored"), n("skipped"), True
    for line in reversed(lines):
        m = OWN.match(line.strip())
        if m:
            return int(m[1]), int(m[2]), int(m[3] or 0), True
    return 0, 0, 0, False


def main() -> None:
    log_dir = pathlib.Path(sys.argv[1])
    skipped = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    exit_status = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    passed = failed = 0
    for log in sorted(log_dir.glob("*.log")):
        p, f, s, counted = count(log.read_text(errors="replace"))
        part_failed = log.with_suffix(".failed").exists()
        if not counted:
            p, f = (0, 1) if part_failed else (1, 0)
        elif part_failed and f == 0:
            f = 1
        passed, failed, skipped = passed + p, failed + f, skipped + s
    if exit_status != 0 and failed == 0:
        failed = 1
    print(f"otpd: {passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main()
