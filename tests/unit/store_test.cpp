#include "core/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/environment.h"
#include "core/errors.h"
#include "support/temp_dir.h"

namespace empiric {
namespace {

TrialRecord make_trial(const std::string& hash, int seed) {
  TrialRecord r;
  r.hash = hash;
  r.question = 99;
  r.config_file = "configs/x.json";
  r.status = "finished";
  r.seed = seed;
  r.config = {{"seed", seed}, {"optim", {{"lr", 0.1}}}};
  r.axes = {{"optim.lr", 0.1}};
  r.summary = {{"test_acc", 0.5 + seed * 1e-4}};
  r.measures = json::object();
  r.wall_s = 1.5;
  return r;
}

// Writes `n` trials (with two metric rows each) as process `p`; used from forked children.
void write_trials(const std::string& db, int p, int n) {
  Store store(db);
  long long env = store.put_environment({{"host", "test"}});
  long long run = store.begin_run("test", "configs/x.json", 99, "", env);
  for (int i = 0; i < n; ++i) {
    std::string hash = "p" + std::to_string(p) + "-" + std::to_string(i);
    store.put_metrics(hash, 1, 10, {{"train_loss", 1.0}, {"test_acc", 0.5}});
    auto r = make_trial(hash, i);
    r.run_id = run;
    store.put_trial(r);
  }
  store.end_run(run, "finished");
}

// Runs `sql` on the database at `path` as another program (or a hand) would, without a Store.
void exec_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(Environment, AvailableMemoryIsTheLeastOfTheHostsAndTheCgroupsLimits) {
  // In a container limited to 4 GiB on a 64 GiB host, MemAvailable is the host's: a data set
  // that fit it passed the guard, and the kernel ended empiric without a word.
  testing::TempDir dir;
  namespace fs = std::filesystem;
  const std::string proc = dir.file("proc"), cg = dir.file("cg");
  fs::create_directories(fs::path(proc) / "self");
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(dir.file(rel)).parent_path());
    dir.write(rel, text);
  };
  const int64_t GiB = int64_t(1) << 30;
  put("proc/meminfo",
      "MemTotal:       67108864 kB\nMemAvailable:   67108864 kB\nHugePages_Total: 0\n");
  put("proc/self/cgroup", "0::/box/job\n");
  EXPECT_EQ(available_memory_bytes(proc, cg), 64 * GiB);  // no cgroup files: the host's
  // v2: 4 GiB allowed, 1.5 GiB in use of which 0.5 GiB inactive page cache: 3 GiB left.
  put("cg/box/memory.max", std::to_string(4 * GiB) + "\n");
  put("cg/box/memory.current", std::to_string(3 * GiB / 2) + "\n");
  put("cg/box/memory.stat",
      "anon 1\ninactive_file " + std::to_string(GiB / 2) + "\nactive_file 7\n");
  put("cg/box/job/memory.max", "max\n");  // unlimited itself; its parent limits it
  EXPECT_EQ(available_memory_bytes(proc, cg), 3 * GiB);
  // v1, as in a container whose /proc/self/cgroup names the host's path: the mount is the
  // container's own cgroup, reached at the root of the walk.
  put("proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/host/path/e6ab\n0::/\n");
  put("cg/memory/memory.limit_in_bytes", std::to_string(2 * GiB) + "\n");
  put("cg/memory/memory.usage_in_bytes", std::to_string(GiB) + "\n");
  EXPECT_EQ(available_memory_bytes(proc, cg), GiB);
  // Unlimited (v1 writes a number near 2^63): the host's again.
  put("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(available_memory_bytes(proc, cg), 64 * GiB);
  // Nothing readable at all: unknown.
  EXPECT_EQ(available_memory_bytes(dir.file("none"), dir.file("none")), -1);
}

TEST(Store, RoundTripsATrial) {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  EXPECT_FALSE(store.has_trial("abc"));
  store.put_trial(make_trial("abc", 3));
  ASSERT_TRUE(store.has_trial("abc"));
  auto t = store.trial("abc");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->seed, 3);
  EXPECT_EQ(t->config["optim"]["lr"], 0.1);
  EXPECT_DOUBLE_EQ(t->summary["test_acc"].get<double>(), 0.5003);
  EXPECT_EQ(store.trials(99).size(), 1u);
  EXPECT_EQ(store.trials(98).size(), 0u);
  store.forget_trial("abc");
  EXPECT_FALSE(store.has_trial("abc"));
}

TEST(Store, OpenedNewByManyAtOnceItIsEveryonesResultsDatabase) {
  // Its tables are made in one transaction: made one by one, a second opener could see the
  // first two alone and refuse the store as someone else's ("its tables: environments, runs"),
  // as a killed-sweep test's probe once did to the sweep it watched.
  testing::TempDir dir;
  int refused = 0;
  std::string why;
  for (int round = 0; round < 40; ++round) {
    const std::string path = dir.file("r" + std::to_string(round) + ".db");
    std::atomic<int> ready{0};
    std::mutex mu;
    std::vector<std::thread> openers;
    for (int t = 0; t < 6; ++t)
      openers.emplace_back([&] {
        ready.fetch_add(1);
        while (ready.load() < 6) std::this_thread::yield();
        try {
          Store store(path);
        } catch (const UserError& e) {
          std::lock_guard<std::mutex> lock(mu);
          ++refused, why = e.what();
        }
      });
    for (auto& t : openers) t.join();
  }
  EXPECT_EQ(refused, 0) << why;
}

