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
# Spatial: convolution and pooling

A 32×32 colour image is 3,072 numbers. Feed it to a `Linear(3072, 256)` and
the layer learns 786,688 weights, one for every pair of pixel and output, and
it has to learn separately that a cat's ear is a cat's ear in the top-left
corner and in the bottom-right. It also ignores the one thing we know for sure
about images: pixels that are close together belong together.

A **convolution** builds both facts into the layer. It slides one small
filter, say 3×3 across all input channels, over every position of the image,
and computes the same weighted sum at each position. The weights are *shared*
across positions (32 filters of 3×3 over 3 colour channels are 896
parameters, whatever the size of the image), each output looks only at a
*local* window, and shifting the input shifts the output by the same amount.
**Pooling** then summarises small neighbourhoods (their maximum or their
mean), so the next layer sees a smaller map whose every cell covers a larger
part of the image.

This chapter builds, as tinytorch modules with PyTorch's names:

| what | tinytorch | PyTorch |
| --- | --- | --- |
| convolution | `Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True)`, `F.conv2d` | `torch.nn.Conv2d`, `torch.nn.functional.conv2d` |
| max pooling | `MaxPool2d(kernel_size, stride=None, padding=0)`, `F.max_pool2d` | same names |
| average pooling | `AvgPool2d(kernel_size, stride=None, padding=0)`, `F.avg_pool2d` | same names |
| flattening | `Flatten(start_dim=1, end_dim=-1)` | `torch.nn.Flatten` |

**The systems story.** In a convolutional network, the convolutions do nearly
all the arithmetic. Written as loops, a convolution runs through seven nested
indices and is hopeless in Python. Every serious
framework instead reshapes the problem so that one big matrix multiply does
the work: **im2col** ("image to columns") copies every window of the image
into a column of a matrix, and the convolution becomes
`weights @ columns`. That copy costs memory, about kh·kw times the input, and
we will measure exactly how much, along with the speed it buys.

**Primitives, forward and backward.** We build convolution and pooling out of
two new primitives (`Pad2d` and `Im2col`) plus the Tensor operations of
chapter 02. Each new primitive carries its backward rule beside its forward,
checked here with finite differences; chapter 09 builds the engine that chains
the rules, so the layers of this chapter become trainable there without
changing a line.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.spatial

# %%
#| export
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.core.creation import zeros
from tinytorch.core.function import Function
from tinytorch.core.ops import cat
from tinytorch.core.tensor import Tensor
from tinytorch.nn import init
from tinytorch.nn.module import Module, Parameter

# %%
import time
import tracemalloc

import matplotlib
import matplotlib.pyplot as plt

from tinytorch.nn.activation import ReLU
from tinytorch.nn.layers import Linear, Sequential
from tinytorch.utils.timing import median_time, median_times


def median_ms(fn, repeats: int = 5) -> float:
    """Median wall time of fn() in milliseconds (chapter 01's median_time)."""
    return 1000 * median_time(fn, repeats)


def paired_ms(slow, fast, rounds: int = 5) -> tuple[float, float, float]:
    """(median ms of slow, median ms of fast, median over rounds of time(slow) / time(fast)).

    The two run back to back in each round: a busy machine slows both runs of a round alike,
    so the ratio of a round is steadier than the ratio of two medians.
    """
    times = np.array([median_times([slow, fast], repeats=1) for _ in range(rounds)])
    ratio = float(np.median(times[:, 0] / times[:, 1]))
    return 1000 * float(np.median(times[:, 0])), 1000 * float(np.median(times[:, 1])), ratio


# %% [markdown]
r"""
## Background: what a convolution computes

**Shapes.** Images travel through a CNN as 4-D tensors `(N, C, H, W)`: batch,
channels, height, width (PyTorch's "NCHW"). A convolution layer holds a weight
of shape `(O, C, kh, kw)`: `O` filters, each a `C × kh × kw` block that spans
every input channel, plus one bias per filter.

**The formula.** Output channel `o` of image `n` at position `(y, x)` is the
filter `o` laid over the window whose top-left corner is `(y·s, x·s)`,
multiplied element by element and summed:

$$
\text{out}[n, o, y, x] = b[o] + \sum_{c=0}^{C-1} \sum_{i=0}^{k_h-1} \sum_{j=0}^{k_w-1}
  w[o, c, i, j] \cdot \text{in}[n, c,\; y\,s_h + i,\; x\,s_w + j]
$$

Strictly speaking this is *cross-correlation*: a convolution in the
mathematical sense flips the kernel first. Deep learning frameworks (PyTorch
included) do not flip, and since the weights are learned, the difference
does not matter. We follow PyTorch.

**Padding and stride.** `padding=p` surrounds the image with `p` rows and
columns of zeros, so windows can centre on border pixels; `stride=s` moves the
window `s` pixels at a time. Along one axis of size `H`, the number of window
positions that fit is

$$
H_{out} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .
$$

A 3×3 kernel with `padding=1, stride=1` keeps the size ("same" padding); with
`stride=2` it halves it. The floor means leftover rows at the bottom are
silently skipped, as in PyTorch: a 2×2 pooling of a 13×13 map gives 6×6 and
ignores row and column 12.

**Cost.** Each output element is a dot product of length `C·kh·kw`, and there
are `N·O·H_out·W_out` of them, so the number of multiply-accumulate
operations (MACs; one multiplication and one addition, 2 FLOPs) is

$$
\text{MACs} = N \cdot O \cdot H_{out} \cdot W_{out} \cdot C \cdot k_h \cdot k_w ,
\qquad \text{parameters} = O \cdot C \cdot k_h \cdot k_w + O .
$$

The parameter count does not depend on the image size at all, while the
arithmetic grows with every output pixel. That asymmetry (few parameters,
lots of compute) is what makes convolutions the compute hot spot of a CNN and
the reason this chapter cares about speed.

**Pooling** has no parameters: `MaxPool2d(2)` replaces every
non-overlapping 2×2 window by its maximum, `AvgPool2d(2)` by its mean. The
output-size formula is the same, with `stride` defaulting to `kernel_size`.
"""

# %% [markdown]
"""
## Implementation

### Sizes and arguments

PyTorch lets you write `kernel_size=3` for a square 3×3 kernel or
`kernel_size=(3, 5)` for a rectangle, and the same for `stride` and `padding`.
`pair` turns either spelling into a pair, and `conv_output_size` is the
formula above. Both are given: you will use them in every function you write
below.
"""


