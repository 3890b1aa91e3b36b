#!/usr/bin/env python3
"""Runs uvwt-bench (argv[1:]) and checks its JSON lines: every line parses,
carries the documented fields with finite numbers, every scenario appears,
and every run reported ok. Speed is never asserted."""
import json
import math
import subprocess
import sys

REQUIRED = {"scenario": str, "params": dict, "metric": str, "value": (int, float), "unit": str,
            "reps": int, "median": (int, float), "min": (int, float), "max": (int, float),
            "values": list, "ok": bool, "versions": dict, "kernel": dict}
SCENARIOS = {"setup", "bulk", "datagrams", "latency", "sessions", "raw-quic", "reference", "proxy", "workers"}


def main():
    proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True, timeout=280)
    problems = []
    seen = set()
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            problems.append(f"line {n}: not JSON ({e}): {line[:120]}")
            continue
        for key, typ in REQUIRED.items():
            if not isinstance(rec.get(key), typ):
                problems.append(f"line {n}: field {key!r} missing or of the wrong type")
        for key in ("value", "median", "min", "max"):
            v = rec.get(key)
            if isinstance(v, (int, float)) and not math.isfinite(v):
                problems.append(f"line {n}: {key} is not finite")
        if not rec.get("ok", False):
            problems.append(f"line {n}: {rec.get('scenario')} {rec.get('params')} failed: {rec.get('error')}")
        if not {"uvwt", "ngtcp2", "nghttp3"} <= set(rec.get("versions", {})):
            problems.append(f"line {n}: versions incomplete")
        if not {"gso", "gro"} <= set(rec.get("kernel", {})):
            problems.append(f"line {n}: kernel features missing")
        seen.add(rec.get("scenario"))
    if "--scenario" not in sys.argv:
        for s in sorted(SCENARIOS - seen):
            problems.append(f"scenario {s} produced no result")
    if proc.returncode != 0:
        problems.append(f"uvwt-bench exited with {proc.returncode}")
    for p in problems:
        print("check_bench_json:", p, file=sys.stderr)
    print(f"check_bench_json: {len(lines)} results, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
