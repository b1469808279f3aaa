// Learning-rate schedules as pure functions of the step, so that every schedule can be checked
// against a hand-computed table and plotted without training anything.
#pragma once

#include <nlohmann/json.hpp>

namespace empiric {

using json = nlohmann::json;

// Base LR after the batch-size scaling rule: none, linear (lr * b / b0) or sqrt (lr * sqrt(b /
// b0)).
double scaled_base_lr(double lr, const std::string& rule, long long batch, long long base_batch);

// The LR at `step` (0-based) of a run of `total_steps`, for a validated "schedule" section.
// Times given in epochs are converted with `steps_per_epoch`. Warmup (linear from
// base/warmup_steps up to base) comes first; the schedule then runs over the remaining steps.
double lr_at(const json& schedule, double base_lr, long long step, long long total_steps,
             long long steps_per_epoch);

// The warmup's length in steps: schedule.warmup_steps where set, else warmup_epochs' steps.
long long warmup_steps(const json& schedule, long long steps_per_epoch);

// Whether a run evaluates at the end of its `epoch`-th epoch (1-based), having taken `step` of
// its `total_steps` steps, when train.max_evals thins its epoch-end evaluations: every k-th epoch
// end, k = ceil(epochs / max_evals), and always the run's last. max_evals 0: every epoch end.
bool evaluates_epoch_end(long long epoch, long long step, long long total_steps,
                         long long steps_per_epoch, long long max_evals);

}  // namespace empiric
