// Errors a user can act on. They are thrown inside and caught once, in main, which prints what() on
// one line and exits with status 2. Everything else that escapes is a bug in empiric.
#pragma once

#include <stdexcept>
#include <string>

namespace empiric {

// Bad input from outside the program: a config, a command-line argument, a data or database file.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A config problem, always located: the file (or "command line"), the JSON pointer, the value that
// was found and what is allowed there.
class ConfigError : public UserError {
 public:
  ConfigError(const std::string& source, const std::string& pointer, const std::string& found,
              const std::string& allowed)
      : UserError(source + ": " + (pointer.empty() ? "/" : pointer) +
                  (found.empty() ? std::string() : " = " + found) + ": " + allowed),
        source_(source),
        pointer_(pointer),
        found_(found),
        allowed_(allowed) {}
  const std::string& source() const { return source_; }
  const std::string& pointer() const { return pointer_; }
  const std::string& found() const { return found_; }
  const std::string& allowed() const { return allowed_; }

 private:
  std::string source_;
  std::string pointer_;
  std::string found_;
  std::string allowed_;
};

}  // namespace empiric
