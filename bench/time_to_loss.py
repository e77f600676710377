#!/usr/bin/env python3
"""Time to a target loss, side by side: tinygpt configs and the PyTorch reference, alternated.

Each contender trains its config (the same corpus, split and val loss): tinygpt saves a
checkpoint every --every steps and `tinygpt eval` scores each on the whole val split;
the PyTorch reference (bench/reference/train_to_loss.py) evaluates the same way at the same
steps. For each contender: the first evaluated step whose val loss is <= --target, its tokens,
and the wall seconds of training up to it (tinygpt: the run's own clock at that step, its
logging and checkpoints included; PyTorch: its training steps alone). Contenders run in turn,
round after round, so a machine's drift touches every contender alike.

    python bench/time_to_loss.py --target 1.7114 --every 50 \
        tinygpt:configs/shakespeare-char.toml@250 tinygpt:configs/shakespeare-modern.toml \
        torch:configs/shakespeare-modern.toml
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tinygpt_binary():
    for candidate in [os.environ.get("TINYGPT"),
                      os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                   "release", "tinygpt")]:
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("error: no tinygpt binary; build it (cargo build --release) or set TINYGPT")


def run_tinygpt(config, target, every, scratch):
    binary = tinygpt_binary()
    run = os.path.join(scratch, "run")
    subprocess.run([binary, "train", "--config", config, "--out", run,
                    "--set", f"train.checkpoint_interval={every}",
                    "--set", "train.keep_checkpoints=100000",
                    "--set", "train.sample_tokens=0"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            metrics[row["step"]] = row
    steps = sorted(int(name.split("-")[1]) for name in os.listdir(os.path.join(run, "checkpoints"))
                   if name.startswith("step-") and name.split("-")[1].isdigit())
    curve, reached = [], None
    for step in steps:
        out = subprocess.run([binary, "eval", "--run", run, "--checkpoint", f"step-{step}",
                              "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
        loss = json.loads(out.stdout)["loss"]
        row = metrics.get(step) or metrics[max(s for s in metrics if s <= step)]
        curve.append({"step": step, "val_loss": loss, "seconds": row["elapsed_s"],
                      "tokens": row["tokens"]})
        if loss <= target:
            reached = curve[-1]
            break
    last = metrics[max(metrics)]
    return {
        "reached": reached is not None,
        "steps": reached and reached["step"],
        "tokens": reached and reached["tokens"],
        "seconds": reached and reached["seconds"],
        "tokens_per_sec": last["tokens"] / last["elapsed_s"],
        "curve": curve,
    }


def run_torch(config, target, every, threads):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench/reference/train_to_loss.py"),
                          "--config", config, "--target", str(target), "--every", str(every),
                          "--threads", str(threads), "--json"],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("contenders", nargs="+",
                   help="tinygpt:CONFIG or torch:CONFIG, optionally @EVERY (its own evaluation interval)")
    p.add_argument("--target", type=float, required=True)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {c: [] for c in args.contenders}
    for round_ in range(args.rounds):
        for contender in args.contenders:
            kind, config = contender.split(":", 1)
            config, _, every = config.partition("@")
            every = int(every) if every else args.every
            with tempfile.TemporaryDirectory() as scratch:
                if kind == "tinygpt":
                    result = run_tinygpt(config, args.target, every, scratch)
                elif kind == "torch":
                    result = run_torch(config, args.target, every, args.threads)
                else:
                    sys.exit(f"error: contender {contender!r}: write tinygpt:CONFIG or torch:CONFIG")
            results[contender].append(result)
            print(f"round {round_ + 1} {contender}: steps {result['steps']} tokens "
                  f"{result['tokens']} seconds {result['seconds'] and round(result['seconds'], 1)}"
                  f" ({result['tokens_per_sec']:.0f} tok/s)", file=sys.stderr)
    summary = {}
    for contender, runs in results.items():
        done = [r for r in runs if r["reached"]]
        summary[contender] = {
            "reached": len(done) == len(runs),
            "steps": done[0]["steps"] if done else None,
            "tokens": done[0]["tokens"] if done else None,
            "seconds_median": statistics.median(r["seconds"] for r in done) if done else None,
            "tokens_per_sec_median": statistics.median(r["tokens_per_sec"] for r in runs),
            "curve": runs[0]["curve"],
        }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"target val loss {args.target} (whole val split), evaluated every {args.every} steps")
    print(f"{'contender':45} {'steps':>6} {'tokens':>10} {'seconds':>8} {'tok/s':>8}")
    for contender, s in summary.items():
        seconds = f"{s['seconds_median']:.1f}" if s["seconds_median"] else "-"
        print(f"{contender:45} {s['steps'] or '-':>6} {s['tokens'] or '-':>10} {seconds:>8} "
              f"{s['tokens_per_sec_median']:>8.0f}")


if __name__ == "__main__":
    main()
