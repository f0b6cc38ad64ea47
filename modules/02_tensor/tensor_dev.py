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
"""
# Tensor

Every number a neural network touches lives in a tensor: the pixels of a batch
of images, the weights of a layer, the activations flowing between layers, the
gradients that update the weights. A framework is, first of all, a way of
storing those numbers and of doing arithmetic on them quickly. Everything else
in this course (layers, convolutions, attention, optimizers, a small GPT) is
written in terms of the `Tensor` you build in this chapter.

We build it on top of a NumPy array, and NumPy does the number crunching. Our
job is the layer above: deciding what a tensor *is* (its storage, dtype, shape
and strides), which operations exist, what shapes they accept and what errors
they give, which operations share memory and which copy it, and, most
importantly for later, routing every operation through a small set of
*primitives* so that chapter 09 can teach the tensor to compute gradients
without changing a line of this chapter.

**What you will be able to do afterwards**

- explain how an n-dimensional array is a flat block of memory plus a dtype,
  a shape and strides, and predict the strides of any view;
- apply the broadcasting rule by hand, and know why it costs no memory;
- say how much work and memory a matmul, an elementwise op and a reduction need;
- tell a view from a copy, and measure what a copy costs;
- use `tinytorch.Tensor`, which every later chapter imports.

The code cells marked `#| export` become `tinytorch/core/tensor.py` (the Tensor
class); cells marked `#| export core.function`, `core.shape_rules`, `core.ops` or
`core.creation` go to those files beside it (the primitives, the shape and dtype
rules, more methods and the factories), so each file stays short; the other
cells are explanations, tests and measurements.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp core.tensor

# %%
#| export
#| export core.function
#| export core.shape_rules
#| export core.ops
#| export core.creation
import numpy as np

# %%
#| export
#| export core.shape_rules
#| export core.ops
import math  # math.prod: the size of a shape, without turning a tuple into an array first

# %% [markdown]
"""
## Background

### What a tensor is: storage, dtype, shape, strides

Memory is one long row of bytes. A tensor of shape `(3, 4)` is therefore not
stored as a grid: its 12 numbers sit one after another in a single block, the
*storage*. Four facts turn that block back into a tensor:

- **storage**: where the block starts and how long it is;
- **dtype**: how to read the bytes (`float32`: every 4 bytes are one IEEE
  single-precision number);
- **shape**: how many indices each dimension has, `(3, 4)`;
- **strides**: how far to move in the storage to step one index along each
  dimension. For a `(3, 4)` float32 array stored row after row ("row-major",
  or "C order") they are `(4, 1)` in elements: the next row is 4 elements on,
  the next column 1 element on.

Element `[i, j]` lives at offset `i * stride[0] + j * stride[1]` from the start
of the storage. That single formula is what makes many operations free: a
transpose swaps the strides, a slice changes the start and the shape, a reshape
of row-major data picks new strides, and none of them touches a single number.
The result is a *view*: a new shape and new strides over the same storage.

NumPy reports strides in bytes, PyTorch (and our `Tensor.stride()`) in elements.
Let us check the formula on a real array.
"""

# %%
a = np.arange(12, dtype=np.float32).reshape(3, 4)
storage = a.reshape(-1)                       # the same 12 numbers, in memory order
print("shape", a.shape, "dtype", a.dtype, "strides in bytes", a.strides)
element_strides = tuple(s // a.itemsize for s in a.strides)
print("strides in elements", element_strides)
i, j = 1, 2
offset = i * element_strides[0] + j * element_strides[1]
print(f"a[{i}, {j}] = {a[i, j]} is storage[{offset}] = {storage[offset]}")

at = a.T                                      # a transpose swaps the strides ...
print("a.T strides in elements", tuple(s // at.itemsize for s in at.strides),
      "shares memory with a:", np.shares_memory(a, at))   # ... and copies nothing

# %% [markdown]
"""
### dtype: why deep learning uses float32

A float64 number takes 8 bytes, a float32 number 4. Halving the bytes halves
the memory a model needs, halves the bytes every operation has to move between
memory and the CPU, and doubles how many numbers fit in one SIMD register (a
256-bit AVX2 register holds 8 float32 or 4 float64 values). Neural networks do
not need 16 significant digits: their weights are noisy estimates, and float32's
7 digits are plenty (on GPUs, training often uses 16-bit formats). That is why
PyTorch's default dtype is float32, and ours too: a Python float becomes a
float32 tensor. A NumPy array you pass in keeps its dtype (and its memory), so
a float64 array stays float64 when you ask for it, which chapter 09's gradient
checks will do to get exact enough finite differences.

### Broadcasting: combining tensors of different shapes

Adding a bias of shape `(F,)` to a batch of activations of shape `(B, F)` should
add the bias to every row. NumPy's broadcasting rule, which PyTorch shares, says
when two shapes can be combined elementwise:

1. align the shapes at their **last** dimension (a missing leading dimension
   counts as 1);
2. each aligned pair of sizes must be **equal, or one of them must be 1**;
3. the result takes the larger size; a size-1 dimension is repeated to match.

So `(B, F) + (F,)` works, `(3, 1) + (1, 4)` gives `(3, 4)` (an outer sum), and
`(2, 3) + (2,)` fails: the last dimensions are 3 and 2. Repeating a dimension
costs no memory: the repeated dimension simply gets stride 0, so every step
along it reads the same numbers again.
"""

# %%
bias = np.array([10, 20, 30, 40], dtype=np.float32)
repeated = np.broadcast_to(bias, (3, 4))       # what broadcasting does, made visible
print("bias repeated over 3 rows, strides in bytes:", repeated.strides,
      "- shares memory with bias:", np.shares_memory(repeated, bias))

# %% [markdown]
"""
The figure below is drawn from real arrays by the next cell: every box shows
the offset, in elements, of the storage slot that the index reads, computed
from the array's own strides. On the left, a `(3, 4)` array and its
transpose read the same 12 slots in different orders. On the right, a column
`(3, 1)` and a row `(1, 4)` broadcast to `(3, 4)`: the repeated copies
(pale boxes) are not stored anywhere, they are the same slot read again
through a stride of 0.
"""

# %%
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle


def element_strides(array):
    return tuple(s // array.itemsize for s in array.strides)


def draw_grid(ax, array, x0, y0, title, base=None, color="#4c72b0"):
    """Draw `array` as boxes with their values; a box whose storage slot an earlier box
    already read is pale. `base` is the array whose storage the offsets count from."""
    base = array if base is None else base
    steps = element_strides(array)
    seen = set()
    rows, cols = array.shape
    for i in range(rows):
        for j in range(cols):
            offset = i * steps[0] + j * steps[1]     # the offset formula, from the strides
            repeat = offset in seen
            seen.add(offset)
            ax.add_patch(Rectangle((x0 + j, y0 - i), 1, -1, facecolor=color, alpha=0.25 if repeat else 0.85,
                                   edgecolor="black", linewidth=1))
            ax.text(x0 + j + 0.5, y0 - i - 0.38, f"{array[i, j]:g}", ha="center", va="center",
                    fontsize=10, color="black")
            ax.text(x0 + j + 0.5, y0 - i - 0.78, f"@{offset}", ha="center", va="center", fontsize=7, color="black")
    ax.text(x0, y0 + 0.35, f"{title}\nshape {array.shape}, strides {steps}", fontsize=9, va="bottom", color="black")


fig, (ax_views, ax_broadcast) = plt.subplots(1, 2, figsize=(11, 4.4), facecolor="white",
                                             gridspec_kw={"width_ratios": [1, 1.35]})
a = np.arange(12, dtype=np.float32).reshape(3, 4)
draw_grid(ax_views, a, 0, 0, "a")
draw_grid(ax_views, a.T, 5.5, 0, "a.T (a view)", color="#55a868")
for k in range(12):                                   # the storage both of them read
    ax_views.add_patch(Rectangle((k * 0.8, -5.4), 0.8, -0.8, facecolor="#dddddd", edgecolor="black"))
    ax_views.text(k * 0.8 + 0.4, -5.8, f"{a.reshape(-1)[k]:g}", ha="center", va="center", fontsize=8, color="black")
ax_views.text(0, -5.25, "storage: 12 float32 numbers, one after another (@ = offset in elements)",
              fontsize=8, va="bottom", color="black")
ax_views.set(xlim=(-0.3, 10), ylim=(-6.5, 1.6))

column = np.array([[0.0], [10.0], [20.0]], dtype=np.float32)    # (3, 1)
row = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)         # (1, 4)
draw_grid(ax_broadcast, np.broadcast_to(column, (3, 4)), 0, 0, "column (3, 1) broadcast", color="#c44e52")
draw_grid(ax_broadcast, np.broadcast_to(row, (3, 4)), 5, 0, "row (1, 4) broadcast", color="#8172b2")
draw_grid(ax_broadcast, column + row, 10, 0, "column + row: a new (3, 4)", color="#dd8452")
ax_broadcast.text(4.5, -1.5, "+", fontsize=18, ha="center", va="center", color="black")
ax_broadcast.text(9.5, -1.5, "=", fontsize=18, ha="center", va="center", color="black")
ax_broadcast.text(0, -4.0, "pale boxes read a slot already read: stride 0 repeats it, no memory is used",
                  fontsize=8, color="black")
ax_broadcast.set(xlim=(-0.3, 14.3), ylim=(-6.5, 1.6))
for ax in (ax_views, ax_broadcast):
    ax.set_facecolor("white")
    ax.set_aspect("equal")
    ax.axis("off")
fig.tight_layout()
plt.show()

assert element_strides(np.broadcast_to(column, (3, 4))) == (1, 0) and element_strides(a.T) == (1, 4)

# %% [markdown]
"""
### Matmul, reductions and what they cost

**Matrix multiplication** `C = A @ B` with `A` of shape `(m, k)` and `B` of
shape `(k, n)` computes `C[i, j] = sum over p of A[i, p] * B[p, j]`: `m * n`
outputs, each `k` multiplies and `k` adds, so **2mnk floating-point operations
(FLOPs)**. For square `n x n` matrices that is `2n³`: double `n` and the work
grows 8 times. With more than two dimensions, `@` treats the leading
dimensions as a batch (and broadcasts them): `(B, m, k) @ (k, n)` is `B`
matmuls, the shape of every attention layer in chapter 07. A 1-D operand is
treated as a row (on the left) or column (on the right) vector, and that
dimension is dropped from the result.

