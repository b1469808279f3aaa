// CUDA graphs for the training loop: a piece of work (a training step, an evaluation pass)
// captured once on a private stream and replayed, so that its dozens of kernel launches cost one.
//
// Contract
//   The work must run on the GPU without host synchronization (no .item(), no host copies) and
//   keep its inputs and outputs in tensors that outlive the graph: a replay reads and writes the
//   memory it was captured with. Capture records the work without running it.
//   Where capture is not possible (a build without CUDA, an op that syncs), capture() returns
//   false with the reason and leaves nothing behind; the caller runs the work eagerly instead.
//   Every capture and replay happens on the stream a Stream guard made current, so eager work
//   before and after stays in order with the replays.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace empiric::kernels {

// Makes a fresh (non-default) CUDA stream current on `device` for its lifetime; graphs cannot be
// captured on the default stream. A no-op for device < 0 (the CPU) or a build without CUDA.
class StreamGuard {
 public:
  explicit StreamGuard(int device);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Captures `work` (not run). On failure returns false and sets *why.
  bool capture(const std::function<void()>& work, std::string* why);
  void replay();
  bool captured() const;
  // Successful captures and replays so far (a run records them, so a test can tell that its
  // steps were replayed and not quietly run eagerly).
  int captures() const { return captures_; }
  long long replays() const { return replays_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int captures_ = 0;
  long long replays_ = 0;
};

// True when this build can capture graphs (built with CUDA) and a GPU is present.
bool graphs_available();

}  // namespace empiric::kernels
