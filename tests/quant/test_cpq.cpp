// The cpq / srq quantizer: registry, init, training forward = eval quantizer, DropBits in the
// forward, learned bits, export round trip (QUANTIZERS.md checks 6, 7, 9).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "layers/zoo.h"
#include "quant/bit_gates.h"
#include "quant/cpq.h"
#include "quant/dropbits.h"
#include "quant/export.h"
#include "quant/quantize_model.h"
#include "quant/registry.h"
#include "support/test_util.h"

using namespace lowbit;

namespace {

QuantSpec cpq_spec(int bits, QuantRole role = QuantRole::weight) {
  QuantSpec s;
  s.method = "cpq";
  s.bits = bits;
  s.role = role;
  s.is_signed = role == QuantRole::weight;
  return s;
}

Tensor randn(const Shape& shape, uint64_t seed, double scale = 1) {
  Generator g(seed);
  return Tensor::randn(shape, g, 0, scale);
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

double sig(double t) { return 1 / (1 + std::exp(-t)); }

}  // namespace

TEST_CASE("cpq: registered as cpq and srq, with its capabilities") {
  QuantSpec s = cpq_spec(2);
  s.shape = {4, 3};
  CHECK(dynamic_cast<CpqQuantizer*>(make_quantizer(s).get()) != nullptr);
  s.method = "srq";
  CHECK(dynamic_cast<CpqQuantizer*>(make_quantizer(s).get()) != nullptr);
  CHECK(find_quantizer("srq").capabilities.dropbits);
  CHECK(find_quantizer("cpq").capabilities.learn_bits);
  s.options["init"] = "median";
  CHECK_THROWS_AS(CpqQuantizer(s), Error);
  s.options.erase("init");
  s.options["sigma_init"] = "wide";
  // The key once, then what was wrong with its value.
  CHECK(test::error_of([&] { CpqQuantizer q(s); }) == "quant.options.sigma_init: expected a finite number, got 'wide'");
}

TEST_CASE("cpq: init, and the training forward is the eval quantizer bit for bit (checks 6, 9)") {
  for (int bits : {2, 3, 4, 8}) {
    for (bool per_channel : {false, true}) {
      QuantSpec s = cpq_spec(bits);
      s.shape = {6, 50};
      s.per_channel = per_channel;
      CpqQuantizer q(s);
      Tensor w = randn({6, 50}, 3, 0.1);
      Tensor y = q.forward(w);  // initialises from w
      const GridRange r = grid_range(bits, true);
      std::vector<float> a = q.step().to_vector<float>(), sg = q.sigma_values();
      REQUIRE(a.size() == size_t(per_channel ? 6 : 1));
      for (size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i] > 0);
        CHECK(a[i] * std::max(-r.qmin, r.qmax) <= 0.1 * 5);  // within the tensor's range
        CHECK(sg[i] == Approx(a[i] / 3).epsilon(1e-4));
      }
      CHECK(bit_equal(y, grid_quantize(w, q.step(), r)));
      q.eval();
      Tensor ye = q.forward(w);
      CHECK(bit_equal(ye, y));
      IntTensor it = q.export_int(w);
      CHECK(bit_equal(it.dequantize(), ye));
      CHECK(q.bits() == bits);
    }
  }
}

TEST_CASE("cpq: mse init beats max init on Gaussian weights at 2 bits") {
  Tensor w = randn({4000}, 5);
  const GridRange r = grid_range(2, true);
  const float a = mse_step(w, r, 1)[0];
  auto mse = [&](float al) {
    Tensor y = grid_quantize(w, Tensor::scalar(al), r);
    double e = 0;
    for (int64_t i = 0; i < w.numel(); ++i) e += std::pow(w.data<float>()[i] - y.data<float>()[i], 2);
    return e;
  };
  CHECK(mse(a) < mse(abs_max(w)[0] / 2));
  CHECK(mse(a) <= mse(a * 1.05f));
  CHECK(mse(a) <= mse(a * 0.95f));
}

