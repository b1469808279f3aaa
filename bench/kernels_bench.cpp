// Google Benchmark suites for the kernels, each beside the work it replaces:
//   adam/*      fused masked Adam (CPU fallback; CUDA kernel where a GPU is) vs torch::optim::Adam
//               (+ a separate mask multiply when masked) vs the ATen composite reference
//   copy/*      a plain device copy of one parameter list: the memory-bandwidth limit, same run
//   axpby/*     multi-tensor axpby vs the ATen composite
//   kth/*       global magnitude threshold (radix select, 4 passes) vs torch::kthvalue on the
//               concatenated magnitudes, k = 20 % of the parameters (one IMP round)
//   per_example per-example gradient norms of LeNet's first layer (batch 256) vs materializing
//               the per-example gradients
// Sizes: LeNet-300-100's six tensors (266,610 parameters) and ten 1M tensors (10M parameters).
// Counters: bytes/s of the traffic each op must move (Adam: read w, g, m, v[, mask]; write w, m,
// v), items/s = parameters/s (per_example: examples/s). On a GPU, time is measured with CUDA
// events around a block of kCudaBlock calls back to back, each call an iteration (manual time):
// the calls' launches overlap the kernels, as in a training loop and as bench/peers/timing.py
// times the PyTorch side. A build without empiric's CUDA kernels skips every CUDA case.
// Each benchmark's label names the question numbers it serves (fused step: 71, 97; axpby: 98;
// threshold: 97; per-example norms: none, as no lab calls them yet).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <chrono>

#ifdef EMPIRIC_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

#include "axpby/axpby.h"
#include "fused_optim/fused_optim.h"
#include "magnitude/magnitude.h"
#include "per_example/per_example.h"

