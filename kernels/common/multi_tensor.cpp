#include "common/multi_tensor.h"

namespace empiric::kernels {

bool SpanLists::aligned16() const {
  for (int d = 0; d < depth; ++d)
    for (float* p : ptr[d])
      if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

#ifndef EMPIRIC_WITH_CUDA
// Built without nvcc: the dispatch layer never reaches these (no CUDA tensors can exist for it),
// but they must link.
void launch_fused_adam(const SpanLists&, const AdamStep&, bool, void*) {}
void launch_fused_sgd(const SpanLists&, const SgdStep&, bool, void*) {}
void launch_axpby(const SpanLists&, float, float, void*) {}
void launch_magnitude_histogram(const SpanLists&, bool, uint32_t, uint32_t, int,
                                unsigned long long*, void*) {}
void launch_row_norm_product(const float*, int64_t, const float*, int64_t, int64_t, float, float*,
                             void*) {}
#endif

}  // namespace empiric::kernels
