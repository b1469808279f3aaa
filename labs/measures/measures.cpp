#include "measures/measures.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "axpby/axpby.h"
#include "core/config.h"
#include "core/errors.h"

namespace empiric {
namespace {

torch::Tensor loss_on(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                      const Loss& loss) {
  return loss(model->forward(x), y);
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

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

void assign(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard guard;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i]);
}

double value_of(const LossFn& loss) {
  torch::NoGradGuard guard;
  return loss().item<double>();
}

// Mean and standard error of the mean.
std::pair<double, double> mean_and_se(const std::vector<double>& xs) {
  double mean = 0, ss = 0;
  for (double x : xs) mean += x;
  mean /= double(xs.size());
  for (double x : xs) ss += (x - mean) * (x - mean);
  const double se = xs.size() > 1 ? std::sqrt(ss / double(xs.size() - 1) / double(xs.size())) : 0.0;
  return {mean, se};
}

}  // namespace

TraceEstimate hutchinson_trace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                               int samples, uint64_t seed) {
  auto grads = torch::autograd::grad({loss()}, params, {}, /*retain_graph=*/true,
                                     /*create_graph=*/true);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<double> quads;
  for (int s = 0; s < samples; ++s) {
    std::vector<torch::Tensor> v;
    torch::Tensor gv = torch::zeros({}, grads[0].options());
    for (size_t i = 0; i < params.size(); ++i) {
      // Rademacher: +-1 with equal probability.
      auto r = torch::randint(0, 2, params[i].sizes(), gen, torch::kFloat32).mul_(2).sub_(1);
      v.push_back(r.to(params[i].device()));
      gv = gv + (grads[i] * v.back()).sum();
    }
    auto hv = torch::autograd::grad({gv}, params, {}, /*retain_graph=*/true);
    quads.push_back(dot(v, hv));
  }
  auto [mean, se] = mean_and_se(quads);
  return {mean, se, samples};
}

EpsSharpness eps_sharpness(const std::vector<torch::Tensor>& params, const LossFn& loss, double eps,
                           int max_steps, double tol, uint64_t seed) {
  const auto w0 = copies(params);
  const double base = value_of(loss);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> box, delta;
  for (const auto& w : w0) {
    box.push_back(w.abs().add(1.0).mul(eps));
    delta.push_back((torch::rand(w.sizes(), gen, torch::kFloat32).to(w.device()) * 2 - 1) *
                    box.back());
  }
  EpsSharpness out;
  double worst = base;
  std::vector<double> history;  // the largest loss after each step
  for (int k = 0; k <= max_steps; ++k) {
    {
      torch::NoGradGuard guard;
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(w0[i] + delta[i]);
    }
    auto l = loss();
    const double value = l.item<double>();
    if (!std::isfinite(value)) {  // unmeasured (std::max would pass over a NaN)
      worst = NAN;
      break;
    }
    worst = std::max(worst, value);
    history.push_back(worst);
    out.steps = k;
    if (tol > 0 && k >= kEpsSharpnessWindow &&
        worst - history[size_t(k - kEpsSharpnessWindow)] <= tol * (worst - base)) {
      out.converged = true;
      break;
    }
    if (k == max_steps) break;
    auto g = torch::autograd::grad({l}, params);
    torch::NoGradGuard guard;
    for (size_t i = 0; i < params.size(); ++i)
      delta[i] = torch::clamp(delta[i] + 0.5 * box[i] * g[i].sign(), -box[i], box[i]);
  }
  assign(params, w0);
  out.value = 100.0 * (worst - base) / (1.0 + base);
  return out;
}

SigmaSharpness sigma_sharpness(const std::vector<torch::Tensor>& params, const LossFn& loss,
                               double sigma, int samples, uint64_t seed) {
  const auto w0 = copies(params);
  const double base = value_of(loss);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<double> rises;
  for (int s = 0; s < samples; ++s) {
    {
      torch::NoGradGuard guard;
      for (size_t i = 0; i < params.size(); ++i)
        params[i].copy_(w0[i] + sigma * w0[i].abs() *
                                    torch::randn(w0[i].sizes(), gen, torch::kFloat32)
                                        .to(w0[i].device()));
    }
    rises.push_back(value_of(loss) - base);
  }
  assign(params, w0);
  auto [mean, se] = mean_and_se(rises);
  return {mean, se};
}

