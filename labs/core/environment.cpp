#include "core/environment.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// The number a cgroup file starts with; -1 when there is none (no file, or v2's "max").
int64_t leading_number(const std::filesystem::path& file) {
  std::ifstream in(file);
  long long v = -1;
  return in >> v ? v : -1;
}

// The value of `key` in a "key value" per line file (memory.stat); 0 when absent.
int64_t stat_value(const std::filesystem::path& file, const std::string& key) {
  std::ifstream in(file);
  std::string k;
  long long v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

// What the memory cgroups holding this process still allow it, in bytes; -1 when none limits it.
// A container's limit (docker --memory) is not in /proc/meminfo, whose MemAvailable is the host's:
// past the limit, the kernel ends the process without a word. Each cgroup from the process's own
// up to the root counts (limits nest); a folder that is not there is skipped (inside a container,
// /proc/self/cgroup names the host's path while the mount is the container's own cgroup, which
// the walk reaches at the root). The page cache's inactive part counts as free: the kernel
// reclaims it before it ends anything.
int64_t cgroup_headroom(const std::string& proc_root, const std::string& cgroup_root) {
  namespace fs = std::filesystem;
  std::ifstream self(fs::path(proc_root) / "self" / "cgroup");
  std::string line;
  int64_t headroom = -1;
  auto limit = [&](const fs::path& dir, const char* max, const char* used, const char* inactive) {
    const int64_t cap = leading_number(dir / max);
    if (cap < 0 || cap >= (int64_t(1) << 60)) return;  // unlimited (v1 writes a huge number)
    const int64_t in_use = std::max<int64_t>(0, std::max<int64_t>(0, leading_number(dir / used)) -
                                                    stat_value(dir / "memory.stat", inactive));
    const int64_t left = std::max<int64_t>(0, cap - in_use);
    headroom = headroom < 0 ? left : std::min(headroom, left);
  };
  while (std::getline(self, line)) {
    // "0::/path" (v2) or "4:memory:/path" (v1; the controllers listed between the colons)
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    const bool v2 = line.substr(0, a) == "0" && controllers == ",,";
    if (!v2 && controllers.find(",memory,") == std::string::npos) continue;
    const fs::path base = v2 ? fs::path(cgroup_root) : fs::path(cgroup_root) / "memory";
    fs::path rel = fs::path(line.substr(b + 1)).relative_path();
    for (;;) {
      const fs::path dir = base / rel;
      if (v2)
        limit(dir, "memory.max", "memory.current", "inactive_file");
      else
        limit(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file");
      if (rel.empty()) break;
      rel = rel.parent_path();
    }
  }
  return headroom;
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

int64_t available_memory_bytes(const std::string& proc_root, const std::string& cgroup_root) {
  std::ifstream meminfo(proc_root + "/meminfo");
  std::string line;  // "MemAvailable:   23456789 kB"; some lines have no unit, so read by line
  int64_t available = -1;
  while (std::getline(meminfo, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      long long kb = -1;
      std::istringstream(line.substr(13)) >> kb;
      if (kb >= 0) available = kb * 1024;
      break;
    }
  const int64_t cgroup = cgroup_headroom(proc_root, cgroup_root);
  if (cgroup < 0) return available;
  return available < 0 ? cgroup : std::min(available, cgroup);
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
