#include "train/population.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "core/config.h"
#include "core/environment.h"
#include "core/errors.h"
#include "core/hash.h"
#include "device/device_info.h"
#include "fused_optim/fused_optim.h"
#include "graph/graph.h"
#include "measures/measures.h"
#include "train/optim.h"
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

// The data sets read from image files (their examples fixed by the files; the others are drawn).
bool image_data(const json& d) {
  static const std::vector<std::string> images = {"fashion_mnist", "mnist", "cifar10"};
  return std::count(images.begin(), images.end(), d["name"].get<std::string>()) > 0;
}

bool seed_independent_data(const json& d) {
  return image_data(d) && d["train_subset"] == 0 && d["test_subset"] == 0 && d["validation"] == 0 &&
         d["label_noise"] == 0.0 && d["random_labels"] == 0.0 && d["imbalance"] == 1.0 &&
         d.value("feature_scale", 0.0) == 0.0;
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
  json diverged_loss;    // the training loss that diverged (diverged_loss_json), null if not
  bool diverged_at_evaluation = false;  // found by the evaluation after the last update
  bool reached = false;  // its training loss reached train.stop_train_loss: trained no further
  bool done() const { return diverged_step >= 0 || reached; }
  // Where a trial alone would have stopped, had it diverged or reached stop_train_loss: the step,
  // epochs and samples at the check that found it, and its share of the compute time until then.
  long long stopped_step = -1, stopped_epoch = 0, stopped_samples = 0;
  double stopped_compute_s = 0;
  // The steps computed for it: its share of the population's time is this over every member's
  // (once stopped members leave the stack, those still training take more of each step).
  long long computed = 0;
  double base_lr = 0;
  double best_val = INFINITY;
  long long best_val_step = -1;
  double test_acc_at_best = NAN;
  std::vector<std::pair<std::string, double>> last_values;
  // The evaluation before the last (not checkpointed: the last at a resume), the summary of a
  // member its last evaluation finds diverged.
  std::vector<std::pair<std::string, double>> previous_values;
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
          {"diverged_loss", m.diverged_loss},
          {"diverged_at_evaluation", m.diverged_at_evaluation},
          {"reached", m.reached},
          {"stopped", {m.stopped_step, m.stopped_epoch, m.stopped_samples, m.stopped_compute_s}},
          {"computed", m.computed},
          {"best_val", std::isfinite(m.best_val) ? json(m.best_val) : json()},
          {"best_val_step", m.best_val_step},
          {"test_acc_at_best", std::isnan(m.test_acc_at_best) ? json() : json(m.test_acc_at_best)},
          {"last_values", values_json(m.last_values)},
          {"marks", m.marks}};
}
void member_from(const json& j, MemberState& m) {  // at(): missing fields throw
  m.diverged_step = j.at("diverged_step");
  m.diverged_loss = j.value("diverged_loss", json());  // (null in an older checkpoint)
  m.diverged_at_evaluation = j.value("diverged_at_evaluation", false);
  m.reached = j.value("reached", false);
  m.computed = j.value("computed", -1LL);  // (-1: an older checkpoint's; set on resuming)
  if (j.contains("stopped")) {
    const json& s = j.at("stopped");
    m.stopped_step = s.at(0), m.stopped_epoch = s.at(1), m.stopped_samples = s.at(2);
    m.stopped_compute_s = s.at(3);
  }
  m.best_val = j.at("best_val").is_null() ? INFINITY : j.at("best_val").get<double>();
  m.best_val_step = j.at("best_val_step");
  m.test_acc_at_best =
      j.at("test_acc_at_best").is_null() ? NAN : j.at("test_acc_at_best").get<double>();
  m.last_values = m.previous_values = values_from(j.at("last_values"));
  m.marks = j.value("marks", json::object());
}

// The members' dense layers stacked along a leading member dimension (Linear modules in order;
// the activation of the first member's net), run as batched matmuls. The members' nets stay:
// their Linear modules get the trained weights back for the measures.
class StackedNet {
 public:
  StackedNet(std::vector<Net>& nets, bool cpu) : cpu_(cpu), linear_(nets.size()) {
    for (size_t p = 0; p < nets.size(); ++p)
      for (auto& m : *nets[p]->body)
        if (auto* lin = m.ptr()->as<torch::nn::LinearImpl>()) linear_[p].push_back(lin);
    torch::NoGradGuard guard;
    for (size_t l = 0; l < linear_[0].size(); ++l) {
      std::vector<torch::Tensor> w, b;
      for (const auto& lin : linear_) {
        w.push_back(lin[l]->weight.t());
        if (lin[l]->bias.defined()) b.push_back(lin[l]->bias);
      }
      Layer layer;
      layer.weight_t = torch::stack(w).contiguous().set_requires_grad(true);
      if (!b.empty()) layer.bias = torch::stack(b).contiguous().set_requires_grad(true);
      layers_.push_back(layer);
    }
    for (auto& m : *nets[0]->body) {
      if (m.ptr()->as<torch::nn::LinearImpl>())
        activation_.emplace_back();
      else if (!activation_.empty() && activation_.back().is_empty() &&
               !m.ptr()->as<torch::nn::FlattenImpl>())
        activation_.back() = m;
    }
  }

  // The stacked tensors in a trial alone's parameter order (weight then bias per layer).
  std::vector<torch::Tensor> params() const {
    std::vector<torch::Tensor> out;
    for (const auto& L : layers_) {
      out.push_back(L.weight_t);
      if (L.bias.defined()) out.push_back(L.bias);
    }
    return out;
  }

