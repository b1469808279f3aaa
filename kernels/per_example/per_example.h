// Per-example gradient norms of a linear layer without materializing per-example gradients.
//
// Contract
//   For y = x W^T (+ b) with inputs x (B x in) and the gradients of the summed loss with respect to
//   the outputs, delta (B x out), example i's gradient is the outer product delta_i x_i^T (and
//   delta_i for the bias), so
//     ||dL_i/dW||^2 + ||dL_i/db||^2 = ||delta_i||^2 * (||x_i||^2 + [bias ? 1 : 0]).
//   Returns a (B) float32 tensor of these squared norms. x, delta: float32, 2-D, contiguous, same
//   device and batch size. Reference: the per-example gradients materialized with an einsum
//   ("bo,bi->boi") and reduced, which needs B x out x in memory. The squares are summed in
//   float32 lanes (on both devices), so an element whose square overflows float32 (|v| above
//   about 1.8e19) gives Inf, and one whose square underflows counts 0, where the reference's
//   products delta_i x_i^T may still be finite: far outside the values of a run that has not
//   diverged.
//   Tested and benchmarked (kernels_bench) but not yet called by a lab: the gradient-noise scale
//   (B_simple, Q99) is measured from two batch sizes' gradients, and no lab clips per example.
#pragma once

#include <ATen/core/Tensor.h>

namespace empiric::kernels {

at::Tensor per_example_sq_norms(const at::Tensor& inputs, const at::Tensor& grad_outputs,
                                bool bias);

at::Tensor reference_per_example_sq_norms(const at::Tensor& inputs, const at::Tensor& grad_outputs,
                                          bool bias);

}  // namespace empiric::kernels
