"""Benchmarks: tinytorch next to PyTorch CPU on the operations and models the course builds.

Usage, from the repository root:

    python benchmarks/run_all.py                         # every workload, all cores, print the table
    python benchmarks/run_all.py --write-book            # ... and write book/results/benchmarks.md and .png
    python benchmarks/run_all.py --only cnn --repeats 30
    python benchmarks/run_all.py --threads 1 --keep-freed-memory

Workloads (the same computation in both frameworks, built from the same weights and inputs):

    matmul          1024 x 1024 float32 matrix product (no gradient)
    conv-forward    Conv2d(32, 64, 3, padding=1) on 64 x 32 x 16 x 16, forward only
    conv-backward   the same convolution, forward and backward (loss = sum of outputs, input gradient too)
    linear          Linear(512, 512) on a batch of 256, forward and backward (input gradient too)
    cnn             the reference CNN's training step: forward, cross-entropy, backward,
                    SGD step (lr 0.01, momentum 0.9), batch 64 of 3 x 32 x 32
    cifar-step      examples/cifar10_cnn.py's network (three stages of Conv2d 3x3 pad 1, BatchNorm2d,
                    ReLU, MaxPool2d 2; then Linear) and its optimizer (SGD, Nesterov momentum 0.9,
                    weight decay 5e-4, lr 0.05): one training step on a batch of 64 of 3 x 32 x 32
    attention       an attention block (LayerNorm, causal MultiheadAttention, LayerNorm, MLP 4x,
                    residuals) forward and backward on 16 sequences of 128 tokens of width 128
    gpt             the capstone's GPT training step (forward with the loss, backward, AdamW step),
                    when tinytorch.models.gpt exists; PyTorch side by side when
                    benchmarks/torch_gpt.py (the PyTorch twin of that model) is present

Timing uses tinytorch.profiling.compare: after a check that both frameworks compute the
same outputs and gradients, the two run in alternating rounds (the order rotating), so
a machine that gets busier slows both alike. The table gives each framework's median
and interquartile range, the median of the per-round ratios tinytorch / PyTorch with
its quartiles, and the minor page faults per run. PyTorch runs with
torch.set_num_threads(--threads) and NumPy's BLAS with the same count (set through
the environment before NumPy is imported). Without PyTorch installed, only
tinytorch's times are measured.

`--keep-freed-memory` tells glibc's malloc to keep freed memory for reuse instead of
returning it to the operating system (mallopt M_MMAP_THRESHOLD = 32 MiB,
M_TRIM_THRESHOLD = 1 GiB), for both frameworks alike; chapter 15 explains why that
matters. `--write-book` writes the table, the machine and the exact command to
book/results/benchmarks.md and a figure of the ratios to book/results/benchmarks.png.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "results" / "benchmarks.md"
FIGURE = PAGE.with_suffix(".png")
WORKLOADS = ("matmul", "conv-forward", "conv-backward", "linear", "cnn", "cifar-step", "attention", "gpt")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tinytorch vs PyTorch CPU on the course's operations and models")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per workload (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--min-time", type=float, default=0.0,
                        help="keep timing each workload until this many seconds are measured (default 0)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for PyTorch and NumPy's BLAS (default: every core)")
    parser.add_argument("--only", choices=WORKLOADS, action="append", help="run only this workload (may be repeated)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc only: keep freed memory in the process instead of returning it to the kernel")
    parser.add_argument("--write-book", action="store_true",
                        help="write book/results/benchmarks.md and benchmarks.png (the book's benchmark page)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)          # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))                             # this checkout's tinytorch
sys.path.insert(0, str(Path(__file__).resolve().parent))  # PyTorch twins beside this file
sys.path.insert(0, str(ROOT / "examples"))                # the CIFAR-10 example's network
import tinytorch  # noqa: E402
import tinytorch.nn as nn  # noqa: E402
from tinytorch import Tensor, manual_seed, no_grad  # noqa: E402
from tinytorch.optim import SGD  # noqa: E402
from tinytorch.profiling import AttentionBlock, benchmark, compare, format_time, reference_cnn  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def keep_freed_memory() -> str:
    """Ask glibc's malloc to reuse freed memory rather than unmap or trim it (fewer page faults)."""
    import ctypes
    import ctypes.util
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise SystemExit("--keep-freed-memory needs glibc's mallopt, which this system does not have; run without it")
    return "malloc keeps freed memory (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB), for both frameworks"