namespace {

using namespace empiric::kernels;
using Lists = std::vector<torch::Tensor>;

enum Shape { kLeNet = 0, k10M = 1 };

std::vector<int64_t> shape_sizes(int shape) {
  if (shape == kLeNet) return {784 * 300, 300, 300 * 100, 100, 100 * 10, 10};
  return std::vector<int64_t>(10, 1 << 20);
}

int64_t total(const std::vector<int64_t>& sizes) {
  int64_t n = 0;
  for (auto s : sizes) n += s;
  return n;
}

torch::Device device_of(int d) {
  return d ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

Lists make(const std::vector<int64_t>& sizes, torch::Device d, double scale) {
  Lists out;
  for (auto n : sizes) out.push_back(torch::randn({n}, torch::TensorOptions().device(d)) * scale);
  return out;
}

constexpr int kCudaBlock = 50;  // calls per timed block on a GPU (bench/peers/timing.py: 50)

// Times `body` per iteration: wall clock on the CPU, CUDA events on a GPU (seconds per call,
// over a block of kCudaBlock calls). A body that throws skips the benchmark with its message.
template <class Body>
void run_timed(benchmark::State& state, torch::Device d, Body body) {
  try {
    body();  // warm-up (allocations, first launch)
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
#ifdef EMPIRIC_WITH_CUDA
  if (d.is_cuda()) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    // Each call counts as an iteration and the block's time is the time of its calls: the
    // block's time divided by its calls, given per iteration of a block, made Google Benchmark
    // (which stops on manual time) run each case kCudaBlock times longer than its min_time.
    while (state.KeepRunningBatch(kCudaBlock)) {
      cudaEventRecord(start, c10::cuda::getCurrentCUDAStream().stream());
      for (int i = 0; i < kCudaBlock; ++i) body();
      cudaEventRecord(stop, c10::cuda::getCurrentCUDAStream().stream());
      cudaEventSynchronize(stop);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      state.SetIterationTime(ms / 1e3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return;
  }
#endif
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    body();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

// items: parameters per call (counter "params"), or what `unit` names (per_example: "examples").
void counters(benchmark::State& state, int64_t params, int64_t bytes_per_param,
              const char* questions, const char* unit = "params") {
  state.SetItemsProcessed(state.iterations() * params);
  state.SetBytesProcessed(state.iterations() * params * bytes_per_param);
  state.counters[unit] = double(params);
  state.SetLabel(questions);
}

bool skip_without_gpu(benchmark::State& state, int d) {
#ifndef EMPIRIC_WITH_CUDA
  if (d) {  // (torch's own CUDA ops would run, but untimed by events: launches, not kernels)
    state.SkipWithError("built without empiric's CUDA kernels (EMPIRIC_CUDA=OFF)");
    return true;
  }
#endif
  if (d && !torch::cuda::is_available()) {
    state.SkipWithError("no CUDA GPU");
    return true;
  }
  return false;
}

// Inputs of one Adam benchmark case; args: {device 0/1, shape, masked 0/1}.
struct AdamCase {
  torch::Device dev = torch::kCPU;
  std::vector<int64_t> sizes;
  bool masked = false;
  Lists w, g, m, v, masks;  // masks: 80 % ones, or empty

  explicit AdamCase(benchmark::State& state)
      : dev(device_of(int(state.range(0)))),
        sizes(shape_sizes(int(state.range(1)))),
        masked(state.range(2) != 0) {
    w = make(sizes, dev, 1);
    g = make(sizes, dev, 1e-3);
    m = make(sizes, dev, 0);
    v = make(sizes, dev, 0);
    if (masked) masks = make(sizes, dev, 0);
    for (auto& k : masks) k.fill_(1.0).bernoulli_(0.8);
  }
  void report(benchmark::State& state) const {
    counters(state, total(sizes), (7 + int(masked)) * 4, "Q71 Q97");
  }
};

const AdamConfig kAdamW{1e-3, 0.9, 0.999, 1e-8, 0.0, true};

void BM_FusedAdam(benchmark::State& state) {
  if (skip_without_gpu(state, int(state.range(0)))) return;
  AdamCase a(state);
  int64_t step = 0;
  run_timed(state, a.dev, [&] { fused_adam_(a.w, a.g, a.m, a.v, a.masks, kAdamW, ++step); });
  a.report(state);
}

void BM_ReferenceAdam(benchmark::State& state) {
  if (skip_without_gpu(state, int(state.range(0)))) return;
  AdamCase a(state);
  int64_t step = 0;
  run_timed(state, a.dev, [&] { reference_adam_(a.w, a.g, a.m, a.v, a.masks, kAdamW, ++step); });
  a.report(state);
}

// torch::optim::AdamW, then (when masked) the separate mask multiply a PyTorch user would add.
void BM_TorchOptimAdam(benchmark::State& state) {
  if (skip_without_gpu(state, int(state.range(0)))) return;
  AdamCase a(state);
  for (size_t k = 0; k < a.w.size(); ++k) {
    a.w[k].set_requires_grad(true);
    a.w[k].mutable_grad() = a.g[k].clone();
  }
  torch::optim::AdamW opt(a.w, torch::optim::AdamWOptions(1e-3).weight_decay(0));
  run_timed(state, a.dev, [&] {
    opt.step();
    torch::NoGradGuard guard;
    for (size_t k = 0; k < a.masks.size(); ++k) a.w[k].mul_(a.masks[k]);
  });
  a.report(state);
}

// The physical limit: one flat copy, read once and written once, of at least 256 MiB per buffer, so
// that neither the CPU's nor the GPU's last-level cache (50 MB on an H100) holds it. Its GB/s is
// the yardstick for the other ops' GB/s at the same shape argument.
void BM_Copy(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto sizes = shape_sizes(int(state.range(1)));
  auto dev = device_of(d);
  const int64_t n = std::max<int64_t>(total(sizes), int64_t(64) << 20);
  auto a = torch::randn({n}, torch::TensorOptions().device(dev)), b = torch::empty_like(a);
  run_timed(state, dev, [&] { b.copy_(a); });
  counters(state, n, 2 * 4, "");
}

void BM_FusedAxpby(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto sizes = shape_sizes(int(state.range(1)));
  auto dev = device_of(d);
  Lists out = make(sizes, dev, 0), w0 = make(sizes, dev, 1), d1 = make(sizes, dev, 1),
        d2 = make(sizes, dev, 1);
  run_timed(state, dev, [&] { multi_axpby_(out, w0, d1, d2, 0.25, -0.5); });
  counters(state, total(sizes), 4 * 4, "Q98");
}

void BM_ReferenceAxpby(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto sizes = shape_sizes(int(state.range(1)));
  auto dev = device_of(d);
  Lists out = make(sizes, dev, 0), w0 = make(sizes, dev, 1), d1 = make(sizes, dev, 1),
        d2 = make(sizes, dev, 1);
  // ATen at its best: two in-place passes into `out`, no temporaries. (The expression
  // w0 + 0.25 d1 - 0.5 d2 made four temporaries per tensor, and its time swung 4x with the heap
  // state the benchmarks before it left: a strawman.)
  run_timed(state, dev, [&] {
    for (size_t k = 0; k < out.size(); ++k) {
      at::add_out(out[k], w0[k], d1[k], 0.25);
      out[k].add_(d2[k], -0.5);
    }
  });
  counters(state, total(sizes), 4 * 4, "Q98");
}

void BM_KthMagnitude(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto sizes = shape_sizes(int(state.range(1)));
  auto dev = device_of(d);
  Lists w = make(sizes, dev, 1);
  const int64_t k = total(sizes) / 5;
  float t = 0;
  run_timed(state, dev, [&] { t = kth_smallest_magnitude(w, k); });
  benchmark::DoNotOptimize(t);
  counters(state, total(sizes), 4,
           "Q97");  // bytes: one read of the weights (each of 4 passes reads them again)
}

void BM_TorchKthvalue(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto sizes = shape_sizes(int(state.range(1)));
  auto dev = device_of(d);
  Lists w = make(sizes, dev, 1);
  const int64_t k = total(sizes) / 5;
  float t = 0;
  run_timed(state, dev, [&] { t = reference_kth_smallest_magnitude(w, k); });
  benchmark::DoNotOptimize(t);
  counters(state, total(sizes), 4, "Q97");
}

// args: {device, baseline}: LeNet's first layer, batch 256; baseline 0: the kernel, 1: the
// per-example gradients materialized (einsum), 2: the kernel's formula in ATen,
// |delta_i|^2 (|x_i|^2 + 1), two reductions and a product.
void BM_PerExampleNorms(benchmark::State& state) {
  const int d = int(state.range(0));
  if (skip_without_gpu(state, d)) return;
  auto dev = device_of(d);
  auto x = torch::randn({256, 784}, torch::TensorOptions().device(dev));
  auto delta = torch::randn({256, 300}, torch::TensorOptions().device(dev));
  torch::Tensor out;
  if (state.range(1) == 1)
    run_timed(state, dev, [&] { out = reference_per_example_sq_norms(x, delta, true); });
  else if (state.range(1) == 2)
    run_timed(state, dev, [&] { out = delta.pow(2).sum(1) * (x.pow(2).sum(1) + 1); });
  else
    run_timed(state, dev, [&] { out = per_example_sq_norms(x, delta, true); });
  // (No question: no lab calls it yet; Q99's noise scale takes two batch sizes' gradients.)
  counters(state, 256, (784 + 300) * 4, "",
           "examples");  // items: examples; bytes: one read of x and delta
}

void adam_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cuda", "shape", "masked"});
  for (int d : {0, 1})
    for (int shape : {kLeNet, k10M})
      for (int masked : {0, 1}) b->Args({d, shape, masked});
  b->UseManualTime();  // run_timed sets it: CUDA events on a GPU, the wall clock on the CPU
}

void two_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cuda", "shape"});
  for (int d : {0, 1})
    for (int shape : {kLeNet, k10M}) b->Args({d, shape});
  b->UseManualTime();
}

}  // namespace

BENCHMARK(BM_FusedAdam)->Apply(adam_args);
BENCHMARK(BM_TorchOptimAdam)->Apply(adam_args);
BENCHMARK(BM_ReferenceAdam)->Apply(adam_args);
BENCHMARK(BM_Copy)->Apply(two_args);
BENCHMARK(BM_FusedAxpby)->Apply(two_args);
BENCHMARK(BM_ReferenceAxpby)->Apply(two_args);
BENCHMARK(BM_KthMagnitude)->Apply(two_args);
BENCHMARK(BM_TorchKthvalue)->Apply(two_args);
BENCHMARK(BM_PerExampleNorms)
    ->ArgNames({"cuda", "baseline"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({0, 2})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({1, 2})
    ->UseManualTime();
BENCHMARK_MAIN();
