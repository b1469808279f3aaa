// A resolved trial config for tests: a base config's JSON with a patch merged over it. A "seed" in
// the patch becomes the trial's own seed (a config takes its trials' seeds from "seeds").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/config.h"

namespace empiric::testing {

inline nlohmann::json trial_from(const char* base, const std::string& patch,
                                 const std::string& source) {
  nlohmann::json doc = nlohmann::json::parse(base), p = nlohmann::json::parse(patch);
  const nlohmann::json seed = p.value("seed", nlohmann::json());
  p.erase("seed");
  doc.merge_patch(p);
  nlohmann::json cfg = expand_trials(resolve_config_json(doc, source, "", {})).at(0).config;
  if (!seed.is_null()) cfg["seed"] = seed;
  return cfg;
}

}  // namespace empiric::testing
