// Fused Adam/AdamW and SGD steps over lists of tensors, with an optional 0/1 mask applied in the
// same pass. Each element is read once and written once per list (Adam: 4-5 loads, 3 stores), so
// the step is bound by memory bandwidth: the kernels use 16-byte float4 accesses when every
// pointer is aligned, and one block per 16K-element chunk keeps all SMs loaded for 10M+ parameters.
#include <type_traits>

#include "common/multi_tensor.cuh"

namespace empiric::kernels {
namespace {

// Populations: each thread loads its member's hyperparameters when its element index enters a new
// member's block (one division per block crossed, none per element).
struct MemberCursor {
  int64_t block = 0, end = -1;
  __device__ bool enters(int64_t i) const { return i >= end; }
  __device__ const float* hyper(int64_t i, const float* all) {
    const int64_t p = i / block;
    end = (p + 1) * block;
    return all + 3 * p;
  }
};

__device__ __forceinline__ float adam_update(float& w, float g, float& m, float& v, float mask,
                                             const AdamStep& s) {
  if (s.decoupled) {
    w *= 1.0f - s.lr * s.weight_decay;
  } else {
    g += s.weight_decay * w;
  }
  // A pruned weight gets no gradient, so its moments stay zero. Selected, not multiplied: an Inf or
  // NaN gradient times 0 would be NaN.
  const bool keep = mask != 0.0f;
  g = keep ? g : 0.0f;
  m = s.beta1 * m + s.one_minus_beta1 * g;
  v = s.beta2 * v + s.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / s.bc2_sqrt + s.eps;
  w = keep ? w - s.step_size * m / denom : 0.0f;
  return w;
}

// Members (populations) take the float4 path only where a member's block is a multiple of 4
// elements (then no float4 straddles two members); elsewhere they step element by element.
template <bool Masked, bool Vec, bool Members>
__global__ void __launch_bounds__(kThreads) adam_kernel(ChunkMeta<5> meta, AdamStep s) {
  if (s.scalars) s.lr = s.scalars[0], s.step_size = s.scalars[1], s.bc2_sqrt = s.scalars[2];
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t n = meta.n[t];
  MemberCursor member;
  if (Members) member.block = n / s.members;
  const int64_t begin = int64_t(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  float* __restrict__ w = meta.ptr[0][t];
  const float* __restrict__ g = meta.ptr[1][t];
  float* __restrict__ m = meta.ptr[2][t];
  float* __restrict__ v = meta.ptr[3][t];
  const float* __restrict__ mask = Masked ? meta.ptr[4][t] : nullptr;
  int64_t i = begin + threadIdx.x;
  if (Vec && (!Members || member.block % 4 == 0)) {
    for (i = begin + threadIdx.x * 4; i + 3 < end; i += int64_t(blockDim.x) * 4) {
      if (Members && member.enters(i)) {
        const float* h = member.hyper(i, s.member_hyper);
        s.lr = h[0], s.step_size = h[1], s.weight_decay = h[2];
      }
      float4 w4 = *reinterpret_cast<float4*>(w + i), m4 = *reinterpret_cast<float4*>(m + i);
      float4 v4 = *reinterpret_cast<float4*>(v + i);
      const float4 g4 = *reinterpret_cast<const float4*>(g + i);
      const float4 k4 =
          Masked ? *reinterpret_cast<const float4*>(mask + i) : make_float4(1.f, 1.f, 1.f, 1.f);
      adam_update(w4.x, g4.x, m4.x, v4.x, k4.x, s);
      adam_update(w4.y, g4.y, m4.y, v4.y, k4.y, s);
      adam_update(w4.z, g4.z, m4.z, v4.z, k4.z, s);
      adam_update(w4.w, g4.w, m4.w, v4.w, k4.w, s);
      *reinterpret_cast<float4*>(w + i) = w4;
      *reinterpret_cast<float4*>(m + i) = m4;
      *reinterpret_cast<float4*>(v + i) = v4;
    }
    // The tail of a tensor whose length is not a multiple of 4: one thread per element.
    i = (end - begin) / 4 * 4 + begin + threadIdx.x;
  }
  for (; i < end; i += blockDim.x) {
    if (Members && member.enters(i)) {
      const float* h = member.hyper(i, s.member_hyper);
      s.lr = h[0], s.step_size = h[1], s.weight_decay = h[2];
    }
    float wi = w[i], mi = m[i], vi = v[i];
    adam_update(wi, g[i], mi, vi, Masked ? mask[i] : 1.0f, s);
    w[i] = wi;
    m[i] = mi;
    v[i] = vi;
  }
}

__device__ __forceinline__ void sgd_update(float& w, float g, float& buf, float mask,
                                           const SgdStep& s) {
  const bool keep = mask != 0.0f;  // selected, not multiplied (see adam_update)
  g = keep ? g + s.weight_decay * w : 0.0f;
  if (s.momentum != 0.0f) {
    buf = s.first_step ? g : s.momentum * buf + g;
    g = s.nesterov ? g + s.momentum * buf : buf;
  }
  w = keep ? w - s.lr * g : 0.0f;
}

template <bool Masked, bool Members, bool Vec>
__global__ void __launch_bounds__(kThreads) sgd_kernel(ChunkMeta<5> meta, SgdStep s) {
  if (s.scalars) s.lr = s.scalars[0];
  const int t = meta.block_tensor[blockIdx.x];
  const int64_t n = meta.n[t];
  const int64_t begin = int64_t(meta.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  MemberCursor member;
  if (Members) member.block = n / s.members;
  float* __restrict__ w = meta.ptr[0][t];
  const float* __restrict__ g = meta.ptr[1][t];
  float* __restrict__ buf = meta.ptr[2][t];
  const float* __restrict__ mask = Masked ? meta.ptr[4][t] : nullptr;
  int64_t i = begin + threadIdx.x;
  if (Vec && (!Members || member.block % 4 == 0)) {  // then no float4 straddles two members
    for (i = begin + threadIdx.x * 4; i + 3 < end; i += int64_t(blockDim.x) * 4) {
      if (Members && member.enters(i)) {
        const float* h = member.hyper(i, s.member_hyper);
        s.lr = h[0], s.momentum = h[1], s.weight_decay = h[2];
      }
      const bool momentum = s.momentum != 0.0f;
      float4 w4 = *reinterpret_cast<float4*>(w + i);
      const float4 g4 = *reinterpret_cast<const float4*>(g + i);
      float4 b4 = momentum ? *reinterpret_cast<float4*>(buf + i) : make_float4(0.f, 0.f, 0.f, 0.f);
      const float4 k4 =
          Masked ? *reinterpret_cast<const float4*>(mask + i) : make_float4(1.f, 1.f, 1.f, 1.f);
      sgd_update(w4.x, g4.x, b4.x, k4.x, s);
      sgd_update(w4.y, g4.y, b4.y, k4.y, s);
      sgd_update(w4.z, g4.z, b4.z, k4.z, s);
      sgd_update(w4.w, g4.w, b4.w, k4.w, s);
      *reinterpret_cast<float4*>(w + i) = w4;
      if (momentum) *reinterpret_cast<float4*>(buf + i) = b4;
    }
    i = (end - begin) / 4 * 4 + begin + threadIdx.x;  // the tail, one thread per element
  }
  for (; i < end; i += blockDim.x) {
    if (Members && member.enters(i)) {
      const float* h = member.hyper(i, s.member_hyper);
      s.lr = h[0], s.momentum = h[1], s.weight_decay = h[2];
    }
    float wi = w[i], bi = s.momentum != 0.0f ? buf[i] : 0.0f;
    sgd_update(wi, g[i], bi, Masked ? mask[i] : 1.0f, s);
    w[i] = wi;
    if (s.momentum != 0.0f) buf[i] = bi;
  }
}

// Calls f with three std::bool_constant arguments for three runtime flags: the one place where
// flags pick a kernel template's instantiation.
template <class F>
void with_flags(bool a, bool b, bool c, F f) {
  auto last = [&](auto x, auto y) { c ? f(x, y, std::true_type{}) : f(x, y, std::false_type{}); };
  auto second = [&](auto x) { b ? last(x, std::true_type{}) : last(x, std::false_type{}); };
  a ? second(std::true_type{}) : second(std::false_type{});
}

// Lists with fewer than 5 entries are padded with the first list's pointers (never read).
SpanLists padded(const SpanLists& lists) {
  SpanLists p = lists;
  for (int d = lists.depth; d < 5; ++d) p.ptr[d] = lists.ptr[0];
  p.depth = 5;
  return p;
}

}  // namespace

void launch_fused_adam(const SpanLists& lists, const AdamStep& s, bool masked, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  for_each_chunk_set<5>(padded(lists), [&](const ChunkMeta<5>& meta, int blocks) {
    with_flags(masked, lists.aligned16(), s.members > 0, [&](auto m, auto v, auto p) {
      adam_kernel<decltype(m)::value, decltype(v)::value, decltype(p)::value>
          <<<blocks, kThreads, 0, st>>>(meta, s);
    });
    check_launch("fused_adam");
  });
}

void launch_fused_sgd(const SpanLists& lists, const SgdStep& s, bool masked, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  for_each_chunk_set<5>(padded(lists), [&](const ChunkMeta<5>& meta, int blocks) {
    with_flags(masked, s.members > 0, lists.aligned16(), [&](auto m, auto p, auto v) {
      sgd_kernel<decltype(m)::value, decltype(p)::value, decltype(v)::value>
          <<<blocks, kThreads, 0, st>>>(meta, s);
    });
    check_launch("fused_sgd");
  });
}

}  // namespace empiric::kernels