std::vector<torch::Tensor> filter_normalized_direction(const std::vector<torch::Tensor>& params,
                                                       at::Generator& gen) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) {
    auto w = p.detach();
    if (w.dim() < 2) {
      out.push_back(torch::zeros_like(w));
      continue;
    }
    auto d = torch::randn(w.sizes(), gen, torch::kFloat32).to(w.device());
    auto dims = std::vector<int64_t>();
    for (int64_t k = 1; k < w.dim(); ++k) dims.push_back(k);
    auto wn = w.norm(2, dims, /*keepdim=*/true), dn = d.norm(2, dims, /*keepdim=*/true);
    out.push_back((d * (wn / dn.clamp_min(1e-12))).contiguous());
  }
  return out;
}

std::vector<double> loss_surface(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                 const std::vector<torch::Tensor>& d1,
                                 const std::vector<torch::Tensor>& d2, double span, int n) {
  const auto w0 = copies(params);
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.data());
  std::vector<double> grid;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double a = n == 1 ? 0.0 : -span + 2.0 * span * i / (n - 1);
      const double b = n == 1 ? 0.0 : -span + 2.0 * span * j / (n - 1);
      kernels::multi_axpby_(out, w0, d1, d2, a, b);
      grid.push_back(value_of(loss));
    }
  assign(params, w0);
  return grid;
}

void along_line(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& from,
                const std::vector<torch::Tensor>& to, double t_lo, double t_hi, int points,
                const std::function<void(double)>& at) {
  // (1 - t) from + t to = from + t (to - from): one axpby along the difference.
  const auto start = copies(from), end = copies(to);  // either may alias params
  std::vector<torch::Tensor> out, diff, zero;
  for (size_t i = 0; i < params.size(); ++i) {
    out.push_back(params[i].data());
    diff.push_back((end[i] - start[i]).contiguous());
    zero.push_back(torch::zeros_like(diff.back()));
  }
  for (int k = 0; k < points; ++k) {
    const double t = points == 1 ? t_lo : t_lo + (t_hi - t_lo) * k / (points - 1);
    kernels::multi_axpby_(out, start, diff, zero, t, 0.0);
    at(t);
  }
  assign(params, end);
}

json interpolation_curve(Net& model, Net& partner, const Dataset& data, const Loss& loss,
                         int64_t samples, double t_lo, double t_hi, int points) {
  const bool was_training = model->is_training();
  model->eval();
  const auto params = trainable(model), here = copies(params);
  const auto there = trainable(partner);
  auto first = [&](const torch::Tensor& t) { return t.slice(0, 0, std::min<int64_t>(samples, t.size(0))); };
  const auto xtr = first(data.x_train), ytr = first(data.y_train);
  const auto xte = first(data.x_test), yte = first(data.y_test);
  json curve = {{"t", json::array()},         {"train_loss", json::array()},
                {"test_loss", json::array()}, {"train_acc", json::array()},
                {"test_acc", json::array()}};
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  auto point = [&](double t) {
    torch::NoGradGuard guard;
    curve["t"].push_back(t);
    for (const auto& [name, x, y] : {std::tuple{"train", xtr, ytr}, std::tuple{"test", xte, yte}}) {
      auto out = model->forward(x);
      const double l = loss(out, y).item<double>();
      curve[std::string(name) + "_loss"].push_back(finite(l));
      // (argmax picks a class from NaN outputs too: where the loss is not finite, neither is
      // the accuracy recorded.)
      if (!data.regression)
        curve[std::string(name) + "_acc"].push_back(
            std::isfinite(l) ? json(out.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>())
                             : json());
    }
  };
  along_line(params, here, there, t_lo, t_hi, points, point);
  // The rises a quarter of the segment beyond each end (t = -0.25 and t = 1.25).
  double at_end[2] = {NAN, NAN}, beyond[2] = {NAN, NAN};
  along_line(params, here, there, -0.25, 1.25, 7, [&](double t) {
    torch::NoGradGuard guard;
    auto out = model->forward(xtr);
    const double l = loss(out, ytr).item<double>();
    if (std::abs(t) < 1e-9) at_end[0] = l;
    if (std::abs(t - 1) < 1e-9) at_end[1] = l;
    if (std::abs(t + 0.25) < 1e-9) beyond[0] = l;
    if (std::abs(t - 1.25) < 1e-9) beyond[1] = l;
  });
  assign(params, here);
  model->train(was_training);
  curve["rise_here"] = finite(beyond[0] - at_end[0]);
  curve["rise_partner"] = finite(beyond[1] - at_end[1]);
  return curve;
}

