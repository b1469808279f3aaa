// `empiric run` end to end, through the real binary: resume, divergence, errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/config.h"
#include "core/store.h"
#include "support/temp_dir.h"
#include "support/tiny_idx.h"

namespace empiric {
namespace {

struct Result {
  int code;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `empiric --home HOME --db DIR/r.db ARGS`, its output kept in DIR.
Result empiric(const testing::TempDir& dir, const std::string& args,
               const std::string& home = EMPIRIC_SOURCE_DIR) {
  std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + home + " --db " + dir.file("r.db") +
                    " " + args + " > " + dir.file("out.txt") + " 2> " + dir.file("err.txt");
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir.file("out.txt")),
          slurp(dir.file("err.txt"))};
}

// `empiric run CFG` in a child process (stdout discarded, stderr kept), to be killed midway.
pid_t spawn_run(const testing::TempDir& dir, const std::string& cfg,
                const std::vector<std::string>& more = {}) {
  std::string db = dir.file("r.db"), err = dir.file("child_err.txt");
  std::vector<std::string> args = {"empiric", "--db", db, "run", cfg};
  args.insert(args.end(), more.begin(), more.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    int errfd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(devnull, 1);
    dup2(errfd, 2);
    execv(EMPIRIC_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

// Polls `ready` every 20 ms until it holds, lets the child run `settle_us` more, then kills it
// (with `sig`; its wait status into *status where given).
// Returns "" when it held while the child still ran, or why not: the child ended first (with its
// stderr), or ten minutes passed (a loaded machine is slow, not wrong; ctest's own timeout is
// fifteen minutes).
template <class Ready>
std::string kill_when(pid_t pid, const testing::TempDir& dir, Ready ready, useconds_t settle_us = 0,
                      int sig = SIGKILL, int* status = nullptr) {
  std::string why = "the child did not get there in 600 s";
  for (int i = 0; i < 30000; ++i) {
    usleep(20000);
    if (ready()) {
      why.clear();
      usleep(settle_us);
      break;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return "the child ended first (exit " +
             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
             "): " + slurp(dir.file("child_err.txt"));
  }
  kill(pid, sig);
  waitpid(pid, status, 0);
  return why;
}

const char* kSweep = R"({
  "question": 99,
  "data": {"name": "blobs", "n_train": 256, "n_test": 128, "classes": 3, "dim": 4, "noise": 1.0},
  "model": {"name": "mlp", "widths": [16]},
  "optim": {"name": "sgd", "lr": 0.1},
  "train": {"epochs": 3, "batch_size": 32},
  "sweep": {"optim.lr": [0.1, 0.03]},
  "seeds": 2
})";

TEST(Sweep, RunsEveryTrialOnceAndSkipsThemOnRerun) {
  testing::TempDir dir;
  std::string cfg = dir.write("lab.json", kSweep);
  Result first = empiric(dir, "run " + cfg);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("4 trials: 4 finished, 0 diverged"), std::string::npos) << first.out;
  Result again = empiric(dir, "run " + cfg);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("4 already in"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("0 to run"), std::string::npos) << again.out;
  Store store(dir.file("r.db"));
  auto trials = store.trials(99);
  EXPECT_EQ(trials.size(), 4u);
  // Buffered evaluations all reach the store: one per epoch end (3), each with its metrics.
  std::set<long long> steps;
  for (const auto& m : store.metrics(trials[0].hash)) steps.insert(m.step);
  EXPECT_EQ(steps, (std::set<long long>{8, 16, 24}));
  const Result forced = empiric(dir, "run " + cfg + " --force");
  EXPECT_NE(forced.out.find("0 already in " + dir.file("r.db") + ", 4 to run"), std::string::npos)
      << forced.out;  // --force runs what the store has again
  EXPECT_EQ(Store(dir.file("r.db")).trials(99).size(), 4u);
}

TEST(Cli, ResultsOfOnePresetAreTheTrialsItsConfigMakesWithIt) {
  // A store holding a config's quick and full trials could not list one preset's: the axes and
  // the config file are the same for both.
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["train"]["epochs"] = 1;
  doc["presets"] = {{"quick", {{"sweep", {{"optim.lr", {0.1}}}}, {"seeds", 1}}},
                    {"full", json::object()}};
  const std::string cfg = dir.write("lab.json", doc.dump());
  ASSERT_EQ(empiric(dir, "run " + cfg + " --preset quick --no-progress").code, 0);
  ASSERT_EQ(empiric(dir, "run " + cfg + " --preset full --no-progress").code, 0);
  auto rows = [&](const std::string& args) {
    const Result r = empiric(dir, "results --format csv " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return std::count(r.out.begin(), r.out.end(), '\n') - 1;  // less the header
  };
  EXPECT_EQ(rows(""), 4);
  EXPECT_EQ(rows("--preset full"), 4);
  EXPECT_EQ(rows("--preset quick"), 1);  // (one of full's four, made by quick too)
  EXPECT_EQ(rows("--preset quick --question 99"), 1);
  const Result none = empiric(dir, "results --preset fast");  // (a typo: bad input)
  EXPECT_EQ(none.code, 2) << none.err;
  EXPECT_NE(none.err.find("not listed: " + cfg + "'s trials ("), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("empiric: --preset fast: none of the listed trials' configs resolves "
                          "with it (" +
                          cfg + ": /presets = \"fast\": no such preset"),
            std::string::npos)
      << none.err;
  // A store made in another checkout names a config path that is not here: the config of that
  // name under --home is read (its hashes tell whether it is the same config).
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.file("r.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE trials SET config_file = '/elsewhere/configs/lab.json'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    std::filesystem::create_directories(dir.file("home/configs"));
    std::filesystem::copy_file(cfg, dir.file("home/configs/lab.json"));
    const std::string out = dir.file("moved.txt");
    ASSERT_EQ(std::system((std::string(EMPIRIC_BINARY) + " --home " + dir.file("home") + " --db " +
                           dir.file("r.db") + " results --format csv --preset quick > " + out)
                              .c_str()),
              0);
    const std::string moved = slurp(out);
    EXPECT_EQ(std::count(moved.begin(), moved.end(), '\n') - 1, 1) << moved;
  }
}

TEST(Sweep, APopulationStoresEveryMemberAsTheTrialItWouldBeAlone) {
  testing::TempDir solo_dir, pop_dir;
  json doc = json::parse(kSweep);
  doc["model"]["dropout"] = 0.0;
  doc["sweep"]["model.dropout"] = {0.0, 0.1};  // the dropout trials cannot join a population
  std::string cfg = pop_dir.write("lab.json", doc.dump());
  Result alone = empiric(solo_dir, "run " + cfg);
  ASSERT_EQ(alone.code, 0) << alone.err;
  Result together = empiric(pop_dir, "run " + cfg + " train.population=auto");
  ASSERT_EQ(together.code, 0) << together.err;
  EXPECT_NE(together.out.find("population: 4 of 8 trials train in 1 batched population(s)"),
            std::string::npos)
      << together.out;
  EXPECT_NE(together.out.find("some trials train alone: model.dropout > 0"), std::string::npos);
  auto solo = Store(solo_dir.file("r.db")).trials(99), pop = Store(pop_dir.file("r.db")).trials(99);
  ASSERT_EQ(pop.size(), 8u);
  int batched = 0;
  for (const auto& t : pop) {
    auto it = std::find_if(solo.begin(), solo.end(),
                           [&](const TrialRecord& r) { return r.hash == t.hash; });
    ASSERT_NE(it, solo.end());  // the same trial identity
    batched += t.summary.contains("population");
    EXPECT_NEAR(t.summary["train_loss"].get<double>(), it->summary["train_loss"].get<double>(),
                1e-4);
    EXPECT_FALSE(Store(pop_dir.file("r.db")).metrics(t.hash).empty());
  }
  EXPECT_EQ(batched, 4);
}

TEST(Sweep, LateJitterAndRisesAreRecordedFromTheStoredCurveAloneOrInAPopulation) {
  testing::TempDir solo_dir, pop_dir;
  std::string cfg = pop_dir.write("lab.json", kSweep);
  // 24 steps evaluated every 2: six changes in the second half.
  for (auto* dir : {&solo_dir, &pop_dir}) {
    Result r = empiric(*dir, "run " + cfg + " train.eval_every_steps=2 train.population=" +
                                 (dir == &solo_dir ? "off" : "auto"));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  auto solo = Store(solo_dir.file("r.db")).trials(99), pop = Store(pop_dir.file("r.db")).trials(99);
  ASSERT_EQ(pop.size(), 4u);
  for (const auto& t : pop) {
    auto it = std::find_if(solo.begin(), solo.end(),
                           [&](const TrialRecord& r) { return r.hash == t.hash; });
    ASSERT_NE(it, solo.end());
    ASSERT_TRUE(t.summary.contains("test_loss_jitter")) << t.summary.dump();
    EXPECT_EQ(t.summary["test_loss_jitter"].get<double>(),
              late_jitter(Store(pop_dir.file("r.db")).metrics(t.hash), "test_loss"));
    EXPECT_GT(t.summary["test_loss_jitter"].get<double>(), 0.0);
    EXPECT_NEAR(t.summary["test_loss_jitter"].get<double>(),
                it->summary["test_loss_jitter"].get<double>(), 1e-4);
    EXPECT_FALSE(t.summary.contains("val_loss_jitter"));  // no validation split
    // And the training loss's rises between evaluations, from the same stored curve.
    const Rises r = rises(Store(pop_dir.file("r.db")).metrics(t.hash), "train_loss");
    ASSERT_TRUE(t.summary.contains("train_loss_rise_frac")) << t.summary.dump();
    EXPECT_EQ(t.summary["train_loss_rises"].get<long long>(), r.count);
    EXPECT_EQ(t.summary["train_loss_rise_frac"].get<double>(), r.fraction);
    // The solo run's count: the same to float rounding (a change within it could flip one).
    EXPECT_LE(std::abs(t.summary["train_loss_rises"].get<long long>() -
                       it->summary["train_loss_rises"].get<long long>()),
              1);
  }
}

TEST(Sweep, ABatchLargerThanTheDataIsNotedOnceAloneOrInAPopulation) {
  for (const std::string population : {"1", "auto"}) {
    testing::TempDir dir;
    std::string cfg = dir.write("lab.json", kSweep);
    Result r = empiric(
        dir, "run " + cfg + " --no-progress train.batch_size=512 train.population=" + population);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string note =
        "/train/batch_size = 512: there are only 256 training examples; each step takes all";
    const size_t at = r.err.find(note);
    EXPECT_NE(at, std::string::npos) << population << "\n" << r.err;
    EXPECT_EQ(r.err.find(note, at + 1), std::string::npos) << population << "\n" << r.err;
  }
}

TEST(Bench, ASuitesOptionGivenToTheOtherSuiteIsRefusedNotIgnored) {
  // `--suite training --json x.json` wrote no JSON and said nothing; `--members` went unread by
  // the kernels suite.
  testing::TempDir dir;
  Result json_file = empiric(dir, "bench --suite training --json " + dir.file("x.json"));
  EXPECT_EQ(json_file.code, 2);
  EXPECT_NE(json_file.err.find("empiric: bench --json: an option of the kernels suite, not of "
                               "--suite training; allowed with it: --config, --members"),
            std::string::npos)
      << json_file.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("r.db")));  // nothing ran
  Result members = empiric(dir, "bench --members 4");
  EXPECT_EQ(members.code, 2);
  EXPECT_NE(members.err.find("bench --members: an option of the training suite, not of --suite "
                             "kernels; allowed with it: --filter, --repetitions, --binary, --json"),
            std::string::npos)
      << members.err;
}

TEST(Bench, TheTrainingSuiteStoresSingleSequentialAndPopulationsRecords) {
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc.erase("sweep");
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r = empiric(dir, "bench --suite training --config " + cfg +
                              " --members 3 --epochs 2 --batch 32 --no-peers");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("population of 3:"), std::string::npos) << r.out;
  auto records = Store(dir.file("r.db")).bench_records(101);
  ASSERT_EQ(records.size(), 4u);
  std::set<std::string> names;
  for (const auto& b : records) {
    names.insert(b.name);
    EXPECT_EQ(b.questions, (std::vector<int>{95, 99, 101}));
    EXPECT_GT(b.items_per_s, 0);
    // The achieved rate is the model's training FLOPs per example times the examples per second.
    // The 4-16-3 MLP: forward 2 x 64 + 16 and 2 x 48 + 3 (products, bias adds); backward the
    // same weight and bias gradients, and an input gradient (2 x 48) for the second layer only.
    const double per_example = b.counters["gflops_per_s"].get<double>() * 1e9 / b.items_per_s;
    EXPECT_NEAR(per_example, (144 + 99) + (144 + 99 + 96), 1e-6) << b.name;
    if (b.name == "training/empiric/population") {
      EXPECT_EQ(b.counters["models"], 3);
      EXPECT_LT(b.counters["largest_member_test_acc_difference"].get<double>(), 0.02);
    }
    if (b.name == "training/empiric/population-own-lrs") {
      EXPECT_GT(b.counters["test_acc"].get<double>(), 0.3);  // they learned (4 classes)
    }
  }
  EXPECT_EQ(names, (std::set<std::string>{"training/empiric/single", "training/empiric/sequential",
                                          "training/empiric/population",
                                          "training/empiric/population-own-lrs"}));
  // `show` gives their time per model-epoch in seconds (it printed them as microseconds and GB/s).
  const std::string shown = empiric(dir, "show 101").out;
  EXPECT_NE(shown.find("training/empiric/population "), std::string::npos) << shown;
  EXPECT_NE(shown.find(" s per model-epoch"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("GB/s"), std::string::npos) << shown;
  // A config with a sweep is refused with its grid size.
  Result swept = empiric(dir, "bench --suite training --config " + dir.write("s.json", kSweep) +
                                  " --members 2 --no-peers");
  EXPECT_NE(swept.code, 0);
  EXPECT_NE(swept.err.find("without a sweep"), std::string::npos) << swept.err;
}

// A stand-in interpreter for the PyTorch peers (EMPIRIC_PYTHON): a shell script with `body`.
std::string peer_stand_in(const testing::TempDir& dir, const std::string& body) {
  const std::string python = dir.write("python.sh", "#!/bin/sh\n" + body);
  std::filesystem::permissions(python, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  return python;
}

// The peer's recipe on the tiny data in dir: SGD with momentum 0.9 and a cosine schedule (its
// validation split and data directory are passed on).
json peer_recipe(const testing::TempDir& dir) {
  return {{"data", {{"name", "fashion_mnist"}, {"path", dir.path()}, {"validation", 16}}},
          {"model", {{"name", "lenet_300_100"}}},
          {"optim", {{"name", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}}},
          {"schedule", {{"name", "cosine"}}},
          {"train", {{"epochs", 1}, {"batch_size", 32}}}};
}

TEST(Bench, TheTrainingSuiteSetsEachRunBesideEachPeer) {
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 128, 64);
  // The peers' lines as bench/peers/lenet_fmnist.py prints them.
  const std::string python = peer_stand_in(
      dir,
      "echo '{\"peer\": \"pytorch-python-tensor\", \"epoch_s\": 0.5, \"test_acc\": 0.5}'\n"
      "echo '{\"peer\": \"pytorch-python-ensemble2\", \"members\": 2, \"epoch_s\": 0.25, "
      "\"test_acc\": 0.5}'\n");
  const std::string cfg = dir.write("lenet.json", peer_recipe(dir).dump());
  setenv("EMPIRIC_PYTHON", python.c_str(), 1);
  Result r = empiric(dir, "bench --suite training --config " + cfg + " --members 2 --epochs 2");
  unsetenv("EMPIRIC_PYTHON");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--validation 16 --data '" + dir.path() + "'"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("empiric against each peer"), std::string::npos) << r.out;
  std::map<std::string, BenchRecord> by_name;
  for (const auto& b : Store(dir.file("r.db")).bench_records(99)) by_name[b.name] = b;
  ASSERT_TRUE(by_name.count("training/peer/pytorch-python-tensor")) << r.out;
  ASSERT_TRUE(by_name.count("training/peer/pytorch-python-ensemble2")) << r.out;
  // A peer's rate: 2 epochs x its models over its 2 epochs' time (1 model at 0.5 s an epoch: 2
  // models x epochs a second; 2 models at 0.25 s: 8). Each empiric run's rate over it is stored.
  for (const char* run : {"training/empiric/single", "training/empiric/population"}) {
    ASSERT_TRUE(by_name.count(run)) << r.out;
    const json& c = by_name[run].counters;
    const double rate = c.at("models_epochs_per_s").get<double>();
    EXPECT_NEAR(c.at("vs_peers").at("pytorch-python-tensor").get<double>(), rate / 2.0, 1e-9 * rate)
        << run;
    EXPECT_NEAR(c.at("vs_peers").at("pytorch-python-ensemble2").get<double>(), rate / 8.0,
                1e-9 * rate)
        << run;
    // And its test accuracy less the peers' 0.5.
    EXPECT_NEAR(c.at("test_acc_vs_peers").at("pytorch-python-tensor").get<double>(),
                c.at("test_acc").get<double>() - 0.5, 1e-12)
        << run;
  }
  EXPECT_FALSE(by_name["training/peer/pytorch-python-tensor"].counters.contains("vs_peers"));
  // Members at their own LRs are timed against the peers, but their accuracy is not the peers'
  // recipe's: no accuracy difference is stored or printed for them.
  const json& own = by_name["training/empiric/population-own-lrs"].counters;
  EXPECT_TRUE(own.contains("vs_peers"));
  EXPECT_FALSE(own.contains("test_acc_vs_peers"));
  EXPECT_NE(r.out.find("(LRs)"), std::string::npos) << r.out;
}

TEST(Bench, APeerThatFailsOrTrainsOtherWorkCostsNoRecordOfEmpirics) {
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 128, 64);
  // A peer that prints one good row, one without its numbers, then fails.
  const std::string python = peer_stand_in(
      dir,
      "echo '{\"peer\": \"pytorch-python-tensor\", \"epoch_s\": 0.5, \"test_acc\": 0.5}'\n"
      "echo '{\"peer\": \"pytorch-python-ensemble2\", \"members\": 2}'\n"
      "echo 'CUDA out of memory' >&2\n"
      "exit 3\n");
  json doc = peer_recipe(dir);
  setenv("EMPIRIC_PYTHON", python.c_str(), 1);
  Result r = empiric(dir, "bench --suite training --config " + dir.write("a.json", doc.dump()) +
                              " --members 2 --epochs 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("peer line skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exited with status 3; 1 peer row(s) kept"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CUDA out of memory"), std::string::npos) << r.err;
  std::set<std::string> names;
  for (const auto& b : Store(dir.file("r.db")).bench_records(99)) names.insert(b.name);
  EXPECT_EQ(names, (std::set<std::string>{"training/empiric/single", "training/empiric/sequential",
                                          "training/empiric/population",
                                          "training/empiric/population-own-lrs",
                                          "training/peer/pytorch-python-tensor"}));

