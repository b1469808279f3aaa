#include "experiments/lottery.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "core/errors.h"
#include "core/hash.h"
#include "data/datasets.h"
#include "magnitude/magnitude.h"
#include "measures/measures.h"
#include "models/models.h"
#include "train/optim.h"
#include "train/population.h"

namespace empiric {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<torch::Tensor>;

// A network's state: its parameters, then its buffers (batch norm's running statistics), which
// a rewind, a round's start and its trained weights carry as much as the weights. Masks are one
// per parameter.
std::vector<std::pair<std::string, torch::Tensor>> state_of(Net& model, bool buffers = true) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model->named_parameters()) out.emplace_back(item.key(), item.value());
  if (buffers)
    for (const auto& item : model->named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

Params snapshot(Net& model) {
  Params out;
  for (const auto& [name, t] : state_of(model)) out.push_back(t.detach().clone());
  return out;
}

void restore(Net& model, const Params& values) {
  torch::NoGradGuard guard;
  const auto state = state_of(model);
  for (size_t i = 0; i < state.size() && i < values.size(); ++i)
    if (values[i].defined()) state[i].second.copy_(values[i]);
}

// Zeroes the pruned weights.
void apply_masks(Net& model, const Params& masks) {
  torch::NoGradGuard guard;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    if (masks[i].defined()) params[i].mul_(masks[i]);
}

void write_set(torch::serialize::OutputArchive& a, Net& model, const std::string& prefix,
               const Params& values) {
  size_t i = 0;
  for (const auto& [name, t] : state_of(model, prefix != "mask")) {
    if (i < values.size() && values[i].defined()) a.write(prefix + "." + name, values[i].cpu());
    ++i;
  }
}

bool read_set(torch::serialize::InputArchive& a, Net& model, const std::string& prefix,
              Params& out, bool all, const torch::Device& device) {
  out.clear();
  for (const auto& [name, like] : state_of(model, prefix != "mask")) {
    torch::Tensor t;
    if (a.try_read(prefix + "." + name, t)) {
      if (!archived_tensor_problem(t).empty()) return false;  // emptied: unreadable
      out.push_back(t.to(device));
    } else if (all)
      return false;
    else
      out.emplace_back();
  }
  return true;
}

void save_archive(const fs::path& path, Net& model,
                  const std::vector<std::pair<std::string, const Params*>>& sets) {
  torch::serialize::OutputArchive a;
  for (const auto& [prefix, values] : sets) write_set(a, model, prefix, *values);
  save_archive_to(a, path.string());  // a kill mid-save leaves no half-written artifact
}

// Reads the named sets of an artifact; false when it is missing or unreadable.
bool load_archive(const fs::path& path, Net& model, const torch::Device& device,
                  const std::vector<std::pair<std::string, Params*>>& sets) {
  if (!fs::exists(path)) return false;
  torch::serialize::InputArchive a;
  try {
    load_archive_from(a, path.string());
  } catch (const std::exception&) {  // (unreadable, or damaged since written: made again)
    return false;
  }
  for (const auto& [prefix, values] : sets)
    if (!read_set(a, model, prefix, *values, prefix != "mask", device)) return false;
  return true;
}

json layer_remaining(const Params& masks) {
  json out = json::array();
  for (const auto& m : masks)
    if (m.defined()) out.push_back(m.mean().item<double>());
  return out;
}

}  // namespace

std::string lottery_chain_key(const json& trial_config) {
  // The trial's identity (so a key added to the schema later, at its default, moves no chain's
  // folder) less what differs between the chain's trials.
  json c = trial_identity(trial_config);
  c["lottery"].erase("round");
  c["lottery"].erase("control");
  return sha256_hex(canonical_json(c)).substr(0, 16);
}

Params prunable_masks_like(Net& model) {
  Params masks;
  for (const auto& p : model->parameters())
    masks.push_back(p.dim() >= 2 ? torch::ones_like(p) : torch::Tensor());
  return masks;
}