TEST(Store, OpeningAStoreThatExistsTakesNoWriteLock) {
  // A command that only reads (results, report) opens the store while a sweep or a merge holds
  // its write lock: it must not wait for it.
  testing::TempDir dir;
  const std::string path = dir.file("r.db");
  { Store made(path); }
  sqlite3* writer = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &writer), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(writer, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto reader = std::async(std::launch::async, [&] { return Store(path).trials().size(); });
  const bool at_once = reader.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  sqlite3_exec(writer, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(writer);
  EXPECT_TRUE(at_once) << "the open waited for the writer";
  EXPECT_EQ(reader.get(), 0u);
}

TEST(Store, ATrialThatFailedWithAnErrorIsRunAgain) {
  // A failed trial (bad data, out of memory) is kept, but the next sweep runs it again;
  // a diverged one is an outcome and is not.
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  auto failed = make_trial("f", 1);
  failed.status = "failed";
  store.put_trial(failed);
  EXPECT_FALSE(store.has_trial("f"));
  EXPECT_TRUE(store.trial("f"));  // still there to read
  auto diverged = make_trial("d", 2);
  diverged.status = "diverged";
  store.put_trial(diverged);
  EXPECT_TRUE(store.has_trial("d"));
  store.put_trial(make_trial("f", 1));  // the rerun replaces the record
  EXPECT_TRUE(store.has_trial("f"));
  EXPECT_EQ(store.trial("f")->status, "finished");
}

TEST(Store, LateJitterIsTheSpreadOfTheLateChangesNotTheirDrift) {
  std::vector<MetricRow> rows;
  // A loss falling by 0.1 per evaluation, and in the second half (steps > 50) alternately 0.05
  // above and below that line; stored out of order, beside another metric.
  for (long long step = 100; step >= 10; step -= 10) {
    const double wiggle = step > 50 ? ((step / 10) % 2 ? 0.05 : -0.05) : 0.0;
    rows.push_back({0, step, "val_loss", 2.0 - 0.01 * double(step) + wiggle});
    rows.push_back({0, step, "test_loss", 2.0 - 0.01 * double(step)});
  }
  // Changes from steps 60..90 to the next: -0.1 +/- 0.1, i.e. 0, -0.2, 0, -0.2: sd 0.11547.
  EXPECT_NEAR(late_jitter(rows, "val_loss"), std::sqrt(0.04 / 3.0), 1e-12);
  EXPECT_NEAR(late_jitter(rows, "test_loss"), 0.0, 1e-12);  // a steady drift is no jitter
  EXPECT_TRUE(std::isnan(late_jitter(rows, "train_loss")));
  EXPECT_TRUE(
      std::isnan(late_jitter({{0, 10, "val_loss", 1.0}, {0, 20, "val_loss", 2.0}}, "val_loss")));
}

TEST(Store, RisesCountTheEvaluationsThatWentUpInStepOrder) {
  // Stored out of order: 3.0, 2.0, 2.5 (up), 1.0, 1.0 + 1e-9 (rounding, not a rise), 1.2 (up).
  const std::vector<MetricRow> rows = {
      {0, 30, "train_loss", 2.5}, {0, 10, "train_loss", 3.0}, {0, 50, "train_loss", 1.0 + 1e-9},
      {0, 20, "train_loss", 2.0}, {0, 60, "train_loss", 1.2}, {0, 40, "train_loss", 1.0},
      {0, 40, "test_loss", 9.0}};
  const Rises r = rises(rows, "train_loss");
  EXPECT_EQ(r.count, 2);
  EXPECT_DOUBLE_EQ(r.fraction, 2.0 / 5.0);
  EXPECT_EQ(rises(rows, "test_loss").count, 0);
  EXPECT_TRUE(std::isnan(rises(rows, "test_loss").fraction));  // one evaluation: no pair
}

TEST(Store, MetricsPastAStepAreDroppedForThatTrialOnly) {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  for (const char* hash : {"a", "b"})
    for (long long step : {10, 20, 30}) store.put_metrics(hash, 0, step, {{"test_loss", 1.0}});
  store.drop_metrics_after("a", 20);
  std::set<long long> a, b;
  for (const auto& m : store.metrics("a")) a.insert(m.step);
  for (const auto& m : store.metrics("b")) b.insert(m.step);
  EXPECT_EQ(a, (std::set<long long>{10, 20}));
  EXPECT_EQ(b, (std::set<long long>{10, 20, 30}));
}

TEST(Store, MetricsAreReplacedNotDuplicated) {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  store.put_metrics("h", 1, 100, {{"loss", 2.0}});
  store.put_metrics("h", 1, 100, {{"loss", 1.0}});
  store.put_metrics("h", 2, 200, {{"loss", 0.5}});
  auto rows = store.metrics("h");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(rows[0].value, 1.0);
  store.clear_metrics("h");
  EXPECT_TRUE(store.metrics("h").empty());
  // Many evaluations in one transaction, replacing like one at a time.
  store.put_metrics("h", {{1, 100, "loss", 2.0}, {1, 100, "acc", 0.1}, {2, 200, "loss", 0.5}});
  store.put_metrics("h", {{2, 200, "loss", 0.25}});
  rows = store.metrics("h");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows.back().value, 0.25);
}

