#!/usr/bin/env python3
"""Markdown table from kernels_bench's JSON (--benchmark_out) and, optionally, the PyTorch Python
peer's JSON lines (bench/peers/adam_step.py): time per call, GB/s, and the fraction of the copy
bandwidth (a flat copy of at least 256 MiB, out of cache) measured in the same run.
    python3 scripts/kernel_table.py kernels.json [peer.jsonl]"""
import json
import re
import sys

SHAPE = {"0": "lenet", "1": "10M"}


def main():
    bench = json.load(open(sys.argv[1]))
    rows, copy_bw = [], {}
    for b in bench["benchmarks"]:
        # With --benchmark_repetitions each repetition is a row of its own (run_type "iteration",
        # no aggregate_name) beside the aggregates: only the median is tabled.
        repeated = b.get("repetitions", 1) > 1 and b.get("run_type") == "iteration"
        if repeated or b.get("aggregate_name", "median") != "median" or "error_occurred" in b:
            continue
        m = re.match(r"BM_(\w+)/cuda:(\d)/shape:(\d)(?:/masked:(\d))?", b["name"])
        pe = re.match(r"BM_PerExampleNorms/cuda:(\d)/baseline:(\d)", b["name"])
        if pe:
            t = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}[b["time_unit"]]
            name = "PerExampleNorms" + {"0": "", "1": " (materialized reference)",
                                        "2": " (the formula in ATen)"}[pe.group(2)]
            rows.append((name, "cuda" if pe.group(1) == "1" else "cpu", "256x784/300", t, b.get("bytes_per_second", 0)))
            continue
        if not m:
            continue
        op, dev, shape, masked = m.group(1), "cuda" if m.group(2) == "1" else "cpu", SHAPE[m.group(3)], m.group(4) == "1"
        t = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}[b["time_unit"]]
        bw = b.get("bytes_per_second", 0)
        if op == "Copy":
            copy_bw[(dev, shape)] = bw
        rows.append((f"{op}{' masked' if masked else ''}", dev, shape, t, bw))
    if len(sys.argv) > 2:
        for line in open(sys.argv[2]):
            d = json.loads(line)
            rows.append((d["peer"], d["device"], d["shape"], d["time_s"], d["bytes_per_s"]))
    print("| op | device | params | time per call | GB/s | of copy GB/s |")
    print("|---|---|---|---:|---:|---:|")
    for op, dev, shape, t, bw in rows:
        frac = bw / copy_bw[(dev, shape)] if copy_bw.get((dev, shape)) else float("nan")
        print(f"| {op} | {dev} | {shape} | {t * 1e6:,.1f} us | {bw / 1e9:,.1f} | {frac:.0%} |")


if __name__ == "__main__":
    main()