# %%
#| export
def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair: kernel_size=3 means (3, 3)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, not {value!r}")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """How many window positions fit along one axis: floor((size + 2*padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


# %% [markdown]
"""
The test checks the formula on the cases that matter in practice: "valid"
convolution shrinks by `k - 1`, "same" padding keeps the size, stride 2
halves it (rounding down), and pooling a 13-wide map by 2 gives 6.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_output_size", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_output_size():
    assert conv_output_size(32, 3) == 30                         # valid: shrinks by k - 1
    assert conv_output_size(32, 3, padding=1) == 32              # same padding
    assert conv_output_size(32, 3, stride=2, padding=1) == 16    # stride 2 halves
    assert conv_output_size(13, 2, stride=2) == 6                # the leftover row is dropped
    assert conv_output_size(5, 5) == 1                           # kernel as big as the input
    assert pair(3, "kernel_size") == (3, 3) and pair((2, 5), "stride") == (2, 5)
    try:
        pair((1, 2, 3), "kernel_size")
    except TypeError as err:
        assert "kernel_size" in str(err)
    else:
        raise AssertionError("pair accepted three numbers")
    print("✓ output sizes follow floor((H + 2p - k) / s) + 1")


test_unit_output_size()


# %% [markdown]
"""
### The reference: convolution as loops

Before making convolution fast we write it the obvious way, straight from the
formula, so that we have something to check the fast version against. Four
Python loops pick an output element; NumPy does the inner three sums (over
channels and the kernel window) with one `np.sum` of an element-wise product.
This function stays in the chapter: it is a teaching reference, far too slow
for the package.
"""


# %%
def conv2d_naive(x: np.ndarray, weight: np.ndarray, bias=None, stride=1, padding=0) -> np.ndarray:
    """Convolution straight from the formula: one Python loop per output index (slow; a reference)."""
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    out = np.zeros((N, O, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(O):
            for y in range(OH):
                for xx in range(OW):
                    window = x[n, :, y * sh:y * sh + kh, xx * sw:xx * sw + kw]   # (C, kh, kw)
                    out[n, o, y, xx] = np.sum(window * weight[o])
            if bias is not None:
                out[n, o] += bias[o]
    return out


# %% [markdown]
"""
This test computes a small case by hand. A 4×4 image holding 0..15 and a 2×2
kernel of ones: each output is the sum of a 2×2 block, e.g. the top-left one
is 0 + 1 + 4 + 5 = 10. With stride 2 only the four non-overlapping blocks
remain. If the reference were wrong, every later comparison would be
meaningless, so it gets checked against arithmetic we can do in our heads.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_conv2d_naive", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_naive():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2))
    out = conv2d_naive(x, w)
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0, 0, 0] == 0 + 1 + 4 + 5
    assert out[0, 0, 2, 2] == 10 + 11 + 14 + 15
    assert conv2d_naive(x, w, stride=2)[0, 0].tolist() == [[10, 18], [42, 50]]
    padded = conv2d_naive(x, w, padding=1)                # a corner window sees one real pixel
    assert padded.shape == (1, 1, 5, 5) and padded[0, 0, 0, 0] == 0 and padded[0, 0, 4, 4] == 15
    print("✓ the loop reference matches sums done by hand")


test_unit_conv2d_naive()


# %% [markdown]
"""
### Primitive 1: `Pad2d`

Padding copies the image into the middle of a larger array of zeros. It is a
new primitive (a `Function` subclass, like `Add` or `MatMul` in chapter 02)
because training needs to know how to send a gradient back through it (the
gradient of the padded array, cropped back to the middle: its `backward`,
given below the forward you write). Pooling will pad
with a different value (`-inf` for max pooling, so that padding never wins),
hence the `value` option.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Pad2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Pad2d(Function):
    """Pad the last two axes of x with `value`: (..., H, W) -> (..., H + 2*ph, W + 2*pw)."""

    @staticmethod
    def forward(ctx, x, padding, value=0.0):
        """x: an array (..., H, W); padding: (ph, pw); returns (..., H + 2*ph, W + 2*pw) of x's dtype."""
        # 1. Save what backward (below) needs to crop the gradient: ctx.padding and ctx.input_shape.
        # 2. Make the output with np.full(..., value, dtype=x.dtype): -inf for max pooling, 0 otherwise.
        # 3. Copy x into the middle: out[..., ph:ph + H, pw:pw + W] = x.
        # Pitfall: only the last two axes grow; keep the leading ones (x.shape[:-2]) as they are.
        ### BEGIN SOLUTION
        (ph, pw), (H, W) = padding, x.shape[-2:]
        ctx.padding, ctx.input_shape = padding, x.shape
        out = np.full(x.shape[:-2] + (H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
        out[..., ph:ph + H, pw:pw + W] = x
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        """Crop: the middle of the padded output's gradient is the input's; the frame's goes nowhere."""
        (ph, pw), (H, W) = ctx.padding, ctx.input_shape[-2:]
        return (grad[..., ph:ph + H, pw:pw + W],)


# %% [markdown]
"""
The test pads a 2×2 image by one pixel of zeros, checks the frame and the
untouched centre, and checks asymmetric `(ph, pw)` padding and a custom fill
value. A `Pad2d` that mixed up height and width would pass square cases, so one
case is deliberately not square.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_pad2d", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_pad2d():
    x = Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=np.float32))
    out = Pad2d.apply(x, padding=(1, 1))
    assert out.shape == (1, 1, 4, 4) and out.dtype == np.float32
    assert out.data[0, 0, 1:3, 1:3].tolist() == [[1, 2], [3, 4]]
    assert out.data.sum() == 10                         # the frame is all zeros
    wide = Pad2d.apply(x, padding=(0, 2), value=-np.inf)
    assert wide.shape == (1, 1, 2, 6)
    assert np.isneginf(wide.data[..., :2]).all() and wide.data[0, 0, 0, 2] == 1
    print("✓ Pad2d frames the image and leaves it intact")


test_unit_pad2d()


# %% [markdown]
r"""
### Primitive 2: `Im2col`, every window as a column

Here is the central idea of the chapter. Take every `kh × kw` window the
convolution will visit, across all `C` channels, and lay it out as one
**column** of a matrix:

```
columns: shape (C·kh·kw, N·OH·OW)
   row    c·kh·kw + i·kw + j  =  pixel (i, j) of channel c inside a window
   column n·OH·OW + y·OW + x  =  the window at output position (y, x) of image n
```

Reshape the weight `(O, C, kh, kw)` into a matrix `(O, C·kh·kw)`, each filter
flattened into a row in the same `(c, i, j)` order, and the whole
convolution is **one matrix multiply**:

$$
(O,\; C k_h k_w) \;@\; (C k_h k_w,\; N\,OH\,OW) \;\to\; (O,\; N\,OH\,OW).
$$

Every output element is the dot product of one filter row with one window
column, which is exactly the formula. Matrix multiply is the most optimised
routine in numerical computing (NumPy hands it to a BLAS library that uses
every SIMD lane and cache level), so we trade a copy for the fastest kernel we
have.

**Building the columns without a loop over pixels.** NumPy's
`sliding_window_view(x, (kh, kw), axis=(2, 3))` returns, *without copying*,
an array of shape `(N, C, H-kh+1, W-kw+1, kh, kw)` in which
`[n, c, y, x]` is the window at `(y, x)`. It is a view with cleverly
chosen strides: moving one step along `y` or along `i` both move one row down
in the image, so both axes get the image's row stride (the same
memory is visible from several places, the stride trick of chapter 02).
Slicing `[:, :, ::sh, ::sw]` keeps every stride-th window, still without copying.
Then one transpose (still a view) and one `reshape` (the only copy) give
the columns.

**Why channels-first columns.** We could also lay the matrix out the other
way round, `(N·OH·OW, C·kh·kw)`, one window per *row*, which is what most
textbooks show. Which order the copy writes in matters: with ours, the
innermost copied axis is the output column `x`, which walks along an image row
(contiguous memory when the stride is 1); with the textbook order the innermost
axis is `j`, only `kw` = 3 elements long, and the copy jumps around memory.
The systems section measures the difference.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Im2col", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Im2col(Function):
    """Every kh x kw window of x (N, C, H, W) as one column: (C*kh*kw, N*OH*OW).

    Row c*kh*kw + i*kw + j holds pixel (i, j) of channel c of each window; column
    n*OH*OW + y*OW + x is the window at output position (y, x) of image n.
    """

    @staticmethod
    def forward(ctx, x, kernel_size, stride):
        """x: (N, C, H, W) array, already padded; kernel_size (kh, kw), stride (sh, sw) pairs."""
        # 1. OH = (H - kh) // sh + 1, OW likewise; save ctx.input_shape, ctx.kernel_size, ctx.stride
        #    (backward, col2im, reads all three).
        # 2. sliding_window_view(x, (kh, kw), axis=(2, 3)) -> (N, C, H-kh+1, W-kw+1, kh, kw), a view;
        #    slice [:, :, ::sh, ::sw] to keep every stride-th window: (N, C, OH, OW, kh, kw).
        # 3. transpose to (C, kh, kw, N, OH, OW) (still a view), then ONE reshape to (C*kh*kw, N*OH*OW):
        #    rows in (c, i, j) order, columns in (n, y, x) order. That reshape is the only copy.
        # Pitfall: the order of the transposed axes IS the layout contract the test and conv2d rely on.
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        (kh, kw), (sh, sw) = kernel_size, stride
        OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
        ctx.input_shape, ctx.kernel_size, ctx.stride = x.shape, kernel_size, stride
        windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]   # (N, C, OH, OW, kh, kw), a view
        windows = windows.transpose(1, 4, 5, 0, 2, 3)                               # (C, kh, kw, N, OH, OW), a view
        return windows.reshape(C * kh * kw, N * OH * OW)                            # the one copy
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        """col2im: add every window's gradient back onto the pixels it was copied from.

        grad: (C*kh*kw, N*OH*OW), the columns' gradient; returns a 1-tuple with (N, C, H, W).
        """
        N, C, H, W = ctx.input_shape
        (kh, kw), (sh, sw) = ctx.kernel_size, ctx.stride
        OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
        windows = grad.reshape(C, kh, kw, N, OH, OW)     # row (c, i, j), column (n, y, x), as forward laid them out
        dx = np.zeros((C, N, H, W), dtype=grad.dtype)    # channel-major, the order the columns are in
        for i in range(kh):
            for j in range(kw):                          # pixel (i, j) of every window, all at once
                dx[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += windows[:, i, j]
        return (dx.transpose(1, 0, 2, 3),)               # (N, C, H, W), a view


# %% [markdown]
"""
Let us look at the columns of a tiny image before testing them: one 3×3 image
holding 1..9 and a 2×2 kernel give four windows, one per column.
"""

# %%
tiny_image = Tensor(np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3))
print(tiny_image.data[0, 0])
print("columns (one 2x2 window per column):")
print(Im2col.apply(tiny_image, kernel_size=(2, 2), stride=(1, 1)).data)
view = sliding_window_view(tiny_image.data, (2, 2), axis=(2, 3))
print("the window view:", view.shape, "strides in bytes", view.strides,
      "| shares memory with the image:", np.shares_memory(view, tiny_image.data))

# %% [markdown]
"""
The same layout as a picture, drawn from `Im2col`'s own output for a 4×4
image (pixels 1..16) and a 2×2 kernel with stride 1: nine windows, so nine
columns of four rows. Three of the windows are outlined in the image; the
column each one became is shaded in the same colour. Read a column top to
bottom and you read its window row by row, `(i, j)` = (0, 0), (0, 1), (1, 0),
(1, 1); read the columns left to right and the window slides along the image
rows, `(y, x)` = (0, 0), (0, 1), ... With C channels the rows repeat in C
blocks of `kh·kw`, one block per channel, in the same order.
"""

# %%
picture = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
picture_cols = Im2col.apply(Tensor(picture), kernel_size=(2, 2), stride=(1, 1)).data   # (4, 9)
OH_pic = OW_pic = conv_output_size(4, 2)
shown = {(0, 0): "#1f77b4", (0, 2): "#d62728", (2, 1): "#2ca02c"}                  # window (y, x) -> colour
for (y, x_) in shown:                                  # the picture draws what the layout contract says
    np.testing.assert_array_equal(picture_cols[:, y * OW_pic + x_], picture[0, 0, y:y + 2, x_:x_ + 2].ravel())

fig, (ax_img, ax_cols) = plt.subplots(1, 2, figsize=(10, 3.6), facecolor="white",
                                      gridspec_kw={"width_ratios": [1, 2.2]})
for ax in (ax_img, ax_cols):
    ax.set_facecolor("white")                         # an explicit light page: legible in dark mode too
ax_img.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
for (r, c), value in np.ndenumerate(picture[0, 0]):
    ax_img.text(c, r, f"{value:.0f}", ha="center", va="center", color="black", fontsize=11)
for (y, x_), colour in shown.items():
    ax_img.add_patch(plt.Rectangle((x_ - 0.45, y - 0.45), 1.9, 1.9, fill=False, edgecolor=colour, linewidth=3))
ax_img.set_title("image (4 x 4), 2 x 2 windows", color="black")
ax_img.set_xticks(range(4))
ax_img.set_yticks(range(4))
ax_img.tick_params(colors="black")

shade = np.full(picture_cols.shape + (3,), 0.96)
for (y, x_), colour in shown.items():
    shade[:, y * OW_pic + x_] = matplotlib.colors.to_rgb(colour)
    shade[:, y * OW_pic + x_] = 0.35 * shade[:, y * OW_pic + x_] + 0.65     # a light tint of the colour
ax_cols.imshow(shade)
for (r, c), value in np.ndenumerate(picture_cols):
    ax_cols.text(c, r, f"{value:.0f}", ha="center", va="center", color="black", fontsize=11)
ax_cols.set_xticks(range(OH_pic * OW_pic))
ax_cols.set_xticklabels([f"{y},{x_}" for y in range(OH_pic) for x_ in range(OW_pic)])
ax_cols.set_yticks(range(4))
ax_cols.set_yticklabels([f"{i},{j}" for i in range(2) for j in range(2)])
ax_cols.set_xlabel("column = window at output position (y, x)", color="black")
ax_cols.set_ylabel("row = pixel (i, j) in the window", color="black")
ax_cols.set_title("Im2col output (C*kh*kw, N*OH*OW) = (4, 9)", color="black")
ax_cols.tick_params(colors="black")
fig.tight_layout()
plt.show()

# %% [markdown]
"""
The test checks the layout contract that the convolution will rely on:
the matrix shape, that column `n·OH·OW + y·OW + x` is the window at `(y, x)`
of image `n` flattened in `(c, i, j)` order (for several images, channels,
a rectangular kernel and stride 2), and that the result is a new array,
not a view into the input.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_im2col", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_im2col():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    kh, kw, sh, sw = 3, 2, 2, 1
    cols = Im2col.apply(Tensor(x), kernel_size=(kh, kw), stride=(sh, sw)).data
    OH, OW = conv_output_size(7, kh, sh), conv_output_size(6, kw, sw)
    assert cols.shape == (3 * kh * kw, 2 * OH * OW), cols.shape
    for n, y, xx in [(0, 0, 0), (1, 2, 4), (1, OH - 1, OW - 1)]:
        window = x[n, :, y * sh:y * sh + kh, xx * sw:xx * sw + kw].reshape(-1)   # (c, i, j) order
        np.testing.assert_array_equal(cols[:, n * OH * OW + y * OW + xx], window)
    assert not np.shares_memory(cols, x) and cols.dtype == np.float32
    print("✓ Im2col puts every window in its column, in (channel, row, column) order")


test_unit_im2col()


# %% [markdown]
"""
### Each primitive's backward, next to its forward

A primitive is a forward *and* a backward: `forward` computes the new array,
`backward(ctx, grad)` turns the gradient of its output into the gradients of
its inputs, one per input, reading what forward saved on `ctx`. Chapter 09
builds the engine that calls these rules in the right order; the rules
themselves belong with the operation, so they are written here (given, not an
exercise: the point of this chapter is the forward layout).

`Pad2d` copied its input into the middle of a larger array, so the input's
gradient is the middle of the output's gradient: the padding's share goes
nowhere. `Im2col` copied every pixel into each window that covers it, so its
backward, *col2im*, does the reverse: every window's gradient is added back
onto the pixels it came from, and a pixel covered by several windows collects
all of their gradients. The loop runs over the kh·kw positions inside a window
(9 for a 3×3 kernel), and each step adds a whole strided slice of the image at
once, for every channel, image and window. It never loops over pixels, and it
never uses `np.add.at` (which would handle the repeats correctly but one
element at a time, orders of magnitude slower).

We need no engine to check a rule: both primitives are linear, so for a fixed
random weighting `w` of the output, the derivative of `sum(forward(x) * w)`
with respect to each input element is what `backward(ctx, w)` must return.
The test compares the two with central finite differences in float64, on a
rectangular kernel with stride 2, where windows overlap and some pixels are
in no window at all.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_spatial_backward", "locked": true, "schema_version": 3, "solution": false, "task": false}
def finite_difference_gradient(forward, x: np.ndarray, w: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d sum(forward(x) * w) / dx, element by element, by central differences (float64)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = np.sum(forward(x) * w)
        x[index] = original - eps
        minus = np.sum(forward(x) * w)
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def test_unit_spatial_backward():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 6))                               # float64: finite differences need it
    for primitive, options in [(Pad2d, dict(padding=(1, 2))),
                               (Im2col, dict(kernel_size=(3, 2), stride=(2, 1)))]:
        ctx = primitive(Tensor(x))
        w = rng.standard_normal(primitive.forward(ctx, x, **options).shape)
        (analytic,) = primitive.backward(ctx, w)
        numeric = finite_difference_gradient(lambda a: primitive.forward(primitive(Tensor(a)), a, **options), x, w)
        assert analytic.shape == x.shape, (primitive.__name__, analytic.shape)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=primitive.__name__)
    print("✓ Pad2d and Im2col backward agree with finite differences")


