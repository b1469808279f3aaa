// The report writer on a tiny synthetic run: files exist, tables match the store, plots are PNGs.
#include "report/report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "claims/claim.h"
#include "core/errors.h"
#include "support/temp_dir.h"

namespace empiric {
namespace {

// A gzipped file's contents ("" if it cannot be read).
std::string gunzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return "";
  std::string out;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  gzclose(f);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A checkout in `home` with the plot script, and its results store.
Store report_home(testing::TempDir& home) {
  std::filesystem::create_directories(home.file("scripts"));
  std::filesystem::copy_file(std::string(EMPIRIC_SOURCE_DIR) + "/scripts/plot_report.py",
                             home.file("scripts/plot_report.py"));
  return Store(home.file("r.db"));
}

// The venv's python, or "" (no plots) when there is none.
std::string plot_python() {
  const std::string venv_python = std::string(EMPIRIC_SOURCE_DIR) + "/.venv/bin/python";
  return std::filesystem::exists(venv_python) ? venv_python : "";
}

// A finished trial put in `store` and read back, as a report reads it.
TrialRecord stored(Store& store, const std::string& hash, int seed, json config, json summary,
                   double wall_s = 0) {
  TrialRecord t;
  t.hash = hash + std::string(20, '0');
  t.status = "finished";
  t.seed = seed;
  t.config = std::move(config);
  t.summary = std::move(summary);
  t.measures = json::object();
  t.wall_s = wall_s;
  store.put_trial(t);
  return *store.trial(t.hash);
}

// A question of the bank, as a report is handed it.
Question question(int number, const std::string& text) {
  Question q;
  q.number = number;
  q.text = text;
  return q;
}

// A threshold claim on `metric` over the trials of `config`, as a report is handed it (trials
// to be added).
ClaimOutcome threshold_outcome(const std::string& id, const std::string& config,
                               const std::string& metric, const std::string& description) {
  ClaimOutcome o;
  o.claim = {
      {"id", id},
      {"statement", "s"},
      {"config", config},
      {"test", {{"kind", "threshold"}, {"metric", metric}, {"threshold", 0.0}, {"direction", 1}}}};
  o.resolved_config = {{"description", description}};
  return o;
}

TEST(Report, WritesReadmeCsvAndPlotsThatMatchTheStore) {
  testing::TempDir home;
  Store store = report_home(home);

  const Question q = question(99, "How does batch size affect generalization?");
  json claim = json::parse(
      R"({"id": "q99.t", "statement": "accuracy falls with batch size", "config": "configs/x.json",
    "test": {"kind": "trend", "x": "train.batch_size", "metric": "test_acc", "direction": -1, "min_effect": 0.3}})");
  ClaimOutcome o;
  o.claim = claim;
  // Resolved configs carry every section's defaults; the report shows the train lab's only.
  o.resolved_config = {{"description", "a tiny sweep"},
                       {"lab", "train"},
                       {"optim", {{"lr", 0.1}}},
                       // Today's defaults for how trials run; the report shows how they ran.
                       {"train", {{"population", "off"}, {"threads", 4}, {"batch_size", 32}}},
                       {"implicit", {{"problem", "least_squares"}}},
                       {"lottery", {{"rounds", 3}}}};
  int i = 0;
  for (int batch : {32, 256, 2048})
    for (int seed = 0; seed < 3; ++seed) {
      TrialRecord t;
      t.hash = "h" + std::to_string(i++) + std::string(20, '0');
      t.status = batch == 2048 && seed == 2 ? "diverged" : "finished";
      t.seed = seed;
      t.config = {{"train", {{"batch_size", batch}, {"population", "auto"}}}};
      // (Digits past the sixth: the claim's CSV keeps them.)
      t.summary = {{"test_acc", 0.9 - batch / 10000.0 + seed * 0.001 + seed * 1.23456789e-8},
                   {"compute_s", 2.0},
                   {"eval_s", 0.4}};
      if (batch == 32) t.summary["population"] = 3;
      // One run learned nothing: its final training loss is no better than guessing.
      if (batch == 2048 && seed == 1) t.summary.update({{"train_loss", 2.31}, {"chance_loss", 2.3026}});
      if (batch == 256 && seed == 1) t.summary.update({{"train_loss", 0.41}, {"chance_loss", 2.3026}});
      t.wall_s = 3.0;
      t.measures = json::object();
      store.put_trial(t);
      o.trials.push_back(*store.trial(t.hash));
    }
  {  // A trial that failed with an error measured nothing: neither finished nor diverged.
    TrialRecord t;
    t.hash = "failed" + std::string(20, '0');
    t.status = "failed";
    t.seed = 3;
    t.config = {{"train", {{"batch_size", 2048}, {"population", "auto"}}}};
    t.summary = {{"error", "out of memory"}};
    t.wall_s = 0.0;
    t.measures = json::object();
    store.put_trial(t);
    o.trials.push_back(*store.trial(t.hash));
  }
  o.verdict = claims::evaluate(claim, o.trials);
  const std::string python = plot_python();
  const bool have_python = !python.empty();
  std::string readme = write_report(home.path(), q, "quick", {o}, store, python);

