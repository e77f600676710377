#!/usr/bin/env python3
"""BPE encoding throughput, side by side: `tinygpt tokenize` (into its token cache) against
Python's `tokenizers` `encode_batch` with the same tokenizer.json on the same text cut the same
way (newline-cut pieces of about 256 KB, one per core per batch, at least four), alternating for
N rounds on this machine. Prints MB/s (of the input file) and peak resident memory per
contender, medians, and the ratio, with the CPU named; then how long tinygpt takes to get its
tokens back from the cache (what a training run waits for before its first step). Needs python3
with `tokenizers` (and `pyarrow` for a Parquet corpus).

A `.txt` corpus is one file (split by position); `.jsonl` and `.parquet` are documents (the
`text` field or column). For those the Python side's time includes reading the documents
(`json.loads` per line, pyarrow's record batches), as tinygpt's does.

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
VAL_FRACTION = 0.1

PYTHON_SIDE = r"""
import math, mmap, os, sys, time
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[2])
with open(sys.argv[1], "rb") as f:
    text = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)[:].decode("utf-8")
# Split as tinygpt splits one file: the last val_fraction of the characters (rounded half away
# from zero, as Rust's f64::round) is val, and each part is cut into pieces on its own.
n_val = math.floor(len(text) * float(sys.argv[3]) + 0.5)
CHUNK, BATCH = 1 << 18, max(4, os.cpu_count() or 1)
pieces = []
for part in (text[: len(text) - n_val], text[len(text) - n_val :]):
    start = 0
    while start < len(part):
        end = min(len(part), start + CHUNK)
        newline = part.find("\n", end)
        end = len(part) if newline < 0 else newline + 1
        pieces.append(part[start:end])
        start = end
began = time.perf_counter()
tokens = 0
for i in range(0, len(pieces), BATCH):
    tokens += sum(len(e.ids) for e in tokenizer.encode_batch(pieces[i : i + BATCH], add_special_tokens=False))
print(tokens, time.perf_counter() - began)
"""

# Documents: each cut into pieces as above, pieces encoded in batches of BATCH × CHUNK bytes.
PYTHON_DOCUMENTS = r"""
import json, os, sys, time
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[2])
CHUNK, BATCH = 1 << 18, max(4, os.cpu_count() or 1)
def documents(path):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(path).iter_batches(columns=["text"], batch_size=1000):
            yield from batch.column(0).to_pylist()
    else:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)["text"]
def pieces(text):
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK)
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
        yield text[start:end]
        start = end
began = time.perf_counter()
tokens, batch, held = 0, [], 0
for doc in documents(sys.argv[1]):
    for piece in pieces(doc):
        batch.append(piece)
        held += len(piece)
    tokens += 1
    if held >= BATCH * CHUNK:
        tokens += sum(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
        batch, held = [], 0
tokens += sum(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
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
    documents = corpus.suffix in (".jsonl", ".parquet")
    results = {"tinygpt": [], "python tokenizers": []}
    tokens = {}
    tokenize = [
        args.tinygpt, "tokenize", "--config", str(ROOT / "configs/shakespeare-char.toml"),
        "--set", f"data.corpus={json.dumps(str(corpus))}",
        "--set", f"data.tokenizer={json.dumps(str(tokenizer))}",
        "--set", f"data.val_fraction={VAL_FRACTION}", "--json",
    ]
    for round_ in range(args.rounds):
        # A fresh cache each round: tinygpt must encode, not reuse.
        for pattern in (f"{corpus.name}-*.tokens", f"{corpus.parent.name}-documents-*.tokens"):
            for stale in cache.glob(pattern):
                stale.unlink()
        out, rss = run_measured(tokenize)
        report = json.loads(out)
        # MB/s of text: a Parquet file is compressed and a JSONL one escaped, so both contenders
        # are timed against the documents' own bytes (tinygpt counts them as it reads).
        if report.get("text_bytes"):
            size_mb = report["text_bytes"] / 1e6
        results["tinygpt"].append((size_mb / report["encode_seconds"], rss))
        tokens["tinygpt"] = report["train_tokens"] + report["val_tokens"]
        side = PYTHON_DOCUMENTS if documents else PYTHON_SIDE
        out, rss = run_measured(
            [sys.executable, "-c", side, str(corpus), str(tokenizer), str(VAL_FRACTION)])
        count, seconds = out.split()
        results["python tokenizers"].append((size_mb / float(seconds), rss))
        tokens["python tokenizers"] = int(count)
        print(f"round {round_ + 1}: " + ", ".join(
            f"{name} {r[-1][0]:.2f} MB/s" for name, r in results.items()), flush=True)
    print(f"\n{cpu_name()}, {os.cpu_count()} threads; {corpus.name}: {size_mb:.1f} MB of text; tokens {tokens}")
    medians = {}
    for name, rows in results.items():
        speeds = [s for s, _ in rows]
        rss = [m for _, m in rows if m is not None]
        medians[name] = statistics.median(speeds)
        print(f"{name:>18}: median {medians[name]:.2f} MB/s (min {min(speeds):.2f}, max "
              f"{max(speeds):.2f}), peak RSS {max(rss):.0f} MB" if rss else "")
    print(f"tinygpt / python tokenizers: {medians['tinygpt'] / medians['python tokenizers']:.2f}×")
    # Tokens back from the cache, as a training run gets them: hash every input file, map the
    # cache, check its ids.
    began = time.perf_counter()
    out, rss = run_measured(tokenize)
    seconds = time.perf_counter() - began
    assert json.loads(out)["reused"], "the cache was not reused"
    print(f"tokens from the cache: {seconds:.2f} s wall (tinygpt tokenize, reused), peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
