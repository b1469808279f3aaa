#include "common/dispatch.h"

#include <sstream>
#include <stdexcept>

#ifdef EMPIRIC_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace empiric::kernels {

void check_lists(const char* op, const std::vector<const std::vector<at::Tensor>*>& lists,
                 const std::vector<const char*>& names) {
  const auto& params = *lists[0];
  auto fail = [&](size_t l, size_t k, const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + names[l] + "[" + std::to_string(k) + "] " +
                                why);
  };
  for (size_t l = 0; l < lists.size(); ++l) {
    if (lists[l]->size() != params.size())
      fail(l, 0,
           "list has " + std::to_string(lists[l]->size()) + " tensors, expected " +
               std::to_string(params.size()));
    for (size_t k = 0; k < params.size(); ++k) {
      const at::Tensor& t = (*lists[l])[k];
      if (!t.defined()) fail(l, k, "is undefined");
      if (t.scalar_type() != at::kFloat) fail(l, k, "is not float32");
      if (!t.is_contiguous()) fail(l, k, "is not contiguous");
      if (t.device() != params[0].device())
        fail(l, k, "is on " + t.device().str() + ", not " + params[0].device().str());
      if (t.sizes() != params[k].sizes()) {
        std::ostringstream why;
        why << "has shape " << t.sizes() << ", its " << names[0] << "[" << k << "] "
            << params[k].sizes();
        fail(l, k, why.str());
      }
    }
  }
}

SpanLists spans_of(const std::vector<const std::vector<at::Tensor>*>& lists) {
  SpanLists s;
  s.depth = int(lists.size());
  for (size_t l = 0; l < lists.size(); ++l)
    for (const auto& t : *lists[l]) s.ptr[l].push_back(t.data_ptr<float>());
  for (const auto& t : *lists[0]) s.n.push_back(t.numel());
  return s;
}

void* current_stream(const at::Tensor& t) {
#ifdef EMPIRIC_WITH_CUDA
  c10::cuda::set_device(t.get_device());
  return c10::cuda::getCurrentCUDAStream(t.get_device()).stream();
#else
  (void)t;
  throw std::runtime_error("empiric was built without CUDA kernels (EMPIRIC_CUDA=OFF)");
#endif
}

}  // namespace empiric::kernels
