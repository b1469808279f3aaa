// Parallel loop over the flattened elements of a SpanLists on the CPU: torch's intra-op pool
// hands each thread one contiguous range of equal length (at least kCpuGrain elements, so a small
// list runs on the calling thread alone), cut where the slots meet. Equal ranges keep every core
// equally busy whatever the tensors' sizes: LeNet's lists are one tensor of 235,200 elements and
// five small ones, which cut into whole spans per thread left one core with 3.3x the other's work.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/multi_tensor.h"

// A CPU loop built for the baseline x86-64 target and for AVX2 beside it (GCC's target_clones
// picks one at load time), which doubles the vector width wherever the machine has it.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EMPIRIC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EMPIRIC_CLONES
#endif

namespace empiric::kernels {

constexpr int64_t kCpuGrain = 1 << 15;

// fn(k, begin, end): process elements [begin, end) of slot k.
template <class Fn>
void for_each_span(const SpanLists& lists, Fn fn) {
  std::vector<int64_t> start(lists.n.size() + 1, 0);  // slot k's first element, flattened
  for (size_t k = 0; k < lists.n.size(); ++k) start[k + 1] = start[k] + lists.n[k];
  at::parallel_for(0, start.back(), kCpuGrain, [&](int64_t lo, int64_t hi) {
    size_t k = size_t(std::upper_bound(start.begin(), start.end(), lo) - start.begin()) - 1;
    for (; lo < hi; ++k) {
      const int64_t end = std::min(hi, start[k + 1]);
      if (end > lo) fn(int(k), lo - start[k], end - start[k]);
      lo = end;
    }
  });
}

}  // namespace empiric::kernels