**Reductions** (`sum`, `mean`, `amax`) combine the numbers along one or more
axes; the reduced axis disappears from the shape, unless `keepdim=True`
keeps it with size 1 (PyTorch spells the arguments `dim` and `keepdim`; tinytorch also accepts NumPy's `axis` and `keepdims`).
`x.max(dim)` is a reduction that also says *where*: as in PyTorch it returns the
pair `(values, indices)`. Keeping the axis matters: `x - x.amax(dim=1, keepdim=True)`
has shapes `(B, C) - (B, 1)`, which broadcasts correctly, while `(B, C) - (B,)`
would fail (or, worse, when `B == C`, silently subtract the wrong numbers).

What each kind of operation costs on `N`-element tensors (itemsize 4 bytes for
float32):

| operation | arithmetic | bytes moved (at least) | bound by |
| --- | --- | --- | --- |
| `a + b`, `a * b` (two tensors in) | N | 12N (read 2, write 1) | memory bandwidth |
| `-a`, `exp(a)`, `a * 0.5` (one tensor in) | N (`exp`: a few dozen instructions each) | 8N (read 1, write 1) | memory bandwidth |
| `a.sum(axis=...)` | N | 4N (the result is small) | memory bandwidth |
| `A @ B`, both `n x n` | 2n³ | 12n² | arithmetic, for large n |
| `reshape`, `transpose`, slicing (views) | 0 | 0 | Python overhead only |
| `contiguous()` of a transposed tensor | 0 | 8N, in a cache-unfriendly order | memory latency |

The ratio of arithmetic to bytes is called *arithmetic intensity*. An
elementwise add does one FLOP per 12 bytes and a one-tensor operation one
per 8 bytes, so both wait on memory (even `exp`: on a tensor larger than the
caches, its few dozen instructions per element take less time than moving
its 8 bytes to and from main memory); a large
matmul does `n / 6` FLOPs per byte, so it can keep the CPU's arithmetic units
busy. This is why deep learning is organised around matmuls, and why the
systems analysis below measures them.

### Views and copies

A view is free and shares memory with its source; a copy allocates new
storage and moves every element. NumPy (and so our Tensor) makes a **view** for
`reshape` of row-major data, `transpose`/`permute`/`T`, and basic slicing
(`x[1:3]`, `x[:, ::2]`, `x[0]`). It makes a **copy** for fancy indexing with an
index array or a boolean mask (`x[[0, 2]]`, `x[x > 0]`), for `reshape` when the
strides cannot express the new shape (a transposed tensor flattened), for
`contiguous()` of a tensor that is not row-major, and for every arithmetic
result. Sharing memory has a consequence you must remember: writing into a
view's array changes the original too.
"""

# %% [markdown]
"""
## Implementation

### Step 1: primitives, the small set of operations everything is built from

Later in the course a network will compute a loss from millions of numbers
through hundreds of operations, and training needs the derivative of that loss
with respect to every weight. Chapter 09 builds *automatic differentiation*
for that: every operation records which inputs produced its output, and a
backward pass walks those records in reverse, applying each operation's
derivative rule.

That only works if there is a **small, fixed set of operations** whose
derivatives are known. So every operation on a tensor goes through a
*primitive*: a subclass of `Function` with a `forward` that works on plain
NumPy arrays. Subtraction is addition of a negation, division is
multiplication by a power of -1, `mean` is a sum times a constant: they are
*compositions* of primitives and need no derivative of their own. In this
chapter the primitives only compute forward values and remember what their
derivative will need. In chapter 09 each one gets a `backward` rule next to its
`forward`, and everything built on them in chapters 03 to 08 (activations,
layers, losses, convolution, attention, normalization) becomes trainable
without being rewritten.

A `Function` object is a *node* of the graph, and it is the `ctx` that
`forward` receives. Two kinds of things go onto it:

- arrays, with `ctx.save_for_backward(x, y)`: they land in the tuple
  `ctx.saved_arrays`, in that order, and chapter 09 unpacks them by position
  (`a, b = ctx.saved_arrays`);
- everything else as plain attributes: `ctx.input_shape`, `ctx.axis`,
  `ctx.keepdims`, `ctx.exponent`, `ctx.axes`, `ctx.index`.

Running an operation on *Tensors* (converting them to arrays, calling
`forward`, wrapping the result and recording the node) is `Function.apply`,
which you write in step 4, once the Tensor exists.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Function", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export core.function
class Function:
    """One primitive operation on NumPy arrays, and a node of the computation graph.

    Subclasses define `forward(ctx, *arrays, **options) -> array`; chapter 09 gives
    each one a `backward(ctx, grad) -> tuple of input gradients`. `ctx` is the node
    itself: forward stores there (with `save_for_backward`) what backward will need.
    `Function.apply`, which runs an operation on Tensors and records the node, is
    added in step 4 of this chapter, once the Tensor class exists.
    """

    # Chapter 09's `no_grad()` turns this off to skip recording the graph.
    grad_enabled = True

    def __init__(self, *inputs: "Tensor"):
        self.inputs = inputs
        self.needs_input_grad = tuple(t.requires_grad for t in inputs)
        self.saved_arrays: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_arrays = arrays

    @staticmethod
    def forward(ctx, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError(
            f"{type(ctx).__name__} has no backward rule yet: chapter 09_autograd adds them."
        )


# %% [markdown]
"""
The primitives themselves are a few lines each, and most are given below: the
arithmetic is one NumPy call, and the lesson is in what each one keeps for
later. Read them as worked examples, with the derivative that decides what to
save:

| primitive | forward | derivative | so forward keeps |
| --- | --- | --- | --- |
| `Add`, `Neg` | `a + b`, `-a` | 1, -1 | nothing |
| `Mul` | `a * b` | `b` for `a`, `a` for `b` | both inputs |
| `Exp`, `Tanh` | `exp(a)`, `tanh(a)` | `exp(a)`, `1 - tanh(a)²` | the **output** (already computed) |
| `MatMul` | `a @ b` | `grad @ bᵀ`, `aᵀ @ grad` | both inputs |
| `Sum` | `a.sum(axis)` | 1 for every summed element | input shape, `axis`, `keepdims` |
| `Reshape`, `Transpose`, `GetItem` | views | put the gradient back in place | input shape, `axes`, `index` |

Three are yours: `Pow` (`a ** p` for a number `p`: the derivative `p a^(p-1)`
needs the input and the exponent), `Log` (the derivative `1 / a` needs the
*input*, unlike `Exp`), and `Max`, the one with a real pitfall. The derivative
of a maximum is 1 at the element that won and 0 elsewhere, so chapter 09 finds
the winners with `a == out`. That comparison must broadcast, so the `out`
saved for backward has to keep the reduced axes (size 1) even when the caller
asked for `keepdims=False`; only the returned value drops them.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_primitives", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export core.function
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        # d(a + b)/da = d(a + b)/db = 1: nothing to save
        return a + b


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)                  # d(ab)/da = b, d(ab)/db = a
        return a * b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a


class Pow(Function):
    """a ** exponent for a constant (Python number) exponent."""

    @staticmethod
    def forward(ctx, a, exponent):
        """Return a ** exponent, elementwise; `a` is an array, `exponent` a Python number.

        Save for chapter 09's pow_backward, which computes exponent * a ** (exponent - 1):
        the input array with ctx.save_for_backward(a) (so ctx.saved_arrays == (a,)),
        and the number as the attribute ctx.exponent (it is an option, not an array).
        """
        ### BEGIN SOLUTION
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a ** exponent
        ### END SOLUTION


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)                   # d(e^a)/da = e^a: the output itself
        return out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        """Return the natural log of `a`, elementwise (same shape and dtype as `a`).

        Save the *input*: chapter 09's log_backward reads `(a,) = ctx.saved_arrays`
        and returns grad / a. Saving the output instead (as Exp does) would be wrong.
        """
        ### BEGIN SOLUTION
        ctx.save_for_backward(a)
        return np.log(a)
        ### END SOLUTION


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)                   # d(tanh a)/da = 1 - tanh(a)^2
        return out


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)                  # grad @ b.T and a.T @ grad need both
        if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous:
            # A batch times one matrix (every Linear layer): one tall product instead of one per
            # batch element, which BLAS runs faster. The reshapes are views: nothing is copied.
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + b.shape[1:])
        return np.matmul(a, b)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        # Backward broadcasts the gradient back over the summed axes: it needs all three.
        ctx.input_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)


class Max(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        """The largest values of `a` along `axis` (None: all axes; an int or a tuple of ints).

        Returns: shape of `a` with the `axis` dimensions removed, or kept as size 1 if keepdims.
        Save for chapter 09's max_backward: ctx.input_shape, ctx.axis, ctx.keepdims (as Sum
        does), and ctx.save_for_backward(a, out) where `out` KEEPS the reduced axes (compute
        it with keepdims=True), so that `a == out` broadcasts; return it squeezed
        (np.squeeze(out, axis=axis)) only when keepdims is False.
        Pitfall: saving the squeezed result breaks `a == out` for axis=0 vs axis=1.
        """
        ### BEGIN SOLUTION
        ctx.input_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        out = np.max(a, axis=axis, keepdims=True)
        ctx.save_for_backward(a, out)
        return out if keepdims else np.squeeze(out, axis=axis)
        ### END SOLUTION


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape                    # the gradient is reshaped back to it
        return a.reshape(shape)


class Transpose(Function):
    """Permute axes: `axes[i]` is the input axis that becomes output axis i."""

    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes                              # backward applies the inverse permutation
        return np.transpose(a, axes)


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.input_shape, ctx.index = a.shape, index  # backward scatters into zeros of this shape
        return a[index]


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.input_dtype = a.dtype                    # backward casts the gradient back
        return a.astype(dtype)


class TakeAlong(Function):
    """np.take_along_axis(a, indices, axis): what max(dim) and min(dim) pick (torch.gather's forward)."""

    @staticmethod
    def forward(ctx, a, indices, axis):
        ctx.input_shape, ctx.indices, ctx.axis = a.shape, indices, axis   # backward puts the gradient back
        return np.take_along_axis(a, indices, axis=axis)


# %% [markdown]
"""
**What the next test checks, and why.** Each primitive's `forward` is called
directly on NumPy arrays, with a fresh node as `ctx`, and compared with values
worked out by hand. This pins down the contract chapter 09 relies on: forward
takes and returns plain arrays (no Tensors inside), `Max` without `keepdims`
drops the reduced axis, and each primitive saves *exactly the fields chapter
09's backward rules read*: the arrays in `ctx.saved_arrays` (both inputs of
`Mul` and `MatMul`, the input of `Pow` and `Log`, the output of `Exp` and
`Tanh`, the input and the kept-axes maximum of `Max`) and the attributes
(`exponent`, `input_shape`, `axis`, `keepdims`, `axes`, `index`). A primitive
that computes the right value but forgets what to save would pass every test
of this chapter and break chapter 09, so the test names the missing field. It
also checks that a primitive without a backward rule says which chapter adds
one.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_primitives", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _expect_saved(ctx, *expected):
    """The arrays in ctx.saved_arrays must be `expected` (by value and shape), in this order."""
    name = type(ctx).__name__
    saved = ctx.saved_arrays
    assert len(saved) == len(expected), (
        f"{name}.forward must save {len(expected)} array(s) with ctx.save_for_backward(...): "
        f"ctx.saved_arrays holds {len(saved)}; chapter 09's backward rule unpacks them")
    for position, (got, want) in enumerate(zip(saved, expected)):
        got = np.asarray(got)
        assert got.shape == want.shape and np.allclose(got, want), (
            f"{name}.forward: ctx.saved_arrays[{position}] should be the array of shape {want.shape} "
            f"that chapter 09's backward rule reads, got shape {got.shape}")


def _expect_field(ctx, field, value):
    """ctx.<field> must exist and equal `value`: chapter 09's backward rule reads it."""
    name = type(ctx).__name__
    assert hasattr(ctx, field), f"{name}.forward must set ctx.{field}: chapter 09's backward rule reads it"
    assert getattr(ctx, field) == value, f"{name}.forward: ctx.{field} should be {value!r}, got {getattr(ctx, field)!r}"


def test_unit_primitives():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([10.0, 20.0], dtype=np.float32)
    assert Function().saved_arrays == (), "a node saves nothing until forward asks"

    assert np.array_equal(Add.forward(Add(), a, b), [[11, 22], [13, 24]])
    ctx = Mul()
    assert np.array_equal(Mul.forward(ctx, a, b), [[10, 40], [30, 80]])
    assert ctx.saved_arrays[0] is a and ctx.saved_arrays[1] is b, "Mul must save both inputs"
    assert np.array_equal(Neg.forward(Neg(), a), -a)

    ctx = Pow()
    assert np.array_equal(Pow.forward(ctx, a, 2), [[1, 4], [9, 16]]), "Pow.forward must return a ** exponent"
    _expect_saved(ctx, a)
    _expect_field(ctx, "exponent", 2)
    assert np.allclose(Pow.forward(Pow(), a, -0.5), a ** -0.5)

    ctx = Exp()
    out = Exp.forward(ctx, a)
    assert np.allclose(out, np.exp(a)) and ctx.saved_arrays[0] is out, "Exp saves its output"
    ctx = Log()
    assert np.allclose(Log.forward(ctx, a), np.log(a)), "Log.forward must return np.log(a)"
    _expect_saved(ctx, a)                                      # the input, not the output
    ctx = Tanh()
    out = Tanh.forward(ctx, a)
    assert np.allclose(out, np.tanh(a)) and ctx.saved_arrays[0] is out, "Tanh saves its output"
    ctx = MatMul()
    assert np.array_equal(MatMul.forward(ctx, a, a), [[7, 10], [15, 22]])
    _expect_saved(ctx, a, a)

    ctx = Sum()
    assert np.array_equal(Sum.forward(ctx, a, axis=0), [4, 6])
    for field, value in (("input_shape", (2, 2)), ("axis", 0), ("keepdims", False)):
        _expect_field(ctx, field, value)
    assert Sum.forward(Sum(), a, axis=1, keepdims=True).shape == (2, 1)

    ctx = Max()
    assert np.array_equal(Max.forward(ctx, a, axis=1), [2, 4]), "Max without keepdims drops the axis"
    for field, value in (("input_shape", (2, 2)), ("axis", 1), ("keepdims", False)):
        _expect_field(ctx, field, value)
    _expect_saved(ctx, a, np.array([[2.0], [4.0]]))            # out saved with the axis kept: (2, 1)
    ctx = Max()
    assert np.array_equal(Max.forward(ctx, a, axis=0, keepdims=True), [[3, 4]])
    _expect_saved(ctx, a, np.array([[3.0, 4.0]]))
    _expect_field(ctx, "keepdims", True)
    ctx = Max()
    assert Max.forward(ctx, a).shape == () and float(Max.forward(Max(), a)) == 4.0
    _expect_field(ctx, "axis", None)
    _expect_saved(ctx, a, np.array([[4.0]]))                   # all axes kept: (1, 1)
    ### BEGIN HIDDEN TESTS
    over_both_axes = Max()
    assert Max.forward(over_both_axes, a, axis=(0, 1)).shape == (), "Max over a tuple of axes"
    _expect_saved(over_both_axes, a, np.array([[4.0]]))
    ### END HIDDEN TESTS

    ctx = Reshape()
    assert Reshape.forward(ctx, a, (4,)).shape == (4,)
    _expect_field(ctx, "input_shape", (2, 2))
    ctx = Transpose()
    assert np.array_equal(Transpose.forward(ctx, a, (1, 0)), a.T)
    _expect_field(ctx, "axes", (1, 0))
    ctx = GetItem()
    assert np.array_equal(GetItem.forward(ctx, a, (slice(None), 1)), [2, 4])
    _expect_field(ctx, "input_shape", (2, 2))
    _expect_field(ctx, "index", (slice(None), 1))

    try:
        Add.backward(Add(), a)
    except NotImplementedError as err:
        assert "09" in str(err)
    else:
        raise AssertionError("a primitive without a backward rule must say so")
    print("✓ primitives compute forward values and save every field chapter 09's backward rules read")


test_unit_primitives()

# %% [markdown]
"""
### Step 2: the shape rules

Before an operation runs, its shapes must fit, and when they do not, the error
should say so in terms of the tensors the learner wrote, not in terms of
NumPy's internals. Three small pure functions hold all of the shape logic:

- `broadcast_shape(op, a, b)` implements the broadcasting rule from the
  background section, right to left over the aligned dimensions. One detail: a
  size-0 dimension broadcast against size 1 gives 0 (an empty batch stays
  empty), so the result is "the size that is not 1", not the larger one.
- `matmul_shape(a, b)` promotes a 1-D left operand to a row `(1, k)` and a 1-D
  right operand to a column `(k, 1)`, checks the inner dimensions, broadcasts
  the batch dimensions, and drops the dimensions that promotion added.
- `resolve_shape(shape, current)` fills in a single `-1` in a reshape target
  and checks the element count.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_broadcast_shape", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export core.shape_rules
from typing import NamedTuple

def broadcast_shape(op: str, a: tuple, b: tuple) -> tuple:
    """The shape of `a op b` under the broadcasting rule, or a one-line ValueError.

    Args: op, the operation's name for the message ("add"); a, b: shapes (tuples of ints).
    Returns: the broadcast shape, e.g. (3, 1) and (1, 4) -> (3, 4), (2, 3) and (3,) -> (2, 3).
    """
    # Walk the dimensions from the last one (i = 1, 2, ... as index -i); a shape that has
    # run out of dimensions contributes size 1. Sizes must be equal or one of them 1.
    # Pitfall: the result is "the size that is not 1", not max(): (0,) with (1,) gives 0.
    # The error names op and both shapes: "add: shapes (2, 3) and (2,) cannot be broadcast ...".
    ### BEGIN SOLUTION
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and da != 1 and db != 1:
            raise ValueError(f"{op}: shapes {a} and {b} cannot be broadcast together: dimension {-i} "
                             f"is {da} vs {db} (sizes must be equal or 1; reshape or unsqueeze one operand)")
        out.append(db if da == 1 else da)
    return tuple(reversed(out))
    ### END SOLUTION


def reduction_args(dim, keepdim, axis, keepdims):
    dim = axis if dim is None else dim
    dim = tuple(dim) if isinstance(dim, list) else dim
    return dim, bool(keepdim if keepdims is None else keepdims)


def check_dim(dim: int, ndim: int, name: str) -> int:
    """`dim` as a non-negative index into `ndim` dimensions, or PyTorch's IndexError."""
    n = max(ndim, 1)                                 # a 0-d tensor accepts dim 0 and -1, as in PyTorch
    if not -n <= dim < n:
        raise IndexError(f"{name}: dimension {dim} is out of range for a {ndim}-D tensor "
                         f"(expected a dim in [{-n}, {n - 1}])")
    return dim % n


class max_result(NamedTuple):                         # what torch.return_types.max holds
    values: "Tensor"
    indices: "Tensor"


class min_result(NamedTuple):
    values: "Tensor"
    indices: "Tensor"


max_result.__name__, min_result.__name__ = "max", "min"   # printed as torch prints them: max(values=..., indices=...)


def numeric_array(data, dtype) -> np.ndarray:
    """np.asarray(data, dtype), refusing what is not numbers (strings, None, ragged lists) in one line."""
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} data ({str(err).split(';')[0]}); "
                        "pass a number, a rectangular nested list of numbers or a NumPy array") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} data of dtype {array.dtype} "
                        f"({data!r:.40}); pass numbers (bool, int or float)")
    return array


