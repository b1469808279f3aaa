// The CLI's commands, one function each; main.cpp only parses arguments and calls them.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace empiric::cli {

struct Context {
  std::string home;  // the checkout: questions/, configs/
  std::string db;    // results database
};

int list_questions(const Context& ctx, int section, const std::string& kind, bool as_json);
int show_question(const Context& ctx, int number, bool as_json, const std::string& preset);
int show_config(const Context& ctx, const std::string& file, const std::string& preset,
                const std::vector<std::string>& overrides, bool trials);
int print_keys(bool markdown);
// question: none for every question's trials.
int print_results(const Context& ctx, std::optional<int> question, const std::string& format,
                  const std::string& preset = "");
int merge_results(const Context& ctx, const std::vector<std::string>& others);
// Runs the Google Benchmark suite (bench/kernels_bench) and stores every record, with the
// question numbers it serves and the environment, in the results store; with `json_out`, also
// writes Google Benchmark's own JSON report there (for scripts/kernel_table.py).
int run_benchmarks(const Context& ctx, const std::string& filter, int repetitions,
                   const std::string& binary, const std::string& json_out = "");

// `empiric bench --suite training`: whole-run timings. One model, the same `members` models one
// after another, and the same members as one batched population (train.population), each on
// `config` for `epochs` epochs at `batch`; with peers, the PyTorch Python peers
// (bench/peers/lenet_fmnist.py: tensor loop, vmap ensemble, sequential) in the same session.
// Stores one bench record per row, linked to questions 95, 99 and 101.
struct TrainingBenchOptions {
  std::string config = "configs/fmnist_lenet.json";
  int members = 8, epochs = 1, batch = 128;
  std::string device = "auto";
  bool peers = true;
  bool tf32 = false;    // train.tf32 for empiric's runs, the same for the peers
  std::string profile;  // where to write a profile of a window of steps (Markdown); empty: none
};
int run_training_bench(const Context& ctx, const TrainingBenchOptions& opts);

// Runs a shell command and returns what it wrote to stdout; `status` gets its exit status (-1
// when it could not be started).
std::string command_output(const std::string& command, int& status);

struct RunOptions {
  std::string config;
  std::string preset;
  std::vector<std::string> overrides;
  std::string device = "auto";
  bool force = false;
  int jobs = 1;
  int shard_index = 0;
  int shard_count = 1;
  bool progress = true;
};
// Runs (or resumes) a config's trials and prints their table. Returns 0, or 1 when trials
// failed (recorded as failed, their error in the store; a rerun retries them).
int run_config(const Context& ctx, const RunOptions& opts);

// Runs (or resumes) every config behind question Q's claims, evaluates the claims, prints the
// verdicts and writes the report. With run = false (empiric report), only evaluates and writes.
// Returns 1 when a run left failed trials, else 0.
int answer_question(const Context& ctx, int number, const RunOptions& opts, bool run);

}  // namespace empiric::cli
