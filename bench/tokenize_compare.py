#!/usr/bin/env python3
"""BPE encoding throughput, side by side: `tinygpt tokenize` (into its token cache) against
Python's `tokenizers` `encode_batch` with the same tokenizer.json on the same text cut the same
way (newline-cut pieces of about 256 KB, one per core per batch, at least four), alternating for N rounds on this
machine. Prints MB/s and peak resident memory per contender, medians, and the ratio, with the
CPU named. Needs python3 with `tokenizers`.

    python3 data/make_big_corpus.py --mb 50 --out /tmp/corpus.txt
    tinygpt tokenize --set data.corpus='"/tmp/corpus.txt"' --set data.tokenizer='"bpe"' \
        --set data.vocab_size=4096 --save-tokenizer /tmp/bpe.json
    python3 bench/tokenize_compare.py --corpus /tmp/corpus.txt --tokenizer /tmp/bpe.json
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

PYTHON_SIDE = r"""
import mmap, os, sys, time
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[2])
with open(sys.argv[1], "rb") as f:
    text = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)[:].decode("utf-8")
CHUNK, BATCH = 1 << 18, max(4, os.cpu_count() or 1)
pieces, start = [], 0
while start < len(text):
    end = min(len(text), start + CHUNK)
    newline = text.find("\n", end)
    end = len(text) if newline < 0 else newline + 1
    pieces.append(text[start:end])
    start = end
began = time.perf_counter()
tokens = 0
for i in range(0, len(pieces), BATCH):
    tokens += sum(len(e.ids) for e in tokenizer.encode_batch(pieces[i : i + BATCH], add_special_tokens=False))
print(tokens, time.perf_counter() - began)
"""


def run_measured(command):
    """(stdout, peak RSS MB) through /usr/bin/time when present, else without memory."""
    if shutil.which("time") or pathlib.Path("/usr/bin/time").exists():
        full = ["/usr/bin/time", "-f", "MAXRSS %M"] + command
        result = subprocess.run(full, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{command[0]} failed:\n{result.stderr}")
        rss = [l for l in result.stderr.splitlines() if l.startswith("MAXRSS ")]
        return result.stdout, int(rss[-1].split()[1]) / 1024 if rss else None
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return result.stdout, None


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=pathlib.Path, required=True)
    parser.add_argument("--tokenizer", type=pathlib.Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tinygpt", default=str(ROOT / "target/release/tinygpt"))
    args = parser.parse_args()
    corpus, tokenizer = args.corpus.resolve(), args.tokenizer.resolve()
    size_mb = corpus.stat().st_size / 1e6
    cache = corpus.parent / ".tinygpt-cache"
    results = {"tinygpt": [], "python tokenizers": []}
    tokens = {}
    for round_ in range(args.rounds):
        # A fresh cache each round: tinygpt must encode, not reuse.
        for stale in cache.glob(f"{corpus.name}-*.tokens"):
            stale.unlink()
        out, rss = run_measured([
            args.tinygpt, "tokenize", "--config", str(ROOT / "configs/shakespeare-char.toml"),
            "--set", f"data.corpus={json.dumps(str(corpus))}",
            "--set", f"data.tokenizer={json.dumps(str(tokenizer))}", "--json",
        ])
        report = json.loads(out)
        results["tinygpt"].append((report["encode_mb_per_s"], rss))
        tokens["tinygpt"] = report["train_tokens"] + report["val_tokens"]
        out, rss = run_measured([sys.executable, "-c", PYTHON_SIDE, str(corpus), str(tokenizer)])
        count, seconds = out.split()
        results["python tokenizers"].append((size_mb / float(seconds), rss))
        tokens["python tokenizers"] = int(count)
        print(f"round {round_ + 1}: " + ", ".join(
            f"{name} {r[-1][0]:.2f} MB/s" for name, r in results.items()), flush=True)
    print(f"\n{cpu_name()}, {os.cpu_count()} threads; {size_mb:.1f} MB; tokens {tokens}")
    medians = {}
    for name, rows in results.items():
        speeds = [s for s, _ in rows]
        rss = [m for _, m in rows if m is not None]
        medians[name] = statistics.median(speeds)
        print(f"{name:>18}: median {medians[name]:.2f} MB/s (min {min(speeds):.2f}, max "
              f"{max(speeds):.2f}), peak RSS {max(rss):.0f} MB" if rss else "")
    print(f"tinygpt / python tokenizers: {medians['tinygpt'] / medians['python tokenizers']:.2f}×")


if __name__ == "__main__":
    main()
