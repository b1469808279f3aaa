#include "axpby/axpby.h"

#include "common/dispatch.h"

namespace empiric::kernels {

void multi_axpby_(const std::vector<at::Tensor>& out, const std::vector<at::Tensor>& w0,
                  const std::vector<at::Tensor>& d1, const std::vector<at::Tensor>& d2, double a,
                  double b) {
  EMPIRIC_PROFILED("empiric::multi_axpby_");
  if (out.empty()) return;
  std::vector<const std::vector<at::Tensor>*> lists = {&out, &w0, &d1, &d2};
  check_lists("multi_axpby_", lists, {"out", "w0", "d1", "d2"});
  SpanLists spans = spans_of(lists);
  if (out[0].is_cuda())
    launch_axpby(spans, float(a), float(b), current_stream(out[0]));
  else
    cpu_axpby(spans, float(a), float(b));
}

}  // namespace empiric::kernels