  const std::string md = slurp(readme);
  EXPECT_NE(md.find("# Q99: How does batch size affect generalization?"), std::string::npos);
  EXPECT_NE(md.find("| q99.t | **" + o.verdict.verdict + "** |"), std::string::npos) << md;
  EXPECT_NE(md.find("10 trials (8 finished, 1 diverged, 1 failed with an error; 1 finished with "
                    "a training loss no better than chance (ln K)), 3 of them trained in "
                    "populations of up to 3, 27 s of "
                    "wall time in all (18 s of training steps, 3.6 s of evaluation)"),
            std::string::npos)
      << md;
  // The per-x table counts the diverged trial as diverged and the failed one as failed, and
  // takes the mean of the two finished ones (n).
  EXPECT_NE(md.find("| n | finished | diverged | failed |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2048 | 0.6957 | 0.0007071 | 2 | 2 | 1 | 1 |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 32 | 0.8978 | 0.001 | 3 | 3 | 0 | 0 |\n"), std::string::npos) << md;
  {  // A claim that enters diverged runs at a value: its table's means do too, as its test.
    ClaimOutcome entered = o;
    entered.claim["test"]["diverged_as"] = 0.0;
    entered.verdict = claims::evaluate(entered.claim, entered.trials);
    const std::string with = slurp(write_report(home.path(), q, "quick", {entered}, store, ""));
    EXPECT_NE(with.find("| 2048 | 0.4638 | "), std::string::npos)
        << with;  // (0.6952 + 0.6962 + 0) / 3
    EXPECT_NE(with.find("at the claim's `diverged_as` value (0)"), std::string::npos) << with;
    // No python given: the report is whole and says, once, at its end, why it has no plots.
    const std::string note = "\n*Some or all plots were not drawn: no python with matplotlib";
    EXPECT_EQ(with.rfind(note), with.find(note)) << with;
    EXPECT_NE(with.find(note), std::string::npos) << with;
    EXPECT_EQ(with.substr(with.size() - 3), ".*\n") << with;
    entered.claim["test"]["diverged_as"] = 0.1;  // three alike: a spread of 0, not 1.7e-17
    for (auto& t : entered.trials)
      if (t.config["train"]["batch_size"] == 2048 && t.status == "finished") t.status = "diverged";
    const std::string alike = slurp(write_report(home.path(), q, "quick", {entered}, store, ""));
    EXPECT_NE(alike.find("| 2048 | 0.1 | 0 | 3 | 0 | 3 | 1 |"), std::string::npos) << alike;
  }
  {  // A metric every trial has (diverged: 1 or 0): the table counts the diverged trial as 1, as
     // the test does (it left it out, reading 0 at 2048), and the failed one not at all.
    ClaimOutcome share = o;
    share.claim["test"] = {
        {"kind", "trend"}, {"x", "train.batch_size"}, {"metric", "diverged"}, {"direction", 1}};
    share.verdict = claims::evaluate(share.claim, share.trials);
    const std::string text = slurp(write_report(home.path(), q, "quick", {share}, store, ""));
    EXPECT_NE(text.find("| 2048 | 0.3333 | "), std::string::npos) << text;
    EXPECT_NE(text.find("| 32 | 0 | 0 | 3 | 3 | 0 | 0 |"), std::string::npos) << text;
  }
  {  // A compare of two named values is not "between the two ends" of x.
    ClaimOutcome named = o;
    named.claim["test"] = {{"kind", "compare"}, {"x", "train.batch_size"}, {"a", 32},
                           {"b", "max"},        {"metric", "test_acc"},    {"direction", 1}};
    named.verdict = claims::evaluate(named.claim, named.trials);
    std::string text = slurp(write_report(home.path(), q, "quick", {named}, store, ""));
    EXPECT_NE(text.find("between the two arms selected only (of `train.batch_size`, other values "
                        "not tested against them)"),
              std::string::npos)
        << text;
    named.claim["test"]["a"] = "min";
    named.verdict = claims::evaluate(named.claim, named.trials);
    text = slurp(write_report(home.path(), q, "quick", {named}, store, ""));
    EXPECT_NE(text.find("between the two ends of `train.batch_size` only"), std::string::npos)
        << text;
  }
  {  // A peak's caveat is a peak's (it printed the threshold kind's).
    ClaimOutcome peak = o;
    peak.claim["test"] = {
        {"kind", "peak"}, {"x", "train.batch_size"}, {"metric", "test_acc"}, {"direction", 1}};
    peak.verdict = claims::evaluate(peak.claim, peak.trials);
    const std::string text = slurp(write_report(home.path(), q, "quick", {peak}, store, ""));
    EXPECT_NE(text.find("A peak among the values of `train.batch_size` tried"), std::string::npos)
        << text;
    EXPECT_EQ(text.find("threshold chosen"), std::string::npos) << text;
  }
  EXPECT_NE(md.find("What it does not show"), std::string::npos);
  EXPECT_NE(md.find(R"("lr": 0.1)"), std::string::npos) << md;
  EXPECT_EQ(md.find(R"("implicit")"), std::string::npos) << md;
  EXPECT_NE(md.find(R"("population": "auto")"), std::string::npos) << md;
  EXPECT_EQ(md.find(R"("threads")"), std::string::npos) << md;
  EXPECT_EQ(md.find(R"("lottery")"), std::string::npos) << md;