  // Weight decay the peer does not train with: no peer runs, and the key is named.
  doc["optim"]["weight_decay"] = 5e-4;
  testing::TempDir store2;
  Result other = empiric(store2, "bench --suite training --config " +
                                     dir.write("b.json", doc.dump()) + " --members 2 --epochs 1");
  unsetenv("EMPIRIC_PYTHON");
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_NE(other.err.find("optim.weight_decay = 0.0005 (the peer's: 0)"), std::string::npos)
      << other.err;
  for (const auto& b : Store(store2.file("r.db")).bench_records(99))
    EXPECT_EQ(b.name.rfind("training/peer/", 0), std::string::npos) << b.name;
}

TEST(Bench, TheTrainingSuiteProfilesAWindowOfStepsOfEachRun) {
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc.erase("sweep");
  std::string cfg = dir.write("lab.json", doc.dump());
  // Batch 4: 64 steps an epoch, so the window (from step 32) closes at the epoch's last step.
  Result r = empiric(dir, "bench --suite training --config " + cfg + " --members 2 --batch 4 " +
                              "--no-peers --profile " + dir.file("profile.md"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string md = slurp(dir.file("profile.md"));
  const size_t single = md.find("### one model: steps 32 to 64"),
               population = md.find("### a population of 2: steps 32 to 64");
  ASSERT_NE(single, std::string::npos) << md;
  ASSERT_NE(population, std::string::npos) << md;
  // One model's layers are addmm's; the population's, batched over members, baddbmm's.
  const std::string one = md.substr(single, population - single), many = md.substr(population);
  EXPECT_NE(one.find("| `aten::addmm` | 2.00 |"), std::string::npos) << one;
  EXPECT_EQ(one.find("aten::baddbmm"), std::string::npos) << one;
  EXPECT_NE(many.find("| `aten::baddbmm` | 2.00 |"), std::string::npos) << many;
}

TEST(Bench, ACudaProfileListsTheKernelsOfEachStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA GPU visible to torch";
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc.erase("sweep");
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r =
      empiric(dir, "bench --suite training --device cuda --config " + cfg +
                       " --members 2 --batch 4 --no-peers --profile " + dir.file("profile.md"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string md = slurp(dir.file("profile.md"));
  const size_t population = md.find("### a population of 2: steps 32 to 64");
  ASSERT_NE(population, std::string::npos) << md;
  // Kernels (CUPTI through torch's profiler) in both sections, and how busy the device was.
  for (const std::string& part : {md.substr(0, population), md.substr(population)}) {
    EXPECT_NE(part.find("| device event (kernel, copy, set) |"), std::string::npos) << part;
    EXPECT_NE(part.find("the device was busy"), std::string::npos) << part;
  }
}

TEST(Sweep, AKilledSweepResumesWithEveryTrialPresentOnce) {
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["train"]["epochs"] = 40;
  doc["train"]["population"] = "off";  // trials alone, each with its own checkpoint
  doc["data"]["n_train"] = 2000;
  doc["seeds"] = 3;
  std::string cfg = dir.write("lab.json", doc.dump());
  auto expected = expand_trials(resolve_config(cfg, "", {}));

  pid_t pid = spawn_run(dir, cfg);
  ASSERT_GE(pid, 0);
  std::string why = kill_when(pid, dir, [&] {
    return std::filesystem::exists(dir.file("r.db")) && !Store(dir.file("r.db")).trials().empty();
  });
  ASSERT_EQ(why, "");
  size_t before = Store(dir.file("r.db")).trials().size();
  EXPECT_LT(before, expected.size());

  Result rest = empiric(dir, "run " + cfg);
  ASSERT_EQ(rest.code, 0) << rest.err;
  // The trials stored before the kill are not run again (the store's key would hide a repeat).
  EXPECT_NE(rest.out.find(std::to_string(before) + " already in"), std::string::npos) << rest.out;
  Store store(dir.file("r.db"));
  auto trials = store.trials();
  std::set<std::string> got, want;
  for (const auto& t : trials) got.insert(t.hash);
  for (const auto& t : expected) want.insert(t.hash);
  EXPECT_EQ(trials.size(), expected.size());
  EXPECT_EQ(got, want);
}

// One trial alone, long enough to be killed midway, with a checkpoint at every epoch end.
json one_checkpointed_trial() {
  json doc = json::parse(kSweep);
  doc["train"]["epochs"] = 40;
  doc["train"]["population"] = "off";
  doc["train"]["checkpoint_every_s"] = 0;
  doc["data"]["n_train"] = 2000;
  doc["sweep"] = json::object();
  doc["seeds"] = 1;
  return doc;
}

// Whether `folder` in `dir` holds a checkpoint (a .pt file) yet.
bool has_checkpoint(const testing::TempDir& dir, const std::string& folder) {
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir.file(folder), ec))
    if (f.path().extension() == ".pt") return true;
  return false;
}

// The store `db`'s `count` trials of one_checkpointed_trial() (a sweep of it) trained from step 0,
// not resumed: every epoch's evaluation is their own.
void expect_trained_from_the_start(const std::string& db, size_t count = 1) {
  Store store(db);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), count);
  for (const auto& t : trials) {
    EXPECT_FALSE(t.summary.contains("resumed_from_epoch")) << t.summary.dump();
    long long evals = 0;
    for (const auto& m : store.metrics(t.hash)) evals += m.name == "test_acc";
    EXPECT_EQ(evals, 40) << t.summary.dump();
  }
}

