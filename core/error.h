// lowbit::Error, the one exception type the library throws, and the checks that build it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lowbit {

// what: the message; where: the op, file or key it concerns; hint: what to do about it.
class Error : public std::runtime_error {
 public:
  Error(std::string what, std::string where = {}, std::string hint = {});
  const std::string& message() const { return what_; }
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string what_, where_, hint_;
};

namespace detail {
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace lowbit

// Throws lowbit::Error naming `where` when `cond` is false; the message is the
// streamed concatenation of the remaining arguments.
#define LOWBIT_CHECK(cond, where, ...)                                   \
  do {                                                                   \
    if (!(cond)) throw ::lowbit::Error(::lowbit::detail::cat(__VA_ARGS__), (where)); \
  } while (0)
