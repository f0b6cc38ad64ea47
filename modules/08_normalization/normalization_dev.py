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
# Normalization

Stack thirty layers and every number passes through thirty matrix
multiplications. If each layer makes its output a little larger than its
input, say 1.5 times, the last layer sees numbers $1.5^{30} \approx 190{,}000$
times larger than the first; if each makes it 0.5 times as large, the signal
is $10^{-9}$ of what it was, below the noise of float32 arithmetic. Neither
network can learn: exploding activations overflow and saturate, vanishing
ones carry no information, and (chapter 09 will show) the gradients suffer
the same fate on the way back.

Careful initialisation (chapter 04's Kaiming init) sets the per-layer factor
to about 1 *at the start*. But training changes the weights, and a factor of
1.1 per layer is already 17× over thirty layers. **Normalization layers**
remove the problem at its root: they rescale activations to zero mean and
unit variance at every layer, whatever the weights did, and then let the
network learn the scale it actually wants with two parameters per feature.

In this chapter you build:

- `LayerNorm`: normalizes each sample over its features. The layer inside
  every Transformer (GPT, BERT, ViT); it behaves identically in training and
  evaluation.
- `BatchNorm1d` and `BatchNorm2d`: normalize each feature (channel) over the
  batch. The layer that made deep CNNs (ResNet) trainable. It keeps *running
  statistics* as buffers, so it behaves differently in training and in
  evaluation, a distinction every practitioner gets bitten by at least once.

All three are built from Tensor operations only. That makes them trainable as
soon as chapter 09 gives every primitive its backward rule: nothing here will
be rewritten. We measure their effect forward-only in this chapter, on a deep
network whose activations explode or vanish without them; training with them
comes in chapters 09 and 10.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.normalization

# %%
#| export
from __future__ import annotations

import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn.module import Module, Parameter

# %%
import time
import tracemalloc

import matplotlib.pyplot as plt

from tinytorch.nn import init
from tinytorch.nn.activation import relu
from tinytorch.nn.layers import Linear, Sequential

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
r"""
## Background: the one formula, and which axes it runs over

Every normalization layer here computes, for a group of numbers $x_1..x_m$,

$$
\mu = \frac{1}{m}\sum_i x_i, \qquad
\sigma^2 = \frac{1}{m}\sum_i (x_i - \mu)^2, \qquad
y_i = \gamma \cdot \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta .
$$

The middle fraction has mean 0 and variance 1 (almost: $\epsilon$, 1e-5 by
default, keeps the division finite when all $x_i$ are equal). $\gamma$ (the
`weight`, initialised to 1) and $\beta$ (the `bias`, initialised to 0) are
learnable per feature, so the layer can undo the normalization if that is what
the loss wants; what it cannot do is let the scale drift by accident.

The layers differ only in **which numbers form a group**:

| layer | input | statistics computed over | one (μ, σ²) per |
| --- | --- | --- | --- |
| `LayerNorm(E)` | (..., E) | the last dimension(s) | sample (and position) |
| `BatchNorm1d(C)` | (N, C) or (N, C, L) | batch (and length) | channel |
| `BatchNorm2d(C)` | (N, C, H, W) | batch, height, width | channel |

Cost: a handful of passes over the activations (mean, subtract, square, mean,
scale) and no matrix products: O(number of elements), tiny in FLOPs next to
the Linear or Conv2d before it. Parameters: 2 per feature. BatchNorm also
keeps 2 buffers per channel (the running mean and variance).

**Why is the variance biased (divided by m, not m−1)?** The layer normalizes
*these* numbers, not an estimate of a population; PyTorch and the original
papers use the biased form here. BatchNorm's *running* variance is different:
it estimates the variance of the whole data set from samples, so PyTorch
updates it with the unbiased form (divided by m−1). We do exactly the same, so
running statistics agree with PyTorch's to rounding.
"""

# %% [markdown]
r"""
## Implementation

### LayerNorm

`normalized_shape` is the trailing shape to normalize over, an int for the
usual case `LayerNorm(E)` on (B, T, E) activations, or a tuple such as
`(C, H, W)`. The mean and variance are computed with `keepdim=True`, so they
broadcast back against the input. We multiply by $(\sigma^2+\epsilon)^{-1/2}$
(one `Pow` primitive) rather than divide by a square root (two).
The given lines at the top of `forward` are a hook, like BatchNorm's
below: a kernel installed with `set_layer_norm_kernel` may compute the whole
layer instead of your composition (while that kernel is still a stub, your
composition runs). Chapter 14 writes a fused one (one
primitive, its backward in closed form), and the package installs it when it
is assembled; the cells of this chapter run your composition.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_LayerNorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
# A kernel installed by set_layer_norm_kernel (chapter 14 installs a fused one); None: the composition below.
layer_norm_kernel = None


def set_layer_norm_kernel(kernel):
    """Compute LayerNorm as kernel(x, weight, bias, normalized_shape, eps) -> out (x's shape).

    weight and bias are the layer's Parameters or None. `kernel=None` restores the composition of
    Tensor operations. Returns the kernel that was installed before, so a caller can put it back.
    """
    global layer_norm_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_layer_norm_kernel: expected a function (x, weight, bias, normalized_shape, eps) "
                        f"-> Tensor or None, not {type(kernel).__name__}")
    previous, layer_norm_kernel = layer_norm_kernel, kernel
    return previous


class LayerNorm(Module):
    """Normalize each sample over its last dimensions, then scale by `weight` and shift by `bias`."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype=np.float32)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=np.float32)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Normalize x (..., *normalized_shape) over its last len(normalized_shape) dims; same shape out.

        Raises ValueError, naming both shapes, when x's trailing dims are not normalized_shape.
        """
        if layer_norm_kernel is not None and x.shape[x.ndim - len(self.normalized_shape):] == self.normalized_shape:
            try:                                               # given: a faster kernel, once installed
                return layer_norm_kernel(x, self.weight, self.bias, self.normalized_shape, self.eps)
            except NotImplementedError:
                pass                                           # still a stub in a learner's package: compose below
        # 1. dims = the last n axes (negative: -n, ..., -1); mean over them with keepdim=True.
        # 2. Biased variance: the mean of (x - mean)**2 over the same dims (divide by m, not m - 1).
        # 3. Multiply by (var + eps) ** -0.5 (one Pow; eps inside the root: a constant sample has var 0).
        # 4. Then `* self.weight` and `+ self.bias` when they exist: they broadcast over the leading dims.
        # Use Tensor operations only, so that chapter 09 can differentiate it.
        ### BEGIN SOLUTION
        n = len(self.normalized_shape)
        if x.shape[x.ndim - n:] != self.normalized_shape or x.ndim < n:
            raise ValueError(f"LayerNorm({self.normalized_shape}) normalizes the last dimensions, which must be "
                             f"{self.normalized_shape}; got input of shape {x.shape}")
        dims = tuple(range(-n, 0))
        mean = x.mean(dim=dims, keepdim=True)                  # (..., 1): one mean per sample
        centered = x - mean
        var = (centered * centered).mean(dim=dims, keepdim=True)   # biased variance, as PyTorch
        out = centered * (var + self.eps) ** -0.5              # zero mean, unit variance per sample
        if self.weight is not None:
            out = out * self.weight                            # (..., *normalized_shape) broadcast
        if self.bias is not None:
            out = out + self.bias
        return out
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


# %% [markdown]
r"""
The test checks the defining property (every sample comes out with mean 0 and
variance 1 over its features, whatever its original scale), that `weight` and
`bias` then apply per feature, that a tuple `normalized_shape` normalizes over
all of those dimensions together, and that a wrong trailing shape fails with
a message that shows both shapes.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_layer_norm", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_layer_norm():
    rng = np.random.default_rng(0)
    x = Tensor((rng.standard_normal((4, 3, 8)) * np.array([1.0, 50.0, 0.2])[None, :, None] + 7).astype(np.float32))
    ln = LayerNorm(8)
    y = ln(x).data
    assert y.shape == (4, 3, 8), f"shape should be unchanged, got {y.shape}"
    assert np.allclose(y.mean(-1), 0.0, atol=1e-4), "every sample should have mean 0 over its features"
    assert np.allclose(y.var(-1), 1.0, atol=1e-2), "every sample should have variance 1 over its features"
    ln.weight.data[...] = np.arange(8)
    ln.bias.data[...] = 3.0
    z = ln(x).data
    assert np.allclose(z, y * np.arange(8) + 3.0, atol=1e-5), "weight and bias should apply per feature"

    ln2 = LayerNorm((3, 8))
    y2 = ln2(x).data
    assert np.allclose(y2.reshape(4, -1).mean(-1), 0.0, atol=1e-5), "a tuple shape normalizes over all its dims"
    assert [name for name, _ in LayerNorm(8, elementwise_affine=False).named_parameters()] == [], \
        "elementwise_affine=False means no parameters"
    try:
        LayerNorm(5)(x)
    except ValueError as err:
        assert "(4, 3, 8)" in str(err) and "(5,)" in str(err), f"error should show both shapes: {err}"
    else:
        raise AssertionError("LayerNorm(5) on (..., 8) input should raise ValueError")
    print("LayerNorm: per-sample mean 0 / variance 1, affine, tuple shapes and errors OK")


test_unit_layer_norm()

# %% [markdown]
r"""
### BatchNorm: statistics across the batch, and running estimates

BatchNorm normalizes each **channel** using the statistics of the current
batch, over every axis except the channel axis 1: axis 0 for (N, C), axes
(0, 2) for (N, C, L), axes (0, 2, 3) for (N, C, H, W).

That raises a question LayerNorm never faces: what happens at test time,
when there is a single image and no batch? BatchNorm answers with two
**buffers**, `running_mean` and `running_var`, exponential moving averages of
the batch statistics seen in training:

$$
\hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_{\text{batch}}, \qquad
\hat\sigma^2 \leftarrow (1 - m)\,\hat\sigma^2 + m\,\sigma^2_{\text{batch, unbiased}} .
$$

With PyTorch's convention `momentum` $m = 0.1$ is the weight of the *new*
batch (Keras and TensorFlow use the opposite: their momentum 0.99 is the
weight of the old value). `momentum=None` makes it a plain cumulative average,
$m = 1/\text{(batches seen)}$, using the third buffer `num_batches_tracked`.

- **train mode** (`.train()`, the default): normalize with the batch's own mean
  and biased variance, and update the running estimates;
- **eval mode** (`.eval()`): normalize with the running estimates, update
  nothing. The output of a sample then no longer depends on which other
  samples share its batch.

The buffers are registered with chapter 04's `register_buffer`, so they appear
in `state_dict` (a saved model keeps them) but not in `parameters()` (an
optimizer never touches them). Updating them is bookkeeping, not part of the
differentiable computation, so it works on their arrays directly; everything
between input and output is Tensor operations. A shared base class holds the
logic; the two public classes only say which input shapes they accept.

The given lines at the top of `forward` are a hook: with batch statistics,
a kernel installed with `set_batch_norm_kernel` may compute the output, mean
and variance instead of the composition you write. Chapter 14 writes a fused
one (forward and backward in a few passes, with the statistics saved), and
the package installs it when it is assembled; the cells of this chapter run
your composition.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_BatchNorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
# A kernel installed by set_batch_norm_kernel (chapter 14 installs a fused one); None: the composition below.
batch_norm_kernel = None


def set_batch_norm_kernel(kernel):
    """Compute BatchNorm with batch statistics as kernel(x, weight, bias, eps) -> (out, mean, var).

    mean and var are this batch's (C,) mean and biased variance (the layer updates its running
    statistics from them). `kernel=None` restores the composition of Tensor operations. Returns the
    kernel that was installed before, so a caller can put it back.
    """
    global batch_norm_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_batch_norm_kernel: expected a function (x, weight, bias, eps) -> (out, mean, var) "
                        f"or None, not {type(kernel).__name__}")
    previous, batch_norm_kernel = batch_norm_kernel, kernel
    return previous


class _BatchNorm(Module):
    """Per-channel normalization over the batch (and spatial) axes, with running statistics for eval mode."""

    _shapes = ""                                       # a description of the accepted input shapes, for errors

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        """Store the options; create `weight` (ones) and `bias` (zeros), one per channel, if affine.

        With track_running_stats, register three buffers with `self.register_buffer(name, tensor)`:
        running_mean (zeros), running_var (ones), both float32 (C,), and num_batches_tracked,
        an int64 scalar 0; without it register the same three names as None.
        """
        # Buffers, not Parameters: they belong in state_dict() but an optimizer must never update them.
        # Pitfall: call super().__init__() first, or Module cannot record parameters and buffers.
        ### BEGIN SOLUTION
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        ### END SOLUTION

    def _accepts(self, ndim: int) -> bool:
        raise NotImplementedError

    def _update_running_stats(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        """Move the running estimates towards this batch's (C,) mean and unbiased variance."""
        # 1. Count the batch: num_batches_tracked.data += 1.
        # 2. m = self.momentum, the weight of the NEW value (PyTorch's convention); momentum=None
        #    means a cumulative average, m = 1 / num_batches_tracked.
        # 3. running = (1 - m) * running + m * batch, written in place with `.data[...] =`
        #    (the buffer objects stay the same; state_dict and the caller hold them).
        ### BEGIN SOLUTION
        self.num_batches_tracked.data += 1
        m = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked.data)
        self.running_mean.data[...] = (1 - m) * self.running_mean.data + m * mean
        self.running_var.data[...] = (1 - m) * self.running_var.data + m * unbiased_var
        ### END SOLUTION

    def _forward_with_kernel(self, kernel, x: Tensor) -> Tensor:
        """forward() with this batch's statistics computed by kernel(x, weight, bias, eps) -> (out, mean, var)."""
        name, C = type(self).__name__, self.num_features
        if not self._accepts(x.ndim) or x.shape[1] != C:
            raise ValueError(f"{name}({C}) expects input of shape {self._shapes} with C={C}; got {x.shape}")
        count = x.numel() // C
        if self.training and count <= 1:
            raise ValueError(f"{name}: expected more than 1 value per channel when training, got input of "
                             f"shape {x.shape}; use a larger batch or call .eval()")
        out, mean, var = kernel(x, self.weight, self.bias, self.eps)    # mean and biased var: (C,) arrays
        if self.training and self.running_mean is not None:
            self._update_running_stats(mean, var * count / (count - 1))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Normalize each channel (axis 1) of x; the output has x's shape.

        Training (or no running stats): use this batch's mean and biased variance over every axis
        but 1, and update the running stats with the unbiased variance (times count / (count - 1)).
        Eval: use running_mean and running_var, update nothing.
        """
        if x.numel() == 0 and x.ndim >= 2 and x.shape[1] == self.num_features:
            return x * 1.0                             # given: an empty batch comes back empty, as in PyTorch
        if batch_norm_kernel is not None and (self.training or self.running_mean is None):
            try:                                       # given: a faster kernel for batch statistics, once installed
                return self._forward_with_kernel(batch_norm_kernel, x)
            except NotImplementedError:
                pass                                   # still a stub in a learner's package: compose below
        # Shapes: reduce over axes (0, 2, 3, ...) with keepdim=True -> (1, C, 1, ...); reshape the
        # (C,) buffers and weight/bias to (1, C, 1, ...) so they broadcast against x.
        # Errors (ValueError): a shape `_accepts` refuses or x.shape[1] != C; in training, a single
        # value per channel (count = x.numel() // C <= 1): it has no variance.
        # Pitfall: the running stats are bookkeeping: update them from `.data` arrays, not Tensors.
        ### BEGIN SOLUTION
        name, C = type(self).__name__, self.num_features
        if not self._accepts(x.ndim) or x.shape[1] != C:
            raise ValueError(f"{name}({C}) expects input of shape {self._shapes} with C={C}; got {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))          # every axis except the channels
        shape = (1, C) + (1,) * (x.ndim - 2)           # a per-channel value that broadcasts against x
        if self.training or self.running_mean is None:
            count = x.numel() // C                     # values per channel in this batch
            if self.training and count <= 1:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, got input of "
                                 f"shape {x.shape}; use a larger batch or call .eval()")
            mean = x.mean(dim=axes, keepdim=True)      # (1, C, 1, ...)
            centered = x - mean
            var = (centered * centered).mean(dim=axes, keepdim=True)   # biased: normalizes this batch
            if self.training and self.running_mean is not None:
                self._update_running_stats(mean.data.reshape(C), var.data.reshape(C) * count / (count - 1))
        else:
            centered = x - self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
        out = centered * (var + self.eps) ** -0.5
        if self.weight is not None:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out
        ### END SOLUTION

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) inputs: one mean and variance per channel C."""

    _shapes = "(N, C) or (N, C, L)"

    def _accepts(self, ndim: int) -> bool:
        return ndim in (2, 3)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W) images: one mean and variance per channel C."""

    _shapes = "(N, C, H, W)"

    def _accepts(self, ndim: int) -> bool:
        return ndim == 4


# %% [markdown]
r"""
The first BatchNorm test is about training mode: each channel of the output
has mean 0 and variance 1 over the batch (for (N, C) and for (N, C, L), where
the length axis counts as more samples), the buffers are in `state_dict` and
not in `parameters()`, and the two classic errors are caught: a batch of one
in training (a single value has no variance) and the wrong number of channels.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_batch_norm_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_batch_norm_train():
    rng = np.random.default_rng(1)
    bn = BatchNorm1d(3)
    x = Tensor((rng.standard_normal((16, 3)) * [1.0, 10.0, 0.5] + [5.0, -2.0, 0.0]).astype(np.float32))
    y = bn(x).data
    assert np.allclose(y.mean(0), 0.0, atol=1e-4) and np.allclose(y.var(0), 1.0, atol=1e-3), \
        "in training mode each channel should have mean 0 and variance 1 over the batch"
    seq = Tensor(rng.standard_normal((4, 3, 10)).astype(np.float32) * 3 + 1)
    ys = BatchNorm1d(3)(seq).data
    assert np.allclose(ys.mean((0, 2)), 0.0, atol=1e-4), "(N, C, L): statistics over N and L together"
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"], "weight and bias are the parameters"
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}, \
        f"state_dict should hold parameters and buffers, got {sorted(bn.state_dict())}"
    for bad, words in ((Tensor(np.ones((1, 3), dtype=np.float32)), "more than 1 value"),
                       (Tensor(np.ones((4, 5), dtype=np.float32)), "C=3")):
        try:
            bn(bad)
        except ValueError as err:
            assert words in str(err), f"unhelpful error: {err}"
        else:
            raise AssertionError(f"input of shape {bad.shape} should raise ValueError")
    print("BatchNorm1d (train): per-channel normalization, buffers and errors OK")