void rescale_relu_layers(Net& model, double alpha) {
  std::vector<torch::nn::Module*> layers;
  for (auto& m : model->body->modules(/*include_self=*/false))
    if (m->as<torch::nn::Linear>() || m->as<torch::nn::Conv2d>()) layers.push_back(m.get());
  if (layers.size() < 2)
    throw UserError("measure.dinh_alpha: the model needs two Linear or Conv layers to rescale");
  torch::NoGradGuard guard;
  for (auto& p : layers[0]->parameters(/*recurse=*/false)) p.mul_(alpha);
  layers[1]->named_parameters(false)["weight"].div_(alpha);
}

EigenEstimate top_hessian_eigenvalue(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                     const Loss& loss_fn, int max_iterations, double tol,
                                     uint64_t seed) {
  const bool was_training = model->is_training();
  model
      ->eval();  // dropout off, batch norm with running statistics: the Hessian of a fixed function
  const EigenEstimate est = top_hessian_eigenvalue(
      trainable(model), [&] { return loss_on(model, x, y, loss_fn); }, max_iterations, tol, seed);
  model->train(was_training);
  return est;
}

EigenEstimate top_hessian_eigenvalue(const std::vector<torch::Tensor>& params,
                                     const LossFn& loss_of, int max_iterations, double tol,
                                     uint64_t seed) {
  auto loss = loss_of();
  auto grads =
      torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);

  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> start;
  for (auto& p : params)
    start.push_back(torch::randn(p.sizes(), gen, torch::kFloat32).to(p.device()));
  const double start_norm = std::sqrt(dot(start, start));
  for (auto& t : start) t.div_(start_norm);

  // Power iteration on H - shift I from the start vector: its eigenvalue of largest magnitude.
  auto iterate = [&](double shift, int budget) {
    EigenEstimate est;
    std::vector<torch::Tensor> v = start;
    double previous = NAN;
    for (int it = 1; it <= budget; ++it) {
      torch::Tensor gv = torch::zeros({}, loss.options());
      for (size_t i = 0; i < params.size(); ++i) gv = gv + (grads[i] * v[i]).sum();
      auto hv = torch::autograd::grad({gv}, params, {}, /*retain_graph=*/true);
      if (shift != 0)
        for (size_t i = 0; i < hv.size(); ++i) hv[i] = hv[i] - shift * v[i];
      est.value = dot(v, hv);  // Rayleigh quotient v^T (H - shift I) v with |v| = 1
      est.iterations = it;
      const double norm = std::sqrt(dot(hv, hv));
      // |Hv - value v| itself, in double: |Hv|^2 - value^2 cancels to float32's rounding of
      // |v|^2 (about 2e-4 of the value) and could not show a smaller residual.
      std::vector<torch::Tensor> r;
      for (size_t i = 0; i < hv.size(); ++i)
        r.push_back(hv[i].to(torch::kFloat64) - est.value * v[i].to(torch::kFloat64));
      est.residual = std::sqrt(dot(r, r));
      if (!std::isfinite(est.value) || norm == 0) break;
      for (size_t i = 0; i < v.size(); ++i) v[i] = hv[i].detach() / norm;
      // Relative to the eigenvalue of H itself (est.value + shift), not to the shifted one. A
      // value that changes little is not enough: an iterate mixing the top eigenvector with a
      // negative one of nearly its magnitude (1 and -0.999) turns so slowly that its value
      // stalls anywhere between them (0.62 for a top of 1). It must be near an eigenvector too:
      // a residual within sqrt(tol) of the value, as an eigenvalue within tol goes with an
      // eigenvector within about sqrt(tol).
      if (std::isfinite(previous) &&
          std::abs(est.value - previous) <= tol * std::abs(est.value + shift) &&
          est.residual <= std::sqrt(tol) * std::abs(est.value + shift)) {
        est.converged = true;
        break;
      }
      previous = est.value;
    }
    return est;
  };
  EigenEstimate est = iterate(0.0, max_iterations);
  if (std::isfinite(est.value) && est.value < 0 && est.iterations >= max_iterations) {
    est.converged = false;  // a negative estimate with no budget left is not the top eigenvalue
  } else if (std::isfinite(est.value) && est.value < 0) {
    // The largest magnitude was a negative eigenvalue l: H - l I has eigenvalues lambda - l >= 0
    // (to the estimate's accuracy), the largest at the top eigenvalue, which a second iteration
    // finds, from the same start, within what is left of the budget.
    const EigenEstimate first = est;
    est = iterate(first.value, max_iterations - first.iterations);
    est.value += first.value;
    est.iterations += first.iterations;
    est.converged = est.converged && first.converged;
    est.shift = first.value;
  }
  return est;
}

