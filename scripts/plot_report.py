#!/usr/bin/env python3
"""Draws one PNG per claim in a report folder (reports/qNNN/) from the CSV and JSON that
`empiric report` wrote beside it: a trend as the metric against the swept value (seeds as points,
the mean as a line; log scale when the values span more than 8x), a comparison as two strips, an
interaction as the two groups' means across x, a "within" test as the metric against x with the
range marked, a correlation as a scatter, a threshold as points with the line. Then one PNG per
config's curves: training runs as test accuracy, training loss and LR against the step (mean over
seeds, band from min to max), range tests as the smoothed loss against the LR (log) with each
seed's suggested range shaded.
    python3 scripts/plot_report.py reports/q099"""
import csv
import glob
import gzip
import json
import math
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402


def floats(rows, key):
    out = []
    for r in rows:
        try:
            out.append(float(r[key]))
        except ValueError:
            out.append(math.nan)
    return out


def log_base(levels):
    """2 where every level is a power of two (batch sizes, widths), else 10 (learning rates)."""
    return 2 if all(math.log2(v) == round(math.log2(v)) for v in levels) else 10


def plot(meta, rows, path):
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    # Diverged trials have a y only when the claim enters them (diverged_as, or a metric such as
    # "diverged" that every trial has); failed ones measured nothing, and the test leaves them out.
    ok = [r for r in rows if r["status"] != "failed" and not math.isnan(float(r["y"] or "nan"))]
    ys = floats(ok, "y")
    kind = meta["kind"]
    # Trials entered at the claim's diverged_as value: drawn apart from the measured ones (they
    # count in the means, as the test counts them). A metric every trial has (diverged) is not
    # an entered value.
    entered = [meta["metric"] not in ("diverged", "failed") and r["status"] == "diverged" for r in ok]
    if kind in ("trend", "correlate", "within", "interaction", "peak"):
        xs = floats(ok, "x")
        ax.scatter([x for x, e in zip(xs, entered) if not e], [y for y, e in zip(ys, entered) if not e],
                   s=18, alpha=0.7, label="trials")
        if any(entered):
            ax.scatter([x for x, e in zip(xs, entered) if e], [y for y, e in zip(ys, entered) if e],
                       s=22, marker="x", color="C3", zorder=4, label="diverged, entered at diverged_as")
        # Diverged trials the claim leaves out: a mark at their x just below the lowest value.
        # (In data coordinates: marks placed in the axes' own widened no limits, so the diverged
        # x past the measured ones, LR 1 to 10 after 0.3, fell outside the plot, and the legend
        # could sit on them.)
        # A rank correlation over values spanning decades: on a linear axis a few far points
        # looked like they carried it while the rest sat squeezed together.
        if kind == "correlate" and xs and min(xs) > 0 and max(xs) / min(xs) > 8:
            ax.set_xscale("log")
            # Over two decades at most, 1, 2, 5 a decade written plainly (matplotlib labelled
            # every minor tick, overlapping); wider, its own decades.
            if max(xs) / min(xs) <= 100:
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        out = [float(r["x"]) for r in rows if r["status"] == "diverged" and math.isnan(float(r["y"] or "nan"))]
        if out and kind != "correlate":
            low = min(ys) - 0.06 * ((max(ys) - min(ys)) or 1.0) if ys else 0.0
            ax.scatter(out, [low] * len(out), marker="x", color="C3", s=16, label="diverged (left out)")
        if kind == "interaction":
            ax.cla()
            for g, color in (("a", "C0"), ("b", "C1")):
                pts = [(x, y, e) for r, x, y, e in zip(ok, xs, ys, entered) if r["group"] == g]
                levels = sorted(set(x for x, _, _ in pts))
                ax.scatter([x for x, _, e in pts if not e], [y for _, y, e in pts if not e], s=14,
                           alpha=0.5, color=color)
                ax.scatter([x for x, _, e in pts if e], [y for _, y, e in pts if e], s=20, marker="x",
                           color=color, zorder=4)
                means = [sum(y for x, y, _ in pts if x == lv) / sum(1 for x, _, _ in pts if x == lv)
                         for lv in levels]
                ax.plot(levels, means, "-o", color=color, label=meta.get(g + "_label", g))
            if any(entered):
                ax.scatter([], [], marker="x", color="0.3", label="diverged, entered at diverged_as")
            if xs and min(xs) > 0 and max(xs) / min(xs) > 8:
                ax.set_xscale("log", base=log_base(set(xs)))
        if kind == "within" and meta.get("bounds_lo"):
            lo = statistics.median(meta["bounds_lo"])  # as the test takes it
            hi = statistics.median(meta["bounds_hi"])
            ax.axvspan(lo, hi, color="C2", alpha=0.15, label="range test's suggestion (median)")
        if kind in ("trend", "within", "peak") and xs:
            levels = sorted(set(xs))
            means = [sum(y for x, y in zip(xs, ys) if x == lv) / sum(1 for x in xs if x == lv) for lv in levels]
            ax.plot(levels, means, "-o", color="C1", label="mean over seeds")
            if min(levels) > 0 and max(levels) / min(levels) > 8:
                ax.set_xscale("log", base=log_base(levels))
        if meta.get("peak_x") is not None:
            ax.axvline(meta["peak_x"], color="C3", linewidth=0.8, label=f"highest inner mean ({meta['x']} = {meta['peak_x']:g})")
        if meta.get("mark_x") is not None:
            mk = meta["mark"]
            level = f">= {mk['at_least']:g}" if "at_least" in mk else f"<= {mk['at_most']:g}"
            ax.axvline(meta["mark_x"], color="C2", linestyle="--", linewidth=0.8,
                       label=f"{mk['metric']} {level} from here")
        ax.set_xlabel(meta["x"])
    elif kind == "compare":
        groups = {"a": [], "b": []}
        for r, y in zip(ok, ys):
            groups.setdefault(r["group"], []).append(y)
        marks = {g: [e for r, e in zip(ok, entered) if r["group"] == g] for g in ("a", "b")}
        if meta.get("paired"):  # each seed's two trials joined: the differences the test takes
            by_seed = {}
            for r, y in zip(ok, ys):
                by_seed.setdefault(r["seed"], {})[r["group"]] = y
            for pair in by_seed.values():
                if "a" in pair and "b" in pair:
                    ax.plot([0, 1], [pair["a"], pair["b"]], color="0.6", linewidth=0.7, zorder=1)
        for i, g in enumerate(("a", "b")):
            measured = [y for y, e in zip(groups[g], marks[g]) if not e]
            ax.scatter([i] * len(measured), measured, s=18, alpha=0.7, zorder=2)
            if any(marks[g]):  # in the mean below, as the test takes them
                ax.scatter([i] * sum(marks[g]), [y for y, e in zip(groups[g], marks[g]) if e], s=28,
                           marker="x", color="C3", zorder=3,
                           label="diverged, entered at diverged_as" if i == 0 or not any(marks["a"]) else None)
            if groups[g]:
                ax.hlines(sum(groups[g]) / len(groups[g]), i - 0.2, i + 0.2, color="C1", zorder=3)
        def tick(label):  # one condition, and the tuned value, per line
            return label.replace(", ", ",\n").replace(" (best", "\n(best")
        ax.set_xticks([0, 1], [tick(meta.get("a_label", "a")), tick(meta.get("b_label", "b"))], fontsize=7)
        if meta.get("paired"):
            ax.set_xlabel("paired by seed (grey: one seed's two trials)", fontsize=8)
    else:
        ax.scatter(range(len(ys)), ys, s=18)
        ax.axhline(meta.get("threshold", 0), color="C3", linestyle="--", label="threshold")
        if ys:
            ax.axhline(sum(ys) / len(ys), color="C1", linewidth=1, label="mean (tested)")
        ax.set_xlabel("trial")
    diverged = sum(1 for r in rows if r["status"] == "diverged")
    failed = sum(1 for r in rows if r["status"] == "failed")
    notes = [f"{n} {what}" for n, what in ((diverged, "diverged"), (failed, "failed")) if n]
    ax.set_ylabel(meta["metric"])
    ax.set_title(f"{meta['id']}: {meta['verdict']}" + (f" ({', '.join(notes)})" if notes else ""), fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def natural(label):
    """Sort key putting round=2 before round=10: numbers compare as numbers (re.split with a
    group puts them at the odd places, text at the even ones)."""
    # "]" ranks below "," so that widths=[64,64] comes before widths=[64,64,64,64].
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)", label.replace("]", "\x00"))
    return [float(p) if i % 2 else p for i, p in enumerate(parts)]


