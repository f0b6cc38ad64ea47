"""Core speed benchmark: tinytorch next to PyTorch CPU, forward + backward, in one run.

Usage, from the repository root:

    python benchmarks/bench_core.py                  # every workload, all cores
    python benchmarks/bench_core.py --threads 1      # single-threaded BLAS on both sides
    python benchmarks/bench_core.py --only cnn --repeats 30

Workloads (each is one gradient computation: forward, a scalar loss, backward;
no optimiser step, gradients reset to None before each run):

    linear  Linear(512, 512) on a batch of 256, loss = sum of outputs
    conv    Conv2d(32, 64, 3, padding=1) on 64 x 32 x 16 x 16, loss = sum of outputs
    cnn     the reference CNN (conv 3->32 3x3, ReLU, maxpool 2, conv 32->64 3x3, ReLU,
            maxpool 2, flatten, Linear 2304->256, ReLU, Linear 256->10) with
            cross-entropy on a batch of 64 CIFAR-sized (3 x 32 x 32) images

The input tensors of `linear` and `conv` require gradients (so the input
gradient is part of the work); the CNN's images do not, as in training.
Both frameworks get the same inputs and weights, and the script checks that
their losses and gradients agree before timing anything. Runs alternate
between the two frameworks, so a machine that gets busier slows both alike;
the medians and their ratio (tinytorch / PyTorch) are printed. PyTorch runs
with torch.set_num_threads(--threads) and NumPy's BLAS with the same count
(set through the usual environment variables before NumPy is imported).
Without PyTorch installed, only tinytorch's times are printed.

The script also counts minor page faults per run (where the OS reports them):
every fresh large array the C library gets from the kernel is touched page
by page for the first time, and on some machines (virtual machines in
particular) those faults cost as much as the arithmetic. `--keep-freed-memory`
tells glibc's malloc to keep freed memory for reuse instead of returning it
to the kernel (mallopt M_MMAP_THRESHOLD = 32 MiB, M_TRIM_THRESHOLD = 1 GiB),
for both frameworks alike, so you can see how much of the time is the
allocator's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="tinytorch vs PyTorch CPU: forward + backward timings")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per framework and workload (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for PyTorch and NumPy's BLAS (default: every core)")
    parser.add_argument("--only", choices=["linear", "conv", "cnn"], action="append",
                        help="run only this workload (may be repeated)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc only: keep freed memory in the process instead of returning it to the kernel")
    return parser.parse_args(argv)


def keep_freed_memory() -> str:
    """Ask glibc's malloc to reuse freed memory rather than unmap/trim it (fewer page faults)."""
    import ctypes
    import ctypes.util
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        raise SystemExit("--keep-freed-memory needs glibc's mallopt, which this system does not have; run without it")
    return "malloc keeps freed memory (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB), for both frameworks"


def minor_faults() -> int:
    try:
        import resource
    except ImportError:                       # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


ARGS = parse_args()
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)          # must happen before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's tinytorch
import tinytorch  # noqa: E402
import tinytorch.nn as nn  # noqa: E402
import tinytorch.nn.functional as F  # noqa: E402
from tinytorch import Tensor  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


# ---- the same computation in both frameworks ---------------------------------------------

def tiny_cross_entropy():
    """tinytorch's CrossEntropyLoss when chapter 05 provides it, else log_softmax plus indexing."""
    if hasattr(nn, "CrossEntropyLoss"):
        loss = nn.CrossEntropyLoss()
        return "nn.CrossEntropyLoss", lambda logits, targets: loss(logits, Tensor(targets))
    return "inline log_softmax", lambda logits, targets: \
        -F.log_softmax(logits, dim=1)[np.arange(len(targets)), targets].mean()


def reference_cnn_tiny():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),      # (N, 32, 30, 30) -> (N, 32, 15, 15)
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),     # (N, 64, 13, 13) -> (N, 64, 6, 6)
        nn.Flatten(), nn.Linear(2304, 256), nn.ReLU(), nn.Linear(256, 10))


def reference_cnn_torch():
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(3, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(2304, 256), tnn.ReLU(), tnn.Linear(256, 10))


def copy_weights(tiny_model, torch_model) -> None:
    """Give the PyTorch model tinytorch's weights (both name them alike: weight, bias, 0.weight, ...)."""
    tiny_state = tiny_model.state_dict()
    with torch.no_grad():
        for name, param in torch_model.named_parameters():
            param.copy_(torch.from_numpy(tiny_state[name]))