  const std::string csv = slurp(home.file("results/reports/quick/q099/claim_q99_t.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 10);  // header + one row per trial
  EXPECT_NE(csv.find(",diverged,"), std::string::npos);
  {  // Every digit: each finished trial's y reads back as the very double in the store.
    std::map<std::string, double> stored;
    for (const auto& t : o.trials)
      if (t.status == "finished") stored[t.hash.substr(0, 12)] = t.summary["test_acc"];
    std::istringstream rows(csv);
    std::string line;
    std::getline(rows, line);
    int checked = 0;
    while (std::getline(rows, line)) {
      const std::string trial = line.substr(0, line.find(','));
      if (!stored.count(trial)) continue;
      EXPECT_EQ(std::stod(line.substr(line.rfind(',') + 1)), stored[trial]) << line;
      ++checked;
    }
    EXPECT_EQ(checked, 8);
  }
  if (!have_python) GTEST_SKIP() << "no .venv: plots not drawn (run scripts/setup.sh)";
  // The reports above, written without a python, removed the first one's figures (none is left
  // beside numbers it was not drawn from): this one draws them again.
  EXPECT_FALSE(std::filesystem::exists(home.file("results/reports/quick/q099/claim_q99_t.png")));
  write_report(home.path(), q, "quick", {o}, store, python);
  const std::string png = slurp(home.file("results/reports/quick/q099/claim_q99_t.png"));
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(md.find("plots were not drawn"), std::string::npos) << md;

  // A figure that cannot be drawn leaves the others drawn, and the report says which failed
  // and why (it stopped every later plot, and blamed a missing matplotlib).
  const std::string dir = home.file("results/reports/quick/q099");
  std::ofstream(dir + "/claim_q00_broken.json") << "{}";  // no kind: a KeyError
  std::ofstream(dir + "/claim_q00_broken.csv") << "trial,seed,status,x,group,y\n";
  std::filesystem::remove(dir + "/claim_q99_t.png");
  const std::string cmd = "'" + python + "' '" + home.file("scripts/plot_report.py") + "' '" + dir +
                          "' > /dev/null 2> '" + home.file("err.txt") + "'";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(slurp(home.file("err.txt")).find("claim_q00_broken.png"), std::string::npos)
      << slurp(home.file("err.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/claim_q99_t.png"));  // drawn after the broken one
}

TEST(Report, CtrlCWhileThePlotsAreDrawnStopsTheCommand) {
  // The script died of Ctrl-C, std::system ignored it in empiric, and the report said 0-2 of 4
  // figures were a report, exit 0.
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(9, "stopped");
  ClaimOutcome o = threshold_outcome("q9.t", "configs/x.json", "test_acc", "one trial");
  o.trials.push_back(stored(store, "i0", 0, json::object(), {{"test_acc", 0.5}}));
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string dir = home.file("results/reports/quick/q009");
  for (const char* exit_by : {"exit 130", "kill -INT $$", "exit 143"}) {
    const std::string python = home.file("python");
    std::ofstream(python) << "#!/bin/sh\n" << exit_by << "\n";
    std::filesystem::permissions(python, std::filesystem::perms::owner_all);
    // A figure of the report before: not left beside the new numbers, as if drawn from them.
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/claim_q9_t.png") << "an earlier report's figure";
    try {
      write_report(home.path(), q, "quick", {o}, store, python);
      ADD_FAILURE() << exit_by << ": no Interrupted";
    } catch (const Interrupted& e) {
      EXPECT_NE(std::string(e.what()).find("the verdicts are stored"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("`empiric report 9 --preset quick` draws them"),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/claim_q9_t.png")) << exit_by;
    EXPECT_NE(slurp(dir + "/README.md")
                  .find("*The plots were interrupted: some or all were not drawn (`empiric report "
                        "9 --preset quick` draws them).*"),
              std::string::npos)
        << exit_by;
  }
  {  // A report of overrides: the bare command would write another one.
    const std::string python = home.file("python");
    std::ofstream(python) << "#!/bin/sh\nexit 130\n";
    try {
      write_report(home.path(), q, "quick+overrides", {o}, store, python);
      ADD_FAILURE() << "no Interrupted";
    } catch (const Interrupted& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "`empiric report 9` with the same preset and overrides draws them"),
                std::string::npos)
          << e.what();
    }
  }
  const std::string python = home.file("python");
  std::ofstream(python) << "#!/bin/sh\nexit 1\n";  // a plot that failed is no interrupt
  EXPECT_NO_THROW(write_report(home.path(), q, "quick", {o}, store, python));
}

TEST(Report, SweptValuesReadWithEveryDigitAndShortRunsInTenthsOfASecond) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(9, "Why momentum?");
  ClaimOutcome o;
  o.claim = json::parse(R"({"id": "q9.m", "statement": "loss falls with momentum",
    "config": "configs/x.json", "test": {"kind": "trend", "x": "optim.momentum",
    "metric": "train_loss", "direction": -1}})");
  o.resolved_config = {{"lab", "train"}};
  int i = 0;
  for (double momentum : {0.9999, 0.99999})  // both read "1" at four digits
    for (int seed = 0; seed < 2; ++seed)
      o.trials.push_back(
          stored(store, "m" + std::to_string(i++), seed, {{"optim", {{"momentum", momentum}}}},
                 {{"train_loss", 1.0 - momentum + seed * 0.01}, {"compute_s", 0.05}}, 0.12));
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string md = slurp(write_report(home.path(), q, "quick", {o}, store, ""));
  EXPECT_NE(md.find("\n| 0.9999 | "), std::string::npos) << md;
  EXPECT_NE(md.find("\n| 0.99999 | "), std::string::npos) << md;
  // No failed trial: no failed column.
  EXPECT_NE(md.find("| std | n | finished | diverged |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("0.48 s of wall time in all (0.2 s of training steps)"), std::string::npos)
      << md;
  EXPECT_NE(md.find("*Effect*: Kendall's tau of `train_loss` against `optim.momentum` over pairs "
                    "of trials at different values (from -1, every pair falling, to 1); the claim "
                    "predicts it below 0."),
            std::string::npos)
      << md;
}

TEST(Report, AnEquivalenceSaysItsOwnLevelPerSide) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(34, "Why shuffle?");
  ClaimOutcome o;
  o.claim = json::parse(R"({"id": "q34.c", "statement": "a fixed order is as good",
    "config": "configs/x.json", "test": {"kind": "compare", "x": "train.order",
    "a": "reshuffle", "b": "fixed", "metric": "test_acc", "equivalence": 0.01, "level": 0.9}})");
  o.resolved_config = {{"lab", "train"}};
  int i = 0;
  for (const char* order : {"reshuffle", "fixed"})
    for (int seed = 0; seed < 3; ++seed)
      o.trials.push_back(stored(store, "e" + std::to_string(i++), seed,
                                {{"train", {{"order", order}}}},
                                {{"test_acc", 0.85 + 0.001 * seed}}));
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string md = slurp(write_report(home.path(), q, "quick", {o}, store, ""));
  EXPECT_NE(md.find("Equivalence is claimed within 0.01 either way"), std::string::npos) << md;
  EXPECT_NE(md.find("a 90 % interval so placed is two one-sided tests at 5 % each, no stricter "
                    "than the usual 5 %."),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("plus the claim's margin"), std::string::npos) << md;
  EXPECT_NE(md.find("*Effect*: the mean of arm b less the mean of arm a in `test_acc`; the claim "
                    "predicts it within (-0.01, 0.01), its whole interval too."),
            std::string::npos)
      << md;
  // A threshold's effect is its mean less the bar: the report gives the mean itself.
  o.claim["test"] = {
      {"kind", "threshold"}, {"metric", "test_acc"}, {"threshold", 0.9}, {"min_effect", 0.01}};
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string bar = slurp(write_report(home.path(), q, "quick", {o}, store, ""));
  EXPECT_NE(bar.find("*Effect*: the mean `test_acc` less the threshold 0.9 (the mean itself: "
                     "0.851); the claim predicts it above 0 (the mean above the threshold), by at "
                     "least 0.01 in the estimate."),
            std::string::npos)
      << bar;
}

TEST(Report, AnInteractionTabulatesEachArmAtEachValueNotTheArmsPooled) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(76, "Why do learning-rate schedules matter?");
  ClaimOutcome o;
  o.claim = json::parse(R"({"id": "q76.i", "statement": "warmup helps more at large batch",
    "config": "configs/x.json", "test": {"kind": "interaction", "x": "train.batch_size",
    "factor": "schedule.warmup_epochs", "a": "min", "b": "max", "metric": "test_acc",
    "direction": 1, "diverged_as": 0.1}})");
  o.resolved_config = {{"lab", "train"}};
  // How they ran: the threads per trial too (they order a matmul's sums).
  const long long run = store.begin_run(
      "empiric run", "configs/x.json", 76, "quick",
      store.put_environment({{"device", "cpu"}, {"cpu", "a cpu"}, {"torch_threads", 2}}));
  int i = 0;
  for (int batch : {32, 256})
    for (int warmup : {0, 1})
      for (int seed = 0; seed < 3; ++seed) {
        TrialRecord t;
        t.run_id = run;
        t.hash = "i" + std::to_string(i++) + std::string(20, '0');
        // At batch 256 without warmup one run diverges; the others reach 0.8 + a little.
        t.status = batch == 256 && warmup == 0 && seed == 0 ? "diverged" : "finished";
        t.seed = seed;
        t.config = {{"train", {{"batch_size", batch}}}, {"schedule", {{"warmup_epochs", warmup}}}};
        t.summary = {{"test_acc", 0.8 + 0.01 * warmup + 0.001 * seed}};
        t.measures = json::object();
        store.put_trial(t);
        o.trials.push_back(*store.trial(t.hash));
      }
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string md = slurp(write_report(home.path(), q, "quick", {o}, store, ""));
  EXPECT_NE(md.find("on cpu (a cpu), commit `?`, torch ?, 2 intra-op threads per trial."),
            std::string::npos)
      << md;
  // No table of the arms pooled per batch size (it averaged warmup and none together).
  EXPECT_EQ(md.find("| train.batch_size | mean test_acc | std |"), std::string::npos) << md;
  EXPECT_NE(md.find("at the claim's `diverged_as` value (0.1)"), std::string::npos) << md;
  // Each arm at each batch size, the diverged run entered at 0.1: (0.1 + 0.801 + 0.802) / 3.
  std::istringstream lines(md);
  int cells = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("| a: ", 0) == 0 || line.rfind("| b: ", 0) == 0) {
      ++cells;
      if (line.rfind("| a: ", 0) == 0 && line.find("| 256 |") != std::string::npos)
        EXPECT_NE(line.find("| 0.5677 | 3 | 1 |"), std::string::npos) << line;
      else
        EXPECT_NE(line.find(" | 3 | 0 |"), std::string::npos) << line;
    }
  EXPECT_EQ(cells, 4) << md;
}

