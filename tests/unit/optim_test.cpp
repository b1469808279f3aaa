// Each optimizer against a step computed by hand, on a parameter whose gradient is a constant g
// (loss = sum(g * w)), for both implementations (torch::optim and the fused kernels).
#include "train/optim.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/errors.h"

namespace empiric {
namespace {

struct Toy : torch::nn::Module {
  Toy() {
    w = register_parameter("w", torch::tensor({{1.0f, -2.0f}}));
    b = register_parameter("b", torch::tensor({0.5f}));
  }
  torch::Tensor w, b;
};

const torch::Tensor g = torch::tensor({{0.5f, -0.25f}});

std::string impl = "torch";  // set by the fixture below

json optim_cfg(const std::string& extra) {
  json base =
      json::parse(R"({"lr": 0.1, "momentum": 0.0, "nesterov": false, "weight_decay": 0.0, "l1": 0.0,
    "betas": [0.9, 0.999], "eps": 1e-8, "alpha": 0.99, "clip_norm": 0.0, "lr_mult": {}})");
  base.merge_patch(json::parse(extra));
  if (base["name"] != "rmsprop") base["impl"] = impl;
  return base;
}

// Takes `steps` steps with gradient g on w (and 0 on b); returns w.
torch::Tensor steps_of(const json& cfg, int steps, Toy& toy) {
  Optimizer opt(cfg, toy);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    (toy.w * g).sum().add(toy.b.sum() * 0).backward();
    opt.step();
  }
  return toy.w.detach().clone();
}

void expect_near(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-6) {
  EXPECT_TRUE(torch::allclose(a, b, 0, tol))
      << impl << ": max difference " << (a - b).abs().max().item<double>();
}

class Optim : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { impl = GetParam(); }
};

TEST_P(Optim, SgdMomentum) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  // v1 = g, w1 = w0 - 0.1 g; v2 = 1.9 g, w2 = w1 - 0.19 g
  expect_near(steps_of(optim_cfg(R"({"name":"sgd","momentum":0.9})"), 2, toy), w0 - 0.29 * g);
}

TEST_P(Optim, SgdNesterov) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  // d1 = g + 0.9 g = 1.9 g; buf2 = 1.9 g, d2 = g + 0.9 * 1.9 g = 2.71 g
  expect_near(steps_of(optim_cfg(R"({"name":"sgd","momentum":0.9,"nesterov":true})"), 2, toy),
              w0 - 0.1 * (1.9 + 2.71) * g);
}

TEST_P(Optim, SgdWeightDecayAddsToTheGradient) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  expect_near(steps_of(optim_cfg(R"({"name":"sgd","weight_decay":0.5})"), 1, toy),
              w0 - 0.1 * (g + 0.5 * w0));
}

TEST_P(Optim, AdamFirstStepsMoveByLrTimesSign) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  // With a constant gradient the bias-corrected moments are g and g^2 at every step.
  auto step = 0.1 * g / (g.abs() + 1e-8);
  expect_near(steps_of(optim_cfg(R"({"name":"adam"})"), 3, toy), w0 - 3 * step);
}

TEST_P(Optim, AdamL2VersusAdamWDecoupled) {
  Toy a, b;
  auto w0 = a.w.detach().clone();
  auto g1 = g + 0.1 * w0;  // Adam: decay enters the gradient
  expect_near(steps_of(optim_cfg(R"({"name":"adam","weight_decay":0.1})"), 1, a),
              w0 - 0.1 * g1 / (g1.abs() + 1e-8));
  // AdamW: w <- w (1 - lr wd) - lr mhat / (sqrt(vhat) + eps)
  expect_near(steps_of(optim_cfg(R"({"name":"adamw","weight_decay":0.1})"), 1, b),
              w0 * (1 - 0.1 * 0.1) - 0.1 * g / (g.abs() + 1e-8));
}

TEST_P(Optim, AParameterWithoutAGradientIsLeftAlone) {
  // b is not in the loss: torch::optim skips it, so neither decay nor momentum may move it.
  for (const char* name : {"sgd", "adamw"}) {
    Toy toy;
    Optimizer opt(
        optim_cfg(fmt::format(R"({{"name":"{}","weight_decay":0.5,"momentum":0.9}})", name)), toy);
    for (int i = 0; i < 2; ++i) {
      opt.zero_grad();
      (toy.w * g).sum().backward();
      opt.step();
    }
    EXPECT_FALSE(toy.b.grad().defined()) << name;
    EXPECT_FLOAT_EQ(toy.b.item<float>(), 0.5f) << impl << " " << name;
    EXPECT_FALSE(torch::equal(toy.w, torch::tensor({{1.0f, -2.0f}}))) << impl << " " << name;
  }
}

TEST(OptimTorch, RmsProp) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  auto v = 0.01 * g * g;  // (1 - alpha) g^2
  expect_near(steps_of(optim_cfg(R"({"name":"rmsprop"})"), 1, toy),
              w0 - 0.1 * g / (v.sqrt() + 1e-8), 1e-5);
}

