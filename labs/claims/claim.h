// Claims as the question bank states them, evaluated on the trials of their config.
//
// A claim (questions/bank.json, a question's "claims"):
//   {"id": "q99.a.test_acc", "statement": "...", "config": "configs/q99_same_epochs.json",
//    "test": {"kind": "trend", "x": "train.batch_size", "metric": "test_acc", "direction": -1,
//             "min_effect": 0.3}}
//   trend:     x (a dotted config key that the sweep varies) against metric.
//   compare:   "a" and "b" select trials by x: "min" or "max" of x, or a value; the effect is
//              mean(metric | b) - mean(metric | a) + margin ("margin": 0.01 states "b is not worse
//              than a by more than 0.01").
//   correlate: "x_metric" against metric across trials (Kendall's tau).
//   threshold: metric against "threshold".
//   Metrics are looked up in a trial's summary, then its measures.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "claims/verdict.h"
#include "core/store.h"

namespace empiric::claims {

using json = nlohmann::json;

// Checks a claim's shape; a malformed one is a ConfigError naming `where` (file and pointer).
void check_claim(const json& claim, const std::string& where);

// A metric of a trial: its summary's, else its measures', else NaN.
double metric_value(const TrialRecord& trial, const std::string& name);

// The observations a claim's test needs, from the trials of its config (diverged ones marked).
// When `sources` is given, it receives the index into `trials` of each observation (a compare
// leaves out the trials at neither end).
std::vector<Observation> observations_for(const json& claim, const std::vector<TrialRecord>& trials,
                                          std::vector<size_t>* sources = nullptr);

Verdict evaluate(const json& claim, const std::vector<TrialRecord>& trials);

// The value of a dotted key in a trial's config ("train.batch_size"), or NaN.
double config_value(const json& config, const std::string& dotted);

}  // namespace empiric::claims
