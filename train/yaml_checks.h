// Checks on parsed YAML for what yaml-cpp accepts silently.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace lowbit {

// Throws lowbit::Error when a mapping anywhere in `node` holds one key twice: yaml-cpp keeps
// both entries and a lookup sees only the first, so the second would be ignored without a
// word. The error names the key's path and, with `positions`, "where:line:column" of the
// second occurrence (otherwise just `where`, e.g. for a --set value).
void check_unique_keys(const YAML::Node& node, const std::string& where, bool positions = true);

}  // namespace lowbit
