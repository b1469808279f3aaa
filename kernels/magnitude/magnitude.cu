// One radix-select pass on the GPU: each block builds a 256-bin histogram of its chunk in shared
// memory (shared atomics are cheap; most bins are cold) and adds it to the global one, so a pass is
// one read of the weights (and masks) at near copy bandwidth plus 256 global atomics per block.
#include "common/multi_tensor.cuh"

namespace empiric::kernels {
namespace {

template <bool Masked>
__global__ void __launch_bounds__(kThreads)
    histogram_kernel(ChunkMeta<2> meta, uint32_t prefix, uint32_t prefix_mask, int shift,
                     unsigned long long* hist) {
  __shared__ unsigned int local[256];
  for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
  __syncthreads();
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t begin = int64_t(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(meta.n[t], begin + kChunk);
  const float* __restrict__ w = meta.ptr[0][t];
  const float* __restrict__ mask = meta.ptr[1][t];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if (Masked && mask[i] == 0.0f) continue;
    const uint32_t bits = __float_as_uint(w[i]) & 0x7FFFFFFFu;
    if ((bits & prefix_mask) == prefix) atomicAdd(&local[(bits >> shift) & 0xFF], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < 256; b += blockDim.x)
    if (local[b]) atomicAdd(&hist[b], static_cast<unsigned long long>(local[b]));
}

}  // namespace

void launch_magnitude_histogram(const SpanLists& lists, bool masked, uint32_t prefix,
                                uint32_t prefix_mask, int shift, unsigned long long* hist,
                                void* stream) {
  SpanLists two = lists;
  if (!masked) two.ptr[1] = lists.ptr[0];  // never read
  two.depth = 2;
  auto st = static_cast<cudaStream_t>(stream);
  for_each_chunk_set<2>(two, [&](const ChunkMeta<2>& meta, int blocks) {
    if (masked)
      histogram_kernel<true><<<blocks, kThreads, 0, st>>>(meta, prefix, prefix_mask, shift, hist);
    else
      histogram_kernel<false><<<blocks, kThreads, 0, st>>>(meta, prefix, prefix_mask, shift, hist);
    check_launch("magnitude_histogram");
  });
}

}  // namespace empiric::kernels
