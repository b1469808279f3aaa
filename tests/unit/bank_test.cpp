#include "core/bank.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "claims/claim.h"
#include "core/config.h"
#include "core/errors.h"
#include "support/temp_dir.h"

namespace empiric {
namespace {

const std::string kBank = std::string(EMPIRIC_SOURCE_DIR) + "/questions/bank.json";

TEST(Bank, HasAll102QuestionsIn15Sections) {
  Bank bank = load_bank(kBank);
  EXPECT_EQ(bank.sections.size(), 15u);
  ASSERT_EQ(bank.questions.size(), 102u);
  std::set<int> sections_used;
  for (size_t i = 0; i < bank.questions.size(); ++i) {
    EXPECT_EQ(bank.questions[i].number, int(i) + 1);
    EXPECT_FALSE(bank.questions[i].text.empty());
    EXPECT_FALSE(bank.questions[i].tags.empty()) << "Q" << i + 1;
    sections_used.insert(bank.questions[i].section);
  }
  EXPECT_EQ(sections_used.size(), 15u);
  EXPECT_EQ(bank.find(99)->text, "How does batch size affect generalization?");
  EXPECT_EQ(bank.find(99)->kind, "empirical");
  EXPECT_EQ(bank.section(bank.find(99)->section)->title, "Master-Level Questions");
}

TEST(Bank, TextIsFreeOfMisdecodedCharacters) {
  std::ifstream in(kBank);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  // UTF-8 read as Mac Roman turns punctuation and emoji into these.
  for (const char* junk : {"\u201A", "\u00C4", "\u00D4", "\u220F", "\u221A", "\u00FC", "\u00EE",
                           "\u2260", "\u00C9", "\u00A3"})
    EXPECT_EQ(text.find(junk), std::string::npos) << "found " << junk;
  Bank bank = load_bank(kBank);
  EXPECT_NE(bank.find(17)->text.find("\u2014"),
            std::string::npos);  // "Random Forest vs Gradient Boosting — ..."
}

TEST(Bank, MalformedBankNamesThePointer) {
  testing::TempDir dir;
  std::string path =
      dir.write("bank.json", R"({"source": {}, "sections": [{"number": 1, "title": "A"}],
    "questions": [{"number": 1, "section": 2, "text": "x", "tags": [], "kind": "empirical"}]})");
  try {
    load_bank(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/questions/0/section = 2"), std::string::npos)
        << e.what();
  }
  path = dir.write("claims.json", R"({"source": {}, "sections": [{"number": 1, "title": "A"}],
    "questions": [{"number": 1, "section": 1, "text": "x", "tags": [], "kind": "empirical",
                   "claims": 5}]})");
  try {
    load_bank(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/questions/0/claims = 5: expected a list of claims"),
              std::string::npos)
        << e.what();
  }
}

TEST(Bank, AMissingFieldOrOneOfAnotherTypeIsNamedWhereItIs) {
  // Each once read as torch-free library text ("cannot use operator[] with a numeric argument",
  // "key 'sections' not found") at a pointer that did not exist or was not the field's.
  testing::TempDir dir;
  const std::string q =
      R"({"number": 1, "section": 1, "text": "x", "tags": [], "kind": "empirical"})";
  const std::string sections = R"("sections": [{"number": 1, "title": "A"}])";
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"source": {}, )" + sections + R"(, "questions": 5})",
            "bank.json: /questions = 5: expected a list"},
           {R"({"source": {}, "questions": []})", "bank.json: /sections: missing"},
           {R"({"source": {}, )" + sections + R"(, "questions": [{"number": "1", "section": 1,
              "text": "x", "tags": [], "kind": "empirical"}]})",
            "bank.json: /questions/0/number = \"1\": expected a whole number"},
           {R"({"source": {}, )" + sections + R"(, "questions": [{"number": 1.7, "section": 1,
              "text": "x", "tags": [], "kind": "empirical"}]})",
            "bank.json: /questions/0/number = 1.7: expected a whole number"},
           {R"({"source": {}, )" + sections + R"(, "questions": [{"number": 1, "section": 1,
              "text": "x", "tags": [], "kind": "empirical", "claims": [{"id": 5}]}]})",
            "bank.json: /questions/0/claims/0/id = 5: expected a claim id, a string"},
           {R"({"source": {}, )" + sections + R"(, "questions": [)" + q + R"(, null]})",
            "bank.json: /questions/1 = null: expected an object"},
           {R"({"source": {}, )" + sections + R"(, "questions": [{"number": 1, "section": 1,
              "text": "x", "tags": "x", "kind": "empirical"}]})",
            "bank.json: /questions/0/tags: malformed question bank: expected a value whose type "
            "must be array"}}) {
    const std::string path = dir.write("bank.json", text);
    try {
      load_bank(path);
      ADD_FAILURE() << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}

TEST(Bank, TwoClaimsOfOneIdAreRefused) {
  // Verdicts are found by claim id: two claims of one id would read each other's.
  testing::TempDir dir;
  const std::string claim =
      R"({"id": "q.a", "statement": "s", "config": "c.json", "test": {"kind": "threshold", "metric": "m", "threshold": 1}})";
  const std::string path = dir.write(
      "bank.json", R"({"source": {}, "sections": [{"number": 1, "title": "A"}], "questions": [
    {"number": 1, "section": 1, "text": "x", "tags": [], "kind": "empirical", "claims": [)" +
                       claim + R"(]},
    {"number": 2, "section": 1, "text": "y", "tags": [], "kind": "empirical", "claims": [)" +
                       claim + "]}]}");
  try {
    load_bank(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/questions/1/claims/0/id = \"q.a\": expected an id no "
                                         "other claim has"),
              std::string::npos)
        << e.what();
  }
}

// A config key of a claim's test (x, factor, a where or group condition) that no trial of its
// config has, or a value no trial takes, would leave the claim quietly inconclusive for want
// of trials. Checked for every shipped claim, on the full preset's trials (keys set by a lab
// while it runs, such as lottery.round above 0, and metric conditions are not config values).
TEST(Bank, EveryShippedClaimNamesKeysAndValuesItsConfigsTrialsHave) {
  Bank bank = load_bank(kBank);
  int claims_checked = 0;
  for (const auto& q : bank.questions) {
    for (const auto& c : q.claims) {
      const std::string id = c.value("id", std::string("?"));
      ASSERT_NO_THROW(claims::check_claim(c, "Q" + std::to_string(q.number))) << id;
      for (const auto& cfg : claims::claim_configs(c))
        for (const char* preset : {"quick", "full"})
          EXPECT_FALSE(
              expand_trials(resolve_config(std::string(EMPIRIC_SOURCE_DIR) + "/" + cfg, preset, {}))
                  .empty())
              << id << " " << cfg << " " << preset;
      const auto trials = expand_trials(resolve_config(
          std::string(EMPIRIC_SOURCE_DIR) + "/" + c["config"].get<std::string>(), "full", {}));
      auto value_of = [](const json& config, const std::string& dotted) {
        const json* node = &config;
        for (size_t start = 0;;) {
          const size_t dot = dotted.find('.', start);
          const std::string key =
              dotted.substr(start, dot == std::string::npos ? dotted.npos : dot - start);
          if (!node->is_object() || !node->contains(key)) return json();
          node = &(*node)[key];
          if (dot == std::string::npos) break;
          start = dot + 1;
        }
        if (node->is_array() && node->size() == 1 && (*node)[0].is_number()) return (*node)[0];
        return *node;
      };
      auto taken = [&](const std::string& key, const json& want) {
        for (const auto& t : trials) {
          const json v = value_of(t.config, key);
          if (v == want ||
              (v.is_number() && want.is_number() && v.get<double>() == want.get<double>()))
            return true;
        }
        return false;
      };
      auto check_key = [&](const std::string& key, const json* want) {
        if (key.find('.') == std::string::npos) return;  // a metric
        bool present = false;
        for (const auto& t : trials) present = present || !value_of(t.config, key).is_null();
        EXPECT_TRUE(present) << id << ": no trial of " << c["config"] << " has " << key;
        if (want && !claims::is_range(*want) && present && key != "lottery.round") {
          EXPECT_TRUE(taken(key, *want)) << id << ": no trial has " << key << " = " << want->dump();
        }
      };
      const json& t = c["test"];
      for (const char* k : {"x", "factor", "best_over"})
        if (t.contains(k)) check_key(t[k], nullptr);
      if (t.contains("where"))
        for (const auto& [key, want] : t["where"].items()) check_key(key, &want);
      const std::string group_key =
          t.value("kind", "") == "interaction" ? t.value("factor", "") : t.value("x", "");
      for (const char* side : {"a", "b"}) {
        if (!t.contains(side)) continue;
        if (t[side].is_object()) {
          for (const auto& [key, want] : t[side].items()) check_key(key, &want);
        } else if (!(t[side] == "min" || t[side] == "max")) {
          check_key(group_key, &t[side]);
        }
      }
      ++claims_checked;
    }
  }
  EXPECT_GE(claims_checked, 60);
}

}  // namespace
}  // namespace empiric
