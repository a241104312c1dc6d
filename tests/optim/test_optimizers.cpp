// Tests for SGD, Adam, AdamW, parameter groups, state export/import, reset_state and clip_grad_norm.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "core/parallel.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "support/test_util.h"

using namespace lowbit;
using test::error_of;

namespace {

const std::vector<double> kP0 = {0.5, -1.0, 2.0, 0.25};
const std::vector<std::vector<double>> kGrads = {{0.1, -0.2, 0.3, 0.0}, {-0.4, 0.5, 0.05, 1.0}, {0.2, 0.2, -0.6, -0.3}};

Tensor make_param(const std::vector<double>& v, Shape shape = {2, 2}) {
  std::vector<float> f(v.begin(), v.end());
  Tensor t = Tensor::from_vector(f, shape);
  t.set_requires_grad();
  return t;
}

void set_grad(Tensor& p, const std::vector<double>& g) {
  std::vector<float> f(g.begin(), g.end());
  p.set_grad(Tensor::from_vector(f, p.shape()));
}

void require_close(const Tensor& t, const std::vector<double>& want, double tol = 2e-6) {
  auto got = t.to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}

// torch.optim.SGD 1.13, element by element in double.
std::vector<double> sgd_ref(const SgdOptions& o) {
  std::vector<double> p = kP0, buf(p.size());
  for (size_t k = 0; k < kGrads.size(); ++k)
    for (size_t i = 0; i < p.size(); ++i) {
      double d = kGrads[k][i] + o.weight_decay * p[i];
      if (o.momentum > 0) {
        buf[i] = k == 0 ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      p[i] -= o.lr * d;
    }
  return p;
}

// torch.optim.Adam / AdamW 1.13, element by element in double.
std::vector<double> adam_ref(const AdamOptions& o, bool decoupled) {
  std::vector<double> p = kP0, m(p.size()), v(p.size()), vmax(p.size());
  for (size_t k = 0; k < kGrads.size(); ++k) {
    double t = static_cast<double>(k + 1);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGrads[k][i];
      if (decoupled) p[i] *= 1 - o.lr * o.weight_decay;
      else g += o.weight_decay * p[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
      vmax[i] = std::max(vmax[i], v[i]);
      double vv = o.amsgrad ? vmax[i] : v[i];
      double denom = std::sqrt(vv) / std::sqrt(1 - std::pow(o.beta2, t)) + o.eps;
      p[i] -= o.lr / (1 - std::pow(o.beta1, t)) * m[i] / denom;
    }
  }
  return p;
}

template <class Opt, class Options>
Tensor run3(const Options& o) {
  Tensor p = make_param(kP0);
  Opt opt({{"w", p}}, o);
  for (const auto& g : kGrads) {
    set_grad(p, g);
    opt.step();
  }
  return p;
}

}  // namespace

TEST_CASE("SGD matches torch over three steps", "[optim]") {
  SgdOptions plain;
  plain.lr = 0.1;
  require_close(run3<SGD>(plain), sgd_ref(plain));
  require_close(run3<SGD>(plain), {0.51000005, -1.04999995, 2.0250001, 0.180000007});

  SgdOptions mom;
  mom.lr = 0.1, mom.momentum = 0.9, mom.dampening = 0.1, mom.weight_decay = 0.01;
  require_close(run3<SGD>(mom), sgd_ref(mom));
  require_close(run3<SGD>(mom), {0.52064389, -1.04401207, 1.95362508, 0.104752056});

  SgdOptions nes;
  nes.lr = 0.1, nes.momentum = 0.9, nes.nesterov = true, nes.weight_decay = 0.01;
  require_close(run3<SGD>(nes), sgd_ref(nes));
  require_close(run3<SGD>(nes), {0.531950951, -1.09671032, 1.98153663, 0.034352228});
}

TEST_CASE("Adam and AdamW match torch over three steps", "[optim]") {
  AdamOptions a;
  a.lr = 0.01;
  require_close(run3<Adam>(a), adam_ref(a, false));
  require_close(run3<Adam>(a), {0.49669677, -0.999851584, 1.98513031, 0.238885716});

  AdamOptions b;
  b.lr = 0.01, b.beta1 = 0.8, b.beta2 = 0.9, b.eps = 1e-6, b.weight_decay = 0.1, b.amsgrad = true;
  require_close(run3<Adam>(b), adam_ref(b, false));
  require_close(run3<Adam>(b), {0.493673146, -0.995656788, 1.97950196, 0.228516906});

  AdamWOptions w;
  w.lr = 0.01;
  REQUIRE(w.weight_decay == 1e-2);
  require_close(run3<AdamW>(w), adam_ref(w, true));
  require_close(run3<AdamW>(w), {0.496548206, -0.999553144, 1.98453307, 0.238811448});

  AdamWOptions x;
  x.lr = 0.01, x.weight_decay = 0.5, x.amsgrad = true;
  require_close(run3<AdamW>(x), adam_ref(x, true));
  require_close(run3<AdamW>(x), {0.489305973, -0.985004067, 1.95541906, 0.235191643});
}

TEST_CASE("fused update is identical on a large tensor across thread counts", "[optim]") {
  const int64_t n = 100000;
  std::vector<double> v(n), g(n);
  for (int64_t i = 0; i < n; ++i) v[i] = std::sin(0.1 * i), g[i] = std::cos(0.37 * i);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    int before = get_num_threads();
    set_num_threads(threads);
    Tensor p = make_param(v, {n});
    AdamOptions o;
    o.amsgrad = true, o.weight_decay = 0.1;
    Adam opt({{"w", p}}, o);
    for (int k = 0; k < 2; ++k) {
      set_grad(p, g);
      opt.step();
    }
    set_num_threads(before);
    results.push_back(p.to_vector<float>());
  }
  REQUIRE(results[0] == results[1]);
}

