// sgemm kernels (both CPU backends), matmul with batching and broadcasting, linear.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <tuple>

#include "core/kernels/gemm.h"
#include "core/ops/linalg.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

std::vector<float> randv(size_t n, uint64_t seed) {
  Generator gen(seed);
  return Tensor::rand({static_cast<int64_t>(n)}, gen, -1, 1).to_vector<float>();
}

// C = alpha op(A) op(B) + beta C on row-major buffers, in double.
void naive_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = static_cast<float>(alpha * s + (beta == 0 ? 0.0 : double(beta) * C[i * ldc + j]));
    }
}

// Reference matmul of [.., M, K] x [.., K, N] tensors whose batch dims are already equal.
Tensor naive_bmm(const Tensor& a, const Tensor& b) {
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], N = b.shape()[b.dim() - 1];
  const int64_t nb = a.numel() / (M * K);
  Shape s = a.shape();
  s.back() = N;
  Tensor y = Tensor::empty(s);
  for (int64_t i = 0; i < nb; ++i)
    naive_gemm(false, false, M, N, K, 1, a.data<float>() + i * M * K, K, b.data<float>() + i * K * N, N, 0,
               y.data<float>() + i * M * N, N);
  return y;
}

void require_close(const Tensor& got, const Tensor& want, double tol = 1e-4) {
  REQUIRE(got.shape() == want.shape());
  std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i);
    REQUIRE(g[i] == Approx(w[i]).margin(tol).epsilon(tol));
  }
}

struct BackendGuard {
  explicit BackendGuard(const char* name) { cpu::set_gemm_backend(name); }
  ~BackendGuard() { cpu::set_gemm_backend(""); }
};

}  // namespace

TEST_CASE("linalg: sgemm matches a naive product for every transpose, alpha, beta and leading dimension") {
  std::vector<const char*> backends{"eigen"};
  try {
    cpu::set_gemm_backend("blas");  // throws when built without OpenBLAS
    backends.push_back("blas");
  } catch (const Error&) {
  }
  cpu::set_gemm_backend("");
  for (const char* be : backends) {
    BackendGuard guard(be);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{5, 7, 3}, {33, 17, 65}, {1, 40, 9}, {64, 1, 130}}) {
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
          std::vector<float> A = randv(size_t((ta ? K : M) * lda), 1), B = randv(size_t((tb ? N : K) * ldb), 2);
          std::vector<float> C0 = randv(size_t(M * ldc), 3);
          for (float beta : {0.0f, 1.0f, -0.5f}) {
            std::vector<float> got = C0, want = C0;
            if (beta == 0.0f) std::fill(got.begin(), got.end(), NAN);  // beta = 0 must not read C
            cpu::sgemm(ta, tb, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta, got.data(), ldc);
            naive_gemm(ta, tb, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) {
                INFO(be << " ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K << " beta=" << beta);
                REQUIRE(got[size_t(i * ldc + j)] == Approx(want[size_t(i * ldc + j)]).margin(1e-4));
              }
          }
        }
    // K == 0 scales C by beta.
    std::vector<float> c{1, 2, 3, 4};
    cpu::sgemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
    REQUIRE(c == std::vector<float>{0.5f, 1, 1.5f, 2});
  }
}

TEST_CASE("linalg: batched sgemm with a shared (stride 0) operand") {
  const int64_t batch = 9, M = 6, N = 5, K = 4;
  std::vector<float> A = randv(size_t(batch * M * K), 4), B = randv(size_t(K * N), 5);
  std::vector<float> C(size_t(batch * M * N)), want(C.size());
  cpu::sgemm_batched(batch, false, false, M, N, K, 1.0f, A.data(), K, M * K, B.data(), N, 0, 0.0f, C.data(), N, M * N);
  for (int64_t i = 0; i < batch; ++i)
    naive_gemm(false, false, M, N, K, 1, A.data() + i * M * K, K, B.data(), N, 0, want.data() + i * M * N, N);
  for (size_t i = 0; i < C.size(); ++i) REQUIRE(C[i] == Approx(want[i]).margin(1e-5));
}

