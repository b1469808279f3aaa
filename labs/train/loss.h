// The training objective (train.loss, train.class_weights): the loss a trial minimizes, the one
// its evaluations report (train_loss, test_loss, val_loss) and the one its measures (Hessian,
// sharpness, gradient noise, gradient flow) take. Class weights enter the training step only:
// evaluations and measures report the unweighted loss, so that a weighted run's losses stay
// comparable with an unweighted one's.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "data/datasets.h"

namespace empiric {

class Loss {
 public:
  enum class Kind {
    CrossEntropy,           // softmax cross-entropy on the logits (classification's default)
    Mse,                    // squared error on the outputs (regression tasks)
    MseSoftmax,             // squared error between softmax probabilities and one-hot labels
    MseLogits,              // squared error between the raw outputs and one-hot labels
    CrossEntropyOnSoftmax,  // cross-entropy fed softmax outputs as if they were logits
  };

  // What a task trains with when train.loss is "auto".
  static Loss standard(bool regression) {
    return Loss(regression ? Kind::Mse : Kind::CrossEntropy);
  }

  // From a validated trial config and its data (the class counts of the training split give
  // the balanced weights, n / (classes x n_c), on the training device).
  static Loss of(const json& cfg, const Dataset& data) {
    const json& t = cfg["train"];
    const std::string name = t.value("loss", std::string("auto"));
    Loss loss = standard(data.regression);
    if (name == "cross_entropy") loss.kind_ = Kind::CrossEntropy;
    if (name == "mse_softmax") loss.kind_ = Kind::MseSoftmax;
    if (name == "mse_logits") loss.kind_ = Kind::MseLogits;
    if (name == "cross_entropy_on_softmax") loss.kind_ = Kind::CrossEntropyOnSoftmax;
    if (t.value("class_weights", std::string("none")) == "balanced" && !data.regression) {
      auto counts = torch::bincount(data.y_train.cpu(), {}, data.outputs).to(torch::kFloat32);
      // A class absent from the training split gets weight 0 (it has no loss terms anyway).
      loss.weights_ =
          torch::where(counts > 0,
                       double(data.y_train.size(0)) / (double(data.outputs) * counts.clamp_min(1)),
                       torch::zeros_like(counts))
              .to(data.x_train.device());
    }
    return loss;
  }

  bool regression() const { return kind_ == Kind::Mse; }
  bool weighted() const { return weights_.defined(); }
  Kind kind() const { return kind_; }

  // The unweighted loss of outputs `out` for targets `y`, averaged (or summed) over examples.
  torch::Tensor operator()(const torch::Tensor& out, const torch::Tensor& y,
                           at::Reduction::Reduction reduction = at::Reduction::Mean) const {
    return compute(out, y, reduction, torch::Tensor());
  }
  // The training step's loss: weighted by class when train.class_weights asks, a weighted mean
  // (divided by the batch's summed weights, as torch's weighted cross-entropy is).
  torch::Tensor training(const torch::Tensor& out, const torch::Tensor& y) const {
    return compute(out, y, at::Reduction::Mean, weights_);
  }

  // The loss of predicting the uniform distribution (all-equal outputs; the best constant
  // prediction on balanced classes): log K for cross-entropy either way, 1 - 1/K for the squared
  // errors against one-hot labels. NaN for regression.
  double chance(int64_t classes) const {
    const double k = double(classes);
    switch (kind_) {
      case Kind::CrossEntropy:
      case Kind::CrossEntropyOnSoftmax:
        return std::log(k);
      case Kind::MseSoftmax:
      case Kind::MseLogits:
        return 1.0 - 1.0 / k;
      case Kind::Mse:
        break;
    }
    return NAN;
  }

 private:
  explicit Loss(Kind kind) : kind_(kind) {}

  torch::Tensor compute(const torch::Tensor& out, const torch::Tensor& y,
                        at::Reduction::Reduction reduction, const torch::Tensor& weights) const {
    switch (kind_) {
      case Kind::Mse:
        return torch::mse_loss(out, y, reduction);
      case Kind::CrossEntropy:
        return torch::cross_entropy_loss(out, y, weights, reduction);
      case Kind::CrossEntropyOnSoftmax:
        return torch::cross_entropy_loss(torch::softmax(out, 1), y, weights, reduction);
      case Kind::MseSoftmax:
      case Kind::MseLogits:
        break;
    }
    // Squared error summed over the classes (the Brier score for probabilities), per example.
    const auto pred = kind_ == Kind::MseSoftmax ? torch::softmax(out, 1) : out;
    auto per = (pred - torch::one_hot(y, out.size(1)).to(pred.dtype())).pow(2).sum(1);
    if (weights.defined()) {
      const auto w = weights.index_select(0, y);
      per = per * w;
      if (reduction == at::Reduction::Mean) return per.sum() / w.sum();
    }
    if (reduction == at::Reduction::Sum) return per.sum();
    if (reduction == at::Reduction::Mean) return per.mean();
    return per;
  }

  Kind kind_;
  torch::Tensor weights_;  // per class; undefined: unweighted
};

}  // namespace empiric