def _category(dtype: np.dtype) -> int:
    return {"b": 0, "i": 1, "u": 1, "f": 2}[dtype.kind]


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """PyTorch's promotion: dimensioned operands decide, unless a 0-d one is of a higher category."""
    result = None
    for dimensioned in (True, False):
        group = [a.dtype for a in arrays if (a.ndim > 0) == dimensioned]
        if group:                                    # within a group the highest category wins whole:
            top = max(_category(d) for d in group)   # int64 with float32 is float32 (NumPy says float64)
            dtype = np.result_type(*(d for d in group if _category(d) == top))
            if result is None or _category(dtype) > _category(result):
                result = dtype
    return result


def matmul_shape(a: tuple, b: tuple) -> tuple:
    """The shape of `a @ b` (a 1-D operand is promoted to a matrix, then that dimension dropped).

    Examples: (2, 3) @ (3, 4) -> (2, 4); (3,) @ (3, 4) -> (4,); (3,) @ (3,) -> ();
    (5, 1, 2, 3) @ (4, 3, 6) -> (5, 4, 2, 6).
    """
    # 1. Refuse 0-d operands. Promote a 1-D left operand to (1, k), a 1-D right one to (k, 1).
    # 2. The left's last dimension must equal the right's second-to-last, else a ValueError
    #    starting "matmul: (2, 3) @ (4, 5): inner dimensions 3 and 4 differ ...".
    # 3. The leading (batch) dimensions broadcast: reuse broadcast_shape on a[:-2], b[:-2].
    # 4. Result: batch + (rows of a,) + (columns of b,), leaving out what step 1 added.
    ### BEGIN SOLUTION
    if not a or not b:
        raise ValueError(f"matmul: {a} @ {b}: both operands need at least one dimension (use * for scalars)")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: {a} @ {b}: inner dimensions {a2[-1]} and {b2[-2]} differ "
                         "(the left's last dimension must equal the right's second-to-last)")
    try:
        batch = broadcast_shape("matmul", a2[:-2], b2[:-2])
    except ValueError:
        raise ValueError(f"matmul: {a} @ {b}: batch dimensions {a2[:-2]} and {b2[:-2]} "
                         "cannot be broadcast together") from None
    return batch + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    ### END SOLUTION


def resolve_shape(shape: tuple, current: tuple) -> tuple:
    """`shape` with a single -1 filled in, checked to hold as many elements as `current`.

    Examples: (3, -1) for current (2, 6) -> (3, 4); (-1,) for (2, 3, 4) -> (24,).
    """
    # The -1 becomes (elements of current) // (product of the other sizes), but only if there
    # is exactly one -1 and that division is exact (and the product is not 0).
    # Then refuse any negative size or a wrong element count with a ValueError that names
    # `current`, its element count ("12 elements") and the requested shape.
    ### BEGIN SOLUTION
    size = math.prod(current)
    shape = tuple(int(d) for d in shape)
    unknown = [i for i, d in enumerate(shape) if d == -1]
    known = math.prod(d for d in shape if d != -1)
    if len(unknown) == 1 and known > 0 and size % known == 0:
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    if any(d < 0 for d in shape) or math.prod(shape) != size:
        raise ValueError(f"reshape: cannot reshape {current} ({size} elements) into {shape}; "
                         f"the new shape must hold {size} elements, with at most one -1")
    return shape
    ### END SOLUTION



# %%
#| export
# Two helpers of the Tensor's methods: bring an operand to the common dtype, and max(dim)/min(dim).
def promote(a: "Tensor", b) -> tuple["Tensor", "Tensor"]:
    """a and b (a Tensor, number or array) converted to their common dtype."""
    b = b if isinstance(b, Tensor) else a._constant(b)
    if a.data.dtype == b.data.dtype:                 # the common case, kept cheap: nothing to convert
        return a, b
    dtype = result_dtype(a.data, b.data)
    return a.to(dtype), b.to(dtype)


def _arg_extreme(a: np.ndarray, axis: int, pick) -> np.ndarray:
    """pick(a, axis, keepdims=True) for pick np.argmax or np.argmin: the first of ties, as NumPy and PyTorch.

    Along an inner axis NumPy's argmax runs one short loop per slice (many times slower than np.max for pooling
    windows), so there the index comes from the extreme and a comparison, both fast vectorised passes.
    """
    if axis == a.ndim - 1:
        return pick(a, axis=axis, keepdims=True)
    extreme = (np.max if pick is np.argmax else np.min)(a, axis=axis, keepdims=True)
    hit = a == extreme
    if np.issubdtype(a.dtype, np.floating) and np.isnan(extreme).any():
        hit |= np.isnan(a)                           # NaN is the extreme of its slice, as in PyTorch
    k = a.shape[axis]
    rank = np.arange(k, 0, -1, dtype=np.min_scalar_type(k)).reshape([-1 if i == axis else 1 for i in range(a.ndim)])
    return k - np.max(hit * rank, axis=axis, keepdims=True).astype(np.int64)   # the first hit has the top rank


def select_along(x: "Tensor", dim, keepdim: bool, pick, result, name: str):
    """(values, indices) of max(dim)/min(dim): the values gathered at `pick`'s indices."""
    if isinstance(dim, tuple):
        raise TypeError(f"{name}(dim) takes one dim, not {dim}; use a{name}(dim={dim}) to reduce over several")
    if x.ndim == 0:
        check_dim(dim, 0, name)
        return result(x, Tensor._wrap(np.asarray(0)))
    d = check_dim(dim, x.ndim, name)
    if x.shape[d] == 0:
        raise IndexError(f"{name}(dim={dim}): dimension {d} of {x.shape} is empty; there is no element to pick")
    indices = _arg_extreme(x.data, d, pick)
    values = TakeAlong.apply(x, indices=indices, axis=d)   # the gradient goes to the picked element only
    if not keepdim:
        values, indices = values.reshape(values.shape[:d] + values.shape[d + 1:]), np.squeeze(indices, d)
    return result(values, Tensor._wrap(indices))

# %% [markdown]
"""
**What the next test checks, and why.** The three rules are compared with
NumPy on cases chosen to hit each branch: missing leading dimensions, size 1 on
either side, size 0, matrix-vector and vector-vector products, batched and
broadcast batch dimensions, and reshapes with and without `-1`. It also checks
that every shape that must fail raises a `ValueError` whose message names the
operation and both shapes, because a shape mismatch is the most common bug in
deep learning code, and the error message is where the learner finds it.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_shape_rules", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_shape_rules():
    for a, b in [((2, 3), (3,)), ((3, 1), (1, 4)), ((4, 1, 5), (3, 1)), ((), (2,)), ((0,), (1,)), ((1,), (0, 1))]:
        assert broadcast_shape("add", a, b) == np.broadcast_shapes(a, b), (a, b)
    for a, b in [((2, 3), (2,)), ((3, 4), (4, 3))]:
        try:
            broadcast_shape("add", a, b)
        except ValueError as err:
            assert str(a) in str(err) and str(b) in str(err) and str(err).startswith("add:")
        else:
            raise AssertionError(f"{a} and {b} must not broadcast")

    for a, b in [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)), ((5, 2, 3), (3, 4)), ((5, 1, 2, 3), (4, 3, 6))]:
        expected = np.matmul(np.zeros(a), np.zeros(b)).shape
        assert matmul_shape(a, b) == expected, (a, b, matmul_shape(a, b), expected)
    for a, b in [((2, 3), (4, 5)), ((3,), (4,)), ((), (3,)), ((2, 2, 3), (5, 3, 4))]:
        try:
            matmul_shape(a, b)
        except ValueError as err:
            assert str(err).startswith("matmul:") and str(a) in str(err)
        else:
            raise AssertionError(f"{a} @ {b} must be refused")

    assert resolve_shape((3, -1), (2, 6)) == (3, 4)
    assert resolve_shape((-1,), (2, 3, 4)) == (24,)
    assert resolve_shape((), (1, 1)) == ()
    assert resolve_shape((2, -1), (0, 3)) == (2, 0)
    for bad in [(5,), (-1, -1), (5, -1), (-2, 6), (0, -1)]:
        try:
            resolve_shape(bad, (2, 6))
        except ValueError as err:
            assert "(2, 6)" in str(err) and "12 elements" in str(err)
        else:
            raise AssertionError(f"(2, 6) must not reshape into {bad}")
    print("✓ broadcasting, matmul and reshape shape rules agree with NumPy")


test_unit_shape_rules()

# %% [markdown]
"""
### Step 3: the Tensor

Now the class itself. It holds one NumPy array, `data`, plus three fields that
do nothing yet but are there from day one so that nothing has to change when
gradients arrive: `requires_grad` (does a gradient need to flow to this
tensor?), `grad` (where chapter 09 will store it) and `_ctx` (the `Function`
node that produced this tensor, the link backward walks through).

The class reads top to bottom in five parts:

