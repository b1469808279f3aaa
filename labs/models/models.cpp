#include "models/models.h"

#include <functional>
#include <map>

#include "core/errors.h"

namespace empiric {
namespace {

namespace nn = torch::nn;

void add_activation(nn::Sequential& seq, const std::string& act) {
  if (act == "relu")
    seq->push_back(nn::ReLU());
  else if (act == "leaky_relu")
    seq->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01)));
  else if (act == "prelu")
    seq->push_back(nn::PReLU());
  else if (act == "tanh")
    seq->push_back(nn::Tanh());
  else if (act == "sigmoid")
    seq->push_back(nn::Sigmoid());
  else if (act == "gelu")
    seq->push_back(nn::GELU());
  else if (act == "swish")
    seq->push_back(nn::SiLU());
  else
    throw UserError("model.activation: unknown activation " + act);
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t p = 1;
  for (auto s : shape) p *= s;
  return p;
}

// Hidden blocks Linear -> [BatchNorm] -> activation -> [Dropout], then the output layer.
void add_dense_stack(nn::Sequential& seq, int64_t in, const std::vector<int64_t>& widths,
                     int64_t outputs, const json& m) {
  const bool bias = m.value("bias", true), bn = m.value("batch_norm", false);
  const double dropout = m.value("dropout", 0.0);
  for (int64_t w : widths) {
    seq->push_back(nn::Linear(nn::LinearOptions(in, w).bias(bias)));
    if (bn) seq->push_back(nn::BatchNorm1d(w));
    add_activation(seq, m.value("activation", "relu"));
    if (dropout > 0) seq->push_back(Dropout(dropout));
    in = w;
  }
  seq->push_back(nn::Linear(nn::LinearOptions(in, outputs).bias(bias)));
}

nn::Sequential mlp(const json& m, const std::vector<int64_t>& shape, int64_t outputs,
                   std::vector<int64_t> widths) {
  nn::Sequential seq;
  seq->push_back(nn::Flatten());
  add_dense_stack(seq, product(shape), widths, outputs, m);
  return seq;
}

nn::Sequential convnet(const json& m, const std::vector<int64_t>& shape, int64_t outputs,
                       const std::string& source) {
  if (shape.size() != 3)
    throw ConfigError(source, "/model/name", "\"convnet\"",
                      "convnet needs image inputs (C x H x W); this dataset's are 1-D");
  const auto channels = m["channels"].get<std::vector<int64_t>>();
  const bool bias = m.value("bias", true), bn = m.value("batch_norm", false);
  nn::Sequential seq;
  int64_t c = shape[0], h = shape[1], w = shape[2];
  for (size_t i = 0; i < channels.size(); ++i) {
    seq->push_back(nn::Conv2d(nn::Conv2dOptions(c, channels[i], 3).padding(1).bias(bias)));
    if (bn) seq->push_back(nn::BatchNorm2d(channels[i]));
    add_activation(seq, m.value("activation", "relu"));
    c = channels[i];
    if (i % 2 == 1 && h >= 2 && w >= 2) {
      seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      h /= 2;
      w /= 2;
    }
  }
  seq->push_back(nn::Flatten());
  add_dense_stack(seq, c * h * w, m["dense"].get<std::vector<int64_t>>(), outputs, m);
  return seq;
}

void initialize(nn::Module& model, const json& m) {
  const std::string init = m.value("init", "default");
  const double scale = m.value("init_scale", 1.0);
  torch::NoGradGuard guard;
  for (auto& item : model.named_parameters()) {
    auto& p = item.value();
    const bool weight = p.dim() >= 2;
    if (!weight) {
      // Under zeros a layer's bias too; batch norm's scale and PReLU's slope (one-dimensional
      // "weight"s) keep their defaults: a zero scale passes no gradient back through its layer.
      const std::string& name = item.key();
      if (init == "zeros" && name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
        p.zero_();
      continue;
    }
    if (init == "xavier")
      nn::init::xavier_uniform_(p);
    else if (init == "kaiming")
      nn::init::kaiming_normal_(p, 0.0, torch::kFanIn, torch::kReLU);
    else if (init == "zeros")
      p.zero_();
    else if (init == "normal")
      nn::init::normal_(p, 0.0, scale);
    if (init != "normal" && scale != 1.0) p.mul_(scale);
  }
}

}  // namespace

torch::Tensor DropoutImpl::forward(const torch::Tensor& x) {
  if (!is_training() || p == 0) return x;
  if (!generator.defined() || !x.is_cpu()) return torch::dropout(x, p, /*train=*/true);
  // torch's CPU dropout, with the mask drawn from this trial's generator.
  auto mask = torch::empty_like(x).bernoulli_(1 - p, generator).div_(1 - p);
  return x * mask;
}

void use_dropout_generator(nn::Module& model, const at::Generator& gen) {
  for (auto& m : model.modules(/*include_self=*/false))
    if (auto* d = m->as<Dropout>()) d->generator = gen;
}

std::vector<std::string> model_names() { return {"mlp", "lenet_300_100", "convnet", "linear"}; }

Net make_model(const json& m, const std::vector<int64_t>& shape, int64_t outputs,
               const std::string& source) {
  using Factory = std::function<nn::Sequential()>;
  const std::map<std::string, Factory> registry = {
      {"mlp", [&] { return mlp(m, shape, outputs, m["widths"].get<std::vector<int64_t>>()); }},
      {"lenet_300_100",
       [&] {
         return mlp(m, shape, outputs, {300, 100});
       }},
      {"convnet", [&] { return convnet(m, shape, outputs, source); }},
      {"linear", [&] { return mlp(m, shape, outputs, {}); }},
  };
  auto it = registry.find(m["name"].get<std::string>());
  if (it == registry.end()) throw UserError("model.name: unknown model " + m["name"].dump());
  Net net(it->second());
  initialize(*net, m);
  return net;
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

FlopCount count_flops(Net& model, const std::vector<int64_t>& input_shape) {
  torch::NoGradGuard guard;
  const bool was_training = model->is_training();
  model->eval();
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  auto params = model->parameters();
  auto x = torch::zeros(shape, params.empty() ? torch::TensorOptions()
                                              : torch::TensorOptions().device(params[0].device()));
  FlopCount f;
  bool first = true;
  for (auto& m : *model->body) {
    auto y = m.forward(x);
    int64_t products = 0, bias_adds = 0;  // multiply-adds, bias additions
    if (auto* lin = m.ptr()->as<nn::LinearImpl>()) {
      const int64_t in = lin->weight.size(1), out = lin->weight.size(0);
      const int64_t rows = x.numel() / in;
      products = rows * in * out;
      bias_adds = lin->bias.defined() ? rows * out : 0;
    } else if (auto* conv = m.ptr()->as<nn::Conv2dImpl>()) {
      const auto& w = conv->weight;  // out x in/groups x kh x kw
      const int64_t per_output = w.size(1) * w.size(2) * w.size(3);
      products = y.numel() * per_output;
      bias_adds = conv->bias.defined() ? y.numel() : 0;
    }
    if (products > 0) {
      f.forward += 2 * products + bias_adds;
      f.backward += 2 * products + bias_adds + (first ? 0 : 2 * products);
      first = false;
    }
    x = y;
  }
  model->train(was_training);
  return f;
}

}  // namespace empiric
