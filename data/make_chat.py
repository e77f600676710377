#!/usr/bin/env python3
"""Write a small synthetic conversation set that a tiny model can learn, for chat fine-tuning.

Three skills, each asked in a few phrasings, answered in one short turn:
  reverse a made-up word        "reverse kelm"          -> "mlek"
  the number after N (0..999)   "what comes after 41?"  -> "42"
  a two-digit plus a digit      "what is 38 plus 5?"    -> "43"
The held-out split shares no question with the train split: its numbers and sums are kept out
of train, and its words are drawn afresh (and kept out of train). Lines are the Hugging Face
convention, {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, and every
character is one the Shakespeare corpus has, so a Shakespeare run can be fine-tuned on it.

    python3 data/make_chat.py [--out data/chat] [--train 16000] [--val 500] [--seed 0]
"""
import argparse
import json
import pathlib
import random

LETTERS = "abcdefghijklmnopqrstuvwxyz"
REVERSE = ["reverse {w}", "spell {w} backwards", "what is {w} reversed?"]
AFTER = ["what comes after {n}?", "the number after {n}?", "count on from {n}"]
PLUS = ["what is {a} plus {b}?", "{a} and {b} make?", "add {a} to {b}"]


def conversation(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "chat"))
    parser.add_argument("--train", type=int, default=16000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    numbers = list(range(1000))
    sums = [(a, b) for a in range(100) for b in range(10)]
    rng.shuffle(numbers)
    rng.shuffle(sums)
    held_numbers, held_sums = set(numbers[:100]), set(sums[:100])
    train_numbers, train_sums = numbers[100:], sums[100:]

    def word():
        return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 5)))

    held_words = set()
    while len(held_words) < args.val:
        held_words.add(word())

    def make(split):
        skill = rng.randrange(3)
        if skill == 0:
            if split == "val":
                w = rng.choice(sorted(held_words))
            else:
                w = word()
                while w in held_words:
                    w = word()
            return conversation(rng.choice(REVERSE).format(w=w), w[::-1])
        if skill == 1:
            n = rng.choice(sorted(held_numbers)) if split == "val" else rng.choice(train_numbers)
            return conversation(rng.choice(AFTER).format(n=n), str(n + 1))
        a, b = rng.choice(sorted(held_sums)) if split == "val" else rng.choice(train_sums)
        return conversation(rng.choice(PLUS).format(a=a, b=b), str(a + b))

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.train), ("val", args.val)):
        lines = [json.dumps(make(split)) for _ in range(count)]
        path = out / f"{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)
        print(f"wrote {path} ({count} conversations)")


if __name__ == "__main__":
    main()
