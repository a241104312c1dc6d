// CPU softmax and log_softmax, forward and backward, over [outer, n, inner] views.
#include <cmath>
#include <limits>

#include "../kernels/softmax.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task
constexpr int64_t kChunk = 128;      // inner columns handled together when inner > 1

struct View {
  int64_t outer = 1, n = 1, inner = 1;
};

View view_of(const Shape& s, int64_t axis) {
  View v;
  if (s.empty()) return v;  // a 0-d tensor is one slice of one element
  for (int64_t i = 0; i < axis; ++i) v.outer *= s[i];
  v.n = s[axis];
  for (size_t i = axis + 1; i < s.size(); ++i) v.inner *= s[i];
  return v;
}

// One slice of n elements at stride 1 (inner == 1): the common case of a last axis.
void row_forward(bool log, const float* x, float* y, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
    // (x - m) - log(s), not x - (m + log(s)): m + log(s) would round at m's magnitude.
    const float ls = static_cast<float>(std::log(s));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - ls;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      y[i] = std::exp(x[i] - m);
      s += y[i];
    }
    const float r = static_cast<float>(1.0 / s);
    for (int64_t i = 0; i < n; ++i) y[i] *= r;
  }
}

void row_backward(bool log, const float* dy, const float* y, float* dx, int64_t n) {
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) s += dy[i];
    const float sf = static_cast<float>(s);
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - std::exp(y[i]) * sf;
  } else {
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(dy[i]) * y[i];
    const float sf = static_cast<float>(s);
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - sf);
  }
}

// w columns of a slice whose elements are `inner` apart: the same steps as the row
// versions, vectorised across the columns.
void cols_forward(bool log, const float* x, float* y, int64_t n, int64_t inner, int64_t w) {
  float m[kChunk];
  double s[kChunk];
  std::fill(m, m + w, -std::numeric_limits<float>::infinity());
  std::fill(s, s + w, 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) m[j] = std::max(m[j], x[k * inner + j]);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) s[j] += std::exp(x[k * inner + j] - m[j]);
  if (log) {
    float ls[kChunk];
    for (int64_t j = 0; j < w; ++j) ls[j] = static_cast<float>(std::log(s[j]));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) y[k * inner + j] = (x[k * inner + j] - m[j]) - ls[j];
  } else {
    float r[kChunk];
    for (int64_t j = 0; j < w; ++j) r[j] = static_cast<float>(1.0 / s[j]);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) y[k * inner + j] = std::exp(x[k * inner + j] - m[j]) * r[j];
  }
}

void cols_backward(bool log, const float* dy, const float* y, float* dx, int64_t n, int64_t inner, int64_t w) {
  double s[kChunk];
  std::fill(s, s + w, 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j)
      s[j] += log ? dy[k * inner + j] : static_cast<double>(dy[k * inner + j]) * y[k * inner + j];
  float sf[kChunk];
  for (int64_t j = 0; j < w; ++j) sf[j] = static_cast<float>(s[j]);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) {
      const int64_t i = k * inner + j;
      dx[i] = log ? dy[i] - std::exp(y[i]) * sf[j] : y[i] * (dy[i] - sf[j]);
    }
}

// Runs f(offset, w) over every (slice, column chunk) pair in parallel; slices are
// independent, so the split never changes a result.
template <class F>
void for_slices(const View& v, F&& f) {
  const int64_t chunks = (v.inner + kChunk - 1) / kChunk;
  const int64_t per_task = std::max<int64_t>(1, v.n * std::min(v.inner, kChunk));
  parallel_for(v.outer * chunks, std::max<int64_t>(1, kGrain / per_task), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / chunks, c0 = (t % chunks) * kChunk;
      f(o * v.n * v.inner + c0, std::min(kChunk, v.inner - c0));
    }
  });
}

}  // namespace

void softmax(bool log, const Tensor& x, int64_t axis, Tensor& y) {
  const View v = view_of(x.shape(), axis);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  if (v.n == 0) return;
  for_slices(v, [&](int64_t off, int64_t w) {
    if (v.inner == 1) row_forward(log, px + off, py + off, v.n);
    else cols_forward(log, px + off, py + off, v.n, v.inner, w);
  });
}

void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t axis, Tensor& dx) {
  const View v = view_of(y.shape(), axis);
  const float* pg = dy.data<float>();
  const float* py = y.data<float>();
  float* pd = dx.data<float>();
  if (v.n == 0) return;
  for_slices(v, [&](int64_t off, int64_t w) {
    if (v.inner == 1) row_backward(log, pg + off, py + off, pd + off, v.n);
    else cols_backward(log, pg + off, py + off, pd + off, v.n, v.inner, w);
  });
}

}  // namespace lowbit::cpu
