// CPU fallback of the fused optimizer steps: the same per-element math as the CUDA kernels, over
// spans of the flattened lists in torch's intra-op thread pool.
//
// Why it is shaped this way: with every list read once and written once, Adam on the CPU is bound
// by the sqrt and the division per element, not by memory (measured: docs/PERFORMANCE.md). So the
// span loops are branch-free (masking is a template parameter), use restrict-qualified pointers,
// are built with -fno-math-errno so that sqrt vectorizes, and are cloned for AVX2 next to the
// baseline x86-64 build (GCC's target_clones picks one at load time), which doubles the vector
// width wherever the machine has it.
#include <algorithm>
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

// Calls fn(step, begin, end) over [begin, end) of a tensor of n elements, cut where the members'
// blocks meet, each piece with its member's hyperparameters {a, b, c} set by `set`; without
// members, once with s as it is.
template <class Step, class Set, class Fn>
void by_member(const Step& s, int64_t n, int64_t begin, int64_t end, Set set, Fn fn) {
  if (s.members == 0) return fn(s, begin, end);
  const int64_t block = n / s.members;
  for (int64_t p = begin / block; begin < end; ++p) {
    const int64_t stop = std::min(end, (p + 1) * block);
    Step m = s;
    set(m, s.member_hyper + 3 * p);
    fn(m, begin, stop);
    begin = stop;
  }
}

}  // namespace

void cpu_fused_adam(const SpanLists& l, const AdamStep& s, bool masked) {
  auto set = [](AdamStep& m, const float* h) { m.lr = h[0], m.step_size = h[1], m.weight_decay = h[2]; };
  for_each_span(l, [&](int k, int64_t begin, int64_t end) {
    by_member(s, l.n[k], begin, end, set, [&](const AdamStep& m, int64_t b, int64_t e) {
      if (masked)
        adam_span<true>(l.ptr[0][k], l.ptr[1][k], l.ptr[2][k], l.ptr[3][k], l.ptr[4][k], b, e, m);
      else
        adam_span<false>(l.ptr[0][k], l.ptr[1][k], l.ptr[2][k], l.ptr[3][k], nullptr, b, e, m);
    });
  });
}

void cpu_fused_sgd(const SpanLists& l, const SgdStep& s, bool masked) {
  auto set = [](SgdStep& m, const float* h) { m.lr = h[0], m.momentum = h[1], m.weight_decay = h[2]; };
  for_each_span(l, [&](int k, int64_t begin, int64_t end) {
    by_member(s, l.n[k], begin, end, set, [&](const SgdStep& m, int64_t b, int64_t e) {
      const bool momentum = m.momentum != 0.0f;
      float* w = l.ptr[0][k];
      const float* g = l.ptr[1][k];
      float* buf = momentum ? l.ptr[2][k] : nullptr;
      const float* mask = masked ? l.ptr[4][k] : nullptr;
      if (masked && momentum)
        sgd_span<true, true>(w, g, buf, mask, b, e, m);
      else if (masked)
        sgd_span<true, false>(w, g, buf, mask, b, e, m);
      else if (momentum)
        sgd_span<false, true>(w, g, buf, mask, b, e, m);
      else
        sgd_span<false, false>(w, g, buf, mask, b, e, m);
    });
  });
}

}  // namespace empiric::kernels