NoiseScale gradient_noise_scale(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                const Loss& loss_fn, int64_t small_batch, int64_t big_batch,
                                int repeats, uint64_t seed) {
  const bool was_training = model->is_training();
  model->eval();
  auto params = trainable(model);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto mean_sq_norm = [&](int64_t batch) {
    double total = 0;
    for (int r = 0; r < repeats; ++r) {
      auto idx = torch::randperm(x.size(0), gen).slice(0, 0, batch).to(x.device());
      auto loss = loss_on(model, x.index_select(0, idx), y.index_select(0, idx), loss_fn);
      auto g = torch::autograd::grad({loss}, params);
      total += dot(g, g);
    }
    return total / repeats;
  };
  const double small = mean_sq_norm(small_batch), big = mean_sq_norm(big_batch);
  model->train(was_training);
  return noise_scale_from(small, big, small_batch, big_batch, x.size(0));
}

NoiseScale noise_scale_from(double small_sq, double big_sq, int64_t small_batch, int64_t big_batch,
                            int64_t examples) {
  // Each batch's share of the noise: a_B (without replacement) or 1 / B (i.i.d.).
  auto share = [&](int64_t batch) {
    const double b = double(batch), n = double(examples);
    return examples > 1 ? (n - b) / (b * (n - 1.0)) : 1.0 / b;
  };
  const double as = share(small_batch), ab = share(big_batch);
  NoiseScale n;
  n.trace_sigma = (small_sq - big_sq) / (as - ab);
  n.gradient_sq = (as * big_sq - ab * small_sq) / (as - ab);
  n.b_simple = n.trace_sigma / n.gradient_sq;
  return n;
}

void put_noise_scale(const NoiseScale& ns, json& out) {
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  // Near a minimum |G|^2 is a small difference of two noisy means and the estimate can come out
  // negative: then B_simple is undefined (null), not a number to plot.
  out["b_simple"] = ns.gradient_sq > 0 && ns.trace_sigma > 0 ? finite(ns.b_simple) : json();
  out["gradient_sq"] = finite(ns.gradient_sq);
  out["trace_sigma"] = finite(ns.trace_sigma);
}

Calibration calibration_error(const torch::Tensor& logits, const torch::Tensor& labels, int bins) {
  torch::NoGradGuard guard;
  if (!torch::isfinite(logits).all().item<bool>())  // no probabilities to bin: nothing measured
    return {NAN, NAN, NAN};
  const auto probs = torch::softmax(logits.to(torch::kFloat64), 1);
  const auto [conf, pred] = probs.max(1);
  const auto correct = pred.eq(labels).to(torch::kFloat64);
  // Bin i holds (i / bins, (i + 1) / bins]: ceil(conf * bins) - 1, the top bin closed at 1.
  const auto bin = (conf * bins).ceil().sub(1).clamp(0, bins - 1).to(torch::kInt64);
  const auto zeros = torch::zeros({bins}, conf.options());
  const auto conf_sum = zeros.index_add(0, bin, conf),
             correct_sum = zeros.index_add(0, bin, correct);
  const double n = double(conf.size(0));
  Calibration out;
  out.ece = (correct_sum - conf_sum).abs().sum().item<double>() / n;
  out.confidence = conf.mean().item<double>();
  out.accuracy = correct.mean().item<double>();
  return out;
}

