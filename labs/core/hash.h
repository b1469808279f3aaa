// SHA-256, for the identity of a trial (hash of its canonical resolved config).
#pragma once

#include <string>
#include <string_view>

namespace empiric {

// Lower-case hex digest of the bytes of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace empiric