# ---- the workloads: the same computation in both frameworks -------------------------------------

@dataclass
class Workload:
    """One timed computation: tinytorch's and (optionally) PyTorch's, and how to check they agree."""

    name: str
    description: str
    tiny: Callable[[], object]
    torch: Callable[[], object] | None = None
    check: Callable[[], str] | None = None        # runs both once; returns a summary, raises SystemExit on a mismatch
    note: str = ""


def relative_difference(mine: np.ndarray, theirs: np.ndarray, scale: float | None = None) -> float:
    """Largest absolute difference relative to `scale` (default: the largest value of the reference)."""
    scale = max(float(np.abs(theirs).max()) if scale is None else scale, 1e-12)
    return float(np.abs(np.asarray(mine, dtype=np.float64) - theirs).max()) / scale


def relative_norm_difference(mine: np.ndarray, theirs: np.ndarray) -> float:
    """The difference's norm relative to the reference's norm (one number for the whole array)."""
    theirs = np.asarray(theirs, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(mine, dtype=np.float64) - theirs)) / max(float(np.linalg.norm(theirs)), 1e-12)


@dataclass(frozen=True)
class ByNorm:
    """Compare an array by its difference's norm relative to the reference's norm, within `tolerance`."""
    tolerance: float


def agreement(name: str, pairs: list, tolerance: float = 1e-3) -> str:
    """Compare (what, tinytorch array, PyTorch array[, how]) tuples; stop the benchmark if any differs.

    By default the largest difference, relative to the reference's largest value, must be within
    `tolerance`. A fourth item changes that for its array: a number is the scale to measure against,
    for arrays that should be zero up to rounding (a convolution's bias in front of BatchNorm gets no
    gradient, in exact arithmetic); a `ByNorm` compares norms (see `classifier_step`).
    """
    worst, where, share = 0.0, "", 0.0      # share: the worst difference as a share of its own tolerance
    for what, mine, theirs, *how in pairs:
        if np.shape(mine) != np.shape(theirs):
            raise SystemExit(f"{name}: {what} has shape {np.shape(mine)} in tinytorch, {np.shape(theirs)} in PyTorch")
        if how and isinstance(how[0], ByNorm):
            difference, allowed = relative_norm_difference(mine, theirs), how[0].tolerance
        else:
            difference, allowed = relative_difference(mine, theirs, *how), tolerance
        if difference / allowed > share:
            worst, where, share = difference, what, difference / allowed
    if share > 1:
        raise SystemExit(f"{name}: {where} differs between tinytorch and PyTorch by {worst:.1e} (relative); "
                         "the timings would compare different computations")
    arrays = f"{len(pairs)} arrays" if len(pairs) != 1 else "1 array"
    return f"{arrays} (outputs, losses, gradients) compared; worst relative difference {worst:.1e} ({where})"


def copy_weights(tiny_model, torch_model) -> None:
    """Give the PyTorch model tinytorch's weights; both name their parameters alike."""
    tiny_state = tiny_model.state_dict()
    with torch.no_grad():
        for name, param in torch_model.named_parameters():
            param.copy_(torch.from_numpy(tiny_state[name]))


def torch_reference_cnn():
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(3, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(2304, 256), tnn.ReLU(), tnn.Linear(256, 10))


