// Define-by-run autograd: graph nodes, recording, the backward engine, NoGradGuard, CustomFunction.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace lowbit {

// One recorded op. next[i] is where the gradient of input i flows (the input's own
// grad_fn, or the accumulator of a leaf); null when input i needs no gradient.
class Node {
 public:
  virtual ~Node() = default;
  // Gradients of the inputs given the gradient of the output; undefined where not wanted.
  virtual std::vector<Tensor> apply(const Tensor& dy) = 0;
  // Frees what the node saved for backward (called as the engine walks past it).
  virtual void release() {}
  virtual std::string name() const = 0;

  bool wants(size_t i) const { return i < next.size() && next[i] != nullptr; }
  std::vector<std::shared_ptr<Node>> next;
};

// Which input gradients a backward function must compute, and where it puts them.
class Grads {
 public:
  explicit Grads(const Node& node) : node_(node), out_(node.next.size()) {}
  bool wants(size_t i) const { return node_.wants(i); }
  void set(size_t i, Tensor g) { out_.at(i) = std::move(g); }
  std::vector<Tensor>& out() { return out_; }

 private:
  const Node& node_;
  std::vector<Tensor> out_;
};

using BackwardFn = std::function<void(const Tensor& dy, Grads& g)>;

// Thread-local switch for recording.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when recording is on and some input requires a gradient.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records op `name` producing y from `inputs`: returns a handle onto y's storage whose
// grad_fn runs `fn` (so `fn` may capture y itself without a reference cycle). Returns y
// unchanged when nothing needs a gradient.
Tensor record(const char* name, const Tensor& y, const std::vector<Tensor>& inputs, BackwardFn fn);

// The engine: walks the graph from root in reverse topological order.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// A differentiable function written by hand: forward and backward in one class, saved
// state as members. Quantizers express their estimators this way.
//   struct RoundSte : CustomFunction { ... };
//   Tensor y = CustomFunction::apply<RoundSte>({x}, ctor args...);
class CustomFunction {
 public:
  virtual ~CustomFunction() = default;
  virtual std::string name() const = 0;
  // Runs with recording off; may save tensors (including its output) in members.
  virtual Tensor forward(const std::vector<Tensor>& inputs) = 0;
  // Gradient of each input, given dy; undefined where needs_input_grad(i) is false.
  virtual std::vector<Tensor> backward(const Tensor& dy) = 0;
  // Frees saved state after backward; the default drops nothing.
  virtual void release() {}

  bool needs_input_grad(size_t i) const { return i < needs_.size() && needs_[i]; }

  template <class F, class... Args>
  static Tensor apply(const std::vector<Tensor>& inputs, Args&&... args) {
    return run(std::make_shared<F>(std::forward<Args>(args)...), inputs);
  }
  static Tensor run(std::shared_ptr<CustomFunction> fn, const std::vector<Tensor>& inputs);

 private:
  std::vector<bool> needs_;
};

}  // namespace lowbit
