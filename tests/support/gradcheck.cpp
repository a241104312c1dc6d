// Finite-difference gradient checking.
#include "gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/rng.h"

namespace lowbit::test {

namespace {
double project(const Tensor& y, const std::vector<double>& w) {
  std::vector<double> v = y.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * w[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  GradcheckResult res;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) t.impl().grad.reset();
  Tensor y = f(inputs);
  Generator gen(12345);
  Tensor w = Tensor::rand(y.shape(), gen, -1, 1);
  std::vector<double> wv = w.to_vector<double>();
  y.backward(w);

  double worst = -1;
  std::ostringstream detail;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    float* p = const_cast<Tensor&>(x).data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      float orig = p[i];
      double lp, lm;
      {
        NoGradGuard ng;
        p[i] = static_cast<float>(orig + opt.eps);
        lp = project(f(inputs), wv);
        p[i] = static_cast<float>(orig - opt.eps);
        lm = project(f(inputs), wv);
        p[i] = orig;
      }
      double numeric = (lp - lm) / (2 * opt.eps);
      double a = analytic[static_cast<size_t>(i)];
      double err = std::fabs(a - numeric) - (opt.atol + opt.rtol * std::fabs(numeric));
      if (err > worst) {
        worst = err;
        detail.str("");
        detail << "input " << k << " " << shape_str(x.shape()) << " element " << i << ": analytic " << a
               << ", numeric " << numeric;
      }
      if (err > 0) res.ok = false;
    }
  }
  res.detail = detail.str();
  return res;
}

Tensor random_input(const Shape& shape, uint64_t seed, double lo, double hi, std::vector<double> kinks, double gap) {
  Generator gen(seed);
  Tensor t = Tensor::rand(shape, gen, lo, hi);
  if (gap > 0) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      for (double k : kinks)
        if (std::fabs(p[i] - k) < gap) p[i] = static_cast<float>(p[i] >= k ? k + gap : k - gap);
  }
  t.set_requires_grad(true);
  return t;
}

}  // namespace lowbit::test
