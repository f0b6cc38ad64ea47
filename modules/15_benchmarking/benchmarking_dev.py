# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
r"""
# Benchmarking and profiling: measure before you optimise

Chapter 14 made kernels faster by measuring them one at a time. A model is
dozens of kernels, run on a machine that is doing other things, and the
questions change: *is this change really faster, or did the machine just get
quieter? Which layer is worth optimising? Is that layer limited by
arithmetic or by memory, and how far is it from what the hardware can do?*
Guessing the answers is how engineers spend a week speeding up the part of a
program that took 2% of the time. This chapter builds the three tools that
answer them, and uses them on the course's models.

| tool | in `tinytorch.profiling` | answers |
| --- | --- | --- |
| timing harness | `benchmark(fn, ...) -> BenchmarkResult`, `compare({name: fn}, baseline=...) -> Comparison` | how long, how noisy, how much faster than the baseline |
| profiler | `profile_model(model, input, loss_fn=None) -> Profile` | which layer takes the time (forward and backward), the memory, the FLOPs |
| roofline | `measure_roofline() -> Roofline`, `Roofline.plot(points)` | is a layer memory-bound or compute-bound, and how close to the machine's limit |
| workloads | `reference_cnn()`, `AttentionBlock(...)` | the models the course measures, defined once |

The systems section then profiles the reference CNN and a transformer block,
places their layers on this machine's roofline, and names each model's
bottleneck from the numbers. It also measures a cost that no profile of
Python code shows: the operating system handing memory back and forth to the
allocator, page by page. Finally, `benchmarks/run_all.py` uses the same
harness to compare tinytorch with PyTorch on the operations the course
builds and writes the book's benchmark page.

Everything is measured while the chapter runs. On a machine shared with other
programs the numbers move from run to run; part of this chapter is about how
to get trustworthy conclusions anyway.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp profiling.benchmark

# %% [markdown]
r"""
**Control what you can.** Of all the things that move a timing, one is ours
to fix: how many threads BLAS may use. On a machine that other programs are
using, multi-threaded BLAS calls wait for a second core that is busy, and
their times jump by an order of magnitude. This chapter measures on one
core, like chapter 14; the thread count is read when NumPy loads, so this
cell runs first. (Delete it to measure with every core; `benchmarks/run_all.py`
takes the thread count as an option, `--threads`.)
"""

# %%
import os
import sys

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
print("BLAS threads: 1" if "numpy" not in sys.modules else
      "NumPy was already loaded, so BLAS keeps its default thread count; restart and run this cell first")

# %%
#| export
import time
from dataclasses import dataclass

import numpy as np

try:
    import resource                                  # Unix: page-fault counts
except ImportError:                                  # pragma: no cover - Windows
    resource = None

# %% [markdown]
r"""
The chapter's own tools: plotting, and the layers of earlier chapters that we
will profile.
"""

# %%
import json
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt

import tinytorch
from tinytorch import Tensor, manual_seed
from tinytorch.kernels import cross_entropy_kernel
from tinytorch.nn.layers import Linear, Sequential
from tinytorch.nn.loss import CrossEntropyLoss, cross_entropy
from tinytorch.nn.spatial import Conv2d

rng = np.random.default_rng(0)

# %% [markdown]
r"""
## Background

### Timing is a measurement, with noise

Time the same function a hundred times and you get a hundred different
numbers. The causes are real and mostly one-sided: other processes take the
core for a while, the CPU changes its clock frequency, the first call pays for
cold caches, lazily loaded code and fresh memory from the operating system, a
garbage collection or an interrupt lands in the middle. Noise almost only
ever *adds* time, so the distribution has a hard floor and a long tail to the
right. Three consequences shape the harness:

* **Warm up.** Run the function a few times before timing it, so that
  one-time costs do not count as the function's speed (unless the one-time
  cost is what you want to know).
* **Summarise robustly.** The *mean* is pulled around by the tail. The
  **median** is what a typical call costs; the **interquartile range** (IQR,
  the spread of the middle half: $Q_3 - Q_1$) says how much to trust it; the
  **minimum** is the closest to what the code could do on an otherwise idle
  machine (chapter 14 used it to compare kernels).
* **Repeat enough.** Fast functions need many runs (or several calls per
  timed run, so that the timer's resolution and overhead do not matter); a
  `min_time` keeps going until enough total time has been measured.

### Comparisons: alternate, and pair

Comparing A with B by timing all runs of A and then all runs of B fails when
the machine changes in between: a backup starts, another user's job ends, the
CPU heats up and slows down. Whatever changed is then blamed on B.
**Alternating** (one run of A, one of B, one of A, ...) exposes both to the
same conditions, and rotating who goes first in each round removes any
advantage of position. The runs then come in **pairs** from the same moment,
so we summarise the comparison by the median of the per-round ratios
$t_B / t_A$, which cancels slow drifts that would widen both distributions.

### Counting FLOPs

A floating-point operation count is a property of the computation, not of
the machine, so it can be computed from shapes alone. The ones that matter
(a multiply-add is 2 FLOPs):

| layer | forward FLOPs |
| --- | --- |
| `Linear(in, out)` on $N$ rows | $2N \cdot in \cdot out$ (matmul) $+ N \cdot out$ (bias) |
| `Conv2d(C, O, k)` on $N$ images, output $OH \times OW$ | $2N \cdot O \cdot OH \cdot OW \cdot C k^2 + N \cdot O \cdot OH \cdot OW$ |
| self-attention, $B$ sequences of $T$ tokens of width $d$ | $6BTd^2$ (q, k, v) $+ 2BT^2d$ (scores) $+ 2BT^2d$ (weights × values) $+ 2BTd^2$ (output) |
| element-wise operations, reductions | about one per element |

Backward costs about twice the forward FLOPs of a matmul (one matmul for the
input's gradient, one for the weight's). Our profiler counts FLOPs per
*primitive* as they run, with exactly these rules: a `MatMul` of
$(\ldots, n, k) @ (\ldots, k, m)$ is $2 \cdot \text{outputs} \cdot k$;
`Add`, `Mul`, `Exp` and the other element-wise primitives one per output
element (a transcendental such as `exp` costs a processor far more than one
addition, but convention counts it as one); reductions one per input element;
views and copies (`Reshape`, `Transpose`, `GetItem`, `Pad2d`, `Im2col`) none.
So the table's formulas are *tested* against what actually runs.

### The roofline model

A kernel that does $F$ FLOPs and moves $Q$ bytes has arithmetic intensity
$I = F/Q$ (chapter 14). A machine with peak arithmetic rate $P$ (FLOP/s) and
memory bandwidth $\beta$ (bytes/s) can run it at most at

$$
\text{attainable}(I) = \min(P,\; \beta \cdot I) .
$$

Plotted on log-log axes this is a sloped line (memory-bound: the rate grows
with intensity) meeting a flat one (compute-bound) at the **ridge point**
$I^* = P / \beta$. A kernel left of the ridge can only be made faster by
moving fewer bytes (fusion, better reuse); one right of it by doing its
arithmetic more efficiently. A kernel far *below* the roof is limited by
something else entirely, in tinytorch usually Python overhead. We measure $P$
with a large float32 matmul and $\beta$ with a large copy, and estimate each
layer's bytes as what its primitives must read and write at least once (their
inputs and outputs, nothing for views).
"""

# %% [markdown]
r"""
## Implementation

### One function: `benchmark`

`benchmark` runs `fn` `warmup` times untimed, then times runs until it has at
least `repeats` of them *and* at least `min_time` seconds in total (capped
at `max_runs`). Each timed run calls `fn` `number` times and records the time
per call. It also records **minor page faults** per call where the operating
system reports them: each is one page (usually 4 KiB) of memory that the
kernel had to map into the process when it was first touched. We will see
that for NumPy code they can cost as much as the arithmetic.

The clock is a parameter (`time.perf_counter` by default, the highest
resolution wall clock Python has), which lets the tests run the harness on a
fake clock and check its statistics exactly.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_benchmark", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def minor_page_faults() -> int:
    """Minor page faults of this process so far (0 where the operating system does not report them)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def format_time(seconds: float) -> str:
    """A duration with a readable unit: '12.3 ms', '45.6 us', '1.23 s'."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@dataclass(frozen=True)
