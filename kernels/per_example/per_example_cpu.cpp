// CPU per-example norms: rows in parallel, each the product of two sums of squares.
//
// A sum of squares is taken in blocks of 256 values, each block in 16 independent float lanes
// (which the vectorizer maps onto SIMD registers: one running float sum is a dependency chain it
// must keep scalar, and was half the speed of ATen's two reductions), and the blocks' sums are
// added in double. The error then no longer grows with the row's width: one float sum of a
// 65,536-wide row was 1.6e-5 off, of a million-wide row 3.9e-4.
#include "common/cpu_spans.h"

namespace empiric::kernels {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kBlock = 256;

EMPIRIC_CLONES double sum_of_squares(const float* __restrict__ p, int64_t n) {
  double total = 0;
  int64_t j = 0;
  for (; j + kBlock <= n; j += kBlock) {
    float lane[kLanes] = {};
    for (int64_t k = 0; k < kBlock; k += kLanes)
      for (int l = 0; l < kLanes; ++l) lane[l] += p[j + k + l] * p[j + k + l];
    float block = 0;
    for (int l = 0; l < kLanes; ++l) block += lane[l];
    total += block;
  }
  float tail = 0;
  for (; j < n; ++j) tail += p[j] * p[j];
  return total + tail;
}

}  // namespace

void cpu_row_norm_product(const float* a, int64_t a_cols, const float* b, int64_t b_cols,
                          int64_t rows, float add, float* out) {
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      out[r] = float(sum_of_squares(a + r * a_cols, a_cols) *
                     (sum_of_squares(b + r * b_cols, b_cols) + double(add)));
  });
}

}  // namespace empiric::kernels
