// A claim's test over finished trials, and its verdict.
//
// Test kinds (as in ../shared/DESIGN.md, Claims and verdicts):
//   trend      rank correlation of a metric (y) with a swept value (x): Kendall's tau over the
//              pairs of trials at different x (ordered_tau); the bootstrap resamples seeds within
//              each swept value, so the design stays balanced. (Spearman's rho was used before
//              2026-11-27: the ties that resampled duplicates make biased it, with 3 seeds per x
//              far enough that an interval could miss its own estimate.) An interval that
//              excludes 0 decides only if the trials' values shuffled across x rarely order as
//              strongly (permutation_p at the interval's one side): over 2 or 3 x by 3 seeds a
//              perfect order by chance bootstraps to [1, 1].
//   compare    mean(y | group b) - mean(y | group a); resampled within each group. With
//              best_over (claim.cpp) each group's value is chosen once, on all its trials, and
//              the interval does not carry that choice's luck: in simulation (no difference
//              anywhere, 3 seeds) a best-of-4 arm against a single value was "supported" 12.8 %
//              of the time chosen on the test metric, 7.5 % on a validation metric correlated
//              0.5 with it, 5.8 % with no choice; arms tuned over equally many values, 2 %.
//              Choosing again in every resample was tried (2026-11-27) and is worse: the
//              maximum of resampled means leans further up than the maximum of the means.
//              "paired": each seed's b minus its a, the pairs resampled: what is common to a
//              seed's two trials (its training subset, test subset, initialization, order) drops
//              out of the difference, where the unpaired interval carries it twice. A seed with
//              a trial in one arm only, or whose either trial diverged (without diverged_as),
//              is left out; two trials of one seed in one arm (another swept axis) give no
//              verdict: restrict the comparison with "where".
//   correlate  Kendall's tau between two metrics (x, y) across trials; resampled. Like a
//              trend's, an interval that excludes 0 decides only if y shuffled across the trials
//              (by seed: within each seed) rarely correlates as strongly (permutation_p at the
//              interval's one side): 3 or 4 trials in order bootstrap to [1, 1], and 3 seeds'
//              taus that agree by chance give a narrow t interval. An x that does not vary, or
//              (by seed) varies within fewer than 3 seeds, gives no verdict.
//   threshold  mean(y) - threshold; resampled.
//   peak       a rise and fall of y across x (double descent's peak): the highest mean y at an
//              inner x, minus the higher of the lowest means to its left and to its right; the
//              peak is found again in every resampling (seeds resampled within each x). Positive:
//              a peak; negative: y is monotone or U-shaped. Supported only if, besides, a
//              flat curve with the trials' spread at each x rarely rises as high
//              (null_bootstrap_p at the interval's one side, 2.5 % for 95 %): selecting the
//              highest mean biases the statistic and its interval upwards on a flat curve. An
//              upward interval that fails that test is inconclusive, also for a claim of no peak
//              (direction -1), which it would otherwise refute.
//   interaction  how much the b-minus-a difference grows from the smallest x to the largest:
//              (mean b - mean a at max x) - (mean b - mean a at min x); resampled in the 4 cells.
//   within     whether the x with the best mean y lies inside [lo, hi] (log scale): the effect is
//              how many decades it lies outside (0 inside, + above, - below; where an x or lo
//              is not positive, how far on x's own scale); resampled within each x. Supported
//              when the interval is [0, 0] (inside in nearly every resample), refuted when it
//              excludes 0. Needs two x at least.
// A group (an arm, an x, a threshold's or a correlation's trials) holding several trials of one
// seed (a lottery chain's rounds, the cells a "where" or a grid pools) resamples seeds, each with
// all its trials, and counts its size in seeds: the trials of a seed share its initialization,
// data subset and order. A threshold's t interval is then over the seeds' means, and a
// correlation takes the wider of its bootstrap and Student's t interval over the seeds' own taus
// (3 seeds' resamples only mix their taus: three of one sign would decide it alone). (Until
// 2026-11-29 thresholds, correlations and trends resampled such trials one by one, as if each
// were a seed: Q98 (c)'s 16 trials a seed counted as 48 seeds. A paired compare's differences
// are one a seed; an outcome's exact or Newcombe interval, below, counts trials.)
// Intervals are expanded percentile bootstrap intervals (stats.h: with few seeds per group a plain
// percentile interval is too narrow), at the level of the smallest group; the mean of one sample
// (a threshold, a paired compare's differences) takes the wider end on each side of that and
// Student's t interval (a one-sample bootstrap never leaves the values' range: with 3 seeds it
// is [min, max], "supported" 1 time in 8 on no effect); a threshold on a 0/1
// outcome (diverged) takes the exact binomial interval, which all-alike trials do not shrink to
// a point, and a compare of such an outcome Newcombe's interval built from the arms' exact ones
// (proportion_difference; paired, from the pairs' two arms, which is wider than a paired
// interval where the seeds' outcomes agree), shifted by the margin. A compare whose trials all
// diverged in both arms, or a threshold whose trials all did (entered with diverged_as), measures
// nothing: inconclusive. Verdict: supported when the interval excludes zero in the claimed
// direction and the effect reaches the claim's minimum; refuted when it excludes zero the other
// way; otherwise inconclusive, with the number of seeds per group that would make the interval
// exclude zero if the effect stayed as measured (half-widths shrink like 1/sqrt(n)); none where the
// effect is below the claim's minimum, since more seeds would not support it. Diverged trials are
// counted and reported, never silently dropped; they carry no metric, so they do not enter the
// statistic. Fewer than 3 usable trials in a group (a swept value, or a compared end) give no
// verdict.
#pragma once

