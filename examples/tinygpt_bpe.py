"""TinyGPT on tiny-shakespeare with characters and with byte-pair encoding, compared per character.

Usage, from the repository root:

    python examples/tinygpt_bpe.py                       # 600 iterations each, writes book/results/tinygpt_bpe.md
    python examples/tinygpt_bpe.py --iters 100 --out-dir /tmp/quick
    python examples/tinygpt_bpe.py --threads 1 --iters 1000 --vocab-size 512

Both models have the capstone's shape (n_layer 4, n_head 4, n_embd 128, block_size 64 tokens,
no biases) and recipe (TrainConfig's defaults: batch 12, AdamW, warm-up and cosine decay), the same
seed and the same number of steps; only the tokenizer differs: the characters of the text, or
chapter 18's BPETokenizer trained to --vocab-size tokens on the training split (the first 90 %).
A token is a different unit for each, so the page compares validation loss per *character*:
loss per token x tokens per character of the validation split (the last 10 %). With the same
number of tokens per step, the BPE model reads about twice the text per step and its window spans
about twice the characters: the page reports both, with the wall time of each run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="TinyGPT with characters vs byte-pair encoding, loss per character")
    parser.add_argument("--data", type=Path, default=None,
                        help="the tiny-shakespeare text (default: data/tinyshakespeare.txt, downloaded and verified on "
                             "first use; $TINYTORCH_SHAKESPEARE_URL names a mirror)")
    parser.add_argument("--download-dir", type=Path, default=ROOT / "data",
                        help="where the text is downloaded to when --data is not given (default data/)")
    parser.add_argument("--iters", type=int, default=600, help="training iterations per model (default 600)")
    parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size (default 512)")
    parser.add_argument("--eval-iters", type=int, default=100, help="batches for the final evaluation (default 100)")
    parser.add_argument("--seed", type=int, default=1337, help="seed for initialisation, batches and samples")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "book" / "results",
                        help="where tinygpt_bpe.md goes (default book/results)")
    parser.add_argument("--threads", type=int, default=None, help="threads for NumPy's BLAS (default: its own choice)")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.eval_iters < 1:
        parser.error("--iters and --eval-iters must be positive")
    if args.vocab_size < 256:
        parser.error("--vocab-size must be at least 256 (the bytes)")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads is not None:
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)      # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))
from tinytorch import manual_seed  # noqa: E402
from tinytorch.models import GPT, BPETokenizer, CharTokenizer, GPTConfig, TrainConfig, estimate_loss, train  # noqa: E402
from tinygpt_shakespeare import command_line, machine, shakespeare_text  # noqa: E402


def run(name, tokenizer, train_text, val_text, args):
    """Train one model on `tokenizer`'s ids of train_text; its validation loss per token and per character."""
    train_ids = np.array(tokenizer.encode(train_text), dtype=np.int64)
    val_ids = np.array(tokenizer.encode(val_text), dtype=np.int64)
    tokens_per_char = len(val_ids) / len(val_text)
    manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128,
                          dropout=0.0, bias=False))
    config = TrainConfig(max_iters=args.iters, lr_decay_iters=args.iters, eval_interval=args.iters,
                         eval_iters=10, seed=args.seed)
    start = time.perf_counter()
    history = train(model, train_ids, val_ids, config,
                    on_eval=lambda it, losses: print(f"  {name} step {it}: val {losses['val']:.4f} per token", flush=True))
    wall = time.perf_counter() - start
    val = estimate_loss(model, {"val": val_ids}, args.eval_iters, config.batch_size, 64,
                        np.random.default_rng(args.seed + 2))["val"]
    model.eval()
    sample = tokenizer.decode(model.generate(np.array([tokenizer.encode("\n")]), 120, temperature=0.8,
                                             seed=args.seed).data[0])
    return dict(name=name, vocab=tokenizer.vocab_size, params=model.num_parameters(), tokens_per_char=tokens_per_char,
                per_token=val, per_char=val * tokens_per_char, wall=wall, chars_per_step=12 * 64 / tokens_per_char,
                sample=sample)


def main(args) -> None:
    text = shakespeare_text(args.data, args.download_dir).read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    train_text, val_text = text[:cut], text[cut:]
    start = time.perf_counter()
    bpe = BPETokenizer.train(train_text, args.vocab_size)
    bpe_seconds = time.perf_counter() - start
    rows = []
    for name, tokenizer in (("characters", CharTokenizer(text)), (f"BPE {bpe.vocab_size}", bpe)):
        print(f"training with {name} ...", flush=True)
        rows.append(run(name, tokenizer, train_text, val_text, args))
    char, byte_pair = rows
    lines = [
        "# TinyGPT with byte-pair encoding",
        "",
        "The capstone's model trained twice on tiny-shakespeare, once on characters and once on",
        "chapter 18's byte-pair encoding, with the same shape, recipe, seed and number of steps.",
        "Validation loss is compared **per character** (loss per token × tokens per character of the",
        "validation text), since a BPE token stands for about two characters. Written by",
        "`examples/tinygpt_bpe.py`.",
        "",
        f"- **Command:** `{command_line('examples/tinygpt_bpe.py')}`",
        f"- **Machine:** {machine()}",
        f"- **BPE training:** {bpe.vocab_size} tokens learned from the training split in {bpe_seconds:.1f} s",
        "",
        "| tokenizer | vocab | parameters | tokens/char (val) | val loss per token | **val loss per char** "
        "| chars read per step | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['vocab']} | {r['params']:,} | {r['tokens_per_char']:.3f} | {r['per_token']:.4f} "
                     f"| **{r['per_char']:.4f}** | {r['chars_per_step']:,.0f} | {r['wall']:.0f} s |")
    better = "lower" if byte_pair["per_char"] < char["per_char"] else "higher"
    lines += [
        "",
        f"After {args.iters} steps the BPE model's validation loss per character is "
        f"{abs(byte_pair['per_char'] - char['per_char']):.3f} nats {better} than the character model's. "
        f"It read {byte_pair['chars_per_step'] / char['chars_per_step']:.1f}x as many characters per step "
        f"and took {byte_pair['wall'] / char['wall']:.2f}x the wall time (its head and embedding are "
        f"{byte_pair['vocab'] / char['vocab']:.1f}x larger). This is one seed and a short run: a comparison at equal "
        "steps, not the best either tokenizer can do.",
        "",
        "## Samples (temperature 0.8, from a newline)",
        "",
    ]
    for r in rows:
        lines += [f"**{r['name']}:**", "", "```text", r["sample"].strip("\n"), "```", ""]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    page = args.out_dir / "tinygpt_bpe.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines[12:18]))
    print(f"wrote {page}")


if __name__ == "__main__":
    main(ARGS)