test_unit_batch_norm_train()

# %% [markdown]
r"""
The running statistics are easy to get subtly wrong (momentum the wrong way
round, biased instead of unbiased variance, updating in eval mode), so the
next test recomputes them by hand for three batches, then checks that eval
mode uses them, updates nothing, and makes a sample's output independent of
the rest of its batch. `momentum=None` must give the plain average of the
batch statistics.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_batch_norm_running_stats", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_batch_norm_running_stats():
    rng = np.random.default_rng(2)
    bn = BatchNorm1d(2, momentum=0.1)
    mean, var = np.zeros(2), np.ones(2)
    batches = [rng.standard_normal((8, 2)) * 2 + 3 for _ in range(3)]
    for batch in batches:
        bn(Tensor(batch.astype(np.float32)))
        mean = 0.9 * mean + 0.1 * batch.mean(0)
        var = 0.9 * var + 0.1 * batch.var(0, ddof=1)          # unbiased, as PyTorch
    assert np.allclose(bn.running_mean.data, mean, atol=1e-5), f"running_mean {bn.running_mean.data}, expected {mean}"
    assert np.allclose(bn.running_var.data, var, atol=1e-5), f"running_var {bn.running_var.data}, expected {var}"
    assert int(bn.num_batches_tracked.data) == 3, "num_batches_tracked should count training batches"

    bn.eval()
    x = Tensor(batches[0][:4].astype(np.float32))
    expected = (x.data - mean) / np.sqrt(var + 1e-5)
    assert np.allclose(bn(x).data, expected, atol=1e-5), "eval mode should normalize with the running statistics"
    assert np.allclose(bn(x[:1]).data, expected[:1], atol=1e-5), "in eval mode a sample's output ignores its batch"
    assert int(bn.num_batches_tracked.data) == 3 and np.allclose(bn.running_mean.data, mean), \
        "eval mode must not update the running statistics"

    average = BatchNorm1d(2, momentum=None)
    for batch in batches:
        average(Tensor(batch))
    ### BEGIN HIDDEN TESTS
    assert np.allclose(average.running_mean.data, np.mean([b.mean(0) for b in batches], axis=0), atol=1e-5), \
        "momentum=None should give the cumulative average of the batch means"
    ### END HIDDEN TESTS
    print("BatchNorm running statistics: momentum, unbiased variance, eval mode OK")


test_unit_batch_norm_running_stats()

# %% [markdown]
r"""
`BatchNorm2d` is the same layer on images: one mean and variance per channel,
computed over the batch *and* every pixel. The test checks that, the running
mean after one batch, and that `BatchNorm2d` refuses a (N, C) input (and
`BatchNorm1d` an image) with a message naming the shapes it expects.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_batch_norm_2d", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_batch_norm_2d():
    rng = np.random.default_rng(3)
    x = Tensor((rng.standard_normal((5, 3, 4, 4)) * [[[2.0]], [[0.5]], [[9.0]]] + 1).astype(np.float32))
    bn = BatchNorm2d(3)
    y = bn(x).data
    assert y.shape == x.shape, f"shape should be unchanged, got {y.shape}"
    assert np.allclose(y.mean((0, 2, 3)), 0.0, atol=1e-4) and np.allclose(y.var((0, 2, 3)), 1.0, atol=1e-3), \
        "each channel should have mean 0 and variance 1 over batch, height and width"
    assert np.allclose(bn.running_mean.data, 0.1 * x.data.mean((0, 2, 3)), atol=1e-5), "running mean after one batch"
    for layer, bad in ((BatchNorm2d(3), np.ones((4, 3), dtype=np.float32)),
                       (BatchNorm1d(3), np.ones((2, 3, 4, 4), dtype=np.float32))):
        try:
            layer(Tensor(bad))
        except ValueError as err:
            assert layer._shapes in str(err), f"error should name the accepted shapes: {err}"
        else:
            raise AssertionError(f"{type(layer).__name__} should refuse input of shape {bad.shape}")
    print("BatchNorm2d: per-channel statistics over (N, H, W) and shape checks OK")


