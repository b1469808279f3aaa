#include <cuda_runtime.h>

#include "device/device_info.h"

namespace empiric {

GpuInfo gpu_info() {
  GpuInfo info;
  if (cudaGetDeviceCount(&info.count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a CPU machine
    info.count = 0;
    return info;
  }
  int version = 0;
  if (cudaRuntimeGetVersion(&version) == cudaSuccess)
    info.runtime = std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
  if (info.count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      info.name = prop.name;
      info.sm_major = prop.major;
      info.sm_minor = prop.minor;
      info.memory_gib = double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
    }
    char bus[64] = {0};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, 0) == cudaSuccess)
      info.pci_bus_id = bus;
    else
      cudaGetLastError();
  }
  return info;
}

int64_t gpu_free_memory_bytes(int device) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  size_t free = 0, total = 0;
  const bool ok = cudaMemGetInfo(&free, &total) == cudaSuccess;
  if (!ok) cudaGetLastError();
  cudaSetDevice(previous);
  return ok ? int64_t(free) : -1;
}

}  // namespace empiric