class BenchmarkResult:
    """The times of repeated runs of one function (seconds per call) and their statistics."""

    name: str
    times: tuple
    number: int = 1
    faults: tuple = ()

    @property
    def runs(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def q1(self) -> float:
        return float(np.percentile(self.times, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.times, 75))

    @property
    def iqr(self) -> float:
        """Interquartile range: the spread of the middle half of the runs."""
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        return float(np.min(self.times))

    @property
    def max(self) -> float:
        return float(np.max(self.times))

    @property
    def mean(self) -> float:
        return float(np.mean(self.times))

    @property
    def faults_per_call(self):
        """Median minor page faults per call, or None if they were not counted."""
        return float(np.median(self.faults)) if self.faults else None

    def __str__(self) -> str:
        return (f"{self.name}: median {format_time(self.median)}, IQR {format_time(self.iqr)}, "
                f"min {format_time(self.min)}, {self.runs} runs")


def _check_counts(warmup: int, repeats: int, number: int, min_time: float, where: str) -> None:
    if warmup < 0 or repeats < 1 or number < 1 or min_time < 0:
        raise ValueError(f"{where}: need warmup >= 0, repeats >= 1, number >= 1 and min_time >= 0; got "
                         f"warmup={warmup}, repeats={repeats}, number={number}, min_time={min_time}")


def _timed_run(fn, number: int, clock) -> tuple:
    """(seconds per call, minor page faults per call) of one run of `number` calls."""
    faults = minor_page_faults()
    start = clock()
    for _ in range(number):
        fn()
    elapsed = clock() - start
    return elapsed / number, (minor_page_faults() - faults) / number, elapsed


def benchmark(fn, *, warmup: int = 1, repeats: int = 10, min_time: float = 0.0, number: int = 1,
              max_runs: int = 10_000, name: str | None = None, clock=time.perf_counter) -> BenchmarkResult:
    """Time fn() after `warmup` untimed calls, until there are `repeats` runs and `min_time` seconds.

    Args:
        fn: the function to time, called with no arguments.
        warmup: untimed calls first (caches, lazy initialisation, first-touch memory).
        repeats: the least number of timed runs.
        min_time: keep timing until the runs add up to this many seconds (at most max_runs runs).
        number: calls per timed run, for functions too fast to time one call at a time.
        name: a label for tables (defaults to fn's name).
        clock: a function returning seconds (time.perf_counter; tests pass a fake).
    Returns:
        A BenchmarkResult with the time per call of every run.
    """
    # 1. Validate with _check_counts(..., "benchmark"); call fn() `warmup` times without timing.
    # 2. Loop while fewer than `repeats` runs, or while the total is under min_time (and runs < max_runs);
    #    each run is _timed_run(fn, number, clock) -> (seconds per call, faults per call, elapsed seconds).
    # 3. Name: `name`, else fn.__name__ (a lambda or partial may lack one: fall back to "fn").
    # Pitfall: add up `elapsed` (the whole run) for min_time, but record the per-call times; and keep
    # faults only where the OS reports them (resource is not None), else an empty tuple.
    ### BEGIN SOLUTION
    _check_counts(warmup, repeats, number, min_time, "benchmark")
    for _ in range(warmup):
        fn()
    times, faults, total = [], [], 0.0
    while len(times) < repeats or (total < min_time and len(times) < max_runs):
        per_call, faults_per_call, elapsed = _timed_run(fn, number, clock)
        times.append(per_call)
        faults.append(faults_per_call)
        total += elapsed
    label = name if name is not None else getattr(fn, "__name__", "fn")
    return BenchmarkResult(label, tuple(times), number, tuple(faults) if resource is not None else ())
    ### END SOLUTION


# %% [markdown]
r"""
The test drives `benchmark` with a fake clock: each call of the function
advances it by a known amount, so the median, quartiles, IQR, minimum and
the number of runs are known exactly. It checks that warm-up calls are not
timed, that `min_time` extends the run, that `number` divides the time by the
number of calls, and that nonsense arguments are refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_benchmark", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
class FakeClock:
    """A clock that only moves when told to: clock.advance(seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_unit_benchmark():
    clock = FakeClock()
    durations = iter([100.0, 100.0] + [0.001 * k for k in range(1, 11)])   # two warm-up calls, then 1..10 ms
    result = benchmark(lambda: clock.advance(next(durations)), warmup=2, repeats=10, clock=clock, name="steps")
    assert result.runs == 10 and result.name == "steps"
    np.testing.assert_allclose(result.times, [0.001 * k for k in range(1, 11)])     # warm-up not timed
    np.testing.assert_allclose([result.median, result.q1, result.q3, result.iqr, result.min, result.max],
                               [0.0055, 0.00325, 0.00775, 0.0045, 0.001, 0.010])
    long = benchmark(lambda: clock.advance(1 / 64), warmup=0, repeats=3, min_time=0.5, clock=clock)
    assert long.runs == 32, long.runs                                        # 32 runs of 1/64 s = 0.5 s
    ### BEGIN HIDDEN TESTS
    batched = benchmark(lambda: clock.advance(0.002), warmup=0, repeats=4, number=5, clock=clock)
    np.testing.assert_allclose(batched.times, [0.002] * 4)                   # seconds per call, not per run
    assert batched.number == 5 and "median 2 ms" in str(batched)
    ### END HIDDEN TESTS
    try:
        benchmark(lambda: None, repeats=0)
    except ValueError as err:
        assert "repeats >= 1" in str(err)
    else:
        raise AssertionError("benchmark accepted repeats=0")
    print("✓ benchmark: warm-up untimed, exact statistics on a fake clock, min_time, number, argument checks")


test_unit_benchmark()

# %% [markdown]
r"""
### Several functions, side by side: `compare`

`compare` takes a dict of named functions and runs them in **rounds**: in
each round every candidate runs once, and the order rotates from round to
round (A B C, then B C A, then C A B). Warm-up runs also alternate. The
result keeps every candidate's times *in round order*, so the $i$-th time of
each candidate comes from the same moment, and `ratio(name)` is the median of
the per-round ratios to the baseline. `to_markdown()` renders the table and
`plot()` draws each candidate's distribution of times.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_compare", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass(frozen=True)
class Comparison:
    """Benchmark results of several candidates measured in alternating rounds."""

    results: dict
    baseline: str

    @property
    def rounds(self) -> int:
        return self.results[self.baseline].runs

    def _paired_ratios(self, name: str) -> np.ndarray:
        return np.asarray(self.results[name].times) / np.asarray(self.results[self.baseline].times)

    def ratio(self, name: str) -> float:
        """Median over rounds of time(name) / time(baseline): above 1 means slower than the baseline."""
        if name not in self.results:
            raise KeyError(f"no candidate named {name!r}; candidates are {list(self.results)}")
        return float(np.median(self._paired_ratios(name)))

    def ratio_spread(self, name: str) -> tuple:
        """The quartiles (Q1, Q3) of the per-round ratios to the baseline."""
        ratios = self._paired_ratios(name)
        return float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))

    def to_markdown(self) -> str:
        """A table: candidate, median, IQR, minimum, runs, ratio to the baseline (with its quartiles)."""
        lines = [f"| candidate | median | IQR | min | runs | vs {self.baseline} |",
                 "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, result in self.results.items():
            if name == self.baseline:
                versus = "1 (baseline)"
            else:
                low, high = self.ratio_spread(name)
                versus = f"{self.ratio(name):.2f}x ({low:.2f}-{high:.2f})"
            lines.append(f"| {name} | {format_time(result.median)} | {format_time(result.iqr)} | "
                         f"{format_time(result.min)} | {result.runs} | {versus} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def plot(self, ax=None, title: str | None = None, show_ratios: bool = True):
        """Each candidate's times in ms: a box from Q1 to Q3, the median, whiskers to min and max; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.6 + 0.5 * len(self.results)))
        names = list(self.results)
        for row, name in enumerate(names):                   # whiskers min-max, box Q1-Q3, line at the median
            result = self.results[name]
            ax.hlines(row, result.min * 1e3, result.max * 1e3, color="grey")
            ax.barh(row, result.iqr * 1e3, left=result.q1 * 1e3, height=0.5, color=f"C{row % 10}", alpha=0.7)
            ax.vlines(result.median * 1e3, row - 0.3, row + 0.3, color="black")
        ax.set_yticks(range(len(names)), [n if n == self.baseline or not show_ratios else f"{n} ({self.ratio(n):.2f}x)"
                                          for n in names])
        ax.set_xlabel("ms per call")
        ax.set_title(title or f"{self.rounds} alternating rounds; ratios vs {self.baseline}")
        return ax


def compare(candidates: dict, baseline: str | None = None, *, warmup: int = 1, repeats: int = 10,
            min_time: float = 0.0, number: int = 1, max_rounds: int = 10_000, clock=time.perf_counter) -> Comparison:
    """Time several functions in alternating rounds and compare each with a baseline.

    Args:
        candidates: {name: fn}; each fn is called with no arguments.
        baseline: the name the others are compared with (the first candidate by default).
        warmup, repeats, min_time, number: as in benchmark(), counted in rounds; min_time
            is the total time of all candidates.
    Returns:
        A Comparison whose results hold each candidate's times in round order.
    """
    # Refuse an empty dict (ValueError) and an unknown baseline (KeyError), then _check_counts.
    # Warm up in rounds too (every candidate, in order). Then, in round r, run the candidates starting
    # at position r % len(names): names[r:] + names[:r], one _timed_run each, appending to its lists.
    # Stop as in benchmark: at least `repeats` rounds, and until min_time (all candidates together).
    # Pitfall: one time per candidate per round, in round order, or the paired ratios pair the wrong runs.
    ### BEGIN SOLUTION
    names = list(candidates)
    if not names:
        raise ValueError("compare: no candidates; pass a dict like {'tinytorch': fn, 'numpy': other_fn}")
    baseline = names[0] if baseline is None else baseline
    if baseline not in candidates:
        raise KeyError(f"compare: baseline {baseline!r} is not a candidate; candidates are {names}")
    _check_counts(warmup, repeats, number, min_time, "compare")
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times = {name: [] for name in names}
    faults = {name: [] for name in names}
    total, rounds = 0.0, 0
    while rounds < repeats or (total < min_time and rounds < max_rounds):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:           # rotate who goes first
            per_call, faults_per_call, elapsed = _timed_run(candidates[name], number, clock)
            times[name].append(per_call)
            faults[name].append(faults_per_call)
            total += elapsed
        rounds += 1
    results = {name: BenchmarkResult(name, tuple(times[name]), number,
                                     tuple(faults[name]) if resource is not None else ()) for name in names}
    return Comparison(results, baseline)
    ### END SOLUTION


# %% [markdown]
r"""
The test gives three candidates fixed durations on a fake clock and checks
the ratios exactly, that every candidate gets one run per round, that the
order of calls really rotates, the markdown table, and the errors for an
unknown baseline and an empty dict.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_compare", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_compare():
    clock, calls = FakeClock(), []

    def candidate(name, seconds):
        def run():
            calls.append(name)
            clock.advance(seconds)
        return run

    comparison = compare({"a": candidate("a", 0.010), "b": candidate("b", 0.020), "c": candidate("c", 0.005)},
                         baseline="a", warmup=1, repeats=6, clock=clock)
    assert comparison.rounds == 6 and all(r.runs == 6 for r in comparison.results.values())
    np.testing.assert_allclose([comparison.ratio(n) for n in "abc"], [1.0, 2.0, 0.5])
    assert calls[:3] == ["a", "b", "c"]                                    # warm-up, in order
    assert calls[3:12] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]    # rounds rotate who goes first
    table = comparison.to_markdown()
    assert "| b | 20 ms |" in table and "2.00x (2.00-2.00)" in table and "1 (baseline)" in table
    assert compare({"x": candidate("x", 1.0)}, repeats=2, warmup=0, clock=clock).baseline == "x"
    for bad, error in [(lambda: compare({"a": candidate("a", 1)}, baseline="z"), KeyError),
                       (lambda: compare({}), ValueError)]:
        try:
            bad()
        except error:
            pass
        else:
            raise AssertionError(f"compare did not raise {error.__name__}")
    print("✓ compare: exact ratios, one run per candidate per round, rotating order, table, errors")


test_unit_compare()

# %% [markdown]
r"""
### The profiler: time, FLOPs and memory per layer

`profile_model(model, input, loss_fn=None)` runs the model (and, given a loss
function, the loss and `backward()`) a few times and reports, for every
layer in the module tree:

* **forward time**, measured by wrapping each layer's `forward` with a
  timer. Layers nest, so a layer's time includes its children's; its *self*
  time is what remains after subtracting them (for `MultiheadAttention`, the
  attention arithmetic itself, apart from its `out_proj` child). Plain
  callables inside a `Sequential` (our `ReLU` is one, not a `Module`) are
  wrapped in place and count as layers too.
* **FLOPs and bytes moved**, counted per primitive as it runs (the rules of
  the background), and charged to the innermost layer running at that moment.
* **backward time**, the part that needs a design. A layer's backward work is
  not a function call we can wrap: `loss.backward()` walks the whole graph
  in one loop. But every node of the graph was created by some layer's
  forward. So while the forward runs, the profiler tags each node with the
  layer that created it; while backward runs, it times every backward *rule*
  and charges the time to the node's layer. What remains of the measured
  backward time, outside every rule, is the autograd engine's own work
  (sorting the graph, undoing broadcasting, adding up gradients that meet,
  copying them into `.grad`), reported as its own row rather than spread
  over the layers by guesswork.
* **memory**: the bytes of each layer's output and of its parameters; and,
  measured once with `tracemalloc` in a separate run (tracing slows every
  allocation, so it must not overlap the timed runs), the memory the graph
  holds after the forward pass and the peak through backward.

The instrumentation replaces `Function.apply`, the backward rules of the
primitives that ran and each layer's `forward` for the duration of the
call, and puts every one of them back afterwards, even if the model raises.
Nothing is left behind in the model or the package.

The profiler is given, except for its accounting: you write
`_Recorder.primitive_ran`, the function every primitive reports to, which
charges the primitive's FLOPs and bytes to the layer running it and tags its
graph node so that backward time goes to the same layer. First, the rule for
bytes.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_primitive_bytes", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export profiling.profiler
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from tinytorch.core.function import (Add, Exp, Function, GetItem, Log, MatMul, Max, Mul, Neg, Pow, Reshape, Sum,
                                     Tanh, Transpose)
from tinytorch.core.tensor import Tensor
from tinytorch.kernels.conv import Conv2dChannelsLast
from tinytorch.kernels.fused import BatchNormFused, MaxPool2dTiles, SoftmaxCrossEntropy
from tinytorch.nn.attention import SelfAttentionFused
from tinytorch.nn.layers import LinearFused, Sequential
from tinytorch.nn.module import Module
from tinytorch.nn.spatial import Im2col, Pad2d


def _per_output(inputs, output) -> int:
    return output.size


def _per_input(inputs, output) -> int:
    return inputs[0].size


def _none(inputs, output) -> int:
    return 0


def _self_attention_flops(inputs, output) -> int:
    """SelfAttentionFused: the packed projection (+ bias), scores and weighted sum over every head, and
    5 softmax FLOPs per score (the number of heads is an option, not an array: counted as one head)."""
    (B, T, E), packed = inputs[0].shape, inputs[1].shape[0]
    return 2 * B * T * E * packed + (B * T * packed if len(inputs) == 3 else 0) + 4 * B * T * T * E + 5 * B * T * T


# FLOPs of one call of each primitive, from its input arrays and output array.
FLOP_RULES = {
    MatMul: lambda inputs, output: 2 * output.size * inputs[0].shape[-1],   # a multiply-add per term
    Add: _per_output, Mul: _per_output, Neg: _per_output, Pow: _per_output,
    Exp: _per_output, Log: _per_output, Tanh: _per_output,
    Sum: _per_input, Max: _per_input,
    Reshape: _none, Transpose: _none, GetItem: _none, Pad2d: _none, Im2col: _none,
    SoftmaxCrossEntropy: lambda inputs, output: 5 * inputs[0].size,         # max, subtract, exp, sum, divide
    # Chapter 14's kernels behind Conv2d, BatchNorm and max-pooling: the arithmetic of what they replace.
    Conv2dChannelsLast: lambda inputs, output: (2 * output.size * (inputs[1].size // inputs[1].shape[0])
                                                + (output.size if len(inputs) == 3 else 0)),   # + bias
    BatchNormFused: lambda inputs, output: 6 * inputs[0].size,              # mean, subtract, square-sum, scale, shift
    MaxPool2dTiles: lambda inputs, output: inputs[0].size - output.size,     # kh*kw - 1 comparisons per window
    # Chapter 04's and 07's fast paths: the arithmetic of the compositions they replace.
    LinearFused: lambda inputs, output: (2 * output.size * inputs[0].shape[-1]
                                         + (output.size if len(inputs) == 3 else 0)),   # + bias
    SelfAttentionFused: _self_attention_flops,
}


def primitive_flops(function: type, inputs: list, output: np.ndarray) -> int:
    """FLOPs of one call of a primitive (FLOP_RULES; one per output element for primitives not listed)."""
    return int(FLOP_RULES.get(function, _per_output)(inputs, output))


def primitive_bytes(inputs: list, output: np.ndarray) -> int:
    """The bytes one primitive call must move at least: its inputs read and its output written (0 for a view).

    Args: inputs, the primitive's input arrays; output, its output array.
    Returns: an int, the sum of every input's nbytes plus the output's, or 0 if the output is a view.
    """
    # A view (Reshape, Transpose, a slice) shares memory with its input and copies nothing:
    # np.may_share_memory(output, array) tells you, without comparing any values.
    # Pitfall: count nbytes (dtype-aware), not sizes, and return a Python int.
    ### BEGIN SOLUTION
    if any(np.may_share_memory(output, array) for array in inputs):
        return 0
    return int(sum(array.nbytes for array in inputs) + output.nbytes)
    ### END SOLUTION


# %% [markdown]
r"""
The FLOP rules are tested on their own first, on single primitives whose
counts we can do by hand: a batched matmul, a broadcasting add, a reduction,
a view and a copy.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_primitive_counts", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_primitive_counts():
    a, b = np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)
    out = a @ b                                                       # (2, 3, 5): 30 outputs of 4 terms
    assert primitive_flops(MatMul, [a, b], out) == 2 * 30 * 4
    assert primitive_bytes([a, b], out) == (24 + 20 + 30) * 4
    bias = np.ones(5, np.float32)
    assert primitive_flops(Add, [out, bias], out + bias) == 30
    assert primitive_flops(Sum, [out], out.sum(axis=-1)) == 30
    assert primitive_flops(Transpose, [out], out.transpose(0, 2, 1)) == 0
    assert primitive_bytes([out], out.transpose(0, 2, 1)) == 0       # a view moves nothing
    assert primitive_bytes([out], out.reshape(-1).copy()) == 2 * out.nbytes
    print("✓ primitive FLOPs and bytes: matmul, broadcast add, reduction, view, copy")


test_unit_primitive_counts()

# %% nbgrader={"grade": false, "grade_id": "impl_profiler_accounting", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export profiling.profiler
@dataclass
class LayerProfile:
    """One layer's share of a step, the median over the profiled runs.

    Times are in seconds. `forward_time`, `backward_time`, `flops` and `bytes_moved` include
    the layer's children; the `self_` versions do not. Backward time is the time of the backward
    rules of the graph nodes the layer's forward created.
    """

    name: str
    kind: str
    depth: int
    is_leaf: bool
    calls: int = 0
    forward_time: float = 0.0
    self_forward_time: float = 0.0
    backward_time: float = 0.0
    self_backward_time: float = 0.0
    flops: int = 0
    self_flops: int = 0
    bytes_moved: int = 0
    output_bytes: int = 0
    param_bytes: int = 0

    @property
    def total_time(self) -> float:
        return self.forward_time + self.backward_time

    @property
    def self_time(self) -> float:
        """Forward and backward time of this layer's own work, its children's excluded."""
        return self.self_forward_time + self.self_backward_time

    @property
    def intensity(self) -> float:
        """Forward FLOPs per byte moved (arithmetic intensity); 0 for a layer that moves nothing."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    @property
    def flop_rate(self) -> float:
        """Forward FLOPs per second achieved."""
        return self.flops / self.forward_time if self.forward_time > 0 else 0.0


def _layer_tree(model) -> list:
    """[(name, layer, depth, parent index, position in a parent Sequential)], depth first, model first."""
    entries, seen = [], set()

    def walk(layer, name, depth, parent, position):
        if isinstance(layer, Module):
            if id(layer) in seen:                         # a shared module is one layer, called more than once
                return
            seen.add(id(layer))
        index = len(entries)
        entries.append((name, layer, depth, parent, position))
        if isinstance(layer, Sequential):
            children = list(zip(layer._names, layer.layers))
        elif isinstance(layer, Module):
            children = list(layer.named_children())
        else:
            children = []
        for slot, (child_name, child) in enumerate(children):
            walk(child, f"{name}.{child_name}" if name else child_name, depth + 1, index,
                 slot if isinstance(layer, Sequential) else None)

    walk(model, "", 0, None, None)
    return entries


def _tensor_bytes(value) -> int:
    if isinstance(value, Tensor):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


class _Recorder:
    """What one profiled run measures, slot by slot: one slot per layer, and the last for the loss."""

    def __init__(self, entries: list, clock):
        self.entries, self.clock = entries, clock
        self.loss = len(entries)
        self.stack: list = []
        self.patched_rules: dict = {}
        self.reset()

    def reset(self) -> None:
        slots = len(self.entries) + 1
        self.forward = np.zeros(slots)
        self.backward = np.zeros(slots)
        self.flops = np.zeros(slots, dtype=np.int64)
        self.bytes = np.zeros(slots, dtype=np.int64)
        self.output_bytes = np.zeros(slots, dtype=np.int64)
        self.calls = np.zeros(slots, dtype=np.int64)

    def timed_layer(self, index: int, call):
        def run(*args, **kwargs):
            self.stack.append(index)
            start = self.clock()
            try:
                out = call(*args, **kwargs)
            finally:
                self.forward[index] += self.clock() - start
                self.stack.pop()
            self.calls[index] += 1
            self.output_bytes[index] += _tensor_bytes(out)
            return out
        return run

    def primitive_ran(self, function: type, inputs: tuple, out: Tensor) -> None:
        """Charge one primitive call to the layer running it, and tag its graph node for backward.

        Called by the patched Function.apply after every primitive, with the Function class, its
        inputs (Tensors and other options) and its output Tensor.
        """
        # 1. The owner is the innermost layer running now, the top of self.stack; with an empty
        #    stack the primitive belongs to the loss, whose slot is self.loss.
        # 2. Add primitive_flops(function, arrays, out.data) and primitive_bytes(arrays, out.data)
        #    to the owner's slots, where arrays are the .data of the inputs that are Tensors.
        # 3. If the output has a graph node (out._ctx is not None), store the owner on it as
        #    out._ctx._profiler_owner and call self.time_backward_of(function), so backward time
        #    is charged to the same layer.
        # Pitfall: options such as target indices are not Tensors: skip them, don't count them.
        ### BEGIN SOLUTION
        owner = self.stack[-1] if self.stack else self.loss
        arrays = [x.data for x in inputs if isinstance(x, Tensor)]
        self.flops[owner] += primitive_flops(function, arrays, out.data)
        self.bytes[owner] += primitive_bytes(arrays, out.data)
        if out._ctx is not None:
            out._ctx._profiler_owner = owner
            self.time_backward_of(function)
        ### END SOLUTION

    def time_backward_of(self, function: type) -> None:
        """Wrap the backward rule `function` uses (defined on it or inherited) in a timer, once."""
        owner_class = next((c for c in function.__mro__ if "backward" in c.__dict__), None)
        if owner_class is None or owner_class in self.patched_rules or owner_class is Function:
            return
        original = owner_class.__dict__["backward"]
        rule = owner_class.backward

        def timed_rule(ctx, grad):
            start = self.clock()
            try:
                return rule(ctx, grad)
            finally:
                self.backward[getattr(ctx, "_profiler_owner", self.loss)] += self.clock() - start

        self.patched_rules[owner_class] = original
        owner_class.backward = staticmethod(timed_rule)

    def install(self) -> None:
        """Wrap every layer's forward and Function.apply (undone by uninstall)."""
        recorder, original_apply = self, Function.__dict__["apply"]

        def apply(cls, *inputs, **options):
            out = original_apply.__func__(cls, *inputs, **options)
            recorder.primitive_ran(cls, inputs, out)
            return out

        self.original_apply = original_apply
        Function.apply = classmethod(apply)
        for index, (_, layer, _, parent, position) in enumerate(self.entries):
            if isinstance(layer, Module):
                object.__setattr__(layer, "forward", self.timed_layer(index, layer.forward))
            elif position is not None:
                self.entries[parent][1].layers[position] = self.timed_layer(index, layer)

    def uninstall(self) -> None:
        Function.apply = self.original_apply
        for owner_class, original in self.patched_rules.items():
            owner_class.backward = original
        self.patched_rules.clear()
        for _, layer, _, parent, position in self.entries:
            if isinstance(layer, Module):
                layer.__dict__.pop("forward", None)
            elif position is not None:
                self.entries[parent][1].layers[position] = layer


# %%
#| export profiling.profiler
@dataclass
class Profile:
    """Per-layer time, FLOPs and memory of a model's step (medians over runs; times in seconds)."""

    layers: list
    loss: LayerProfile | None
    forward_time: float
    loss_time: float
    backward_time: float
    engine_time: float
    memory_after_forward: int
    peak_memory: int
    runs: int

    @property
    def total_time(self) -> float:
        """Forward, loss and backward of one step."""
        return self.forward_time + self.loss_time + self.backward_time

    def __getitem__(self, name: str) -> LayerProfile:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers are {[layer.name for layer in self.layers]}")

    def leaves(self) -> list:
        """The layers without children: where the work is done."""
        return [layer for layer in self.layers if layer.is_leaf]

    def bottleneck(self) -> LayerProfile:
        """The layer (or the loss) whose own work, children excluded, takes the most time."""
        candidates = self.layers + ([self.loss] if self.loss is not None else [])
        return max(candidates, key=lambda layer: layer.self_time)

    def _rows(self) -> list:
        rows = [(("  " * layer.depth) + (layer.name or "(model)"), layer) for layer in self.layers]
        if self.loss is not None:
            rows.append(("(loss)", self.loss))
        return rows

    def table(self) -> str:
        """The profile as aligned text, one row per layer, then the engine and the step total."""
        header = (f"{'layer':<24} {'kind':<20} {'fwd ms':>8} {'bwd ms':>8} {'% step':>7} {'self %':>7} "
                  f"{'MFLOP':>9} {'GFLOP/s':>8} {'FLOP/B':>7} {'out KiB':>9} {'param KiB':>10}")
        lines = [header, "-" * len(header)]
        for label, layer in self._rows():
            lines.append(f"{label:<24} {layer.kind:<20} {layer.forward_time * 1e3:>8.2f} "
                         f"{layer.backward_time * 1e3:>8.2f} {100 * layer.total_time / self.total_time:>6.1f}% "
                         f"{100 * layer.self_time / self.total_time:>6.1f}% {layer.flops / 1e6:>9.2f} {layer.flop_rate / 1e9:>8.2f} {layer.intensity:>7.2f} "
                         f"{layer.output_bytes / 1024:>9.1f} {layer.param_bytes / 1024:>10.1f}")
        if self.backward_time:
            lines.append(f"{'(autograd engine)':<24} {'':<20} {'':>8} {self.engine_time * 1e3:>8.2f} "
                         f"{100 * self.engine_time / self.total_time:>6.1f}% {100 * self.engine_time / self.total_time:>6.1f}%")
        lines.append(f"{'step total':<24} {'':<20} {(self.forward_time + self.loss_time) * 1e3:>8.2f} "
                     f"{self.backward_time * 1e3:>8.2f} {100.0:>6.1f}%")
        lines.append(f"graph memory after forward {self.memory_after_forward / 2**20:.1f} MiB, "
                     f"peak {self.peak_memory / 2**20:.1f} MiB; medians of {self.runs} runs")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_markdown(self) -> str:
        """The profile as a markdown table."""
        lines = ["| layer | kind | forward ms | backward ms | % of step | self % | MFLOP | GFLOP/s | FLOP/byte | output KiB | params KiB |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, layer in self._rows():
            lines.append(f"| {label.strip() or '(model)'} | {layer.kind} | {layer.forward_time * 1e3:.2f} | "
                         f"{layer.backward_time * 1e3:.2f} | {100 * layer.total_time / self.total_time:.1f} | "
                         f"{100 * layer.self_time / self.total_time:.1f} | {layer.flops / 1e6:.2f} | {layer.flop_rate / 1e9:.2f} | {layer.intensity:.2f} | "
                         f"{layer.output_bytes / 1024:.1f} | {layer.param_bytes / 1024:.1f} |")
        if self.backward_time:
            share = 100 * self.engine_time / self.total_time
            lines.append(f"| (autograd engine) | | | {self.engine_time * 1e3:.2f} | {share:.1f} | {share:.1f} | | | | | |")
        return "\n".join(lines)

    def plot(self, ax=None, title: str | None = None):
        """Forward and backward time of each leaf layer, the loss and the engine, as stacked bars."""
        import matplotlib.pyplot as plt

        rows = [(f"{layer.name} {layer.kind}", layer.forward_time, layer.backward_time) for layer in self.leaves()]
        if self.loss is not None:
            rows.append(("(loss)", self.loss.forward_time, self.loss.backward_time))
        if self.backward_time:
            rows.append(("(autograd engine)", 0.0, self.engine_time))
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.8 + 0.3 * len(rows)))
        labels = [name for name, _, _ in rows][::-1]
        forward = np.array([f for _, f, _ in rows][::-1]) * 1e3
        backward = np.array([b for _, _, b in rows][::-1]) * 1e3
        ax.barh(labels, forward, label="forward")
        ax.barh(labels, backward, left=forward, label="backward")
        ax.set_xlabel("ms per step")
        ax.set_title(title or "Where a step's time goes")
        ax.legend()
        return ax


def _profile_of(entry, layer_index: int, children: list, medians: dict, self_forward: np.ndarray) -> LayerProfile:
    name, layer, depth, _, _ = entry
    kind = type(layer).__name__
    params = sum(p.nbytes for p in layer.parameters()) if isinstance(layer, Module) else 0
    return LayerProfile(name, kind, depth, not children[layer_index], int(medians["calls"][layer_index]),
                        float(medians["forward"][layer_index]), float(self_forward[layer_index]),
                        float(medians["backward_incl"][layer_index]), float(medians["backward"][layer_index]),
                        int(medians["flops_incl"][layer_index]), int(medians["flops"][layer_index]),
                        int(medians["bytes_incl"][layer_index]), int(medians["output_bytes"][layer_index]), params)


def profile_model(model, input, loss_fn=None, *, runs: int = 3, warmup: int = 1, clock=time.perf_counter) -> Profile:
    """Profile a model's forward pass (and, with loss_fn, the loss and backward) layer by layer.

    Args:
        model: a Module (or any callable); its Modules and the callables inside its Sequentials are layers.
        input: the model's input (a Tensor, or a tuple of arguments).
        loss_fn: a function of the model's output returning a scalar Tensor; None profiles the forward only.
        runs: profiled runs; each number reported is the median over them.
        warmup: unprofiled runs first.
    Returns:
        A Profile. Every run is a real step: the model's parameters keep the gradients of the
        last run, and layers with state (BatchNorm's running statistics) update it each run.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"profile_model: need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    args = input if isinstance(input, tuple) else (input,)
    parameters = list(model.parameters()) if isinstance(model, Module) else []

    def step():
        for p in parameters:
            p.grad = None
        out = model(*args)
        loss = loss_fn(out) if loss_fn is not None else None
        return out, loss

    for _ in range(warmup):
        _, loss = step()
        if loss is not None:
            loss.backward()
    entries = _layer_tree(model)
    children = [[] for _ in entries]
    for index, (_, _, _, parent, _) in enumerate(entries):
        if parent is not None:
            children[parent].append(index)
    recorder = _Recorder(entries, clock)
    records, totals = [], []
    recorder.install()
    try:
        for _ in range(runs):
            recorder.reset()
            for p in parameters:
                p.grad = None
            start = clock()
            out = model(*args)
            forward_time = clock() - start
            loss_time = backward_time = 0.0
            if loss_fn is not None:
                start = clock()
                loss = loss_fn(out)
                loss_time = clock() - start
                recorder.forward[recorder.loss] = loss_time
                start = clock()
                loss.backward()
                backward_time = clock() - start
            records.append({name: getattr(recorder, name).copy()
                            for name in ("forward", "backward", "flops", "bytes", "output_bytes", "calls")})
            totals.append((forward_time, loss_time, backward_time, backward_time - recorder.backward.sum()))
    finally:
        recorder.uninstall()

    # Inclusive sums: entries are in depth-first order, so every child comes after its parent.
    for record in records:
        for name in ("backward", "flops", "bytes"):
            inclusive = record[name].copy()
            for index in range(len(entries) - 1, 0, -1):
                inclusive[entries[index][3]] += inclusive[index]
            record[name + "_incl"] = inclusive
        record["self_forward"] = record["forward"] - np.array(
            [sum(record["forward"][c] for c in kids) for kids in children] + [0.0])
    medians = {name: np.median([record[name] for record in records], axis=0) for name in records[0]}
    layers = [_profile_of(entry, i, children, medians, medians["self_forward"]) for i, entry in enumerate(entries)]
    loss = None
    if loss_fn is not None:
        i = recorder.loss
        loss = LayerProfile("(loss)", "loss", 0, True, 1, float(medians["forward"][i]), float(medians["forward"][i]),
                            float(medians["backward"][i]), float(medians["backward"][i]), int(medians["flops"][i]),
                            int(medians["flops"][i]), int(medians["bytes"][i]), 0, 0)
    forward_time, loss_time, backward_time, engine_time = (float(v) for v in np.median(totals, axis=0))

    tracemalloc.start()                                   # memory, in a run of its own
    try:
        before = tracemalloc.get_traced_memory()[0]
        _, step_loss = step()
        after_forward = tracemalloc.get_traced_memory()[0] - before
        if step_loss is not None:
            step_loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return Profile(layers, loss, forward_time, loss_time, backward_time, engine_time, after_forward, peak, runs)

# %% [markdown]
r"""
The test profiles a small model whose numbers we know: a `Sequential` of a
`Conv2d`, a `ReLU` (a plain callable), a `Flatten` and a `Linear`, with a
cross-entropy loss. Every layer gets an entry; the FLOPs of the convolution
and of the linear layer equal the formulas of the background; parameter
bytes equal what the layers hold; times are non-negative, children's times
fit inside their parent's, and each layer's backward time is positive where
it has a backward rule to run. Afterwards the model and the package must be
exactly as before: no wrapper left on any layer, `Function.apply` and every
backward rule restored.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_profile_model", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_profile_model():
    from tinytorch.core.function import MatMul
    from tinytorch.nn.activation import ReLU
    from tinytorch.nn.spatial import Flatten
    manual_seed(0)
    model = Sequential(Conv2d(3, 4, 3), ReLU(), Flatten(), Linear(4 * 6 * 6, 5))
    x = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    targets = np.array([1, 4])
    apply_before, matmul_rule = Function.__dict__["apply"], MatMul.__dict__["backward"]
    profile = profile_model(model, x, lambda out: cross_entropy(out, targets), runs=2)
    assert [layer.name for layer in profile.layers] == ["", "0", "1", "2", "3"]
    assert [layer.kind for layer in profile.layers] == ["Sequential", "Conv2d", "ReLU", "Flatten", "Linear"]
    conv, relu_, flatten, linear = profile.layers[1:]
    assert conv.flops == 2 * 2 * 4 * 6 * 6 * 3 * 9 + 2 * 4 * 6 * 6        # 2 N O OH OW C k^2 + bias
    assert linear.flops == 2 * 2 * 144 * 5 + 2 * 5                         # 2 N in out + bias
    assert relu_.flops == 2 * 4 * 6 * 6 and flatten.flops == 0
    assert profile.layers[0].flops == conv.flops + relu_.flops + linear.flops
    assert conv.param_bytes == (4 * 3 * 9 + 4) * 4 and linear.param_bytes == (144 * 5 + 5) * 4
    assert linear.output_bytes == 2 * 5 * 4 and relu_.param_bytes == 0
    for layer in profile.layers:
        assert layer.forward_time >= 0 and layer.backward_time >= 0 and layer.calls == 1, layer
    assert profile.layers[0].forward_time >= sum(layer.forward_time for layer in profile.leaves())
    assert conv.backward_time > 0 and linear.backward_time > 0 and profile.loss.backward_time > 0
    assert profile.backward_time >= profile.layers[0].backward_time + profile.loss.backward_time
    assert profile.bottleneck() is max(profile.layers + [profile.loss], key=lambda layer: layer.self_time)
    assert abs(profile.layers[0].self_time + sum(layer.self_time for layer in profile.layers[1:])
               - profile.layers[0].total_time) < 1e-9                  # self times add up to the model's time
    assert profile.peak_memory >= profile.memory_after_forward > 0
    assert Function.__dict__["apply"] is apply_before and MatMul.__dict__["backward"] is matmul_rule
    assert all("forward" not in layer.__dict__ for layer in model.modules()) and isinstance(model.layers[1], ReLU)
    assert "(autograd engine)" in profile.table() and "| 3 | Linear |" in profile.to_markdown()
    forward_only = profile_model(model, x, runs=1)
    assert forward_only.loss is None and forward_only.backward_time == 0.0
    print("✓ profile_model: an entry per layer, FLOPs = formulas, parameter bytes, times consistent, nothing left patched")


test_unit_profile_model()

# %% [markdown]
r"""
### The roofline of this machine

Two measurements give the roof. **Peak FLOP/s**: the fastest of a few runs of
a large float32 matmul ($2n^3$ FLOPs), the most efficient kernel the machine
has. **Bandwidth**: the fastest of a few copies of a 64 MiB array into
another (larger than the last-level cache of most CPUs, so the copy streams
from main memory), counting the bytes read and written. Both use the harness and report the *fastest* run, because
the question is what the hardware can do, not what a typical run gets.
`Roofline` then holds the two numbers and knows the model's arithmetic. This
cell is given: each method is the background's formula in one line, and the
work of this section is in reading the plot, further below.
"""

# %%
#| export profiling.roofline
from dataclasses import dataclass

import numpy as np

from tinytorch.profiling.benchmark import benchmark


def measure_peak_flops(n: int = 1024, repeats: int = 5, dtype=np.float32) -> float:
    """FLOP/s of the fastest of `repeats` n x n matmuls (BLAS, every core NumPy uses)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    return 2 * n**3 / benchmark(lambda: a @ b, warmup=1, repeats=repeats).min


def measure_bandwidth(megabytes: int = 64, repeats: int = 5) -> float:
    """Bytes/s of the fastest of `repeats` copies of an array of `megabytes` MiB (read + write)."""
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    return 2 * source.nbytes / benchmark(lambda: np.copyto(target, source), warmup=1, repeats=repeats).min


@dataclass(frozen=True)
class Roofline:
    """The roofline model of a machine: attainable FLOP/s = min(peak, bandwidth * intensity)."""

    peak_flops: float
    bandwidth: float

    @property
    def ridge(self) -> float:
        """The intensity (FLOP/byte) at which memory stops being the limit."""
        return self.peak_flops / self.bandwidth

    def attainable(self, intensity):
        """The most FLOP/s a kernel of this arithmetic intensity can reach (scalar or array)."""
        return np.minimum(self.peak_flops, self.bandwidth * np.asarray(intensity, dtype=np.float64))

    def bound(self, intensity: float) -> str:
        """'memory' left of the ridge point, 'compute' at or right of it."""
        return "memory" if intensity < self.ridge else "compute"

    def efficiency(self, intensity: float, flop_rate: float) -> float:
        """Achieved FLOP/s as a fraction of the roof at this intensity."""
        return float(flop_rate / self.attainable(intensity))

    def plot(self, points: dict | None = None, ax=None, title: str | None = None):
        """The roof on log-log axes, and points {label: (intensity, FLOP/s)}; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 4.2))
        points = points or {}
        low = min([self.ridge / 100] + [i for i, _ in points.values() if i > 0])
        high = max([self.ridge * 100] + [i for i, _ in points.values()])
        grid = np.logspace(np.log10(low / 2), np.log10(high * 2), 200)
        ax.loglog(grid, self.attainable(grid) / 1e9, color="black", linewidth=1.5, label="roof")
        ax.axvline(self.ridge, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"ridge {self.ridge:.1f} FLOP/B", (self.ridge, self.peak_flops / 1e9), fontsize=8,
                    textcoords="offset points", xytext=(4, -12))
        for index, (label, (intensity, rate)) in enumerate(points.items()):
            if intensity > 0 and rate > 0:                   # ten colours, then the next marker shape
                ax.loglog(intensity, rate / 1e9, "osD^v<>p*h"[index // 10 % 10], color=f"C{index % 10}", label=label)
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(title or f"Roofline: peak {self.peak_flops / 1e9:.0f} GFLOP/s, {self.bandwidth / 1e9:.1f} GB/s")
        ax.legend(fontsize=7, loc="lower right")
        return ax


def measure_roofline(n: int = 1024, megabytes: int = 64, repeats: int = 5) -> Roofline:
    """This machine's roofline: peak from an n x n float32 matmul, bandwidth from a copy of `megabytes` MiB."""
    return Roofline(measure_peak_flops(n, repeats), measure_bandwidth(megabytes, repeats))


def roofline_points(profile, prefix: str = "") -> dict:
    """{label: (intensity, FLOP/s)} of a profile's leaf layers that do arithmetic (forward pass)."""
    return {f"{prefix}{layer.name} {layer.kind}": (layer.intensity, layer.flop_rate)
            for layer in profile.leaves() if layer.flops > 0 and layer.forward_time > 0}


# %% [markdown]
r"""
The test checks the model's arithmetic on made-up numbers, where the answers
are easy: a machine of 100 GFLOP/s and 10 GB/s has its ridge at 10 FLOP/byte,
a kernel of intensity 1 can reach at most 10 GFLOP/s, one of intensity 50
the full 100; and the two measurements return positive rates.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_roofline", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_roofline():
    roof = Roofline(peak_flops=100e9, bandwidth=10e9)
    assert roof.ridge == 10.0
    np.testing.assert_allclose(roof.attainable([0.1, 1, 10, 50]), [1e9, 10e9, 100e9, 100e9])
    assert roof.bound(1) == "memory" and roof.bound(10) == "compute" and roof.bound(50) == "compute"
    assert roof.efficiency(1, 5e9) == 0.5 and roof.efficiency(50, 25e9) == 0.25
    assert measure_peak_flops(n=64, repeats=2) > 0 and measure_bandwidth(megabytes=1, repeats=2) > 0
    print("✓ roofline: ridge point, attainable rate, bound, efficiency; measurements positive")


test_unit_roofline()

# %% [markdown]
r"""
### The workloads the course measures

Two models recur in this chapter, in the benchmark script and in the
checkpoint, so they are defined once, in the package:

* `reference_cnn()`: the CIFAR-10 CNN of chapter 06 (conv 3→32 3×3, ReLU,
  max-pool 2, conv 32→64 3×3, ReLU, max-pool 2, flatten, Linear 2304→256,
  ReLU, Linear 256→10).
* `AttentionBlock(d_model, n_heads, mlp_ratio=4, causal=True)`: a
  transformer block in the pre-norm arrangement GPT-2 uses,
  $x + \text{Attn}(\text{LN}_1(x))$ followed by
  $x + \text{MLP}(\text{LN}_2(x))$, built from chapter 07's
  `MultiheadAttention`, chapter 08's `LayerNorm` and a `Linear`-`GELU`-`Linear`
  MLP four times as wide. With `causal=True` each token attends only to
  itself and earlier tokens (the mask uses PyTorch's convention, `True` =
  may not attend). Input and output are `(B, T, d_model)`.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_AttentionBlock", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export profiling.workloads
import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn.activation import GELU, ReLU
from tinytorch.nn.attention import MultiheadAttention
from tinytorch.nn.layers import Linear, Sequential
from tinytorch.nn.module import Module
from tinytorch.nn.normalization import LayerNorm
from tinytorch.nn.spatial import Conv2d, Flatten, MaxPool2d


def reference_cnn() -> Sequential:
    """The course's CIFAR-10 CNN: (N, 3, 32, 32) images -> (N, 10) class scores."""
    return Sequential(
        Conv2d(3, 32, 3), ReLU(), MaxPool2d(2),       # (N, 32, 30, 30) -> (N, 32, 15, 15)
        Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),      # (N, 64, 13, 13) -> (N, 64, 6, 6)
        Flatten(),                                    # (N, 2304)
        Linear(2304, 256), ReLU(),
        Linear(256, 10))


class AttentionBlock(Module):
    """A pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(x)); (B, T, d_model) -> same."""

    def __init__(self, d_model: int = 128, n_heads: int = 4, mlp_ratio: int = 4, causal: bool = True):
        super().__init__()
        self.ln1 = LayerNorm(d_model)
        self.attn = MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ln2 = LayerNorm(d_model)
        self.mlp = Sequential(Linear(d_model, mlp_ratio * d_model), GELU(approximate="tanh"), Linear(mlp_ratio * d_model, d_model))
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, d_model) -> (B, T, d_model): x + attn(ln1(x)), then that + mlp(ln2(that))."""
        # 1. With self.causal, build a (T, T) boolean mask, True above the diagonal (np.triu(..., k=1)):
        #    PyTorch's convention, True = may NOT attend. Wrap it in a Tensor; without causal, pass None.
        # 2. h = self.ln1(x); self.attn(h, h, h, need_weights=False, attn_mask=mask) returns (output, None).
        # 3. Two residual additions: the MLP reads ln2 of the sum after attention, not ln2(x).
        # Pitfall: T is x.shape[1] (batch_first); a mask of the wrong orientation lets tokens see the future.
        ### BEGIN SOLUTION
        T = x.shape[1]
        mask = Tensor(np.triu(np.ones((T, T), dtype=bool), k=1)) if self.causal else None   # True: may not attend
        h = self.ln1(x)
        attended, _ = self.attn(h, h, h, need_weights=False, attn_mask=mask)   # (B, T, d)
        x = x + attended
        return x + self.mlp(self.ln2(x))                                       # (B, T, d)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"causal={self.causal}"


# %% [markdown]
r"""
The test checks shapes and parameter counts against the formulas, and that
the causal block really is causal: changing the last token must not change
any earlier token's output.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_workloads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_workloads():
    manual_seed(0)
    cnn = reference_cnn()
    assert cnn(Tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 10)
    assert sum(p.numel() for p in cnn.parameters()) == (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (2304 * 256 + 256) + 2570
    block = AttentionBlock(d_model=16, n_heads=2)
    d = 16
    assert sum(p.numel() for p in block.parameters()) == 4 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * (4 * d * d) + 4 * d + d
    x = rng.standard_normal((2, 5, d)).astype(np.float32)
    changed = x.copy()
    changed[:, -1] += 1.0
    out, out_changed = block(Tensor(x)).data, block(Tensor(changed)).data
    assert out.shape == (2, 5, d)
    np.testing.assert_allclose(out[:, :-1], out_changed[:, :-1], atol=1e-6)
    assert not np.allclose(out[:, -1], out_changed[:, -1])
    print("✓ workloads: reference CNN and attention block shapes, parameter counts, causality")


test_unit_workloads()

# %% [markdown]
r"""
## Systems analysis

### What a timing distribution looks like

One training step of the reference CNN (batch 64, forward, cross-entropy,
backward), timed 40 times after two warm-up steps, and, before that, the
very first step of a freshly built model on its own.
"""

# %%
manual_seed(0)
cnn = reference_cnn()
images = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
labels = rng.integers(0, 10, 64)


def cnn_step():
    for p in cnn.parameters():
        p.grad = None
    cross_entropy(cnn(images), labels).backward()


start = time.perf_counter()
cnn_step()
first_step = time.perf_counter() - start
steps = benchmark(cnn_step, warmup=2, repeats=40, name="CNN training step")
print(steps)
print(f"first step {format_time(first_step)} ({first_step / steps.median:.2f}x the median); mean {format_time(steps.mean)} "
      f"vs median {format_time(steps.median)}; slowest {format_time(steps.max)}; "
      f"minor page faults per step {steps.faults_per_call or 0:.0f}")
assert steps.min <= steps.median <= steps.max, "a distribution with a floor and a tail"
if sys.platform.startswith("linux"):
    assert steps.faults_per_call >= 1000, "the text says the OS maps thousands of fresh pages every step"

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(np.asarray(steps.times) * 1e3, bins=20, color="C0", alpha=0.8)
for value, label, style in [(steps.min, "min", ":"), (steps.median, "median", "-"), (steps.mean, "mean", "--")]:
    ax.axvline(value * 1e3, color="black", linestyle=style, label=f"{label} {value * 1e3:.1f} ms")
ax.set_xlabel("ms per step")
ax.set_ylabel("runs")
ax.set_title("40 identical training steps")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
r"""
Identical work, different times: the distribution has a floor near the
minimum and a tail to the right, so the mean usually sits above the median,
pulled by a few slow runs (compare the two printed values). A first step
pays for fresh memory to map, cold caches and code paths run for the first
time; whether that shows against the median depends on what the process did
before (here many earlier cells already warmed it up: the printed ratio says
how much it showed). A benchmark that included it would be measuring
start-up. And the page-fault count shows something that no profile of Python
code will: every step, the operating system maps thousands of fresh pages
into the process (on Linux the cell checks at least 1,000). We come back to
that below.

### Why alternate: a comparison that goes wrong

Two *identical* functions, A and B, each a 256×256 float32 matmul. Halfway
through the measurement, the machine gets slower: another program starts
taking the core, say, or the CPU heats up and lowers its clock. A real
slowdown of that kind comes and goes as it pleases (on a shared machine it
is happening all the time, which is exactly the problem), so to make the
experiment behave the same on every machine we *simulate* it: from a chosen
call on, every call of the shared work first spends about three times a matmul's
time on pure-Python busywork, a stand-in for the time another program would
take. First we time all of A, then all of B, the obvious way, with the
slowdown starting between the two; then we let `compare` alternate between
them, with the slowdown starting halfway through the rounds.
"""

# %%
square = rng.standard_normal((256, 256)).astype(np.float32)


class Slowdown:
    """From call number `start` of same_work() on, every call first burns `extra` seconds of Python work."""

    def __init__(self):
        self.calls, self.start, self.extra = 0, None, 0.0

    def begin(self, after_calls: int, extra: float) -> None:
        self.calls, self.start, self.extra = 0, after_calls, extra

    def end(self) -> None:
        self.start = None

    def __call__(self) -> None:
        self.calls += 1
        if self.start is not None and self.calls > self.start:
            deadline = time.perf_counter() + self.extra
            while time.perf_counter() < deadline:           # busy, like a competing program
                pass


slowdown = Slowdown()


def same_work():
    slowdown()
    return square @ square


def function_a():
    return same_work()


def function_b():
    return same_work()


one_call = benchmark(same_work, warmup=3, repeats=10).median
rounds = 30
sequential_a = benchmark(function_a, warmup=3, repeats=rounds, name="A")
slowdown.begin(after_calls=0, extra=3 * one_call)             # the machine gets slower before B is timed
sequential_b = benchmark(function_b, warmup=3, repeats=rounds, name="B")
slowdown.end()
sequential_ratio = sequential_b.median / sequential_a.median

warmup_calls = 3 * 2                                          # compare's warm-up: 3 rounds of A and B
slowdown.begin(after_calls=warmup_calls + rounds * 2, extra=3 * one_call)   # halfway through 2 * rounds rounds
alternating = compare({"A": function_a, "B": function_b}, baseline="A", warmup=3, repeats=2 * rounds)
slowdown.end()
print(f"A then B:    B / A = {sequential_ratio:.2f}  (A median {format_time(sequential_a.median)}, "
      f"B median {format_time(sequential_b.median)})")
print(f"alternating: B / A = {alternating.ratio('B'):.2f}  (quartiles of the per-round ratios "
      f"{alternating.ratio_spread('B')[0]:.2f}-{alternating.ratio_spread('B')[1]:.2f})")
assert sequential_ratio > 1.3, "the text says timing A then B blames the slowdown on B"
assert 0.7 < alternating.ratio("B") < 1.4, "the text says alternating keeps the ratio close to 1"

fig, axes = plt.subplots(1, 2, figsize=(9, 2.4), sharex=True)
Comparison({"A": sequential_a, "B": sequential_b}, "A").plot(ax=axes[0], title="A, then B", show_ratios=False)
alternating.plot(ax=axes[1], title="alternating rounds")
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
Timed one after the other, B looks slower than A, by as much as the
slowdown cost (the cell checks a ratio above 1.3), although A and B are the
same function. Timed in alternation, both see the quick half and the slow
half alike, and the median of the per-round ratios stays close to 1
(checked: between 0.7 and 1.4). The distributions are wider (the machine
really did get slower), but the *comparison* is right. A real competing
program does the same thing to a benchmark, only less predictably: it can
start, stop and start again within one measurement, and no amount of care
in timing one candidate and then the other removes it. This is why
`benchmarks/run_all.py` alternates tinytorch and PyTorch step by step
rather than timing one and then the other.

### The allocator: memory the operating system hands over page by page

The CNN step above reported thousands of minor page faults per step. Each one
is the kernel mapping a fresh 4 KiB page into the process the first time it
is touched. They come from the C library's `malloc` (glibc's, on Linux),
which NumPy uses for array data: it takes large blocks from the operating
system with `mmap` and gives them back with `munmap` when they are freed,
and it trims its heap when a lot of memory at its top is free. A training
step allocates and frees the same large arrays (activations, columns,
gradients) every step, so the memory goes back to the kernel at the end of
each step and has to be faulted in again, page by page, in the next.