void prune_round(Net& model, Params& masks, const json& lottery, double hidden_fraction,
                 double output_fraction) {
  torch::NoGradGuard guard;
  // Work on copies: pruning zeroes the pruned weights, and the trained network stays as it is.
  Params weights, ms;
  std::vector<size_t> where;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    if (masks[i].defined()) {
      weights.push_back(params[i].detach().clone().contiguous());
      ms.push_back(masks[i].contiguous());
      where.push_back(i);
    }
  if (weights.empty()) return;
  if (lottery["scope"] == "global") {
    kernels::prune_by_magnitude_(weights, ms, hidden_fraction, true);
  } else {
    for (size_t k = 0; k < weights.size(); ++k) {
      const double f = k + 1 == weights.size() ? output_fraction : hidden_fraction;
      kernels::prune_by_magnitude_({weights[k]}, {ms[k]}, f, false);
    }
  }
  for (size_t k = 0; k < where.size(); ++k) masks[where[k]] = ms[k];
}

Params random_masks_like(const Params& like, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  Params out;
  for (const auto& m : like) {
    if (!m.defined()) {
      out.emplace_back();
      continue;
    }
    const int64_t keep = m.sum().item<int64_t>();
    auto flat = torch::zeros({m.numel()}, torch::kFloat32);
    flat.index_fill_(0, torch::randperm(m.numel(), gen).slice(0, 0, keep), 1.0f);
    out.push_back(flat.view(m.sizes()).to(m.device()));
  }
  return out;
}

namespace {

class Chain;

// A network that trains in a round: a chain's ticket (unrecorded when the sweep holds only its
// controls: the next round's mask comes from it) or one of its controls.
struct Member {
  const Trial* trial;
  Net net;
  Params masks;
  bool recorded;
  std::function<void(long long)> on_step;  // round 0 with a rewind step keeps its rewind point
  const Chain* chain;
};
using Result = std::pair<TrainOutcome, double>;  // the outcome and its wall time

TrainOutcome failed_outcome(const std::exception& e) {
  TrainOutcome out;
  out.status = "failed";
  out.summary = {{"error", failure_text(e)}};
  return out;
}

// One seed's chain between its rounds: the trials indexed by (round, control), its data set and
// network, the masks and weights the next round starts from, and its artifacts.
class Chain {
 public:
  Chain(const std::vector<const Trial*>& trials, const std::string& artifact_dir,
        const torch::Device& device, const LotteryCallbacks& cb, const std::string& source)
      : cb_(cb), device_(device), all_(trials) {
    for (const Trial* t : trials) {
      const json& l = t->config["lottery"];
      at_[{l["round"].get<int>(), l["control"].get<std::string>()}] = t;
      rounds_ = std::max(rounds_, l["round"].get<int>());
    }
    if (!at_.count({0, "ticket"}))
      throw UserError(source +
                      ": a lottery chain starts from its dense network, round 0 of the ticket: "
                      "a sweep over lottery.control must keep \"ticket\" among its values");
    dense_ = at_[{0, "ticket"}];
    const json& cfg0 = dense_->config;
    seed_ = cfg0.value("seed", 0);
    dir_ = fs::path(artifact_dir) / lottery_chain_key(cfg0);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec)
      throw UserError(dir_.string() + ": cannot create the chain's artifacts folder (" +
                      ec.message() + "); allowed: a writable folder beside the store (--db)");
    // Seeded draws from torch's global generator, as run_trial makes them: under the lock that
    // keeps another worker's (--jobs) from interleaving.
    std::lock_guard<std::mutex> lock(init_mutex());
    torch::manual_seed(seed_);
    data_ = load_dataset(cfg0["data"], seed_, device, source);
    model_ = make_model(cfg0["model"], data_.input_shape, data_.outputs, source);
    model_->to(device);
    check_lr_mult(cfg0["optim"], *model_, source);
    check_batch_norm_batches(cfg0, model_, data_.x_train.size(0), source);
    check_rewind_step(cfg0, data_.x_train.size(0), source);
    check_measure_batches(cfg0, data_.x_train.size(0), source);
    init_ = snapshot(model_);
  }

