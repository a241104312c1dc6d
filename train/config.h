// ExperimentConfig: the typed schema of a YAML experiment file, its defaults, loader and writer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lowbit {

// Every default below is documented, with its range, in docs/config.md.

struct ModelConfig {
  std::string name = "lenet5";
  int num_classes = 10;
  int in_channels = -1;  // -1: taken from the dataset
  int image_size = -1;   // -1: taken from the dataset
  std::vector<int> hidden = {512, 512};
  bool batch_norm = false;
  std::string shortcut = "A";  // ResNet shortcut option: A (zero-pad) | B (1x1 conv)
  std::string init_from;       // checkpoint to start from; empty: random init
  bool operator==(const ModelConfig&) const = default;
};

struct NormalizeConfig {
  std::vector<double> mean, std;  // one entry per channel
  bool operator==(const NormalizeConfig&) const = default;
};

struct AugmentConfig {
  int random_crop_padding = 0;  // 0: no random crop
  bool horizontal_flip = false;
  bool operator==(const AugmentConfig&) const = default;
};

struct SyntheticConfig {
  int train_size = 512;
  int test_size = 128;
  int channels = 1;     // images are channels x image_size x image_size
  int image_size = 28;
  int classes = 10;
  bool operator==(const SyntheticConfig&) const = default;
};

struct DataConfig {
  std::string dataset = "fashion_mnist";  // fashion_mnist | mnist | cifar10 | cifar100 | synthetic
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::optional<NormalizeConfig> normalize;  // absent: the dataset's own statistics
  AugmentConfig augment;
  SyntheticConfig synthetic;
  bool operator==(const DataConfig&) const = default;
};

// Parameters whose name matches `match` (a glob) get these values instead of the optimizer's.
struct ParamGroupConfig {
  std::string match;
  std::optional<double> lr;
  std::optional<double> weight_decay;
  bool operator==(const ParamGroupConfig&) const = default;
};

struct OptimConfig {
  std::string name = "adam";  // sgd | adam | adamw
  double lr = 1e-3;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
  std::vector<ParamGroupConfig> groups;
  double clip_grad_norm = 0.0;  // 0: off
  bool operator==(const OptimConfig&) const = default;
};

struct ScheduleConfig {
  std::string name = "cosine";  // constant | step | multistep | cosine
  int step_size = 1;            // epochs between decays (step)
  double gamma = 0.1;
  std::vector<int> milestones;  // epochs at which to decay (multistep)
  double eta_min = 0.0;
  int warmup_epochs = 0;
  double warmup_start_factor = 0.0;
  bool per_iteration = true;  // advance every batch rather than every epoch
  bool operator==(const ScheduleConfig&) const = default;
};

struct TrainConfig {
  int epochs = 8;
  int batch_size = 128;
  std::uint64_t seed = 0;
  int threads = 2;
  int eval_interval = 1;  // evaluate every this many epochs
  std::string device = "cpu";  // cpu | cuda | cuda:N
  bool deterministic = true;   // CUDA: only cuDNN algorithms that repeat bit for bit
  bool allow_tf32 = false;     // CUDA: TF32 tensor cores in GEMMs and convolutions
  int bn_recalibration = 0;    // batches to re-estimate BN statistics with after training; 0: off
  bool operator==(const TrainConfig&) const = default;
};

// Reserved for the quantizer registry, which parses it: kept as YAML text, empty when absent.
struct QuantConfig {
  std::string yaml;
  bool operator==(const QuantConfig&) const = default;
};

struct OutputConfig {
  std::string dir = "runs";
  std::string name;  // the loader fills it from the config file's name when left empty
  bool operator==(const OutputConfig&) const = default;
};

struct ExperimentConfig {
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  TrainConfig train;
  QuantConfig quant;
  OutputConfig output;
  bool operator==(const ExperimentConfig&) const = default;
};

// Reads a YAML experiment file, applies `overrides` ("key.path=value", the value read as a
// YAML scalar or flow collection, as from `--set`), and checks every key. Throws lowbit::Error
// naming the key path and file:line:column (or the --set) on an unknown key, a wrong type,
// an out-of-range value, a YAML syntax error or a missing file.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text; `name_for_errors` stands in for the file name in messages and
// for deriving output.name.
ExperimentConfig load_config_string(const std::string& yaml, const std::string& name_for_errors,
                                    const std::vector<std::string>& overrides = {});

// Applies "key.path=value" assignments (the `--set` syntax; a value is read as a YAML scalar or
// flow collection, maps on the way are created, keys under one parent merge) to the YAML
// mapping `yaml` and returns the result as one line of flow YAML. Errors name `where` (the
// option the assignments came from) and the assignment.
std::string apply_assignments(const std::string& yaml, const std::vector<std::string>& assignments,
                              const std::string& where);

// The fully resolved config, every key with its value; loading it back gives an equal config.
std::string to_yaml(const ExperimentConfig& config);

}  // namespace lowbit
