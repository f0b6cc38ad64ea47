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
# Kernels: where the time goes, and how to get it back

Every operation in tinytorch ends in a **kernel**: the loop, somewhere, that
touches the numbers. `a @ b` ends in a BLAS routine, `x.exp()` in one of
NumPy's vectorised loops, `conv2d` in chapter 06's window copy plus a BLAS
call. Until now we have used these kernels as they came. In this chapter we
write our own, measure them against the ones we had, and keep the winners.

Three questions decide how fast a kernel is, and each section of the chapter
turns one of them into a measurement:

1. **How much interpreted work per arithmetic operation?** A Python loop pays
   tens of nanoseconds for every multiply-add; a vectorised loop pays that
   once per call and then runs at the speed of the hardware. We measure the
   gap on matrix multiplication: three Python loops, one NumPy call per row,
   a cache-blocked version, and BLAS.
2. **How many bytes per arithmetic operation, and in what order?** A CPU can
   multiply far faster than memory can deliver numbers, so a kernel that
   reuses each number it loads wins. Blocking (working on tiles that fit in
   cache) raises that reuse; the order in which memory is walked (strides,
   C versus Fortran order, transposes) decides whether each cache line that
   arrives is used fully or mostly wasted.
3. **How many trips through memory?** A chain of operations writes every
   intermediate result to memory and reads it back. A **fused** kernel does
   the chain in one go. We fuse softmax and cross-entropy, forward and
   backward, into one primitive, measure the bytes, the memory and the time
   it saves, and install it as the kernel behind chapter 05's
   `CrossEntropyLoss`, so every model in the course trains with it from now on.

| what we build | in `tinytorch.kernels` | what it teaches |
| --- | --- | --- |
| `matmul_naive(a, b)` | three Python loops | the cost of interpreting |
| `matmul_blocked(a, b, tile)` | tiles, each one vectorised product | reuse, arithmetic intensity |
| `transpose_blocked(a, tile)` | a transposed copy, tile by tile | strides and cache lines |
| `conv2d_direct(x, w, b, stride, padding)` | convolution by shifted views, no column matrix | the memory-for-speed trade of im2col |
| `Conv2dChannelsLast`, `conv2d_channels_last(x, w, b, stride, padding)` | channels-last columns in cache-sized blocks, with its own backward | layout, blocking and workspace reuse; the kernel `nn.Conv2d` runs |
| `winograd_transform(matrix, tiles)`, `winograd_forward`, `winograd_backward` | Winograd F(4×4, 3×3) for 3×3 stride-1 layers, inside `Conv2dChannelsLast` | fewer multiplications, at a cost in passes and precision |
| `conv2d_kernel(kernel)` | a context manager: which kernel `conv2d` uses | comparing implementations |
| `BatchNormFused`, `batch_norm_fused`; `MaxPool2dTiles`, `max_pool2d_tiles` | BatchNorm in one pass each way; pooling by tiles | closed-form backward, saved statistics |
| `SoftmaxCrossEntropy`, `softmax_cross_entropy(logits, target)` | one primitive whose backward is softmax − onehot | fusion |
| `cross_entropy_kernel(kernel)` | a context manager: which kernel `cross_entropy` uses | comparing implementations |

Everything is measured while the chapter runs, on your machine. The numbers
will differ from ours (and from run to run, if the machine is shared); the
ratios and the trends are the lesson. Chapter 15 then builds the tools to
make such measurements trustworthy and to find where a whole model spends
its time.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp kernels.matmul

# %% [markdown]
r"""
**One core for everyone.** The kernels we write run on one core, so for a
fair comparison BLAS gets one core too. Its thread count is read from the
environment when NumPy loads, so this cell must run before anything imports
NumPy. (It changes only this notebook's process. Delete it to see what the
other cores add to BLAS, and, on a machine other programs are using, how much
noisier multi-threaded timings become.)
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
import numpy as np

# %%
#| export kernels.conv
import contextlib

import numpy as np

from tinytorch.nn import spatial
from tinytorch.core.function import Function
from tinytorch.core.tensor import Tensor
from tinytorch.nn.spatial import Pad2d, check_conv_args, pair, conv_output_size

# %%
#| export kernels.fused
import contextlib
import math

import numpy as np

from tinytorch.core.autograd import backward_rule
from tinytorch.core.function import Function
from tinytorch.core.tensor import Tensor
from tinytorch.nn.loss import class_indices, set_cross_entropy_kernel
from tinytorch.nn.spatial import pair

# %%
from tinytorch.nn import normalization

# %% [markdown]
r"""
The chapter's own tools: a timer (chapter 01's `best_time`, in
milliseconds), the convolution, losses and optimizer of earlier chapters to
compare against, and a look at this machine's caches. The timer reports the
*fastest* of a few runs, so a cold first call does not count. Here we ask what each kernel can do, and on a
machine shared with other programs, interference only ever adds time, so the
fastest run is the closest to the kernel's own speed. (Chapter 15 builds a
proper harness and discusses when the median is the better summary.)
"""

# %%
import time
import tracemalloc
from pathlib import Path

import matplotlib.pyplot as plt

from tinytorch.core.autograd import no_grad
from tinytorch.nn import init
from tinytorch.nn.activation import ReLU, relu
from tinytorch.nn.layers import Linear, Sequential
from tinytorch.nn.loss import CrossEntropyLoss, cross_entropy
from tinytorch.nn.normalization import BatchNorm1d, BatchNorm2d
from tinytorch.nn.spatial import Conv2d, Flatten, MaxPool2d, conv2d
from tinytorch.optim.optimizers import SGD
from tinytorch.utils.timing import best_time


def best_ms(fn, repeats: int = 5) -> float:
    """The fastest of at least `repeats` runs of fn(), in milliseconds (chapter 01's best_time)."""
    return 1000 * best_time(fn, repeats)


def peak_mib(fn) -> float:
    """Peak memory NumPy and Python allocate while fn() runs, in MiB (tracemalloc)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def cpu_caches() -> list[str]:
    """This machine's data caches as 'L1 Data 48K' lines (Linux only; [] elsewhere)."""
    lines = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            lines.append(f"L{level} {kind} {size}")
    return lines


rng = np.random.default_rng(0)
print(f"{os.cpu_count()} cores; caches of one core:", ", ".join(cpu_caches()) or "not reported on this system")

# %% [markdown]
r"""
## Background: a cost model for kernels

**Arithmetic is cheap, moving data is not.** A modern core retires several
vector multiply-adds per cycle, each on 8 or 16 float32 numbers at once, so
a single core can do tens to hundreds of GFLOP/s (billions of floating-point
operations per second). Main memory delivers a few to a few tens of GB/s per
core. At 4 bytes per float32, that is one number fetched in the time of
dozens of operations. Caches bridge the gap: small, fast memories (L1:
tens of KiB, about 1 ns away; L2: about a MiB; L3: tens of MiB; main memory:
about 100 ns away) that hold recently used data. Memory moves between them in
**cache lines** of 64 bytes: touching one float32 brings its 15 neighbours
along, for free if you use them and wasted if you do not.

**Arithmetic intensity** is the number of operations a kernel does per byte
it moves to or from memory:

$$
I = \frac{\text{FLOPs}}{\text{bytes moved}} .
$$

A kernel with low $I$ is limited by memory bandwidth, one with high $I$ by the
arithmetic units. The two examples that matter most:

* **Element-wise operations** such as `a + b` read two numbers and write one
  (12 bytes in float32) per FLOP: $I = 1/12$. They are always memory-bound;
  the only way to make them faster is to move fewer bytes, which is what
  fusion does.
* **Matrix multiplication** of two $n \times n$ matrices does $2n^3$ FLOPs (a
  multiply and an add for each of $n$ terms of each of $n^2$ outputs) on
  $3n^2$ numbers, so if every number were moved once, $I = 2n^3 / 12n^2 =
  n/6$, which grows without limit. Whether a matmul gets anywhere near that
  depends entirely on the order of its loops: a naive loop order reloads
  rows and columns from memory over and over. **Blocking** restructures the
  loops so that tiles small enough to stay in cache are reused many times
  before they are evicted.

**Interpretation** adds a third cost. A Python loop runs each `+` and `*`
through the interpreter: boxing floats into objects, looking up methods,
checking types, which costs tens of nanoseconds per operation, a thousand
times the cost of the arithmetic itself. NumPy removes that by running one
compiled loop per call; the rule of the chapter's first section is to make
each call do enough work to hide its fixed overhead of roughly a microsecond.

Chapter 15 turns the intensity idea into the *roofline* model and measures
this machine's peak FLOP/s and bandwidth. Here we watch each effect in
isolation.
"""

# %% [markdown]
r"""
## Implementation

### Matrix multiplication, three ways

**The naive kernel.** Straight from the definition
$C_{ij} = \sum_p A_{ip} B_{pj}$: three nested loops, one multiply-add per
innermost iteration. We loop in the order `i, p, j` so that the innermost
loop walks along a row of `B` and a row of `C`, consecutive in memory: the
order a C programmer would choose. (In Python the order hardly matters,
because the interpreter's overhead dwarfs any cache effect; in C it decides
everything.) We convert the arrays to Python lists first because reading a
NumPy array one element at a time is slower still: each `a[i, p]` creates a
new NumPy scalar object.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_matmul_naive", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_matmul(a: np.ndarray, b: np.ndarray, where: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"{where}: expects matrices (n, k) and (k, m), got {a.shape} and {b.shape}; "
                         "reshape the operands to 2-D with matching inner sizes")


def matmul_naive(a, b) -> np.ndarray:
    """(n, k) @ (k, m) with three Python loops, one multiply-add per iteration (a slow reference).

    Args:
        a, b: 2-D arrays (or nested lists) of shapes (n, k) and (k, m).
    Returns:
        An (n, m) array in np.result_type(a, b) (float32 in, float32 out).
    """
    # 1. np.asarray both, then _check_matmul(a, b, "matmul_naive") raises the shape error for you.
    # 2. Convert to Python lists (a.tolist()): indexing an array element by element is slower still.
    # 3. Loop in the order i, p, j: C[i][j] += A[i][p] * B[p][j], the innermost loop along a row of B and C;
    #    hoist A[i][p], B[p] and C[i] into local names outside the inner loop.
    # Pitfall: start C as n lists of m zeros (not [[0.0] * m] * n, which is one row shared n times).
    ### BEGIN SOLUTION
    a, b = np.asarray(a), np.asarray(b)
    _check_matmul(a, b, "matmul_naive")
    (n, k), m = a.shape, b.shape[1]
    A, B = a.tolist(), b.tolist()                      # Python floats: element access on arrays is slower still
    C = [[0.0] * m for _ in range(n)]
    for i in range(n):
        a_i, c_i = A[i], C[i]
        for p in range(k):
            a_ip, b_p = a_i[p], B[p]
            for j in range(m):                         # innermost: along a row of B and of C
                c_i[j] += a_ip * b_p[j]
    return np.array(C, dtype=np.result_type(a, b))
    ### END SOLUTION


# %% [markdown]
r"""
The test compares the loops with NumPy's `@` on rectangular matrices (a
square-only bug, such as swapped `n` and `m`, would pass a square case), on
a 1×1 case, and checks that mismatched shapes are refused with a message.
Python accumulates in float64 while BLAS accumulates float32 in float32, so
the comparison allows float32 rounding.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_matmul_naive", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_naive():
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 3)).astype(np.float32)
    out = matmul_naive(a, b)
    assert out.shape == (5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert matmul_naive(np.array([[2.0]]), np.array([[3.0]])).tolist() == [[6.0]]
    try:
        matmul_naive(a, a)
    except ValueError as err:
        assert "(5, 7) and (5, 7)" in str(err), err
    else:
        raise AssertionError("matmul_naive multiplied (5, 7) by (5, 7)")
    print("✓ matmul_naive equals a @ b and refuses mismatched shapes")


test_unit_matmul_naive()

# %% [markdown]
r"""
**The blocked kernel.** Split the matrices into tiles and multiply tile by
tile:

$$
C_{IJ} \mathrel{+}= A_{IP} \, B_{PJ} \qquad \text{for every tile row } I,
\text{ tile column } J, \text{ and tile step } P .
$$

Take square tiles of side $T$. Each tile product does $2T^3$ FLOPs on $3T^2$
numbers: its intensity is $T/6$, whatever the size of the matrices, and the
tiles fit in cache if $3 \cdot 4T^2$ bytes does (for $T = 64$, 48 KiB:
about an L1 cache). The loop order `I, J, P` keeps one output tile in place
while the `P` loop streams a row of `A`'s tiles and a column of `B`'s tiles
past it, so each output tile is written back once.

Each tile product here is one NumPy `@`: we write the blocking loops and
hand the tile to a vectorised micro-kernel. That is also how a real BLAS is
organised (blocking loops for each cache level around a hand-written
micro-kernel for registers), so the split is honest; what we can *measure*
with it is how the choice of tiles changes the speed.

`tile` is one size for all three loops or a triple `(tm, tn, tk)`: the
height of an output tile, its width, and the depth of each step. With
`tile=(n, m, T)` the kernel becomes a sum of $k/T$ **panel products**, a
shape we will use to dial the arithmetic intensity up and down.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_matmul_blocked", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _tile_sizes(tile) -> tuple[int, int, int]:
    sizes = (tile,) * 3 if isinstance(tile, (int, np.integer)) else tuple(tile) if isinstance(tile, (tuple, list)) else ()
    if len(sizes) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
        raise ValueError(f"tile must be a positive int or three positive ints (tm, tn, tk), got {tile!r}")
    return tuple(int(s) for s in sizes)


def matmul_blocked(a, b, tile=64) -> np.ndarray:
    """(n, k) @ (k, m) tile by tile: C[I, J] += A[I, P] @ B[P, J] over tiles of tm x tk and tk x tn.

    Args:
        a, b: 2-D arrays with a.shape[1] == b.shape[0].
        tile: one tile size for all three loops, or (tm, tn, tk). Edge tiles may be smaller.
    Returns:
        The product, in the result dtype of a and b.
    """
    # Check the shapes (_check_matmul) and the tile (_tile_sizes gives (tm, tn, tk)); allocate zeros (n, m).
    # Loop I over rows in steps of tm, J over columns in steps of tn, and P over the inner dimension in
    # steps of tk; take `block = out[I, J]` (a view) once per (I, J) and add A[I, P] @ B[P, J] into it.
    # Pitfall: slices past the end are simply shorter, so edge tiles need no special case; but the
    # result dtype must be np.result_type(a, b), not float64 by default.
    ### BEGIN SOLUTION
    a, b = np.asarray(a), np.asarray(b)
    _check_matmul(a, b, "matmul_blocked")
    tm, tn, tk = _tile_sizes(tile)
    (n, k), m = a.shape, b.shape[1]
    out = np.zeros((n, m), dtype=np.result_type(a, b))
    for i in range(0, n, tm):
        for j in range(0, m, tn):
            block = out[i:i + tm, j:j + tn]                          # a view: += writes into out
            for p in range(0, k, tk):
                block += a[i:i + tm, p:p + tk] @ b[p:p + tk, j:j + tn]   # (tm, tk) @ (tk, tn)
    return out
    ### END SOLUTION


# %% [markdown]
r"""
The test multiplies matrices whose sizes are *not* multiples of the tile, so
the edge tiles are smaller than the others (the classic place for an
off-by-one), with square tiles, rectangular tiles, panels, a tile larger than
the matrix, and float64 operands; it also checks the two errors.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_matmul_blocked", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_blocked():
    a = rng.standard_normal((37, 50))
    b = rng.standard_normal((50, 29))
    for tile in (8, 16, (5, 7, 3), (37, 29, 4), 128, 1):
        out = matmul_blocked(a, b, tile)
        assert out.shape == (37, 29) and out.dtype == np.float64, (tile, out.shape, out.dtype)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12, err_msg=f"tile={tile}")
    ### BEGIN HIDDEN TESTS
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(matmul_blocked(a32, b32, 16), a32 @ b32, rtol=1e-5, atol=1e-5)
    ### END HIDDEN TESTS
    for bad_args, expected in [((a, a), "(37, 50) and (37, 50)"), ((a, b, 0), "tile must be"),
                               ((a, b, (4, 4)), "tile must be")]:
        try:
            matmul_blocked(*bad_args)
        except ValueError as err:
            assert expected in str(err), err
        else:
            raise AssertionError(f"matmul_blocked accepted {expected!r}")
    print("✓ matmul_blocked equals a @ b for edge tiles, rectangles, panels and float64")


test_unit_matmul_blocked()

# %% [markdown]
r"""
### Memory layout: strides, C order and Fortran order

A 2-D array is one block of memory plus a rule for finding element
`[i, j]`: start at the first byte and step `i * strides[0] + j * strides[1]`
bytes. **C order** (row-major, NumPy's default) lays rows one after another:
stepping along a row moves 4 bytes (float32), stepping down a column moves a
whole row. **Fortran order** (column-major, used by BLAS's reference
interface, MATLAB and R) lays columns one after another. A transpose
changes nothing in memory: it swaps the strides, so the transpose of a
C-order array *is* a Fortran-order array. Chapter 02's
`Tensor.stride()` reports the same steps in elements, as PyTorch does.
"""

