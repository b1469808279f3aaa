// Dispatch of the fused optimizer steps on the tensors' device, and their ATen references.
#include "fused_optim/fused_optim.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/dispatch.h"

namespace empiric::kernels {
namespace {

// The device scalars of a step: on a CUDA tensor, their address (read by the kernel); on the CPU,
// their values are read here. Returns null when there are none.
const float* step_scalars(const char* op, const at::Tensor& scalars, const at::Tensor& like,
                          int64_t count, float* out) {
  if (!scalars.defined()) return nullptr;
  if (scalars.scalar_type() != at::kFloat || !scalars.is_contiguous() ||
      scalars.numel() != count || scalars.device() != like.device())
    throw std::invalid_argument(std::string(op) + ": scalars must be " + std::to_string(count) +
                                " contiguous float32 values on the params' device");
  if (scalars.is_cuda()) return scalars.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) out[i] = scalars.data_ptr<float>()[i];
  return nullptr;
}

// The members' hyperparameters (P x 3 float32 on the params' device), checked against the lists:
// sets *hyper and *count, or leaves them at null and 0 when there are none.
void member_hyper(const char* op, const at::Tensor& members, const TensorList& params,
                  const float** hyper, int* count) {
  if (!members.defined()) return;
  const int64_t p = members.dim() == 2 ? members.size(0) : -1;
  if (p < 1 || members.size(1) != 3 || members.scalar_type() != at::kFloat ||
      !members.is_contiguous() || members.device() != params[0].device())
    throw std::invalid_argument(std::string(op) +
                                ": members must be a contiguous float32 tensor of P x 3 on the "
                                "params' device");
  for (size_t k = 0; k < params.size(); ++k)
    if (params[k].dim() < 1 || params[k].size(0) != p)
      throw std::invalid_argument(std::string(op) + ": params[" + std::to_string(k) +
                                  "] does not have the " + std::to_string(p) +
                                  " members as its first dimension");
  *hyper = members.data_ptr<float>();
  *count = int(p);
}

}  // namespace

void fused_adam_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                 const TensorList& exp_avg_sqs, const TensorList& masks, const AdamConfig& c,
                 int64_t step, const at::Tensor& scalars, const at::Tensor& members) {
  EMPIRIC_PROFILED("empiric::fused_adam_");
  if (params.empty()) return;
  const bool masked = !masks.empty();
  std::vector<const TensorList*> lists = {&params, &grads, &exp_avgs, &exp_avg_sqs};
  std::vector<const char*> names = {"params", "grads", "exp_avgs", "exp_avg_sqs"};
  if (masked) lists.push_back(&masks), names.push_back("masks");
  check_lists("fused_adam_", lists, names);
  if (step < 1 && !scalars.defined())  // step 0 would divide by 1 - beta1^0 = 0
    throw std::invalid_argument("fused_adam_: step " + std::to_string(step) +
                                "; the steps count from 1");
  AdamStep s;
  s.lr = float(c.lr);
  s.beta1 = float(c.beta1);
  s.beta2 = float(c.beta2);
  s.eps = float(c.eps);
  s.one_minus_beta1 = float(1.0 - c.beta1);
  s.one_minus_beta2 = float(1.0 - c.beta2);
  s.weight_decay = float(c.weight_decay);
  s.step_size = float(c.lr / (1.0 - std::pow(c.beta1, double(step))));
  s.bc2_sqrt = float(std::sqrt(1.0 - std::pow(c.beta2, double(step))));
  s.decoupled = c.decoupled;
  float host[3];
  s.scalars = step_scalars("fused_adam_", scalars, params[0], 3, host);
  if (scalars.defined() && !s.scalars) s.lr = host[0], s.step_size = host[1], s.bc2_sqrt = host[2];
  member_hyper("fused_adam_", members, params, &s.member_hyper, &s.members);
  SpanLists spans = spans_of(lists);
  if (params[0].is_cuda())
    launch_fused_adam(spans, s, masked, current_stream(params[0]));
  else
    cpu_fused_adam(spans, s, masked);
}