  // P x B x features -> P x B x outputs.
  //
  // On a CPU with large batches one matmul per member is faster than a batched one: the batched
  // matmul shares the members out among the threads (3 members on 2 cores leave one idle half the
  // time), a single large matmul keeps every core busy. On dev-cpu, LeNet-300-100's forward and
  // backward at 3 members: 44 ms per member loop against 63 ms batched at batch 2048, 13 against
  // 16 at 512, while at 128 the batched one wins (4.5 against 4.8 ms; at 32, 1.4 against 3.0).
  torch::Tensor forward(torch::Tensor h) {
    for (size_t l = 0; l < layers_.size(); ++l) {
      const auto& L = layers_[l];
      if (cpu_ && h.size(1) >= 512) {
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
      if (!activation_[l].is_empty()) h = activation_[l].forward(h);
    }
    return h;
  }

  // Every member's mean loss and accuracy on its own split (xs[p]: rows x features, ys[p]):
  // P x 2, float64, on the CPU. One forward of the members' stacked chunks per eval_batch rows
  // (when every member has the same split, `shared`, a chunk is expanded, not copied); the sums
  // stay on the device and are read back once.
  torch::Tensor evaluate(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& ys,
                         bool shared, int64_t eval_batch) {
    torch::NoGradGuard guard;
    const int64_t P = int64_t(xs.size()), n = xs[0].size(0);
    bool equal = true;
    for (const auto& x : xs) equal = equal && x.size(0) == n;
    // One member at a time where its chunks would take matmuls of their own anyway (a CPU and
    // chunks of 512 or more: no stacked copy then), or where the sets differ in size (not
    // expected: members differ in seed, LR and noise).
    if (!equal || (cpu_ && std::min(n, eval_batch) >= 512)) {
      auto means = torch::zeros({P, 2}, torch::kFloat64);
      for (int64_t p = 0; p < P; ++p) means[p].copy_(evaluate_member(p, xs[p], ys[p], eval_batch));
      return means;
    }
    auto sums = torch::zeros({P, 2}, xs[0].options().dtype(torch::kFloat64));
    for (int64_t i = 0; i < n; i += eval_batch) {
      const int64_t c = std::min(n, i + eval_batch) - i;
      torch::Tensor xb, yb;
      if (shared) {
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
  }

  // Each member's mean cross-entropy on its own rows: x P x B x features, y P x B -> P.
  torch::Tensor mean_losses(const torch::Tensor& x, const torch::Tensor& y) {
    const int64_t P = x.size(0), B = x.size(1);
    return torch::cross_entropy_loss(forward(x).flatten(0, 1), y.flatten(), {}, at::Reduction::None)
        .view({P, B})
        .mean(1);
  }

  // A stacked net of copies of these members' weights (fresh leaves that require grad), sharing
  // the activations; it cannot restore weights into nets.
  StackedNet subset(const std::vector<int64_t>& members) const {
    StackedNet s;
    s.cpu_ = cpu_, s.activation_ = activation_;
    const auto which = torch::tensor(members, torch::kInt64).to(layers_[0].weight_t.device());
    torch::NoGradGuard guard;
    for (const auto& L : layers_) {
      Layer c;
      c.weight_t = L.weight_t.index_select(0, which).set_requires_grad(true);
      if (L.bias.defined()) c.bias = L.bias.index_select(0, which).set_requires_grad(true);
      s.layers_.push_back(c);
    }
    return s;
  }

  // Member p's trained weights back in its own net.
  void restore(int64_t p) {
    torch::NoGradGuard guard;
    for (size_t l = 0; l < layers_.size(); ++l) {
      linear_[p][l]->weight.copy_(layers_[l].weight_t[p].t());
      if (layers_[l].bias.defined()) linear_[p][l]->bias.copy_(layers_[l].bias[p]);
    }
  }

 private:
  // Member p alone, chunk by chunk: {mean loss, accuracy}, float64 on the CPU.
  torch::Tensor evaluate_member(int64_t p, const torch::Tensor& x, const torch::Tensor& y,
                                int64_t eval_batch) {
    const int64_t m = x.size(0);
    auto sum = torch::zeros({2}, x.options().dtype(torch::kFloat64));
    for (int64_t i = 0; i < m; i += eval_batch) {
      const int64_t c = std::min(m, i + eval_batch) - i;
      auto h = x.narrow(0, i, c);
      for (size_t l = 0; l < layers_.size(); ++l) {
        const auto& L = layers_[l];
        h = L.bias.defined() ? torch::addmm(L.bias[p], h, L.weight_t[p]) : torch::mm(h, L.weight_t[p]);
        if (!activation_[l].is_empty()) h = activation_[l].forward(h);
      }
      auto yb = y.narrow(0, i, c);
      sum[0].add_(torch::cross_entropy_loss(h, yb, {}, at::Reduction::Sum));
      sum[1].add_(h.argmax(1).eq(yb).sum());
    }
    return sum.cpu().div_(double(std::max<int64_t>(m, 1)));
  }

  StackedNet() = default;

  bool cpu_ = false;
  std::vector<Layer> layers_;
  std::vector<torch::nn::AnyModule> activation_;  // what follows layer l (empty: nothing)
  std::vector<std::vector<torch::nn::LinearImpl*>> linear_;  // [member][layer]
};

// Whether the members' measures can be taken for all of them at once (stacked_measures): the top
// Hessian eigenvalue and the gradient noise scale; any other measure takes each member's own net.
bool stacked_measures_cover(const json& m) {
  for (const char* k : {"hessian_trace", "eps_sharpness", "sigma_sharpness", "calibration",
                        "dead_units", "per_class", "sparsity", "dropout_test", "auc"})
    if (m.value(k, false)) return false;
  if (m.value("dinh_alpha", 0.0) > 0 || m.value("surface_grid", 0) > 0 ||
      m.value("noisy_test_labels", 0.0) > 0)
    return false;
  return m.value("hessian_top", false) || m.value("noise_scale", false);
}

// Per member: sum over the lists of a[l][p] . b[l][p], in float64 (P values, on the CPU).
std::vector<double> member_dots(const std::vector<torch::Tensor>& a,
                                const std::vector<torch::Tensor>& b) {
  torch::Tensor s;
  for (size_t l = 0; l < a.size(); ++l) {
    auto d = (a[l].to(torch::kFloat64) * b[l].to(torch::kFloat64)).flatten(1).sum(1);
    s = s.defined() ? s + d : d;
  }
  s = s.cpu().contiguous();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

// The top Hessian eigenvalue and the gradient noise scale of every member at once, as
// compute_measures takes them for a trial alone (top_hessian_eigenvalue, gradient_noise_scale:
// the same examples, initial vector and batches, drawn from the member's own seed). The stacked
// loss is the sum of the members' losses, so its gradient is each member's own and its Hessian
// block-diagonal: one Hessian-vector product serves every member, and the power iteration runs
// until the last member has converged, each member's estimate taken where its own converged.
std::vector<json> stacked_measures(StackedNet& net, const std::vector<const Dataset*>& data,
                                   const std::vector<uint64_t>& seeds, const json& m) {
  const int64_t P = int64_t(data.size());
  const auto params = net.params();
  auto stack_rows = [&](const std::vector<torch::Tensor>& rows) {  // each member's rows
    std::vector<torch::Tensor> xs, ys;
    for (int64_t p = 0; p < P; ++p) {
      xs.push_back(data[p]->x_train.flatten(1).index_select(0, rows[p]));
      ys.push_back(data[p]->y_train.index_select(0, rows[p]));
    }
    return std::make_pair(torch::stack(xs), torch::stack(ys));
  };
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  std::vector<json> out(static_cast<size_t>(P), json::object());
  const int64_t n = data[0]->x_train.size(0);

  if (m.value("hessian_top", false)) {
    const int64_t k = std::min<int64_t>(n, m.value("hessian_samples", int64_t(1000)));
    auto first_k = torch::arange(k, torch::TensorOptions().dtype(torch::kInt64).device(params[0].device()));
    auto [x, y] = stack_rows(std::vector<torch::Tensor>(static_cast<size_t>(P), first_k));
    auto loss = net.mean_losses(x, y).sum();
    auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);
    // Each member's start: its solo parameters' draws in order (weight out x in, then bias),
    // laid out as the stack holds them (weights transposed).
    std::vector<std::vector<torch::Tensor>> draws(params.size());
    for (int64_t p = 0; p < P; ++p) {
      at::Generator gen = at::detail::createCPUGenerator(seeds[p]);
      for (size_t l = 0; l < params.size(); ++l) {
        const auto shape = params[l].select(0, p).sizes().vec();
        const bool weight = shape.size() == 2;
        auto d = torch::randn(weight ? std::vector<int64_t>{shape[1], shape[0]} : shape, gen, torch::kFloat32);
        draws[l].push_back(weight ? d.t() : d);
      }
    }
    std::vector<torch::Tensor> start;
    for (auto& d : draws) start.push_back(torch::stack(d).to(params[0].device()));
    auto per_member = [&](const std::vector<double>& values, const torch::Tensor& like) {
      std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
      shape[0] = P;
      return torch::tensor(values, torch::kFloat64).to(like.device(), torch::kFloat32).view(shape);
    };
    {
      std::vector<double> norms;
      for (double d : member_dots(start, start)) norms.push_back(std::sqrt(d));
      for (auto& t : start) t = t / per_member(norms, t);
    }
    const int max_iterations = m["hessian_max_iter"];
    const double tol = m["hessian_tol"];
    // Power iteration on each member's H - shift I from its start vector, for the members with
    // budget > 0, as top_hessian_eigenvalue's `iterate` runs it for a trial alone.
    auto iterate = [&](const std::vector<double>& shift, const std::vector<int>& budget) {
      std::vector<EigenEstimate> est(static_cast<size_t>(P));
      std::vector<double> previous(static_cast<size_t>(P), NAN);
      std::vector<bool> done(static_cast<size_t>(P), false);
      for (int64_t p = 0; p < P; ++p) done[p] = budget[p] <= 0;
      std::vector<torch::Tensor> v = start;
      for (int it = 1; !std::all_of(done.begin(), done.end(), [](bool d) { return d; }); ++it) {
        torch::Tensor gv = torch::zeros({}, loss.options());
        for (size_t l = 0; l < params.size(); ++l) gv = gv + (grads[l] * v[l]).sum();
        auto hv = torch::autograd::grad({gv}, params, {}, /*retain_graph=*/true);
        if (std::any_of(shift.begin(), shift.end(), [](double s) { return s != 0; }))
          for (size_t l = 0; l < hv.size(); ++l) hv[l] = hv[l] - per_member(shift, v[l]) * v[l];
        const auto value = member_dots(v, hv), hv_sq = member_dots(hv, hv);
        // |Hv - value v| per member, in double (as top_hessian_eigenvalue takes it).
        std::vector<torch::Tensor> r;
        for (size_t l = 0; l < hv.size(); ++l)
          r.push_back(hv[l].to(torch::kFloat64) -
                      per_member(value, v[l]).to(torch::kFloat64) * v[l].to(torch::kFloat64));
        const auto r_sq = member_dots(r, r);
        std::vector<double> norm(static_cast<size_t>(P), 1.0);
        std::vector<double> active(static_cast<size_t>(P), 0.0);
        for (int64_t p = 0; p < P; ++p) {
          if (done[p]) continue;
          est[p].value = value[p];
          est[p].iterations = it;
          norm[p] = std::sqrt(hv_sq[p]);
          est[p].residual = std::sqrt(r_sq[p]);
          if (!std::isfinite(value[p]) || norm[p] == 0) {
            done[p] = true, norm[p] = 1.0;
            continue;
          }
          active[p] = 1.0;
          if (std::isfinite(previous[p]) &&
              std::abs(value[p] - previous[p]) <= tol * std::abs(value[p] + shift[p]) &&
              est[p].residual <= std::sqrt(tol) * std::abs(value[p] + shift[p]))
            est[p].converged = true, done[p] = true;
          if (it >= budget[p]) done[p] = true;
          previous[p] = value[p];
        }
        // The members still iterating (or just done) take H v / |H v|; the others keep theirs.
        for (size_t l = 0; l < v.size(); ++l)
          v[l] = torch::where(per_member(active, v[l]) > 0, hv[l].detach() / per_member(norm, v[l]),
                              v[l]);
      }
      return est;
    };
    std::vector<EigenEstimate> est =
        iterate(std::vector<double>(static_cast<size_t>(P), 0.0),
                std::vector<int>(static_cast<size_t>(P), max_iterations));
    // Members whose largest magnitude was a negative eigenvalue: shifted by it, a second iteration
    // finds their top eigenvalue within what is left of their budget.
    std::vector<double> shift(static_cast<size_t>(P), 0.0);
    std::vector<int> left(static_cast<size_t>(P), 0);
    for (int64_t p = 0; p < P; ++p) {
      if (!std::isfinite(est[p].value) || est[p].value >= 0) continue;
      if (est[p].iterations >= max_iterations)
        est[p].converged = false;  // a negative estimate with no budget left: not the top
      else
        shift[p] = est[p].value, left[p] = max_iterations - est[p].iterations;
    }
    if (std::any_of(left.begin(), left.end(), [](int b) { return b > 0; })) {
      const auto second = iterate(shift, left);
      for (int64_t p = 0; p < P; ++p) {
        if (left[p] <= 0) continue;
        est[p].value = second[p].value + shift[p];
        est[p].iterations += second[p].iterations;
        est[p].converged = est[p].converged && second[p].converged;
        est[p].shift = shift[p];
        est[p].residual = second[p].residual;
      }
    }
    for (int64_t p = 0; p < P; ++p) {
      out[p]["hessian_top"] = finite(est[p].value);
      out[p]["hessian_top_iterations"] = est[p].iterations;
      out[p]["hessian_top_converged"] = est[p].converged;
      out[p]["hessian_top_residual"] = finite(est[p].residual);
      if (est[p].shift != 0) out[p]["hessian_top_shift"] = est[p].shift;
    }
  }

  if (m.value("noise_scale", false)) {
    const auto batches = m["noise_batches"].get<std::vector<int64_t>>();
    const int repeats = m["noise_repeats"];
    std::vector<at::Generator> gens;
    for (int64_t p = 0; p < P; ++p) gens.push_back(at::detail::createCPUGenerator(seeds[p] + 1));
    auto mean_sq_norm = [&](int64_t batch) {
      std::vector<double> total(static_cast<size_t>(P), 0.0);
      for (int r = 0; r < repeats; ++r) {
        std::vector<torch::Tensor> rows;
        for (int64_t p = 0; p < P; ++p)
          rows.push_back(torch::randperm(n, gens[p]).slice(0, 0, batch).to(params[0].device()));
        auto [x, y] = stack_rows(rows);
        auto g = torch::autograd::grad({net.mean_losses(x, y).sum()}, params);
        const auto sq = member_dots(g, g);
        for (int64_t p = 0; p < P; ++p) total[p] += sq[p];
      }
      for (auto& t : total) t /= repeats;
      return total;
    };
    const int64_t small_batch = std::min(batches[0], n), big_batch = std::min(batches[1], n);
    const auto small = mean_sq_norm(small_batch), big = mean_sq_norm(big_batch);
    for (int64_t p = 0; p < P; ++p)
      put_noise_scale(noise_scale_from(small[p], big[p], small_batch, big_batch, n), out[p]);
  }
  return out;
}

// Every member's training batches, each member in its own order. The members' training sets
// (one size: members differ in seed, LR and label noise, not in how much data they draw) are
// stacked in one tensor (data set d at rows d * n ...; the data sets keep views into it, not
// copies), so a step gathers every member's batch with one index_select of the members' orders
// offset by their data set's rows.
class Batches {
 public:
  Batches(std::vector<Dataset>& owned, const std::vector<size_t>& data_of)
      : P_(int64_t(data_of.size())), n_(owned[0].x_train.size(0)) {
    for (const auto& d : owned)
      if (d.x_train.size(0) != n_)
        throw std::logic_error("population members' training sets differ in size");
    if (owned.size() == 1) {
      x_all_ = owned[0].x_train.flatten(1), y_all_ = owned[0].y_train;
    } else {
      // Copied in one data set at a time, each then replaced by its view (its own memory freed),
      // so the host holds the data sets about once, not twice as a concatenation would: 64
      // Fashion-MNIST members are 11 GB either way.
      const auto& first = owned[0];
      const int64_t D = int64_t(owned.size());
      x_all_ = torch::empty({D * n_, first.x_train.flatten(1).size(1)}, first.x_train.options());
      y_all_ = torch::empty({D * n_}, first.y_train.options());
      for (int64_t k = 0; k < D; ++k) {
        auto& d = owned[size_t(k)];
        const auto shape = d.x_train.sizes().vec();
        auto x = x_all_.narrow(0, k * n_, n_), y = y_all_.narrow(0, k * n_, n_);
        x.copy_(d.x_train.flatten(1));
        y.copy_(d.y_train);
        d.x_train = x.view(shape), d.y_train = y;
      }
    }
    row_offset_ = torch::empty({P_, 1}, torch::kInt64);
    for (int64_t p = 0; p < P_; ++p) row_offset_[p][0] = int64_t(data_of[p]) * n_;
  }

  // A new epoch: each member's permutation from its own generator, as a trial alone draws it,
  // drawn on the CPU threads side by side (one generator each) straight into one host buffer
  // kept across epochs (pinned for a GPU), then offset by the member's data set. On a GPU the
  // device waits for this at every epoch start. 24 members on two cores: 7-8 ms per epoch,
  // against 11-17 ms for drawing one after another into fresh tensors, stacking and offsetting.
  void shuffle(std::vector<at::Generator>& order, const torch::Device& device) {
    if (!host_.defined())
      host_ = torch::empty({P_, n_},
                           torch::TensorOptions(torch::kInt64).pinned_memory(device.is_cuda()));
    at::parallel_for(0, P_, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) {
        auto row = host_[p];
        at::randperm_out(row, n_, order[size_t(p)]);
      }
    });
    if (!device.is_cuda()) {
      rows_ = host_.add_(row_offset_);
      return;
    }
    if (!rows_.defined()) {
      rows_ = torch::empty({P_, n_}, torch::TensorOptions(torch::kInt64).device(device));
      device_offset_ = row_offset_.to(device);
    }
    rows_.copy_(host_);  // blocking: the next epoch writes the buffer again
    rows_.add_(device_offset_);
  }

  // From now on only these of the current members (positions among them, in order) draw
  // batches: the others have stopped. Their permutations' buffers are drawn anew.
  void keep(const std::vector<int64_t>& members) {
    row_offset_ = row_offset_.index_select(0, torch::tensor(members, torch::kInt64));
    P_ = int64_t(members.size());
    host_ = rows_ = device_offset_ = torch::Tensor();
  }

  // The rows of x_all at positions [lo, hi) of every member's order, member-major.
  torch::Tensor rows(int64_t lo, int64_t hi) const { return rows_.slice(1, lo, hi).reshape({-1}); }
  // The same rows written into `into` (P * (hi - lo), a captured step's static buffer): one
  // strided copy, where rows() and a copy would be two and an allocation.
  void rows_into(torch::Tensor& into, int64_t lo, int64_t hi) const {
    into.view({P_, hi - lo}).copy_(rows_.slice(1, lo, hi));
  }
  // The batches at those rows: P x B x features and P x B.
  std::pair<torch::Tensor, torch::Tensor> at_rows(const torch::Tensor& rows) const {
    return {x_all_.index_select(0, rows).view({P_, -1, x_all_.size(1)}),
            y_all_.index_select(0, rows).view({P_, -1})};
  }
  std::pair<torch::Tensor, torch::Tensor> gather(int64_t lo, int64_t hi) const {
    return at_rows(rows(lo, hi));
  }

 private:
  int64_t P_, n_;
  torch::Tensor x_all_, y_all_, row_offset_, rows_;
  torch::Tensor host_, device_offset_;  // the permutations' host buffer; the offsets on a GPU
};

// A population's checkpoint: named lists of tensors (stacked weights, optimizer states, the
// members' order generators) and a JSON state holding the members' trial hashes and the lists'
// lengths. Written to a temporary file, then renamed.
struct PopulationCheckpoint {
  json state;
  std::map<std::string, std::vector<torch::Tensor>> lists;
};

void write_checkpoint(const std::string& path, PopulationCheckpoint c) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, list] : c.lists) {
    c.state["lists"][name] = list.size();
    for (size_t i = 0; i < list.size(); ++i) archive.write(name + "." + std::to_string(i), list[i]);
  }
  archive.write("state", text_tensor(c.state.dump()));
  save_archive_to(archive, path);
}

