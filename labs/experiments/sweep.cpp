// The train-sweep lab: every trial of a config (sweep grid x seeds), skipping the ones already in
// the store, each written to the store in one transaction when it ends.
#include <fmt/core.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "core/config.h"
#include "core/environment.h"
#include "core/errors.h"
#include "core/profile.h"
#include "core/progress.h"
#include "core/store.h"
#include "device/device_info.h"
#include "experiments/lottery.h"
#include "train/population.h"
#include "train/trainer.h"

#ifndef EMPIRIC_TORCH_VERSION
#define EMPIRIC_TORCH_VERSION "unknown"
#endif

namespace empiric::cli {
namespace {

// A folder of the store's own beside it: KIND for the default results/empiric.db, KIND-NAME for a
// store NAME.db, so two stores in one folder never read each other's checkpoints or artifacts
// (nor resume each other's killed trials).
std::string beside_store(const std::string& db, const std::string& kind) {
  const std::filesystem::path p(db);
  const std::string stem = p.stem().string();
  return (p.parent_path() / (stem == "empiric" ? kind : kind + "-" + stem)).string();
}

std::string checkpoint_dir(const std::string& db) { return beside_store(db, "checkpoints"); }

// Evaluations of a running trial not yet in the store.
struct PendingMetrics {
  std::vector<MetricRow> rows;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lease_refreshed = std::chrono::steady_clock::now();
};

json run_environment(const std::string& home, const torch::Device& device) {
  json env = host_environment(home);
  env["torch"] = EMPIRIC_TORCH_VERSION;
  env["device"] = device.str();
  env["torch_threads"] = torch::get_num_threads();
  env["cuda_kernels"] = built_with_cuda();
  GpuInfo gpu = gpu_info();
  if (gpu.count > 0) {
    env["gpu"] = gpu.name;
    env["gpu_sm"] = fmt::format("{}.{}", gpu.sm_major, gpu.sm_minor);
    env["cuda_runtime"] = gpu.runtime;
  }
  return env;
}

// The command as a shell would take it back: a word with a space, a quote or a ';' quoted
// (pasted, "title=a b; rm -rf x" ran the rm), and every option that changes which trials ran
// or how (--shard, --force, --device, --jobs).
std::string command_line(const RunOptions& o) {
  auto word = [](const std::string& w) {
    const bool plain = !w.empty() && std::all_of(w.begin(), w.end(), [](unsigned char c) {
      return std::isalnum(c) || std::strchr("_./=:,+-@%", c) != nullptr;
    });
    return plain ? w : shell_quoted(w);
  };
  std::string cmd = "empiric run " + word(o.config);
  if (!o.preset.empty()) cmd += " --preset " + word(o.preset);
  for (const auto& v : o.overrides) cmd += " " + word(v);
  if (o.shard_count > 1) cmd += fmt::format(" --shard {}/{}", o.shard_index, o.shard_count);
  if (o.jobs > 1) cmd += fmt::format(" --jobs {}", o.jobs);
  if (o.device != "auto") cmd += " --device " + word(o.device);
  if (o.force) cmd += " --force";
  return cmd;
}

std::string metric(const json& summary, const char* key, const char* format) {
  if (!summary.contains(key) || !summary[key].is_number()) return "-";
  return fmt::format(fmt::runtime(format), summary[key].get<double>());
}

std::string axes_text(const json& axes) {
  std::string out;
  for (const auto& [k, v] : axes.items()) {
    std::string value = v.dump();
    if (v.is_object()) {  // a whole-section axis: name(key=value,...)
      value = v.value("name", std::string());
      std::string rest;
      for (const auto& [kk, vv] : v.items())
        if (kk != "name") rest += (rest.empty() ? "" : ",") + kk + "=" + vv.dump();
      if (!rest.empty()) value += "(" + rest + ")";
    }
    out += (out.empty() ? "" : " ") + k.substr(k.find('.') + 1) + "=" + value;
  }
  return out.empty() ? "-" : out;
}

std::string outcome_text(const TrialRecord& r) {
  if (r.status == "diverged" && r.summary.contains("not_trained"))  // a lottery round
    return fmt::format("not trained ({}); recorded as diverged at that network's step {}",
                       r.summary["not_trained"].get<std::string>(), r.diverged_step);
  if (r.status == "diverged") {
    // Why, where the run recorded it: a loss that is no number, or one over the bound (a task
    // whose loss starts that high, a noisy regression's, needs a higher bound).
    std::string why;
    if (r.summary.contains("diverged_loss")) {
      const json& loss = r.summary["diverged_loss"];
      const json bound = r.config.value("train", json::object()).value("divergence_loss", json());
      if (r.summary.value("diverged_at_evaluation", false))
        why = " (" + (loss.is_string() ? loss.get<std::string>() : loss.dump()) +
              " loss at the evaluation after the last update)";
      else if (loss.is_string())
        why = " (training loss " + loss.get<std::string>() + ")";
      else if (loss.is_number() && bound.is_number())
        why = fmt::format(" (training loss {:.4g}, over train.divergence_loss = {:g})",
                          loss.get<double>(), bound.get<double>());
    }
    return fmt::format("diverged at step {}{}", r.diverged_step, why);
  }
  if (r.status == "failed") return "failed: " + r.summary.value("error", std::string("?"));
  if (r.summary.contains("round") && r.status == "finished")
    return fmt::format("round {}, {:.1f}% of weights: test_acc {}  early stop at step {}  {:.1f}s",
                       r.summary["round"].get<int>(),
                       100 * r.summary.value("weights_remaining", 1.0),
                       metric(r.summary, "test_acc", "{:.4f}"),
                       metric(r.summary, "best_val_step", "{:.0f}"), r.wall_s);
  if (r.summary.contains("range_hi"))
    return fmt::format("suggested range [{:.3g}, {:.3g}], steepest at {:.3g}, stopped at {}",
                       r.summary["range_lo"].get<double>(), r.summary["range_hi"].get<double>(),
                       r.summary["lr_steepest"].get<double>(), metric(r.summary, "lr_stopped", "{:.3g}"));
  if (r.summary.contains("rel_dist_min_norm"))
    return fmt::format("distance to the pseudo-inverse solution {} (relative), residual {}  {:.1f}s",
                       metric(r.summary, "rel_dist_min_norm", "{:.3g}"),
                       metric(r.summary, "residual", "{:.3g}"), r.wall_s);
  if (r.summary.contains("angle_end"))
    return fmt::format("angle to the max-margin direction {} deg, margin {} of the SVM's  {:.1f}s",
                       metric(r.summary, "angle_end", "{:.3g}"),
                       metric(r.summary, "margin_ratio", "{:.3f}"), r.wall_s);
  return fmt::format("test_acc {}  train_loss {}  {:.1f}s", metric(r.summary, "test_acc", "{:.4f}"),
                     metric(r.summary, "train_loss", "{:.4f}"), r.wall_s);
}

// The summary table's metric columns: (header, summary key, format) for the config's lab.
std::vector<std::array<std::string, 3>> table_columns(const json& config) {
  if (config.value("lab", "train") == "implicit") {
    if (config["implicit"]["problem"] == "least_squares")
      return {{"to_min_norm", "rel_dist_min_norm", "{:.3g}"},
              {"to_predicted", "rel_dist_predicted", "{:.3g}"},
              {"norm_ratio", "norm_ratio", "{:.4f}"}};
    return {{"angle_end", "angle_end", "{:.4g}"},
            {"angle_drop", "angle_drop", "{:+.4g}"},
            {"margin_ratio", "margin_ratio", "{:.4f}"}};
  }
  return {{"test_acc", "test_acc", "{:.4f}"},
          {"train_acc", "train_acc", "{:.4f}"},
          {"gen_gap", "gen_gap", "{:+.4f}"},
          {"epochs", "epochs", "{:.0f}"}};
}

}  // namespace

int run_config(const Context& ctx, const RunOptions& o) {
  ResolvedConfig resolved = resolve_config(o.config, o.preset, o.overrides);
  std::vector<Trial> all = expand_trials(resolved);
  const bool lottery = resolved.config["lab"] == "lottery";
  std::vector<Trial> mine;
  if (lottery) {  // a chain's rounds depend on each other: shards take whole chains
    std::map<std::string, int> chain_index;
    for (const auto& t : all) {
      const std::string key = lottery_chain_key(t.config);
      if (!chain_index.count(key)) chain_index[key] = int(chain_index.size());
      if (chain_index[key] % o.shard_count == o.shard_index) mine.push_back(t);
    }
  } else {
    for (size_t i = 0; i < all.size(); ++i)
      if (int(i % size_t(o.shard_count)) == o.shard_index) mine.push_back(all[i]);
  }

  const std::string requested =
      o.device != "auto" ? o.device : resolved.config["train"]["device"].get<std::string>();
  torch::Device device = torch::kCPU;
  try {
    device = pick_device(requested);
  } catch (const UserError& e) {  // said of the key that asked for it: an override, or the file
    if (o.device != "auto") throw;
    const std::string what = e.what(), why = what.substr(what.find(':') + 2);
    std::string from = o.config;
    for (const auto& ov : o.overrides)
      if (ov.rfind("train.device=", 0) == 0) from = "override \"" + ov + "\"";
    throw ConfigError(from, "/train/device", json(requested).dump(), why);
  }
  const int question = resolved.config["question"];
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  // On a GPU trials run one at a time: several at once (each on its own stream) aborted with
  // cudaErrorStreamCaptureUnsupported when one captured its step while others ran (H100,
  // 2026-11-26). A GPU sweep of small models batches them as populations instead.
  if (device.is_cuda() && o.jobs > 1)
    fmt::print(stderr, "--jobs {}: on a GPU trials run one at a time (train.population batches "
                       "compatible ones)\n", o.jobs);
  const int jobs = device.is_cuda() ? 1 : std::min<int>(o.jobs, std::max<size_t>(1, mine.size()));

  Store store(ctx.db);
  const std::string ckpt_dir = checkpoint_dir(ctx.db);
  {
    std::error_code ec;
    std::filesystem::create_directories(ckpt_dir, ec);
    if (ec)
      throw UserError(ckpt_dir + ": cannot create the checkpoint folder (" + ec.message() +
                      "); allowed: a writable folder beside the store (--db)");
    remove_abandoned_writes(ckpt_dir);  // (checkpoints a kill cut short)
  }

  std::vector<const Trial*> pending;
  // The run that recorded each pending trial, as this run found it (0: none, or failed): one
  // that differs when its unit's turn comes was recorded meanwhile by another run (below).
  std::map<std::string, long long> found_by;
  for (const auto& t : mine) {
    if (store.has_trial(t.hash) && !o.force) continue;
    pending.push_back(&t);
    const auto rec = o.force ? store.trial(t.hash) : std::nullopt;
    found_by[t.hash] = rec && rec->status != "failed" ? rec->run_id : 0;
  }
  {  // A data file or lr_mult that only some swept values name fails now, not midway.
    std::vector<json> cfgs;
    for (const Trial* t : pending) cfgs.push_back(t->config);
    try {
      check_trials_start(cfgs, o.config);
    } catch (const ConfigError& e) {
      // A value the command line gave is said of its override, not of a file that lacks it
      // (data.path=... was "fmnist_lenet.json: /data/path").
      if (e.source() != o.config) throw;
      std::string dotted = e.pointer().substr(e.pointer().empty() ? 0 : 1);
      std::replace(dotted.begin(), dotted.end(), '/', '.');
      for (auto it = o.overrides.rbegin(); it != o.overrides.rend(); ++it) {
        std::string key = it->substr(0, it->find('='));
        if (key.rfind("sweep.", 0) == 0) key = key.substr(6);
        if (key == dotted || dotted.rfind(key + ".", 0) == 0)
          throw ConfigError("override \"" + *it + "\"", e.pointer(), e.found(), e.allowed());
      }
      throw;
    }
  }
  fmt::print("{}{}: {} trials{} on {}, {} already in {}, {} to run{}\n", o.config,
             o.preset.empty() ? "" : " (preset " + o.preset + ")", mine.size(),
             o.shard_count > 1 ? fmt::format(" in shard {}/{}", o.shard_index, o.shard_count) : "",
             device.str(), mine.size() - pending.size(), ctx.db, pending.size(),
             jobs > 1 ? fmt::format(" ({} at once)", jobs) : "");
  std::fflush(stdout);

  // train.population's limit; "auto" also keeps the members' data sets within the memory
  // available (the host's to `jobs` populations at once, or the GPU's), and says when that
  // lowered it.
  auto population_limit_here = [&] {
    std::string why;
    std::vector<const json*> cfgs;
    for (const Trial* t : pending) cfgs.push_back(&t->config);
    if (cfgs.empty()) cfgs.push_back(&resolved.config);
    const int64_t available = pending.empty() ? -1 : population_memory_available(device);
    const int limit = population_limit(cfgs, device, jobs, available, o.config, &why);
    if (!why.empty()) fmt::print("population: {}\n", why);
    return limit;
  };

  // Units of work: a trial, a population, or for the lottery lab whole chains (their rounds
  // depend on each other); workers take units.
  std::vector<std::vector<const Trial*>> units;
  if (lottery) {
    std::map<std::string, std::vector<const Trial*>> chains;
    std::vector<std::string> order;
    std::set<std::string> controls;
    for (const auto& t : mine) {
      const std::string key = lottery_chain_key(t.config);
      if (!chains.count(key)) order.push_back(key);
      chains[key].push_back(&t);
      controls.insert(t.config["lottery"]["control"].get<std::string>());
    }
    // Chains run round by round together, as many as let a round's networks (a ticket and its
    // controls per chain) fill one population: one chain per unit when they train alone.
    const int limit = population_limit_here();
    const std::string why = population_incompatibility(resolved.config);
    const size_t per_unit =
        limit >= 2 && why.empty() && !controls.empty()  // (a shard may hold no chain)
            ? std::max<size_t>(1, size_t(limit) / controls.size())
            : 1;
    // Only chains whose networks may share a population (they differ in member keys alone: a
    // swept batch size, say, splits them) are put in one unit; others would only train apart in
    // it, one unit's chains held back from the other workers (--jobs).
    std::map<std::string, std::vector<std::string>> kin;  // population key -> pending chains
    std::vector<std::string> kin_order;
    for (const auto& key : order) {
      bool any = false;
      for (const Trial* t : chains[key]) any = any || std::count(pending.begin(), pending.end(), t);
      if (!any) continue;
      json c = chains[key][0]->config;
      c["lottery"].erase("round"), c["lottery"].erase("control");
      const std::string group = population_group_key(c);
      if (!kin.count(group)) kin_order.push_back(group);
      kin[group].push_back(key);
    }
    size_t pending_chains = 0, largest = 0;
    for (const auto& group : kin_order) {
      for (size_t i = 0; i < kin[group].size(); ++i) {
        if (i % per_unit == 0) units.emplace_back();
        const auto& chain = chains[kin[group][i]];
        units.back().insert(units.back().end(), chain.begin(), chain.end());
      }
      pending_chains += kin[group].size(), largest = std::max(largest, kin[group].size());
    }
    if (pending_chains > 0 && limit >= 2) {
      fmt::print(
          "population: {}{}\n",
          !why.empty() ? "the rounds train one network at a time: " + why
          : per_unit == 1
              ? std::string("each round's ticket and controls train as one")
              : fmt::format("each round's networks of {} chain(s) at a time train as one",
                            std::min(per_unit, largest)),
          why.empty() && kin.size() > 1
              ? fmt::format(" (the chains fall in {} groups that cannot share one)", kin.size())
              : "");
      std::fflush(stdout);
    }
  } else {
    // Compatible trials train as batched populations when train.population allows it.
    const int limit = population_limit_here();
    std::vector<json> cfgs;
    for (const Trial* t : pending) cfgs.push_back(t->config);
    for (const auto& unit : group_population(cfgs, limit)) {
      units.emplace_back();
      for (size_t k : unit) units.back().push_back(pending[k]);
    }
    if (limit > 1 && !pending.empty()) {
      size_t batched = 0, populations = 0;
      for (const auto& u : units)
        if (u.size() > 1) batched += u.size(), ++populations;
      if (batched > 0)
        fmt::print("population: {} of {} trials train in {} batched population(s)\n", batched,
                   pending.size(), populations);
      for (const auto& c : cfgs)
        if (const std::string why = population_incompatibility(c); !why.empty()) {
          fmt::print("population: {} train alone: {}\n",
                     batched > 0 ? "some trials" : "the trials", why);
          break;
        }
    }
    std::fflush(stdout);  // before the trials' lines (stderr), also when stdout is a file
  }

  Progress progress(o.progress);
  long long run_id = -1;  // begun below, once the workers' threads are set
  // Recursive: a trial is recorded in one transaction under it, its buffered metrics included.
  std::recursive_mutex store_mu;
  std::map<std::string, std::function<void()>> flushes;  // buffered metrics, by trial hash
  std::set<std::string> recorded_now;                    // trials this run has recorded
  std::atomic<size_t> next{0};
  std::atomic<int> done{0}, started{0};
  std::atomic<int> elsewhere{0};  // pending trials another empiric is running on this store
  std::string elsewhere_by;       // which (under store_mu)
  std::exception_ptr user_error;
  const std::string artifact_dir = beside_store(ctx.db, "artifacts");
  if (lottery) {
    std::error_code ec;
    std::filesystem::create_directories(artifact_dir, ec);
    if (ec)
      throw UserError(artifact_dir + ": cannot create the lottery chains' artifacts folder (" +
                      ec.message() + "); allowed: a writable folder beside the store (--db)");
    remove_abandoned_writes(artifact_dir);
  }

  const bool checkpoints = resolved.config["train"]["checkpoint"].get<bool>();
  // A trial's own checkpoint ("" without checkpoints).
  auto own_checkpoint = [&](const Trial& trial) {
    return checkpoints ? ckpt_dir + "/" + trial.hash + ".pt" : std::string();
  };
  // A checkpoint of a trial the store holds was left by a --force run stopped while training it
  // again (or a kill between a record and its checkpoint's removal): nothing would resume it, and
  // it stayed for good. Removed, unless a live run holds the trial (training it again now).
  if (checkpoints && !o.force)
    for (const auto& t : mine) {
      std::error_code ec;
      const std::string own = own_checkpoint(t);
      if (std::find(pending.begin(), pending.end(), &t) != pending.end() ||
          !std::filesystem::exists(own, ec) || !store.take_leases({t.hash}).empty())
        continue;
      std::filesystem::remove(own, ec);
      store.release_leases({t.hash});
    }
  // At the first epoch end this long after the last checkpoint (5 s by default): a killed trial
  // loses at most about this much training, and runs of many short epochs do not spend their
  // time writing checkpoints.
  const double checkpoint_every_s = resolved.config["train"]["checkpoint_every_s"];
  // resume_from: the checkpoint that would resume this trial (its own, or its population's).
  auto hooks_resuming = [&](const Trial& trial, const std::string& resume_from) {
    const std::string label = axes_text(trial.axes) + " seed=" + std::to_string(trial.seed);
    TrainHooks hooks;
    hooks.checkpoint_path = own_checkpoint(trial);
    hooks.keep_checkpoint = true;  // removed once the trial is recorded (record, below)
    // --force keeps the stored trial and its curve until the new run is recorded (a run killed
    // midway loses nothing): its evaluations wait in memory and replace the old ones at once.
    if (!o.force) {
      std::lock_guard<std::recursive_mutex> lock(store_mu);
      // Metrics of a trial killed earlier are kept only when a checkpoint resumes it.
      if (resume_from.empty() || !std::filesystem::exists(resume_from))
        store.clear_metrics(trial.hash);
    }
    // Evaluations are buffered and stored in one transaction at most every 2 s, before each
    // checkpoint and when the trial is recorded: a run of many short epochs spent more time in
    // per-evaluation transactions than in evaluating. A kill loses only what its checkpoint's
    // resumption recomputes.
    const std::string hash = trial.hash;
    auto buffered = std::make_shared<PendingMetrics>();
    auto flush = [&, hash, buffered]() {
      std::lock_guard<std::recursive_mutex> lock(store_mu);
      if (o.force) store.clear_metrics(hash);  // (flushed once, when the trial is recorded)
      store.put_metrics(hash, buffered->rows);
      buffered->rows.clear();
      buffered->last = std::chrono::steady_clock::now();
    };
    hooks.on_eval = [&, hash, buffered, flush](const Evaluation& ev) {
      for (const auto& [name, value] : ev.values)
        buffered->rows.push_back({ev.epoch, ev.step, name, value});
      if (!o.force && std::chrono::steady_clock::now() - buffered->last >= std::chrono::seconds(2))
        flush();
      // Every hour: a run on another machine takes over leases a day old, not this one's.
      if (std::chrono::steady_clock::now() - buffered->lease_refreshed >= std::chrono::hours(1)) {
        std::lock_guard<std::recursive_mutex> lock(store_mu);
        store.refresh_leases({hash});
        buffered->lease_refreshed = std::chrono::steady_clock::now();
      }
    };
    if (!o.force) hooks.before_checkpoint = flush;
    hooks.checkpoint_every_s = checkpoint_every_s;
    {
      std::lock_guard<std::recursive_mutex> lock(store_mu);
      flushes[hash] = flush;
    }
    const int number = ++started;
    hooks.on_progress = [&, number, label](long long step, long long total) {
      progress.update(number, int(pending.size()), step, total, label);
    };
    return hooks;
  };
  // A checkpoint whose trial has no evaluation in this store was left by a run into another
  // store (one of the same name, or this one deleted since): resumed, its trial was recorded
  // with the first epochs' curve missing. Removed, and the trial trains from its start.
  // (Evaluations are stored before every checkpoint; one written before any evaluation is
  // retrained too, which costs time, not correctness.)
  auto foreign = [&](const std::string& checkpoint, const std::vector<std::string>& hashes) {
    std::error_code ec;
    if (checkpoint.empty() || !std::filesystem::exists(checkpoint, ec)) return false;
    std::lock_guard<std::recursive_mutex> lock(store_mu);
    for (const auto& h : hashes)
      if (!store.metrics(h).empty()) return false;
    std::filesystem::remove(checkpoint, ec);
    progress.line(
        fmt::format("  {}: a checkpoint whose trials have no evaluation in {} (left by "
                    "another store, or one deleted since){}; training from the start",
                    checkpoint, ctx.db, ec ? ", which cannot be removed" : ": removed"));
    return true;
  };
  auto hooks_for = [&](const Trial& trial) {
    const std::string own = own_checkpoint(trial);
    // --force trains again from the start: not from the checkpoint a killed run left (its
    // metrics are forgotten with the trial), as a population's is removed below.
    if (o.force && !own.empty()) std::filesystem::remove(own);
    if (!o.force && foreign(own, {trial.hash}) && std::filesystem::exists(own)) {
      TrainHooks hooks = hooks_resuming(trial, "");
      hooks.checkpoint_path.clear();  // (one it cannot remove is neither resumed nor written)
      return hooks;
    }
    return hooks_resuming(trial, own);
  };
  auto record = [&](const Trial& trial, const TrainOutcome& out, double wall_s) {
    // Its last evaluations, its curve trimmed and its record in one transaction: under --force
    // a kill between them left the old record with its curve cleared.
    std::unique_lock<std::recursive_mutex> whole(store_mu);
    Store::Batch batch(store);
    std::function<void()> flush;
    if (auto it = flushes.find(trial.hash); it != flushes.end())
      flush = it->second, flushes.erase(it);
    if (flush) flush();
    TrialRecord rec;
    rec.hash = trial.hash;
    rec.run_id = run_id;
    rec.question = question;
    rec.config_file = o.config;
    rec.seed = trial.seed;
    rec.config = trial.config;
    rec.axes = trial.axes;
    rec.status = out.status;
    rec.diverged_step = out.diverged_step;
    rec.summary = out.summary;
    rec.measures = out.measures.is_null() ? json::object() : out.measures;
    if (out.resumed_from_epoch > 0) rec.summary["resumed_from_epoch"] = out.resumed_from_epoch;
    rec.wall_s = wall_s + out.resumed_wall_s;  // (a resumed trial's killed run counts too)
    {                                          // (under `whole`, taken above)
      // The stored curve ends where the trial did (a resumed run may stop before the killed
      // one's last stored evaluation); from it (a resumed trial's evaluations before its kill
      // included), for trials alone and population members alike, the late jitter.
      if (rec.status != "failed" && rec.summary.contains("steps") &&
          rec.summary["steps"].is_number_integer())
        store.drop_metrics_after(trial.hash, rec.summary["steps"].get<long long>());
      if (rec.status == "finished") {
        const auto rows = store.metrics(trial.hash);
        for (const char* name : {"val_loss", "test_loss"})
          if (const double j = late_jitter(rows, name); std::isfinite(j))
            rec.summary[std::string(name) + "_jitter"] = j;
        if (const Rises r = rises(rows, "train_loss"); std::isfinite(r.fraction)) {
          rec.summary["train_loss_rises"] = r.count;
          rec.summary["train_loss_rise_frac"] = r.fraction;
        }
      }
      store.put_trial(rec);
      recorded_now.insert(trial.hash);
    }
    batch.commit();
    whole.unlock();
    // Kept by the trainer until now, so a kill during the measures resumes from it; a failed
    // trial keeps it for the rerun that retries it.
    if (checkpoints && rec.status != "failed") {
      std::error_code ec;
      std::filesystem::remove(own_checkpoint(trial), ec);
    }
    const std::string label = axes_text(trial.axes) + " seed=" + std::to_string(trial.seed);
    progress.line(fmt::format("  [{}/{}] {} {}: {}", ++done, pending.size(),
                              trial.hash.substr(0, 8), label, outcome_text(rec)));
  };
  auto stop_with = [&](std::exception_ptr e) {
    std::lock_guard<std::recursive_mutex> lock(store_mu);
    if (!user_error) user_error = e;
    next = units.size();
  };

  // The leases a unit holds on its pending trials, given back when it ends however it ends.
  struct Leases {
    Store& store;
    std::recursive_mutex& mu;
    std::vector<std::string> hashes;
    ~Leases() {
      if (hashes.empty()) return;
      try {
        std::lock_guard<std::recursive_mutex> lock(mu);
        store.release_leases(hashes);
      } catch (const std::exception&) {  // (a lease left behind is taken over by the next run)
      }
    }
  };
  auto work = [&]() {
    for (size_t i; (i = next.fetch_add(1)) < units.size();) {
      // A unit whose pending trials another empiric is running on this store right now (another
      // terminal's run of the same config) is left to it: trained twice, each run would also
      // clear the other's curves.
      std::vector<std::string> leased;
      for (const Trial* t : units[i])
        if (std::count(pending.begin(), pending.end(), t)) leased.push_back(t->hash);
      std::string holder;
      {
        std::lock_guard<std::recursive_mutex> lock(store_mu);
        holder = store.take_leases(leased);
        if (!holder.empty()) elsewhere_by = holder;
      }
      if (!holder.empty()) {
        elsewhere += int(leased.size());
        progress.line(
            fmt::format("  {} trial(s) left to the empiric running them on this store "
                        "({})",
                        leased.size(), holder));
        continue;
      }
      Leases leases{store, store_mu, leased};
      if (!lottery) {
        // Pending when this run began, but recorded since by another run on this store (which
        // held their leases until it had): trained again here, they would be recorded twice and
        // lose the curve the other stored. (A lottery chain asks the store before each round.)
        std::vector<const Trial*> left;
        {
          std::lock_guard<std::recursive_mutex> lock(store_mu);
          for (const Trial* t : units[i]) {
            const auto rec = store.trial(t->hash);
            const bool meanwhile = rec && rec->status != "failed" &&
                                   rec->run_id != found_by.at(t->hash) && rec->run_id != run_id;
            if (!meanwhile) left.push_back(t);
          }
        }
        if (left.size() < units[i].size())
          progress.line(
              fmt::format("  {} trial(s) recorded meanwhile by another empiric on this "
                          "store: not trained again",
                          units[i].size() - left.size()));
        if (left.empty()) continue;
        units[i] = left;
      }
      if (lottery) {
        LotteryCallbacks cb;
        cb.done = [&](const Trial& t) {
          std::lock_guard<std::recursive_mutex> lock(store_mu);
          // Under --force, only what this run has recorded (the old records stay until replaced).
          return store.has_trial(t.hash) && (!o.force || recorded_now.count(t.hash) > 0);
        };
        cb.hooks = [&](const Trial& t, const std::string& resume_from) {
          return resume_from.empty() ? hooks_for(t) : hooks_resuming(t, resume_from);
        };
        cb.foreign = foreign;
        cb.checkpoint_dir = checkpoints ? ckpt_dir : "";
        cb.restart = o.force;
        cb.record = record;
        try {
          run_lottery_chains(units[i], artifact_dir, device, cb, o.config);
        } catch (const UserError&) {
          return stop_with(std::current_exception());
        }
        continue;
      }
      if (units[i].size() > 1) {
        std::vector<json> cfgs;
        std::vector<TrainHooks> member_hooks;
        // The population's checkpoint (the same pending trials group the same way when a killed
        // sweep runs again).
        std::vector<std::string> hashes;
        for (const Trial* t : units[i]) hashes.push_back(t->hash);
        std::string pop_checkpoint =
            population_checkpoint_path(checkpoints ? ckpt_dir : "", hashes);
        if (o.force && !pop_checkpoint.empty()) std::filesystem::remove(pop_checkpoint);
        if (!o.force && foreign(pop_checkpoint, hashes) && std::filesystem::exists(pop_checkpoint))
          pop_checkpoint.clear();
        for (const Trial* t : units[i]) {
          TrainHooks h = hooks_resuming(*t, pop_checkpoint);
          if (!h.checkpoint_path.empty() && std::filesystem::exists(h.checkpoint_path)) {
            // A population does not resume a member's checkpoint of its own.
            std::filesystem::remove(h.checkpoint_path);
          }
          h.checkpoint_path.clear();
          cfgs.push_back(t->config);
          member_hooks.push_back(h);
        }
        auto t0 = std::chrono::steady_clock::now();
        std::vector<TrainOutcome> outs;
        try {
          outs = run_population(cfgs, device, member_hooks, o.config, pop_checkpoint,
                                checkpoint_every_s);
        } catch (const UserError&) {
          return stop_with(std::current_exception());
        } catch (const std::exception& e) {
          outs.assign(units[i].size(), TrainOutcome());
          for (auto& out : outs) {
            out.status = "failed";
            out.summary = {{"error", failure_text(e)}};
          }
        }
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (size_t k = 0; k < units[i].size(); ++k)
          record(*units[i][k], outs[k], wall / double(units[i].size()));
        // Kept by the population until its members are recorded (their hooks' keep_checkpoint);
        // one that failed keeps it for the rerun that retries it, as a trial alone does.
        if (!pop_checkpoint.empty() &&
            std::none_of(outs.begin(), outs.end(),
                         [](const TrainOutcome& o) { return o.status == "failed"; })) {
          std::error_code ec;
          std::filesystem::remove(pop_checkpoint, ec);
        }
        continue;
      }
      const Trial& trial = *units[i][0];
      TrainHooks hooks = hooks_for(trial);
      auto t0 = std::chrono::steady_clock::now();
      TrainOutcome out;
      try {
        out = run_trial(trial.config, device, hooks, o.config);
      } catch (const UserError&) {
        // A config or data problem affects every trial: stop the sweep with its message.
        return stop_with(std::current_exception());
      } catch (const std::exception& e) {
        // A failure inside torch (out of memory, a shape the model cannot take) ends this trial
        // only.
        out = TrainOutcome();
        out.status = "failed";
        out.summary = {{"error", failure_text(e)}};
      }
      record(trial, out, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  };
  // An error outside a trial's training (the store's: a database locked past its timeout, a full
  // disk) stops the sweep with its message, as a config error does: thrown in a worker's thread
  // it would end the process, with the other workers' trials in flight.
  auto worker = [&]() {
    try {
      work();
    } catch (...) {
      stop_with(std::current_exception());
    }
  };
  // As many workers as there are units to share (a lottery sweep's chains may be one unit), the
  // cores split among them unless train.threads says otherwise.
  const int workers = std::max(1, std::min<int>(jobs, int(units.size())));
  if (workers < jobs && !units.empty())
    fmt::print("--jobs {}: {} unit(s) of work (populations, lottery chains), so {} at once\n", jobs,
               units.size(), workers);
  int threads = resolved.config["train"]["threads"];
  if (threads == 0 && workers > 1) threads = std::max(1, cores / workers);
  if (threads > 0) torch::set_num_threads(threads);
  // The run and its environment (the thread count above included), recorded before any trial.
  const long long env_id = store.put_environment(run_environment(ctx.home, device));
  run_id = store.begin_run(command_line(o), o.config, question, o.preset, env_id);
  std::vector<std::thread> pool;
  for (int j = 1; j < workers; ++j) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (checkpoints)  // (a killed population's, once its members are recorded: see the function)
    remove_spent_population_checkpoints(ckpt_dir,
                                        [&](const std::string& h) { return store.has_trial(h); });
  if (user_error) {
    store.end_run(run_id, "failed");
    std::rethrow_exception(user_error);
  }
  store.end_run(run_id, "finished");

  // Summary of every trial of this config (shard), from the store.
  const auto columns = table_columns(resolved.config);
  fmt::print("\n{:<8}  {:<34} {:>4}  {:<9}", "trial", "sweep", "seed", "status");
  for (const auto& c : columns) fmt::print(" {:>{}}", c[0], std::max<size_t>(9, c[0].size()));
  fmt::print(" {:>8}\n", "wall_s");
  int diverged = 0, failed = 0, missing = 0;
  std::string first_failure;
  for (const auto& t : mine) {
    auto rec = store.trial(t.hash);
    if (!rec) {  // (none should be: every trial run is recorded, failed ones too)
      ++missing;
      fmt::print("{:<8}  {:<34} {:>4}  {:<9}\n", t.hash.substr(0, 8),
                 axes_text(t.axes).substr(0, 34), t.seed, "missing");
      continue;
    }
    diverged += rec->status == "diverged";
    failed += rec->status == "failed";
    if (rec->status == "failed" && first_failure.empty())
      first_failure = t.hash.substr(0, 8) + ": " + rec->summary.value("error", std::string("?"));
    std::string status =
        rec->status == "diverged" ? fmt::format("div@{}", rec->diverged_step) : rec->status;
    fmt::print("{:<8}  {:<34} {:>4}  {:<9}", t.hash.substr(0, 8), axes_text(t.axes).substr(0, 34),
               t.seed, status);
    for (const auto& c : columns)
      fmt::print(" {:>{}}", metric(rec->summary, c[1].c_str(), c[2].c_str()),
                 std::max<size_t>(9, c[0].size()));
    fmt::print(" {:>8.1f}\n", rec->wall_s);
  }
  fmt::print("{} trials: {} finished, {} diverged, {} failed{}. Store: {}\n", mine.size(),
             int(mine.size()) - diverged - failed - missing, diverged, failed,
             missing ? fmt::format(", {} not in the store", missing) : "", ctx.db);
  if (failed == 0 && missing == 0) return 0;
  if (failed == 0) {
    std::fflush(stdout);
    if (elsewhere > 0)
      fmt::print(stderr,
                 "empiric: {}: {} trial(s) not in the store {}: another empiric ({}) is running "
                 "them, or others they train with; run again once it is done\n",
                 o.config, missing, ctx.db, elsewhere_by);
    else
      fmt::print(stderr, "empiric: {}: {} trial(s) not in the store {}; a rerun runs them\n",
                 o.config, missing, ctx.db);
    return 1;
  }
  // A diverged trial is a result; a failed one is not, so the run did not finish its work.
  std::fflush(stdout);
  fmt::print(stderr, "empiric: {}: {} trial(s) failed (first {}); a rerun retries them\n", o.config,
             failed, first_failure);
  return 1;
}

namespace {

// Profiles a window of a run's steady steps with torch's Kineto profiler (host operators, and a
// GPU's kernels and copies): from the first progress report at step 32 or later (past a CUDA
// graph's capture) to the first one at least 256 steps on, or the run's end. Progress comes every
// 16 steps, from inside an epoch, so the window holds training steps only unless a run's epochs
// are shorter than that. The device is synchronized at both ends: the window's kernels are its
// steps' and no one else's. Profiling slows the host side, so a profiled run is never a timed one.
class StepWindow {
 public:
  explicit StepWindow(const torch::Device& device) : cuda_(device.is_cuda()) {}
  ~StepWindow() {
    if (active_) torch::autograd::profiler::disableProfiler();
  }

  TrainHooks hooks() {
    TrainHooks h;
    h.on_progress = [this](long long step, long long total) {
      if (!active_ && from_ < 0 && step >= 32 && step < total) start(step);
      else if (active_ && (step >= from_ + 256 || step >= total)) stop(step);
    };
    return h;
  }
  // After the run: the summary of the window (empty if the run never reached step 32).
  ProfileSummary summary() const { return summarize_profile(events_); }
  long long from() const { return from_; }
  long long steps() const { return to_ - from_; }
  double wall_s() const { return wall_s_; }

 private:
  void start(long long step) {
    namespace pimpl = torch::profiler::impl;
    if (!cuda_) setenv("KINETO_LOG_LEVEL", "5", 0);  // else it reports, as an error, that it found no GPU
    std::set<pimpl::ActivityType> kinds{pimpl::ActivityType::CPU};
    if (cuda_) kinds.insert(pimpl::ActivityType::CUDA);
    const pimpl::ProfilerConfig config(pimpl::ProfilerState::KINETO);
    if (cuda_) torch::cuda::synchronize();
    torch::autograd::profiler::prepareProfiler(config, kinds);
    torch::autograd::profiler::enableProfiler(config, kinds);
    active_ = true;
    from_ = step;
    t0_ = std::chrono::steady_clock::now();
  }
  void stop(long long step) {
    if (cuda_) torch::cuda::synchronize();
    wall_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    auto result = torch::autograd::profiler::disableProfiler();
    active_ = false;
    to_ = step;
    for (const auto& e : result->events())
      if (e.endNs() >= e.startNs())
        events_.push_back({e.name(), e.startThreadId(), e.startNs(), e.endNs(),
                           e.deviceType() != c10::DeviceType::CPU});
  }

  bool cuda_;
  bool active_ = false;
  long long from_ = -1, to_ = -1;
  std::chrono::steady_clock::time_point t0_;
  double wall_s_ = 0;
  std::vector<ProfiledEvent> events_;
};

// The PyTorch peer (bench/peers/lenet_fmnist.py) trains one recipe, told only the LR, batch size,
// epochs, members, validation split and data directory: the first key where a config's resolved
// value differs from it, as "key = value (the peer's: value)", or "" where the peer does the same
// work.
std::string peer_recipe_mismatch(const json& c) {
  static const std::vector<std::pair<const char*, json>> recipe = {
      {"/data/name", "fashion_mnist"},
      {"/model/name", "lenet_300_100"},
      {"/data/train_subset", 0},
      {"/data/test_subset", 0},
      {"/data/label_noise", 0},
      {"/data/random_labels", 0},
      {"/data/imbalance", 1},
      {"/data/feature_scale", 0},
      {"/data/standardize", true},
      {"/model/activation", "relu"},
      {"/model/batch_norm", false},
      {"/model/bias", true},
      {"/model/dropout", 0},
      {"/model/init", "default"},
      {"/model/init_scale", 1},
      {"/optim/name", "sgd"},
      {"/optim/momentum", 0.9},
      {"/optim/nesterov", false},
      {"/optim/weight_decay", 0},
      {"/optim/l1", 0},
      {"/optim/clip_norm", 0},
      {"/optim/grad_noise", 0},
      {"/optim/sam_rho", 0},
      {"/optim/lr_mult", json::object()},
      {"/schedule/name", "cosine"},
      {"/schedule/warmup_epochs", 0},
      {"/schedule/min_lr_frac", 0},
      {"/schedule/scale_rule", "none"},
      {"/train/loss", "auto"},
      {"/train/class_weights", "none"},
      {"/train/order", "reshuffle"},
      {"/schedule/warmup_steps", 0},
      {"/data/standardize_per", "channel"},
      {"/train/early_stop_patience", 0},
      {"/train/stop_train_loss", 0},
      {"/train/stop_at_targets", false}};
  for (const auto& [key, value] : recipe) {
    const json::json_pointer at(key);
    if (c.contains(at) && c.at(at) != value) {
      std::string name = std::string(key + 1);
      std::replace(name.begin(), name.end(), '/', '.');
      return name + " = " + c.at(at).dump() + " (the peer's: " + value.dump() + ")";
    }
  }
  return "";
}

}  // namespace

int run_training_bench(const Context& ctx, const TrainingBenchOptions& o) {
  // The profile's file, tried before the timed runs (for appending: a profile already there is
  // kept until the new one is written): one it cannot write fails now, not after.
  if (!o.profile.empty()) check_writable_file("--profile", o.profile, "p.md");
  const std::string path =
      std::filesystem::path(o.config).is_absolute() || std::filesystem::exists(o.config)
          ? o.config
          : ctx.home + "/" + o.config;
  ResolvedConfig resolved =
      resolve_config(path, "", {"seeds=" + std::to_string(o.members),
                                "train.epochs=" + std::to_string(o.epochs), "train.steps=0",
                                "train.batch_size=" + std::to_string(o.batch),
                                "train.checkpoint=false",
                                std::string("train.tf32=") + (o.tf32 ? "true" : "false")});
  std::vector<json> cfgs;
  for (const auto& t : expand_trials(resolved)) cfgs.push_back(t.config);
  if (cfgs.size() != size_t(o.members))
    throw UserError(path + ": the training suite needs a config without a sweep (it has " +
                    std::to_string(cfgs.size() / size_t(o.members)) + " grid points)");
  if (const std::string why = population_incompatibility(cfgs[0]); !why.empty())
    throw UserError(path + ": cannot train as a population: " + why);
  const torch::Device device = pick_device(o.device);

  // Training time is each run's compute_s: steps only, no data loading or evaluation.
  fmt::print(stderr,
             "training {} models one after another, then as one population, then as one "
             "population with their own LRs ...\n",
             o.members);
  {
    // A short untimed run of each path first: the process's one-time costs (the CUDA context
    // and cuBLAS handles, the first kernels loaded, the allocator's first blocks) fell on the
    // first timed trial, in the single row and the sequential sum (0.45 s against the others'
    // 0.18 s on an H200, 2.4 % of the 64 trials' time).
    std::vector<json> warm = cfgs;
    for (auto& c : warm) c["train"]["steps"] = 20;
    run_trial(warm[0], device, {}, path);
    run_population(warm, device, std::vector<TrainHooks>(warm.size()), path);
  }
  double sequential = 0, single = 0, single_acc = 0, seq_acc = 0;
  // GPU utilization over each whole run (data loading and evaluation included); NaN on a CPU.
  double single_util = NAN, seq_util = NAN, pop_util = NAN;
  std::string graphs = "-";
  std::vector<double> solo_acc;
  {
    UtilizationSampler seq_sampler;
    for (size_t i = 0; i < cfgs.size(); ++i) {
      std::optional<UtilizationSampler> single_sampler;
      if (i == 0) single_sampler.emplace();
      TrainOutcome out = run_trial(cfgs[i], device, {}, path);
      if (i == 0) single_util = single_sampler->mean();
      sequential += out.summary["compute_s"].get<double>();
      solo_acc.push_back(out.summary.value("test_acc", 0.0));
      seq_acc += solo_acc.back() / double(cfgs.size());
      if (i == 0) {
        single = out.summary["compute_s"].get<double>(), single_acc = solo_acc.back();
        graphs = out.summary.value("cuda_graphs", "-");
      }
    }
    seq_util = seq_sampler.mean();
  }
  std::vector<TrainOutcome> outs;
  {
    UtilizationSampler pop_sampler;
    outs = run_population(cfgs, device, std::vector<TrainHooks>(cfgs.size()), path);
    pop_util = pop_sampler.mean();
  }
  const double population = outs[0].summary["population_compute_s"].get<double>();
  // The same members, each with its own LR (0.5x to 2x the config's): the path of a population
  // that steps apart (an LR sweep), one fused step with a row of hyperparameters per member.
  std::vector<json> apart = cfgs;
  const double lr = resolved.config["optim"]["lr"];
  for (size_t i = 0; i < apart.size(); ++i)
    apart[i]["optim"]["lr"] = lr * std::pow(2.0, double(i % 5) / 2.0 - 1.0);
  std::vector<TrainOutcome> apart_outs;
  double apart_util = NAN;
  {
    UtilizationSampler sampler;
    apart_outs = run_population(apart, device, std::vector<TrainHooks>(apart.size()), path);
    apart_util = sampler.mean();
  }
  double apart_acc = 0;
  for (const auto& out : apart_outs) apart_acc += out.summary.value("test_acc", 0.0) / double(apart_outs.size());
  double pop_acc = 0, largest_diff = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    const double a = outs[i].summary.value("test_acc", 0.0);
    pop_acc += a / double(outs.size());
    largest_diff = std::max(largest_diff, std::abs(a - solo_acc[i]));
  }
  const long long samples_per_epoch = outs[0].summary["samples"].get<long long>() / o.epochs;
  // Every row trains the same model on as many examples, so one model-epoch's FLOPs (forward and
  // backward, the trainer's count) give each row's achieved rate.
  const double flops_per_model_epoch = outs[0].summary["train_flops"].get<double>() / o.epochs;

  struct Row {
    std::string name;
    double train_s, test_acc;
    int models;
    double gpu_util = NAN;
  };
  std::vector<Row> rows = {{"empiric/single", single, single_acc, 1, single_util},
                           {"empiric/sequential", sequential, seq_acc, o.members, seq_util},
                           {"empiric/population", population, pop_acc, o.members, pop_util},
                           {"empiric/population-own-lrs",
                            apart_outs[0].summary["population_compute_s"].get<double>(), apart_acc,
                            o.members, apart_util}};
  if (o.peers) {
    // The project's venv, or EMPIRIC_PYTHON (a GPU image's python3 with torch).
    const char* env_python = std::getenv("EMPIRIC_PYTHON");
    const std::string python = env_python ? env_python : ctx.home + "/.venv/bin/python",
                      peer = ctx.home + "/bench/peers/lenet_fmnist.py",
                      data_path = cfgs[0]["data"]["path"].get<std::string>();
    if (const std::string differs = peer_recipe_mismatch(cfgs[0]); !differs.empty()) {
      fmt::print(stderr,
                 "peers skipped: {} trains other work than the PyTorch peer's fixed "
                 "recipe (bench/peers/lenet_fmnist.py): {}\n",
                 path, differs);
    } else if ((!env_python && !std::filesystem::exists(python)) ||
               !std::filesystem::exists(peer)) {
      fmt::print(stderr, "peers skipped: they need .venv/bin/python (or EMPIRIC_PYTHON) and {}\n",
                 peer);
    } else {
      const std::string cmd =
          shell_quoted(python) + " " + shell_quoted(peer) + " --epochs " +
          std::to_string(o.epochs) + " --batch " + std::to_string(o.batch) + " --members " +
          std::to_string(o.members) + " --device " + device.str() + " --lr " +
          resolved.config["optim"]["lr"].dump() + " --validation " +
          cfgs[0]["data"]["validation"].dump() +
          (data_path.empty() ? "" : " --data " + shell_quoted(data_path)) +
          (o.tf32 ? " --tf32" : "") +
          // The sequential peer is members x the tensor peer's epoch: run
          // it only where that takes little time.
          (o.members <= 16 ? " --modes tensor,ensemble,sequential" : " --modes tensor,ensemble") +
          " 2>&1";
      fmt::print(stderr, "running the PyTorch peers: {}\n", cmd);
      int status = 0;
      std::istringstream lines(command_output(cmd, status));
      // One JSON line per peer; anything else is the peer's stderr, shown if it failed. A line
      // without the numbers is skipped with a word: it must not cost empiric's own records.
      std::vector<std::string> other;
      int peer_rows = 0;
      for (std::string line; std::getline(lines, line);) {
        json r = json::parse(line, nullptr, false);
        if (r.is_discarded() || !r.is_object()) {
          other.push_back(line);
          continue;
        }
        const auto num = [&](const char* k) { return r.contains(k) && r[k].is_number(); };
        if (!r.contains("peer") || !r["peer"].is_string() || !num("epoch_s") || !num("test_acc")) {
          fmt::print(stderr, "peer line skipped (no peer, epoch_s and test_acc): {}\n", line);
          continue;
        }
        const int models = num("members") ? r["members"].get<int>() : 1;
        rows.push_back({"peer/" + r["peer"].get<std::string>(),
                        r["epoch_s"].get<double>() * double(o.epochs), r["test_acc"].get<double>(), models});
        ++peer_rows;
      }
      if (status != 0) {
        fmt::print(stderr,
                   "the PyTorch peers exited with status {}; {} peer row(s) kept. Their "
                   "last output:\n",
                   status, peer_rows);
        for (size_t i = other.size() > 10 ? other.size() - 10 : 0; i < other.size(); ++i)
          fmt::print(stderr, "  {}\n", other[i]);
      }
    }
  }

  // Each empiric row's models x epochs per second over each peer's: how much more training a
  // second buys (> 1: empiric is faster), whatever the number of models in either row.
  auto rate = [&](const Row& r) { return double(o.epochs * r.models) / r.train_s; };
  // And its test accuracy less each peer's: speed is not to be bought with another result.
  auto vs_peers = [&](const Row& r, bool accuracy) {
    json out = json::object();
    for (const auto& p : rows)
      if (p.name.rfind("peer/", 0) == 0)
        out[p.name.substr(5)] = accuracy ? r.test_acc - p.test_acc : rate(r) / rate(p);
    return out;
  };

  Store store(ctx.db);
  json env = run_environment(ctx.home, device);
  const long long env_id = store.put_environment(env);
  fmt::print("{:<40} {:>10} {:>10} {:>12} {:>14} {:>9} {:>9} {:>8}\n", "run", "train_s", "epoch_s",
             "samples/s", "models*ep/s", "GFLOP/s", "test_acc", "gpu_%");
  for (const auto& r : rows) {
    BenchRecord b;
    b.name = "training/" + r.name;
    b.questions = {95, 99, 101};
    b.time_s = r.train_s / double(o.epochs * r.models);  // per model epoch
    b.items_per_s = double(samples_per_epoch) * double(o.epochs * r.models) / r.train_s;
    b.counters = {{"models", r.models},
                  {"epochs", o.epochs},
                  {"batch_size", o.batch},
                  {"train_s", r.train_s},
                  {"models_epochs_per_s", double(o.epochs * r.models) / r.train_s},
                  {"gflops_per_s", flops_per_model_epoch * double(o.epochs * r.models) / r.train_s / 1e9},
                  {"test_acc", r.test_acc},
                  {"config", o.config},
                  {"tf32", o.tf32 && device.is_cuda()},
                  {"gpu_utilization", std::isnan(r.gpu_util) ? json() : json(r.gpu_util)}};
    if (r.name.rfind("empiric/", 0) == 0 && device.is_cuda())
      b.counters["cuda_graphs"] =
          r.name == "empiric/population"           ? outs[0].summary.value("cuda_graphs", "-")
          : r.name == "empiric/population-own-lrs" ? apart_outs[0].summary.value("cuda_graphs", "-")
                                                   : graphs;
    if (json ratios = vs_peers(r, false); r.name.rfind("empiric/", 0) == 0 && !ratios.empty()) {
      b.counters["vs_peers"] = ratios;
      // (Members at 0.5-2x the base LR against peers at the base LR: no like-for-like accuracy.)
      if (r.name != "empiric/population-own-lrs")
        b.counters["test_acc_vs_peers"] = vs_peers(r, true);
    }
    if (r.name == "empiric/population") {
      b.counters["speedup_vs_sequential"] = sequential / population;
      b.counters["largest_member_test_acc_difference"] = largest_diff;
    }
    b.env_id = env_id;
    store.put_bench(b);
    fmt::print("{:<40} {:>10.2f} {:>10.3f} {:>12.0f} {:>14.2f} {:>9.1f} {:>9.4f} {:>8}\n", r.name,
               r.train_s, b.time_s, b.items_per_s, double(o.epochs * r.models) / r.train_s,
               b.counters["gflops_per_s"].get<double>(), r.test_acc,
               std::isnan(r.gpu_util) ? std::string("-") : fmt::format("{:.0f}", r.gpu_util));
  }
  std::vector<const Row*> peers;
  for (const auto& r : rows)
    if (r.name.rfind("peer/", 0) == 0) peers.push_back(&r);
  if (!peers.empty()) {
    fmt::print("\nempiric against each peer: models x epochs per second, empiric over peer (> 1: "
               "empiric trains more per second), and test accuracy, empiric less peer\n{:<40}",
               "run");
    for (const Row* p : peers) {
      std::string name = p->name.substr(5);  // less "peer/" and "pytorch-python-"
      if (name.rfind("pytorch-python-", 0) == 0) name = name.substr(15);
      fmt::print(" {:>18.18}", name);
    }
    fmt::print("\n");
    for (const auto& r : rows) {
      if (r.name.rfind("empiric/", 0) != 0) continue;
      fmt::print("{:<40}", r.name);
      const bool own_lrs = r.name == "empiric/population-own-lrs";  // (not the peers' LR)
      for (const Row* p : peers)
        fmt::print(" {:>18}", own_lrs ? fmt::format("{:.2f}x   (LRs)", rate(r) / rate(*p))
                                      : fmt::format("{:.2f}x {:+.4f}", rate(r) / rate(*p),
                                                    r.test_acc - p->test_acc));
      fmt::print("\n");
    }
  }
  if (!peers.empty())
    fmt::print(
        "(population-own-lrs trains its members at 0.5-2x the peers' LR: its accuracy is "
        "not theirs to compare)\n");
  fmt::print("population of {}: {:.2f}x the models x epochs per second of training them one after "
             "another; {} records stored in {}\n",
             o.members, sequential / population, rows.size(), ctx.db);

  if (!o.profile.empty()) {
    // One more epoch of the single model and of the population, each with a window of its steps
    // profiled (not timed above: the profiler slows the host).
    std::vector<json> one = cfgs;
    for (auto& c : one) c["train"]["epochs"] = 1;
    std::string md = fmt::format(
        "## Where a step's time goes: `{}`, batch {}, {}\n\nFrom `empiric bench --suite "
        "training --profile`: a window of steady training steps in one more epoch of each run, "
        "profiled with torch's Kineto profiler (not the timed runs above). Device events are "
        "kernels, copies and sets with their durations; host operators are torch's, with their "
        "self time (less the operators inside them).\n\n",
        o.config, o.batch, device.str());
    auto section = [&](const std::string& title, const std::function<void(const TrainHooks&)>& run) {
      StepWindow window(device);
      try {
        run(window.hooks());
      } catch (const std::exception& e) {  // the timed rows are stored: say why, and go on
        md += fmt::format("### {}\n\nNot profiled: {}\n\n", title, e.what());
        fmt::print(stderr, "profile of {} failed: {}\n", title, e.what());
        return;
      }
      if (window.steps() <= 0) {
        md += fmt::format("### {}\n\nToo few steps to profile (the window opens at step 32).\n\n", title);
        return;
      }
      md += profile_markdown(fmt::format("{}: steps {} to {}", title, window.from(),
                                         window.from() + window.steps()),
                             window.summary(), window.wall_s(), window.steps());
    };
    section("one model", [&](const TrainHooks& h) { run_trial(one[0], device, h, path); });
    section(fmt::format("a population of {}", o.members), [&](const TrainHooks& h) {
      run_population(one, device, std::vector<TrainHooks>(one.size(), h), path);
    });
    std::ofstream profile_out(o.profile);
    profile_out << md;
    profile_out.close();
    if (!profile_out)
      throw UserError("--profile " + o.profile + ": could not be written (is the disk full?)");
    fmt::print("profile of one model and of the population written to {}\n", o.profile);
  }
  return 0;
}

}  // namespace empiric::cli
