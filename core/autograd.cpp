// The autograd engine: recording nodes, leaf accumulation, reverse topological backward.
#include "autograd.h"

#include <unordered_map>

#include "ops/elementwise.h"

namespace lowbit {

namespace {
thread_local bool t_grad_enabled = true;

// A node whose backward is a closure written next to the op's forward.
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, BackwardFn fn) : name_(name), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& dy) override {
    LOWBIT_CHECK(fn_, name_, "backward through this part of the graph a second time; its saved tensors were "
                 "freed by the first backward (pass retain_graph=true to keep them)");
    Grads g(*this);
    fn_(dy, g);
    return std::move(g.out());
  }
  void release() override { fn_ = nullptr; }
  std::string name() const override { return name_; }

 private:
  const char* name_;
  BackwardFn fn_;
};

// Sink for a leaf: adds the incoming gradient into leaf.grad().
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf_(leaf) {}
  std::vector<Tensor> apply(const Tensor& dy) override {
    auto leaf = leaf_.lock();
    if (!leaf) return {};
    if (!leaf->grad) {
      // Grads are updated in place (clipping, optimizers), so the leaf needs a buffer of
      // its own: adopt dy when nothing else references it, copy it otherwise.
      bool sole_owner = dy.impl_ptr().use_count() == 1 && dy.impl().storage.use_count() == 1 && !dy.grad_fn();
      leaf->grad = sole_owner ? dy.impl_ptr() : dy.clone().impl_ptr();
    } else {
      Tensor acc(leaf->grad);
      leaf->grad = add(acc, dy).impl_ptr();
    }
    return {};
  }
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.grad_accumulator) impl.grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl.grad_accumulator;
}

Tensor alias_with_node(const Tensor& y, std::shared_ptr<Node> node) {
  auto v = std::make_shared<TensorImpl>();
  v->storage = y.impl().storage;
  v->offset = y.impl().offset;
  v->shape = y.shape();
  v->dtype = y.dtype();
  v->device = y.device();
  v->requires_grad = true;
  v->grad_fn = std::move(node);
  return Tensor(std::move(v));
}

// Runs a CustomFunction's backward as a node.
class CustomNode final : public Node {
 public:
  explicit CustomNode(std::shared_ptr<CustomFunction> fn) : fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& dy) override {
    LOWBIT_CHECK(fn_, name(), "backward through this CustomFunction a second time after its state was freed");
    std::vector<Tensor> g = fn_->backward(dy);
    LOWBIT_CHECK(g.size() == next.size(), fn_->name(), "backward returned ", g.size(), " gradients for ",
                 next.size(), " inputs");
    return g;
  }
  void release() override {
    if (fn_) fn_->release();
    fn_.reset();
  }
  std::string name() const override { return fn_ ? fn_->name() : "CustomFunction(freed)"; }

 private:
  std::shared_ptr<CustomFunction> fn_;
};
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, const Tensor& y, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return y;
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next.push_back(gradient_edge(t));
  return alias_with_node(y, std::move(node));
}

Tensor CustomFunction::run(std::shared_ptr<CustomFunction> fn, const std::vector<Tensor>& inputs) {
  bool record_graph = needs_grad(inputs);
  fn->needs_.clear();
  for (const Tensor& t : inputs) fn->needs_.push_back(record_graph && t.requires_grad());
  Tensor y;
  {
    NoGradGuard guard;
    y = fn->forward(inputs);
  }
  if (!record_graph) return y;
  auto node = std::make_shared<CustomNode>(fn);
  for (const Tensor& t : inputs) node->next.push_back(gradient_edge(t));
  return alias_with_node(y, std::move(node));
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  LOWBIT_CHECK(root.requires_grad(), "backward",
               "the tensor does not require a gradient (no input of the computation had requires_grad)");
  Tensor seed = grad;
  if (!seed.defined()) {
    LOWBIT_CHECK(root.numel() == 1, "backward", "a gradient must be given for a non-scalar tensor of shape ",
                 shape_str(root.shape()));
    seed = Tensor::ones(root.shape(), DType::f32, root.device());
  }
  LOWBIT_CHECK(seed.shape() == root.shape(), "backward", "gradient shape ", shape_str(seed.shape()),
               " does not match tensor shape ", shape_str(root.shape()));
  NoGradGuard guard;
  std::shared_ptr<Node> start = gradient_edge(root);

  // Count, for every reachable node, how many edges lead into it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{start.get()};
  deps[start.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      auto [it, fresh] = deps.try_emplace(nx.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(nx.get());
    }
  }

  // Kahn's algorithm: a node runs once all its consumers have sent their gradient.
  std::unordered_map<Node*, Tensor> pending;
  pending[start.get()] = seed;
  std::vector<std::shared_ptr<Node>> ready{start};
  while (!ready.empty()) {
    std::shared_ptr<Node> n = std::move(ready.back());
    ready.pop_back();
    Tensor dy = std::move(pending[n.get()]);
    pending.erase(n.get());
    // A node no gradient reached (every consumer sent none) passes none on.
    std::vector<Tensor> grads;
    if (dy.defined()) grads = n->apply(dy);
    dy = Tensor();
    for (size_t i = 0; i < n->next.size(); ++i) {
      const auto& nx = n->next[i];
      if (!nx) continue;
      if (i < grads.size() && grads[i].defined()) {
        Tensor& slot = pending[nx.get()];
        slot = slot.defined() ? add(slot, grads[i]) : grads[i];
      }
      if (--deps[nx.get()] == 0) ready.push_back(nx);
    }
    if (!retain_graph) n->release();
  }
}

}  // namespace lowbit