// A run of `doc` into r.db killed once it checkpointed, r.db deleted, a fresh run into r.db: it
// must not resume the old checkpoint (it did without a word, and recorded curves without their
// first epochs), and says so.
void expect_a_deleted_stores_checkpoint_not_resumed(const testing::TempDir& dir, const json& doc,
                                                    size_t count) {
  std::string cfg = dir.write("lab.json", doc.dump());
  pid_t pid = spawn_run(dir, cfg);
  ASSERT_GE(pid, 0);
  ASSERT_EQ(kill_when(pid, dir, [&] { return has_checkpoint(dir, "checkpoints-r"); }), "");
  for (const char* f : {"r.db", "r.db-wal", "r.db-shm"}) std::filesystem::remove(dir.file(f));
  Result fresh = empiric(dir, "run " + cfg + " --no-progress");
  ASSERT_EQ(fresh.code, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("(left by another store, or one deleted since): removed; training from "
                           "the start"),
            std::string::npos)
      << fresh.err;
  expect_trained_from_the_start(dir.file("r.db"), count);
}

TEST(Sweep, ForceTrainsAKilledTrialAgainFromItsStartNotFromItsCheckpoint) {
  testing::TempDir dir;
  std::string cfg = dir.write("lab.json", one_checkpointed_trial().dump());
  pid_t pid = spawn_run(dir, cfg);
  ASSERT_GE(pid, 0);
  std::string why = kill_when(pid, dir, [&] { return has_checkpoint(dir, "checkpoints-r"); });
  ASSERT_EQ(why, "");
  Result forced = empiric(dir, "run " + cfg + " --force");
  ASSERT_EQ(forced.code, 0) << forced.err;
  const auto trials = Store(dir.file("r.db")).trials();
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_FALSE(trials[0].summary.contains("resumed_from_epoch")) << trials[0].summary.dump();
}

TEST(Sweep, AnotherStoreInTheSameFolderDoesNotResumeThisOnesKilledTrial) {
  testing::TempDir dir;
  std::string cfg = dir.write("lab.json", one_checkpointed_trial().dump());
  pid_t pid = spawn_run(dir, cfg);  // into r.db
  ASSERT_GE(pid, 0);
  ASSERT_EQ(kill_when(pid, dir, [&] { return has_checkpoint(dir, "checkpoints-r"); }), "");
  const std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + EMPIRIC_SOURCE_DIR + " --db " +
                          dir.file("s.db") + " run " + cfg + " --no-progress > " +
                          dir.file("s.txt") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir.file("s.txt"));
  expect_trained_from_the_start(dir.file("s.db"));
  // Its checkpoint, kept through its measures, is gone once it is recorded.
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir.file("checkpoints-s"), ec))
    ADD_FAILURE() << "left behind: " << f.path();
  EXPECT_TRUE(std::filesystem::exists(dir.file("checkpoints-s")));
}

TEST(Sweep, AStoreDeletedSinceDoesNotResumeTheCheckpointItsKilledRunLeft) {
  testing::TempDir dir;
  expect_a_deleted_stores_checkpoint_not_resumed(dir, one_checkpointed_trial(), 1);
}

TEST(Sweep, AStoreDeletedSinceDoesNotResumeTheLotteryPopulationCheckpointItsKilledRunLeft) {
  // A lottery round's population resumed it without the check every other population makes.
  testing::TempDir dir;
  json doc = one_checkpointed_trial();
  doc["question"] = 97;
  doc["lab"] = "lottery";
  doc["lottery"] = {{"rounds", 1}};
  doc["train"].erase("population");  // round 0's two dense networks train as one population
  doc["seeds"] = 2;
  // Two chains' dense networks and round-1 tickets.
  expect_a_deleted_stores_checkpoint_not_resumed(dir, doc, 4);
}

TEST(Sweep, AValueAnOverrideGaveIsBlamedOnTheOverrideWhenTheTrialsStart) {
  // Found when the trials start (a data set, a model, a mask file): the file has no such value.
  testing::TempDir dir;
  const std::string cfg = dir.write("lab.json", kSweep);
  const std::string junk = dir.write("junk.pt", "not a torch archive");
  Result masked = empiric(dir, "run " + cfg + " train.mask_file=" + junk);
  EXPECT_EQ(masked.code, 2);
  EXPECT_NE(masked.err.find("empiric: override \"train.mask_file=" + junk +
                            "\": /train/mask_file = \"" + junk + "\": not a mask file"),
            std::string::npos)
      << masked.err;
  Result one = empiric(dir, "run " + cfg + " model.batch_norm=true train.batch_size=1");
  EXPECT_EQ(one.code, 2);
  EXPECT_NE(one.err.find("empiric: override \"train.batch_size=1\": /train/batch_size = 1: every "
                         "batch holds one example"),
            std::string::npos)
      << one.err;
  // As a sweep's value too.
  Result swept =
      empiric(dir, "run " + cfg + " model.batch_norm=true 'sweep.train.batch_size=[1,8]'");
  EXPECT_EQ(swept.code, 2);
  EXPECT_NE(swept.err.find("empiric: override \"sweep.train.batch_size=[1,8]\": /train/batch_size"),
            std::string::npos)
      << swept.err;
  // A value of the file is the file's.
  json doc = json::parse(kSweep);
  doc["model"]["batch_norm"] = true;
  doc["train"]["batch_size"] = 1;
  Result own = empiric(dir, "run " + dir.write("bn.json", doc.dump()));
  EXPECT_NE(own.err.find("bn.json: /train/batch_size = 1"), std::string::npos) << own.err;
  EXPECT_TRUE(!std::filesystem::exists(dir.file("r.db")) ||
              Store(dir.file("r.db")).trials().empty());
}

TEST(Sweep, AnInterruptedRunSaysWhatItKeptAndEndsAsInterrupted) {
  testing::TempDir dir;
  const std::string cfg = dir.write("lab.json", one_checkpointed_trial().dump());
  // Ctrl-C once the run has written its checkpoint; what it said.
  auto interrupt = [&](const std::vector<std::string>& more) {
    const pid_t pid = spawn_run(dir, cfg, more);
    EXPECT_GE(pid, 0);
    int status = 0;
    EXPECT_EQ(kill_when(
                  pid, dir,
                  [&] {
                    std::error_code ec;
                    return !std::filesystem::is_empty(dir.file("checkpoints-r"), ec) && !ec;
                  },
                  0, SIGINT, &status),
              "");
    EXPECT_TRUE(WIFSIGNALED(status)) << status;  // as Ctrl-C ends a program: a shell sees 130
    EXPECT_EQ(WTERMSIG(status), SIGINT);
    return slurp(dir.file("child_err.txt"));
  };
  const std::string plain = interrupt({});
  EXPECT_NE(plain.find("empiric: interrupted; finished trials are in the store, and the same "
                       "command again runs the others"),
            std::string::npos)
      << plain;
  // With --force the same command starts every trial over: it does not run "the others" from
  // their checkpoints (it removes them first). (The first run's checkpoint goes first: waiting
  // for one, the kill came before the handler was set.)
  std::filesystem::remove_all(dir.file("checkpoints-r"));
  const std::string forced = interrupt({"--force"});
  EXPECT_NE(forced.find("the same command again (--force) trains every trial afresh"),
            std::string::npos)
      << forced;
  EXPECT_EQ(forced.find("runs the others"), std::string::npos) << forced;
}

TEST(Sweep, AKilledPopulationResumesFromItsCheckpointWithEveryEpochStoredOnce) {
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["train"]["epochs"] = 400;
  doc["train"]["checkpoint_every_s"] = 0;  // every epoch end
  doc["data"]["n_train"] = 2000;
  std::string cfg = dir.write("lab.json", doc.dump());
  auto expected = expand_trials(resolve_config(cfg, "", {}));
  ASSERT_EQ(expected.size(), 4u);  // one population: two learning rates x two seeds

  pid_t pid = spawn_run(dir, cfg);
  ASSERT_GE(pid, 0);
  auto checkpoint = [&] {
    if (std::filesystem::exists(dir.file("checkpoints-r")))
      for (const auto& f : std::filesystem::directory_iterator(dir.file("checkpoints-r")))
        if (f.path().filename().string().rfind("population-", 0) == 0 &&
            f.path().extension() == ".pt")
          return true;
    return false;
  };
  ASSERT_EQ(kill_when(pid, dir, checkpoint, 200000), "");  // 0.2 s more: a few more epochs
  ASSERT_TRUE(Store(dir.file("r.db")).trials().empty());

  Result rest = empiric(dir, "run " + cfg);
  ASSERT_EQ(rest.code, 0) << rest.err;
  EXPECT_FALSE(checkpoint());  // removed at the end
  Store store(dir.file("r.db"));
  auto trials = store.trials();
  ASSERT_EQ(trials.size(), expected.size());
  for (const auto& t : trials) {
    EXPECT_EQ(t.summary["population"], 4);
    EXPECT_GT(t.summary.value("resumed_from_epoch", 0), 0) << t.summary.dump();
    // Every epoch's evaluation once: those before the kill kept, the rest added by the rerun.
    std::map<int, int> per_epoch;
    for (const auto& m : store.metrics(t.hash))
      if (m.name == "test_acc") ++per_epoch[m.epoch];
    EXPECT_EQ(per_epoch.size(), 400u);
    for (const auto& [epoch, count] : per_epoch) EXPECT_EQ(count, 1) << epoch;
  }
}

TEST(Sweep, AKilledLotteryChainResumesAtItsLastFinishedRound) {
  testing::TempDir dir;
  json doc = json::parse(R"({
    "question": 97, "lab": "lottery",
    "data": {"name": "blobs", "n_train": 1000, "n_test": 200, "classes": 4, "dim": 8, "noise": 2.0},
    "model": {"name": "mlp", "widths": [64, 32]},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 10, "batch_size": 50},
    "lottery": {"rounds": 4},
    "sweep": {"lottery.control": ["ticket", "reinit"]}
  })");
  std::string cfg = dir.write("lab.json", doc.dump());
  const size_t expected = expand_trials(resolve_config(cfg, "", {})).size();  // 1 + 4 x 2

  pid_t pid = spawn_run(dir, cfg);
  ASSERT_GE(pid, 0);
  ASSERT_EQ(kill_when(pid, dir,
                      [&] {
                        return std::filesystem::exists(dir.file("r.db")) &&
                               Store(dir.file("r.db")).trials().size() >= 3;
                      }),
            "");
  size_t before = Store(dir.file("r.db")).trials().size();
  ASSERT_GE(before, 3u);
  ASSERT_LT(before, expected);

  Result rest = empiric(dir, "run " + cfg + " --no-progress");
  ASSERT_EQ(rest.code, 0) << rest.err;
  EXPECT_NE(rest.out.find(std::to_string(before) + " already in"), std::string::npos) << rest.out;
  EXPECT_NE(rest.err.find("[" + std::to_string(expected - before) + "/" +
                          std::to_string(expected - before) + "]"),
            std::string::npos)
      << rest.err;  // only the missing rounds ran
  auto trials = Store(dir.file("r.db")).trials();
  EXPECT_EQ(trials.size(), expected);
  for (const auto& t : trials) EXPECT_EQ(t.status, "finished") << t.summary.dump();
}

