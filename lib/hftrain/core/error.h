// hftrain's one error type. A user error (bad config, missing file, unreadable
// output_dir) exits with code 2 and one line; anything else is a runtime failure (1).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace hftrain {

class Error : public std::runtime_error {
 public:
  enum Kind { kUser, kRuntime };
  Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }
  int exit_code() const { return kind_ == kUser ? 2 : 1; }

 private:
  Kind kind_;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(Error::kUser, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_runtime(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(Error::kRuntime, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hftrain

// The one check macro: a failed check is the user's input being wrong; the message says
// which file, key or value, and what was expected.
#define HFT_CHECK(cond, ...)              \
  do {                                    \
    if (!(cond)) ::hftrain::fail(__VA_ARGS__); \
  } while (0)
