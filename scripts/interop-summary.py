#!/usr/bin/env python3
"""Summary of a scripts/interop run: summary.md and summary.json.

interop-summary.py RESULTS.TSV OUT-DIR HARNESS-DIR COMMIT

Reads each case's harness run directory (vm.log, host.log,
bridge-summary.txt, droce-stat*.json, tshark-*.txt) for the figures.
"""
import json
import os
import re
import sys


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().replace("\r", "")
    except OSError:
        return ""


def grep(text, pattern, limit=None):
    out = [l.strip() for l in text.splitlines() if re.search(pattern, l)]
    return out[:limit] if limit else out


def host_json(text):
    """droce-smc's JSON result lines (client or server) in host.log."""
    out = []
    for l in text.splitlines():
        l = l.strip()
        if l.startswith("{") and l.endswith("}"):
            try:
                out.append(json.loads(l))
            except ValueError:
                pass
    return out


def stat_summary(run):
    """What droce-smc stat said while the connection lived."""
    for name in ("droce-stat.json", "droce-stat-last.json"):
        t = read(os.path.join(run, name))
        if not t:
            continue
        try:
            d = json.loads(t)
        except ValueError:
            continue
        s = {"file": name}
        for p in d.get("processes", []):
            s["capability_mode"] = p.get("capability_mode")
            s["ueid"] = p.get("ueid")
            s["link_groups"] = [
                {"role": g.get("role"), "version": g.get("version"), "peer_gid": g.get("peer_gid"),
                 "links": [{k: l.get(k) for k in ("device", "state", "qpn", "peer_qpn", "mtu")}
                           for l in g.get("links", [])],
                 "connections": [{k: c.get(k) for k in ("tcp", "state", "mode", "rmb_size", "peer_rmb_size")}
                                 for c in g.get("connections", [])]}
                for g in p.get("link_groups", [])]
            s["recent_fallbacks"] = p.get("recent_fallbacks", [])
        return s
    return None


def main():
    tsv, out, harness, commit = sys.argv[1:5]
    cases = []
    with open(tsv) as f:
        for line in f:
            (name, res, secs, run, why, bad, undecoded, frames, guest, host, rc, env) = line.rstrip("\n").split("\t")
            vm = read(os.path.join(run, "vm.log"))
            hl = read(os.path.join(run, "host.log"))
            cap = read(os.path.join(run, "bridge-summary.txt"))
            c = {
                "name": name, "result": res, "seconds": float(secs), "run_dir": run,
                "failed_checks": why, "harness_rc": int(rc) if rc.isdigit() else rc,
                "guest_command": guest, "host_command": host, "environment": env,
                "vm": grep(vm, r"^(RESULT|smc-diag\[|[0-9]+ (iters|bytes) in|##### KP END|rxe-hw-counters)", 12),
                "host": grep(hl, r"^([0-9]+ (iters|bytes) in|interop: droce-smc exited)", 6),
                "host_results": host_json(hl),
                "capture": grep(cap, r"(RoCEv2|option 254|frames)", 12),
                "tshark": {"frames": int(frames) if frames.isdigit() else None,
                           "malformed_or_error": int(bad) if bad.isdigit() else None,
                           "roce_sends_not_decoded_as_smc": int(undecoded) if undecoded.isdigit() else None,
                           "not_decoded_by_first_bytes": grep(read(os.path.join(run, "tshark-undecoded.txt")), r".")},
                "droce_pcap": grep(read(os.path.join(run, "droce-pcap.txt")), r"(RoCEv2|result)", 3),
                "droce_stat": stat_summary(run),
            }
            cases.append(c)
    summary = {"commit": commit, "harness": harness, "cases": cases,
               "passed": sum(c["result"] == "PASS" for c in cases), "failed": sum(c["result"] != "PASS" for c in cases)}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    md = ["# scripts/interop summary", "",
          f"droce {commit}, harness {harness}: {summary['passed']} passed, {summary['failed']} failed.", "",
          "| case | result | s | figures | tshark (frames / malformed / RoCE SENDs not decoded as SMC) |",
          "|---|---|---|---|---|"]
    for c in cases:
        figs = []
        for l in c["vm"]:
            if l.startswith(("RESULT", "smc-diag")) or " iters in " in l:
                figs.append("vm: " + l)
        for l in c["host"]:
            if " iters in " in l:
                figs.append("droce: " + l)
        for r in c["host_results"]:
            keep = {k: r[k] for k in ("transport", "version", "fallback_reason", "peer_diagnosis", "bytes", "MBps",
                                      "p50_us", "p99_us", "pattern", "end", "close", "echoed", "ok") if k in r}
            figs.append("droce: " + json.dumps(keep, separators=(",", ":")))
        s = c["droce_stat"]
        if s:
            gs = s.get("link_groups") or []
            if gs:
                figs.append("droce-smc stat: " + ", ".join(
                    f"{g['role']} v{g['version']} peer {g['peer_gid']} " +
                    " ".join(f"{x['mode']} {x['state']}" for x in g["connections"]) for g in gs) +
                    f" ({s.get('capability_mode')})")
            for fb in s.get("recent_fallbacks") or []:
                figs.append("droce-smc stat: fallback " + fb.get("fallback_reason", "") +
                            (" peer " + fb["peer_diagnosis"] if "peer_diagnosis" in fb else ""))
        if c["failed_checks"]:
            figs.append("**failed:** " + c["failed_checks"])
        t = c["tshark"]
        md.append(f"| {c['name']} | {c['result']} | {c['seconds']:.0f} | " + "<br>".join(
            f.replace("|", "\\|") for f in figs) + f" | {t['frames']} / {t['malformed_or_error']} / "
            f"{t['roce_sends_not_decoded_as_smc']} |")
    md += ["", "Commands (guest command in the VM `--` host command here):", ""]
    for c in cases:
        env = c["environment"] + " " if c["environment"] else ""
        md.append(f"- `{c['name']}`: `{env}{harness}/run {c['guest_command']} -- {c['host_command']}`")
    md += ["", "RoCEv2 SENDs tshark 4.0 did not decode as SMC (count, first payload bytes):", ""]
    for c in cases:
        u = c["tshark"]["not_decoded_by_first_bytes"]
        if u:
            md.append(f"- {c['name']}: " + ", ".join(u))
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
