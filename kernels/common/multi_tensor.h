// Lists of float32 tensors as raw spans, for the kernels' CPU fallbacks and CUDA launchers, which
// stay free of torch headers. The dispatch layer (C++, with ATen) checks the contract and fills
// these; the launchers only see pointers and lengths.
#pragma once

#include <cstdint>
#include <vector>

namespace empiric::kernels {

// Up to 5 aligned lists of the same length: slot k of list d is ptr[d][k], with n[k] elements.
struct SpanLists {
  int depth = 0;
  std::vector<float*> ptr[5];
  std::vector<int64_t> n;
  bool aligned16() const;  // every pointer 16-byte aligned (the float4 path)
};

// Scalars of one optimizer step, in the precision the kernels use.
struct AdamStep {
  float lr, beta1, beta2, eps, weight_decay;
  // 1 - beta, computed in double: 1 - 0.999f in float is off by 5e-5 relative, which the bias
  // correction (computed from the exact beta) would turn into a 2e-5 error in every step.
  float one_minus_beta1, one_minus_beta2;
  float step_size;  // lr / (1 - beta1^t)
  float bc2_sqrt;   // sqrt(1 - beta2^t)
  bool decoupled;   // AdamW: decay the weights, not the gradient
  // CUDA graphs: when set, {lr, step_size, bc2_sqrt} are read from this device memory at run time
  // instead of the fields above, so a captured step sees the LR and step count of each replay.
  const float* scalars = nullptr;
  // Populations (see fused_optim.h): `members` > 0 cuts every tensor into that many equal blocks,
  // and block p reads {lr, step_size, weight_decay} from member_hyper[3p ..] (memory of the
  // lists' device) instead of the fields above and the scalars.
  const float* member_hyper = nullptr;
  int members = 0;
};

struct SgdStep {
  float lr, momentum, weight_decay;
  bool nesterov, first_step;  // first step: the momentum buffer starts as the gradient
  const float* scalars = nullptr;  // CUDA graphs: {lr} read from device memory (as AdamStep's)
  // Populations, as AdamStep's: block p reads {lr, momentum, weight_decay} from member_hyper[3p ..].
  const float* member_hyper = nullptr;
  int members = 0;
};

// CUDA launchers (kernels/*/ *.cu), on the given cudaStream_t. Lists: Adam {w, g, m, v[, mask]},
// SGD {w, g, buf[, mask]} (buf unused when momentum == 0), axpby {out, w0, d1, d2}.
void launch_fused_adam(const SpanLists& lists, const AdamStep& s, bool masked, void* stream);
void launch_fused_sgd(const SpanLists& lists, const SgdStep& s, bool masked, void* stream);
void launch_axpby(const SpanLists& lists, float a, float b, void* stream);

// Radix-select pass: counts, into hist[256], the elements of list 0 (weights; list 1 = masks when
// masked, elements with mask 0 skipped) whose |w| bit pattern matches `prefix` on the bits of
// `prefix_mask`, by the byte at `shift`. hist is 256 uint64 (device memory for the launcher).
void launch_magnitude_histogram(const SpanLists& lists, bool masked, uint32_t prefix,
                                uint32_t prefix_mask, int shift, unsigned long long* hist,
                                void* stream);
void cpu_magnitude_histogram(const SpanLists& lists, bool masked, uint32_t prefix,
                             uint32_t prefix_mask, int shift, unsigned long long* hist);

// Squared norms of the rows of two row-major matrices, multiplied: out[i] = |a_i|^2 * (|b_i|^2 +
// add).
void launch_row_norm_product(const float* a, int64_t a_cols, const float* b, int64_t b_cols,
                             int64_t rows, float add, float* out, void* stream);
void cpu_row_norm_product(const float* a, int64_t a_cols, const float* b, int64_t b_cols,
                          int64_t rows, float add, float* out);

// The same on the CPU, parallel over spans of the flattened lists.
void cpu_fused_adam(const SpanLists& lists, const AdamStep& s, bool masked);
void cpu_fused_sgd(const SpanLists& lists, const SgdStep& s, bool masked);
void cpu_axpby(const SpanLists& lists, float a, float b);

}  // namespace empiric::kernels
