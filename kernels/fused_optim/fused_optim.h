// Fused optimizer steps over lists of tensors, with an optional 0/1 mask per tensor.
//
// Contract
//   params, grads, states and masks: float32, contiguous, on one device (CPU or CUDA); list k of
//   every argument has the shape of params[k]. masks is empty (no masking) or one per param.
//   Everything is updated in place. One CUDA launch covers a set of chunks of many tensors.
//
//   Adam (decoupled = false), per element, t = step (1-based):
//     g  = (grad + weight_decay * w) * mask
//     m  = beta1 * m + (1 - beta1) * g
//     v  = beta2 * v + (1 - beta2) * g^2
//     w  = (w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)) * mask
//   AdamW (decoupled = true): g = grad * mask, and w is first multiplied by (1 - lr *
//   weight_decay). SGD:  g = (grad + weight_decay * w) * mask;  buf = first ? g : momentum * buf +
//   g;
//         g = nesterov ? g + momentum * buf : buf  (when momentum != 0);  w = (w - lr * g) * mask
//   With a mask, pruned weights (mask 0) end every step at exactly 0, and their moments stay at 0:
//   "* mask" is a select (mask != 0 ? x : 0), not a product, so that an Inf or NaN gradient cannot
//   reach a pruned weight (NaN * 0 is NaN).
//
// Reference: torch::optim::Adam / AdamW / SGD (dampening 0), followed by w.mul_(mask); the
// reference_* functions below are that math as ATen composites, for tests and benchmarks.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace empiric::kernels {

using TensorList = std::vector<at::Tensor>;

struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;  // AdamW
};

struct SgdConfig {
  double lr = 0.1, momentum = 0, weight_decay = 0;
  bool nesterov = false;
};

// members (optional; for populations of models stacked along a leading dimension): a float32
// tensor of P x 3 on the params' device. Every params[k] then has P as its first dimension, and
// member p (the block params[k][p]) steps with its own hyperparameters from row p: {lr,
// lr / (1 - beta1^t), weight_decay} (Adam) or {lr, momentum, weight_decay} (SGD), in place of c's
// and the scalars'; the rest (betas, eps, bias correction 2, nesterov) is shared. SGD then needs
// momentum_bufs (a member with momentum 0 leaves its block of them untouched).
// One call then steps P models with different hyperparameters, so a CUDA graph can capture it.
//
// scalars (optional; for CUDA graphs): a float32 tensor on the params' device holding {lr,
// lr / (1 - beta1^t), sqrt(1 - beta2^t)} (Adam) or {lr} (SGD); when given, the step takes these
// from it when it runs (c.lr and step are then not used for them), so a step captured in a CUDA
// graph follows the values written there before each replay.
void fused_adam_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                 const TensorList& exp_avg_sqs, const TensorList& masks, const AdamConfig& c,
                 int64_t step, const at::Tensor& scalars = {}, const at::Tensor& members = {});
// The Adam scalars a captured step reads: {lr, lr / (1 - beta1^t), sqrt(1 - beta2^t)} computed
// from lr and t (one-element float64 tensors; t is the 1-based step) in float64 as the host does,
// with ATen ops only, so a CUDA graph captures the computation too; stored into `scalars`
// (float32, 3 elements).
void adam_step_scalars(const at::Tensor& lr, const at::Tensor& t, const AdamConfig& c,
                       at::Tensor& scalars);
// momentum_bufs may be empty when momentum == 0; first_step starts the buffers from the gradient.
void fused_sgd_(const TensorList& params, const TensorList& grads, const TensorList& momentum_bufs,
                const TensorList& masks, const SgdConfig& c, bool first_step,
                const at::Tensor& scalars = {}, const at::Tensor& members = {});

void reference_adam_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& masks, const AdamConfig& c,
                     int64_t step);
void reference_sgd_(const TensorList& params, const TensorList& grads,
                    const TensorList& momentum_bufs, const TensorList& masks, const SgdConfig& c,
                    bool first_step);

}  // namespace empiric::kernels
