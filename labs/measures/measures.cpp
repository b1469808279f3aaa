#include "measures/measures.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace empiric {
namespace {

torch::Tensor loss_on(Net& model, const torch::Tensor& x, const torch::Tensor& y, bool regression) {
  auto out = model->forward(x);
  return regression ? torch::mse_loss(out, y) : torch::cross_entropy_loss(out, y);
}

std::vector<torch::Tensor> trainable(Net& model) {
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  return params;
}

double dot(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  torch::Tensor s = torch::zeros({}, a[0].options().dtype(torch::kFloat64));
  for (size_t i = 0; i < a.size(); ++i)
    s += (a[i].to(torch::kFloat64) * b[i].to(torch::kFloat64)).sum();
  return s.item<double>();
}

}  // namespace

EigenEstimate top_hessian_eigenvalue(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                     bool regression, int max_iterations, double tol,
                                     uint64_t seed) {
  const bool was_training = model->is_training();
  model
      ->eval();  // dropout off, batch norm with running statistics: the Hessian of a fixed function
  auto params = trainable(model);
  auto loss = loss_on(model, x, y, regression);
  auto grads =
      torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);

  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> v;
  for (auto& p : params) v.push_back(torch::randn(p.sizes(), gen, torch::kFloat32).to(p.device()));
  double norm = std::sqrt(dot(v, v));
  for (auto& t : v) t.div_(norm);

  EigenEstimate est;
  double previous = NAN;
  for (int it = 1; it <= max_iterations; ++it) {
    torch::Tensor gv = torch::zeros({}, loss.options());
    for (size_t i = 0; i < params.size(); ++i) gv = gv + (grads[i] * v[i]).sum();
    auto hv = torch::autograd::grad({gv}, params, {}, /*retain_graph=*/true);
    est.value = dot(v, hv);  // Rayleigh quotient v^T H v with |v| = 1
    est.iterations = it;
    norm = std::sqrt(dot(hv, hv));
    if (!std::isfinite(est.value) || norm == 0) break;
    for (size_t i = 0; i < v.size(); ++i) v[i] = hv[i].detach() / norm;
    if (std::isfinite(previous) && std::abs(est.value - previous) <= tol * std::abs(est.value)) {
      est.converged = true;
      break;
    }
    previous = est.value;
  }
  model->train(was_training);
  return est;
}

NoiseScale gradient_noise_scale(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                bool regression, int64_t small_batch, int64_t big_batch,
                                int repeats, uint64_t seed) {
  const bool was_training = model->is_training();
  model->eval();
  auto params = trainable(model);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto mean_sq_norm = [&](int64_t batch) {
    double total = 0;
    for (int r = 0; r < repeats; ++r) {
      auto idx = torch::randperm(x.size(0), gen).slice(0, 0, batch).to(x.device());
      auto loss = loss_on(model, x.index_select(0, idx), y.index_select(0, idx), regression);
      auto g = torch::autograd::grad({loss}, params);
      total += dot(g, g);
    }
    return total / repeats;
  };
  const double bs = double(small_batch), bb = double(big_batch);
  const double small = mean_sq_norm(small_batch), big = mean_sq_norm(big_batch);
  NoiseScale n;
  n.gradient_sq = (bb * big - bs * small) / (bb - bs);
  n.trace_sigma = (small - big) / (1.0 / bs - 1.0 / bb);
  n.b_simple = n.trace_sigma / n.gradient_sq;
  model->train(was_training);
  return n;
}

json compute_measures(const json& m, Net& model, const Dataset& data, uint64_t seed) {
  json out = json::object();
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  const int64_t n = data.x_train.size(0);
  if (m.value("hessian_top", false)) {
    const int64_t k = std::min<int64_t>(n, m["hessian_samples"].get<int64_t>());
    auto est =
        top_hessian_eigenvalue(model, data.x_train.slice(0, 0, k), data.y_train.slice(0, 0, k),
                               data.regression, m["hessian_max_iter"], m["hessian_tol"], seed);
    out["hessian_top"] = finite(est.value);
    out["hessian_top_iterations"] = est.iterations;
    out["hessian_top_converged"] = est.converged;
  }
  if (m.value("noise_scale", false)) {
    const auto batches = m["noise_batches"].get<std::vector<int64_t>>();
    auto ns = gradient_noise_scale(model, data.x_train, data.y_train, data.regression,
                                   std::min(batches[0], n), std::min(batches[1], n),
                                   m["noise_repeats"], seed + 1);
    // Near a minimum |G|^2 is a small difference of two noisy means and the estimate can come out
    // negative: then B_simple is undefined (null), not a number to plot.
    out["b_simple"] = ns.gradient_sq > 0 ? finite(ns.b_simple) : json();
    out["gradient_sq"] = finite(ns.gradient_sq);
    out["trace_sigma"] = finite(ns.trace_sigma);
  }
  return out;
}

}  // namespace empiric
