// Multi-tensor axpby: out[k] = w0[k] + a * d1[k] + b * d2[k] for every k.
//
// Contract: float32, contiguous, one device, matching shapes per k; out may alias w0 (in-place
// move along the directions) but not d1 or d2. Reference: out.copy_(w0 + a * d1 + b * d2).
// Used by the landscape and sharpness probes: a point of a 2-D slice around the weights in one
// pass per evaluation, no temporaries.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace empiric::kernels {

void multi_axpby_(const std::vector<at::Tensor>& out, const std::vector<at::Tensor>& w0,
                  const std::vector<at::Tensor>& d1, const std::vector<at::Tensor>& d2, double a,
                  double b);

}  // namespace empiric::kernels
