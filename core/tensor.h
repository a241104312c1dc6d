// Tensor: a dense, row-major handle onto shared storage, with its autograd state.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "device.h"
#include "dtype.h"
#include "error.h"
#include "shape.h"
#include "storage.h"

namespace lowbit {

class Node;
class Generator;
class Tensor;

// The shared state behind Tensor handles. Copies of a Tensor share one TensorImpl;
// views (reshape, detach) get their own TensorImpl over the same Storage.
struct TensorImpl {
  StoragePtr storage;
  size_t offset = 0;  // bytes from the start of storage
  Shape shape;
  DType dtype = DType::f32;
  Device device;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;           // set on outputs of recorded ops
  std::shared_ptr<Node> grad_accumulator;  // created lazily for leaves that require grad
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32) { return full({}, value, dtype); }
  // [start, end) in steps of `step`; i64 by default as in numpy for integer ranges.
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::i64);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<float>& values) {
    return from_vector(values, {static_cast<int64_t>(values.size())});
  }
  // Uniform in [low, high), standard normal scaled by std and shifted by mean, integers in [low, high).
  static Tensor rand(const Shape& shape, Generator& gen, double low = 0, double high = 1);
  static Tensor randn(const Shape& shape, Generator& gen, double mean = 0, double std = 1);
  static Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype = DType::i64);

  // ---- information ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return lowbit::numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().device; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  // ---- raw data (contiguous, row-major) ----
  void* raw_data() { return static_cast<char*>(impl().storage->data()) + impl().offset; }
  const void* raw_data() const { return static_cast<const char*>(impl().storage->data()) + impl().offset; }
  template <class T> T* data();
  template <class T> const T* data() const;

  // ---- element access for tests and small inspections (host copies for other devices) ----
  double item() const;  // the single element of a one-element tensor
  template <class T> T item() const { return static_cast<T>(item()); }
  double at(std::initializer_list<int64_t> index) const;
  template <class T> std::vector<T> to_vector() const;
  std::string str() const;

  // ---- copies and views ----
  Tensor clone() const;       // a new storage holding the same values (recorded for autograd)
  Tensor contiguous() const { return *this; }  // every tensor is contiguous; kept for familiarity
  Tensor reshape(const Shape& shape) const;    // a view; one axis may be -1
  Tensor flatten(int64_t start_axis = 0, int64_t end_axis = -1) const;
  Tensor to(DType dtype) const;  // value conversion, not recorded; the same tensor when dtype matches
  Tensor to(Device device) const;
  // Rows [start, start + length) of axis 0 as a view sharing storage (no gradient).
  Tensor rows(int64_t start, int64_t length) const;

  // ---- in-place writes (never recorded; used by optimizers and initialisers under no_grad) ----
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // same shape and dtype

  // ---- autograd ----
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return !impl().grad_fn; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }
  Tensor detach() const;  // shares storage, leaves the graph
  // d(this)/d(leaves), accumulated into each leaf's grad(). A non-scalar tensor needs `grad`.
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void check_dtype(DType expected, const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Named tensors in a meaningful order: a state_dict, a parameter list, a checkpoint section.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// ---- inline templates ----
template <class T>
T* Tensor::data() {
  check_dtype(dtype_of_v<T>, "data");
  return static_cast<T*>(raw_data());
}
template <class T>
const T* Tensor::data() const {
  check_dtype(dtype_of_v<T>, "data");
  return static_cast<const T*>(raw_data());
}
template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  LOWBIT_CHECK(lowbit::numel(shape) == static_cast<int64_t>(values.size()), "Tensor::from_vector",
               values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of_v<T>);
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}
template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor h = to(Device::cpu());
  std::vector<T> out(static_cast<size_t>(h.numel()));
  visit_dtype(h.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* p = static_cast<const S*>(h.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}

}  // namespace lowbit