TEST_CASE("parameters without a gradient are skipped; zero_grad drops gradients", "[optim]") {
  Tensor a = make_param(kP0), b = make_param(kP0);
  SgdOptions o;
  o.lr = 0.1, o.momentum = 0.5;
  SGD opt({{"a", a}, {"b", b}}, o);
  set_grad(a, kGrads[0]);
  opt.step();
  require_close(b, kP0, 0);
  REQUIRE(opt.state("b") == nullptr);
  REQUIRE(opt.state("a") != nullptr);
  opt.zero_grad();
  REQUIRE_FALSE(a.grad().defined());
  auto before = a.to_vector<float>();
  opt.step();
  REQUIRE(a.to_vector<float>() == before);
}

TEST_CASE("glob_match", "[optim]") {
  REQUIRE(glob_match("*", ""));
  REQUIRE(glob_match("*.bias", "features.0.bias"));
  REQUIRE_FALSE(glob_match("*.bias", "features.0.weight"));
  REQUIRE(glob_match("layer?.*.w*", "layer1.0.wq.alpha"));
  REQUIRE_FALSE(glob_match("layer?.w", "layer10.w"));
  REQUIRE(glob_match("a*b*c", "aXbYbZc"));
  REQUIRE_FALSE(glob_match("a*b*c", "aXbYbZ"));
  REQUIRE(glob_match("fc.weight", "fc.weight"));
  REQUIRE_FALSE(glob_match("fc.weight", "fc.weight2"));
}

