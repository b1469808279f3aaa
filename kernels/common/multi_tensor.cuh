// Multi-tensor apply for CUDA: one launch covers up to kMaxTensors tensors cut into chunks of
// kChunk elements, one block per chunk, so a list of many small tensors costs a few launches rather
// than one per tensor (as apex and PyTorch's fused optimizers do). The metadata travels by value
// in the kernel's parameters: about 15 KB, which sm_70 and later accept since CUDA 12.1 (the old
// limit was 4 KB). That lets one launch cover 2048 chunks (32M elements), so a 10M-parameter step
// is one launch with no partly filled wave between launches.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/multi_tensor.h"

namespace empiric::kernels {

constexpr int kMaxTensors = 96;
constexpr int kMaxBlocks = 2048;
constexpr int kChunk = 16384;  // elements per block: 64 KiB of each list
constexpr int kThreads = 512;

template <int Depth>
struct ChunkMeta {
  float* ptr[Depth][kMaxTensors];
  int64_t n[kMaxTensors];
  unsigned char block_tensor[kMaxBlocks];
  int block_chunk[kMaxBlocks];
};

inline void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) +
                             ": CUDA launch failed: " + cudaGetErrorString(err));
}

// Calls launch(meta, blocks) for each full set of chunks; a tensor whose chunks do not fit in one
// launch continues in the next.
template <int Depth, class Launch>
void for_each_chunk_set(const SpanLists& lists, Launch launch) {
  ChunkMeta<Depth> meta;
  int tensors = 0, blocks = 0;
  for (size_t k = 0; k < lists.n.size(); ++k) {
    const int64_t n = lists.n[k];
    if (n == 0) continue;
    for (int d = 0; d < Depth; ++d) meta.ptr[d][tensors] = lists.ptr[d][k];
    meta.n[tensors] = n;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      meta.block_tensor[blocks] = static_cast<unsigned char>(tensors);
      meta.block_chunk[blocks] = static_cast<int>(c);
      ++blocks;
      const bool last_chunk = c == chunks - 1;
      if (blocks == kMaxBlocks || (last_chunk && tensors + 1 == kMaxTensors)) {
        launch(meta, blocks);
        blocks = 0;
        if (last_chunk) {
          tensors = -1;  // the next tensor starts at slot 0
        } else {         // this tensor goes on in slot 0 of the next launch
          for (int d = 0; d < Depth; ++d) meta.ptr[d][0] = meta.ptr[d][tensors];
          meta.n[0] = meta.n[tensors];
          tensors = 0;
        }
      }
    }
    ++tensors;
  }
  if (blocks > 0) launch(meta, blocks);
}

}  // namespace empiric::kernels
