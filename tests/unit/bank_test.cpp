#include "core/bank.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

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

}  // namespace
}  // namespace empiric
