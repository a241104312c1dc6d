// load_trained_model: rebuild the model a checkpoint was trained with and load its weights.
#pragma once

#include <string>
#include <vector>

#include "checkpoint.h"
#include "config.h"
#include "experiment.h"

namespace lowbit {

struct TrainedModel {
  ExperimentConfig config;
  ExperimentModel model;
  CheckpointContents checkpoint;
};

// The config is the one embedded in the checkpoint (written by lowbit train), or `config_path`
// when given (required for files without one, e.g. PyTorch's save_file); `overrides` apply to
// it. The model (with its quantizers) is built without the dataset and loaded strictly: every
// missing, unexpected or mis-shaped name is listed in one Error.
TrainedModel load_trained_model(const std::string& checkpoint, const std::string& config_path = "",
                                const std::vector<std::string>& overrides = {});

}  // namespace lowbit
