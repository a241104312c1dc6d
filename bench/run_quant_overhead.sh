#!/bin/sh
# Cost of each quantizer in a training step: `lowbit bench` of one model in float and with every
# method, in rounds (the order rotates each round), then per case the median over rounds of the
# step's median time and its ratio to the float step of the same rounds.
#
# Usage: bench/run_quant_overhead.sh [BUILD_DIR] [--rounds N] [--model NAME] [--bits W/A]
#                                    [--threads N] [--batch N] [--steps N] [--jsonl FILE]
set -eu

build=build
case "${1:-}" in -*|"") ;; *) build=$1; shift ;; esac
rounds=3
model=lenet5
bits=2/2
threads=2
batch=128
steps=20
jsonl=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --bits) bits=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --jsonl) jsonl=$2; shift 2 ;;
    *) echo "run_quant_overhead.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
lowbit=${LOWBIT:-$build/bin/lowbit}
[ -x "$lowbit" ] || { echo "run_quant_overhead.sh: $lowbit not found (build the lowbit_cli target)" >&2; exit 2; }
out=${jsonl:-$(mktemp)}
: > "$out"

# name|extra arguments of lowbit bench
cases="float|
ste_uniform|--quant ste_uniform --bits $bits
lsq|--quant lsq --bits $bits
rq_st|--quant rq --bits $bits
cpq|--quant cpq --bits $bits
cpq_dropbits|--quant cpq --bits $bits --quant-set dropbits.enabled=true
cpq_learned_bits|--quant cpq --bits 4/${bits#*/} --quant-set dropbits.enabled=true --quant-set learn_bits.enabled=true --quant-set learn_bits.max_bits=4"
n=$(printf '%s\n' "$cases" | wc -l)
r=1
while [ "$r" -le "$rounds" ]; do
  # rotate the order by one case per round so no case always runs first or last
  printf '%s\n' "$cases" | awk -v s="$r" -v n="$n" '{a[NR]=$0} END {for (i = 0; i < n; i++) print a[(i + s - 1) % n + 1]}' |
  while IFS='|' read -r name args; do
    # shellcheck disable=SC2086
    line=$("$lowbit" bench --model "$model" --batch "$batch" --steps "$steps" --threads "$threads" --json $args)
    echo "{\"case\":\"$name\",\"round\":$r,\"result\":$line}" >> "$out"
  done
  r=$((r + 1))
done

python3 - "$out" "$model" "$bits" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases, by = [], {}
for row in rows:
    c = row["case"]
    if c not in by: cases.append(c); by[c] = {}
    by[c][row["round"]] = row["result"]["median_ms"]
base = by["float"]
print(f"{sys.argv[2]}, {sys.argv[3]} bits: median over {len(base)} rounds of each run's median step")
print("| case | step ms | vs float |")
print("|---|---|---|")
for c in cases:
    ms = statistics.median(by[c].values())
    ratio = statistics.median(by[c][r] / base[r] for r in by[c] if r in base)
    print(f"| {c} | {ms:.1f} | {ratio:.2f}x |")
PY
[ -n "$jsonl" ] || rm -f "$out"