// The checkpoint at `path` when it is readable and holds these members; otherwise nothing, and
// a file that is there (another population's, or one killed mid-write) is removed.
std::optional<PopulationCheckpoint> read_checkpoint(const std::string& path,
                                                    const torch::Device& device,
                                                    const json& members) {
  if (path.empty() || !std::filesystem::exists(path)) return std::nullopt;
  try {
    torch::serialize::InputArchive archive;
    load_archive_from(archive, path, device);
    torch::Tensor t;
    archive.read("state", t);
    if (!archived_tensor_problem(t).empty()) throw std::runtime_error("state is not whole");
    PopulationCheckpoint c;
    c.state = json::parse(tensor_text(t));
    if (c.state.value("members", json()) == members && c.state.contains("lists")) {
      for (const auto& [name, count] : c.state["lists"].items())
        for (size_t i = 0; i < count.get<size_t>(); ++i) {
          torch::Tensor x;  // read() into a defined tensor would reuse its storage
          archive.read(name + "." + std::to_string(i), x);
          if (!archived_tensor_problem(x).empty())  // (a record emptied)
            throw std::runtime_error(name + "." + std::to_string(i) + " is not whole");
          c.lists[name].push_back(x);
        }
      return c;
    }
  } catch (const DamagedArchive& e) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    note_once(std::string(e.what()) + ": " +
              (ec ? "it cannot be removed (" + ec.message() + "; delete it)" : "removed") +
              "; the population trains from the start");
    return std::nullopt;
  } catch (const c10::OutOfMemoryError&) {
    throw;  // a full device, not a bad checkpoint: keep the file for the next run (as a trial's)
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception&) {
  }
  std::error_code ignored;  // (one that cannot be removed is left: the population starts over)
  std::filesystem::remove(path, ignored);
  return std::nullopt;
}

// The members' optimizer (SGD or Adam/AdamW): state in tensors stacked like the weights, stepped
// by the fused kernels a trial alone uses, in one call for every member. When the members step
// alike (a population of seeds) the call takes member 0's LR; else it takes a row of
// hyperparameters per member (`rows`: SGD {lr, momentum, weight decay}, Adam {lr,
// lr / (1 - beta1^t), weight decay}), computed on the device from the members' base LRs (0 once
// frozen) times their schedules' factors this step (every schedule scales its base LR), so a
// captured step follows them as well. Members on one schedule share one factor (a fill when it
// changes); members on schedules of their own get a row of factors (a copy when they change).
class StackedOptimizer {
 public:
  // masks: none, or one per stacked parameter (pruned weights stay at 0, their state too).
  StackedOptimizer(const std::vector<json>& cfgs, std::vector<torch::Tensor> params,
                   std::vector<torch::Tensor> masks, const torch::Device& device)
      : name_(cfgs[0]["optim"]["name"]), params_(std::move(params)), masks_(std::move(masks)) {
    const int64_t P = int64_t(cfgs.size());
    for (auto& s : params_) {
      state1_.push_back(torch::zeros_like(s));
      if (name_ != "sgd") state2_.push_back(torch::zeros_like(s));
    }
    // The step configs without their LR (set each step).
    sgd_.resize(size_t(P)), adam_.resize(size_t(P));
    auto fixed = torch::zeros({P, 3}, torch::kFloat32);
    for (int64_t p = 0; p < P; ++p) {
      const json& o = cfgs[p]["optim"];
      if (name_ == "sgd") {
        sgd_[p] = {0.0, o["momentum"].get<double>(), o["weight_decay"].get<double>(),
                   o["nesterov"].get<bool>()};
        fixed[p][1] = sgd_[p].momentum;
      } else {
        adam_[p] = {0.0, o["betas"][0].get<double>(), o["betas"][1].get<double>(),
                    o["eps"].get<double>(), o["weight_decay"].get<double>(), name_ == "adamw"};
      }
      fixed[p][2] = o["weight_decay"].get<double>();
    }
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
    rows_ = fixed.to(device);
    base_ = torch::zeros({P}, f64);
    factor_ = torch::zeros({P}, f64);
    lr_ = torch::zeros({1}, f64);
    t_ = torch::zeros({1}, f64);
    scalars_ = torch::zeros({name_ == "sgd" ? 1 : 3}, f64.dtype(torch::kFloat32));
  }

  std::vector<torch::Tensor>& state1() { return state1_; }
  std::vector<torch::Tensor>& state2() { return state2_; }

  // The members' base LRs, 0 for those that are frozen.
  void set_bases(const std::vector<double>& base) {
    base_.copy_(torch::tensor(base, torch::kFloat64));
  }
  void freeze(int64_t p) { base_[p].fill_(0.0); }

  // This step's LR of each member and its schedule's factor; returns whether every member steps
  // alike (then member 0's LR serves all).
  bool schedule(const std::vector<double>& lrs, const std::vector<double>& factors) {
    bool alike = true;
    for (size_t p = 0; p < lrs.size(); ++p) {
      (name_ == "sgd" ? sgd_[p].lr : adam_[p].lr) = lrs[p];
      alike = alike && (name_ == "sgd" ? same_sgd(sgd_[p], sgd_[0]) : same_adam(adam_[p], adam_[0]));
    }
    lr0_ = lrs[0], factors_now_ = factors;
    return alike;
  }

