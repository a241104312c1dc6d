// TrainingContext: what a training loop offers modules in their hooks (see Module::on_step).
#pragma once

#include <cstdint>
#include <string>

#include "../core/tensor.h"

namespace lowbit {

class Module;

// The trainer implements this; a user's own loop can too. Quantizers use it to reshape their
// parameters (BSQ), re-estimate BatchNorm statistics (SLB) or read the schedule position
// without the trainer knowing which method runs.
class TrainingContext {
 public:
  virtual ~TrainingContext() = default;
  virtual int64_t epoch() const = 0;        // the current epoch, from 0
  virtual int64_t epochs() const = 0;       // epochs the run trains in all
  virtual int64_t step() const = 0;         // optimizer steps taken so far
  virtual int64_t total_steps() const = 0;  // optimizer steps of the whole run
  virtual Module& model() = 0;
  // The dotted name of `m` inside model() ("" for the root); Error if m is not in the model.
  virtual std::string name_of(const Module& m) = 0;
  // Replaces the parameter `full_name` of model() (the shape may change) and restarts the
  // optimizer state of just that tensor.
  virtual void replace_parameter(const std::string& full_name, Tensor value) = 0;
  // Re-estimates every BatchNorm's running statistics as a cumulative average over `batches`
  // training batches, with BatchNorm in training mode and every other module in eval mode.
  virtual void recalibrate_batch_norm(int64_t batches) = 0;
};

}  // namespace lowbit
