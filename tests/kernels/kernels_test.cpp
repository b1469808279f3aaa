// Every kernel, on every device present, against its ATen reference on fresh random inputs of
// awkward sizes: 1, 3, 1023, 2^20 + 7, sixty and a hundred small tensors, one large, and on
// CUDA three of 12M elements (past a launch's chunks). CUDA cases skip cleanly
// without a GPU. float32 throughout; bounds are relative to the reference, plus a small absolute
// floor for elements near zero.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "axpby/axpby.h"
#include "common/cpu_spans.h"
#include "fused_optim/fused_optim.h"
#include "magnitude/magnitude.h"
#include "per_example/per_example.h"

namespace empiric::kernels {
namespace {

using Lists = std::vector<torch::Tensor>;

struct Case {
  std::string name;
  std::vector<int64_t> sizes;
};

// Test names and ctest's listing show the case's name, not the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  std::vector<int64_t> many, hundred;
  for (int i = 0; i < 60; ++i) many.push_back(1 + (i * 37) % 500);
  // Past one CUDA launch's limits (kernels/common/multi_tensor.cuh: 96 tensors, 2048 chunks of
  // 16,384 elements): a second launch after the 96th tensor, and one that carries a tensor's
  // remaining chunks over (37.7M elements against a launch's 33.5M).
  for (int i = 0; i < 100; ++i) hundred.push_back(1 + (i * 53) % 300);
  const int64_t twelve_m = int64_t(12) << 20;
  return {{"one", {1}},
          {"three", {3}},
          {"n1023", {1023}},
          {"n2p20p7", {(1 << 20) + 7}},
          {"sixty_small", many},
          {"mixed", {5, (1 << 18) + 1, 2, 70000}},
          {"hundred_small", hundred},
          {"past_one_launch", {twelve_m, twelve_m, twelve_m + 5}}};
}

// Every case on every device, but the one past a CUDA launch's limits only on CUDA: the CPU path
// has no launches, and its three steps of 38M elements took 25 s a test on two cores.
std::vector<std::tuple<std::string, Case>> device_cases() {
  std::vector<std::tuple<std::string, Case>> out;
  for (const char* device : {"cpu", "cuda"})
    for (const auto& c : cases())
      if (std::string(device) == "cuda" || c.name != "past_one_launch") out.emplace_back(device, c);
  return out;
}

Lists randn(const std::vector<int64_t>& sizes, const torch::Device& d, double scale = 1.0) {
  Lists out;
  for (auto n : sizes) out.push_back(torch::randn({n}, torch::TensorOptions().device(d)) * scale);
  return out;
}
Lists clone(const Lists& l) {
  Lists out;
  for (const auto& t : l) out.push_back(t.clone());
  return out;
}
Lists masks_for(const std::vector<int64_t>& sizes, const torch::Device& d) {
  Lists out;
  for (auto n : sizes)
    out.push_back(torch::bernoulli(torch::full({n}, 0.5, torch::TensorOptions().device(d))));
  return out;
}

void expect_close(const Lists& got, const Lists& want, double rtol, double atol,
                  const std::string& what) {
  for (size_t k = 0; k < got.size(); ++k) {
    auto err = (got[k] - want[k]).abs();
    auto bound = want[k].abs() * rtol + atol;
    auto bad = (err > bound).logical_or(got[k].isnan());
    ASSERT_EQ(bad.sum().item<int64_t>(), 0)
        << what << " tensor " << k << ": max error " << err.max().item<double>();
  }
}

class Kernels : public ::testing::TestWithParam<std::tuple<std::string, Case>> {
 protected:
  void SetUp() override {
    if (std::get<0>(GetParam()) == "cuda" && !torch::cuda::is_available())
      GTEST_SKIP() << "no CUDA GPU visible to torch";
    device_ = std::get<0>(GetParam()) == "cuda" ? torch::Device(torch::kCUDA, 0)
                                                : torch::Device(torch::kCPU);
    sizes_ = std::get<1>(GetParam()).sizes;
    torch::manual_seed(1234);
  }
  torch::Device device_ = torch::kCPU;
  std::vector<int64_t> sizes_;
};

TEST_P(Kernels, AdamAndAdamWMatchTheReferenceOverSteps) {
  for (bool decoupled : {false, true}) {
    for (bool masked : {false, true}) {
      AdamConfig c{1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled};
      Lists w = randn(sizes_, device_), m = randn(sizes_, device_, 0.0),
            v = randn(sizes_, device_, 0.0);
      Lists rw = clone(w), rm = clone(m), rv = clone(v);
      Lists masks = masked ? masks_for(sizes_, device_) : Lists{};
      for (int step = 1; step <= 3; ++step) {
        Lists g = randn(sizes_, device_);
        fused_adam_(w, g, m, v, masks, c, step);
        reference_adam_(rw, g, rm, rv, masks, c, step);
      }
      std::string what = std::string(decoupled ? "adamw" : "adam") + (masked ? " masked" : "");
      expect_close(w, rw, 1e-5, 1e-6, what + " params");
      expect_close(m, rm, 1e-5, 1e-7, what + " exp_avg");
      expect_close(v, rv, 1e-5, 1e-8, what + " exp_avg_sq");
      if (masked)
        for (size_t k = 0; k < w.size(); ++k) {
          auto pruned = masks[k] == 0;
          EXPECT_EQ(w[k].masked_select(pruned).abs().sum().item<float>(), 0.0f)
              << what;  // exactly zero
          EXPECT_EQ(m[k].masked_select(pruned).abs().sum().item<float>(), 0.0f) << what;
          EXPECT_EQ(v[k].masked_select(pruned).abs().sum().item<float>(), 0.0f) << what;
        }
    }
  }
}

TEST_P(Kernels, SgdMomentumNesterovAndPlainMatchTheReference) {
  for (auto [momentum, nesterov] :
       std::vector<std::pair<double, bool>>{{0.0, false}, {0.9, false}, {0.9, true}}) {
    for (bool masked : {false, true}) {
      SgdConfig c{0.05, momentum, 1e-3, nesterov};
      Lists w = randn(sizes_, device_), buf = randn(sizes_, device_, 0.0);
      Lists rw = clone(w), rbuf = clone(buf);
      Lists masks = masked ? masks_for(sizes_, device_) : Lists{};
      for (int step = 0; step < 3; ++step) {
        Lists g = randn(sizes_, device_);
        fused_sgd_(w, g, buf, masks, c, step == 0);
        reference_sgd_(rw, g, rbuf, masks, c, step == 0);
      }
      std::string what = "sgd momentum " + std::to_string(momentum) +
                         (nesterov ? " nesterov" : "") + (masked ? " masked" : "");
      expect_close(w, rw, 1e-5, 1e-6, what);
      if (momentum != 0) expect_close(buf, rbuf, 1e-5, 1e-6, what + " buffers");
      if (masked) {
        for (size_t k = 0; k < w.size(); ++k)
          EXPECT_EQ(w[k].masked_select(masks[k] == 0).abs().sum().item<float>(), 0.0f);
      }
    }
  }
}

TEST_P(Kernels, AxpbyWritesEveryElement) {
  Lists w0 = randn(sizes_, device_), d1 = randn(sizes_, device_), d2 = randn(sizes_, device_);
  Lists out;
  for (auto n : sizes_)
    out.push_back(torch::full({n}, NAN, torch::TensorOptions().device(device_)));  // poisoned
  multi_axpby_(out, w0, d1, d2, 0.5, -2.0);
  Lists want;
  for (size_t k = 0; k < w0.size(); ++k) want.push_back(w0[k] + 0.5 * d1[k] - 2.0 * d2[k]);
  expect_close(out, want, 1e-6, 1e-6, "axpby");
  multi_axpby_(w0, w0, d1, d2, 0.5, -2.0);  // in place on w0
  expect_close(w0, want, 1e-6, 1e-6, "axpby in place");
}

INSTANTIATE_TEST_SUITE_P(Sizes, Kernels, ::testing::ValuesIn(device_cases()), [](const auto& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
});

// Restores torch's intra-op thread count (ctest sets it to 1) when a test ends.
struct Threads {
  explicit Threads(int n) : before(at::get_num_threads()) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(before); }
  int before;
};