TEST_P(Optim, L1AddsSignOfTheWeights) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  expect_near(steps_of(optim_cfg(R"({"name":"sgd","l1":0.5})"), 1, toy),
              w0 - 0.1 * (g + 0.5 * w0.sign()));
  EXPECT_FLOAT_EQ(toy.b.item<float>(), 0.5f);  // L1 applies to weights (dim >= 2), not biases
}

TEST_P(Optim, ClipScalesTheGlobalNorm) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  double norm = g.norm().item<double>();  // b's gradient is 0
  expect_near(steps_of(optim_cfg(R"({"name":"sgd","clip_norm":0.1})"), 1, toy),
              w0 - 0.1 * g * (0.1 / norm), 1e-5);
}

TEST_P(Optim, ClippingAndSamSeeOnlyTheUnprunedGradient) {
  // w's second entry is pruned: the clipped norm is that of the first entry's gradient alone.
  Toy toy;
  auto w0 = toy.w.detach().clone();
  Optimizer opt(optim_cfg(R"({"name":"sgd","clip_norm":0.1})"), toy);
  opt.set_masks({torch::tensor({{1.0f, 0.0f}}), torch::Tensor()});
  opt.zero_grad();
  (toy.w * g).sum().add(toy.b.sum() * 0).backward();
  opt.step();
  const double first = g[0][0].item<double>();  // 0.5, clipped to 0.1
  EXPECT_NEAR(toy.w[0][0].item<double>(), w0[0][0].item<double>() - 0.1 * first * (0.1 / first),
              1e-6);
  EXPECT_EQ(toy.w[0][1].item<double>(), 0.0);
  // SAM's ascent step leaves the pruned weight at 0, so the loss it regrades at is the sparse one.
  Toy sparse;
  Optimizer sam(optim_cfg(R"({"name":"sgd","sam_rho":0.5})"), sparse);
  sam.set_masks({torch::tensor({{1.0f, 0.0f}}), torch::Tensor()});
  sam.zero_grad();
  (sparse.w * g).sum().backward();
  double pruned_at_ascent = NAN;
  sam.sam_regrade([&] {
    pruned_at_ascent = sparse.w[0][1].item<double>();
    return (sparse.w * g).sum();
  });
  EXPECT_EQ(pruned_at_ascent, 0.0);
}

TEST_P(Optim, APrunedWeightStaysZeroUnderAnInfiniteGradient) {
  // A diverging step's Inf gradient on a pruned weight: Inf * 0 is NaN, so a mask that multiplies
  // would turn the pruned weight into NaN.
  const auto grad = torch::tensor({{0.5f, std::numeric_limits<float>::infinity()}});
  for (const char* name : {R"({"name":"sgd","momentum":0.9})", R"({"name":"adam","lr":0.01})",
                           R"({"name":"adamw","lr":0.01,"weight_decay":0.1})"}) {
    Toy toy;
    Optimizer opt(optim_cfg(name), toy);
    opt.set_masks({torch::tensor({{1.0f, 0.0f}}), torch::Tensor()});
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      (toy.w * grad).sum().add(toy.b.sum()).backward();
      opt.step();
    }
    EXPECT_EQ(toy.w[0][1].item<float>(), 0.0f) << name;
    EXPECT_TRUE(std::isfinite(toy.w[0][0].item<float>())) << name;
  }
}

TEST_P(Optim, LayerMultipliersAndSchedulesSetEachGroup) {
  Toy toy;
  auto w0 = toy.w.detach().clone();
  auto b0 = toy.b.detach().clone();
  Optimizer opt(optim_cfg(R"({"name":"sgd","lr_mult":{"w":0.1}})"), toy);
  opt.set_lr(2.0);
  opt.zero_grad();
  (toy.w * g).sum().add(toy.b.sum()).backward();  // d/db = 1
  opt.step();
  expect_near(toy.w.detach(), w0 - 0.2 * g);
  expect_near(toy.b.detach(), b0 - 2.0);
}

TEST(OptimConfig, AnLrMultPrefixNamesWholeNameParts) {
  // "body.1" is the layer body.1, not body.11 or body.13 as well (an eight-layer MLP's output).
  struct Net : torch::nn::Module {
    Net() {
      one = register_module("one", torch::nn::Linear(1, 1));
      one_more = register_module("one1", torch::nn::Linear(1, 1));
    }
    torch::nn::Linear one{nullptr}, one_more{nullptr};
  } net;
  const auto a0 = net.one->weight.detach().clone(), b0 = net.one_more->weight.detach().clone();
  Optimizer opt(optim_cfg(R"({"name":"sgd","lr_mult":{"one":0.1}})"), net);
  opt.set_lr(2.0);
  opt.zero_grad();
  (net.one->weight.sum() + net.one_more->weight.sum()).backward();  // gradient 1 on each
  opt.step();
  expect_near(net.one->weight.detach(), a0 - 0.2);
  expect_near(net.one_more->weight.detach(), b0 - 2.0);
  // A prefix ending in a dot, or naming one parameter whole, still matches.
  EXPECT_NO_THROW(check_lr_mult(optim_cfg(R"({"name":"sgd","lr_mult":{"one1.":2,"one.bias":3}})"),
                                net, "c.json"));
  EXPECT_THROW(check_lr_mult(optim_cfg(R"({"name":"sgd","lr_mult":{"on":2}})"), net, "c.json"),
               UserError);
}

