#!/usr/bin/env bash
# Kernel benchmark: lowbit (lowbit_bench_kernels), numpy sgemm and PyTorch (torch.mm, conv2d
# forward/backward) one after another, first with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
# for all three alike, then with the environment as it is. Prints JSON lines, each tagged with
# "env": "unset" or "as-is". Report medians from a quiet machine (check `uptime`).
#
#   bench/run_kernels.sh [BUILD_DIR] [--threads N] [--reps R]      (BUILD_DIR defaults to build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
[[ $# -gt 0 ]] && shift
threads=2
reps=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    *) echo "usage: $0 [BUILD_DIR] [--threads N] [--reps R]" >&2; exit 2 ;;
  esac
done

bench="$build/bench/lowbit_bench_kernels"
[[ -x "$bench" ]] || { echo "$bench not found: build the lowbit_bench_kernels target first" >&2; exit 1; }
python=/usr/bin/python3

tag() { sed -u "s/}\$/, \"env\": \"$1\"}/"; }

run_all() {  # $1: label; the rest: env(1) arguments
  local label="$1"; shift
  echo "# $(date -u +%FT%TZ) env=$label load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  env "$@" "$bench" --threads "$threads" --reps "$reps" | tag "$label"
  env "$@" "$python" "$here/numpy_sgemm.py" --threads "$threads" --reps "$reps" | tag "$label"
  env "$@" "$python" "$here/torch_kernels.py" --threads "$threads" --reps "$reps" | tag "$label"
}

run_all unset -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
run_all as-is