test_unit_batch_norm_2d()

# %% [markdown]
r"""
## Systems analysis

### 1. Why deep networks need it: activations through 30 layers

Here is the experiment from the introduction, measured. A stack of 30
`Linear(256, 256)` layers with ReLU between them, a batch of 256 random
inputs with unit variance, forward only. We record the standard deviation of
the activations after every layer, for seven networks. (The Linears have no
bias here: a bias adds a constant that is the same for every input, so it
would hide how much of the *input's* signal survives.)

- **default init**: PyTorch's (and chapter 04's) `Linear` initialisation,
  U(±1/√fan_in). Each weight has variance 1/(3·256); with ReLU halving the
  second moment, each layer multiplies it by about 1/6;
- **weights × 4**: the same network with every weight 4 times larger, which
  multiplies the second moment by about 16/6 per layer: a stand-in for
  weights that grew during training;
- **Kaiming init**: chapter 04's `kaiming_uniform_`, designed to make the
  factor exactly 1 for ReLU;
- **Kaiming × 1.15**: the same weights 15% larger, a small drift;
- **default init + LayerNorm**, **weights × 4 + LayerNorm**,
  **default init + BatchNorm**: a normalization layer between each Linear and
  its ReLU.

Every one of these networks has the same weights up to a scale factor, so the
differences are entirely about scale.
"""