TEST(Store, ANaNMetricComesBackAsNaNNotZero) {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  store.put_metrics("h", 1, 100, {{"test_loss", NAN}, {"lr", 0.1}});
  store.put_metrics("h", {{2, 200, "test_loss", NAN}});
  auto rows = store.metrics("h");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "lr");
  EXPECT_DOUBLE_EQ(rows[0].value, 0.1);
  EXPECT_TRUE(std::isnan(rows[1].value));
  EXPECT_TRUE(std::isnan(rows[2].value));
}

TEST(Store, FourProcessesWritingAThousandTrialsEachLoseNothing) {
  testing::TempDir dir;
  const std::string db = dir.file("r.db");
  { Store init(db); }
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        write_trials(db, p, 1000);
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Store store(db);
  auto trials = store.trials();
  ASSERT_EQ(trials.size(), 4000u);
  std::set<std::string> hashes;
  for (const auto& t : trials) {
    hashes.insert(t.hash);
    EXPECT_EQ(t.status, "finished");
    EXPECT_EQ(t.config["seed"], t.seed);  // intact, not mixed between processes
  }
  EXPECT_EQ(hashes.size(), 4000u);
  EXPECT_EQ(store.metrics("p3-999").size(), 2u);
}

TEST(Store, AProcessKilledMidWriteLeavesAReadableDatabase) {
  testing::TempDir dir;
  const std::string db = dir.file("r.db");
  { Store init(db); }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    write_trials(db, 0, 1000000);  // killed long before it ends
    _exit(0);
  }
  // Wait until it has written something, then kill it without warning.
  for (int i = 0; i < 500; ++i) {
    usleep(10000);
    Store peek(db);
    if (peek.trials().size() >= 50) break;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);

  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(raw);

  Store store(db);
  auto trials = store.trials();
  EXPECT_GE(trials.size(), 50u);
  for (const auto& t : trials) EXPECT_EQ(t.summary["test_acc"].get<double>(), 0.5 + t.seed * 1e-4);
  store.put_trial(make_trial("after", 1));  // and still writable
  EXPECT_TRUE(store.has_trial("after"));
}

TEST(Store, NotADatabaseIsAClearError) {
  testing::TempDir dir;
  std::string path = dir.write("junk.db", std::string(4096, 'x'));
  try {
    Store store(path);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.db"), std::string::npos) << e.what();
  }
}

TEST(Store, MergeAddsTrialsOfAnotherStoreOnce) {
  testing::TempDir dir;
  write_trials(dir.file("a.db"), 0, 10);
  write_trials(dir.file("b.db"), 1, 5);
  write_trials(dir.file("c.db"), 0, 3);  // the same hashes as a.db's first three
  Store a(dir.file("a.db"));
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 5);
  EXPECT_EQ(a.merge_from(dir.file("c.db")), 0);
  EXPECT_EQ(a.trials().size(), 15u);
  EXPECT_EQ(a.metrics("p1-4").size(), 2u);
}

TEST(Store, MergeReplacesATrialThatFailedHereWithItsResultThere) {
  // A shard ran out of memory on one machine and finished on another.
  testing::TempDir dir;
  write_trials(dir.file("b.db"), 0, 2);
  {
    Store b(dir.file("b.db"));
    auto failed = make_trial("p0-1", 1);
    failed.status = "failed";
    failed.summary = {{"error", "out of memory"}};
    b.put_trial(failed);  // b: p0-0 finished, p0-1 failed
  }
  Store a(dir.file("a.db"));
  auto failed = make_trial("p0-0", 0);
  failed.status = "failed";
  failed.summary = {{"error", "out of memory"}};
  a.put_trial(failed);
  a.put_metrics("p0-0", 1, 5, {{"train_loss", 9.0}});  // a killed attempt's row
  write_trials(dir.file("c.db"), 0, 2);                // c: both finished
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 2);        // p0-0's result, and p0-1 (failed) is new
  EXPECT_EQ(a.trial("p0-0")->status, "finished");
  EXPECT_EQ(a.metrics("p0-0").size(), 2u);  // b's curve alone
  EXPECT_EQ(a.trial("p0-1")->status, "failed");
  EXPECT_EQ(a.merge_from(dir.file("c.db")), 1);  // p0-1 finished there
  EXPECT_EQ(a.trial("p0-1")->status, "finished");
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 0);  // a failure never replaces a result
  EXPECT_EQ(a.trial("p0-0")->status, "finished");
  EXPECT_EQ(a.trials().size(), 2u);
}