def torch_attention_block(d_model: int, n_heads: int):
    """PyTorch's twin of tinytorch.profiling.AttentionBlock (same parameter names, tanh GELU)."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = tnn.LayerNorm(d_model)
            self.attn = tnn.MultiheadAttention(d_model, n_heads, batch_first=True)
            self.ln2 = tnn.LayerNorm(d_model)
            self.mlp = tnn.Sequential(tnn.Linear(d_model, 4 * d_model), tnn.GELU(approximate="tanh"),
                                      tnn.Linear(4 * d_model, d_model))

        def forward(self, x):
            T = x.shape[1]
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)   # True: may not attend
            h = self.ln1(x)
            attended, _ = self.attn(h, h, h, need_weights=False, attn_mask=mask)
            x = x + attended
            return x + self.mlp(self.ln2(x))

    return Block()


def gradient_pairs(tiny_model, torch_model, prefix: str = "") -> list:
    tiny_grads = {name: p.grad.data for name, p in tiny_model.named_parameters()}
    return [(f"{prefix}gradient of {name}", tiny_grads[name], p.grad.numpy()) for name, p in torch_model.named_parameters()]


def build_matmul(rng) -> Workload:
    a, b = rng.standard_normal((1024, 1024), dtype=np.float32), rng.standard_normal((1024, 1024), dtype=np.float32)
    ta, tb = Tensor(a), Tensor(b)
    workload = Workload("matmul", "1024 x 1024 float32 matmul", lambda: ta @ tb)
    if torch is not None:
        A, B = torch.from_numpy(a), torch.from_numpy(b)
        workload.torch = lambda: A @ B
        workload.check = lambda: agreement("matmul", [("product", (ta @ tb).data, (A @ B).numpy())])
    return workload


def build_conv(rng, backward: bool) -> Workload:
    x = rng.standard_normal((64, 32, 16, 16), dtype=np.float32)
    layer = nn.Conv2d(32, 64, 3, padding=1)
    name = "conv-backward" if backward else "conv-forward"
    description = "Conv2d 32->64 3x3 pad 1 on 64x32x16x16, " + ("forward + backward" if backward else "forward")
    tx = Tensor(x, requires_grad=backward)

    def tiny():
        if not backward:
            with no_grad():
                return layer(tx)
        layer.zero_grad()
        tx.grad = None
        layer(tx).sum().backward()

    workload = Workload(name, description, tiny)
    if torch is not None:
        reference = torch.nn.Conv2d(32, 64, 3, padding=1)
        copy_weights(layer, reference)
        rx = torch.from_numpy(x.copy()).requires_grad_(backward)

        def reference_run():
            if not backward:
                with torch.no_grad():
                    return reference(rx)
            reference.zero_grad(set_to_none=True)
            rx.grad = None
            reference(rx).sum().backward()

        def check():
            pairs = [("output", layer(Tensor(x)).data, reference(torch.from_numpy(x)).detach().numpy())]
            if backward:
                tiny(), reference_run()
                pairs += gradient_pairs(layer, reference) + [("input gradient", tx.grad.data, rx.grad.numpy())]
            return agreement(name, pairs)

        workload.torch, workload.check = reference_run, check
    return workload


def build_linear(rng) -> Workload:
    x = rng.standard_normal((256, 512), dtype=np.float32)
    layer, tx = nn.Linear(512, 512), Tensor(x, requires_grad=True)

    def tiny():
        layer.zero_grad()
        tx.grad = None
        layer(tx).sum().backward()

    workload = Workload("linear", "Linear 512->512, batch 256, forward + backward", tiny)
    if torch is not None:
        reference = torch.nn.Linear(512, 512)
        copy_weights(layer, reference)
        rx = torch.from_numpy(x.copy()).requires_grad_(True)

        def reference_run():
            reference.zero_grad(set_to_none=True)
            rx.grad = None
            reference(rx).sum().backward()

        def check():
            tiny(), reference_run()
            return agreement("linear", gradient_pairs(layer, reference) + [("input gradient", tx.grad.data, rx.grad.numpy())])

        workload.torch, workload.check = reference_run, check
    return workload


def classifier_step(name: str, description: str, rng, model, make_reference, options: dict) -> Workload:
    """One SGD training step of an image classifier on a batch of 64 random 3 x 32 x 32 images.

    make_reference() builds the PyTorch twin (same layer order, so the same parameter names); the
    agreement check runs before any step, with the same weights on both sides. BatchNorm subtracts
    each channel's mean, so the bias of a convolution right before it has a zero gradient up to
    rounding: those are compared against the largest gradient, not against themselves.
    """
    images = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    criterion, optimizer, tx = nn.CrossEntropyLoss(), SGD(model.parameters(), **options), Tensor(images)

    def gradients():
        optimizer.zero_grad()
        loss = criterion(model(tx), labels)
        loss.backward()
        return loss

    def tiny():
        gradients()
        optimizer.step()

    workload = Workload(name, description, tiny)
    if torch is not None:
        reference = make_reference()
        copy_weights(model, reference)
        reference_optimizer = torch.optim.SGD(reference.parameters(), **options)
        rx, ry = torch.from_numpy(images.copy()), torch.from_numpy(labels)

        def reference_gradients():
            reference_optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(reference(rx), ry)
            loss.backward()
            return loss

        def reference_run():
            reference_gradients()
            reference_optimizer.step()

        def check():
            loss, reference_loss = gradients(), reference_gradients()
            pairs = gradient_pairs(model, reference)
            largest = max(float(np.abs(theirs).max()) for _, _, theirs in pairs)
            before_norm = {f"gradient of {i}.bias" for i, layer in enumerate(model)
                           if isinstance(layer, nn.Conv2d) and i + 1 < len(model)
                           and isinstance(model[i + 1], (nn.BatchNorm2d, nn.BatchNorm1d))}
            # Max-pooling sends each window's gradient to its largest input. Two inputs within float32
            # rounding of each other are ordered one way here and the other in PyTorch, whose sums run
            # in another order: in one batch of 64 random images in two, one or two of its 900,000 pooling
            # windows flip (counted against float64). Each flip moves one term of every gradient
            # before that pooling, and BatchNorm spreads it over its channel: up to 1e-2 of the
            # largest entry, under 1e-2 of the norm. Those gradients are compared by norm, within 5e-2.
            last_pool = max((i for i, layer in enumerate(model) if isinstance(layer, nn.MaxPool2d)), default=-1)
            before_pool = {f"gradient of {i}.{kind}" for i in range(last_pool) for kind in ("weight", "bias")}
            pairs = [(what, mine, theirs, largest) if what in before_norm
                     else (what, mine, theirs, ByNorm(5e-2)) if what in before_pool
                     else (what, mine, theirs)
                     for what, mine, theirs in pairs]
            return agreement(name, [("loss", loss.data, reference_loss.detach().numpy())] + pairs)

        workload.torch, workload.check = reference_run, check
    return workload


def build_cnn(rng) -> Workload:
    return classifier_step("cnn", "reference CNN training step (SGD), batch 64", rng, reference_cnn(),
                           torch_reference_cnn, dict(lr=0.01, momentum=0.9))


def torch_cifar10_cnn(channels):
    """PyTorch's twin of examples/cifar10_cnn.py's build_model (same layer order, so the same parameter names)."""
    tnn, layers, c_in = torch.nn, [], 3
    for c_out in channels:
        layers += [tnn.Conv2d(c_in, c_out, 3, padding=1), tnn.BatchNorm2d(c_out), tnn.ReLU(), tnn.MaxPool2d(2)]
        c_in = c_out
    side = 32 // 2 ** len(channels)
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(c_in * side * side, 10))


def build_cifar_step(rng) -> Workload:
    """One training step of the CIFAR-10 example: its network, its optimizer, a batch of 64."""
    from cifar10_cnn import CHANNELS, build_model
    return classifier_step("cifar-step", "CIFAR-10 example's network: training step (SGD Nesterov), batch 64", rng,
                           build_model(), lambda: torch_cifar10_cnn(CHANNELS),
                           dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))


def build_attention(rng) -> Workload:
    x = rng.standard_normal((16, 128, 128), dtype=np.float32)
    block, tx = AttentionBlock(d_model=128, n_heads=4), Tensor(x)

    def tiny():
        block.zero_grad()
        out = block(tx)
        (out * out).mean().backward()

    workload = Workload("attention", "attention block (d 128, 4 heads, causal), 16 x 128 tokens, fwd + bwd", tiny)
    if torch is not None:
        reference = torch_attention_block(128, 4)
        copy_weights(block, reference)
        rx = torch.from_numpy(x.copy())

        def reference_run():
            reference.zero_grad(set_to_none=True)
            out = reference(rx)
            (out * out).mean().backward()

        def check():
            pairs = [("output", block(tx).data, reference(rx).detach().numpy())]
            tiny(), reference_run()
            return agreement("attention", pairs + gradient_pairs(block, reference))

        workload.torch, workload.check = reference_run, check
    return workload


def build_gpt(rng) -> Workload | str:
    """The capstone's GPT training step, or a note saying why it is skipped."""
    try:
        from tinytorch.models.gpt import GPT, GPTConfig
    except ImportError as err:
        return f"gpt: skipped, tinytorch has no GPT model yet ({err})"
    from tinytorch.optim import AdamW
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    manual_seed(0)
    model = GPT(config)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    x = rng.integers(0, config.vocab_size, (12, config.block_size))
    y = rng.integers(0, config.vocab_size, (12, config.block_size))

    def gradients():
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        return loss

    def tiny():
        gradients()
        optimizer.step()

    workload = Workload("gpt", "GPT training step (4 layers, width 128, AdamW), 12 x 64 tokens", tiny)
    try:
        import torch_gpt                               # the PyTorch twin of the capstone's GPT
    except ImportError:
        torch_gpt = None
    if torch is None:
        return workload
    if torch_gpt is None:
        workload.note = "PyTorch twin benchmarks/torch_gpt.py not found: tinytorch only"
        return workload
    reference = torch_gpt.copy_weights(model, torch_gpt.GPT(config))
    reference_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-3)
    rx, ry = torch.from_numpy(x), torch.from_numpy(y)

    def reference_gradients():
        _, loss = reference(rx, ry)
        reference_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def reference_run():
        reference_gradients()
        reference_optimizer.step()

    def check():
        loss, reference_loss = gradients(), reference_gradients()
        return agreement("gpt", [("loss", loss.data, reference_loss.detach().numpy())])

    workload.torch, workload.check = reference_run, check
    return workload


