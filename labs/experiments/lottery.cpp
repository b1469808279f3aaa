#include "experiments/lottery.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/errors.h"
#include "core/hash.h"
#include "data/datasets.h"
#include "magnitude/magnitude.h"
#include "models/models.h"
#include "train/population.h"

namespace empiric {
namespace {

namespace fs = std::filesystem;
using Params = std::vector<torch::Tensor>;

Params snapshot(Net& model) {
  Params out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

void restore(Net& model, const Params& values) {
  torch::NoGradGuard guard;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i]);
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
  for (const auto& item : model->named_parameters()) {
    if (i < values.size() && values[i].defined())
      a.write(prefix + "." + item.key(), values[i].cpu());
    ++i;
  }
}

bool read_set(torch::serialize::InputArchive& a, Net& model, const std::string& prefix,
              Params& out, bool all, const torch::Device& device) {
  out.clear();
  for (const auto& item : model->named_parameters()) {
    torch::Tensor t;
    if (a.try_read(prefix + "." + item.key(), t))
      out.push_back(t.to(device));
    else if (all)
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
  const std::string tmp = path.string() + ".tmp";
  a.save_to(tmp);
  fs::rename(tmp, path);  // a kill mid-save leaves no half-written artifact
}

// Reads the named sets of an artifact; false when it is missing or unreadable.
bool load_archive(const fs::path& path, Net& model, const torch::Device& device,
                  const std::vector<std::pair<std::string, Params*>>& sets) {
  if (!fs::exists(path)) return false;
  torch::serialize::InputArchive a;
  try {
    a.load_from(path.string());
  } catch (const c10::Error&) {
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

void run_lottery_chain(const std::vector<const Trial*>& chain, const std::string& artifact_dir,
                       const torch::Device& device, const LotteryCallbacks& cb,
                       const std::string& source) {
  // Index the chain by (round, control).
  std::map<std::pair<int, std::string>, const Trial*> at;
  int rounds = 0;
  for (const Trial* t : chain) {
    const json& l = t->config["lottery"];
    at[{l["round"].get<int>(), l["control"].get<std::string>()}] = t;
    rounds = std::max(rounds, l["round"].get<int>());
  }
  const Trial* dense_trial = at.count({0, "ticket"}) ? at[{0, "ticket"}] : nullptr;
  if (!dense_trial) throw std::logic_error("lottery chain without its round 0");
  // Nothing to do when every trial is in the store (artifacts are then not needed).
  bool any = false;
  for (const Trial* t : chain) any = any || !cb.done(*t);
  if (!any) return;

  const json& cfg0 = dense_trial->config;
  const json& lottery = cfg0["lottery"];
  const uint64_t seed = cfg0.value("seed", 0);
  const fs::path dir = fs::path(artifact_dir) / lottery_chain_key(cfg0);
  fs::create_directories(dir);

  torch::manual_seed(seed);
  Dataset data = load_dataset(cfg0["data"], seed, device, source);
  Net model = make_model(cfg0["model"], data.input_shape, data.outputs);
  model->to(device);
  Params init = snapshot(model), rewind, dense_trained;

  // What a round's outcome carries besides the training's: the round and its sparsity.
  auto annotate = [&](const Trial& trial, const Params& masks, TrainOutcome& out) {
    out.summary["data"] = data.info;
    out.summary["round"] = trial.config["lottery"]["round"];
    out.summary["control"] = trial.config["lottery"]["control"];
    if (!masks.empty()) {
      out.summary["weights_remaining"] = remaining_fraction(masks);
      out.summary["layer_remaining"] = layer_remaining(masks);
    } else {
      out.summary["weights_remaining"] = 1.0;
    }
  };
  auto failed = [](const std::exception& e) {
    TrainOutcome out;
    out.status = "failed";
    out.summary = {{"error", std::string(e.what()).substr(0, 500)}};
    return out;
  };
  // Trains one network alone; an unrecorded one (a ticket retrained for its artifact) without
  // the store's hooks.
  auto train = [&](const Trial& trial, Net& net, const Params& masks, bool recorded,
                   std::function<void(long long)> on_step = {}) {
    TrainHooks hooks = recorded ? cb.hooks(trial, "") : TrainHooks();
    hooks.masks = masks;
    hooks.on_step = std::move(on_step);
    torch::manual_seed(seed);  // dropout draws the same in every round
    auto t0 = std::chrono::steady_clock::now();
    TrainOutcome out;
    try {
      out = train_model(trial.config, data, net, device, hooks);
    } catch (const UserError&) {
      throw;
    } catch (const std::exception& e) {
      out = failed(e);
    }
    annotate(trial, masks, out);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(out, wall);
  };
  // A round's networks (the ticket and its controls: one data set, one batch size, their own
  // start and mask) train as one population where train.population allows it, else one by one;
  // outcome and wall time (a population's split evenly) per member, in order.
  struct Member {
    const Trial* trial;
    Net net;
    Params masks;
    bool recorded;
  };
  const bool together =
      population_limit(cfg0, device.is_cuda()) >= 2 && population_incompatibility(cfg0).empty();
  auto train_round = [&](std::vector<Member>& members) {
    std::vector<std::pair<TrainOutcome, double>> results;
    if (!together || members.size() < 2) {
      for (auto& m : members) results.push_back(train(*m.trial, m.net, m.masks, m.recorded));
      return results;
    }
    std::vector<json> cfgs;
    std::vector<Net> nets;
    std::vector<TrainHooks> hooks;
    std::vector<std::string> hashes;
    for (const auto& m : members) {
      cfgs.push_back(m.trial->config);
      nets.push_back(m.net);
      hashes.push_back(m.trial->hash);
    }
    // The population's checkpoint, beside the members' own (which it does not resume).
    const std::string checkpoint = population_checkpoint_path(cb.checkpoint_dir, hashes);
    double every = 0;
    for (const auto& m : members) {
      TrainHooks h = m.recorded ? cb.hooks(*m.trial, checkpoint) : TrainHooks();
      if (!h.checkpoint_path.empty() && fs::exists(h.checkpoint_path))
        fs::remove(h.checkpoint_path);
      h.checkpoint_path.clear();
      every = std::max(every, h.checkpoint_every_s);
      h.masks = m.masks;
      hooks.push_back(h);
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<TrainOutcome> outs;
    try {
      outs = train_population(cfgs, data, nets, device, hooks, source, checkpoint, every);
    } catch (const UserError&) {
      throw;
    } catch (const std::exception& e) {
      outs.assign(members.size(), failed(e));
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < members.size(); ++k) {
      annotate(*members[k].trial, members[k].masks, outs[k]);
      results.push_back({outs[k], wall / double(members.size())});
    }
    return results;
  };
  auto fail_rest = [&](int from_round, const std::string& why) {
    for (const Trial* t : chain)
      if (t->config["lottery"]["round"].get<int>() >= from_round && !cb.done(*t)) {
        TrainOutcome out;
        out.status = "failed";
        out.summary = {{"error", why}, {"round", t->config["lottery"]["round"]}};
        cb.record(*t, out, 0.0);
      }
  };

  // Round 0: the dense network, its init, its rewind point and its trained weights.
  const long long k = lottery["rewind_step"];
  if (!(cb.done(*dense_trial) &&
        load_archive(dir / "chain.pt", model, device,
                     {{"init", &init}, {"rewind", &rewind}, {"trained", &dense_trained}}))) {
    restore(model, init);
    rewind = init;
    auto [out, wall] = train(*dense_trial, model, {}, !cb.done(*dense_trial), [&](long long step) {
      if (step == k) rewind = snapshot(model);
    });
    if (k > 0 && out.summary.value("steps", 0LL) < k) {
      out.status = "failed";
      out.summary["error"] = fmt::format(
          "lottery.rewind_step {} is beyond the dense run's {} steps", k,
          out.summary.value("steps", 0LL));
    }
    if (!cb.done(*dense_trial)) cb.record(*dense_trial, out, wall);
    if (out.status != "finished") {
      fail_rest(1, "the dense network (round 0) did not finish: " + out.status);
      return;
    }
    dense_trained = snapshot(model);
    save_archive(dir / "chain.pt", model,
                 {{"init", &init}, {"rewind", &rewind}, {"trained", &dense_trained}});
  }

  // Rounds 1..R: the ticket chain, each round's controls after its ticket.
  Params masks = prunable_masks_like(model), previous = dense_trained;
  const double rate = lottery["rate"], out_rate = lottery["output_rate"];
  for (int r = 1; r <= rounds; ++r) {
    bool pending = false;
    for (const char* c : {"ticket", "reinit", "random_prune"})
      if (at.count({r, c}) && !cb.done(*at[{r, c}])) pending = true;
    // Later rounds need this round's ticket; a round is loaded when its trial and artifact exist.
    bool later = false;
    for (const Trial* t : chain)
      if (t->config["lottery"]["round"].get<int>() > r && !cb.done(*t)) later = true;
    if (!pending && !later) break;

    const Trial* ticket = at.count({r, "ticket"}) ? at[{r, "ticket"}] : nullptr;
    Params loaded_masks, loaded_trained, start;
    const fs::path artifact = dir / fmt::format("round_{}.pt", r);
    const bool have = ticket && cb.done(*ticket) &&
                      load_archive(artifact, model, device,
                                   {{"mask", &loaded_masks}, {"trained", &loaded_trained}});
    std::vector<Member> members;  // what trains this round: the ticket first, then its controls
    if (have) {
      masks = loaded_masks;
      previous = loaded_trained;
    } else {
      restore(model, previous);
      if (lottery["one_shot"].get<bool>()) {
        masks = prunable_masks_like(model);
        restore(model, dense_trained);
        prune_round(model, masks, lottery, 1.0 - std::pow(1.0 - rate, r),
                    1.0 - std::pow(1.0 - out_rate, r));
      } else {
        prune_round(model, masks, lottery, rate, out_rate);
      }
      restore(model, rewind);
      apply_masks(model, masks);
      start = snapshot(model);
      // A chain that sweeps only the controls still trains the tickets (unrecorded): the next
      // round's mask comes from this round's trained ticket.
      members.push_back({ticket ? ticket : dense_trial, model, masks, ticket && !cb.done(*ticket)});
    }
    if (at.count({r, "reinit"}) && !cb.done(*at[{r, "reinit"}])) {
      torch::manual_seed(seed * 1000003ULL + 7919);  // another initialization, same data order
      Net fresh = make_model(cfg0["model"], data.input_shape, data.outputs);
      fresh->to(device);
      apply_masks(fresh, masks);
      members.push_back({at[{r, "reinit"}], fresh, masks, true});
    }
    if (at.count({r, "random_prune"}) && !cb.done(*at[{r, "random_prune"}])) {
      Params random = random_masks_like(masks, seed * 1000003ULL + 31 * uint64_t(r));
      Net net = make_model(cfg0["model"], data.input_shape, data.outputs);
      net->to(device);
      restore(net, rewind);
      apply_masks(net, random);
      members.push_back({at[{r, "random_prune"}], net, random, true});
    }
    const auto results = train_round(members);
    for (size_t k = 0; k < members.size(); ++k)
      if (members[k].recorded) cb.record(*members[k].trial, results[k].first, results[k].second);
    if (!have) {
      const TrainOutcome& out = results[0].first;
      if (out.status != "finished")  // (this round's controls ran: they need only the mask)
        fail_rest(r + 1, fmt::format("the ticket of round {} did not finish: {}", r, out.status));
      previous = snapshot(model);
      save_archive(artifact, model, {{"mask", &masks}, {"init", &start}, {"trained", &previous}});
    }
  }
}

}  // namespace empiric
