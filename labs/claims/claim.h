// Claims as the question bank states them, evaluated on the trials of their config.
//
// A claim (questions/bank.json, a question's "claims"):
//   {"id": "q99.a.test_acc", "statement": "...", "config": "configs/q99_same_epochs.json",
//    "test": {"kind": "trend", "x": "train.batch_size", "metric": "test_acc", "direction": -1,
//             "min_effect": 0.3}}
//   trend:       x (a dotted config key that the sweep varies) against metric: Kendall's tau over
//                the pairs of trials at different x (verdict.h), so "min_effect": 0.5 asks that
//                the pairs ordered as claimed outnumber the others 3 to 1 (with no ties in the
//                metric; a tie counts as neither).
//   compare:     "a" and "b" select trials by x: "min" or "max" of x, a number or a string equal
//                to it, or an object of conditions (below); the effect is mean(metric | b) -
//                mean(metric | a) + margin ("margin": 0.01 states "b is not worse than a by more
//                than 0.01"; with "direction": -1 a negative margin, -0.05, states "b is not
//                above a by more than 0.05"). "best_over": a dotted key (or a section, whose
//                whole object is then the value); within each group only the trials at
//                its value with the best mean metric ("best": "max" or "min") are kept, so a
//                tuned a meets a tuned b (a tie goes to the smaller value, noted as
//                best_a_tied / best_b_tied). "best_by": another metric that chooses (e.g. val_acc,
//                so that the test metric is not also the one the choice was made on).
//                "paired": true takes the mean of each seed's b - a (its trial in each arm)
//                instead of the difference of the arms' means (verdict.h). "equivalence": 0.01
//                states "b is within 0.01 of a, either way": the effect is b - a, supported when
//                its whole interval lies inside (-0.01, 0.01), refuted when wholly outside (two
//                one-sided tests, each at the interval's one side); with no direction, margin or
//                min_effect.
//   correlate:   "x_metric" against metric across trials (Kendall's tau).
//   threshold:   metric against "threshold".
//   interaction: "factor" (a dotted key) with "a" and "b" selectors as in compare, across x: how
//                much the b - a difference grows from the smallest x to the largest.
//   peak:        metric against x rises to an inner maximum and falls again (see verdict.h).
//                "mark": {"metric": m, "at_least" or "at_most": v} notes the smallest x whose
//                mean m crosses v (report: a vertical line), e.g. where training accuracy reaches
//                1, double descent's interpolation threshold.
//   within:      the x with the best mean metric against a range read from the trials of another
//                config: "bounds": {"config": "...", "lo": metric, "hi": metric, "where": {...}}
//                (medians over the bounds trials that match).
// Any test may have "where": {key: value or {"min": v, "max": v}} restricting the trials (an
// object with other keys, or none, is a value to equal: optim.lr_mult's map); a key
// is a dotted config key or, failing that, a metric. "diverged_as": v enters diverged trials
// with metric value v (stated in the verdict) instead of leaving them out.
// Metrics are looked up in a trial's summary, then its measures (a top Hessian eigenvalue whose
// power iteration did not converge, hessian_top_converged false, is missing); "diverged" (1 for a
// diverged trial, else 0) and "failed" (diverged, or a final training loss no better than chance,
// within kChanceTolerance of it or within what the class frequencies alone gain, (K - 1) / N;
// for a regression, which has no chance level, diverged) are defined for every trial that
// recorded a training loss, and "<split>_error" is 1 - "<split>_acc".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "claims/verdict.h"
#include "core/store.h"

namespace empiric::claims {

// A finished classifier's final training loss within this fraction below the chance loss (ln K)
// is no better than chance: it learned nothing ("failed").
constexpr double kChanceTolerance = 1e-3;

using json = nlohmann::json;

// Checks a claim's shape; a malformed one is a ConfigError naming `where` (file and pointer).
void check_claim(const json& claim, const std::string& where);

// The configs a claim reads trials from: its own, then its bounds' (within tests).
std::vector<std::string> claim_configs(const json& claim);

// Whether a condition's value is a range: a non-empty object with "min", "max" or both and no
// other key. Any other object (e.g. {} or {"body.1": 0} for optim.lr_mult) is a value to equal.
bool is_range(const json& want);

// A metric of a trial: its summary's, else its measures', else NaN; "diverged" and "failed" as
// above.
double metric_value(const TrialRecord& trial, const std::string& name);

struct ObservationSet {
  std::vector<Observation> observations;
  std::vector<size_t> sources;  // index into the trials of each observation
  json notes = json::object();  // e.g. which value best_over chose for each group
};

// The observations a claim's test needs, from the trials of its config (diverged ones marked).
// A compare leaves out the trials in neither group; "where" leaves out the trials it excludes.
ObservationSet observations_for(const json& claim, const std::vector<TrialRecord>& trials);

// `bound_trials` are the trials of a within test's bounds config.
Verdict evaluate(const json& claim, const std::vector<TrialRecord>& trials,
                 const std::vector<TrialRecord>& bound_trials = {});

// The value of a dotted key in a trial's config ("train.batch_size"), or NaN; a one-number list
// (model.widths = [64]) reads as that number.
double config_value(const json& config, const std::string& dotted);

}  // namespace empiric::claims
