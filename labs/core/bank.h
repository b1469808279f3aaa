// The question bank (questions/bank.json): 102 questions in 15 sections, each empirical or
// discussion, with the claims that link it to lab configs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace empiric {

using json = nlohmann::json;

struct BankSection {
  int number = 0;
  std::string title;
};

struct Question {
  int number = 0;
  int section = 0;
  std::string text;
  std::vector<std::string> tags;
  std::string kind;              // "empirical" | "discussion"
  std::vector<int> informed_by;  // empirical questions whose labs inform this one
  json claims = json::array();   // each: id, statement, config, test
};

struct Bank {
  std::vector<BankSection> sections;
  std::vector<Question> questions;
  json source;

  const Question* find(int number) const;
  const BankSection* section(int number) const;
};

// Loads and checks the bank; a malformed file is a ConfigError naming the JSON pointer.
Bank load_bank(const std::string& path);

}  // namespace empiric
