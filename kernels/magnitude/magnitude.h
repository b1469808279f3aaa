// Global (or layer-wise) magnitude thresholds and pruning masks over lists of tensors.
//
// Contract
//   kth_smallest_magnitude(weights, k, masks): the k-th smallest |w| (k is 1-based) among the
//   elements of all weights whose mask is nonzero (all elements when masks is empty). Exact.
//   float32, contiguous, one device; masks (0/1 float32) empty or one per weight. Computed by radix
//   select on the bit patterns of |w| (which order like the values for non-negative floats): four
//   histogram passes of 8 bits each over the data, never a sort.
//   Reference: torch::kthvalue(torch::cat(|w|[mask != 0]), k).
//
//   prune_by_magnitude_(weights, masks, fraction, global): removes round(fraction * remaining) of
//   the remaining weights with the smallest magnitudes, globally over the list or per tensor:
//   masks[k] *= (|w_k| > threshold), weights[k] *= masks[k]. Ties at the threshold are all pruned.
//   Returns the number of weights remaining. Throws std::invalid_argument for NaN or Inf weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace empiric::kernels {

float kth_smallest_magnitude(const std::vector<at::Tensor>& weights, int64_t k,
                             const std::vector<at::Tensor>& masks = {});

int64_t prune_by_magnitude_(const std::vector<at::Tensor>& weights,
                            const std::vector<at::Tensor>& masks, double fraction, bool global);

float reference_kth_smallest_magnitude(const std::vector<at::Tensor>& weights, int64_t k,
                                       const std::vector<at::Tensor>& masks = {});

}  // namespace empiric::kernels