PerClass per_class_results(const torch::Tensor& logits, const torch::Tensor& labels) {
  torch::NoGradGuard guard;
  if (!torch::isfinite(logits).all().item<bool>()) return {NAN, NAN, NAN};
  const int64_t k = logits.size(1);
  const auto pred = logits.argmax(1);
  const auto ones = torch::ones_like(labels, torch::kFloat64);
  const auto zeros = torch::zeros({k}, ones.options());
  const auto support = zeros.index_add(0, labels, ones);
  const auto hits = zeros.index_add(0, labels, pred.eq(labels).to(torch::kFloat64));
  const auto present = support.gt(0);
  const auto recall = hits.masked_select(present) / support.masked_select(present);
  PerClass out;
  out.balanced_accuracy = recall.mean().item<double>();
  out.min_recall = recall.min().item<double>();
  out.max_prediction_share =
      zeros.index_add(0, pred, ones).max().item<double>() / double(labels.size(0));
  return out;
}

double macro_auc(const torch::Tensor& logits, const torch::Tensor& labels) {
  torch::NoGradGuard guard;
  if (!torch::isfinite(logits).all().item<bool>()) return NAN;
  // Ranked by each class's log-odds against the rest, logit_c - logsumexp of the others: the
  // order of its softmax probability, which rounds to exactly 1 (or 0) once one logit leads the
  // others by about 37 and would tie examples that are not tied.
  const auto l = logits.to(torch::kFloat64).cpu();
  std::vector<torch::Tensor> odds;
  for (int64_t c = 0; c < l.size(1); ++c) {
    auto others = l.clone();
    others.select(1, c).fill_(-INFINITY);
    odds.push_back(l.select(1, c) - others.logsumexp(1));
  }
  const auto scores = torch::stack(odds, 1).contiguous();
  const auto y = labels.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t n = scores.size(0), k = scores.size(1);
  const double* p = scores.data_ptr<double>();
  const int64_t* truth = y.data_ptr<int64_t>();
  std::vector<int64_t> order(static_cast<size_t>(n));
  double sum = 0;
  int classes = 0;
  for (int64_t c = 0; c < k; ++c) {
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return p[a * k + c] < p[b * k + c]; });
    // Sum of the positives' ranks (1-based, tied scores sharing their mean rank).
    double rank_sum = 0;
    int64_t positives = 0;
    for (int64_t i = 0; i < n;) {
      int64_t j = i;
      while (j < n && p[order[size_t(j)] * k + c] == p[order[size_t(i)] * k + c]) ++j;
      const double mid = 0.5 * double(i + 1 + j);  // mean of ranks i + 1 .. j
      for (int64_t r = i; r < j; ++r)
        if (truth[order[size_t(r)]] == c) rank_sum += mid, ++positives;
      i = j;
    }
    const int64_t negatives = n - positives;
    if (positives == 0 || negatives == 0) continue;
    sum += (rank_sum - 0.5 * double(positives) * double(positives + 1)) /
           (double(positives) * double(negatives));
    ++classes;
  }
  return classes > 0 ? sum / classes : NAN;
}

