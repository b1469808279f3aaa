// The learning-rate range test (Smith 2017, "Cyclical learning rates", section 3.3) as pure
// functions of the recorded losses, so its suggestion can be checked on sequences with known
// answers.
//
// One short run raises the LR exponentially from start to end, one step at each LR; the loss is
// smoothed with a bias-corrected exponential moving average (causal: the run's stop rule reads
// it). The suggestion reads the same average run once more backwards over it (no lag; the causal
// one trails the loss by about beta / (1 - beta) steps), each loss credited to the LR of the
// update before it (it was taken before its own step's update). It follows Smith's reading of the
// curve: the range starts where the loss starts to fall (the first LR at which the smoothed loss
// has dropped by 10 % of its total drop) and ends where it stops falling (the LR of the lowest
// smoothed loss). The steepest descent (most negative slope of the smoothed loss against log LR,
// before the minimum) is reported as a single suggested LR.
#pragma once

#include <vector>

namespace empiric {

// The LR at `step` (0-based) of a `steps`-step range test from `start` to `end`.
double range_test_lr(double start, double end, long long step, long long steps);

struct LrRangeSuggestion {
  std::vector<double> smoothed;  // the causal smoothed loss, one per recorded step
  std::vector<double> centred;   // the same smoothed backwards too, up to the stop: no lag
  long long min_step = -1;       // step of the lowest centred loss
  double lr_min_loss = 0;        // the range's upper end
  double range_lo = 0;           // where the loss starts to fall
  double lr_steepest = 0;        // steepest descent of the smoothed loss against log LR
  bool valid = false;            // false when the loss never fell
};

// `lrs` and `losses` are the recorded steps (a run stopped by divergence simply has fewer).
// `smoothing` is the EMA's beta in [0, 1) (0: raw losses); `stop_factor` the test's stop rule
// (the smoothed loss above that many times its lowest), where the curve read ends.
LrRangeSuggestion suggest_lr_range(const std::vector<double>& lrs,
                                   const std::vector<double>& losses, double smoothing,
                                   double stop_factor = 4.0);

}  // namespace empiric