  // An eager step, the t-th (1-based).
  void step(bool rows, long long t) {
    if (rows) set_factors();
    if (rows || counting_) t_.fill_(double(t));  // rows read it; a captured step counts from it
    run(rows, t, {});
  }

  // The optimizer part of a captured step (the t-th when captured): the step count advances on
  // the device, and the LR (rows: the factor) and bias corrections are read from there, so every
  // replay follows what prepare_replay set. From now on eager steps keep the count too.
  void step_captured(bool rows, long long t) {
    // (rows: the members' LRs come from their rows; the scalars' LR slots go unused.)
    const auto& lr = rows ? factor_.narrow(0, 0, 1) : lr_;
    t_.add_(1);
    if (name_ == "sgd")
      scalars_.copy_(lr);
    else
      kernels::adam_step_scalars(lr, t_, adam_[0], scalars_);
    run(rows, t, scalars_);
  }
  // Before a capture: the count the captured step starts from.
  void start_capture(long long steps_so_far) {
    t_.fill_(double(steps_so_far));
    counting_ = true;
  }
  // Before a replay: this step's LR (or factor) on the device, a fill when it changed.
  void prepare_replay(bool rows) {
    if (rows)
      set_factors();
    else
      set_device(lr_, lr_on_device_, lr0_);
  }

 private:
  static bool same_sgd(const kernels::SgdConfig& a, const kernels::SgdConfig& b) {
    return a.lr == b.lr && a.momentum == b.momentum && a.weight_decay == b.weight_decay &&
           a.nesterov == b.nesterov;
  }
  static bool same_adam(const kernels::AdamConfig& a, const kernels::AdamConfig& b) {
    return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.eps == b.eps &&
           a.weight_decay == b.weight_decay && a.decoupled == b.decoupled;
  }
  static void set_device(torch::Tensor& t, double& on_device, double value) {
    if (value != on_device) t.fill_(value), on_device = value;
  }
  // The members' factors on the device: one fill when they are alike, else one copy, each only
  // when they changed.
  void set_factors() {
    if (factors_now_ == factors_on_device_) return;
    const bool one = std::all_of(factors_now_.begin(), factors_now_.end(),
                                 [&](double f) { return f == factors_now_[0]; });
    if (one)
      factor_.fill_(factors_now_[0]);
    else if (!factor_.is_cuda())
      factor_.copy_(torch::tensor(factors_now_, torch::kFloat64));
    else  // from pinned memory, without waiting: a pageable copy would stop the host every step
      factor_.copy_(torch::tensor(factors_now_, torch::kFloat64).pin_memory(),
                    /*non_blocking=*/true);
    factors_on_device_ = factors_now_;
  }

  void run(bool rows, long long t, const torch::Tensor& scalars) {
    std::vector<torch::Tensor> grads;
    for (auto& s : params_) grads.push_back(s.grad());
    torch::Tensor members;
    if (rows) {  // from factor_ and t_
      const auto lr = base_ * factor_;
      rows_.select(1, 0).copy_(lr);
      if (name_ != "sgd") rows_.select(1, 1).copy_(lr / (1.0 - torch::pow(adam_[0].beta1, t_)));
      members = rows_;
    }
    if (name_ == "sgd")
      kernels::fused_sgd_(params_, grads, state1_, masks_, sgd_[0], t == 1, scalars, members);
    else
      kernels::fused_adam_(params_, grads, state1_, state2_, masks_, adam_[0], t, scalars, members);
  }

  std::string name_;
  std::vector<torch::Tensor> params_, masks_, state1_, state2_;
  std::vector<kernels::SgdConfig> sgd_;
  std::vector<kernels::AdamConfig> adam_;
  // On the device: the members' rows and base LRs, their schedules' factors, member 0's LR, the
  // 1-based step count, the captured step's scalars.
  torch::Tensor rows_, base_, factor_, lr_, t_, scalars_;
  double lr0_ = 0, lr_on_device_ = NAN;
  std::vector<double> factors_now_, factors_on_device_;
  bool counting_ = false;  // a step was captured: eager steps keep t_ current for its replays
};

}  // namespace

const std::vector<std::string>& population_member_keys() {
  static const std::vector<std::string> keys = {"seed",
                                                "optim.lr",
                                                "optim.momentum",
                                                "optim.weight_decay",
                                                "model.init_scale",
                                                "data.label_noise",
                                                "data.random_labels",
                                                "schedule"};
  return keys;
}

std::string population_incompatibility(const json& c) {
  // (A lottery trial trains in a population only through its chain: train_population.)
  const std::string lab = c.value("lab", "train");
  if (lab != "train" && lab != "lottery") return "lab is " + lab;
  const json &m = c["model"], &o = c["optim"], &t = c["train"], &d = c["data"];
  const std::string model = m["name"];
  if (model != "mlp" && model != "lenet_300_100" && model != "linear")
    return "model.name is " + model + " (populations batch dense stacks: mlp, lenet_300_100, linear)";
  if (m.value("dropout", 0.0) > 0) return "model.dropout > 0";
  if (m.value("batch_norm", false)) return "model.batch_norm is on";
  if (m.value("activation", "relu") == "prelu") return "model.activation is prelu (it has weights)";
  const std::string data = d["name"];
  if (data == "teacher" || data == "linear") return "data." + data + " is a regression task";
  // Class imbalance keeps a share of each class's examples: how many, when the classes' counts
  // are drawn by seed (synthetic labels, a subset, a validation split), differs from seed to
  // seed, and a population's members share one training-set size.
  if (d.value("imbalance", 1.0) < 1.0 &&
      (!image_data(d) || d.value("train_subset", 0) > 0 || d.value("validation", 0) > 0))
    return "data.imbalance < 1 on a split drawn by seed (its size differs between seeds)";
  const std::string opt = o["name"];
  if (opt == "rmsprop") return "optim.name is rmsprop";
  if (o.value("impl", "fused") != "fused") return "optim.impl is torch";
  if (o.value("sam_rho", 0.0) > 0) return "optim.sam_rho > 0";
  if (o.value("grad_noise", 0.0) > 0) return "optim.grad_noise > 0";
  if (o.value("l1", 0.0) > 0) return "optim.l1 > 0";
  if (o.value("clip_norm", 0.0) > 0) return "optim.clip_norm > 0";
  if (!o.value("lr_mult", json::object()).empty()) return "optim.lr_mult is set";
  if (t.value("early_stop_patience", 0) > 0) return "train.early_stop_patience > 0";
  // The stacked step trains softmax cross-entropy, unweighted, on a fresh permutation per epoch.
  const std::string loss = t.value("loss", "auto");
  if (loss != "auto" && loss != "cross_entropy") return "train.loss is " + loss;
  if (t.value("class_weights", "none") != "none") return "train.class_weights is set";
  if (t.value("order", "reshuffle") != "reshuffle") return "train.order is not reshuffle";
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
  // A lottery trial trains from the start weights and mask its chain hands in
  // (train_population): its round and control do not part it from the others.
  if (key.contains("lottery"))
    for (const char* k : {"round", "control"}) key["lottery"].erase(k);
  return canonical_json(key);
}

int population_limit(const json& cfg, bool cuda) {
  const json& p = cfg["train"].value("population", json("off"));
  const std::string v = p.is_string() ? p.get<std::string>() : p.dump();
  if (v == "off") return 0;
  if (v == "auto") return cuda ? 64 : 16;
  // (A count is validated as a whole number >= 1; beyond int's range it is as good as no limit.)
  return int(std::clamp<long long>(std::strtoll(v.c_str(), nullptr, 10), 0, INT32_MAX));
}

namespace {
// Per data set the process peaked at 1.24 times its tensors' bytes (64 Fashion-MNIST members
// with 189 MB data sets: 15.0 GB on dev-cpu2; loading's temporaries, the nets, the heap): 1.4
// leaves a margin. Two more for the data sets a sweep keeps cached.
// On a GPU the stacked copy of the training sets is allocated whole while the members' data
// sets still hold theirs (a CPU's pages are committed only as they are written), and the
// caching allocator rounds: 2.4, not measured on a GPU yet.
int64_t bytes_per_dataset(int64_t bytes_each, bool gpu) {
  return gpu ? bytes_each * 12 / 5 : bytes_each * 7 / 5;
}
constexpr int64_t kCachedDatasets = 2;

int64_t dataset_bytes(const Dataset& d) {
  int64_t bytes = 0;
  for (const auto* t : {&d.x_train, &d.y_train, &d.x_val, &d.y_val, &d.x_test, &d.y_test})
    if (t->defined()) bytes += int64_t(t->nbytes());
  return bytes;
}
}  // namespace

int64_t population_members_fitting(int64_t bytes_each, int64_t available, bool gpu) {
  const int64_t per = std::max<int64_t>(1, bytes_per_dataset(bytes_each, gpu));
  return std::max<int64_t>(0, available / per - kCachedDatasets);
}

std::string population_memory_problem(int64_t members, int64_t datasets, int64_t bytes_each,
                                      int64_t available, bool gpu) {
  const int64_t per = bytes_per_dataset(bytes_each, gpu);
  if (available < 0 || bytes_each <= 0 || (datasets + kCachedDatasets) * per <= available)
    return "";
  const double gb = 1e9;
  return fmt::format(
      "{} members with {} data sets of {:.2f} GB each need about {:.1f} GB of {}memory and {:.1f} "
      "GB are available: at most {} members fit (a smaller train.population, or auto)",
      members, datasets, double(bytes_each) / gb, double((datasets + kCachedDatasets) * per) / gb,
      gpu ? "GPU " : "", double(available) / gb,
      population_members_fitting(bytes_each, available, gpu));
}

int64_t population_memory_available(const torch::Device& device) {
  return device.is_cuda() ? gpu_free_memory_bytes(std::max<int>(0, device.index()))
                          : available_memory_bytes();
}

