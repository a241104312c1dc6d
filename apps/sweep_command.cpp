// `lowbit sweep SWEEP_FILE`: run a list/grid of experiments and write one comparison table.
#include <cstdio>

#include "../train/sweep.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

struct SweepArgs {
  std::string file, dir;
  std::vector<std::string> overrides, only;
  std::vector<uint64_t> seeds;
  bool quiet = false, dry_run = false;
};

void run(const SweepArgs& a) {
  SweepPlan plan = plan_sweep(a.file, a.overrides, a.dir);
  select_sweep_runs(plan, a.only, a.seeds);
  if (a.dry_run) {
    for (const SweepRun& r : plan.runs) {
      if (!r.selected) continue;
      std::printf("%s  seed %llu  ->  %s\n", r.name.c_str(), (unsigned long long)r.seed, r.run_dir.c_str());
      for (const auto& o : r.overrides) std::printf("    --set %s\n", o.c_str());
    }
    return;
  }
  std::printf("%s", run_sweep(plan, a.quiet).c_str());
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "run several experiments (a list or grid of --set values, over seeds) and compare them");
  cmd->add_option("file", a->file, "sweep file (configs/sweeps/*.yaml)")->required();
  cmd->add_option("--dir", a->dir, "sweep folder (default: output.dir/name of the sweep file)");
  cmd->add_option("--set", a->overrides, "override a key in every run (repeatable)")->type_name("KEY=VALUE");
  cmd->add_option("--only", a->only, "train only the runs whose name matches this glob (repeatable)")
      ->type_name("PATTERN");
  cmd->add_option("--seeds", a->seeds, "train only these of the sweep's seeds: --seeds 0,1")->delimiter(',');
  cmd->add_flag("-q,--quiet", a->quiet, "no per-run log lines on stderr");
  cmd->add_flag("--dry-run", a->dry_run, "list the runs and their overrides, train nothing");
  cmd->callback([a] { run(*a); });
}

}  // namespace lowbit::cli