TEST(OptimConfig, AnLrMultPrefixMatchingNoParameterIsRefused) {
  Toy toy;
  EXPECT_NO_THROW(check_lr_mult(optim_cfg(R"({"name":"sgd","lr_mult":{"w":0.1}})"), toy, "c.json"));
  try {
    check_lr_mult(optim_cfg(R"({"name":"sgd","lr_mult":{"w":0.1,"fc9.":2.0}})"), toy, "c.json");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("c.json: /optim/lr_mult/fc9."), std::string::npos) << what;
    EXPECT_NE(what.find("its parameters are w, b"), std::string::npos) << what;
  }
}

TEST_P(Optim, SamStepsWithTheGradientAtTheAscentPoint) {
  // loss = 0.5 sum h w^2 on w (b untouched): g = h w, e = rho g / |g|, and SAM's SGD step is
  // w - lr h (w + e). The weights the step starts from are w itself, restored exactly.
  Toy toy;
  const auto h = torch::tensor({{2.0f, 0.5f}});
  const auto w0 = toy.w.detach().clone();
  const double rho = 0.05;
  Optimizer opt(optim_cfg(R"({"name":"sgd","sam_rho":0.05})"), toy);
  auto loss = [&] { return 0.5 * (h * toy.w * toy.w).sum() + 0 * toy.b.sum(); };
  opt.zero_grad();
  loss().backward();
  opt.sam_regrade(loss);
  EXPECT_TRUE(torch::equal(toy.w.detach(), w0)) << "back at w before the step";
  auto g = h * w0;
  auto e = rho * g / g.norm();
  expect_near(toy.w.grad(), h * (w0 + e), 1e-6);
  opt.step();
  expect_near(toy.w.detach(), w0 - 0.1 * h * (w0 + e), 1e-6);
  EXPECT_FLOAT_EQ(toy.b.item<float>(), 0.5f);
}

// CUDA graphs read the step's LR and bias corrections from device tensors (on the CPU, from CPU
// tensors through the same code): the steps must equal the host-scalar steps, through LR changes,
// a second parameter group and Adam's bias corrections, and after the step count is set back (as
// after a capture).
TEST(OptimFused, DeviceScalarsGiveTheSameStepsAsHostScalars) {
  for (const char* extra : {R"({"name":"sgd","momentum":0.9,"lr_mult":{"b":3.0}})",
                            R"({"name":"adam","weight_decay":0.01,"lr_mult":{"b":3.0}})",
                            R"({"name":"adamw","weight_decay":0.1})"}) {
    impl = "fused";
    Toy host_toy, device_toy;
    Optimizer host(optim_cfg(extra), host_toy), dev(optim_cfg(extra), device_toy);
    dev.use_device_scalars();
    for (int i = 0; i < 6; ++i) {
      const double lr = 0.1 / (1 + i);  // a schedule: the LR changes every step
      host.set_lr(lr);
      dev.set_lr(lr);
      for (auto* pair : {&host_toy, &device_toy}) {
        pair->zero_grad();
        (pair->w * g * (1 + i)).sum().add(pair->b.sum() * (2 - i)).backward();
      }
      host.step();
      const int64_t before = dev.steps();
      dev.step();
      EXPECT_EQ(dev.steps(), before + 1);
    }
    EXPECT_TRUE(torch::equal(host_toy.w, device_toy.w)) << extra << ": w "
        << host_toy.w << " vs " << device_toy.w;
    EXPECT_TRUE(torch::allclose(host_toy.b, device_toy.b, 0, 1e-7)) << extra;
    EXPECT_FALSE(torch::equal(host_toy.w, Toy().w)) << extra << ": the steps moved nothing";
  }
}

TEST(OptimFused, ClearedGradientsAreWrittenAnewNotAdded) {
  impl = "fused";
  Toy toy;
  Optimizer opt(optim_cfg(R"({"name":"sgd"})"), toy);
  (toy.w * g).sum().backward();
  (toy.w * g).sum().backward();  // accumulates: 2g
  expect_near(toy.w.grad(), 2 * g);
  opt.clear_grads();
  EXPECT_FALSE(toy.w.grad().defined());
  (toy.w * g).sum().backward();
  expect_near(toy.w.grad(), g);
}

TEST(OptimFused, TorchOptimCannotTakeDeviceScalars) {
  impl = "torch";
  Toy toy;
  Optimizer opt(optim_cfg(R"({"name":"sgd"})"), toy);
  EXPECT_THROW(opt.use_device_scalars(), c10::Error);
}

INSTANTIATE_TEST_SUITE_P(BothImpls, Optim, ::testing::Values("torch", "fused"));

}  // namespace
}  // namespace empiric
