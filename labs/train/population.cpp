#include "train/population.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/config.h"
#include "core/errors.h"
#include "fused_optim/fused_optim.h"
#include "graph/graph.h"
#include "measures/measures.h"
#include "train/schedule.h"

namespace empiric {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

bool seed_independent_data(const json& d) {
  static const std::vector<std::string> images = {"fashion_mnist", "mnist", "cifar10"};
  return std::count(images.begin(), images.end(), d["name"].get<std::string>()) &&
         d["train_subset"] == 0 && d["test_subset"] == 0 && d["validation"] == 0 &&
         d["label_noise"] == 0.0 && d["random_labels"] == 0.0 && d["imbalance"] == 1.0;
}

// One dense layer of the population: the members' weights transposed, P x in x out (so that a
// batched matmul needs no transposed copy; the optimizer's elementwise step does not care about
// the layout), bias P x out (or undefined).
struct Layer {
  torch::Tensor weight_t, bias;
};

// A member's summary keys, as train_model writes them for a trial of its own.
struct MemberState {
  long long diverged_step = -1;
  double base_lr = 0;
  double best_val = INFINITY;
  long long best_val_step = -1;
  double test_acc_at_best = NAN;
  std::vector<std::pair<std::string, double>> last_values;
  json marks = json::object();  // test metrics at the schedule's landmarks (wsd)
};

json values_json(const std::vector<std::pair<std::string, double>>& values) {
  json out = json::array();
  for (const auto& [k, v] : values) out.push_back({k, std::isfinite(v) ? json(v) : json()});
  return out;
}
std::vector<std::pair<std::string, double>> values_from(const json& j) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& kv : j) out.push_back({kv[0], kv[1].is_null() ? NAN : kv[1].get<double>()});
  return out;
}

json member_json(const MemberState& m) {
  return {{"diverged_step", m.diverged_step},
          {"best_val", std::isfinite(m.best_val) ? json(m.best_val) : json()},
          {"best_val_step", m.best_val_step},
          {"test_acc_at_best", std::isnan(m.test_acc_at_best) ? json() : json(m.test_acc_at_best)},
          {"last_values", values_json(m.last_values)},
          {"marks", m.marks}};
}
void member_from(const json& j, MemberState& m) {
  m.diverged_step = j["diverged_step"];
  m.best_val = j["best_val"].is_null() ? INFINITY : j["best_val"].get<double>();
  m.best_val_step = j["best_val_step"];
  m.test_acc_at_best = j["test_acc_at_best"].is_null() ? NAN : j["test_acc_at_best"].get<double>();
  m.last_values = values_from(j["last_values"]);
  m.marks = j.value("marks", json::object());
}

bool same_sgd(const kernels::SgdConfig& a, const kernels::SgdConfig& b) {
  return a.lr == b.lr && a.momentum == b.momentum && a.weight_decay == b.weight_decay &&
         a.nesterov == b.nesterov;
}
bool same_adam(const kernels::AdamConfig& a, const kernels::AdamConfig& b) {
  return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.eps == b.eps &&
         a.weight_decay == b.weight_decay && a.decoupled == b.decoupled;
}

}  // namespace

const std::vector<std::string>& population_member_keys() {
  static const std::vector<std::string> keys = {
      "seed",          "optim.lr",         "optim.momentum",      "optim.weight_decay",
      "model.init_scale", "data.label_noise", "data.random_labels"};
  return keys;
}

std::string population_incompatibility(const json& c) {
  if (c.value("lab", "train") != "train") return "lab is " + c["lab"].get<std::string>();
  const json &m = c["model"], &o = c["optim"], &t = c["train"], &d = c["data"];
  const std::string model = m["name"];
  if (model != "mlp" && model != "lenet_300_100" && model != "linear")
    return "model.name is " + model + " (populations batch dense stacks: mlp, lenet_300_100, linear)";
  if (m.value("dropout", 0.0) > 0) return "model.dropout > 0";
  if (m.value("batch_norm", false)) return "model.batch_norm is on";
  if (m.value("activation", "relu") == "prelu") return "model.activation is prelu (it has weights)";
  const std::string data = d["name"];
  if (data == "teacher" || data == "linear") return "data." + data + " is a regression task";
  const std::string opt = o["name"];
  if (opt == "rmsprop") return "optim.name is rmsprop";
  if (o.value("impl", "fused") != "fused") return "optim.impl is torch";
  if (o.value("sam_rho", 0.0) > 0) return "optim.sam_rho > 0";
  if (o.value("grad_noise", 0.0) > 0) return "optim.grad_noise > 0";
  if (o.value("l1", 0.0) > 0) return "optim.l1 > 0";
  if (o.value("clip_norm", 0.0) > 0) return "optim.clip_norm > 0";
  if (!o.value("lr_mult", json::object()).empty()) return "optim.lr_mult is set";
  if (t.value("early_stop_patience", 0) > 0) return "train.early_stop_patience > 0";
  if (t.value("stop_train_loss", 0.0) > 0) return "train.stop_train_loss > 0";
  for (const char* k : {"target_train_loss", "target_train_acc", "target_test_acc"})
    if (t.value(k, 0.0) > 0) return std::string("train.") + k + " > 0";
  if (!t.value("mask_file", std::string()).empty()) return "train.mask_file is set";
  // Measures of the final (or initial) weights are taken per member after (before) training, as a
  // trial alone takes them; the interpolation partner is a second training run of its own.
  if (c.contains("measure") && c["measure"].value("interpolate_batch", 0) > 0)
    return "measure.interpolate_batch is set (a partner trains at another batch size)";
  return "";
}

