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

struct BootstrapOptions {
  int resamples = 2000;
  double level = 0.95;
  uint64_t seed = 0;
};

// Percentile bootstrap: `statistic` is called with a resampling (a vector of indices into each of
// `group_sizes` groups, drawn with replacement within its group) and its result's
// (1 - level)/2 and (1 + level)/2 quantiles form the interval. Deterministic for a seed.
Interval bootstrap(const std::vector<int>& group_sizes,
                   const std::function<double(const std::vector<std::vector<int>>&)>& statistic,
                   const BootstrapOptions& options);

}  // namespace empiric::claims
