// Tests for the experiment-config schema: defaults, a full file, every error kind, --set, round trip.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.h"
#include "train/config.h"

using namespace lowbit;

namespace {

// The message of the lowbit::Error that loading `yaml` with `sets` throws ("" if none).
std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    load_config_string(yaml, "exp.yaml", sets);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const char* kFull = R"(model:
  name: resnet20
  num_classes: 100
  in_channels: 3
  image_size: 32
  hidden: [256]
  batch_norm: true
  shortcut: B
  init_from: runs/fp/model.safetensors
data:
  dataset: cifar100
  path: /data/cifar100
  normalize:
    mean: [0.5071, 0.4865, 0.4409]
    std: [0.2673, 0.2564, 0.2762]
  augment:
    random_crop_padding: 4
    horizontal_flip: yes
  synthetic: {train_size: 64, test_size: 32}
optim:
  name: sgd
  lr: 0.1
  momentum: 0.95
  nesterov: true
  weight_decay: 5e-4
  betas: [0.8, 0.99]
  eps: 1e-6
  groups:
    - match: "*.bias"
      weight_decay: 0
    - match: "fc.*"
      lr: 0.01
  clip_grad_norm: 5
schedule:
  name: multistep
  step_size: 30
  gamma: 0.2
  milestones: [60, 120, 160]
  eta_min: 1e-5
  warmup_epochs: 2
  warmup_start_factor: 0.1
  per_iteration: false
train:
  epochs: 200
  batch_size: 64
  seed: 42
  threads: 4
  eval_interval: 5
  device: cuda:1
  bn_recalibration: 20
quant:
  method: lsq
  bits: {weight: 2, act: 4}
output:
  dir: out
  name: r20
)";

}  // namespace

TEST_CASE("config: defaults", "[config]") {
  ExperimentConfig c = load_config_string("", "configs/my_exp.yaml");
  CHECK(c.model.name == "lenet5");
  CHECK(c.model.num_classes == 10);
  CHECK(c.model.in_channels == -1);
  CHECK(c.model.hidden == std::vector<int>{512, 512});
  CHECK(c.model.shortcut == "A");
  CHECK(c.data.dataset == "fashion_mnist");
  CHECK(c.data.path == "/usr/share/datasets/fashion-mnist");
  CHECK_FALSE(c.data.normalize.has_value());
  CHECK(c.optim.name == "adam");
  CHECK(c.optim.lr == 1e-3);
  CHECK(c.optim.betas == std::vector<double>{0.9, 0.999});
  CHECK(c.optim.eps == 1e-8);
  CHECK(c.schedule.name == "cosine");
  CHECK(c.schedule.per_iteration);
  CHECK(c.train.epochs == 8);
  CHECK(c.train.batch_size == 128);
  CHECK(c.train.threads == 2);
  CHECK(c.train.device == "cpu");
  CHECK(c.quant.yaml.empty());
  CHECK(c.output.dir == "runs");
  CHECK(c.output.name == "my_exp");  // derived from the file name
  // Empty sections are the same as absent ones.
  CHECK(load_config_string("model:\noptim:\n", "configs/my_exp.yaml") == c);
}

TEST_CASE("config: a full valid file", "[config]") {
  ExperimentConfig c = load_config_string(kFull, "full.yaml");
  CHECK(c.model.name == "resnet20");
  CHECK(c.model.num_classes == 100);
  CHECK(c.model.hidden == std::vector<int>{256});
  CHECK(c.model.batch_norm);
  CHECK(c.model.shortcut == "B");
  CHECK(c.model.init_from == "runs/fp/model.safetensors");
  CHECK(c.data.dataset == "cifar100");
  REQUIRE(c.data.normalize.has_value());
  CHECK(c.data.normalize->mean.size() == 3);
  CHECK(c.data.normalize->std[2] == 0.2762);
  CHECK(c.data.augment.random_crop_padding == 4);
  CHECK(c.data.augment.horizontal_flip);
  CHECK(c.data.synthetic.train_size == 64);
  CHECK(c.optim.name == "sgd");
  CHECK(c.optim.lr == 0.1);
  CHECK(c.optim.nesterov);
  CHECK(c.optim.weight_decay == 5e-4);
  REQUIRE(c.optim.groups.size() == 2);
  CHECK(c.optim.groups[0].match == "*.bias");
  CHECK(c.optim.groups[0].weight_decay == 0.0);
  CHECK_FALSE(c.optim.groups[0].lr.has_value());
  CHECK(c.optim.groups[1].lr == 0.01);
  CHECK(c.optim.clip_grad_norm == 5.0);
  CHECK(c.schedule.milestones == std::vector<int>{60, 120, 160});
  CHECK_FALSE(c.schedule.per_iteration);
  CHECK(c.train.seed == 42);
  CHECK(c.train.device == "cuda:1");
  CHECK(c.train.bn_recalibration == 20);
  CHECK(has(c.quant.yaml, "lsq"));
  CHECK(c.output.name == "r20");
}