TEST(Store, MergingAStoreTwiceAddsItsRunsBenchRecordsAndVerdictsOnce) {
  testing::TempDir dir;
  {
    Store b(dir.file("b.db"));
    const long long run = b.begin_run("empiric bench", "", 0, "", b.put_environment({{"a", 1}}));
    b.end_run(run, "finished");
    BenchRecord r;
    r.name = "adam/cpu";
    r.questions = {97};
    r.time_s = 1e-3;
    r.counters = {{"params", 10}};
    b.put_bench(r);
    b.put_verdict(97, "q97.a", "full", "supported", {{"effect", 0.5}});
  }
  Store a(dir.file("a.db"));
  a.merge_from(dir.file("b.db"));
  a.merge_from(dir.file("b.db"));  // as `gpu_run.sh`'s bench.db merged again
  EXPECT_EQ(a.bench_records(97).size(), 1u);
  EXPECT_EQ(a.latest_verdicts(97).size(), 1u);
  sqlite3* db = nullptr;
  sqlite3_open(dir.file("a.db").c_str(), &db);
  long long counts[2] = {-1, -1};
  const char* sql[2] = {"SELECT count(*) FROM runs", "SELECT count(*) FROM verdicts"};
  for (int i = 0; i < 2; ++i)
    sqlite3_exec(
        db, sql[i],
        [](void* out, int, char** v, char**) {
          *static_cast<long long*>(out) = std::stoll(v[0]);
          return 0;
        },
        &counts[i], nullptr);
  sqlite3_close(db);
  EXPECT_EQ(counts[0], 1);
  EXPECT_EQ(counts[1], 1);
}

// A database of someone else's: one table, people.
std::string foreign_db(const testing::TempDir& dir, const std::string& name) {
  sqlite3* db = nullptr;
  sqlite3_open(dir.file(name).c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE people(name TEXT)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return dir.file(name);
}

std::set<std::string> tables_of(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  std::set<std::string> out;
  sqlite3_exec(
      db, "SELECT name FROM sqlite_master WHERE type = 'table'",
      [](void* o, int, char** v, char**) {
        static_cast<std::set<std::string>*>(o)->insert(v[0]);
        return 0;
      },
      &out, nullptr);
  sqlite3_close(db);
  return out;
}

TEST(Store, AnotherProgramsDatabaseIsRefusedAndLeftAsItWas) {
  testing::TempDir dir;
  const std::string people = foreign_db(dir, "people.db");
  try {
    Store store(people);
    FAIL() << "opened";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("people.db: not an empiric results database (its tables: "
                                         "people; no trials)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(tables_of(people), (std::set<std::string>{"people"}));  // no tables of ours added
  try {  // SQLite said only "unable to open database file"
    Store in_a_directory(dir.path());
    FAIL() << "opened";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), dir.path() +
                                         ": a directory; expected a results database file "
                                         "(new or existing)");
  }
  // Merged from, it is named, not the store merged into.
  Store store(dir.file("r.db"));
  try {
    store.merge_from(people);
    FAIL() << "merged";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(people + ": not an empiric results database", 0), 0u)
        << e.what();
  }
  EXPECT_TRUE(store.trials().empty());
}

TEST(Store, AnotherProgramsTableOfTrialsDoesNotMakeItAStore) {
  // Optuna keeps its trials in a table of that name: the file was called "a results database of
  // another empiric version (its table trials has no column hash)", and to answer again.
  testing::TempDir dir;
  const std::string optuna = dir.file("optuna.db");
  ASSERT_NO_FATAL_FAILURE(
      exec_sql(optuna,
               "CREATE TABLE studies(study_id INTEGER PRIMARY KEY, study_name TEXT); "
               "CREATE TABLE trials(trial_id INTEGER PRIMARY KEY, number INTEGER, "
               "study_id INTEGER, state TEXT)"));
  try {
    Store store(optuna);
    FAIL() << "opened";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              optuna +
                  ": not an empiric results database (its tables: studies, trials; its trials "
                  "not empiric's, with no hash and measures); allowed: a results database, or a "
                  "new file");
  }
  EXPECT_EQ(tables_of(optuna), (std::set<std::string>{"studies", "trials"}));
}

TEST(Store, ABatchsWritesLandTogetherOrNotAtAll) {
  // A trial recorded under --force: its old curve cleared, the new one and its record written.
  // A kill between them left the old record with no curve; in a Batch they are one write.
  testing::TempDir dir;
  Store store(dir.file("s.db"));
  store.put_trial(make_trial("h", 0));
  store.put_metrics("h", 1, 10, {{"train_loss", 1.0}});
  {
    Store::Batch batch(store);
    store.clear_metrics("h");
    store.put_metrics("h", 1, 20, {{"train_loss", 2.0}});
    TrialRecord newer = make_trial("h", 0);
    newer.wall_s = 99;
    store.put_trial(newer);
  }  // ended before its commit: none of it
  ASSERT_EQ(store.metrics("h").size(), 1u);
  EXPECT_EQ(store.metrics("h")[0].step, 10);
  EXPECT_NE(store.trial("h")->wall_s, 99);
  {
    Store::Batch batch(store);
    store.clear_metrics("h");
    store.put_metrics("h", 1, 20, {{"train_loss", 2.0}});
    batch.commit();
  }
  ASSERT_EQ(store.metrics("h").size(), 1u);
  EXPECT_EQ(store.metrics("h")[0].step, 20);
}

