#include "train/optim.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/EmptyTensor.h>
#include <fmt/core.h>

#include <map>
#include <optional>

#include "core/errors.h"
#include "fused_optim/fused_optim.h"

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
    if (name == "adam")
      return std::make_unique<optim::AdamOptions>(
          optim::AdamOptions(lr).betas(betas).eps(o["eps"]).weight_decay(wd));
    return std::make_unique<optim::AdamWOptions>(
        optim::AdamWOptions(lr).betas(betas).eps(o["eps"]).weight_decay(wd));
  }
  return std::make_unique<optim::RMSpropOptions>(optim::RMSpropOptions(lr)
                                                     .alpha(o["alpha"])
                                                     .eps(o["eps"])
                                                     .momentum(o["momentum"])
                                                     .weight_decay(wd));
}

template <class Opt, class Options>
std::unique_ptr<optim::Optimizer> build(std::vector<optim::OptimizerParamGroup> groups,
                                        const optim::OptimizerOptions& base) {
  return std::make_unique<Opt>(std::move(groups), static_cast<const Options&>(base));
}

// Whether an lr_mult prefix names this parameter: whole name components, so "body.1" holds
// body.1.weight but not body.11.weight.
bool prefix_names(const std::string& prefix, const std::string& name) {
  return name.rfind(prefix, 0) == 0 && (prefix.empty() || name.size() == prefix.size() ||
                                        name[prefix.size()] == '.' || prefix.back() == '.');
}

}  // namespace

void check_lr_mult(const json& optim, torch::nn::Module& model, const std::string& source) {
  if (!optim.contains("lr_mult")) return;
  const auto named = model.named_parameters();
  for (const auto& [prefix, m] : optim["lr_mult"].items()) {
    bool matched = false;
    for (const auto& item : named) matched = matched || prefix_names(prefix, item.key());
    if (matched) continue;
    std::string names;
    for (const auto& item : named) names += (names.empty() ? "" : ", ") + item.key();
    throw UserError(source + ": /optim/lr_mult/" + prefix + ": the prefix \"" + prefix +
                    "\" matches no parameter of this model; its parameters are " + names);
  }
}

Optimizer::Optimizer(const json& o, torch::nn::Module& model)
    : name_(o["name"]),
      cfg_(o),
      l1_(o["l1"]),
      clip_(o["clip_norm"]),
      lr_(o["lr"]),
      sam_rho_(o.value("sam_rho", 0.0)),
      noise_eta_(o.value("grad_noise", 0.0)),
      noise_gamma_(o.value("grad_noise_gamma", 0.55)),
      noise_gen_(at::detail::createCPUGenerator(0)) {
  if (sam_rho_ > 0)
    for (const auto& m : model.modules(/*include_self=*/false)) {
      if (auto* bn = m->as<torch::nn::BatchNorm1dImpl>()) batch_norms_.push_back(&bn->options);
      if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) batch_norms_.push_back(&bn->options);
    }
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
      if (prefix_names(prefix, name) && (!found || prefix.size() > best.size()))
        best = prefix, found = true;
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
  if (o.value("impl", "torch") == "fused") {
    for (auto& group : groups) {
      std::vector<torch::Tensor> params = group.params(), s1, s2;
      for (auto& p : params) {
        s1.push_back(torch::zeros_like(p));
        if (name != "sgd") s2.push_back(torch::zeros_like(p));
      }
      group_params_.push_back(params);
      group_state1_.push_back(s1);
      group_state2_.push_back(s2);
    }
    return;
  }
  if (name == "sgd")
    opt_ = build<optim::SGD, optim::SGDOptions>(std::move(groups), *base);
  else if (name == "adam")
    opt_ = build<optim::Adam, optim::AdamOptions>(std::move(groups), *base);
  else if (name == "adamw")
    opt_ = build<optim::AdamW, optim::AdamWOptions>(std::move(groups), *base);
  else
    opt_ = build<optim::RMSprop, optim::RMSpropOptions>(std::move(groups), *base);
}

