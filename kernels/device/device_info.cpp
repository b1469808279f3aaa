#include "device/device_info.h"

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

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
int64_t gpu_free_memory_bytes(int) { return -1; }
#endif

namespace {

// The few NVML entry points used, declared here (nvml.h is not part of every toolkit install).
struct NvmlUtilization {
  unsigned int gpu, memory;
};
using NvmlDevice = void*;
using NvmlInit = int (*)();
using NvmlHandle = int (*)(const char*, NvmlDevice*);
using NvmlRates = int (*)(NvmlDevice, NvmlUtilization*);
using NvmlShutdown = int (*)();

}  // namespace

struct UtilizationSampler::Impl {
  void* lib = nullptr;
  NvmlDevice device = nullptr;
  NvmlRates rates = nullptr;
  NvmlShutdown shutdown = nullptr;
  std::atomic<bool> stop{false};
  std::thread thread;
  double sum = 0;
  long count = 0;
};

UtilizationSampler::UtilizationSampler() : impl_(std::make_unique<Impl>()) {
  const GpuInfo gpu = gpu_info();
  if (gpu.count == 0 || gpu.pci_bus_id.empty()) return;
  impl_->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!impl_->lib) return;
  auto init = reinterpret_cast<NvmlInit>(dlsym(impl_->lib, "nvmlInit_v2"));
  auto handle = reinterpret_cast<NvmlHandle>(dlsym(impl_->lib, "nvmlDeviceGetHandleByPciBusId_v2"));
  impl_->rates = reinterpret_cast<NvmlRates>(dlsym(impl_->lib, "nvmlDeviceGetUtilizationRates"));
  impl_->shutdown = reinterpret_cast<NvmlShutdown>(dlsym(impl_->lib, "nvmlShutdown"));
  if (!init || !handle || !impl_->rates || !impl_->shutdown || init() != 0) {
    impl_->rates = nullptr;  // (the destructor shuts NVML down only when rates is set)
    return;
  }
  if (handle(gpu.pci_bus_id.c_str(), &impl_->device) != 0) {
    impl_->shutdown();
    impl_->rates = nullptr;
    return;
  }
  Impl* s = impl_.get();
  s->thread = std::thread([s] {
    while (!s->stop.load()) {
      NvmlUtilization u{};
      if (s->rates(s->device, &u) == 0) s->sum += u.gpu, s->count++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

double UtilizationSampler::mean() {
  if (impl_->thread.joinable()) {
    impl_->stop = true;
    impl_->thread.join();
  }
  return impl_->count > 0 ? impl_->sum / double(impl_->count) : NAN;
}

UtilizationSampler::~UtilizationSampler() {
  mean();
  if (impl_->rates && impl_->shutdown) impl_->shutdown();
  if (impl_->lib) dlclose(impl_->lib);
}

}  // namespace empiric
