#include "core/bank.h"

#include <algorithm>
#include <set>

#include "core/config.h"
#include "core/errors.h"

namespace empiric {

const Question* Bank::find(int number) const {
  for (const auto& q : questions)
    if (q.number == number) return &q;
  return nullptr;
}

const BankSection* Bank::section(int number) const {
  for (const auto& s : sections)
    if (s.number == number) return &s;
  return nullptr;
}

Bank load_bank(const std::string& path) {
  json doc = load_json_file(path);
  Bank bank;
  std::string ptr;
  try {
    ptr = "/source";
    bank.source = doc.at("source");
    const json& sections = doc.at("sections");
    for (size_t i = 0; i < sections.size(); ++i) {
      ptr = "/sections/" + std::to_string(i);
      bank.sections.push_back(
          {sections[i].at("number").get<int>(), sections[i].at("title").get<std::string>()});
    }
    const json& questions = doc.at("questions");
    std::set<int> seen;
    std::set<std::string> claim_ids;
    for (size_t i = 0; i < questions.size(); ++i) {
      ptr = "/questions/" + std::to_string(i);
      const json& q = questions[i];
      Question out;
      out.number = q.at("number").get<int>();
      out.section = q.at("section").get<int>();
      out.text = q.at("text").get<std::string>();
      out.tags = q.at("tags").get<std::vector<std::string>>();
      out.kind = q.at("kind").get<std::string>();
      out.informed_by = q.value("informed_by", std::vector<int>{});
      out.claims = q.value("claims", json::array());
      if (!out.claims.is_array() || !std::all_of(out.claims.begin(), out.claims.end(),
                                                 [](const json& c) { return c.is_object(); }))
        throw ConfigError(path, ptr + "/claims", out.claims.dump().substr(0, 80),
                          "expected a list of claims (objects with id, statement, config, test)");
      if (out.kind != "empirical" && out.kind != "discussion")
        throw ConfigError(path, ptr + "/kind", json(out.kind).dump(),
                          "expected empirical or discussion");
      if (!bank.section(out.section))
        throw ConfigError(path, ptr + "/section", std::to_string(out.section),
                          "expected a section number listed in /sections");
      if (!seen.insert(out.number).second)
        throw ConfigError(path, ptr + "/number", std::to_string(out.number),
                          "expected a number not used before");
      // Verdicts are stored and found by claim id: two claims of one id would share them.
      for (size_t k = 0; k < out.claims.size(); ++k)
        if (out.claims[k].contains("id") && out.claims[k]["id"].is_string() &&
            !claim_ids.insert(out.claims[k]["id"].get<std::string>()).second)
          throw ConfigError(path, ptr + "/claims/" + std::to_string(k) + "/id",
                            out.claims[k]["id"].dump(), "expected an id no other claim has");
      bank.questions.push_back(std::move(out));
    }
  } catch (const json::exception& e) {
    std::string what = e.what();
    auto pos = what.find("] ");
    throw ConfigError(
        path, ptr, "",
        "malformed question bank: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  return bank;
}

}  // namespace empiric
