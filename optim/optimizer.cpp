// Optimizer base: grouping by glob, the step loop, state reset and checkpoint export/import.
#include "optimizer.h"

#include <cmath>
#include <set>

#include "../core/autograd.h"

namespace lowbit {

namespace {

// A copy that is never recorded, so exported state never joins a graph.
Tensor fresh_copy(const Tensor& t) {
  Tensor y = Tensor::empty(t.shape(), t.dtype(), t.device());
  y.copy_(t);
  return y;
}

const std::string kPrefix = "optim.";
const std::string kGroupPrefix = "optim.param_groups.";

}  // namespace

bool glob_match(const std::string& pattern, const std::string& name) {
  // Greedy matcher with one backtrack point for the last '*': linear in practice.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void Optimizer::check_arg(bool ok, const char* arg, double value, const char* want) const {
  LOWBIT_CHECK(ok, kind_, "invalid ", arg, " = ", value, " (expected ", want, ")");
}

Optimizer::Optimizer(std::string kind, NamedTensors params, double lr, double weight_decay,
                     const std::vector<ParamGroupSpec>& specs)
    : kind_(std::move(kind)) {
  check_arg(std::isfinite(lr) && lr >= 0, "lr", lr, "finite and >= 0");
  check_arg(std::isfinite(weight_decay) && weight_decay >= 0, "weight_decay", weight_decay, "finite and >= 0");
  LOWBIT_CHECK(!params.empty(), kind_, "got an empty parameter list");
  for (const auto& s : specs) {
    if (s.lr) check_arg(std::isfinite(*s.lr) && *s.lr >= 0, "lr (group)", *s.lr, "finite and >= 0");
    if (s.weight_decay)
      check_arg(std::isfinite(*s.weight_decay) && *s.weight_decay >= 0, "weight_decay (group)",
                *s.weight_decay, "finite and >= 0");
  }
  std::vector<ParamGroup> by_spec(specs.size());
  ParamGroup fallback;
  std::set<std::string> seen;
  for (auto& [name, t] : params) {
    LOWBIT_CHECK(t.defined(), kind_, "parameter '", name, "' is an undefined tensor");
    LOWBIT_CHECK(t.dtype() == DType::f32, kind_, "parameter '", name, "' has dtype ", dtype_name(t.dtype()),
                 ", expected f32");
    LOWBIT_CHECK(seen.insert(name).second, kind_, "parameter name '", name, "' appears twice");
    ParamGroup* g = &fallback;
    for (size_t i = 0; i < specs.size(); ++i)
      if (glob_match(specs[i].match, name)) {
        g = &by_spec[i];
        break;
      }
    g->names.push_back(name);
    g->params.push_back(t);
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    LOWBIT_CHECK(!by_spec[i].names.empty(), kind_, "parameter group pattern '", specs[i].match,
                 "' matches no parameter (or only ones an earlier pattern took)");
    by_spec[i].match = specs[i].match;
    by_spec[i].lr = by_spec[i].base_lr = specs[i].lr.value_or(lr);
    by_spec[i].weight_decay = specs[i].weight_decay.value_or(weight_decay);
    groups_.push_back(std::move(by_spec[i]));
  }
  if (!fallback.names.empty()) {
    fallback.lr = fallback.base_lr = lr;
    fallback.weight_decay = weight_decay;
    groups_.push_back(std::move(fallback));
  }
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].names.size(); ++i) index_[groups_[g].names[i]] = {g, i};
}

std::pair<size_t, size_t> Optimizer::locate(const std::string& name) const {
  auto it = index_.find(name);
  LOWBIT_CHECK(it != index_.end(), kind_, "no parameter named '", name, "'");
  return it->second;
}

const Tensor& Optimizer::param(const std::string& name) const {
  auto [g, i] = locate(name);
  return groups_[g].params[i];
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      LOWBIT_CHECK(g.shape() == p.shape() && g.dtype() == DType::f32, kind_, "gradient of '", group.names[i],
                   "' has shape ", shape_str(g.shape()), " dtype ", dtype_name(g.dtype()),
                   ", parameter has shape ", shape_str(p.shape()), " dtype f32");
      LOWBIT_CHECK(g.device() == p.device(), kind_, "gradient of '", group.names[i], "' is on ", g.device().str(),
                   " but the parameter is on ", p.device().str());
      update(group, p, g, state_[group.names[i]]);
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.params) p.zero_grad();
}

void Optimizer::reset_state(const std::string& name) {
  locate(name);
  state_.erase(name);
}

void Optimizer::replace_param(const std::string& name, const Tensor& tensor) {
  auto [g, i] = locate(name);
  LOWBIT_CHECK(tensor.defined() && tensor.dtype() == DType::f32, kind_, "replacement for '", name,
               "' must be a defined f32 tensor");
  groups_[g].params[i] = tensor;
  state_.erase(name);
}

