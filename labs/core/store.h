// The results store: one SQLite database in WAL mode (results/empiric.db by default).
//
// Many processes may write at once: every write is a short IMMEDIATE transaction with a generous
// busy timeout. A finished trial is written in one transaction, so a killed run loses at most the
// trial in flight; per-epoch metrics are written as they come and replaced when a trial restarts.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace empiric {

using json = nlohmann::json;

struct TrialRecord {
  std::string hash;
  long long run_id = 0;
  int question = 0;
  std::string config_file;
  std::string status;  // "finished" | "diverged" | "failed"
  long long diverged_step = -1;
  int seed = 0;
  json config;    // resolved trial config
  json axes;      // sweep values
  json summary;   // final metrics (test_acc, train_loss, ...)
  json measures;  // name -> value
  double wall_s = 0;
  std::string finished_at;  // filled by the store
};

struct MetricRow {
  int epoch = 0;
  long long step = 0;
  std::string name;
  double value = 0;
};

struct BenchRecord {
  std::string name;
  std::vector<int> questions;
  double time_s = 0;  // per iteration
  double items_per_s = 0;
  double bytes_per_s = 0;
  json counters;
  std::string created_at;  // filled by the store
  long long env_id = 0;
};

struct VerdictRecord {
  std::string claim, preset, verdict;
  json details;  // effect, ci, n, diverged, seeds_needed, reason, statement, trials, absent
  std::string created_at;
};

class Store {
 public:
  // Opens (creating if needed) the database and its tables. A file that is not a database, or a
  // corrupt one, is a UserError naming it.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // The writes made while a Batch lives go into one transaction, committed by commit() (rolled
  // back if it ends first); the store's own transactions inside it join it.
  class Batch {
   public:
    explicit Batch(Store& store);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    void commit();

   private:
    Store& store_;
    bool done_ = false;
  };

  // Environments are deduplicated by their JSON; returns the row id.
  long long put_environment(const json& env);
  long long begin_run(const std::string& command, const std::string& config_file, int question,
                      const std::string& preset, long long env_id);
  void end_run(long long run_id, const std::string& status);

  // Whether the trial ran to an outcome (finished or diverged): one that failed with an error
  // (bad data, out of memory) is run again by the next sweep, its record replaced.
  bool has_trial(const std::string& hash);
  // Leases: a run takes one on each trial it is about to train, so a second run on the same
  // store (another terminal, a second `answer`) skips them rather than training them again and
  // clearing their curves under the first. Takes a lease on every hash for this process, unless
  // another live process (this machine's, that kill(pid, 0) finds; another machine's, younger
  // than a day) holds one: then takes none and returns the holder ("host pid N"). A killed run's
  // leases are taken over.
  std::string take_leases(const std::vector<std::string>& hashes);
  void release_leases(const std::vector<std::string>& hashes);
  // Marks this process's leases on `hashes` as taken now: a unit that trains for more than a day
  // stays its own to a run on another machine (which takes over leases a day old).
  void refresh_leases(const std::vector<std::string>& hashes);
  std::optional<TrialRecord> trial(const std::string& hash);
  // All trials, newest first; question 0 means every question, config_file "" every file.
  std::vector<TrialRecord> trials(int question = 0, const std::string& config_file = "");
  // Removes a trial and its metrics (for --force).
  void forget_trial(const std::string& hash);

  // Metrics of one evaluation, in one transaction.
  void put_metrics(const std::string& hash, int epoch, long long step,
                   const std::vector<std::pair<std::string, double>>& values);
  // Metrics of many evaluations, in one transaction.
  void put_metrics(const std::string& hash, const std::vector<MetricRow>& rows);
  void clear_metrics(const std::string& hash);
  // Removes a trial's metrics past `step`: rows a killed run stored beyond where its resumed run
  // ended (a resumed run that stops earlier, at an early stop a GPU's rounding moved).
  void drop_metrics_after(const std::string& hash, long long step);
  std::vector<MetricRow> metrics(const std::string& hash);

  // A finished (or diverged/failed) trial, in one transaction.
  void put_trial(const TrialRecord& record);

  long long put_bench(const BenchRecord& record);

  // The environment a run was recorded with (empty object if unknown).
  json run_environment(long long run_id);
  // The preset ("" as written) and the command line of a run; both "" if unknown.
  std::pair<std::string, std::string> run_preset_and_command(long long run_id);

  // Verdicts are appended; the latest per (question, claim) is the current one.
  void put_verdict(int question, const std::string& claim, const std::string& preset,
                   const std::string& verdict, const json& details);
  // With `presets`, only verdicts of those presets count.
  std::vector<VerdictRecord> latest_verdicts(int question,
                                             const std::vector<std::string>& presets = {});
  std::vector<BenchRecord> bench_records(int question = 0);

  // Copies every run, trial, metric and benchmark record of another store into this one
  // (trials already present by hash are kept, except a failed one the other store has a result
  // for, which takes that result). Returns the number of trials taken.
  long long merge_from(const std::string& other_path);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
};

// How much a metric's curve jitters late in a run: the standard deviation of the changes
// between successive evaluations of `name` (in step order) over the second half of the run's
// steps, so that a steady drift adds nothing (with evenly spaced evaluations: with uneven ones,
// such as eval_every_steps that does not divide an epoch, the drift over unequal gaps adds some)
// and evaluation-to-evaluation noise does. NaN with
// fewer than two changes there. Recorded in each finished trial's summary as val_loss_jitter and
// test_loss_jitter.
double late_jitter(const std::vector<MetricRow>& rows, const std::string& name);

// How often `name` went up from one evaluation to the next (in step order): the count of
// successive pairs whose later value exceeds the earlier by more than 1e-6 of its size (float
// rounding of a loss that has stopped moving is no rise), and that count's share of the pairs.
// {0, NaN} with fewer than two evaluations. Recorded in each finished trial's summary as
// train_loss_rises and train_loss_rise_frac: with full-batch gradient descent evaluated every
// step, the steps at which the descent lemma's guarantee did not hold.
struct Rises {
  long long count = 0;
  double fraction = NAN;
};
Rises rises(const std::vector<MetricRow>& rows, const std::string& name);

}  // namespace empiric