test_unit_spatial_backward()


# %% [markdown]
"""
### `conv2d`: im2col plus one matrix multiply

Now the convolution is four lines: pad, build the columns, multiply by the
flattened filters, add the bias. The result of the multiply has shape
`(O, N·OH·OW)`: output channel first. We reshape it to `(O, N, OH, OW)` and
`permute` it to the `(N, O, OH, OW)` that everyone expects. That permute is a
**view**: no data moves, the strides change (chapter 02). The output's memory
stays channel-major, and nothing downstream needs it otherwise. PyTorch would
return a contiguous NCHW tensor here; we skip that copy on purpose, and the
systems section measures what it would cost.

The function checks its arguments first, because a mismatch deep inside
`Im2col` or the matmul would produce an error about shapes the user never
wrote. The two mistakes people actually make are a wrong channel count (the
layer before produced 16 channels, this one expects 32) and a kernel that does
not fit the (padded) image after a few pooling layers.

**A hook for a faster kernel.** The given lines at the top of `conv2d` hand
the work to a kernel installed with `set_conv2d_kernel`, if there is one.
Chapter 14 writes a faster convolution (channels-last columns, built and
multiplied a few images at a time, with its own backward) and the package
installs it when it is assembled, the way chapter 05's cross-entropy gets its
fused kernel. The cells of this chapter run the version you write here.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_conv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def check_conv_args(input: Tensor, weight: Tensor, bias, stride, padding) -> None:
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must have shape (N, C, H, W) or (C, H, W), got {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (out_channels, in_channels, kh, kw), got {weight.shape}")
    (N, C, H, W), (O, Cw, kh, kw) = input.shape, weight.shape
    if C != Cw:
        raise ValueError(f"conv2d: input {input.shape} has {C} channels but weight {weight.shape} expects {Cw}; "
                         "check in_channels against the layer before")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"conv2d: bias must have shape ({O},), one per output channel, got {bias.shape}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    Hp, Wp = H + 2 * padding[0], W + 2 * padding[1]
    if kh > Hp or kw > Wp:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {Hp}x{Wp} "
                         f"(input {H}x{W}, padding {padding}); use a smaller kernel or more padding")


# A kernel installed by set_conv2d_kernel (chapter 14 installs a faster one); None: Im2col and one matmul.
conv2d_kernel = None


def set_conv2d_kernel(kernel):
    """Compute conv2d as kernel(input, weight, bias, stride, padding) -> output; None: im2col, below.

    Returns the kernel that was installed before, so a caller can put it back.
    """
    global conv2d_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_conv2d_kernel: expected a function (input, weight, bias, stride, padding) -> output "
                        f"or None, not {type(kernel).__name__}")
    previous, conv2d_kernel = conv2d_kernel, kernel
    return previous


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) as im2col plus one matrix multiply.

    Args:
        input: (N, C, H, W), or (C, H, W) for a single image.
        weight: (O, C, kh, kw); bias: (O,) or None.
        stride, padding: an int or a pair (height, width).
        padding="same"/"valid", dilation and groups: PyTorch's options, in the rest of the API.
    Returns:
        (N, O, OH, OW) with OH = floor((H + 2*ph - kh) / sh) + 1 (same for OW).
    """
    if isinstance(padding, str) or pair(dilation, "dilation") != (1, 1) or groups != 1:   # given: the rest of the API
        return _conv2d_options(input, weight, bias, stride, padding, dilation, groups)
    if conv2d_kernel is not None:                     # given: a faster kernel, once one is installed
        try:
            return conv2d_kernel(input, weight, bias, stride, padding)
        except NotImplementedError:
            pass                                       # still a stub in a learner's package: im2col below
    # 1. A 3-D input is one image: call conv2d on input.unsqueeze(0) and return [0] of the result.
    # 2. pair stride and padding, then check_conv_args (given) before any work.
    # 3. Pad2d.apply (only if padding is non-zero), then Im2col.apply -> cols (C*kh*kw, N*OH*OW).
    # 4. weight.reshape(O, C*kh*kw) @ cols -> (O, N*OH*OW); add bias.reshape(O, 1) (one per row).
    # 5. reshape (O, N, OH, OW) and permute(1, 0, 2, 3): (N, O, OH, OW) as a view, no copy.
    # Use Tensor operations throughout (not .data), so chapter 09 can differentiate conv2d.
    ### BEGIN SOLUTION
    if input.ndim == 3:                                                # one image: add and drop a batch axis
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding)[0]
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    check_conv_args(input, weight, bias, stride, padding)
    (N, C, H, W), (O, _, kh, kw) = input.shape, weight.shape
    OH, OW = conv_output_size(H, kh, stride[0], padding[0]), conv_output_size(W, kw, stride[1], padding[1])
    x = Pad2d.apply(input, padding=padding) if any(padding) else input   # (N, C, H + 2ph, W + 2pw)
    cols = Im2col.apply(x, kernel_size=(kh, kw), stride=stride)          # (C*kh*kw, N*OH*OW)
    out = weight.reshape(O, C * kh * kw) @ cols                          # (O, N*OH*OW): the one matmul
    if bias is not None:
        out = out + bias.reshape(O, 1)                                   # one bias per output channel
    return out.reshape(O, N, OH, OW).permute(1, 0, 2, 3)                 # (N, O, OH, OW), a view
    ### END SOLUTION


