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

# The installed command-line tool: a short run of the default experiment's model on synthetic
# data, its checkpoint read back by info and eval (exit codes checked by set -e).
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
"$prefix/bin/lowbit" train "$root/configs/lenet5_fmnist.yaml" --quiet --run-dir "$smoke/run" \
  --set data.dataset=synthetic --set data.synthetic.train_size=256 --set data.synthetic.test_size=64 \
  --set train.epochs=1
"$prefix/bin/lowbit" info "$smoke/run/last.safetensors" >/dev/null
"$prefix/bin/lowbit" eval "$smoke/run/best.safetensors" >/dev/null
if "$prefix/bin/lowbit" train "$root/configs/lenet5_fmnist.yaml" --set train.epochs=-1 2>/dev/null; then
  echo "test.sh: lowbit accepted an invalid config" >&2; exit 1
fi
echo "test.sh: all tests passed; the outside example and the installed lowbit tool ran"
