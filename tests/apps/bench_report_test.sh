#!/bin/sh
# scripts/bench --quick into a temporary directory: report.json holds every
# bench_rc case and a result row of each perftest program, and the three SVG
# plots were drawn with their curves. Figures are not judged (they belong to
# docs/benchmarks.md and move with the machine's load), only that they exist.
set -eu
top=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$top/scripts/bench" --quick --out "$out"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
r = json.load(open(os.path.join(out, "report.json")))
names = {b["benchmark"] for b in r["bench_rc"]}
for want in ("BM_Memcpy", "BM_RcWrite", "BM_RcWriteRate", "BM_RcRead", "BM_RcSendPingPong"):
    assert want in names, f"bench_rc lacks {want}: {sorted(names)}"
for b in r["bench_rc"]:
    if b["benchmark"] in ("BM_Memcpy", "BM_RcWrite", "BM_RcRead"):
        assert b["bytes_per_second"] and b["bytes_per_second"] > 0, b
for p in ("ib_write_bw", "ib_read_bw", "ib_send_bw"):
    rows = r["perftest"][p]
    assert rows and all(x["bw_average_mb_s"] > 0 and x["msg_rate_mpps"] > 0 for x in rows), (p, rows)
for p in ("ib_write_lat", "ib_send_lat", "ib_read_lat"):
    rows = r["perftest"][p]
    assert rows and all(0 < x["t_min_us"] <= x["t_typical_us"] for x in rows), (p, rows)
for svg in ("bandwidth.svg", "rate.svg", "latency.svg"):
    text = open(os.path.join(out, svg)).read()
    assert "<svg" in text and "<path" in text, svg
print("ok: report.json and the three plots")
PY
