// The declared schema of a lab config: every section, every key it accepts, its type, default,
// allowed range or choices and a one-line doc. Validation, defaults, `empiric keys` and
// docs/CONFIG.md all come from this one declaration.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace empiric {

using json = nlohmann::json;

enum class FieldType {
  Int,
  Number,
  Bool,
  String,
  IntList,
  NumberList,
  StringList,
  NumberMap,
  Seeds
};

struct Field {
  std::string key;
  FieldType type;
  json default_value;         // null: no default (the key may stay absent)
  std::optional<double> min;  // inclusive bounds for numbers, list items and list lengths
  std::optional<double> max;
  std::vector<std::string> choices;  // for strings: the allowed values
  std::string doc;
  std::vector<std::string> only_for;  // names of the section's variants that use it; empty: all
};

struct Section {
  std::string name;
  std::string doc;
  std::string variant_key;  // e.g. "name" in data/model/optim; empty if none
  std::vector<Field> fields;
  const Field* find(const std::string& key) const;
};

// All sections of a lab config, in the order the docs list them. Top-level scalars (lab, question,
// title, description, seeds) form the section named "" .
const std::vector<Section>& config_schema();
const Section* find_section(const std::string& name);

// "a number in [0, 1]", "one of: sgd, adam", ...: what a field allows, for error messages.
std::string describe_allowed(const Field& field);

// The closest of `candidates` to `word` within a small edit distance, or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// "unknown key (did you mean "lr"?); allowed: name, lr, ...": the message for a key not in `known`.
std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known);

// A Markdown table of every key (docs/CONFIG.md is this output).
std::string schema_markdown();

}  // namespace empiric