  int rounds() const { return rounds_; }
  bool finished() const { return finished_; }
  const Dataset& data() const { return data_; }
  uint64_t seed() const { return seed_; }

  // What a round's outcome carries besides the training's: the round and its sparsity.
  void annotate(const Trial& trial, const Params& masks, TrainOutcome& out) const {
    out.summary["data"] = data_.info;
    out.summary["round"] = trial.config["lottery"]["round"];
    out.summary["control"] = trial.config["lottery"]["control"];
    if (!masks.empty()) {
      out.summary["weights_remaining"] = remaining_fraction(masks);
      out.summary["layer_remaining"] = layer_remaining(masks);
    } else {
      out.summary["weights_remaining"] = 1.0;
    }
  }

  // The networks round r trains, the ticket first (none: the round is in the store, or the chain
  // is done, which finished() then says).
  std::vector<Member> start(int r) {
    const json& lottery = dense_->config["lottery"];
    if (r == 0) {
      // The dense network, its init, its rewind point and its trained weights.
      if (cb_.done(*dense_) &&
          load_archive(dir_ / "chain.pt", model_, device_,
                       {{"init", &init_}, {"rewind", &rewind_}, {"trained", &dense_trained_}})) {
        begin_rounds();
        return {};
      }
      restore(model_, init_);
      rewind_ = init_;
      Member m{dense_, model_, {}, !cb_.done(*dense_), {}, this};
      if (const long long k = lottery["rewind_step"]; k > 0)
        m.on_step = [this, k](long long step) {
          if (step == k) rewind_ = snapshot(model_);
        };
      return {m};
    }
    // Rounds 1..R: the ticket chain, each round's controls beside its ticket.
    bool pending = false;
    for (const char* c : {"ticket", "reinit", "random_prune"})
      if (at_.count({r, c}) && !cb_.done(*at_[{r, c}])) pending = true;
    // Later rounds need this round's ticket; a round is loaded when its trial and artifact exist.
    bool later = false;
    for (const Trial* t : all_)
      if (t->config["lottery"]["round"].get<int>() > r && !cb_.done(*t)) later = true;
    if (!pending && !later) {
      finished_ = true;
      return {};
    }
    const Trial* ticket = at_.count({r, "ticket"}) ? at_[{r, "ticket"}] : nullptr;
    Params loaded_masks, loaded_trained;
    have_ = ticket && cb_.done(*ticket) &&
            load_archive(dir_ / fmt::format("round_{}.pt", r), model_, device_,
                         {{"mask", &loaded_masks}, {"trained", &loaded_trained}});
    std::vector<Member> members;
    if (have_) {
      masks_ = loaded_masks;
      previous_ = loaded_trained;
    } else {
      restore(model_, previous_);
      const double rate = lottery["rate"], out_rate = lottery["output_rate"];
      if (lottery["one_shot"].get<bool>()) {
        masks_ = prunable_masks_like(model_);
        restore(model_, dense_trained_);
        prune_round(model_, masks_, lottery, 1.0 - std::pow(1.0 - rate, r),
                    1.0 - std::pow(1.0 - out_rate, r));
      } else {
        prune_round(model_, masks_, lottery, rate, out_rate);
      }
      restore(model_, rewind_);
      apply_masks(model_, masks_);
      start_ = snapshot(model_);
      members.push_back(
          {ticket ? ticket : dense_, model_, masks_, ticket && !cb_.done(*ticket), {}, this});
    }
    const json& model_cfg = dense_->config["model"];
    if (at_.count({r, "reinit"}) && !cb_.done(*at_[{r, "reinit"}])) {
      std::lock_guard<std::mutex> lock(init_mutex());  // as in the constructor
      torch::manual_seed(seed_ * 1000003ULL + 7919);  // another initialization, same data order
      Net fresh = make_model(model_cfg, data_.input_shape, data_.outputs);
      fresh->to(device_);
      apply_masks(fresh, masks_);
      members.push_back({at_[{r, "reinit"}], fresh, masks_, true, {}, this});
    }
    if (at_.count({r, "random_prune"}) && !cb_.done(*at_[{r, "random_prune"}])) {
      Params random = random_masks_like(masks_, seed_ * 1000003ULL + 31 * uint64_t(r));
      // Its initialization is overwritten by the rewind point, but it draws from torch's global
      // generator, which a chain initializing on another thread holds (init_mutex()).
      std::unique_lock<std::mutex> lock(init_mutex());
      Net net = make_model(model_cfg, data_.input_shape, data_.outputs);
      lock.unlock();
      net->to(device_);
      restore(net, rewind_);
      apply_masks(net, random);
      members.push_back({at_[{r, "random_prune"}], net, random, true, {}, this});
    }
    return members;
  }

