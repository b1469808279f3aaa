// Measures on models whose answers are known in closed form.
#include "measures/measures.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace empiric {
namespace {

Net linear_model(int64_t in) {
  return make_model(
      json::parse(R"({"name": "linear", "bias": false, "init": "default", "init_scale": 1.0})"),
      {in}, 1);
}

TEST(Measures, HessianTopEigenvalueOfLinearRegressionWithinOnePercent) {
  torch::manual_seed(5);
  const int64_t n = 256, d = 6;
  auto x = torch::randn({n, d}) * torch::linspace(0.5, 3.0, d);  // a spread spectrum
  auto y = torch::randn({n, 1});
  Net model = linear_model(d);
  // mean((x w - y)^2) has Hessian 2/n x^T x, whatever w is.
  double exact = torch::linalg_eigvalsh(2.0 / n * x.t().matmul(x)).max().item<double>();
  auto est = top_hessian_eigenvalue(model, x, y, /*regression=*/true, 200, 1e-6, 0);
  EXPECT_TRUE(est.converged);
  EXPECT_NEAR(est.value, exact, 0.01 * exact);
}

TEST(Measures, GradientNoiseScaleMatchesTheExactPerExampleStatistics) {
  torch::manual_seed(8);
  const int64_t n = 8192, d = 8;
  auto x = torch::randn({n, d});
  auto w_true = torch::randn({d, 1});
  auto y = x.matmul(w_true) + 0.5 * torch::randn({n, 1});
  Net model = linear_model(d);
  {
    torch::NoGradGuard guard;
    model->parameters()[0].copy_(w_true.t() + 0.3);  // away from the optimum: |G| is not tiny
  }
  // Exact: per-example gradients of (x_i w - y_i)^2 are 2 (x_i w - y_i) x_i.
  auto w = model->parameters()[0].detach();
  auto per_example = 2.0 * (x.matmul(w.t()) - y) * x;
  auto g = per_example.mean(0);
  double trace_sigma = (per_example - g).pow(2).sum(1).mean().item<double>();
  double exact = trace_sigma / g.pow(2).sum().item<double>();
  auto ns = gradient_noise_scale(model, x, y, true, 16, 256, 400, 1);
  EXPECT_NEAR(ns.b_simple, exact, 0.2 * exact) << "exact " << exact;
  EXPECT_NEAR(ns.trace_sigma, trace_sigma, 0.2 * trace_sigma);
}

}  // namespace
}  // namespace empiric