TEST(CpuSpans, EveryElementIsVisitedOnceWhateverTheThreadsAndTheThreadsShareTheWork) {
  // LeNet-300-100's six tensors, an empty one, and a small tail: the threads' equal ranges cut
  // tensors anywhere, and the pieces must still cover each element exactly once.
  const std::vector<int64_t> sizes = {235200, 300, 0, 30000, 100, 1000, 10, 7};
  for (int threads : {1, 2, 3, 5}) {
    Threads scope(threads);
    std::vector<std::vector<float>> data;
    SpanLists lists;
    lists.depth = 1;
    for (int64_t n : sizes) data.emplace_back(size_t(n), 0.0f);
    for (size_t k = 0; k < sizes.size(); ++k) {
      lists.ptr[0].push_back(data[k].data());
      lists.n.push_back(sizes[k]);
    }
    std::mutex mu;
    std::set<int> workers;
    for_each_span(lists, [&](int k, int64_t begin, int64_t end) {
      ASSERT_LE(0, begin);
      ASSERT_LT(begin, end);
      ASSERT_LE(end, sizes[size_t(k)]);
      for (int64_t i = begin; i < end; ++i) lists.ptr[0][size_t(k)][i] += 1.0f;
      std::lock_guard<std::mutex> lock(mu);
      workers.insert(at::get_thread_num());
    });
    for (size_t k = 0; k < sizes.size(); ++k)
      for (int64_t i = 0; i < sizes[k]; ++i)
        ASSERT_EQ(data[k][size_t(i)], 1.0f) << threads << " threads, slot " << k << " element " << i;
    // 267,617 elements are more than threads x the grain: every thread got a range.
    EXPECT_EQ(int(workers.size()), std::min(threads, at::get_num_threads())) << threads << " threads";
  }
}