TEST(Store, ADamagedStoreMergedFromIsNamedAsDamaged) {
  // A page of the other store overwritten: the merge blamed the store merged into ("r.db:
  // database error: database disk image is malformed") and said the other's tables were of
  // another shape.
  testing::TempDir dir;
  write_trials(dir.file("b.db"), 1, 300);
  {
    std::fstream f(dir.file("b.db"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 3);
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), std::streamsize(junk.size()));
  }
  write_trials(dir.file("r.db"), 0, 2);
  Store store(dir.file("r.db"));
  try {
    store.merge_from(dir.file("b.db"));
    FAIL() << "merged";
  } catch (const UserError& e) {
    EXPECT_EQ(
        std::string(e.what()).rfind(dir.file("b.db") + ": damaged (SQLite's quick_check: ", 0), 0u)
        << e.what();
  }
  EXPECT_EQ(store.trials().size(), 2u);  // (nothing of it taken)
}

TEST(Store, TheLatestVerdictIsTheNewestEvenAfterMergingAnOlderStore) {
  // Merged verdicts get new ids: the newest by id was the older store's.
  testing::TempDir dir;
  {
    Store old(dir.file("old.db"));
    old.put_verdict(99, "q99.a", "full", "inconclusive", {{"effect", 0.1}});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Store store(dir.file("r.db"));
  store.put_verdict(99, "q99.a", "full", "supported", {{"effect", 0.2}});
  store.merge_from(dir.file("old.db"));
  const auto latest = store.latest_verdicts(99);
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].verdict, "supported");
}

TEST(Store, AMergedTrialThisStoreHasKeepsItsOwnCurve) {
  // Two runs of one trial that stopped at different steps: merged, the rows past this store's
  // end came from the other run and were drawn as one curve.
  testing::TempDir dir;
  {
    Store other(dir.file("other.db"));
    other.put_trial(make_trial("h", 0));
    for (long long step : {10, 20, 30}) other.put_metrics("h", 0, step, {{"test_loss", 2.0}});
    other.put_trial(make_trial("k", 1));
    other.put_metrics("k", 0, 10, {{"test_loss", 3.0}});
  }
  Store store(dir.file("r.db"));
  store.put_trial(make_trial("h", 0));
  for (long long step : {10, 20}) store.put_metrics("h", 0, step, {{"test_loss", 1.0}});
  store.put_metrics("k", 0, 99, {{"test_loss", 9.0}});  // a killed run's rows, no trial
  EXPECT_EQ(store.merge_from(dir.file("other.db")), 1);
  const auto h = store.metrics("h");
  ASSERT_EQ(h.size(), 2u);
  for (const auto& m : h) EXPECT_EQ(m.value, 1.0);
  const auto k = store.metrics("k");  // the trial taken comes with its own curve alone
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0].value, 3.0);
}

TEST(Store, BenchRecordsAreFoundByQuestion) {
  testing::TempDir dir;
  Store store(dir.file("r.db"));
  BenchRecord r;
  r.name = "fused_adam/10M";
  r.questions = {71, 97};
  r.time_s = 1e-3;
  r.bytes_per_s = 1e11;
  r.counters = {{"params", 1e7}};
  store.put_bench(r);
  EXPECT_EQ(store.bench_records(97).size(), 1u);
  EXPECT_EQ(store.bench_records(99).size(), 0u);
  EXPECT_EQ(store.bench_records(0)[0].counters["params"], 1e7);
}