// A lottery chain small enough to run in a second: 16 steps a round.
json small_chain() {
  return json::parse(R"({
    "question": 97, "lab": "lottery",
    "data": {"name": "blobs", "n_train": 400, "n_test": 100, "classes": 4, "dim": 8, "noise": 2.0},
    "model": {"name": "mlp", "widths": [32]},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 2, "batch_size": 50},
    "seeds": 1
  })");
}

TEST(Sweep, ALotteryStoreKeepsItsArtifactsBesideItAndAnUnusableFolderIsNamed) {
  // Every store in a folder shared artifacts/, and one that could not be made was an internal
  // error (exit 3) where the checkpoint folder's was named.
  testing::TempDir dir;
  json doc = small_chain();
  doc["lottery"] = {{"rounds", 1}};
  const std::string cfg = dir.write("lab.json", doc.dump());
  ASSERT_EQ(empiric(dir, "run " + cfg + " --no-progress").code, 0);
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("artifacts-r")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("artifacts")));
  dir.write("artifacts-x", "a file where the folder goes");
  const std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + EMPIRIC_SOURCE_DIR + " --db " +
                          dir.file("x.db") + " run " + cfg + " --no-progress 2> " +
                          dir.file("x.txt");
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const std::string err = slurp(dir.file("x.txt"));
  EXPECT_NE(
      err.find(dir.file("artifacts-x") + ": cannot create the lottery chains' artifacts folder ("),
      std::string::npos)
      << err;
}

TEST(Sweep, ALotteryShardWithNoChainOfItsOwnRunsNothing) {
  // One chain, two shards: the second has none, and divided by its count of controls (SIGFPE).
  testing::TempDir dir;
  json doc = small_chain();
  doc["lottery"] = {{"rounds", 1}};
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r = empiric(dir, "run " + cfg + " --shard 1/2 --no-progress");
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Sweep, LotteryChainsRunRoundByRoundAsOneUnitWithEveryCore) {
  // Two seeds' chains train each round as one population: one unit of work, so --jobs 2 runs one
  // worker, says so, and leaves it torch's threads (split in two, one worker would idle a core).
  testing::TempDir dir;
  json doc = small_chain();
  doc["lottery"] = {{"rounds", 2}};
  doc["sweep"] = {{"lottery.control", {"ticket", "reinit"}}};
  doc["seeds"] = 2;
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r = empiric(dir, "run " + cfg + " --jobs 2 --no-progress");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--jobs 2: 1 unit(s) of work"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("networks of 2 chain(s) at a time train as one"), std::string::npos)
      << r.out;
  Store store(dir.file("r.db"));
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 2u * (1u + 2u * 2u));
  for (const auto& t : trials) {
    EXPECT_EQ(t.status, "finished") << t.summary.dump();
    EXPECT_EQ(t.summary.value("population", 1), t.summary["round"] == 0 ? 2 : 4)
        << t.summary.dump();
  }
  // torch's default thread count here, as in the binary (split for two workers it would be half).
  EXPECT_EQ(store.run_environment(trials[0].run_id)["torch_threads"], torch::get_num_threads());
}

TEST(Sweep, LotteryChainsThatCannotShareAPopulationAreSeparateUnits) {
  // A swept batch size splits the chains: cut in order of appearance, a unit held chains of
  // both sizes, whose rounds then trained apart within it (batch 25's seed 1 chain alone), and
  // the sweep said each round's networks of 4 chains trained as one.
  testing::TempDir dir;
  json doc = small_chain();
  doc["lottery"] = {{"rounds", 1}};
  doc["sweep"] = {{"lottery.control", {"ticket", "reinit"}}, {"train.batch_size", {25, 50}}};
  doc["seeds"] = 2;
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r = empiric(dir, "run " + cfg + " --jobs 2 --no-progress");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("12 to run (2 at once)"), std::string::npos) << r.out;  // 2 units
  EXPECT_NE(r.out.find("networks of 2 chain(s) at a time train as one (the chains fall in 2 "
                       "groups that cannot share one)"),
            std::string::npos)
      << r.out;
  Store store(dir.file("r.db"));
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 2u * 2u * (1u + 2u));
  for (const auto& t : trials)  // each round: the 2 seeds' chains of one batch size together
    EXPECT_EQ(t.summary.value("population", 1), t.summary["round"] == 0 ? 2 : 4)
        << t.summary.dump();
}