void adam_step_scalars(const at::Tensor& lr, const at::Tensor& t, const AdamConfig& c,
                       at::Tensor& scalars) {
  scalars.copy_(at::cat({lr, lr / (1.0 - at::pow(c.beta1, t)), (1.0 - at::pow(c.beta2, t)).sqrt()}));
}

void fused_sgd_(const TensorList& params, const TensorList& grads, const TensorList& momentum_bufs,
                const TensorList& masks, const SgdConfig& c, bool first_step,
                const at::Tensor& scalars, const at::Tensor& members) {
  EMPIRIC_PROFILED("empiric::fused_sgd_");
  if (params.empty()) return;
  const bool masked = !masks.empty();
  if (members.defined() && momentum_bufs.empty())
    throw std::invalid_argument("fused_sgd_: members need momentum_bufs");
  // Without momentum there is no buffer: the params stand in for it (never read or written).
  const TensorList& bufs = c.momentum != 0 || members.defined() ? momentum_bufs : params;
  std::vector<const TensorList*> lists = {&params, &grads, &bufs};
  std::vector<const char*> names = {"params", "grads", "momentum_bufs"};
  if (masked)
    lists.push_back(&bufs), lists.push_back(&masks), names.push_back("(unused)"),
        names.push_back("masks");
  check_lists("fused_sgd_", lists, names);
  SgdStep s{float(c.lr), float(c.momentum), float(c.weight_decay), c.nesterov, first_step};
  float host[1];
  s.scalars = step_scalars("fused_sgd_", scalars, params[0], 1, host);
  if (scalars.defined() && !s.scalars) s.lr = host[0];
  member_hyper("fused_sgd_", members, params, &s.member_hyper, &s.members);
  SpanLists spans = spans_of(lists);
  if (params[0].is_cuda())
    launch_fused_sgd(spans, s, masked, current_stream(params[0]));
  else
    cpu_fused_sgd(spans, s, masked);
}

void reference_adam_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& masks, const AdamConfig& c,
                     int64_t step) {
  const double bc1 = 1.0 - std::pow(c.beta1, double(step)),
               bc2 = 1.0 - std::pow(c.beta2, double(step));
  for (size_t k = 0; k < params.size(); ++k) {
    at::Tensor g = grads[k];
    if (c.decoupled)
      params[k].mul_(1.0 - c.lr * c.weight_decay);
    else if (c.weight_decay != 0)
      g = g + c.weight_decay * params[k];
    if (!masks.empty()) g = g * masks[k];
    exp_avgs[k].mul_(c.beta1).add_(g, 1.0 - c.beta1);
    exp_avg_sqs[k].mul_(c.beta2).addcmul_(g, g, 1.0 - c.beta2);
    at::Tensor denom = (exp_avg_sqs[k].sqrt() / std::sqrt(bc2)).add_(c.eps);
    params[k].addcdiv_(exp_avgs[k], denom, -c.lr / bc1);
    if (!masks.empty()) params[k].mul_(masks[k]);
  }
}

void reference_sgd_(const TensorList& params, const TensorList& grads,
                    const TensorList& momentum_bufs, const TensorList& masks, const SgdConfig& c,
                    bool first_step) {
  for (size_t k = 0; k < params.size(); ++k) {
    at::Tensor g = grads[k].clone();
    if (c.weight_decay != 0) g.add_(params[k], c.weight_decay);
    if (!masks.empty()) g.mul_(masks[k]);
    if (c.momentum != 0) {
      if (first_step)
        momentum_bufs[k].copy_(g);
      else
        momentum_bufs[k].mul_(c.momentum).add_(g);
      g = c.nesterov ? g.add(momentum_bufs[k], c.momentum) : momentum_bufs[k];
    }
    params[k].add_(g, -c.lr);
    if (!masks.empty()) params[k].mul_(masks[k]);
  }
}

}  // namespace empiric::kernels