int population_limit(const json& cfg, const torch::Device& device, int jobs, int64_t available,
                     const std::string& source, std::string* why) {
  const int limit = population_limit(cfg, device.is_cuda());
  const json& setting = cfg["train"].value("population", json("off"));
  if (limit <= 1 || setting != "auto" || available < 0 || seed_independent_data(cfg["data"]))
    return limit;
  // Loaded as run_population loads it (the loader keeps it), to learn its size.
  const int64_t bytes = [&] {
    std::lock_guard<std::mutex> lock(init_mutex());
    return dataset_bytes(load_dataset(cfg["data"], cfg.value("seed", uint64_t(0)), device, source));
  }();
  const int64_t share = available / std::max(1, jobs);
  const int64_t fit = population_members_fitting(bytes, share, device.is_cuda());
  if (fit >= limit) return limit;
  const int lowered = int(std::max<int64_t>(1, fit));
  if (why)
    *why = fmt::format(
        "auto takes {} member(s) at most here: each has a data set of its own ({:.2f} GB), and "
        "{:.1f} GB of {}memory are available{}",
        lowered, double(bytes) / 1e9, double(available) / 1e9, device.is_cuda() ? "GPU " : "",
        jobs > 1 ? fmt::format(" to {} populations at once", jobs) : "");
  return lowered;
}

