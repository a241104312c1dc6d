// Module: a tree of named parameters, buffers and child modules with PyTorch's state_dict names.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/rng.h"
#include "../core/shape.h"
#include "../core/tensor.h"
#include "training_context.h"

namespace lowbit {

struct ShapeMismatch {
  std::string name;
  Shape expected, got;
};

// What load_state_dict did not match. Empty in every field means every key loaded.
struct LoadReport {
  std::vector<std::string> missing;     // in the module, absent from the entries
  std::vector<std::string> unexpected;  // in the entries, absent from the module
  std::vector<ShapeMismatch> shape_mismatch;
  bool ok() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
};

class Module;
using ModulePtr = std::shared_ptr<Module>;

// Modules are held through std::shared_ptr (children are shared_ptrs), as in
// libtorch's module holders. Everything is kept in registration order, which is the
// order PyTorch's state_dict and named_parameters use.
class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation. The base class has none and throws.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  const std::string& type_name() const { return type_name_; }

  // ---- registration (names are unique among a module's parameters, buffers and children) ----
  // A parameter is an f32 leaf that requires a gradient.
  Tensor& register_parameter(const std::string& name, Tensor t);
  // Buffers are saved in state_dict unless `persistent` is false (as in PyTorch).
  Tensor& register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- direct access to this module's own entries (undefined / null when absent) ----
  Tensor parameter(const std::string& name) const;
  Tensor buffer(const std::string& name) const;
  ModulePtr child(const std::string& name) const;
  bool has_parameter(const std::string& name) const { return parameter(name).defined(); }
  // Replaces a parameter (a dotted name reaches into children, e.g. "features.0.weight");
  // the shape may change. The new tensor becomes a leaf that requires a gradient. Optimizers
  // holding the old tensor must be rebuilt.
  void set_parameter(const std::string& name, Tensor t);

  // ---- traversal, with dot-joined full names ----
  // Parameters shared by several modules appear once (the first name), as in PyTorch.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }
  // Every module of the tree, this one first under the name "" (each module listed once).
  std::vector<std::pair<std::string, Module*>> named_modules();

  // ---- modes ----
  virtual void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();  // drops every parameter's gradient

  // ---- device ----
  // Moves every parameter, buffer (persistent or not) and gradient of the tree to `device`,
  // in place: each Tensor handle keeps its identity (as PyTorch's `p.data = p.data.to(d)`),
  // so modules, shared parameters and an optimizer's parameter list stay valid. An
  // optimizer's *state* (momentum, Adam moments) is not moved: move the model before
  // building the optimizer (the trainer does). Already on `device`: nothing happens.
  Module& to(Device device);
  // The device of the first parameter (or buffer); the CPU for a module holding neither.
  Device device() const;

  // ---- training hooks (the trainer calls them on every module of the model, pre-order) ----
  // A penalty added to the loss (already weighted); undefined when there is none.
  virtual Tensor regularizer() { return Tensor(); }
  // After each optimizer step, and at the end of each epoch (before evaluation).
  virtual void on_step(TrainingContext&) {}
  virtual void on_epoch_end(TrainingContext&) {}
  // Data-driven initialisation (activation ranges): while any module of the model returns
  // n > 0, a fresh run first forwards max(n) training batches without gradients (BatchNorm
  // statistics are restored afterwards), then calls end_calibration() on every module.
  virtual int64_t calibration_batches() const { return 0; }
  virtual void end_calibration() {}
  // After a non-strict load (model.init_from): `missing` lists this module's own entries
  // (no dots) absent from the checkpoint. Returns those it could not derive from what was
  // loaded; a quantizer re-derives its scale from its layer's weights and returns none.
  virtual std::vector<std::string> initialize_missing(const std::vector<std::string>& missing) {
    return missing;
  }

  // The module's own random stream (dropout masks, DropBits), or null. The trainer seeds it
  // from a split of the run's generator named after the module and checkpoints its position.
  virtual Generator* generator() { return nullptr; }

  // ---- checkpoints ----
  // Per module: its parameters, then its persistent buffers, then each child recursively
  // (PyTorch's Module._save_to_state_dict order). Parameters are not deduplicated.
  NamedTensors state_dict() const;
  // Copies each entry's values into the module's existing tensor of that name, in place
  // (optimizers holding the tensors stay valid); dtype and device are converted. Strict:
  // any missing, unexpected or shape-mismatched name throws an Error listing all of them
  // before anything is copied. Non-strict: loads what matches and reports the rest.
  LoadReport load_state_dict(const NamedTensors& entries, bool strict = true);

 protected:
  void add_child(const std::string& name, ModulePtr m);

 private:
  struct Buffer {
    std::string name;
    Tensor tensor;
    bool persistent;
  };
  void check_new_name(const std::string& name) const;
  void collect_state(const std::string& prefix, NamedTensors& out) const;
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);

  std::string type_name_;
  bool training_ = true;
  NamedTensors params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
};

}  // namespace lowbit