# %%
m = np.arange(12, dtype=np.float32).reshape(3, 4)
for label, array in [("C order", m), ("Fortran order", np.asfortranarray(m)), ("transpose of C (a view)", m.T)]:
    print(f"{label:>24}: shape {array.shape}, strides {array.strides} bytes, "
          f"C-contiguous {array.flags['C_CONTIGUOUS']}, F-contiguous {array.flags['F_CONTIGUOUS']}")
print("Tensor.stride() counts elements:", Tensor(m).stride(), Tensor(m).T.stride(),
      "| T is contiguous:", Tensor(m).T.is_contiguous())

# %% [markdown]
r"""
Why it matters: a loop that walks memory with stride 4 bytes uses all 16
floats of every cache line it loads; one that walks with a stride of a row
(here 16 bytes, but 8 KiB for a 2048-wide float32 matrix) uses one float per
line and, for long strides, needs a new page-table entry (TLB entry) for
almost every access. The systems section measures both.

The classic case is the **transposed copy**, `a.T.copy()`: it writes the
output row by row (contiguous) but must read the input column by column
(strided). A blocked transpose copies one square tile at a time: a 64×64
float32 tile is 16 KiB of input and 16 KiB of output, both of which stay in
L1 while the tile is copied, so every cache line that is loaded is used
completely before it is evicted.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_transpose_blocked", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def transpose_blocked(a, tile: int = 64) -> np.ndarray:
    """A C-contiguous copy of the transpose of a 2-D array, written one tile x tile block at a time.

    Args:
        a: a 2-D array (n, m), possibly a strided view; tile: a positive int.
    Returns:
        A new C-contiguous (m, n) array of a's dtype, equal to a.T.
    """
    # Refuse a non-2-D array and a tile that is not a positive int with a ValueError.
    # Allocate out = np.empty((m, n)), then for every tile corner (i, j): out[j:j+tile, i:i+tile] = a[i:i+tile, j:j+tile].T.
    # Pitfall: the tile's source rows i.. become the destination's columns i..: swap the slices, not just .T.
    ### BEGIN SOLUTION
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"transpose_blocked: expects a 2-D array, got shape {a.shape}")
    if not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"transpose_blocked: tile must be a positive int, got {tile!r}")
    n, m = a.shape
    out = np.empty((m, n), dtype=a.dtype)
    for i in range(0, n, tile):
        for j in range(0, m, tile):
            out[j:j + tile, i:i + tile] = a[i:i + tile, j:j + tile].T   # both tiles stay in cache
    return out
    ### END SOLUTION


# %% [markdown]
r"""
The test checks values and layout on a rectangular array whose sides are not
multiples of the tile, and that the input may itself be a strided view (the
function must not assume its input is contiguous).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_transpose_blocked", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_transpose_blocked():
    a = rng.standard_normal((70, 45)).astype(np.float32)
    for tile in (1, 16, 64, 100):
        out = transpose_blocked(a, tile)
        assert out.shape == (45, 70) and out.flags["C_CONTIGUOUS"] and out.dtype == np.float32
        np.testing.assert_array_equal(out, a.T)
    view = a[::2, 1::3]
    np.testing.assert_array_equal(transpose_blocked(view, 8), view.T)
    try:
        transpose_blocked(np.zeros((2, 3, 4)))
    except ValueError as err:
        assert "2-D" in str(err)
    else:
        raise AssertionError("transpose_blocked accepted a 3-D array")
    print("✓ transpose_blocked equals a.T, contiguous, for any tile and strided inputs")


test_unit_transpose_blocked()

# %% [markdown]
r"""
### Convolution without the column matrix

Chapter 06 computes a convolution as **im2col**: copy every window into a
column of a matrix of shape $(C k_h k_w,\; N\,OH\,OW)$, then do one big
matrix multiply. The copy holds every input pixel about $k_h k_w$ times.
There is another way to organise the same sum. Write the convolution as a sum
over the kernel's taps $(i, j)$:

$$
\text{out}[:, n, y, x] = \sum_{i, j} W[:, :, i, j] \; \cdot \; \text{in}[:, n,\; y s_h + i,\; x s_w + j] .
$$

For a fixed tap, the right-hand side is the $(O, C)$ matrix $W[:, :, i, j]$
times the input *shifted* by $(i, j)$, sampled with the stride: a view of the
input, shape $(C, N, OH, OW)$. So the convolution is $k_h k_w$ matrix
multiplies of $(O, C) \times (C, N\,OH\,OW)$, summed. This is a **direct**
(or "shift-and-add") convolution. It never builds the column matrix; it
copies one shifted view at a time (the reshape to a matrix must copy a
strided view) and adds into the output.

What it trades: $k_h k_w$ smaller multiplies instead of one big one, each
with an inner dimension of only $C$ (for the first layer of a CNN, $C = 3$:
a dot product three numbers long, far too short to keep vector units busy),
and $k_h k_w$ additions of output-sized arrays. We build it only from
primitives (`Pad2d`, views, `reshape`, `@`, `+`), so it is differentiable
without a new backward rule, and the systems section measures who wins.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_conv2d_direct", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.conv
def conv2d_direct(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """conv2d as a sum over kernel taps of (O, C) @ shifted input views: no im2col column matrix.

    Same arguments, result and layout as tinytorch.nn.spatial.conv2d: input (N, C, H, W) or
    (C, H, W), weight (O, C, kh, kw), bias (O,) or None; returns (N, O, OH, OW).
    """
    # 1. A (C, H, W) input: call yourself on input.unsqueeze(0) and return [0]. Normalise stride and
    #    padding with pair, check with check_conv_args, and get OH, OW from conv_output_size.
    # 2. Pad with Pad2d.apply(input, padding=...) if needed; permute to (C, N, Hp, Wp) (a view).
    # 3. For each tap (i, j): slice rows i :: sh and columns j :: sw (OH and OW of them) -> (C, N, OH, OW);
    #    add weight[:, :, i, j] @ tap.reshape(C, N * OH * OW) into a running sum of shape (O, N*OH*OW).
    # 4. Add bias.reshape(O, 1); return out.reshape(O, N, OH, OW).permute(1, 0, 2, 3).
    # Pitfall: use Tensor operations only (no .data), so chapter 09 differentiates it with no new rule.
    ### BEGIN SOLUTION
    if input.ndim == 3:                                             # one image: add and drop a batch axis
        return conv2d_direct(input.unsqueeze(0), weight, bias, stride, padding)[0]
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    check_conv_args(input, weight, bias, stride, padding)
    (N, C, H, W), (O, _, kh, kw) = input.shape, weight.shape
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    x = Pad2d.apply(input, padding=padding) if ph or pw else input
    x = x.permute(1, 0, 2, 3)                                       # (C, N, Hp, Wp), a view
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = x[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]   # (C, N, OH, OW), a view
            term = weight[:, :, i, j] @ tap.reshape(C, N * OH * OW)               # (O, C) @ (C, N*OH*OW)
            out = term if out is None else out + term
    if bias is not None:
        out = out + bias.reshape(O, 1)                              # one bias per output channel
    return out.reshape(O, N, OH, OW).permute(1, 0, 2, 3)            # (N, O, OH, OW), a view, as conv2d
    ### END SOLUTION


# %% [markdown]
r"""
The test compares `conv2d_direct` with chapter 06's `conv2d` (itself tested
against the loop formula) for stride, padding, rectangular kernels, no bias
and a single unbatched image, then compares the *gradients* of input, weight
and bias through chapter 09's backward: two different graphs of primitives
must give the same derivatives.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_conv2d_direct", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_direct():
    cases = [((2, 3, 8, 8), (4, 3, 3), 1, 0, True), ((2, 3, 8, 8), (4, 3, 3), 1, 1, True),
             ((1, 2, 9, 7), (3, 3, 2), 2, 1, True), ((3, 1, 6, 6), (2, 1, 1), (2, 1), (0, 2), False)]
    for shape, (O, kh, kw), stride, padding, has_bias in cases:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((O, shape[1], kh, kw))
        b = rng.standard_normal(O) if has_bias else None
        grads = []
        for conv in (conv2d, conv2d_direct):
            xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
            bt = Tensor(b, requires_grad=True) if has_bias else None
            out = conv(xt, wt, bt, stride, padding)
            (out * Tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum().backward()
            grads.append([out.data, xt.grad.data, wt.grad.data] + ([bt.grad.data] if has_bias else []))
        for mine, reference, what in zip(grads[1], grads[0], ["output", "input grad", "weight grad", "bias grad"]):
            np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-10, err_msg=f"{what}, case {shape}")
    single = conv2d_direct(Tensor(x[0]), Tensor(w), None, stride, padding)
    np.testing.assert_allclose(single.data, conv2d(Tensor(x[0]), Tensor(w), None, stride, padding).data, atol=1e-12)
    print("✓ conv2d_direct equals im2col conv2d, forward and all three gradients")


test_unit_conv2d_direct()

# %% [markdown]
r"""
### Convolution, fast: channels-last columns, a few images at a time

The two convolutions above both move far more memory than arithmetic needs.
A training step runs three large products per convolution (the forward, the
weight gradient, the input gradient), and NumPy's BLAS does each as fast as
PyTorch's, so what is left to win is the memory traffic around them. Four
changes, each measured in the systems section, make the kernel the package
uses:

1. **Channels last.** Store activations as $(N, H, W, C)$. A window's
   $k_w \cdot C$ numbers of one kernel row are then contiguous, so the column
   matrix $(N\,OH\,OW,\; k_h k_w C)$ is built by one strided copy of long
   runs. The product writes $(N\,OH\,OW, O)$, which *is* the next layer's
   channels-last input; we hand it on as an $(N, O, OH, OW)$ view, so the
   rest of the framework sees the usual shape, and element-wise layers in
   between (BatchNorm, ReLU) keep the layout.
2. **Blocks that fit in cache.** Build the columns for a few images at a time
   (about 512 rows, around a MiB: with the block's output, within one
   core's L2 cache) and multiply that block at once: the copy is still in
   cache when BLAS reads it, instead of being written out to memory whole
   and read back.
3. **No col2im for "same" convolutions.** The input gradient of a stride-1
   convolution is itself a convolution: of the output gradient padded by
   $k - 1 - p$, with the filters flipped and their input and output channels
   swapped. With "same" padding ($p = (k - 1)/2$, every layer of the CIFAR-10
   example) it has as many multiply-adds as col2im's product, and is built
   from columns the same way: each input pixel's gradient is one dot product
   instead of $k_h k_w$ scattered additions. (Other paddings and strides, and
   layers with fewer than 16 input channels, whose product would be too
   narrow for BLAS, keep col2im, done per block.)
4. **Reused workspace.** The column blocks live in buffers kept between
   calls, so a training step does not ask the operating system for fresh
   pages (page faults) every time.

It is one primitive with its own backward, like the fused loss below, so the
engine runs one node for the whole convolution. `conv2d_channels_last` has
chapter 06's arguments, checks and result, and the package installs it
behind `conv2d` (and so `nn.Conv2d`) with `set_conv2d_kernel`;
`conv2d_kernel(None)` switches back to chapter 06's version inside a block,
which is how this chapter compares the two.
"""


# %%
#| export kernels.conv
# Rows of the column matrix built per block: 512 rows of a 3x3, 32-channel layer are 0.6 MB (of its
# input gradient's 64-channel columns, 1.2 MB), which with the block's output fits in one core's L2
# cache (2 MB here): the copy is still in cache when BLAS reads it. (On the benchmark's layer 512
# measured fastest of 256, 512, 1024 and 2048, forward and input gradient alike.)
BLOCK_ROWS = 512
_workspace: dict = {}


def workspace_buffer(name: str, shape: tuple, dtype) -> np.ndarray:
    """A scratch array kept between calls (one per name): no fresh allocation, so no page faults, each step."""
    size = int(np.prod(shape))
    buffer = _workspace.get(name)
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        buffer = _workspace[name] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


def _windows(padded: np.ndarray, kernel_size, stride, out_size) -> np.ndarray:
    """Every window of a channels-last (N, Hp, Wp, C) array as a view (N, OH, OW, kh, kw, C): no copy."""
    (kh, kw), (sh, sw), (OH, OW) = kernel_size, stride, out_size
    sn, sy, sx, sc = padded.strides
    return np.lib.stride_tricks.as_strided(padded, (padded.shape[0], OH, OW, kh, kw, padded.shape[3]),
                                           (sn, sh * sy, sw * sx, sy, sx, sc), writeable=False)


