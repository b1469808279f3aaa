// CPU fallback of the fused optimizer steps: the same per-element math as the CUDA kernels, over
// spans of the flattened lists in torch's intra-op thread pool.
//
// Why it is shaped this way: with every list read once and written once, Adam on the CPU is bound
// by the sqrt and the division per element, not by memory (measured: docs/PERFORMANCE.md). So the
// span loops are branch-free (masking is a template parameter, and a mask selects rather than
// multiplies, so that an Inf or NaN gradient cannot reach a pruned weight: NaN * 0 is NaN), use
// restrict-qualified pointers,
// are built with -fno-math-errno so that sqrt vectorizes, and are cloned for AVX2 next to the
// baseline x86-64 build (EMPIRIC_CLONES, common/cpu_spans.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/cpu_spans.h"

namespace empiric::kernels {
namespace {

// x where keep, else +0: a bitwise and, which the vectorizer takes where it will not take a select
// between a quotient and 0 (and which, unlike x * 0, gives 0 for an Inf or NaN x).
inline float zero_unless(bool keep, float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= 0u - uint32_t(keep);
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

template <bool Masked>
EMPIRIC_CLONES void adam_span(float* __restrict__ w, const float* __restrict__ g,
                              float* __restrict__ m, float* __restrict__ v,
                              const float* __restrict__ mask, int64_t begin, int64_t end,
                              AdamStep s) {
  const float decay = s.decoupled ? 1.0f - s.lr * s.weight_decay : 1.0f;
  const float l2 = s.decoupled ? 0.0f : s.weight_decay;
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = !Masked || mask[i] != 0.0f;
    const float gi = zero_unless(keep, g[i] + l2 * w[i]);
    const float mi = s.beta1 * m[i] + s.one_minus_beta1 * gi;
    const float vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float wi = w[i] * decay - s.step_size * mi / (std::sqrt(vi) / s.bc2_sqrt + s.eps);
    w[i] = zero_unless(keep, wi);
  }
}

template <bool Masked, bool Momentum>
EMPIRIC_CLONES void sgd_span(float* __restrict__ w, const float* __restrict__ g,
                             float* __restrict__ buf, const float* __restrict__ mask, int64_t begin,
                             int64_t end, SgdStep s) {
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = !Masked || mask[i] != 0.0f;
    float gi = zero_unless(keep, g[i] + s.weight_decay * w[i]);
    if (Momentum) {
      const float b = s.first_step ? gi : s.momentum * buf[i] + gi;
      buf[i] = b;
      gi = s.nesterov ? gi + s.momentum * b : b;
    }
    const float wi = w[i] - s.lr * gi;
    w[i] = zero_unless(keep, wi);
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