TEST_CASE("parameter groups by first matching glob, with their own lr and weight decay", "[optim]") {
  Tensor aw = make_param(kP0), ab = make_param(kP0), bw = make_param(kP0), bb = make_param(kP0);
  SgdOptions o;
  o.lr = 0.1, o.weight_decay = 0.01;
  std::vector<ParamGroupSpec> specs = {{"*.bias", 0.5, 0.0}, {"a.*", std::nullopt, 0.2}};
  SGD opt({{"a.weight", aw}, {"a.bias", ab}, {"b.weight", bw}, {"b.bias", bb}}, o, specs);
  const auto& gs = opt.groups();
  REQUIRE(gs.size() == 3);
  REQUIRE(gs[0].names == std::vector<std::string>{"a.bias", "b.bias"});
  REQUIRE(gs[0].lr == 0.5);
  REQUIRE(gs[0].base_lr == 0.5);
  REQUIRE(gs[0].weight_decay == 0.0);
  REQUIRE(gs[1].names == std::vector<std::string>{"a.weight"});
  REQUIRE(gs[1].lr == 0.1);
  REQUIRE(gs[1].weight_decay == 0.2);
  REQUIRE(gs[2].match.empty());
  REQUIRE(gs[2].names == std::vector<std::string>{"b.weight"});
  REQUIRE(gs[2].weight_decay == 0.01);
  REQUIRE(opt.param("b.weight").is_same(bw));

  for (Tensor* t : {&aw, &ab, &bw, &bb}) set_grad(*t, kGrads[0]);
  opt.step();
  auto expect = [&](double lr, double wd) {
    std::vector<double> r(kP0.size());
    for (size_t i = 0; i < r.size(); ++i) r[i] = kP0[i] - lr * (kGrads[0][i] + wd * kP0[i]);
    return r;
  };
  require_close(ab, expect(0.5, 0.0));
  require_close(bb, expect(0.5, 0.0));
  require_close(aw, expect(0.1, 0.2));
  require_close(bw, expect(0.1, 0.01));

  std::string msg = error_of([&] { SGD bad({{"a.weight", aw}}, o, {{"*.bias", 0.5, {}}}); });
  REQUIRE_THAT(msg, Catch::Contains("*.bias") && Catch::Contains("SGD"));
  // A later spec whose parameters an earlier spec took also matches nothing.
  REQUIRE_THROWS_AS(SGD({{"a.weight", aw}}, o, {{"a.*", 0.5, {}}, {"*.weight", 0.5, {}}}), Error);
  REQUIRE_THAT(error_of([&] { SGD bad({{"x", aw}, {"x", ab}}, o); }), Catch::Contains("twice"));
  REQUIRE_THAT(error_of([&] { SGD bad({}, o); }), Catch::Contains("empty"));
  REQUIRE_THAT(error_of([&] { SGD bad({{"x", aw}}, o, {{"x", -1.0, {}}}); }), Catch::Contains("lr"));
}

TEST_CASE("state export and import resume exactly", "[optim]") {
  AdamOptions o;
  o.lr = 0.01, o.amsgrad = true, o.weight_decay = 0.1;
  Tensor p = make_param(kP0), q = make_param({1, 2}, {2});
  Adam opt({{"layer.w", p}, {"q", q}}, o, {{"layer.*", 0.02, {}}});
  for (int k = 0; k < 2; ++k) {
    set_grad(p, kGrads[k]);
    set_grad(q, {0.5, -0.5});
    opt.step();
  }
  opt.groups()[0].lr = 0.015;
  OptimizerState st = opt.state_dict();
  std::vector<std::string> names;
  for (const auto& [n, t] : st.tensors) names.push_back(n);
  REQUIRE(names == std::vector<std::string>{"optim.layer.w.exp_avg", "optim.layer.w.exp_avg_sq",
                                            "optim.layer.w.max_exp_avg_sq", "optim.layer.w.step", "optim.q.exp_avg",
                                            "optim.q.exp_avg_sq", "optim.q.max_exp_avg_sq", "optim.q.step"});
  REQUIRE(st.tensors[3].second.item<int64_t>() == 2);
  REQUIRE(st.scalars.size() == 2);
  REQUIRE(st.scalars[0].first == "optim.param_groups.0.lr");
  REQUIRE(st.scalars[0].second == 0.015);

  Tensor p2 = make_param(kP0), q2 = make_param({1, 2}, {2});
  p2.detach().copy_(p);
  q2.detach().copy_(q);
  Adam resumed({{"layer.w", p2}, {"q", q2}}, o, {{"layer.*", 0.02, {}}});
  resumed.load_state(st);
  REQUIRE(resumed.groups()[0].lr == 0.015);
  REQUIRE(resumed.groups()[0].base_lr == 0.02);
  for (auto* pair : {&p, &p2}) set_grad(*pair, kGrads[2]);
  for (auto* pair : {&q, &q2}) set_grad(*pair, {0.25, 1.0});
  opt.step();
  resumed.step();
  REQUIRE(p.to_vector<float>() == p2.to_vector<float>());
  REQUIRE(q.to_vector<float>() == q2.to_vector<float>());
  // The export is a snapshot, not a view of live state.
  REQUIRE(st.tensors[3].second.item<int64_t>() == 2);

  // SGD momentum buffers round trip too; SGD has no step entry.
  SgdOptions so;
  so.lr = 0.1, so.momentum = 0.9;
  Tensor s1 = make_param(kP0), s2 = make_param(kP0);
  SGD a({{"w", s1}}, so), b({{"w", s2}}, so);
  set_grad(s1, kGrads[0]);
  a.step();
  s2.detach().copy_(s1);
  auto ts = a.state_tensors();
  REQUIRE(ts.size() == 1);
  REQUIRE(ts[0].first == "optim.w.momentum_buffer");
  b.load_state(ts);
  set_grad(s1, kGrads[1]);
  set_grad(s2, kGrads[1]);
  a.step();
  b.step();
  REQUIRE(s1.to_vector<float>() == s2.to_vector<float>());
}