std::string population_group_key(const json& cfg) {
  json key = cfg;
  for (const auto& k : population_member_keys()) {
    const json::json_pointer ptr(dotted_to_pointer(k));
    if (key.contains(ptr)) key[ptr.parent_pointer()].erase(ptr.back());
  }
  for (const char* k : {"title", "description"}) key.erase(k);
  for (const char* k : {"population", "threads", "checkpoint", "device"}) key["train"].erase(k);
  return canonical_json(key);
}

int population_limit(const json& cfg, bool cuda) {
  const json& p = cfg["train"].value("population", json("off"));
  const std::string v = p.is_string() ? p.get<std::string>() : p.dump();
  if (v == "off") return 0;
  if (v == "auto") return cuda ? 64 : 16;
  return std::max(0, std::atoi(v.c_str()));
}

std::vector<std::vector<size_t>> group_population(const std::vector<json>& cfgs, int limit) {
  std::vector<std::vector<size_t>> units;
  std::map<std::string, size_t> open;  // group key -> the unit still taking members
  for (size_t i = 0; i < cfgs.size(); ++i) {
    if (limit <= 1 || !population_incompatibility(cfgs[i]).empty()) {
      units.push_back({i});
      continue;
    }
    const std::string key = population_group_key(cfgs[i]);
    auto it = open.find(key);
    if (it != open.end() && units[it->second].size() < size_t(limit)) {
      units[it->second].push_back(i);
    } else {
      open[key] = units.size();
      units.push_back({i});
    }
  }
  return units;
}

