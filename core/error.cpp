// lowbit::Error: formats "where: what (hint)" once, so what() is cheap to print.
#include "error.h"

namespace lowbit {

namespace {
std::string compose(const std::string& what, const std::string& where, const std::string& hint) {
  // Appends rather than operator+ chains: GCC 12 -O3 warns (-Wrestrict) on the temporaries.
  std::string s;
  s.reserve(where.size() + what.size() + hint.size() + 5);
  if (!where.empty()) s.append(where).append(": ");
  s.append(what);
  if (!hint.empty()) s.append(" (").append(hint).append(")");
  return s;
}
}  // namespace

Error::Error(std::string what, std::string where, std::string hint)
    : std::runtime_error(compose(what, where, hint)),
      what_(std::move(what)),
      where_(std::move(where)),
      hint_(std::move(hint)) {}

}  // namespace lowbit