glibc can be told to keep freed memory instead, through two environment
variables read when a process starts: `MALLOC_MMAP_THRESHOLD_` (blocks
smaller than this come from the heap, not from `mmap`) and
`MALLOC_TRIM_THRESHOLD_` (how much free memory at the top of the heap it
tolerates before giving it back). We cannot change them for a process that is
already running, and tinytorch must not change them for everyone who imports
it, so the experiment runs the same benchmark in fresh Python processes, with
and without the two variables, alternating.
"""

# %%
STEP_SCRIPT = r"""
import json
import numpy as np
from tinytorch import Tensor, manual_seed
from tinytorch.nn.functional import cross_entropy
from tinytorch.profiling import benchmark, reference_cnn
manual_seed(0)
model = reference_cnn()
rng = np.random.default_rng(0)
images = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
labels = rng.integers(0, 10, 64)

def step():
    for p in model.parameters():
        p.grad = None
    cross_entropy(model(images), labels).backward()

result = benchmark(step, warmup=2, repeats=6)
print(json.dumps({"median": result.median, "faults": result.faults_per_call}))
"""
KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def run_step_benchmark(extra_env: dict) -> dict:
    env = dict(os.environ, **extra_env)
    package_root = str(Path(tinytorch.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, "-c", STEP_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark subprocess failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if sys.platform.startswith("linux"):
    runs = {"default malloc": [], "malloc keeps freed memory": []}
    for _ in range(2):                                        # alternate the two configurations
        runs["default malloc"].append(run_step_benchmark({}))
        runs["malloc keeps freed memory"].append(run_step_benchmark(KEEP_FREED))
    allocator = {name: (float(np.median([r["median"] for r in results])),
                        float(np.median([r["faults"] for r in results]))) for name, results in runs.items()}
    for name, (median, faults) in allocator.items():
        print(f"{name:>26}: CNN step median {format_time(median)}, {faults:,.0f} minor page faults per step")
    (default_time, default_faults), (kept_time, kept_faults) = allocator.values()
    print(f"keeping freed memory: the step takes {kept_time / default_time:.2f}x the time")
    assert default_faults >= 1000 and kept_faults <= 0.1 * default_faults, \
        "the text says the page faults drop from thousands to nearly none"
else:
    print("This experiment needs Linux's glibc malloc; on this system it is skipped.")

# %% [markdown]
r"""
With the allocator keeping its freed memory, the page faults per step drop
from thousands to nearly none (the cell checks under a tenth). How much time
that saves depends on the machine: page faults are expensive in virtual
machines (each one may also need the hypervisor's help) and cheaper on bare
metal. The printed ratio is your machine's answer; the profile below puts
the saving beside each layer's share of the step. PyTorch's CPU tensors come
from the same `malloc` and pay the same kind of cost: the benchmark page
that `benchmarks/run_all.py` writes lists PyTorch's page faults per run
beside tinytorch's. (How many depends on what the process allocated before:
glibc adapts its thresholds as it goes.) On GPUs, PyTorch
avoids the problem with a *caching allocator* that keeps freed blocks for
reuse instead of returning them to the driver. `benchmarks/run_all.py --keep-freed-memory` makes the change for both
frameworks in one run, so you can see its effect on every workload.