  // Records what round r trained (results[k] is members[k]'s) and keeps what the next round
  // starts from.
  void finish(int r, const std::vector<Member>& members, const std::vector<Result>& results) {
    if (r == 0) {
      if (members.empty()) return;  // loaded
      TrainOutcome out = results[0].first;
      const long long k = dense_->config["lottery"]["rewind_step"];
      if (k > 0 && out.summary.value("steps", 0LL) < k) {
        out.status = "failed";
        out.summary["error"] =
            fmt::format("lottery.rewind_step {} is beyond the dense run's {} steps", k,
                        out.summary.value("steps", 0LL));
      }
      if (members[0].recorded) cb_.record(*dense_, out, results[0].second);
      if (out.status != "finished") {
        fail_rest(1, "the dense network (round 0) did not finish: " + out.status, out);
        return;
      }
      dense_trained_ = snapshot(model_);
      save_archive(dir_ / "chain.pt", model_,
                   {{"init", &init_}, {"rewind", &rewind_}, {"trained", &dense_trained_}});
      begin_rounds();
      return;
    }
    for (size_t k = 0; k < members.size(); ++k)
      if (members[k].recorded) cb_.record(*members[k].trial, results[k].first, results[k].second);
    if (have_) return;
    // (This round's controls ran even if its ticket failed: they need only the mask.) Iterative
    // pruning prunes the next round from this ticket's trained weights; one-shot rounds prune
    // the dense network's, so they go on without it.
    if (results[0].first.status != "finished") {
      if (!dense_->config["lottery"]["one_shot"].get<bool>())
        fail_rest(
            r + 1,
            fmt::format("the ticket of round {} did not finish: {}", r, results[0].first.status),
            results[0].first);
      return;
    }
    previous_ = snapshot(model_);
    save_archive(dir_ / fmt::format("round_{}.pt", r), model_,
                 {{"mask", &masks_}, {"init", &start_}, {"trained", &previous_}});
  }

 private:
  void begin_rounds() {
    masks_ = prunable_masks_like(model_);
    previous_ = dense_trained_;
  }
  // Every trial from `from_round` on that is not in the store is recorded as failed (why).
  // The rounds from `from_round` on, which `cause` (the network they descend from) leaves
  // untrained: failed (a rerun retries them) where it failed, diverged at its step where it
  // diverged, which a rerun would repeat.
  void fail_rest(int from_round, const std::string& why, const TrainOutcome& cause) {
    for (const Trial* t : all_)
      if (t->config["lottery"]["round"].get<int>() >= from_round && !cb_.done(*t)) {
        TrainOutcome out;
        out.summary = {{"round", t->config["lottery"]["round"]}};
        if (cause.status == "diverged") {
          out.status = "diverged";
          out.diverged_step = cause.diverged_step;
          out.summary["diverged_step"] = cause.diverged_step;
          out.summary["not_trained"] = why;
        } else {
          out.status = "failed";
          out.summary["error"] = why;
        }
        cb_.record(*t, out, 0.0);
      }
    finished_ = true;
  }

  const LotteryCallbacks& cb_;
  torch::Device device_;
  std::map<std::pair<int, std::string>, const Trial*> at_;
  std::vector<const Trial*> all_;
  const Trial* dense_ = nullptr;
  int rounds_ = 0;
  bool finished_ = false;
  bool have_ = false;  // this round's ticket came from the store and its artifact
  uint64_t seed_ = 0;
  fs::path dir_;
  Dataset data_;
  Net model_ = nullptr;
  Params init_, rewind_, dense_trained_;
  Params masks_, previous_;  // the mask so far; the trained weights the next round prunes
  Params start_;             // this round's ticket's rewound weights (its artifact's init)
};