TEST(Report, APairedCompareNamesItsArmsByTheirConditionsAndSaysItIsPaired) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(21, "How do you compare two models?");
  json claim = json::parse(
      R"({"id": "q21.p", "statement": "b below a", "config": "configs/x.json",
    "test": {"kind": "compare", "x": "model.widths", "a": {"model.widths": 100, "optim.name": "sgd"},
             "b": "max", "metric": "test_acc", "direction": -1, "paired": true, "margin": 0.001}})");
  ClaimOutcome o;
  o.claim = claim;
  o.resolved_config = {{"lab", "train"}};
  for (int width : {100, 300})
    for (int seed = 0; seed < 3; ++seed) {
      TrialRecord t;
      t.hash = "w" + std::to_string(width) + "s" + std::to_string(seed) + std::string(20, '0');
      t.status = "finished";
      t.seed = seed;
      t.config = {{"model", {{"widths", {width}}}}, {"optim", {{"name", "sgd"}}}};
      t.summary = {{"test_acc", 0.8 + 0.01 * seed - (width > 100 ? 0.005 : 0.0)}};
      t.measures = json::object();
      store.put_trial(t);
      o.trials.push_back(*store.trial(t.hash));
    }
  o.verdict = claims::evaluate(claim, o.trials);
  EXPECT_EQ(o.verdict.verdict, "supported") << o.verdict.reason;
  EXPECT_NEAR(o.verdict.effect, -0.004, 1e-12);  // b - a, -0.005, plus the margin
  write_report(home.path(), q, "quick", {o}, store, plot_python());
  const std::string readme = slurp(home.file("results/reports/quick/q021/README.md"));
  EXPECT_NE(readme.find("plus the claim's margin of 0.001"), std::string::npos);
  EXPECT_NE(readme.find("| b: model.widths = 300 (max) |  | 0.805 |"), std::string::npos)
      << readme;  // the arm's own mean, without the margin
  EXPECT_NE(readme.find("| a: model.widths = 100, optim.name = sgd |  | 0.81 |"),
            std::string::npos);
  const json meta = json::parse(slurp(home.file("results/reports/quick/q021/claim_q21_p.json")));
  EXPECT_EQ(meta["a_label"], "model.widths = 100, optim.name = sgd");
  EXPECT_EQ(meta["b_label"], "model.widths = 300 (max)");  // the value "max" came to
  EXPECT_EQ(meta["paired"], true);
  if (plot_python().empty()) GTEST_SKIP() << "no .venv: plots not drawn (run scripts/setup.sh)";
  EXPECT_GT(slurp(home.file("results/reports/quick/q021/claim_q21_p.png")).size(), 1000u);
}

