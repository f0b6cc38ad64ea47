"""Train TinyGPT on tiny-shakespeare with nanoGPT's small CPU configuration, and report the result.

Usage, from the repository root:

    python examples/tinygpt_shakespeare.py                     # 2000 iterations, writes book/results/tinygpt.md
    python examples/tinygpt_shakespeare.py --iters 200 --out-dir /tmp/quick
    python examples/tinygpt_shakespeare.py --checkpoint runs/tinygpt.ckpt
    python examples/tinygpt_shakespeare.py --threads 1 --compare-torch --more-seeds 1 2 3 4 5 6 7
                                                                 # what book/results/tinygpt.md shows

The model and the recipe are those of nanoGPT's `shakespeare_char` run on a CPU
(n_layer 4, n_head 4, n_embd 128, block_size 64, batch 12, dropout 0, no biases
in the Linear layers and LayerNorms; AdamW with
lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices; 100 warm-up steps, cosine
decay to 1e-4 at the last iteration; gradient clipping at 1.0), on the first 90% of
the text, with the validation loss on the last 10%. The script writes, into
--out-dir, `tinygpt.md` (command, machine, wall time, step time, the evaluation log
and a generated sample) and `tinygpt_loss.png`; with --checkpoint it saves the
model, the optimizer and the metadata needed to rebuild it through
tinytorch.training.save_checkpoint, then reloads it and checks that the logits agree. With
--more-seeds it trains one fresh model per extra seed and reports every seed's final validation
loss with their mean and standard deviation: one seed's figure moves by about a hundredth from
seed to seed, as benchmarks/nanogpt_reference.py shows for PyTorch.
"""

import argparse
import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train TinyGPT on tiny-shakespeare (nanoGPT's CPU configuration)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the tiny-shakespeare text (default: data/tinyshakespeare.txt, downloaded and verified on "
                             "first use; $TINYTORCH_SHAKESPEARE_URL names a mirror)")
    parser.add_argument("--download-dir", type=Path, default=ROOT / "data",
                        help="where the text is downloaded to when --data is not given (default data/)")
    parser.add_argument("--iters", type=int, default=2000, help="training iterations (default 2000)")
    parser.add_argument("--eval-interval", type=int, default=250, help="iterations between evaluations (default 250)")
    parser.add_argument("--eval-iters", type=int, default=20, help="batches per evaluation and split (default 20)")
    parser.add_argument("--seed", type=int, default=1337, help="seed for the initialisation, batches and sample")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "book" / "results",
                        help="where tinygpt.md and tinygpt_loss.png go (default book/results)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="also save the trained model and optimizer here (tinytorch.training format)")
    parser.add_argument("--sample-chars", type=int, default=500, help="characters to generate at the end")
    parser.add_argument("--final-eval-iters", type=int, default=200,
                        help="batches per split for a more precise evaluation of the final model (default 200)")
    parser.add_argument("--compare-torch", action="store_true",
                        help="then train benchmarks/torch_gpt.py's PyTorch model from the same initial weights on the "
                             "same batches with the same schedule, and report both (needs PyTorch)")
    parser.add_argument("--bias", action="store_true",
                        help="biases in the Linear layers and LayerNorms, as nanoGPT's --bias=True (its train.py "
                             "default, kept by its CPU run, is no biases)")
    parser.add_argument("--more-seeds", type=int, nargs="+", default=[], metavar="SEED",
                        help="then train a fresh model for each of these seeds too (tinytorch only, no sample or "
                             "plot) and report the final validation loss of every seed with its mean and spread")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS (default: its own choice, every core); on a machine "
                             "busy with other work, 1 can be much faster than oversubscribed threads")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads is not None:
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)      # must happen before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))                          # this checkout's tinytorch
from tinytorch import manual_seed  # noqa: E402
from tinytorch.models import (CharTokenizer, GPTConfig, TrainConfig, configure_optimizers,  # noqa: E402
                              estimate_loss, reuse_freed_memory, train)
from tinytorch.models.gpt import GPT  # noqa: E402  chapter 17's GPT: this example needs no chapter after the capstone


