// The Catch2 main of the CUDA tests: where no GPU is present, a run whose selected tests all
// carry the [gpu] tag exits with 77, which ctest reports as skipped (SKIP_RETURN_CODE).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>

#include "core/cuda/runtime.h"

namespace {

constexpr int kSkipReturnCode = 77;

bool needs_gpu(const Catch::TestCase& tc) {
  const auto& tags = tc.getTestCaseInfo().lcaseTags;
  return std::find(tags.begin(), tags.end(), "gpu") != tags.end();
}

}  // namespace

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv)) return rc;
  const Catch::Config& cfg = session.config();
  const bool listing = cfg.listTests() || cfg.listTestNamesOnly() || cfg.listTags() || cfg.listReporters();
  if (!listing && !lowbit::cuda::is_available()) {
    const auto selected = Catch::filterTests(Catch::getAllTestCasesSorted(cfg), cfg.testSpec(), cfg);
    if (!selected.empty() && std::all_of(selected.begin(), selected.end(), needs_gpu)) {
      std::printf("SKIPPED: no CUDA device on this machine (%zu test case(s) need one)\n", selected.size());
      return kSkipReturnCode;
    }
  }
  return session.run();
}