TEST(Report, AnArmTunedOverASectionNamesOnlyWhatVaries) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(59, "L1 or L2?");
  json claim = json::parse(
      R"({"id": "q59.s", "statement": "b above a", "config": "configs/x.json",
    "test": {"kind": "compare", "x": "model.widths", "a": "min", "b": "max", "best_over": "optim",
             "metric": "test_acc", "direction": 1}})");
  ClaimOutcome o;
  o.claim = claim;
  o.resolved_config = {{"lab", "train"}};
  for (int width : {100, 300})
    for (double lr : {0.01, 0.1})
      for (int seed = 0; seed < 3; ++seed) {
        TrialRecord t;
        t.hash = fmt::format("s{}{}{}", width, lr, seed) + std::string(20, '0');
        t.status = "finished";
        t.seed = seed;
        t.config = {{"model", {{"widths", {width}}}},
                    {"optim", {{"name", "sgd"}, {"lr", lr}, {"momentum", 0.9}}}};
        t.summary = {{"test_acc", 0.8 + lr + 0.001 * seed + (width > 100 ? 0.01 : 0.0)}};
        t.measures = json::object();
        store.put_trial(t);
        o.trials.push_back(*store.trial(t.hash));
      }
  o.verdict = claims::evaluate(claim, o.trials);
  write_report(home.path(), q, "quick", {o}, store, "");
  const json meta = json::parse(slurp(home.file("results/reports/quick/q059/claim_q59_s.json")));
  // The whole section (name, momentum...) made a tick of hundreds of characters.
  EXPECT_EQ(meta["a_label"], "model.widths = 100 (min) (best optim {\"lr\":0.1})") << meta.dump();
}

