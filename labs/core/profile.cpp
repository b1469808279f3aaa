#include "core/profile.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <numeric>

namespace empiric {
namespace {

std::vector<ProfileRow> by_self_time(const std::map<std::string, ProfileRow>& rows) {
  std::vector<ProfileRow> out;
  for (const auto& [name, row] : rows) out.push_back(row);
  std::sort(out.begin(), out.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return a.self_ns != b.self_ns ? a.self_ns > b.self_ns : a.name < b.name;
  });
  return out;
}

// Kernel names are C++ templates hundreds of characters long: the head says which kernel.
std::string shown(const std::string& name) {
  std::string s = name.size() > 90 ? name.substr(0, 87) + "..." : name;
  std::replace(s.begin(), s.end(), '|', '/');
  std::replace(s.begin(), s.end(), '`', '\'');
  return "`" + s + "`";
}

}  // namespace

ProfileSummary summarize_profile(const std::vector<ProfiledEvent>& events) {
  ProfileSummary s;
  if (events.empty()) return s;
  uint64_t first = events[0].start_ns, last = events[0].end_ns;
  std::map<std::string, ProfileRow> host, device;
  std::map<uint64_t, std::vector<size_t>> threads;
  std::vector<std::pair<uint64_t, uint64_t>> busy;
  for (size_t i = 0; i < events.size(); ++i) {
    const ProfiledEvent& e = events[i];
    first = std::min(first, e.start_ns);
    last = std::max(last, e.end_ns);
    if (e.on_device) {
      ProfileRow& r = device[e.name];
      r.name = e.name;
      r.calls += 1;
      r.self_ns += double(e.end_ns - e.start_ns);
      busy.emplace_back(e.start_ns, e.end_ns);
    } else {
      threads[e.thread].push_back(i);
    }
  }
  s.span_ns = double(last - first);

  // Host events nest on their thread: outer first (earlier start; at the same start, longer).
  for (auto& [thread, idx] : threads) {
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      const auto &x = events[a], &y = events[b];
      return x.start_ns != y.start_ns ? x.start_ns < y.start_ns : x.end_ns > y.end_ns;
    });
    std::vector<double> self(idx.size());
    std::vector<size_t> open;  // positions in idx of the events enclosing the current one
    for (size_t k = 0; k < idx.size(); ++k) {
      const ProfiledEvent& e = events[idx[k]];
      while (!open.empty() && events[idx[open.back()]].end_ns <= e.start_ns) open.pop_back();
      self[k] = double(e.end_ns - e.start_ns);
      if (!open.empty()) self[open.back()] -= self[k];
      open.push_back(k);
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      const ProfiledEvent& e = events[idx[k]];
      ProfileRow& r = host[e.name];
      r.name = e.name;
      r.calls += 1;
      r.self_ns += std::max(0.0, self[k]);  // a child that outlives its parent leaves it 0
    }
  }
  s.host = by_self_time(host);
  s.device = by_self_time(device);
  for (const auto& r : s.host) s.host_ns += r.self_ns;

  std::sort(busy.begin(), busy.end());
  uint64_t open_start = 0, open_end = 0;
  bool any = false;
  for (const auto& [b, e] : busy) {
    if (!any || b > open_end) {
      if (any) s.device_busy_ns += double(open_end - open_start);
      open_start = b, open_end = e, any = true;
    } else {
      open_end = std::max(open_end, e);
    }
  }
  if (any) s.device_busy_ns += double(open_end - open_start);
  return s;
}

std::string profile_markdown(const std::string& title, const ProfileSummary& s, double wall_s,
                             long long steps, int rows) {
  const double per_step = steps > 0 ? double(steps) : 1.0;
  std::string md = fmt::format("### {}\n\n{:.3f} s of wall time for {} steps ({:.1f} us per step)",
                               title, wall_s, steps, wall_s * 1e6 / per_step);
  if (!s.device.empty())
    md += fmt::format("; the device was busy {:.1f} us per step ({:.0f} % of the profiled span)",
                      s.device_busy_ns / 1e3 / per_step,
                      s.span_ns > 0 ? 100.0 * s.device_busy_ns / s.span_ns : 0.0);
  md += fmt::format("; host operators' self time {:.1f} us per step.\n\n",
                    s.host_ns / 1e3 / per_step);
  auto table = [&](const char* what, const std::vector<ProfileRow>& list, double total) {
    if (list.empty()) return;
    md +=
        fmt::format("| {} | calls per step | us per step | share |\n|---|---:|---:|---:|\n", what);
    for (size_t i = 0; i < list.size() && i < size_t(rows); ++i)
      md += fmt::format("| {} | {:.2f} | {:.2f} | {:.1f} % |\n", shown(list[i].name),
                        double(list[i].calls) / per_step, list[i].self_ns / 1e3 / per_step,
                        total > 0 ? 100.0 * list[i].self_ns / total : 0.0);
    md += "\n";
  };
  double device_total = 0;
  for (const auto& r : s.device) device_total += r.self_ns;
  table("device event (kernel, copy, set)", s.device, device_total);
  table("host operator (self time)", s.host, s.host_ns);
  return md;
}

}  // namespace empiric
