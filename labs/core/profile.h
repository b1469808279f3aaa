// Where a training run's time goes: the events of a profiled run (torch's Kineto profiler, taken
// in experiments/sweep.cpp) summarized per name. No torch here, so the arithmetic is tested on
// made-up events.
//
// Host events (operators, autograd nodes, runtime calls) nest on their thread: each gets its
// self time, its duration less the time of the events directly inside it. Device events (CUDA
// kernels, copies, sets) do not nest: their time is their duration, and the device was busy for
// the union of their intervals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace empiric {

struct ProfiledEvent {
  std::string name;
  uint64_t thread = 0;  // host events: the thread they ran on
  uint64_t start_ns = 0, end_ns = 0;
  bool on_device = false;
};

struct ProfileRow {
  std::string name;
  long long calls = 0;
  double self_ns = 0;  // host: self time; device: duration
};

struct ProfileSummary {
  std::vector<ProfileRow> host, device;  // each by self time, largest first
  double host_ns = 0;         // the sum of host self times (time inside profiled operators)
  double device_busy_ns = 0;  // the union of the device events' intervals
  double span_ns = 0;         // first start to last end, over all events
};

ProfileSummary summarize_profile(const std::vector<ProfiledEvent>& events);

// A Markdown section: the run's wall time and step count, the device's busy share where it has
// device events, and the top `rows` names of each kind with their calls and microseconds per step.
std::string profile_markdown(const std::string& title, const ProfileSummary& s, double wall_s,
                             long long steps, int rows = 15);

}  // namespace empiric