def build_workloads(selected) -> tuple[list, list]:
    """The selected workloads, and notes about those that cannot run here."""
    rng = np.random.default_rng(0)
    manual_seed(0)
    builders = {"matmul": build_matmul, "conv-forward": lambda r: build_conv(r, False),
                "conv-backward": lambda r: build_conv(r, True), "linear": build_linear, "cnn": build_cnn,
                "cifar-step": build_cifar_step,
                "attention": build_attention, "gpt": build_gpt}
    workloads, notes = [], []
    for name in selected:
        built = builders[name](rng)
        if isinstance(built, str):
            notes.append(built)
        else:
            workloads.append(built)
            if built.note:
                notes.append(f"{built.name}: {built.note}")
    return workloads, notes


# ---- running and reporting --------------------------------------------------------------------------

@dataclass
class Row:
    workload: Workload
    tiny: object                                       # BenchmarkResult
    reference: object | None = None                    # BenchmarkResult, or None without PyTorch
    ratio: float | None = None
    spread: tuple | None = None
    agreement: str = ""


def measure(workload: Workload, args) -> Row:
    if workload.torch is None:
        result = benchmark(workload.tiny, warmup=args.warmup, repeats=args.repeats, min_time=args.min_time,
                           name="tinytorch")
        return Row(workload, result)
    checked = workload.check() if workload.check is not None else "not checked"
    comparison = compare({"tinytorch": workload.tiny, "PyTorch": workload.torch}, baseline="PyTorch",
                         warmup=args.warmup, repeats=args.repeats, min_time=args.min_time)
    return Row(workload, comparison.results["tinytorch"], comparison.results["PyTorch"],
               comparison.ratio("tinytorch"), comparison.ratio_spread("tinytorch"), checked)


