// Reports a study group can read: qNNN/README.md (the question, what was claimed, what was done,
// what came out, what it does not show), one CSV per claim with the numbers behind its plot, the
// plots themselves (PNG, drawn by scripts/plot_report.py with the venv's matplotlib), and a
// README.md indexing every question's latest verdicts. The protocol's reports (the full preset,
// or none) live in reports/ and are committed; a smoke-test preset's (quick) in
// results/reports/<preset>/, beside the results store, so a quick answer never overwrites them.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
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
  // How many trials the claim's config (and the bounds config) make; those the store lacks are
  // not in `trials`, and the report says so.
  size_t expected = 0, bound_expected = 0;
};

// Where `preset`'s reports live under `home`: reports for "full" or "", else
// results/reports/<preset>.
std::string report_root(const std::string& home, const std::string& preset);

// Writes qNNN/ under report_root(home, preset); returns the README's path. `python` draws the plots
// (skipped with a note in the report when it is empty or fails). `options`: what follows `empiric
// report N` to write it again (--preset and the overrides, as the answer was given); without them,
// --preset `preset` where that is a config's preset.
std::string write_report(const std::string& home, const Question& q, const std::string& preset,
                         const std::vector<ClaimOutcome>& outcomes, Store& store,
                         const std::string& python,
                         const std::optional<std::string>& options = std::nullopt);

// report_root(home, preset)/README.md: every question with claims and its latest verdicts of that
// kind of preset (the protocol's, or that preset's) from the store; a question the store has no
// such verdict for keeps the rows the index already had (a store need not hold every question).
void write_report_index(const std::string& home, const Bank& bank, Store& store,
                        const std::string& preset);

}  // namespace empiric