TEST_CASE("cpq: gradients reach x, alpha_raw and sigma_raw as the soft mean's (exp and softplus maps)") {
  for (const char* map_name : {"exp", "softplus"}) {
    QuantSpec s = cpq_spec(2);
    s.options["positive"] = map_name;
    const PositiveMap map = positive_map_of(s);
    auto dmap = [&](double raw) { return map == PositiveMap::exp ? std::exp(raw) : sig(raw); };
    s.shape = {5};
    s.options["alpha_direct_grad"] = "false";
    CpqQuantizer q(s);
    Tensor w = Tensor::from_vector(std::vector<float>{-0.9f, -0.3f, 0.12f, 0.4f, 0.77f}).set_requires_grad();
    q.forward(w.detach());  // init
    Tensor ar = q.parameter("alpha_raw"), sr = q.parameter("sigma_raw");
    ar.copy_(Tensor::scalar(positive_inverse(0.5, map)));
    sr.copy_(Tensor::scalar(positive_inverse(0.3, map)));
    q.zero_grad();
    Tensor y = q.forward(w);
    sum(y).backward();
    // m(x) in double, gbar held at alpha = 0.5
    auto total_m = [&](double alpha, double sigma, double dx0) {
      double t = 0;
      for (int i = 0; i < 5; ++i) {
        const double x = w.data<float>()[i] + (i == 0 ? dx0 : 0);
        double R = 0, N = 0;
        for (int k = -2; k <= 1; ++k) {
          const double r = sig((alpha * k + alpha / 2 - x) / sigma) - sig((alpha * k - alpha / 2 - x) / sigma);
          R += r, N += r * 0.5 * k;
        }
        t += N / R;
      }
      return t;
    };
    const double h = 1e-5, a = positive_values(ar, map)[0], sgm = positive_values(sr, map)[0];
    const double da = (total_m(a + h, sgm, 0) - total_m(a - h, sgm, 0)) / (2 * h);
    const double ds = (total_m(a, sgm + h, 0) - total_m(a, sgm - h, 0)) / (2 * h);
    const double dx0 = (total_m(a, sgm, h) - total_m(a, sgm, -h)) / (2 * h);
    CHECK(w.grad().to_vector<float>()[0] == Approx(dx0).margin(1e-4));
    CHECK(ar.grad().item() == Approx(da * dmap(ar.item())).epsilon(1e-3).margin(1e-4));
    CHECK(sr.grad().item() == Approx(ds * dmap(sr.item())).epsilon(1e-3).margin(1e-4));
  }
}

TEST_CASE("cpq + DropBits: training forward on survivors, eval on the full grid, reproducible (check 7)") {
  for (auto gran : {DropBitsSpec::Granularity::per_element, DropBitsSpec::Granularity::per_tensor}) {
    QuantSpec s = cpq_spec(3);
    s.shape = {2000};
    s.dropbits.enabled = true;
    s.dropbits.p = 0.5;
    s.dropbits.granularity = gran;
    CpqQuantizer q(s);
    q.set_generator(Generator(11));
    Tensor w = randn({2000}, 8, 0.5);
    const GridRange r = grid_range(3, true);
    bool saw_change = false;
    for (int draw = 0; draw < 20 && !saw_change; ++draw) {
      Tensor y1 = q.forward(w);
      const float a = q.step().item<float>();
      int64_t changed = 0, odd_inside = 0;
      for (int64_t i = 0; i < w.numel(); ++i) {
        const float code = y1.data<float>()[i] / a;
        REQUIRE(code == std::nearbyint(code));
        REQUIRE((code >= r.qmin && code <= r.qmax));
        const float full = grid_code(w.data<float>()[i], a, r.qmin, r.qmax);
        REQUIRE(std::fabs(code - full) <= 2);  // the nearest survivor is never far
        changed += code != full;
        odd_inside += int(code) % 2 != 0 && code != r.qmax;
      }
      saw_change = changed > 0;
      (void)odd_inside;
      // one mask for the tensor: the output is the nearest survivor of one of the masks
      if (gran == DropBitsSpec::Granularity::per_tensor) {
        DropBitsSampler d(s.dropbits, 3, true, GridKind::rq);
        bool some = false;
        for (uint8_t m : {0, 2, 4, 6}) {
          const std::vector<int64_t> sv = d.survivors(m);
          bool all = true;
          for (int64_t i = 0; i < w.numel() && all; ++i) {
            const float u = w.data<float>()[i] / a;
            float best = 1e9f, pick = 0;
            for (int64_t c : sv)
              if (std::fabs(u - c) < best) best = std::fabs(u - c), pick = float(c);
            all = y1.data<float>()[i] == pick * a;
          }
          some = some || all;
        }
        CHECK(some);
      }
    }
    CHECK(saw_change);
    // same seed, same masks
    CpqQuantizer q2(s);
    q2.set_generator(Generator(11));
    q2.forward(w);  // init from the same w gives the same alpha
    q2.set_generator(Generator(11));
    q.set_generator(Generator(11));
    CHECK(bit_equal(q.forward(w), q2.forward(w)));
    q.eval();
    CHECK(bit_equal(q.forward(w), grid_quantize(w, q.step(), r)));
  }
}