NoisyLabelAccuracy noisy_label_accuracy(const torch::Tensor& logits, const torch::Tensor& labels,
                                        double rate, uint64_t seed) {
  torch::NoGradGuard guard;
  const int64_t n = labels.size(0), k = logits.size(1);
  const int64_t flips = std::llround(rate * double(n));
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const auto which = torch::randperm(n, gen).slice(0, 0, flips);
  const auto shift = torch::randint(1, k, {flips}, gen, torch::kInt64);
  auto noisy = labels.cpu().clone();
  noisy.index_put_({which}, (noisy.index_select(0, which) + shift).remainder(k));
  const auto pred = logits.argmax(1).cpu();
  NoisyLabelAccuracy out;
  out.rate = double(flips) / double(std::max<int64_t>(n, 1));
  // argmax picks an index among NaNs too: predictions from non-finite logits measure nothing
  // (their clean and noisy accuracies would agree, and the correction look exact).
  if (!torch::isfinite(logits).all().item<bool>()) {
    out.clean = out.noisy = out.corrected = NAN;
    return out;
  }
  out.clean = pred.eq(labels.cpu()).to(torch::kFloat64).mean().item<double>();
  out.noisy = pred.eq(noisy).to(torch::kFloat64).mean().item<double>();
  const double other = out.rate / double(k - 1);
  out.corrected = (out.noisy - other) / (1.0 - out.rate - other);
  return out;
}

double dead_unit_fraction(Net& model, const torch::Tensor& x, int64_t chunk) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard guard;
  // Per activation layer, which units some example has activated so far: the examples go through
  // in chunks (a convnet's feature maps for a whole training set would not fit).
  std::vector<torch::Tensor> alive;
  bool finite_inputs = true;
  for (const auto& part : x.split(std::max<int64_t>(1, chunk))) {
    torch::Tensor h = part;
    size_t layer = 0;
    for (auto& m : *model->body) {
      const auto* module = m.ptr().get();
      if (dynamic_cast<const torch::nn::ReLUImpl*>(module) ||
          dynamic_cast<const torch::nn::LeakyReLUImpl*>(module) ||
          dynamic_cast<const torch::nn::PReLUImpl*>(module)) {
        // units x (examples, and positions in a feature map)
        const auto pre = h.transpose(0, 1).reshape({h.size(1), -1});
        // A NaN input is not "never positive": such a network has no dead units to count.
        finite_inputs = finite_inputs && torch::isfinite(pre).all().item<bool>();
        const auto here = pre.gt(0).any(1);
        if (layer == alive.size())
          alive.push_back(here);
        else
          alive[layer].logical_or_(here);
        ++layer;
      }
      h = m.forward(h);
    }
    if (!finite_inputs) break;
  }
  model->train(was_training);
  if (!finite_inputs) return NAN;
  double dead = 0, total = 0;
  for (const auto& a : alive) {
    dead += double(a.numel()) - a.sum().item<double>();
    total += double(a.numel());
  }
  return total > 0 ? dead / total : NAN;
}

double zero_fraction(const std::vector<torch::Tensor>& params, double tol) {
  torch::NoGradGuard guard;
  double small = 0, total = 0;
  for (const auto& p : params) {
    if (p.dim() < 2) continue;
    small += p.abs().lt(tol).sum().item<double>();
    total += double(p.numel());
  }
  return total > 0 ? small / total : NAN;
}

GradientFlow gradient_flow(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                           const Loss& loss) {
  const bool was_training = model->is_training();
  model->eval();
  std::vector<torch::Tensor> weights;
  for (const auto& p : trainable(model))
    if (p.dim() >= 2) weights.push_back(p);
  torch::AutoGradMode grad_on(true);
  const auto grads = torch::autograd::grad({loss_on(model, x, y, loss)}, weights);
  model->train(was_training);
  return {grads.front().norm().item<double>(),
          grads.size() > 1 ? grads.back().norm().item<double>() : NAN};
}

