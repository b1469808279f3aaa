// Reports a study group can read: reports/qNNN/README.md (the question, what was claimed, what
// was done, what came out, what it does not show), one CSV per claim with the numbers behind its
// plot, the plots themselves (PNG, drawn by scripts/plot_report.py with the venv's matplotlib),
// and reports/README.md indexing every question's latest verdicts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "claims/verdict.h"
#include "core/bank.h"
#include "core/store.h"

namespace empiric {

struct ClaimOutcome {
  json claim;
  claims::Verdict verdict;
  std::vector<TrialRecord> trials;        // the trials of the claim's config and preset
  std::vector<TrialRecord> bound_trials;  // a within test's bounds config's trials
  json resolved_config;             // the config as run (base, with the sweep)
};

// Writes reports/qNNN/ under `home`; returns the README's path. `python` draws the plots (skipped
// with a note in the report when it is empty or fails).
std::string write_report(const std::string& home, const Question& q, const std::string& preset,
                         const std::vector<ClaimOutcome>& outcomes, Store& store,
                         const std::string& python);

// reports/README.md: every question with claims and its latest verdicts from the store.
void write_report_index(const std::string& home, const Bank& bank, Store& store);

}  // namespace empiric
