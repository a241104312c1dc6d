// A two-layer network built with lowbit's public API: forward, backward, gradient norm,
// and a few SGD steps on a synthetic two-class problem.
#include <lowbit/lowbit.h>

#include <cmath>
#include <cstdio>

using namespace lowbit;

int main() {
  set_num_threads(2);
  Generator gen(42);
  const int64_t n = 256, in = 16, hidden = 32, classes = 2;

  // Labels depend on the sign of the first feature, so the task is learnable.
  Tensor x = Tensor::randn({n, in}, gen);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = x.at({i, 0}) > 0 ? 1 : 0;
  Tensor y = Tensor::from_vector(labels, {n});

  // Kaiming-uniform-like initialisation.
  auto param = [&](Shape s, double bound) { return Tensor::rand(s, gen, -bound, bound).set_requires_grad(true); };
  Tensor w1 = param({hidden, in}, 1.0 / std::sqrt(in)), b1 = param({hidden}, 1.0 / std::sqrt(in));
  Tensor w2 = param({classes, hidden}, 1.0 / std::sqrt(hidden)), b2 = param({classes}, 1.0 / std::sqrt(hidden));
  std::vector<Tensor> params{w1, b1, w2, b2};

  for (int step = 0; step <= 50; ++step) {
    for (Tensor& p : params) p.zero_grad();
    Tensor logits = linear(relu(linear(x, w1, b1)), w2, b2);
    Tensor loss = cross_entropy(logits, y);
    loss.backward();

    double sq = 0;
    for (const Tensor& p : params) sq += sum(p.grad() * p.grad()).item();
    if (step % 10 == 0) {
      double acc = mean(eq(argmax(logits, 1), y).to(DType::f32)).item();
      std::printf("step %2d  loss %.4f  accuracy %.3f  grad norm %.4f\n", step, loss.item(), acc, std::sqrt(sq));
    }
    NoGradGuard no_grad;
    for (Tensor& p : params) p.copy_(p - p.grad() * 0.5);
  }
  return 0;
}