// Trains one network alone; an unrecorded one (a ticket retrained for its artifact) without
// the store's hooks.
Result train_alone(const Member& m, const torch::Device& device, const LotteryCallbacks& cb) {
  TrainHooks hooks = m.recorded ? cb.hooks(*m.trial, "") : TrainHooks();
  hooks.masks = m.masks;
  hooks.on_step = m.on_step;
  // A run that keeps a rewind point (on_step) must pass that step: resumed from a checkpoint
  // past it, it would leave the chain rewinding to the initialization instead. It starts over.
  if (m.on_step && !hooks.checkpoint_path.empty()) {
    std::error_code ignored;
    fs::remove(hooks.checkpoint_path, ignored);
    hooks.checkpoint_path.clear();
  }
  {  // dropout on a GPU draws the same in every round (on a CPU it has the trial's generator);
     // under the lock, as another chain may be initializing on another thread
    std::lock_guard<std::mutex> lock(init_mutex());
    torch::manual_seed(m.chain->seed());
  }
  auto t0 = std::chrono::steady_clock::now();
  TrainOutcome out;
  try {
    Net net = m.net;
    const json& cfg = m.trial->config;
    out = train_model(cfg, m.chain->data(), net, device, hooks);
    // The measures a round trained in a population takes (train_population), taken alike here.
    if (out.status == "finished" && cfg.contains("measure")) {
      torch::AutoGradMode grad_on(true);
      out.measures = compute_measures(cfg["measure"], net, m.chain->data(),
                                      Loss::of(cfg, m.chain->data()), cfg.value("seed", 0));
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    out = failed_outcome(e);
  }
  m.chain->annotate(*m.trial, m.masks, out);
  return {out, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

// Trains members as one population, each on its chain's data; each is given an even share of
// the wall time. The population's checkpoint is left for the caller to remove once the round is
// recorded (added to `kept`), unless the population failed (kept for the rerun that retries it).
std::vector<Result> train_together(const std::vector<const Member*>& members,
                                   const torch::Device& device, const LotteryCallbacks& cb,
                                   const std::string& source, std::vector<std::string>& kept) {
  std::vector<json> cfgs;
  std::vector<const Dataset*> data;
  std::vector<Net> nets;
  std::vector<TrainHooks> hooks;
  std::vector<std::string> hashes, recorded;
  for (const Member* m : members) {
    cfgs.push_back(m->trial->config);
    data.push_back(&m->chain->data());
    nets.push_back(m->net);
    hashes.push_back(m->trial->hash);
    if (m->recorded) recorded.push_back(m->trial->hash);
  }
  // The population's checkpoint, beside the members' own (which it does not resume); one whose
  // trials this store has no evaluation of is another store's, as for any population.
  std::string checkpoint = population_checkpoint_path(cb.checkpoint_dir, hashes);
  if (cb.restart && !checkpoint.empty()) {
    std::error_code ignored;
    fs::remove(checkpoint, ignored);
  } else if (cb.foreign && !recorded.empty() && cb.foreign(checkpoint, recorded) &&
             fs::exists(checkpoint)) {
    checkpoint.clear();  // (one it cannot remove is neither resumed nor written)
  }
  double every = 0;
  for (const Member* m : members) {
    TrainHooks h = m->recorded ? cb.hooks(*m->trial, checkpoint) : TrainHooks();
    if (!h.checkpoint_path.empty() && fs::exists(h.checkpoint_path)) fs::remove(h.checkpoint_path);
    h.checkpoint_path.clear();
    h.keep_checkpoint = true;  // the population's, removed once the round is recorded
    every = std::max(every, h.checkpoint_every_s);
    h.masks = m->masks;
    hooks.push_back(h);
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<TrainOutcome> outs;
  try {
    outs = train_population(cfgs, data, nets, device, hooks, source, checkpoint, every);
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    outs.assign(members.size(), failed_outcome(e));
  }
  if (!checkpoint.empty() && outs[0].status != "failed") kept.push_back(checkpoint);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Result> results;
  for (size_t k = 0; k < members.size(); ++k) {
    members[k]->chain->annotate(*members[k]->trial, members[k]->masks, outs[k]);
    results.push_back({outs[k], wall / double(members.size())});
  }
  return results;
}

// Trains one round's networks of every chain: as populations of at most train.population
// members that share everything but the per-member keys, where it allows them (a network with a
// rewind point to keep trains alone); the rest one by one. results[k] is members[k]'s.
std::vector<Result> train_round(const std::vector<const Member*>& members,
                                const torch::Device& device, const LotteryCallbacks& cb,
                                const std::string& source, std::vector<std::string>& kept) {
  std::vector<Result> results(members.size());
  std::vector<std::vector<size_t>> units;  // indices into members
  std::vector<json> cfgs;                  // of those that may join a population
  std::vector<size_t> index;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i]->on_step)
      units.push_back({i});
    else
      cfgs.push_back(members[i]->trial->config), index.push_back(i);
  }
  if (!cfgs.empty())
    for (const auto& unit : group_population(cfgs, population_limit(cfgs[0], device.is_cuda()))) {
      units.emplace_back();
      for (size_t k : unit) units.back().push_back(index[k]);
    }
  for (const auto& unit : units) {
    if (unit.size() == 1) {
      results[unit[0]] = train_alone(*members[unit[0]], device, cb);
      continue;
    }
    std::vector<const Member*> together;
    for (size_t i : unit) together.push_back(members[i]);
    const auto outs = train_together(together, device, cb, source, kept);
    for (size_t k = 0; k < unit.size(); ++k) results[unit[k]] = outs[k];
  }
  return results;
}

}  // namespace