TEST(CpuSpans, KernelsGiveTheSameBitsOnAnyNumberOfThreads) {
  const auto sizes = std::vector<int64_t>{235200, 300, 30000, 100, 1000, 10};
  Lists w0 = randn(sizes, torch::kCPU), d1 = randn(sizes, torch::kCPU), d2 = randn(sizes, torch::kCPU);
  Lists one;
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    Lists out = randn(sizes, torch::kCPU);
    multi_axpby_(out, w0, d1, d2, 0.5, -2.0);
    if (threads == 1) {
      one = out;
      continue;
    }
    for (size_t k = 0; k < sizes.size(); ++k) EXPECT_TRUE(torch::equal(out[k], one[k])) << threads;
  }
  // The optimizer steps (masked, with momentum and decay) and the k-th magnitude likewise: ctest
  // runs every other kernel test on one thread.
  const Lists grads = randn(sizes, torch::kCPU), masks = masks_for(sizes, torch::kCPU);
  Lists adam_one, sgd_one;
  float kth_one = 0;
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    Lists w = clone(w0), m = clone(d1), v = clone(d2), buf = clone(d1);
    for (auto& t : v) t.abs_();
    AdamConfig adam;
    adam.weight_decay = 0.01, adam.decoupled = true;
    fused_adam_(w, grads, m, v, masks, adam, 7);
    Lists s = clone(w0);
    SgdConfig sgd;
    sgd.momentum = 0.9, sgd.weight_decay = 1e-3, sgd.nesterov = true;
    fused_sgd_(s, grads, buf, masks, sgd, false);
    const float kth = kth_smallest_magnitude(w0, 12345);
    if (threads == 1) {
      adam_one = w, sgd_one = s, kth_one = kth;
      continue;
    }
    for (size_t k = 0; k < sizes.size(); ++k) {
      EXPECT_TRUE(torch::equal(w[k], adam_one[k])) << "adam, " << threads << " threads";
      EXPECT_TRUE(torch::equal(s[k], sgd_one[k])) << "sgd, " << threads << " threads";
    }
    EXPECT_EQ(kth, kth_one) << threads << " threads";
  }
}

