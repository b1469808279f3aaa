// out = w0 + a * d1 + b * d2 over lists of tensors: the point on a 2-D slice of the loss landscape
// (or a 1-D interpolation with b = 0), written in one pass without temporaries.
#include "common/multi_tensor.cuh"

namespace empiric::kernels {
namespace {

__global__ void __launch_bounds__(kThreads) axpby_kernel(ChunkMeta<4> meta, float a, float b) {
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t begin = int64_t(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(meta.n[t], begin + kChunk);
  // out may be w0 (callers write the point over the weights it starts from): neither is
  // __restrict__, which would promise the compiler they never alias.
  float* out = meta.ptr[0][t];
  const float* w0 = meta.ptr[1][t];
  const float* __restrict__ d1 = meta.ptr[2][t];
  const float* __restrict__ d2 = meta.ptr[3][t];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    out[i] = w0[i] + a * d1[i] + b * d2[i];
}

}  // namespace

void launch_axpby(const SpanLists& lists, float a, float b, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  for_each_chunk_set<4>(lists, [&](const ChunkMeta<4>& meta, int blocks) {
    axpby_kernel<<<blocks, kThreads, 0, st>>>(meta, a, b);
    check_launch("axpby");
  });
}

}  // namespace empiric::kernels
