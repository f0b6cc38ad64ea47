"""Byte-pair encoding (chapter 18) on tiny-shakespeare: training time, encoding speed, exact round trip.

Usage, from the repository root:

    python benchmarks/bpe.py                      # train to 512 tokens, encode the whole text, decode it back
    python benchmarks/bpe.py --vocab-size 1024 --data data/

The text comes from tinytorch.data.download_shakespeare (into --data, default data/; the
TINYTORCH_SHAKESPEARE_URL environment variable points it at a mirror). Training and encoding
are timed on one core (the tokenizer is pure Python: one thread whatever the machine has).
Encoding is timed with a fresh tokenizer (empty chunk cache) and again with the cache warm.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tinytorch.data import download_shakespeare
from tinytorch.models import BPETokenizer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--data", default="data", help="folder for the downloaded text (default: data/)")
    args = parser.parse_args(argv)
    if args.vocab_size < 256:
        parser.error("--vocab-size must be at least 256 (the bytes)")
    text = download_shakespeare(Path(args.data), progress=False).read_text(encoding="utf-8")
    megabytes = len(text.encode("utf-8")) / 1e6
    start = time.perf_counter()
    tok = BPETokenizer.train(text, args.vocab_size)
    train_s = time.perf_counter() - start
    fresh = BPETokenizer(tok.merges)
    start = time.perf_counter()
    ids = fresh.encode(text)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    fresh.encode(text)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    back = fresh.decode(ids)
    decode_s = time.perf_counter() - start
    if back != text:
        print("round trip FAILED: decode(encode(text)) differs from the text", file=sys.stderr)
        return 1
    print(f"tiny-shakespeare: {len(text):,} characters ({megabytes:.2f} MB)")
    print(f"train to {tok.vocab_size} tokens: {train_s:.1f} s")
    print(f"encode: {len(ids):,} tokens ({len(ids) / len(text):.3f} tokens/char) in {cold_s:.2f} s "
          f"= {megabytes / cold_s:.1f} MB/s (fresh cache), {megabytes / warm_s:.1f} MB/s (warm cache)")
    print(f"decode: {decode_s:.2f} s; round trip exact: {len(back):,} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
