// Tensor creation, access, printing, views and autograd entry points.
#include "tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "autograd.h"
#include "ops/elementwise.h"
#include "parallel.h"
#include "rng.h"
#ifdef LOWBIT_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace lowbit {

TensorImpl& Tensor::impl() const {
  if (!impl_) throw Error("the tensor is undefined (default-constructed or a missing gradient)", "Tensor");
  return *impl_;
}

void Tensor::check_dtype(DType expected, const char* what) const {
  LOWBIT_CHECK(dtype() == expected, std::string("Tensor::") + what, "tensor has dtype ", dtype_name(dtype()),
               ", the access asked for ", dtype_name(expected));
}

int64_t Tensor::size(int64_t axis) const { return shape()[normalize_axis(axis, dim(), "Tensor::size")]; }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    LOWBIT_CHECK(d >= 0, "Tensor::empty", "negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(lowbit::numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  LOWBIT_CHECK(step != 0, "Tensor::arange", "step must be non-zero");
  double span = (end - start) / step;
  int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  Tensor t = empty({n}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, double low, double high) {
  Tensor t = empty(shape);
  int64_t n = t.numel();
  uint64_t base = gen.reserve(static_cast<uint64_t>((n + 3) / 4));
  float* p = t.data<float>();
  float lo = static_cast<float>(low), span = static_cast<float>(high - low);
  const int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 1 << 12, [&](int64_t b, int64_t e) {
    uint32_t words[4 * 64];
    for (int64_t c = b; c < e; c += 64) {
      int64_t m = std::min<int64_t>(64, e - c);
      gen.fill(base + static_cast<uint64_t>(c), m, words);
      int64_t i0 = 4 * c, len = std::min<int64_t>(4 * m, n - i0);
      for (int64_t j = 0; j < len; ++j) p[i0 + j] = lo + span * uint_to_unit(words[j]);
    }
  });
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, double mean, double std) {
  Tensor t = empty(shape);
  int64_t n = t.numel();
  uint64_t base = gen.reserve(static_cast<uint64_t>(n));
  float* p = t.data<float>();
  float m = static_cast<float>(mean), s = static_cast<float>(std);
  parallel_for(n, 1 << 12, [&](int64_t b, int64_t e) {
    uint32_t words[4 * 64];
    for (int64_t c = b; c < e; c += 64) {
      int64_t k = std::min<int64_t>(64, e - c);
      gen.fill(base + static_cast<uint64_t>(c), k, words);
      for (int64_t j = 0; j < k; ++j)
        p[c + j] = m + s * normal_from_block({words[4 * j], words[4 * j + 1], words[4 * j + 2], words[4 * j + 3]});
    }
  });
  return t;
}

Tensor Tensor::randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype) {
  LOWBIT_CHECK(high > low, "Tensor::randint", "empty range [", low, ", ", high, ")");
  Tensor t = empty(shape, dtype);
  uint64_t span = static_cast<uint64_t>(high - low);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(low + static_cast<int64_t>(gen.below(span)));
  });
  return t;
}

double Tensor::item() const {
  LOWBIT_CHECK(numel() == 1, "Tensor::item", "item() needs exactly one element, the tensor has shape ",
               shape_str(shape()));
  return at({});
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  Tensor h = to(Device::cpu());
  const Shape& s = h.shape();
  bool scalar_like = index.size() == 0 && h.numel() == 1;
  LOWBIT_CHECK(scalar_like || index.size() == s.size(), "Tensor::at", "index of ", index.size(),
               " coordinates for a tensor of shape ", shape_str(s));
  int64_t flat = 0, axis = 0;
  for (int64_t i : index) {
    LOWBIT_CHECK(i >= 0 && i < s[axis], "Tensor::at", "index ", i, " out of range for axis ", axis, " of shape ",
                 shape_str(s));
    flat = flat * s[axis] + i;
    ++axis;
  }
  return visit_dtype(h.dtype(), [&](auto tag) -> double {
    using T = decltype(tag);
    return static_cast<double>(static_cast<const T*>(h.raw_data())[flat]);
  });
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  Tensor h = to(Device::cpu());
  const Shape& s = h.shape();
  std::vector<double> v = h.to_vector<double>();
  const int64_t kEdge = 3;  // elements shown at each end of a long axis
  std::function<void(int64_t, int64_t)> rec = [&](int64_t axis, int64_t base) {
    if (axis == static_cast<int64_t>(s.size())) {
      if (h.dtype() == DType::f32)
        os << std::setprecision(6) << v[static_cast<size_t>(base)];
      else
        os << static_cast<int64_t>(v[static_cast<size_t>(base)]);
      return;
    }
    int64_t stride = 1;
    for (size_t k = static_cast<size_t>(axis) + 1; k < s.size(); ++k) stride *= s[k];
    os << "[";
    for (int64_t i = 0; i < s[axis]; ++i) {
      if (s[axis] > 2 * kEdge + 1 && i == kEdge) {
        os << "..., ";
        i = s[axis] - kEdge - 1;
        continue;
      }
      if (i) os << ", ";
      rec(axis + 1, base + i * stride);
    }
    os << "]";
  };
  os << "Tensor(";
  if (h.numel() > 0 || s.empty()) rec(0, 0); else os << "[]";
  os << ", shape=" << shape_str(s) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

Tensor Tensor::clone() const {
  Tensor y = empty(shape(), dtype(), device());
  y.copy_(*this);
  return record("clone", y, {*this}, [](const Tensor& dy, Grads& g) { g.set(0, dy); });
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LOWBIT_CHECK(infer < 0, "reshape", "only one axis may be -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      LOWBIT_CHECK(s[i] >= 0, "reshape", "negative dimension in ", shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    LOWBIT_CHECK(known > 0 && numel() % known == 0, "reshape", "cannot reshape ", shape_str(shape()), " into ",
                 shape_str(new_shape));
    s[static_cast<size_t>(infer)] = numel() / known;
  }
  LOWBIT_CHECK(lowbit::numel(s) == numel(), "reshape", "cannot reshape ", shape_str(shape()), " (", numel(),
               " elements) into ", shape_str(new_shape));
  auto v = std::make_shared<TensorImpl>(*impl_ptr());
  v->shape = s;
  v->grad.reset();
  v->grad_fn.reset();
  v->grad_accumulator.reset();
  v->requires_grad = false;
  Shape old = shape();
  return record("reshape", Tensor(std::move(v)), {*this},
                [old](const Tensor& dy, Grads& g) { g.set(0, dy.reshape(old)); });
}

