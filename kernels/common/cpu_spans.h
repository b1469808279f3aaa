// Parallel loop over the flattened elements of a SpanLists on the CPU: the lists are cut into
// spans of at most kCpuSpan elements (a tensor never straddles a span), and torch's intra-op pool
// takes the spans, so many small tensors and one large one both keep every core busy.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/multi_tensor.h"

namespace empiric::kernels {

constexpr int64_t kCpuSpan = 1 << 15;

// fn(k, begin, end): process elements [begin, end) of slot k.
template <class Fn>
void for_each_span(const SpanLists& lists, Fn fn) {
  struct Span {
    int k;
    int64_t begin, end;
  };
  std::vector<Span> spans;
  for (size_t k = 0; k < lists.n.size(); ++k)
    for (int64_t b = 0; b < lists.n[k]; b += kCpuSpan)
      spans.push_back({int(k), b, std::min(lists.n[k], b + kCpuSpan)});
  at::parallel_for(0, int64_t(spans.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      fn(spans[size_t(i)].k, spans[size_t(i)].begin, spans[size_t(i)].end);
  });
}

}  // namespace empiric::kernels
