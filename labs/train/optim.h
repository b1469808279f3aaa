// Optimizers from a validated "optim" section, on torch::optim, with per-layer LR multipliers as
// parameter groups, L1 added to the gradient, and global-norm gradient clipping.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace empiric {

using json = nlohmann::json;

class Optimizer {
 public:
  Optimizer(const json& optim, torch::nn::Module& model);

  // Applies L1 and clipping to the gradients, then steps.
  void step();
  void zero_grad() { opt_->zero_grad(); }
  // Sets every group's LR to lr times the group's multiplier.
  void set_lr(double lr);
  double lr() const { return lr_; }
  torch::optim::Optimizer& torch_optimizer() { return *opt_; }

 private:
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<double> multipliers_;  // one per parameter group
  std::vector<torch::Tensor> weights_;  // parameters of dim >= 2 (L1 applies to these)
  std::vector<torch::Tensor> params_;
  double l1_ = 0, clip_ = 0, lr_ = 0;
};

}  // namespace empiric
