// Quantizer registry: methods by the config's name, with aliases and capabilities.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "quantizer.h"

namespace lowbit {

using QuantizerFactory = std::function<QuantizerPtr(const QuantSpec&)>;

struct QuantizerEntry {
  std::string name;
  QuantizerFactory factory;
  QuantizerCapabilities capabilities;
};

// Adds a method (a user's custom quantizer too). The built-in methods are registered in
// registry.cpp, one line each. Registering a taken name throws.
void register_quantizer(const std::string& name, QuantizerFactory factory, QuantizerCapabilities capabilities);
// `alias` names the same method as `target` (srq -> cpq).
void register_quantizer_alias(const std::string& alias, const std::string& target);

// A method's entry by name or alias; an unknown name throws an Error listing the registered names.
const QuantizerEntry& find_quantizer(const std::string& name);
bool has_quantizer(const std::string& name);
// Registered names (aliases included), sorted.
std::vector<std::string> quantizer_names();

// find_quantizer(spec.method).factory(spec).
QuantizerPtr make_quantizer(const QuantSpec& spec);

// The usual factory for a class constructed from a QuantSpec.
template <class Q>
QuantizerFactory quantizer_factory() {
  return [](const QuantSpec& spec) -> QuantizerPtr { return std::make_shared<Q>(spec); };
}

}  // namespace lowbit