TEST(KernelContract, MismatchedListsAreRejectedWithTheirName) {
  Lists w = {torch::zeros({4})}, g = {torch::zeros({5})}, m = {torch::zeros({4})},
        v = {torch::zeros({4})};
  try {
    fused_adam_(w, g, m, v, {}, AdamConfig{}, 1);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("fused_adam_: grads[0] has shape [5], its params[0] [4]"),
              std::string::npos)
        << e.what();
  }
  // The same number of elements in another shape is another tensor, not this param's mask.
  Lists square = {torch::zeros({2, 2})}, column = {torch::ones({4, 1})};
  try {
    fused_sgd_(square, square, square, column, SgdConfig{}, true);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("masks[0] has shape [4, 1], its params[0] [2, 2]"),
              std::string::npos)
        << e.what();
  }
  // Adam's steps count from 1: step 0 would divide by 1 - beta1^0.
  EXPECT_THROW(fused_adam_(w, w, m, v, {}, AdamConfig{}, 0), std::invalid_argument);
  EXPECT_TRUE(torch::equal(w[0], torch::zeros({4})));
  Lists wd = {torch::zeros({4}, torch::kFloat64)};
  EXPECT_THROW(fused_adam_(wd, wd, wd, wd, {}, AdamConfig{}, 1), std::invalid_argument);
  Lists strided = {torch::zeros({4, 4}).t()};
  EXPECT_THROW(multi_axpby_(strided, strided, strided, strided, 1, 1), std::invalid_argument);
}

TEST(KernelContract, MembersMustBePx3AndLeadEveryParam) {
  Lists w = {torch::zeros({3, 4})}, b = {torch::zeros({3, 4})};
  try {
    fused_sgd_(w, w, b, {}, SgdConfig{}, false, {}, torch::zeros({2, 3}));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("fused_sgd_: params[0] does not have the 2 members"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(fused_sgd_(w, w, b, {}, SgdConfig{}, false, {}, torch::zeros({3, 2})),
               std::invalid_argument);
  EXPECT_THROW(fused_sgd_(w, w, {}, {}, SgdConfig{}, false, {}, torch::zeros({3, 3})),
               std::invalid_argument);  // no momentum buffers
}

// Cases run on "cpu" and on "cuda" (skipped without a GPU).
class OnDevice : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && !torch::cuda::is_available())
      GTEST_SKIP() << "no CUDA GPU visible to torch";
    device_ = GetParam() == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    torch::manual_seed(99);
  }
  torch::Device device_ = torch::kCPU;
};

// Populations: one call over tensors stacked along a leading member dimension, each member with
// its own hyperparameters, against one call per member on its block. Shapes: 3 members with
// blocks of 1, 10, 1023 and 70001 elements (crossing the CPU spans of 32768 and the CUDA chunks
// of 16384 mid-member), 3 members with blocks of 12 and 70004 (multiples of 4: the CUDA float4
// path, member by member), and 64 members with blocks of 10 and 300 (one CUDA thread's stride of
// 512 passes several members; 300 takes the float4 path, 10 the element-wise one).
class Members : public OnDevice {
 protected:
  struct Shape {
    int64_t members;
    std::vector<int64_t> sizes;
  };
  static std::vector<Shape> shapes() {
    return {{3, {1, 10, 1023, 70001}}, {3, {12, 70004}}, {64, {10, 300}}};
  }
  Lists stacked(const Shape& s, double scale) const {
    Lists out;
    for (auto n : s.sizes)
      out.push_back(torch::randn({s.members, n}, torch::TensorOptions().device(device_)) * scale);
    return out;
  }
  static Lists member(const Lists& l, int64_t p) {
    Lists out;
    for (const auto& t : l) out.push_back(t[p]);  // a contiguous block of the stacked tensor
    return out;
  }
  static Lists masks_like(const Lists& l) {
    Lists out;
    for (const auto& t : l) out.push_back(torch::bernoulli(torch::full_like(t, 0.5)));
    return out;
  }
};