TEST_CASE("linalg: sgemm results are reproducible for a fixed thread count") {
  const int saved = get_num_threads();
  const int64_t n = 301;
  std::vector<float> A = randv(size_t(n * n), 6), B = randv(size_t(n * n), 7);
  for (const char* be : {"eigen", "blas"}) {
    try {
      cpu::set_gemm_backend(be);
    } catch (const Error&) {
      continue;  // built without OpenBLAS
    }
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<float> c1(size_t(n * n)), c2(size_t(n * n));
      cpu::sgemm(false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, c1.data(), n);
      cpu::sgemm(false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, c2.data(), n);
      INFO(be << " threads " << threads);
      REQUIRE(c1 == c2);
    }
  }
  cpu::set_gemm_backend("");
  set_num_threads(saved);
}

TEST_CASE("linalg: gemm backend selection") {
  const std::string name = cpu::gemm_backend_name();
  REQUIRE((name == "openblas" || name == "eigen"));
  REQUIRE(std::string(gemm_backend_name()) == name);
  {
    BackendGuard guard("eigen");
    REQUIRE(std::string(cpu::gemm_backend_name()) == "eigen");
  }
  REQUIRE(std::string(cpu::gemm_backend_name()) == name);
  REQUIRE_THROWS_AS(cpu::set_gemm_backend("mkl"), Error);
}

TEST_CASE("linalg: matmul forward matches naive products, with batch broadcasting and 1-D operands") {
  Generator gen(11);
  Tensor a = Tensor::randn({37, 29}, gen), b = Tensor::randn({29, 41}, gen);
  require_close(matmul(a, b), naive_bmm(a, b));

  Tensor a3 = Tensor::randn({3, 5, 4}, gen), b3 = Tensor::randn({3, 4, 6}, gen);
  require_close(matmul(a3, b3), naive_bmm(a3, b3));
  // 2-D right operand shared by the batch.
  Tensor b2 = Tensor::randn({4, 6}, gen);
  require_close(matmul(a3, b2), naive_bmm(a3, expand(b2, {3, 4, 6})));
  // 2-D left operand shared by the batch.
  Tensor a2 = Tensor::randn({5, 4}, gen);
  require_close(matmul(a2, b3), naive_bmm(expand(a2, {3, 5, 4}), b3));
  // Partial broadcasting of batch dims: [2, 1, M, K] x [3, K, N] -> [2, 3, M, N].
  Tensor a4 = Tensor::randn({2, 1, 5, 4}, gen), b4 = Tensor::randn({3, 4, 6}, gen);
  require_close(matmul(a4, b4), naive_bmm(expand(a4, {2, 3, 5, 4}), expand(b4, {2, 3, 4, 6})));
  // 1-D operands.
  Tensor v = Tensor::randn({4}, gen), w = Tensor::randn({4}, gen);
  Tensor dot = matmul(v, w);
  REQUIRE(dot.dim() == 0);
  double s = 0;
  for (int i = 0; i < 4; ++i) s += double(v.at({i})) * w.at({i});
  REQUIRE(dot.item() == Approx(s).margin(1e-5));
  REQUIRE(matmul(v, b2).shape() == Shape{6});
  require_close(matmul(v, b2), naive_bmm(v.reshape({1, 4}), b2).reshape({6}));
  REQUIRE(matmul(a3, v).shape() == Shape{3, 5});
  require_close(matmul(a3, v), naive_bmm(a3, expand(v.reshape({4, 1}), {3, 4, 1})).reshape({3, 5}));
}

