// Module: registration, traversal with full names, modes and state_dict loading.
#include "module.h"

#include <set>
#include <unordered_map>

#include "../core/autograd.h"

namespace lowbit {

Tensor Module::forward(const Tensor&) {
  throw Error(detail::cat(type_name_, " has no forward(Tensor)"), "Module::forward",
              "override forward in the subclass or call its own entry point");
}

void Module::check_new_name(const std::string& name) const {
  LOWBIT_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module::register",
               "invalid name '", name, "' in ", type_name_, ": names are non-empty and contain no '.'");
  LOWBIT_CHECK(!parameter(name).defined() && !buffer(name).defined() && !child(name), "Module::register",
               "name '", name, "' is already registered in ", type_name_);
}

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name);
  LOWBIT_CHECK(t.defined(), "Module::register_parameter", "parameter '", name, "' of ", type_name_, " is undefined");
  if (!t.is_leaf()) t = t.detach();
  t.set_requires_grad(true);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name);
  LOWBIT_CHECK(t.defined(), "Module::register_buffer", "buffer '", name, "' of ", type_name_, " is undefined");
  buffers_.push_back({name, std::move(t), persistent});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, ModulePtr m) {
  check_new_name(name);
  LOWBIT_CHECK(m != nullptr, "Module::register_module", "child '", name, "' of ", type_name_, " is null");
  children_.emplace_back(name, std::move(m));
}

Tensor Module::parameter(const std::string& name) const {
  for (const auto& [n, t] : params_)
    if (n == name) return t;
  return Tensor();
}

Tensor Module::buffer(const std::string& name) const {
  for (const auto& b : buffers_)
    if (b.name == name) return b.tensor;
  return Tensor();
}

ModulePtr Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return m;
  return nullptr;
}

void Module::set_parameter(const std::string& name, Tensor t) {
  size_t dot = name.find('.');
  if (dot != std::string::npos) {
    ModulePtr c = child(name.substr(0, dot));
    LOWBIT_CHECK(c != nullptr, "Module::set_parameter", type_name_, " has no child '", name.substr(0, dot),
                 "' (from '", name, "')");
    c->set_parameter(name.substr(dot + 1), std::move(t));
    return;
  }
  LOWBIT_CHECK(t.defined(), "Module::set_parameter", "new value of '", name, "' is undefined");
  for (auto& [n, p] : params_) {
    if (n != name) continue;
    if (!t.is_leaf()) t = t.detach();
    t.set_requires_grad(true);
    p = std::move(t);
    return;
  }
  throw Error(detail::cat(type_name_, " has no parameter '", name, "'"), "Module::set_parameter");
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::set<const TensorImpl*> seen;
  auto add = [&](const std::string& n, const Tensor& t) {
    if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(n, t);
  };
  for (const auto& [n, t] : params_) add(n, t);
  if (recurse)
    for (const auto& [cn, c] : children_)
      for (const auto& [n, t] : c->named_parameters(true)) add(cn + "." + n, t);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  for (const auto& b : buffers_) out.emplace_back(b.name, b.tensor);
  if (recurse)
    for (const auto& [cn, c] : children_)
      for (const auto& [n, t] : c->named_buffers(true)) out.emplace_back(cn + "." + n, t);
  return out;
}

void Module::collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out) {
  for (const auto& [n, m] : out)
    if (m == this) return;  // a module registered twice is listed once, as in PyTorch
  out.emplace_back(prefix, this);
  for (const auto& [cn, c] : children_) c->collect_modules(prefix.empty() ? cn : prefix + "." + cn, out);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

namespace {

// Points t's TensorImpl at a copy of its values on `device`, so every handle sees the move.
void move_in_place(const Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  TensorImpl& impl = t.impl();
  LOWBIT_CHECK(!impl.grad_fn, "Module::to", "cannot move a non-leaf tensor ", shape_str(impl.shape),
               " (a module's parameters and buffers are leaves)");
  Tensor moved = t.detach().to(device);
  impl.storage = moved.impl().storage;
  impl.offset = moved.impl().offset;
  impl.device = device;
  if (impl.grad) impl.grad = Tensor(impl.grad).to(device).impl_ptr();
}

}  // namespace

Module& Module::to(Device device) {
  // Tensors shared between modules are moved once: the second visit finds them on `device`.
  for (auto& [n, t] : params_) move_in_place(t, device);
  for (auto& b : buffers_) move_in_place(b.tensor, device);
  for (auto& [n, c] : children_) c->to(device);
  return *this;
}

Device Module::device() const {
  if (!params_.empty()) return params_.front().second.device();
  if (!buffers_.empty()) return buffers_.front().tensor.device();
  NamedTensors state = state_dict();
  NamedTensors buffers = named_buffers();  // non-persistent ones are not in state_dict
  if (!state.empty()) return state.front().second.device();
  return buffers.empty() ? Device::cpu() : buffers.front().second.device();
}

void Module::collect_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  for (const auto& b : buffers_)
    if (b.persistent) out.emplace_back(prefix + b.name, b.tensor);
  for (const auto& [cn, c] : children_) c->collect_state(prefix + cn + ".", out);
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect_state("", out);
  return out;
}

LoadReport Module::load_state_dict(const NamedTensors& entries, bool strict) {
  NamedTensors own = state_dict();
  std::unordered_map<std::string, size_t> given;
  for (size_t i = 0; i < entries.size(); ++i) given.emplace(entries[i].first, i);
  std::set<std::string> own_names;
  LoadReport report;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (auto& [name, dst] : own) {
    own_names.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      report.missing.push_back(name);
      continue;
    }
    const Tensor& src = entries[it->second].second;
    if (!src.defined() || src.shape() != dst.shape()) {
      report.shape_mismatch.push_back({name, dst.shape(), src.defined() ? src.shape() : Shape{}});
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& [name, t] : entries)
    if (!own_names.count(name)) report.unexpected.push_back(name);

  if (strict && !report.ok()) {
    std::string msg = detail::cat("state_dict does not match ", type_name_, ":");
    for (const auto& n : report.missing) msg += "\n  missing key: " + n;
    for (const auto& n : report.unexpected) msg += "\n  unexpected key: " + n;
    for (const auto& m : report.shape_mismatch)
      msg += detail::cat("\n  size mismatch for ", m.name, ": expected ", shape_str(m.expected), ", got ",
                         shape_str(m.got));
    throw Error(msg, "Module::load_state_dict",
                "pass strict = false to load the matching keys and inspect the returned report");
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.to(dst.dtype()).to(dst.device()));
  return report;
}

}  // namespace lowbit