void run_lottery_chains(const std::vector<const Trial*>& trials, const std::string& artifact_dir,
                        const torch::Device& device, const LotteryCallbacks& cb,
                        const std::string& source) {
  // The chains, in order of first appearance; those with every trial in the store are skipped
  // (their artifacts are then not needed).
  std::map<std::string, std::vector<const Trial*>> by_key;
  std::vector<std::string> order;
  for (const Trial* t : trials) {
    const std::string key = lottery_chain_key(t->config);
    if (!by_key.count(key)) order.push_back(key);
    by_key[key].push_back(t);
  }
  std::vector<std::unique_ptr<Chain>> chains;
  int rounds = 0;
  for (const auto& key : order) {
    bool any = false;
    for (const Trial* t : by_key[key]) any = any || !cb.done(*t);
    if (!any) continue;
    chains.push_back(std::make_unique<Chain>(by_key[key], artifact_dir, device, cb, source));
    rounds = std::max(rounds, chains.back()->rounds());
  }
  // Round by round across the chains: every chain's round r trains before any chain's r + 1.
  for (int r = 0; r <= rounds; ++r) {
    std::vector<std::vector<Member>> members(chains.size());
    std::vector<bool> started(chains.size(), false);
    std::vector<const Member*> all;
    for (size_t c = 0; c < chains.size(); ++c) {
      if (chains[c]->finished() || r > chains[c]->rounds()) continue;
      members[c] = chains[c]->start(r);
      started[c] = !chains[c]->finished();
      for (const auto& m : members[c]) all.push_back(&m);
    }
    std::vector<std::string> kept;  // the round's population checkpoints
    const std::vector<Result> results = train_round(all, device, cb, source, kept);
    size_t next = 0;
    for (size_t c = 0; c < chains.size(); ++c) {
      if (!started[c]) continue;
      const size_t n = members[c].size();
      chains[c]->finish(
          r, members[c],
          std::vector<Result>(results.begin() + long(next), results.begin() + long(next + n)));
      next += n;
    }
    // Recorded: a kill before here resumed the round's populations from these, not from the
    // start.
    for (const auto& path : kept) {
      std::error_code ignored;
      fs::remove(path, ignored);
    }
  }
}

}  // namespace empiric
