// Models built by name from a validated "model" section: mlp, lenet_300_100 (an MLP with hidden
// widths 300 and 100), convnet (Conv-2/Conv-4 style) and linear. Plain torch::nn modules, so a
// PyTorch user recognizes everything.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace empiric {

using json = nlohmann::json;

// Dropout as torch's (in training, each element zeroed with probability p and the rest scaled by
// 1/(1-p); the identity in eval mode), drawing its masks from the trial's own CPU generator once
// use_dropout_generator has given it one: trials trained at once in one process (--jobs) then
// draw what each would alone, and a checkpoint carries the generator. Without one (on a GPU,
// where trials run one at a time) it is torch's dropout on the default generator.
struct DropoutImpl : torch::nn::Module {
  explicit DropoutImpl(double p) : p(p) {}
  torch::Tensor forward(const torch::Tensor& x);
  double p;
  at::Generator generator;  // undefined: torch's default
};
TORCH_MODULE(Dropout);

// Every model maps a batch of inputs (N x input_shape) to N x outputs logits (or predictions).
struct NetImpl : torch::nn::Module {
  explicit NetImpl(torch::nn::Sequential body) : body(register_module("body", body)) {}
  torch::Tensor forward(torch::Tensor x) { return body->forward(x); }
  torch::nn::Sequential body;
};
TORCH_MODULE(Net);

// The model names the registry knows.
std::vector<std::string> model_names();

// A model the data cannot feed (a convnet on 1-D inputs) is a ConfigError naming `source`.
Net make_model(const json& model, const std::vector<int64_t>& input_shape, int64_t outputs,
               const std::string& source = "config");

int64_t count_parameters(const torch::nn::Module& m);

// Gives every dropout module of `model` the generator `gen` (a handle: they share its state).
void use_dropout_generator(torch::nn::Module& model, const at::Generator& gen);

// Floating-point operations per example for one training step, counted layer by layer: a
// multiply-add of a Linear or Conv2d is 2 FLOPs and a bias add 1 per output element; the backward
// pass computes the weight gradient (as many FLOPs as the forward product, plus one per bias
// gradient element) and the input gradient (as many again), except for the first layer, whose
// input needs no gradient. Elementwise work (activations, pooling, batch norm, dropout, the loss)
// is not counted: it is a small fraction for these models and depends on the kernels.
struct FlopCount {
  int64_t forward = 0, backward = 0;
  int64_t training() const { return forward + backward; }
};
FlopCount count_flops(Net& model, const std::vector<int64_t>& input_shape);

}  // namespace empiric
