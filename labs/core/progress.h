// Progress of a sweep on stderr: a redrawn bar on a terminal, or plain lines (one per trial) in CI
// and logs, so long runs show they are alive without flooding a log file.
#pragma once

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace empiric {

class Progress {
 public:
  explicit Progress(bool bar) : bar_(bar) {}

  // Redraws the bar for one trial: "[#####.....] 3/12 step 1200/4690 label".
  void update(int trial, int trials, long long step, long long total, const std::string& label) {
    if (!bar_) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (step < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30;
    int filled = total > 0 ? int(width * double(step) / double(total)) : 0;
    std::string bar(size_t(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] trial %d/%d  step %lld/%lld  %-40.40s", bar.c_str(), trial, trials,
                 step, total, label.c_str());
    std::fflush(stderr);
  }

  // A finished trial: a permanent line in both modes.
  void line(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bar_) std::fprintf(stderr, "\r%-110s\r", "");
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
  }

 private:
  bool bar_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace empiric