void Optimizer::zero_grad() {
  if (opt_) return opt_->zero_grad();
  for (auto& params : group_params_)
    for (auto& p : params)
      if (p.mutable_grad().defined()) p.mutable_grad().zero_();
}

void Optimizer::clear_grads() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

void Optimizer::set_lr(double lr) {
  lr_ = lr;
  if (lr_device_.defined() && lr != lr_on_device_) lr_device_.fill_(lr), lr_on_device_ = lr;
  if (!opt_) return;
  auto& groups = opt_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(lr * multipliers_[i]);
}

void Optimizer::set_masks(const std::vector<torch::Tensor>& masks) {
  TORCH_CHECK(masks.size() == params_.size(), "set_masks: ", masks.size(), " masks for ",
              params_.size(), " parameters");
  torch::NoGradGuard guard;
  torch_masks_.clear();
  group_masks_.clear();
  for (size_t i = 0; i < params_.size(); ++i)
    if (masks[i].defined()) {
      TORCH_CHECK(masks[i].sizes() == params_[i].sizes(), "set_masks: mask ", i, " has shape ",
                  masks[i].sizes(), ", its parameter ", params_[i].sizes());
      torch_masks_.push_back({params_[i], masks[i].to(params_[i].options())});
      params_[i].mul_(torch_masks_.back().second);
    }
  if (opt_ || torch_masks_.empty()) return;
  for (const auto& params : group_params_) {
    std::vector<torch::Tensor> group;
    for (const auto& p : params) {
      torch::Tensor mask;
      for (const auto& [q, m] : torch_masks_)
        if (q.is_same(p)) mask = m;
      group.push_back(mask.defined() ? mask : torch::ones_like(p));
    }
    group_masks_.push_back(group);
  }
}

void Optimizer::mask_grads() {
  torch::NoGradGuard guard;
  for (auto& [p, m] : torch_masks_)
    if (p.grad().defined()) p.mutable_grad().masked_fill_(m == 0, 0.0);  // (Inf * 0 is NaN)
}

void Optimizer::sam_regrade(const std::function<torch::Tensor()>& loss) {
  mask_grads();  // the ascent direction of the sparse network: pruned weights stay at 0
  std::vector<torch::Tensor> with_grad, saved;
  torch::Tensor sq;
  for (auto& p : params_)
    if (p.grad().defined()) {
      with_grad.push_back(p);
      auto s = p.grad().pow(2).sum();
      sq = sq.defined() ? sq + s : s;
    }
  if (with_grad.empty()) return;
  {
    torch::NoGradGuard guard;
    // A zero gradient moves nothing (the 1e-12 keeps 0/0 out).
    auto scale = sam_rho_ / (sq.sqrt() + 1e-12);
    for (auto& p : with_grad) {
      saved.push_back(p.detach().clone());
      p.add_(p.grad() * scale);
    }
  }
  zero_grad();
  {
    // The second forward updates no batch-norm running statistics (momentum 0 keeps them as
    // they are): the first, at the weights being trained, already did (as in Foret et al.'s
    // reference implementation).
    std::vector<std::optional<double>> momenta;
    for (auto* o : batch_norms_) momenta.push_back(o->momentum()), o->momentum(0.0);
    struct Restore {
      std::vector<torch::nn::BatchNormOptions*>& bns;
      std::vector<std::optional<double>>& m;
      ~Restore() {
        for (size_t i = 0; i < bns.size(); ++i) bns[i]->momentum(m[i]);
      }
    } restore{batch_norms_, momenta};
    loss().backward();
  }
  torch::NoGradGuard guard;
  for (size_t i = 0; i < with_grad.size(); ++i) with_grad[i].copy_(saved[i]);
}

