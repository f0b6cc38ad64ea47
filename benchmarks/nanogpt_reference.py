"""nanoGPT's own shakespeare_char CPU run, in PyTorch, over several seeds: where TinyGPT's target comes from.

Usage, from the repository root (needs PyTorch):

    python benchmarks/nanogpt_reference.py --seeds 1337 1 2 3 4 5 6 7 --book-page book/results/nanogpt_reference.md

This follows nanoGPT's train.py run as its README suggests for a CPU
(`--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
--lr_decay_iters=2000 --dropout=0.0` on top of config/train_shakespeare_char.py):
`torch.manual_seed(seed)`, then the modules built and initialised in nanoGPT's
order and every batch drawn with `torch.randint` in the order its loop draws
them, so a seed gives nanoGPT's initial weights and batches for that seed (1337
is the one train.py sets); exact GELU; no biases (train.py's default; --bias
adds them); AdamW with weight decay on matrices; warm-up and cosine learning
rate; clipping at 1.0; 20 evaluation batches per split every 250 iterations.
The model is benchmarks/torch_gpt.py's (nanoGPT's, with an explicit causal mask
instead of the fused attention kernel: the same function, up to rounding). It
also reports the loss over 200 batches per split, which moves far less with
the sampled batches than nanoGPT's 20.

examples/tinygpt_shakespeare.py trains tinytorch's GPT with the same recipe;
this script says what the same recipe gives in PyTorch, seed by seed.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "examples")]

import torch_gpt  # noqa: E402
from tinygpt_shakespeare import command_line, machine, seed_table, shakespeare_text  # noqa: E402

from tinytorch.models import CharTokenizer, GPTConfig, TrainConfig, get_lr  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="nanoGPT's shakespeare_char CPU run in PyTorch, over seeds")
    parser.add_argument("--data", type=Path, default=None,
                        help="the tiny-shakespeare text (default: data/tinyshakespeare.txt, downloaded and verified on "
                             "first use; $TINYTORCH_SHAKESPEARE_URL names a mirror)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337], help="seeds to train with (default 1337)")
    parser.add_argument("--iters", type=int, default=2000, help="training iterations (default 2000)")
    parser.add_argument("--final-eval-iters", type=int, default=200,
                        help="batches per split for the precise evaluation of the final model (default 200)")
    parser.add_argument("--bias", action="store_true",
                        help="biases in the Linear layers and LayerNorms (nanoGPT's --bias=True; its default is none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--book-page", type=Path, default=None, help="also write the results as a markdown page here")
    return parser.parse_args(argv)


def train_seed(seed: int, vocab_size: int, train_data: np.ndarray, val_data: np.ndarray, config: TrainConfig,
               final_eval_iters: int, bias: bool = False) -> tuple[float, float, float]:
    """nanoGPT's training loop for one seed; returns the final val loss over eval_iters and final_eval_iters
    batches, and the wall time."""
    torch.manual_seed(seed)
    model_config = GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                             bias=bias)
    model = torch_gpt.init_like_nanogpt(torch_gpt.GPT(model_config, gelu="none"))
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(config.beta1, config.beta2))
    T, B = model_config.block_size, config.batch_size
    splits = {"train": torch.from_numpy(train_data), "val": torch.from_numpy(val_data)}

    def get_batch(split):
        data = splits[split]
        ix = torch.randint(len(data) - T, (B,))                       # (B,) window starts, from torch's generator
        offsets = ix[:, None] + torch.arange(T)                        # (B, T)
        return data[offsets], data[offsets + 1]                        # x (B, T), y (B, T)

    @torch.no_grad()
    def estimate_loss(iters):
        model.eval()
        out = {}
        for split in splits:
            losses = []
            for _ in range(iters):
                x, y = get_batch(split)
                logits, _ = model(x)
                losses.append(F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item())
            out[split] = float(np.mean(losses))
        model.train()
        return out

    start = time.perf_counter()
    x, y = get_batch("train")                                          # nanoGPT fetches the first batch up front
    for it in range(config.max_iters + 1):
        lr = get_lr(it, config.learning_rate, config.warmup_iters, config.lr_decay_iters, config.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if it % config.eval_interval == 0 or it == config.max_iters:
            losses = estimate_loss(config.eval_iters)
            print(f"  step {it:5d}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if it == config.max_iters:
            break
        _, loss = model(x, y)
        x, y = get_batch("train")                                      # drawn while the step runs, as nanoGPT does
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    wall = time.perf_counter() - start
    return losses["val"], estimate_loss(final_eval_iters)["val"], wall


def main(argv=None) -> None:
    args = parse_args(argv)
    args.data = shakespeare_text(args.data)
    torch.set_num_threads(args.threads)
    text = args.data.read_text(encoding="utf-8")
    tokenizer = CharTokenizer(text)
    data = np.array(tokenizer.encode(text), dtype=np.int64)
    split = int(0.9 * len(data))
    config = TrainConfig(max_iters=args.iters, lr_decay_iters=args.iters)
    rows = []
    for seed in args.seeds:
        print(f"seed {seed}:", flush=True)
        short, long, wall = train_seed(seed, tokenizer.vocab_size, data[:split], data[split:], config,
                                       args.final_eval_iters, args.bias)
        rows.append((seed, short, long, wall))
    table = seed_table(rows, config.eval_iters, args.final_eval_iters)
    print(table)
    if args.book_page is None:
        return
    gap = np.mean([abs(short - long) for _, short, long, _ in rows])
    page = f"""# nanoGPT's own run, seed by seed

Written by `benchmarks/nanogpt_reference.py`; rerun it to reproduce. This is the PyTorch run
that TinyGPT's target comes from: nanoGPT's `train.py` with the configuration its README gives
for a CPU (`--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12
--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`),
its exact GELU, {"biases" if args.bias else "no biases (its default)"}, and its initial weights and batches for each seed:
the modules are built and initialised in nanoGPT's order after `torch.manual_seed(seed)`, and
the batches are drawn with `torch.randint` in the order its loop draws them. Seed 1337 is the
one nanoGPT's `train.py` sets, so that row replays nanoGPT's own run, whose README reports a
validation loss of about 1.88.

- **Command:** `{command_line('benchmarks/nanogpt_reference.py', argv)}`
- **Machine:** {machine()}; PyTorch {torch.__version__} with {args.threads} thread(s)
- **Iterations:** {args.iters}; the validation loss after the last one, over nanoGPT's
  {config.eval_iters} batches per split and over {args.final_eval_iters}

{table}

The {config.eval_iters}-batch figure is what nanoGPT prints. It depends on which batches it happens to
sample: here it lies {gap:.3f} on average from the {args.final_eval_iters}-batch figure, the better estimate of
each model's loss. What is left from seed to seed is the run itself: the initial weights and the
order of the batches.
[TinyGPT's results](tinygpt.md) show tinytorch's seeds for the same recipe.
"""
    args.book_page.parent.mkdir(parents=True, exist_ok=True)
    args.book_page.write_text(page, encoding="utf-8")
    print(f"wrote {args.book_page}")


if __name__ == "__main__":
    main()