TEST_P(Members, EachSgdMemberStepsAsItsOwnCallWould) {
  for (const auto& shape : shapes()) {
    const int64_t P = shape.members;
    std::vector<SgdConfig> c;  // momentum 0 (no buffer), 0.45 or 0.9
    auto hyper = torch::empty({P, 3});
    for (int64_t p = 0; p < P; ++p) {
      c.push_back({0.01 * double(1 + p % 5), 0.45 * double(p % 3), 1e-3 * double(p % 4), false});
      hyper[p] = torch::tensor({c[p].lr, c[p].momentum, c[p].weight_decay}, torch::kFloat32);
    }
    hyper = hyper.to(device_);
    for (bool masked : {false, true}) {
      Lists w = stacked(shape, 1), buf = stacked(shape, 0), rw = clone(w), rbuf = clone(buf);
      Lists masks = masked ? masks_like(w) : Lists{};
      for (int step = 0; step < 3; ++step) {
        Lists g = stacked(shape, 1);
        fused_sgd_(w, g, buf, masks, SgdConfig{0.0, 0.9, 0.0, false}, step == 0, {}, hyper);
        for (int64_t p = 0; p < P; ++p)
          fused_sgd_(member(rw, p), member(g, p), member(rbuf, p),
                     masked ? member(masks, p) : Lists{}, c[p], step == 0);
      }
      const std::string what = "sgd, " + std::to_string(P) + " members" + (masked ? ", masked" : "");
      expect_close(w, rw, 1e-6, 1e-7, what);
      expect_close(buf, rbuf, 1e-6, 1e-7, what + " buffers");
      EXPECT_EQ(buf.back()[0].abs().sum().item<float>(), 0.0f);  // member 0: no momentum, no buffer
    }
  }
}

TEST_P(Members, EachAdamMemberStepsAsItsOwnCallWould) {
  for (const auto& shape : shapes())
    for (bool decoupled : {false, true})
      for (bool masked : {false, true})
        for (bool scalars : {false, true}) {
          const int64_t P = shape.members;
          std::vector<AdamConfig> c;
          for (int64_t p = 0; p < P; ++p)
            c.push_back({1e-3 * double(1 + p % 7), 0.9, 0.999, 1e-8, 0.05 * double(p % 3), decoupled});
          Lists w = stacked(shape, 1), m = stacked(shape, 0), v = stacked(shape, 0);
          Lists rw = clone(w), rm = clone(m), rv = clone(v);
          Lists masks = masked ? masks_like(w) : Lists{};
          for (int step = 1; step <= 3; ++step) {
            auto hyper = torch::empty({P, 3});
            for (int64_t p = 0; p < P; ++p)
              hyper[p] = torch::tensor(
                  {c[p].lr, c[p].lr / (1.0 - std::pow(c[p].beta1, step)), c[p].weight_decay},
                  torch::kFloat32);
            // A captured step's scalars: the rows replace their LR and step size (junk here);
            // the second bias correction comes from them.
            torch::Tensor device_scalars;
            if (scalars)
              device_scalars = torch::tensor({123.0, 456.0, std::sqrt(1.0 - std::pow(0.999, step))},
                                             torch::TensorOptions().dtype(torch::kFloat32).device(device_));
            Lists g = stacked(shape, 1);
            fused_adam_(w, g, m, v, masks, c[0], scalars ? 999 : step, device_scalars,
                        hyper.to(device_));
            for (int64_t p = 0; p < P; ++p)
              fused_adam_(member(rw, p), member(g, p), member(rm, p), member(rv, p),
                          masked ? member(masks, p) : Lists{}, c[p], step);
          }
          const std::string what = std::string(decoupled ? "adamw, " : "adam, ") + std::to_string(P) +
                                   " members" + (masked ? ", masked" : "") + (scalars ? ", scalars" : "");
          expect_close(w, rw, 1e-6, 1e-7, what);
          expect_close(m, rm, 1e-6, 1e-8, what + " exp_avg");
          expect_close(v, rv, 1e-6, 1e-9, what + " exp_avg_sq");
        }
}