TEST(Sweep, ARewindPointPastOneSweepPointsDenseRunFailsBeforeAnyChainTrains) {
  // Batch 400 on 400 examples: 2 steps in the dense run, fewer than rewind_step 5. The batch-50
  // chain trained and was stored first, the lab failing when the other's turn came.
  testing::TempDir dir;
  json doc = small_chain();
  doc["lottery"] = {{"rounds", 1}, {"rewind_step", 5}};
  doc["sweep"] = {{"train.batch_size", {50, 400}}};
  doc["train"]["population"] = "off";
  std::string cfg = dir.write("lab.json", doc.dump());
  Result r = empiric(dir, "run " + cfg + " --no-progress");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("/lottery/rewind_step = 5: the dense run takes 2 steps (400 training "
                       "examples in batches of 400); allowed: 0 to 1"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(!std::filesystem::exists(dir.file("r.db")) ||
              Store(dir.file("r.db")).trials().empty());
}

TEST(Sweep, JobsAndShardsCoverEveryTrialOnce) {
  testing::TempDir dir;
  std::string cfg = dir.write("lab.json", kSweep);
  auto want = expand_trials(resolve_config(cfg, "", {}));
  // Two trials at a time in one process (alone: as one population they would be one unit).
  Result jobs = empiric(dir, "run " + cfg + " --jobs 2 train.population=off");
  ASSERT_EQ(jobs.code, 0) << jobs.err;
  EXPECT_NE(jobs.out.find("(2 at once)"), std::string::npos) << jobs.out;
  // (As one population they were one unit, which one worker took: "so 1 at once".)
  EXPECT_EQ(jobs.out.find("unit(s) of work"), std::string::npos) << jobs.out;
  EXPECT_EQ(Store(dir.file("r.db")).trials().size(), want.size());
  // Two shards into two stores (two machines of a job array), merged into a third.
  for (int i = 0; i < 2; ++i) {
    std::string cmd = std::string(EMPIRIC_BINARY) + " --db " +
                      dir.file("shard" + std::to_string(i) + ".db") + " run " + cfg + " --shard " +
                      std::to_string(i) + "/2 > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string merge = std::string(EMPIRIC_BINARY) + " --db " + dir.file("all.db") +
                      " results merge " + dir.file("shard0.db") + " " + dir.file("shard1.db") +
                      " > /dev/null 2>&1";
  ASSERT_EQ(std::system(merge.c_str()), 0);
  Store all(dir.file("all.db"));
  std::set<std::string> got;
  for (const auto& t : all.trials()) got.insert(t.hash);
  EXPECT_EQ(all.trials().size(), want.size());
  for (const auto& t : want) EXPECT_TRUE(got.count(t.hash)) << t.hash;
  EXPECT_LT(Store(dir.file("shard0.db")).trials().size(),
            want.size());  // each shard ran only its part
  // Trials started at once draw their data and init one at a time: the same results as one by
  // one (a different init would move the loss by far more than thread-count rounding).
  std::map<std::string, double> one_by_one;
  for (const auto& t : all.trials()) one_by_one[t.hash] = t.summary["train_loss"].get<double>();
  for (const auto& t : Store(dir.file("r.db")).trials())
    EXPECT_NEAR(t.summary["train_loss"].get<double>(), one_by_one.at(t.hash), 1e-4) << t.hash;
}

TEST(Sweep, ADivergingTrialIsRecordedAndTheSweepGoesOn) {
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["sweep"]["optim.lr"] = json::parse("[0.05, 100000.0]");
  doc["seeds"] = 1;
  const std::string cfg = dir.write("lab.json", doc.dump());
  // As one population (the default), then alone: the same divergence, at the same step.
  long long step[2] = {-1, -1};
  for (int alone = 0; alone < 2; ++alone) {
    Result r = empiric(dir, "run " + cfg + (alone ? " --force train.population=off" : ""));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("2 trials: 1 finished, 1 diverged"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("batched population") == std::string::npos, alone == 1) << r.out;
    int diverged = 0;
    for (const auto& t : Store(dir.file("r.db")).trials()) {
      if (t.status != "diverged") continue;
      ++diverged;
      EXPECT_EQ(t.config["optim"]["lr"], 100000.0);
      EXPECT_EQ(t.summary["diverged_step"], t.diverged_step);
      step[alone] = t.diverged_step;
    }
    EXPECT_EQ(diverged, 1);
  }
  EXPECT_GE(step[0], 1);  // steps count from 1: the first step's loss was finite
  EXPECT_EQ(step[0], step[1]);
}

TEST(Sweep, ASweptValueThatCannotStartStopsTheSweepBeforeAnyTrialTrains) {
  // The third lr_mult names no parameter, the second data path no file: found before the first
  // trial trains, not when their trials start.
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["sweep"] = {{"optim.lr_mult", json::parse(R"([{}, {"body.1": 2}, {"nosuch": 3}])")}};
  Result r = empiric(dir, "run " + dir.write("lab.json", doc.dump()) + " train.population=off");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/optim/lr_mult/nosuch: the prefix \"nosuch\" matches no parameter"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(Store(dir.file("r.db")).trials().empty());
  testing::TempDir images;
  testing::write_tiny_mnist(images, 64, 32);
  json files = json::parse(kSweep);
  files["data"] = {{"name", "mnist"}, {"path", images.path()}};
  files["sweep"] = {{"data.path", {images.path(), dir.file("nowhere")}}};
  r = empiric(dir, "run " + dir.write("files.json", files.dump()) + " train.population=off");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  EXPECT_TRUE(Store(dir.file("r.db")).trials().empty());
}

TEST(Sweep, FailedTrialsAreStoredRetriedOnRerunAndExitStatusOne) {
  // A hidden layer of 10^15 units (more bytes than an address space holds) cannot be allocated:
  // its trials fail (a diverged trial is a result; a failed one is not), so the run ends with
  // status 1 and a rerun tries them again.
  testing::TempDir dir;
  json doc = json::parse(kSweep);
  doc["model"]["widths"] = {1000000000000000LL};
  doc["sweep"] = json::object();
  std::string cfg = dir.write("lab.json", doc.dump());
  for (int pass = 0; pass < 2; ++pass) {
    Result r = empiric(dir, "run " + cfg + " --no-progress");
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.out.find(", 0 already in"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 trials: 0 finished, 0 diverged, 2 failed"), std::string::npos) << r.out;
    // After the progress lines, one line that says so.
    EXPECT_NE(r.err.find("\nempiric: " + cfg + ": 2 trial(s) failed (first "), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("failed: out of memory: tried to allocate "), std::string::npos) << r.err;
  }
  for (const auto& t : Store(dir.file("r.db")).trials()) EXPECT_EQ(t.status, "failed");
}

TEST(Cli, BadInputIsOneLineAndExitStatusTwo) {
  testing::TempDir dir;
  std::string cfg = dir.write("lab.json", kSweep);
  for (const std::string& args : std::vector<std::string>{
           "run " + cfg + " optim.lr=-1", "run " + dir.file("missing.json"), "show 103",
           "list --kind maybe", "run " + cfg + " --shard 3/2", "run " + cfg + " --jobs zero",
           "results --format xml", "results --question 999", "results --question 0",
           "run " + cfg + " --shard 0/1x", "show ''", "answer 9x", "list --section abc",
           "list --section 0", "bench --binary " + dir.path(), "config ''", "run ''"}) {
    Result r = empiric(dir, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("empiric: ", 0), 0u) << r.err;
  }
  // Question 0 is none (it listed every question's trials).
  EXPECT_NE(empiric(dir, "results --question 0").err.find("--question 0: no such question"),
            std::string::npos);
  Result r = empiric(dir, "run " + cfg + " optim.lr=-1");
  EXPECT_NE(r.err.find("override \"optim.lr=-1\": /optim/lr = -1: expected a number > 0"),
            std::string::npos)
      << r.err;
  std::string broken =
      dir.write("broken.json",
                "{\"data\": {\"name\": \"blobs\", \"n_train\": 8}, \"model\": {\"name\": \"mlp\"}");
  r = empiric(dir, "run " + broken);
  EXPECT_NE(r.err.find("broken.json: invalid JSON"), std::string::npos) << r.err;
  // A home that is no checkout named only the bank file it lacked.
  const std::string nowhere = std::string(EMPIRIC_BINARY) + " --home " + dir.file("nowhere") +
                              " list 2> " + dir.file("h.txt");
  EXPECT_NE(std::system(nowhere.c_str()), 0);
  EXPECT_NE(slurp(dir.file("h.txt")).find("(or EMPIRIC_HOME) to be the empiric checkout"),
            std::string::npos)
      << slurp(dir.file("h.txt"));
  // A mistyped source was reported after the store merged into had been created, empty.
  const std::string fresh = std::string(EMPIRIC_BINARY) + " --db " + dir.file("fresh.db") +
                            " results merge " + dir.file("nope.db") + " 2> " + dir.file("m.txt");
  EXPECT_NE(std::system(fresh.c_str()), 0);
  EXPECT_NE(slurp(dir.file("m.txt")).find("nope.db: no such file"), std::string::npos)
      << slurp(dir.file("m.txt"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("fresh.db")));
  // A source that is a file but no store: refused, and the store made for it is gone again.
  const std::string text = dir.write("notes.txt", "not a database\n");
  const std::string odd = std::string(EMPIRIC_BINARY) + " --db " + dir.file("fresh2.db") +
                          " results merge " + text + " 2> " + dir.file("m2.txt");
  EXPECT_NE(std::system(odd.c_str()), 0);
  EXPECT_NE(slurp(dir.file("m2.txt")).find("notes.txt"), std::string::npos)
      << slurp(dir.file("m2.txt"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("fresh2.db")));
  // A store merged into itself waited a minute on its own lock, then blamed another process.
  { Store made(dir.file("r.db")); }
  r = empiric(dir, "results merge " + dir.file("r.db"));
  EXPECT_NE(r.err.find("r.db: the database merged into (--db); expected another one"),
            std::string::npos)
      << r.err;
  // A mistyped preset with no trial there to check it against: no config has it (it listed
  // none, exit 0, as if that were the answer).
  r = empiric(dir, "results --question 99 --preset bogus");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--preset bogus: no config in " + std::string(EMPIRIC_SOURCE_DIR) +
                       "/configs has it; allowed: full, quick"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(empiric(dir, "results --question 99 --preset quick").code, 0);
  // A directory as the benchmark binary was run, and its failure reported as a raw wait status.
  r = empiric(dir, "bench --binary " + dir.path());
  EXPECT_NE(r.err.find(dir.path() + ": not an executable file"), std::string::npos) << r.err;
  // An empty question number was read as question 0.
  r = empiric(dir, "show ''");
  EXPECT_EQ(r.err,
            "empiric: question: \"\": expected a question number, e.g. 99 (see empiric show "
            "--help)\n");
  // A subcommand's bad option points at that subcommand's help, which lists its options.
  r = empiric(dir, "bench --members 0");
  EXPECT_NE(r.err.find("(see empiric bench --help)"), std::string::npos) << r.err;
  r = empiric(dir, "results merge");  // a nested one: its own help, which names its files
  EXPECT_NE(r.err.find("(see empiric results merge --help)"), std::string::npos) << r.err;
  // A subcommand's option before the subcommand is not taken for a command.
  r = empiric(dir, "--preset quick run " + cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.find("no such command"), std::string::npos) << r.err;
  // A misspelt command is named, with the commands there are (CLI11 said one was required).
  r = empiric(dir, "anwser 99");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "empiric: anwser: no such command; allowed: list, show, config, keys, run, bench, "
            "answer, report, results\n");
}

TEST(Cli, AnswerRunsTheLabEvaluatesItsClaimAndWritesTheReport) {
  testing::TempDir home;
  std::filesystem::create_directories(home.file("questions"));
  std::filesystem::create_directories(home.file("configs"));
  std::filesystem::create_directories(home.file("scripts"));
  std::filesystem::copy_file(std::string(EMPIRIC_SOURCE_DIR) + "/scripts/plot_report.py",
                             home.file("scripts/plot_report.py"));
  json lab = json::parse(kSweep);
  lab["question"] = 1;
  lab["seeds"] = 3;
  lab["sweep"] = json::parse(R"({"optim.lr": [0.001, 0.01, 0.1]})");
  home.write("configs/tiny.json", lab.dump());
  home.write("questions/bank.json",
             R"({"source": {}, "sections": [{"number": 1, "title": "Training"}],
    "questions": [{"number": 1, "section": 1, "text": "Does a larger learning rate train faster here?", "tags": ["lr"],
      "kind": "empirical", "claims": [{"id": "q1.lr", "statement": "final training loss falls as the LR rises",
      "config": "configs/tiny.json",
      "test": {"kind": "trend", "x": "optim.lr", "metric": "train_loss", "direction": -1, "min_effect": 0.3}}]},
      {"number": 2, "section": 1, "text": "Does a larger learning rate fit the training set better here?", "tags": ["lr"],
      "kind": "empirical", "claims": [{"id": "q2.lr", "statement": "final training accuracy rises with the LR",
      "config": "configs/tiny.json",
      "test": {"kind": "trend", "x": "optim.lr", "metric": "train_acc", "direction": 1}}]}]})");
  auto run = [&](const std::string& args) { return empiric(home, args, home.path()); };
  Result a = run("answer 1");
  ASSERT_EQ(a.code, 0) << a.err << a.out;
  EXPECT_NE(a.out.find("q1.lr"), std::string::npos);
  EXPECT_NE(a.out.find("verdict: supported"), std::string::npos)
      << a.out;  // 3 orders of magnitude of LR: clear
  EXPECT_TRUE(std::filesystem::exists(home.file("reports/q001/README.md")));
  EXPECT_TRUE(std::filesystem::exists(home.file("reports/README.md")));
  Result show = run("show 1");
  EXPECT_NE(show.out.find("latest verdict: supported"), std::string::npos) << show.out;
  Result typo = run("show 1 --preset quick");  // the config has no presets: bad input
  EXPECT_EQ(typo.code, 2) << typo.out;
  EXPECT_NE(typo.err.find("--preset quick: none of Q1's configs resolves with it"),
            std::string::npos)
      << typo.err;
  Result again = run("answer 1");  // resumes: nothing to run
  EXPECT_NE(again.out.find("9 already in"), std::string::npos) << again.out;
  // Q2's claim reads Q1's config: its trials are Q2's evidence too.
  Result shared = run("show 2");
  EXPECT_NE(shared.out.find("r.db: 9 (0 diverged"), std::string::npos) << shared.out;
  Result listed = run("results --question 2 --format csv");  // as show counts them (it had none)
  EXPECT_EQ(std::count(listed.out.begin(), listed.out.end(), '\n'), 1 + 9) << listed.out;
  {  // A config broken since: show still shows the question and its verdict, and says why its
     // trials are not counted.
    const std::string good = slurp(home.file("configs/tiny.json"));
    home.write("configs/tiny.json", "{\"question\": 1,");
    Result broken = run("show 1");
    EXPECT_EQ(broken.code, 0) << broken.err;
    EXPECT_NE(broken.out.find("latest verdict: supported"), std::string::npos) << broken.out;
    EXPECT_NE(broken.out.find("not counted"), std::string::npos) << broken.out;
    EXPECT_NE(broken.out.find("tiny.json"), std::string::npos) << broken.out;
    home.write("configs/tiny.json", good);
  }
  {  // A full preset that is not the config as written (more seeds): without --preset the
     // answer is not the protocol's, and its report goes beside the smoke tests', not over the
     // committed reports/ (it went over them).
    const std::string committed = slurp(home.file("reports/q001/README.md"));
    json with_full = lab;
    with_full["presets"] = {{"full", {{"seeds", 4}}}};
    home.write("configs/tiny.json", with_full.dump());
    Result written = run("report 1");
    EXPECT_EQ(written.code, 0) << written.err;
    EXPECT_NE(written.out.find("Without --preset full, some of Q1's configs are not the protocol: "
                               "verdicts and report under \"as-written\""),
              std::string::npos)
        << written.out;
    EXPECT_EQ(slurp(home.file("reports/q001/README.md")), committed);
    // show --preset full: the full preset's trials (its 4 seeds hold the 3 run), and the full
    // protocol's verdict in the store: the first answer's, when the config as written was it
    // (stored without a preset, as reports/README.md counts it), not "as-written"'s.
    Result full = run("show 1 --preset full");
    EXPECT_EQ(full.code, 0) << full.err;
    EXPECT_NE(full.out.find("r.db (preset full): 9"), std::string::npos) << full.out;
    EXPECT_NE(full.out.find("latest verdict: supported ("), std::string::npos) << full.out;
    EXPECT_NE(full.out.find("preset -,"), std::string::npos) << full.out;
    EXPECT_EQ(full.out.find("as-written"), std::string::npos) << full.out;
    const std::string tagged = slurp(home.file("results/reports/as-written/q001/README.md"));
    EXPECT_NE(tagged.find("Generated by `empiric report 1` from the results store, under "
                          "`as-written`."),
              std::string::npos)
        << tagged;
    with_full["presets"] = {{"full", json::object()}};  // the protocol as written: reports/
    home.write("configs/tiny.json", with_full.dump());
    Result same = run("report 1");
    EXPECT_EQ(same.code, 0) << same.err;
    EXPECT_EQ(same.out.find("Without --preset full"), std::string::npos) << same.out;
    EXPECT_NE(slurp(home.file("reports/q001/README.md"))
                  .find("Generated by `empiric report 1` from the results store. Every"),
              std::string::npos);
    home.write("configs/tiny.json", lab.dump());
  }
  {  // Overrides of how trials run, not what they compute: the same trials, the protocol's
     // report (train.threads=1 put it under "+overrides", beside the smoke tests).
    std::filesystem::remove(home.file("reports/q001/README.md"));
    Result neutral = run("report 1 train.threads=1 train.population=off");
    EXPECT_EQ(neutral.code, 0) << neutral.err;
    EXPECT_NE(neutral.out.find("The overrides (train.threads=1 train.population=off) change how "
                               "the trials run, not what they compute"),
              std::string::npos)
        << neutral.out;
    EXPECT_TRUE(std::filesystem::exists(home.file("reports/q001/README.md")));
    EXPECT_FALSE(std::filesystem::exists(home.file("results/reports/as-written+overrides")));
    // A description changes no trial's hash, but it is written into the report: not the
    // protocol's (it rewrote reports/ with the overridden text).
    const std::string before = slurp(home.file("reports/q001/README.md"));
    Result described = run("report 1 'description=another text'");
    EXPECT_EQ(described.code, 0) << described.err;
    EXPECT_NE(described.out.find("With overrides (description=another text)"), std::string::npos)
        << described.out;
    EXPECT_EQ(slurp(home.file("reports/q001/README.md")), before);
    // Its header names the command that writes it again, overrides and all (it said `empiric
    // report 1`, which writes another), and the verdict keeps them for `show`.
    EXPECT_NE(slurp(home.file("results/reports/as-written+overrides/q001/README.md"))
                  .find("Generated by `empiric report 1 'description=another text'` from the "
                        "results store, under `as-written+overrides`."),
              std::string::npos);
    Result shown = run("show 1");
    EXPECT_NE(shown.out.find("preset as-written+overrides, "), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("answered with overrides: 'description=another text'"),
              std::string::npos)
        << shown.out;
    // The tags show prints: as-written selects its verdicts and the trials of the configs as
    // written; a tag of overrides is named as such (both were refused as presets no config has).
    Result written = run("show 1 --preset as-written");
    EXPECT_EQ(written.code, 0) << written.err;
    EXPECT_NE(written.out.find("r.db (preset as-written): 9"), std::string::npos) << written.out;
    EXPECT_NE(written.out.find("latest verdict: supported ("), std::string::npos) << written.out;
    EXPECT_NE(written.out.find("preset as-written, "), std::string::npos) << written.out;
    Result tag = run("show 1 --preset as-written+overrides");
    EXPECT_EQ(tag.code, 2);
    EXPECT_NE(tag.err.find("--preset as-written+overrides: the tag of verdicts answered with "
                           "overrides, not a preset"),
              std::string::npos)
        << tag.err;
  }
  EXPECT_EQ(run("answer 3").code, 2);
  EXPECT_EQ(run("report 1").code, 0);  // from the store, without running
  {  // Ctrl-C while the plots are drawn: the verdicts printed before reach the output (they sat
     // in its buffer), and the message names what was kept, not trials to run again.
    std::filesystem::create_directories(home.file(".venv/bin"));
    std::ofstream(home.file(".venv/bin/python")) << "#!/bin/sh\nkill -INT $$\n";
    std::filesystem::permissions(home.file(".venv/bin/python"), std::filesystem::perms::owner_all);
    Result stopped = run("report 1");
    EXPECT_NE(stopped.code, 0);
    EXPECT_NE(stopped.out.find("verdict: supported"), std::string::npos) << stopped.out;
    EXPECT_NE(stopped.err.find("interrupted while drawing the plots of"), std::string::npos)
        << stopped.err;
    EXPECT_EQ(stopped.err.find("runs the others"), std::string::npos) << stopped.err;
    std::filesystem::remove_all(home.file(".venv"));
  }
  // A preset none of whose trials ran: no report of every claim inconclusive, one line instead.
  Result none = run("report 1 optim.momentum=0.5");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("r.db: no trial of question 1's configs with these overrides is there; "
                          "allowed: a store holding them (run them with `empiric answer 1 "
                          "'optim.momentum=0.5'`"),
            std::string::npos)
      << none.err;
  EXPECT_EQ(none.out, "");
  // From an empty store, a preset or override that no config takes is named as such (it said
  // only that the store was empty).
  std::filesystem::remove(home.file("r.db"));
  Result bogus = run("report 1 --preset bogus");
  EXPECT_EQ(bogus.code, 2);
  EXPECT_NE(bogus.err.find("no such preset"), std::string::npos) << bogus.err;
  Result unknown = run("report 1 optim.momentun=0.5");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("momentun"), std::string::npos) << unknown.err;
  EXPECT_EQ(unknown.err.find("no trial"), std::string::npos) << unknown.err;
}