TEST_CASE("cpq + learned bits: gates, bits read off, step, regulariser, export (checks 8, 9)") {
  QuantSpec s = cpq_spec(2);
  s.shape = {300};
  s.learn_bits.enabled = true;
  s.learn_bits.max_bits = 4;
  s.learn_bits.lambda = 1e-3;
  CpqQuantizer q(s);
  q.set_generator(Generator(3));
  Tensor w = randn({300}, 4, 0.3);
  q.forward(w);
  CHECK(q.bits() == 4);
  CHECK(q.gate_values() == std::vector<float>{1, 1, 1});
  const float alpha = positive_values(q.parameter("alpha_raw"), positive_map_of(s))[0];
  // the penalty: lambda * #weights * sum P(z != 0)
  Tensor la = q.parameter("gate_log_alpha");
  CHECK(q.regularizer().item() == Approx(1e-3 * 300 * 3 * HardConcrete::p_open(3.0)).epsilon(1e-5));
  // training sends gradient to the gates
  q.zero_grad();
  Tensor y = q.forward(w.detach().set_requires_grad());
  Tensor loss = add(sum(mul(y, y)), q.regularizer());
  loss.backward();
  REQUIRE(la.grad().defined());
  CHECK(la.grad().numel() == 3);
  // close level 3 (index 1): levels 3 and 4 close, 2 bits remain, step = alpha * 2^(4-2)
  la.copy_(Tensor::from_vector(std::vector<float>{3.0f, -5.0f, 3.0f}));
  CHECK(q.bits() == 2);
  CHECK(q.step().item<float>() == alpha * 4);
  q.eval();
  Tensor ye = q.forward(w);
  CHECK(bit_equal(ye, grid_quantize(w, Tensor::scalar(alpha * 4), grid_range(2, true))));
  IntTensor it = q.export_int(w);
  CHECK(it.bits == 2);
  CHECK(bit_equal(it.dequantize(), ye));
  // the training forward with the closed levels uses the same points
  q.train();
  Tensor yt = q.forward(w);
  for (int64_t i = 0; i < w.numel(); ++i) REQUIRE(std::fmod(yt.data<float>()[i] / alpha, 4.0f) == 0.0f);
}

TEST_CASE("cpq: unsigned activations calibrate and quantize on {0..2^b-1}") {
  QuantSpec s = cpq_spec(2, QuantRole::activation);
  s.signed_auto = true;
  CpqQuantizer q(s);
  Tensor x = relu(randn({8, 40}, 6));
  {
    NoGradGuard g;
    q.forward(x);  // calibration pass: observes
  }
  q.end_calibration();
  REQUIRE(q.initialized());
  CHECK(!q.is_signed());
  Tensor y = q.forward(x);
  const float a = q.step().item<float>();
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float c = y.data<float>()[i] / a;
    REQUIRE((c >= 0 && c <= 3));
  }
}

namespace {
ModulePtr fw_lenet(uint64_t seed) {
  Generator g(seed);
  ModelOptions o;
  o.batch_norm = true;
  return build_model("lenet5", o, g);
}
Tensor fw_images(int64_t n, uint64_t seed) {
  Generator g(seed);
  return Tensor::rand({n, 1, 28, 28}, g);
}
}  // namespace

TEST_CASE("cpq, srq and rq through the framework: export == eval forward bit for bit (check 9)") {
  for (const std::string config :
       {"method: cpq\nweight_bits: 2\nact_bits: 2", "method: srq\nweight_bits: 3\nact_bits: 3\nper_channel: true",
        "method: cpq\nweight_bits: 3\nact_bits: 4\ngrid: symmetric\ndropbits: {enabled: true, mode: range}",
        "method: cpq\nweight_bits: 2\nact_bits: 2\nlearn_bits: {enabled: true, max_bits: 4}",
        "method: rq\nweight_bits: 2\nact_bits: 2"}) {
    INFO(config);
    test::TempDir dir("cpq_export");
    ModulePtr net = fw_lenet(21);
    quantize_model(*net, config);
    {
      NoGradGuard guard;
      net->forward(fw_images(8, 1));  // calibration
    }
    for (auto& [name, m] : net->named_modules()) m->end_calibration();
    // one training step's forward/backward through every quantizer
    sum(net->forward(fw_images(4, 3))).backward();
    // learned bits: close level 3 of the first layer's weight gates (-> 2 bits there)
    for (auto& [name, p] : net->named_parameters())
      if (name == "0.wq.gate_log_alpha") p.copy_(Tensor::from_vector(std::vector<float>{3.0f, -5.0f, 3.0f}));
    net->eval();
    Tensor x = fw_images(3, 2);
    Tensor y1 = net->forward(x);
    export_quantized(*net, dir.path.string());
    ModulePtr plain = fw_lenet(99);
    load_exported_into(*plain, dir.path.string());
    plain->eval();
    CHECK(bit_equal(y1, plain->forward(x)));
    if (config.find("learn_bits") != std::string::npos) {
      auto layers = quantized_layers(*net);
      CHECK(layers.at(0).wq->bits() == 2);
      CHECK(layers.at(1).wq->bits() == 4);
    }
  }
}
