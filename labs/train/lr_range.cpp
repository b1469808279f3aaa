#include "train/lr_range.h"

#include <algorithm>
#include <cmath>

namespace empiric {

double range_test_lr(double start, double end, long long step, long long steps) {
  if (steps <= 1) return start;
  return start * std::pow(end / start, double(step) / double(steps - 1));
}

LrRangeSuggestion suggest_lr_range(const std::vector<double>& lrs,
                                   const std::vector<double>& losses, double smoothing) {
  LrRangeSuggestion s;
  const size_t n = std::min(lrs.size(), losses.size());
  double avg = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(losses[i])) break;  // the divergence that ends the test
    avg = smoothing * avg + (1 - smoothing) * losses[i];
    s.smoothed.push_back(avg / (1 - std::pow(smoothing, double(i + 1))));
  }
  if (s.smoothed.size() < 2) return s;
  const auto lowest = std::min_element(s.smoothed.begin(), s.smoothed.end());
  s.min_step = lowest - s.smoothed.begin();
  const double drop = s.smoothed.front() - *lowest;
  if (!(drop > 0)) return s;
  s.valid = true;
  s.lr_min_loss = lrs[size_t(s.min_step)];
  for (size_t i = 0; i <= size_t(s.min_step); ++i)
    if (s.smoothed.front() - s.smoothed[i] >= 0.1 * drop) {
      s.range_lo = lrs[i];
      break;
    }
  // Slope against log LR by centred differences over a window of about 5 % of the steps.
  const size_t w = std::max<size_t>(1, s.smoothed.size() / 20);
  double steepest = 0;
  s.lr_steepest = s.range_lo;
  for (size_t i = w; i + w <= size_t(s.min_step); ++i) {
    const double slope = (s.smoothed[i + w] - s.smoothed[i - w]) /
                         (std::log(lrs[i + w]) - std::log(lrs[i - w]));
    if (slope < steepest) steepest = slope, s.lr_steepest = lrs[i];
  }
  return s;
}

}  // namespace empiric
