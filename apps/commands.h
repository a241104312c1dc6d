// The subcommands of the `lowbit` tool: each file apps/<name>_command.cpp adds one to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace lowbit::cli {

// Each add_* registers its subcommand with its options and a callback that does the work.
// Callbacks throw lowbit::Error for user errors (bad file, bad value): main turns that into a
// one-line message and exit code 1; anything else is an internal error (exit code 2).
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_export_command(CLI::App& app);

}  // namespace lowbit::cli
