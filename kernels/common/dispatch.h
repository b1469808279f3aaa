// Shared by the ops' dispatch layers: contract checks on tensor lists, SpanLists from tensors, and
// the current CUDA stream. Torch-side code; the launchers and CPU loops never see a Tensor.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/record_function.h>

#include <string>
#include <vector>

#include "common/multi_tensor.h"

// Names an op's call in torch's profiler, as torch names its operators, so that a profile
// (`empiric bench --suite training --profile`) shows where its host time goes.
#define EMPIRIC_PROFILED(name) RECORD_FUNCTION(name, std::vector<c10::IValue>())

namespace empiric::kernels {

// Checks that every list has params.size() entries, each float32, contiguous, on params[0]'s
// device, with params[k]'s number of elements. Throws std::invalid_argument naming the op, the
// list and the index.
void check_lists(const char* op, const std::vector<const std::vector<at::Tensor>*>& lists,
                 const std::vector<const char*>& names);

SpanLists spans_of(const std::vector<const std::vector<at::Tensor>*>& lists);

// torch's current stream on the device of `t` (a cudaStream_t), with that device made current.
void* current_stream(const at::Tensor& t);

}  // namespace empiric::kernels
