#!/usr/bin/env bash
# The test entry point (CI runs it through .ci/run): setup, configure, build, ctest,
# then install the package and build the outside example against it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LOWBIT_BUILD_DIR:-$root/build}
prefix=${LOWBIT_INSTALL_PREFIX:-$build/install}
jobs=${LOWBIT_JOBS:-$(nproc)}

"$root/scripts/setup.sh"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure -j "$jobs")

# The installed package, consumed the way a user's project consumes it.
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
example_build="$build/example-consumer"
rm -rf "$example_build"
cmake -S "$root/examples" -B "$example_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$example_build" -j "$jobs"
"$example_build/two_layer"
echo "test.sh: all tests passed and the outside example built and ran against the installed package"
