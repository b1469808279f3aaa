// What GPU this process sees, asked of the CUDA runtime directly (so no torch header is needed).
#pragma once

#include <string>

namespace empiric {

struct GpuInfo {
  int count = 0;     // 0 without CUDA or without a GPU
  std::string name;  // of device 0
  int sm_major = 0, sm_minor = 0;
  double memory_gib = 0;
  std::string runtime;  // CUDA runtime version, e.g. "13.0"
};

GpuInfo gpu_info();
bool built_with_cuda();

}  // namespace empiric