const ParamState* Optimizer::state(const std::string& name) const {
  locate(name);
  auto it = state_.find(name);
  return it == state_.end() ? nullptr : &it->second;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    out.scalars.emplace_back(kGroupPrefix + std::to_string(g) + ".lr", groups_[g].lr);
    for (const auto& name : groups_[g].names) {
      auto it = state_.find(name);
      if (it == state_.end()) continue;
      for (const auto& buf : buffer_names())
        out.tensors.emplace_back(kPrefix + name + "." + buf, fresh_copy(it->second.buffers.at(buf)));
      if (counts_steps())
        out.tensors.emplace_back(kPrefix + name + ".step", Tensor::full({}, static_cast<double>(it->second.step),
                                                                        DType::i64));
    }
  }
  return out;
}

void Optimizer::load_state(const OptimizerState& in) {
  const char* where = "load_state";
  std::vector<std::string> bufs = buffer_names();
  std::set<std::string> known(bufs.begin(), bufs.end());
  std::map<std::string, ParamState> next;
  std::map<std::string, std::set<std::string>> present;
  // Validate everything into `next` first so a bad entry leaves the optimizer untouched.
  for (const auto& [key, t] : in.tensors) {
    LOWBIT_CHECK(key.rfind(kPrefix, 0) == 0, kind_ + " " + where, "state entry '", key, "' does not start with '",
                 kPrefix, "'");
    std::string rest = key.substr(kPrefix.size());
    size_t dot = rest.rfind('.');
    LOWBIT_CHECK(dot != std::string::npos, kind_ + " " + where, "state entry '", key,
                 "' is not optim.<param>.<buffer>");
    std::string pname = rest.substr(0, dot), buf = rest.substr(dot + 1);
    LOWBIT_CHECK(index_.count(pname), kind_ + " " + where, "state entry '", key, "' names no parameter '", pname,
                 "' of this optimizer");
    LOWBIT_CHECK(t.defined(), kind_ + " " + where, "state entry '", key, "' is an undefined tensor");
    LOWBIT_CHECK(present[pname].insert(buf).second, kind_ + " " + where, "state entry '", key, "' appears twice");
    if (buf == "step" && counts_steps()) {
      LOWBIT_CHECK(t.numel() == 1 && t.dtype() == DType::i64, kind_ + " " + where, "state entry '", key,
                   "' must be a one-element i64 tensor, got ", shape_str(t.shape()), " ", dtype_name(t.dtype()));
      next[pname].step = static_cast<int64_t>(t.to_vector<int64_t>()[0]);
      LOWBIT_CHECK(next[pname].step >= 0, kind_ + " " + where, "state entry '", key, "' is negative");
      continue;
    }
    LOWBIT_CHECK(known.count(buf), kind_ + " " + where, "state entry '", key, "': '", buf,
                 "' is not a state buffer of this ", kind_, " configuration");
    const Tensor& p = param(pname);
    LOWBIT_CHECK(t.shape() == p.shape() && t.dtype() == DType::f32, kind_ + " " + where, "state entry '", key,
                 "' has shape ", shape_str(t.shape()), " dtype ", dtype_name(t.dtype()), ", parameter '", pname,
                 "' has shape ", shape_str(p.shape()), " dtype f32");
    next[pname].buffers[buf] = fresh_copy(t.to(p.device()));
  }
  for (const auto& [pname, have] : present) {
    for (const auto& buf : bufs)
      LOWBIT_CHECK(have.count(buf), kind_ + " " + where, "missing state entry '", kPrefix, pname, ".", buf, "'");
    if (counts_steps())
      LOWBIT_CHECK(have.count("step"), kind_ + " " + where, "missing state entry '", kPrefix, pname, ".step'");
  }
  std::vector<std::pair<size_t, double>> lrs;
  for (const auto& [key, v] : in.scalars) {
    bool ok = key.rfind(kGroupPrefix, 0) == 0 && key.size() > kGroupPrefix.size() + 3 &&
              key.compare(key.size() - 3, 3, ".lr") == 0;
    size_t g = groups_.size();
    if (ok) {
      std::string idx = key.substr(kGroupPrefix.size(), key.size() - kGroupPrefix.size() - 3);
      ok = !idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos && idx.size() < 9;
      if (ok) g = std::stoul(idx);
    }
    LOWBIT_CHECK(ok && g < groups_.size(), kind_ + " " + where, "scalar entry '", key,
                 "' is not optim.param_groups.<i>.lr for one of the ", groups_.size(), " groups");
    LOWBIT_CHECK(std::isfinite(v) && v >= 0, kind_ + " " + where, "scalar entry '", key, "' = ", v, " is not a valid lr");
    lrs.emplace_back(g, v);
  }
  state_ = std::move(next);
  for (auto [g, v] : lrs) groups_[g].lr = v;
}

}  // namespace lowbit