def progress_callbacks(total: int):
    """on_step/on_eval for train(): a rich progress bar if rich is installed, else a line per evaluation."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    except ImportError:
        return None, lambda it, losses: print(f"step {it}: train {losses['train']:.4f}, val {losses['val']:.4f}",
                                              flush=True), None
    progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f}  val {task.fields[val]}  {task.fields[ms]:.0f} ms/step"),
                        TimeRemainingColumn())
    task = progress.add_task("train", total=total, loss=float("nan"), val="-", ms=0.0)

    def on_step(it, loss, lr, seconds):
        progress.update(task, advance=1, loss=loss, ms=seconds * 1e3)

    def on_eval(it, losses):
        progress.update(task, val=f"{losses['val']:.3f}")
        progress.console.print(f"step {it:5d}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")

    return on_step, on_eval, progress


@dataclass
class Run:
    """One seed's training run: the model, how it was trained, and what it reached."""
    seed: int
    model: object
    optimizer: object
    train_config: TrainConfig
    initial_state: dict
    history: dict
    precise: dict            # {split: loss} over --final-eval-iters batches
    wall: float              # seconds for training and evaluation


def train_seed(seed: int, vocab_size: int, train_data, val_data, args, on_step=None, on_eval=None) -> Run:
    """A fresh GPT initialised from `seed`, trained with nanoGPT's recipe on batches drawn from `seed`."""
    manual_seed(seed)
    config = GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                       bias=args.bias)               # nanoGPT's train.py default is False, which its CPU run keeps
    model = GPT(config)
    train_config = TrainConfig(max_iters=args.iters, lr_decay_iters=args.iters, eval_interval=args.eval_interval,
                               eval_iters=args.eval_iters, seed=seed)
    optimizer = configure_optimizers(model, train_config.weight_decay, train_config.learning_rate,
                                     (train_config.beta1, train_config.beta2))
    initial_state = {name: p.data.copy() for name, p in model.named_parameters()}
    start = time.perf_counter()
    history = train(model, train_data, val_data, train_config, on_step, on_eval, optimizer)
    wall = time.perf_counter() - start
    precise = estimate_loss(model, {"train": train_data, "val": val_data}, args.final_eval_iters,
                            train_config.batch_size, config.block_size, np.random.default_rng(seed + 2))
    return Run(seed, model, optimizer, train_config, initial_state, history, precise, wall)


def seed_table(rows, short_iters: int, long_iters: int) -> str:
    """Markdown table of (seed, val loss over short_iters batches, over long_iters batches, seconds),
    closed by the mean and the sample standard deviation over seeds."""
    lines = [f"| seed | val loss ({short_iters} batches) | val loss ({long_iters} batches) | wall time |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {seed} | {short:.4f} | {long:.4f} | {seconds:.0f} s |" for seed, short, long, seconds in rows]
    if len(rows) > 1:                                # a spread needs two seeds at least
        val = np.array([[short, long] for _, short, long, _ in rows])                 # (seeds, 2)
        mean, std = val.mean(axis=0), val.std(axis=0, ddof=1)
        lines.append(f"| **mean ± std over {len(rows)} seeds** | **{mean[0]:.4f} ± {std[0]:.4f}** | "
                     f"**{mean[1]:.4f} ± {std[1]:.4f}** | |")
    return "\n".join(lines)


def seed_spread(runs: list, args) -> str:
    """A markdown section: every seed's final validation loss, then the mean and the spread over seeds."""
    rows = [(r.seed, r.history["eval"][-1][1]["val"], r.precise["val"], r.wall) for r in runs]
    return f"""
## The spread over seeds

The same command trained a fresh model for each seed below (`--more-seeds`): each seed draws
its own initial weights and its own training batches. How far the final validation loss moves
from seed to seed shows how much a single run's figure can be trusted; the page
[nanoGPT's own run](nanogpt_reference.md) shows the same spread for PyTorch.

{seed_table(rows, args.eval_iters, args.final_eval_iters)}
"""


