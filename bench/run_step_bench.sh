#!/bin/sh
# Training-step benchmark: `lowbit bench` and the PyTorch anchor, back to back, alternating.
#
# Usage: bench/run_step_bench.sh [BUILD_DIR] [--rounds N] [--models a,b] [--threads N]
#                                [--batch N] [--steps N] [--jsonl FILE] [--torch-passive]
# BUILD_DIR defaults to ./build (the tool is BUILD_DIR/bin/lowbit; LOWBIT=path overrides it).
# Each round runs, per model, both programs one after the other (lowbit first in odd rounds,
# PyTorch first in even ones) and keeps every JSON line; the table at the end gives, per model,
# the median over rounds of each side's median step time and their ratio (lowbit / PyTorch).
# --torch-passive also runs the anchor with OMP_WAIT_POLICY=passive in every round (a third
# column): on a machine shared with other jobs, libgomp's spinning workers cost PyTorch whole
# scheduler ticks per parallel region, and this separates that from its kernels' speed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=build
case "${1:-}" in -*|"") ;; *) build=$1; shift ;; esac
rounds=3
models=mlp,lenet5,resnet20,vgg7
threads=2
batch=128
steps=20
jsonl=""
passive=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --jsonl) jsonl=$2; shift 2 ;;
    --torch-passive) passive=1; shift ;;
    *) echo "run_step_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

lowbit=${LOWBIT:-$build/bin/lowbit}
anchor=${ANCHOR:-/work/shared/anchors/torch_bench.py}
[ -x "$lowbit" ] || { echo "run_step_bench.sh: no lowbit tool at '$lowbit' (build it, or set LOWBIT=)" >&2; exit 2; }
[ -f "$anchor" ] || { echo "run_step_bench.sh: no anchor at '$anchor' (set ANCHOR=)" >&2; exit 2; }

out=${jsonl:-$(mktemp)}
: > "$out"
run_lowbit() {
  "$lowbit" bench --model "$1" --batch "$batch" --steps "$steps" --threads "$threads" --json | sed "s/^{/{\"round\": $2, /" >> "$out"
}
run_torch() {
  /usr/bin/python3 "$anchor" --models "$1" --batch "$batch" --steps "$steps" --threads "$threads" |
    sed "s/^{/{\"round\": $2, \"impl\": \"torch\", /" >> "$out"
  if [ "$passive" = 1 ]; then
    OMP_WAIT_POLICY=passive /usr/bin/python3 "$anchor" --models "$1" --batch "$batch" --steps "$steps" \
      --threads "$threads" | sed "s/^{/{\"round\": $2, \"impl\": \"torch-passive\", /" >> "$out"
  fi
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -n)  threads=$threads batch=$batch steps=$steps rounds=$rounds" >&2
echo "# env: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>} LOWBIT_GEMM=${LOWBIT_GEMM:-<unset>}" >&2
r=1
while [ "$r" -le "$rounds" ]; do
  for m in $(echo "$models" | tr ',' ' '); do
    echo "# round $r/$rounds: $m (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    if [ $((r % 2)) -eq 1 ]; then run_lowbit "$m" "$r"; run_torch "$m" "$r"
    else run_torch "$m" "$r"; run_lowbit "$m" "$r"; fi
  done
  r=$((r + 1))
done

/usr/bin/python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
models = list(dict.fromkeys(r["model"] for r in rows))
passive = any(r.get("impl") == "torch-passive" for r in rows)
head = "| model | lowbit median ms | PyTorch median ms | lowbit / PyTorch |"
rule = "|---|---:|---:|---:|"
if passive:
    head += " PyTorch (passive) ms | lowbit / PyTorch (passive) |"
    rule += "---:|---:|"
print(head + " lowbit rounds | PyTorch rounds | lowbit peak MiB |")
print(rule + "---|---|---:|")
for m in models:
    lb = [r for r in rows if r["model"] == m and r.get("impl") == "lowbit"]
    pt = [r for r in rows if r["model"] == m and r.get("impl") == "torch"]
    if not lb or not pt:
        continue
    a = statistics.median(r["median_ms"] for r in lb)
    b = statistics.median(r["median_ms"] for r in pt)
    peak = max(r.get("peak_bytes", 0) for r in lb) / 2**20
    runs = lambda rs: " ".join("%.1f" % r["median_ms"] for r in rs)
    line = f"| {m} | {a:.2f} | {b:.2f} | {a / b:.2f} |"
    if passive:
        pp = [r for r in rows if r["model"] == m and r.get("impl") == "torch-passive"]
        c = statistics.median(r["median_ms"] for r in pp) if pp else float("nan")
        line += f" {c:.2f} | {a / c:.2f} |"
    print(line + f" {runs(lb)} | {runs(pt)} | {peak:.1f} |")
EOF
[ -n "$jsonl" ] || rm -f "$out"