# %%
DEPTH, WIDTH, BATCH = 30, 256, 256


def deep_net(weight_scale: float = 1.0, kaiming: bool = False, norm=None, seed: int = 0) -> list:
    """DEPTH blocks of Linear -> (norm) -> ReLU, every weight multiplied by weight_scale."""
    init.manual_seed(seed)
    blocks = []
    for _ in range(DEPTH):
        linear = Linear(WIDTH, WIDTH, bias=False)
        if kaiming:
            init.kaiming_uniform_(linear.weight)
        linear.weight.data *= weight_scale
        blocks.append(Sequential(linear, norm(WIDTH), relu) if norm else Sequential(linear, relu))
    return blocks


def activation_stds(blocks, x: Tensor) -> np.ndarray:
    stds = []
    for block in blocks:
        x = block(x)
        stds.append(float(x.data.std()))
    return np.array(stds)


x0 = Tensor(np.random.default_rng(10).standard_normal((BATCH, WIDTH)).astype(np.float32))
configs = {
    "default init": dict(),
    "weights x 4": dict(weight_scale=4.0),
    "Kaiming init": dict(kaiming=True),
    "Kaiming x 1.15": dict(kaiming=True, weight_scale=1.15),
    "default init + LayerNorm": dict(norm=LayerNorm),
    "weights x 4 + LayerNorm": dict(weight_scale=4.0, norm=LayerNorm),
    "default init + BatchNorm": dict(norm=BatchNorm1d),
}
start = time.perf_counter()
stds = {name: activation_stds(deep_net(**cfg), x0) for name, cfg in configs.items()}
print(f"measured in {time.perf_counter() - start:.2f} s\n")
print(f"{'network':<28} {'layer 1':>10} {'layer 10':>10} {'layer 20':>10} {'layer 30':>10}")
for name, s in stds.items():
    print(f"{name:<28} {s[0]:>10.3g} {s[9]:>10.3g} {s[19]:>10.3g} {s[29]:>10.3g}")