TEST_CASE("load_state rejects bad entries and leaves state untouched", "[optim]") {
  AdamOptions o;
  Tensor p = make_param(kP0);
  Adam opt({{"w", p}}, o);
  set_grad(p, kGrads[0]);
  opt.step();
  OptimizerState good = opt.state_dict();
  auto with = [&](auto edit) {
    OptimizerState s = good;
    edit(s);
    return error_of([&] { opt.load_state(s); });
  };
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors.erase(s.tensors.begin() + 1); }),
               Catch::Contains("missing") && Catch::Contains("optim.w.exp_avg_sq"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors.pop_back(); }), Catch::Contains("optim.w.step"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors[0].first = "optim.v.exp_avg"; }),
               Catch::Contains("optim.v.exp_avg") && Catch::Contains("no parameter"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors[0].second = Tensor::zeros({4}); }),
               Catch::Contains("optim.w.exp_avg") && Catch::Contains("[4]"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors.emplace_back("optim.w.momentum_buffer", Tensor::zeros({2, 2})); }),
               Catch::Contains("momentum_buffer"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.scalars[0].first = "optim.param_groups.3.lr"; }),
               Catch::Contains("optim.param_groups.3.lr"));
  REQUIRE_THAT(with([](OptimizerState& s) { s.tensors[0].first = "adam.w.exp_avg"; }), Catch::Contains("adam.w"));
  REQUIRE(opt.state("w")->step == 1);
  // An empty state means "fresh": everything restarts.
  opt.load_state(OptimizerState{});
  REQUIRE(opt.state("w") == nullptr);
}

TEST_CASE("reset_state and replace_param restart one parameter", "[optim]") {
  AdamOptions o;
  o.lr = 0.01;
  Tensor p = make_param(kP0), q = make_param(kP0);
  Adam opt({{"p", p}, {"q", q}}, o);
  set_grad(p, kGrads[0]);
  set_grad(q, kGrads[0]);
  opt.step();
  opt.reset_state("p");
  REQUIRE(opt.state("p") == nullptr);
  REQUIRE(opt.state("q")->step == 1);
  // After a reset the next update is a first Adam step: p moves by lr*sign(g) (where g != 0).
  auto before = p.to_vector<float>();
  set_grad(p, kGrads[1]);
  opt.step();
  auto after = p.to_vector<float>();
  for (size_t i = 0; i < before.size(); ++i)
    REQUIRE(after[i] - before[i] == Approx(-0.01 * (kGrads[1][i] > 0 ? 1 : -1)).epsilon(1e-4));
  REQUIRE(opt.state("p")->step == 1);
  REQUIRE_THAT(error_of([&] { opt.reset_state("nope"); }), Catch::Contains("nope"));

  Tensor wide = make_param({1, 2, 3, 4, 5, 6}, {6});
  opt.replace_param("q", wide);
  REQUIRE(opt.state("q") == nullptr);
  set_grad(wide, {1, 1, 1, 1, 1, 1});
  opt.step();
  REQUIRE(opt.param("q").is_same(wide));
  REQUIRE(wide.at({0}) == Approx(0.99).epsilon(1e-5));
}