1. **Creation and dtype rules.** `Tensor(data, dtype=None, requires_grad=False)`
   accepts numbers, nested lists, NumPy arrays and Tensors. Python floats
   become float32 and Python ints int64 (PyTorch's defaults), while a NumPy
   array keeps its dtype and is not copied, so the Tensor and the array share
   memory, just like `torch.from_numpy`. Only floating-point tensors can
   require gradients: a derivative with respect to an integer makes no sense.
2. **What the tensor is.** `shape`, `dtype`, `ndim`, `numel()`, `nbytes`,
   `stride()` (in elements, like PyTorch) and `is_contiguous()` (row-major with
   no gaps) all read the array's own metadata: none of them costs a copy.
3. **Arithmetic.** Every operator is a primitive or a composition of them.
   Binary operators check shapes first with `broadcast_shape`, so the error
   names the operator. A number takes the tensor's float dtype, so `x * 0.5`
   and `x * np.sqrt(2.0)` stay float32 (in NumPy 2, a float32 array times the
   NumPy float64 scalar `np.sqrt(2.0)` silently becomes float64). True
   division of integer tensors gives float32, as in PyTorch.
4. **Reductions and shapes.** `sum`, `mean`, `max` take NumPy's `axis` and
   `keepdims`; `reshape`, `permute`, `transpose`, `T` and indexing return views
   whenever NumPy can. `view()` is stricter: like PyTorch's, it refuses to
   copy. `contiguous()` returns the tensor itself when it is already row-major,
   else a row-major copy made of primitives (so a gradient can flow through).
5. **Comparisons** return boolean tensors that never carry gradients
   (comparing is not differentiable), and `backward()` says which chapter
   builds it.

`__array_ufunc__ = None` tells NumPy to hand mixed expressions to us: with it,
`np.float32(2) * x` and `array + x` call our reflected operators and stay
Tensors (and stay recorded in the graph), instead of NumPy converting `x` to a
plain array and returning a plain array that no gradient could flow through.
(`np.asarray(x)` still works, through `__array__`, when you do want the values.)

Two small helpers are given, because every operation uses them and step 4
needs them:

- `Tensor._wrap(array)` puts an operation's result into a Tensor *without*
  the checks and dtype rules of `__init__`: the array is already the right
  dtype, and an operation must not copy or convert it. It also turns a NumPy
  scalar (what `np.sum` returns for a full reduction) into a 0-d array, so
  `t.data` is always an `np.ndarray`.
- `t._constant(value)` turns the number in `x + 1` or `x * 0.5` into a Tensor
  to combine with `t`: a Python or NumPy number takes `t`'s dtype when `t` is
  floating (so float32 stays float32), and an array keeps its own.

The methods you write read the same way: convert the other operand with
`_constant` if it is not a Tensor, check shapes with a step 2 rule for a clear
error, and run the primitive with `Primitive.apply(...)`. That last call only
works after step 4, so the next test checks only what needs no primitive:
creation and the dtype rules. The tests of everything else follow `apply`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Tensor", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _as_float(t: "Tensor") -> "Tensor":
    return t if np.issubdtype(t.dtype, np.floating) else t.float()


class Tensor:
    """An n-dimensional array that can take part in automatic differentiation.

    `data` is the NumPy array holding the values; `requires_grad`, `grad` and `_ctx`
    (the Function that produced this tensor) are the hooks chapter 09 uses."""

    # NumPy defers to our reflected operators: np.float32(2) * t stays a Tensor.
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        """Args: data, a number, nested list, NumPy array or Tensor; dtype, None or a NumPy dtype.

        Sets self.data (an np.ndarray), self.requires_grad, self.grad = None, self._ctx = None.
        """
        # A Tensor gives its .data; then np.asarray(data, dtype=dtype) (no copy for an array).
        # With no dtype given, only for Python data (not np.ndarray / np.generic): float64
        # becomes float32, and a non-int64 integer array becomes int64.
        # Pitfall: requires_grad on a non-floating dtype is a TypeError naming the dtype.
        ### BEGIN SOLUTION
        if isinstance(data, Tensor):
            data = data.data
        array = numeric_array(data, dtype)
        if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
            if array.dtype == np.float64:
                array = array.astype(np.float32)  # Python floats become float32, as in PyTorch
            elif array.dtype.kind == "i" and array.dtype != np.int64:
                array = array.astype(np.int64)  # and Python ints int64, on every platform
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, not {array.dtype}")
        self.data = array
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        ### END SOLUTION

    @classmethod
    def _wrap(cls, array) -> "Tensor":
        """A Tensor around an op's result, without checks (the fast path); NumPy scalars become 0-d arrays."""
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.requires_grad, t.grad, t._ctx = False, None, None
        return t

    def _constant(self, value) -> "Tensor":
        """A Python number or array as a Tensor to combine with this one (x + 1, x * 0.5)."""
        if isinstance(value, np.ndarray):
            return Tensor(value)
        if np.issubdtype(self.data.dtype, np.floating):
            return Tensor._wrap(np.asarray(value, dtype=self.data.dtype))
        # An integer tensor with a Python float gives the default float32, as in PyTorch.
        is_float = isinstance(value, (float, np.floating))
        return Tensor._wrap(np.asarray(value, dtype=np.float32 if is_float else None))

    # ---- what the tensor is --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def stride(self, dim: int | None = None):
        """Steps, in elements, to the next index along each dimension (PyTorch counts elements, NumPy bytes).

        Returns: a tuple with one int per dimension, or the int for `dim` if given;
        a row-major (2, 3, 4) tensor gives (12, 4, 1), its transpose (1, 4, 12).
        """
        # self.data.strides is in bytes: divide each by self.data.itemsize (4 for float32).
        ### BEGIN SOLUTION
        steps = tuple(s // self.data.itemsize for s in self.data.strides)
        return steps if dim is None else steps[dim]
        ### END SOLUTION

    def is_contiguous(self) -> bool:
        """Row-major without gaps: NumPy keeps this fact as a flag of the array."""
        return bool(self.data.flags["C_CONTIGUOUS"])

    def contiguous(self) -> "Tensor":
        """This tensor if it is row-major without gaps, else a row-major copy (built from primitives).

        Returns: a tensor of the same shape and values whose is_contiguous() is True.
        """
        # Build the copy from Tensor operations (reshape, indexing), never from
        # np.ascontiguousarray on .data: the copy must stay in the graph for chapter 09.
        # reshape(-1) of a transposed tensor copies in row-major order, then reshape back.
        # Pitfall: a strided 1-D view (x[::2]) reshapes into itself, still strided: gather
        # its elements with an index array (x[np.arange(n)]), which always copies.
        ### BEGIN SOLUTION
        if self.is_contiguous():
            return self
        flat = self.reshape(-1)  # copies into row-major order, unless NumPy can keep a strided view
        if not flat.is_contiguous():  # a strided 1-D view such as x[::2]: gather its elements
            flat = flat[np.arange(flat.numel())]
        return flat.reshape(self.shape)
        ### END SOLUTION

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)  # NumPy refuses for more than one element, as PyTorch does

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.data.dtype}{grad})"

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t) and plotting libraries see the values (a copy only if asked for)."""
        return np.array(self.data, dtype=dtype) if copy else np.asarray(self.data, dtype=dtype)

    def item(self):
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same values, cut from the graph (shares memory, like PyTorch)."""
        return Tensor._wrap(self.data)

    def to(self, dtype) -> "Tensor":
        """This tensor in `dtype` (itself if it already is); `to("cpu")` is itself too."""
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        dtype = np.dtype(dtype)
        return self if self.dtype == dtype else Cast.apply(self, dtype=dtype)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def float(self) -> "Tensor":
        """A float32 tensor: this one if it already is, else a converted copy (a Cast node in the graph)."""
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    # ---- arithmetic: every operator is a primitive or a composition of them ------------------
    def _binary(self, op: type[Function], other, name: str) -> "Tensor":
        """Run the binary primitive `op` (Add or Mul) on self and other; `name` is for errors.

        `other` may be a Tensor, a number or an array; the result has the broadcast shape.
        """
        self, other = promote(self, other)          # given: PyTorch's dtype rules (the rest of the API)
        # 1. A non-Tensor other becomes self._constant(other) (keeps float32 float32).
        # 2. Call broadcast_shape(name, ...) on both shapes first, only for its error.
        # 3. Return op.apply(self, other): apply records the graph; never compute on .data here.
        ### BEGIN SOLUTION
        other = other if isinstance(other, Tensor) else self._constant(other)
        broadcast_shape(name, self.shape, other.shape)  # a clear error before NumPy's
        return op.apply(self, other)
        ### END SOLUTION

    def __add__(self, other):
        return self._binary(Add, other, "add")

    __radd__ = __add__

    def __mul__(self, other):
        return self._binary(Mul, other, "mul")

    __rmul__ = __mul__

    def __neg__(self):
        return Neg.apply(self)

    def __sub__(self, other):
        # a - b is a + (-b): a composition of two primitives, no Sub primitive needed.
        other = other if isinstance(other, Tensor) else self._constant(other)
        return self._binary(Add, -other, "sub")

    def __rsub__(self, other):
        return (-self)._binary(Add, other, "sub")

    def __truediv__(self, other):
        """a / b is a * b ** -1; true division of integer tensors gives float32, as in PyTorch.

        `other` may be a Tensor, a number or an array; the result has the broadcast shape.
        """
        # Compose primitives as __sub__ does: no Div primitive. Convert self, and other
        # (via _constant of the converted self), to floating with _as_float first:
        # Pitfall: an int64 tensor ** -1 would be integer power (NumPy refuses it).
        # Then multiply with _binary(Mul, ..., "div") so a shape error says "div:".
        ### BEGIN SOLUTION
        a = _as_float(self)
        b = _as_float(other if isinstance(other, Tensor) else a._constant(other))
        return a._binary(Mul, b ** -1, "div")
        ### END SOLUTION

    def __rtruediv__(self, other):
        return _as_float(self) ** -1 * other

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; use a number as the exponent, or (b * a.log()).exp()")
        return Pow.apply(self, exponent=exponent)

    def __rpow__(self, base):
        """number ** tensor, as exp(tensor * ln(number)); the number must be positive."""
        if np.ndim(base) != 0 or not base > 0:
            raise ValueError(f"number ** tensor needs a positive number as the base, not {base!r}")
        return (self * float(np.log(base))).exp()

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        matmul_shape(self.shape, other.shape)  # a clear error before NumPy's
        if self.dtype != other.dtype:           # PyTorch does not promote in matmul: a float64 batch
            raise TypeError(f"matmul: {self.shape} {self.dtype} @ {other.shape} {other.dtype}: dtypes differ; "
                            "convert one operand, e.g. x.float() for a float32 layer")
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return Tensor(other) @ self

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sqrt(self):
        return self ** 0.5

    # ---- reductions ----------------------------------------------------------------------
    # PyTorch spells the reduction arguments dim/keepdim; NumPy's axis/keepdims are accepted too.
    def sum(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        dim, keepdim = reduction_args(dim, keepdim, axis, keepdims)
        return Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The average over `dim` (None: all elements; an int, negative int or tuple of ints).

        A composition: self.sum(dim, keepdim) divided by the number of elements summed.
        """
        # Normalise the arguments with reduction_args first (it accepts axis/keepdims too).
        # Pitfall: divide by the count of the REDUCED elements (the product of the sizes of
        # the dims reduced over), not by numel(), unless dim is None. Stays float32.
        ### BEGIN SOLUTION
        dim, keepdim = reduction_args(dim, keepdim, axis, keepdims)
        count = self.numel() if dim is None else math.prod(self.shape[d] for d in np.atleast_1d(dim))
        return self.sum(dim, keepdim) / count
        ### END SOLUTION

    def amax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The largest values over `dim` (None: all; an int or a tuple of ints); ties share the gradient."""
        dim, keepdim = reduction_args(dim, keepdim, axis, keepdims)
        return Max.apply(self, axis=dim, keepdims=keepdim)

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """As in PyTorch: max() is the largest element; max(dim) the pair (values, indices).

        `values, indices = x.max(dim=1)`, or `x.max(1).values`; `amax` reduces over several dims.
        """
        dim, keepdim = reduction_args(dim, keepdim, axis, keepdims)
        if dim is None:
            return Max.apply(self, axis=None, keepdims=keepdim)
        return select_along(self, dim, keepdim, np.argmax, max_result, "max")

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None) -> "Tensor":
        dim = axis if dim is None else dim
        return Tensor._wrap(np.asarray(np.argmax(self.data, axis=dim, keepdims=keepdim and dim is not None)))

    # ---- shape: views where NumPy can make them --------------------------------------------
    def reshape(self, *shape):
        """The same elements in a new shape: x.reshape(3, -1) or x.reshape((3, -1)).

        A view when the strides allow it (NumPy decides), else a copy.
        """
        # Accept both call styles: one tuple/list argument, or the sizes as separate arguments.
        # Resolve the -1 and check the count with resolve_shape (step 2), then run Reshape.apply
        # with the keyword shape=...: options go to forward as keywords, never as inputs.
        ### BEGIN SOLUTION
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=resolve_shape(shape, self.shape))
        ### END SOLUTION

    def view(self, *shape):
        """reshape that never copies: like PyTorch's, it refuses when the strides do not allow a view.

        Raises: RuntimeError naming the shape, the strides and the remedy (reshape() or contiguous()).
        """
        # Reshape first, then ask whether the result's .data still shares memory with self.data
        # (np.may_share_memory): if not, NumPy had to copy, so refuse.
        # Pitfall: an empty tensor shares no memory with anything; only refuse when numel() > 0.
        ### BEGIN SOLUTION
        out = self.reshape(*shape)
        if out.numel() and not np.may_share_memory(out.data, self.data):
            raise RuntimeError(f"view: shape {self.shape} with strides {self.stride()} cannot be viewed as "
                               f"{out.shape} without a copy; use reshape() or contiguous().view()")
        return out
        ### END SOLUTION

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(*self.shape[:start], math.prod(self.shape[start:end + 1]), *self.shape[end + 1:])

    def unsqueeze(self, dim: int):
        dim = check_dim(dim, self.ndim + 1, "unsqueeze")   # one more dim than the tensor has
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def permute(self, *dims):
        """Reorder all the dimensions: a (2, 3, 4) tensor .permute(2, 0, 1) has shape (4, 2, 3).

        Accepts permute(2, 0, 1) or permute((2, 0, 1)); negative dims count from the end.
        """
        for d in (dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims):
            check_dim(d, self.ndim, "permute")      # given: an IndexError for a dim out of range
        # Check that dims (taken modulo ndim) are an ordering of 0 .. ndim - 1, or raise a
        # ValueError naming dims and the shape; then Transpose.apply(self, axes=...) with the
        # non-negative dims: Transpose's axes[i] is the input axis that becomes output axis i.
        ### BEGIN SOLUTION
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not an ordering of the {self.ndim} dimensions of {self.shape}")
        return Transpose.apply(self, axes=tuple(d % self.ndim for d in dims))
        ### END SOLUTION

    def transpose(self, dim0: int = -2, dim1: int = -1):
        """Swap two dimensions (PyTorch's meaning; NumPy's `transpose` reverses them all).

        A (2, 3, 4) tensor .transpose(0, 2) has shape (4, 3, 2); by default the last two swap.
        """
        dim0, dim1 = check_dim(dim0, self.ndim, "transpose"), check_dim(dim1, self.ndim, "transpose")  # given
        # Start from the identity ordering [0, 1, ..., ndim - 1], swap positions dim0 and dim1
        # (negative values index from the end, as list indices do), and run Transpose.apply
        # with axes= that tuple. A view: no data moves, only the strides are swapped.
        ### BEGIN SOLUTION
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Transpose.apply(self, axes=tuple(axes))
        ### END SOLUTION

    @property
    def T(self):
        return Transpose.apply(self, axes=tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        """Basic indexing and slicing give views; index arrays, lists and masks (Tensors too) copy."""
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return GetItem.apply(self, index=index.data if isinstance(index, Tensor) else index)

    # ---- comparisons give boolean tensors that carry no gradient -------------------------------
    def _compare(self, other, op) -> "Tensor":
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self.data, other))

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    # Elementwise __eq__ would make tensors unhashable; graphs and optimizers key them by identity.
    __hash__ = object.__hash__

    def backward(self, gradient=None):
        raise RuntimeError("backward() needs autograd, which chapter 09_autograd builds.")


# %% [markdown]
"""
**What the next test checks, and why.** Creation and the dtype rules. Getting
a dtype wrong is silent: a float64 weight matrix works, but at half the speed
and twice the memory, and an int tensor divided by 2 that stays an int loses
information. So the test pins down every rule: Python floats give float32,
Python ints int64, bools stay bool, an explicit `dtype` wins, NumPy arrays keep
their dtype *and their memory* (a write to the array shows in the tensor), a
list is copied, and an integer tensor cannot require gradients. It also
checks what the tensor reports about itself (`item`, `tolist`, `repr`, and
`np.asarray`), none of which needs a primitive.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_creation", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_creation():
    assert Tensor(3.5).dtype == np.float32 and Tensor(3.5).shape == ()
    assert Tensor([[1.0, 2.0], [3.0, 4.0]]).dtype == np.float32
    assert Tensor([1, 2, 3]).dtype == np.int64
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(np.float64(2.0)).dtype == np.float64, "a NumPy scalar keeps its dtype"

    array = np.zeros(3)                       # float64
    t = Tensor(array)
    assert t.dtype == np.float64, "NumPy arrays keep their dtype"
    array[0] = 7.0
    assert t.data[0] == 7.0, "a Tensor made from an array shares its memory"
    values = [1.0, 2.0]
    t = Tensor(values)
    values[0] = 99.0
    assert t.data[0] == 1.0, "a list is copied"
    assert Tensor(Tensor([1.0])).dtype == np.float32

    try:
        Tensor([1, 2], requires_grad=True)
    except TypeError as err:
        assert "int64" in str(err)
    else:
        raise AssertionError("integer tensors cannot require gradients")
    assert Tensor([1.0], requires_grad=True).requires_grad

    assert Tensor(2.5).item() == 2.5
    assert Tensor([[1, 2]]).tolist() == [[1, 2]]
    assert np.array_equal(np.asarray(Tensor([1.0, 2.0])), [1.0, 2.0])
    assert "tensor([1., 2.], dtype=float32)" == repr(Tensor([1.0, 2.0]))
    print("✓ creation and dtype rules")


test_unit_creation()

# %% [markdown]
"""
### Step 4: `Function.apply`, the piece that records the graph

