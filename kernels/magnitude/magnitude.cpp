#include "magnitude/magnitude.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/dispatch.h"

namespace empiric::kernels {

float kth_smallest_magnitude(const std::vector<at::Tensor>& weights, int64_t k,
                             const std::vector<at::Tensor>& masks) {
  if (weights.empty()) throw std::invalid_argument("kth_smallest_magnitude: no weights");
  const bool masked = !masks.empty();
  std::vector<const std::vector<at::Tensor>*> lists = {&weights};
  std::vector<const char*> names = {"weights"};
  if (masked) lists.push_back(&masks), names.push_back("masks");
  check_lists("kth_smallest_magnitude", lists, names);
  int64_t count = 0;
  for (size_t i = 0; i < weights.size(); ++i)
    count += masked ? masks[i].count_nonzero().item<int64_t>() : weights[i].numel();
  if (k < 1 || k > count)
    throw std::invalid_argument("kth_smallest_magnitude: k = " + std::to_string(k) +
                                " outside 1.." + std::to_string(count));

  const SpanLists spans = spans_of(lists);
  const bool cuda = weights[0].is_cuda();
  at::Tensor device_hist =
      cuda ? at::zeros({256}, weights[0].options().dtype(at::kLong)) : at::Tensor();
  uint32_t prefix = 0, prefix_mask = 0;
  unsigned long long remaining = static_cast<unsigned long long>(k);
  for (int shift = 24; shift >= 0; shift -= 8) {
    unsigned long long hist[256] = {0};
    if (cuda) {
      device_hist.zero_();
      launch_magnitude_histogram(
          spans, masked, prefix, prefix_mask, shift,
          reinterpret_cast<unsigned long long*>(device_hist.data_ptr<int64_t>()),
          current_stream(weights[0]));
      at::Tensor host = device_hist.cpu();  // waits for the pass
      std::memcpy(hist, host.data_ptr<int64_t>(), sizeof hist);
    } else {
      cpu_magnitude_histogram(spans, masked, prefix, prefix_mask, shift, hist);
    }
    int bin = 0;
    while (hist[bin] < remaining)
      remaining -= hist[bin++];  // k-th lies in the first bin reaching it
    prefix |= uint32_t(bin) << shift;
    prefix_mask |= 0xFFu << shift;
  }
  float value;
  std::memcpy(&value, &prefix, sizeof value);
  return value;
}

int64_t prune_by_magnitude_(const std::vector<at::Tensor>& weights,
                            const std::vector<at::Tensor>& masks, double fraction, bool global) {
  if (masks.size() != weights.size())
    throw std::invalid_argument("prune_by_magnitude_: one mask per weight needed");
  // Every list is checked before any is pruned: layer-wise pruning would otherwise have changed
  // the layers before the one it throws at.
  if (!weights.empty())
    check_lists("prune_by_magnitude_", {&weights, &masks}, {"weights", "masks"});
  if (!(fraction >= 0.0 && fraction <= 1.0))
    throw std::invalid_argument("prune_by_magnitude_: fraction outside [0, 1]");
  c10::AutoGradMode no_grad(false);  // masks and weights change in place, outside autograd
  // A NaN magnitude orders above every number, and a threshold of NaN would prune everything
  // (no |w| > NaN): such weights have no magnitude ranking to prune by.
  for (size_t i = 0; i < weights.size(); ++i)
    if (!weights[i].isfinite().all().item<bool>())
      throw std::invalid_argument("prune_by_magnitude_: weights[" + std::to_string(i) +
                                  "] holds NaN or Inf; there is no magnitude order to prune by");
  auto prune = [&](const std::vector<at::Tensor>& w, const std::vector<at::Tensor>& m) {
    int64_t remaining = 0;
    for (const auto& t : m) remaining += t.count_nonzero().item<int64_t>();
    const int64_t k = std::llround(fraction * double(remaining));
    if (k == 0) return;
    const float t = kth_smallest_magnitude(w, k, m);
    for (size_t i = 0; i < w.size(); ++i) {
      m[i].mul_(w[i].abs().gt(t).to(m[i].scalar_type()));
      w[i].mul_(m[i]);
    }
  };
  if (global)
    prune(weights, masks);
  else
    for (size_t i = 0; i < weights.size(); ++i) prune({weights[i]}, {masks[i]});
  int64_t left = 0;
  for (const auto& m : masks) left += m.count_nonzero().item<int64_t>();
  return left;
}

float reference_kth_smallest_magnitude(const std::vector<at::Tensor>& weights, int64_t k,
                                       const std::vector<at::Tensor>& masks) {
  std::vector<at::Tensor> mags;
  for (size_t i = 0; i < weights.size(); ++i)
    mags.push_back(masks.empty() ? weights[i].abs().flatten()
                                 : weights[i].abs().masked_select(masks[i] != 0));
  return std::get<0>(at::kthvalue(at::cat(mags), k)).item<float>();
}

}  // namespace empiric::kernels
