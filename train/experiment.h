// Builders that turn an ExperimentConfig's sections into datasets, a model, an optimizer and a schedule.
#pragma once

#include <memory>
#include <vector>

#include "../data/dataset.h"
#include "../data/transforms.h"
#include "../layers/module.h"
#include "../optim/optimizer.h"
#include "../optim/schedule.h"
#include "../quant/quantize_model.h"
#include "config.h"

namespace lowbit {

struct ExperimentData {
  std::shared_ptr<const Dataset> train, test;
  Compose train_transforms;  // augmentation, then normalization
  Compose test_transforms;   // normalization only
  std::vector<float> mean, std;  // the normalization in force
};

// Opens the configured dataset (errors name the file and say how to get the data) and builds
// the transforms. Without data.normalize the per-channel mean/std of the training images is used.
ExperimentData make_data(const DataConfig& config, uint64_t seed);

// Per-channel mean and (population) std over every pixel of the dataset, accumulated in double.
void channel_statistics(const Dataset& dataset, std::vector<float>& mean, std::vector<float>& std);

// The zoo model of config.name, with input channels, image size and classes from the dataset
// unless the config sets them (a disagreement with the dataset is an Error naming the key).
ModulePtr make_model(const ModelConfig& config, const Dataset& dataset, Generator& gen);

// The model of an experiment: the zoo model (make_model), then the `quant:` section applied
// (quantize_model; a no-op without one). The quantizer parameter groups come back in `quant`.
struct ExperimentModel {
  ModulePtr model;
  QuantizeResult quant;
  // Parameter groups for the quantizer parameters (quant.optim), empty when not quantized.
  std::vector<ParamGroupSpec> param_groups() const;
};
ExperimentModel make_experiment_model(const ExperimentConfig& config, const Dataset& dataset, Generator& gen);
// The same without a dataset: model.in_channels / image_size as configured (a run's config.yaml
// records the values it trained with; -1 takes the zoo model's default).
ExperimentModel make_experiment_model(const ExperimentConfig& config, Generator& gen);

// The optimizer of config over `params`; `extra_groups` (quantizer parameters) come after
// the config's own optim.groups, so the config's groups win where both match.
std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& config, NamedTensors params,
                                          const std::vector<ParamGroupSpec>& extra_groups = {});

// The schedule of config in its own time unit: iterations when per_iteration (epochs and
// warmup converted with steps_per_epoch), else epochs.
std::shared_ptr<const LrSchedule> make_schedule(const ScheduleConfig& config, int64_t epochs,
                                                int64_t steps_per_epoch);

}  // namespace lowbit