Every Tensor operation above ends in `Primitive.apply(...)`, the one place
where Tensors meet the array-level primitives of step 1. For
`Mul.apply(x, 3)` it does four things:

1. **Inputs to Tensors.** The Python number `3` becomes a Tensor with
   `like._constant(3)`, where `like` is the first input that is a Tensor (so
   `3` takes `x`'s dtype: `x * 3` stays float32).
2. **A node.** `ctx = cls(*tensors)` creates the graph node: `Function.__init__`
   stores the input Tensors (`ctx.inputs`) and which of them need a gradient
   (`ctx.needs_input_grad`).
3. **Forward on arrays.** `cls.forward(ctx, *arrays, **options)` gets the
   inputs' `.data` arrays, never Tensors, and the options (`axis=...`,
   `shape=...`) as keywords; its result is wrapped with `Tensor._wrap`.
4. **Record, only if needed.** If `Function.grad_enabled` is on and some input
   requires a gradient, the output gets `requires_grad = True` and `_ctx = ctx`:
   that link is the edge chapter 09 walks backward. Otherwise nothing is
   recorded, so inference keeps no graph (and no saved arrays) alive.

It is written as a function, made a `classmethod`, and attached to the class,
the way chapter 09 will attach `backward` to the Tensor: a class can grow
across the cells of a chapter.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_apply", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@classmethod
def apply(cls, *inputs, **options) -> Tensor:
    """Run the primitive `cls` on `inputs` (Tensors and numbers) and record the graph node.

    Args: cls, a Function subclass (Mul); inputs, its operands, at least one a Tensor;
    options, keyword arguments passed on to cls.forward (axis=..., shape=...).
    Returns: a Tensor around forward's result, with requires_grad and _ctx set only if
    Function.grad_enabled and some input requires a gradient.
    """
    # like = the first input that is a Tensor; every other input x becomes like._constant(x).
    # ctx = cls(*tensors); out = Tensor._wrap(cls.forward(ctx, *(t.data ...), **options)).
    # Pitfall: pass arrays (t.data) to forward, not Tensors, and never record when no input
    # requires a gradient (check ctx.needs_input_grad) or when Function.grad_enabled is False.
    ### BEGIN SOLUTION
    like = next(x for x in inputs if isinstance(x, Tensor))
    tensors = tuple(x if isinstance(x, Tensor) else like._constant(x) for x in inputs)
    ctx = cls(*tensors)
    out = Tensor._wrap(cls.forward(ctx, *(t.data for t in tensors), **options))
    if Function.grad_enabled and any(ctx.needs_input_grad):
        out.requires_grad = True
        out._ctx = ctx
    return out
    ### END SOLUTION


Function.apply = apply

# %% [markdown]
"""
**What the next test checks, and why.** `apply` on its own, before any
operator uses it. A test-only primitive, `Scale`, records what its `forward`
received: the test checks that forward got plain arrays and its options as
keywords, that a number became a Tensor of the other input's dtype, that the
result is a Tensor whose `.data` is an array (a full `sum` gives a NumPy
scalar, which `_wrap` turns into a 0-d array), and the recording rule: a node
and `requires_grad` when an input requires a gradient, nothing otherwise and
nothing while `Function.grad_enabled` is off. A wrong `apply` breaks every
operation of the chapter at once, so it is best caught here.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_apply", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_apply():
    class Scale(Function):
        """A primitive for this test only: a * factor, remembering what forward received."""

        @staticmethod
        def forward(ctx, a, b, factor=1.0):
            ctx.received = (a, b, factor)
            return a * b * factor

    x = Tensor([1.0, 2.0], requires_grad=True)
    out = Scale.apply(x, 3, factor=0.5)
    assert isinstance(out, Tensor) and isinstance(out.data, np.ndarray), "apply returns a Tensor around an array"
    assert np.array_equal(out.data, [1.5, 3.0]) and out.dtype == np.float32
    ctx = out._ctx
    assert isinstance(ctx, Scale), "the output's _ctx must be the node apply created"
    a, b, factor = ctx.received
    assert type(a) is np.ndarray and type(b) is np.ndarray, "forward receives arrays (t.data), not Tensors"
    assert factor == 0.5, "options reach forward as keywords"
    assert b.dtype == np.float32 and b.shape == (), "the number 3 became a 0-d float32 constant (_constant)"
    assert ctx.inputs[0] is x and isinstance(ctx.inputs[1], Tensor), "ctx.inputs holds the input Tensors"
    assert ctx.needs_input_grad == (True, False) and out.requires_grad

    plain = Scale.apply(Tensor([1.0, 2.0]), Tensor([3.0, 4.0]))
    assert not plain.requires_grad and plain._ctx is None, "no input requires a gradient: record nothing"
    assert Scale.apply(2.0, x)._ctx.inputs[1] is x, "the Tensor may come second"
    Function.grad_enabled = False
    try:
        off = Scale.apply(x, 2)
        assert not off.requires_grad and off._ctx is None, "Function.grad_enabled off: record nothing"
    finally:
        Function.grad_enabled = True

    s = Sum.apply(Tensor([1.0, 2.0]), axis=None, keepdims=False)   # np.sum returns a NumPy scalar
    assert type(s.data) is np.ndarray and s.shape == () and s.item() == 3.0, "_wrap makes a 0-d array"
    print("✓ apply runs forward on arrays, wraps the result and records the graph only when needed")


test_unit_apply()

# %% [markdown]
"""
**What the next test checks, and why.** The storage description: `nbytes`,
`numel()`, and `stride()` in elements for a fresh tensor, its transpose and a
slice, along with `is_contiguous()`. Chapter 14 (kernels) and every later
performance question depend on knowing the memory layout, so the numbers must
be exactly the ones the offset formula predicts: `(12, 4, 1)` for a row-major
`(2, 3, 4)` tensor, reversed for its transpose, doubled steps for `x[:, ::2]`.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_storage", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_storage():
    x = Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert x.numel() == 24 and x.nbytes == 96 and x.ndim == 3 and x.dim() == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and len(x) == 2
    assert x.stride() == (12, 4, 1) and x.stride(0) == 12 and x.is_contiguous()
    xt = x.T
    assert xt.shape == (4, 3, 2) and xt.stride() == (1, 4, 12) and not xt.is_contiguous()
    s = x[:, :, ::2]
    assert s.stride() == (12, 4, 2) and not s.is_contiguous()
    assert Tensor(np.zeros(5, dtype=np.float64)).nbytes == 40
    assert Tensor(np.zeros((3, 2), dtype=np.float64)).stride() == (2, 1), "strides count elements, not bytes"
    print("✓ storage, strides and contiguity")


test_unit_storage()

