// Optimizer base: named parameters split into groups by glob, per-parameter state, checkpoint export.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.h"

namespace lowbit {

// Parameters whose name matches `match` ('*' any run of characters, dots included; '?' one
// character) form one group; lr / weight_decay override the optimizer's values when set.
struct ParamGroupSpec {
  std::string match;
  std::optional<double> lr, weight_decay;
};

struct ParamGroup {
  std::string match;  // the spec's pattern; empty for the default group
  std::vector<std::string> names;
  std::vector<Tensor> params;
  double lr = 0;            // current learning rate (schedules write it)
  double base_lr = 0;       // the lr the group was built with; schedules scale this
  double weight_decay = 0;
};

// What an optimizer remembers about one parameter. step counts the updates that used the
// state (Adam's bias corrections); buffers are same-shaped f32 tensors (exp_avg, momentum_buffer)
// on the parameter's device (CPU or CUDA: the updates run there, see core/kernels/optim.h).
struct ParamState {
  int64_t step = 0;
  std::map<std::string, Tensor> buffers;
};

// Everything needed to resume: tensors named optim.<param>.<buffer> (plus optim.<param>.step,
// an i64 scalar, for optimizers that count steps) and scalars optim.param_groups.<i>.lr.
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<std::pair<std::string, double>> scalars;
};

// True when `name` matches the glob `pattern` as a whole.
bool glob_match(const std::string& pattern, const std::string& name);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter whose grad is defined (others are skipped, state untouched).
  void step();
  // Drops every parameter's gradient (PyTorch's set_to_none behaviour).
  void zero_grad();

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // The parameter called `name` (Error if none).
  const Tensor& param(const std::string& name) const;

  // Forgets the state of one parameter; it restarts as on the first step.
  void reset_state(const std::string& name);
  // Points parameter `name` at a new tensor (e.g. a quantizer reshaped it) and resets its state.
  void replace_param(const std::string& name, const Tensor& tensor);
  // The state of `name`, or null before its first update.
  const ParamState* state(const std::string& name) const;

  // Copies of the state, for checkpoints; load_state restores it exactly (and replaces all
  // current state). Entries naming unknown parameters or buffers, wrong shapes/dtypes, or a
  // parameter with only part of its entries are Errors naming the entry. state_dict's buffer
  // copies stay on the parameter's device (a checkpoint writer moves them to the CPU);
  // load_state moves each entry to its parameter's device, so state crosses devices.
  OptimizerState state_dict() const;
  std::vector<std::pair<std::string, Tensor>> state_tensors() const { return state_dict().tensors; }
  void load_state(const OptimizerState& state);
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors) {
    load_state(OptimizerState{tensors, {}});
  }

  const std::string& kind() const { return kind_; }

 protected:
  // kind names the optimizer in errors ("SGD", "Adam"). Each parameter goes to the first
  // spec whose glob matches, else to the default group (last, present only when non-empty).
  Optimizer(std::string kind, NamedTensors params, double lr, double weight_decay,
            const std::vector<ParamGroupSpec>& specs);

  // The in-place update of one parameter p (f32, contiguous) with gradient g on p's device.
  virtual void update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& s) = 0;
  // Buffer names a parameter's state must hold once it exists, and whether `step` is kept.
  virtual std::vector<std::string> buffer_names() const = 0;
  virtual bool counts_steps() const = 0;

  // Throws an Error naming this optimizer and `arg` unless ok.
  void check_arg(bool ok, const char* arg, double value, const char* want) const;

 private:
  std::pair<size_t, size_t> locate(const std::string& name) const;

  std::string kind_;
  std::vector<ParamGroup> groups_;
  std::map<std::string, std::pair<size_t, size_t>> index_;  // name -> (group, position)
  std::map<std::string, ParamState> state_;
};

}  // namespace lowbit