TEST(Report, DrawsTheSurfacesAndLinesThatTrialsMeasured) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(98, "Why do flat minima generalize better?");
  ClaimOutcome o =
      threshold_outcome("q98.t", "configs/flat.json", "interp_rise_here", "surfaces and lines");
  for (int seed = 0; seed < 3; ++seed) {
    TrialRecord t;
    t.hash = "s" + std::to_string(seed) + std::string(20, '0');
    t.seed = seed;
    t.config = {{"train", {{"batch_size", 64}}}};
    t.summary = json::object();
    t.measures = {{"interp_rise_here", 0.1 * (seed + 1)},
                  {"surface", {{"n", 3}, {"span", 1.0},
                               {"loss", {2.0, 1.5, 2.0, 1.5, 0.1, 1.5, 2.0, 1.5, 2.0}}}},
                  {"interpolation", {{"t", {0.0, 1.0}}, {"train_loss", {0.1, 0.2}},
                                     {"test_loss", {0.3, 0.4}}, {"partner_batch", 512}}}};
    if (seed == 2) t.measures["interpolation"] = {{"partner_status", "diverged"}};
    store.put_trial(t);
    o.trials.push_back(*store.trial(t.hash));
  }
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string python = plot_python();
  const bool have_python = !python.empty();
  const std::string md = slurp(write_report(home.path(), q, "quick", {o}, store, python));
  EXPECT_NE(md.find("![surface_flat](surface_flat.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("![interpolation_flat](interpolation_flat.png)"), std::string::npos);
  json surfaces = json::parse(slurp(home.file("results/reports/quick/q098/surface_flat.json")));
  EXPECT_EQ(surfaces["items"].size(), 3u);
  EXPECT_EQ(surfaces["items"][1]["surface"]["loss"][4], 0.1);
  json lines = json::parse(slurp(home.file("results/reports/quick/q098/interpolation_flat.json")));
  EXPECT_EQ(lines["items"].size(), 2u) << "the trial whose partner failed has no line";
  if (!have_python) GTEST_SKIP() << "no .venv: plots not drawn (run scripts/setup.sh)";
  for (const char* png : {"results/reports/quick/q098/surface_flat.png",
                          "results/reports/quick/q098/interpolation_flat.png"})
    EXPECT_EQ(slurp(home.file(png)).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
}

TEST(Report, CurvesKeepLearningMetricsAtAlignedThinnedSteps) {
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(35, "long runs");
  ClaimOutcome o = threshold_outcome("q35.t", "configs/long.json", "test_acc",
                                     "3,000 recorded steps, one run stopped early");
  for (int seed = 0; seed < 3; ++seed) {
    TrialRecord t;
    t.hash = "l" + std::to_string(seed) + std::string(20, '0');
    t.seed = seed;
    t.config = json::object();
    t.axes = {{"lottery.control", seed == 1 ? "ticket" : "reinit"}};  // a quoted string
    t.summary = {{"test_acc", 0.5}};
    t.measures = json::object();
    store.put_trial(t);
    const long long last = seed == 2 ? 1001 : 3000;  // the third stopped early, off the stride
    for (long long step = 1; step <= last; ++step)
      store.put_metrics(t.hash, 0, step, {{"train_loss", 1.0 / step}, {"compute_s", 0.1}});
    o.trials.push_back(*store.trial(t.hash));
  }
  o.verdict = claims::evaluate(o.claim, o.trials);
  write_report(home.path(), q, "quick", {o}, store, "");
  // (Gzipped: the committed reports' curves were 35 MB plain.)
  EXPECT_FALSE(std::filesystem::exists(home.file("results/reports/quick/q035/curves_long.csv")));
  std::istringstream in(gunzipped(home.file("results/reports/quick/q035/curves_long.csv.gz")));
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::set<long long>> steps;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.find("compute_s"), std::string::npos) << "timings stay in the store";
    // The label is one CSV field: the quotes inside it doubled.
    EXPECT_NE(line.find(line[1] == '1' ? R"(,"control=""ticket""",)" : R"(,"control=""reinit""",)"),
              std::string::npos)
        << line;
    const auto step_at = line.find("\",") + 2;
    const long long step = std::stoll(line.substr(step_at, line.find(',', step_at) - step_at));
    steps[line.substr(0, 12)].insert(step);
    // Every digit of the stored value (the stream wrote 0.333333 for 1/3).
    EXPECT_EQ(std::stod(line.substr(line.rfind(',') + 1)), 1.0 / double(step)) << line;
  }
  ASSERT_EQ(steps.size(), 3u);
  const auto& full = steps["l00000000000"];
  EXPECT_LE(full.size(), 301u);
  EXPECT_GE(full.size(), 250u);
  EXPECT_TRUE(full.count(1) && full.count(3000)) << "the first and the last step";
  for (long long s : steps["l20000000000"])  // the same steps as the full runs, plus its last
    EXPECT_TRUE(full.count(s) || s == 1001) << s;
  EXPECT_TRUE(steps["l20000000000"].count(1001));
  // Thinned, the report says so: a claim about every step (Q31's rises) was read against curves
  // drawn from one evaluation in 11 without a word.
  const std::string md = slurp(home.file("results/reports/quick/q035/README.md"));
  EXPECT_NE(md.find("gzipped CSV; one recorded evaluation in 10 and each trial's last, of up to "
                    "3000 a trial: what happens between them is not drawn)"),
            std::string::npos)
      << md;
  EXPECT_EQ(json::parse(slurp(home.file("results/reports/quick/q035/curves_long.json")))["stride"],
            10);
}