per_layer = (stds["default init"][19] / stds["default init"][9]) ** (1 / 10)
drift = stds["Kaiming x 1.15"][29] / stds["Kaiming init"][29]
print(f"default init: x{per_layer:.2f} per layer; Kaiming x 1.15 ends {drift:.0f} times above Kaiming")
assert 0.35 <= per_layer <= 0.5, f"the text says about 1/sqrt(6) = 0.41 per layer; measured {per_layer:.2f}"
assert all(0.5 <= v <= 0.7 for name in configs if "Norm" in name for v in stds[name]), \
    "the text says about 0.58 at every layer with normalization"

# %%
fig, ax = plt.subplots(figsize=(8, 4.2))
styles = {"default init": "C0--", "weights x 4": "C3--", "Kaiming init": "C2--", "Kaiming x 1.15": "C1--",
          "default init + LayerNorm": "C0-", "weights x 4 + LayerNorm": "C3-", "default init + BatchNorm": "C4-"}
for name, s in stds.items():
    ax.semilogy(np.arange(1, DEPTH + 1), s, styles[name], label=name, linewidth=2)
ax.set_xlabel("layer")
ax.set_ylabel("std of activations (log scale)")
ax.set_title("30 Linear+ReLU layers, forward only: dashed = no normalization")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
r"""
Without normalization the standard deviation changes by the same factor at
every layer, so on a log scale it is a straight line: down for the default
init (a factor of about $1/\sqrt 6 \approx 0.41$ per layer), up for weights ×
4. Kaiming init holds it roughly level (it wanders by random factors near 1),
but only as long as the weights keep exactly that scale: 15% more per layer
compounds to $1.15^{30} \approx 66$, the factor printed above.

With a normalization layer the curves are flat, and practically the same for
weights of any scale (the three solid lines lie on top of each other): after normalization and ReLU the standard deviation is
about 0.58 (a unit normal with its negative half set to zero) at every layer.
The reason is a symmetry: LayerNorm of $a \cdot z$ equals LayerNorm of $z$ for
any $a > 0$, because the mean and the standard deviation both scale by $a$.
Let us check it rather than believe it:
"""

# %%
z = Tensor(np.random.default_rng(11).standard_normal((4, 256)).astype(np.float32))
ln = LayerNorm(256)
for a in (0.001, 0.1, 1.0, 1000.0):
    print(f"scale {a:>7}: max |LN(a z) - LN(z)| = {np.abs(ln(z * a).data - ln(z).data).max():.2e}")

# %% [markdown]
r"""
The symmetry is exact only up to $\epsilon$: at a = 0.001 the variance of
$a \cdot z$ is about $10^{-6}$, smaller than $\epsilon$ = 1e-5, and the
output shrinks instead of coming out at unit scale. That is what $\epsilon$
is for: it stops a near-constant input (noise around a constant) from being
blown up to unit variance. At ordinary scales the difference is rounding.

This scale invariance is also why normalized networks are easier to *train*,
which chapters 09 and 10 will let you see: the gradient cannot explode or
vanish through the depth for the same reason the activations cannot, and the
learning rate no longer has to be tuned to the scale of the weights.

### 2. BatchNorm: train mode, eval mode and running statistics

In training mode a sample's output depends on its batch-mates. Put the same
sample into two different batches and measure:
"""

# %%
rng = np.random.default_rng(12)
bn = BatchNorm1d(4)
sample = rng.standard_normal((1, 4)).astype(np.float32)
batch_a = np.concatenate([sample, rng.standard_normal((7, 4)).astype(np.float32)])
batch_b = np.concatenate([sample, rng.standard_normal((7, 4)).astype(np.float32) + 2.0])
train_diff = np.abs(bn(Tensor(batch_a)).data[0] - bn(Tensor(batch_b)).data[0]).max()
bn.eval()
eval_diff = np.abs(bn(Tensor(batch_a)).data[0] - bn(Tensor(batch_b)).data[0]).max()
print(f"same sample, two batches: train-mode outputs differ by {train_diff:.3f}, eval-mode by {eval_diff:.3f}")

# %% [markdown]
r"""
That is why you must call `model.eval()` before evaluating or deploying a
model with BatchNorm: otherwise a prediction depends on whatever else happened
to be in the batch, and a batch of one fails outright.

Eval mode is only as good as the running statistics. We train-mode-feed a
`BatchNorm1d(3)` with batches of 32 samples whose channels have means
(3, −1, 0.5) and variances (4, 0.25, 1), and watch the running estimates.
Starting from mean 0 and variance 1, after t batches the running mean is
about $\mu\,(1 - (1-m)^t)$: the estimate forgets its starting value by a
factor 0.9 per batch with $m = 0.1$, and then keeps fluctuating, because it
is an average over roughly the last $1/m$ = 10 batches only.
"""

