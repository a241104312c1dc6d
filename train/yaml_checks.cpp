// check_unique_keys: a recursive walk over the mappings of a parsed YAML tree.
#include "yaml_checks.h"

#include <map>

#include "../core/error.h"

namespace lowbit {

namespace {

std::string key_text(const YAML::Node& key) {
  if (key.IsScalar()) return key.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << key;
  return out.c_str();
}

void walk(const YAML::Node& node, const std::string& path, const std::string& where, bool positions) {
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : node) {
      const std::string key = key_text(kv.first);
      const std::string child = path.empty() ? key : path + "." + key;
      const YAML::Mark mark = kv.first.Mark();
      const auto [it, fresh] = seen.emplace(key, mark);
      if (!fresh) {
        const bool known = positions && !mark.is_null() && !it->second.is_null();
        throw Error(known ? detail::cat("duplicate key '", child, "' (first at line ", it->second.line + 1,
                                        "): a key may appear only once in a mapping")
                          : detail::cat("duplicate key '", child, "': a key may appear only once in a mapping"),
                    known ? detail::cat(where, ":", mark.line + 1, ":", mark.column + 1) : where);
      }
      walk(kv.second, child, where, positions);
    }
  } else if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i) walk(node[i], detail::cat(path, "[", i, "]"), where, positions);
  }
}

}  // namespace

void check_unique_keys(const YAML::Node& node, const std::string& where, bool positions) {
  walk(node, "", where, positions);
}

}  // namespace lowbit
