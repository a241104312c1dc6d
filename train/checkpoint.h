// Training checkpoints: model weights plus, under reserved names, everything an exact resume needs.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "../core/safetensors.h"
#include "../layers/module.h"
#include "../optim/optimizer.h"

namespace lowbit {

// Where a run stands. Saved in the checkpoint's metadata (numbers written exactly).
struct TrainState {
  int64_t epoch = 0;  // the epoch in progress (or next to start when batch == 0)
  int64_t batch = 0;  // batches of `epoch` already trained
  int64_t step = 0;   // optimizer steps taken in all
  double best_top1 = -1;
  int64_t best_epoch = -1;
  // Running sums of the epoch in progress, so the metrics of an interrupted epoch are exact.
  double epoch_loss_sum = 0, epoch_seconds = 0;
  int64_t epoch_correct = 0, epoch_samples = 0;
};

// A checkpoint file (safetensors):
//   <model state_dict names>      the weights and buffers, PyTorch's names and layouts
//   @optim.<param>.<buffer>       optimizer state (Optimizer::state_dict tensors)
//   @rng.<module name>            i64 [3]: seed, stream, offset of a module's generator
//   __metadata__                  format, format_version, the TrainState fields, optimizer
//                                 scalars (optim.*), config (the resolved YAML), and `extra`
// Files without the training state (kind "weights", as best.safetensors) hold only the first
// part and the metadata, so `safetensors.torch.load_file` + `load_state_dict` read them.
inline constexpr const char* kCheckpointFormat = "lowbit.checkpoint";
inline constexpr int kCheckpointVersion = 1;

struct CheckpointContents {
  std::string path;
  NamedTensors model;
  OptimizerState optimizer;
  std::map<std::string, std::array<uint64_t, 3>> generators;  // module name -> state
  TrainState state;
  std::string config_yaml;
  std::string kind;  // "training" (resumable) or "weights"
  std::map<std::string, std::string> metadata;  // everything, as stored
  bool resumable() const { return kind == "training"; }
};

// Atomic write (temp file, fsync, rename): an error leaves a previous file at `path` intact.
// With optimizer == nullptr the file is of kind "weights". Tensors on a GPU are copied to the
// host first, so a file does not depend on the device it was trained on; loading
// (Module::load_state_dict, Optimizer::load_state) copies onto whatever device the model is on.
void save_checkpoint(const std::string& path, Module& model, const Optimizer* optimizer, const TrainState& state,
                     const std::string& config_yaml, const std::map<std::string, std::string>& extra = {});

// Reads any safetensors file: lowbit checkpoints are split by their reserved names; other
// files (PyTorch's save_file) come back as weights with kind "weights". Malformed reserved
// entries are Errors naming the file and the entry.
CheckpointContents load_checkpoint(const std::string& path);

// Seeds the generator of every module that has one from `run` split by the module's name.
void seed_module_generators(Module& model, const Generator& run);

}  // namespace lowbit