# %%
true_mean, true_var = np.array([3.0, -1.0, 0.5]), np.array([4.0, 0.25, 1.0])
steps = 60
history = {}
for momentum in (0.1, 0.01):
    bn = BatchNorm1d(3, momentum=momentum)
    data_rng = np.random.default_rng(13)
    means, variances = [], []
    for _ in range(steps):
        batch = data_rng.standard_normal((32, 3)) * np.sqrt(true_var) + true_mean
        bn(Tensor(batch.astype(np.float32)))
        means.append(bn.running_mean.data.copy())
        variances.append(bn.running_var.data.copy())
    history[momentum] = (np.array(means), np.array(variances))
    final_mean, final_var = means[-1], variances[-1]
    print(f"momentum {momentum}: after {steps} batches running_mean = {final_mean}, running_var = {final_var}")
print(f"true values:          mean = {true_mean}, var = {true_var}")

fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(10, 3.6))
t = np.arange(1, steps + 1)
for c in range(3):
    ax_m.plot(t, history[0.1][0][:, c], f"C{c}-", label=f"channel {c}, m = 0.1")
    ax_m.plot(t, history[0.01][0][:, c], f"C{c}:", label=f"channel {c}, m = 0.01")
    ax_m.plot(t, true_mean[c] * (1 - 0.9 ** t), f"C{c}", alpha=0.3, linewidth=6)
    ax_m.axhline(true_mean[c], color=f"C{c}", linewidth=0.8)
    ax_v.plot(t, history[0.1][1][:, c], f"C{c}-")
    ax_v.plot(t, history[0.01][1][:, c], f"C{c}:")
    ax_v.axhline(true_var[c], color=f"C{c}", linewidth=0.8)
ax_m.set_title("running_mean (thick: μ(1 - 0.9^t))")
ax_v.set_title("running_var")
for ax in (ax_m, ax_v):
    ax.set_xlabel("training batches seen")
