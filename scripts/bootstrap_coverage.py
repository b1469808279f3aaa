#!/usr/bin/env python3
"""How often a nominal 95 % percentile-bootstrap interval, resampled within groups as
labs/claims/verdict.cpp resamples, holds the true effect when each group has only a few seeds.

  .venv/bin/python scripts/bootstrap_coverage.py [--reps 1000] [--expanded]

--expanded takes the percentiles at Hesterberg's expanded level, as labs/claims/stats.cpp does
since 2026-11-27 (the level whose normal quantile is sqrt(n/(n-1)) t(n-1, 0.975), n the smallest
group); without it, the plain 2.5 and 97.5 percentiles.

Normal noise; a compare claim (difference of two group means, true difference 0) at 3, 4, 5 and
10 seeds per group, with equal spreads and with one arm's 4x the other's, alone and widened by
Welch's t interval, the mean of one sample (a threshold, a paired compare's differences) at as
many seeds, alone and widened by Student's t interval, and a trend claim (tau over pairs at different x, 4 values x 3 seeds, a
linear slope; its true value estimated from 4,000 fresh data sets), and a peak claim (the
highest inner mean less the higher of the lowest means on its sides, re-found in every
resample) on Q96's twelve test-loss means with 3 seeds at three noise levels. Prints the share
of repetitions whose interval held the truth (under a minute on two cores).
"""
import argparse
import math
from statistics import NormalDist

import numpy as np

EXPANDED = False


def t_cdf(t, df):
    """Student's t CDF by Simpson's rule on its density (ample for the quantiles used here)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    xs = np.linspace(0, abs(t), 20001)
    f = c * (1 + xs * xs / df) ** (-(df + 1) / 2)
    half = (xs[1] - xs[0]) / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return 0.5 + math.copysign(half, t)


def t_quantile(p, df):
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def expanded_level(level, n):
    z = math.sqrt(n / (n - 1)) * t_quantile((1 + level) / 2, n - 1)
    return 2 * NormalDist().cdf(z) - 1


def percentile_interval(stats, n, level=0.95):
    if EXPANDED:
        level = expanded_level(level, n)
    return np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])


def welch_interval(a, b, level=0.95):
    """Welch's t interval for mean(b) - mean(a), Satterthwaite's degrees of freedom."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va * va / (a.size - 1) + vb * vb / (b.size - 1))
    half = t_quantile((1 + level) / 2, df) * math.sqrt(va + vb)
    d = b.mean() - a.mean()
    return d - half, d + half


def compare_coverage(rng, n, reps, resamples, with_welch, sd_b=1.0):
    """An unpaired compare (true difference 0; arm b's spread sd_b); with_welch, the wider end on
    each side of it and Welch's interval, as verdict.cpp takes them."""
    held = 0
    for _ in range(reps):
        a, b = rng.normal(0, 1, n), rng.normal(0, sd_b, n)
        ia, ib = rng.integers(0, n, (resamples, n)), rng.integers(0, n, (resamples, n))
        lo, hi = percentile_interval(b[ib].mean(1) - a[ia].mean(1), n)
        if with_welch:
            wlo, whi = welch_interval(a, b)
            lo, hi = min(lo, wlo), max(hi, whi)
        held += lo <= 0 <= hi
    return held / reps


def mean_coverage(rng, n, reps, resamples, with_t):
    """A threshold's or a paired compare's interval: the mean of one sample (true mean 0); with_t,
    the wider end on each side of it and Student's t interval, as verdict.cpp takes them."""
    held, q = 0, t_quantile(0.975, n - 1)
    for _ in range(reps):
        y = rng.normal(0, 1, n)
        lo, hi = percentile_interval(y[rng.integers(0, n, (resamples, n))].mean(1), n)
        if with_t:
            half = q * y.std(ddof=1) / math.sqrt(n)
            lo, hi = min(lo, y.mean() - half), max(hi, y.mean() + half)
        held += lo <= 0 <= hi
    return held / reps


def ordered_tau(x, y):
    """Kendall's tau over the pairs at different x, as labs/claims/stats.cpp computes it."""
    dx = np.sign(x[None, :] - x[:, None])
    dy = np.sign(y[None, :] - y[:, None])
    across = np.triu(dx != 0, 1)
    return float((dx * dy)[across].sum() / across.sum())


def trend_coverage(rng, levels, n, slope, reps, resamples):
    x = np.repeat(np.arange(levels, dtype=float), n)
    truth = np.mean([ordered_tau(x, slope * x + rng.normal(0, 1, x.size)) for _ in range(4000)])
    held = 0
    for _ in range(reps):
        y = slope * x + rng.normal(0, 1, x.size)
        stats = []
        for _ in range(resamples):
            idx = np.concatenate([g * n + rng.integers(0, n, n) for g in range(levels)])
            stats.append(ordered_tau(x[idx], y[idx]))
        lo, hi = percentile_interval(stats, n)
        held += lo <= truth <= hi
    return truth, held / reps


def peak(means):
    """verdict.cpp's peak statistic on a vector of group means."""
    k = 1 + int(np.argmax(means[1:-1]))
    return means[k] - max(means[:k].min(), means[k + 1:].min())


def peak_coverage(rng, sd, reps, resamples, n=3):
    mu = np.array([1.79, 1.85, 2.20, 2.09, 2.01, 1.87, 1.85, 1.76, 1.75, 1.64, 1.62, 1.56])
    truth, held, estimates = peak(mu), 0, []
    rows = np.arange(mu.size)[:, None]
    for _ in range(reps):
        y = mu[:, None] + rng.normal(0, sd, (mu.size, n))
        estimates.append(peak(y.mean(1)))
        stats = [peak(y[rows, rng.integers(0, n, (mu.size, n))].mean(1)) for _ in range(resamples)]
        lo, hi = percentile_interval(stats, n)
        held += lo <= truth <= hi
    return truth, float(np.mean(estimates)), held / reps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--expanded", action="store_true", help="expanded percentile intervals")
    args = p.parse_args()
    global EXPANDED
    EXPANDED = args.expanded
    rng = np.random.default_rng(args.seed)
    for n in (3, 4, 5, 10):
        for sd_b, spread in ((1.0, "equal spreads"), (4.0, "b's spread 4x a's")):
            alone = compare_coverage(rng, n, args.reps, 1000, False, sd_b)
            with_welch = compare_coverage(rng, n, args.reps, 1000, True, sd_b)
            print(f"compare, {n} seeds per group, {spread}: 95 % interval held the truth in "
                  f"{alone:.0%} of {args.reps} (bootstrap alone), {with_welch:.0%} (and Welch's t)")
    for n in (3, 4, 5, 10):
        alone = mean_coverage(rng, n, args.reps, 1000, False)
        with_t = mean_coverage(rng, n, args.reps, 1000, True)
        print(f"mean of one sample, {n} seeds: held the truth in {alone:.0%} of {args.reps} "
              f"(bootstrap alone), {with_t:.0%} (and Student's t)")
    truth, held = trend_coverage(rng, 4, 3, 0.4, max(100, args.reps // 3), 400)
    print(f"trend, 4 values x 3 seeds (true tau {truth:.2f}): held the truth in {held:.0%} "
          f"of {max(100, args.reps // 3)}")
    for sd in (0.05, 0.1, 0.2):
        truth, mean, held = peak_coverage(rng, sd, max(100, args.reps // 4), 300)
        print(f"peak, Q96's test-loss curve, noise sd {sd}: true {truth:.2f}, mean estimate "
              f"{mean:.2f}, held the truth in {held:.0%} of {max(100, args.reps // 4)}")


if __name__ == "__main__":
    main()
