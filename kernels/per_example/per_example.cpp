#include "per_example/per_example.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "common/dispatch.h"

namespace empiric::kernels {

at::Tensor per_example_sq_norms(const at::Tensor& x, const at::Tensor& delta, bool bias) {
  auto check = [](const at::Tensor& t, const char* name) {
    if (t.dim() != 2 || t.scalar_type() != at::kFloat || !t.is_contiguous())
      throw std::invalid_argument(std::string("per_example_sq_norms: ") + name +
                                  " must be a contiguous 2-D float32 tensor");
  };
  check(x, "inputs");
  check(delta, "grad_outputs");
  if (x.size(0) != delta.size(0) || x.device() != delta.device())
    throw std::invalid_argument(
        "per_example_sq_norms: inputs and grad_outputs differ in batch size or device");
  at::Tensor out = at::empty({x.size(0)}, x.options());
  if (x.size(0) == 0) return out;
  // out_i = |delta_i|^2 * (|x_i|^2 + bias): the delta matrix is "a", the inputs "b".
  if (x.is_cuda())
    launch_row_norm_product(delta.data_ptr<float>(), delta.size(1), x.data_ptr<float>(), x.size(1),
                            x.size(0), bias ? 1.0f : 0.0f, out.data_ptr<float>(),
                            current_stream(x));
  else
    cpu_row_norm_product(delta.data_ptr<float>(), delta.size(1), x.data_ptr<float>(), x.size(1),
                         x.size(0), bias ? 1.0f : 0.0f, out.data_ptr<float>());
  return out;
}

at::Tensor reference_per_example_sq_norms(const at::Tensor& x, const at::Tensor& delta, bool bias) {
  at::Tensor per_example = at::einsum("bo,bi->boi", {delta, x});
  at::Tensor sq = per_example.pow(2).sum({1, 2});
  if (bias) sq = sq + delta.pow(2).sum(1);
  return sq;
}

}  // namespace empiric::kernels