def below_title(fig, inches=0.2):
    """The rectangle for tight_layout that leaves the top `inches` to the figure's suptitle,
    which tight_layout does not make room for (it overlapped the first row's titles)."""
    return (0, 0, 1, 1 - inches / fig.get_figheight())


def band(ax, series, color, label, statuses, positive=False, counts=None):
    """series: {seed: [(step, value)]} -> the mean line and the min-max band over the seeds that
    ran to the end (a mean over whichever seeds are still running would change what it averages
    as they drop out); a seed that stopped before them (diverged, or stopped early) is drawn
    alone, thin and dashed, a diverged one ending in an x. `positive`: a log axis, which cannot
    show values <= 0 (how many there were is said). `counts`: (trials, diverged) of this label
    from the report's list of trials, which holds those that diverged before any evaluation and
    so have no curve; else counted from `series`."""
    def usable(v):
        return math.isfinite(v) and (v > 0 or not positive)
    last = {seed: max(st for st, _ in pts) for seed, pts in series.items() if pts}
    end = max(last.values(), default=None)
    whole = [seed for seed, st in last.items() if st == end and statuses.get(seed) != "diverged"]
    total, diverged = counts or (len(series), sum(1 for seed in series if statuses.get(seed) == "diverged"))
    notes = []
    if diverged:
        notes.append(f"{diverged} of {total} diverged")
    stopped = sum(1 for seed in series if seed not in whole and statuses.get(seed) != "diverged")
    if whole and stopped:  # the solid line is not every seed's
        notes.append(f"line: {len(whole)} of {len(whole) + stopped} to the end")
    hidden = sum(1 for pts in series.values() for _, v in pts if positive and math.isfinite(v) and v <= 0)
    if hidden:
        notes.append(f"{hidden} values <= 0 off the log axis")
    if notes:
        label = f"{label} ({'; '.join(notes)})"
    by_step = {}
    for seed in whole:
        for st, v in series[seed]:
            if usable(v):
                by_step.setdefault(st, []).append(v)
    full = sorted(st for st, vs in by_step.items() if len(vs) == len(whole))
    if full:
        marker = "o" if len(full) == 1 else None  # one evaluation: a point, not an invisible line
        ax.plot(full, [sum(by_step[st]) / len(by_step[st]) for st in full], color=color, label=label,
                linewidth=1.2, marker=marker, markersize=3)
        ax.fill_between(full, [min(by_step[st]) for st in full], [max(by_step[st]) for st in full],
                        color=color, alpha=0.2, linewidth=0)
        label = None
    for seed in series:
        if seed in whole:
            continue
        pts = sorted((st, v) for st, v in series[seed] if usable(v))
        if not pts:
            continue
        ax.plot([st for st, _ in pts], [v for _, v in pts], color=color, linewidth=0.7,
                linestyle="--", marker="o" if len(pts) == 1 else None, markersize=3, label=label)
        label = None
        if statuses.get(seed) == "diverged":
            ax.plot([pts[-1][0]], [pts[-1][1]], marker="x", color=color, markersize=5)