#include <string>
#include <vector>

#include "claims/stats.h"

namespace empiric::claims {

struct Observation {
  double x = 0;           // swept value (trend) or first metric (correlate)
  double y = 0;           // the metric
  std::string group;      // compare: "a" or "b"
  bool diverged = false;  // then x and y are ignored
  bool missing = false;   // finished, but without the metric (ignored too, and reported)
  bool imputed = false;   // diverged, entered with the claim's diverged_as value (reported)
  long long pair = -1;    // the trial's seed: a paired compare matches an a with a b by it,
                          // and a group's trials of one seed are resampled together
};

struct ClaimTest {
  std::string kind = "trend";  // trend | compare | correlate | threshold | interaction | within | peak
  int direction = +1;          // the claimed sign of the effect
  double min_effect = 0;       // the smallest effect (in the claimed direction) that supports it
  double threshold = 0;        // threshold tests only
  double lo = 0, hi = 0;       // within tests: the range the best x should lie in
  // within tests: each range trial's bounds (lo and hi are their medians). With kMinPerGroup or
  // more they are resampled with the sweep, so the interval carries the range's seed-to-seed
  // spread too; fewer, the medians are held fixed.
  std::vector<double> bound_lo, bound_hi;
  bool best_is_max = true;     // within tests: the best x has the highest mean y (else lowest)
  bool outcome = false;  // the metric is a 0/1 outcome (diverged, failed, a flag): a threshold on
                         // it takes the exact binomial interval
  bool paired = false;         // compare: the mean of the seeds' b - a differences (below)
  double margin = 0;           // compare: added to b - a (a non-inferiority margin, say)
  double equivalence = 0;      // compare: the half-width of the band |b - a| is claimed within
                               // (0: not an equivalence claim)
  BootstrapOptions bootstrap;
};

struct Verdict {
  std::string verdict;  // supported | refuted | inconclusive
  double effect = NAN;  // NaN until measured (too few trials in a group, or none at one end)
  Interval ci;
  double level = 0.95;  // the interval's
  int n = 0;         // observations used
  int diverged = 0;  // observations left out because their trial diverged
  int missing = 0;   // observations left out because the metric was not recorded
  // Peak, trend and correlate tests whose interval excludes 0: null_bootstrap_p, permutation_p.
  double p_value = NAN;
  int seeds_needed = 0;  // inconclusive only: seeds per group that would likely decide it, an upper
                         // estimate (0: none would)
  std::string reason;  // one line a reader can follow
};

Verdict evaluate_claim(const ClaimTest& test, const std::vector<Observation>& observations);

// Seeds per group at which an interval like `ci` around `effect` (with the claimed sign
// `direction`, per_group seeds now, the interval containing 0) would just exclude 0: the
// interval's half on zero's side shrinks like 1/sqrt(n). At least per_group + 1 (these seeds did
// not decide it); an upper estimate, since the small-group expansion (stats.h) shrinks too. 0
// (none would) beyond a million.
int seeds_to_decide(double effect, const Interval& ci, int direction, int per_group);

// For a threshold on a 0/1 outcome: the fewest trials (more than `trials`) at which the exact
// binomial interval around the same observed `share` would lie wholly on the claimed side of
// `threshold` (searched one by one to 200, then in steps of 10 %); 0 if none up to 20,000 would.
int trials_to_decide(double share, double threshold, int direction, int trials, double level);

}  // namespace empiric::claims