# %% [markdown]
"""
**What the next test checks, and why.** Elementwise arithmetic with
broadcasting. Every expected value is worked out by hand, so an operator that
does the wrong thing (a `+` that subtracts, a `/` that multiplies) fails
immediately. The broadcasting cases are the ones networks use: a bias `(F,)`
added to a batch `(B, F)`, and a column `(3, 1)` against a row `(1, 4)`. Scalars
must keep float32 (a float64 result would double memory downstream),
reflected operators (`1 - x`, `2 / x`, `2 ** x`, `np.float32(2) * x`) must
work, and an incompatible pair must raise a `ValueError` that names both
shapes.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_arithmetic", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_arithmetic():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]])
    y = Tensor([10.0, 20.0])
    assert np.array_equal((x + y).data, [[11, 22], [13, 24]])
    assert np.array_equal((x - y).data, [[-9, -18], [-7, -16]])
    assert np.array_equal((x * y).data, [[10, 40], [30, 80]])
    assert np.allclose((x / y).data, [[0.1, 0.1], [0.3, 0.2]])
    assert np.array_equal((-x).data, [[-1, -2], [-3, -4]])
    assert np.array_equal((x ** 2).data, [[1, 4], [9, 16]])
    assert np.allclose(x.sqrt().data, np.sqrt([[1, 2], [3, 4]]))
    assert np.allclose(x.exp().log().data, x.data) and np.allclose(x.tanh().data, np.tanh(x.data))

    col, row = Tensor([[1.0], [2.0], [3.0]]), Tensor([[10.0, 20.0, 30.0, 40.0]])
    assert (col + row).shape == (3, 4) and (col + row).data[2, 3] == 43.0

    for result in (x + 1, 1 + x, x * 0.5, 0.5 * x, x - 1, 1 - x, x / 3, 3 / x, x ** 0.5, x * np.sqrt(2.0), np.sqrt(2.0) * x):
        assert result.dtype == np.float32, "a Python number must not change the dtype"
    assert np.array_equal((1 - x).data, [[0, -1], [-2, -3]])
    assert np.allclose((2 / x).data, [[2, 1], [2 / 3, 0.5]])
    assert np.allclose((2 ** x).data, [[2, 4], [8, 16]])
    scaled = np.float32(2) * x
    assert isinstance(scaled, Tensor) and np.array_equal(scaled.data, [[2, 4], [6, 8]])
    assert (Tensor([1, 2]) / 2).dtype == np.float32, "true division of integers gives float32"

    try:
        Tensor(np.zeros((2, 3))) + Tensor(np.zeros(2))
    except ValueError as err:
        assert "(2, 3)" in str(err) and "(2,)" in str(err) and str(err).startswith("add:")
    else:
        raise AssertionError("(2, 3) + (2,) must raise")
    print("✓ arithmetic and broadcasting")


test_unit_arithmetic()

# %% [markdown]
"""
**What the next test checks, and why.** Matmul against a product worked out by
hand, against NumPy for the vector and batched cases (the batched case is
exactly the attention shape `(batch, T, d) @ (d, d)`), and the error messages
for inner dimensions that differ. A matmul that transposes the wrong operand
or sums over the wrong axis still returns a matrix of plausible shape, so the
test checks values, not only shapes.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_matmul", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul():
    a = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])            # (2, 3)
    b = Tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])          # (3, 2)
    assert np.array_equal((a @ b).data, [[4, 5], [10, 11]])
    assert np.array_equal((b @ a).data, [[1, 2, 3], [4, 5, 6], [5, 7, 9]])
    v = Tensor([1.0, 1.0, 1.0])
    assert np.array_equal((a @ v).data, [6, 15]) and (v @ v).shape == ()
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((4, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    out = Tensor(batch) @ Tensor(w)
    assert out.shape == (4, 5, 2) and np.allclose(out.data, batch @ w, atol=1e-6)
    assert np.allclose((batch @ Tensor(w)).data, batch @ w, atol=1e-6), "array @ tensor works too"

    try:
        a @ a
    except ValueError as err:
        assert "(2, 3) @ (2, 3)" in str(err) and "inner dimensions 3 and 2" in str(err)
    else:
        raise AssertionError("(2, 3) @ (2, 3) must raise")
    print("✓ matmul")


test_unit_matmul()

# %% [markdown]
"""
**What the next test checks, and why.** Reductions over all elements, over one
axis, over a negative axis and over a tuple of axes, with and without
`keepdims`. The `keepdims` shapes matter because they decide whether the result
broadcasts back against its input; the test uses that pattern (centering the
rows of a matrix) and checks the values. `mean` is a composition (`sum` divided
by the count), so it must count the reduced elements, not all of them.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_reductions", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_reductions():
    x = Tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    assert x.sum().item() == 21.0 and x.sum().shape == ()
    assert np.array_equal(x.sum(dim=0).data, [5, 7, 9])
    assert np.array_equal(x.sum(dim=1).data, [9, 12])
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert np.array_equal(x.sum(dim=-1).data, [9, 12])
    assert x.sum(dim=(0, 1)).item() == 21.0
    assert np.allclose(x.mean(dim=0).data, [2.5, 3.5, 4.5]) and np.isclose(x.mean().item(), 3.5)
    assert x.mean().dtype == np.float32
    assert np.array_equal(x.amax(dim=1).data, [5, 6]) and x.max().item() == 6.0
    values, indices = x.max(dim=1)                          # PyTorch's pair, not just the values
    assert np.array_equal(values.data, [5, 6]) and np.array_equal(indices.data, [1, 2])
    assert x.max(dim=0, keepdim=True).values.shape == (1, 3) and x.amax(dim=(0, 1)).item() == 6.0
    assert np.array_equal(x.argmax(dim=1).data, [1, 2]) and x.argmax().item() == 5

    centered = x - x.mean(dim=1, keepdim=True)             # (2, 3) - (2, 1)
    assert np.allclose(centered.data, [[-2, 2, 0], [0, -2, 2]])
    print("✓ reductions")


test_unit_reductions()

# %% [markdown]
"""
**What the next test checks, and why.** Views and copies. `reshape`,
`transpose`, `permute`, `T` and slicing must keep every value in the right
place *and* share memory with the source (checked with `np.shares_memory` and
by writing through the source). Fancy indexing and `contiguous()` of a
transposed tensor must copy, and the copy must be row-major. `view` must
refuse what only a copy could do, and a bad reshape must raise an error that
shows both shapes. These are the properties that later chapters (attention
splits heads with reshape and transpose) depend on.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_views", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_views():
    base = np.arange(6, dtype=np.float32)
    x = Tensor(base).reshape(2, 3)
    assert np.array_equal(x.data, [[0, 1, 2], [3, 4, 5]]) and np.shares_memory(x.data, base)
    assert x.reshape(3, -1).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert x.flatten().shape == (6,) and x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(-1).shape == (2, 3, 1)
    assert np.array_equal(x.T.data, [[0, 3], [1, 4], [2, 5]]) and np.shares_memory(x.T.data, base)
    assert np.array_equal(x.transpose(0, 1).data, x.T.data)
    y = Tensor(np.zeros((2, 3, 4)))
    assert y.permute(2, 0, 1).shape == (4, 2, 3) and y.transpose(0, 2).shape == (4, 3, 2)
    assert y.flatten(1).shape == (2, 12) and y.flatten(0, 1).shape == (6, 4)
    assert np.array_equal(x[1].data, [3, 4, 5]) and np.shares_memory(x[:, 1:].data, base)
    assert x[0, 2].item() == 2.0 and np.array_equal(x[Tensor([1, 0])].data, [[3, 4, 5], [0, 1, 2]])
    base[0] = 100.0
    assert x.data[0, 0] == 100.0 and x.T.data[0, 0] == 100.0, "views see writes to the storage"

    picked = x[[0, 1], [2, 0]]                                 # fancy indexing copies
    assert np.array_equal(picked.data, [2, 3]) and not np.shares_memory(picked.data, base)
    c = x.T.contiguous()
    assert c.is_contiguous() and np.array_equal(c.data, x.T.data) and not np.shares_memory(c.data, base)
    assert x.contiguous() is x, "an already contiguous tensor is returned as is"
    ### BEGIN HIDDEN TESTS
    strided = Tensor(np.arange(10.0))[::2]
    assert strided.contiguous().is_contiguous() and strided.contiguous().tolist() == [0, 2, 4, 6, 8]
    ### END HIDDEN TESTS

    assert np.shares_memory(x.view(3, 2).data, base)
    try:
        x.T.view(6)
    except RuntimeError as err:
        assert "reshape()" in str(err)
    else:
        raise AssertionError("view() of a transposed tensor needs a copy and must refuse")
    try:
        x.reshape(4, 2)
    except ValueError as err:
        assert "(2, 3)" in str(err) and "(4, 2)" in str(err)
    else:
        raise AssertionError("(2, 3) cannot be reshaped into (4, 2)")
    print("✓ views and copies")


test_unit_views()

# %% [markdown]
"""
**What the next test checks, and why.** The hooks for chapter 09. An
operation on a tensor that requires gradients must produce a tensor that
requires gradients and remembers its `Function` node and inputs; an operation
on plain tensors must record nothing (no memory kept alive for a graph nobody
will use), and neither must anything while `Function.grad_enabled` is off,
which is how `no_grad()` will work. Comparisons never require gradients.
`backward()` must point at the chapter that implements it.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_graph_hooks", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_graph_hooks():
    w = Tensor([1.0, 2.0], requires_grad=True)
    y = (w * 3).sum()
    assert y.requires_grad and isinstance(y._ctx, Sum)
    product = y._ctx.inputs[0]
    assert isinstance(product._ctx, Mul) and product._ctx.inputs[0] is w
    assert product._ctx.needs_input_grad == (True, False), "the constant 3 needs no gradient"

    plain = Tensor([1.0, 2.0]) * 3
    assert not plain.requires_grad and plain._ctx is None
    assert (w > 1).requires_grad is False and (w > 1).dtype == np.bool_
    assert w.detach()._ctx is None and np.shares_memory(w.detach().data, w.data)

    Function.grad_enabled = False
    try:
        assert (w * 2)._ctx is None
    finally:
        Function.grad_enabled = True
    try:
        y.backward()
    except RuntimeError as err:
        assert "09" in str(err)
    else:
        raise AssertionError("backward() must say that chapter 09 builds it")
    print("✓ graph hooks are ready for autograd")


test_unit_graph_hooks()

# %% [markdown]
"""
### The rest of the API

Everything above is what a tensor *is*. A PyTorch user also reaches for a
dozen conveniences that teach nothing new: each is a composition of the
primitives above, or one more primitive of the same kind. They are collected
here, read them once and move on; none of them is an exercise.

- **dtype rules.** `int_tensor + 0.5` is float32 (the default float type), and a
  0-d tensor is "weak": `float32_tensor * torch.tensor(2.0, dtype=float64)` stays
  float32, because a single number should not change the type of a whole batch.
  `matmul` never promotes: a float64 batch into a float32 layer is an error.
  `x.to(dtype)`, `x.float()` and `x.double()` are a `Cast` node in the graph, so
  gradients flow through them.
- **Selection.** `x.max(dim)` and `x.min(dim)` return `(values, indices)`, as in
  PyTorch (`_, predicted = logits.max(1)`); the gradient goes to the one element
  picked. `amax`/`amin` reduce over any dims and share the gradient among ties.
  `where(condition, a, b)` is the `Where` primitive; `masked_fill`, `clamp` and
  `abs` are built from it or from a constant mask.
- **Shapes.** `cat`, `stack`, `squeeze`, `expand` (the `Expand` primitive: a
  broadcast view, whose gradient the engine sums back), `repeat` (expand, then
  reshape).
- **Factories.** `tensor`, `zeros`, `ones`, `full`, `arange` and the `*_like`
  versions (random ones come with chapter 04's generator).
- **Statistics.** `var` and `std`, with `unbiased`/`correction` as in PyTorch.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export core.function
class Where(Function):
    """condition ? a : b, elementwise; the condition is an option (a boolean array), not an input."""

    @staticmethod
    def forward(ctx, a, b, condition):
        ctx.condition = condition                    # backward routes the gradient by it
        if a.dtype.kind == "f" and np.isfinite(a).all() and np.isfinite(b).all():
            # The same numbers as np.where when every value is finite (0 * x is 0), several times
            # faster here (np.where runs a masked loop; a multiply is a vector loop), and the
            # result keeps the inputs' memory layout. inf and nan need np.where: 0 * inf is nan.
            out = b * ~condition
            if a.size > 1 or a.any():                # a zero constant (ReLU's 0.0) adds nothing
                out += a * condition
            return out
        return np.where(condition, a, b)


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)             # a read-only view: no element is copied


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim, ctx.sizes = dim, [a.shape[dim] for a in arrays]   # backward splits the gradient
        return np.concatenate(arrays, axis=dim)


# %%
#| export core.ops
def _min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
    dim, keepdim = reduction_args(dim, keepdim, axis, keepdims)
    if dim is None:
        return -Max.apply(-self, axis=None, keepdims=keepdim)
    return select_along(self, dim, keepdim, np.argmin, min_result, "min")


def _amin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
    return -(-self).amax(dim, keepdim, axis=axis, keepdims=keepdims)


def _argmin(self, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:
    dim = axis if dim is None else dim
    return Tensor._wrap(np.asarray(np.argmin(self.data, axis=dim, keepdims=keepdim and dim is not None)))


def where(condition, input, other) -> Tensor:
    """input where condition holds, else other (Tensors or numbers, broadcast together)."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    if isinstance(input, Tensor):
        a, b = promote(input, other)
    elif isinstance(other, Tensor):
        b, a = promote(other, input)                # a number takes the tensor's dtype
    else:
        a, b = promote(Tensor(input), other)
    shape = broadcast_shape("where", broadcast_shape("where", condition.shape, a.shape), b.shape)
    return Where.apply(a, b, condition=np.broadcast_to(condition, shape))


def _masked_fill(self, mask, value) -> Tensor:
    return where(mask, value, self)


def _abs(self) -> Tensor:
    return self * Tensor._wrap(np.sign(self.data))   # d|x|/dx = sign(x), 0 at 0 as in PyTorch


def _clamp(self, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    out = self
    if min is not None:
        out = where(out < min, min, out)             # x == min keeps its gradient, as in PyTorch
    if max is not None:
        out = where(out > max, max, out)
    return out


def _var(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None) -> Tensor:
    """The variance over `dim`, dividing by N - correction (correction = 1 if unbiased, else 0)."""
    correction = (1 if unbiased else 0) if correction is None else correction
    dim = tuple(dim) if isinstance(dim, list) else dim
    count = self.numel() if dim is None else math.prod(self.shape[d] for d in np.atleast_1d(dim))
    deviation = self - self.mean(dim, keepdim=True)
    with np.errstate(divide="ignore", invalid="ignore"):   # N <= correction gives inf or nan, as in PyTorch
        return (deviation * deviation).sum(dim, keepdim) / max(count - correction, 0)


def _std(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None) -> Tensor:
    return _var(self, dim, unbiased, keepdim, correction=correction).sqrt()


def _squeeze(self, dim=None) -> Tensor:
    dims = range(self.ndim) if dim is None else [check_dim(d, self.ndim, "squeeze") for d in np.atleast_1d(dim)]
    drop = {d for d in dims if self.shape[d] == 1}
    return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))


def _expand(self, *sizes) -> Tensor:
    """A broadcast view: sizes of -1 keep the dimension; new dimensions may be added in front."""
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    extra = len(sizes) - self.ndim
    if extra < 0:
        raise ValueError(f"expand: {sizes} has fewer dimensions than the tensor's shape {self.shape}")
    shape = tuple(self.shape[i - extra] if n == -1 and i >= extra else n for i, n in enumerate(sizes))
    for i, n in enumerate(self.shape):
        if n != 1 and n != shape[i + extra]:
            raise ValueError(f"expand: the size {n} of dimension {i} of {self.shape} must be 1 to expand it to {shape}")
    return self if shape == self.shape else Expand.apply(self.reshape((1,) * extra + self.shape), shape=shape)


def _repeat(self, *repeats) -> Tensor:
    """Tile the tensor `repeats[i]` times along dimension i (as torch.Tensor.repeat)."""
    repeats = tuple(repeats[0]) if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)) else repeats
    if len(repeats) < self.ndim:
        raise ValueError(f"repeat: give at least one count per dimension of {self.shape}, got {repeats}")
    shape = (1,) * (len(repeats) - self.ndim) + self.shape
    interleaved = tuple(v for n in shape for v in (1, n))                 # (1, a, 1, b)
    target = tuple(v for r, n in zip(repeats, shape) for v in (r, n))     # (r1, a, r2, b)
    return self.reshape(interleaved).expand(target).reshape(tuple(r * n for r, n in zip(repeats, shape)))


def _setitem(self, index, value) -> None:
    """In-place assignment, for tensors outside the graph (PyTorch refuses it on a leaf that needs grad)."""
    if self.requires_grad and Function.grad_enabled:
        raise RuntimeError("setitem: cannot assign into a tensor that requires grad; build a new tensor "
                           "with where() or masked_fill(), or assign under no_grad()")
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    index = index.data if isinstance(index, Tensor) else index
    self.data[index] = value.data if isinstance(value, Tensor) else value


# The methods join the Tensor class (a class can grow across the cells of a chapter).
Tensor.min = _min
Tensor.amin = _amin
Tensor.argmin = _argmin
Tensor.masked_fill = _masked_fill
Tensor.abs = _abs
Tensor.clamp = _clamp
Tensor.var = _var
Tensor.std = _std
Tensor.squeeze = _squeeze
Tensor.expand = _expand
Tensor.repeat = _repeat
Tensor.__setitem__ = _setitem
Tensor.__abs__ = _abs


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension; all other sizes must agree."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: give at least one tensor")
    d = check_dim(dim, tensors[0].ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or t.shape[:d] + t.shape[d + 1:] != tensors[0].shape[:d] + tensors[0].shape[d + 1:]:
            raise ValueError(f"cat: shapes {tensors[0].shape} and {t.shape} differ outside dim {dim}; "
                             "only the size along dim may differ")
    dtype = result_dtype(*(t.data for t in tensors))
    return Cat.apply(*(t.to(dtype) for t in tensors), dim=d)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new dimension."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: give at least one tensor")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: every tensor must have one shape, got {[t.shape for t in tensors]}")
    d = check_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([t.unsqueeze(d) for t in tensors], d)


# %%
#| export core.creation
def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _size(size) -> tuple:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    dtype = dtype or (np.float32 if isinstance(fill_value, float) else None)
    return Tensor(np.full(tuple(size), fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_size(size), dtype=dtype), requires_grad=requires_grad)


def ones(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_size(size), dtype=dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Like torch.arange: int64 for whole-number arguments, else float32."""
    start, end = (0, start) if end is None else (start, end)
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else np.float32
    return Tensor(np.arange(start, end, step).astype(dtype), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)

# %% [markdown]
"""
**What the next test checks, and why.** The PyTorch behaviours above that a
learner's own code meets first: `max(dim)` unpacking into values and indices,
`int + 0.5` giving float32 and a 0-d float64 keeping float32 float32, `float()`
staying in the graph, an out-of-range dim raising `IndexError`, data that is
not numbers refused in one line, and the shape helpers giving PyTorch's shapes.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    scores = Tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.0, 0.1, 0.9]])
    _, predicted = scores.max(1)
    assert predicted.tolist() == [1, 0, 2] and scores.min(dim=1).values.shape == (3,)
    assert (Tensor([1, 2]) + 0.5).dtype == np.float32
    assert (Tensor([1.0, 2.0]) * Tensor(np.float64(2.0))).dtype == np.float32, "a 0-d tensor is weak"
    w = Tensor(np.ones(2), requires_grad=True)
    assert w.float().requires_grad and w.float()._ctx is not None, "float() must stay in the graph"
    for bad in (lambda: Tensor(np.zeros((2, 3))).permute(0, 1, 5), lambda: Tensor(np.zeros(3)).unsqueeze(2)):
        try:
            bad()
        except IndexError as err:
            assert "out of range" in str(err)
        else:
            raise AssertionError("an out-of-range dim must raise IndexError")
    try:
        Tensor("abc")
    except TypeError as err:
        assert "cannot make a tensor" in str(err)
    else:
        raise AssertionError("Tensor('abc') must be refused")
    x = arange(6).reshape(2, 3)
    assert cat([x, x], dim=1).shape == (2, 6) and stack([x, x]).shape == (2, 2, 3)
    assert x.repeat(2, 1).shape == (4, 3) and x[:1].expand(4, 3).shape == (4, 3)
    assert zeros(2, 1, 3).squeeze().shape == (2, 3) and ones(3).dtype == np.float32
    assert where(x > 2, x, 0).tolist() == [[0, 0, 0], [3, 4, 5]]
    assert np.isclose(Tensor([1.0, 2.0, 3.0, 4.0]).var().item(), 5 / 3)
    print("✓ the rest of the API behaves as PyTorch's")


test_unit_rest_of_api()


# %% [markdown]
"""
## Systems analysis

Everything in this section is measured on the machine running this chapter, so
your numbers will differ from a classmate's. Look at the ratios, which are far
more stable than the absolute times.

### Memory: float32, float64 and Python lists

A dtype fixes the cost of every element. `nbytes` gives it exactly, and Python's
`tracemalloc` (NumPy reports its array allocations to it) shows what creating a
tensor really allocates, including temporary arrays that exist only while the
constructor runs. A Python list is also measured, because that is where data
often starts: every element is a pointer to a separate float object.
"""

# %%
import tracemalloc


def traced(make):
    """Run make(); return (result, bytes still allocated, peak bytes allocated while it ran)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = make()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, current - before, peak - before


N = 1_000_000
values, list_bytes, _ = traced(lambda: [float(i) for i in range(N)])
t32, kept32, peak32 = traced(lambda: Tensor(values))
array64 = np.arange(N, dtype=np.float64)
t64, kept64, _ = traced(lambda: Tensor(array64))
down, kept_down, _ = traced(lambda: t64.float())

print(f"{N:,} numbers as ...                        bytes kept   bytes/number")
print(f"  a Python list of floats                 {list_bytes:>12,}   {list_bytes / N:6.1f}")
print(f"  Tensor(list) -> float32                 {kept32:>12,}   {kept32 / N:6.1f}"
      f"   (peak {peak32:,}: a float64 array exists while converting)")
print(f"  Tensor(float64 array), shares memory    {kept64:>12,}   {kept64 / N:6.1f}")
print(f"  float64 tensor .float() -> float32      {kept_down:>12,}   {kept_down / N:6.1f}")
print(f"nbytes: float32 {t32.nbytes:,} vs float64 {t64.nbytes:,} (ratio {t64.nbytes / t32.nbytes:.0f}x)")
list_ratio = list_bytes / kept32
print(f"The Python list costs {list_ratio:.1f} times the bytes of the float32 tensor.")
assert 6 <= list_ratio <= 10, f"the text says a list costs about 8 times a float32 tensor; measured {list_ratio:.1f}x"
assert kept64 < 1000, f"the text says wrapping an array copies nothing; measured {kept64} bytes"
del values

# %% [markdown]
"""
Three lessons. A Python list of floats costs about 8 times more than a float32
tensor (each element is an 8-byte pointer to a 24-byte float object, against 4
bytes in the tensor; the cell asserts 6 to 10 times), which is why data
pipelines keep numbers in arrays. Building a tensor
from a list briefly needs more than the tensor itself (NumPy first builds a
float64 array, then we convert it), so for large data, convert once, early.
And wrapping an existing array costs nothing, because the tensor *is* that
array: the same storage, no copy.

### Views versus copies

Which operations allocate? The table applies each operation to a 1000 × 1000
float32 tensor (4 MB) and reports whether the result shares memory with it,
how many bytes the operation allocated, and the result's strides.
"""

# %%
x = Tensor(np.random.default_rng(0).random((1000, 1000), dtype=np.float32))
operations = {
    "x.reshape(500, 2000)": lambda: x.reshape(500, 2000),
    "x.T": lambda: x.T,
    "x.transpose(0, 1)": lambda: x.transpose(0, 1),
    "x[10:20]": lambda: x[10:20],
    "x[:, ::2]": lambda: x[:, ::2],
    "x[0]": lambda: x[0],
    "x.T.reshape(-1)": lambda: x.T.reshape(-1),
    "x.T.contiguous()": lambda: x.T.contiguous(),
    "x[[0, 5, 9]]": lambda: x[[0, 5, 9]],
    "x[x > 0.5]": lambda: x[x > 0.5],
    "x + 0": lambda: x + 0,
}
print(f"{'operation':22} {'view?':6} {'bytes allocated':>16}  strides      contiguous")
view_bytes = []
for name, op in operations.items():
    result, allocated, _ = traced(op)
    shared = np.shares_memory(result.data, x.data)
    if shared:
        view_bytes.append(allocated)
    print(f"{name:22} {'view' if shared else 'COPY':6} {allocated:>16,}  {str(result.stride()):12} {result.is_contiguous()}")
print(f"every view allocated between {min(view_bytes)} and {max(view_bytes)} bytes, whatever the tensor's 4 MB")
assert max(view_bytes) < 2000, f"the text says a view costs a few hundred bytes; measured up to {max(view_bytes)}"

# %% [markdown]
"""
Views cost a few hundred bytes (a new array header) whatever the tensor's size;
copies cost the whole result. Two rows deserve a second look. `x.T.reshape(-1)`
copies even though a reshape usually does not: after a transpose, the elements
in row-major order of `x.T` are not evenly spaced in memory, so no strides can
describe them. And `x[x > 0.5]` copies, and its size depends on the data.

### Strides and contiguity: what layout costs

The strides decide the order in which memory is read. We sum every row of a
2048 × 2048 float32 array, then every column, one slice at a time (on the NumPy
arrays directly, so our Python overhead does not hide the effect), and then
compare copying the array with copying its transpose into row-major order,
which is what `contiguous()` has to do. A row is 8 KB of consecutive bytes; a
column is 2048 numbers 8 KB apart. Reading a column pays three costs that a row
does not:

- **Cache lines.** Memory reaches the CPU in 64-byte lines (16 float32
  numbers). A row uses every number of every line it fetches; a column uses 4
  bytes of each. The next 15 columns could reuse those lines, but one column
  touches 2048 lines (128 KB, more than the first-level cache), and with a
  power-of-two stride they all fall into the same few sets of the cache, so
  most are evicted before the next column comes back for them.
- **The TLB.** Every address is translated from virtual to physical memory,
  page by page, through a small cache of translations (the TLB, some 64
  entries at its first level). With 4 KB pages a row lies on two or three
  pages, while at an 8 KB stride every element of a column is on a page of its
  own, 2048 pages per column, so loads also wait for translations. (Linux may
  back a large NumPy array with 2 MB "huge" pages, which shrinks this cost:
  one more reason timings differ between machines.)
- **No vector loads.** NumPy sums a contiguous row with SIMD instructions that
  load 8 or 16 consecutive numbers at once; a strided column is loaded one
  number at a time, so the loop issues many times more load instructions.
"""

# %%
from tinytorch.utils.timing import best_time    # chapter 01: the fastest of several runs

big = Tensor(np.random.default_rng(1).random((2048, 2048), dtype=np.float32))
A = big.data
rows = best_time(lambda: [A[i, :].sum() for i in range(A.shape[0])])
cols = best_time(lambda: [A[:, j].sum() for j in range(A.shape[1])])
copy_rows = best_time(lambda: A.copy())
copy_transposed = best_time(lambda: big.T.contiguous())
print(f"sum 2048 rows one by one     {rows * 1e3:7.2f} ms  (stride {big.stride(1)} element)")
print(f"sum 2048 columns one by one  {cols * 1e3:7.2f} ms  (stride {big.stride(0)} elements)"
      f"  -> {cols / rows:.1f}x slower")
print(f"copy the array               {copy_rows * 1e3:7.2f} ms")
print(f"x.T.contiguous()             {copy_transposed * 1e3:7.2f} ms  -> {copy_transposed / copy_rows:.1f}x slower"
      " for the same bytes")
assert cols / rows >= 1.5 and copy_transposed / copy_rows >= 1.5, (
    "the text says strided reads are slower; measured "
    f"{cols / rows:.1f}x (columns) and {copy_transposed / copy_rows:.1f}x (transposed copy)")

# %% [markdown]
"""
Same numbers, same arithmetic, very different times: layout alone makes the
difference, and the three costs above add up (a stride that is not a power of
two avoids the cache-set conflicts but not the other two). This is why PyTorch code calls `.contiguous()` before operations
that want row-major data, why a transpose is free but the first operation
after it may not be, and why chapter 14 blocks its kernels to reuse each cache
line while it is loaded.
"""

# %% [markdown]
"""
### One matmul, three ways: Python loops, vectorised NumPy, BLAS

The same product `C = A @ B` of two 64 × 64 float32 matrices can be computed
at three levels, and the difference between them is the first performance
lesson of the course:

1. **Python loops**: three nested loops over Python lists, the formula
   `C[i][j] += A[i][p] * B[p][j]` written out. Every multiply-add is a handful
   of interpreted bytecodes on boxed Python floats.
2. **Vectorised NumPy**: broadcast `A[:, :, None] * B[None, :, :]` into a
   `(64, 64, 64)` array of all the products and sum over the middle axis. No
   Python loop is left: NumPy's compiled, SIMD loops do the arithmetic, but
   they write and read back all n³ products through memory.
3. **BLAS** (`np.matmul`, what our `Tensor @` calls): a kernel that keeps
   blocks of A and B in registers and caches and reuses every number loaded
   many times.

The cell times each (the fastest of several runs), checks that all three give
the same matrix, and prints the ratios. It asserts the wide bands the text
quotes: vectorising gains at least 5 times over the loops, and BLAS at least
another 3 times over vectorised NumPy, and at least a hundred times over
the loops in all. Your ratios will differ; on a quiet machine they are usually much larger.
"""

# %%
n = 64
rng = np.random.default_rng(4)
A, B = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
A_list, B_list = A.tolist(), B.tolist()


def matmul_loops():
    C = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            total = 0.0
            for p in range(n):
                total += A_list[i][p] * B_list[p][j]
            C[i][j] = total
    return C


def matmul_vectorised():
    return (A[:, :, None] * B[None, :, :]).sum(axis=1)     # (n, n, 1) * (1, n, n) -> (n, n, n), summed over p


def matmul_blas():
    return np.matmul(A, B)


reference = A.astype(np.float64) @ B.astype(np.float64)
for version in (matmul_loops, matmul_vectorised, matmul_blas):
    assert np.allclose(np.array(version()), reference, rtol=1e-4), version.__name__
loops_s = best_time(matmul_loops, repeats=3, budget=0)
vectorised_s = best_time(matmul_vectorised, repeats=10, budget=0.05)
blas_s = best_time(matmul_blas, repeats=20, budget=0.05)
flops = 2 * n ** 3
print(f"{'C = A @ B, n = 64':22} {'time':>10} {'GFLOP/s':>9} {'vs loops':>10}")
for name, seconds in (("Python loops", loops_s), ("vectorised NumPy", vectorised_s), ("BLAS (np.matmul)", blas_s)):
    print(f"{name:22} {seconds * 1e3:8.3f} ms {flops / seconds / 1e9:9.3f} {loops_s / seconds:9.0f}x")
print(f"vectorising is {loops_s / vectorised_s:.0f}x faster than the loops; BLAS is "
      f"{vectorised_s / blas_s:.0f}x faster than vectorised NumPy and {loops_s / blas_s:.0f}x faster than the loops.")
assert loops_s / vectorised_s >= 5, f"the text says vectorising gains at least 5x; measured {loops_s / vectorised_s:.1f}x"
assert vectorised_s / blas_s >= 3, f"the text says BLAS gains at least 3x more; measured {vectorised_s / blas_s:.1f}x"
assert loops_s / blas_s >= 100, f"the text says hundreds of times in all; measured {loops_s / blas_s:.0f}x"

# %% [markdown]
"""
Each step removes a different cost. The loops pay the interpreter for every
single multiply-add; vectorising moves the loop into compiled code but still
writes every product to memory (a `(64, 64, 64)` float32 temporary is 1 MB)
and reads it back; BLAS does the same arithmetic while loading each number
from memory about once. Chapter 14 builds the steps between the last two
(blocking for the caches) itself. The lesson for every chapter in between: a
Python loop over numbers is the slowest thing you can write, so tinytorch's
layers are written as a few large array operations.
"""

# %% [markdown]
"""
### Matmul: how time grows with size

Matmul does `2n³` FLOPs on `n × n` matrices, so its time should grow like
`n³`. We measure our `Tensor @` (which calls NumPy, which calls the BLAS
library that chapter 01 identified) for a few sizes, fit the exponent `p` in
`time ≈ c · nᵖ` on a log-log scale, and compute the achieved GFLOP/s (billions
of floating-point operations per second).
"""

# %%
sizes = [64, 128, 256, 512, 1024]
rng = np.random.default_rng(2)
seconds = []
for n in sizes:
    left = Tensor(rng.random((n, n), dtype=np.float32))
    right = Tensor(rng.random((n, n), dtype=np.float32))
    seconds.append(best_time(lambda: left @ right, repeats=5 if n < 1024 else 3, budget=0.2))
seconds = np.array(seconds)
gflops = 2 * np.array(sizes, dtype=float) ** 3 / seconds / 1e9
slope_all = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
slope_large = np.polyfit(np.log(sizes[-3:]), np.log(seconds[-3:]), 1)[0]
for n, s, g in zip(sizes, seconds, gflops):
    print(f"n = {n:5d}: {s * 1e3:8.3f} ms   {g:7.1f} GFLOP/s")
print(f"fitted exponent: {slope_all:.2f} over all sizes, {slope_large:.2f} over n >= {sizes[-3]} (theory: 3)")
print(f"best throughput: {gflops.max():.0f} GFLOP/s at n = {sizes[int(gflops.argmax())]}")
if any(later < 0.5 * earlier for earlier, later in zip(gflops, gflops[1:])):
    print("note: the throughput fell by more than half from one size to the next; another program was "
          "probably using the cores. Rerun this cell for cleaner numbers.")

small = Tensor(np.ones(1, dtype=np.float32))
overhead = best_time(lambda: small + small, repeats=200) - best_time(lambda: small.data + small.data, repeats=200)
print(f"Tensor overhead per operation: about {overhead * 1e6:.1f} µs")
assert overhead < 100e-6, f"the text calls the overhead microseconds; measured {overhead * 1e6:.0f} µs"

# %%
fig, (ax_time, ax_rate) = plt.subplots(1, 2, figsize=(10, 3.6), facecolor="white")
ax_time.loglog(sizes, seconds * 1e3, "o-", label="measured")
reference = seconds[-1] * 1e3 * (np.array(sizes) / sizes[-1]) ** 3
ax_time.loglog(sizes, reference, "--", color="gray", label="∝ n³")
ax_time.set(xlabel="n (matrices n × n, float32)", ylabel="time (ms)", title="matmul time")
ax_time.legend()
ax_rate.semilogx(sizes, gflops, "o-")
ax_rate.set(xlabel="n", ylabel="GFLOP/s", title="achieved throughput", ylim=(0, None))
fig.tight_layout()
plt.show()

# %% [markdown]
"""
Read the plot from left to right. On a quiet machine, small matrices reach a
low throughput: the fixed costs (our Python wrapper, NumPy's dispatch, waking
the BLAS threads) are a large share of a call that does little arithmetic, so
the measured time falls less steeply than `n³` towards small `n` and the
exponent fitted over all sizes comes out below 3. For large matrices the time
follows `n³` and the throughput levels off at what the CPU's arithmetic units
and caches can deliver: that plateau is the machine's matmul speed, and the
Tensor overhead measured above (microseconds) no longer matters. Timings on a
shared machine are noisy: a size measured while another program was busy shows
up as a dip in throughput and pulls the fitted exponent up, which is why we
keep the fastest of several runs.

What breaks first at scale? Memory grows like `n²` and time like `n³`, so time
runs out first for matmul; elementwise operations are limited by memory
bandwidth long before their arithmetic; and a Python-level loop over small
tensors pays the per-operation overhead on every step, which is why chapter 06
turns convolution into one big matmul (im2col) instead of many small ones.
"""

# %% [markdown]
"""
## Production context: PyTorch's tensors

PyTorch's `torch.Tensor` has the same anatomy, with the storage made explicit.
A tensor is a view (sizes, strides in elements, and a `storage_offset`) onto a
`torch.UntypedStorage`, a flat block of bytes that several tensors can share.
`t.stride()`, `t.is_contiguous()` and `t.contiguous()` mean exactly what ours
mean. Some differences are worth knowing:

- `torch.from_numpy(a)` shares memory with the array, as our `Tensor(a)` does;
  `torch.tensor(a)` always copies.
- `view()` never copies and raises when the strides do not allow a view;
  `reshape()` copies only when it must. Ours behave the same way.
- PyTorch does not allow negative strides (NumPy's `x[::-1]` is a view; in
  PyTorch `flip` copies).
- The default floating dtype is float32 (`torch.get_default_dtype()`), for the
  memory and speed reasons measured above; GPUs then go further with float16,
  bfloat16 and tensor cores.
- Instead of NumPy, PyTorch dispatches every operation through a C++ dispatcher
  to a kernel for the tensor's device (CPU, CUDA, ...) and dtype; autograd is
  one more dispatch layer that records the graph, the same job our `Function.apply`
  does. Its per-operation overhead is also microseconds, which is why
  `torch.compile` fuses many small operations into one.

If PyTorch is installed, the next cell shows the same facts on a real PyTorch tensor.
"""

# %%
try:
    import torch
except ImportError:
    torch = None
if torch is None:
    print("PyTorch is not installed; the comparison is skipped (the course does not need it).")
else:
    shared_array = np.arange(6, dtype=np.float32).reshape(2, 3)
    pt = torch.from_numpy(shared_array)
    shared_array[0, 0] = 100.0
    print("torch.from_numpy shares memory:", pt[0, 0].item() == 100.0)
    print("strides:", pt.stride(), "transposed:", pt.T.stride(), "contiguous:", pt.T.is_contiguous(),
          "| ours:", Tensor(shared_array).stride(), Tensor(shared_array).T.stride())
    print("storage bytes:", pt.untyped_storage().nbytes(), "| default dtype:", torch.get_default_dtype(),
          "| torch.tensor([0.5]).dtype:", torch.tensor([0.5]).dtype)
    try:
        pt.T.view(-1)
    except RuntimeError as err:
        print("PyTorch's view() refuses too:", str(err).splitlines()[0][:70], "...")

# %% [markdown]
"""
## Integration

Chapter 01 described the machine; this chapter's Tensor now computes on it.
The cell below uses both from the exported `tinytorch` package, the code that
later chapters import, and builds the forward pass of a tiny classifier out of
nothing but Tensor operations: a dense layer (matmul plus a broadcast bias), a
numerically stable softmax (max, subtract, exp, sum with `keepdims`, divide),
and a mean squared error. Because the weights `requires_grad`, the loss
remembers the graph that produced it, which is what chapter 09 will walk
backward.
"""

# %%
import tinytorch
from tinytorch.utils.environment import system_info

info = system_info()
print(f"tinytorch {tinytorch.__version__} on Python {info['python']}, NumPy {info['numpy']} "
      f"with {info['blas'] or 'an unknown BLAS'}, {info['cpu_count']} cores")

T = tinytorch.Tensor                                     # the exported class, not this notebook's
rng = np.random.default_rng(3)
inputs = T(rng.standard_normal((4, 3)).astype(np.float32))          # (B=4, features=3)
weight = T(rng.standard_normal((3, 2)).astype(np.float32) * 0.5, requires_grad=True)
bias = T(np.zeros(2, dtype=np.float32), requires_grad=True)
targets = T([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])

logits = inputs @ weight + bias                          # (4, 3) @ (3, 2) + (2,) -> (4, 2)
shifted = logits - logits.amax(dim=1, keepdim=True)    # (4, 2) - (4, 1): stable softmax
probs = shifted.exp() / shifted.exp().sum(axis=1, keepdims=True)
loss = ((probs - targets) ** 2).mean()

expected = np.exp(logits.data) / np.exp(logits.data).sum(axis=1, keepdims=True)
assert np.allclose(probs.data, expected, atol=1e-6) and np.allclose(probs.sum(axis=1).data, 1.0)
assert probs.dtype == np.float32 and loss.shape == () and loss.requires_grad
print("probabilities per row:", np.round(probs.data.astype(float), 3).tolist())
print(f"loss = {loss.item():.4f}, produced by {type(loss._ctx).__name__}, "
      f"graph recorded for chapter 09: {loss._ctx is not None}")

# %% [markdown]
"""
## Run all the tests
"""

# %%
if __name__ == "__main__":
    test_unit_primitives()
    test_unit_shape_rules()
    test_unit_creation()
    test_unit_apply()
    test_unit_storage()
    test_unit_arithmetic()
    test_unit_matmul()
    test_unit_reductions()
    test_unit_views()
    test_unit_graph_hooks()
    test_unit_rest_of_api()
    print("All tests of chapter 02 passed.")


# %% [markdown]
"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory.** A model keeps its weights, and during training one gradient per
weight and the activations of every layer. Using the measurements above, how
much memory does a 10-million-parameter model need for weights and gradients
in float32, and in float64? Our `Tensor(list)` briefly holds a float64 copy:
at what data size would that temporary matter, and how would you avoid it?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Weights and gradients are 2 × 10⁷ numbers: 2 × 10⁷ × 4 B =
80 MB in float32, 2 × 10⁷ × 8 B = 160 MB in float64 (activations come on top
and grow with the batch). The memory table showed `Tensor(list)` peaking at 12
bytes per number (an 8-byte float64 temporary plus the 4-byte result), on top
of the list itself at about 32 bytes per number. For N numbers the temporary is
8N bytes: irrelevant for a batch, decisive for a dataset. At 10⁹ numbers (a
4 GB float32 dataset) it is 8 GB, the peak 12 GB, and the list 32 GB, more than
most machines have. Avoid it by asking for float32 at once:
`Tensor(values, dtype=np.float32)` (NumPy then converts each element straight
into a float32 array; the peak is the 4 bytes per number of the result), and
better, never build a Python list: read into arrays (`np.fromfile`, `np.load`
with `mmap_mode`), or convert in chunks.

**Rubric (2 points).** 1 point for 80 MB and 160 MB (weights plus gradients, not
weights alone); 1 point for the 8-bytes-per-number temporary with a size where
it matters (hundreds of millions of numbers or more) and one working remedy
(`dtype=np.float32` at creation, arrays instead of lists, chunks or a memory map).
### END SOLUTION
"""

# %% [markdown]
"""
**2. Views and aliasing.** `reshape`, `transpose` and slicing share storage.
Write down a case where a view leads to a wrong result (hint: write into
`t.data` of a view and look at the original). Why does PyTorch give a tensor
and all its views one shared "version counter", which autograd checks before it
uses a saved tensor?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_views_and_aliasing", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** `x = Tensor(np.arange(6.0)); rows = x.reshape(2, 3);
rows.data[0] -= rows.data[0].mean()` "normalises the first row" and silently
changes `x[0:3]` too; any later use of `x` (another layer, a metric, a saved
batch) sees the altered values. The same happens to autograd: `y = x.log()`
saves `x`'s array for the backward rule `grad / x`; writing into a view of `x`
before `backward()` makes the gradient use the new values, and no error
appears. A view has its own shape and strides but shares the storage, so a
write through *any* view changes what every other view, and every saved
tensor, reads. That is why the counter belongs to the storage, shared by the
tensor and all its views: every in-place operation increments it, each saved
tensor remembers its value at save time, and backward raises ("one of the
variables needed for gradient computation has been modified by an inplace
operation") instead of returning a wrong gradient. A counter per view would
miss writes made through the others.

**Rubric (2 points).** 1 point for a concrete write-through-a-view example that
changes the original; 1 point for explaining that the counter is shared because
views share storage, so autograd detects a saved tensor changed through any view.
### END SOLUTION
"""

# %% [markdown]
"""
**3. Layout.** Attention (chapter 07) reshapes `(B, T, C)` into
`(B, T, heads, C / heads)` and transposes it to `(B, heads, T, C / heads)`.
Which of these steps copy? Where would a `contiguous()` be needed, and what
would it cost for B = 32, T = 512, C = 768 in float32, given the transposed
copy speed you measured?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_layout", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Neither copies. Splitting the last dimension of row-major data
is a view (strides `(T·C, C, d, 1)` with `d = C / heads`), and the transpose
only swaps two strides, giving `(T·C, d, C, 1)`: a view that is no longer
contiguous. A copy is needed when the heads are merged back: the attention
output `weights @ v` is a new, contiguous `(B, heads, T, d)` array, and
transposing it to `(B, T, heads, d)` then reshaping to `(B, T, C)` cannot be
expressed with strides, so our `reshape` copies silently and PyTorch's `view`
refuses until `contiguous()` is called (any kernel that requires row-major
input forces the same copy). Its size: 32 × 512 × 768 = 12,582,912 elements × 4 B = 50.3 MB
read and 50.3 MB written, about 100 MB of traffic per call, per attention layer,
and again in backward. Time = 50.3 MB ÷ your transposed-copy rate, where the
rate is 16.8 MB (the 2048 × 2048 float32 array) ÷ your `x.T.contiguous()`
time: at 60 ms that is 0.28 GB/s and the merge would take about 0.18 s; at the
plain-copy rate (16.8 MB in about 1 ms, some 15 GB/s) about 3 ms. The head
transpose moves runs of d = 64 contiguous floats (256 bytes, whole cache
lines), so it lands much nearer the plain-copy figure than the full-transpose
one: the worst case is an upper bound.

**Rubric (2 points).** 1 point for "both are views; the copy comes when the
heads are merged back (or a kernel needs row-major data)"; 1 point for 50.3 MB
(about 100 MB moved) and a time derived from the learner's own measured rate.
### END SOLUTION
"""

# %% [markdown]
"""
**4. Overheads.** You measured a per-operation overhead of microseconds and
a large-matmul throughput in GFLOP/s. Below what matrix size does our
Python overhead cost more than the arithmetic? What does that suggest
about writing models as many small operations versus a few large ones?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_overheads", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** An `n × n` matmul does `2n³` FLOPs, taking `2n³ / R` seconds at
throughput R. The overhead `o` wins when `2n³ / R < o`, that is below
`n = (o · R / 2)^(1/3)`. With o = 3 µs and R = 100 GFLOP/s: (3 × 10⁻⁶ × 10¹¹ / 2)^(1/3)
= (1.5 × 10⁵)^(1/3) ≈ 53; with R = 200 GFLOP/s, about 67; with o = 1 µs and
R = 50 GFLOP/s, about 29. So below roughly n = 30 to 70 our wrapper costs more
than the arithmetic (and small matmuls do not even reach R, which makes it
worse). Elementwise operations do about one FLOP per element, so the overhead
dominates them far longer: 3 µs is the time to move some tens to hundreds of
kilobytes (at 10 to 100 GB/s), so an addition of tensors below some thousands
to tens of thousands of elements is overhead-bound. Hence: write models as a few large operations (batch the
examples, use one matmul for all heads or all windows, as im2col does in
chapter 06) rather than loops of small ones; production systems go further
and fuse or capture many small operations (`torch.compile`, CUDA graphs).

**Rubric (2 points).** 1 point for the crossover formula with a worked n from the
learner's own o and R (any value in the tens is right for microsecond
overheads); 1 point for the consequence: batch, vectorise or fuse into few
large operations.
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

You built `tinytorch.Tensor`, the data structure every later chapter uses:

- a tensor is a storage plus a dtype, a shape and strides; the offset formula
  explains why transpose, reshape and slicing are free views, and when a copy
  (fancy indexing, `contiguous()`, a reshape after a transpose) is unavoidable;
- float32 by default, for half the memory and twice the SIMD width of float64;
  NumPy arrays keep their dtype and are shared, not copied;
- the broadcasting rule, implemented by hand and checked against NumPy, with
  errors that name the operation and both shapes;
- matmul (`2mnk` FLOPs, batched), reductions with `axis` and `keepdims`;
- every operation runs through a `Function` primitive (`Add`, `Mul`, `Neg`,
  `Pow`, `Exp`, `Log`, `Tanh`, `MatMul`, `Sum`, `Max`, `Reshape`, `Transpose`,
  `GetItem`), each saving on `ctx` exactly what its derivative will need, and
  `Function.apply` (with `Tensor._wrap` and `_constant`) records the graph
  through `requires_grad`/`_ctx`, so chapter 09 adds gradients by giving each
  primitive a `backward` rule, without touching this code.

You also measured, on your own machine, what float64 and Python lists cost in
memory, which operations copy, how much slower strided access and transposed
copies are (cache lines, the TLB and vector loads), how one matmul compares as
Python loops, vectorised NumPy and BLAS, and how matmul time grows with size. Next, chapter 03 builds the
activation functions (ReLU, Sigmoid, GELU, Softmax) from these operations.
"""