Tensor Tensor::flatten(int64_t start_axis, int64_t end_axis) const {
  if (dim() == 0) return reshape({1});
  int64_t a = normalize_axis(start_axis, dim(), "flatten"), b = normalize_axis(end_axis, dim(), "flatten");
  LOWBIT_CHECK(a <= b, "flatten", "start axis ", start_axis, " is after end axis ", end_axis);
  Shape s;
  for (int64_t i = 0; i < a; ++i) s.push_back(shape()[i]);
  int64_t m = 1;
  for (int64_t i = a; i <= b; ++i) m *= shape()[i];
  s.push_back(m);
  for (int64_t i = b + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return reshape(s);
}

Tensor Tensor::rows(int64_t start, int64_t length) const {
  LOWBIT_CHECK(dim() >= 1 && start >= 0 && length >= 0 && start + length <= shape()[0], "Tensor::rows", "rows [",
               start, ", ", start + length, ") out of range for shape ", shape_str(shape()));
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->shape = shape();
  v->shape[0] = length;
  v->dtype = dtype();
  v->device = device();
  v->offset = impl().offset + static_cast<size_t>(start) * (nbytes() / static_cast<size_t>(std::max<int64_t>(shape()[0], 1)));
  return Tensor(std::move(v));
}

Tensor Tensor::to(DType to_dtype) const {
  if (to_dtype == dtype()) return *this;
  return cast(*this, to_dtype);
}

Tensor Tensor::to(Device to_device) const {
  if (to_device == device()) return *this;
#ifdef LOWBIT_WITH_CUDA
  // A copy, not recorded for autograd: move parameters and batches, not intermediate values.
  Tensor out = empty(shape(), dtype(), to_device);
  cuda::copy_across(*this, out);
  return out;
#endif
  throw Error("no copy path from " + device().str() + " to " + to_device.str(), "Tensor::to",
              "lowbit was built without this backend");
}

Tensor& Tensor::fill_(double value) {
  fill_kernel(*this, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  LOWBIT_CHECK(src.shape() == shape() && src.dtype() == dtype(), "Tensor::copy_", "source ", shape_str(src.shape()),
               " ", dtype_name(src.dtype()), " does not match destination ", shape_str(shape()), " ",
               dtype_name(dtype()));
  if (src.raw_data() != raw_data()) copy_kernel(src, *this);
  return *this;
}

Tensor& Tensor::set_requires_grad(bool on) {
  LOWBIT_CHECK(!on || dtype() == DType::f32, "Tensor::set_requires_grad", "only f32 tensors can require a gradient, got ",
               dtype_name(dtype()));
  LOWBIT_CHECK(is_leaf(), "Tensor::set_requires_grad", "only leaf tensors can change requires_grad; use detach()");
  impl().requires_grad = on;
  if (!on) impl().grad_accumulator.reset();
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    LOWBIT_CHECK(g.shape() == shape(), "Tensor::set_grad", "gradient shape ", shape_str(g.shape()),
                 " does not match tensor shape ", shape_str(shape()));
  impl().grad = g.impl_ptr();
}

Tensor Tensor::detach() const {
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->offset = impl().offset;
  v->shape = shape();
  v->dtype = dtype();
  v->device = device();
  return Tensor(std::move(v));
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

}  // namespace lowbit