class Workload:
    """One forward + backward computation, runnable in tinytorch and (optionally) PyTorch."""

    def __init__(self, name: str, description: str, tiny_model, inputs, loss, torch_model=None, torch_loss=None,
                 input_grad: bool = False):
        self.name, self.description = name, description
        self.tiny_model, self.loss, self.input_grad = tiny_model, loss, input_grad
        self.x = Tensor(inputs[0], requires_grad=input_grad)
        self.extra = inputs[1:]
        self.params = list(tiny_model.parameters())
        self.torch_model, self.torch_loss = torch_model, torch_loss
        if torch_model is not None:
            copy_weights(tiny_model, torch_model)
            self.tx = torch.from_numpy(inputs[0].copy()).requires_grad_(input_grad)
            self.textra = [torch.from_numpy(a) for a in self.extra]

    def tiny_step(self) -> float:
        for p in self.params:
            p.grad = None
        self.x.grad = None
        loss = self.loss(self.tiny_model(self.x), *self.extra)
        loss.backward()
        return loss.item()

    def torch_step(self) -> float:
        self.torch_model.zero_grad(set_to_none=True)
        self.tx.grad = None
        loss = self.torch_loss(self.torch_model(self.tx), *self.textra)
        loss.backward()
        return loss.item()

    def check_agreement(self) -> str:
        """Run both once and compare losses and every gradient; raise if they differ."""
        tiny_loss, torch_loss = self.tiny_step(), self.torch_step()
        if not np.isclose(tiny_loss, torch_loss, rtol=1e-3, atol=1e-3):
            raise SystemExit(f"{self.name}: losses differ (tinytorch {tiny_loss:.6g}, PyTorch {torch_loss:.6g}); "
                             "the timings would compare different computations")
        worst = 0.0
        pairs = [(p.grad.data, q.grad.numpy()) for p, q in zip(self.params, self.torch_model.parameters())]
        if self.input_grad:
            pairs.append((self.x.grad.data, self.tx.grad.numpy()))
        for mine, theirs in pairs:
            scale = max(float(np.abs(theirs).max()), 1e-12)
            worst = max(worst, float(np.abs(mine - theirs).max()) / scale)
            if mine.dtype != np.float32:
                raise SystemExit(f"{self.name}: a tinytorch gradient is {mine.dtype}, expected float32")
        if worst > 1e-3:
            raise SystemExit(f"{self.name}: gradients differ from PyTorch's by {worst:.2e} (relative to the largest)")
        return f"loss {tiny_loss:.5f} vs {torch_loss:.5f}, worst gradient difference {worst:.1e} (relative)"


def build_workloads(selected: list[str]) -> list[Workload]:
    rng = np.random.default_rng(0)
    tinytorch.manual_seed(0)
    have_torch = torch is not None
    workloads = []
    if "linear" in selected:
        x = rng.standard_normal((256, 512), dtype=np.float32)
        workloads.append(Workload(
            "linear", "Linear 512->512, batch 256", nn.Linear(512, 512), [x], lambda out: out.sum(),
            torch.nn.Linear(512, 512) if have_torch else None, (lambda out: out.sum()) if have_torch else None,
            input_grad=True))
    if "conv" in selected:
        x = rng.standard_normal((64, 32, 16, 16), dtype=np.float32)
        workloads.append(Workload(
            "conv", "Conv2d 32->64 3x3 pad 1 on 64x32x16x16", nn.Conv2d(32, 64, 3, padding=1), [x],
            lambda out: out.sum(),
            torch.nn.Conv2d(32, 64, 3, padding=1) if have_torch else None,
            (lambda out: out.sum()) if have_torch else None, input_grad=True))
    if "cnn" in selected:
        images = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
        targets = rng.integers(0, 10, 64)
        loss_name, tiny_loss = tiny_cross_entropy()
        workloads.append(Workload(
            "cnn", "reference CNN + cross-entropy, batch 64", reference_cnn_tiny(),
            [images, targets], tiny_loss,
            reference_cnn_torch() if have_torch else None,
            torch.nn.functional.cross_entropy if have_torch else None))
        print(f"cnn: tinytorch's cross-entropy is {loss_name}")
    return workloads


# ---- timing -----------------------------------------------------------------------------

class Stopwatch:
    """Wall time and minor page faults of each run of one framework."""

    def __init__(self):
        self.times, self.faults = [], 0

    def __call__(self, fn) -> None:
        faults, start = minor_faults(), time.perf_counter()
        fn()
        self.times.append(time.perf_counter() - start)
        self.faults += minor_faults() - faults

    def median_ms(self) -> float:
        return 1000 * float(np.median(self.times))

    def summary(self) -> str:
        return f"{self.median_ms():>8.2f} ({1000 * min(self.times):>6.2f})"


def run(workload: Workload, repeats: int, warmup: int) -> tuple[Stopwatch, Stopwatch]:
    for _ in range(warmup):
        workload.tiny_step()
        if workload.torch_model is not None:
            workload.torch_step()
    tiny, reference = Stopwatch(), Stopwatch()
    for _ in range(repeats):                      # alternate, so load changes hit both alike
        tiny(workload.tiny_step)
        if workload.torch_model is not None:
            reference(workload.torch_step)
    return tiny, reference


def main() -> None:
    selected = ARGS.only or ["linear", "conv", "cnn"]
    allocator = keep_freed_memory() if ARGS.keep_freed_memory else "malloc as the system configures it"
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'}")
    print(f"NumPy {np.__version__}, tinytorch {tinytorch.__version__}, "
          + (f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch is not None
             else "PyTorch not installed: tinytorch timings only"))
    print(f"threads {ARGS.threads}; {allocator}")
    print(f"{ARGS.warmup} warm-up runs, then {ARGS.repeats} timed runs each, alternating\n")

    workloads = build_workloads(selected)
    if torch is not None:
        for w in workloads:
            print(f"{w.name:>6}: same computation in both: {w.check_agreement()}")
        print()

    header = f"{'workload (median ms; best in brackets)':<46} {'tinytorch':>17}" + \
        (f" {'PyTorch':>17} {'ratio':>7}" if torch else "")
    print(header)
    print("-" * len(header))
    faults = []
    for w in workloads:
        tiny, reference = run(w, ARGS.repeats, ARGS.warmup)
        line = f"{w.name + ': ' + w.description:<46} {tiny.summary()}"
        faults.append(f"{w.name}: tinytorch {tiny.faults / ARGS.repeats:.0f}")
        if reference.times:
            line += f" {reference.summary()} {tiny.median_ms() / reference.median_ms():>6.2f}x"
            faults[-1] += f", PyTorch {reference.faults / ARGS.repeats:.0f}"
        print(line)
    print("\nmedians (and fastest) of the timed runs"
          + ("; ratio = tinytorch median / PyTorch median (lower is better for tinytorch)" if torch else ""))
    print("minor page faults per run: " + "; ".join(faults))


if __name__ == "__main__":
    main()
