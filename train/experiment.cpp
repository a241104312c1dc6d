// Builders from config sections: datasets and transforms, zoo model, optimizer, schedule.
#include "experiment.h"

#include <cmath>

#include "../core/error.h"
#include "../data/cifar.h"
#include "../data/idx.h"
#include "../data/subset.h"
#include "../data/synthetic.h"
#include "../layers/zoo.h"
#include "../optim/adam.h"
#include "../optim/sgd.h"

namespace lowbit {

void channel_statistics(const Dataset& dataset, std::vector<float>& mean, std::vector<float>& std) {
  const Shape s = dataset.sample_shape();
  const int64_t channels = s[0], plane = s[1] * s[2];
  std::vector<double> sum(channels, 0.0), sq(channels, 0.0);
  const int64_t chunk = 1024;
  Tensor images, labels;
  for (int64_t first = 0; first < dataset.size(); first += chunk) {
    std::vector<int64_t> idx;
    for (int64_t i = first; i < std::min(first + chunk, dataset.size()); ++i) idx.push_back(i);
    dataset.get_batch(idx, images, labels);
    const float* p = images.data<float>();
    for (size_t b = 0; b < idx.size(); ++b)
      for (int64_t c = 0; c < channels; ++c) {
        double s1 = 0, s2 = 0;
        for (int64_t k = 0; k < plane; ++k, ++p) {
          s1 += *p;
          s2 += double(*p) * *p;
        }
        sum[c] += s1;
        sq[c] += s2;
      }
  }
  const double n = double(dataset.size()) * plane;
  mean.assign(channels, 0.f);
  std.assign(channels, 1.f);
  for (int64_t c = 0; c < channels; ++c) {
    double m = sum[c] / n, var = std::max(0.0, sq[c] / n - m * m);
    mean[c] = static_cast<float>(m);
    // A constant channel would divide by zero; leave it unscaled.
    std[c] = var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.f;
  }
}

ExperimentData make_data(const DataConfig& config, uint64_t seed) {
  ExperimentData d;
  const std::string& name = config.dataset;
  if (name == "fashion_mnist" || name == "mnist") {
    d.train = std::make_shared<IdxDataset>(config.path, true);
    d.test = std::make_shared<IdxDataset>(config.path, false);
  } else if (name == "cifar10" || name == "cifar100") {
    CifarVariant v = name == "cifar10" ? CifarVariant::cifar10 : CifarVariant::cifar100;
    d.train = std::make_shared<CifarDataset>(config.path, true, v);
    d.test = std::make_shared<CifarDataset>(config.path, false, v);
  } else if (name == "synthetic") {
    // Train and test draw from the same class patterns (one source) with different indices.
    const SyntheticConfig& sc = config.synthetic;
    Shape shape{sc.channels, sc.image_size, sc.image_size};
    const int64_t ntrain = sc.train_size, ntest = sc.test_size;
    auto all = std::make_shared<SyntheticDataset>(ntrain + ntest, shape, sc.classes, seed);
    d.train = std::make_shared<SubsetDataset>(all, 0, ntrain);
    d.test = std::make_shared<SubsetDataset>(all, ntrain, ntest);
  } else {
    throw Error(detail::cat("unknown dataset '", name, "'"), "data.dataset",
                "use fashion_mnist, mnist, cifar10, cifar100 or synthetic");
  }
  // The model is sized from the training split; a test label beyond it would have no output.
  LOWBIT_CHECK(d.test->num_classes() <= d.train->num_classes(), config.path, "the test split has ",
               d.test->num_classes(), " classes (labels 0..", d.test->num_classes() - 1,
               ") but the training split only ", d.train->num_classes());
  const int64_t channels = d.train->sample_shape()[0];
  if (config.normalize) {
    LOWBIT_CHECK(int64_t(config.normalize->mean.size()) == channels, "data.normalize.mean", "has ",
                 config.normalize->mean.size(), " entries but the dataset '", name, "' has ", channels,
                 " channel(s)");
    for (double v : config.normalize->mean) d.mean.push_back(static_cast<float>(v));
    for (double v : config.normalize->std) d.std.push_back(static_cast<float>(v));
  } else {
    channel_statistics(*d.train, d.mean, d.std);
  }
  const Shape s = d.train->sample_shape();
  if (config.augment.random_crop_padding > 0)
    d.train_transforms.add(std::make_shared<RandomCrop>(s[1], s[2], config.augment.random_crop_padding));
  if (config.augment.horizontal_flip) d.train_transforms.add(std::make_shared<RandomHorizontalFlip>());
  auto norm = std::make_shared<Normalize>(d.mean, d.std);
  d.train_transforms.add(norm);
  d.test_transforms.add(norm);
  return d;
}

ModulePtr make_model(const ModelConfig& config, const Dataset& dataset, Generator& gen) {
  const Shape s = dataset.sample_shape();
  ModelOptions opt;
  auto from_data = [](int configured, int64_t actual, const char* key) {
    if (configured < 0) return actual;
    LOWBIT_CHECK(configured == actual, key, "is ", configured, " but the dataset's images have ", actual,
                 "; leave it unset (-1) to take it from the data");
    return actual;
  };
  opt.in_channels = from_data(config.in_channels, s[0], "model.in_channels");
  LOWBIT_CHECK(s[1] == s[2] || config.name.rfind("resnet", 0) == 0 || config.name == "mlp", "data",
               "model '", config.name, "' needs square images, got ", s[1], "x", s[2]);
  opt.image_size = from_data(config.image_size, s[1], "model.image_size");
  opt.num_classes = config.num_classes;
  LOWBIT_CHECK(config.num_classes >= dataset.num_classes(), "model.num_classes", "is ", config.num_classes,
               " but the dataset has ", dataset.num_classes(), " classes");
  opt.hidden.assign(config.hidden.begin(), config.hidden.end());
  opt.batch_norm = config.batch_norm;
  opt.shortcut = config.shortcut.empty() ? 'A' : config.shortcut[0];
  return build_model(config.name, opt, gen);
}

std::vector<ParamGroupSpec> ExperimentModel::param_groups() const {
  std::vector<ParamGroupSpec> groups;
  if (!quant.settings.enabled) return groups;
  // Only patterns that select something: a method without trainable parameters (ste_uniform)
  // leaves the quantizer group empty, which the optimizer would reject.
  const NamedTensors params = model->named_parameters();
  for (const ParamGroupSpec& g : quant.param_group.specs()) {
    bool used = false;
    for (const auto& [name, p] : params) used = used || glob_match(g.match, name);
    if (used) groups.push_back(g);
  }
  return groups;
}

ExperimentModel make_experiment_model(const ExperimentConfig& config, const Dataset& dataset, Generator& gen) {
  ExperimentModel m;
  QuantSettings settings = parse_quant_config(config.quant.yaml);  // config errors before building
  m.model = make_model(config.model, dataset, gen);
  m.quant = quantize_model(*m.model, settings);
  return m;
}

ExperimentModel make_experiment_model(const ExperimentConfig& config, Generator& gen) {
  ExperimentModel m;
  QuantSettings settings = parse_quant_config(config.quant.yaml);
  const ModelConfig& c = config.model;
  ModelOptions opt;
  opt.in_channels = c.in_channels;
  opt.image_size = c.image_size;
  opt.num_classes = c.num_classes;
  opt.hidden.assign(c.hidden.begin(), c.hidden.end());
  opt.batch_norm = c.batch_norm;
  opt.shortcut = c.shortcut.empty() ? 'A' : c.shortcut[0];
  m.model = build_model(c.name, opt, gen);
  m.quant = quantize_model(*m.model, settings);
  return m;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& config, NamedTensors params,
                                          const std::vector<ParamGroupSpec>& extra_groups) {
  std::vector<ParamGroupSpec> groups;
  for (const auto& g : config.groups) groups.push_back({g.match, g.lr, g.weight_decay});
  groups.insert(groups.end(), extra_groups.begin(), extra_groups.end());
  if (config.name == "sgd") {
    SgdOptions o;
    o.lr = config.lr;
    o.momentum = config.momentum;
    o.nesterov = config.nesterov;
    o.weight_decay = config.weight_decay;
    return std::make_unique<SGD>(std::move(params), o, groups);
  }
  AdamOptions o;
  o.lr = config.lr;
  o.beta1 = config.betas.at(0);
  o.beta2 = config.betas.at(1);
  o.eps = config.eps;
  o.weight_decay = config.weight_decay;
  if (config.name == "adam") return std::make_unique<Adam>(std::move(params), o, groups);
  if (config.name == "adamw") {
    AdamWOptions w;
    static_cast<AdamOptions&>(w) = o;
    return std::make_unique<AdamW>(std::move(params), w, groups);
  }
  throw Error(detail::cat("unknown optimizer '", config.name, "'"), "optim.name", "use sgd, adam or adamw");
}

std::shared_ptr<const LrSchedule> make_schedule(const ScheduleConfig& config, int64_t epochs,
                                                int64_t steps_per_epoch) {
  const int64_t unit = config.per_iteration ? steps_per_epoch : 1;
  const int64_t warmup = int64_t(config.warmup_epochs) * unit;
  std::shared_ptr<const LrSchedule> s;
  if (config.name == "constant") {
    s = std::make_shared<ConstantLr>();
  } else if (config.name == "step") {
    s = std::make_shared<StepLr>(int64_t(config.step_size) * unit, config.gamma);
  } else if (config.name == "multistep") {
    // Milestones count from the start of training, warm-up included, as the config says.
    std::vector<int64_t> m;
    for (int e : config.milestones) {
      LOWBIT_CHECK(e > config.warmup_epochs, "schedule.milestones", "milestone ", e,
                   " falls inside the warm-up (warmup_epochs: ", config.warmup_epochs, ")");
      m.push_back(int64_t(e) * unit - warmup);
    }
    s = std::make_shared<MultiStepLr>(std::move(m), config.gamma);
  } else if (config.name == "cosine") {
    s = std::make_shared<CosineLr>(std::max<int64_t>(1, epochs * unit - warmup), config.eta_min);
  } else {
    throw Error(detail::cat("unknown schedule '", config.name, "'"), "schedule.name",
                "use constant, step, multistep or cosine");
  }
  if (warmup > 0) s = std::make_shared<WarmupLr>(s, warmup, config.warmup_start_factor);
  return s;
}

}  // namespace lowbit
