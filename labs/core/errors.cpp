#include "core/errors.h"

#include <cstdio>
#include <new>
#include <regex>

namespace empiric {

std::string out_of_memory_text(const std::exception& e) {
  const std::string what = e.what();
  const std::string first = what.substr(0, what.find('\n'));
  if (!dynamic_cast<const std::bad_alloc*>(&e) &&
      first.find("can't allocate memory") == std::string::npos &&
      first.find("out of memory") == std::string::npos)
    return "";
  std::smatch m;
  if (!std::regex_search(first, m, std::regex("allocate (\\d+) bytes")))
    return first.empty() ? "std::bad_alloc" : first;
  double size = std::stod(m[1]);
  const char* unit = "bytes";
  for (const char* u : {"KiB", "MiB", "GiB", "TiB"})
    if (size >= 1024) size /= 1024, unit = u;
  char text[64];
  std::snprintf(text, sizeof text, "tried to allocate %.1f %s", size, unit);
  return text;
}

}  // namespace empiric