def plot_curves(meta, rows, path):
    if meta["lab"] == "lr_range":
        fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
        by_trial = {}
        for r in rows:
            by_trial.setdefault((r["label"], r["seed"]), {}).setdefault(r["name"], {})[int(r["step"])] = float(r["value"])
        for i, ((label, seed), m) in enumerate(sorted(by_trial.items())):
            steps = sorted(m.get("range_loss_smoothed", {}))
            ax.plot([m["lr"][s] for s in steps], [m["range_loss_smoothed"][s] for s in steps],
                    color=f"C{i % 10}", linewidth=1, label=f"{label} seed {seed}".strip())
        for rg in meta["ranges"]:
            ax.axvspan(rg["lo"], rg["hi"], color="C2", alpha=0.08)
            ax.axvline(rg["steepest"], color="C3", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (rising each step)")
        ax.set_ylabel("training loss (smoothed)")
        lows = [v for (_, m) in by_trial.items() for v in m.get("range_loss_smoothed", {}).values()]
        if lows:
            ax.set_ylim(min(lows) * 0.9, min(max(lows), 4 * min(lows)) * 1.1)
        # (The curves are the run's causal average, which trails the loss by some steps; the range
        # is read from the same average without lag, so it ends left of these curves' minima.)
        ax.set_title(f"{meta['config']}\nshaded: suggested range (read without the average's lag); "
                     "dotted: steepest", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return
    series, statuses = {}, {}
    for r in rows:
        series.setdefault(r["name"], {}).setdefault(r["label"], {}).setdefault(r["seed"], []).append(
            (int(r["step"]), float(r["value"])))
        statuses.setdefault(r["label"], {})[r["seed"]] = r.get("status", "")
    # Each label's trials and divergences from the report's list, which has the trials that
    # diverged before their first evaluation (no curve: a legend that counted curves said 3 of 9
    # where 4 of 10 diverged, and an arm whose every seed diverged vanished).
    counts, failed = {}, {}
    for t in meta.get("trials", []):
        n, d = counts.get(t["label"], (0, 0))
        counts[t["label"]] = (n + 1, d + (t["status"] == "diverged"))
        failed[t["label"]] = failed.get(t["label"], 0) + (t["status"] == "failed")
    # Arms with no curve at all: every trial diverged before an evaluation, or failed.
    curveless = {}
    for lb, (n, d) in counts.items():
        if lb not in statuses:
            what = [f"{k} {word}" for k, word in ((d, "diverged before an evaluation"),
                                                   (failed[lb], "failed with an error")) if k]
            curveless[lb] = f"all {n}: " + ", ".join(what) if what else f"all {n}: no evaluation"
    # A mean over the steps since the evaluation before estimates the loss halfway through them:
    # drawn at the window's end, a long window would lag a short one and draw a false step.
    for by_seed in series.get("train_loss_recent", {}).values():
        for seed, pts in by_seed.items():
            pts.sort()
            by_seed[seed] = [((prev + st) / 2, v) for prev, (st, v) in zip([0] + [p[0] for p in pts], pts)]
    implicit = meta["lab"] == "implicit"
    names = ("angle_deg", "margin_ratio", "w_norm", "norm_ratio", "rel_dist_min_norm",
             "rel_dist_predicted", "residual") \
        if implicit else ("test_acc" if "test_acc" in series else "test_loss", "train_loss", "lr")

    def points(name):
        return sum(len(pts) for by_seed in series.get(name, {}).values() for pts in by_seed.values())

    if not implicit:
        # Runs evaluated on held-out sets only (train.eval_sets=held_out) have the training loss
        # at their last evaluation: the mean loss of the steps between evaluations stands in.
        if points("train_loss") < points("test_acc") and "train_loss_recent" in series:
            names = ("test_acc", "train_loss_recent", "lr")
        # With a validation split, its loss is the curve early stopping and tuning watch.
        if "val_loss" in series:
            names = (names[0], "val_loss") + names[1:]
        # Learning rates that never move within a run are flat lines nobody needs to see (the
        # legend names each run's).
        if all(len({v for _, v in pts}) <= 1
               for by_seed in series.get("lr", {}).values() for pts in by_seed.values()):
            names = tuple(n for n in names if n != "lr")
    panels = [n for n in names if n in series]
    if not panels:
        # Every trial ended before an evaluation: the report links a figure, which says so.
        fig, ax = plt.subplots(figsize=(6, 2.4), dpi=110)
        ax.axis("off")
        lines = [f"{lb or 'all'}: {what}" for lb, what in sorted(curveless.items())] or ["no evaluations"]
        ax.text(0.02, 0.9, "no curve to draw: every trial ended before an evaluation\n" + "\n".join(lines[:12]),
                va="top", fontsize=8, transform=ax.transAxes)
        ax.set_title(meta["config"], fontsize=9)
        fig.savefig(path)
        plt.close(fig)
        return
    labels = sorted(set(lb for n in panels for lb in series[n]) | set(curveless), key=natural)
    # Many runs varying on two or more axes: one row per value of the first axis, so that each
    # row's lines (the other axes) stay few enough to tell apart.
    facets = {"": labels}
    if len(labels) > 8 and all(len(lb.split(" ")) > 1 for lb in labels):
        facets = {}
        for lb in labels:
            head, rest = lb.split(" ", 1)
            facets.setdefault(head, []).append(lb)
    # Runs of very different lengths (Q99: batch 32's 34,000 steps beside batch 4096's 270) on
    # one linear step axis squeeze the short ones against 0: a log axis past 8x.
    lasts = [max(st for st, _ in pts) for n in panels for by_seed in series[n].values()
             for pts in by_seed.values() if pts]
    log_x = implicit or (bool(lasts) and min(lasts) > 0 and max(lasts) / min(lasts) > 8)
    rows_n = len(facets)
    # (At least 6 inches wide: a single panel clipped the title.)
    fig, grid = plt.subplots(rows_n, len(panels),
                             figsize=(max(6.0, 4.2 * len(panels)), 3.0 * rows_n + 0.6),
                             dpi=110, squeeze=False)
    # Rows in the labels' natural order (a string sort put train_subset=1000 before 300).
    for row, (head, members) in enumerate(facets.items()):
        for ax, name in zip(grid[row], panels):
            log_y = name.startswith("train_loss") or name == "test_loss" or (
                implicit and name != "margin_ratio")
            for i, lb in enumerate(members):
                short = lb[len(head):].strip() if head else lb
                # Past ten lines the cycle would repeat a color: a sequential map instead.
                color = f"C{i}" if len(members) <= 10 else plt.cm.viridis(i / (len(members) - 1))
                if lb in series[name]:
                    band(ax, series[name][lb], color, short or "all", statuses.get(lb, {}), log_y,
                         counts.get(lb))
                elif lb in curveless:  # named in the legend, with nothing to draw
                    ax.plot([], [], color=color, marker="x", linestyle="none",
                            label=f"{short or 'all'} ({curveless[lb]})")
            ax.set_xlabel("step (log scale)" if log_x and not implicit else "step")
            ax.set_ylabel("train loss (steps since last eval)" if name == "train_loss_recent" else name)
            if log_y:
                ax.set_yscale("log")
            if implicit:
                ax.set_xscale("log")
            elif log_x:
                ax.set_xscale("log")  # (an evaluation at step 0, if any, is left off)
            elif lasts and max(lasts) >= 10000:
                ax.xaxis.set_major_locator(MaxNLocator(5))  # (five-digit steps overlapped)
            ax.grid(alpha=0.3)
            if head:
                ax.set_title(head, fontsize=8)
        grid[row][-1].legend(fontsize=6, loc="best")
    thinned = meta.get("stride", 1) > 1
    fig.suptitle(meta["config"] + "\nsolid: mean over the seeds that ran to the last step, band: their min to "
                 "max; dashed: a seed that stopped before them" +
                 (f"; one evaluation in {meta['stride']} drawn" if thinned else ""), fontsize=8)
    fig.tight_layout(rect=below_title(fig, 0.4))
    fig.savefig(path)
    plt.close(fig)


def plot_lottery(rows, path):
    """Frankle & Carbin's figures: test accuracy (at the end and at early stopping) and the
    early-stopping iteration against the percentage of weights remaining, per control, seed band."""
    data = {}
    for r in rows:
        if r["status"] != "finished":
            continue
        data.setdefault(r["control"], {}).setdefault(float(r["weights_remaining"]), []).append(r)
    dense = data.get("ticket", {}).get(1.0, [])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    panels = (("test_acc", "test accuracy (end of training)"),
              ("test_acc_at_best_val", "test accuracy at early stopping"),
              ("best_val_step", "early-stopping iteration"))
    colors = {"ticket": "C0", "reinit": "C3", "random_prune": "C2"}
    for ax, (key, title) in zip(axes, panels):
        for control, by_w in sorted(data.items()):
            pts = sorted(by_w.items())
            if control != "ticket":  # the controls share round 0 with the ticket: the dense net
                pts = sorted(list(by_w.items()) + ([(1.0, dense)] if dense else []))
            xs, mean, lo, hi = [], [], [], []
            for w, rs in pts:
                vals = [float(r[key]) for r in rs if r[key] not in ("", "nan")]
                if vals:
                    xs.append(100 * w)
                    mean.append(sum(vals) / len(vals))
                    lo.append(min(vals))
                    hi.append(max(vals))
            ax.plot(xs, mean, "-o", markersize=3, color=colors.get(control, "C7"), label=control)
            ax.fill_between(xs, lo, hi, color=colors.get(control, "C7"), alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5) if min(xs or [100]) * 0.9 <= t]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("% of weights remaining")
        ax.set_ylabel("training step" if key == "best_val_step" else "test accuracy")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("mean over seeds, band: min to max", fontsize=9)
    fig.tight_layout(rect=below_title(fig))
    fig.savefig(path)
    plt.close(fig)


def plot_surfaces(meta, path):
    """Contours of the loss around each solution of the first seed, on shared log-spaced levels,
    so a sharp minimum (tight rings) and a flat one (wide basin) read apart at a glance."""
    import math
    surfaces = meta["items"]
    seed = min(s["seed"] for s in surfaces)
    panels = [s for s in surfaces if s["seed"] == seed][:16]
    values = [v for s in panels for v in s["surface"]["loss"] if v is not None and v > 0]
    if not values:
        return
    lo, hi = min(values), min(max(values), 50 * min(values) + 10)
    levels = [lo * (hi / lo) ** (k / 14) for k in range(15)] if hi > lo else [lo, lo * 1.01]
    cols = min(4, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, panels):
        n, span = s["surface"]["n"], s["surface"]["span"]
        grid = [[(v if v is not None else math.nan) for v in s["surface"]["loss"][i * n:(i + 1) * n]]
                for i in range(n)]
        coords = [-span + 2 * span * k / max(1, n - 1) for k in range(n)]
        ax.axis("on")
        # grid[i][j] is the loss at (a_i, b_j): rows are the first direction.
        cs = ax.contour(coords, coords, grid, levels=levels, cmap="viridis", linewidths=0.8)
        ax.plot([0], [0], "r+", markersize=8)
        ax.set_title(s["label"].replace(" ", "\n", 2), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_aspect("equal")
    fig.colorbar(cs, ax=axes.ravel().tolist(), shrink=0.6, label="training loss")
    fig.suptitle(meta["config"] + f" (seed {seed}; + marks the solution)", fontsize=9)
    fig.savefig(path)
    plt.close(fig)


def plot_interpolation(meta, path):
    """Keskar et al.'s figure 3: loss (log scale) and accuracy along the line from a solution
    (t = 0) through its partner (t = 1), training solid and test dashed, one colour per seed."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for k, line in enumerate(meta["items"]):
        c, color = line["interpolation"], f"C{k % 10}"
        label = f"seed {line['seed']}"
        for split, style in (("train", "-"), ("test", "--")):
            ax_loss.plot(c["t"], c[split + "_loss"], style, color=color,
                         label=f"{label} {split}" if k < 3 else None)
            if c.get(split + "_acc"):
                ax_acc.plot(c["t"], c[split + "_acc"], style, color=color)
    first = meta["items"][0]
    for ax in (ax_loss, ax_acc):
        for t in (0, 1):
            ax.axvline(t, color="0.6", linewidth=0.8)
        ax.set_xlabel(f"t (0: batch {first['batch']}, 1: batch {first['interpolation'].get('partner_batch', '?')})")
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.set_ylabel("accuracy")
    ax_loss.legend(fontsize=7)
    fig.suptitle(meta["config"] + " (solid: training, dashed: test)", fontsize=9)
    fig.tight_layout(rect=below_title(fig))
    fig.savefig(path)
    plt.close(fig)


def rows_of(path):
    """A CSV's rows; the file gzipped beside it (PATH.gz, the curves) if that is there."""
    if os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz", "rt", newline="") as f:
            return list(csv.DictReader(f))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    folder = sys.argv[1]
    jobs = []  # (the file it draws, how): one figure that fails leaves the others drawn
    for meta_path in sorted(glob.glob(os.path.join(folder, "claim_*.json"))):
        base = meta_path[:-5]
        jobs.append((base + ".png", lambda m=meta_path, b=base: plot(
            json.load(open(m)), rows_of(b + ".csv"), b + ".png")))
    for csv_path in sorted(glob.glob(os.path.join(folder, "lottery_*.csv"))):
        jobs.append((csv_path[:-4] + ".png",
                     lambda c=csv_path: plot_lottery(rows_of(c), c[:-4] + ".png")))
    for meta_path in sorted(glob.glob(os.path.join(folder, "interpolation_*.json"))):
        jobs.append((meta_path[:-5] + ".png", lambda m=meta_path: plot_interpolation(
            json.load(open(m)), m[:-5] + ".png")))
    for meta_path in sorted(glob.glob(os.path.join(folder, "surface_*.json"))):
        jobs.append((meta_path[:-5] + ".png", lambda m=meta_path: plot_surfaces(
            json.load(open(m)), m[:-5] + ".png")))
    for meta_path in sorted(glob.glob(os.path.join(folder, "curves_*.json"))):
        base = meta_path[:-5]
        jobs.append((base + ".png", lambda m=meta_path, b=base: plot_curves(
            json.load(open(m)), rows_of(b + ".csv"), b + ".png")))
    failed = []
    for png, draw in jobs:
        try:
            draw()
        except Exception as e:  # noqa: BLE001 - reported, and the other figures still drawn
            plt.close("all")
            failed.append(f"{os.path.basename(png)}: {type(e).__name__}: {e}")
    for line in failed:
        print(f"plot_report: {line}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(jobs)} plots failed, the first {failed[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
