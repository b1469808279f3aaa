// Datasets as whole tensors on the training device: image sets read from disk (IDX, CIFAR-10
// binary) or synthetic tasks made from a seed, with the options every lab needs (subsets,
// validation split, class imbalance, label noise, random labels, standardization).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace empiric {

using json = nlohmann::json;

struct Dataset {
  torch::Tensor x_train, y_train;  // float32 inputs; int64 labels (classification) or float targets
  torch::Tensor x_val, y_val;      // empty when data.validation == 0
  torch::Tensor x_test, y_test;
  std::vector<int64_t> input_shape;  // per example, e.g. {1, 28, 28} or {2}
  int64_t outputs = 0;               // classes, or 1 for regression
  bool regression = false;
  torch::Tensor flipped;  // indices into the training split whose label was changed
  json info;              // sizes, where it came from, flips, standardization stats
};

// Builds the dataset a validated "data" section describes. All randomness comes from `seed`.
// `source` names the config in messages; `default_dir` is where fashion_mnist lives when data.path
// is empty. The last few datasets built are kept for the process (keyed by the section, the seed,
// the device and the data files' sizes and times), so the trials of a sweep that share a seed
// share one copy: a Dataset's tensors are never changed in place.
Dataset load_dataset(const json& data, uint64_t seed, const torch::Device& device,
                     const std::string& source,
                     const std::string& default_dir = "/usr/share/datasets/fashion-mnist");

}  // namespace empiric