def save_and_verify(path: Path, model, optimizer, metadata: dict) -> str:
    """Save through chapter 12's checkpoint format, reload into a fresh model, compare logits."""
    from tinytorch.training import load_checkpoint, save_checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, optimizer, **metadata)
    fresh = GPT(GPTConfig(**metadata["config"]))
    loaded = load_checkpoint(path, fresh, configure_optimizers(fresh, 0.1, 1e-3))
    ids = np.arange(min(64, model.config.block_size))[None] % model.config.vocab_size
    model.eval()
    fresh.eval()
    same = np.array_equal(model(ids)[0].data, fresh(ids)[0].data) and loaded["iter_num"] == metadata["iter_num"]
    return f"saved to {path} and reloaded: logits {'identical' if same else 'DIFFERENT'}"


def train_torch(model, initial_state: dict, train_data, val_data, config: TrainConfig, threads: int | None):
    """The same run in PyTorch: benchmarks/torch_gpt.py's GPT from the same initial weights, the same
    batches (same seeds), schedule, clipping and evaluation as train(). Returns a history like train()'s."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch_gpt

    from tinytorch.models import batch_generators, get_batch, get_lr

    if threads is not None:
        torch.set_num_threads(threads)
    reference = torch_gpt.GPT(model.config)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            p.copy_(torch.from_numpy(initial_state[name]))
    decay = [p for p in reference.parameters() if p.dim() >= 2]
    no_decay = [p for p in reference.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(config.beta1, config.beta2))
    rng, eval_rng = batch_generators(config.seed)                  # the streams train() draws from
    T = model.config.block_size
    history = {"loss": [], "seconds": [], "eval": []}

    @torch.no_grad()
    def evaluate(iters, generator):
        reference.eval()
        out = {name: float(np.mean([reference(*map(torch.from_numpy, get_batch(data, config.batch_size, T,
                                                                                   generator)))[1].item()
                                    for _ in range(iters)]))
               for name, data in (("train", train_data), ("val", val_data))}
        reference.train()
        return out

    for it in range(config.max_iters + 1):
        if it % config.eval_interval == 0 or it == config.max_iters:
            history["eval"].append((it, evaluate(config.eval_iters, eval_rng)))
            print(f"pytorch step {it:5d}: train loss {history['eval'][-1][1]['train']:.4f}, "
                  f"val loss {history['eval'][-1][1]['val']:.4f}", flush=True)
        if it == config.max_iters:
            break
        start = time.perf_counter()
        lr = get_lr(it, config.learning_rate, config.warmup_iters, config.lr_decay_iters, config.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, config.batch_size, T, rng)
        _, loss = reference(torch.from_numpy(x), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), config.grad_clip)
        optimizer.step()
        history["seconds"].append(time.perf_counter() - start)
        history["loss"].append(loss.item())
    history["evaluate"] = evaluate
    return history


def command_line(script: str, argv=None) -> str:
    """The command as it was run, minus `--data`, `--download-dir` and `--out-dir` PATH: a page names the data by its
    checksum and shows no machine's paths."""
    given = sys.argv[1:] if argv is None else list(argv)
    hidden = ("--data", "--out-dir", "--download-dir")   # where the input and the page are is no part of the result
    shown = [a for i, a in enumerate(given) if a not in hidden and (i == 0 or given[i - 1] not in hidden)
             and not a.startswith(tuple(f"{option}=" for option in hidden))]
    return " ".join(["python", script, *shown])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    return (f"{os.cpu_count()} cores ({cpu}), BLAS threads: {threads}, Python {platform.python_version()}, NumPy {np.__version__}, "
            f"{platform.system()}")


