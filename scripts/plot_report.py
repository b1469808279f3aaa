#!/usr/bin/env python3
"""Draws one PNG per claim in a report folder (reports/qNNN/) from the CSV and JSON that
`empiric report` wrote beside it: a trend as the metric against the swept value (seeds as points,
the mean as a line; log scale when the values span more than 8x), a comparison as two strips, a
correlation as a scatter, a threshold as points with the line.
    python3 scripts/plot_report.py reports/q099"""
import csv
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def floats(rows, key):
    out = []
    for r in rows:
        try:
            out.append(float(r[key]))
        except ValueError:
            out.append(math.nan)
    return out


def plot(meta, rows, path):
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    ok = [r for r in rows if r["status"] == "finished" and not math.isnan(float(r["y"] or "nan"))]
    ys = floats(ok, "y")
    kind = meta["kind"]
    if kind in ("trend", "correlate"):
        xs = floats(ok, "x")
        ax.scatter(xs, ys, s=18, alpha=0.7, label="trials")
        if kind == "trend" and xs:
            levels = sorted(set(xs))
            means = [sum(y for x, y in zip(xs, ys) if x == lv) / sum(1 for x in xs if x == lv) for lv in levels]
            ax.plot(levels, means, "-o", color="C1", label="mean over seeds")
            if min(levels) > 0 and max(levels) / min(levels) > 8:
                ax.set_xscale("log", base=2)
        ax.set_xlabel(meta["x"])
    elif kind == "compare":
        groups = {"a": [], "b": []}
        for r, y in zip(ok, ys):
            groups.setdefault(r["group"], []).append(y)
        for i, g in enumerate(("a", "b")):
            ax.scatter([i] * len(groups[g]), groups[g], s=18, alpha=0.7)
            if groups[g]:
                ax.hlines(sum(groups[g]) / len(groups[g]), i - 0.2, i + 0.2, color="C1")
        ax.set_xticks([0, 1], [f"{meta['x']} = min", f"{meta['x']} = max"])
    else:
        ax.scatter(range(len(ys)), ys, s=18)
        ax.axhline(meta.get("threshold", 0), color="C3", linestyle="--", label="threshold")
    diverged = sum(1 for r in rows if r["status"] != "finished")
    ax.set_ylabel(meta["metric"])
    ax.set_title(f"{meta['id']}: {meta['verdict']}" + (f" ({diverged} diverged)" if diverged else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    folder = sys.argv[1]
    for meta_path in sorted(glob.glob(os.path.join(folder, "claim_*.json"))):
        base = meta_path[:-5]
        with open(base + ".csv") as f:
            rows = list(csv.DictReader(f))
        plot(json.load(open(meta_path)), rows, base + ".png")


if __name__ == "__main__":
    main()