def _blocked_product(windows: np.ndarray, matrix: np.ndarray, out: np.ndarray, name: str, bias=None) -> None:
    """out[n, y, x] = windows[n, y, x] (flattened) @ matrix (+ bias), a few images at a time (in cache)."""
    N, OH, OW = windows.shape[:3]
    per = max(1, BLOCK_ROWS // (OH * OW))                            # images per block
    columns = workspace_buffer(name, (min(per, N),) + windows.shape[1:], windows.dtype)
    for start in range(0, N, per):
        block = columns[:min(per, N - start)]
        np.copyto(block, windows[start:start + per])               # the column block: one strided copy
        result = out[start:start + per].reshape(-1, matrix.shape[1])
        np.matmul(block.reshape(-1, matrix.shape[0]), matrix, out=result)
        if bias is not None:
            result += bias                                         # while the block is still in cache


# %% [markdown]
r"""
### Fewer multiplications: Winograd's F(4×4, 3×3)

Blocking and layout remove the copies around the three products; what is
left is the products themselves, and BLAS already runs them at full speed.
The one way past that is to do fewer multiplications. For a 3-tap filter
$g$ and 6 inputs $d$, four outputs of a 1-D convolution need $4 \cdot 3 = 12$
multiplications done directly. Winograd's minimal filtering algorithm
$F(4, 3)$ needs 6:

$$
y = A^\top \big[ (G g) \odot (B^\top d) \big],
$$

with small constant matrices $B^\top$ (6×6), $G$ (6×3) and $A^\top$ (4×6):
transform the filter and the input tile, multiply the six pairs, transform
back. Nesting it in both directions gives $F(4{\times}4, 3{\times}3)$: a
$6 \times 6$ input tile, $36$ products for a $4 \times 4$ output tile where
the direct form needs $16 \cdot 9 = 144$, four times fewer:

$$
Y = A^\top \big[ (G\, g\, G^\top) \odot (B^\top d\, B) \big] A .
$$

For a layer with many channels, the sum over input channels moves inside
the bracket (everything outside it is linear), so for each of the 36 tile
positions $\xi$ the products of all tiles and all channels are one matrix
product: $M_\xi = V_\xi U_\xi$, with $V_\xi$ the transformed input tiles
$(\text{tiles}, C)$ and $U_\xi$ the transformed filters $(C, O)$. Thirty-six
BLAS products with inner dimension $C$ replace im2col's one with inner
dimension $9C$, and the transforms $B^\top d B$ and $A^\top M A$ are each two
matrix products too (`winograd_transform` below, over a block of tiles at
once). Both gradients follow from the same identity, since every step is
linear: the output gradient, transformed by $A$, meets $V$ for the weight
gradient and $U$ for the input gradient, whose tiles (which overlap by two
pixels, as the input tiles do) are added back onto the image.

Two costs come with it. The transforms are extra passes over memory, which
pay only when the products are large, so the kernel uses Winograd for 3×3,
stride-1 layers with at least 16 input and output channels whose output
fills its 4×4 tiles (the tiles may cover at most 1.3 times the output, the
rest computed and thrown away), and keeps the blocked columns elsewhere (the first layer of a CNN,
with 3 input channels, is all transform and no product; a 13×13 output
needs 16×16 of tiles, half again the work). And the transforms' coefficients (up to
8, and fractions down to 1/24) cost some float32 precision: the test below
measures how much.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_winograd_transform", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.conv
# F(4x4, 3x3) (Lavin and Gray, 2016): a 6x6 input tile and a 3x3 filter give a 4x4 output tile.
# (Written as tuples: the package builds no arrays when it is imported; winograd_matrices() does.)
WINOGRAD_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
               (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
WINOGRAD_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
              (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
WINOGRAD_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MAX_WASTE = 1.3          # tiles may cover at most 1.3x the output (a 13x13 output needs 16x16: 1.5x)
WINOGRAD_BLOCK_TILES = 64


def winograd_transform(matrix: np.ndarray, tiles: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """matrix @ tile @ matrix.T for every tile at once: tiles (a, a, ...) -> (m, m, ...) for an (m, a) matrix.

    The tile's two axes come first and everything else (tiles, channels) is flattened behind them,
    so each side of the sandwich is one matrix product over the whole block.
    """
    # 1. a = tiles.shape[0]; m = matrix.shape[0]; the rest of the shape is rest = tiles.shape[2:].
    # 2. Rows: first = matrix @ tiles.reshape(a, -1), an (m, a * K) product for K = prod(rest).
    # 3. Columns: np.matmul(matrix, first.reshape(m, a, -1)) multiplies each of the m slabs (a, K)
    #    by the matrix from the left: that is the multiplication by matrix.T on the tile's second axis.
    # 4. Write the columns' product into `out` when it is given (a reused buffer), else into a new array.
    # Pitfall: cast the matrix to the tiles' dtype, or float64 constants turn float32 data into float64.
    ### BEGIN SOLUTION
    a, m = tiles.shape[0], matrix.shape[0]
    matrix = matrix.astype(tiles.dtype, copy=False)
    first = workspace_buffer("winograd rows", (m, tiles[0].size), tiles.dtype)
    np.matmul(matrix, tiles.reshape(a, -1), out=first)                      # transform the tile's rows
    result = np.empty((m, m) + tiles.shape[2:], dtype=tiles.dtype) if out is None else out
    np.matmul(matrix, first.reshape(m, a, -1), out=result.reshape(m, m, -1))   # then its columns
    return result
    ### END SOLUTION


def winograd_matrices(dtype=np.float64) -> tuple:
    """(B^T, G, A^T) of F(4x4, 3x3) as arrays: 6x6, 6x3 and 4x6."""
    return tuple(np.array(m, dtype=dtype) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT))


def _winograd_sizes(shape: tuple, padding) -> tuple:
    """Output size and 4x4 tiles per image of a 3x3 stride-1 convolution of an (N, C, H, W) input."""
    (N, C, H, W), (ph, pw) = shape, padding
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    return OH, OW, -(-OH // 4), -(-OW // 4)


def winograd_forward(ctx, x, weight, bias, padding) -> np.ndarray:
    """Conv2dChannelsLast's forward for 3x3, stride 1: Winograd F(4x4, 3x3), block by block; (N, OH, OW, O)."""
    (N, C, H, W), O, (ph, pw) = x.shape, weight.shape[0], padding
    OH, OW, TH, TW = _winograd_sizes(x.shape, padding)
    dtype = np.result_type(x.dtype, weight.dtype)
    BT, G, AT = winograd_matrices(dtype)
    padded = workspace_buffer("winograd input", (N, 4 * TH + 2, 4 * TW + 2, C), dtype)   # not kept: V is
    padded[:, :ph], padded[:, ph + H:], padded[:, :, :pw], padded[:, :, pw + W:] = 0, 0, 0, 0   # zero border
    padded[:, ph:ph + H, pw:pw + W] = x.transpose(0, 2, 3, 1)
    U = winograd_transform(G, weight.transpose(2, 3, 1, 0).astype(dtype)).reshape(36, C, O)
    sn, sy, sx, sc = padded.strides                                          # 6x6 tiles every 4 pixels
    tiles = np.lib.stride_tricks.as_strided(padded, (6, 6, N, TH, TW, C), (sy, sx, sn, 4 * sy, 4 * sx, sc),
                                            writeable=False)
    out = np.empty((N, 4 * TH, 4 * TW, O), dtype=dtype)
    per = max(1, WINOGRAD_BLOCK_TILES // (TH * TW))                         # images per block
    saved, keep = [], Function.grad_enabled and any(ctx.needs_input_grad)  # will backward run?
    for start in range(0, N, per):
        n = min(per, N - start)
        block = workspace_buffer("winograd tiles", (6, 6, n, TH, TW, C), dtype)
        np.copyto(block, tiles[:, :, start:start + n])
        V = winograd_transform(BT, block, None if keep else workspace_buffer(
            "winograd inputs", (6, 6, n, TH, TW, C), dtype)).reshape(36, n * TH * TW, C)   # kept for backward
        M = workspace_buffer("winograd products", (36, n * TH * TW, O), dtype)
        np.matmul(V, U, out=M)                                             # 36 products (tiles, C) @ (C, O)
        Y = winograd_transform(AT, M.reshape(6, 6, n, TH, TW, O),
                               workspace_buffer("winograd outputs", (4, 4, n, TH, TW, O), dtype))
        target, Y = out[start:start + n].reshape(n, TH, 4, TW, 4, O), Y.transpose(2, 3, 0, 4, 1, 5)
        if bias is None:
            np.copyto(target, Y)                                           # the 4x4 tiles into the image
        else:
            np.add(Y, bias, out=target)                                    # ... with the bias, in one pass
        saved.append(V)
    ctx.save_for_backward(U, *saved)
    ctx.images_per_block = per
    return out[:, :OH, :OW]


def winograd_backward(ctx, g: np.ndarray) -> list:
    """Conv2dChannelsLast's backward for winograd_forward: [dx, dweight] from g (N, OH, OW, O) channels-last."""
    U, *saved = ctx.saved_arrays
    (N, C, H, W), (ph, pw), per = ctx.input_shape, ctx.padding, ctx.images_per_block
    OH, OW, TH, TW = _winograd_sizes(ctx.input_shape, ctx.padding)
    O, dtype = U.shape[2], U.dtype
    BT, G, AT = winograd_matrices(dtype)
    if (OH, OW) != (4 * TH, 4 * TW):                                        # whole tiles: pad g with zeros
        whole = np.zeros((N, 4 * TH, 4 * TW, O), dtype=dtype)
        whole[:, :OH, :OW] = g
        g = whole
    dU = np.zeros((36, C, O), dtype=dtype) if ctx.needs_input_grad[1] else None
    d_padded = np.zeros((N, 4 * TH + 4, 4 * TW + 4, C), dtype=dtype) if ctx.needs_input_grad[0] else None
    for start, V in zip(range(0, N, per), saved):
        n = min(per, N - start)
        gy = workspace_buffer("winograd tiles", (4, 4, n, TH, TW, O), dtype)
        np.copyto(gy, g[start:start + n].reshape(n, TH, 4, TW, 4, O).transpose(2, 4, 0, 1, 3, 5))
        dM = winograd_transform(AT.T, gy, workspace_buffer("winograd products", (6, 6, n, TH, TW, O),
                                                                   dtype)).reshape(36, n * TH * TW, O)
        if dU is not None:
            dU += np.matmul(V.transpose(0, 2, 1), dM)                       # 36 products (C, tiles) @ (tiles, O)
        if d_padded is not None:
            dV = np.matmul(dM, U.transpose(0, 2, 1))                        # 36 products (tiles, O) @ (O, C)
            dD = winograd_transform(BT.T, dV.reshape(6, 6, n, TH, TW, C),
                                    workspace_buffer("winograd outputs", (6, 6, n, TH, TW, C), dtype))
            tile = dD.transpose(2, 3, 0, 4, 1, 5)                           # (n, TH, 6, TW, 6, C)
            image = d_padded[start:start + n].reshape(n, TH + 1, 4, TW + 1, 4, C)
            image[:, :TH, :, :TW] += tile[:, :, :4, :, :4]                  # tiles overlap by two pixels:
            image[:, 1:, :2, :TW] += tile[:, :, 4:, :, :4]                  # a tile's last two rows and
            image[:, :TH, :, 1:, :2] += tile[:, :, :4, :, 4:]               # columns are the first two
            image[:, 1:, :2, 1:, :2] += tile[:, :, 4:, :, 4:]               # of the next tile's
    dx = None if d_padded is None else d_padded[:, ph:ph + H, pw:pw + W].transpose(0, 3, 1, 2)
    dweight = None if dU is None else winograd_transform(G.T, dU.reshape(6, 6, C, O)).transpose(3, 2, 0, 1)
    return [dx, dweight]

# %% [markdown]
r"""
The identity at work in one dimension: four outputs of a 3-tap filter on six
inputs, directly and through the transforms.
"""

# %%
B_t, G, A_t = winograd_matrices()
inputs_1d, taps_1d = rng.standard_normal(6), rng.standard_normal(3)
direct_1d = np.array([inputs_1d[i:i + 3] @ taps_1d for i in range(4)])     # 4 x 3 = 12 multiplications
winograd_1d = A_t @ ((G @ taps_1d) * (B_t @ inputs_1d))                     # 6, once G @ taps is known
print("direct:  ", np.round(direct_1d, 6), "\nWinograd:", np.round(winograd_1d, 6))
assert np.allclose(direct_1d, winograd_1d), "F(4, 3) must reproduce the direct convolution"

# %% [markdown]
r"""
The primitive itself builds on both: for a 3×3, stride-1 layer with at least
16 input and output channels that fills its tiles it runs Winograd forward
and backward, for any other layer the blocked columns. (While `winograd_transform` is still a stub
it raises `NotImplementedError`, and the primitive uses the blocked columns
for every layer.)
"""


# %% nbgrader={"grade": false, "grade_id": "impl_conv2d_channels_last", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.conv
class Conv2dChannelsLast(Function):
    """conv2d as one primitive: channels-last columns built and multiplied block by block, forward and backward.

    Inputs x (N, C, H, W) in any memory layout, weight (O, C, kh, kw) and optionally bias (O,);
    the output (N, O, OH, OW) is a view of channels-last (N, OH, OW, O) memory, which the next
    layer's channels-last copy reads contiguously. The option winograd says which 3x3, stride-1
    layers run Winograd F(4x4, 3x3) instead: None, those where it pays (WINOGRAD_MIN_CHANNELS
    channels in and out, tiles covering at most WINOGRAD_MAX_WASTE times the output); True, all;
    False, none.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0), winograd=None):
        (N, C, H, W), (O, _, kh, kw) = x.shape, weight.shape
        ctx.stride, ctx.padding, ctx.input_shape, ctx.kernel_size = stride, padding, x.shape, (kh, kw)
        ctx.winograd = winograd is not False and (kh, kw, *stride) == (3, 3, 1, 1)
        if ctx.winograd and winograd is None:                               # where it pays: many channels, and
            OH, OW, TH, TW = _winograd_sizes(x.shape, padding)              # an output that fills its tiles
            ctx.winograd = min(C, O) >= WINOGRAD_MIN_CHANNELS and 16 * TH * TW <= WINOGRAD_MAX_WASTE * OH * OW
        if ctx.winograd:
            try:
                return winograd_forward(ctx, x, weight, bias, padding).transpose(0, 3, 1, 2)
            except NotImplementedError:                                     # winograd_transform is a stub
                ctx.winograd = False
        (sh, sw), (ph, pw) = stride, padding
        OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        dtype = np.result_type(x.dtype, weight.dtype)
        padded = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=dtype)       # (N, Hp, Wp, C)
        padded[:, ph:ph + H, pw:pw + W] = x.transpose(0, 2, 3, 1)          # free to read if x is channels-last
        matrix = weight.transpose(2, 3, 1, 0).reshape(kh * kw * C, O).astype(dtype)   # rows in (i, j, c) order
        out = np.empty((N, OH, OW, O), dtype=dtype)
        _blocked_product(_windows(padded, (kh, kw), stride, (OH, OW)), matrix, out, "columns", bias)
        ctx.save_for_backward(padded, matrix)
        return out.transpose(0, 3, 1, 2)                                    # (N, O, OH, OW), a view

    @staticmethod
    def backward(ctx, grad):
        if ctx.winograd:
            g = grad.transpose(0, 2, 3, 1).astype(ctx.saved_arrays[0].dtype, copy=False)   # (N, OH, OW, O) view
            bias_grad = [g.sum(axis=(0, 1, 2))] if len(ctx.inputs) == 3 else []
            return tuple(winograd_backward(ctx, g) + bias_grad)
        padded, matrix = ctx.saved_arrays
        (N, C, H, W), (kh, kw) = ctx.input_shape, ctx.kernel_size
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        OH, OW, O = grad.shape[2], grad.shape[3], grad.shape[1]
        g = np.ascontiguousarray(grad.transpose(0, 2, 3, 1), dtype=padded.dtype)   # (N, OH, OW, O)
        grads = [None, None] + ([g.sum(axis=(0, 1, 2))] if len(ctx.inputs) == 3 else [])
        if ctx.needs_input_grad[1]:                                         # dW = columns^T @ g, block by block
            windows = _windows(padded, (kh, kw), (sh, sw), (OH, OW))
            per = max(1, BLOCK_ROWS // (OH * OW))
            columns = workspace_buffer("columns", (min(per, N),) + windows.shape[1:], padded.dtype)
            dmatrix = np.zeros_like(matrix)
            for start in range(0, N, per):
                block = columns[:min(per, N - start)]
                np.copyto(block, windows[start:start + per])
                dmatrix += block.reshape(-1, matrix.shape[0]).T @ g[start:start + per].reshape(-1, O)
            grads[1] = dmatrix.reshape(kh, kw, C, O).transpose(3, 2, 0, 1)  # (O, C, kh, kw)
        if ctx.needs_input_grad[0]:
            grads[0] = _conv2d_input_grad(g, matrix, ctx.input_shape, (kh, kw), (sh, sw), (ph, pw))
        return tuple(grads)


def _conv2d_input_grad(g, matrix, input_shape, kernel_size, stride, padding) -> np.ndarray:
    """dL/dx (N, C, H, W) from the channels-last output gradient g (N, OH, OW, O)."""
    (N, C, H, W), (kh, kw), (sh, sw), (ph, pw) = input_shape, kernel_size, stride, padding
    OH, OW, O = g.shape[1:]
    if (sh, sw) == (1, 1) and (2 * ph, 2 * pw) == (kh - 1, kw - 1) and C >= 16:
        # Stride 1, "same" padding: the input gradient is itself a convolution, of g padded by
        # k - 1 - p with the filters flipped and their in/out channels swapped, with as many
        # multiply-adds as col2im's product. Its columns are built the same way, so there is no
        # scatter: each input pixel's gradient is one dot product. (With less padding the padded g
        # is larger than the input and costs more than it saves; with few input channels the
        # product is only C columns wide, which BLAS runs far below its speed: col2im then.)
        qh, qw = kh - 1 - ph, kw - 1 - pw
        g_padded = np.zeros((N, H + kh - 1, W + kw - 1, O), dtype=g.dtype)
        g_padded[:, qh:qh + OH, qw:qw + OW] = g
        flipped = matrix.reshape(kh, kw, C, O)[::-1, ::-1].transpose(0, 1, 3, 2).reshape(kh * kw * O, C)
        dx = np.empty((N, H, W, C), dtype=g.dtype)
        _blocked_product(_windows(g_padded, (kh, kw), (1, 1), (H, W)), np.ascontiguousarray(flipped), dx, "grad columns")
        return dx.transpose(0, 3, 1, 2)                                     # (N, C, H, W), a view
    # Any stride: the columns' gradient g @ matrix^T, added back onto the pixels (col2im), block by block.
    d_padded = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=g.dtype)
    per = max(1, BLOCK_ROWS // (OH * OW))
    for start in range(0, N, per):
        d_columns = (g[start:start + per].reshape(-1, O) @ matrix.T).reshape(-1, OH, OW, kh, kw, C)
        target = d_padded[start:start + per]
        for i in range(kh):
            for j in range(kw):
                target[:, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw] += d_columns[:, :, :, i, j]
    return d_padded[:, ph:ph + H, pw:pw + W].transpose(0, 3, 1, 2)


def conv2d_channels_last(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                         winograd: bool | None = None) -> Tensor:
    """conv2d with the same arguments, checks and result as chapter 06's, computed by Conv2dChannelsLast.

    winograd: None runs Winograd on the 3x3, stride-1 layers where it pays; True on every 3x3,
    stride-1 layer; False on none (the blocked columns everywhere, to compare the two).
    """
    # 1. A (C, H, W) input: call yourself on input.unsqueeze(0) and return [0] of the result.
    # 2. Make stride and padding pairs with pair, then check everything with chapter 06's check_conv_args.
    # 3. Return Conv2dChannelsLast.apply(input, weight, bias, stride=..., padding=..., winograd=...), leaving
    #    bias out of the inputs when it is None (the primitive returns one gradient per input it was given).
    ### BEGIN SOLUTION
    if input.ndim == 3:                                                     # one image: add and drop a batch axis
        return conv2d_channels_last(input.unsqueeze(0), weight, bias, stride, padding, winograd)[0]
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    check_conv_args(input, weight, bias, stride, padding)
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return Conv2dChannelsLast.apply(*inputs, stride=stride, padding=padding, winograd=winograd)
    ### END SOLUTION


@contextlib.contextmanager
def conv2d_kernel(kernel):
    """Within the block, conv2d computes with `kernel` (None: chapter 06's Im2col and one matmul)."""
    previous = spatial.set_conv2d_kernel(kernel)
    try:
        yield
    finally:
        spatial.set_conv2d_kernel(previous)


# %% [markdown]
r"""
The test compares the fast kernel with chapter 06's im2col version, in
float64, for every path through it: stride 1 with "same" padding and 16
input channels (the flipped-filter input gradient), stride 1 with other
paddings, stride 2 and a rectangular kernel (col2im), Winograd where it
pays (16 or more channels in and out, outputs that fill their tiles) and
forced with `winograd=True` (image sizes that are not multiples of the 4×4
tile, few channels, paddings 0, 1 and 2), no bias, a single image, and an input in channels-last
memory (the output of another fast convolution). Outputs and all three
gradients must agree to rounding. Then Winograd's float32 error: against
float64, next to the blocked columns' own.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_conv2d_channels_last", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_channels_last():
    cases = [((2, 3, 8, 8), (4, 3, 3), 1, 1, True), ((2, 3, 8, 8), (4, 3, 3), 1, 0, True),
             ((1, 2, 9, 7), (3, 3, 2), 2, 1, True), ((3, 1, 6, 6), (2, 1, 1), (2, 1), (0, 2), False),
             ((2, 5, 6, 5), (3, 3, 3), 1, 2, True), ((2, 16, 5, 6), (4, 3, 3), 1, 1, True),
             ((2, 16, 8, 8), (16, 3, 3), 1, 1, True), ((1, 17, 10, 6), (20, 3, 3), 1, 0, False)]
    winograd_cases = []
    for shape, (O, kh, kw), stride, padding, has_bias in cases:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((O, shape[1], kh, kw))
        b = rng.standard_normal(O) if has_bias else None
        grads = []
        for kernel in (None, conv2d_channels_last):
            xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
            bt = Tensor(b, requires_grad=True) if has_bias else None
            with conv2d_kernel(kernel):
                out = conv2d(xt, wt, bt, stride, padding)
            (out * Tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum().backward()
            grads.append([out.data, xt.grad.data, wt.grad.data] + ([bt.grad.data] if has_bias else []))
        winograd_cases += [shape] if out._ctx.winograd else []
        for mine, reference, what in zip(grads[1], grads[0], ["output", "input grad", "weight grad", "bias grad"]):
            np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-10, err_msg=f"{what}, case {shape}")
    assert winograd_cases == [(2, 16, 8, 8), (1, 17, 10, 6)], winograd_cases
    for shape, O, padding in [((2, 3, 7, 9), 5, 1), ((1, 2, 6, 5), 4, 0), ((3, 4, 4, 4), 2, 2)]:
        x, w, b = rng.standard_normal(shape), rng.standard_normal((O, shape[1], 3, 3)), rng.standard_normal(O)
        results = []
        for forced in (False, True):                                   # partial tiles, few channels: forced
            xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
            out = conv2d_channels_last(xt, wt, bt, 1, padding, winograd=forced)
            assert out._ctx.winograd == forced
            (out * Tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum().backward()
            results.append([out.data, xt.grad.data, wt.grad.data, bt.grad.data])
        for mine, reference in zip(results[1], results[0]):
            np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-10, err_msg=f"Winograd, case {shape}")
    with conv2d_kernel(None):
        expected = conv2d(Tensor(x[0]), Tensor(w), None, stride, padding).data
    np.testing.assert_allclose(conv2d_channels_last(Tensor(x[0]), Tensor(w), None, stride, padding).data, expected,
                               atol=1e-12)
    first = conv2d_channels_last(Tensor(rng.standard_normal((2, 3, 6, 6))), Tensor(rng.standard_normal((4, 3, 3, 3))),
                                 padding=1)                                        # channels-last memory
    assert first.data.transpose(0, 2, 3, 1).flags.c_contiguous
    w2 = Tensor(rng.standard_normal((5, 4, 3, 3)))
    with conv2d_kernel(None):
        expected = conv2d(first, w2, padding=1).data
    np.testing.assert_allclose(conv2d_channels_last(first, w2, padding=1).data, expected, rtol=1e-10, atol=1e-10)
    x, w = rng.standard_normal((8, 32, 16, 16)), rng.standard_normal((64, 32, 3, 3)) / 17
    reference = conv2d_channels_last(Tensor(x), Tensor(w), padding=1, winograd=False).data     # float64
    errors = {}
    for winograd in (False, True):
        out = conv2d_channels_last(Tensor(x.astype(np.float32)), Tensor(w.astype(np.float32)), padding=1,
                                   winograd=winograd).data
        errors[winograd] = np.abs(out - reference).max() / np.abs(reference).max()
    print(f"float32 error against float64, relative to the largest output: columns {errors[False]:.1e}, "
          f"Winograd {errors[True]:.1e}")
    assert errors[True] < 1e-4, "the text says Winograd stays well within float32 tolerances (1e-4 of the largest value)"
    print("✓ conv2d_channels_last equals im2col conv2d, forward and all three gradients, for every path")


test_unit_conv2d_channels_last()

# %% [markdown]
r"""
### The layers around the convolution: BatchNorm and max-pooling

Once the convolutions are fast, the layers between them show up in a
profile. Chapter 08's BatchNorm is about ten Tensor operations, each a full
pass over the activations forward and another backward; chapter 06's
max-pooling copies every pixel into a window matrix, then gathers the
maxima, then scatters them back. Both have short closed forms:

* **BatchNorm, fused.** With the per-channel mean $\mu$ and
  $s = 1/\sqrt{\sigma^2 + \epsilon}$, the forward is one multiply-add per
  value, $y = (x - \mu) \cdot \gamma s + \beta$, computed from the centered
  values the variance needs anyway. (The shorter
  $y = x \cdot \gamma s + (\beta - \mu \gamma s)$ subtracts two large numbers
  when the mean is large against the spread, and loses float32 digits.) The backward needs
  only two per-channel sums, $\sum g$ and $\sum g\,x$, and is again one pass:
  $\partial L/\partial x = a\,g + b\,x + c$ with per-channel $a, b, c$
  ($a = \gamma s$, $b = -a\,s \sum g \hat{x} / M$, $c = -a \sum g / M - b\,\mu$
  for the $M$ values of a channel). We save the input's rows and the two
  statistics, nothing else. Channel sums run down the columns of the
  channels-last rows; one float32 running sum over 65,536 rows (a batch of
  64 images of 32×32) loses about $65{,}536 \cdot 2^{-24} \approx 0.4\,\%$
  of its value in the worst case, so `_column_sums` adds chunks of 512 rows
  in float32 and the chunks' sums in float64: the same speed, and a worst
  case 128 times smaller. (The test below measures both against float64 on
  such a batch, and checks that the chunks are at least ten times closer.)
* **Max-pooling by tiles.** When the stride equals the kernel (the usual
  2×2, stride 2) and there is no padding, the windows do not overlap: the
  output is the elementwise maximum of the $k_h k_w$ strided views of the
  image, taken as a running maximum over the taps; forward keeps, for each
  step, a one-byte mask of where the new tap won, and backward runs the
  steps in reverse, sending each gradient to the tap that won. Other options keep chapter 06's
  windows (the kernel declines with `NotImplementedError`).

Both work on channels-last memory and return it, so the whole
conv → BatchNorm → ReLU → pool stage stays in that layout. The package
installs them with `set_batch_norm_kernel` and `set_max_pool2d_kernel`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_batch_norm_and_pool_kernels", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.fused
def _channels_last_rows(x: np.ndarray) -> np.ndarray:
    """x (N, C, ...) as an (M, C) matrix of rows, one per position: a view when x's memory is channels-last."""
    last = np.moveaxis(x, 1, -1)                                            # (N, ..., C), a view
    return np.ascontiguousarray(last).reshape(-1, x.shape[1])               # a copy only if not channels-last


def _as_channels_first(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of _channels_last_rows: (M, C) rows viewed as (N, C, ...) of the given shape."""
    return np.moveaxis(rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


def _column_sums(a: np.ndarray, b: np.ndarray | None = None, chunk: int = 512) -> np.ndarray:
    """Column sums of an (M, C) array (of a * b, if b is given), accurate in float32.

    One running float32 sum per column, over M rows, can lose about M * 2**-24 of its value (0.4 %
    for M = 65,536); summing chunks of `chunk` rows in float32 and the chunks' sums in float64 loses
    about chunk * 2**-24, at the same speed.
    """
    full = a.shape[0] - a.shape[0] % chunk
    pieces = a[:full].reshape(-1, chunk, a.shape[1])
    parts = np.einsum("kij->kj", pieces) if b is None else np.einsum("kij,kij->kj", pieces, b[:full].reshape(pieces.shape))
    total = parts.sum(axis=0, dtype=np.float64)
    total += np.einsum("ij->j", a[full:]) if b is None else np.einsum("ij,ij->j", a[full:], b[full:])
    return total.astype(a.dtype)


class BatchNormFused(Function):
    """Batch normalization with batch statistics, forward and backward in a few passes over (M, C) rows.

    Inputs x (N, C, ...), then weight (C,) and bias (C,) if affine; forward saves x's rows, the
    (C,) mean and 1/sqrt(var + eps), and backward computes all gradients from them.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5):
        rows = _channels_last_rows(x)                                       # (M, C)
        M = rows.shape[0]
        mean = _column_sums(rows) / M                                       # (C,)
        centered = workspace_buffer("batch norm", rows.shape, rows.dtype)
        np.subtract(rows, mean, out=centered)
        var = _column_sums(centered, centered) / M                          # biased, two-pass: no cancellation
        inv_std = 1.0 / np.sqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std             # y = (x - mean) * scale + bias
        out = centered * scale                                              # from x - mean, not x * scale - mean *
        if bias is not None:                                                # scale: no cancellation when the mean
            out += bias                                                     # is large against the spread
        ctx.save_for_backward(rows, mean, inv_std, weight if weight is not None else np.ones_like(mean))
        ctx.input_shape, ctx.mean, ctx.var = x.shape, mean, var
        return _as_channels_first(out, x.shape)                             # channels-last memory

    @staticmethod
    def backward(ctx, grad):
        rows, mean, inv_std, weight = ctx.saved_arrays
        g = _channels_last_rows(grad.astype(rows.dtype, copy=False))
        M = rows.shape[0]
        sum_g = _column_sums(g)                                             # dL/dbias
        sum_g_xhat = inv_std * (_column_sums(g, rows) - mean * sum_g)       # dL/dweight
        # dx = scale/M * (M g - sum_g - xhat sum_g_xhat), written as a g + b x + c, per channel:
        scale = weight * inv_std
        b = -scale * inv_std * sum_g_xhat / M
        c = -scale * sum_g / M - b * mean
        dx = g * scale
        term = workspace_buffer("batch norm", rows.shape, rows.dtype)
        np.multiply(rows, b, out=term)
        dx += term
        dx += c
        grads = [_as_channels_first(dx, ctx.input_shape)]
        return tuple(grads + [sum_g_xhat, sum_g][:len(ctx.inputs) - 1])


def batch_norm_fused(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
    """The kernel behind BatchNorm's batch statistics: (output, mean (C,), biased var (C,)), fused."""
    # 1. The inputs are x, then weight and bias when they are not None; eps is an option.
    # 2. out = BatchNormFused.apply(...); the node (out._ctx) kept the batch's mean and variance.
    # 3. Without a node (under no_grad), compute mean and biased variance from x's channel rows yourself
    #    (_channels_last_rows, then _column_sums for the sums, as the forward does).
    ### BEGIN SOLUTION
    inputs = (x,) if weight is None else (x, weight) if bias is None else (x, weight, bias)
    out = BatchNormFused.apply(*inputs, eps=eps)
    node = out._ctx
    if node is None:                                                        # no_grad or nothing needs a gradient
        rows = _channels_last_rows(x.data)
        mean = _column_sums(rows) / rows.shape[0]
        centered = rows - mean
        return out, mean, _column_sums(centered, centered) / rows.shape[0]
    return out, node.mean, node.var
    ### END SOLUTION


class MaxPool2dTiles(Function):
    """max_pool2d with stride = kernel_size and no padding, on channels-last tiles; keeps which tap won."""

    @staticmethod
    def forward(ctx, x, kernel_size):
        (kh, kw), (N, C, H, W) = kernel_size, x.shape
        OH, OW = H // kh, W // kw
        image = np.moveaxis(x, 1, -1)                                       # (N, H, W, C), a view
        taps = [image[:, i:OH * kh:kh, j:OW * kw:kw] for i in range(kh) for j in range(kw)]   # (N, OH, OW, C) views
        best, later_wins = np.array(taps[0]), []
        for candidate in taps[1:]:                                          # a running maximum over the taps
            later_wins.append(candidate > best)                            # strict: the first maximum wins, as in PyTorch
            np.maximum(best, candidate, out=best)
        ctx.later_wins, ctx.input_shape, ctx.kernel_size = later_wins, x.shape, kernel_size
        return best.transpose(0, 3, 1, 2)                                   # (N, C, OH, OW), channels-last memory

    @staticmethod
    def backward(ctx, grad):
        (kh, kw), (N, C, H, W) = ctx.kernel_size, ctx.input_shape
        g = np.moveaxis(grad, 1, -1)                                        # (N, OH, OW, C)
        OH, OW = g.shape[1:3]
        exact = (OH * kh, OW * kw) == (H, W)                                # no leftover rows or columns to zero
        dx = (np.empty if exact else np.zeros)((N, H, W, C), dtype=grad.dtype)
        taps = [dx[:, i:OH * kh:kh, j:OW * kw:kw] for i in range(kh) for j in range(kw)]
        rest = g                                                            # the running maximum's backward, in reverse:
        for tap, won in zip(taps[:0:-1], ctx.later_wins[::-1]):             # a step that took the candidate passes
            np.multiply(rest, won, out=tap)                                 # the gradient to it, else to the
            rest = rest - tap                                               # maximum so far
        taps[0][...] = rest
        return (dx.transpose(0, 3, 1, 2),)                                  # (N, C, H, W), a view


def max_pool2d_tiles(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """The kernel behind max_pool2d for non-overlapping windows (stride = kernel_size, no padding).

    Raises NotImplementedError for other options, so that max_pool2d uses its windows instead.
    """
    # 1. kernel = pair(kernel_size); stride defaults to the kernel; pair it too.
    # 2. Decline (raise NotImplementedError) unless the input is 4-D, stride == kernel, padding is 0 and
    #    the kernel fits the image: max_pool2d then checks the arguments and uses its windows.
    # 3. Otherwise return MaxPool2dTiles.apply(input, kernel_size=kernel).
    ### BEGIN SOLUTION
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    if (input.ndim != 4 or stride != kernel or pair(padding, "padding") != (0, 0) or min(kernel) < 1
            or kernel[0] > input.shape[2] or kernel[1] > input.shape[3]):
        raise NotImplementedError("max_pool2d_tiles handles stride = kernel_size without padding only")
    return MaxPool2dTiles.apply(input, kernel_size=kernel)
    ### END SOLUTION


# %% [markdown]
r"""
The test compares each kernel with the chapter it replaces, in float64:
BatchNorm's output, its running statistics and the gradients of input,
weight and bias (training mode, 2-D and 4-D inputs, with and without the
affine parameters); max-pooling's output and input gradient for 2×2 and 3×2
tiles on odd sizes (the leftover row is cropped) with tied values, and the
fallback for an overlapping pool.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_batch_norm_and_pool_kernels", "locked": true, "schema_version": 3, "solution": false, "task": false}
def _gradients_of(fn, *arrays):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    (out * Tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum().backward()
    return [out.data] + [t.grad.data for t in tensors]


def test_unit_batch_norm_and_pool_kernels():
    for shape, affine in [((6, 3, 5, 4), True), ((8, 5), True), ((6, 3, 5, 4), False), ((4, 2, 7), True)]:
        x_data, layers = rng.standard_normal(shape) * 3 + 1, {}
        for kernel in (None, batch_norm_fused):
            layer = (BatchNorm2d if len(shape) == 4 else BatchNorm1d)(shape[1], affine=affine).double()
            if affine:
                layer.weight.data[:] = np.linspace(0.5, 2, shape[1])
                layer.bias.data[:] = np.linspace(-1, 1, shape[1])
            previous = normalization.set_batch_norm_kernel(kernel)
            try:
                x = Tensor(x_data, requires_grad=True)
                out = layer(x)
                (out * Tensor(np.cos(np.arange(out.numel())).reshape(shape))).sum().backward()
            finally:
                normalization.set_batch_norm_kernel(previous)
            layers[kernel] = [out.data, x.grad.data, layer.running_mean.data, layer.running_var.data] + (
                [layer.weight.grad.data, layer.bias.grad.data] if affine else [])
        for what, mine, reference in zip(["output", "input grad", "running mean", "running var", "weight grad",
                                          "bias grad"], layers[batch_norm_fused], layers[None]):
            np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-9, err_msg=f"BatchNorm {what}, {shape}")
    for shape, k in [((2, 3, 7, 9), 2), ((2, 2, 6, 7), (3, 2))]:
        x = np.round(rng.standard_normal(shape), 1)                          # rounding makes ties
        results = []
        for kernel in (None, max_pool2d_tiles):
            previous = spatial.set_max_pool2d_kernel(kernel)
            try:
                results.append(_gradients_of(lambda t: spatial.max_pool2d(t, k), x))
            finally:
                spatial.set_max_pool2d_kernel(previous)
        for mine, reference, what in zip(results[1], results[0], ["output", "input grad"]):
            np.testing.assert_array_equal(mine, reference, err_msg=f"max-pool {what}, {shape}, kernel {k}")
    try:
        max_pool2d_tiles(Tensor(x), 3, stride=1)
        raise AssertionError("an overlapping pool must be declined")
    except NotImplementedError:
        pass
    x = (rng.standard_normal((64, 32, 32, 32)) * 3 + 1).astype(np.float32)   # a CIFAR-10 first stage, float32
    rows = _channels_last_rows(x)
    exact = rows.sum(axis=0, dtype=np.float64)
    sum_errors = [np.abs(sums - exact).max() / np.abs(exact).max() for sums in (np.einsum("ij->j", rows),
                                                                                  _column_sums(rows))]
    x64 = x.astype(np.float64)
    reference = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    out_error = np.abs(batch_norm_fused(Tensor(x), None, None, 1e-5)[0].data - reference).max()
    print(f"channel sums of 65,536 float32 rows against float64: one running sum {sum_errors[0]:.1e}, "
          f"chunks {sum_errors[1]:.1e}; fused BatchNorm's float32 output off by at most {out_error:.1e}")
    assert sum_errors[1] < sum_errors[0] / 10 and out_error < 1e-5, "the text says chunked sums are far more accurate"
    print("✓ fused BatchNorm and tiled max-pooling equal chapters 08 and 06, values and gradients")


test_unit_batch_norm_and_pool_kernels()

# %% [markdown]
r"""
### LayerNorm in one primitive

Chapter 08's LayerNorm is nine Tensor operations (mean, subtract, multiply,
mean, add, power, multiply, multiply, add), each a graph node with its own
Python overhead and, in training, its own saved array. On the transformer's
large activations the passes over memory are what costs; on the one-token
steps of generation (chapter 18) the per-operation overhead is. One primitive
answers both. With $\hat{x} = (x - \mu)\,s$ and $s = 1/\sqrt{\sigma^2 + \epsilon}$
per row, the forward is $y = \hat{x}\gamma + \beta$, and the backward is the
closed form

$$\frac{\partial L}{\partial x} = s\left(d - \overline{d} - \hat{x}\,\overline{d\,\hat{x}}\right),
\qquad d = g\,\gamma,$$

where the bars are means over the normalized dimensions; $\partial L/\partial\gamma = \sum g\hat{x}$ and
$\partial L/\partial\beta = \sum g$ over every other dimension. Forward saves
$\hat{x}$ and $s$, one array and one number per row.

Two of this chapter's ideas make it fast, not just short. Both passes walk over blocks
of rows small enough to stay in the CPU's cache (about 128 KB), so each of a block's
several sweeps reads cache instead of main memory (the blocking of the matrix product
above, applied to element-wise work). And each row mean is a matrix-vector product,
$x \cdot (1/D, \dots, 1/D)$, which BLAS runs faster than NumPy's reduction along a
short last axis.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_layer_norm_kernel", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.fused
class LayerNormFused(Function):
    """LayerNorm over the last n_dims dimensions as one node: x (..., *normalized_shape), weight and bias
    (normalized_shape, or the constants 1 and 0); forward saves x-hat (M, D) and 1/sigma (M, 1) per row.

    Both passes run over blocks of rows that fit in the CPU's cache, so each block's several sweeps
    read cache instead of memory; the row means are matrix-vector products (x @ (1/D, ..., 1/D)),
    which BLAS runs far faster than NumPy's reduction along a short last axis.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, n_dims=1, eps=1e-5):
        rows = x.reshape(-1, math.prod(x.shape[x.ndim - n_dims:]))          # (M, D), a view when contiguous
        M, D = rows.shape
        weight, bias = np.reshape(weight, -1), np.reshape(bias, -1)         # (D,) or (1,): a constant
        average = np.full(D, 1.0 / D, dtype=rows.dtype)
        xhat, inv_std = np.empty(rows.shape, rows.dtype), np.empty((M, 1), rows.dtype)
        out, B = np.empty(rows.shape, x.dtype), _layer_norm_block(D)
        square = np.empty((min(M, B), D), rows.dtype)                       # scratch, one block
        for i in range(0, M, B):
            r, xh, s, o = rows[i:i + B], xhat[i:i + B], inv_std[i:i + B], out[i:i + B]
            np.subtract(r, (r @ average)[:, None], out=xh)                  # x - mean, per row
            sq = square[:len(r)]
            np.multiply(xh, xh, out=sq)
            s[:, 0] = 1.0 / np.sqrt(sq @ average + eps)                     # 1/sigma, two-pass variance
            xh *= s
            np.multiply(xh, weight, out=o)
            o += bias
        ctx.save_for_backward(xhat, inv_std, weight)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_std, weight = ctx.saved_arrays
        g = grad.reshape(xhat.shape)
        M, D = xhat.shape
        average = np.full(D, 1.0 / D, dtype=xhat.dtype)
        B = _layer_norm_block(D)
        dx, scratch = np.empty(xhat.shape, xhat.dtype), np.empty((min(M, B), D), xhat.dtype)
        grad_weight, grad_bias = np.zeros(D, np.float64), np.zeros(D, np.float64)
        for i in range(0, M, B):
            gb, xh, d = g[i:i + B], xhat[i:i + B], dx[i:i + B]
            t = scratch[:len(gb)]
            np.multiply(gb, xh, out=t)
            grad_weight += t.sum(axis=0)                                    # dL/dweight: sum of g x-hat
            grad_bias += gb.sum(axis=0)                                     # dL/dbias: sum of g
            np.multiply(gb, weight, out=d)                                  # d = dL/dx-hat
            mean_d = (d @ average)[:, None]
            np.multiply(d, xh, out=t)
            np.multiply(xh, (t @ average)[:, None], out=t)                  # x-hat times the mean of d x-hat
            d -= mean_d
            d -= t
            d *= inv_std[i:i + B]                                     # dx = s (d - mean d - x-hat mean(d x-hat))
        dtype = xhat.dtype
        return (dx.reshape(grad.shape) if ctx.needs_input_grad[0] else None,
                grad_weight.astype(dtype).reshape(ctx.inputs[1].shape) if ctx.needs_input_grad[1] else None,
                grad_bias.astype(dtype).reshape(ctx.inputs[2].shape) if ctx.needs_input_grad[2] else None)


def _layer_norm_block(D: int) -> int:
    """Rows per block: about 128 KB of them, so a block and its scratch stay in the CPU's cache."""
    return max(1, (1 << 15) // D)


def layer_norm_fused(x: Tensor, weight: Tensor | None, bias: Tensor | None, normalized_shape, eps: float) -> Tensor:
    """The kernel behind nn.LayerNorm: the whole layer as one LayerNormFused node."""
    # 1. Inputs x, weight, bias; a missing weight (bias) is the number 1.0 (0.0): a constant, no gradient.
    # 2. Options: n_dims = len(normalized_shape), the trailing dimensions to normalize over, and eps.
    # 3. Return LayerNormFused.apply(...)'s output: (..., *normalized_shape), the input's shape.
    ### BEGIN SOLUTION
    return LayerNormFused.apply(x, 1.0 if weight is None else weight, 0.0 if bias is None else bias,
                                n_dims=len(normalized_shape), eps=eps)
    ### END SOLUTION


# %% [markdown]
r"""
The test compares the fused layer with chapter 08's composition in float64,
output and the gradients of input, weight and bias, with and without the
affine parameters and over one or two normalized dimensions; then it times
both on a transformer's activations (forward and backward) and on the
one-token rows that generation feeds through the layer.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_layer_norm_kernel", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_layer_norm_kernel():
    from tinytorch.nn.normalization import LayerNorm
    for shape, normalized, affine in [((4, 6, 8), (8,), (True, True)), ((3, 5, 4, 6), (4, 6), (True, True)),
                                       ((5, 7), (7,), (False, False)), ((2, 3, 8), (8,), (True, False))]:
        x_data, results = rng.standard_normal(shape) * 4 + 2, {}
        for kernel in (None, layer_norm_fused):
            layer = LayerNorm(normalized, elementwise_affine=affine[0], bias=affine[1]).double()
            if affine[0]:
                layer.weight.data[...] = np.linspace(0.5, 2, layer.weight.numel()).reshape(normalized)
            if affine[1]:
                layer.bias.data[...] = np.linspace(-1, 1, layer.bias.numel()).reshape(normalized)
            previous = normalization.set_layer_norm_kernel(kernel)
            try:
                x = Tensor(x_data, requires_grad=True)
                out = layer(x)
                (out * Tensor(np.cos(np.arange(out.numel())).reshape(shape))).sum().backward()
            finally:
                normalization.set_layer_norm_kernel(previous)
            results[kernel] = [out.data, x.grad.data] + [p.grad.data for p in layer.parameters()]
        assert len(results[None]) == len(results[layer_norm_fused]) == 2 + sum(affine)
        for what, mine, reference in zip(["output", "input grad", "first parameter's grad", "bias grad"],
                                         results[layer_norm_fused], results[None]):
            np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-9, err_msg=f"LayerNorm {what}, {shape}")
    print("✓ the fused LayerNorm equals chapter 08's composition: output and every gradient")


test_unit_layer_norm_kernel()

# %%
def _layer_norm_ms(kernel, shape, backward: bool, repeats: int) -> float:
    from tinytorch.nn.normalization import LayerNorm
    layer, x = LayerNorm(shape[-1]), Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=backward)
    previous = normalization.set_layer_norm_kernel(kernel)
    try:
        if backward:
            return best_ms(lambda: layer(x).sum().backward(), repeats)
        with no_grad():
            return best_ms(lambda: layer(x), repeats)
    finally:
        normalization.set_layer_norm_kernel(previous)


layer_norm_speedups = {}
for label, shape, backward, repeats in [("training, (16, 128, 128), forward + backward", (16, 128, 128), True, 5),
                                        ("generation, one token (1, 1, 128), forward", (1, 1, 128), False, 200)]:
    composed, fused = (_layer_norm_ms(k, shape, backward, repeats) for k in (None, layer_norm_fused))
    layer_norm_speedups[label] = composed / fused
    print(f"LayerNorm {label}: composition {composed:.3f} ms, fused {fused:.3f} ms ({composed / fused:.1f}x)")
assert all(ratio > 1.0 for ratio in layer_norm_speedups.values()), \
    f"the fused LayerNorm should be faster in both settings; measured {layer_norm_speedups}"

# %% [markdown]
r"""
Both settings gain (the printed ratios; the assertion only asks for more
than 1×), but for different reasons: on the training activations the fused
layer makes fewer passes over memory and keeps one saved array instead of
several, while on the single token of a generation step the arrays are tiny
and what disappears is the Python and graph overhead of eight operations.
That second setting is why chapter 18's cached generation relies on it.
"""


# %% [markdown]
r"""
### Fusion: softmax and cross-entropy as one primitive

Chapter 05 builds cross-entropy from primitives: `log_softmax` (a max, a
subtraction, an exponential, a sum, a log, another subtraction) and then
picks one entry per row. Chapter 09's engine differentiates that chain node
by node. Each node reads a whole $(N, C)$ array and writes a new one, forward
and backward, and the graph keeps several of them alive until backward.

Calculus says the whole chain has a simple derivative. With
$p = \text{softmax}(z)$ for one row of logits $z$ and target class $t$,

$$
\ell = -\log p_t = \log \sum_c e^{z_c} - z_t,
\qquad
\frac{\partial \ell}{\partial z_c} = p_c - [c = t] ,
$$

softmax minus the one-hot target. So a **fused** primitive can compute the
losses in its forward, keep only the probabilities $p$ (one $(N, C)$ array),
and produce the whole gradient in backward with one multiply and one
subtraction per row. The forward stays numerically stable the usual way
(subtract each row's maximum before exponentiating, which does not change
softmax), and works in place: the shifted logits become the exponentials,
which become the probabilities, in the same buffer.

For a batch, the gradient of row $n$'s loss is scaled by the gradient that
arrives for that row (for the mean over $N$ rows, $1/N$ each), which the
backward rule applies as `grad[:, None]`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_SoftmaxCrossEntropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export kernels.fused
class SoftmaxCrossEntropy(Function):
    """Per-row losses -log softmax(logits)[n, target[n]] of (N, C) logits, as one primitive.

    Forward keeps only the softmax probabilities; backward returns (softmax - onehot) * grad.
    """

    @staticmethod
    def forward(ctx, logits, target):
        """Per-row losses of NumPy logits (N, C) and integer class indices target (N,): returns (N,).

        Save the softmax probabilities (N, C) with ctx.save_for_backward and the targets as ctx.target.
        """
        # 1. Subtract each row's max (keepdims) into a new array: every entry <= 0, so exp cannot overflow.
        # 2. Pick the shifted target logits probs[rows, target] BEFORE exponentiating the buffer in place.
        # 3. np.exp(probs, out=probs); total = row sums (N,); probs /= total[:, None] gives the softmax.
        # 4. The loss is log(total) - picked: log-sum-exp minus the target logit, both shifted by the max.
        # Pitfall: work in place on your own copy, never on `logits` itself (it is the input's data).
        ### BEGIN SOLUTION
        rows = np.arange(logits.shape[0])
        probs = logits - logits.max(axis=1, keepdims=True)    # (N, C): shifted, every entry <= 0
        picked = probs[rows, target]                          # (N,): z_t - max
        np.exp(probs, out=probs)                              # in place: exponentials in (0, 1]
        total = probs.sum(axis=1)                             # (N,), each >= 1
        probs /= total[:, None]                               # in place: softmax
        ctx.save_for_backward(probs)
        ctx.target = target
        return np.log(total) - picked                         # log-sum-exp - z_t, both shifted
        ### END SOLUTION


@backward_rule(SoftmaxCrossEntropy)
def softmax_cross_entropy_backward(ctx, grad):
    """Gradient with respect to the logits: (softmax - onehot(target)) * grad[:, None], shape (N, C).

    grad is (N,), one upstream gradient per row's loss (1/N each for a mean). Return a 1-tuple:
    the target indices are not differentiable, so only the logits get a gradient.
    """
    # Multiply the saved probabilities by grad[:, None] into a NEW array (the saved one may be reused),
    # then subtract grad at [rows, target]: that is the one-hot part, scaled per row.
    ### BEGIN SOLUTION
    (probs,) = ctx.saved_arrays
    dlogits = probs * grad[:, None]                           # (N, C): softmax, scaled per row
    dlogits[np.arange(len(dlogits)), ctx.target] -= grad      # minus the one-hot target
    return (dlogits,)
    ### END SOLUTION


def softmax_cross_entropy_rows(logits: Tensor, indices: np.ndarray) -> Tensor:
    """The kernel behind cross_entropy: per-row losses from checked (N, C) logits and class indices."""
    return SoftmaxCrossEntropy.apply(logits, target=indices)


def softmax_cross_entropy(logits: Tensor, target) -> Tensor:
    """Per-row cross-entropy losses (N,) of logits (N, C) and integer targets (N,), as one primitive."""
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must have shape (N, C), got {logits.shape}")
    return softmax_cross_entropy_rows(logits, class_indices(target, logits, "softmax_cross_entropy"))


@contextlib.contextmanager
def cross_entropy_kernel(kernel):
    """Within the block, cross_entropy computes its per-row losses with `kernel`.

    `kernel(logits, indices) -> (N,)` losses, or None for chapter 05's composition of
    log_softmax and indexing; the previous kernel is restored on exit.
    """
    previous = set_cross_entropy_kernel(kernel)
    try:
        yield
    finally:
        set_cross_entropy_kernel(previous)



# %%
# From here on, every cross_entropy / CrossEntropyLoss in this chapter uses the fused primitive
# (same numbers, less work). The package does the same, in one visible line of tinytorch/__init__.py.
set_cross_entropy_kernel(softmax_cross_entropy_rows)


# %% [markdown]
r"""
The cell above installs the kernel through the hook chapter 05 left for it,
and the package does the same where it is assembled: `tinytorch/__init__.py`
has the one line `nn.loss.cross_entropy_kernel = kernels.softmax_cross_entropy_rows`
(the slot `set_cross_entropy_kernel` fills), so reading the package shows which cross-entropy runs (importing this file
changes nothing by itself).
That is the design: chapter 05 does not know about this chapter (it imports
nothing from it); it has an empty slot that says "if someone gives me a
faster kernel for the per-row losses, use it". From now on
`cross_entropy(logits, target)` checks the targets as before and hands the
rows to `SoftmaxCrossEntropy`. The composition stays available with
`cross_entropy_kernel(None)`, which is how we compare the two.

The test compares fused and composite losses (all three reductions) and
gradients, on float64 logits large enough to overflow a naive exponential,
checks the closed form of the gradient ($(\text{softmax} - \text{onehot})/N$
for the mean), that float32 stays float32, that the loss graph shrank to a
few nodes, and runs `gradcheck` on the primitive.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_softmax_cross_entropy", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def count_nodes(t: Tensor) -> int:
    """The number of Function nodes in the graph that produced t."""
    seen, stack = set(), [t]
    while stack:
        node = stack.pop()._ctx
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.inputs)
    return len(seen)


def test_unit_softmax_cross_entropy():
    from tinytorch.core.autograd import gradcheck
    z = rng.standard_normal((6, 5)) * 50
    z[0, 2] = 1e3                                             # np.exp(1e3) overflows: both versions must shift
    t = np.array([2, 0, 4, 4, 1, 3])
    for reduction in ("none", "sum", "mean"):
        results = []
        for kernel in (None, softmax_cross_entropy_rows):
            zt = Tensor(z, requires_grad=True)
            with cross_entropy_kernel(kernel):
                loss = cross_entropy(zt, t, reduction)
            nodes = count_nodes(loss)                         # before backward, which frees the graph
            (loss * Tensor(np.linspace(1, 2, loss.numel()).reshape(loss.shape))).sum().backward()
            results.append((loss.data, zt.grad.data, nodes))
        (composite, composite_grad, composite_nodes), (fused, fused_grad, fused_nodes) = results
        np.testing.assert_allclose(fused, composite, rtol=1e-12, atol=1e-9, err_msg=reduction)
        np.testing.assert_allclose(fused_grad, composite_grad, rtol=1e-10, atol=1e-12, err_msg=reduction)
        assert fused_nodes <= 4 < composite_nodes, (fused_nodes, composite_nodes)
    zt = Tensor(z, requires_grad=True)
    cross_entropy(zt, t).backward()                           # the installed kernel
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(6), t] -= 1
    np.testing.assert_allclose(zt.grad.data, p / 6, rtol=1e-10, atol=1e-15)
    z32 = Tensor(z.astype(np.float32), requires_grad=True)
    loss32 = CrossEntropyLoss()(z32, t)
    loss32.backward()
    assert loss32.dtype == np.float32 and z32.grad.dtype == np.float32
    assert gradcheck(lambda x: softmax_cross_entropy(x, t), [Tensor(rng.standard_normal((6, 5)), requires_grad=True)])
    print(f"✓ fused cross-entropy equals the composition ({composite_nodes} graph nodes) "
          f"with {fused_nodes}; gradient = (softmax - onehot)/N; gradcheck passes")


test_unit_softmax_cross_entropy()

# %% [markdown]
r"""
## Systems analysis

Everything below is measured now, on this machine. Each comparison first
checks that the fast version gives the same numbers as the slow one.

### Matrix multiplication: from loops to BLAS

Four kernels for the same product: the Python loops, one vectorised call per
output row (`out[i] = a[i] @ b`), our blocked kernel with 64×64 tiles, and
NumPy's `@`, which calls the BLAS library NumPy was built with. We report
time and the achieved rate, $2n^3$ FLOPs divided by the time. The loops run
only on tiny sizes: at tens of nanoseconds per multiply-add, $n = 1024$ (a
billion multiply-adds) would take most of a minute.
"""


# %%
def matmul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One vectorised call per output row: row i of a times all of b."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for i in range(a.shape[0]):
        out[i] = a[i] @ b
    return out


kernels = {"loops": matmul_naive, "rows": matmul_rows, "blocked 64": matmul_blocked, "BLAS": np.matmul}
sizes = [16, 32, 64, 128, 256, 512, 1024]
gflops = {name: {} for name in kernels}
print(f"{'n':>5}" + "".join(f"{name + ' ms':>15}" for name in kernels) + f"{'BLAS GFLOP/s':>14}")
for n in sizes:
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    reference = a @ b
    row = f"{n:>5}"
    for name, kernel in kernels.items():
        if (name == "loops" and n > 64) or (name == "rows" and n > 512):
            row += f"{'-':>15}"
            continue
        np.testing.assert_allclose(kernel(a, b), reference, rtol=1e-4, atol=1e-3 * np.sqrt(n))
        ms = best_ms(lambda: kernel(a, b), repeats=3 if n >= 512 else 5)
        gflops[name][n] = 2 * n**3 / (ms / 1000) / 1e9
        row += f"{ms:>15.3f}"
    print(row + f"{gflops['BLAS'][n]:>14.1f}")

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, rates in gflops.items():
    ax.plot(list(rates), list(rates.values()), "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("n (n×n float32 matrices)")
ax.set_ylabel("GFLOP/s")
ax.set_title("Matrix multiplication, four kernels")
ax.legend()
plt.show()
loops_rate = np.median(list(gflops["loops"].values()))
print(f"Python loops: about {loops_rate * 1e3:.0f} MFLOP/s, i.e. {2 / loops_rate:.0f} ns per multiply-add; "
      f"BLAS at n = 1024: {gflops['BLAS'][1024]:.0f} GFLOP/s, {gflops['BLAS'][1024] / loops_rate:,.0f} times faster")
assert 5 <= 2 / loops_rate <= 500, "the text says a Python multiply-add costs tens of nanoseconds"
assert gflops["BLAS"][1024] / loops_rate >= 200, "the text says BLAS is hundreds of times or more faster than loops"

# %% [markdown]
r"""
Read the plot from the bottom up:

* **Loops** run at a constant, tiny rate whatever the size: every
  multiply-add costs the same interpreter overhead, and no cache effect is
  visible beneath it.
* **Rows** make $n$ NumPy calls, each a vector-matrix product that reads all
  of `b` to do $2n^2$ FLOPs: intensity about $1/2$ FLOP per byte. Small
  sizes are dominated by the call overhead, large ones by reading `b`
  again for every row.
* **Blocked** makes $(n/64)^3$ calls, each a 64×64×64 tile product with
  intensity $64/6$. Below $n = 64$ it is one call; above, its rate is set by
  how fast NumPy does one tile plus the overhead of one Python iteration per
  tile, so it levels off.
* **BLAS** climbs with $n$ to a plateau, where the core's arithmetic units
  are the limit. (On a machine other programs are using, a single point can
  fall below the plateau: each is the fastest of only a few runs.) Inside, it does what our blocked kernel does, three levels deep (for
  L3, L2 and registers), on tiles it first copies ("packs") into contiguous
  buffers, with a hand-written vector micro-kernel and, on several cores, one
  block of the output per thread.

The factor printed under the plot between the first line and the last, on
one core, is in the hundreds at least (the cell checks 200 or more; on an
idle machine it is in the thousands), and it is the reason tinytorch never
loops over elements in Python.

### Arithmetic intensity: dialling reuse up and down

The panel form of the blocked kernel, `tile=(n, n, T)`, computes the
product as $n/T$ panel products $C \mathrel{+}= A_{:, P}\, B_{P, :}$, each a
vectorised call that does $2n^2T$ FLOPs. Every panel also streams the whole
output $C$ through memory: the product is written to a temporary, which is
then read with $C$ and added into it. Counting float32 bytes per panel (the
two panels of $A$ and $B$ read once, the temporary written and read, $C$
read and written):

$$
\text{bytes} \approx 4\,(2nT + 4n^2),
\qquad
I = \frac{2n^2T}{8nT + 16n^2} \approx \frac{T}{8} \;\text{ for } T \ll n .
$$

So the panel depth $T$ sets the intensity: $T = 2$ does about a quarter of a
FLOP per byte. At $T = 512 = n$ (a single panel) the approximation
$T \ll n$ no longer holds and the exact formula gives about 43, as the
table's `FLOP/byte` column prints. If the memory model is right, the rate
should grow in proportion to $I$ while memory is the limit, and flatten once
the arithmetic is.
"""

# %%
n = 512
a = rng.standard_normal((n, n)).astype(np.float32)
b = rng.standard_normal((n, n)).astype(np.float32)
reference = a @ b
depths = [2, 4, 8, 16, 32, 64, 128, 256, 512]
intensity, rate = [], []
print(f"{'T':>4} {'panels':>7} {'FLOP/byte':>10} {'ms':>8} {'GFLOP/s':>8}")
for T in depths:
    np.testing.assert_allclose(matmul_blocked(a, b, tile=(n, n, T)), reference, rtol=1e-4, atol=1e-2)
    ms = best_ms(lambda: matmul_blocked(a, b, tile=(n, n, T)), repeats=3)
    intensity.append(2 * n * n * T / (4 * (2 * n * T + 4 * n * n)))
    rate.append(2 * n**3 / (ms / 1000) / 1e9)
    print(f"{T:>4} {n // T:>7} {intensity[-1]:>10.2f} {ms:>8.2f} {rate[-1]:>8.1f}")

fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.loglog(intensity, rate, "o-")
for T, x, y in zip(depths, intensity, rate):
    ax.annotate(f"T={T}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
slope = rate[0] / intensity[0]
ax.loglog(intensity, [slope * x for x in intensity], ":", color="grey", label="rate ∝ intensity")
ax.set_xlabel("estimated arithmetic intensity (FLOP/byte)")
ax.set_ylabel("achieved GFLOP/s")
ax.set_ylim(min(rate) / 2, max(rate) * 2)
ax.set_title(f"Panel products of a {n}×{n} matmul")
ax.legend()
plt.show()
print(f"deepest panels vs shallowest: {rate[-1] / rate[0]:.0f}x the rate for {intensity[-1] / intensity[0]:.0f}x the intensity; "
      f"T = 2 to 16: {rate[3] / rate[0]:.1f}x the rate for {intensity[3] / intensity[0]:.0f}x the intensity")
assert rate[3] / rate[0] >= 2, "the text says the rate rises with the intensity at small T"
assert rate[-1] / rate[0] <= intensity[-1] / intensity[0] / 3, "the text says the rate flattens far below the line"

# %% [markdown]
r"""
At small $T$ the points rise with the intensity, not far below the dotted
line on which doubling the intensity doubles the rate (the printed ratio for
$T = 2$ to 16; the cell checks at least 2× for that 8× in intensity): the
kernel waits for memory. At large $T$ they flatten out far below it (the
cell checks that the whole range gains less than a third of its intensity
ratio), because the arithmetic
units became the limit. (A $512 \times 512$
float32 matrix is 1 MiB, so here "memory" means the L2 and L3 caches; with
matrices too large for the caches the memory-bound part would sit lower
still.) This is the whole idea of blocking in one picture: the same FLOPs,
arranged to reuse what was loaded, run many times faster. Chapter 15 draws
the same picture for the layers of a real model and calls it a roofline.

### Memory layout, measured

Four experiments on a 2048×2048 float32 matrix (16 MiB: far larger than
the L1 and L2 caches printed at the top of the chapter; whether it fits the
L3 depends on the machine, and a server's L3 is shared by all its cores):

1. Sum it one row at a time, then one column at a time, with a Python loop
   over the rows or columns (2048 NumPy calls either way).
2. Add it to itself, and to its own transpose (a view with swapped strides).
3. Copy its transpose into a new contiguous array: NumPy's `a.T.copy()`
   against our `transpose_blocked`, for several tile sizes.
4. Multiply by a transposed operand: as a view, and after copying it.
"""

# %%
n = 2048
a = rng.standard_normal((n, n)).astype(np.float32)
rows_ms = best_ms(lambda: [a[i].sum() for i in range(n)], repeats=3)
cols_ms = best_ms(lambda: [a[:, j].sum() for j in range(n)], repeats=3)
same_ms = best_ms(lambda: a + a, repeats=3)
mixed_ms = best_ms(lambda: a + a.T, repeats=3)
print(f"sum by rows {rows_ms:.1f} ms, by columns {cols_ms:.1f} ms ({cols_ms / rows_ms:.1f}x)")
print(f"a + a {same_ms:.1f} ms, a + a.T {mixed_ms:.1f} ms ({mixed_ms / same_ms:.0f}x)")
assert cols_ms > 1.5 * rows_ms, "the text says summing columns is slower than summing rows"
assert mixed_ms > 3 * same_ms, "the text says mixing layouts costs several times or more"

copy_ms = best_ms(lambda: a.copy(), repeats=3)
naive_ms = best_ms(lambda: a.T.copy(), repeats=3)
np.testing.assert_array_equal(transpose_blocked(a), a.T)
tiles = [4, 8, 16, 32, 64, 128, 256, 512]
tile_ms = [best_ms(lambda: transpose_blocked(a, t), repeats=1 if t < 16 else 3)   # below 16, a call takes 0.1 s or
           for t in tiles]                                                       # more, far from the best: one run
best = int(np.argmin(tile_ms))
print(f"plain copy {copy_ms:.1f} ms; a.T.copy() {naive_ms:.1f} ms; transpose_blocked best at tile {tiles[best]}: "
      f"{tile_ms[best]:.1f} ms ({naive_ms / tile_ms[best]:.1f}x faster than a.T.copy())")
assert naive_ms > 1.5 * tile_ms[best] and 16 <= tiles[best] <= 256, \
    "the text says a middle tile beats a.T.copy() by a factor of a few"

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(tiles, tile_ms, "o-", label="transpose_blocked(a, tile)")
ax.axhline(naive_ms, color="C3", linestyle="--", label="a.T.copy()")
ax.axhline(copy_ms, color="grey", linestyle=":", label="a.copy() (no transpose)")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("tile size")
ax.set_ylabel("ms")
ax.set_title(f"Transposed copy of a {n}×{n} float32 matrix")
ax.legend(fontsize=8)
plt.show()

k = 512
x, w = rng.standard_normal((k, k)).astype(np.float32), rng.standard_normal((k, k)).astype(np.float32)
np.testing.assert_allclose(x @ w.T, x @ np.ascontiguousarray(w.T), rtol=1e-5, atol=1e-4)
plain = best_ms(lambda: x @ w, repeats=9)
view = best_ms(lambda: x @ w.T, repeats=9)
copied = best_ms(lambda: x @ np.ascontiguousarray(w.T), repeats=9)
print(f"{k}x{k} matmul: x @ w {plain:.2f} ms, x @ w.T (a view) {view:.2f} ms, "
      f"x @ contiguous copy of w.T {copied:.2f} ms")
assert 0.5 < view / plain < 2, "the text says a transposed view costs BLAS about nothing"

# %% [markdown]
r"""
What the numbers say:

1. **Rows against columns.** Both loops make the same 2048 calls and add the
   same numbers. A row is 8 KiB of consecutive memory; a column is 2048
   floats 8 KiB apart, each on its own cache line and often its own memory
   page, so summing a column uses 4 bytes of every 64 it loads, needs a new
   TLB entry (the cache of address translations) almost every step, and
   cannot use the vector loads that sum eight or sixteen consecutive floats
   at once. The printed ratio is the sum of the three effects.
2. **Mixing layouts** inside one element-wise operation is the worst case:
   NumPy must walk one operand against its grain for every element. It
   costs the factor printed above (the cell checks at least 3×; it is often
   ten or more), for an operation that does one FLOP per element. The fix is to keep operands in
   the same layout, or to make one contiguous *once* if it is used many times.
3. **Blocking the transpose** turns the strided reads into short runs that
   stay in cache. Tiny tiles lose to Python's per-tile overhead, huge tiles to
   the cache again, and the middle (tiles of a few KiB to a few tens of KiB)
   wins, by the factor printed above (the cell checks at least 1.5× and a
   best tile between 16 and 256). The contiguous
   `a.copy()` is the floor: the same bytes, in order.
4. **A transposed operand costs BLAS (almost) nothing**: BLAS takes a
   "transposed" flag and a leading dimension, so `x @ w.T` runs about as fast
   as `x @ w` (the cell checks within a factor of two), while copying `w.T`
   first adds the copy. This is why chapter 04's `Linear`
   computes `x @ self.weight.T` on a view and never stores a transposed weight,
   and why chapter 09's matmul backward uses `swapaxes` views.

The kernel that wins here does not become part of tinytorch's hot path, for
the reason in point 4: the large 2-D transposes in a model are the operands
of matmuls, which take views for free. The copies tinytorch does make
(`Flatten` after a convolution, the head reshapes in attention) move
contiguous runs of a whole feature map or head at a time, where NumPy's copy
is already efficient. `transpose_blocked` stays in the package as a kernel
you can measure, not as a replacement.

### Convolution: im2col, direct, and channels-last blocks

The two convolutions of the reference CNN and a wider layer, each computed
three ways: chapter 06's im2col (`conv2d_kernel(None)`), the direct kernel,
and the channels-last blocked kernel the package installs. We time the
forward pass and a forward plus backward pass (a sum of the outputs as the
loss), and measure the forward pass's peak memory with `tracemalloc`, next
to the size of im2col's column matrix.
"""

# %%
conv_cases = [("ref CNN conv1", (64, 3, 32, 32), 32, 0), ("ref CNN conv2", (64, 32, 15, 15), 64, 0),
              ("wide, padding 1", (32, 64, 16, 16), 128, 1)]
conv_ways = {"im2col": lambda *args, **kw: _with_kernel(None, conv2d, *args, **kw), "direct": conv2d_direct,
             "blocks": lambda *args, **kw: conv2d_channels_last(*args, **kw, winograd=False)}


def _with_kernel(kernel, fn, *args, **kw):
    with conv2d_kernel(kernel):
        return fn(*args, **kw)


print(f"{'layer':>16} {'columns MiB':>12} | {'forward ms':>26} | {'fwd+bwd ms':>26} | {'forward peak MiB':>26}")
print(f"{'':>16} {'':>12} |" + " |".join(f"{'im2col':>8} {'direct':>8} {'blocks':>8}" for _ in range(3)))
conv_results = {}
for label, shape, O, pad in conv_cases:
    N, C, H, W = shape
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    w = Tensor((rng.standard_normal((O, C, 3, 3)) * 0.1).astype(np.float32))
    bias = Tensor(rng.standard_normal(O).astype(np.float32))
    reference = conv_ways["im2col"](x, w, bias, padding=pad).data
    for name in ("direct", "blocks"):
        np.testing.assert_allclose(conv_ways[name](x, w, bias, padding=pad).data, reference, rtol=1e-4, atol=1e-4)
    OH = conv_output_size(H, 3, 1, pad)
    columns_mib = C * 9 * N * OH * OH * 4 / 2**20
    row = {}
    for name, conv in conv_ways.items():
        xg, wg = Tensor(x.data, requires_grad=True), Tensor(w.data, requires_grad=True)
        row[name] = (best_ms(lambda: conv(x, w, bias, padding=pad), repeats=3),
                     best_ms(lambda: conv(xg, wg, bias, padding=pad).sum().backward(), repeats=3),
                     peak_mib(lambda: conv(x, w, bias, padding=pad)))
    conv_results[label] = row
    print(f"{label:>16} {columns_mib:>12.1f} |" + " |".join(" ".join(f"{row[name][k]:>8.1f}" for name in conv_ways)
                                                             for k in range(3)))
first, second, wide = (conv_results[label] for label, *_ in conv_cases)
assert second["direct"][2] < second["im2col"][2] and wide["direct"][2] < wide["im2col"][2], \
    "the text says the direct kernel needs less memory when there are many input channels"
assert first["direct"][0] > 1.5 * first["im2col"][0], "the text says im2col wins clearly on the first layer"
assert all(layer["direct"][1] > layer["im2col"][1] for layer in (first, second)), \
    "the text says im2col is the faster of the two on the course's layers (forward + backward)"
block_speedups = [layer["im2col"][1] / layer["blocks"][1] for layer in (second, wide)]
print(f"blocks against im2col, forward + backward: {block_speedups[0]:.1f}x (ref CNN conv2), "
      f"{block_speedups[1]:.1f}x (wide); forward peak {wide['blocks'][2]:.1f} MiB against {wide['im2col'][2]:.1f} MiB")
assert block_speedups[1] > 1, f"the text says the blocked kernel is the faster on the wide layer; {block_speedups}"
assert wide["blocks"][2] < wide["im2col"][2], "the text says the blocked kernel needs less memory than im2col"

# %% [markdown]
r"""
The trade shows up layer by layer:

* **Time.** im2col does one matmul with a long inner dimension ($C k_h k_w$);
  direct does nine with inner dimension $C$ plus nine additions of
  output-sized arrays. For the first layer ($C = 3$) the direct kernel's
  matmuls are three numbers deep and nine output-sized additions dominate,
  so im2col should win clearly; as $C$ grows, each tap's matmul becomes
  efficient and the gap narrows. (The cell checks that im2col's forward is
  at least 1.5× faster on the first layer, and its forward plus backward
  faster on both layers of the reference CNN.) The backward of the direct version also
  scatters nine gradients into zero-filled input-sized arrays (chapter 09's
  rule for slicing), which costs more again.
* **Memory.** im2col's peak is dominated by the column matrix, nine times
  the input. The direct kernel's peak is one copied tap plus the output
  accumulators. When the output is larger than the input times nine (the
  first layer: 3 channels in, 32 out), im2col's columns are actually the
  smaller allocation; for layers with many input channels the direct kernel
  needs much less memory (checked for the second and third rows).
* **Blocks.** The channels-last kernel does im2col's arithmetic (the same
  long inner dimension) but never holds the whole column matrix: a few
  images' columns at a time, in a buffer it reuses, so its forward peak is
  the padded input and the output (the cell asserts it is below im2col's on
  the wide layer). Its forward plus backward against im2col's is the printed
  factor; the cell asserts only that it is the faster on the wide layer,
  because by how much depends on the machine's caches and on how busy it is
  (`benchmarks/run_all.py` measures it against PyTorch, round by round). The
  cache-sized blocks, the input gradient computed as a convolution instead of
  a scatter, and one primitive instead of a chain of nodes all count.

So neither of the first two wins everywhere, which is exactly why production
libraries carry several convolution algorithms and choose per layer (chapter
06's production section). The blocked kernel takes the best of both: im2col's
one deep product per block, and the direct kernel's small memory. (The table
ran it with `winograd=False`: the blocked columns for every layer.)

### Winograd against the blocked columns

The same primitive with and without Winograd, forward plus backward (input
gradient too), on the layer `benchmarks/run_all.py` compares with PyTorch:
`Conv2d(32, 64, 3, padding=1)` on a batch of 64 images of 16×16, in
alternating rounds.
"""

# %%
init.manual_seed(0)
bench_x = Tensor(rng.standard_normal((64, 32, 16, 16)).astype(np.float32), requires_grad=True)
bench_w = Tensor((rng.standard_normal((64, 32, 3, 3)) * 0.1).astype(np.float32), requires_grad=True)
bench_b = Tensor(np.zeros(64, np.float32), requires_grad=True)


def bench_step(winograd: bool) -> None:
    bench_x.grad = bench_w.grad = bench_b.grad = None
    conv2d_channels_last(bench_x, bench_w, bench_b, padding=1, winograd=winograd).sum().backward()


winograd_times = {False: [], True: []}
for _ in range(7):
    for winograd in (False, True):                        # alternate, so a busier machine slows both alike
        winograd_times[winograd].append(best_ms(lambda: bench_step(winograd), repeats=1))
winograd_ratio = float(np.median(np.array(winograd_times[False]) / np.array(winograd_times[True])))
print(f"Conv2d(32, 64, 3, padding=1), 64 x 32 x 16 x 16, forward + backward (medians of 7 rounds): "
      f"columns {np.median(winograd_times[False]):.1f} ms, Winograd {np.median(winograd_times[True]):.1f} ms, "
      f"speed-up {winograd_ratio:.2f}x")
assert winograd_ratio > 1.1, f"the text says Winograd is the faster on this layer by more than 1.1x; {winograd_ratio:.2f}"

# %% [markdown]
r"""
Winograd wins by the printed factor (the cell checks more than 1.1×; on an
idle machine it is larger, on a busy one the memory-bound transforms suffer
most). Backward is where the design pays twice: one transformed output
gradient feeds both the weight gradient and the input gradient, and the
input tiles $V$ that forward saved are used again instead of being rebuilt.
(Forward alone has to pay for two transforms around one product, so its
share of the gain is smaller; question 5 below asks you to count.) That is the kernel `nn.Conv2d`
runs in the package: Winograd for 3×3, stride-1 layers with 16 or more
channels that fill their tiles, the blocked columns for every other layer.

### BatchNorm and max-pooling: composed against fused, and a whole training step

The first stage of the CIFAR-10 example's network on a batch of 64: its
activations are $(64, 32, 32, 32)$, 8 MiB of float32. We time forward plus
backward of `BatchNorm2d` (chapter 08's composition against the fused
kernel) and of `MaxPool2d(2)` (chapter 06's windows against the tiles), on
the channels-last activations a convolution hands them, alternating the two
versions round by round. Then the whole training step of the example's
network (three stages, SGD with momentum) with every kernel of this chapter
switched off, and on.
"""


# %%
@contextlib.contextmanager
def chapter_kernels(on: bool):
    """Within the block, conv2d, BatchNorm and max_pool2d use this chapter's kernels (on) or their chapters' own."""
    previous = (spatial.set_conv2d_kernel(conv2d_channels_last if on else None),
                normalization.set_batch_norm_kernel(batch_norm_fused if on else None),
                spatial.set_max_pool2d_kernel(max_pool2d_tiles if on else None))
    try:
        yield
    finally:
        spatial.set_conv2d_kernel(previous[0])
        normalization.set_batch_norm_kernel(previous[1])
        spatial.set_max_pool2d_kernel(previous[2])


def alternating_ms(fn, rounds: int = 5) -> tuple[float, float, float]:
    """fn(on) timed with this chapter's kernels off and on, alternating: (median off ms, median on ms, median ratio)."""
    times = {False: [], True: []}
    for _ in range(rounds):
        for on in (False, True):
            with chapter_kernels(on):
                times[on].append(best_ms(lambda: fn(), repeats=1))
    ratios = np.array(times[False]) / np.array(times[True])
    return float(np.median(times[False])), float(np.median(times[True])), float(np.median(ratios))


activation = np.ascontiguousarray(rng.standard_normal((64, 32, 32, 32)).astype(np.float32)
                                  .transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # channels-last memory
init.manual_seed(0)
norm, pool = BatchNorm2d(32), MaxPool2d(2)


def layer_step(layer):
    x = Tensor(activation, requires_grad=True)
    layer(x).sum().backward()


layer_results = {name: alternating_ms(lambda: layer_step(layer)) for name, layer in (("BatchNorm2d", norm),
                                                                                     ("MaxPool2d(2)", pool))}


def example_network():
    """The CIFAR-10 example's network (examples/cifar10_cnn.py): three conv-BatchNorm-ReLU-pool stages, Linear."""
    layers, c_in = [], 3
    for c_out in (32, 64, 128):
        layers += [Conv2d(c_in, c_out, 3, padding=1), BatchNorm2d(c_out), ReLU(), MaxPool2d(2)]
        c_in = c_out
    return Sequential(*layers, Flatten(), Linear(128 * 4 * 4, 10))


init.manual_seed(0)
network = example_network()
network_optimizer = SGD(network.parameters(), lr=0.01, momentum=0.9)
batch, batch_labels = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32)), rng.integers(0, 10, 64)


def network_step():
    network_optimizer.zero_grad()
    CrossEntropyLoss()(network(batch), batch_labels).backward()
    network_optimizer.step()


layer_results["training step"] = alternating_ms(network_step, rounds=3)
print(f"{'forward + backward':>20} {'chapters 06/08 ms':>18} {'chapter 14 ms':>14} {'speed-up':>9}")
for name, (off_ms, on_ms, ratio) in layer_results.items():
    print(f"{name:>20} {off_ms:>18.1f} {on_ms:>14.1f} {ratio:>8.1f}x")
assert all(ratio > 1.2 for _, _, ratio in layer_results.values()), \
    f"the text says each kernel, and the whole step, is faster by more than 1.2x; measured {layer_results}"

# %% [markdown]
r"""
Each fused kernel is faster than the composition it replaces, and so is the
whole step: the printed speed-ups are medians of per-round ratios, and the
cell asserts more than 1.2× for every row (a wide band: a busy machine
squeezes memory-bound kernels most, and how much varies). For BatchNorm
the composition makes about ten passes over the activations each way and
keeps several activation-sized arrays for backward; the fused kernel makes
three or four passes each way and keeps only its input's rows and two numbers
per channel. Max-pooling by tiles skips the window copy and the gather and
scatter of the selected values. None of this changes the arithmetic: the
test above checks that the values and gradients agree with chapters 06 and
08 to rounding. It is all memory traffic, which is what the CIFAR-10 step
was spending its time on once BLAS did the products; `benchmarks/run_all.py`'s
`cifar-step` row measures the same step against PyTorch.

### Fusion: what the fused cross-entropy saves

First an estimate. For float32 logits of shape $(N, C)$, count the bytes each
version reads and writes *per logit* (ignoring arrays of size $N$, which are
$C$ times smaller), the $(N, C)$ arrays it allocates, and the $(N, C)$
arrays the graph keeps alive until backward. The gradient arriving at the
logits is the same for both and not counted.

| step | composite: read / written | fused: read / written |
| --- | --- | --- |
| row maximum | 4 / 0 | 4 / 0 |
| subtract it | 4 / 4 (new array) | 4 / 4 (the one buffer) |
| exponential | 4 / 4 (new array) | 4 / 4 (in place) |
| row sum | 4 / 0 | 4 / 0 |
| subtract the log-sum (composite) / divide by the sum (fused) | 4 / 4 (new array) | 4 / 4 (in place: softmax) |
| **forward** | **20 / 12** | **20 / 12** |
| backward of the pick: zeros, then scatter | 0 / 4 (new array) | — |
| backward of the log-sum subtraction: sum over classes | 4 / 0 | — |
| backward of exp: gradient × exponentials | 4 / 4 (new array) | — |
| add the two gradients that meet at the shifted logits | 8 / 4 (new array) | — |
| softmax × per-row gradient, minus one at the targets | — | 4 / 4 (new array) |
| **backward** | **16 / 12** | **4 / 4** |
| **total per logit** | **60 bytes, 7 new arrays, 3 kept** | **40 bytes, 2 new arrays, 1 kept** |

Two things stand out. The *forward* passes move the same bytes: NumPy runs
each operation as its own pass over memory, and our fused forward is still
five NumPy calls. (A compiled kernel could do it in two passes, reading the
logits twice and writing the probabilities once.) The saving is in backward,
in the arrays allocated (each fresh allocation of a large array also costs
page faults, chapter 15 measures this), in the memory kept alive, and in the
number of graph nodes, each of which costs Python time in the engine. So we
expect the fused version to win by more than the byte ratio of 1.5 on small
batches, where the per-node overhead dominates.

Now the measurement: forward plus backward of the mean loss, for the reference
CNN's 10 classes, a 1000-class classifier, a character-level language model
(65 characters, 2048 tokens per batch), and a larger vocabulary.
"""

# %%
ce_cases = [(64, 10), (256, 1000), (2048, 65), (1024, 4096)]
print(f"{'N x C':>12} {'logits MiB':>11} {'nodes':>11} | {'fwd+bwd ms':>21} | {'peak MiB':>15}")
print(f"{'':>12} {'':>11} {'comp/fused':>11} | {'composite':>10} {'fused':>10} | {'composite':>7} {'fused':>7}  speed-up")
ce_speedups = []
for N, C in ce_cases:
    logits = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    targets = rng.integers(0, C, N)

    def step(kernel):
        z = Tensor(logits, requires_grad=True)
        with cross_entropy_kernel(kernel):
            loss = cross_entropy(z, targets)
        loss.backward()
        return loss, z.grad.data

    (loss_c, grad_c), (loss_f, grad_f) = step(None), step(softmax_cross_entropy_rows)
    np.testing.assert_allclose(loss_f.data, loss_c.data, rtol=1e-5)
    np.testing.assert_allclose(grad_f, grad_c, rtol=1e-4, atol=1e-8)
    with cross_entropy_kernel(None):
        nodes_c = count_nodes(cross_entropy(Tensor(logits, requires_grad=True), targets))
    nodes_f = count_nodes(cross_entropy(Tensor(logits, requires_grad=True), targets))
    ms_c = best_ms(lambda: step(None), repeats=5)
    ms_f = best_ms(lambda: step(softmax_cross_entropy_rows), repeats=5)
    peak_c, peak_f = peak_mib(lambda: step(None)), peak_mib(lambda: step(softmax_cross_entropy_rows))
    ce_speedups.append(ms_c / ms_f)
    print(f"{f'{N} x {C}':>12} {logits.nbytes / 2**20:>11.2f} {f'{nodes_c} / {nodes_f}':>11} | {ms_c:>10.3f} {ms_f:>10.3f} "
          f"| {peak_c:>7.1f} {peak_f:>7.1f}  {ms_c / ms_f:>5.1f}x")
logit_mib = logits.nbytes / 2**20                          # the last, largest case
print(f"largest case: composite peak {peak_c / logit_mib:.1f} logit-sized arrays, fused {peak_f / logit_mib:.1f}; "
      f"speed-ups from {min(ce_speedups):.1f}x to {max(ce_speedups):.1f}x")
assert 5 <= peak_c / logit_mib <= 7 and 1.5 <= peak_f / logit_mib <= 2.5, "the text says about 6 arrays against 2"
assert min(ce_speedups) > 1.1, "the text says the fused kernel was faster at every size in the table"

# %% [markdown]
r"""
The fused primitive replaces the composite graph (the `nodes` column) by
three nodes (the primitive, then the sum and the division of the mean),
gives the same losses and gradients (asserted above), and needs a fraction of
the peak memory: about 2 logit-sized arrays instead of about 6 (printed for
the largest case, and checked), in line with the estimate's count of new
arrays. It was faster at every size in the table (the cell checks a speed-up
above 1.1× for each), for two different reasons. On small batches the arithmetic takes
microseconds, and the saving is the engine's per-node Python overhead. On
large ones it is the allocations: every fresh array of many megabytes comes
from the operating system page by page (chapter 15 counts those page faults),
and the composite version allocates seven such arrays where the fused one
allocates two. In between, both versions spend much of their time in `exp`
(tens of cycles per element, not one FLOP), which fusion does not change.

That is why this is the kernel tinytorch now uses: the installation line
ran when this chapter's export cell did, and the package does the same when
`tinytorch` is imported.

## Production context

* **BLAS.** NumPy's `@` calls `sgemm`/`dgemm` from the BLAS it was built
  with (OpenBLAS in the standard wheels; Intel MKL, Apple Accelerate or BLIS in
  others; `np.show_config()` says which). Since GotoBLAS, these libraries share
  one design: block for each cache level, *pack* each block into a
  contiguous buffer in the exact order the micro-kernel will read it, and run
  a hand-written assembly micro-kernel that keeps a small tile of $C$ in
  vector registers. Strides and transposes are handled by the packing step,
  which is why `x @ w.T` costs nothing extra.
* **PyTorch's CPU kernels.** Element-wise operations go through
  `TensorIterator`, which handles broadcasting and arbitrary strides,
  vectorises the inner loop and splits large tensors across threads (with
  OpenMP); matmuls go to MKL or OpenBLAS; float32 convolutions to oneDNN,
  which chooses among direct and GEMM-based implementations per layer and
  prefers a blocked memory layout of its own.
* **Fusion.** `torch.nn.functional.cross_entropy` is `log_softmax` followed
  by `nll_loss`: two kernels, each with a hand-written backward, rather than
  one fused kernel like ours. Fusion in PyTorch is mostly the job of
  `torch.compile`, whose backend (Inductor) generates fused kernels for chains
  of element-wise and reduction operations (Triton code on GPUs, C++ with
  OpenMP on CPUs), so the intermediates never reach memory. Hand-fused kernels
  exist where the savings are large: FlashAttention computes attention's
  softmax block by block without ever storing the $L \times L$ score matrix,
  and libraries for large-vocabulary language models (Liger Kernel's fused
  linear cross-entropy, for example) compute the output projection and the
  loss chunk by chunk so that the full $(N, V)$ logits are never stored.
* **Eager versus compiled.** tinytorch, like PyTorch without
  `torch.compile`, runs one kernel per operation as Python reaches it, so it
  can fuse only inside one function that knows the whole computation, as our
  cross-entropy does. A compiler sees the graph ahead of time and can fuse
  across layer boundaries (a `Linear`'s bias with the `ReLU` after it, say),
  which an eager framework cannot do without being told.

## Integration: the course's models train with the fused loss

The reference CNN of chapter 06, trained for one step with chapter 10's SGD
on a batch of 64 CIFAR-sized images, once with chapter 05's composite loss and
once with the installed kernel, from the same weights. The losses and every
gradient agree; then we time the two steps, alternating between them.
"""


# %%
def reference_cnn():
    return Sequential(
        Conv2d(3, 32, 3), ReLU(), MaxPool2d(2),       # (N, 32, 30, 30) -> (N, 32, 15, 15)
        Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),      # (N, 64, 13, 13) -> (N, 64, 6, 6)
        Flatten(), Linear(2304, 256), ReLU(), Linear(256, 10))


def training_step(model, optimizer, inputs, targets, kernel):
    optimizer.zero_grad()
    with cross_entropy_kernel(kernel):
        loss = CrossEntropyLoss()(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


init.manual_seed(0)
models = {"composite": reference_cnn(), "fused": reference_cnn()}
models["fused"].load_state_dict(models["composite"].state_dict())
optimizers = {name: SGD(model.parameters(), lr=0.01, momentum=0.9) for name, model in models.items()}
kernel_of = {"composite": None, "fused": softmax_cross_entropy_rows}
images = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
labels = rng.integers(0, 10, 64)
losses = {name: training_step(models[name], optimizers[name], images, labels, kernel_of[name]) for name in models}
for (name, p), q in zip(models["composite"].named_parameters(), models["fused"].parameters()):
    np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=1e-4, atol=1e-6, err_msg=name)
print(f"first step: loss {losses['composite']:.6f} (composite) vs {losses['fused']:.6f} (fused); every gradient agrees")

step_times = {name: [] for name in models}
for _ in range(6):
    for name in models:                                  # alternate, so a busier machine slows both alike
        start = time.perf_counter()
        training_step(models[name], optimizers[name], images, labels, kernel_of[name])
        step_times[name].append(1000 * (time.perf_counter() - start))
cnn_ms = {name: min(t) for name, t in step_times.items()}
print(f"reference CNN training step (fastest of 6): {cnn_ms['composite']:.1f} ms composite, {cnn_ms['fused']:.1f} ms fused "
      f"(ratio {cnn_ms['composite'] / cnn_ms['fused']:.2f})")
assert 0.67 < cnn_ms["composite"] / cnn_ms["fused"] < 1.5, "the text says the two steps take about the same time"

# %% [markdown]
r"""
For the CNN the two steps take about the same time (the cell checks a
ratio between 0.67 and 1.5, a band this noisy a measurement needs): with 10
classes the loss takes the fraction of a millisecond in the first row of the
fusion table, of a step that takes tens of milliseconds, so whatever the
fusion saves is within the noise of the convolutions. Fusion
pays where the loss is a large share of the work, as in a language model,
whose output layer projects every token onto the whole vocabulary. Here is
such an output layer on its own: 2048 token vectors of width 128, a
`Linear(128, 4096)` to the vocabulary, and the loss.
"""

# %%
init.manual_seed(0)
head = Linear(128, 4096)
tokens = Tensor(rng.standard_normal((2048, 128)).astype(np.float32))
next_ids = rng.integers(0, 4096, 2048)


def head_step(kernel):
    head.zero_grad()
    with cross_entropy_kernel(kernel):
        loss = cross_entropy(head(tokens), next_ids)
    loss.backward()
    return loss.item()


np.testing.assert_allclose(head_step(None), head_step(softmax_cross_entropy_rows), rtol=1e-5)
head_times = {"composite": [], "fused": []}
for _ in range(4):
    for name, kernel in (("composite", None), ("fused", softmax_cross_entropy_rows)):
        start = time.perf_counter()
        head_step(kernel)
        head_times[name].append(1000 * (time.perf_counter() - start))
head_ms = {name: min(t) for name, t in head_times.items()}
print(f"language-model head (2048 tokens, vocabulary 4096), forward + backward: "
      f"{head_ms['composite']:.1f} ms composite, {head_ms['fused']:.1f} ms fused "
      f"({head_ms['composite'] / head_ms['fused']:.2f}x)")
assert head_ms["composite"] / head_ms["fused"] > 1.1, "the text says the fused loss takes a visible share off"

# %% [markdown]
r"""
With a 4096-word vocabulary the logits are 32 MiB, far more than the layer's
weights (2 MiB) and inputs (1 MiB), and the fused loss takes a visible share
off the step (the printed ratio; the cell checks more than 1.1×, and it is
usually well above that). Language models with vocabularies of 50,000 words and more are
where libraries go further and never store the logits at all.
"""

# %% [markdown]
r"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_matmul_naive()
    test_unit_matmul_blocked()
    test_unit_transpose_blocked()
    test_unit_conv2d_direct()
    test_unit_conv2d_channels_last()
    test_unit_batch_norm_and_pool_kernels()
    test_unit_softmax_cross_entropy()
    print("All tests of chapter 14 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Where blocking stops helping.** Our panel experiment flattened out at
some depth $T$. Using this chapter's estimate $I \approx T/8$ and the
rates you measured, at what intensity did the kernel stop being limited by
memory? If the matrices no longer fitted in the L3 cache, would the bend
move to a larger or a smaller $T$, and why?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_where_blocking_stops", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Read the bend off the table: on the machine this key was
written on the rate went 12.5, 20, 36, 58, 78, 103, 115, 128, 137 GFLOP/s for
$T$ = 2 … 512, i.e. almost ×1.6–1.8 per doubling up to $T = 16$ and barely
×1.1 per doubling from $T = 64$ on. The bend is at $T \approx 16$–32, an
intensity of about 2–4 FLOP/byte. Consistency check: at $T = 2$ the rate is
12.5 GFLOP/s at 0.25 FLOP/byte, so the kernel streamed about 50 GB/s (cache
bandwidth, since 1 MiB matrices live in L2/L3); the plateau is about
140 GFLOP/s, so the ridge is 140 / 50 ≈ 3 FLOP/byte, where the bend is.
Matrices too large for L3 stream from main memory, whose bandwidth is several
times lower (chapter 15 measures about 10–15 GB/s per core), so the ridge
moves to about 140 / 14 ≈ 10 FLOP/byte, i.e. $T \approx 8 \times 10 = 80$:
the bend moves to a *larger* $T$, because each byte now costs more and more
reuse is needed to hide it. (Students' numbers will differ; the reasoning
from their own table is what counts.)

**Rubric (2 points).** 1 point for locating the bend from the measured rates
and converting $T$ to an intensity with $T/8$ (or the exact column); 1 point
for "larger $T$, because lower bandwidth raises the ridge point $P/\beta$".
### END SOLUTION
"""

# %% [markdown]
r"""
**2. A kernel for the first convolution.** The reference CNN's first layer has
3 input channels, so im2col's matmul has an inner dimension of 27 and the
direct kernel's has 3. Propose a layout of the data (think of which axis
is innermost in memory, and of PyTorch's `channels_last`) that would give
a vectorised inner loop a longer run to work on, and estimate what the
layout change itself would cost per step.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_first_convolution", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Vectorise over an axis that is long, not over $C = 3$. With
`channels_last` (NHWC) input, the 3 channels of a pixel are adjacent, so one
row of a 3×3 window is $k_w \cdot C = 9$ contiguous floats and a whole window
three runs of 9; with the weight stored as $(k_h, k_w, C, O)$ the innermost
loop can run over the $O = 32$ output channels (contiguous in an NHWC output),
a full vector register or two per multiply-add, or over output pixels along
$W$ (30 per row). The layout change costs one transposed copy of the input
batch: 64 × 3 × 32 × 32 × 4 B = 786 KB read and written, about 1.6 MB, well
under a millisecond even at a few GB/s of strided copy, against a step of tens
of milliseconds; converting the 64 × 32 × 30 × 30 output back to NCHW, if the
next layer needs it, is 7.4 MB each way, a few milliseconds at most. Keeping
the whole network in NHWC avoids both.

**Rubric (2 points).** 1 point for a layout whose innermost axis gives a long
contiguous run (NHWC with vectorisation over output channels or pixels, or
over the $k_w C$ window row); 1 point for costing the conversion from the
array sizes (under a few ms) and comparing it with the step.
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Fusing further.** Our fused forward still makes five passes over the
logits. Write down, pass by pass, what a compiled kernel that does the
forward in two passes (and the backward in one) would read and write,
and compare the bytes with the table above. Then estimate the memory of
the logits of a language model with a vocabulary of 50,000 and 8,192
tokens per batch, and explain why the largest models compute the loss
chunk by chunk instead.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_fusing_further", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Forward pass 1: read each logit once (4 B) and keep a running
row maximum and a running sum of exponentials, rescaled when the maximum
changes ("online softmax"), writing only per-row numbers. Pass 2: read each
logit again (4 B) and write the probability (4 B). Forward: 8 read + 4 written
= 12 B per logit, against 32 B (20 + 12) for our five-pass forward. Backward,
one pass: read the probability (4 B) and write the gradient (4 B), subtracting
at the target: 8 B, against 8 B for ours and 28 B for the composition. Total
20 B per logit, against 40 B (ours) and 60 B (composite). (Not storing the
probabilities at all and recomputing them from the logits in backward costs
the same bytes and saves an $(N, C)$ array of memory.) Memory for a 50,000
vocabulary and 8,192 tokens: 4.1 × 10⁸ logits × 4 B = 1.64 GB for the logits
alone, plus 1.64 GB of saved probabilities and 1.64 GB of gradient, about
5 GB for one loss. Computing the output projection and the loss chunk by chunk
(say 1,024 tokens, 205 MB of logits each), and the backward of each chunk at
once, keeps only one chunk's logits alive: memory falls by the number of
chunks for the same FLOPs.

**Rubric (2 points).** 1 point for a correct pass-by-pass byte count (about
12 B forward and 8 B backward per logit, compared with 32 + 8 and 60); 1
point for the 1.6 GB logits (≈ 5 GB with probabilities and gradient) and
"chunks keep one slice of the logits alive".
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Hooks and trust.** Chapter 05's `cross_entropy` now runs code from this
chapter. What could go wrong in a larger codebase where kernels are
swapped at import time (think of two packages installing different
kernels, or a kernel that is only right for float32), and which checks
would you insist on before a kernel may be installed? How does PyTorch's
dispatcher decide which kernel runs an operation?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_hooks_and_trust", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Risks: the last package imported wins, so results depend on
import order and change silently when an unrelated import moves; a kernel
right only for float32 loses precision (or breaks gradcheck) in float64, or
mishandles shapes, reductions, ignored indices or label smoothing it was never
written for; a kernel without a correct backward trains wrongly with no error;
a global slot is shared by threads and tests, so one test's kernel leaks into
another. Checks before installing: the kernel declares what it supports
(dtypes, shapes, options) and falls back to the reference elsewhere; it is
compared with the reference on forward values and gradients (gradcheck in
float64, tolerance in float32) in CI and ideally once at install; installation
is explicit and scoped (a context manager like `cross_entropy_kernel`),
refuses to overwrite another kernel silently, and is logged. PyTorch's
dispatcher keeps, per operator, a table of kernels keyed by *dispatch keys*;
each tensor carries a key set (its backend: CPU, CUDA, ...; and
functionalities: Autograd, Autocast, vmap, Python, ...), the keys of all
inputs (plus thread-local ones) are combined, and the highest-priority key
picks the kernel: the Autograd kernel records the graph and re-dispatches
below itself to the backend kernel. Kernels are registered per operator and
key (`TORCH_LIBRARY_IMPL`, `torch.library`), and registering a second kernel
for the same operator and key is an error or an explicit override.

**Rubric (2 points).** 1 point for at least two concrete failure modes and
at least two checks; 1 point for dispatch keys from the inputs, the
highest-priority key choosing the kernel, autograd re-dispatching to the
backend.
### END SOLUTION
"""

# %% [markdown]
r"""
**5. When Winograd pays.** F(4×4, 3×3) does 36 multiplications per output
tile of 16 where the direct form does 144. Count, per output pixel and per
input channel, the multiply-adds of the product and the numbers each
transform reads and writes, for a layer with $C$ input and $O$ output
channels; from that, explain why the kernel keeps the blocked columns for
the first layer of a CNN ($C = 3$), why backward gains more than forward,
and why a layer whose output is 13×13 gains little. Then say why F(6×6, 3×3)
(8×8 tiles, 5.1 times fewer multiplications) is rarely used in float32.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_when_winograd_pays", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Per 4×4 output tile: the products do $36\,C\,O$ multiply-adds
against $144\,C\,O$ direct, so $2.25\,C\,O$ per output pixel against $9\,C\,O$.
The input transform reads the 36 numbers of a 6×6 tile per channel and writes
36 per channel: $36 C / 16 = 2.25\,C$ numbers per output pixel each way (plus
two small matrix products over them); the output transform reads $36 O / 16 =
2.25\,O$ and writes $O$ per pixel. The products' saving grows with $C O$, the
transforms' cost with $C + O$, so Winograd pays when both are large: with
$C = 3$ the product saves $6.75 \cdot 3 \cdot 32 \approx 650$ multiply-adds per
pixel, while the output transform moves about $2.25 \cdot 32 \approx 72$
numbers each way per pixel, and each number moved costs the time of tens of
multiply-adds (a core multiplies far faster than memory delivers): the
transforms cost more than the product saves, and the (tiles, 3) @ (3, 32)
products are far too thin for BLAS anyway. Backward gains more because the transformed output gradient is computed
once and feeds both gradients, and the transformed input tiles saved by
forward are reused; forward pays its transforms for one product only. A 13×13
output needs 4×4 tiles covering 16×16: $(16/13)^2 \approx 1.5$ times the work,
which eats most of the saving. F(6×6, 3×3) needs interpolation points beyond
0, ±1, ±2 (±1/2, ±3 or similar), so the transform matrices have entries that
grow quickly and differ in magnitude: the float32 rounding error grows by
roughly an order of magnitude per step up in tile size, which is too much for
training without care (it is used in lower precision only with special
scaling, or in float64).

**Rubric (2 points).** 1 point for the per-pixel counts (2.25 C O against
9 C O; transforms proportional to C + O) and the first-layer argument; 1 point
for the backward reuse and the 13×13 tile waste, and the precision argument
for larger tiles.
### END SOLUTION
"""

# %% [markdown]
r"""
## Summary

You wrote kernels and measured what makes them fast:

* **`matmul_naive`**, **`matmul_blocked`**: from a Python loop at a fraction
  of a GFLOP/s, through one call per row, to tiles that reuse what is in
  cache, against BLAS, hundreds to thousands of times faster than the loop
  on one core.
* **Arithmetic intensity**: by changing only the depth of the panels of a
  matmul, you moved it from memory-bound to compute-bound and saw the rate
  follow the intensity, then flatten.
* **Memory layout**: strides, C and Fortran order, and what walking memory
  against its grain costs (columns against rows, `a + a.T`), a blocked
  transpose that beats `a.T.copy()`, and why BLAS takes transposed operands
  for free.
* **`conv2d_direct`**: the same convolution without the column matrix; it
  uses less memory when there are many input channels, and is slower than
  im2col on the course's layers.
* **`conv2d_channels_last`**: im2col's deep products on channels-last
  columns built a few images at a time in a reused buffer, with its own
  backward (the input gradient of a "same" convolution as a convolution):
  less memory than im2col, and faster on the layers with many channels; now
  the kernel behind `conv2d` and `nn.Conv2d` through chapter 06's hook.
* **Winograd F(4×4, 3×3)**: four times fewer multiplications for 3×3,
  stride-1 layers with many channels, as 36 batched products between
  transforms that are matrix products too, forward and both gradients;
  faster than the columns by the printed factor, at a measured cost in
  float32 precision that stays far inside the tolerances.
* **`BatchNormFused`**, **`MaxPool2dTiles`**: BatchNorm in a few passes
  each way from saved statistics, and non-overlapping max-pooling as a
  running maximum over strided views; each faster than its composition, and
  the kernels behind `nn.BatchNorm2d` and `nn.MaxPool2d`. Together they make
  the CIFAR-10 example's training step faster by the printed factor.
* **`SoftmaxCrossEntropy`**: a fused forward and backward whose gradient is
  softmax minus one-hot; fewer bytes, a fraction of the memory and graph
  nodes, faster at every size we measured, and now the kernel behind
  `cross_entropy` and `CrossEntropyLoss` through chapter 05's hook.

Next, chapter 15 builds the tools to measure all this properly: a timing
harness that survives a noisy machine, a profiler that attributes time,
memory and FLOPs to each layer of a model, and a roofline of this machine.
"""
