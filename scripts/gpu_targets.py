#!/usr/bin/env python3
"""Issue 9's GPU targets against what scripts/gpu_run.sh measured: a Markdown table.

  gpu_targets.py OUT    reads OUT/bench.db (the training suite's records, float32 and TF32 runs)
                        and OUT/summary.md (the lenet and answer steps' lines)
Missing measurements are reported as not measured, never as met. Where the suite ran more than
once (STEPS="suite suite ..."), the target is judged on the median run, and every run is listed.
"""
import json
import os
import re
import sqlite3
import statistics
import sys


def suite_rows(db):
    """The population records per TF32 setting, in run order: {tf32: [counters, ...]}."""
    rows = {}
    if not os.path.exists(db):
        return rows
    con = sqlite3.connect(db)
    for name, counters in con.execute("select name, counters from bench_records order by id"):
        c = json.loads(counters)
        if name == "training/empiric/population":
            rows.setdefault(bool(c.get("tf32", False)), []).append(c)
    return rows


def main(out):
    summary = open(os.path.join(out, "summary.md")).read() if os.path.exists(os.path.join(out, "summary.md")) else ""
    lines = ["| target | measured | met |", "|---|---|---|"]

    pops = suite_rows(os.path.join(out, "bench.db"))
    for tf32, label in ((False, "float32"), (True, "TF32")):
        runs = pops.get(tf32)
        if not runs:
            lines.append(f"| {label}: population >= 20x sequential (models x epochs / s) | not measured | - |")
            continue
        xs = [c["speedup_vs_sequential"] for c in runs]
        x = statistics.median(xs)
        each = "" if len(xs) == 1 else f"median of {len(xs)} runs: " + " / ".join(f"{v:.1f}x" for v in xs) + "; "
        diff = max(c["largest_member_test_acc_difference"] for c in runs)
        lines.append(f"| {label}: population of {runs[-1]['models']} >= 20x sequential (models x epochs / s) | "
                     f"{x:.1f}x ({each}largest member test-acc difference {diff:.4f}) | "
                     f"{'yes' if x >= 20 else 'no'} |")

    # bench_lenet.sh's table: "| empiric | epoch s | ... | 1.00x |" and the DataLoader peer's row
    # (the ratio is its last cell).
    m = re.search(r"^\| pytorch-python-dataloader \|.*\| *([0-9.]+)x *\| *$", summary, re.M)
    if m:
        x = float(m.group(1))
        lines.append(f"| single-model epoch >= 5x the DataLoader peer | {x:.1f}x | {'yes' if x >= 5 else 'no'} |")
    else:
        lines.append("| single-model epoch >= 5x the DataLoader peer | not measured (step lenet) | - |")

    m = re.search(r"^answer99: exit (\d+), (\d+) s wall", summary, re.M)
    if m:
        rc, s = int(m.group(1)), int(m.group(2))
        met = "yes" if rc == 0 and s < 120 else "no"
        lines.append(f"| `empiric answer 99 --preset full` < 2 min | {s} s (exit {rc}) | {met} |")
    else:
        lines.append("| `empiric answer 99 --preset full` < 2 min | not measured (step answer) | - |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