TEST_CASE("config: load_config reads a file and reports a missing one", "[config]") {
  std::string path = "test_config_tmp.yaml";
  {
    std::ofstream f(path);
    f << "train:\n  epochs: 3\n  batch_sise: 4\n";
  }
  std::string msg;
  try {
    load_config(path);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(has(msg, "test_config_tmp.yaml:3:3"));
  CHECK(has(msg, "train.batch_sise: unknown key"));
  CHECK(has(msg, "did you mean 'train.batch_size'"));
  {
    std::ofstream f(path);
    f << "train:\n  epochs: 3\n";
  }
  ExperimentConfig c = load_config(path);
  CHECK(c.train.epochs == 3);
  CHECK(c.output.name == "test_config_tmp");
  std::remove(path.c_str());
  REQUIRE_THROWS_AS(load_config("no/such/config.yaml"), Error);
  try {
    load_config("no/such/config.yaml");
  } catch (const Error& e) {
    CHECK(has(e.what(), "no/such/config.yaml"));
  }
}

TEST_CASE("config: unknown keys name the path and line", "[config]") {
  std::string m = error_of("optim:\n  name: sgd\n  lrr: 0.1\n");
  CHECK(has(m, "exp.yaml:3:3"));
  CHECK(has(m, "optim.lrr: unknown key"));
  CHECK(has(m, "did you mean 'optim.lr'"));
  m = error_of("trian:\n  epochs: 2\n");
  CHECK(has(m, "exp.yaml:1:1"));
  CHECK(has(m, "did you mean 'train'"));
  m = error_of("data:\n  augment:\n    flip: true\n");
  CHECK(has(m, "data.augment.flip: unknown key"));
  CHECK(has(m, "exp.yaml:3:5"));
  m = error_of("optim:\n  groups:\n    - match: a\n      momentum: 0.5\n");
  CHECK(has(m, "optim.groups[0].momentum: unknown key"));
  CHECK(has(m, "exp.yaml:4:7"));
  // A non-empty quant section is kept, not rejected.
  CHECK(error_of("quant:\n  anything: {goes: here}\n").empty());
}

TEST_CASE("config: a key given twice is an error, not the first one silently", "[config]") {
  std::string m = error_of("train:\n  epochs: 2\n  epochs: 3\n");
  CHECK(has(m, "exp.yaml:3:3"));
  CHECK(has(m, "duplicate key 'train.epochs' (first at line 2)"));
  // inside the quant section (parsed later by the quantizer registry) and inside lists
  m = error_of("quant:\n  method: cpq\n  learn_bits: {enabled: true}\n  learn_bits: {max_bits: 4}\n");
  CHECK(has(m, "duplicate key 'quant.learn_bits'"));
  CHECK(has(m, "exp.yaml:4:3"));
  m = error_of("optim:\n  groups:\n    - {match: a, lr: 0.1, lr: 0.2}\n");
  CHECK(has(m, "duplicate key 'optim.groups[0].lr'"));
  // in a --set value
  m = error_of("train: {epochs: 1}\n", {"quant.dropbits={p: 0.1, p: 0.2}"});
  CHECK(has(m, "duplicate key 'p'"));
  CHECK(has(m, "--set quant.dropbits="));
  CHECK(error_of("train: {epochs: 1}\noptim: {name: sgd}\n").empty());
}

TEST_CASE("config: apply_assignments writes key paths into a YAML mapping", "[config]") {
  CHECK(apply_assignments("{a: 1}", {"b.c=2", "b.d=[1, 2]", "a=x"}, "test") == "{a: x, b: {c: 2, d: [1, 2]}}");
  CHECK(apply_assignments("", {"a=1"}, "test") == "{a: 1}");
  const auto msg = [](const std::string& yaml, const std::string& a) {
    try {
      apply_assignments(yaml, {a}, "--opt");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(has(msg("{}", "a.b"), "expected key.path=value"));
  CHECK(has(msg("{}", "a.b"), "--opt a.b"));
  CHECK(has(msg("{}", "a..b=1"), "empty key segment"));
  CHECK(has(msg("{a: 1}", "a.b=1"), "cannot set 'b' inside"));
  CHECK(has(msg("[1, 2]", "a=1"), "expected a mapping"));
  CHECK(has(msg("{}", "a=[1"), "YAML syntax error"));
}

TEST_CASE("config: wrong types name the expected type", "[config]") {
  std::string m = error_of("train:\n  epochs: many\n");
  CHECK(has(m, "exp.yaml:2:11"));
  CHECK(has(m, "train.epochs: expected integer, got 'many'"));
  CHECK(has(error_of("train:\n  epochs: 2.5\n"), "expected integer"));
  CHECK(has(error_of("optim:\n  lr: fast\n"), "optim.lr: expected number"));
  CHECK(has(error_of("model:\n  batch_norm: maybe\n"), "model.batch_norm: expected bool"));
  CHECK(has(error_of("model:\n  name: [a, b]\n"), "model.name: expected string, got a list"));
  CHECK(has(error_of("model:\n  hidden: 512\n"), "model.hidden: expected list"));
  m = error_of("model:\n  hidden: [512, x]\n");
  CHECK(has(m, "model.hidden[1]: expected integer"));
  CHECK(has(m, "exp.yaml:2:17"));
  CHECK(has(error_of("optim: 3\n"), "optim: expected a mapping"));
  CHECK(has(error_of("optim:\n  lr:\n"), "optim.lr: expected number, got null"));
}

TEST_CASE("config: out-of-range values", "[config]") {
  std::string m = error_of("optim:\n  lr: -0.1\n");
  CHECK(has(m, "exp.yaml:2:7"));
  CHECK(has(m, "optim.lr: must be >= 0"));
  CHECK(has(error_of("train:\n  batch_size: 0\n"), "train.batch_size: must be >= 1"));
  CHECK(has(error_of("train:\n  batch_size: -4\n"), "train.batch_size: must be >= 1"));
  CHECK(has(error_of("train:\n  epochs: 0\n"), "train.epochs: must be >= 1"));
  CHECK(has(error_of("train:\n  threads: 0\n"), "train.threads: must be >= 1"));
  CHECK(has(error_of("optim:\n  momentum: 1.0\n"), "optim.momentum: must be in [0, 1)"));
  CHECK(has(error_of("optim:\n  momentum: -0.1\n"), "optim.momentum: must be in [0, 1)"));
  CHECK(has(error_of("optim:\n  betas: [0.9]\n"), "optim.betas: expected 2 entries"));
  CHECK(has(error_of("schedule:\n  milestones: [5, 3]\n"), "strictly increasing"));
  CHECK(has(error_of("data:\n  normalize: {mean: [0.5], std: [0.1, 0.2]}\n"), "data.normalize.std"));
  CHECK(has(error_of("train:\n  epochs: 99999999999\n"), "out of range"));
  m = error_of("optim:\n  name: rmsprop\n");
  CHECK(has(m, "optim.name: unknown value 'rmsprop'"));
  CHECK(has(m, "allowed: sgd, adam, adamw"));
  CHECK(has(error_of("data:\n  dataset: imagenet\n"),
            "allowed: fashion_mnist, mnist, cifar10, cifar100, synthetic"));
  CHECK(has(error_of("schedule:\n  name: linear\n"), "allowed: constant, step, multistep, cosine"));
  CHECK(has(error_of("train:\n  device: gpu\n"), "train.device: unknown value 'gpu'"));
  CHECK(has(error_of("train:\n  device: cuda:x\n"), "train.device"));
}

TEST_CASE("config: YAML syntax errors give file:line:column", "[config]") {
  std::string m = error_of("train:\n  epochs: [1, 2\n  seed: 3\n");
  CHECK(has(m, "exp.yaml:"));
  CHECK(has(m, "YAML syntax error"));
  m = error_of("a: 1\n b: 2\n");
  CHECK(has(m, "exp.yaml:2:"));
  CHECK(has(error_of("- 1\n- 2\n"), "expected a mapping of sections"));
}

TEST_CASE("config: --set overrides", "[config]") {
  ExperimentConfig c = load_config_string(kFull, "full.yaml",
                                          {"optim.lr=0.05", "train.epochs=3", "model.hidden=[64, 32]",
                                           "--set data.augment.horizontal_flip=false",
                                           "optim.groups=[{match: '*', lr: 1}]", "data.normalize=~"});
  CHECK(c.optim.lr == 0.05);
  CHECK(c.train.epochs == 3);
  CHECK(c.model.hidden == std::vector<int>{64, 32});
  CHECK_FALSE(c.data.augment.horizontal_flip);
  REQUIRE(c.optim.groups.size() == 1);
  CHECK(c.optim.groups[0].lr == 1.0);
  CHECK_FALSE(c.data.normalize.has_value());
  CHECK(c.optim.momentum == 0.95);  // untouched keys keep the file's values
  // Sections the file lacks are created.
  CHECK(load_config_string("", "e.yaml", {"schedule.name=step"}).schedule.name == "step");
  // Overrides apply in order; the last wins.
  CHECK(load_config_string("", "e.yaml", {"train.seed=1", "train.seed=7"}).train.seed == 7);

  std::string m = error_of("", {"optim.lrr=0.1"});
  CHECK(has(m, "--set optim.lrr=0.1"));
  CHECK(has(m, "optim.lrr: unknown key"));
  CHECK(has(m, "did you mean 'optim.lr'"));
  m = error_of("", {"nosuch.key=1"});
  CHECK(has(m, "nosuch: unknown key"));
  CHECK(has(m, "--set nosuch.key=1"));
  m = error_of("train:\n  epochs: 2\n", {"train.epochs=zero"});
  CHECK(has(m, "--set train.epochs=zero"));
  CHECK(has(m, "train.epochs: expected integer"));
  CHECK(has(error_of("", {"train.batch_size=0"}), "--set train.batch_size=0"));
  CHECK(has(error_of("", {"model.hidden=[1, -2]"}), "model.hidden[1]: must be >= 1"));
  CHECK(has(error_of("", {"train.epochs"}), "expected key.path=value"));
  CHECK(has(error_of("", {"train.epochs=[1"}), "--set train.epochs=[1"));
  CHECK(has(error_of("", {"train.epochs.x=1"}), "--set train.epochs.x=1"));
  // A file error elsewhere still points into the file.
  CHECK(has(error_of("optim:\n  lr: -1\n", {"train.epochs=3"}), "exp.yaml:2:7"));
}

TEST_CASE("config: to_yaml round trips", "[config]") {
  for (const char* text : {"", kFull}) {
    ExperimentConfig c = load_config_string(text, "rt.yaml");
    std::string y = to_yaml(c);
    ExperimentConfig back = load_config_string(y, "other.yaml");
    CHECK(back == c);
    CHECK(to_yaml(back) == y);
  }
  ExperimentConfig c;
  c.optim.lr = 0.1 + 0.2;  // not exactly representable in short decimal
  c.data.normalize = NormalizeConfig{{1.0 / 3.0}, {2.0 / 3.0}};
  c.train.seed = 1234567890123ULL;
  c.model.name = std::string("true");  // a string that looks like a bool stays a string
  c.output.name = std::string("x");
  ExperimentConfig back = load_config_string(to_yaml(c), "o.yaml");
  CHECK(back == c);
  // Every key is written out.
  std::string y = to_yaml(ExperimentConfig{});
  for (const char* key : {"num_classes:", "random_crop_padding:", "warmup_start_factor:",
                          "bn_recalibration:", "clip_grad_norm:", "quant:", "output:"})
    CHECK(has(y, key));
}
