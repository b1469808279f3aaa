#include "device/device_info.h"

namespace empiric {

bool built_with_cuda() {
#ifdef EMPIRIC_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifndef EMPIRIC_WITH_CUDA
GpuInfo gpu_info() { return {}; }
#endif

}  // namespace empiric