DropoutAccuracy dropout_accuracy(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                 int samples, int64_t batch) {
  torch::NoGradGuard guard;
  const bool was_training = model->is_training();
  model->eval();
  std::vector<torch::nn::Module*> dropouts;
  for (auto& m : model->modules(/*include_self=*/false))
    if (m->as<Dropout>()) dropouts.push_back(m.get());
  // Correct answers counted on the device (off, one pass, mean of passes), read back once; and
  // the non-finite logits of the pass without dropout, which argmax would still count.
  auto hits = torch::zeros({3}, y.options().dtype(torch::kInt64));
  auto nonfinite = torch::zeros({}, y.options().dtype(torch::kInt64));
  for (int64_t i = 0; i < x.size(0); i += batch) {
    const auto xb = x.slice(0, i, i + batch), yb = y.slice(0, i, i + batch);
    for (auto* d : dropouts) d->eval();
    const auto off = model->forward(xb);
    nonfinite += torch::isfinite(off).logical_not().sum();
    hits[0] += off.argmax(1).eq(yb).sum();
    for (auto* d : dropouts) d->train();
    auto probs = torch::softmax(model->forward(xb), 1);
    hits[1] += probs.argmax(1).eq(yb).sum();
    for (int s = 1; s < samples; ++s) probs += torch::softmax(model->forward(xb), 1);
    hits[2] += probs.argmax(1).eq(yb).sum();
  }
  model->train(was_training);
  if (nonfinite.item<int64_t>() > 0) return {NAN, NAN, NAN};
  const auto counts = hits.cpu();
  const double n = double(std::max<int64_t>(1, x.size(0)));
  return {counts[0].item<double>() / n, counts[1].item<double>() / n, counts[2].item<double>() / n};
}

