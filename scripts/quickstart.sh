#!/usr/bin/env bash
# One command on a fresh machine: install what is missing, build, run the main job.
# Until the trainer lands this builds the library and runs the outside example, a
# two-layer network trained with the public API.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LOWBIT_BUILD_DIR:-$root/build}
prefix=$build/install

"$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$root/examples" -B "$build/example-consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/example-consumer"
"$build/example-consumer/two_layer"