TEST(Environment, TheCommitIsDirtyForChangedCodeNotForAChangedReport) {
  // An answer writes its report under reports/: the next run's commit was recorded "-dirty".
  if (std::system("git --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no git";
  testing::TempDir repo;
  std::filesystem::create_directories(repo.file("reports"));
  repo.write("lab.cpp", "int x;\n");
  repo.write("reports/README.md", "old\n");
  const std::string git = "git -C " + repo.path() + " ";
  ASSERT_EQ(std::system((git + "init -q && " + git + "add -A && " + git +
                         "-c user.name=t -c user.email=t@t commit -qm c")
                            .c_str()),
            0);
  const std::string clean = git_commit(repo.path());
  ASSERT_EQ(clean.size(), 40u) << clean;
  repo.write("reports/README.md", "new\n");
  EXPECT_EQ(git_commit(repo.path()), clean);
  repo.write("lab.cpp", "int y;\n");
  EXPECT_EQ(git_commit(repo.path()), clean + "-dirty");
}

TEST(Environment, AShellQuotedWordReachesTheCommandAsItIsQuotesAndAll) {
  // A home or file name holding a quote ran as shell code in the report's plot command.
  testing::TempDir dir;
  for (const std::string word : {"plain", "it's", "a'; touch pwned; '", "$(touch pwned)", "''"}) {
    const std::string out = dir.file("out.txt");
    ASSERT_EQ(std::system(("printf %s " + shell_quoted(word) + " > " + shell_quoted(out)).c_str()),
              0);
    std::ifstream in(out);
    std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got, word);
  }
  EXPECT_FALSE(std::filesystem::exists("pwned"));
}

TEST(Store, AStoreOfAnotherVersionIsNamedAsSuchOpenedOrMerged) {
  // A column fewer read "database error: no such column: diverged_step"; a column more, merged,
  // was blamed on the store merged from when the odd one was the store merged into.
  testing::TempDir dir;
  auto with_sql = [&](const std::string& name, const char* sql) {
    { Store store(dir.file(name)); }
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(dir.file(name).c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
    return dir.file(name);
  };
  const std::string newer = with_sql("newer.db", "ALTER TABLE trials ADD COLUMN extra TEXT");
  const std::string older = with_sql("older.db", "ALTER TABLE trials DROP COLUMN diverged_step");
  // One lacking an indexed column failed on the index before the columns were compared.
  const std::string unindexed = with_sql(
      "unindexed.db", "DROP INDEX trials_question; ALTER TABLE trials DROP COLUMN question");
  auto error_opening = [](const std::string& path) {
    try {
      Store store(path);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_opening(newer),
            newer +
                ": a results database of another empiric version (its table trials has a "
                "column extra this empiric does not know); allowed: one this empiric wrote "
                "(answer again into a new --db)");
  EXPECT_NE(error_opening(older).find("(its table trials has no column diverged_step)"),
            std::string::npos)
      << error_opening(older);
  EXPECT_NE(error_opening(unindexed).find("(its table trials has no column question)"),
            std::string::npos)
      << error_opening(unindexed);
  Store here(dir.file("here.db"));
  try {
    here.merge_from(newer);
    ADD_FAILURE() << "merged a store of another version";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(newer + ": a results database of another empiric version"),
              std::string::npos)
        << e.what();
  }
}

TEST(Store, ATableAddedByHandWithAnOddNameIsLeftAloneOpenedOrMerged) {
  // Its name was spliced into "PRAGMA table_info(run notes)": every command on the store failed
  // with "near \"notes\": syntax error" (and the constructor left the database open).
  testing::TempDir dir;
  write_trials(dir.file("b.db"), 1, 2);
  ASSERT_NO_FATAL_FAILURE(exec_sql(
      dir.file("b.db"), "CREATE TABLE \"run notes\"(text TEXT); CREATE TABLE \"order\"(x)"));
  EXPECT_EQ(Store(dir.file("b.db")).trials().size(), 2u);
  Store a(dir.file("a.db"));
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 2);
}

TEST(Store, AMergeThatThisStoreRefusesNamesThisStoreNotTheOtherAsForeign) {
  // A full disk or a read-only --db was said as "OTHER: cannot be merged, its tables are not
  // those of this empiric": a good shard blamed, perhaps thrown away.
  testing::TempDir dir;
  write_trials(dir.file("b.db"), 1, 2);
  const std::string here = dir.file("a.db");
  { Store a(here); }
  ASSERT_NO_FATAL_FAILURE(exec_sql(here,
                                   "CREATE TRIGGER refuse BEFORE INSERT ON trials BEGIN SELECT "
                                   "RAISE(ABORT, 'this store refuses'); END"));
  Store a(here);
  try {
    a.merge_from(dir.file("b.db"));
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_EQ(
        what.rfind(dir.file("b.db") + ": not merged into " + here + ", nothing of it taken (", 0),
        0u)
        << what;
    EXPECT_NE(what.find("this store refuses"), std::string::npos) << what;
    EXPECT_EQ(what.find("not those of this empiric"), std::string::npos) << what;
  }
  EXPECT_EQ(a.trials().size(), 0u);
}

TEST(Store, ATrialWhoseTextIsNotUtf8IsStoredNotLost) {
  // An error message cut at 500 bytes mid-character made dump() throw: the failed trial was never
  // recorded and the sweep stopped.
  testing::TempDir dir;
  Store store(dir.file("s.db"));
  TrialRecord r = make_trial("bad-utf8", 0);
  r.status = "failed";
  r.summary = {{"error", std::string(499, 'a') + "\xC3"}};
  store.put_trial(r);
  const auto back = store.trials();
  ASSERT_EQ(back.size(), 1u);
  const std::string error = back[0].summary["error"];
  EXPECT_EQ(error.substr(0, 499), std::string(499, 'a'));
  EXPECT_EQ(error.substr(499), "\xEF\xBF\xBD");  // U+FFFD, the replacement character
}

TEST(Store, ADamagedTrialRowIsNamedNotACrash) {
  testing::TempDir dir;
  const std::string path = dir.file("s.db");
  {
    Store store(path);
    store.put_trial(make_trial("abc", 3));
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE trials SET summary = 'not json'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  Store store(path);
  try {
    store.trials(99);
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("trial abc: its summary is not a JSON object (not JSON)"),
              std::string::npos)
        << e.what();
  }
  // Nested 100,000 deep: JSON, but printed back it overflowed the stack (a segfault).
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string deep = "UPDATE trials SET summary = '{\"x\": " + std::string(100000, '[') +
                           std::string(100000, ']') + "}'";
  ASSERT_EQ(sqlite3_exec(db, deep.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    store.trials(99);
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("trial abc: its summary is not a JSON object"),
              std::string::npos)
        << e.what();
  }
}

TEST(Store, ADamagedVerdictOrBenchmarkRowIsNamedNotACrash) {
  // `show` ended in "internal error: [json.exception.type_error.302]" (exit 3), or printed
  // <discarded> as JSON.
  testing::TempDir dir;
  const std::string path = dir.file("s.db");
  {
    Store store(path);
    store.put_verdict(7, "q7.a", "full", "supported", {{"effect", 0.5}});
    BenchRecord b;
    b.name = "kernel/x";
    b.questions = {7};
    store.put_bench(b);
  }
  auto damage = [&](const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  };
  auto expect_named = [](const std::function<void()>& read, const std::string& text) {
    try {
      read();
      ADD_FAILURE() << "expected a UserError: " << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  damage("UPDATE verdicts SET json = 'not json'");
  expect_named([&] { Store(path).latest_verdicts(7); },
               "verdicts row 1: its json is not JSON; the store is damaged: delete that row "
               "(sqlite3 ... \"DELETE FROM verdicts WHERE id = 1\")");
  damage("UPDATE verdicts SET json = '[1]'");
  expect_named([&] { Store(path).latest_verdicts(7); },
               "its json is not what empiric writes ([1])");
  damage("UPDATE verdicts SET json = '{\"effect\": \"big\"}'");  // show reads a number
  expect_named([&] { Store(path).latest_verdicts(7); }, "its json is not what empiric writes");
  damage("UPDATE verdicts SET json = '{\"reason\": 5}'");
  expect_named([&] { Store(path).latest_verdicts(7); }, "its json is not what empiric writes");
  damage("UPDATE verdicts SET json = '{\"effect\": null, \"reason\": null}'");  // not measured
  EXPECT_EQ(Store(path).latest_verdicts(7).size(), 1u);
  damage("UPDATE verdicts SET json = '{\"effect\": 0.5}'");
  EXPECT_EQ(Store(path).latest_verdicts(7).at(0).details, json({{"effect", 0.5}}));
  damage("UPDATE bench_records SET questions = 'not json'");
  expect_named([&] { Store(path).bench_records(7); },
               "bench_records row 1: its questions is not JSON");
  damage("UPDATE bench_records SET questions = '[\"7\"]'");
  expect_named([&] { Store(path).bench_records(7); }, "its questions is not what empiric writes");
  damage("UPDATE bench_records SET questions = '[7]', counters = '3'");
  expect_named([&] { Store(path).bench_records(7); },
               "its counters is not what empiric writes (3)");
  damage("UPDATE bench_records SET counters = '{}'");
  EXPECT_EQ(Store(path).bench_records(7).size(), 1u);
}

TEST(Store, AStoreInAFolderItsUserCannotWriteSaysSo) {
  // SQLite writes the -wal and -shm files beside a store even to read it: as another user, a
  // store in a folder of root's read as "not a usable results database".
  testing::TempDir dir;
  const std::string path = dir.file("s.db");
  { Store store(path); }
  std::filesystem::permissions(
      dir.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                      std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                      std::filesystem::perms::others_exec);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  const uid_t other = getuid() == 0 ? 65534 : getuid();  // root: "nobody"; else ourselves
  if (getuid() != 0 && access(dir.path().c_str(), W_OK) == 0)
    GTEST_SKIP() << "not root: no other user to be, and the folder is ours to write";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    std::string said = "opened";
    if (setgid(other) != 0 || setuid(other) != 0)
      said = "setuid failed";
    else
      try {
        Store store(path);
      } catch (const UserError& e) {
        said = e.what();
      }
    const ssize_t n = write(pipe_fds[1], said.data(), said.size());
    _exit(n == ssize_t(said.size()) ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::string said;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) said.append(buf, size_t(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(said.find("s.db: its folder " + dir.path() + " is not writable"), std::string::npos)
      << said;
}

// A lease row as another process would have written it.
void put_lease(const std::string& db_path, const std::string& hash, const std::string& host,
               long long pid, const char* taken_at = "strftime('%Y-%m-%dT%H:%M:%fZ','now')") {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  const std::string sql = "INSERT OR REPLACE INTO leases VALUES ('" + hash + "', '" + host + "', " +
                          std::to_string(pid) + ", " + taken_at + ")";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

TEST(Store, AMergeLeavesATrialThatALiveRunHereIsTrainingToThatRun) {
  // It was taken with the other store's curve, and the live run went on writing its evaluations
  // and then its record over it: one curve of two runs.
  testing::TempDir dir;
  write_trials(dir.file("b.db"), 1, 2);  // p1-0 and p1-1, finished there
  const std::string here = dir.file("a.db");
  {
    Store a(here);
    a.put_metrics("p1-0", 1, 5, {{"train_loss", 2.0}});  // the live run's evaluation so far
  }
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  put_lease(here, "p1-0", host, getppid());  // held by a live process of this machine
  Store a(here);
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 1);  // p1-1 alone
  EXPECT_EQ(a.trials().size(), 1u);
  const auto rows = a.metrics("p1-0");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 5);
  // The run ended without recording it (killed): its lease is another's no longer, and the trial
  // comes with the other store's curve alone.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  put_lease(here, "p1-0", host, child);
  EXPECT_EQ(a.merge_from(dir.file("b.db")), 1);
  EXPECT_EQ(a.trials().size(), 2u);
  EXPECT_EQ(a.metrics("p1-0").size(), 2u);
}

TEST(Store, ALeaseHeldByALiveProcessKeepsItsTrialsAndADeadOnesIsTakenOver) {
  testing::TempDir dir;
  const std::string path = dir.file("s.db");
  Store store(path);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(store.take_leases({"a", "b"}), "");  // this process's
  EXPECT_EQ(store.take_leases({"a"}), "");       // its own again: fine
  // Another live process here (this one's parent) holds "c": none of the set is taken.
  put_lease(path, "c", host, getppid());
  EXPECT_EQ(store.take_leases({"d", "c"}), std::string(host) + " pid " + std::to_string(getppid()));
  EXPECT_EQ(store.take_leases({"d"}), "");  // "d" was not taken with it: free
  // A process that has exited: its lease is taken over.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  put_lease(path, "e", host, child);
  EXPECT_EQ(store.take_leases({"e"}), "");
  {  // One that has exited but is not reaped yet (a zombie, as a run killed by SIGKILL is until
     // its parent waits for it): kill(pid, 0) finds it, yet it holds nothing.
    const pid_t zombie = fork();
    if (zombie == 0) _exit(0);
    for (int i = 0; i < 200; ++i) {  // until it has exited (its /proc state says Z)
      std::ifstream stat("/proc/" + std::to_string(zombie) + "/stat");
      std::string line;
      std::getline(stat, line);
      if (line.find(") Z") != std::string::npos) break;
      usleep(5000);
    }
    put_lease(path, "z", host, zombie, "strftime('%Y-%m-%dT%H:%M:%fZ','now','+1 minute')");
    EXPECT_EQ(store.take_leases({"z"}), "");
    waitpid(zombie, nullptr, 0);
  }
  // A live process that began after the lease was taken (a killed run's pid, taken since by
  // another process): not the holder, and the lease is taken over (it was held for good). Taken
  // after that process began, the same lease is its.
  const pid_t later = fork();
  if (later == 0) {
    pause();
    _exit(0);
  }
  put_lease(path, "h", host, later, "strftime('%Y-%m-%dT%H:%M:%fZ','now','-1 hour')");
  EXPECT_EQ(store.take_leases({"h"}), "");
  put_lease(path, "h", host, later);  // (taken now)
  EXPECT_EQ(store.take_leases({"h"}), std::string(host) + " pid " + std::to_string(later));
  // Dated 10 s before the process began (the wall clock set forward since): still its.
  put_lease(path, "h", host, later, "strftime('%Y-%m-%dT%H:%M:%fZ','now','-10 seconds')");
  EXPECT_EQ(store.take_leases({"h"}), std::string(host) + " pid " + std::to_string(later));
  kill(later, SIGKILL);
  waitpid(later, nullptr, 0);
  // Another machine's: held for a day, then taken over.
  put_lease(path, "f", "elsewhere", 1);
  EXPECT_EQ(store.take_leases({"f"}), "elsewhere pid 1");
  put_lease(path, "f", "elsewhere", 1, "strftime('%Y-%m-%dT%H:%M:%fZ','now','-2 days')");
  EXPECT_EQ(store.take_leases({"f"}), "");
  // Refreshed: this process's own lease is taken now again (another machine's run takes over a
  // lease a day old, and a unit that trains longer stayed its own only until then).
  put_lease(path, "r", host, getpid(), "strftime('%Y-%m-%dT%H:%M:%fZ','now','-2 days')");
  put_lease(path, "s", host, getppid(), "strftime('%Y-%m-%dT%H:%M:%fZ','now','-2 days')");
  store.refresh_leases({"r", "s"});
  auto age_h = [&](const std::string& hash) {
    sqlite3* db = nullptr;
    double hours = -1;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(
        db,
        ("SELECT (julianday('now') - julianday(taken_at)) * 24 FROM leases WHERE hash = '" + hash +
         "'")
            .c_str(),
        [](void* h, int, char** v, char**) {
          return *static_cast<double*>(h) = std::atof(v[0]), 0;
        },
        &hours, nullptr);
    sqlite3_close(db);
    return hours;
  };
  EXPECT_LT(age_h("r"), 0.01);
  EXPECT_GT(age_h("s"), 47.0);  // (another process's: left as it was)
  // Released: only this process's own.
  store.release_leases({"a", "b", "c"});
  put_lease(path, "g", host, getppid());
  EXPECT_NE(store.take_leases({"c", "g"}), "");  // "c" is still the parent's
  EXPECT_EQ(store.take_leases({"a", "b"}), "");
}

}  // namespace
}  // namespace empiric
