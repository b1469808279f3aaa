#include "train/optim.h"

#include <map>

namespace empiric {
namespace {

namespace optim = torch::optim;

std::unique_ptr<optim::OptimizerOptions> options_for(const json& o) {
  const std::string name = o["name"];
  const double lr = o["lr"], wd = o["weight_decay"];
  if (name == "sgd")
    return std::make_unique<optim::SGDOptions>(
        optim::SGDOptions(lr).momentum(o["momentum"]).nesterov(o["nesterov"]).weight_decay(wd));
  if (name == "adam" || name == "adamw") {
    auto betas = std::make_tuple(o["betas"][0].get<double>(), o["betas"][1].get<double>());
    if (name == "adam") return std::make_unique<optim::AdamOptions>(optim::AdamOptions(lr).betas(betas).eps(o["eps"]).weight_decay(wd));
    return std::make_unique<optim::AdamWOptions>(optim::AdamWOptions(lr).betas(betas).eps(o["eps"]).weight_decay(wd));
  }
  return std::make_unique<optim::RMSpropOptions>(
      optim::RMSpropOptions(lr).alpha(o["alpha"]).eps(o["eps"]).momentum(o["momentum"]).weight_decay(wd));
}

template <class Opt, class Options>
std::unique_ptr<optim::Optimizer> build(std::vector<optim::OptimizerParamGroup> groups, const optim::OptimizerOptions& base) {
  return std::make_unique<Opt>(std::move(groups), static_cast<const Options&>(base));
}

}  // namespace

Optimizer::Optimizer(const json& o, torch::nn::Module& model)
    : l1_(o["l1"]), clip_(o["clip_norm"]), lr_(o["lr"]) {
  auto base = options_for(o);
  // Group parameters by the longest lr_mult prefix that matches their name ("" = the rest).
  const json mult = o.value("lr_mult", json::object());
  std::map<std::string, std::vector<torch::Tensor>> by_prefix;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    std::string best;
    bool found = false;
    for (const auto& [prefix, m] : mult.items())
      if (name.rfind(prefix, 0) == 0 && (!found || prefix.size() > best.size())) best = prefix, found = true;
    by_prefix[found ? best : std::string("\x01rest")].push_back(p);
    params_.push_back(p);
    if (p.dim() >= 2) weights_.push_back(p);
  }
  std::vector<optim::OptimizerParamGroup> groups;
  for (auto& [prefix, params] : by_prefix) {
    double m = prefix == "\x01rest" ? 1.0 : mult[prefix].get<double>();
    auto group_opts = base->clone();
    group_opts->set_lr(lr_ * m);
    groups.emplace_back(params, std::move(group_opts));
    multipliers_.push_back(m);
  }
  const std::string name = o["name"];
  if (name == "sgd") opt_ = build<optim::SGD, optim::SGDOptions>(std::move(groups), *base);
  else if (name == "adam") opt_ = build<optim::Adam, optim::AdamOptions>(std::move(groups), *base);
  else if (name == "adamw") opt_ = build<optim::AdamW, optim::AdamWOptions>(std::move(groups), *base);
  else opt_ = build<optim::RMSprop, optim::RMSpropOptions>(std::move(groups), *base);
}

void Optimizer::set_lr(double lr) {
  lr_ = lr;
  auto& groups = opt_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(lr * multipliers_[i]);
}

void Optimizer::step() {
  if (l1_ > 0) {
    torch::NoGradGuard guard;
    for (auto& w : weights_)
      if (w.grad().defined()) w.mutable_grad().add_(torch::sign(w), l1_);
  }
  if (clip_ > 0) torch::nn::utils::clip_grad_norm_(params_, clip_);
  opt_->step();
}

}  // namespace empiric