INSTANTIATE_TEST_SUITE_P(Devices, Members, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace empiric::kernels

namespace empiric::kernels {
namespace {

class Selection : public OnDevice {};

TEST_P(Selection, KthSmallestMagnitudeIsExact) {
  for (const auto& sizes :
       std::vector<std::vector<int64_t>>{{1}, {3, 1}, {1023}, {(1 << 20) + 7, 5, 300}}) {
    Lists w = randn(sizes, device_);
    int64_t total = 0;
    for (auto n : sizes) total += n;
    for (int64_t k : {int64_t(1), (total + 1) / 2, total}) {
      EXPECT_EQ(kth_smallest_magnitude(w, k), reference_kth_smallest_magnitude(w, k))
          << "k=" << k << " of " << total;
    }
  }
}

TEST_P(Selection, MaskedSelectionCountsOnlyTheRemainingWeights) {
  std::vector<int64_t> sizes = {1000, 4097, 10};
  Lists w = randn(sizes, device_), masks = masks_for(sizes, device_);
  w[0][0] = 0.0f;  // an exact zero and a tie must not confuse it
  w[1][1] = w[1][2];
  for (int64_t k : {1, 100, 2000})
    EXPECT_EQ(kth_smallest_magnitude(w, k, masks), reference_kth_smallest_magnitude(w, k, masks))
        << k;
}

TEST_P(Selection, GlobalAndLayerwisePruningRemoveTheRequestedFraction) {
  std::vector<int64_t> sizes = {1000, 3000};
  Lists w = randn(sizes, device_), masks, before;
  for (auto n : sizes) masks.push_back(torch::ones({n}, torch::TensorOptions().device(device_)));
  for (const auto& t : w) before.push_back(t.abs());  // (pruning zeroes w in place)
  EXPECT_EQ(prune_by_magnitude_(w, masks, 0.2, /*global=*/true), 3200);
  {  // Global: every survivor was larger than every pruned weight, across the two layers.
    const auto all_before = torch::cat({before[0], before[1]}),
               all_mask = torch::cat({masks[0], masks[1]});
    EXPECT_GT(all_before.masked_select(all_mask != 0).min().item<float>(),
              all_before.masked_select(all_mask == 0).max().item<float>());
  }
  const Lists global_masks = {masks[0].clone(), masks[1].clone()};
  // Then half of each layer's remaining weights (rounded per layer).
  const int64_t a = int64_t(masks[0].sum().item<float>()),
                b = int64_t(masks[1].sum().item<float>());
  const int64_t expected = a - std::llround(0.5 * a) + b - std::llround(0.5 * b);
  EXPECT_EQ(prune_by_magnitude_(w, masks, 0.5, /*global=*/false), expected);
  EXPECT_EQ(int64_t(masks[0].sum().item<float>() + masks[1].sum().item<float>()), expected);
  for (size_t k = 0; k < w.size(); ++k) {
    EXPECT_EQ(w[k].masked_select(masks[k] == 0).abs().sum().item<float>(), 0.0f);
    // Layer-wise: in each layer, every survivor was larger than every weight this round pruned,
    // and no weight pruned before came back.
    const auto newly = (global_masks[k] != 0).logical_and(masks[k] == 0);
    EXPECT_GT(before[k].masked_select(masks[k] != 0).min().item<float>(),
              before[k].masked_select(newly).max().item<float>());
    EXPECT_EQ(masks[k].masked_select(global_masks[k] == 0).sum().item<float>(), 0.0f);
  }
}

TEST_P(Selection, PruningRefusesNonFiniteWeightsAndChangesNothing) {
  std::vector<int64_t> sizes = {100, 50};
  Lists w = randn(sizes, device_), masks;
  for (auto n : sizes) masks.push_back(torch::ones({n}, torch::TensorOptions().device(device_)));
  w[1][3] = std::numeric_limits<float>::quiet_NaN();
  for (bool global : {true, false}) {
    try {
      prune_by_magnitude_(w, masks, 0.5, global);
      ADD_FAILURE() << "NaN weights were pruned by (global " << global << ")";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("NaN or Inf"), std::string::npos) << e.what();
    }
    for (const auto& m : masks) EXPECT_EQ(m.sum().item<float>(), float(m.numel()));
  }
}

TEST_P(Selection, LayerwisePruningChecksEveryLayerBeforePruningAny) {
  std::vector<int64_t> sizes = {100, 50};
  Lists w = randn(sizes, device_), masks;
  for (auto n : {int64_t(100), int64_t(49)})
    masks.push_back(torch::ones({n}, torch::TensorOptions().device(device_)));
  EXPECT_THROW(prune_by_magnitude_(w, masks, 0.5, /*global=*/false), std::invalid_argument);
  EXPECT_EQ(masks[0].sum().item<float>(), 100.0f);  // layer 0 untouched
  EXPECT_EQ(w[0].eq(0).sum().item<int64_t>(), 0);
}

// A pruned weight stays exactly 0 whatever its gradient: an Inf or NaN there (a diverging step)
// must not turn it, or its moments, into NaN.
TEST_P(Selection, PrunedWeightsStayZeroUnderInfAndNanGradients) {
  const auto opts = torch::TensorOptions().device(device_);
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  // 13 elements: the CUDA float4 path and its scalar tail both see a pruned Inf and NaN.
  auto grad = torch::randn({13}, opts);
  auto mask = torch::ones({13}, opts);
  for (int64_t i : {0, 1, 12}) mask[i] = 0.0f;
  grad[0] = inf, grad[1] = nan, grad[12] = -inf;
  const auto pruned = mask == 0;
  for (bool decoupled : {false, true}) {
    Lists w = {torch::randn({13}, opts) * mask}, m = {torch::zeros({13}, opts)},
          v = {torch::zeros({13}, opts)};
    fused_adam_(w, {grad}, m, v, {mask}, AdamConfig{1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled}, 1);
    for (const auto& t : {w[0], m[0], v[0]})
      EXPECT_EQ(t.masked_select(pruned).ne(0).sum().item<int64_t>(), 0)
          << (decoupled ? "adamw " : "adam ") << t.masked_select(pruned);
    EXPECT_TRUE(w[0].masked_select(~pruned).isfinite().all().item<bool>());
  }
  for (double momentum : {0.0, 0.9}) {
    Lists w = {torch::randn({13}, opts) * mask}, buf = {torch::zeros({13}, opts)};
    fused_sgd_(w, {grad}, buf, {mask}, SgdConfig{0.1, momentum, 1e-3, false}, true);
    EXPECT_EQ(w[0].masked_select(pruned).ne(0).sum().item<int64_t>(), 0)
        << "sgd momentum " << momentum << ": " << w[0].masked_select(pruned);
    if (momentum != 0) {
      EXPECT_EQ(buf[0].masked_select(pruned).ne(0).sum().item<int64_t>(), 0) << buf[0];
    }
  }
}

TEST_P(Selection, PerExampleNormsMatchTheMaterializedGradients) {
  for (auto [batch, in, out] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {7, 784, 300}, {300, 33, 10}}) {
    auto x = torch::randn({batch, in}, torch::TensorOptions().device(device_));
    auto delta = torch::randn({batch, out}, torch::TensorOptions().device(device_));
    for (bool bias : {false, true}) {
      auto got = per_example_sq_norms(x, delta, bias),
           want = reference_per_example_sq_norms(x, delta, bias);
      expect_close({got}, {want}, 1e-5, 1e-6, "per-example norms");
    }
  }
}

TEST(PerExampleNorms, WideRowsKeepFloatPrecisionOnTheCpu) {
  // One running float sum per row lost precision with the width (1.6e-5 of a 65,536-wide row,
  // 3.9e-4 of a million-wide one): the blocked sums stay near float rounding at any width.
  torch::manual_seed(5);
  for (int64_t in : {65536, 1000003}) {
    auto x = torch::randn({3, in}), delta = torch::randn({3, 10});
    auto got = per_example_sq_norms(x, delta, true).to(torch::kFloat64);
    auto want = delta.to(torch::kFloat64).pow(2).sum(1) * (x.to(torch::kFloat64).pow(2).sum(1) + 1);
    const double worst = ((got - want).abs() / want).max().item<double>();
    EXPECT_LT(worst, 1e-6) << in << " inputs";
  }
}

TEST(PerExampleNorms, AgreeWithAutogradPerExample) {
  // The definition, checked against autograd: the gradient of example i's loss alone.
  torch::manual_seed(3);
  torch::nn::Linear layer(6, 4);
  auto x = torch::randn({5, 6});
  auto y = layer(x);
  auto delta = torch::randn({5, 4});
  auto norms = per_example_sq_norms(x, delta, true);
  for (int64_t i = 0; i < 5; ++i) {
    layer->zero_grad();
    (layer(x[i].unsqueeze(0)) * delta[i].unsqueeze(0)).sum().backward();
    double sq = layer->weight.grad().pow(2).sum().item<double>() +
                layer->bias.grad().pow(2).sum().item<double>();
    EXPECT_NEAR(norms[i].item<double>(), sq, 1e-4 * sq);
  }
  (void)y;
}

INSTANTIATE_TEST_SUITE_P(Devices, Selection, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace empiric::kernels
