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
  std::string ptr;  // the field being read: a type that does not fit is named there
  // obj[key] at `where`, which must be an object holding it.
  auto field = [&](const json& obj, const std::string& where, const char* key) -> const json& {
    if (!obj.is_object())
      throw ConfigError(path, where.empty() ? "/" : where, obj.dump().substr(0, 60),
                        "expected an object");
    ptr = where + "/" + key;
    if (!obj.contains(key))
      throw ConfigError(
          path, ptr, "",
          where.empty() ? "missing; the bank needs it" : "missing; every entry needs it");
    return obj[key];
  };
  auto list = [&](const json& obj, const std::string& where, const char* key) -> const json& {
    const json& v = field(obj, where, key);
    if (!v.is_array()) throw ConfigError(path, ptr, v.dump().substr(0, 60), "expected a list");
    return v;
  };
  try {
    bank.source = field(doc, "", "source");
    const json& sections = list(doc, "", "sections");
    for (size_t i = 0; i < sections.size(); ++i) {
      const std::string at = "/sections/" + std::to_string(i);
      const int number = field(sections[i], at, "number").get<int>();
      bank.sections.push_back({number, field(sections[i], at, "title").get<std::string>()});
    }
    const json& questions = list(doc, "", "questions");
    std::set<int> seen;
    std::set<std::string> claim_ids;
    for (size_t i = 0; i < questions.size(); ++i) {
      const std::string at = "/questions/" + std::to_string(i);
      const json& q = questions[i];
      Question out;
      for (const char* key : {"number", "section"})  // (get<int> would read 1.7 as 1)
        if (const json& v = field(q, at, key); !v.is_number_integer())
          throw ConfigError(path, ptr, v.dump(), "expected a whole number");
      out.number = field(q, at, "number").get<int>();
      out.section = field(q, at, "section").get<int>();
      out.text = field(q, at, "text").get<std::string>();
      out.tags = field(q, at, "tags").get<std::vector<std::string>>();
      out.kind = field(q, at, "kind").get<std::string>();
      ptr = at + "/informed_by";
      out.informed_by = q.value("informed_by", std::vector<int>{});
      ptr = at;
      out.claims = q.value("claims", json::array());
      if (!out.claims.is_array() || !std::all_of(out.claims.begin(), out.claims.end(),
                                                 [](const json& c) { return c.is_object(); }))
        throw ConfigError(path, at + "/claims", out.claims.dump().substr(0, 80),
                          "expected a list of claims (objects with id, statement, config, test)");
      if (out.kind != "empirical" && out.kind != "discussion")
        throw ConfigError(path, at + "/kind", json(out.kind).dump(),
                          "expected empirical or discussion");
      if (!bank.section(out.section))
        throw ConfigError(path, at + "/section", std::to_string(out.section),
                          "expected a section number listed in /sections");
      if (!seen.insert(out.number).second)
        throw ConfigError(path, at + "/number", std::to_string(out.number),
                          "expected a number not used before");
      // A claim's id names its verdicts: a string, and no other claim's (two claims of one id
      // would share them). The claims' other fields are checked where they are used
      // (claims::check_claim).
      for (size_t k = 0; k < out.claims.size(); ++k)
        if (!out.claims[k].contains("id") || !out.claims[k]["id"].is_string())
          throw ConfigError(path, at + "/claims/" + std::to_string(k) + "/id",
                            out.claims[k].value("id", json()).dump(),
                            "expected a claim id, a string (q99.a.gen_gap)");
        else if (!claim_ids.insert(out.claims[k]["id"].get<std::string>()).second)
          throw ConfigError(path, at + "/claims/" + std::to_string(k) + "/id",
                            out.claims[k]["id"].dump(), "expected an id no other claim has");
      bank.questions.push_back(std::move(out));
    }
  } catch (const json::type_error& e) {  // a field of another type than it needs
    std::string what = e.what();
    auto pos = what.find("type must be ");
    throw ConfigError(
        path, ptr, "",
        "malformed question bank: " +
            (pos == std::string::npos ? what : "expected a value whose " + what.substr(pos)));
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
