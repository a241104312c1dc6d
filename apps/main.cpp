// lowbit: the command-line tool. Exit codes: 0 success, 1 user error, 2 internal error.
#include <cstdio>
#include <exception>

#include "../core/error.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: train, evaluate and inspect low-bit neural networks"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lowbit 0.1.0");
  lowbit::cli::add_train_command(app);
  lowbit::cli::add_eval_command(app);
  lowbit::cli::add_info_command(app);
  lowbit::cli::add_bench_command(app);
  lowbit::cli::add_sweep_command(app);
  lowbit::cli::add_report_command(app);
  lowbit::cli::add_export_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    const int code = app.exit(e);
    return code == 0 ? 0 : 1;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: internal error: %s\n", e.what());
    return 2;
  } catch (...) {
    std::fprintf(stderr, "lowbit: internal error (unknown exception)\n");
    return 2;
  }
  return 0;
}