def _cell(result) -> str:
    return f"{format_time(result.median)} ({format_time(result.iqr)})" if result is not None else "-"


def _faults(result) -> str:
    return "-" if result is None or result.faults_per_call is None else f"{result.faults_per_call:,.0f}"


def results_table(rows: list) -> str:
    lines = ["| workload | tinytorch: median (IQR) | PyTorch: median (IQR) | tinytorch / PyTorch (quartiles) "
             "| page faults per run: tinytorch / PyTorch |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        ratio = f"{row.ratio:.2f}x ({row.spread[0]:.2f}-{row.spread[1]:.2f})" if row.ratio is not None else "-"
        lines.append(f"| {row.workload.name}: {row.workload.description} | {_cell(row.tiny)} | {_cell(row.reference)} "
                     f"| {ratio} | {_faults(row.tiny)} / {_faults(row.reference)} |")
    return "\n".join(lines)


def machine_lines(args, allocator: str) -> list:
    """Facts about this run that a reader needs to interpret the table."""
    processor = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        processor = names[0] if names else processor
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_text = f"{blas.get('name', 'unknown BLAS')} {blas.get('version', '')}".strip()
    except Exception:                                  # older NumPy: no dict form of the build configuration
        blas_text = "BLAS not reported by this NumPy"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "not reported"
    threads = torch.get_num_threads() if torch is not None else 0
    pytorch = (f"PyTorch {torch.__version__} ({threads} thread{'s' if threads != 1 else ''})" if torch is not None
               else "PyTorch not installed (tinytorch timings only)")
    return [f"**Machine:** {platform.machine()}, {processor}, {os.cpu_count()} cores; load average at the start {load}",
            f"**Threads:** {args.threads} for NumPy's BLAS and PyTorch",
            f"**Software:** Python {platform.python_version()}, NumPy {np.__version__} with {blas_text}, {pytorch}, "
            f"tinytorch {tinytorch.__version__}",
            f"**Allocator:** {allocator}",
            f"**Method:** {args.warmup} warm-up rounds, then {args.repeats} timed rounds"
            + (f" (and at least {args.min_time} s)" if args.min_time else "") + " per workload, frameworks alternating"]


def command_line() -> str:
    return " ".join(["python benchmarks/run_all.py"] + sys.argv[1:])


def write_figure(rows: list, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if row.ratio is not None]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * len(rows)))
    for y, row in enumerate(rows[::-1]):                     # first workload on top
        low, high = row.spread
        ax.errorbar([row.ratio], [y], xerr=[[row.ratio - low], [high - row.ratio]], fmt="o", capsize=4,
                    color="C3" if row.ratio > 1 else "C2")
    ax.set_yticks(range(len(rows)), [row.workload.name for row in rows][::-1])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    smallest = min(min(row.spread[0], row.ratio) for row in rows)
    largest = max(max(row.spread[1], row.ratio) for row in rows)
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if smallest / 2 <= t <= largest * 2]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(min(ticks + [smallest]) / 1.2, max(ticks + [largest]) * 1.2)
    ax.set_xlabel("tinytorch time / PyTorch time (median of paired rounds, bars: quartiles)")
    ax.set_title("tinytorch next to PyTorch CPU (left of 1x: tinytorch faster)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_page(rows: list, notes: list, machine: list, command: str, date: str, figure_name: str | None) -> str:
    agreements = [f"- `{row.workload.name}`: {row.agreement}" for row in rows if row.agreement]
    parts = [
        "# Benchmarks: tinytorch next to PyTorch",
        "",
        "This page is written by `benchmarks/run_all.py`. It times the operations and models the course "
        "builds in tinytorch and, side by side in the same process, in PyTorch's CPU backend. Before "
        "timing a workload the script checks that both frameworks compute the same outputs and "
        "gradients from the same weights and inputs; then the two run in alternating rounds, so that a "
        "machine that gets busier slows both alike (chapter 15 explains why). The ratio is the median of "
        "the per-round ratios tinytorch / PyTorch, with their quartiles: below 1, tinytorch was faster.",
        "",
        results_table(rows),
        "",
    ]
    if figure_name:
        parts += [f"![tinytorch / PyTorch time per workload]({figure_name})", ""]
    parts += ["## How this was measured", "", f"- **Command:** `{command}` (from the repository root)",
              f"- **Date:** {date}"] + [f"- {line}" for line in machine]
    if agreements:
        parts += ["", "## Agreement checks", ""] + agreements
    if notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    parts += ["", "Numbers from a shared or virtual machine move from run to run; regenerate the page on "
              "your own machine with the command above to compare. Page faults depend on what the process "
              "allocated before (glibc's `malloc` adapts its thresholds as it goes), so a workload run on its "
              "own (`--only`) can show different counts than in a full run."]
    return "\n".join(parts) + "\n"


def main(args) -> None:
    allocator = keep_freed_memory() if args.keep_freed_memory else "malloc as the system configures it"
    if torch is not None:
        torch.set_num_threads(args.threads)
    machine = machine_lines(args, allocator)
    print("\n".join(line.replace("**", "") for line in machine), "\n")
    workloads, notes = build_workloads(args.only or list(WORKLOADS))
    rows = []
    for workload in workloads:
        row = measure(workload, args)
        rows.append(row)
        ratio = f"  ratio {row.ratio:.2f}x" if row.ratio is not None else ""
        print(f"{workload.name:>14}: tinytorch {_cell(row.tiny):>22}  PyTorch {_cell(row.reference):>22}{ratio}"
              + (f"  [{row.agreement}]" if row.agreement else ""))
    for note in notes:
        print(note)
    print()
    print(results_table(rows))
    if args.write_book:
        write_figure(rows, FIGURE)
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page = render_page(rows, notes, machine, command_line(), date, FIGURE.name if FIGURE.exists() else None)
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page, encoding="utf-8")
        print(f"\nwrote {PAGE.relative_to(ROOT)}" + (f" and {FIGURE.relative_to(ROOT)}" if FIGURE.exists() else ""))


if __name__ == "__main__":
    main(ARGS)