TEST(Cli, AReportLabelsATrialTwoConfigsShareWithTheAxesOfItsOwnConfig) {
  // Q100's baseline without noise is one trial of its label-noise, gradient-noise and dropout
  // sweeps; the store keeps the axes of the sweep that ran it first, and the gradient-noise
  // curves labelled it "label_noise=0".
  testing::TempDir home;
  for (const char* dir : {"questions", "configs", "scripts"})
    std::filesystem::create_directories(home.file(dir));
  json lab = json::parse(kSweep);
  lab["question"] = 1;
  lab["seeds"] = 1;
  lab["train"]["epochs"] = 1;
  home.write("configs/by_lr.json", lab.dump());  // lr 0.1 and 0.03 at batch 32
  lab["sweep"] = json::parse(R"({"train.batch_size": [32, 64]})");
  home.write("configs/by_batch.json", lab.dump());  // batch 32 and 64 at lr 0.1
  home.write("questions/bank.json",
             R"({"source": {}, "sections": [{"number": 1, "title": "Training"}],
    "questions": [{"number": 1, "section": 1, "text": "Does a larger batch train worse here?",
      "tags": ["batch"], "kind": "empirical", "claims": [{"id": "q1.batch",
      "statement": "final training loss rises with the batch", "config": "configs/by_batch.json",
      "test": {"kind": "trend", "x": "train.batch_size", "metric": "train_loss",
      "direction": 1}}]}]})");
  auto run = [&](const std::string& args) { return empiric(home, args, home.path()); };
  Result first = run("run " + home.file("configs/by_lr.json"));
  ASSERT_EQ(first.code, 0) << first.err;
  Result second = run("run " + home.file("configs/by_batch.json"));
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE(second.out.find("1 already in"), std::string::npos) << second.out;
  Result report = run("report 1");
  ASSERT_EQ(report.code, 0) << report.err;
  const json meta = json::parse(slurp(home.file("reports/q001/curves_by_batch.json")));
  std::multiset<std::string> labels;
  for (const auto& t : meta["trials"]) labels.insert(t["label"].get<std::string>());
  EXPECT_EQ(labels, (std::multiset<std::string>{"batch_size=32", "batch_size=64"}))
      << meta["trials"];
}

TEST(Cli, AReportFromAStoreLackingSomeOfItsTrialsSaysSo) {
  // A run interrupted (or still running elsewhere) left 3 of 4 trials: the verdicts were stored
  // and the report written as if they were all.
  testing::TempDir home;
  for (const char* dir : {"questions", "configs", "scripts"})
    std::filesystem::create_directories(home.file(dir));
  json lab = json::parse(kSweep);
  lab["question"] = 1;
  home.write("configs/tiny.json", lab.dump());  // 2 LRs x 2 seeds
  home.write("questions/bank.json",
             R"({"source": {}, "sections": [{"number": 1, "title": "Training"}],
    "questions": [{"number": 1, "section": 1, "text": "Does a larger learning rate train faster?",
      "tags": ["lr"], "kind": "empirical", "claims": [{"id": "q1.lr",
      "statement": "final training loss falls as the LR rises", "config": "configs/tiny.json",
      "test": {"kind": "trend", "x": "optim.lr", "metric": "train_loss", "direction": -1}}]}]})");
  auto run = [&](const std::string& args) { return empiric(home, args, home.path()); };
  ASSERT_EQ(run("answer 1").code, 0);
  EXPECT_EQ(run("answer 1").out.find("not in the store"), std::string::npos);
  {
    Store store(home.file("r.db"));
    store.forget_trial(store.trials().front().hash);
  }
  Result partial = run("report 1");
  ASSERT_EQ(partial.code, 0) << partial.err;
  EXPECT_NE(partial.out.find("(1 of its config's 4 trials are not in the store: the verdict is "
                             "on the rest; `empiric answer 1` runs them)"),
            std::string::npos)
      << partial.out;
  EXPECT_NE(slurp(home.file("reports/q001/README.md"))
                .find("**1 of the config's 4 trials are not in the store**: the verdicts below "
                      "are on the other 3. 3 trials (3 finished"),
            std::string::npos);
  const auto verdicts = Store(home.file("r.db")).latest_verdicts(1, {""});
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].details["absent"], 1) << verdicts[0].details;
  EXPECT_EQ(verdicts[0].details["trials"], 3) << verdicts[0].details;
}

TEST(Cli, AnswerChecksEveryConfigWithItsOverridesBeforeRunningAny) {
  // Q1's claims read two training configs (Adam, SGD) and an implicit-lab config, which has no
  // train section: optim.betas is refused for the SGD one, and the Adam one, before it, must not
  // have run by then.
  testing::TempDir home;
  std::filesystem::create_directories(home.file("questions"));
  std::filesystem::create_directories(home.file("configs"));
  json adam = json::parse(kSweep);
  adam["optim"] = {{"name", "adam"}, {"lr", 0.01}};
  home.write("configs/adam.json", adam.dump());
  home.write("configs/tiny.json", kSweep);
  home.write("configs/implicit.json",
             R"({"question": 1, "lab": "implicit", "implicit": {"problem": "separable", "n": 20,
                 "dim": 2, "steps": 100}, "seeds": 2})");
  home.write("questions/bank.json",
             R"({"source": {}, "sections": [{"number": 1, "title": "Training"}],
    "questions": [{"number": 1, "section": 1, "text": "Three labs?", "tags": [], "kind": "empirical",
      "claims": [
        {"id": "q1.a", "statement": "s", "config": "configs/adam.json",
         "test": {"kind": "trend", "x": "optim.lr", "metric": "train_loss", "direction": -1}},
        {"id": "q1.b", "statement": "s", "config": "configs/tiny.json",
         "test": {"kind": "trend", "x": "optim.lr", "metric": "train_loss", "direction": -1}},
        {"id": "q1.c", "statement": "s", "config": "configs/implicit.json",
         "test": {"kind": "threshold", "metric": "angle_final", "threshold": 1, "direction": -1}}]}]})");
  auto answer = [&](const std::string& overrides) {
    const std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + home.path() + " --db " +
                            home.file("r.db") + " answer 1 " + overrides + " > " +
                            home.file("out.txt") + " 2> " + home.file("err.txt");
    const int status = std::system(cmd.c_str());
    return Result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(home.file("out.txt")),
                  slurp(home.file("err.txt"))};
  };
  const Result refused = answer("'optim.betas=[0.8,0.9]'");
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("(it is \"sgd\")"), std::string::npos) << refused.err;
  EXPECT_TRUE(!std::filesystem::exists(home.file("r.db")) ||
              Store(home.file("r.db")).trials().empty());
  // An override no config's lab reads is refused as the first config refuses it, named as the
  // override (it read "adam.json: /range", a section the file does not have).
  const Result unread = answer("range.steps=10");
  EXPECT_EQ(unread.code, 2);
  EXPECT_NE(unread.err.find("override \"range.steps=10\": /range: this section applies only when "
                            "/lab is \"lr_range\" (it is \"train\")"),
            std::string::npos)
      << unread.err;
  // A sweep of a key only one lab reads goes to that lab's configs alone too.
  const Result swept = answer("'sweep.implicit.steps=[50,60]' --no-progress");
  EXPECT_EQ(swept.code, 0) << swept.err << swept.out;
  EXPECT_EQ(swept.err.find("tiny.json"), std::string::npos) << swept.err;
  std::filesystem::remove(home.file("r.db"));
  // One only the training config's lab reads goes to it alone (the implicit config refused it,
  // and a question of two labs could not be shrunk): its trials have one unit, the implicit
  // lab's are as written.
  const Result shrunk = answer("'model.widths=[1]' --no-progress");
  EXPECT_EQ(shrunk.code, 0) << shrunk.err << shrunk.out;
  Store store(home.file("r.db"));
  int training = 0, implicit = 0;
  for (const auto& t : store.trials()) {
    if (t.config.value("lab", std::string("train")) == "implicit") {
      ++implicit;
      EXPECT_FALSE(t.config.contains("model") &&
                   t.config["model"].value("widths", json()) == json::parse("[1]"));
    } else {
      ++training;
      EXPECT_EQ(t.config["model"]["widths"], json::parse("[1]")) << t.config.dump();
    }
  }
  EXPECT_EQ(training, 8);
  EXPECT_EQ(implicit, 2);
}

TEST(Sweep, ACheckpointOfATrialTheStoreHoldsIsRemovedUnlessARunHoldsIt) {
  // A --force run stopped while training a stored trial again left its checkpoint, which no run
  // would resume, for good. This test's own process stands for a live run holding the second.
  testing::TempDir dir;
  const std::string cfg = dir.write("lab.json", kSweep);
  const auto trials = expand_trials(resolve_config(cfg, "", {}));
  ASSERT_EQ(empiric(dir, "run " + cfg + " --no-progress").code, 0);
  const std::string stale = dir.file("checkpoints-r/" + trials[0].hash + ".pt"),
                    held = dir.file("checkpoints-r/" + trials[1].hash + ".pt");
  std::ofstream(stale) << "left by a stopped --force run";
  std::ofstream(held) << "being written by a live run";
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.file("r.db").c_str(), &db), SQLITE_OK);
  const std::string sql = "INSERT INTO leases VALUES ('" + trials[1].hash + "', '" + host + "', " +
                          std::to_string(getpid()) + ", 'now')";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const Result again = empiric(dir, "run " + cfg + " --no-progress");
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("4 already in"), std::string::npos) << again.out;
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(held));
}