int population_limit(const std::vector<const json*>& cfgs, const torch::Device& device, int jobs,
                     int64_t available, const std::string& source, std::string* why) {
  // The largest of the data sets drawn per seed decides, read from the config without loading
  // it: an image set's examples kept (all of them without train_subset), a synthetic task's
  // examples times its features.
  auto size_of = [](const json& d) -> double {
    if (image_data(d)) return d["train_subset"] == 0 ? 1e18 : d["train_subset"].get<double>();
    return (d.value("n_train", 0.0) + d.value("n_test", 0.0)) * std::max(1.0, d.value("dim", 1.0));
  };
  const json* largest = nullptr;
  for (const json* c : cfgs)
    if (!seed_independent_data((*c)["data"]) &&
        (!largest || size_of((*c)["data"]) > size_of((*largest)["data"])))
      largest = c;
  return population_limit(largest ? *largest : *cfgs.at(0), device, jobs, available, source, why);
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

namespace {

void check_members(const std::vector<json>& cfgs, const std::string& source) {
  const std::string key0 = population_group_key(cfgs[0]);
  for (const auto& c : cfgs) {
    const std::string why = population_incompatibility(c);
    if (!why.empty() || population_group_key(c) != key0)
      throw UserError(source + ": trials cannot train as one population" +
                      (why.empty() ? std::string(": they differ in more than ") +
                                         "seed, optim.lr/momentum/weight_decay, model.init_scale, "
                                         "data.label_noise/random_labels and schedule"
                                   : ": " + why));
  }
}

// The members' masks (hooks[p].masks, in model.parameters() order; none, or undefined entries:
// unmasked) laid out like the stacked parameters (weights transposed), ones where a member has
// none; empty when no member has any. The members' nets get their masks applied, as
// Optimizer::set_masks applies them.
std::vector<torch::Tensor> stacked_masks(std::vector<Net>& nets,
                                         const std::vector<TrainHooks>& hooks) {
  bool any = false;
  for (const auto& h : hooks) any = any || !h.masks.empty();
  if (!any) return {};
  torch::NoGradGuard guard;
  const size_t count = nets[0]->parameters().size();
  std::vector<std::vector<torch::Tensor>> per_param(count);
  for (size_t p = 0; p < nets.size(); ++p) {
    auto params = nets[p]->parameters();
    if (params.size() != count || (!hooks[p].masks.empty() && hooks[p].masks.size() != count))
      throw std::logic_error("population masks: one per parameter of a dense stack expected");
    for (size_t i = 0; i < params.size(); ++i) {
      const bool masked = !hooks[p].masks.empty() && hooks[p].masks[i].defined();
      const torch::Tensor m =
          masked ? hooks[p].masks[i].to(params[i].options()) : torch::ones_like(params[i]);
      if (masked) params[i].mul_(m);
      per_param[i].push_back(params[i].dim() == 2 ? m.t() : m);
    }
  }
  std::vector<torch::Tensor> out;
  for (auto& list : per_param) out.push_back(torch::stack(list).contiguous());
  return out;
}

// The loop behind run_population and train_population: member p trains nets[p] (on `device`,
// holding its start weights) on owned[data_of[p]]; with `give_back`, every member's trained
// weights go back into its net.
std::vector<TrainOutcome> train_members(const std::vector<json>& cfgs, std::vector<Dataset>& owned,
                                        const std::vector<size_t>& data_of, std::vector<Net>& nets,
                                        bool give_back, const torch::Device& device,
                                        const std::vector<TrainHooks>& hooks,
                                        const std::string& source,
                                        const std::string& checkpoint_path,
                                        double checkpoint_every_s) {
  const int64_t P = int64_t(cfgs.size());
  const json& c0 = cfgs[0];
  for (const auto& h : hooks)
    if (h.on_step) throw std::logic_error("populations do not call on_step");
  const Dataset& d0 = owned[0];
  if (d0.regression) throw UserError(source + ": populations train classifiers only");

  // The top Hessian eigenvalue and the gradient flow at initialization, where asked: on each
  // member's own net and data, as run_trial takes it.
  std::vector<EigenEstimate> hessian_init;
  std::vector<json> flow_init;
  for (int64_t p = 0; p < P; ++p) {
    hessian_init.push_back(initial_hessian_top(cfgs[p], nets[p], owned[data_of[p]]));
    flow_init.push_back(initial_gradient_flow(cfgs[p], nets[p], owned[data_of[p]]));
  }

  // train.tf32 for training and its evaluations, as train_model takes it; not for the measures.
  std::optional<Tf32Scope> tf32(std::in_place, c0, device);
  const std::vector<torch::Tensor> masks = stacked_masks(nets, hooks);  // before the stacking
  StackedNet net(nets, !device.is_cuda());
  const FlopCount flops = count_flops(nets[0], d0.input_shape);
  const int64_t params = count_parameters(*nets[0]);
  // Every member's mean loss and accuracy on its own copy of one split (x_of, y_of of its data
  // set): P x 2, float64, on the CPU.
  const int64_t eval_batch = c0["train"]["eval_batch_size"];
  using Split = torch::Tensor Dataset::*;
  // The members training now (`active`, indices into cfgs) and the net and optimizer they train
  // in: every member at first; once some have stopped (diverged, or reached stop_train_loss),
  // on a CPU, only those still training, stacked anew at the next epoch's start (see compact
  // below), so a stopped member costs nothing from then on. The full stack (`net`, `stacked`,
  // `opt`) gets their weights and state back before a checkpoint and at the end.
  std::vector<int64_t> active(static_cast<size_t>(P));
  for (int64_t p = 0; p < P; ++p) active[size_t(p)] = p;
  std::vector<int64_t> local_of = active;  // a member's position in `active` (-1: not there)
  StackedNet* train_net = &net;
  // Every member's mean loss and accuracy (rows of members not training now: NaN).
  auto evaluate_all = [&](Split x_of, Split y_of) {
    std::vector<torch::Tensor> xs, ys;
    for (int64_t p : active) {
      const Dataset& d = owned[data_of[p]];
      xs.push_back((d.*x_of).flatten(1)), ys.push_back(d.*y_of);
    }
    const auto some = train_net->evaluate(xs, ys, owned.size() == 1, eval_batch);
    if (int64_t(active.size()) == P) return some;
    auto all = torch::full({P, 2}, NAN, torch::kFloat64);
    all.index_copy_(0, torch::tensor(active, torch::kInt64), some);
    return all;
  };

  const std::vector<torch::Tensor> stacked = net.params();
  StackedOptimizer opt(cfgs, stacked, masks, device);
  StackedOptimizer* train_opt = &opt;
  std::optional<StackedNet> compact_net;  // the active members' stack, once compacted
  std::optional<StackedOptimizer> compact_opt;
  torch::Tensor active_rows;  // `active` on the device, once compacted

  const json& t0 = c0["train"];
  const int64_t n = d0.x_train.size(0);
  note_batch_exceeds_data(c0, n, source);
  const int64_t batch = std::min<int64_t>(t0["batch_size"].get<int64_t>(), n);
  const int64_t spe = (n + batch - 1) / batch;
  const long long total =
      t0["steps"].get<long long>() > 0 ? t0["steps"].get<long long>() : t0["epochs"].get<long long>() * spe;
  const double bound = t0["divergence_loss"];
  const bool has_val = d0.x_val.defined() && d0.x_val.size(0) > 0;
  // Each member's own schedule (the members may differ in it), and the steps at which any
  // member's schedule has a landmark (wsd).
  std::vector<const json*> sched;
  std::vector<std::vector<std::pair<long long, std::string>>> member_marks;
  std::set<long long> mark_steps;
  for (const auto& c : cfgs) {
    sched.push_back(&c["schedule"]);
    member_marks.push_back(schedule_marks(c["schedule"], total, spe));
    for (const auto& mark : member_marks.back()) mark_steps.insert(mark.first);
  }
  const long long eval_every = t0["eval_every_steps"];
  const long long max_evals = t0.value("max_evals", 0LL);
  const bool evals_take_train = t0.value("eval_sets", "all") == "all";  // as in train_model
  const double stop_train_loss = t0.value("stop_train_loss", 0.0);

  std::vector<MemberState> ms(static_cast<size_t>(P));
  std::vector<at::Generator> order;
  for (int64_t p = 0; p < P; ++p) {
    ms[p].base_lr = scaled_base_lr(cfgs[p]["optim"]["lr"], (*sched[p])["scale_rule"], batch,
                                   (*sched[p])["base_batch"]);
    order.push_back(at::detail::createCPUGenerator(cfgs[p].value("seed", 0) * 1000003ULL + 17));
  }

  auto step_losses = torch::zeros({P, spe}, d0.x_train.options());
  Batches batches(owned, data_of);
  auto batch_sizes = torch::full({spe}, double(batch), d0.x_train.options());
  batch_sizes[spe - 1] = double(n - (spe - 1) * batch);
  int epoch = 0;
  long long step = 0, samples = 0, opt_steps = 0;
  long long member_steps = 0;  // steps computed, summed over the members computing them
  // A member's share of `seconds` of the population's time: its computed steps' share of all.
  auto share_of = [&](int64_t p, double seconds) {
    return member_steps > 0 ? seconds * double(ms[p].computed) / double(member_steps)
                            : seconds / double(P);
  };
  double compute_s = 0, eval_s = 0;
  int64_t epoch_steps = 0;
  int64_t since_eval = 0;  // as in train_model
  const long long check_every = kDivergenceCheckEvery;

  long long last_eval_step = -1;  // as in train_model
  auto take_evaluation = [&](bool with_train) {
    last_eval_step = step;
    auto te = Clock::now();
    const auto train =
        with_train ? evaluate_all(&Dataset::x_train, &Dataset::y_train) : torch::Tensor();
    const auto test = evaluate_all(&Dataset::x_test, &Dataset::y_test);
    const auto val = has_val ? evaluate_all(&Dataset::x_val, &Dataset::y_val) : torch::Tensor();
    // Each member's batch-weighted mean loss over this epoch's steps [from, to), on the CPU.
    auto mean_step_losses = [&](int64_t from, int64_t to) {
      auto w = batch_sizes.slice(0, from, to);
      return ((step_losses.slice(1, from, to) * w).sum(1) / w.sum())
          .to(torch::kCPU, torch::kFloat64);
    };
    torch::Tensor running;  // over the epoch so far
    if (epoch_steps > 0) running = mean_step_losses(0, epoch_steps);
    torch::Tensor recent;  // since the last evaluation, as in train_model
    if (!evals_take_train && epoch_steps > since_eval)
      recent = mean_step_losses(since_eval, epoch_steps);
    since_eval = epoch_steps;
    eval_s += seconds_since(te);
    // Each member's share of the population's time, as a trial alone records its own.
    for (int64_t p = 0; p < P; ++p) {
      if (ms[p].done()) continue;
      const double compute_share = share_of(p, compute_s), eval_share = share_of(p, eval_s);
      const double lr = lr_at(*sched[p], ms[p].base_lr, std::max(0LL, step - 1), total, spe);
      Evaluation ev;
      ev.epoch = epoch;
      ev.step = step;
      const double test_acc = test[p][1].item<double>();
      ev.values = {{"test_loss", test[p][0].item<double>()}, {"lr", lr}, {"test_acc", test_acc}};
      if (with_train) {
        const double train_acc = train[p][1].item<double>();
        ev.values.push_back({"train_loss", train[p][0].item<double>()});
        ev.values.push_back({"train_acc", train_acc});
        ev.values.push_back({"gen_gap", train_acc - test_acc});
      }
      if (running.defined()) ev.values.push_back({"train_loss_running", running[p].item<double>()});
      if (recent.defined()) ev.values.push_back({"train_loss_recent", recent[p].item<double>()});
      if (has_val) {
        const double val_loss = val[p][0].item<double>();
        ev.values.push_back({"val_loss", val_loss});
        ev.values.push_back({"val_acc", val[p][1].item<double>()});
        if (val_loss < ms[p].best_val)
          ms[p].best_val = val_loss, ms[p].best_val_step = step, ms[p].test_acc_at_best = test_acc;
      }
      ev.values.push_back({"compute_s", compute_share});
      ev.values.push_back({"eval_s", eval_share});
      if (compute_share > 0)
        ev.values.push_back({"samples_per_s", double(samples) / compute_share});
      ms[p].previous_values = std::move(ms[p].last_values);
      ms[p].last_values = ev.values;
      if (hooks[p].on_eval) hooks[p].on_eval(ev);
    }
  };

  // CUDA graphs, as in train_model: once two steps have run, a full-batch step is captured whole
  // (gather from a static row buffer, forward, backward, one fused step reading its LR and bias
  // corrections from the device) and replayed; other steps (the smaller last batch) run eagerly
  // through the same tensors. A population whose members step alike (seeds) is captured with one
  // LR, one whose members step apart with the members' rows (StackedOptimizer).
  std::string graph_status = cuda_graph_blocker(c0, device);
  if (graph_status.empty()) graph_status = "captured";
  bool graphs = graph_status == "captured";
  kernels::StreamGuard side_stream(graphs ? std::max<int>(0, device.index()) : -1);
  kernels::Graph step_graph;
  bool graph_rows = false;  // the captured step uses the members' rows
  torch::Tensor static_rows, static_losses;
  if (graphs) {
    static_rows = torch::zeros({P * batch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    static_losses = torch::zeros({P}, d0.x_train.options());
  }

  // Checkpoints, as a trial alone takes them: at the first epoch end `checkpoint_every_s` after
  // the last one, the stacked weights and optimizer state, each member's data order generator and
  // summary state, and the loop's counters; written then renamed, removed when the population
  // ends. One whose members differ from these (another population) is not resumed.
  json member_hashes = json::array();
  for (const auto& c : cfgs) member_hashes.push_back(trial_hash(c));
  const auto run_start = Clock::now();
  double resumed_wall = 0;  // the killed run's wall time up to the checkpoint resumed from
  auto save = [&]() {
    PopulationCheckpoint c;
    c.lists = {{"param", stacked}, {"state1", opt.state1()}, {"state2", opt.state2()}};
    for (auto& g : order) c.lists["order"].push_back(g.get_state());
    c.state = {{"members", member_hashes},
               {"epoch", epoch},
               {"step", step},
               {"samples", samples},
               {"opt_steps", opt_steps},
               {"compute_s", compute_s},
               {"wall_s", resumed_wall + seconds_since(run_start)},
               {"eval_s", eval_s},
               {"member_steps", member_steps},
               {"member_state", json::array()}};
    for (const auto& m : ms) c.state["member_state"].push_back(member_json(m));
    write_checkpoint(checkpoint_path, std::move(c));
  };
  int resumed_from = 0;
  // Members that had stopped in the killed run, before its checkpoint.
  std::vector<bool> done_before_resume(static_cast<size_t>(P), false);
  if (auto c = read_checkpoint(checkpoint_path, device, member_hashes)) {
    // Checked whole before anything is restored: one these members cannot take (an older
    // empiric's, its tensors shaped otherwise) is removed and the population trains from the start,
    // rather than failing on every rerun.
    std::string mismatch;
    auto check = [&](const std::vector<torch::Tensor>& into, const std::string& name) {
      const auto& from = c->lists[name];
      if (!mismatch.empty()) return;
      if (from.size() != into.size())
        mismatch = fmt::format("{} {} tensors there, {} here", from.size(), name, into.size());
      for (size_t i = 0; mismatch.empty() && i < into.size(); ++i)
        if (from[i].sizes() != into[i].sizes())
          mismatch = fmt::format("{}.{} has shape {} there, {} here", name, i,
                                 c10::str(from[i].sizes()), c10::str(into[i].sizes()));
    };
    check(stacked, "param"), check(opt.state1(), "state1"), check(opt.state2(), "state2");
    std::vector<MemberState> restored = ms;
    try {
      if (mismatch.empty() && c->lists["order"].size() != size_t(P))
        mismatch = "the members' data orders are missing";
      for (int64_t p = 0; mismatch.empty() && p < P; ++p)
        if (c->lists["order"][p].sizes() != order[p].get_state().sizes())
          mismatch = "a member's data-order generator state is shaped otherwise";
      for (int64_t p = 0; mismatch.empty() && p < P; ++p)
        member_from(c->state.at("member_state").at(size_t(p)), restored[p]);
      for (const char* key : {"epoch", "step", "samples", "opt_steps", "compute_s", "eval_s"})
        if (mismatch.empty() && !c->state.at(key).is_number()) mismatch = key;
    } catch (const json::exception& e) {
      mismatch = e.what();
    }
    if (!mismatch.empty()) {
      std::error_code ignored;  // (as a trial's: one that cannot be removed is left, not fatal)
      std::filesystem::remove(checkpoint_path, ignored);
      note_once("checkpoint " + checkpoint_path + " could not be restored (" + mismatch +
                "): removed; the population trains from the start");
    } else {
      torch::NoGradGuard guard;
      auto restore = [&](const std::vector<torch::Tensor>& into, const std::string& name) {
        for (size_t i = 0; i < into.size(); ++i) into[i].copy_(c->lists[name][i]);
      };
      restore(stacked, "param"), restore(opt.state1(), "state1"), restore(opt.state2(), "state2");
      for (int64_t p = 0; p < P; ++p) order[p].set_state(c->lists["order"][p].cpu());
      const json& state = c->state;
      epoch = resumed_from = state["epoch"];
      step = state["step"];
      samples = state["samples"];
      opt_steps = state["opt_steps"];
      compute_s = state["compute_s"];
      eval_s = state["eval_s"];
      resumed_wall = state.value("wall_s", 0.0);  // (an older checkpoint has none)
      // (A checkpoint of an empiric before stopped members left the stack: every member was
      // computed at every step.)
      member_steps = state.value("member_steps", step * P);
      for (int64_t p = 0; p < P; ++p) {
        ms[p] = restored[p];  // in place: ms[p] may be referenced
        if (ms[p].computed < 0) ms[p].computed = step;
        done_before_resume[size_t(p)] = ms[p].done();
      }
    }
  }
  const long long first_opt_steps = opt_steps;  // captures wait for two eager steps in this run
  {
    std::vector<double> base;
    for (const auto& m : ms) base.push_back(m.done() ? 0.0 : m.base_lr);
    opt.set_bases(base);
  }
  auto last_checkpoint = Clock::now();
  bool checkpointing = !checkpoint_path.empty();
  // Every member's mean loss on its batch (P), after backward of their sum (so each member's
  // gradient is its own). fresh: gradients reset to undefined, so backward writes them instead of
  // zeroing and adding (every step but the eager ones between a graph's replays, which must keep
  // the gradient tensors the graph captured; see train_model).
  auto losses_of = [&](const torch::Tensor& xb, const torch::Tensor& yb, bool fresh) {
    for (auto s : train_net->params())
      if (fresh)
        s.mutable_grad() = torch::Tensor();
      else if (s.mutable_grad().defined())
        s.mutable_grad().zero_();
    auto out = train_net->forward(xb);
    auto losses =
        torch::cross_entropy_loss(out.flatten(0, 1), yb.flatten(), {}, at::Reduction::None)
            .view({xb.size(0), xb.size(1)})
            .mean(1);
    losses.sum().backward();
    return losses;
  };

  // The active members' weights and optimizer state back into the full stack (for a checkpoint,
  // another compaction, and the end).
  auto sync_full = [&] {
    if (!compact_net) return;
    torch::NoGradGuard guard;
    const auto from = compact_net->params();
    for (size_t i = 0; i < stacked.size(); ++i) stacked[i].index_copy_(0, active_rows, from[i]);
    for (auto [full, part] : {std::pair{&opt.state1(), &compact_opt->state1()},
                              std::pair{&opt.state2(), &compact_opt->state2()}})
      for (size_t i = 0; i < full->size(); ++i) (*full)[i].index_copy_(0, active_rows, (*part)[i]);
  };
  // On a CPU, where every member's matmuls cost their share (a GPU runs a few more members at
  // almost no cost, and its captured step is shaped for them all): the members still training
  // stacked anew, the others left behind with their weights as they stopped.
  auto compact = [&] {
    std::vector<int64_t> still, kept;  // members still training; their positions in `active`
    for (size_t i = 0; i < active.size(); ++i)
      if (!ms[active[i]].done()) still.push_back(active[i]), kept.push_back(int64_t(i));
    if (device.is_cuda() || still.empty() || still.size() == active.size()) return;
    sync_full();
    for (auto s : stacked) s.mutable_grad() = torch::Tensor();  // (the full stack trains no more)
    active = still;
    std::fill(local_of.begin(), local_of.end(), -1);
    std::vector<json> their_cfgs;
    std::vector<double> bases;
    for (size_t i = 0; i < active.size(); ++i) {
      local_of[active[i]] = int64_t(i);
      their_cfgs.push_back(cfgs[active[i]]);
      bases.push_back(ms[active[i]].base_lr);
    }
    active_rows = torch::tensor(active, torch::kInt64).to(device);
    const auto& at = active_rows;
    compact_net.reset();
    compact_net.emplace(net.subset(active));
    std::vector<torch::Tensor> their_masks;
    for (const auto& m : masks)
      their_masks.push_back(m.defined() ? m.index_select(0, at).contiguous() : m);
    compact_opt.reset();
    compact_opt.emplace(their_cfgs, compact_net->params(), their_masks, device);
    {
      torch::NoGradGuard guard;
      for (auto [full, part] : {std::pair{&opt.state1(), &compact_opt->state1()},
                                std::pair{&opt.state2(), &compact_opt->state2()}})
        for (size_t i = 0; i < full->size(); ++i) (*part)[i].copy_((*full)[i].index_select(0, at));
    }
    compact_opt->set_bases(bases);
    train_net = &*compact_net, train_opt = &*compact_opt;
    batches.keep(kept);
  };

  auto every_member_diverged = [&] {
    return std::all_of(ms.begin(), ms.end(),
                       [](const MemberState& m) { return m.diverged_step >= 0; });
  };
  auto every_member_done = [&] {
    return std::all_of(ms.begin(), ms.end(), [](const MemberState& m) { return m.done(); });
  };
  bool all_diverged = false;  // (set by the divergence checks; a resumed one is done already)
  while (step < total && !every_member_done()) {  // (all diverged: all done)
    auto t_start = Clock::now();
    compact();
    std::vector<at::Generator> their_order;  // (a stopped member draws no more permutations)
    for (int64_t p : active) their_order.push_back(order[size_t(p)]);
    batches.shuffle(their_order, device);
    epoch_steps = since_eval = 0;
    const long long epoch_start = step;
    int64_t checked = 0;
    for (int64_t b = 0; b < spe && step < total; ++b) {
      const int64_t lo = b * batch, hi = std::min(n, (b + 1) * batch);
      // Each member's LR this step (0 once diverged or stopped) and its schedule's factor.
      std::vector<double> lrs, factors;
      for (int64_t p : active) {
        factors.push_back(lr_at(*sched[p], 1.0, step, total, spe));
        lrs.push_back(ms[p].done() ? 0.0 : lr_at(*sched[p], ms[p].base_lr, step, total, spe));
      }
      const bool alike = train_opt->schedule(lrs, factors);
      const bool full = hi - lo == batch;
      // Captured once two steps have run; again, with the members' rows, when members that were
      // captured stepping alike come to step apart (one diverged and was frozen).
      const bool stale = step_graph.captured() && !alike && !graph_rows;
      if (graphs && full && (!step_graph.captured() || stale) && opt_steps - first_opt_steps >= 2) {
        batches.rows_into(static_rows, lo, hi);
        opt.start_capture(opt_steps);
        const bool rows = !alike;
        std::string why;
        if (step_graph.capture(
                [&] {
                  auto [xb, yb] = batches.at_rows(static_rows);
                  auto losses = losses_of(xb, yb, true);
                  torch::NoGradGuard guard;
                  opt.step_captured(rows, opt_steps + 1);
                  static_losses.copy_(losses.detach());
                },
                &why)) {
          graph_rows = rows;
        } else {
          graphs = false;
          graph_status = "capture failed: " + why;
          note_once("cuda graphs: a population step could not be captured (" + why +
                    "); training eagerly");
        }
      }
      // (graphs is false once a capture failed: a graph kept from before a failed recapture was
      // recorded with gradient tensors that recapture freed, and is not replayed.)
      if (graphs && step_graph.captured() && full && (graph_rows || alike)) {
        batches.rows_into(static_rows, lo, hi);
        opt.prepare_replay(graph_rows);
        step_graph.replay();
        ++opt_steps;
        step_losses.select(1, b).copy_(static_losses);
      } else {
        auto [xb, yb] = batches.gather(lo, hi);
        auto losses = losses_of(xb, yb, !(graphs && step_graph.captured()));
        torch::NoGradGuard guard;
        train_opt->step(!alike, ++opt_steps);
        if (compact_net)  // (a member not training has no loss: 0, as it is done)
          step_losses.select(1, b).zero_().index_copy_(0, active_rows, losses.detach());
        else
          step_losses.select(1, b).copy_(losses.detach());
      }
      ++step;
      samples += hi - lo;
      member_steps += (long long)active.size();
      for (int64_t p : active) ++ms[p].computed;
      epoch_steps = b + 1;
      // Divergence per member, from the losses kept on the device: every 25 steps (one
      // read-back, no sync in between) and at the epoch's end; the first bad step of each member
      // is exact. A diverged member's LR becomes 0; the others go on.
      if (step % check_every == 0 || step == total || b + 1 == spe ||
          (eval_every > 0 && step % eval_every == 0)) {  // as in train_model
        auto window = step_losses.slice(1, checked, b + 1);
        auto bad = window.isnan().logical_or_(window.isinf()).logical_or_(window.gt(bound)).cpu();
        if (bad.any().item<bool>())
          for (int64_t p = 0; p < P; ++p) {
            if (ms[p].done()) continue;
            auto hits = bad[p].nonzero();
            if (hits.size(0) > 0) {
              const int64_t first = hits[0][0].item<int64_t>();
              ms[p].diverged_step = epoch_start + checked + first;
              ms[p].diverged_loss = diverged_loss_json(window[p][first].item<double>());
              ms[p].stopped_step = step, ms[p].stopped_epoch = epoch;
              ms[p].stopped_samples = samples;
              ms[p].stopped_compute_s = share_of(p, compute_s + seconds_since(t_start));
              train_opt->freeze(local_of[p]);
            }
          }
        checked = b + 1;
        all_diverged = every_member_diverged();
        if (all_diverged) break;  // as a trial alone stops at the check that finds it
      }
      if (hooks[0].on_progress && step % 16 == 0) hooks[0].on_progress(step, total);
      if (mark_steps.count(step)) {  // one evaluation for the members with a landmark here
        sync(device);                // (eval_s, not training time)
        compute_s += seconds_since(t_start);
        auto te = Clock::now();
        const auto test = evaluate_all(&Dataset::x_test, &Dataset::y_test);
        for (int64_t p = 0; p < P; ++p)
          for (const auto& [at, name] : member_marks[p])
            if (step == at && !ms[p].done() && !ms[p].marks.contains(name))
              ms[p].marks[name] = {{"step", at}, {"test_loss", test[p][0].item<double>()},
                                   {"test_acc", test[p][1].item<double>()}};
        eval_s += seconds_since(te);
        t_start = Clock::now();
      }
      if (eval_every > 0 && step % eval_every == 0 && b + 1 < spe) {
        sync(device);
        compute_s += seconds_since(t_start);
        take_evaluation(evals_take_train || step >= total);  // as in train_model
        t_start = Clock::now();
      }
    }
    sync(device);
    compute_s += seconds_since(t_start);
    if (all_diverged) break;
    if (epoch_steps == spe) epoch++;  // as in train_model
    if (last_eval_step != step &&
        (evaluates_epoch_end(epoch, step, total, spe, max_evals) ||
         (eval_every > 0 && step % eval_every == 0)))  // as in train_model
      take_evaluation(evals_take_train || step >= total);
    // As in train_model, on the evaluation of this step only: a member whose training loss
    // reached stop_train_loss stops here (frozen, its LR 0), where it would have stopped alone.
    if (stop_train_loss > 0 && last_eval_step == step)
      for (int64_t p = 0; p < P; ++p) {
        if (ms[p].done() || !train_loss_at_most(ms[p].last_values, stop_train_loss)) continue;
        ms[p].reached = true;
        ms[p].stopped_step = step, ms[p].stopped_epoch = epoch, ms[p].stopped_samples = samples;
        ms[p].stopped_compute_s = share_of(p, compute_s);
        train_opt->freeze(local_of[p]);
      }
    if (every_member_done()) break;
    if (checkpointing && step < total && seconds_since(last_checkpoint) >= checkpoint_every_s) {
      for (const auto& h : hooks)
        if (h.before_checkpoint) h.before_checkpoint();
      try {
        sync_full();
        save();
      } catch (const UserError& e) {  // the population is worth more than its checkpoint
        note_once(std::string(e.what()) + ": training goes on without checkpoints");
        checkpointing = false;
      }
      last_checkpoint = Clock::now();
    }
  }
  if (hooks[0].on_progress) hooks[0].on_progress(step, total);
  // As in train_model: a member whose last update sent its loss to Inf or over the bound
  // (evaluation_diverged), its summary the evaluation before.
  if (last_eval_step == step)
    for (int64_t p = 0; p < P; ++p)
      if (!ms[p].done() && evaluation_diverged(ms[p].last_values, bound)) {
        ms[p].diverged_step = ms[p].stopped_step = step;
        ms[p].diverged_loss = evaluation_diverged_loss(ms[p].last_values, bound);
        ms[p].diverged_at_evaluation = true;
        ms[p].last_values = ms[p].previous_values;
        ms[p].stopped_epoch = epoch, ms[p].stopped_samples = samples;
        ms[p].stopped_compute_s = share_of(p, compute_s);
      }
  sync_full();
  tf32.reset();

  std::vector<TrainOutcome> outs(static_cast<size_t>(P));
  torch::NoGradGuard guard;
  if (give_back)
    for (int64_t p = 0; p < P; ++p) net.restore(p);
  for (int64_t p = 0; p < P; ++p) {
    TrainOutcome& out = outs[p];
    // A member that had stopped before the checkpoint trained wholly in the killed run: not
    // resumed (a trial alone would have been stored then), though it shares that run's time.
    out.resumed_from_epoch = done_before_resume[size_t(p)] ? 0 : resumed_from;
    out.resumed_wall_s = resumed_from > 0 ? resumed_wall / double(P) : 0.0;  // (each its share)
    const Dataset& d = owned[data_of[p]];
    // A diverged or stopped member's run ends where a trial alone would have stopped.
    const bool stopped = ms[p].done();
    const double share = stopped ? ms[p].stopped_compute_s : share_of(p, compute_s);
    const long long member_samples = stopped ? ms[p].stopped_samples : samples;
    for (const auto& [k, v] : ms[p].last_values)
      out.summary[k] = std::isfinite(v) ? json(v) : json();
    if (stop_train_loss > 0)  // as train_model writes it, from the last training loss
      out.summary["reached_train_loss"] = train_loss_at_most(ms[p].last_values, stop_train_loss);
    out.summary["compute_s"] = share;
    out.summary["eval_s"] = share_of(p, eval_s);
    if (share > 0) out.summary["samples_per_s"] = double(member_samples) / share;
    out.summary["epochs"] = stopped ? ms[p].stopped_epoch : epoch;
    out.summary["steps"] = stopped ? ms[p].stopped_step : step;
    out.summary["steps_per_epoch"] = spe;
    out.summary["base_lr"] = ms[p].base_lr;
    out.summary["params"] = params;
    out.summary["samples"] = member_samples;
    out.summary["flops_per_example"] = flops.training();
    out.summary["train_flops"] = double(flops.training()) * double(member_samples);
    double sq = 0;
    for (auto& s : stacked) sq += s.select(0, p).pow(2).sum().item<double>();
    out.summary["weight_norm"] = std::sqrt(sq);
    out.summary["chance_loss"] = std::log(double(d.outputs));
    out.summary["population"] = P;
    if (device.is_cuda()) {
      out.summary["cuda_graphs"] = graph_status == "captured" && !step_graph.captured()
                                       ? "too few steps"
                                       : graph_status;
      out.summary["cuda_graph_captures"] = step_graph.captures();
      out.summary["cuda_graph_replays"] = step_graph.replays();
    }
    out.summary["population_compute_s"] = compute_s;
    // (A stopped member is computed until the epoch it stopped in ends, on a GPU to the end.)
    out.summary["population_member_steps"] = member_steps;
    if (has_val) {
      out.summary["best_val_loss"] =
          std::isfinite(ms[p].best_val) ? json(ms[p].best_val) : json();
      out.summary["best_val_step"] = ms[p].best_val_step;
      out.summary["test_acc_at_best_val"] =
          std::isnan(ms[p].test_acc_at_best) ? json() : json(ms[p].test_acc_at_best);
    }
    out.summary["data"] = d.info;
    out.summary.update(flow_init[p]);
    summarize_initial_hessian(hessian_init[p], ms[p].base_lr, out.summary);
    // (As train_model: of a run that took every step, stopped at the last one or not; stopped
    // early, its decay was cut short.)
    if (ms[p].diverged_step < 0 && (ms[p].reached ? ms[p].stopped_step : step) == total)
      summarize_schedule_marks(ms[p].marks, out.summary);
    if (ms[p].diverged_step >= 0) {
      out.status = "diverged";
      out.diverged_step = ms[p].diverged_step;
      out.summary["diverged_step"] = ms[p].diverged_step;
      if (!ms[p].diverged_loss.is_null()) out.summary["diverged_loss"] = ms[p].diverged_loss;
      if (ms[p].diverged_at_evaluation) out.summary["diverged_at_evaluation"] = true;
    } else if (cfgs[p].contains("measure") && !stacked_measures_cover(cfgs[p]["measure"])) {
      // The member's trained weights back in its own net, then the measures a trial alone takes.
      net.restore(p);
      torch::AutoGradMode grad_on(true);  // the measures differentiate the loss
      out.measures = compute_measures(cfgs[p]["measure"], nets[p], d, Loss::of(cfgs[p], d),
                                      cfgs[p].value("seed", 0));
    }
  }
  // The measures every finished member takes at once, where they allow it.
  if (c0.contains("measure") && stacked_measures_cover(c0["measure"])) {
    std::vector<int64_t> finished;
    std::vector<const Dataset*> data;
    std::vector<uint64_t> seeds;
    for (int64_t p = 0; p < P; ++p)
      if (ms[p].diverged_step < 0) {
        finished.push_back(p);
        data.push_back(&owned[data_of[p]]);
        seeds.push_back(cfgs[p].value("seed", 0));
      }
    if (!finished.empty()) {
      torch::AutoGradMode grad_on(true);  // the measures differentiate the loss
      StackedNet measured = net.subset(finished);
      const auto measures = stacked_measures(measured, data, seeds, c0["measure"]);
      for (size_t i = 0; i < finished.size(); ++i) outs[finished[i]].measures = measures[i];
    }
  }
  // Only now: measures that fail (a GPU out of memory) leave the checkpoint to resume from; and
  // kept when the caller records the members first (TrainHooks::keep_checkpoint).
  const bool keep = std::all_of(hooks.begin(), hooks.end(),
                                [](const TrainHooks& h) { return h.keep_checkpoint; });
  if (!checkpoint_path.empty() && !keep) {
    std::error_code ignored;
    std::filesystem::remove(checkpoint_path, ignored);
  }
  return outs;
}

}  // namespace

std::vector<TrainOutcome> run_population(const std::vector<json>& cfgs, const torch::Device& device,
                                         const std::vector<TrainHooks>& hooks,
                                         const std::string& source,
                                         const std::string& checkpoint_path,
                                         double checkpoint_every_s) {
  const int64_t P = int64_t(cfgs.size());
  check_members(cfgs, source);

  // Each member's data and initialization exactly as run_trial draws them for a trial alone.
  std::vector<Dataset> owned;
  std::map<std::string, size_t> cache;
  std::vector<size_t> data_of(static_cast<size_t>(P));
  std::vector<Net> nets;
  auto data_key = [](const json& cfg) {
    const json& d = cfg["data"];
    return d.dump() +
           (seed_independent_data(d) ? "" : "|" + std::to_string(cfg.value("seed", uint64_t(0))));
  };
  std::set<std::string> keys;
  for (const auto& c : cfgs) keys.insert(data_key(c));
  // The data sets live in host memory (a CPU) or on the device (a GPU): a population too large
  // for it is refused with what fits, before the kernel kills the process or torch runs out of
  // device memory in the middle of the stacking.
  std::unique_lock<std::mutex> init_lock(init_mutex());
  // (Read under the lock: a population loading beside this one, --jobs 2, has loaded by now.)
  const int64_t available = population_memory_available(device);
  for (int64_t p = 0; p < P; ++p) {
    const uint64_t seed = cfgs[p].value("seed", 0);
    torch::manual_seed(seed);
    const json& d = cfgs[p]["data"];
    const std::string key = data_key(cfgs[p]);
    if (!cache.count(key)) {
      cache[key] = owned.size();
      owned.push_back(load_dataset(d, seed, device, source));
      if (owned.size() == 1 && keys.size() > 1) {
        const int64_t bytes = dataset_bytes(owned[0]);
        if (std::string why = population_memory_problem(P, int64_t(keys.size()), bytes, available,
                                                        device.is_cuda());
            !why.empty())
          throw ConfigError(source, "/train/population", cfgs[0]["train"]["population"].dump(),
                            why);
      }
    }
    data_of[p] = cache[key];
    check_measure_batches(cfgs[p], owned[data_of[p]].x_train.size(0), source);
    nets.push_back(make_model(cfgs[p]["model"], owned[data_of[p]].input_shape,
                              owned[data_of[p]].outputs, source));
    nets.back()->to(device);
  }
  init_lock.unlock();
  return train_members(cfgs, owned, data_of, nets, false, device, hooks, source, checkpoint_path,
                       checkpoint_every_s);
}

int remove_spent_population_checkpoints(const std::string& dir,
                                        const std::function<bool(const std::string&)>& recorded) {
  int removed = 0;
  std::error_code ec;
  if (dir.empty() || !std::filesystem::is_directory(dir, ec)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("population-", 0) != 0 || entry.path().extension() != ".pt") continue;
    try {
      torch::serialize::InputArchive archive;
      load_archive_from(archive, entry.path().string());
      torch::Tensor t;
      archive.read("state", t);
      if (!archived_tensor_problem(t).empty()) continue;
      const json members = json::parse(tensor_text(t)).value("members", json::array());
      if (members.empty() || !std::all_of(members.begin(), members.end(), [&](const json& h) {
            return h.is_string() && recorded(h.get<std::string>());
          }))
        continue;
    } catch (const std::exception&) {
      continue;
    }
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

std::string population_checkpoint_path(const std::string& dir,
                                       const std::vector<std::string>& member_hashes) {
  if (dir.empty()) return "";
  std::string members;
  for (const auto& h : member_hashes) members += h;
  return (std::filesystem::path(dir) / ("population-" + sha256_hex(members).substr(0, 16) + ".pt"))
      .string();
}

std::vector<TrainOutcome> train_population(
    const std::vector<json>& cfgs, const std::vector<const Dataset*>& data, std::vector<Net>& nets,
    const torch::Device& device, const std::vector<TrainHooks>& hooks, const std::string& source,
    const std::string& checkpoint_path, double checkpoint_every_s) {
  check_members(cfgs, source);
  if (nets.size() != cfgs.size() || hooks.size() != cfgs.size() || data.size() != cfgs.size())
    throw std::logic_error("train_population: one data set, net and hooks per member");
  // Shallow copies (the tensors are shared), one per distinct data set.
  std::vector<Dataset> owned;
  std::vector<const Dataset*> seen;
  std::vector<size_t> data_of;
  for (const Dataset* d : data) {
    const auto it = std::find(seen.begin(), seen.end(), d);
    data_of.push_back(size_t(it - seen.begin()));
    if (it == seen.end()) seen.push_back(d), owned.push_back(*d);
  }
  return train_members(cfgs, owned, data_of, nets, true, device, hooks, source, checkpoint_path,
                       checkpoint_every_s);
}

}  // namespace empiric
