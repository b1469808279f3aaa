// Optimizers from a validated "optim" section, with per-layer LR multipliers as parameter groups,
// L1 added to the gradient, and global-norm gradient clipping. optim.impl picks torch::optim or
// empiric's fused multi-tensor kernels (kernels/fused_optim: SGD, Adam, AdamW), which compute the
// same step in one pass per chunk set.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace empiric {

// "" when a tensor read from a torch archive holds its data, else why not: a record emptied in
// the file reads as a tensor of the right shape over no data, which using is a segmentation
// fault, not an error (also a storage smaller than the shape needs). Not caught: a record cut
// short inside an archive rewritten whole, since torch sizes the storage from the tensor's
// metadata, not from the record.
std::string archived_tensor_problem(const torch::Tensor& t);

using json = nlohmann::json;

// Refuses optim.lr_mult prefixes that match no parameter of `model` (a typo would otherwise leave
// every layer at the base learning rate), naming `source`, the prefix and the parameters there are.
void check_lr_mult(const json& optim, torch::nn::Module& model, const std::string& source);

class Optimizer {
 public:
  Optimizer(const json& optim, torch::nn::Module& model);

  // Applies L1 and clipping to the gradients, then steps.
  void step();
  void zero_grad();
  // Resets every gradient to undefined, so the next backward writes it anew.
  void clear_grads();
  // SAM (Foret et al. 2021), for optim.sam_rho > 0: replaces the gradients g in .grad(), taken at
  // the weights w, by those at w + rho g / |g| (|.|: the global L2 norm), which `loss` computes on
  // the same batch; the weights are then restored exactly. Call between backward() and step():
  // the step (any optimizer, with L1, clipping and masks) then uses the sharpness-aware gradient.
  void sam_regrade(const std::function<torch::Tensor()>& loss);
  double sam_rho() const { return sam_rho_; }
  // optim.grad_noise > 0: the annealed Gaussian gradient noise draws from a generator seeded here
  // (the trial's seed), so a run is reproducible and resumes with the same draws.
  void seed_noise(uint64_t seed);
  // Holds 0/1 masks on parameters (pruning): one per parameter in model.parameters() order, an
  // undefined tensor for an unmasked one. Fused: masked weights end every step at exactly 0 and
  // their optimizer state stays 0 (the kernels' masks). torch::optim: the weights are multiplied
  // by their masks after each step (its state is not masked).
  void set_masks(const std::vector<torch::Tensor>& masks);
  // Zeroes the masked entries of the gradients; before a norm is taken of them (SAM's ascent,
  // clipping), which would otherwise count the pruned weights a sparse network does not have.
  void mask_grads();
  // Sets every group's LR to lr times the group's multiplier.
  void set_lr(double lr);
  double lr() const { return lr_; }
  bool fused() const { return !opt_; }
  torch::optim::Optimizer* torch_optimizer() { return opt_.get(); }  // null when fused

  // CUDA graphs: from now on the fused step reads its LR and (Adam) bias corrections from device
  // tensors that set_lr and the step itself update, so a step captured once follows the schedule
  // and the step count in every replay. Fused optimizers only (throws otherwise).
  void use_device_scalars();
  // Steps taken. A capture records a step without taking it: the caller sets the count back
  // after capturing and counts each replay with count_replay().
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  void count_replay() { ++steps_; }

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
  // Drops torch::optim's per-parameter state (its load adds state, never removes it); the fused
  // kernels' state is overwritten whole by load().
  void clear_state();

 private:
  void fused_step();

  std::unique_ptr<torch::optim::Optimizer> opt_;  // null when fused
  // Fused: the groups' parameters and their state (Adam: exp_avg, exp_avg_sq; SGD: momentum).
  std::string name_;
  json cfg_;
  std::vector<std::vector<torch::Tensor>> group_params_, group_state1_, group_state2_;
  std::vector<std::vector<torch::Tensor>> group_masks_;  // fused, when masks are set
  std::vector<std::pair<torch::Tensor, torch::Tensor>> torch_masks_;  // torch::optim: (param, mask)
  int64_t steps_ = 0;
  // use_device_scalars(): LR and step count as float64 on the device; the kernels' scalars per
  // group as float32 ({lr} for SGD, {lr, lr / (1 - beta1^t), sqrt(1 - beta2^t)} for Adam).
  torch::Tensor lr_device_, t_device_;
  std::vector<torch::Tensor> group_scalars_;
  double lr_on_device_ = 0;
  std::vector<double> multipliers_;     // one per parameter group
  std::vector<torch::Tensor> weights_;  // parameters of dim >= 2 (L1 applies to these)
  std::vector<torch::Tensor> params_;
  double l1_ = 0, clip_ = 0, lr_ = 0, sam_rho_ = 0;
  double noise_eta_ = 0, noise_gamma_ = 0;
  int64_t noise_steps_ = 0;
  at::Generator noise_gen_;
  // SAM: the model's batch-norm layers, whose running statistics its second forward (at the
  // perturbed weights) must leave alone.
  std::vector<torch::nn::BatchNormOptions*> batch_norms_;
};

}  // namespace empiric
