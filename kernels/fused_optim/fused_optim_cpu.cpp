// CPU fallback of the fused optimizer steps: the same per-element math as the CUDA kernels, over
// spans of the flattened lists in torch's intra-op thread pool.
//
// Why it is shaped this way: with every list read once and written once, Adam on the CPU is bound
// by the sqrt and the division per element, not by memory (measured: docs/PERFORMANCE.md). So the
// span loops are branch-free (masking is a template parameter), use restrict-qualified pointers,
// are built with -fno-math-errno so that sqrt vectorizes, and are cloned for AVX2 next to the
// baseline x86-64 build (GCC's target_clones picks one at load time), which doubles the vector
// width wherever the machine has it.
#include <cmath>

#include "common/cpu_spans.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EMPIRIC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EMPIRIC_CLONES
#endif

namespace empiric::kernels {
namespace {

template <bool Masked>
EMPIRIC_CLONES void adam_span(float* __restrict__ w, const float* __restrict__ g,
                              float* __restrict__ m, float* __restrict__ v,
                              const float* __restrict__ mask, int64_t begin, int64_t end,
                              AdamStep s) {
  const float decay = s.decoupled ? 1.0f - s.lr * s.weight_decay : 1.0f;
  const float l2 = s.decoupled ? 0.0f : s.weight_decay;
  for (int64_t i = begin; i < end; ++i) {
    const float keep = Masked ? mask[i] : 1.0f;
    const float gi = (g[i] + l2 * w[i]) * keep;
    const float mi = s.beta1 * m[i] + s.one_minus_beta1 * gi;
    const float vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = (w[i] * decay - s.step_size * mi / (std::sqrt(vi) / s.bc2_sqrt + s.eps)) * keep;
  }
}

template <bool Masked, bool Momentum>
EMPIRIC_CLONES void sgd_span(float* __restrict__ w, const float* __restrict__ g,
                             float* __restrict__ buf, const float* __restrict__ mask, int64_t begin,
                             int64_t end, SgdStep s) {
  for (int64_t i = begin; i < end; ++i) {
    const float keep = Masked ? mask[i] : 1.0f;
    float gi = (g[i] + s.weight_decay * w[i]) * keep;
    if (Momentum) {
      const float b = s.first_step ? gi : s.momentum * buf[i] + gi;
      buf[i] = b;
      gi = s.nesterov ? gi + s.momentum * b : b;
    }
    w[i] = (w[i] - s.lr * gi) * keep;
  }
}

}  // namespace

void cpu_fused_adam(const SpanLists& l, const AdamStep& s, bool masked) {
  for_each_span(l, [&](int k, int64_t begin, int64_t end) {
    if (masked)
      adam_span<true>(l.ptr[0][k], l.ptr[1][k], l.ptr[2][k], l.ptr[3][k], l.ptr[4][k], begin, end,
                      s);
    else
      adam_span<false>(l.ptr[0][k], l.ptr[1][k], l.ptr[2][k], l.ptr[3][k], nullptr, begin, end, s);
  });
}

void cpu_fused_sgd(const SpanLists& l, const SgdStep& s, bool masked) {
  const bool momentum = s.momentum != 0.0f;
  for_each_span(l, [&](int k, int64_t begin, int64_t end) {
    float* w = l.ptr[0][k];
    const float* g = l.ptr[1][k];
    float* buf = momentum ? l.ptr[2][k] : nullptr;
    const float* mask = masked ? l.ptr[4][k] : nullptr;
    if (masked && momentum)
      sgd_span<true, true>(w, g, buf, mask, begin, end, s);
    else if (masked)
      sgd_span<true, false>(w, g, buf, mask, begin, end, s);
    else if (momentum)
      sgd_span<false, true>(w, g, buf, mask, begin, end, s);
    else
      sgd_span<false, false>(w, g, buf, mask, begin, end, s);
  });
}

}  // namespace empiric::kernels
