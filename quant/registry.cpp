// Quantizer registry and the built-in methods: adding a method is one line in register_builtins().
#include "registry.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "cpq.h"
#include "lsq.h"
#include "rq.h"
#include "ste_uniform.h"

namespace lowbit {

namespace {

struct Registry {
  std::map<std::string, QuantizerEntry> entries;
  std::map<std::string, std::string> aliases;  // alias -> target
  std::mutex mutex;
};

void add(Registry& r, const std::string& name, QuantizerFactory factory, QuantizerCapabilities caps) {
  LOWBIT_CHECK(!name.empty(), "register_quantizer", "empty method name");
  LOWBIT_CHECK(factory != nullptr, "register_quantizer", "method '", name, "' has no factory");
  LOWBIT_CHECK(!r.entries.count(name) && !r.aliases.count(name), "register_quantizer", "method '", name,
               "' is already registered");
  r.entries[name] = QuantizerEntry{name, std::move(factory), std::move(caps)};
}

void alias(Registry& r, const std::string& alias_name, const std::string& target) {
  LOWBIT_CHECK(r.entries.count(target), "register_quantizer_alias", "alias '", alias_name,
               "' names unregistered method '", target, "'");
  LOWBIT_CHECK(!r.entries.count(alias_name) && !r.aliases.count(alias_name), "register_quantizer_alias", "method '",
               alias_name, "' is already registered");
  r.aliases[alias_name] = target;
}

// The built-in methods, one line each (a method's file pair provides its class and capabilities()).
void register_builtins(Registry& r) {
  add(r, "ste_uniform", quantizer_factory<SteUniformQuantizer>(), SteUniformQuantizer::capabilities());
  add(r, "lsq", quantizer_factory<LsqQuantizer>(), LsqQuantizer::capabilities());
  add(r, "cpq", quantizer_factory<CpqQuantizer>(), CpqQuantizer::capabilities());
  alias(r, "srq", "cpq");
  add(r, "rq", quantizer_factory<RqQuantizer>(), RqQuantizer::capabilities());
}

Registry& registry() {
  // Built on first use, not by static initialisers (a static library's unreferenced
  // registration objects would be dropped by the linker).
  static Registry* r = [] {
    auto* reg = new Registry();
    register_builtins(*reg);
    return reg;
  }();
  return *r;
}

std::string names_list(const Registry& r) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : r.entries) names.push_back(name);
  for (const auto& [name, target] : r.aliases) names.push_back(name + " (= " + target + ")");
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

void register_quantizer(const std::string& name, QuantizerFactory factory, QuantizerCapabilities capabilities) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  add(r, name, std::move(factory), std::move(capabilities));
}

void register_quantizer_alias(const std::string& alias_name, const std::string& target) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  alias(r, alias_name, target);
}

const QuantizerEntry& find_quantizer(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto a = r.aliases.find(name);
  auto it = r.entries.find(a == r.aliases.end() ? name : a->second);
  if (it == r.entries.end())
    throw Error(detail::cat("unknown quantization method '", name, "'; registered: ", names_list(r)), "quant.method");
  return it->second;
}

bool has_quantizer(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.entries.count(name) || r.aliases.count(name);
}

std::vector<std::string> quantizer_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, entry] : r.entries) names.push_back(name);
  for (const auto& [name, target] : r.aliases) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

QuantizerPtr make_quantizer(const QuantSpec& spec) {
  QuantizerPtr q = find_quantizer(spec.method).factory(spec);
  LOWBIT_CHECK(q != nullptr, "make_quantizer", "the factory of method '", spec.method, "' returned nothing");
  return q;
}

}  // namespace lowbit
