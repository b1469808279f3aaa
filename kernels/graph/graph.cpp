// CUDA graphs through torch's at::cuda::CUDAGraph (its private memory pool and its handling of
// the CUDA generator's offsets, so dropout draws fresh numbers in every replay); stubs otherwise.
#include "graph/graph.h"

#ifdef EMPIRIC_WITH_CUDA
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <optional>
#endif

#include <cstdio>
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
  if (!impl_->guard) return;
  try {
    c10::cuda::device_synchronize();
  } catch (const std::exception& e) {  // a destructor must not throw: the error that caused it
    std::fprintf(stderr, "empiric: CUDA error on leaving a graph stream: %s\n", e.what());
  }
}

struct Graph::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;

namespace {

// What a capture that broke leaves behind, undone so that training goes on eagerly as if it had
// never been tried. torch's CUDAGraph::capture_end throws at cudaStreamEndCapture for a broken
// capture (which ends the stream's capture mode), before it
//  - hands the allocators (device and pinned host memory) back their ordinary pools: they would
//    go on asking the dead graph's filter about every allocation. We end the graph's pool (ours:
//    we made its id) in each and release it, unless capture_end got that far itself;
//  - ends the default CUDA generator's capture (its prologue ran in capture_begin): every eager
//    random op (dropout) would then throw "Offset increment outside graph capture". A capture of
//    one non-random kernel, begun and ended, runs the prologue and the epilogue again.
void undo_broken_capture(at::cuda::MempoolId_t pool) {
  cudaGetLastError();
  const auto device = c10::cuda::current_device();
  // Ends the pool's allocation in one allocator and releases the pool, unless capture_end had
  // ended it (then ending throws, and the graph releases its pool itself).
  auto end_and_release = [](const std::function<void()>& end,
                            const std::function<void()>& release) {
    try {
      end();
    } catch (...) {
      return;
    }
    try {
      release();
    } catch (...) {
    }
  };
  end_and_release([&] { c10::cuda::CUDACachingAllocator::endAllocateToPool(device, pool); },
                  [&] { c10::cuda::CUDACachingAllocator::releasePool(device, pool); });
  // The pinned host allocator likewise (capture_begin points it at the graph's pool too; the
  // members' schedule factors go to the device through pin_memory()).
  auto* host = at::getHostAllocator(at::kCUDA);
  end_and_release([&] { host->end_allocate_to_pool(pool); }, [&] { host->release_pool(pool); });
  try {
    at::cuda::CUDAGraph reset;
    reset.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    at::zeros({1}, at::TensorOptions().device(at::kCUDA, device));
    reset.capture_end();
  } catch (...) {
    cudaGetLastError();
  }
}

}  // namespace

bool Graph::capture(const std::function<void()>& work, std::string* why) {
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  const auto pool = at::cuda::graph_pool_handle();
  try {
    // Thread-local: the capture restricts only the calls this thread makes.
    graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
  } catch (const std::exception& e) {
    graph.reset();
    undo_broken_capture(pool);  // whatever capture_begin had set up before it threw
    return fail(e.what(), why);
  }
  std::string error;
  try {
    work();
  } catch (const std::exception& e) {
    error = e.what();
  }
  try {
    graph->capture_end();  // ends the capture; throws if the work broke it
  } catch (const std::exception& e) {
    if (error.empty()) error = e.what();
    graph.reset();
    undo_broken_capture(pool);
    return fail(error, why);
  }
  if (!error.empty()) {  // the work threw, yet the capture ended: drop the graph whole
    cudaGetLastError();
    return fail(error, why);
  }
  impl_->graph = std::move(graph);
  ++captures_;
  return true;
}

void Graph::replay() {
  impl_->graph->replay();
  ++replays_;
}
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
