#!/usr/bin/env python3
"""A large synthetic corpus for tokenizer benchmarks, made deterministically from
data/shakespeare.txt: its paragraphs (blank-line separated) shuffled with a fixed seed into
documents of 20 paragraphs each, repeated until the size asked for. Not committed.

    python3 data/make_big_corpus.py --mb 1000 --out /tmp/big.txt
    python3 data/make_big_corpus.py --mb 1000 --format jsonl --out /tmp/big.jsonl
    python3 data/make_big_corpus.py --mb 1000 --format parquet --out /tmp/big.parquet  # pyarrow

`text` writes the documents one after another into one file (each ends with two blank lines);
`jsonl` one {"id": N, "text": DOCUMENT} object per line; `parquet` the same two columns, in
row groups of 10,000 rows, snappy-compressed (pyarrow's defaults, as Hugging Face datasets
export). The same seed and size give the same documents in every format.
"""
import argparse
import json
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent


def documents(target_bytes, seed):
    """Documents of 20 shuffled paragraphs until `target_bytes` of UTF-8 text."""
    text = (HERE / "shakespeare.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    rng = random.Random(seed)
    written = 0
    while True:
        rng.shuffle(paragraphs)
        for start in range(0, len(paragraphs), 20):
            document = "\n\n".join(paragraphs[start : start + 20]) + "\n\n\n"
            yield document
            written += len(document.encode("utf-8"))
            if written >= target_bytes:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1000, help="size of the text in MB (10^6 bytes)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--format", choices=["text", "jsonl", "parquet"], default="text")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    docs = documents(int(args.mb * 1e6), args.seed)
    count = 0
    if args.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
        with pq.ParquetWriter(args.out, schema, compression="snappy") as writer:
            batch = []
            for doc in docs:
                batch.append(doc)
                if len(batch) == 10_000:
                    writer.write_table(pa.table({"id": range(count, count + len(batch)), "text": batch}, schema=schema))
                    count += len(batch)
                    batch = []
            if batch:
                writer.write_table(pa.table({"id": range(count, count + len(batch)), "text": batch}, schema=schema))
                count += len(batch)
    else:
        with args.out.open("w", encoding="utf-8") as out:
            for doc in docs:
                out.write(doc if args.format == "text" else json.dumps({"id": count, "text": doc}) + "\n")
                count += 1
    print(f"wrote {count:,} documents, {args.out.stat().st_size:,} bytes to {args.out}")


if __name__ == "__main__":
    main()
