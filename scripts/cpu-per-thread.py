#!/usr/bin/env python3
"""CPU per unit of work by thread, from /proc: the helper of scripts/bench-cpu.sh.

  cpu-per-thread.py snap FILE            # every thread's CPU ticks and the machine's /proc/stat line
  cpu-per-thread.py diff A B UNITS PID   # ms of CPU per unit between two snaps: PID's threads by
                                         # name, the busiest other processes, the machine's idle share
"""
import collections
import os
import re
import sys

HZ = os.sysconf("SC_CLK_TCK")


def snap(path):
    lines = [open("/proc/stat").readline().strip()]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            lines.append(f"{pid}\t{tid}\t{comm}\t{int(fields[11]) + int(fields[12])}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def load(path):
    with open(path) as f:
        machine = list(map(int, f.readline().split()[1:9]))
        threads = {}
        for line in f:
            pid, tid, comm, ticks = line.rstrip("\n").split("\t")
            threads[(pid, tid)] = (comm, int(ticks))
    return machine, threads


def diff(a, b, units, pid):
    (ma, ta), (mb, tb) = load(a), load(b)
    ms = lambda ticks: ticks * 1000 / HZ / units
    ours, others = collections.Counter(), collections.Counter()
    for (p, tid), (comm, ticks) in tb.items():
        spent = ticks - ta.get((p, tid), (comm, 0))[1]
        if spent <= 0:
            continue
        if p == pid:
            ours[comm] += spent
        else:
            others[re.sub(r"\d+", "#", comm)] += spent
    for comm, ticks in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"  otpd {comm:24s} {ms(ticks):7.3f} ms")
    print(f"  otpd {'(all)':24s} {ms(sum(ours.values())):7.3f} ms")
    for comm, ticks in others.most_common(3):
        print(f"  other: {comm:22s} {ms(ticks):7.3f} ms")
    d = [y - x for x, y in zip(ma, mb)]
    print(f"  machine idle {100 * (d[3] + d[4]) / sum(d):.1f} %")


if __name__ == "__main__":
    if sys.argv[1] == "snap":
        snap(sys.argv[2])
    else:
        diff(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "")
