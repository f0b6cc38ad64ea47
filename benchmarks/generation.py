"""Generation with and without the KV cache (chapter 18), on one thread.

Usage, from the repository root:

    python benchmarks/generation.py                        # 256 new tokens, 1-token prompt, block_size 256
    python benchmarks/generation.py --new-tokens 128 --block-size 128 --rounds 5

The model has the shape of the capstone's Shakespeare model (4 layers, 4 heads, width 128,
65 tokens) with the window given by --block-size, randomly initialised (speed does not
depend on the weights). Each round generates the same text both ways with the same seed,
alternating which goes first, and checks that the tokens are identical; the ratio printed
is the median over rounds of uncached time / cached time, and the ratio of the fastest runs
(other work on the machine only adds time, so the fastest run is the least disturbed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"   # one thread, set before NumPy loads

import numpy as np  # noqa: E402

from tinytorch import manual_seed  # noqa: E402
from tinytorch.models import GPT, GPTConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.new_tokens < 1 or args.block_size < 1 or args.rounds < 1:
        parser.error("--new-tokens, --block-size and --rounds must be positive")
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=args.block_size, n_layer=4, n_head=4, n_embd=128)).eval()
    prompt = np.array([[0]])
    times = {True: [], False: []}
    for r in range(args.rounds):
        outputs = {}
        for use_cache in ((True, False) if r % 2 == 0 else (False, True)):
            start = time.perf_counter()
            outputs[use_cache] = model.generate(prompt, args.new_tokens, seed=r, use_cache=use_cache).data
            times[use_cache].append(time.perf_counter() - start)
        if not np.array_equal(outputs[True], outputs[False]):
            print(f"round {r}: cached and uncached tokens differ", file=sys.stderr)
            return 1
    ratios = np.array(times[False]) / np.array(times[True])
    cached, plain = np.median(times[True]), np.median(times[False])
    print(f"{args.new_tokens} new tokens from a 1-token prompt, block_size {args.block_size}, "
          f"{model.num_parameters():,} parameters, one thread, {args.rounds} rounds (identical tokens in each)")
    print(f"cached:   {cached:.2f} s ({cached / args.new_tokens * 1e3:.1f} ms/token)")
    print(f"uncached: {plain:.2f} s ({plain / args.new_tokens * 1e3:.1f} ms/token)")
    print(f"speed-up: {np.median(ratios):.1f}x (median of per-round ratios; range {ratios.min():.1f}-{ratios.max():.1f}); "
          f"{min(times[False]) / min(times[True]):.1f}x between the fastest runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
