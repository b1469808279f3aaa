#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace empiric {

double scaled_base_lr(double lr, const std::string& rule, long long batch, long long base_batch) {
  double ratio = double(batch) / double(base_batch);
  if (rule == "linear") return lr * ratio;
  if (rule == "sqrt") return lr * std::sqrt(ratio);
  return lr;
}

namespace {

// A step count in epochs rounded to a step, saturated: past 2^62 steps (an epoch count of 1e30,
// meaning "never") llround is undefined (x86 gives LLONG_MIN, a milestone already passed at step
// 0), and no run reaches such a step anyway.
constexpr long long kNever = 1LL << 62;
long long rounded_steps(double steps) {
  return steps >= double(kNever) ? kNever : std::llround(steps);
}

}  // namespace

long long warmup_steps(const json& s, long long spe) {
  const long long steps = s.value("warmup_steps", 0LL);
  return steps > 0 ? steps : rounded_steps(s.value("warmup_epochs", 0.0) * double(spe));
}

double lr_at(const json& s, double base, long long step, long long total, long long spe) {
  const std::string name = s.value("name", "constant");
  const long long warmup = warmup_steps(s, spe);
  if (step < warmup) return base * double(step + 1) / double(warmup);

  // Decays counted in epochs use the absolute epoch (a fractional milestone or period is a step
  // within one); shapes over the run use the post-warmup part.
  const double epoch = std::floor(double(step) / double(spe));
  const double t = double(step - warmup);
  const double span = std::max(1.0, double(total - warmup));
  const double pi = std::acos(-1.0);
  if (name == "constant") return base;
  if (name == "step") {
    // The k-th decay at step llround(k * every), rounded as multistep's milestones are (and
    // exact for whole epochs): 1.1 epochs of 50 steps is step 55, not 55.000000000000007.
    // (k * every rounds to at most `step` exactly when it lies below step + 0.5: the estimate
    // below is off by float rounding only, which the loops mend; floor(step / every) was off by
    // up to 0.5 / every, a loop of 1e11 turns a step at step_epochs 1e-12.)
    const double every = s.value("step_epochs", 30.0) * double(spe);
    if (every >= double(kNever)) return base;  // (never decays within a run)
    const double estimate = std::ceil((double(step) + 0.5) / every) - 1.0;
    if (estimate >= double(kNever)) return 0.0;  // (decayed more often than gamma^k keeps a value)
    long long k = std::max(0LL, (long long)estimate);
    while (rounded_steps(double(k + 1) * every) <= step) ++k;
    while (k > 0 && rounded_steps(double(k) * every) > step) --k;
    return base * std::pow(s.value("gamma", 0.1), double(k));
  }
  if (name == "multistep") {
    int passed = 0;
    for (const auto& m : s.value("milestones", json::array()))
      passed += step >= rounded_steps(m.get<double>() * double(spe));
    return base * std::pow(s.value("gamma", 0.1), passed);
  }
  if (name == "exponential") return base * std::pow(s.value("gamma", 0.1), epoch);
  if (name == "cosine") {
    const double lo = base * s.value("min_lr_frac", 0.0);
    return lo + (base - lo) * 0.5 * (1.0 + std::cos(pi * std::min(t / span, 1.0)));
  }
  if (name == "cosine_restarts") {
    // SGDR (Loshchilov & Hutter 2017): cosine from base to the floor over a period that starts at
    // restart_epochs and grows by restart_mult after each restart, counted after warmup.
    const double lo = base * s.value("min_lr_frac", 0.0);
    const double mult = s.value("restart_mult", 1.0);
    double period = std::max(1.0, s.value("restart_epochs", 1.0) * double(spe)), start = 0;
    if (mult == 1.0) {  // (periods of one length: no walk through them, which at a period of a
                        // step took the run's length every step)
      double k = std::floor(t / period);
      // A step on a boundary that float rounding puts a hair short of it (0.1 epochs of 469
      // steps, 100 periods: 4690 / 46.900000000000006) starts the next period.
      if ((k + 1.0) * period - t <= 1e-9 * period) k += 1.0;
      start = k * period;
    } else {
      while (t >= start + period) start += period, period *= mult;
    }
    return lo + (base - lo) * 0.5 * (1.0 + std::cos(pi * std::max(0.0, t - start) / period));
  }
  if (name == "onecycle") {
    // As torch.optim.lr_scheduler.OneCycleLR with cosine annealing and cycle_momentum=False (the
    // momentum stays where the optimizer sets it): base is the peak.
    const double start = base / s.value("div_factor", 25.0);
    const double end = start / s.value("final_div_factor", 1e4);
    // The rise ends at step pct_start * span - 1 and the fall at span - 1, as torch's phases
    // (a rise shorter than a step is skipped, as there; a rise of exactly one point, which torch
    // divides 0 by 0 at, holds the start).
    const double rise = s.value("pct_start", 0.3) * span - 1.0;
    auto cos_anneal = [&](double from, double to, double frac) {
      return to + (from - to) * 0.5 * (1.0 + std::cos(pi * std::clamp(frac, 0.0, 1.0)));
    };
    if (t <= rise) return rise > 0 ? cos_anneal(start, base, t / rise) : start;
    return cos_anneal(base, end, (t - rise) / (span - 1.0 - rise));
  }
  if (name == "wsd") {
    const double lo = base * s.value("min_lr_frac", 0.0);
    const double decay_start = (1.0 - s.value("decay_frac", 0.2)) * span;
    if (t < decay_start) return base;
    const double frac = (t - decay_start) / std::max(1.0, span - decay_start);
    return base + (lo - base) * std::min(frac, 1.0);
  }
  return base;
}

bool evaluates_epoch_end(long long epoch, long long step, long long total, long long spe,
                         long long max_evals) {
  if (max_evals <= 0 || step >= total) return true;
  const long long epochs = (total + spe - 1) / spe;
  const long long every = (epochs + max_evals - 1) / max_evals;
  return epoch % every == 0;
}

}  // namespace empiric
