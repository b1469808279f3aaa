// What GPU this process sees, asked of the CUDA runtime directly (so no torch header is needed).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace empiric {

struct GpuInfo {
  int count = 0;     // 0 without CUDA or without a GPU
  std::string name;  // of device 0
  int sm_major = 0, sm_minor = 0;
  double memory_gib = 0;
  std::string runtime;  // CUDA runtime version, e.g. "13.0"
  std::string pci_bus_id;  // of device 0, e.g. "0000:3B:00.0": how NVML finds the same card
};

GpuInfo gpu_info();
bool built_with_cuda();
// Free memory on GPU `device` as the driver counts it (torch's cached blocks count as used), or
// -1 without CUDA or without that device.
int64_t gpu_free_memory_bytes(int device);

// GPU utilization (the driver's "percent of time a kernel was running") of CUDA device 0, sampled
// every 50 ms on a thread between construction and mean(), through NVML loaded at run time
// (libnvidia-ml.so.1, part of the driver). NVML numbers the cards its own way, blind to
// CUDA_VISIBLE_DEVICES, so the card is found by its PCI bus id. mean() is NaN where there is no
// NVML or no GPU.
class UtilizationSampler {
 public:
  UtilizationSampler();
  ~UtilizationSampler();
  UtilizationSampler(const UtilizationSampler&) = delete;
  UtilizationSampler& operator=(const UtilizationSampler&) = delete;
  double mean();  // stops sampling; percent, 0-100

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace empiric
