// CUDA graphs through torch's at::cuda::CUDAGraph (its private memory pool and its handling of
// the CUDA generator's offsets, so dropout draws fresh numbers in every replay); stubs otherwise.
#include "graph/graph.h"

#ifdef EMPIRIC_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <optional>
#endif

#include <exception>
#include <string>

namespace empiric::kernels {

namespace {

// The first line of an error (torch's carry a C++ stack trace after it).
bool fail(const std::string& message, std::string* why) {
  if (why) *why = message.substr(0, message.find('\n'));
  return false;
}

}  // namespace

#ifdef EMPIRIC_WITH_CUDA

struct StreamGuard::Impl {
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

// The device is synchronized on the way in and out, so work queued on the other stream (the data's
// upload, the model's init) is done before the side stream starts, and its results are visible
// to whatever the caller queues after.
StreamGuard::StreamGuard(int device) : impl_(std::make_unique<Impl>()) {
  if (device < 0) return;
  c10::cuda::device_synchronize();
  impl_->guard.emplace(c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device)));
}
StreamGuard::~StreamGuard() {
  if (impl_->guard) c10::cuda::device_synchronize();
}

struct Graph::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;

bool Graph::capture(const std::function<void()>& work, std::string* why) {
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  try {
    // Thread-local: the capture restricts only the calls this thread makes.
    graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
  } catch (const std::exception& e) {
    return fail(e.what(), why);
  }
  try {
    work();
  } catch (const std::exception& e) {
    // capture_end hands the allocator back its ordinary pool and ends the (invalidated) capture,
    // so the stream takes eager work again; it then throws for the broken graph.
    try {
      graph->capture_end();
    } catch (...) {
    }
    cudaGetLastError();
    return fail(e.what(), why);
  }
  try {
    graph->capture_end();
  } catch (const std::exception& e) {
    cudaGetLastError();
    return fail(e.what(), why);
  }
  impl_->graph = std::move(graph);
  return true;
}

void Graph::replay() { impl_->graph->replay(); }
bool Graph::captured() const { return impl_->graph != nullptr; }

bool graphs_available() { return c10::cuda::device_count() > 0; }

#else

struct StreamGuard::Impl {};
StreamGuard::StreamGuard(int) {}
StreamGuard::~StreamGuard() = default;

struct Graph::Impl {};
Graph::Graph() = default;
Graph::~Graph() = default;
bool Graph::capture(const std::function<void()>&, std::string* why) {
  return fail("empiric was built without CUDA (EMPIRIC_CUDA=OFF)", why);
}
void Graph::replay() {}
bool Graph::captured() const { return false; }
bool graphs_available() { return false; }

#endif

}  // namespace empiric::kernels