void Optimizer::step() {
  if (l1_ > 0) {
    torch::NoGradGuard guard;
    for (auto& w : weights_)
      if (w.grad().defined()) w.mutable_grad().add_(torch::sign(w), l1_);
  }
  if (clip_ > 0) {
    mask_grads();  // the norm of the sparse network's gradient, not of the weights it has not
    torch::nn::utils::clip_grad_norm_(params_, clip_);
  }
  if (noise_eta_ > 0) {
    // Neelakantan et al. 2015: variance eta / (1 + t)^gamma at step t = 0, 1, ...
    torch::NoGradGuard guard;
    const double sd = std::sqrt(noise_eta_ / std::pow(1.0 + double(noise_steps_), noise_gamma_));
    for (auto& p : params_)
      if (p.grad().defined())
        p.mutable_grad().add_(
            torch::randn(p.sizes(), noise_gen_, torch::TensorOptions().dtype(p.dtype()))
                .to(p.device()),
            sd);
    ++noise_steps_;
  }
  if (opt_) {
    opt_->step();
    torch::NoGradGuard guard;
    for (auto& [p, m] : torch_masks_) p.masked_fill_(m == 0, 0.0);  // a NaN step stays out
  } else {
    fused_step();
  }
}

void Optimizer::use_device_scalars() {
  TORCH_CHECK(!opt_, "use_device_scalars: optim.impl=torch keeps its scalars on the host");
  if (params_.empty() || lr_device_.defined()) return;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(params_[0].device());
  lr_device_ = torch::full({1}, lr_, f64);
  lr_on_device_ = lr_;
  t_device_ = torch::full({1}, double(steps_), f64);
  for (size_t g = 0; g < group_params_.size(); ++g)
    group_scalars_.push_back(torch::zeros({name_ == "sgd" ? 1 : 3}, f64.dtype(torch::kFloat32)));
}

void Optimizer::fused_step() {
  ++steps_;
  torch::NoGradGuard guard;
  if (t_device_.defined()) t_device_.add_(1);
  for (size_t gi = 0; gi < group_params_.size(); ++gi) {
    // A parameter without a gradient this step (one the loss did not use) is left as it is, no
    // decay and no momentum, as torch::optim leaves it. (Adam's bias corrections still count
    // the optimizer's steps, where torch counts the parameter's own.)
    std::vector<torch::Tensor> params, grads, state1, state2, masks;
    for (size_t k = 0; k < group_params_[gi].size(); ++k) {
      const torch::Tensor& p = group_params_[gi][k];
      if (!p.grad().defined()) continue;
      params.push_back(p);
      grads.push_back(p.grad());
      state1.push_back(group_state1_[gi][k]);
      if (!group_state2_[gi].empty()) state2.push_back(group_state2_[gi][k]);
      if (!group_masks_.empty()) masks.push_back(group_masks_[gi][k]);
    }
    if (params.empty()) continue;
    const double lr = lr_ * multipliers_[gi];
    if (name_ == "sgd") {
      kernels::SgdConfig c{lr, cfg_["momentum"].get<double>(), cfg_["weight_decay"].get<double>(),
                           cfg_["nesterov"].get<bool>()};
      if (t_device_.defined()) group_scalars_[gi].copy_(lr_device_ * multipliers_[gi]);
      kernels::fused_sgd_(params, grads, state1, masks, c, steps_ == 1,
                          t_device_.defined() ? group_scalars_[gi] : torch::Tensor());
    } else {
      kernels::AdamConfig c{lr,
                            cfg_["betas"][0].get<double>(),
                            cfg_["betas"][1].get<double>(),
                            cfg_["eps"].get<double>(),
                            cfg_["weight_decay"].get<double>(),
                            name_ == "adamw"};
      if (t_device_.defined())
        kernels::adam_step_scalars(lr_device_ * multipliers_[gi], t_device_, c, group_scalars_[gi]);
      kernels::fused_adam_(params, grads, state1, state2, masks, c, steps_,
                           t_device_.defined() ? group_scalars_[gi] : torch::Tensor());
    }
  }
}

