// GPU per-example norms: one warp per row, each lane striding over the row and a shuffle
// reduction at the end; rows are short (hundreds of columns), so a block would mostly idle.
#include "common/multi_tensor.cuh"

namespace empiric::kernels {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void row_norm_product_kernel(const float* __restrict__ a, int64_t a_cols,
                                        const float* __restrict__ b, int64_t b_cols, int64_t rows,
                                        float add, float* __restrict__ out) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float sa = 0, sb = 0;
  for (int64_t j = lane; j < a_cols; j += 32) sa += a[row * a_cols + j] * a[row * a_cols + j];
  for (int64_t j = lane; j < b_cols; j += 32) sb += b[row * b_cols + j] * b[row * b_cols + j];
  sa = warp_sum(sa);
  sb = warp_sum(sb);
  if (lane == 0) out[row] = sa * (sb + add);
}

}  // namespace

void launch_row_norm_product(const float* a, int64_t a_cols, const float* b, int64_t b_cols,
                             int64_t rows, float add, float* out, void* stream) {
  constexpr int kRowsPerBlock = 8;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  row_norm_product_kernel<<<blocks, kRowsPerBlock * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      a, a_cols, b, b_cols, rows, add, out);
  check_launch("row_norm_product");
}

}  // namespace empiric::kernels
