#!/usr/bin/env python3
"""The plots of a benchmark run: reads the CSVs scripts/bench.sh (and bench-scale.sh, bench-rss.sh)
wrote into OUT and writes a PNG beside each. Run by bench.sh with the venv of scripts/bench-venv.sh:

    target/bench-venv/bin/python scripts/bench-plot.py target/bench

Files it knows (each optional): throughput.csv, latency.csv, redeem.csv, rss.csv. The rate against
database size (scale.csv, scale.png) is plotted by scripts/bench-scale.sh itself (plot-scale.py).
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def throughput(out):
    by = defaultdict(list)
    for r in rows(out / "throughput.csv"):
        by[r["measure"]].append(r)
    measures = list(by)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, m in enumerate(measures):
        ratios = [float(r["ratio"]) for r in by[m]]
        target = float(by[m][0]["target"])
        med = statistics.median(ratios)
        left.bar(i, med, color="tab:green" if med >= target else "tab:red", alpha=0.6)
        left.scatter([i] * len(ratios), ratios, color="black", s=12, zorder=3)
        left.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
        left.annotate(f"{med:.2f}", (i, med), ha="center", va="bottom")
        base = statistics.median(float(r["baseline_per_s"]) for r in by[m])
        meas = statistics.median(float(r["measured_per_s"]) for r in by[m])
        right.bar(i - 0.2, base, width=0.4, color="tab:gray", label="baseline" if i == 0 else None)
        right.bar(i + 0.2, meas, width=0.4, color="tab:blue", label="otpd" if i == 0 else None)
    labels = [m.replace(" (", "\n(") for m in measures]
    left.set_xticks(range(len(measures)), labels, fontsize=8)
    left.set_ylabel("otpd ÷ baseline (median; dots: rounds; dashed: target)")
    left.set_title("Throughput against its baseline, same run")
    right.set_xticks(range(len(measures)), labels, fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("requests/s (median of rounds)")
    right.set_title("Baseline: raw Argon2id / minimal axum handler")
    right.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)


def latency(out):
    data = rows(out / "latency.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.25
    for j, key in enumerate(["p50_ms", "p99_ms", "max_ms"]):
        xs = [i + (j - 1) * width for i in range(len(data))]
        ax.bar(xs, [float(r[key]) for r in data], width=width, label=key.replace("_ms", ""))
    ax.set_xticks(range(len(data)), [f"{r['status']}\n(n={r['n']})" for r in data])
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms")
    rate = data[0]["offered_per_s"] if data else "?"
    ax.set_title(f"POST /user/otp, open loop at 2× the sustainable rate ({rate}/s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)


def redeem(out):
    data = rows(out / "redeem.csv")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, r in enumerate(data):
        rate, target = float(r["per_s"]), float(r["target_per_s"])
        ax.bar(i, rate, color="tab:green" if rate >= target else "tab:red", alpha=0.7)
        ax.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
        ax.annotate(f"{rate:,.0f}/s\np50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms", (i, rate),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(data)), [f"{r['backend']}\n{r['connections']} connections" for r in data])
    ax.set_ylabel("redemptions/s (dashed: target)")
    ax.set_title("POST /user/otp/verify, valid codes each sent once, one replica")
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(out / "redeem.png", dpi=100)


def rss(out):
    data = rows(out / "rss.csv")
    secs = [float(r["seconds"]) for r in data]
    mib = [float(r["rss_kib"]) / 1024 for r in data]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(secs, mib, label="otpd RSS")
    ax.axhline(200, color="tab:red", linestyle="dashed", label="limit: 200 MiB")
    ax.set_ylim(0, max(220, max(mib, default=0) * 1.1))
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_title("RSS at 1.5× the sustainable rate (POST /user/otp)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rss.png", dpi=100)


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")
    for name, plot in [("throughput", throughput), ("latency", latency), ("redeem", redeem),
                       ("rss", rss)]:
        if (out / f"{name}.csv").exists():
            plot(out)
            print(out / f"{name}.png")


if __name__ == "__main__":
    main()