void Optimizer::seed_noise(uint64_t seed) {
  noise_gen_ = at::detail::createCPUGenerator(seed * 7919ULL + 100);
}

void Optimizer::save(torch::serialize::OutputArchive& archive) const {
  if (noise_eta_ > 0) {
    archive.write("noise_steps", torch::tensor(noise_steps_));
    archive.write("noise_rng", noise_gen_.get_state());
  }
  if (opt_) return opt_->save(archive);
  archive.write("fused_steps", torch::tensor(steps_));
  for (size_t g = 0; g < group_state1_.size(); ++g)
    for (size_t k = 0; k < group_state1_[g].size(); ++k) {
      archive.write("s1_" + std::to_string(g) + "_" + std::to_string(k), group_state1_[g][k]);
      if (!group_state2_[g].empty())
        archive.write("s2_" + std::to_string(g) + "_" + std::to_string(k), group_state2_[g][k]);
    }
}

void Optimizer::clear_state() {
  if (opt_) opt_->state().clear();
}

std::string archived_tensor_problem(const torch::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return "";
  if (!t.has_storage() || t.storage().data() == nullptr) return "its data are missing";
  const size_t needed = at::detail::computeStorageNbytes(
      t.sizes(), t.strides(), t.dtype().itemsize(), size_t(t.storage_offset()));
  if (t.storage().nbytes() < needed)
    return fmt::format("its data are cut short ({} of {} bytes)", t.storage().nbytes(), needed);
  return "";
}

void Optimizer::load(torch::serialize::InputArchive& archive) {
  // (A record emptied in the file: an error, which the checkpoint's reader takes as a
  // checkpoint that cannot be restored.)
  auto whole = [](const std::string& name, const torch::Tensor& t) {
    if (const std::string why = archived_tensor_problem(t); !why.empty())
      throw std::runtime_error("optimizer " + name + ": " + why);
  };
  if (noise_eta_ > 0) {
    torch::Tensor t, rng;
    archive.read("noise_steps", t);
    archive.read("noise_rng", rng);
    whole("noise_steps", t), whole("noise_rng", rng);
    noise_steps_ = t.item<int64_t>();
    noise_gen_.set_state(rng.cpu());
  }
  if (opt_) {
    opt_->load(archive);
    // torch's optimizers keep their state per parameter: each tensor of it checked as ours are.
    namespace o = torch::optim;
    for (const auto& [key, state] : opt_->state()) {
      std::vector<torch::Tensor> held;
      if (auto* s = dynamic_cast<o::SGDParamState*>(state.get()))
        held = {s->momentum_buffer()};
      else if (auto* s = dynamic_cast<o::AdamParamState*>(state.get()))
        held = {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()};
      else if (auto* s = dynamic_cast<o::AdamWParamState*>(state.get()))
        held = {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()};
      else if (auto* s = dynamic_cast<o::RMSpropParamState*>(state.get()))
        held = {s->square_avg(), s->momentum_buffer(), s->grad_avg()};
      for (const auto& t : held) whole("state", t);
    }
    return;
  }
  torch::Tensor steps;
  archive.read("fused_steps", steps);
  whole("fused_steps", steps);
  steps_ = steps.item<int64_t>();
  if (t_device_.defined()) t_device_.fill_(double(steps_));
  torch::NoGradGuard guard;
  auto read = [&](const std::string& name, torch::Tensor& into) {
    torch::Tensor t;
    archive.read(name, t);
    whole("state " + name, t);
    into.copy_(t);
  };
  for (size_t g = 0; g < group_state1_.size(); ++g)
    for (size_t k = 0; k < group_state1_[g].size(); ++k) {
      read("s1_" + std::to_string(g) + "_" + std::to_string(k), group_state1_[g][k]);
      if (!group_state2_[g].empty())
        read("s2_" + std::to_string(g) + "_" + std::to_string(k), group_state2_[g][k]);
    }
}

}  // namespace empiric