TEST(Sweep, TrialsAnotherRunIsTrainingOnTheStoreAreLeftToIt) {
  // Two runs of one config on one store (a second terminal) trained every trial twice, each
  // clearing the other's curves. This test's own process stands for the other run, holding the
  // lease on one trial.
  testing::TempDir dir;
  const std::string cfg = dir.write("lab.json", kSweep);
  const auto trials = expand_trials(resolve_config(cfg, "", {}));
  ASSERT_EQ(trials.size(), 4u);
  { Store create(dir.file("r.db")); }
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::string holder = std::string(host) + " pid " + std::to_string(getpid());
  auto lease = [&](const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.file("r.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  };
  lease("INSERT INTO leases VALUES ('" + trials[0].hash + "', '" + host + "', " +
        std::to_string(getpid()) + ", 'now')");
  Result r = empiric(dir, "run " + cfg + " train.population=off --no-progress");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("1 trial(s) left to the empiric running them on this store (" + holder),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("another empiric (" + holder + ") is running them"), std::string::npos)
      << r.err;
  {
    Store store(dir.file("r.db"));
    EXPECT_FALSE(store.has_trial(trials[0].hash));
    for (size_t i = 1; i < trials.size(); ++i) EXPECT_TRUE(store.has_trial(trials[i].hash)) << i;
    EXPECT_EQ(store.take_leases({trials[1].hash}), "");  // (given back when they were recorded)
  }
  lease("DELETE FROM leases");  // the other run is done (or gone)
  r = empiric(dir, "run " + cfg + " train.population=off --no-progress");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Store(dir.file("r.db")).has_trial(trials[0].hash));
}

TEST(Sweep, TrialsAnotherRunRecordedMeanwhileAreNotTrainedAgain) {
  // A run lists the trials it will train when it starts. One that another run on the store
  // recorded after that, before this run's turn came (the other held its lease until then),
  // was trained again: its record replaced, the other's curve cleared first.
  testing::TempDir dir;
  json lab = json::parse(kSweep);
  lab["data"]["n_train"] = 4096;  // a first trial long enough to record the last one under it
  lab["sweep"] = {{"train.epochs", {40, 1, 2}}};
  lab["seeds"] = 1;
  const std::string cfg = dir.write("lab.json", lab.dump());
  const auto trials = expand_trials(resolve_config(cfg, "", {}));
  ASSERT_EQ(trials.size(), 3u);
  ASSERT_EQ(trials[0].config["train"]["epochs"], 40);
  { Store create(dir.file("r.db")); }
  const pid_t pid = spawn_run(dir, cfg, {"train.population=off", "--jobs", "1", "--no-progress"});
  // Once the run holds the first trial's lease it has made its list: the last trial is then
  // recorded by "another run", with a curve of its own.
  auto leased = [&] {
    sqlite3* db = nullptr;
    int n = 0;
    if (sqlite3_open(dir.file("r.db").c_str(), &db) == SQLITE_OK)
      sqlite3_exec(
          db, ("SELECT count(*) FROM leases WHERE hash = '" + trials[0].hash + "'").c_str(),
          [](void* n, int, char** v, char**) { return *static_cast<int*>(n) = std::atoi(v[0]), 0; },
          &n, nullptr);
    sqlite3_close(db);
    return n == 1;
  };
  int status = 0;
  bool ended = false;
  for (int i = 0; i < 120000 && !leased(); ++i) {
    usleep(5000);
    if ((ended = waitpid(pid, &status, WNOHANG) == pid)) break;
  }
  ASSERT_FALSE(ended) << "the run ended before taking its first lease: "
                      << slurp(dir.file("child_err.txt"));
  long long other_run = 0;
  {
    Store other(dir.file("r.db"));
    other_run = other.begin_run("empiric run (another)", cfg, 99, "",
                                other.put_environment({{"host", "another"}}));
    TrialRecord rec;
    rec.hash = trials[2].hash;
    rec.run_id = other_run;
    rec.question = 99;
    rec.config_file = cfg;
    rec.seed = trials[2].seed;
    rec.config = trials[2].config;
    rec.axes = trials[2].axes;
    rec.status = "finished";
    rec.summary = {{"test_acc", 0.25}};
    rec.measures = json::object();
    other.put_metrics(trials[2].hash, 2, 256, {{"train_loss", 7.0}});
    other.put_trial(rec);
  }
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const std::string err = slurp(dir.file("child_err.txt"));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_NE(err.find("1 trial(s) recorded meanwhile by another empiric on this store: not "
                     "trained again"),
            std::string::npos)
      << err;
  Store store(dir.file("r.db"));
  const auto kept = store.trial(trials[2].hash);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->run_id, other_run);
  EXPECT_EQ(kept->summary["test_acc"], 0.25);
  const auto curve = store.metrics(trials[2].hash);
  ASSERT_EQ(curve.size(), 1u);
  EXPECT_EQ(curve[0].value, 7.0);
  for (int k : {0, 1}) {
    const auto rec = store.trial(trials[k].hash);
    ASSERT_TRUE(rec.has_value()) << k;
    EXPECT_NE(rec->run_id, other_run) << k;
  }
}

TEST(Cli, ACudaDeviceTheMachineLacksIsNamedWhereItWasAsked) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU";
  testing::TempDir dir;
  const std::string cfg = dir.write("lab.json", kSweep);
  Result r = empiric(dir, "run " + cfg + " train.device=cuda");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("override \"train.device=cuda\": /train/device = \"cuda\": torch sees no "
                       "CUDA GPU"),
            std::string::npos)
      << r.err;
  json in_file = json::parse(kSweep);
  in_file["train"]["device"] = "cuda";
  const std::string gpu_cfg = dir.write("gpu.json", in_file.dump());
  r = empiric(dir, "run " + gpu_cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(gpu_cfg + ": /train/device = \"cuda\": torch sees no CUDA GPU"),
            std::string::npos)
      << r.err;
  r = empiric(dir, "run " + cfg + " --device cuda");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--device cuda: "), std::string::npos) << r.err;
}

TEST(Cli, AClaimsConfigOutsideTheCheckoutOrMissingIsNamedInTheBank) {
  // "/etc/passwd" was read as <home>//etc/passwd, and a missing config said only "cannot open".
  testing::TempDir home;
  std::filesystem::create_directories(home.file("questions"));
  std::filesystem::create_directories(home.file("configs"));
  home.write("configs/tiny.json", kSweep);
  for (const auto& [config, says] : std::vector<std::pair<std::string, std::string>>{
           {"/etc/passwd",
            "claim 0: /config = \"/etc/passwd\": expected a path inside the checkout"},
           {"configs/../configs/tiny.json", "expected a path inside the checkout"},
           {"configs/nope.json", "claim 0: /config = \"configs/nope.json\": no such file under"}}) {
    home.write("questions/bank.json",
               R"({"source": {}, "sections": [{"number": 1, "title": "T"}],
      "questions": [{"number": 1, "section": 1, "text": "?", "tags": [], "kind": "empirical",
        "claims": [{"id": "q1.a", "statement": "s", "config": ")" +
                   config + R"(",
          "test": {"kind": "trend", "x": "optim.lr", "metric": "train_loss", "direction": -1}}]}]})");
    const std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + home.path() + " --db " +
                            home.file("r.db") + " answer 1 > " + home.file("out.txt") + " 2> " +
                            home.file("err.txt");
    const int status = std::system(cmd.c_str());
    EXPECT_EQ(WEXITSTATUS(status), 2) << config;
    const std::string err = slurp(home.file("err.txt"));
    EXPECT_NE(err.find(home.file("questions/bank.json") + ": question 1 claim 0: /config = "),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(says), std::string::npos) << err;
  }
  // show lists the question all the same, the claim's config among those that did not load.
  { Store create(home.file("r.db")); }
  const std::string show = std::string(EMPIRIC_BINARY) + " --home " + home.path() + " --db " +
                           home.file("r.db") + " show 1 > " + home.file("out.txt") + " 2> " +
                           home.file("err.txt");
  const int shown = std::system(show.c_str());
  EXPECT_EQ(WEXITSTATUS(shown), 0) << slurp(home.file("err.txt"));
  EXPECT_NE(slurp(home.file("out.txt")).find("configs/nope.json"), std::string::npos)
      << slurp(home.file("out.txt"));
}

TEST(Cli, BenchStoresRecordsWithTheQuestionsTheyServe) {
  const std::string bench = EMPIRIC_BENCH_BINARY;
  if (bench.empty() || !std::filesystem::exists(bench))
    GTEST_SKIP() << "built without EMPIRIC_BENCH";
  testing::TempDir dir;
  Result r =
      empiric(dir, "bench --binary " + bench + " --filter 'FusedAdam/cuda:0/shape:0/masked:1'");
  ASSERT_EQ(r.code, 0) << r.err;
  Store store(dir.file("r.db"));
  auto records = store.bench_records(97);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].questions, (std::vector<int>{71, 97}));
  EXPECT_GT(records[0].bytes_per_s, 0);
  EXPECT_EQ(records[0].counters["params"], 266610);
  EXPECT_TRUE(store.bench_records(99).empty());
  EXPECT_NE(empiric(dir, "show 97").out.find("FusedAdam"), std::string::npos);
  EXPECT_EQ(empiric(dir, "bench --binary /no/such/bench").code, 2);
  // A filter that matches nothing said only "no JSON report": the benchmark's reason, and the
  // filter, are named.
  const Result none = empiric(dir, "bench --binary " + bench + " --filter NoSuchBenchmark");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("Failed to match any benchmarks against regex: NoSuchBenchmark"),
            std::string::npos)
      << none.err;
  EXPECT_NE(none.err.find("--filter 'NoSuchBenchmark'"), std::string::npos) << none.err;
}

TEST(Cli, BenchReadsAReportOfOddFieldsWithoutAnInternalError) {
  // A label naming Q99999999999 (std::stoi threw: "internal error: stoi") and a time written as
  // the string "NaN" (a JSON type error): the record is stored with what can be read.
  testing::TempDir dir;
  const std::string fake = dir.write("fake_bench.sh", R"(#!/bin/sh
cat <<'JSON'
{"context": {}, "benchmarks": [
  {"name": "Odd", "run_name": "Odd", "run_type": "iteration", "label": "Q99999999999 Q7",
   "real_time": "NaN", "time_unit": "ns", "iterations": "many"},
  "not a benchmark"]}
JSON
)");
  std::filesystem::permissions(fake, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  const Result r = empiric(dir, "bench --binary " + fake);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 records stored"), std::string::npos) << r.out;
  const auto records = Store(dir.file("r.db")).bench_records(7);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].questions, std::vector<int>{7});
  EXPECT_TRUE(std::isnan(records[0].time_s));
}