# %% [markdown]
"""
The test compares `conv2d` with the loop reference on random data for
several combinations of stride, padding, rectangular kernels, several
images and channels, and no bias. Agreement to float precision on all of
them is strong evidence that the column layout, the weight reshape and the
final permute agree with each other. It then checks that the two common
mistakes produce one clear line.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_conv2d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d():
    rng = np.random.default_rng(1)
    cases = [  # (N, C, H, W), (O, kh, kw), stride, padding, bias
        ((2, 3, 8, 8), (4, 3, 3), 1, 0, True),
        ((2, 3, 8, 8), (4, 3, 3), 1, 1, True),
        ((1, 2, 9, 7), (3, 3, 2), 2, 1, True),
        ((3, 1, 6, 6), (2, 1, 1), (2, 1), (0, 2), False),
    ]
    for shape, (O, kh, kw), stride, padding, has_bias in cases:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((O, shape[1], kh, kw))
        b = rng.standard_normal(O) if has_bias else None
        out = conv2d(Tensor(x), Tensor(w), Tensor(b) if has_bias else None, stride, padding)
        np.testing.assert_allclose(out.data, conv2d_naive(x, w, b, stride, padding), atol=1e-10)
    single = conv2d(Tensor(x[0]), Tensor(w), None, stride, padding)     # an unbatched (C, H, W) image
    np.testing.assert_allclose(single.data, out.data[0])
    for bad_x, bad_w, expected in [(np.zeros((1, 4, 8, 8)), np.zeros((2, 3, 3, 3)), "has 4 channels"),
                                   (np.zeros((1, 3, 2, 2)), np.zeros((2, 3, 3, 3)), "larger than the padded input")]:
        try:
            conv2d(Tensor(bad_x), Tensor(bad_w))
        except ValueError as err:
            assert expected in str(err), err
        else:
            raise AssertionError(f"conv2d accepted input {bad_x.shape} with weight {bad_w.shape}")
    print("✓ conv2d equals the loop reference (stride, padding, rectangles, no bias) and rejects bad shapes")


test_unit_conv2d()


# %% [markdown]
r"""
### The `Conv2d` layer

The module holds the weight and bias as `Parameter`s and calls `conv2d`;
`forward` is given, and what you write is the constructor. Its
default initialisation is PyTorch's: both weight and bias are drawn from
$U(-1/\sqrt{\text{fan\_in}},\ 1/\sqrt{\text{fan\_in}})$ with
$\text{fan\_in} = C \cdot k_h \cdot k_w$, the number of inputs each output
sums over (this is what PyTorch's `kaiming_uniform_(a=sqrt(5))` works out
to). Weights are float32, like PyTorch's defaults: half the memory of float64
and about twice the matmul speed.

`forward` checks the channel count itself so that the error names the layer
(`Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1))`), which is what you need
when a model has ten of them.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Conv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Conv2d(Module):
    """2-D convolution layer: weight (out_channels, in_channels, kh, kw), bias (out_channels,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__()
        padding_text, padding = (padding, 0) if isinstance(padding, str) else (None, padding)   # given
        # Store in_channels, out_channels and kernel_size, stride, padding as pairs (pair); refuse
        # non-positive channel counts with a ValueError naming both numbers.
        # Parameters, float32, PyTorch's default init: weight (out_channels, in_channels, kh, kw) and
        # bias (out_channels,) (None when bias=False), both U(-b, b) with b = 1/sqrt(in_channels*kh*kw)
        # (init.uniform_ on a Parameter of np.empty(...)). Pitfall: fan_in counts the kernel area too.
        ### BEGIN SOLUTION
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Conv2d: in_channels and out_channels must be positive, got {in_channels}, {out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        kh, kw = self.kernel_size
        bound = 1.0 / np.sqrt(in_channels * kh * kw)    # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.weight = init.uniform_(Parameter(np.empty((out_channels, in_channels, kh, kw), dtype=np.float32)), -bound, bound)
        self.bias = init.uniform_(Parameter(np.empty(out_channels, dtype=np.float32)), -bound, bound) if bias else None
        ### END SOLUTION
        self.dilation, self.groups = pair(dilation, "dilation"), groups     # given: the rest of the API
        if padding_text is not None or groups != 1:
            _conv2d_layer_options(self, padding_text, groups, bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"{self!r} expects input (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                             f"got {x.shape}")
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str):
            text += f", padding={self.padding!r}"
        elif any(self.padding):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + (", bias=False" if self.bias is None else "")


# %% [markdown]
"""
The test checks what a user of the layer relies on: parameter shapes and
dtype, that the default initialisation stays within PyTorch's bound,
that the layer computes exactly `conv2d` with its own parameters, the repr, and
that a wrong channel count is caught with the layer's name in the message.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_conv2d_module", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_module():
    init.manual_seed(0)
    layer = Conv2d(3, 8, 3, padding=1)
    assert layer.weight.shape == (8, 3, 3, 3) and layer.bias.shape == (8,)
    assert layer.weight.dtype == np.float32 and len(list(layer.parameters())) == 2
    bound = 1 / np.sqrt(3 * 3 * 3)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.8 * bound
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32))
    out = layer(x)
    assert out.shape == (2, 8, 5, 5)
    np.testing.assert_allclose(out.data, conv2d(x, layer.weight, layer.bias, 1, 1).data)
    assert repr(layer) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert Conv2d(1, 2, (1, 3), stride=2, bias=False).bias is None
    try:
        layer(Tensor(np.zeros((2, 4, 5, 5), dtype=np.float32)))
    except ValueError as err:
        assert "Conv2d(3, 8" in str(err) and "(2, 4, 5, 5)" in str(err), err
    else:
        raise AssertionError("Conv2d(3, 8) accepted a 4-channel input")
    print("✓ Conv2d: shapes, PyTorch's init bound, forward, repr and channel check")


test_unit_conv2d_module()


# %% [markdown]
"""
### Pooling, built on the same windows

Max pooling takes each window's maximum. We already have a primitive that
lists every window (`Im2col`) and one that takes a maximum along an axis
(`Max`, chapter 02), so pooling needs no new primitive at all:

```
columns  (C·kh·kw, N·OH·OW)      Im2col with stride = kernel_size by default
reshape  (C, kh·kw, N·OH·OW)     group each channel's window pixels
max      (C, N·OH·OW)            along the window axis (axis 1)
reshape, permute -> (N, C, OH, OW)
```

Average pooling is the same with `mean` instead of `max` (it is given; you
write `max_pool2d`). Padding for max
pooling is `-inf` (padding must never be the maximum), for average pooling
it is zero and counts in the average (PyTorch's default
`count_include_pad=True`). As in PyTorch, padding may be at most half the
kernel, so that no window sees only padding.

For non-overlapping windows there is a copy-free alternative: reshape
`(N, C, H, W)` to `(N, C, H/2, 2, W/2, 2)` and take `max` over axes 3 and 5.
It is shorter and copies nothing, and the systems section measures why we
did not use it. (As for `conv2d`, the given lines at the top of `max_pool2d`
hand the work to a kernel installed with `set_max_pool2d_kernel`; chapter 14
writes one for non-overlapping windows, which the package installs.)
"""


# %% nbgrader={"grade": false, "grade_id": "impl_max_pool2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _pool_windows(input: Tensor, kernel_size, stride, padding, pad_value: float, name: str):
    """Each channel's windows, side by side: (C, kh*kw, N*OH*OW), and the shape (C, N, OH, OW)."""
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if input.ndim != 4:
        raise ValueError(f"{name}: input must have shape (N, C, H, W) or (C, H, W), got {input.shape}")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{name}: kernel_size and stride must be >= 1 and padding >= 0, "
                         f"got kernel_size={kernel_size}, stride={stride}, padding={padding}")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{name}: padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
    N, C, H, W = input.shape
    if kh > H + 2 * ph or kw > W + 2 * pw:
        raise ValueError(f"{name}: kernel {kh}x{kw} is larger than the padded input {H + 2 * ph}x{W + 2 * pw}; "
                         "use a smaller kernel or pool earlier in the network")
    OH, OW = conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)
    x = Pad2d.apply(input, padding=(ph, pw), value=pad_value) if ph or pw else input
    cols = Im2col.apply(x, kernel_size=(kh, kw), stride=(sh, sw))   # (C*kh*kw, N*OH*OW)
    return cols.reshape(C, kh * kw, N * OH * OW), (C, N, OH, OW)


# A kernel installed by set_max_pool2d_kernel (chapter 14 installs a faster one); None: windows, below.
max_pool2d_kernel = None


def set_max_pool2d_kernel(kernel):
    """Compute max_pool2d as kernel(input, kernel_size, stride, padding) -> output; None: windows and a max.

    The kernel may raise NotImplementedError for options it does not handle (max_pool2d then
    takes the windows). Returns the kernel that was installed before, so a caller can put it back.
    """
    global max_pool2d_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_max_pool2d_kernel: expected a function (input, kernel_size, stride, padding) -> output "
                        f"or None, not {type(kernel).__name__}")
    previous, max_pool2d_kernel = max_pool2d_kernel, kernel
    return previous


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """The maximum of every kh x kw window (stride defaults to kernel_size): (N, C, H, W) -> (N, C, OH, OW)."""
    if max_pool2d_kernel is not None and input.ndim == 4:   # given: a faster kernel, once one is installed
        try:
            return max_pool2d_kernel(input, kernel_size, stride, padding)
        except NotImplementedError:
            pass                                       # a case it does not handle (or a stub): windows below
    # 1. A 3-D input (C, H, W): pool input.unsqueeze(0) and return [0].
    # 2. windows, shape = _pool_windows(..., -np.inf, "max_pool2d") (given): (C, kh*kw, N*OH*OW) and
    #    (C, N, OH, OW). Pad with -inf, never 0: a zero could beat an all-negative window.
    # 3. Max over axis 1 (the window pixels) with .max(dim=1).values: as in PyTorch, the gradient goes
    #    to the one pixel picked, even when several tie. Reshape to (C, N, OH, OW), permute to (N, C, OH, OW).
    ### BEGIN SOLUTION
    if input.ndim == 3:
        return max_pool2d(input.unsqueeze(0), kernel_size, stride, padding)[0]
    windows, shape = _pool_windows(input, kernel_size, stride, padding, -np.inf, "max_pool2d")
    return windows.max(dim=1).values.reshape(*shape).permute(1, 0, 2, 3)   # (C, N, OH, OW) viewed as (N, C, OH, OW)
    ### END SOLUTION


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """The mean of every kh x kw window (zero padding counts, as in PyTorch): (N, C, H, W) -> (N, C, OH, OW)."""
    if input.ndim == 3:                              # given: max_pool2d with mean and zero padding
        return avg_pool2d(input.unsqueeze(0), kernel_size, stride, padding)[0]
    windows, shape = _pool_windows(input, kernel_size, stride, padding, 0.0, "avg_pool2d")
    return windows.mean(dim=1).reshape(*shape).permute(1, 0, 2, 3)


