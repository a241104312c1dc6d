// Sweeps: several experiments (a list and/or a grid of --set values, over seeds) run one after
// another into one folder, compared in one table.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config.h"

namespace lowbit {

// One planned training run of a sweep.
struct SweepRun {
  std::string name;                    // the variant's name (from the sweep file or its --set values)
  uint64_t seed = 0;
  std::vector<std::string> overrides;  // applied to the base config, in order
  ExperimentConfig config;             // resolved (every run is checked before any trains)
  std::string run_dir;                 // <sweep dir>/<name>/seed<seed>
  bool selected = true;                // trained by run_sweep (see select_sweep_runs)
  std::vector<size_t> needs;           // earlier runs whose output ({sweep_dir}) this one reads
};

// A sweep file:
//   base: ../lenet5_fmnist.yaml          # experiment file, relative to the sweep file
//   set: [train.epochs=8]                # overrides for every run (optional)
//   runs:                                # variants (optional; default: one, the base)
//     - {name: fp32, grid: false}        # grid: false keeps a variant out of the grid
//     - {name: cpq_w2a2, set: [quant.method=cpq, quant.weight_bits=2, quant.act_bits=2]}
//   grid:                                # crossed with every variant (optional); keys in order
//     quant.weight_bits, quant.act_bits: [2, 4]   # comma-joined keys take each value together
//   seeds: [0, 1, 2]                     # every variant runs once per seed (default: the base's)
//   Values may name the output of an earlier run: {sweep_dir} is the sweep folder, {seed} the
//   run's seed, e.g. model.init_from={sweep_dir}/fp32/seed{seed}/best.safetensors or
//   quant.fixed_bits_from={sweep_dir}/learned/seed{seed}/quant_report.json. Such a run waits
//   for (and errors without) the run that writes the file, which must come earlier in the file.
//   output: {dir: runs/sweeps, name: fmnist_methods}
struct SweepPlan {
  std::string file, name, dir;  // dir: the sweep folder (output.dir/name unless given)
  std::vector<SweepRun> runs;
};

// Reads and expands a sweep file and loads every run's config; Errors name the sweep file and
// key (or the run and the config key) before anything runs. `extra` are --set values applied
// to every run after the file's own. `dir` overrides where the sweep goes.
SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& extra = {},
                     const std::string& dir = "");

// Restricts which runs run_sweep trains: runs whose variant name matches one of `only` (globs,
// `*` and `?`; empty: all) and whose seed is in `seeds` (empty: all). The others stay in the
// plan so that the table still shows those already finished (by an earlier, wider call).
// A pattern that matches no variant, or a seed the plan does not have, is an Error.
void select_sweep_runs(SweepPlan& plan, const std::vector<std::string>& only, const std::vector<uint64_t>& seeds);

// The outcome of one run, read back from its run directory.
struct SweepResult {
  std::string name;
  uint64_t seed = 0;
  bool finished = false;
  int64_t epochs = 0;
  double top1 = 0, top5 = 0, best_top1 = 0, loss = 0, seconds = 0;
  double avg_weight_bits = 32;
  int64_t model_bytes = 0, model_float_bytes = 0;
};

// Reads metrics.jsonl and quant_report.json of a run directory (finished: as many epochs as
// the config asks and a final evaluation).
SweepResult read_run_result(const SweepRun& run);

// Runs every selected run of the plan that has not finished (an interrupted one is resumed), then writes
// results.csv (one row per run and seed) and results.md (per variant: mean and spread over
// seeds; runs not selected are listed only if finished) into the sweep folder and returns the markdown. quiet: no per-run console logs.
std::string run_sweep(const SweepPlan& plan, bool quiet);

// The comparison table of results (markdown), variants in plan order.
std::string sweep_table(const std::vector<SweepResult>& results);

}  // namespace lowbit
