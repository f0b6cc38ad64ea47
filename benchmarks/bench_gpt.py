"""TinyGPT training-step time: tinytorch next to PyTorch CPU, the same model and batches, in one run.

Usage, from the repository root:

    python benchmarks/bench_gpt.py                    # nanoGPT's shakespeare_char CPU model, all cores
    python benchmarks/bench_gpt.py --threads 1 --repeats 40

A step is what examples/tinygpt_shakespeare.py does per iteration: forward with
the loss, zero_grad, backward, gradient clipping at norm 1, AdamW step. The model
is n_layer 4, n_head 4, n_embd 128, block_size 64, vocabulary 65, batch 12 (about
0.8 M parameters, no biases, as nanoGPT's run). Both frameworks start from the same weights (copied from the
tinytorch model) and get the same batches; the script first checks that their
losses agree over a few steps, then alternates timed steps between them, so a
machine that gets busier slows both alike, and prints the medians and their
ratio (tinytorch / PyTorch). PyTorch runs with torch.set_num_threads(--threads)
and NumPy's BLAS with the same count (set before NumPy is imported). The PyTorch
model is benchmarks/torch_gpt.py: nanoGPT's, with tanh GELU and an explicit
causal mask so that it computes exactly what tinytorch's does. Without PyTorch,
only tinytorch's time is printed.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="TinyGPT training step: tinytorch vs PyTorch CPU")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per framework (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for PyTorch and NumPy's BLAS (default: every core)")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's malloc as it is (by default reuse_freed_memory() is called, for both frameworks)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the result as a markdown page here (e.g. book/results/bench_gpt.md)")
    return parser.parse_args(argv)


ARGS = parse_args()
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)          # must happen before NumPy loads its BLAS

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))                  # this checkout's tinytorch
sys.path.insert(0, str(HERE))                         # torch_gpt beside this file
from tinytorch import manual_seed  # noqa: E402
from tinytorch.models import (GPT, GPTConfig, clip_grad_norm_, configure_optimizers, get_batch,  # noqa: E402
                              reuse_freed_memory)

try:
    import torch
    import torch_gpt
except ImportError:
    torch = None


def main() -> None:
    tuned = False if ARGS.default_allocator else reuse_freed_memory()
    config = GPTConfig(vocab_size=65, block_size=ARGS.block_size, n_layer=4, n_head=4, n_embd=128, bias=False)
    manual_seed(0)
    tiny = GPT(config)
    tiny_opt = configure_optimizers(tiny, 0.1, 1e-3, (0.9, 0.99))
    data = np.random.default_rng(0).integers(0, config.vocab_size, size=200_000)
    rng = np.random.default_rng(1)
    batches = [get_batch(data, ARGS.batch_size, config.block_size, rng)
               for _ in range(ARGS.warmup + ARGS.repeats + 3)]

    def tiny_step(x, y):
        _, loss = tiny(x, y)
        tiny_opt.zero_grad()
        loss.backward()
        clip_grad_norm_(tiny.parameters(), 1.0)
        tiny_opt.step()
        return loss.item()

    ref_step = None
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
        ref = torch_gpt.copy_weights(tiny, torch_gpt.GPT(config))
        decay = [p for p in ref.parameters() if p.dim() >= 2]
        no_decay = [p for p in ref.parameters() if p.dim() < 2]
        ref_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                    lr=1e-3, betas=(0.9, 0.99))

        def ref_step(x, y):
            _, loss = ref(torch.from_numpy(x), torch.from_numpy(y))
            ref_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
            ref_opt.step()
            return loss.item()

        for x, y in batches[:3]:                      # same weights, same batches: same losses
            a, b = tiny_step(x, y), ref_step(x, y)
            if abs(a - b) > 1e-4 * abs(b):
                sys.exit(f"error: tinytorch loss {a:.6f} and PyTorch loss {b:.6f} differ; the models are not the same")
    print(f"GPT {tiny.num_parameters():,} parameters, batch {ARGS.batch_size} x {config.block_size} tokens; "
          f"{ARGS.threads} thread(s); allocator tuned: {tuned}; {os.cpu_count()} cores, {platform.machine()}, NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__}" if torch is not None else ", PyTorch not installed"))

    times = {"tinytorch": [], "pytorch": []}
    for i, (x, y) in enumerate(batches[3:]):
        for name, step in (("tinytorch", tiny_step), ("pytorch", ref_step)):
            if step is None:
                continue
            start = time.perf_counter()
            step(x, y)
            if i >= ARGS.warmup:
                times[name].append(time.perf_counter() - start)
    lines = []
    for name in ("tinytorch", "pytorch"):
        if times[name]:
            lines.append(f"{name:<10} median step {1e3 * float(np.median(times[name])):7.1f} ms  "
                         f"(min {1e3 * min(times[name]):.1f} ms, {len(times[name])} steps)")
    if times["pytorch"]:
        lines.append(f"ratio tinytorch / pytorch: {np.median(times['tinytorch']) / np.median(times['pytorch']):.2f}")
    print("\n".join(lines))
    if ARGS.out is not None:
        command = "python benchmarks/bench_gpt.py " + " ".join(a for a in sys.argv[1:])
        ARGS.out.parent.mkdir(parents=True, exist_ok=True)
        ARGS.out.write_text(f"""# TinyGPT training step: tinytorch and PyTorch side by side

Written by `benchmarks/bench_gpt.py` (forward, backward, clipping and AdamW step of
the Shakespeare model, the same weights and batches in both, steps alternating).

- **Command:** `{command.strip()}`
- **Machine:** {os.cpu_count()} cores, {platform.machine()}, {ARGS.threads} thread(s), allocator tuned: {tuned}, NumPy {np.__version__}"""
                            + (f", PyTorch {torch.__version__}" if torch is not None else "") + f"""

```text
{chr(10).join(lines)}
```
""", encoding="utf-8")


if __name__ == "__main__":
    main()