std::vector<TrainOutcome> run_population(const std::vector<json>& cfgs, const torch::Device& device,
                                         const std::vector<TrainHooks>& hooks,
                                         const std::string& source,
                                         const std::string& checkpoint_path,
                                         double checkpoint_every_s) {
  const int64_t P = int64_t(cfgs.size());
  const json& c0 = cfgs[0];
  for (const auto& c : cfgs) {
    const std::string why = population_incompatibility(c);
    if (!why.empty() || population_group_key(c) != population_group_key(c0))
      throw UserError(source + ": trials cannot train as one population" +
                      (why.empty() ? std::string(": they differ in more than ") +
                                         "seed, optim.lr/momentum/weight_decay, model.init_scale "
                                         "and label noise"
                                   : ": " + why));
  }

  // Each member's data and initialization exactly as run_trial draws them for a trial alone.
  std::vector<Dataset> owned;
  std::map<std::string, size_t> cache;
  std::vector<size_t> data_of(static_cast<size_t>(P));
  std::vector<Net> nets;
  std::unique_lock<std::mutex> init_lock(init_mutex());
  for (int64_t p = 0; p < P; ++p) {
    const uint64_t seed = cfgs[p].value("seed", 0);
    torch::manual_seed(seed);
    const json& d = cfgs[p]["data"];
    const std::string key = d.dump() + (seed_independent_data(d) ? "" : "|" + std::to_string(seed));
    if (!cache.count(key)) {
      cache[key] = owned.size();
      owned.push_back(load_dataset(d, seed, device, source));
    }
    data_of[p] = cache[key];
    nets.push_back(make_model(cfgs[p]["model"], owned[data_of[p]].input_shape,
                              owned[data_of[p]].outputs));
    nets.back()->to(device);
  }
  init_lock.unlock();
  const Dataset& d0 = owned[0];
  if (d0.regression) throw UserError(source + ": populations train classifiers only");

  // The top Hessian eigenvalue at initialization, where asked: on each member's own net and data,
  // as run_trial takes it.
  std::vector<double> hessian_init;
  for (int64_t p = 0; p < P; ++p)
    hessian_init.push_back(initial_hessian_top(cfgs[p], nets[p], owned[data_of[p]]));

  // Stack the members' layers: Linear modules in order; the activation of the reference net.
  // The members' nets stay: their Linear modules get the trained weights back for the measures.
  std::vector<Layer> layers;
  std::vector<torch::nn::AnyModule> activation;  // what follows layer l (empty: nothing)
  std::vector<std::vector<torch::nn::LinearImpl*>> linear(static_cast<size_t>(P));
  for (int64_t p = 0; p < P; ++p)
    for (auto& m : *nets[p]->body)
      if (auto* lin = m.ptr()->as<torch::nn::LinearImpl>()) linear[p].push_back(lin);
  {
    torch::NoGradGuard guard;
    for (size_t l = 0; l < linear[0].size(); ++l) {
      std::vector<torch::Tensor> w, b;
      for (int64_t p = 0; p < P; ++p) {
        w.push_back(linear[p][l]->weight.t());
        if (linear[p][l]->bias.defined()) b.push_back(linear[p][l]->bias);
      }
      Layer layer;
      layer.weight_t = torch::stack(w).contiguous().set_requires_grad(true);
      if (!b.empty()) layer.bias = torch::stack(b).contiguous().set_requires_grad(true);
      layers.push_back(layer);
    }
    for (auto& m : *nets[0]->body) {
      if (m.ptr()->as<torch::nn::LinearImpl>())
        activation.emplace_back();
      else if (!activation.empty() && activation.back().is_empty() &&
               !m.ptr()->as<torch::nn::FlattenImpl>())
        activation.back() = m;
    }
  }
  const FlopCount flops = count_flops(nets[0], d0.input_shape);
  const int64_t params = count_parameters(*nets[0]);

  // On a CPU with large batches one matmul per member is faster than a batched one: the batched
  // matmul shares the members out among the threads (3 members on 2 cores leave one idle half the
  // time), a single large matmul keeps every core busy. On dev-cpu, LeNet-300-100's forward and
  // backward at 3 members: 44 ms per member loop against 63 ms batched at batch 2048, 13 against 16
  // at 512, while at 128 the batched one wins (4.5 against 4.8 ms; at 32, 1.4 against 3.0).
  const bool cpu = !device.is_cuda();
  // x: P x B x features -> P x B x outputs.
  auto forward = [&](torch::Tensor h) {
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto& L = layers[l];
      if (cpu && h.size(1) >= 512) {
        // unbind's backward stacks the members' gradients: one copy, not P scatters.
        const auto hs = h.unbind(0), ws = L.weight_t.unbind(0);
        const auto bs = L.bias.defined() ? L.bias.unbind(0) : std::vector<torch::Tensor>();
        std::vector<torch::Tensor> out;
        for (size_t p = 0; p < hs.size(); ++p)
          out.push_back(bs.empty() ? torch::mm(hs[p], ws[p]) : torch::addmm(bs[p], hs[p], ws[p]));
        h = torch::stack(out);
      } else {
        h = L.bias.defined() ? torch::baddbmm(L.bias.unsqueeze(1), h, L.weight_t)
                             : torch::bmm(h, L.weight_t);
      }
      if (!activation[l].is_empty()) h = activation[l].forward(h);
    }
    return h;
  };
  // Every member's mean loss and accuracy on its own copy of one split (x_of, y_of of its data
  // set), one forward of the members' stacked chunks per eval_batch rows (a data set all members
  // share is expanded, not copied); the sums stay on the device and are read back once: P x 2,
  // float64, on the CPU.
  const int64_t eval_batch = c0["train"]["eval_batch_size"];
  using Split = torch::Tensor Dataset::*;
  auto evaluate_all = [&](Split x_of, Split y_of) {
    torch::NoGradGuard guard;
    std::vector<torch::Tensor> xs, ys;
    for (int64_t p = 0; p < P; ++p) {
      const Dataset& d = owned[data_of[p]];
      xs.push_back((d.*x_of).flatten(1)), ys.push_back(d.*y_of);
    }
    const int64_t n = xs[0].size(0);
    auto sums = torch::zeros({P, 2}, xs[0].options().dtype(torch::kFloat64));
    bool equal = true;
    for (const auto& x : xs) equal = equal && x.size(0) == n;
    // One member at a time where its chunks would take matmuls of their own anyway (a CPU and
    // chunks of 512 or more: no stacked copy then), or where the sets differ in size (not
    // expected: members differ in seed, LR and noise).
    if (!equal || (cpu && std::min(n, eval_batch) >= 512)) {
      auto means = torch::zeros({P, 2}, torch::kFloat64);
      for (int64_t p = 0; p < P; ++p) {
        const int64_t m = xs[p].size(0);
        auto sum = torch::zeros({2}, sums.options());
        for (int64_t i = 0; i < m; i += eval_batch) {
          const int64_t c = std::min(m, i + eval_batch) - i;
          auto h = xs[p].narrow(0, i, c);
          for (size_t l = 0; l < layers.size(); ++l) {
            const auto& L = layers[l];
            h = L.bias.defined() ? torch::addmm(L.bias[p], h, L.weight_t[p]) : torch::mm(h, L.weight_t[p]);
            if (!activation[l].is_empty()) h = activation[l].forward(h);
          }
          auto yb = ys[p].narrow(0, i, c);
          sum[0].add_(torch::cross_entropy_loss(h, yb, {}, at::Reduction::Sum));
          sum[1].add_(h.argmax(1).eq(yb).sum());
        }
        means[p].copy_(sum.cpu().div_(double(std::max<int64_t>(m, 1))));
      }
      return means;
    }
    for (int64_t i = 0; i < n; i += eval_batch) {
      const int64_t c = std::min(n, i + eval_batch) - i;
      torch::Tensor xb, yb;
      if (owned.size() == 1) {
        xb = xs[0].narrow(0, i, c).unsqueeze(0).expand({P, c, xs[0].size(1)});
        yb = ys[0].narrow(0, i, c).unsqueeze(0).expand({P, c});
      } else {
        std::vector<torch::Tensor> xc, yc;
        for (int64_t p = 0; p < P; ++p) xc.push_back(xs[p].narrow(0, i, c)), yc.push_back(ys[p].narrow(0, i, c));
        xb = torch::stack(xc), yb = torch::stack(yc);
      }
      auto out = forward(xb);  // P x c x classes
      auto loss = torch::cross_entropy_loss(out.flatten(0, 1), yb.reshape({-1}), {},
                                            at::Reduction::None).view({P, c});
      sums.select(1, 0).add_(loss.sum(1));
      sums.select(1, 1).add_(out.argmax(2).eq(yb).sum(1));
    }
    return sums.cpu().div_(double(std::max<int64_t>(n, 1)));
  };

  // Optimizer state per member: views into stacked buffers, stepped by the same fused kernels a
  // trial alone uses.
  const json& o0 = c0["optim"];
  const std::string opt_name = o0["name"];
  std::vector<torch::Tensor> stacked, state1, state2;
  for (auto& L : layers) {
    stacked.push_back(L.weight_t);
    if (L.bias.defined()) stacked.push_back(L.bias);
  }
  for (auto& s : stacked) {
    state1.push_back(torch::zeros_like(s));
    if (opt_name != "sgd") state2.push_back(torch::zeros_like(s));
  }

  const json& t0 = c0["train"];
  const int64_t n = d0.x_train.size(0);
  const int64_t batch = std::min<int64_t>(t0["batch_size"].get<int64_t>(), n);
  const int64_t spe = (n + batch - 1) / batch;
  const long long total =
      t0["steps"].get<long long>() > 0 ? t0["steps"].get<long long>() : t0["epochs"].get<long long>() * spe;
  const double bound = t0["divergence_loss"];
  const bool has_val = d0.x_val.defined() && d0.x_val.size(0) > 0;
  const json& sched = c0["schedule"];
  const long long eval_every = t0["eval_every_steps"];
  const auto marks = schedule_marks(sched, total, spe);

  std::vector<MemberState> ms(static_cast<size_t>(P));
  std::vector<at::Generator> order;
  for (int64_t p = 0; p < P; ++p) {
    ms[p].base_lr = scaled_base_lr(cfgs[p]["optim"]["lr"], sched["scale_rule"], batch,
                                   sched["base_batch"]);
    order.push_back(at::detail::createCPUGenerator(cfgs[p].value("seed", 0) * 1000003ULL + 17));
  }

  auto step_losses = torch::zeros({P, spe}, d0.x_train.options());
  // Every member's training set in one tensor (data set d at rows d * n ...), so that a step
  // gathers all members' batches with one call. The data sets keep views into it, not copies.
  torch::Tensor x_all, y_all;
  bool same_size = true;
  for (const auto& d : owned) same_size = same_size && d.x_train.size(0) == n;
  if (owned.size() == 1) {
    x_all = d0.x_train.flatten(1), y_all = d0.y_train;
  } else if (same_size) {
    std::vector<torch::Tensor> xs, ys;
    for (const auto& d : owned) xs.push_back(d.x_train.flatten(1)), ys.push_back(d.y_train);
    x_all = torch::cat(xs), y_all = torch::cat(ys);
    xs.clear(), ys.clear();
    for (size_t k = 0; k < owned.size(); ++k) {
      const auto shape = owned[k].x_train.sizes().vec();
      owned[k].x_train = x_all.narrow(0, int64_t(k) * n, n).view(shape);
      owned[k].y_train = y_all.narrow(0, int64_t(k) * n, n);
    }
  }
  auto row_offset = torch::empty({P, 1}, torch::kInt64);
  for (int64_t p = 0; p < P; ++p) row_offset[p][0] = int64_t(data_of[p]) * n;
  // Otherwise (members' training sets of different sizes) each member gathers its own batch into
  // one preallocated buffer.
  std::vector<torch::Tensor> flat_x;
  torch::Tensor x_buf, y_buf;
  if (!x_all.defined()) {
    for (const auto& d : owned) flat_x.push_back(d.x_train.flatten(1));
    x_buf = torch::empty({P, batch, flat_x[0].size(1)}, d0.x_train.options());
    y_buf = torch::empty({P, batch}, d0.y_train.options());
  }
  // The step configs without their LR (set each step).
  std::vector<kernels::SgdConfig> sgd(static_cast<size_t>(P));
  std::vector<kernels::AdamConfig> adam(static_cast<size_t>(P));
  for (int64_t p = 0; p < P; ++p) {
    const json& o = cfgs[p]["optim"];
    if (opt_name == "sgd")
      sgd[p] = {0.0, o["momentum"].get<double>(), o["weight_decay"].get<double>(),
                o["nesterov"].get<bool>()};
    else
      adam[p] = {0.0, o["betas"][0].get<double>(), o["betas"][1].get<double>(),
                 o["eps"].get<double>(), o["weight_decay"].get<double>(), opt_name == "adamw"};
  }
  auto batch_sizes = torch::full({spe}, double(batch), d0.x_train.options());
  batch_sizes[spe - 1] = double(n - (spe - 1) * batch);
  int epoch = 0;
  long long step = 0, samples = 0, opt_steps = 0;
  double compute_s = 0, eval_s = 0;
  int64_t epoch_steps = 0;
  const long long check_every = device.is_cuda() ? 25 : 1;

  auto take_evaluation = [&]() {
    auto te = Clock::now();
    const auto train = evaluate_all(&Dataset::x_train, &Dataset::y_train);
    const auto test = evaluate_all(&Dataset::x_test, &Dataset::y_test);
    const auto val = has_val ? evaluate_all(&Dataset::x_val, &Dataset::y_val) : torch::Tensor();
    torch::Tensor running;  // each member's mean training loss over this epoch's steps
    if (epoch_steps > 0) {
      auto w = batch_sizes.slice(0, 0, epoch_steps);
      running = ((step_losses.slice(1, 0, epoch_steps) * w).sum(1) / w.sum()).to(torch::kCPU, torch::kFloat64);
    }
    eval_s += seconds_since(te);
    // Each member's share of the population's time, as a trial alone records its own.
    const double compute_share = compute_s / double(P), eval_share = eval_s / double(P);
    for (int64_t p = 0; p < P; ++p) {
      if (ms[p].diverged_step >= 0) continue;
      const double lr = lr_at(sched, ms[p].base_lr, std::max(0LL, step - 1), total, spe);
      Evaluation ev;
      ev.epoch = epoch;
      ev.step = step;
      const double train_acc = train[p][1].item<double>(), test_acc = test[p][1].item<double>();
      ev.values = {{"train_loss", train[p][0].item<double>()}, {"test_loss", test[p][0].item<double>()},
                   {"lr", lr}, {"train_acc", train_acc}, {"test_acc", test_acc},
                   {"gen_gap", train_acc - test_acc}};
      if (running.defined()) ev.values.push_back({"train_loss_running", running[p].item<double>()});
      if (has_val) {
        const double val_loss = val[p][0].item<double>();
        ev.values.push_back({"val_loss", val_loss});
        ev.values.push_back({"val_acc", val[p][1].item<double>()});
        if (val_loss < ms[p].best_val)
          ms[p].best_val = val_loss, ms[p].best_val_step = step, ms[p].test_acc_at_best = test_acc;
      }
      ev.values.push_back({"compute_s", compute_share});
      ev.values.push_back({"eval_s", eval_share});
      if (compute_share > 0) ev.values.push_back({"samples_per_s", double(samples) / compute_share});
      ms[p].last_values = ev.values;
      if (hooks[p].on_eval) hooks[p].on_eval(ev);
    }
  };

  // CUDA graphs, as in train_model: once two steps have run, a full-batch step is captured whole
  // (gather from a static row buffer, forward, backward, one fused step reading its LR and bias
  // corrections from the device) and replayed; other steps (the smaller last batch) run eagerly
  // through the same tensors. A population whose members step alike (seeds) is captured with one
  // LR; one whose members step apart, with each member's row of hyperparameters (below).
  const bool one_gather = x_all.defined();
  std::string graph_status = cuda_graph_blocker(c0, device);
  if (graph_status.empty())
    graph_status = one_gather ? "captured" : "members' data sets differ in size";
  bool graphs = graph_status == "captured";
  kernels::StreamGuard side_stream(graphs ? std::max<int>(0, device.index()) : -1);
  kernels::Graph step_graph;
  bool graph_members = false;  // the captured step uses the members' rows
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  torch::Tensor static_rows, static_losses, lr_device, step_scalars;
  auto t_device = torch::zeros({1}, f64);  // the 1-based Adam step the device computes with
  double lr_on_device = NAN;
  if (graphs) {
    static_rows = torch::zeros({P * batch}, f64.dtype(torch::kInt64));
    static_losses = torch::zeros({P}, d0.x_train.options());
    lr_device = torch::zeros({1}, f64);
    step_scalars = torch::zeros({opt_name == "sgd" ? 1 : 3}, f64.dtype(torch::kFloat32));
  }
  // Members stepping apart (their own LR, momentum or weight decay, or one diverged and stopped):
  // one fused call, member p's hyperparameters in row p of member_hyper (SGD {lr, momentum,
  // weight decay}, Adam {lr, lr / (1 - beta1^t), weight decay}), computed on the device from the
  // members' base LRs (0 once diverged) times the schedule's factor this step (every schedule
  // scales its base LR), so a captured step follows them as well.
  auto member_base = torch::zeros({P}, f64);
  auto member_hyper = torch::zeros({P, 3}, f64.dtype(torch::kFloat32));
  auto factor_device = torch::zeros({1}, f64);
  double factor_on_device = NAN;
  {
    auto fixed = torch::zeros({P, 3}, torch::kFloat32);
    for (int64_t p = 0; p < P; ++p) {
      fixed[p][1] = opt_name == "sgd" ? sgd[p].momentum : 0.0;
      fixed[p][2] = opt_name == "sgd" ? sgd[p].weight_decay : adam[p].weight_decay;
    }
    member_hyper.copy_(fixed);
  }
  auto fill_member_hyper = [&]() {  // from factor_device and t_device
    const auto lr = member_base * factor_device;
    member_hyper.select(1, 0).copy_(lr);
    if (opt_name != "sgd")
      member_hyper.select(1, 1).copy_(lr / (1.0 - torch::pow(adam[0].beta1, t_device)));
  };
  auto set_factor = [&](double f) {
    if (f != factor_on_device) factor_device.fill_(f), factor_on_device = f;
  };

  // Checkpoints, as a trial alone takes them: at the first epoch end `checkpoint_every_s` after
  // the last one, the stacked weights and optimizer state, each member's data order generator and
  // summary state, and the loop's counters; written then renamed, removed when the population
  // ends. One whose members differ from these (another population) is not resumed.
  json member_hashes = json::array();
  for (const auto& c : cfgs) member_hashes.push_back(trial_hash(c));
  auto save = [&]() {
    torch::serialize::OutputArchive archive;
    for (size_t i = 0; i < stacked.size(); ++i) archive.write("param." + std::to_string(i), stacked[i]);
    for (size_t i = 0; i < state1.size(); ++i) archive.write("state1." + std::to_string(i), state1[i]);
    for (size_t i = 0; i < state2.size(); ++i) archive.write("state2." + std::to_string(i), state2[i]);
    for (int64_t p = 0; p < P; ++p) archive.write("order." + std::to_string(p), order[p].get_state());
    json state = {{"members", member_hashes}, {"epoch", epoch},         {"step", step},
                  {"samples", samples},       {"opt_steps", opt_steps}, {"compute_s", compute_s},
                  {"eval_s", eval_s},         {"member_state", json::array()}};
    for (const auto& m : ms) state["member_state"].push_back(member_json(m));
    archive.write("state", text_tensor(state.dump()));
    const std::string tmp = checkpoint_path + ".tmp";
    archive.save_to(tmp);
    std::filesystem::rename(tmp, checkpoint_path);
  };
  int resumed_from = 0;
  if (!checkpoint_path.empty() && std::filesystem::exists(checkpoint_path)) {
    torch::serialize::InputArchive archive;
    json state;
    try {
      archive.load_from(checkpoint_path, device);
      torch::Tensor t;
      archive.read("state", t);
      state = json::parse(tensor_text(t));
    } catch (const std::exception&) {
      state = json();  // unreadable (killed mid-write before the rename): start over
    }
    if (state.is_object() && state["members"] == member_hashes) {
      torch::NoGradGuard guard;
      auto get = [&](const std::string& key, size_t i) {
        torch::Tensor t;  // read() into a defined tensor would reuse its storage
        archive.read(key + std::to_string(i), t);
        return t;
      };
      for (size_t i = 0; i < stacked.size(); ++i) stacked[i].copy_(get("param.", i));
      for (size_t i = 0; i < state1.size(); ++i) state1[i].copy_(get("state1.", i));
      for (size_t i = 0; i < state2.size(); ++i) state2[i].copy_(get("state2.", i));
      for (int64_t p = 0; p < P; ++p) order[p].set_state(get("order.", size_t(p)).cpu());
      epoch = resumed_from = state["epoch"];
      step = state["step"];
      samples = state["samples"];
      opt_steps = state["opt_steps"];
      compute_s = state["compute_s"];
      eval_s = state["eval_s"];
      for (int64_t p = 0; p < P; ++p) member_from(state["member_state"][size_t(p)], ms[p]);
    } else {
      std::filesystem::remove(checkpoint_path);
    }
  }
  const long long first_opt_steps = opt_steps;  // captures wait for two eager steps in this run
  {
    auto base = torch::zeros({P}, torch::kFloat64);
    for (int64_t p = 0; p < P; ++p)
      if (ms[p].diverged_step < 0) base[p] = ms[p].base_lr;
    member_base.copy_(base);
  }
  auto last_checkpoint = Clock::now();

  while (step < total) {
    auto t_start = Clock::now();
    std::vector<torch::Tensor> perms;
    for (int64_t p = 0; p < P; ++p) perms.push_back(torch::randperm(n, order[p]));
    // Rows of x_all in each member's order: one gather per step serves every member.
    auto all_rows = one_gather ? (torch::stack(perms) + row_offset).to(device) : torch::Tensor();
    if (!one_gather)
      for (auto& perm : perms) perm = perm.to(device);
    epoch_steps = 0;
    const long long epoch_start = step;
    int64_t checked = 0;
    for (int64_t b = 0; b < spe && step < total; ++b) {
      const int64_t lo = b * batch, hi = std::min(n, (b + 1) * batch);
      // Each member's LR this step. When all step alike (a population of seeds), one fused call
      // steps the stacked tensors with one LR; else one fused call with the members' rows.
      bool alike = true;
      for (int64_t p = 0; p < P; ++p) {
        const double lr =
            ms[p].diverged_step >= 0 ? 0.0 : lr_at(sched, ms[p].base_lr, step, total, spe);
        (opt_name == "sgd" ? sgd[p].lr : adam[p].lr) = lr;
        alike = alike && (opt_name == "sgd" ? same_sgd(sgd[p], sgd[0]) : same_adam(adam[p], adam[0]));
      }
      const double lr0 = opt_name == "sgd" ? sgd[0].lr : adam[0].lr;
      const double factor = lr_at(sched, 1.0, step, total, spe);
      const bool full = hi - lo == batch;
      // fresh: gradients reset to undefined, so backward writes them instead of zeroing and
      // adding (the captured step; see train_model).
      auto losses_of = [&](const torch::Tensor& xb, const torch::Tensor& yb, bool fresh) {
        for (auto& s : stacked)
          if (fresh)
            s.mutable_grad() = torch::Tensor();
          else if (s.mutable_grad().defined())
            s.mutable_grad().zero_();
        auto out = forward(xb);
        auto losses = torch::cross_entropy_loss(out.flatten(0, 1), yb.flatten(), {},
                                                at::Reduction::None)
                          .view({P, xb.size(1)})
                          .mean(1);
        losses.sum().backward();
        return losses;
      };
      auto grads_of_stacked = [&]() {
        std::vector<torch::Tensor> grads;
        for (auto& s : stacked) grads.push_back(s.grad());
        return grads;
      };
      // One fused step of every member: `rows` with the members' own hyperparameters (read from
      // factor_device and t_device, which hold this step's values), else with member 0's.
      // t: the 1-based step; scalars: the captured step's device LR and bias corrections, which
      // replace t's (undefined: eager).
      auto step_all = [&](bool rows, long long t, const torch::Tensor& scalars) {
        std::vector<torch::Tensor> grads = grads_of_stacked();
        if (rows) fill_member_hyper();
        const torch::Tensor members = rows ? member_hyper : torch::Tensor();
        if (opt_name == "sgd")
          kernels::fused_sgd_(stacked, grads, state1, {}, sgd[0], t == 1, scalars, members);
        else
          kernels::fused_adam_(stacked, grads, state1, state2, {}, adam[0], t, scalars, members);
      };
      if (graphs && full && !step_graph.captured() && opt_steps - first_opt_steps >= 2) {
        static_rows.copy_(all_rows.slice(1, lo, hi).reshape({-1}));
        t_device.fill_(double(opt_steps));
        graph_members = !alike;
        std::string why;
        if (!step_graph.capture(
                [&] {
                  auto xb = x_all.index_select(0, static_rows).view({P, batch, -1});
                  auto yb = y_all.index_select(0, static_rows).view({P, batch});
                  auto losses = losses_of(xb, yb, true);
                  torch::NoGradGuard guard;
                  t_device.add_(1);
                  // The LR the scalars start from: member 0's, or the schedule's factor (the
                  // members' rows replace it; Adam's second bias correction comes from here).
                  const auto& lr = graph_members ? factor_device : lr_device;
                  if (opt_name == "sgd")
                    step_scalars.copy_(lr);
                  else
                    kernels::adam_step_scalars(lr, t_device, adam[0], step_scalars);
                  step_all(graph_members, opt_steps + 1, step_scalars);
                  static_losses.copy_(losses.detach());
                },
                &why)) {
          graphs = false;
          graph_status = "capture failed: " + why;
          note_once("cuda graphs: a population step could not be captured (" + why +
                    "); training eagerly");
        }
      }
      if (step_graph.captured() && full && (graph_members || alike)) {
        static_rows.copy_(all_rows.slice(1, lo, hi).reshape({-1}));
        if (graph_members)
          set_factor(factor);
        else if (lr0 != lr_on_device)
          lr_device.fill_(lr0), lr_on_device = lr0;
        step_graph.replay();
        ++opt_steps;
        step_losses.select(1, b).copy_(static_losses);
      } else {
        // P x B x features and P x B.
        torch::Tensor xb, yb;
        if (one_gather) {
          auto rows = all_rows.slice(1, lo, hi).reshape({-1});
          xb = x_all.index_select(0, rows).view({P, hi - lo, -1});
          yb = y_all.index_select(0, rows).view({P, hi - lo});
        } else {
          xb = x_buf.slice(1, 0, hi - lo), yb = y_buf.slice(1, 0, hi - lo);
          for (int64_t p = 0; p < P; ++p) {
            auto idx = perms[p].slice(0, lo, hi);
            auto x_out = xb[p], y_out = yb[p];
            torch::index_select_out(x_out, flat_x[data_of[p]], 0, idx);
            torch::index_select_out(y_out, owned[data_of[p]].y_train, 0, idx);
          }
        }
        auto losses = losses_of(xb, yb, false);
        ++opt_steps;
        torch::NoGradGuard guard;
        // The count this step's Adam rows use, and the next replay starts from.
        if (!alike || step_graph.captured()) t_device.fill_(double(opt_steps));
        if (!alike) set_factor(factor);
        step_all(!alike, opt_steps, {});
        step_losses.select(1, b).copy_(losses.detach());
      }
      ++step;
      samples += hi - lo;
      epoch_steps = b + 1;
      // Divergence per member, from the losses kept on the device: every step on a CPU, every
      // 25 steps on a GPU (one read-back, no sync in between), and at the epoch's end; the first
      // bad step of each member is exact. A diverged member's LR becomes 0; the others go on.
      if (step % check_every == 0 || step == total || b + 1 == spe) {
        auto window = step_losses.slice(1, checked, b + 1);
        auto bad = window.isnan().logical_or_(window.isinf()).logical_or_(window.gt(bound)).cpu();
        if (bad.any().item<bool>())
          for (int64_t p = 0; p < P; ++p) {
            if (ms[p].diverged_step >= 0) continue;
            auto hits = bad[p].nonzero();
            if (hits.size(0) > 0) {
              ms[p].diverged_step = epoch_start + checked + hits[0][0].item<int64_t>();
              member_base[p].fill_(0.0);
            }
          }
        checked = b + 1;
      }
      if (hooks[0].on_progress && step % 16 == 0) hooks[0].on_progress(step, total);
      for (const auto& [at, name] : marks)
        if (step == at) {
          auto te = Clock::now();
          const auto test = evaluate_all(&Dataset::x_test, &Dataset::y_test);
          for (int64_t p = 0; p < P; ++p)
            if (ms[p].diverged_step < 0 && !ms[p].marks.contains(name))
              ms[p].marks[name] = {{"step", at}, {"test_loss", test[p][0].item<double>()},
                                   {"test_acc", test[p][1].item<double>()}};
          eval_s += seconds_since(te);
        }
      if (eval_every > 0 && step % eval_every == 0 && b + 1 < spe) {
        sync(device);
        compute_s += seconds_since(t_start);
        take_evaluation();
        t_start = Clock::now();
      }
    }
    sync(device);
    compute_s += seconds_since(t_start);
    epoch++;
    take_evaluation();
    bool all_diverged = true;
    for (const auto& m : ms) all_diverged = all_diverged && m.diverged_step >= 0;
    if (all_diverged) break;
    if (!checkpoint_path.empty() && step < total &&
        seconds_since(last_checkpoint) >= checkpoint_every_s) {
      for (const auto& h : hooks)
        if (h.before_checkpoint) h.before_checkpoint();
      save();
      last_checkpoint = Clock::now();
    }
  }
  if (!checkpoint_path.empty()) std::filesystem::remove(checkpoint_path);
  if (hooks[0].on_progress) hooks[0].on_progress(step, total);

  std::vector<TrainOutcome> outs(static_cast<size_t>(P));
  torch::NoGradGuard guard;
  for (int64_t p = 0; p < P; ++p) {
    TrainOutcome& out = outs[p];
    out.resumed_from_epoch = resumed_from;
    const Dataset& d = owned[data_of[p]];
    const double share = compute_s / double(P);
    for (const auto& [k, v] : ms[p].last_values)
      out.summary[k] = std::isfinite(v) ? json(v) : json();
    out.summary["compute_s"] = share;
    out.summary["eval_s"] = eval_s / double(P);
    if (share > 0) out.summary["samples_per_s"] = double(samples) / share;
    out.summary["epochs"] = epoch;
    out.summary["steps"] = step;
    out.summary["steps_per_epoch"] = spe;
    out.summary["base_lr"] = ms[p].base_lr;
    out.summary["params"] = params;
    out.summary["samples"] = samples;
    out.summary["flops_per_example"] = flops.training();
    out.summary["train_flops"] = double(flops.training()) * double(samples);
    double sq = 0;
    for (auto& s : stacked) sq += s.select(0, p).pow(2).sum().item<double>();
    out.summary["weight_norm"] = std::sqrt(sq);
    out.summary["chance_loss"] = std::log(double(d.outputs));
    out.summary["population"] = P;
    if (device.is_cuda())
      out.summary["cuda_graphs"] = graph_status == "captured" && !step_graph.captured()
                                       ? "too few steps"
                                       : graph_status;
    out.summary["population_compute_s"] = compute_s;
    if (has_val) {
      out.summary["best_val_loss"] =
          std::isfinite(ms[p].best_val) ? json(ms[p].best_val) : json();
      out.summary["best_val_step"] = ms[p].best_val_step;
      out.summary["test_acc_at_best_val"] =
          std::isnan(ms[p].test_acc_at_best) ? json() : json(ms[p].test_acc_at_best);
    }
    out.summary["data"] = d.info;
    if (std::isfinite(hessian_init[p])) {
      out.summary["hessian_top_init"] = hessian_init[p];
      out.summary["lr_x_hessian_init"] = ms[p].base_lr * hessian_init[p];
    }
    if (ms[p].diverged_step < 0) summarize_schedule_marks(ms[p].marks, out.summary);
    if (ms[p].diverged_step >= 0) {
      out.status = "diverged";
      out.diverged_step = ms[p].diverged_step;
      out.summary["diverged_step"] = ms[p].diverged_step;
    } else if (cfgs[p].contains("measure")) {
      // The member's trained weights back in its own net, then the measures a trial alone takes.
      for (size_t l = 0; l < layers.size(); ++l) {
        linear[p][l]->weight.copy_(layers[l].weight_t[p].t());
        if (layers[l].bias.defined()) linear[p][l]->bias.copy_(layers[l].bias[p]);
      }
      torch::AutoGradMode grad_on(true);  // the measures differentiate the loss
      out.measures = compute_measures(cfgs[p]["measure"], nets[p], d, cfgs[p].value("seed", 0));
    }
  }
  return outs;
}

}  // namespace empiric
