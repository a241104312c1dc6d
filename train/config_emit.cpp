// to_yaml: an ExperimentConfig written back as YAML, every key present, loadable again.
#include <yaml-cpp/yaml.h>

#include <charconv>

#include "config.h"

namespace lowbit {

namespace {

// Shortest text that reads back to the same double, so a round trip is exact.
std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  // "1" would read back fine, but "1.0" keeps the value visibly a number in the file.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

template <class T, class F>
void flow_list(YAML::Emitter& out, const std::vector<T>& v, F f) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const auto& x : v) out << f(x);
  out << YAML::EndSeq;
}

int id(int v) { return v; }

}  // namespace

std::string to_yaml(const ExperimentConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;

  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << c.model.name;
  out << YAML::Key << "num_classes" << YAML::Value << c.model.num_classes;
  out << YAML::Key << "in_channels" << YAML::Value << c.model.in_channels;
  out << YAML::Key << "image_size" << YAML::Value << c.model.image_size;
  out << YAML::Key << "hidden" << YAML::Value;
  flow_list(out, c.model.hidden, id);
  out << YAML::Key << "batch_norm" << YAML::Value << c.model.batch_norm;
  out << YAML::Key << "shortcut" << YAML::Value << YAML::DoubleQuoted << c.model.shortcut;
  out << YAML::Key << "init_from" << YAML::Value << YAML::DoubleQuoted << c.model.init_from;
  out << YAML::EndMap;

  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "dataset" << YAML::Value << YAML::DoubleQuoted << c.data.dataset;
  out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << c.data.path;
  out << YAML::Key << "normalize" << YAML::Value;
  if (c.data.normalize) {
    out << YAML::BeginMap;
    out << YAML::Key << "mean" << YAML::Value;
    flow_list(out, c.data.normalize->mean, num);
    out << YAML::Key << "std" << YAML::Value;
    flow_list(out, c.data.normalize->std, num);
    out << YAML::EndMap;
  } else {
    out << YAML::Null;
  }
  out << YAML::Key << "augment" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "random_crop_padding" << YAML::Value << c.data.augment.random_crop_padding;
  out << YAML::Key << "horizontal_flip" << YAML::Value << c.data.augment.horizontal_flip;
  out << YAML::EndMap;
  out << YAML::Key << "synthetic" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "train_size" << YAML::Value << c.data.synthetic.train_size;
  out << YAML::Key << "test_size" << YAML::Value << c.data.synthetic.test_size;
  out << YAML::Key << "channels" << YAML::Value << c.data.synthetic.channels;
  out << YAML::Key << "image_size" << YAML::Value << c.data.synthetic.image_size;
  out << YAML::Key << "classes" << YAML::Value << c.data.synthetic.classes;
  out << YAML::EndMap;
  out << YAML::EndMap;

  out << YAML::Key << "optim" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << c.optim.name;
  out << YAML::Key << "lr" << YAML::Value << num(c.optim.lr);
  out << YAML::Key << "momentum" << YAML::Value << num(c.optim.momentum);
  out << YAML::Key << "nesterov" << YAML::Value << c.optim.nesterov;
  out << YAML::Key << "weight_decay" << YAML::Value << num(c.optim.weight_decay);
  out << YAML::Key << "betas" << YAML::Value;
  flow_list(out, c.optim.betas, num);
  out << YAML::Key << "eps" << YAML::Value << num(c.optim.eps);
  out << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  for (const auto& g : c.optim.groups) {
    out << YAML::BeginMap;
    out << YAML::Key << "match" << YAML::Value << YAML::DoubleQuoted << g.match;
    if (g.lr) out << YAML::Key << "lr" << YAML::Value << num(*g.lr);
    if (g.weight_decay) out << YAML::Key << "weight_decay" << YAML::Value << num(*g.weight_decay);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "clip_grad_norm" << YAML::Value << num(c.optim.clip_grad_norm);
  out << YAML::EndMap;

  out << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << c.schedule.name;
  out << YAML::Key << "step_size" << YAML::Value << c.schedule.step_size;
  out << YAML::Key << "gamma" << YAML::Value << num(c.schedule.gamma);
  out << YAML::Key << "milestones" << YAML::Value;
  flow_list(out, c.schedule.milestones, id);
  out << YAML::Key << "eta_min" << YAML::Value << num(c.schedule.eta_min);
  out << YAML::Key << "warmup_epochs" << YAML::Value << c.schedule.warmup_epochs;
  out << YAML::Key << "warmup_start_factor" << YAML::Value << num(c.schedule.warmup_start_factor);
  out << YAML::Key << "per_iteration" << YAML::Value << c.schedule.per_iteration;
  out << YAML::EndMap;

  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epochs" << YAML::Value << c.train.epochs;
  out << YAML::Key << "batch_size" << YAML::Value << c.train.batch_size;
  out << YAML::Key << "seed" << YAML::Value << static_cast<unsigned long long>(c.train.seed);
  out << YAML::Key << "threads" << YAML::Value << c.train.threads;
  out << YAML::Key << "eval_interval" << YAML::Value << c.train.eval_interval;
  out << YAML::Key << "device" << YAML::Value << YAML::DoubleQuoted << c.train.device;
  out << YAML::Key << "deterministic" << YAML::Value << c.train.deterministic;
  out << YAML::Key << "allow_tf32" << YAML::Value << c.train.allow_tf32;
  out << YAML::Key << "bn_recalibration" << YAML::Value << c.train.bn_recalibration;
  out << YAML::EndMap;

  out << YAML::Key << "quant" << YAML::Value;
  if (c.quant.yaml.empty()) {
    out << YAML::Null;
  } else {
    out << YAML::Load(c.quant.yaml);
  }

  out << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "dir" << YAML::Value << YAML::DoubleQuoted << c.output.dir;
  out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << c.output.name;
  out << YAML::EndMap;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lowbit
