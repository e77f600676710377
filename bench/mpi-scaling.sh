#!/usr/bin/env bash
# Data-parallel speed on this machine, side by side in one run: the same global batch
# trained by (a) one process on one thread, (b) N MPI ranks of one thread each, (c) one
# process on N threads; the three alternate for ROUNDS rounds and the medians are printed
# with the CPU's name. Needs a tinygpt built with --features mpi and Open MPI's mpirun.
#
#   bench/mpi-scaling.sh [CONFIG] [STEPS] [ROUNDS] [RANKS] [BATCH]
#   bench/mpi-scaling.sh configs/shakespeare-char.toml 150 3 2
#   bench/mpi-scaling.sh configs/nanogpt-char.toml 8 1 2 16
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/shakespeare-char.toml}
steps=${2:-150}
rounds=${3:-3}
ranks=${4:-2}
batch=${5:-}
target=${CARGO_TARGET_DIR:-$HOME/.cache/tinygpt/target}
bin=${TINYGPT:-$target/release/tinygpt}
if ! "$bin" devices | grep -q "^MPI: compiled in"; then
    echo "error: $bin has no MPI: cargo build --release --features mpi" >&2
    exit 1
fi
# Open MPI refuses root unless told (containers, CI).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
common=(--config "$config" --set "train.max_steps=$steps" --set train.eval_interval=1000000
    --set train.checkpoint_interval=1000000 --set train.eval_batches=1 --set train.sample_tokens=1)
if [ -n "$batch" ]; then common+=(--set "train.batch_size=$batch"); fi

# The summary line's tok/s: training time only (evaluation and start-up left out).
tokps() { sed -n 's/.*| \([0-9,]*\) tok\/s | weights.*/\1/p' | tr -d ,; }

declare -A results
for round in $(seq 1 "$rounds"); do
    for kind in one-thread ranks threads; do
        out="$scratch/$kind-$round"
        case $kind in
        one-thread) tps=$(RAYON_NUM_THREADS=1 "$bin" train "${common[@]}" --out "$out" \
                --set "train.grad_accum=$ranks" 2>&1 | tokps) ;;
        ranks) tps=$(RAYON_NUM_THREADS=1 mpirun -np "$ranks" --bind-to core "$bin" train \
                "${common[@]}" --out "$out" 2>&1 | tokps) ;;
        threads) tps=$(RAYON_NUM_THREADS=$ranks "$bin" train "${common[@]}" --out "$out" \
                --set "train.grad_accum=$ranks" 2>&1 | tokps) ;;
        esac
        echo "round $round: $kind $tps tok/s" >&2
        results[$kind]+="$tps "
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
spread() { tr ' ' '\n' | grep . | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "-" hi}'; }
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
isa=$(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
one=$(echo "${results[one-thread]}" | median)
echo "CPU: $cpu, $(nproc) cores, ${isa:-no AVX2}; $config, $steps steps, $rounds rounds, global batch = $ranks micro-batches"
printf '%-28s %10s %16s %8s\n' "" "tok/s" "spread" "× (a)"
for kind in one-thread ranks threads; do
    m=$(echo "${results[$kind]}" | median)
    label=$(case $kind in one-thread) echo "(a) 1 process × 1 thread" ;;
        ranks) echo "(b) $ranks ranks × 1 thread" ;; threads) echo "(c) 1 process × $ranks threads" ;; esac)
    printf '%-28s %10s %16s %8.2f\n' "$label" "$m" "$(echo "${results[$kind]}" | spread)" \
        "$(echo "$m / $one" | bc -l)"
done