ax_m.legend(fontsize=7, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
r"""
With m = 0.1 the estimates reach the true values within a few dozen batches
(the curve follows $\mu(1 - 0.9^t)$) and then jitter; with m = 0.01 they are
smoother but after 60 batches still far from the truth. A model evaluated too
early in training, or fine-tuned on new data for a few batches, is evaluated
with statistics that do not describe its activations: a classic cause of "it
trains fine but evaluates badly".

How noisy is a batch's own mean? Its standard error is $\sigma/\sqrt N$, so
BatchNorm with small batches normalizes each batch by a noisy estimate, a
problem LayerNorm does not have. Measured over 2,000 batches:
"""

# %%
noise_rng = np.random.default_rng(14)
print(f"{'batch size':>10} {'std of batch mean':>18} {'sigma/sqrt(N)':>14}")
for N in (2, 8, 32, 128):
    batch_means = noise_rng.standard_normal((2000, N)).mean(axis=1)
    print(f"{N:>10} {batch_means.std():>18.3f} {1 / np.sqrt(N):>14.3f}")

# %% [markdown]
r"""
### 3. What normalization costs

Normalization does almost no arithmetic, a few operations per element and no
matrix product, yet it is not free. We time `LayerNorm(512)` and
`BatchNorm1d(512)` on (256, 512) activations next to the `Linear(512, 512)`
that would precede them, in rounds so that background load hits all three
alike (median of 7), and measure the peak memory of one call with
`tracemalloc`.
"""

# %%
act = Tensor(np.random.default_rng(15).standard_normal((256, 512)).astype(np.float32))
layers = {"Linear(512, 512)": Linear(512, 512), "LayerNorm(512)": LayerNorm(512), "BatchNorm1d(512)": BatchNorm1d(512)}
for layer in layers.values():
    layer(act)                                                   # warm-up
times = {name: [] for name in layers}
for _ in range(7):
    for name, layer in layers.items():
        start = time.perf_counter()
        layer(act)
        times[name].append(time.perf_counter() - start)
print(f"input: {act.shape}, {act.nbytes / 1e6:.2f} MB")
ops = {"Linear(512, 512)": 2 * 256 * 512 * 512,               # a multiply and an add per weight and sample
       "LayerNorm(512)": 7 * act.numel(), "BatchNorm1d(512)": 7 * act.numel()}   # 7 passes, 1 op each
linear_ms = np.median(times["Linear(512, 512)"]) * 1e3
print(f"{'layer':<18} {'time (ms)':>10} {'vs Linear':>10} {'operations':>12} {'Gop/s':>7} {'peak/input':>11}")
for name, layer in layers.items():
    tracemalloc.start()
    layer(act)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ms = np.median(times[name]) * 1e3
    print(f"{name:<18} {ms:>10.3f} {ms / linear_ms:>10.2f} {ops[name]:>12,} {ops[name] / ms / 1e6:>7.1f} "
          f"{peak / act.nbytes:>11.1f}")

# %% [markdown]
r"""
The Linear does about 134 million operations (67 million multiply-adds); a
normalization layer under a million, some 150 times fewer (the operations
column). How its time compares with the Linear's depends on the machine and
on what else runs beside it: on an idle machine BLAS runs the Linear's
multiply-adds at a far higher rate ("Gop/s") than our normalization runs its
elementwise steps, but the Linear, which uses every core, suffers most from a
busy neighbour, so read this run's table and rerun the cell to see it move.
What does not depend on the load is what a normalization call costs in units
of memory passes. The next cell times it against one elementwise pass over
the same activations (`act + 1`, read once, written once), in the same rounds.
"""

# %%
from tinytorch.utils.timing import median_times    # chapter 01: several functions, run in turns

# One elementwise pass over the same activations (read once, write once), timed in the same rounds
# as LayerNorm: the median of the per-round ratios is steady even when the machine is busy.
rounds = np.array([median_times([lambda: layers["LayerNorm(512)"](act), lambda: act + 1.0], repeats=1)
                   for _ in range(15)])
passes = float(np.median(rounds[:, 0] / rounds[:, 1]))
print(f"one LayerNorm(512) call takes as long as {passes:.1f} elementwise passes (act + 1) over its input")
assert 3 <= passes <= 25, f"the text says LayerNorm costs several elementwise passes; measured {passes:.1f}"

# %% [markdown]
r"""
The printed number of passes (the cell asserts 3 to 25) is the reason
normalization is slow for its arithmetic: memory. Seven of our operations
are full passes over the activations: two reductions (the mean, then the mean of the squares) and five
elementwise steps (subtract the mean, square, multiply by $1/\sigma$, scale,
shift), each doing one operation per element and each of the five writing a
new input-sized array; the peak-memory column shows several of them alive at
once. (Adding ε and taking the power touch only one number per row.) Like the
softmax in chapter 07, normalization is limited by memory traffic, not
arithmetic.

Parameters and state are tiny by comparison: LayerNorm(512) has 1,024
parameters; BatchNorm1d(512) the same plus 1,024 buffer values and a counter,
next to the Linear's 262,656 parameters.
"""

# %% [markdown]
r"""
## Production context

**Fused kernels.** PyTorch's `layer_norm` and cuDNN's batch norm are single
kernels: read the input once (Welford's algorithm computes mean and variance
in one pass, with better rounding than the two-pass formula), write the output
once, and save only the mean and $1/\sigma$ per group (two numbers per row)
for the backward pass. Ours writes five input-sized arrays (centred,
squared, normalized, scaled, shifted) and reads the input in two
reductions besides. On a GPU the
difference is large because the layer is memory-bound; it is also why
"fusing" normalization into neighbouring operations is a standard compiler
optimisation (`torch.compile` does it).

**BatchNorm disappears at inference.** In eval mode BatchNorm is a fixed
per-channel affine map, so deployment tools *fold* it into the preceding
convolution or linear layer: $W' = W\,\gamma/\sigma$,
$b' = (b - \mu)\,\gamma/\sigma + \beta$. LayerNorm cannot be folded: its
statistics depend on each input.

**BatchNorm and distributed training.** On 8 GPUs with 4 images each, plain
BatchNorm normalizes with statistics of 4 images. `SyncBatchNorm` averages
them across GPUs, at the cost of a communication step per layer per
iteration. Transformers avoid the issue with LayerNorm, which has no batch
dependence at all; convolutional networks with tiny batches use `GroupNorm`.

**Newer variants.** LLaMA and most recent LLMs use `RMSNorm`: divide by the
root-mean-square without subtracting the mean, and no bias: one reduction
instead of two. GPT-2 moved LayerNorm to the *input* of each sub-layer
("pre-norm", `x + attn(ln(x))`), which trains deep stacks more reliably than
the original post-norm.

**Where tinytorch differs:** our layers are compositions of primitives, not
fused kernels, and we leave out GroupNorm, RMSNorm and InstanceNorm. The
names, arguments, parameter and buffer names, the momentum convention and the
unbiased running variance match PyTorch, so a `state_dict` moves between
the two (the test suite checks it).
"""

# %% [markdown]
r"""
## Integration

Two places the layers of this chapter sit in real models.

**A CNN-style MLP with BatchNorm.** `Sequential` from chapter 04 holds the
layers; `.eval()` on the model reaches every BatchNorm inside it; the running
statistics travel in the `state_dict`, so a freshly built model that loads it
reproduces the eval-mode outputs exactly.
"""

# %%
init.manual_seed(20)
model = Sequential(Linear(10, 32), BatchNorm1d(32), relu, Linear(32, 32), BatchNorm1d(32), relu, Linear(32, 3))
data_rng = np.random.default_rng(21)
for _ in range(20):                                              # forward passes in train mode: statistics only
    model(Tensor((data_rng.standard_normal((64, 10)) * 3 + 1).astype(np.float32)))
model.eval()
test_batch = Tensor((data_rng.standard_normal((5, 10)) * 3 + 1).astype(np.float32))
logits = model(test_batch)
print("buffers:", [name for name, _ in model.named_buffers()])
print("all submodules in eval mode:", all(not m.training for m in model.modules()))

init.manual_seed(99)                                             # different random weights...
restored = Sequential(Linear(10, 32), BatchNorm1d(32), relu, Linear(32, 32), BatchNorm1d(32), relu, Linear(32, 3))
restored.load_state_dict(model.state_dict())                     # ...replaced by the saved ones
restored.eval()
print("restored model gives identical eval outputs:", np.array_equal(restored(test_batch).data, logits.data))

# %% [markdown]
r"""
**A pre-norm Transformer block.** LayerNorm on (B, T, E) activations
normalizes each token's vector separately, so it works for any batch size and
sequence length, including the single sequence of text generation. With
chapter 07's attention, the block GPT-2 uses is `x + attn(ln1(x))` followed
by `x + mlp(ln2(x))`. Stacking 24 of them keeps the residual stream at a
steady scale at every block's input, whatever the depth:
"""

# %%
from tinytorch.nn.attention import MultiheadAttention  # noqa: E402  (chapter 07)


class PreNormBlock(Module):
    def __init__(self, E: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = LayerNorm(E), LayerNorm(E)
        self.attn = MultiheadAttention(E, heads, batch_first=True)
        self.fc1, self.fc2 = Linear(E, 4 * E), Linear(4 * E, E)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, is_causal=True, need_weights=False)[0]   # (B, T, E)
        return x + self.fc2(relu(self.fc1(self.ln2(x))))                    # (B, T, E)


init.manual_seed(22)
blocks = [PreNormBlock(32, 4) for _ in range(24)]
x = Tensor(np.random.default_rng(23).standard_normal((2, 16, 32)).astype(np.float32))  # (B, T, E)
seen_by_attention, residual = [], []
for block in blocks:
    seen_by_attention.append(float(block.ln1(x).data.std()))     # what each block's attention actually sees
    residual.append(float(x.data.std()))                         # the residual stream entering the block
    x = block(x)
print("entering block:                 ", [1, 6, 12, 18, 24])
print("std of the residual stream:     ", np.round([residual[i] for i in (0, 5, 11, 17, 23)], 2))
print("std of what attention receives: ", np.round([seen_by_attention[i] for i in (0, 5, 11, 17, 23)], 2))

# %% [markdown]
r"""
Every block's attention sees unit-scale inputs, while the residual stream
itself is free to grow slowly as blocks add to it, which is exactly the
division of labour pre-norm intends.
"""

# %% [markdown]
r"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_layer_norm()
    test_unit_batch_norm_train()
    test_unit_batch_norm_running_stats()
    test_unit_batch_norm_2d()
    print("All normalization tests passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory of a composed layer.** You measured the peak memory of our
`LayerNorm` as a multiple of its input. For a 24-layer Transformer with two
LayerNorms per block, batch 8, T = 1024, E = 1024 in float32, how much
memory do those temporaries take if the backward pass keeps them all? A
fused kernel keeps only the mean and $1/\sigma$ per row: how much is that?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory_of_a_composed_layer", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The table printed a peak of about 4 times the input for one call. One
LayerNorm input holds 8 × 1024 × 1024 = 8.4 M elements, 33.6 MB in float32, so
its temporaries take about 4 × 33.6 ≈ 134 MB. There are 24 × 2 = 48 LayerNorms:
48 × 134 MB ≈ 6.4 GB kept for backward. A fused kernel keeps two numbers per
row (token): 8 × 1024 rows × 2 × 4 bytes = 64 KB per layer, 48 × 64 KB ≈ 3.1 MB
in all, about two thousand times less (the input itself is kept by the
operation before, in both cases).

**Rubric (2 points).** 1 point for the per-layer and total size of the composed version (the
measured multiple times 33.6 MB times 48; anything from 3 to 5 times the input
is fine); 1 point for the fused 64 KB per layer, about 3 MB in total.
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Folding BatchNorm.** Derive the folded weight and bias of
`Linear → BatchNorm1d` in eval mode and say how many FLOPs and memory reads
it saves per sample. Why is this only correct after `.eval()`, and why can
LayerNorm not be folded the same way?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_folding_batchnorm", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** With $y = Wx + b$ and, in eval mode,
$z = \gamma (y - \hat\mu) / s + \beta$ where $s = \sqrt{\hat\sigma^2 + \epsilon}$
per output feature, $z = W'x + b'$ with $W'_{ij} = W_{ij}\,\gamma_i / s_i$ and
$b' = (b - \hat\mu)\,\gamma / s + \beta$. For C output features the
BatchNorm step costs 4C flops per sample as written (subtract, scale by 1/s,
multiply by γ, add β; 2C if scale and shift are precomputed), and one extra
pass over the C activations (read C, write C floats, plus the per-channel
constants): folding removes all of it and the extra layer call. It is
only correct in eval mode because only then are $\hat\mu$ and $\hat\sigma^2$
constants; in training mode they are the current batch's statistics and change
with every batch. LayerNorm's mean and variance are computed from each input
sample itself, so the map is not affine in $x$ and cannot become a fixed
weight (only its γ and β could be folded into the next Linear).

**Rubric (2 points).** 1 point for the correct $W'$ and $b'$ (γ/s scaling rows of W, and the
shifted bias); 1 point for the savings (a few flops and one read and write
of C values per sample) together with the two reasons (batch statistics in
training; input-dependent statistics in LayerNorm).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Batch-size dependence.** You measured that a batch mean has standard
error σ/√N. A data-parallel job runs 16 GPUs with a per-GPU batch of 2.
What do its BatchNorm layers normalize with, what changes with
`SyncBatchNorm`, and what does it cost per iteration? Why do Transformers
not face this choice?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_batch_size_dependence", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Plain BatchNorm on each GPU normalizes with the mean and variance of its
own 2 samples (per channel; times H × W positions in a CNN): a standard error
of σ/√2 ≈ 0.71σ (the printed table measured 0.692 for N = 2), so every batch is
normalized by a very noisy estimate, and the running statistics are averages
of those. `SyncBatchNorm` all-reduces the per-channel sum and sum of squares
(2C numbers) across the 16 GPUs, so each layer normalizes with 32 samples:
σ/√32 ≈ 0.18σ (measured 0.176 for N = 32). The cost is two small all-reduces
per BatchNorm layer per iteration (statistics in forward, their gradients in
backward): few bytes, but each is a synchronisation point whose latency
(tens of microseconds or more) is paid by every layer, about 100 for a
ResNet-50 with its 53 BatchNorms. Transformers use LayerNorm, whose statistics
come from each token's own features: no dependence on the batch, nothing to
synchronise.

**Rubric (2 points).** 1 point for the 2-sample statistics and their noise (σ/√2) against
SyncBatchNorm's 32 samples (σ/√32); 1 point for the per-layer all-reduce cost
(a synchronisation per layer, forward and backward) and LayerNorm's batch
independence.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Running statistics in production.** With momentum 0.1 the running
estimates remember about the last ten batches. A model is fine-tuned for
five batches on images from a new camera and then evaluated on the old
camera. What went wrong, and what would you monitor (or recompute) before
shipping a model with BatchNorm?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_running_statistics_in_production", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** After five batches with m = 0.1 the running estimates are
$0.9^5 \approx 0.59$ of the old camera's statistics and $1 - 0.9^5 \approx 0.41$
of the new camera's: a mixture that describes neither. On old-camera images,
eval mode now subtracts the wrong mean and divides by the wrong variance in
every BatchNorm layer, and the errors compound through depth, so accuracy
drops although the weights barely moved. Before shipping: compare each
layer's running mean and variance with the activation statistics measured on
a held-out set from the deployment distribution (a per-channel drift check),
and recompute the running statistics on deployment data: reset them, forward
a few hundred batches in train mode with `momentum=None` (a cumulative
average) and no weight updates, then `.eval()`; in production, monitor the
same activation statistics for drift.

**Rubric (2 points).** 1 point for the 0.59 / 0.41 mixture (the running stats moved towards the
new camera) and its effect in eval mode; 1 point for a concrete check or fix
(compare running stats with measured activation stats, recompute them on
target data with momentum=None, monitor for drift).
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

You built the layers that keep deep networks numerically stable, from Tensor
operations only:

- `LayerNorm(normalized_shape, eps, elementwise_affine, bias)`: per-sample
  statistics over the trailing dimensions; the same in training and
  evaluation; the layer inside every Transformer block;
- `BatchNorm1d` ((N, C) and (N, C, L)) and `BatchNorm2d` ((N, C, H, W)):
  per-channel statistics over the batch; `running_mean`, `running_var` and
  `num_batches_tracked` as buffers, updated in training mode with PyTorch's
  momentum convention and unbiased variance, used in eval mode.

You measured why they matter: without normalization, activation scale
changes by the same factor at every layer, vanishing or exploding
geometrically through 30 layers, and even Kaiming initialisation falls off
with a 15% weight drift; with LayerNorm or BatchNorm it stays at one steady scale
for weights of any size, because normalization is exactly scale invariant.
You saw BatchNorm's train/eval difference, the running statistics converging
at the rate the momentum sets, and that these cheap-in-FLOPs layers are
memory-bound.

Chapter 09 gives every primitive a backward rule, and these layers become
trainable unchanged; chapter 10's optimizers then show what normalization
does for training itself.
"""
