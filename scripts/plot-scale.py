"""Rate against database size, from the CSVs of scripts/bench-scale.sh (one or several runs):
issued OTPs per second as a ratio to raw Argon2id (left) and OTP redemptions per second (right),
each round a dot, the median over all rounds a line, empty database against the filled one, per
backend.

    python scripts/plot-scale.py docs/benchmark/scale.csv [more.csv …] docs/benchmark/scale.png
"""

import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_paths: list[str], png_path: str) -> None:
    rows = [r for path in csv_paths for r in csv.DictReader(open(path, newline=""))]
    users = max(int(r["users"]) for r in rows)
    label = {"empty": "empty", "full": f"{users:,} users"}
    series = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for key in ("otp_ratio", "redemptions_per_s"):
            series[(r["backend"], key)][r["database"]].append(float(r[key]))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    panels = [
        ("otp_ratio", "issued OTPs/s ÷ raw Argon2id/s"),
        ("redemptions_per_s", "OTP redemptions/s"),
    ]
    colours = {"sqlite": "tab:blue", "postgres": "tab:orange"}
    for ax, (key, title) in zip(axes, panels):
        for backend in sorted({b for b, _ in series}):
            by_db = series[(backend, key)]
            xs = [x for x in ("empty", "full") if by_db.get(x)]
            for i, db in enumerate(xs):
                ax.scatter([i] * len(by_db[db]), by_db[db], color=colours.get(backend), alpha=0.5, s=18)
            medians = [statistics.median(by_db[db]) for db in xs]
            ax.plot(range(len(xs)), medians, marker="o", color=colours.get(backend), label=backend)
        ax.set_xticks([0, 1], [label["empty"], label["full"]])
        ax.set_xlim(-0.4, 1.4)
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.set_xlabel("database")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.suptitle("Rate against database size (scripts/bench-scale.sh; dots: rounds, line: median)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:-1], sys.argv[-1])