class _Pool2d(Module):
    """What both pooling layers hold: kernel_size, stride (defaults to kernel_size), padding."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling layer; stride defaults to kernel_size (non-overlapping windows)."""

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Average pooling layer; stride defaults to kernel_size."""

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


# %% [markdown]
"""
The test pools a 4×4 image holding 0..15, where the answers are easy to see
(the maximum of each 2×2 block is its bottom-right pixel, the mean is the
average of the four), then checks overlapping windows (kernel 3, stride 1),
that `-inf` padding never wins while zero padding does count in the mean,
that channels do not mix, the dropped leftover row, and one of the errors.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_pooling", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_pooling():
    x = Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    assert MaxPool2d(2)(x).data[0, 0].tolist() == [[5, 7], [13, 15]]
    assert AvgPool2d(2)(x).data[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert max_pool2d(x, 3, stride=1).data[0, 0].tolist() == [[10, 11], [14, 15]]
    assert max_pool2d(-x - 1, 2, padding=1).data[0, 0, 0, 0] == -1       # -inf padding never wins
    assert avg_pool2d(x + 4, 2, padding=1).data[0, 0, 0, 0] == 1.0        # (4 + 0 + 0 + 0) / 4
    ### BEGIN HIDDEN TESTS
    two = Tensor(np.stack([np.arange(16.0), -np.arange(16.0)]).reshape(1, 2, 4, 4))
    assert max_pool2d(two, 4).data.reshape(-1).tolist() == [15, 0]        # channels stay apart
    ### END HIDDEN TESTS
    assert MaxPool2d(2)(Tensor(np.zeros((2, 3, 13, 13), dtype=np.float32))).shape == (2, 3, 6, 6)
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    try:
        max_pool2d(x, 2, padding=2)
    except ValueError as err:
        assert "at most half the kernel" in str(err), err
    else:
        raise AssertionError("max_pool2d accepted padding larger than half the kernel")
    print("✓ max and average pooling: values, overlap, padding, channels, leftovers")


test_unit_pooling()


# %% [markdown]
"""
### `Flatten`: from feature maps to a vector

After the convolutions a classifier needs one vector per image, so
`Flatten()` turns `(N, C, H, W)` into `(N, C·H·W)` and keeps the batch axis.
Like PyTorch's, it flattens `start_dim` to `end_dim`. It is only a `reshape`;
because our convolution outputs are permuted views, this reshape is where
they finally get copied into the standard row-major order.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Flatten", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        """Merge axes start_dim..end_dim (negative counts from the end) into one; keep the others."""
        # 1. Normalise both dims with % x.ndim; if start > end raise ValueError naming both and the shape.
        # 2. The merged size is the product of x.shape[start:end + 1].
        # 3. One x.reshape(*before, merged, *after): a Tensor operation (it copies our permuted conv
        #    outputs into row-major order, which is what makes the values come out in (c, h, w) order).
        ### BEGIN SOLUTION
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for shape {x.shape}")
        merged = int(np.prod(x.shape[start:end + 1]))
        return x.reshape(*x.shape[:start], merged, *x.shape[end + 1:])
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# %% [markdown]
"""
The test checks the default (keep the batch, flatten the rest), a partial
range, that the values come out in row-major `(c, h, w)` order even when the
input is one of our permuted convolution outputs, and the error for an empty
range.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_flatten", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_flatten():
    x = Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2))
    assert Flatten()(x).shape == (2, 12)
    assert Flatten(0, 1)(x).shape == (6, 2, 2) and Flatten(2)(x).shape == (2, 3, 4)
    assert Flatten()(x).data[1].tolist() == list(range(12, 24))
    conv_out = conv2d(x, Tensor(np.ones((1, 3, 1, 1), dtype=np.float32)))    # a permuted view
    expected = x.data.sum(axis=1).reshape(2, -1)
    np.testing.assert_array_equal(Flatten()(conv_out).data, expected)
    try:
        Flatten(2, 1)(x)
    except ValueError as err:
        assert "start_dim" in str(err)
    else:
        raise AssertionError("Flatten(2, 1) accepted an empty range")
    print("✓ Flatten keeps the batch axis and row-major order")


test_unit_flatten()