TEST_CASE("linalg: matmul gradients") {
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  REQUIRE_GRADCHECK(mm, {test::random_input({3, 4}, 1), test::random_input({4, 5}, 2)});
  REQUIRE_GRADCHECK(mm, {test::random_input({2, 3, 4}, 3), test::random_input({2, 4, 2}, 4)});
  REQUIRE_GRADCHECK(mm, {test::random_input({2, 3, 4}, 5), test::random_input({4, 3}, 6)});
  REQUIRE_GRADCHECK(mm, {test::random_input({3, 4}, 7), test::random_input({2, 4, 3}, 8)});
  REQUIRE_GRADCHECK(mm, {test::random_input({2, 1, 3, 2}, 9), test::random_input({3, 2, 2}, 10)});
  REQUIRE_GRADCHECK(mm, {test::random_input({1, 3, 2}, 11), test::random_input({2, 1, 2, 4}, 12)});
  REQUIRE_GRADCHECK(mm, {test::random_input({4}, 13), test::random_input({4}, 14)});
  REQUIRE_GRADCHECK(mm, {test::random_input({4}, 15), test::random_input({2, 4, 3}, 16)});
  REQUIRE_GRADCHECK(mm, {test::random_input({2, 3, 4}, 17), test::random_input({4}, 18)});
  // Only one side requiring a gradient.
  Tensor a = test::random_input({3, 4}, 19);
  Generator gen(20);
  Tensor b = Tensor::rand({4, 2}, gen);
  REQUIRE_GRADCHECK(mm, {a, b});
}

TEST_CASE("linalg: linear forward (bias fused) and gradients") {
  Generator gen(21);
  Tensor x = Tensor::randn({7, 2, 13}, gen), w = Tensor::randn({9, 13}, gen), b = Tensor::randn({9}, gen);
  Tensor y = linear(x, w, b);
  REQUIRE(y.shape() == Shape{7, 2, 9});
  Tensor want = naive_bmm(x.reshape({14, 13}), transpose(w, 0, 1)) + b;
  require_close(y, want.reshape({7, 2, 9}));
  require_close(linear(x, w), naive_bmm(x.reshape({14, 13}), transpose(w, 0, 1)).reshape({7, 2, 9}));
  // A single row, and a 1-D input: the bias must be copied, never written through.
  std::vector<float> b_before = b.to_vector<float>();
  Tensor x1 = Tensor::randn({13}, gen);
  Tensor y1 = linear(x1, w, b);
  REQUIRE(y1.shape() == Shape{9});
  require_close(y1, (naive_bmm(x1.reshape({1, 13}), transpose(w, 0, 1)) + b).reshape({9}));
  require_close(linear(x1.reshape({1, 13}), w, b), y1.reshape({1, 9}));
  REQUIRE(b.to_vector<float>() == b_before);

  auto lin = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  auto lin_nb = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  REQUIRE_GRADCHECK(lin, {test::random_input({4, 5}, 22), test::random_input({3, 5}, 23), test::random_input({3}, 24)});
  REQUIRE_GRADCHECK(lin, {test::random_input({2, 3, 5}, 25), test::random_input({2, 5}, 26), test::random_input({2}, 27)});
  REQUIRE_GRADCHECK(lin, {test::random_input({5}, 28), test::random_input({3, 5}, 29), test::random_input({3}, 30)});
  REQUIRE_GRADCHECK(lin_nb, {test::random_input({6, 4}, 31), test::random_input({5, 4}, 32)});
}

TEST_CASE("linalg: errors name the op and the shapes") {
  Generator gen(40);
  Tensor a = Tensor::randn({3, 4}, gen), b = Tensor::randn({5, 6}, gen);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what()) + " | " + e.where();
    }
    return std::string();
  };
  std::string m = message([&] { matmul(a, b); });
  REQUIRE(m.find("matmul") != std::string::npos);
  REQUIRE(m.find("[3, 4]") != std::string::npos);
  REQUIRE(m.find("[5, 6]") != std::string::npos);
  REQUIRE_THROWS_AS(matmul(Tensor::randn({2, 3, 4}, gen), Tensor::randn({3, 4, 5}, gen)), Error);
  REQUIRE_THROWS_AS(matmul(a, Tensor::scalar(1.0)), Error);
  REQUIRE_THROWS_AS(matmul(a, Tensor::zeros({4, 2}, DType::i64)), Error);
  m = message([&] { linear(a, b); });
  REQUIRE(m.find("linear") != std::string::npos);
  REQUIRE(m.find("[3, 4]") != std::string::npos);
  REQUIRE_THROWS_AS(linear(a, Tensor::randn({2, 4}, gen), Tensor::randn({3}, gen)), Error);
  REQUIRE_THROWS_AS(linear(a, Tensor::randn({4}, gen)), Error);
}
