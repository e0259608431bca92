#!/usr/bin/env python3
"""Pairs alternating Google Benchmark runs of two binaries and prints, per
benchmark, each side's median and the median of the B/A ratios taken run pair
by run pair (the only figure that holds on a loaded machine), plus each
bandwidth as a share of BM_Memcpy/65536 of the same run.

    bench/ab_summary.py OLD_PREFIX NEW_PREFIX [PAIRS_TO_SKIP]

reads OLD_PREFIX<i>.json and NEW_PREFIX<i>.json (--benchmark_format=json),
i = 1, 2, ...; the first PAIRS_TO_SKIP pairs (a warm-up) are left out.
Bandwidth in GB/s, *Rate* (and any benchmark without bytes) in M operations/s, *PingPong* in us per round trip.
"""
import glob
import json
import re
import statistics
import sys


def load(path):
    out = {}
    for b in json.load(open(path))["benchmarks"]:
        n = b["name"]
        if "PingPong" in n:
            scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[b["time_unit"]]
            out[n] = ("us", b["real_time"] * scale)
        elif "Rate" in n or "bytes_per_second" not in b:
            out[n] = ("M/s", b["items_per_second"] / 1e6)
        else:
            out[n] = ("GB/s", b["bytes_per_second"] / 1e9)
    return out


def runs(prefix):
    files = glob.glob(glob.escape(prefix) + "*.json")
    files.sort(key=lambda f: int(re.findall(r"(\d+)\.json$", f)[0]))
    return [load(f) for f in files]


def main():
    skip = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    a, b = runs(sys.argv[1])[skip:], runs(sys.argv[2])[skip:]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if n == 0:
        sys.exit("no run pairs")
    names = [k for k in a[0] if all(k in r for r in a + b)]
    memcpy = next((k for k in names if k.startswith("BM_Memcpy")), None)
    print(f"{n} pairs")
    for k in names:
        unit = a[0][k][0]
        ratios = [y[k][1] / x[k][1] for x, y in zip(a, b)]
        line = (f"{k:36s} A {statistics.median(r[k][1] for r in a):8.3f} "
                f"B {statistics.median(r[k][1] for r in b):8.3f} {unit:4s} "
                f"B/A {statistics.median(ratios):.3f} ({min(ratios):.3f} .. {max(ratios):.3f})")
        if memcpy and k != memcpy and unit == "GB/s":
            fa = statistics.median(r[k][1] / r[memcpy][1] for r in a)
            fb = statistics.median(r[k][1] / r[memcpy][1] for r in b)
            line += f"  of memcpy: A {100 * fa:.1f} %, B {100 * fb:.1f} %"
        print(line)


if __name__ == "__main__":
    main()
