// CPU per-example norms: rows in parallel, each a pair of vectorizable sums of squares.
#include <ATen/Parallel.h>

#include "common/multi_tensor.h"

namespace empiric::kernels {

void cpu_row_norm_product(const float* a, int64_t a_cols, const float* b, int64_t b_cols,
                          int64_t rows, float add, float* out) {
  at::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      float sa = 0, sb = 0;
      for (int64_t j = 0; j < a_cols; ++j) sa += a[r * a_cols + j] * a[r * a_cols + j];
      for (int64_t j = 0; j < b_cols; ++j) sb += b[r * b_cols + j] * b[r * b_cols + j];
      out[r] = sa * (sb + add);
    }
  });
}

}  // namespace empiric::kernels