TEST(Report, CurvesListEveryTrialWithTheEvaluationsItRecorded) {
  // A trial that diverged before its first evaluation wrote no curve: the plots' legends counted
  // "3 of 9 diverged" where 4 of 10 had, and an arm whose every seed diverged vanished.
  testing::TempDir home;
  Store store = report_home(home);
  const Question q = question(70, "clipping");
  ClaimOutcome o = threshold_outcome("q70.t", "configs/clip.json", "test_acc",
                                     "two LRs, the larger diverging at once");
  for (int i = 0; i < 4; ++i) {
    TrialRecord t;
    t.hash = "c" + std::to_string(i) + std::string(20, '0');
    t.seed = i % 2;
    t.status = i < 2 ? "finished" : "diverged";
    t.config = json::object();
    t.axes = {{"optim.lr", i < 2 ? 0.1 : 1.0}};
    t.summary = i < 2 ? json{{"test_acc", 0.8}} : json::object();
    t.measures = json::object();
    store.put_trial(t);
    if (i < 2)
      for (long long step = 1; step <= 3; ++step)
        store.put_metrics(t.hash, 0, step, {{"train_loss", 1.0 / step}, {"test_acc", 0.8}});
    o.trials.push_back(*store.trial(t.hash));
  }
  o.verdict = claims::evaluate(o.claim, o.trials);
  const std::string python = plot_python();
  write_report(home.path(), q, "quick", {o}, store, python);
  const std::string text = slurp(home.file("results/reports/quick/q070/curves_clip.json"));
  EXPECT_EQ(text.find("\"trials\""), text.rfind("\"trials\"")) << text;  // (once: no [] first)
  EXPECT_NE(
      text.find(
          "\n    {\"evaluations\":3,\"label\":\"lr=0.1\",\"seed\":0,\"status\":\"finished\"},\n"),
      std::string::npos)
      << text;  // a trial a line
  const json meta = json::parse(text);
  ASSERT_EQ(meta["trials"].size(), 4u);
  int curveless = 0;
  for (const auto& t : meta["trials"]) {
    EXPECT_EQ(t["evaluations"], t["status"] == "finished" ? 3 : 0) << t;
    curveless += t["label"] == "lr=1.0" && t["status"] == "diverged";
  }
  EXPECT_EQ(curveless, 2) << meta["trials"];
  EXPECT_EQ(meta["stride"], 1);
  const std::string md = slurp(home.file("results/reports/quick/q070/README.md"));
  EXPECT_NE(md.find("(gzipped CSV)"), std::string::npos) << md;  // nothing thinned
  if (python.empty()) GTEST_SKIP() << "no .venv: plots not drawn (run scripts/setup.sh)";
  EXPECT_TRUE(std::filesystem::exists(home.file("results/reports/quick/q070/curves_clip.png")));
  EXPECT_EQ(md.find("plots were not drawn"), std::string::npos) << md;
}