json compute_measures(const json& m, Net& model, const Dataset& data, const Loss& loss_fn,
                      uint64_t seed) {
  json out = json::object();
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  const int64_t n = data.x_train.size(0);
  const int64_t k = std::min<int64_t>(n, m.value("hessian_samples", int64_t(1000)));
  const auto xs = data.x_train.slice(0, 0, k), ys = data.y_train.slice(0, 0, k);
  const bool was_training = model->is_training();
  model->eval();  // every measure is of the fixed function: dropout off, batch norm frozen
  const auto params = trainable(model);
  const LossFn loss = [&] { return loss_on(model, xs, ys, loss_fn); };

  // The curvature and sharpness measures, under names ending in `suffix`.
  auto sharpness = [&](const std::string& suffix) {
    if (m.value("hessian_top", false)) {
      auto est = top_hessian_eigenvalue(model, xs, ys, loss_fn, m["hessian_max_iter"],
                                        m["hessian_tol"], seed);
      out["hessian_top" + suffix] = finite(est.value);
      out["hessian_top_iterations" + suffix] = est.iterations;
      out["hessian_top_converged" + suffix] = est.converged;
      out["hessian_top_residual" + suffix] = finite(est.residual);
      if (est.shift != 0) out["hessian_top_shift" + suffix] = est.shift;
    }
    if (m.value("hessian_trace", false)) {
      auto tr = hutchinson_trace(params, loss, m["trace_samples"], seed + 2);
      out["hessian_trace" + suffix] = finite(tr.value);
      out["hessian_trace_se" + suffix] = finite(tr.std_error);
    }
    if (m.value("eps_sharpness", false)) {
      const auto es = eps_sharpness(params, loss, m["eps"], m["eps_steps"], m["eps_tol"], seed + 3);
      out["eps_sharpness" + suffix] = finite(es.value);
      out["eps_sharpness_steps" + suffix] = es.steps;
      if (m["eps_tol"].get<double>() > 0) out["eps_sharpness_converged" + suffix] = es.converged;
    }
    if (m.value("sigma_sharpness", false)) {
      auto ss = sigma_sharpness(params, loss, m["sigma"], m["sigma_samples"], seed + 4);
      out["sigma_sharpness" + suffix] = finite(ss.mean_rise);
      out["sigma_sharpness_se" + suffix] = finite(ss.std_error);
    }
  };
  sharpness("");

  if (m.value("dinh_alpha", 0.0) > 0) {
    // The same function under another parametrization: the outputs must not move, the measures
    // may. The weights are restored exactly afterwards (a copy, not a division by alpha).
    const double alpha = m["dinh_alpha"];
    const auto saved = copies(params);
    torch::Tensor before;
    {
      torch::NoGradGuard guard;
      before = model->forward(xs);
    }
    rescale_relu_layers(model, alpha);
    {
      torch::NoGradGuard guard;
      out["dinh_output_change"] =
          finite((model->forward(xs) - before).abs().max().item<double>() /
                 std::max(1e-12, before.abs().max().item<double>()));
    }
    sharpness("_dinh");
    assign(params, saved);
    for (const char* name : {"hessian_top", "hessian_trace", "eps_sharpness", "sigma_sharpness"})
      if (out.contains(name) && out.contains(std::string(name) + "_dinh") &&
          out[name].is_number() && out[std::string(name) + "_dinh"].is_number())
        out[std::string(name) + "_dinh_ratio"] =
            finite(out[std::string(name) + "_dinh"].get<double>() / out[name].get<double>());
  }

  if (m.value("surface_grid", 0) > 0) {
    const int g = m["surface_grid"];
    const double span = m["surface_span"];
    at::Generator gen = at::detail::createCPUGenerator(seed + 5);
    auto d1 = filter_normalized_direction(params, gen), d2 = filter_normalized_direction(params, gen);
    auto grid = loss_surface(params, loss, d1, d2, span, g);
    json values = json::array();
    for (double v : grid) values.push_back(finite(v));
    out["surface"] = {{"n", g}, {"span", span}, {"loss", values}};
  }

  if (m.value("dead_units", false))
    out["dead_unit_frac"] = finite(dead_unit_fraction(model, data.x_train));

  if (m.value("sparsity", false))
    out["weight_zero_frac"] = finite(zero_fraction(params, m.value("sparsity_tol", 1e-3)));

  const bool calibration = m.value("calibration", false), per_class = m.value("per_class", false);
  const bool auc = m.value("auc", false);
  const double noisy_rate = m.value("noisy_test_labels", 0.0);
  if ((calibration || per_class || auc || noisy_rate > 0) && !data.regression) {
    std::vector<torch::Tensor> chunks;
    {
      torch::NoGradGuard guard;
      for (int64_t i = 0; i < data.x_test.size(0); i += 2000)
        chunks.push_back(model->forward(data.x_test.slice(0, i, i + 2000)));
    }
    const auto logits = torch::cat(chunks).cpu();
    const auto labels = data.y_test.cpu();
    if (calibration) {
      const auto cal = calibration_error(logits, labels, m.value("calibration_bins", 15));
      out["test_ece"] = finite(cal.ece);
      out["test_confidence"] = finite(cal.confidence);
      out["test_overconfidence"] = finite(cal.confidence - cal.accuracy);
    }
    if (per_class) {
      const auto pc = per_class_results(logits, labels);
      out["test_balanced_acc"] = finite(pc.balanced_accuracy);
      out["test_min_recall"] = finite(pc.min_recall);
      out["test_max_pred_share"] = finite(pc.max_prediction_share);
    }
    if (auc) out["test_auc"] = finite(macro_auc(logits, labels));
    if (noisy_rate > 0) {
      const auto nl = noisy_label_accuracy(logits, labels, noisy_rate, seed + 6);
      out["test_acc_noisy"] = finite(nl.noisy);
      out["test_acc_noisy_drop"] = finite(nl.clean - nl.noisy);
      out["test_acc_corrected"] = finite(nl.corrected);
      out["test_acc_correction_error"] = finite(std::abs(nl.corrected - nl.clean));
    }
  }

  if (m.value("dropout_test", false) && !data.regression) {
    const auto acc =
        dropout_accuracy(model, data.x_test, data.y_test, m.value("mc_samples", 20), 2000);
    out["test_acc_dropout_on"] = finite(acc.one_pass);
    out["test_acc_mc"] = finite(acc.mc_mean);
    out["test_dropout_on_cost"] = finite(acc.off - acc.one_pass);
    out["test_mc_minus_off"] = finite(acc.mc_mean - acc.off);
  }

  if (m.value("noise_scale", false)) {
    const auto batches = m["noise_batches"].get<std::vector<int64_t>>();
    auto ns =
        gradient_noise_scale(model, data.x_train, data.y_train, loss_fn, std::min(batches[0], n),
                             std::min(batches[1], n), m["noise_repeats"], seed + 1);
    put_noise_scale(ns, out);
  }
  model->train(was_training);
  return out;
}

}  // namespace empiric
