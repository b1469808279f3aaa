// Statistics behind the claims' verdicts: rank correlations and seeded bootstrap intervals.
// No torch: plain vectors of doubles, so every rule is testable on tables with known answers.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace empiric::claims {

// NaN until computed: a verdict with too few trials has no interval, not [0, 0].
struct Interval {
  double lo = NAN, hi = NAN;
  bool known() const { return std::isfinite(lo) && std::isfinite(hi); }
};

// Kendall's tau-b (tie-corrected); 0 when either side is constant.
double kendall_tau(const std::vector<double>& x, const std::vector<double>& y);
// Kendall's tau over the pairs with different x only: (pairs ordered like x - pairs ordered
// against it) / pairs with different x (Jonckheere-Terpstra's statistic on a -1..1 scale; pairs
// tied in y count in the denominator). Pairs within one x never enter, so duplicates that a
// within-x resampling draws cannot move it: over such resamplings its mean is the estimate
// itself, which Spearman's (biased by the ties the duplicates make) is not. 0 when x is constant.
double ordered_tau(const std::vector<double>& x, const std::vector<double>& y);
double mean(const std::vector<double>& v);
// The middle value (the mean of the two middle ones for an even count); NaN for none.
double median(std::vector<double> v);

struct BootstrapOptions {
  // Not more: with 3 seeds the expanded level (below) is the resamples' range, which widens as
  // they grow, and with 4 or 5 an end is the 1st to 4th most extreme. In the coverage simulation
  // (scripts/bootstrap_coverage.py, 600 repetitions) 2,000 held the truth 90/94/96 % of the time
  // at 3/4/5 seeds, 10,000 89/96/97 %.
  int resamples = 2000;
  double level = 0.95;
  uint64_t seed = 0;
};

// Student's t distribution with `df` degrees of freedom (df > 0): its CDF, and the quantile
// (bisection on the CDF, to 1e-10).
double student_t_cdf(double t, double df);
double student_t_quantile(double p, double df);

// Hesterberg's expanded percentile interval (2015): with n values per group a percentile
// bootstrap is too narrow (its resamples spread like sqrt((n-1)/n) standard errors and the
// normal quantile stands in for Student's), so the percentiles are taken at the level whose
// normal quantile is sqrt(n / (n - 1)) * t(n - 1, (1 + level) / 2). With 3 seeds per group and a
// nominal 0.95 this is the resamples' range; with 10, about 0.983. n < 2: `level` unchanged.
double expanded_level(double level, int n);

// Student's t interval for the mean of `v` at `level`: mean +- t(n - 1, (1 + level) / 2) s /
// sqrt(n). Unknown (NaN) for fewer than 2 values; the point [mean, mean] when they are all equal.
Interval student_t_interval(const std::vector<double>& v, double level);

// Welch's t interval for mean(b) - mean(a) at `level`, with Satterthwaite's degrees of freedom.
// Unknown (NaN) for fewer than 2 values in either; the point when both are constant.
Interval welch_interval(const std::vector<double>& a, const std::vector<double>& b, double level);

// Expanded percentile bootstrap: `statistic` is called with a resampling (a vector of indices
// into each of `group_sizes` groups, drawn with replacement within its group) and its result's
// quantiles at expanded_level(level, smallest group) form the interval. Deterministic for a
// seed. (scripts/bootstrap_coverage.py: a nominal 95 % interval held the truth 80 % of the time
// with 3 seeds per group as a plain percentile interval, 90 % expanded; 87 % and 96 % with 5.
// Those are differences of two means; the mean of one sample, expanded, held it only 76/87/92/95 %
// at 3/4/5/10 seeds, since its resamples never leave the values' range: verdict.cpp widens such
// an interval to Student's t interval, 95 % at every count.)
Interval bootstrap(const std::vector<int>& group_sizes,
                   const std::function<double(const std::vector<std::vector<int>>&)>& statistic,
                   const BootstrapOptions& options);

// The Clopper-Pearson (exact binomial) interval for a proportion, `k` successes in `n` trials, at
// `level`: where a bootstrap of 0/1 values that are all alike has no width (17 of 17 runs
// diverged: [1, 1]), this one says what so few trials allow ([0.805, 1] at 95 %). n >= 1.
Interval clopper_pearson(int k, int n, double level);

// An interval for the difference of two proportions, kb/nb - ka/na, by Newcombe's square-and-add
// (1998, his method 10) with each proportion's Clopper-Pearson interval at `level` in place of
// Wilson's: conservative where the trials are few. 0 of 3 against 3 of 3 gives [-0.001, 1]: so few
// trials decide nothing, where a bootstrap's interval is the point [1, 1]. na, nb >= 1.
Interval proportion_difference(int ka, int na, int kb, int nb, double level);

// A one-sided bootstrap p-value under the null that the groups share one mean (Hall & Wilson
// 1991: resample from data made to obey the null): each group's values are centred on the mean
// of all, keeping their own spread (deviations scaled by sqrt(n / (n - 1)), as the sample
// variance is), resampled within the group `options.resamples` times, and p = (1 + resamples
// whose statistic reaches `observed`) / (1 + resamples). A statistic that selects (the highest of
// several means) is thereby compared with what that selection makes of noise alone, which a
// bootstrap interval around the selected value is not. (Shuffling the values across groups
// would be the other null, but it mixes the real differences between groups into the noise.)
// Deterministic for a seed.
double null_bootstrap_p(
    const std::vector<std::vector<double>>& groups,
    const std::function<double(const std::vector<std::vector<double>>&)>& statistic,
    double observed, const BootstrapOptions& options);

// A one-sided permutation p-value: the values `y` shuffled across their places
// `options.resamples` times (the null that where a value fell says nothing of it), and p =
// (1 + shuffles whose statistic reaches `observed`) / (1 + shuffles). Deterministic for a seed.
double permutation_p(const std::vector<double>& y,
                     const std::function<double(const std::vector<double>&)>& statistic,
                     double observed, const BootstrapOptions& options);
// The same with the values shuffled only within each of `blocks` (places in `y`; a place in no
// block stays put): the null that where a value fell within its block says nothing of it, as for
// a correlation over several seeds' trials, where the seeds' own levels are no evidence. One
// block of every place is the plain shuffle above, draw for draw.
double permutation_p(const std::vector<double>& y, const std::vector<std::vector<int>>& blocks,
                     const std::function<double(const std::vector<double>&)>& statistic,
                     double observed, const BootstrapOptions& options);

}  // namespace empiric::claims
