// Errors a user can act on. They are thrown inside and caught once, in main, which prints what() on
// one line and exits with status 2. Everything else that escapes is a bug in empiric.
#pragma once

#include <exception>
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

// A child the user stopped with Ctrl-C (or a TERM), which a parent inside std::system does not see
// itself: main ends as the signal would have, with its "interrupted" line.
class Interrupted : public std::runtime_error {
 public:
  // `what`: what was kept and how to go on, where it is not a run's trials ("" for those).
  explicit Interrupted(int signal, const std::string& what = "")
      : std::runtime_error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

// Whether `e` is an allocation that failed (std::bad_alloc, or torch's "can't allocate memory" or
// "out of memory"), and if so what was asked for, as a user reads it: "tried to allocate 71.5 GiB"
// from torch's CPU allocator's first line (which says where it failed before that), else that
// line. "" when `e` is not one.
std::string out_of_memory_text(const std::exception& e);

// What to try after one.
inline constexpr const char* kTooLarge =
    "a size in the config or on the command line may be too large for this machine: "
    "data.n_train, data.dim, model.widths, train.batch_size, train.population, the data files' "
    "images, ...";

}  // namespace empiric