TEST(Cli, BenchKeepsTheReportItReadAndCountsNoCallsForAnAggregate) {
  // A median over repetitions: Google Benchmark's "iterations" there is the repetitions (3),
  // which read as 3 calls timed.
  testing::TempDir dir;
  const std::string fake = dir.write("fake_bench.sh", R"(#!/bin/sh
cat <<'JSON'
{"context": {"host_name": "h"}, "benchmarks": [
  {"name": "K_median", "run_name": "K", "run_type": "aggregate", "aggregate_name": "median",
   "label": "Q7", "real_time": 2.5, "time_unit": "us", "iterations": 3},
  {"name": "L", "run_name": "L", "run_type": "iteration", "label": "Q7", "real_time": 1.0,
   "time_unit": "us", "iterations": 4096}]}
JSON
)");
  std::filesystem::permissions(fake, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  const Result r =
      empiric(dir, "bench --binary " + fake + " --repetitions 3 --json " + dir.file("k.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto records = Store(dir.file("r.db")).bench_records(7);
  ASSERT_EQ(records.size(), 2u);
  std::map<std::string, json> counters;
  for (const auto& rec : records) counters[rec.name] = rec.counters;
  EXPECT_FALSE(counters["K"].contains("iterations")) << counters["K"];
  EXPECT_EQ(counters["K"]["repetitions"], 3);
  EXPECT_EQ(counters["L"]["iterations"], 4096) << counters["L"];
  // The report as the binary wrote it, for scripts/kernel_table.py.
  const json kept = json::parse(slurp(dir.file("k.json")));
  EXPECT_EQ(kept["context"]["host_name"], "h");
  EXPECT_EQ(kept["benchmarks"].size(), 2u);
  // A file that cannot be written is named before the benchmarks run, not after.
  const Result nowhere =
      empiric(dir, "bench --binary " + fake + " --json " + dir.file("no/k.json"));
  EXPECT_EQ(nowhere.code, 2);
  EXPECT_NE(nowhere.err.find("--json " + dir.file("no/k.json") + ": cannot write it"),
            std::string::npos)
      << nowhere.err;
  EXPECT_EQ(nowhere.err.find("running "), std::string::npos) << nowhere.err;
}

TEST(Cli, BenchThatMeasuredNothingFails) {
  // Every run reported an error (the CUDA benchmarks without a GPU): it said "0 records stored"
  // and succeeded.
  testing::TempDir dir;
  auto fake = [&](const std::string& name, const std::string& benchmarks) {
    const std::string path = dir.write(name,
                                       "#!/bin/sh\ncat <<'JSON'\n{\"context\": {}, "
                                       "\"benchmarks\": [" +
                                           benchmarks + "]}\nJSON\n");
    std::filesystem::permissions(path, std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
    return path;
  };
  const std::string broken =
      R"({"name": "K/cuda:1", "run_name": "K/cuda:1", "run_type": "iteration",
    "error_occurred": true, "error_message": "no CUDA GPU"})";
  const Result none = empiric(dir, "bench --binary " + fake("none.sh", broken + "," + broken));
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("every benchmark run reported an error (2 runs; the first: K/cuda:1: no "
                          "CUDA GPU)"),
            std::string::npos)
      << none.err;
  const Result some = empiric(
      dir, "bench --binary " +
               fake("some.sh", broken + R"(, {"name": "L", "run_name": "L", "run_type": "iteration",
                 "label": "Q7", "real_time": 1.0, "time_unit": "us", "iterations": 10})"));
  EXPECT_EQ(some.code, 0) << some.err;
  EXPECT_NE(some.out.find("1 records stored"), std::string::npos) << some.out;
  EXPECT_NE(some.err.find("1 benchmark runs reported an error and were not stored"),
            std::string::npos)
      << some.err;
}

TEST(Cli, ResultsAsCsvKeepEveryDigitAndLeaveMissingNumbersEmpty) {
  // Six decimals (a training loss of 3e-7 read 0.000000) and "-" for a diverged trial's missing
  // numbers (a text column to a spreadsheet).
  testing::TempDir dir;
  json lab = json::parse(kSweep);
  lab["sweep"] = json::parse(R"({"optim.lr": [0.1, 1e6]})");
  lab["seeds"] = 1;
  const std::string cfg = dir.write("lab.json", lab.dump());
  const Result ran = empiric(dir, "run " + cfg + " train.population=off --no-progress");
  ASSERT_EQ(ran.code, 0) << ran.err;
  // The diverged trial's line says which loss tripped it: a number over the bound, or none.
  EXPECT_TRUE(std::regex_search(
      ran.err,
      std::regex(
          R"(diverged at step \d+ \(training loss (nan|inf|[-+.e\d]+, over train\.divergence_loss = 1000)\))")))
      << ran.err;
  const Result r = empiric(dir, "results --format csv");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // (the header)
  EXPECT_NE(line.find(",train_loss,train_acc,gen_gap,wall_s,finished_at,preset,command"),
            std::string::npos)
      << line;
  // Each row names the run that trained it: its preset (none here) and its command.
  EXPECT_NE(r.out.find(",," + std::string("empiric run ") + cfg + " train.population=off"),
            std::string::npos)
      << r.out;
  int rows = 0;
  Store store(dir.file("r.db"));
  while (std::getline(lines, line)) {
    ++rows;
    const std::string hash = line.substr(0, line.find(','));
    const auto rec = store.trial(hash);
    ASSERT_TRUE(rec.has_value()) << line;
    // The last fields: test_acc,test_loss,train_loss,wall_s,finished_at (axes are quoted).
    std::vector<std::string> f;
    std::string rest = line.substr(line.rfind('"') + 2), cell;
    std::istringstream cells(rest);
    while (std::getline(cells, cell, ',')) f.push_back(cell);
    if (rest.back() == ',') f.push_back("");
    ASSERT_GE(f.size(), 4u) << line;
    if (rec->status == "finished") {
      EXPECT_EQ(std::stod(f[2]), rec->summary["train_loss"].get<double>()) << line;
      EXPECT_EQ(std::stod(f[0]), rec->summary["test_acc"].get<double>()) << line;
    } else {
      EXPECT_EQ(rec->status, "diverged");
      for (int k : {0, 1, 2}) {
        if (!rec->summary.contains(k == 0 ? "test_acc" : k == 1 ? "test_loss" : "train_loss")) {
          EXPECT_EQ(f[size_t(k)], "") << line;
        }
      }
      EXPECT_EQ(line.find(",-,"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(rows, 2);
  // As a shell takes it back, with the options that chose what ran: a title with a space and a
  // ';' was stored bare ("title=a b; rm -rf x" would run the rm), and --force left out.
  const Result again =
      empiric(dir, "run " + cfg + " train.population=off 'title=a b; rm x' --force --no-progress");
  ASSERT_EQ(again.code, 0) << again.err;
  std::set<std::string> commands;
  {
    Store runs(dir.file("r.db"));
    for (const auto& t : runs.trials())
      commands.insert(runs.run_preset_and_command(t.run_id).second);
  }
  EXPECT_EQ(
      commands.count("empiric run " + cfg + " train.population=off 'title=a b; rm x' --force"), 1u)
      << *commands.begin();
  // A carriage return in a cell is quoted as a line feed is: a CSV reader split the row at it.
  const Result cr = empiric(dir, "run " + cfg +
                                     " train.population=off 'title=a'\"$(printf '\\r')\"'b' "
                                     "--force --no-progress");
  ASSERT_EQ(cr.code, 0) << cr.err;
  const Result listed = empiric(dir, "results --format csv");
  EXPECT_NE(
      listed.out.find(",\"empiric run " + cfg + " train.population=off 'title=a\rb' --force\""),
      std::string::npos)
      << listed.out;
}

TEST(Cli, DataTooLargeForTheMachineIsOneLineWithItsSize) {
  // 4 TB of training inputs: torch's allocator message ("[enforce fail at alloc_cpu.cpp:127]
  // err == 0. DefaultCPUAllocator: ...") and a second line; now one line with the size.
  testing::TempDir dir;
  const std::string cfg = dir.write("big.json", R"({"data": {"name": "blobs", "n_train": 10000000,
    "n_test": 100, "classes": 3, "dim": 100000}, "model": {"name": "mlp", "widths": [4]},
    "train": {"epochs": 1, "batch_size": 32}})");
  const Result r = empiric(dir, "run " + cfg + " --no-progress");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err.rfind("empiric: out of memory: tried to allocate 3.6 TiB (a size in the config", 0), 0u)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Cli, ATrialOutOfMemoryIsRecordedWithTheSizeItAskedFor) {
  // A trial's failure kept torch's allocator line ("[enforce fail at alloc_cpu.cpp:127] err ==
  // 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 640000000000 bytes. Error
  // code 12 ...") where the run as a whole says the size as a user reads it.
  testing::TempDir dir;
  const std::string cfg = dir.write("wide.json", R"({"data": {"name": "blobs", "n_train": 64,
    "n_test": 32, "classes": 3, "dim": 4}, "model": {"name": "mlp", "widths": [400000, 400000]},
    "train": {"epochs": 1, "batch_size": 32}})");
  const Result r = empiric(dir, "run " + cfg + " --no-progress");
  const std::string said =
      "failed: out of memory: tried to allocate 596.0 GiB (a size in the config";
  EXPECT_NE((r.out + r.err).find(said), std::string::npos) << r.out << r.err;
  EXPECT_EQ((r.out + r.err).find("enforce fail"), std::string::npos) << r.out << r.err;
}

TEST(Cli, OutputThatCannotBeWrittenIsAnError) {
  // `list --json > /dev/full` exited 0 having written nothing.
  testing::TempDir dir;
  const std::string cmd = std::string(EMPIRIC_BINARY) + " --home " + EMPIRIC_SOURCE_DIR + " --db " +
                          dir.file("r.db") + " list --json > /dev/full 2> " + dir.file("err.txt");
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_EQ(slurp(dir.file("err.txt")),
            "empiric: standard output could not be written (No space left on device)\n");
  // Written by fmt (the plain list): it threw, "internal error: cannot write to file", exit 3.
  const std::string plain = std::string(EMPIRIC_BINARY) + " --home " + EMPIRIC_SOURCE_DIR +
                            " --db " + dir.file("r.db") + " list > /dev/full 2> " +
                            dir.file("err.txt");
  EXPECT_EQ(WEXITSTATUS(std::system(plain.c_str())), 2);
  EXPECT_EQ(slurp(dir.file("err.txt")),
            "empiric: standard output could not be written (No space left on device)\n");
}

TEST(Cli, ListAndShowAnswerFromTheBank) {
  testing::TempDir dir;
  Result list = empiric(dir, "list --json");
  ASSERT_EQ(list.code, 0) << list.err;
  json all = json::parse(list.out);
  EXPECT_EQ(all.size(), 102u);
  Result master = empiric(dir, "list --section 15 --json");
  EXPECT_EQ(json::parse(master.out).size(), 7u);
  Result show = empiric(dir, "show 99");
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("How does batch size affect generalization?"), std::string::npos);
  // A leading zero is decimal, not octal ("0143" was question 99, "010" question 8).
  EXPECT_EQ(empiric(dir, "show 0099").out, show.out);
  EXPECT_EQ(json::parse(empiric(dir, "show 010 --json").out)["number"], 10);
  EXPECT_EQ(json::parse(empiric(dir, "list --section 010 --json").out),
            json::parse(empiric(dir, "list --section 10 --json").out));
  EXPECT_EQ(json::parse(empiric(dir, "show 99 --json").out)["number"], 99);
  // An empty store: each claim's verdict is the committed report's, named as such (it said
  // "none yet" beside a committed answer).
  EXPECT_NE(show.out.find("latest verdict: none in this store; the committed report's: "),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("; reports/q099/README.md)"), std::string::npos) << show.out;
  const json committed = json::parse(empiric(dir, "show 99 --json").out)["committed_verdicts"];
  ASSERT_TRUE(committed.contains("q99.b.gap_closes")) << committed;
  EXPECT_EQ(committed["q99.b.gap_closes"]["verdict"], "refuted");
  {  // A config named from the checkout, in another folder: read from --home.
    const std::string cmd = "cd '" + dir.path() + "' && '" + EMPIRIC_BINARY + "' --home '" +
                            EMPIRIC_SOURCE_DIR + "' config configs/q39_xor.json > /dev/null 2> '" +
                            dir.file("cfg_err.txt") + "'";
    EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0) << slurp(dir.file("cfg_err.txt"));
  }
  // keys names a choice's allowed values (data.name read only "dataset").
  const Result keys = empiric(dir, "keys");
  EXPECT_EQ(keys.code, 0) << keys.err;
  EXPECT_NE(keys.out.find("dataset (one of: fashion_mnist, mnist, cifar10, xor,"),
            std::string::npos)
      << keys.out.substr(0, 2000);
  // A discussion question names the labs that inform it (it listed every lab's number).
  const Result discussion = empiric(dir, "answer 38");
  EXPECT_EQ(discussion.code, 2);
  EXPECT_NE(discussion.err.find("question 38 is a discussion question with no claims of its "
                                "own; the labs that inform it: Q39, Q40 (empiric answer 39)"),
            std::string::npos)
      << discussion.err;
}

}  // namespace
}  // namespace empiric
