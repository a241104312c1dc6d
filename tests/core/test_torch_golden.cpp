// Golden tests against PyTorch: inputs, outputs and gradients written by
// tests/fixtures/make_torch_golden.py (torch 1.13) and compared op by op.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "lowbit.h"

using namespace lowbit;

namespace {

const SafetensorsFile& golden() {
  static const SafetensorsFile f = load_safetensors(std::string(LOWBIT_FIXTURES_DIR) + "/torch_golden.safetensors");
  return f;
}

void require_close(const Tensor& got, const Tensor& want, const std::string& what, double tol = 1e-4) {
  INFO(what << ": got shape " << shape_str(got.shape()) << ", PyTorch " << shape_str(want.shape()));
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double err = std::fabs(g[i] - w[i]) / (1.0 + std::fabs(w[i]));
    if (err > worst) worst = err, at = i;
  }
  INFO(what << ": worst relative error " << worst << " at element " << at);
  REQUIRE(worst < tol);
}

// Runs `fn` on the case's inputs, checks the output, then the gradient of sum(out * w).
void check_case(const std::string& name, int n_inputs,
                const std::function<Tensor(const std::vector<Tensor>&)>& fn) {
  const SafetensorsFile& f = golden();
  std::vector<Tensor> in;
  for (int i = 0; i < n_inputs; ++i) {
    Tensor t = f.at(name + ".in" + std::to_string(i)).clone();
    if (t.dtype() == DType::f32) t.set_requires_grad(true);
    in.push_back(t);
  }
  Tensor y = fn(in);
  require_close(y, f.at(name + ".out"), name + " output");
  sum(y * f.at(name + ".w")).backward();
  for (int i = 0; i < n_inputs; ++i) {
    std::string key = name + ".grad" + std::to_string(i);
    if (f.contains(key)) require_close(in[static_cast<size_t>(i)].grad(), f.at(key), key);
  }
}

Conv2dOptions conv_opts(std::array<int64_t, 2> stride, std::array<int64_t, 2> pad, std::array<int64_t, 2> dil,
                        int64_t groups) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

}  // namespace

TEST_CASE("torch golden: conv2d forward and gradients") {
  check_case("conv_basic", 3, [](const auto& in) { return conv2d(in[0], in[1], in[2]); });
  check_case("conv_stride_pad", 3,
             [](const auto& in) { return conv2d(in[0], in[1], in[2], conv_opts({2, 2}, {1, 1}, {1, 1}, 1)); });
  check_case("conv_dilation", 2,
             [](const auto& in) { return conv2d(in[0], in[1], Tensor(), conv_opts({1, 2}, {2, 1}, {2, 2}, 1)); });
  check_case("conv_groups", 3,
             [](const auto& in) { return conv2d(in[0], in[1], in[2], conv_opts({1, 1}, {1, 1}, {1, 1}, 2)); });
  check_case("conv_depthwise", 2,
             [](const auto& in) { return conv2d(in[0], in[1], Tensor(), conv_opts({2, 2}, {1, 1}, {1, 1}, 4)); });
  check_case("conv_1x1", 3, [](const auto& in) { return conv2d(in[0], in[1], in[2]); });
}

TEST_CASE("torch golden: linear and batched matmul") {
  check_case("linear", 3, [](const auto& in) { return linear(in[0], in[1], in[2]); });
  check_case("matmul_batched", 2, [](const auto& in) { return matmul(in[0], in[1]); });
}

TEST_CASE("torch golden: pooling") {
  check_case("max_pool", 1, [](const auto& in) { return max_pool2d(in[0], Pool2dOptions::square(3, 2, 1)); });
  check_case("avg_pool", 1, [](const auto& in) {
    Pool2dOptions o = Pool2dOptions::square(2, 2, 1);
    o.count_include_pad = false;
    return avg_pool2d(in[0], o);
  });
  check_case("adaptive_avg_pool", 1, [](const auto& in) { return adaptive_avg_pool2d(in[0], 3, 2); });
}

TEST_CASE("torch golden: batch norm in training and eval, with running statistics") {
  const SafetensorsFile& f = golden();
  Tensor rm = f.at("batch_norm_train.running_mean_before").clone();
  Tensor rv = f.at("batch_norm_train.running_var_before").clone();
  BatchNormOptions train;
  train.training = true;
  check_case("batch_norm_train", 3, [&](const auto& in) { return batch_norm(in[0], in[1], in[2], rm, rv, train); });
  require_close(rm, f.at("batch_norm_train.running_mean_after"), "running_mean");
  require_close(rv, f.at("batch_norm_train.running_var_after"), "running_var");
  Tensor em = f.at("batch_norm_eval.running_mean"), ev = f.at("batch_norm_eval.running_var");
  check_case("batch_norm_eval", 3, [&](const auto& in) { return batch_norm(in[0], in[1], in[2], em, ev); });
}

TEST_CASE("torch golden: losses, softmax family and reductions") {
  const SafetensorsFile& f = golden();
  check_case("cross_entropy", 1, [&](const auto& in) {
    CrossEntropyOptions o;
    o.label_smoothing = 0.1;
    return cross_entropy(in[0], f.at("cross_entropy.target"), o).reshape({1});
  });
  check_case("cross_entropy_spatial", 1, [&](const auto& in) {
    CrossEntropyOptions o;
    o.reduction = Reduction::sum;
    return cross_entropy(in[0], f.at("cross_entropy_spatial.target"), o).reshape({1});
  });
  check_case("log_softmax", 1, [](const auto& in) { return log_softmax(in[0], 1); });
  check_case("softmax", 1, [](const auto& in) { return softmax(in[0], -1); });
  check_case("logsumexp", 1, [](const auto& in) { return logsumexp(in[0], {0, 2}); });
  check_case("var", 1, [](const auto& in) { return var(in[0], {1}); });
}
