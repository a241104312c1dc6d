#!/usr/bin/env bash
# One command on a fresh machine: install what is missing, build, and train the default
# experiment (LeNet-5 on Fashion-MNIST, configs/lenet5_fmnist.yaml), printing the result.
# Extra arguments go to `lowbit train`, e.g. scripts/quickstart.sh --set train.epochs=2
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LOWBIT_BUILD_DIR:-$root/build}

"$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=OFF \
  -DLOWBIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target lowbit_cli
cd "$root"
"$build/bin/lowbit" train configs/lenet5_fmnist.yaml "$@"