### Profiling the reference CNN

Now the profiler on a full training step of the reference CNN: forward,
cross-entropy, backward.
"""

# %%
cnn_profile = profile_model(cnn, images, lambda out: cross_entropy(out, labels), runs=3)
print(cnn_profile.table())
cnn_profile.plot(title="Reference CNN, batch 64: one training step")
plt.show()

total = cnn_profile.total_time
flops_total = cnn_profile.layers[0].flops
print("largest shares of the step:")
for layer in sorted(cnn_profile.leaves(), key=lambda l: l.total_time, reverse=True)[:4]:
    print(f"  layer {layer.name} {layer.kind:<10} {100 * layer.total_time / total:5.1f}% of the time "
          f"(forward {100 * layer.forward_time / total:4.1f}%, backward {100 * layer.backward_time / total:4.1f}%), "
          f"{100 * layer.flops / flops_total:5.1f}% of the forward FLOPs")
print(f"autograd engine {100 * cnn_profile.engine_time / total:.1f}% of the time; the profiled step took "
      f"{format_time(total)}, the unprofiled one {format_time(steps.median)} (medians; ratio {total / steps.median:.2f})")
if sys.platform.startswith("linux"):
    heaviest = max(cnn_profile.leaves(), key=lambda l: l.total_time)
    print(f"keeping freed memory saved {1 - kept_time / default_time:.0%} of a step in the experiment above; "
          f"the heaviest layer ({heaviest.name} {heaviest.kind}) takes {heaviest.total_time / total:.0%}")

# What the text below says about this profile, checked (FLOPs and bytes are exact; times get wide bands):
by_name = {l.name: l for l in cnn_profile.layers}
share_of_time = {name: l.total_time / total for name, l in by_name.items()}
share_of_flops = {name: l.flops / flops_total for name, l in by_name.items()}
assert share_of_flops["0"] + share_of_flops["3"] > 0.8, "the convolutions do almost all the arithmetic"
assert share_of_time["2"] + share_of_time["5"] > 10 * (share_of_flops["2"] + share_of_flops["5"]), \
    "pooling costs far more time than its FLOPs suggest"
assert by_name["7"].param_bytes > 0.9 * by_name[""].param_bytes, "Linear(2304, 256) holds almost all the parameters"
assert cnn_profile.loss.total_time / total < 0.05, "the fused loss is negligible"
assert 0.005 < cnn_profile.engine_time / total < 0.3, "the engine's own work is a few percent of the step"

# %% [markdown]
r"""
Read the table from the heaviest rows. The two convolutions do almost all
the arithmetic and take a large share of the time, forward and backward. The
max-pooling layers do almost no arithmetic (a comparison per input value),
yet their forward (chapter 14's running maximum over strided views of the
image) and their backward (routing each gradient to the pixel that won, into
a new input-sized array) cost far more than their FLOPs suggest: they are
pure data movement. `Linear(2304, 256)` holds almost all
the parameters, and its time is mostly its two matmuls. The loss, fused in
chapter 14, is negligible (under 5% of the step, checked). The engine's own
work, the row that no layer owns, is a few percent (the printed line; the
cell checks it lies between 0.5% and 30%). The cell checks each of these
statements against the profile.

