// The environment a result was produced in: code version, libraries, machine, device.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace empiric {

using json = nlohmann::json;

// `s` as one word for /bin/sh: in single quotes, a quote in it written '\''.
std::string shell_quoted(const std::string& s);

// The git commit of the checkout at `home` (with "-dirty" when it has uncommitted changes to
// tracked files), or "unknown" outside a checkout.
std::string git_commit(const std::string& home);

// Machine and build facts that need no torch: host, CPU model and core count, compiler, build type.
json host_environment(const std::string& home);

// The memory the kernel reckons a process can still take without swapping (Linux's MemAvailable),
// less where a memory cgroup holding the process (a container's limit) leaves less, in bytes; -1
// where it cannot be read. The roots are for tests.
int64_t available_memory_bytes(const std::string& proc_root = "/proc",
                               const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace empiric