# %% [markdown]
"""
### The rest of the API

PyTorch's `Conv2d` has three more options, each built from what is above:

- `groups=g` splits the channels into g independent convolutions (`g = C` is a
  depthwise convolution): g calls of `conv2d` on channel slices, joined with
  `cat`. The weight is `(O, C/g, kh, kw)`.
- `dilation=d` spreads the kernel's taps d pixels apart. Here the kernel itself
  is spread out, with zeros between its taps (built with `cat` and `reshape`,
  so its gradient flows back to the real taps), and convolved as usual: simple,
  at the price of multiplying by those zeros.
- `padding="same"` pads so that the output has the input's size (stride 1):
  `d (k - 1)` pixels in total per axis, the odd one at the bottom/right, as
  PyTorch does; `padding="valid"` is no padding.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
def _dilate_kernel(weight: Tensor, dh: int, dw: int) -> Tensor:
    """(O, C, kh, kw) -> (O, C, dh (kh - 1) + 1, dw (kw - 1) + 1), zeros between the taps."""
    O, C, kh, kw = weight.shape
    w = weight.reshape(O, C, kh, 1, kw, 1)
    if dh > 1:
        w = cat([w, zeros((O, C, kh, dh - 1, kw, 1), dtype=weight.dtype)], dim=3)    # (O, C, kh, dh, kw, 1)
    if dw > 1:
        w = cat([w, zeros((O, C, kh, dh, kw, dw - 1), dtype=weight.dtype)], dim=5)   # (O, C, kh, dh, kw, dw)
    return w.reshape(O, C, kh * dh, kw * dw)[:, :, :dh * (kh - 1) + 1, :dw * (kw - 1) + 1]


def _conv2d_options(input: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int) -> Tensor:
    if input.ndim == 3:
        return _conv2d_options(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups)[0]
    dh, dw = pair(dilation, "dilation")
    if min(dh, dw) < 1:
        raise ValueError(f"conv2d: dilation must be >= 1, got {dilation}")
    if weight.ndim == 4 and (dh > 1 or dw > 1):
        weight = _dilate_kernel(weight, dh, dw)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', not {padding!r}")
        if padding == "same":
            if pair(stride, "stride") != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}; give the padding as numbers")
            (top, bottom), (left, right) = [(t // 2, t - t // 2) for t in (weight.shape[-2] - 1, weight.shape[-1] - 1)]
            if bottom or right:                          # pad the larger amount on both sides, crop the extra
                input = Pad2d.apply(input, padding=(bottom, right))[:, :, bottom - top:, right - left:]
        padding = 0
    C, O = input.shape[1], weight.shape[0]
    if not isinstance(groups, int) or groups < 1 or C % groups or O % groups or weight.shape[1] * groups != C:
        raise ValueError(f"conv2d: groups={groups} must divide the input's {C} channels and the {O} output channels, "
                         f"and the weight {weight.shape} must have {C} / groups input channels")
    if groups == 1:
        return conv2d(input, weight, bias, stride, padding)
    cin, cout = C // groups, O // groups
    return cat([conv2d(input[:, g * cin:(g + 1) * cin], weight[g * cout:(g + 1) * cout],
                       None if bias is None else bias[g * cout:(g + 1) * cout], stride, padding)
                for g in range(groups)], dim=1)


def _conv2d_layer_options(layer, padding_text, groups: int, bias: bool) -> None:
    """Conv2d's padding='same'/'valid' and groups: store the padding, and size the weight for groups."""
    if padding_text is not None:
        layer.padding = padding_text
    if groups != 1:
        if groups < 1 or layer.in_channels % groups or layer.out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={layer.in_channels} and "
                             f"out_channels={layer.out_channels}")
        kh, kw = layer.kernel_size
        bound = 1.0 / np.sqrt(layer.in_channels // groups * kh * kw)   # fan_in of one group
        shape = (layer.out_channels, layer.in_channels // groups, kh, kw)
        layer.weight = init.uniform_(Parameter(np.empty(shape, dtype=np.float32)), -bound, bound)
        if bias:
            layer.bias = init.uniform_(Parameter(np.empty(layer.out_channels, dtype=np.float32)), -bound, bound)


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 4, 7, 6)))
    w = Tensor(rng.standard_normal((6, 2, 3, 3)))
    grouped = conv2d(x, w, groups=2)
    by_hand = np.concatenate([conv2d(x[:, :2], w[:3]).data, conv2d(x[:, 2:], w[3:]).data], axis=1)
    np.testing.assert_allclose(grouped.data, by_hand, rtol=1e-12)
    w1 = Tensor(rng.standard_normal((3, 4, 3, 3)))
    dilated = conv2d(x, w1, dilation=2).data                 # taps 2 apart: the same as a 5x5 kernel with zeros
    spread = np.zeros((3, 4, 5, 5))
    spread[:, :, ::2, ::2] = w1.data
    np.testing.assert_allclose(dilated, conv2d(x, Tensor(spread)).data, rtol=1e-12)
    assert conv2d(x, Tensor(rng.standard_normal((3, 4, 4, 2))), padding="same").shape == (2, 3, 7, 6)
    layer = Conv2d(4, 6, 3, padding="same", dilation=2, groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and layer(Tensor(x.data.astype(np.float32))).shape == (2, 6, 7, 6)
    assert repr(layer) == "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding='same', dilation=(2, 2), groups=2)"
    print("✓ the rest of the API: groups, dilation, padding='same'")


test_unit_rest_of_api()

# %% [markdown]
"""
## Systems analysis

Everything below is measured on your machine while this chapter runs. The
numbers will differ from the author's; the ratios and the trends are the
lesson.

### Loops against im2col

First the headline: the loop reference against `conv2d`, on sizes small
enough for the loops to finish quickly. Both compute the same thing (we
tested that); the difference is who runs the inner work. The loops make one
NumPy call per output element, paying Python's and NumPy's per-call overhead
(microseconds) every time. `conv2d` makes a handful of calls in total, and
the one that matters is a single matrix multiply.
"""

# %%
rng = np.random.default_rng(0)
print(f"{'input (N,C,H,W)':>18} {'filters':>8} {'outputs':>8} {'loops ms':>9} {'im2col ms':>10} {'speed-up':>9}")
for N, C, H, O in [(1, 3, 8, 4), (2, 8, 16, 8), (4, 8, 24, 16)]:
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
    loop_ms, fast_ms, speed_up = paired_ms(lambda: conv2d_naive(x, w), lambda: conv2d(Tensor(x), Tensor(w)), 3)
    outputs = N * O * (H - 2) ** 2
    print(f"{str((N, C, H, H)):>18} {O:>8} {outputs:>8} {loop_ms:>9.2f} {fast_ms:>10.3f} {speed_up:>8.0f}x")
assert speed_up >= 3, f"the text says im2col is at least 3x faster at the largest size; measured {speed_up:.1f}x"

# %% [markdown]
"""
The loop time grows with the number of output elements (each costs a Python
iteration) while im2col barely notices these sizes. The speed-up column is the
median of per-round ratios (both versions run back to back in each round, so
a busy machine slows both alike); the cell asserts that at the largest size
im2col is at least 3 times faster. For a real layer the loops are out of the question:
the second convolution of the reference CNN below has 692,224 outputs per
batch.

### Where im2col's time goes: the copy and the multiply

At realistic sizes we split `conv2d` into its two parts and time each: the
`Im2col` copy and the matrix multiply. We also time the textbook row-major
layout `(N·OH·OW, C·kh·kw)` of the columns, to see whether the choice of
layout made earlier matters. Throughput is reported in GFLOP/s
(2 floating-point operations per multiply-add).
"""

# %%
print(f"{'layer':>32} {'MMACs':>7} {'im2col ms':>10} {'textbook ms':>12} {'textbook/ours':>14} "
      f"{'matmul ms':>10} {'GFLOP/s':>8}")
layout_ratios = []
for label, (N, C, H, O, k) in [("ref CNN conv1: 64x3x32x32 -> 32", (64, 3, 32, 32, 3)),
                               ("ref CNN conv2: 64x32x15x15 -> 64", (64, 32, 15, 64, 3)),
                               ("64x64x16x16 -> 128", (64, 64, 16, 128, 3))]:
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((O, C * k * k)).astype(np.float32)
    OH = H - k + 1
    cols = Im2col.apply(Tensor(x), kernel_size=(k, k), stride=(1, 1)).data
    textbook_ms, im2col_ms, ratio = paired_ms(lambda: sliding_window_view(x, (k, k), axis=(2, 3))
                                              .transpose(0, 2, 3, 1, 4, 5).reshape(N * OH * OH, C * k * k),
                                              lambda: Im2col.apply(Tensor(x), kernel_size=(k, k), stride=(1, 1)))
    layout_ratios.append(ratio)
    matmul_ms = median_ms(lambda: w @ cols)
    macs = N * O * OH * OH * C * k * k
    print(f"{label:>32} {macs / 1e6:>7.0f} {im2col_ms:>10.2f} {textbook_ms:>12.2f} {layout_ratios[-1]:>13.1f}x "
          f"{matmul_ms:>10.2f} {2 * macs / (matmul_ms / 1000) / 1e9:>8.1f}")
square = rng.standard_normal((1024, 1024)).astype(np.float32)
square_ms = median_ms(lambda: square @ square)
print(f"{'for comparison: 1024^3 matmul':>32} {1024**3 / 1e6:>7.0f} {'':>10} {'':>12} {'':>14} {square_ms:>10.2f} "
      f"{2 * 1024**3 / (square_ms / 1000) / 1e9:>8.1f}")
assert min(layout_ratios) > 1, f"the text says the textbook layout is slower on every layer; measured {layout_ratios}"

# %% [markdown]
"""
Three things to read off the table:

* **The copy is not free.** For the first layer (3 input channels, so a
  column is only 27 numbers long) there is so little arithmetic per copied
  number that the copy can cost as much as the multiply. As `C·kh·kw` grows,
  the matmul does more work per copied number, and its throughput moves
  towards what BLAS reaches on a big square matrix (the last row). The
  matmul uses every core, so on a busy machine its column suffers most:
  read this run's table with that in mind.
* **Layout matters.** The textbook layout copies the same bytes in a
  different order and is slower on every one of these layers (the
  `textbook/ours` column, a median of per-round ratios; the cell asserts it
  is above 1), because its innermost loop runs over the 3 pixels of one
  kernel row and then jumps, where ours streams along image rows.
* **The first layer is inefficient**: a dot product of length 27 is too
  short to keep the multiply units busy, whatever the library. Its share of
  the network's time is larger than its share of the arithmetic.

### The memory bill: the columns are kh·kw times the input

Every pixel is copied into each window that covers it: with stride 1 that is
up to `kh·kw` windows, so the column matrix holds about `kh·kw` times as many
numbers as the input. We measure it with `nbytes` and, to see the whole
peak of a convolution's forward pass, with `tracemalloc` (NumPy reports its
allocations to it).
"""

# %%
x = rng.standard_normal((32, 16, 32, 32)).astype(np.float32)
input_mb = x.nbytes / 2**20
kernels = [1, 3, 5, 7]
ratios = []
print(f"input {x.shape} float32: {input_mb:.1f} MiB")
print(f"{'kernel':>7} {'columns MiB':>12} {'columns / input':>16} {'kh*kw':>6} {'forward peak MiB':>17}")
for k in kernels:
    padded = Pad2d.apply(Tensor(x), padding=(k // 2, k // 2))
    cols = Im2col.apply(padded, kernel_size=(k, k), stride=(1, 1))
    ratios.append(cols.nbytes / x.nbytes)
    del padded, cols
    weight = Tensor(rng.standard_normal((16, 16, k, k)).astype(np.float32))
    tracemalloc.start()
    out = conv2d(Tensor(x), weight, padding=k // 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    print(f"{k:>5}x{k} {ratios[-1] * input_mb:>12.1f} {ratios[-1]:>16.2f} {k * k:>6} {peak / 2**20:>17.1f}")
assert ratios == [k * k for k in kernels], f"the text says the ratio is exactly kh*kw; measured {ratios}"

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(kernels, ratios, "o-", label="measured columns / input")
ax.plot(kernels, [k * k for k in kernels], "--", label="kh·kw")
ax.set_xlabel("kernel size k (k×k, same padding)")
ax.set_ylabel("memory ratio")
ax.set_title("im2col memory grows with the kernel area")
ax.legend()
plt.show()

# %% [markdown]
"""
The ratio is exactly `kh·kw` with "same" padding (there are as many windows
as pixels, each `kh·kw` long): a 7×7 convolution turns this 2 MiB
activation into a 98 MiB column matrix. The forward peak adds the padded
input and the output on top. This is the price of im2col, and it is why
production libraries avoid materialising the whole matrix (below).

### Pooling: copy-free reshape against windows

For non-overlapping pooling, reshaping `(N, C, H, W)` into
`(N, C, H/2, 2, W/2, 2)` and taking the max over axes 3 and 5 copies
nothing, while our version copies every pixel into the window matrix first.
Surely the copy-free one is faster?
"""

# %%
x = Tensor(rng.standard_normal((64, 32, 30, 30)).astype(np.float32))
reshape_ms, windows_ms, pool_ratio = paired_ms(lambda: x.reshape(64, 32, 15, 2, 15, 2).amax(dim=(3, 5)),
                                               lambda: max_pool2d(x, 2), rounds=3)
assert np.array_equal(x.reshape(64, 32, 15, 2, 15, 2).amax(dim=(3, 5)).data, max_pool2d(x, 2).data)
print(f"2x2 max-pool of {x.shape}: reshape + max over axes (3, 5): {reshape_ms:.2f} ms, "
      f"im2col windows + max over axis 1: {windows_ms:.2f} ms (copy-free / windows: {pool_ratio:.1f}x, "
      "median of per-round ratios)")
assert pool_ratio > 1.5, f"the text says the copy-free version is slower (over 1.5x); measured {pool_ratio:.1f}x"

# %% [markdown]
"""
The copy-free version is *slower*, by the printed factor (the cell asserts
more than 1.5).
NumPy reduces over axes 3 and 5 by running its inner reduction loop over two
elements at a time, millions of times, jumping through memory in between.
The window version pays for one streaming copy, then reduces over axis 1,
which NumPy does as an element-wise maximum of a few long contiguous rows
(the kind of loop the CPU's vector units are made for). The backward pass
(chapter 09) has the same shape of work, so the gap carries over to
training. Counting bytes moved is not enough; *how* they are walked matters
as much.

### Memory layout of our outputs

`conv2d` returns a permuted view: logically `(N, O, OH, OW)`, physically
`(O, N, OH, OW)`. Here are its strides, and what making it contiguous
(what PyTorch's NCHW output would need) would cost on every layer.
"""

# %%
x = Tensor(rng.standard_normal((64, 32, 15, 15)).astype(np.float32))
w = Tensor(rng.standard_normal((64, 32, 3, 3)).astype(np.float32))
out = conv2d(x, w)
print("shape", out.shape, "strides (elements)", out.stride(), "contiguous:", out.is_contiguous())
conv_ms = median_ms(lambda: conv2d(x, w))
copy_ms = median_ms(lambda: out.contiguous())
print(f"conv2d {conv_ms:.2f} ms; making its output contiguous would add {copy_ms:.2f} ms "
      f"({100 * copy_ms / conv_ms:.0f}% of the convolution)")

# %% [markdown]
r"""
The strides say it: stepping along the batch axis jumps `OH·OW` elements,
stepping along channels jumps `N·OH·OW`. Nothing downstream minds. ReLU and
the other element-wise operations follow whatever layout their input has,
the next `Im2col` walks image rows either way, and `Flatten` is the one place
that must copy. So the copy is cheap, but it buys nothing, and we skip it.
PyTorch faces the same kind of choice and offers
`memory_format=torch.channels_last` (NHWC), a layout that many CPU and GPU
convolution kernels run faster on.

### Receptive fields

A unit deep in a CNN depends on a patch of the input called its *receptive
field*. Each layer with kernel `k` and stride `s` grows it: with `r` the
field size and `j` the distance (in input pixels) between neighbouring units,

$$ r \leftarrow r + (k - 1)\, j, \qquad j \leftarrow j \cdot s . $$

For conv 3 → pool 2 → conv 3 → pool 2 (the reference CNN below) that gives
r = 3, 4, 8, 10. We can *measure* it with forward passes alone: feed a batch of
images that are all zero except one pixel each (image number `p` lights up
pixel `p`), with all-ones filters so that nothing cancels, and see which images
change a chosen output unit.
"""

# %%
H = 32
ones = lambda c_in, c_out: Tensor(np.ones((c_out, c_in, 3, 3), dtype=np.float32))
probe = np.zeros((H * H, 1, H, H), dtype=np.float32)
probe[np.arange(H * H), 0, np.arange(H * H) // H, np.arange(H * H) % H] = 1.0   # image p lights pixel p
h = max_pool2d(conv2d(Tensor(probe), ones(1, 1)), 2)
h = max_pool2d(conv2d(h, ones(1, 1)), 2)                 # (H*H, 1, 6, 6)
unit = (3, 3)
influence = (h.data[:, 0, unit[0], unit[1]] > 0).reshape(H, H)
rows, cols = np.nonzero(influence)
print(f"final map {h.shape[2:]}; unit {unit} sees input rows {rows.min()}..{rows.max()}, "
      f"columns {cols.min()}..{cols.max()}: a {np.ptp(rows) + 1}x{np.ptp(cols) + 1} receptive field")

r, j = 1, 1
for k, s in [(3, 1), (2, 2), (3, 1), (2, 2)]:
    r, j = r + (k - 1) * j, j * s
print(f"formula: r = {r}, jump = {j} input pixels between neighbouring output units")
assert np.ptp(rows) + 1 == np.ptp(cols) + 1 == r == 10, "the measured field should match the formula's 10"

fig, ax = plt.subplots(figsize=(3.2, 3.2))
ax.imshow(influence, cmap="Greys")
ax.set_title(f"input pixels that reach unit {unit}")
plt.show()

# %% [markdown]
"""
Two convolutions and two poolings let each final unit see a 10×10 patch of a
32×32 image, and neighbouring units are 4 pixels apart. Pooling is what makes
the field grow fast: every stride-2 layer doubles the jump, so every later
kernel covers twice as much of the input. Deeper networks stack this until
the last units see the whole image.

## Production context: how real frameworks run a convolution

**No single algorithm wins everywhere**, so the libraries carry several and
pick one per layer shape:

* **im2col + GEMM**, what we built. PyTorch still has it: on this course's
  PyTorch 2.x CPU build, a float64 convolution dispatches to the backend
  PyTorch calls `Slow2d`, which is exactly im2col (`unfold`) plus a BLAS matmul.
* **Direct convolution and implicit GEMM.** Float32 convolutions on that same
  CPU build go to oneDNN (formerly MKL-DNN). Its direct-convolution kernels
  read the input in place, in a blocked layout (channels in groups of 8 or 16,
  one vector register wide), and build each output tile from pieces that stay
  in cache, so the full column matrix and its kh·kw memory bill never exist.
  cuDNN's `IMPLICIT_GEMM` and `IMPLICIT_PRECOMP_GEMM` algorithms do the
  equivalent on GPUs: the matmul of im2col, with the windows gathered on the
  fly.
* **Winograd** (cuDNN's `WINOGRAD`, `WINOGRAD_NONFUSED`; on CPUs, the NNPACK
  library that PyTorch builds include) trades multiplications for additions. For 3×3 kernels, F(2×2, 3×3) produces a
  2×2 output tile with 16 multiplications instead of 36 (2.25× fewer), at the
  cost of extra additions and slightly worse rounding. The 1-D version below
  computes two outputs of a 3-tap filter with 4 multiplications instead of 6
  (the filter's sums are computed once per filter, not per tile).
* **FFT** (cuDNN's `FFT`, `FFT_TILING`): convolution is a pointwise product in
  the frequency domain, so the cost stops growing with the kernel area. It pays off
  for large kernels, and costs memory for the transformed filters.

**How the choice is made.** cuDNN offers heuristics
(`cudnnGetConvolutionForwardAlgorithm_v7`) and exhaustive timing
(`cudnnFindConvolutionForwardAlgorithm`). PyTorch uses the heuristics by
default; with `torch.backends.cudnn.benchmark = True` it times every
applicable algorithm the first time it sees a layer shape, caches the
fastest, and reuses it: a slower first batch, then a faster run, provided the
shapes stay fixed. Each algorithm also needs *workspace* memory, so the
choice is limited by the memory that is free: the same memory-for-speed trade
as our column matrix.

Let us check the two claims we can verify with NumPy: Winograd's
multiplication count, and where FFT starts beating im2col.
"""

# %%
def winograd_f23(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Two outputs of a 3-tap correlation from 4 inputs, with 4 multiplications (not 6)."""
    m1 = (d[0] - d[2]) * g[0]
    m2 = (d[1] + d[2]) * (g[0] + g[1] + g[2]) / 2        # the filter sums are precomputed once per filter
    m3 = (d[2] - d[1]) * (g[0] - g[1] + g[2]) / 2
    m4 = (d[1] - d[3]) * g[2]
    return np.array([m1 + m2 + m3, m2 - m3 - m4])


d, g = rng.standard_normal(4), rng.standard_normal(3)
direct = np.array([d[0:3] @ g, d[1:4] @ g])
print("Winograd F(2,3):", winograd_f23(d, g), " direct:", direct)
assert np.allclose(winograd_f23(d, g), direct)


def conv2d_fft(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Valid' cross-correlation of one 2-D image with one kernel via the FFT."""
    H, W = image.shape
    kh, kw = kernel.shape
    spectrum = np.fft.rfft2(image) * np.fft.rfft2(kernel[::-1, ::-1], s=(H, W))   # flip: FFT convolves
    return np.fft.irfft2(spectrum, s=(H, W))[kh - 1:, kw - 1:]


image = rng.standard_normal((96, 96)).astype(np.float32)
print(f"{'kernel':>7} {'im2col ms':>10} {'FFT ms':>8} {'im2col/FFT':>11}")
fft_ratios = []
for k in [3, 9, 15, 31]:
    kernel = rng.standard_normal((k, k)).astype(np.float32)
    x4, w4 = Tensor(image[None, None]), Tensor(kernel[None, None])
    assert np.allclose(conv2d(x4, w4).data[0, 0], conv2d_fft(image, kernel), rtol=1e-4, atol=1e-3)
    im2col_ms, fft_ms, ratio = paired_ms(lambda: conv2d(x4, w4), lambda: conv2d_fft(image, kernel), rounds=3)
    fft_ratios.append(ratio)
    print(f"{k:>5}x{k} {im2col_ms:>10.2f} {fft_ms:>8.2f} {ratio:>10.2f}x")
assert fft_ratios[-1] > 1 and fft_ratios[-1] > 2 * fft_ratios[0], \
    f"the text says the FFT wins at 31x31 and im2col loses ground as the kernel grows; measured {fft_ratios}"

# %% [markdown]
"""
The FFT's time hardly depends on the kernel, im2col's grows with its area, so
the ratio in the last column grows with the kernel, and at 31×31 the FFT is
the faster one (the cell asserts both; where exactly they cross depends on
the machine). CNNs are dominated by 3×3 and 1×1
kernels, which is why Winograd and implicit GEMM matter more in practice than
FFT.

**What tinytorch does differently, on purpose.** One algorithm (explicit
im2col), float32 only by default, no autotuning, a permuted output instead of
a contiguous one, and pooling through the same window matrix. The
`benchmarks/run_all.py` script at the repository root times a convolution's
forward and backward pass and the reference CNN's training step side by side
with PyTorch's CPU backend on your machine (chapter 15 builds the harness it
uses).

## Integration: a CNN from the pieces of chapters 02 to 06

Now the parts work together: `Sequential` and `Linear` from chapter 04, `ReLU`
from chapter 03, and this chapter's layers. This is the reference CNN used
throughout the course for CIFAR-10 (32×32 colour images, 10 classes).
"""

# %%
init.manual_seed(0)
cnn = Sequential(
    Conv2d(3, 32, 3), ReLU(), MaxPool2d(2),       # (N, 32, 30, 30) -> (N, 32, 15, 15)
    Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),      # (N, 64, 13, 13) -> (N, 64, 6, 6)
    Flatten(),                                    # (N, 2304)
    Linear(2304, 256), ReLU(),
    Linear(256, 10),                              # class scores
)
images = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))

print(f"{'layer':<54} {'output shape':>17} {'params':>8} {'MMACs':>7} {'ms':>6}")
h, total_ms = images, 0.0
for layer in cnn:
    params = sum(p.numel() for p in layer.parameters()) if isinstance(layer, Module) else 0
    ms = median_ms(lambda: layer(h), repeats=3)
    out = layer(h)
    if isinstance(layer, Conv2d):
        macs = out.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    elif isinstance(layer, Linear):
        macs = out.numel() * layer.in_features
    else:
        macs = 0
    total_ms += ms
    print(f"{repr(layer):<54} {str(out.shape):>17} {params:>8} {macs / 1e6:>7.1f} {ms:>6.2f}")
    h = out
print(f"{'total':<54} {'':>17} {sum(p.numel() for p in cnn.parameters()):>8} {'':>7} {total_ms:>6.2f}")
assert h.shape == (64, 10)
convs = [layer for layer in cnn if isinstance(layer, Conv2d)]
conv_params = sum(p.numel() for layer in convs for p in layer.parameters()) / sum(p.numel() for p in cnn.parameters())
conv_macs = (64 * 32 * 30 * 30 * 3 * 9 + 64 * 64 * 13 * 13 * 32 * 9) / (
    64 * 32 * 30 * 30 * 3 * 9 + 64 * 64 * 13 * 13 * 32 * 9 + 64 * 256 * 2304 + 64 * 10 * 256)
conv_ms = sum(median_ms(lambda: layer(t), repeats=3) for layer, t in
              [(cnn[0], images), (cnn[3], cnn[:3](images))])
print(f"the two convolutions: {conv_params:.1%} of the parameters, {conv_macs:.1%} of the multiply-adds, "
      f"{conv_ms / total_ms:.0%} of this run's time")
assert conv_params < 0.05 and conv_macs > 0.8, "the text says convs hold few parameters and most of the work"

# %% [markdown]
"""
The table is the chapter's argument in numbers: the two convolutions hold
about 3% of the parameters but do nearly 90% of the multiply-adds (both
printed above; the cell asserts under 5% and over 80%), and this run's share
of the time is printed beside them, while
`Linear(2304, 256)` holds nearly all the parameters and little of the work. Convolutions are cheap to store and expensive to run;
fully connected layers are the reverse.

Finally, a filter we can read. A Sobel filter responds to horizontal changes
in brightness; its transpose to vertical ones. Set them as the weights of a
`Conv2d(1, 2, 3, padding=1)` and the layer finds the edges of a square:
"""

# %%
sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
edges = Conv2d(1, 2, 3, padding=1, bias=False)
edges.weight.data[:] = np.stack([sobel, sobel.T])[:, None]       # (2, 1, 3, 3)
square = np.zeros((1, 1, 24, 24), dtype=np.float32)
square[..., 6:18, 6:18] = 1.0
response = edges(Tensor(square)).data[0]                          # (2, 24, 24)
assert response[0, 12, 5] > 0 and response[0, 12, 12] == 0        # the left edge, and a flat interior

fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
for ax, img, title in zip(axes, [square[0, 0], response[0], response[1]],
                          ["input", "channel 0: left/right edges", "channel 1: top/bottom edges"]):
    ax.imshow(img, cmap="RdBu" if img is not square[0, 0] else "Greys")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_output_size()
    test_unit_conv2d_naive()
    test_unit_pad2d()
    test_unit_im2col()
    test_unit_spatial_backward()
    test_unit_conv2d()
    test_unit_conv2d_module()
    test_unit_pooling()
    test_unit_flatten()
    test_unit_rest_of_api()
    print("All tests of chapter 06 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. The column matrix at scale.** A ResNet layer convolves a batch of 32
images of 256 channels at 56×56 with 3×3 filters, 256 output channels and
padding 1. How many bytes would our `Im2col` allocate in float32? The chapter
measured the forward peak: the columns, plus the padded input and the
output. How would you bring the peak down without changing the result (think
of splitting the batch, or of what implicit GEMM does) and what would each
option cost in time?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_column_matrix_at_scale", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** With padding 1 the output is 56×56, so the columns are
(256 · 9) × (32 · 56 · 56) = 2304 × 100,352 = 231 M numbers, 925 MB (882 MiB)
in float32: 9 times the 103 MB input, as the memory table's `kh·kw` ratio says.
The padded input adds 32 · 256 · 58 · 58 · 4 B = 110 MB and the output 103 MB:
a peak of about 1.14 GB. Splitting the batch into chunks of b images builds
columns for b images at a time (b = 8: 231 MB), each multiplied by the same
filters; the FLOPs are unchanged, each matmul is still large (2304 × 25,088
columns), so the cost is a few more calls and writing each chunk's result into
its slice of the output: a few percent. Implicit GEMM never builds the matrix:
the matmul kernel gathers each tile of windows from the padded input as it
needs them, so the extra memory is a tile in cache; the cost is a custom
kernel (no NumPy equivalent at full speed) whose inner loop does address
arithmetic, which libraries such as oneDNN and cuDNN make nearly free.

**Rubric (2 points).** 1 point for the 925 MB (or 882 MiB) columns, with the peak of roughly
1.1 GB; 1 point for two options with their costs (batch chunks: same FLOPs,
more calls, memory divided by the number of chunks; implicit GEMM: no column
matrix, a specialised kernel).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Layouts between layers.** Our `conv2d` returns a view whose memory is
`(O, N, OH, OW)`. Trace which operations of the reference CNN copy data
because of that, and which do not. When would it pay to call `.contiguous()`
after every convolution, and what does PyTorch's `channels_last` format
change for the next layer's window copy?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_layouts_between_layers", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** `ReLU` is elementwise: NumPy writes its output in the input's memory
order, so it copies nothing extra. `MaxPool2d` goes through `Im2col`, which
copies every window anyway; its innermost axis still walks image rows, so the
layout costs nothing. The second `Conv2d` is the same. Only `Flatten` has to
copy because of the layout: `(N, C·H·W)` row-major needs each image's values
together, and they are spread over channels (64 × 2304 numbers, 0.6 MB per
batch). The chapter measured a contiguous copy at a small fraction of a
convolution; it pays only when a consumer needs NCHW contiguity (a library
kernel that requires it, saving to or exchanging with PyTorch, or an operation
that walks each image's pixels many times). With `channels_last` (NHWC) the
C values of a pixel are adjacent, so the next layer's window copy moves
contiguous runs of kw · C numbers, and the natural column layout becomes
(N·OH·OW, kh·kw·C), the textbook one, now streaming; a 1×1 convolution becomes
a plain matmul with no copy at all.

**Rubric (2 points).** 1 point for identifying Flatten as the only copy caused by the layout
(ReLU and the window copies are unaffected); 1 point for when `.contiguous()`
pays and what channels_last changes (channels innermost, contiguous window
rows, 1×1 convolution as a matmul).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Pooling by reshape.** We measured `reshape + max over axes (3, 5)` to be
slower than copying into windows first, although it moves fewer bytes.
Explain the result from how a reduction loop walks memory. Could you make
the copy-free version fast with only NumPy calls (hint: `np.maximum` of the
four strided slices)? What would that do to the number of primitives and
to chapter 09's work?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_pooling_by_reshape", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** NumPy reduces over axes 3 and 5 with an inner loop over the reduced
elements, here 2 at a time, restarted for every one of the
64 · 32 · 15 · 15 = 460,800 outputs and jumping through memory between them: the
loop overhead and the strided access dominate, and nothing is vectorised.
The window version copies once (a streaming copy) and then takes the maximum
over axis 1 of (C, 4, N·OH·OW), which NumPy runs as elementwise maxima of four
long contiguous rows: vector instructions at memory speed. The copy-free fast
version is `np.maximum(np.maximum(x[..., ::2, ::2], x[..., ::2, 1::2]),
np.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2]))`: three elementwise passes
over strided views, no window matrix. In tinytorch that needs an elementwise
`Maximum` primitive (a new forward and a new backward rule that
sends the gradient to the larger input and splits ties), plus four `GetItem`
slices whose backward scatters into four full-size zero arrays that are then
added: more memory traffic in backward than one col2im.

**Rubric (2 points).** 1 point for the reduction-loop explanation (short inner loop of 2,
strided, per output; against long contiguous rows); 1 point for the
`np.maximum` version and its cost in tinytorch (a new primitive with its own
backward rule, and the strided scatters).
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Downsampling by stride or by pooling.** A `Conv2d(C, C, 3, stride=2)`
and a `Conv2d(C, C, 3)` followed by `MaxPool2d(2)` both halve the map.
Compare their multiply-adds, their column-matrix memory and the receptive
field after each, using the formulas of this chapter.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_downsampling", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** For an N × C × H × H input (same padding): the stride-2 convolution has
(H/2)² outputs per channel, N · C · (H/2)² · 9C = 2.25 N C² H² multiply-adds,
and a column matrix of 9C × N(H/2)² numbers, 2.25 times the input. The stride-1
convolution has H² outputs: 9 N C² H² multiply-adds (4 times more) and a column
matrix of 9 times the input (4 times more), plus the pooling's own window copy
of one input's size. Receptive field, with $r \leftarrow r + (k-1)j$,
$j \leftarrow js$, from r = 1, j = 1: stride-2 conv gives r = 3, j = 2;
conv then pool gives r = 3, j = 1, then r = 3 + 1 = 4, j = 2. After one more
3×3 convolution: 3 + 2 · 2 = 7 against 4 + 2 · 2 = 8. Conv plus pooling pays 4
times the work and memory for a slightly larger field (and the small shift
invariance of the max).

**Rubric (2 points).** 1 point for the factor of 4 in multiply-adds and in column memory (with the
2.25 and 9 times the input); 1 point for the receptive fields 3 (jump 2)
against 4 (jump 2), worked with the formula.
### END SOLUTION
"""

# %% [markdown]
"""
## Summary

You built the layers that made deep learning work on images, and made them
fast with the same idea the big frameworks started from:

* **`conv2d` / `Conv2d`**: `Pad2d`, then `Im2col` copies every window into a
  column, then one matrix multiply with the flattened filters. PyTorch's
  argument names, weight layout `(O, C, kh, kw)` and default initialisation.
* **`max_pool2d` / `avg_pool2d` and their layers**: the same window matrix,
  reduced along the window axis; `-inf` padding for max and zeros for average.
* **`Flatten`**: from feature maps to the vector a classifier needs.
* **Two new primitives**, `Pad2d` and `Im2col`, each with its backward rule
  beside its forward (crop the gradient; add every window's gradient back
  onto its pixels), checked with finite differences. Everything else is the
  Tensor operations of chapter 02, which is why chapter 09's engine makes all
  of it trainable.

What you measured: im2col is many times faster than loops,
and it costs `kh·kw` times the input's memory; the order in which a copy
walks memory changes its speed; a copy-free pooling can
lose to one that copies; convolutions hold few parameters and do most of the
work; each pooling layer doubles how fast the receptive field grows.

Next, chapter 07 builds attention, the other way to let every position see
others, and chapter 09 turns this chapter's CNN into one you can train.
"""