def plot(history: dict, path: Path, reference: dict | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = np.array(history["loss"])
    window = min(50, len(losses))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(losses, color="0.8", lw=0.6, label="training loss (each step)")
    ax.plot(np.arange(window - 1, len(losses)), np.convolve(losses, np.ones(window) / window, mode="valid"),
            color="C0", label=f"training loss ({window}-step mean)")
    its = [it for it, _ in history["eval"]]
    ax.plot(its, [l["train"] for _, l in history["eval"]], "o", color="C0", ms=4, label="train (evaluated)")
    ax.plot(its, [l["val"] for _, l in history["eval"]], "o-", color="C1", label="validation")
    if reference is not None:
        ax.plot([it for it, _ in reference["eval"]], [l["val"] for _, l in reference["eval"]], "x--", color="C3",
                label="validation, PyTorch (same start, same batches)")
    ax.set(xlabel="iteration", ylabel="cross-entropy (nats per character)", title="TinyGPT on tiny-shakespeare")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shakespeare_text(path: Path | None, download_dir: Path = ROOT / "data") -> Path:
    """The text to train on: `path` if given, else tinyshakespeare.txt in download_dir, downloaded (and verified) on first use."""
    if path is not None:
        if not path.is_file():
            sys.exit(f"error: {path} not found; pass --data PATH to the tiny-shakespeare text, or leave --data out to download it")
        return path
    from tinytorch.data import DatasetError, download_shakespeare

    try:
        return download_shakespeare(download_dir)
    except DatasetError as err:
        sys.exit(f"error: {err}")


def main(argv=None) -> None:
    args = parse_args(argv) if argv is not None or ARGS is None else ARGS
    args.data = shakespeare_text(args.data, args.download_dir)
    text = args.data.read_text(encoding="utf-8")
    tokenizer = CharTokenizer(text)
    data = np.array(tokenizer.encode(text), dtype=np.int64)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]

    tuned = reuse_freed_memory()                       # keep freed arrays for reuse (see chapter 17)
    on_step, on_eval, progress = progress_callbacks(args.iters)
    print(f"{len(text):,} characters, vocabulary {tokenizer.vocab_size}; train {len(train_data):,}, "
          f"val {len(val_data):,} tokens")
    if progress is not None:
        with progress:
            run = train_seed(args.seed, tokenizer.vocab_size, train_data, val_data, args, on_step, on_eval)
    else:
        run = train_seed(args.seed, tokenizer.vocab_size, train_data, val_data, args, on_step, on_eval)
    model, optimizer, history, precise, wall = run.model, run.optimizer, run.history, run.precise, run.wall
    config, train_config = model.config, run.train_config
    initial_state = run.initial_state

    model.eval()
    prompt = np.array([tokenizer.encode("\n")])
    sample = tokenizer.decode(model.generate(prompt, args.sample_chars, temperature=0.8, seed=args.seed).data[0])
    final = history["eval"][-1][1]
    step_ms = 1e3 * float(np.median(history["seconds"]))
    print(f"done in {wall:.0f} s: val loss {final['val']:.4f} ({precise['val']:.4f} over {args.final_eval_iters} "
          f"batches), median step {step_ms:.1f} ms; {model.num_parameters():,} parameters")
    print(sample)

    reference, comparison = None, ""
    if args.compare_torch:
        start = time.perf_counter()
        reference = train_torch(model, initial_state, train_data, val_data, train_config, args.threads)
        ref_wall = time.perf_counter() - start
        ref_precise = reference["evaluate"](args.final_eval_iters, np.random.default_rng(args.seed + 2))
        ref_ms = 1e3 * float(np.median(reference["seconds"]))
        ref_final = reference["eval"][-1][1]
        comparison = f"""
## The same run in PyTorch

`--compare-torch` trained `benchmarks/torch_gpt.py`'s PyTorch model (nanoGPT's, with the tanh GELU) from
the same initial weights, on the same batches, with the same schedule, clipping and evaluation batches,
after the tinytorch run (so the two step times were measured one after the other, not alternating; see
`benchmarks/run_all.py --only gpt` for an alternating measurement).

| | tinytorch | PyTorch {__import__("torch").__version__} |
| --- | --- | --- |
| validation loss at {args.iters} ({args.eval_iters} batches) | {final['val']:.4f} | {ref_final['val']:.4f} |
| validation loss at {args.iters} ({args.final_eval_iters} batches) | {precise['val']:.4f} | {ref_precise['val']:.4f} |
| train loss at {args.iters} ({args.final_eval_iters} batches) | {precise['train']:.4f} | {ref_precise['train']:.4f} |
| median training step | {step_ms:.1f} ms | {ref_ms:.1f} ms |
| wall time, training and evaluation | {wall:.0f} s | {ref_wall:.0f} s |

Step-time ratio tinytorch / PyTorch: **{step_ms / ref_ms:.2f}**.
"""
        print(f"pytorch: val loss {ref_final['val']:.4f} ({ref_precise['val']:.4f} over {args.final_eval_iters} "
              f"batches), median step {ref_ms:.1f} ms; ratio {step_ms / ref_ms:.2f}")

    saved = "not requested (pass --checkpoint PATH)"
    if args.checkpoint is not None:
        metadata = {"iter_num": args.iters, "val_loss": final["val"], "config": vars(config),
                    "vocabulary": "".join(tokenizer.chars)}
        saved = save_and_verify(args.checkpoint, model, optimizer, metadata)
        print(f"checkpoint: {saved}")

    spread = ""
    if args.more_seeds:
        runs = [run]
        for seed in args.more_seeds:
            print(f"seed {seed}:", flush=True)
            runs.append(train_seed(seed, tokenizer.vocab_size, train_data, val_data, args,
                                   on_eval=lambda it, losses: print(f"  step {it:5d}: val loss {losses['val']:.4f}",
                                                                    flush=True)))
        spread = seed_spread(runs, args)
        print(spread)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot(history, args.out_dir / "tinygpt_loss.png", reference)
    command = command_line("examples/tinygpt_shakespeare.py", argv)
    digest = hashlib.sha256(args.data.read_bytes()).hexdigest()
    rows = "\n".join(f"| {it} | {l['train']:.4f} | {l['val']:.4f} |" for it, l in history["eval"])
    report = f"""# TinyGPT on tiny-shakespeare

Written by `examples/tinygpt_shakespeare.py`; rerun it to reproduce. For a given seed the losses
and the sample repeat (up to floating-point rounding on another machine or thread count); the
times vary with the machine and its load. For reference, nanoGPT's README reports a validation
loss of about 1.88 for this configuration in PyTorch, with its own seed.

- **Command:** `{command.strip()}`
- **Data:** `{args.data.name}`, {len(text):,} characters, sha256 `{digest[:16]}…`
- **Machine:** {machine()}; allocator tuned with `reuse_freed_memory()`: {tuned}
- **Model:** GPT, n_layer {config.n_layer}, n_head {config.n_head}, n_embd {config.n_embd}, block_size
  {config.block_size}, dropout {config.dropout}, bias {config.bias}, {model.num_parameters():,} parameters (head tied to the token
  embeddings); character vocabulary of {tokenizer.vocab_size}
- **Training:** {args.iters} iterations of batch {train_config.batch_size}; AdamW lr
  {train_config.learning_rate} (warm-up {train_config.warmup_iters}, cosine to {train_config.min_lr}), betas
  ({train_config.beta1}, {train_config.beta2}), weight decay {train_config.weight_decay} on matrices, gradient
  clipping {train_config.grad_clip}; seed {args.seed}; first 90% of the text for training, last 10% for validation
- **Wall time:** {wall:.0f} s for training and evaluation; median training step {step_ms:.1f} ms
- **Final loss:** train {final['train']:.4f}, validation **{final['val']:.4f}** nats per character
  ({args.eval_iters} batches per split, as nanoGPT's CPU run evaluates); over {args.final_eval_iters} batches:
  train {precise['train']:.4f}, validation {precise['val']:.4f}
- **Checkpoint:** {saved}

| iteration | train loss | val loss |
| --- | --- | --- |
{rows}

![loss curve](tinygpt_loss.png)

Sample ({args.sample_chars} characters from a newline, temperature 0.8, seed {args.seed}):

```text
{sample}
```
{comparison}{spread}"""
    (args.out_dir / "tinygpt.md").write_text(report, encoding="utf-8")
    print(f"wrote {args.out_dir / 'tinygpt.md'} and {args.out_dir / 'tinygpt_loss.png'}")


if __name__ == "__main__":
    main()
