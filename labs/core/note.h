// One-time notes on stderr: a sweep trains many trials alike, so a reason is said once.
#pragma once

#include <cstdio>
#include <mutex>
#include <set>
#include <string>

namespace empiric {

// Prints `text` to stderr the first time this process is given it.
inline void note_once(const std::string& text) {
  static std::mutex mutex;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mutex);
  if (said.insert(text).second) std::fprintf(stderr, "%s\n", text.c_str());
}

}  // namespace empiric