TEST(Report, IndexListsTheLatestVerdictsOfItsKindOfPreset) {
  testing::TempDir home;
  Store store(home.file("r.db"));
  store.put_verdict(99, "q99.t", "full", "supported",
                    {{"effect", -0.5}, {"lo", -0.9}, {"hi", -0.1}});
  store.put_verdict(99, "q99.t", "quick", "refuted", {{"effect", 0.5}, {"lo", 0.1}, {"hi", 0.9}});
  Bank bank;
  Question q;
  q.number = 99;
  q.claims = json::array({{{"id", "q99.t"}}});
  bank.questions.push_back(q);
  // The protocol's index (reports/) takes the full verdict though a quick one came later.
  write_report_index(home.path(), bank, store, "full");
  const std::string md = slurp(home.file("reports/README.md"));
  EXPECT_NE(
      md.find("| [Q99](q099/README.md) | q99.t | **supported** | -0.5 | [-0.9, -0.1] | full |"),
      std::string::npos)
      << md;
  EXPECT_EQ(md.find("refuted"), std::string::npos);
  // The quick preset's goes beside the store and takes the quick verdict.
  write_report_index(home.path(), bank, store, "quick");
  EXPECT_EQ(slurp(home.file("reports/README.md")), md);
  const std::string quick = slurp(home.file("results/reports/quick/README.md"));
  EXPECT_NE(quick.find("| q99.t | **refuted** | 0.5 | [0.1, 0.9] | quick |"), std::string::npos)
      << quick;
  EXPECT_NE(quick.find("Regenerate with `empiric report Q --preset quick`."), std::string::npos);
  // A tag is no preset to name: "--preset as-written" was refused ("no such preset").
  write_report_index(home.path(), bank, store, "as-written");
  const std::string written = slurp(home.file("results/reports/as-written/README.md"));
  EXPECT_NE(written.find("under `as-written` (not the protocol: configs as written whose full "
                         "preset differs). Regenerate with `empiric report Q`."),
            std::string::npos)
      << written;
  // A question with no report under the tag is no link to a folder that is not there.
  EXPECT_NE(written.find("| Q99 | – | not run yet |"), std::string::npos) << written;
  EXPECT_EQ(written.find("[Q99](q099/README.md)"), std::string::npos) << written;
}

TEST(Report, AStoreWithoutAQuestionKeepsItsRowsInTheIndex) {
  testing::TempDir home;
  Bank bank;
  for (int number : {97, 99}) {
    Question q;
    q.number = number;
    q.claims = json::array({{{"id", "q" + std::to_string(number) + ".t"}}});
    bank.questions.push_back(q);
  }
  {
    Store store(home.file("a.db"));  // Q99 answered in one store
    store.put_verdict(99, "q99.t", "full", "supported", {{"effect", -0.5}, {"lo", -0.9}, {"hi", -0.1}});
    write_report_index(home.path(), bank, store, "full");
  }
  Store other(home.file("b.db"));  // Q97 in another, which knows nothing of Q99
  other.put_verdict(97, "q97.t", "full", "refuted", {{"effect", 0.1}, {"lo", -0.2}, {"hi", 0.3}});
  write_report_index(home.path(), bank, other, "full");
  const std::string md = slurp(home.file("reports/README.md"));
  EXPECT_NE(md.find("| [Q97](q097/README.md) | q97.t | **refuted** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| [Q99](q099/README.md) | q99.t | **supported** | -0.5 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("not run yet"), std::string::npos) << md;
  // A row edited by hand to a number no question has (std::stoi threw: "internal error: stoi",
  // and the index was not written): left out.
  {
    std::ofstream(home.file("reports/README.md"), std::ios::app)
        << "| [Q99999999999](q.md) | x | **supported** | | | |\n";
  }
  write_report_index(home.path(), bank, other, "full");
  const std::string again = slurp(home.file("reports/README.md"));
  EXPECT_EQ(again.find("Q99999999999"), std::string::npos) << again;
  EXPECT_NE(again.find("| [Q99](q099/README.md) | q99.t | **supported** |"), std::string::npos);
}

}  // namespace
}  // namespace empiric
