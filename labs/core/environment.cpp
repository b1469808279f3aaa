#include "core/environment.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <thread>

namespace empiric {
namespace {

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 256> buf;
  while (fgets(buf.data(), int(buf.size()), p)) out += buf.data();
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'' ? std::string("'\\''") : std::string(1, c));
  return q + "'";
}

std::string git_commit(const std::string& home) {
  std::string dir = shell_quoted(home);
  std::string commit = run_capture("git -C " + dir + " rev-parse HEAD 2>/dev/null");
  if (commit.empty()) return "unknown";
  // Changes under reports/ are outputs (an answer writes its report there), not code.
  std::string dirty = run_capture("git -C " + dir +
                                  " status --porcelain --untracked-files=no -- . "
                                  "':(exclude)reports' 2>/dev/null");
  return dirty.empty() ? commit : commit + "-dirty";
}

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;  // "MemAvailable:   23456789 kB"; some lines have no unit, so read by line
  while (std::getline(meminfo, line))
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoll(line.substr(13)) * 1024;
  return -1;
}

json host_environment(const std::string& home) {
  json env;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  env["host"] = host;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      env["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  }
  if (!env.contains("cpu")) env["cpu"] = "unknown";
  env["cpu_cores"] = std::thread::hardware_concurrency();
  env["git_commit"] = git_commit(home);
#ifdef __VERSION__
  env["compiler"] = __VERSION__;
#endif
#ifdef EMPIRIC_BUILD_TYPE
  env["build_type"] = EMPIRIC_BUILD_TYPE;
#endif
  return env;
}

}  // namespace empiric