TEST_CASE("clip_grad_norm matches torch", "[optim]") {
  Tensor p = make_param(kP0), q = make_param({1, 2}, {2}), r = make_param({7}, {1});
  set_grad(p, kGrads[0]);
  set_grad(q, {3, -4});
  double total = clip_grad_norm(std::vector<Tensor>{p, q, r}, 1.0);
  REQUIRE(total == Approx(std::sqrt(0.01 + 0.04 + 0.09 + 9 + 16)).epsilon(1e-7));
  require_close(p.grad(), {0.01994423195719719, -0.03988846391439438, 0.05983269587159157, 0.0}, 1e-7);
  require_close(q.grad(), {0.5983269214630127, -0.7977692484855652}, 1e-7);
  REQUIRE_FALSE(r.grad().defined());
  // Under the limit nothing changes.
  double again = clip_grad_norm(NamedTensors{{"p", p}, {"q", q}}, 10.0);
  REQUIRE(again == Approx(1.0).epsilon(1e-5));
  require_close(q.grad(), {0.5983269214630127, -0.7977692484855652}, 1e-7);
  REQUIRE_THAT(error_of([&] { clip_grad_norm(std::vector<Tensor>{p}, -1); }), Catch::Contains("max_norm"));
}

TEST_CASE("bad optimizer arguments are errors naming the argument", "[optim]") {
  Tensor p = make_param(kP0);
  auto sgd = [&](SgdOptions o) { return error_of([&] { SGD s({{"w", p}}, o); }); };
  auto adam = [&](AdamOptions o) { return error_of([&] { Adam s({{"w", p}}, o); }); };
  SgdOptions s;
  s.lr = -0.1;
  REQUIRE_THAT(sgd(s), Catch::Contains("SGD") && Catch::Contains("lr") && Catch::Contains("-0.1"));
  s = {};
  s.momentum = 1.0;
  REQUIRE_THAT(sgd(s), Catch::Contains("momentum = 1"));
  s = {};
  s.nesterov = true;
  REQUIRE_THAT(sgd(s), Catch::Contains("momentum") && Catch::Contains("nesterov"));
  s.momentum = 0.9, s.dampening = 0.1;
  REQUIRE_THAT(sgd(s), Catch::Contains("dampening"));
  s = {};
  s.weight_decay = -1;
  REQUIRE_THAT(sgd(s), Catch::Contains("weight_decay"));
  AdamOptions a;
  a.beta1 = 1.0;
  REQUIRE_THAT(adam(a), Catch::Contains("Adam") && Catch::Contains("beta1 = 1"));
  a = {};
  a.beta2 = -0.5;
  REQUIRE_THAT(adam(a), Catch::Contains("beta2"));
  a = {};
  a.eps = -1e-8;
  REQUIRE_THAT(adam(a), Catch::Contains("eps"));
  AdamWOptions w;
  w.lr = std::nan("");
  REQUIRE_THAT(error_of([&] { AdamW x({{"w", p}}, w); }), Catch::Contains("AdamW") && Catch::Contains("lr"));
  Tensor labels = Tensor::zeros({3}, DType::i64);
  REQUIRE_THAT(error_of([&] { SGD x({{"idx", labels}}, SgdOptions{}); }), Catch::Contains("idx"));
  set_grad(p, kGrads[0]);
  SGD ok({{"w", p}}, SgdOptions{});
  p.impl().grad = Tensor::zeros({4}).impl_ptr();  // a wrong-shaped gradient slipped in
  REQUIRE_THAT(error_of([&] { ok.step(); }), Catch::Contains("'w'"));
}
