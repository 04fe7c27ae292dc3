#!/usr/bin/env python3
"""Rebuilds data/common-passwords.txt, the built-in password blocklist, from two crates.io packages.

    scripts/make-blocklist.py

Sources (both MIT licensed, see data/README.md):
  - `passwords` 3.1.19: data/common-passwords.json (99,838 entries)
  - `zxcvbn` 3.1.1: the `PASSWORDS` frequency list in src/frequency_lists.rs (30,000 entries)

Both are fetched with cargo into the local registry cache. Every entry is NFKC-normalized and
lower-cased, exactly as otpd normalizes a new password before looking it up; the union is written
sorted, one per line.
"""
import glob
import json
import os
import pathlib
import re
import subprocess
import tempfile
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = {"passwords": "=3.1.19", "zxcvbn": "=3.1.1"}


def fetch() -> pathlib.Path:
    with tempfile.TemporaryDirectory() as tmp:
        deps = "\n".join(f'{name} = "{version}"' for name, version in CRATES.items())
        pathlib.Path(tmp, "Cargo.toml").write_text(
            f'[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n{deps}\n'
        )
        pathlib.Path(tmp, "src").mkdir()
        pathlib.Path(tmp, "src/main.rs").write_text("fn main() {}\n")
        subprocess.run(["cargo", "fetch", "--quiet"], cwd=tmp, check=True)
    home = pathlib.Path(os.environ.get("CARGO_HOME", pathlib.Path.home() / ".cargo"))
    return home / "registry" / "src"


def main() -> None:
    src = fetch()
    passwords = json.loads(pathlib.Path(glob.glob(f"{src}/*/passwords-3.1.19/data/common-passwords.json")[0]).read_text())
    rust = pathlib.Path(glob.glob(f"{src}/*/zxcvbn-3.1.1/src/frequency_lists.rs")[0]).read_text()
    literal = re.search(r'const PASSWORDS: &str = "(.*?)";', rust, re.S).group(1)
    zxcvbn = literal.replace('\\"', '"').replace("\\\\", "\\").split(",")
    entries = {unicodedata.normalize("NFKC", e).lower() for e in passwords + zxcvbn}
    entries = sorted(e for e in entries if e and "\n" not in e and "\r" not in e)
    out = ROOT / "data/common-passwords.txt"
    out.write_text("".join(e + "\n" for e in entries), encoding="utf-8")
    print(f"{out}: {len(entries)} entries, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
