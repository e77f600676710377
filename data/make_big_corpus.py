#!/usr/bin/env python3
"""A large synthetic corpus for tokenizer benchmarks, made deterministically from
data/shakespeare.txt: its paragraphs (blank-line separated) shuffled with a fixed seed into
documents of 20 paragraphs each, repeated until the size asked for. Not committed.

    python3 data/make_big_corpus.py --mb 1000 --out /tmp/big.txt
"""
import argparse
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1000, help="size in MB (10^6 bytes)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    text = (HERE / "shakespeare.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    rng = random.Random(args.seed)
    target = int(args.mb * 1e6)
    written = 0
    with args.out.open("w", encoding="utf-8") as out:
        while written < target:
            rng.shuffle(paragraphs)
            for start in range(0, len(paragraphs), 20):
                document = "\n\n".join(paragraphs[start : start + 20]) + "\n\n\n"
                out.write(document)
                written += len(document.encode("utf-8"))
                if written >= target:
                    break
    print(f"wrote {written:,} bytes to {args.out}")


if __name__ == "__main__":
    main()
