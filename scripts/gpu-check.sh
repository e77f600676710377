#!/usr/bin/env bash
# Measures tinygpt on a machine with a GPU, from a copied binary: no Rust toolchain, no network.
#
# On the build machine (after `cargo build --release`):
#   scripts/gpu-check.sh pack [--binary PATH] [--out DIR]
#       strips the binary and gzips it to DIR/tinygpt.gz (default dist/; refused over 64 MiB).
# On the GPU machine, from a copy of the repository holding dist/tinygpt.gz:
#   scripts/gpu-check.sh unpack [--from FILE] [--to DIR]
#       unpacks the binary (default dist/tinygpt) and checks that it runs.
#   scripts/gpu-check.sh run [--out FILE] [--steps N] [--devices "D1 D2"] [--skip-train] [--quick]
#       lists the adapters, runs `tinygpt bench` on configs/shakespeare-char.toml and
#       configs/nanogpt-char.toml on each GPU device compiled in (default: what
#       `tinygpt devices --gpu-names` prints), trains nanogpt-char for N steps (500) with its
#       val loss, and writes a JSON summary (default gpu-check.json). Each part has its own
#       time limit and the summary is rewritten after each, so a cut-off run keeps what it did.
#       --quick shrinks every batch and step count, to test the script itself on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_PACKED=$((64 * 1024 * 1024))

die() { echo "gpu-check: $*" >&2; exit 1; }

# Its arguments joined by commas.
join() { local IFS=,; printf '%s' "$*"; }

# A JSON string: backslashes, quotes and control characters escaped.
json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

pack() {
    local binary="${CARGO_TARGET_DIR:-target}/release/tinygpt" out=dist
    while [ $# -gt 0 ]; do
        case "$1" in
            --binary) binary=$2; shift 2 ;;
            --out) out=$2; shift 2 ;;
            *) die "pack: unknown option $1" ;;
        esac
    done
    [ -x "$binary" ] || die "no binary at $binary: build it with cargo build --release (or pass --binary)"
    mkdir -p "$out"
    local stripped="$out/tinygpt.stripped.$$"
    cp "$binary" "$stripped"
    strip "$stripped"
    gzip -9 -c "$stripped" > "$out/tinygpt.gz.part"
    rm -f "$stripped"
    local size
    size=$(stat -c %s "$out/tinygpt.gz.part")
    if [ "$size" -gt "$MAX_PACKED" ]; then
        rm -f "$out/tinygpt.gz.part"
        die "the packed binary is $size bytes, over 64 MiB"
    fi
    mv "$out/tinygpt.gz.part" "$out/tinygpt.gz"
    echo "packed $binary into $out/tinygpt.gz ($size bytes)"
}

unpack() {
    local from=dist/tinygpt.gz to=dist
    while [ $# -gt 0 ]; do
        case "$1" in
            --from) from=$2; shift 2 ;;
            --to) to=$2; shift 2 ;;
            *) die "unpack: unknown option $1" ;;
        esac
    done
    [ -f "$from" ] || die "no packed binary at $from: run scripts/gpu-check.sh pack on the build machine"
    mkdir -p "$to"
    gzip -dc "$from" > "$to/tinygpt.part"
    chmod +x "$to/tinygpt.part"
    mv "$to/tinygpt.part" "$to/tinygpt"
    "$to/tinygpt" --version
}

run() {
    local out=gpu-check.json steps=500 devices="" train=1
    local bench_args=() train_args=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) out=$2; shift 2 ;;
            --steps) steps=$2; shift 2 ;;
            --devices) devices=$2; shift 2 ;;
            --skip-train) train=0; shift ;;
            --quick)
                bench_args=(--batch-size 2 --steps 1 --warmup 0 --sample-tokens 4)
                train_args=(--set train.batch_size=2 --set train.eval_batches=1)
                shift ;;
            *) die "run: unknown option $1" ;;
        esac
    done
    local tinygpt=${TINYGPT:-dist/tinygpt}
    if [ ! -x "$tinygpt" ]; then unpack >&2; fi
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/tinygpt-gpu-check.XXXXXX")

    local host gpu
    host=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true)
    local parts=()
    parts+=("\"tinygpt\": $(json_string "$("$tinygpt" --version)")")
    parts+=("\"cpu\": $(json_string "$host")")
    parts+=("\"nvidia_smi\": $(json_string "$gpu")")
    parts+=("\"devices\": $("$tinygpt" devices --json)")
    if [ -z "$devices" ]; then devices=$("$tinygpt" devices --gpu-names | tr '\n' ' '); fi
    parts+=("\"gpu_devices\": $(json_string "$devices")")
    write() {
        printf '{%s}\n' "$(join "${parts[@]}")" > "$out.part"
        mv "$out.part" "$out"
    }
    write
    "$tinygpt" devices >&2
    [ -n "${devices// /}" ] || echo "gpu-check: no GPU device found; the summary lists the adapters" >&2

    local benches=() trains=()
    for device in $devices; do
        for config in configs/shakespeare-char.toml configs/nanogpt-char.toml; do
            echo "== bench $config on $device" >&2
            local result
            if result=$(timeout 300 "$tinygpt" bench --config "$config" --device "$device" --json \
                "${bench_args[@]}" 2> "$work/err"); then
                benches+=("{\"device\": $(json_string "$device"), \"config\": $(json_string "$config"), \"result\": $result}")
            else
                benches+=("{\"device\": $(json_string "$device"), \"config\": $(json_string "$config"), \"error\": $(json_string "$(tail -3 "$work/err")")}")
            fi
            parts[5]="\"bench\": [$(join "${benches[@]}")]"
            write
        done
        if [ "$train" = 1 ]; then
            echo "== train configs/nanogpt-char.toml on $device for $steps steps" >&2
            local run="$work/nanogpt-char-${device//:/-}" started ended
            started=$(date +%s)
            if timeout 540 "$tinygpt" train --config configs/nanogpt-char.toml --device "$device" --out "$run" \
                --set "train.max_steps=$steps" --set "train.eval_interval=$steps" \
                --set train.sample_tokens=100 "${train_args[@]}" > "$work/train.out" 2> "$work/err"; then
                ended=$(date +%s)
                local last
                last=$(grep '"val_loss"' "$run/metrics.jsonl" | tail -1)
                trains+=("{\"device\": $(json_string "$device"), \"steps\": $steps, \"wall_s\": $((ended - started)), \"last_eval\": $last}")
            else
                trains+=("{\"device\": $(json_string "$device"), \"steps\": $steps, \"error\": $(json_string "$(tail -3 "$work/err")")}")
            fi
            parts[6]="\"train\": [$(join "${trains[@]}")]"
            write
        fi
    done
    rm -rf "$work"
    echo "wrote $out" >&2
}

case "${1:-}" in
    pack) shift; pack "$@" ;;
    unpack) shift; unpack "$@" ;;
    run) shift; run "$@" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
