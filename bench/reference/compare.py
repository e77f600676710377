#!/usr/bin/env python3
"""tinygpt against PyTorch on this machine, side by side: `tinygpt bench` and the PyTorch
reference (bench/reference/gpt.py: eager, and torch.compile when a C++ compiler exists) run in
alternation for N rounds on the same shape, batch and threads; prints medians, spreads and
ratios with the CPU's name and vector ISA, and MFU against the hardware peak `bench` measures.

    python3 bench/reference/compare.py --config configs/shakespeare-char.toml --rounds 3
    python3 bench/reference/compare.py --config configs/nanogpt-char.toml --batch-size 16
    python3 bench/reference/compare.py --levels avx2    # on an AVX-512 CPU: which level is faster
    python3 bench/reference/compare.py --config configs/nanogpt-char.toml --batch-size 16 --bf16
        # tinygpt with train.precision = "bf16" against PyTorch under bf16 autocast too

torch is not a dependency of tinygpt or of its tests. It is a large install (the PyPI wheel
pulls NVIDIA's CUDA libraries even on a CPU-only machine, about 5.5 GB in all):
    python3 -m venv ~/.venvs/torch && ~/.venvs/torch/bin/pip install torch numpy safetensors
then pass --python ~/.venvs/torch/bin/python (the default when that venv exists).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = Path.home() / ".venvs/torch/bin/python"


def tinygpt_binary():
    if os.environ.get("TINYGPT"):
        return os.environ["TINYGPT"]
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/tinygpt/target"))
    for candidate in (Path(target) / "release/tinygpt", ROOT / "target/release/tinygpt"):
        if candidate.exists():
            return str(candidate)
    sys.exit("error: no tinygpt binary: cargo build --release (or set TINYGPT=path)")


def run_json(command, env=None):
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(command[:3])}... failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def spread(values):
    return f"{min(values):,.0f}–{max(values):,.0f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/shakespeare-char.toml")
    p.add_argument("--batch-size", type=int, help="default: the config's train.batch_size")
    p.add_argument("--block-size", type=int, help="tokens per sequence; default: the config's")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--sample-tokens", type=int, default=256)
    p.add_argument("--python", default=str(VENV_PYTHON) if VENV_PYTHON.exists() else "python3")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--bf16", action="store_true",
                   help="also time tinygpt with bf16 products (bench --precision bf16, on a CPU "
                        "with AVX512_BF16) and PyTorch eager under bf16 autocast on the CPU "
                        "(oneDNN's AVX512_BF16/AMX products)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--levels", default="",
                   help="also time tinygpt with its vector kernels held to these levels "
                        "(TINYGPT_VECTOR_LEVEL; comma-separated: baseline, avx2, avx512), "
                        "e.g. --levels avx2 on an AVX-512 CPU")
    args = p.parse_args()

    check = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"error: {args.python} has no torch: install it into a venv, "
                 "python3 -m venv ~/.venvs/torch && ~/.venvs/torch/bin/pip install torch numpy safetensors "
                 "(about 5.5 GB), then pass --python ~/.venvs/torch/bin/python")
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    levels = [level for level in args.levels.split(",") if level]
    torch_contenders = ["eager"] + ([] if args.no_compile or not compiler else ["compile"])
    ours_bf16 = []
    if args.bf16:
        torch_contenders.append("eager-bf16")
        ours_bf16 = ["tinygpt-bf16"]
    contenders = (["tinygpt"] + ours_bf16 + [f"tinygpt@{level}" for level in levels]
                  + torch_contenders)

    tinygpt = tinygpt_binary()
    devices = run_json([tinygpt, "devices", "--json"])
    threads = devices["cpu_threads"]
    bench = [tinygpt, "bench", "--config", args.config, "--device", "flex", "--json",
             "--steps", str(args.steps), "--warmup", str(args.warmup),
             "--sample-tokens", str(args.sample_tokens)]
    if args.batch_size:
        bench += ["--batch-size", str(args.batch_size)]
    if args.block_size:
        bench += ["--block-size", str(args.block_size)]

    results = {name: [] for name in contenders}
    model = None
    for round_ in range(args.rounds):
        for name in contenders:
            if name.startswith("tinygpt"):
                env = dict(os.environ)
                env.pop("TINYGPT_VECTOR_LEVEL", None)
                if "@" in name:
                    env["TINYGPT_VECTOR_LEVEL"] = name.split("@", 1)[1]
                precision = ["--precision", "bf16" if name == "tinygpt-bf16" else "fp32"]
                report = run_json(bench + precision, env)
                model = report["model"]
                batch_size = report["batch_size"]
            else:
                reference = [args.python, str(ROOT / "bench/reference/gpt.py"), "--json",
                             "--model", json.dumps(model), "--batch-size", str(batch_size),
                             "--steps", str(args.steps), "--warmup", str(args.warmup),
                             "--sample-tokens", str(args.sample_tokens),
                             "--threads", str(threads)]
                if name == "eager-bf16":
                    reference.append("--bf16")
                if name == "compile":
                    reference.append("--compile")
                report = run_json(reference)
            results[name].append(report)
            print(f"round {round_ + 1}: {name} {report['train_tokens_per_sec']:,.0f} tok/s",
                  file=sys.stderr)

    ours = results["tinygpt"]
    params = ours[0]["params"]
    for name in torch_contenders:
        if results[name][0]["params"] != params:
            sys.exit(f"error: the reference has {results[name][0]['params']} parameters, "
                     f"tinygpt {params}: not the same model")
    flops_per_token = ours[0]["flops_per_token"]
    hardware = statistics.median(r["hardware_peak_gflops"] for r in ours)
    # MFU against the peak of the precision in use: bench measures the bf16 one where the CPU
    # has AVX512_BF16.
    bf16_peaks = [r["hardware_bf16_peak_gflops"] for r in ours if r.get("hardware_bf16_peak_gflops")]
    bf16_peak = statistics.median(bf16_peaks) if bf16_peaks else None
    summary = {
        "cpu": cpu_name(),
        "vector_isa": devices["cpu_vector_isa"],
        "kernel_level": ours[0]["kernel_level"],
        "bf16_instruction": ours[0].get("bf16_instruction"),
        "threads": threads,
        "config": args.config,
        "batch_size": batch_size,
        "block_size": model["block_size"],
        "params": params,
        "rounds": args.rounds,
        "hardware_peak_gflops": hardware,
        "hardware_bf16_peak_gflops": bf16_peak,
        "torch": results["eager"][0]["torch"],
        "contenders": {},
    }
    for name in contenders:
        train = [r["train_tokens_per_sec"] for r in results[name]]
        sample = [r.get("sample_tokens_per_sec_kv_cache") for r in results[name]]
        sample = [s for s in sample if s]
        summary["contenders"][name] = {
            "train_tokens_per_sec": statistics.median(train),
            "train_spread": [min(train), max(train)],
            "mfu_hardware": statistics.median(train) * flops_per_token / 1e9
            / (bf16_peak if name.endswith("bf16") and bf16_peak else hardware),
            "sample_tokens_per_sec": statistics.median(sample) if sample else None,
            "sample_spread": [min(sample), max(sample)] if sample else None,
            "peak_memory_mib": max(r.get("peak_memory_mib") or 0 for r in results[name]) or None,
        }
    if args.json:
        print(json.dumps(summary))
        return

    print(f"{summary['cpu']}, {summary['vector_isa']}, {threads} threads; torch "
          f"{summary['torch']}; {args.config}: {params:,} parameters, batch {batch_size} × "
          f"{model['block_size']}; {args.rounds} alternating rounds; hardware fp32 peak "
          f"{hardware:.0f} GFLOP/s"
          + (f", bf16 peak {bf16_peak:.0f} (the bf16 contenders' MFU)" if args.bf16 and bf16_peak else ""))
    labels = {"tinygpt": f"tinygpt (flex, fp32, kernels {summary['kernel_level']})",
              "tinygpt-bf16": f"tinygpt (flex, bf16 on {summary.get('bf16_instruction') or 'VDPBF16PS'})", "eager": "PyTorch eager",
              "compile": "torch.compile", "eager-bf16": "PyTorch eager, bf16 autocast"}
    labels.update({f"tinygpt@{level}": f"tinygpt (flex, {level})" for level in levels})
    width = max(len(label) for label in labels.values())
    print(f"{'':{width}} {'train tok/s':>12} {'spread':>17} {'MFU':>6} {'sample tok/s':>13} "
          f"{'spread':>17} {'peak RSS':>10}")
    for name in contenders:
        c = summary["contenders"][name]
        sample = c["sample_tokens_per_sec"]
        memory = f"{c['peak_memory_mib']:,.0f} MiB" if c["peak_memory_mib"] else "-"
        print(f"{labels[name]:{width}} {c['train_tokens_per_sec']:>12,.0f} "
              f"{spread(results_list(results, name, 'train_tokens_per_sec')):>17} "
              f"{100 * c['mfu_hardware']:>5.1f}% "
              f"{(f'{sample:,.0f}' if sample else '-'):>13} "
              f"{(spread(results_list(results, name, 'sample_tokens_per_sec_kv_cache')) if sample else '-'):>17} "
              f"{memory:>10}")
    ours = summary["contenders"]["tinygpt"]
    for level in levels:
        held = summary["contenders"][f"tinygpt@{level}"]
        print(f"tinygpt with {level} kernels / with {summary['kernel_level']}: training "
              f"{held['train_tokens_per_sec'] / ours['train_tokens_per_sec']:.2f}×")
    for mine in ["tinygpt"] + ours_bf16:
        ours = summary["contenders"][mine]
        for name in torch_contenders:
            theirs = summary["contenders"][name]
            ratio = ours["train_tokens_per_sec"] / theirs["train_tokens_per_sec"]
            line = f"{labels[mine]} / {labels[name]}: training {ratio:.2f}×"
            if ours["sample_tokens_per_sec"] and theirs["sample_tokens_per_sec"]:
                line += f", sampling {ours['sample_tokens_per_sec'] / theirs['sample_tokens_per_sec']:.2f}×"
            print(line)


def results_list(results, name, key):
    return [r[key] for r in results[name] if r.get(key)]


if __name__ == "__main__":
    main()
