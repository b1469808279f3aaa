// CPU radix-select pass: one 256-bin histogram per span (on the stack), merged under a lock.
#include <cstring>
#include <mutex>

#include "common/cpu_spans.h"

namespace empiric::kernels {

void cpu_magnitude_histogram(const SpanLists& l, bool masked, uint32_t prefix, uint32_t prefix_mask,
                             int shift, unsigned long long* hist) {
  std::mutex mu;
  for_each_span(l, [&](int k, int64_t begin, int64_t end) {
    unsigned long long local[256] = {0};
    const float* w = l.ptr[0][k];
    const float* mask = masked ? l.ptr[1][k] : nullptr;
    for (int64_t i = begin; i < end; ++i) {
      if (masked && mask[i] == 0.0f) continue;
      uint32_t bits;
      std::memcpy(&bits, &w[i], sizeof bits);
      bits &= 0x7FFFFFFFu;  // |w|
      if ((bits & prefix_mask) == prefix) ++local[(bits >> shift) & 0xFF];
    }
    std::lock_guard<std::mutex> lock(mu);
    for (int b = 0; b < 256; ++b) hist[b] += local[b];
  });
}

}  // namespace empiric::kernels