So the bottleneck is named by the printed lines above, not by a guess: the
top rows are where an optimisation can pay, and a layer with a small share
cannot speed up the step by more than its share, however fast it becomes
(Amdahl's law).

### Roofline: how close is each layer to the machine's limit?

Measure the roof (peak FLOP/s from a float32 matmul, bandwidth from a copy),
then put each layer of the CNN on it, using the forward pass's FLOPs, bytes
and time from the profile.
"""

# %%
roof = measure_roofline()
print(f"peak {roof.peak_flops / 1e9:.0f} GFLOP/s (1024x1024 float32 matmul), bandwidth {roof.bandwidth / 1e9:.1f} GB/s "
      f"(64 MiB copy): ridge point at {roof.ridge:.1f} FLOP/byte")
print(f"{'layer':<18} {'FLOP/byte':>10} {'bound':>8} {'GFLOP/s':>8} {'roof':>8} {'of roof':>8}")
for label, (intensity, rate) in roofline_points(cnn_profile).items():
    print(f"{label:<18} {intensity:>10.2f} {roof.bound(intensity):>8} {rate / 1e9:>8.2f} "
          f"{roof.attainable(intensity) / 1e9:>8.1f} {100 * roof.efficiency(intensity, rate):>7.1f}%")
roof.plot(roofline_points(cnn_profile), title="Reference CNN layers (forward) on this machine's roofline")
plt.show()
points = roofline_points(cnn_profile)
assert all(i < 0.2 for label, (i, _) in points.items() if "ReLU" in label or "Pool" in label), "element-wise: far left"
assert all(i > 2 for label, (i, _) in points.items() if "Conv2d" in label or label.startswith("7 ")), \
    "convolutions and the large Linear: several FLOPs per byte or more"
print(f"every layer below its roof: {all(roof.efficiency(i, r) < 1 for i, r in points.values())}; "
      f"best {max(roof.efficiency(i, r) for i, r in points.values()):.0%} of its roof")

# %% [markdown]
r"""
Element-wise layers (`ReLU`) and pooling sit far to the left, with a fraction
of a FLOP per byte: memory-bound by nature, so the only way to speed them up
is to move fewer bytes (fusing the ReLU into the layer before it, or pooling
without copying windows). The convolutions and the large `Linear` have
intensities of several FLOPs per byte or more (the cell checks both sides:
under 0.2 and over 2), within a small factor of the ridge or right of it:
compute-bound, or nearly, in principle. The line under the plot says whether
every layer sits *below* its roof, and how close the best one gets; most sit
below it by a large factor. For the matmul-heavy layers, the distance is the column copies
(chapter 14's convolution builds them a few images at a time) and the tinytorch overhead
around the BLAS calls; for the small layers,
Python's fixed cost per primitive is a large part of their time. The roofline
tells us which resource a layer *could* be limited by; the distance below it
tells us how much we lose to everything else.

### Profiling an attention block, and what grows with the sequence

The transformer block of the workloads (width 128, 4 heads, MLP 4× wider), on
8 sequences, at three sequence lengths. The loss is the mean of the squared
outputs (any scalar works for profiling backward).
"""

# %%
manual_seed(0)
block = AttentionBlock(d_model=128, n_heads=4)
attention_profiles = {}
for T in (64, 128, 256):
    tokens = Tensor(rng.standard_normal((8, T, 128)).astype(np.float32))
    attention_profiles[T] = profile_model(block, tokens, lambda out: (out * out).mean(), runs=2)
print(attention_profiles[256].table())


def share(profile, name: str) -> float:
    return profile[name].total_time / profile.total_time


print(f"\n{'T':>5} {'step ms':>9} {'attention':>10} {'(own ops)':>10} {'attention FLOPs':>16} {'MLP':>6} "
      f"{'(GELU)':>7} {'LayerNorms':>11} {'engine':>7}")
for T, profile in attention_profiles.items():
    attn = profile["attn"]
    print(f"{T:>5} {profile.total_time * 1e3:>9.1f} {100 * share(profile, 'attn'):>9.1f}% "
          f"{100 * attn.self_time / profile.total_time:>9.1f}% {100 * attn.flops / profile.layers[0].flops:>15.1f}% "
          f"{100 * share(profile, 'mlp'):>5.1f}% {100 * share(profile, 'mlp.1'):>6.1f}% "
          f"{100 * (share(profile, 'ln1') + share(profile, 'ln2')):>10.1f}% {100 * profile.engine_time / profile.total_time:>6.1f}%")
print(f"bottleneck at T = 256: {attention_profiles[256].bottleneck().name} "
      f"({attention_profiles[256].bottleneck().kind}, own work only)")
d, B = 128, 8
for T in attention_profiles:
    projections, quadratic = 8 * B * T * d * d, 4 * B * T * T * d
    print(f"T = {T}: attention FLOPs, projections {projections / 1e6:.0f} M vs scores and weighted sum "
          f"{quadratic / 1e6:.0f} M; measured attention-layer FLOPs {attention_profiles[T]['attn'].flops / 1e6:.0f} M")
roof.plot({**roofline_points(attention_profiles[256], "attn block: "), **roofline_points(cnn_profile, "CNN: ")},
          title="CNN and attention-block layers on the roofline")
plt.show()

# What the text below says, checked against the profiles:
longest = attention_profiles[256]
assert share(attention_profiles[64], "attn") < share(longest, "attn"), "attention's share grows with T"
assert longest["attn"].self_time > 0.8 * longest["attn"].total_time, "attention's time is mostly its own work"
assert longest.bottleneck().name == "attn", "at T = 256 the profile names attention the bottleneck"
assert 0.6 < longest["mlp"].param_bytes / longest[""].param_bytes < 0.7, "the MLP holds two thirds of the parameters"
assert min(longest["mlp.0"].flop_rate, longest["mlp.2"].flop_rate) > max(
    l.flop_rate for l in longest.leaves() if l.kind != "Linear"), "the MLP's Linears are the fastest layers"
gelu = longest["mlp.1"]
assert share(longest, "mlp.1") > 5 * gelu.flops / longest[""].flops, "GELU's time share is many times its FLOP share"

# %% [markdown]
r"""
The attention layer's share of the step grows with the sequence length
(the cell checks the longest against the shortest; on a busy machine two
neighbouring rows can swap), because its scores and its weighted sum grow
with $T^2$ while everything
else (the projections, the MLP, the LayerNorms) grows with $T$. The FLOP
lines show the quadratic term catching up with the projections: $4BT^2d$
against $8BTd^2$, equal at $T = 2d = 256$ for this width. The time shares
follow the FLOP shares, and almost all of the attention layer's time is its
own work (the in-projection, the scores, the mask, the softmax and the
weighted sum), not its `out_proj` child; at the longest length the profile
names it the bottleneck. Part of that work is not matmul at all: the mask,
the softmax and their backward are element-wise passes over
$(B, h, T, T)$ arrays, memory-bound. Chapter 07's `SelfAttentionFused` already
runs the whole layer but `out_proj` (projection, scores, mask, softmax and
weighted sum) as one primitive, but it still keeps the weights, a
$(B, h, T, T)$ array, for backward. That is what FlashAttention removes
(chapter 14): the $T \times T$ arrays never reach memory.

The MLP holds two thirds of the block's parameters and, at short lengths,
most of its FLOPs; its two `Linear` layers are the block's fastest layers
in GFLOP/s, the closest to the matmul roof. Its `GELU`, one fused primitive
since chapter 03 (a handful of element-wise sweeps), still takes a share of
the time many times its share of the FLOPs: element-wise work is
memory-bound however it is written. The two LayerNorms, each still about
ten element-wise primitives, are the next candidates for the same treatment.
(The cell above checks each of the statements it can, and those of the
previous paragraph, against the profiles.)

## Production context

* **Timing.** `torch.utils.benchmark.Timer` does what our harness does and
  more: `blocked_autorange()` picks how many calls to put in each timed block,
  `Measurement` reports the median and IQR and warns when the spread is
  large, and `Compare` prints a table of several measurements. It also
  synchronises CUDA before reading the clock (GPU work is asynchronous, so
  timing without a synchronisation measures only the launch). `pytest-benchmark`
  brings the same statistics to test suites; Python's `timeit` reports the
  best of several repeats, the capability measurement.
* **Profiling.** `torch.profiler.profile` records every operator through
  hooks in PyTorch's dispatcher (`record_shapes=True` adds input shapes,
  `profile_memory=True` allocations, `with_flops=True` FLOP estimates for
  matmuls and convolutions) and `record_function` marks regions of your own.
  Backward operators appear as autograd nodes (`AddmmBackward0`, ...), and
  PyTorch links each to the forward operator that created it through a
  *sequence number* recorded at creation time, which is the idea behind our
  per-node owner tag. Traces open in Chrome's trace viewer, Perfetto or
  TensorBoard; below the framework, `perf`, Intel VTune and NVIDIA's Nsight
  Systems and Nsight Compute (which draws rooflines for GPU kernels) see
  individual instructions.
* **FLOP counting.** `torch.utils.flop_counter.FlopCounterMode` and fvcore
  count FLOPs per operator from shapes with formulas like ours; like ours,
  they count matmuls and convolutions carefully and most other operations
  roughly or not at all. Conventions differ (some count a multiply-add as one
  operation), so check before comparing numbers from two tools.
* **Allocators.** PyTorch's CUDA caching allocator keeps freed GPU memory
  for reuse (`torch.cuda.memory_stats()` shows it); on CPUs, production
  deployments often replace glibc's `malloc` with jemalloc or tcmalloc
  (through `LD_PRELOAD`) for the same reason our experiment set
  `MALLOC_MMAP_THRESHOLD_`: fewer trips to the operating system.

## Integration: the harness on the course's own decisions

Chapter 14 installed the fused cross-entropy after comparing it with
`best_ms`, the fastest of a few runs. Here is the same decision made with
this chapter's harness, alternating, on the reference CNN's training step
and on the language-model output layer of chapter 14 (the same layer on
half as many tokens, 1024: both candidates' work scales with the tokens),
with the ratio and its spread.
"""


# %%
def cnn_step_with(kernel):
    def run():
        with cross_entropy_kernel(kernel):
            cnn_step()
    return run


def head_step_with(kernel):
    def run():
        head.zero_grad()
        with cross_entropy_kernel(kernel):
            cross_entropy(head(head_tokens), head_targets).backward()
    return run


from tinytorch.kernels import softmax_cross_entropy_rows as fused_kernel

manual_seed(0)
head = Linear(128, 4096)
head_tokens = Tensor(rng.standard_normal((1024, 128)).astype(np.float32))
head_targets = rng.integers(0, 4096, 1024)
decisions = {}
for title, make in [("reference CNN step", cnn_step_with), ("language-model head (1024 tokens, vocabulary 4096)", head_step_with)]:
    decisions[title] = decision = compare({"composite": make(None), "fused": make(fused_kernel)}, baseline="composite",
                                          warmup=1, repeats=8)
    print(f"{title}:\n{decision.to_markdown()}\n")
cnn_decision, head_decision = decisions.values()
assert 0.7 < cnn_decision.ratio("fused") < 1.4, "the text says the CNN's ratio is close to 1"
assert head_decision.ratio("fused") < 0.9, "the text says the fused kernel is faster for the language-model head"

# %% [markdown]
r"""
The same conclusion as chapter 14, now with its uncertainty attached: for the
CNN the ratio is close to 1 (the loss is a sliver of the step; the cell
checks 0.7 to 1.4, wide enough for a busy machine); for the language-model head the fused kernel is faster
(checked: a ratio under 0.9), and the quartiles of the per-round ratios say
by how much, round after round.

**The benchmark page.** `benchmarks/run_all.py` applies the harness to the
operations and models the course builds (a matmul, a convolution forward and
backward, the reference CNN's training step, the attention block's forward and
backward, and the capstone's GPT training step once it exists), side by side
with PyTorch's CPU backend when PyTorch is installed, alternating, after
checking that both frameworks compute the same losses and gradients. With
`--write-book` it writes `book/results/benchmarks.md`: the table, the
machine's core count, the NumPy, BLAS and PyTorch versions, the date and the
exact command. Run it from the repository root:

```
python benchmarks/run_all.py --write-book
```
"""

# %% [markdown]
r"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_benchmark()
    test_unit_compare()
    test_unit_primitive_counts()
    test_unit_profile_model()
    test_unit_roofline()
    test_unit_workloads()
    print("All tests of chapter 15 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. What the profiler cannot see.** Our profiler charges each backward rule
to the layer whose forward created the node, and reports the rest as the
engine. Name two kinds of work in a training step that neither row
captures (think of the optimizer step, and of memory the allocator maps
in), and describe how you would measure each with the tools of this
chapter.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_what_the_profiler_cannot_see", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** (1) The **optimizer step** and `zero_grad`: `profile_model`
runs forward, loss and backward only. SGD with momentum reads and writes each
parameter, its gradient and its momentum buffer: for the reference CNN's
about 612,000 parameters (2.4 MiB) that is a handful of passes over 2.4 MiB,
around 10–20 MB of traffic per step. Measure it with `benchmark` on a
function that calls `optimizer.step()` after a backward, or with `compare` of
a full step against the same step without `optimizer.step()`; the difference
is its cost. (2) **The allocator's page faults**: the kernel maps fresh pages
inside whichever primitive first touches a new array, so their cost is spread
invisibly over the layers' times (the CNN step took about 9,000 minor faults).
Measure the count with `benchmark`'s `faults_per_call` and the time with the
chapter's subprocess experiment, the same step with and without
`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`, alternating: the ratio is
the cost. (Also acceptable: garbage collection, data loading, the profiler's
own wrappers, Python work between layers.)

**Rubric (2 points).** 1 point for two uncaptured kinds of work with a reason
each is missing; 1 point for a concrete measurement of each with this
chapter's tools (benchmark/compare, page-fault counts, the allocator
experiment).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. A ratio you can defend.** A colleague reports "tinytorch is 1.2× slower
than PyTorch on the CNN step" from one run of each. List what could make
that number wrong by more than 20% on a shared machine, and write down the
measurement you would run instead: which harness function, how many
rounds, which statistic, and what you would report alongside the ratio.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_a_ratio_you_can_defend", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** A single run includes first-call costs (fresh pages, cold
caches, lazy initialisation), so whichever ran first pays more; the machine's
load changes between the two runs (the chapter's simulated slowdown made an
identical function look several times slower); the two use different thread
counts (PyTorch's own pool against OpenBLAS's), which on a busy 2-core machine
changes times by an order of magnitude; CPU clock changes; the allocator's
state differs (page faults depend on what the process allocated before); a
garbage collection or interrupt lands in one run. Any one of these exceeds
20%. Instead: pin both to the same thread count, check that both compute the
same loss and gradients, then
`compare({"tinytorch": tt_step, "pytorch": torch_step}, baseline="pytorch", warmup=3, repeats=30)`
(or `min_time` of tens of seconds): alternating, rotating rounds. Report the
median of the per-round ratios with its quartiles, each side's median and
IQR, the number of rounds, thread count, machine, library versions and the
exact command (what `benchmarks/run_all.py` writes).

**Rubric (2 points).** 1 point for at least three distinct error sources
(warm-up, drift in load, threads, allocator, ...); 1 point for `compare` with
warm-up, many alternating rounds, the median of paired ratios *with its
spread*, and the context reported.
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Moving a layer on the roofline.** Pick the max-pooling layer of the
reference CNN. From its row in the profile, compute how many bytes it moves
and at what rate. Which change (a different algorithm, fusion with the
ReLU before it, a different memory layout) would move its point right, and
which would move it up? What would each do to the step time, given the
layer's share of the step?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_moving_on_the_roofline", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Layer 2 (`MaxPool2d` after the first convolution) reads a
(64, 32, 30, 30) float32 input, 7.4 MB (7,200 KiB), and writes a
(64, 32, 15, 15) output, 1.8 MB. Its row says 1.84 MFLOP at about
0.08 FLOP/byte, so it moves 1.84 × 10⁶ / 0.08 ≈ 23 MB: the window copy
writes and re-reads the whole input before the max. On the run this key was
written on, its forward took 5.1 ms, so 23 MB / 5.1 ms ≈ 4.5 GB/s (0.36
GFLOP/s), a third of the measured 14.4 GB/s roof. **Right** (more FLOPs per
byte): stop copying windows (reduce over a strided view: read 7.4 MB, write
1.8 MB, about 9 MB, intensity about 0.2), or fuse the ReLU into it (ReLU
commutes with max: one read of the convolution's output instead of ReLU's
write and the pool's read, 14.8 MB less across the two). **Up** (closer to the
roof at the same intensity): a compiled kernel with less Python overhead per
call, or a layout in which each window is contiguous (channels last), so the
same bytes stream faster. Step time: the layer took about 16% of the step
(forward and backward), so even an infinitely fast pool saves at most 16%
(Amdahl); cutting its bytes by 2.5× might save about 60% of it, some 10% of
the step.

**Rubric (2 points).** 1 point for the byte count (≈ 23 MB from FLOPs ÷
intensity, or from the arrays) and the achieved rate against the roof;
1 point for a correct right/up distinction and an Amdahl-bounded effect on
the step.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Scaling the attention block.** Using the FLOP formulas of the background
and your measured shares, predict the attention layer's share of the step
at $T = 1024$ for the same width, and the memory of the $(B, h, T, T)$
arrays the graph keeps for backward. Which would you hit first on this
machine, time or memory, and which production technique addresses it?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_scaling_attention", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** With $B = 8$, $d = 128$, $h = 4$, $T = 1024$: projections
$8BTd^2 = 1.07 \times 10^9$, scores and weighted sum $4BT^2d = 4.29 \times
10^9$, MLP $16BTd^2 = 2.15 \times 10^9$ FLOPs. Attention's FLOP share is
$(1.07 + 4.29) / 7.5 \approx 71\%$ (the same formulas give 50% at
$T = 256$, as the table printed). Time shares followed FLOP shares closely at
$T = 256$ (about 47% against 50% on the run this key was written on), and
the $T^2$ part is memory-bound element-wise work, so predict about 70% or
more. One $(B, h, T, T)$ float32 array is $8 \cdot 4 \cdot 1024^2 \cdot 4$ B
= 134 MB; the graph keeps several (scores, masked scores, exponentials,
probabilities), 0.5–0.7 GB per block, 16 times the $T = 256$ figures. The
step also grows seven- to tenfold (the quadratic part ×16, the rest ×4), to
about a second. On one block, time is hit first (a second per step on this machine,
while 0.7 GB fits in memory); for a 12-layer model, memory (6–8 GB of
attention arrays alone) too. FlashAttention addresses both: it computes
attention tile by tile with an online softmax, never stores the $T \times T$
arrays, and recomputes them in backward; activation checkpointing trades
recomputation for memory more generally.

**Rubric (2 points).** 1 point for the FLOP-based share (≈ 70%) with the
numbers; 1 point for ≈ 134 MB per array (several per block), a reasoned
"time or memory first", and FlashAttention (or checkpointing) as the fix.
### END SOLUTION
"""

# %% [markdown]
r"""
## Summary

You built the instruments of performance engineering and used them on the
course's models:

* **`benchmark` and `compare`**: warm-up, repeats until enough time has been
  measured, medians and IQRs instead of means, page faults per call, and
  comparisons in alternating, rotating rounds summarised by the median of
  paired ratios. You watched the naive sequential comparison blame a busy
  machine on an innocent function.
* **`profile_model`**: per-layer forward time by wrapping each layer,
  FLOPs and bytes counted per primitive with rules the tests check against
  the textbook formulas, backward time by tagging every graph node with the
  layer that created it and timing its backward rule, the engine's share
  reported honestly as its own row, and the graph's memory.
* **`Roofline`**: this machine's peak FLOP/s and bandwidth, the ridge point,
  and each layer's place below the roof: memory-bound element-wise layers,
  compute-bound matmuls, and the gap that Python overhead and copies leave.
* **Findings, from the numbers**: the CNN's time goes to its convolutions and
  to pooling's data movement; an attention block's time shifts to the
  attention layer's own element-wise work as sequences grow; and a large
  share of a NumPy training step can be the operating system mapping memory,
  which keeping freed memory in the process removes.

Next, chapter 16 turns to deployment: packaging a trained model, serving it,
and watching it in production, where these measurements become service-level
objectives.
"""
