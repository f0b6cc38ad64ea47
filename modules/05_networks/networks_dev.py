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
# Networks

Chapter 04 gave us `Linear` layers that hold their own weights and a
`Sequential` that runs layers in order. This chapter assembles them into
complete networks and gives those networks something to be judged by.

1. **The multilayer perceptron.** `MLP(in_features, hidden_sizes,
   out_features, activation=ReLU)` builds the workhorse of deep learning in
   one line: linear layers of the sizes you ask for, an activation between
   each pair, none after the last (the output is raw scores, *logits*).
2. **Losses.** A network's output means nothing until a loss compares it with
   the truth. We build PyTorch's two essential ones with PyTorch's names and
   semantics: `MSELoss` for regression and `CrossEntropyLoss` for
   classification, which takes raw logits and integer class labels and is
   stable for logits of any size. Their functional forms are `mse_loss` and
   `cross_entropy`.
3. **Counting.** How many parameters does a network have, how many bytes do
   they take in float32 or float64, and how much memory do its activations take
   for a batch? `count_parameters`, `parameter_bytes` and `activation_bytes`
   answer, and the systems analysis checks the answers against measured memory.

**Systems context.** Two numbers decide whether a model fits on a device: the
memory of its parameters, which is fixed, and the memory of its activations,
which grows with the batch. At inference the first dominates; in training
(where every intermediate is kept for the backward pass) the second usually
does. You will measure both, and the batch size at which they cross.

At the end we generate a small three-class spiral dataset with NumPy, run an
untrained MLP on it and check the loss it *should* have before any learning:
$\log C$ for $C$ classes. Then, for a first taste of learning, we fit a tiny
MLP to it with gradients *measured* by finite differences, and measure why
that cannot scale: the problem chapter 09 (backpropagation) solves. Training
properly is the job of chapters 09 (gradients) and 10 (optimizers);
everything here is built from Tensor primitives, so it will train then
without a line being rewritten.

**Learning objectives.** After this chapter you can

1. build an MLP of any depth from `Linear` and activations, and predict its
   parameter count and forward FLOPs from its layer sizes;
2. implement mean squared error and cross-entropy as `Module`s and functions,
   and explain why cross-entropy takes logits rather than probabilities;
3. make cross-entropy stable for huge logits and say why an untrained
   classifier's loss is about $\log C$;
4. measure parameter memory (float32 vs float64) and activation memory per
   batch, and find where one overtakes the other;
5. fit a model with finite-difference gradients, and count why that costs
   two forward passes per parameter per step.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.loss

# %%
#| export
import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn.activation import log_softmax
from tinytorch.nn.module import Module


# %%
#| export nn.networks
import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn.activation import ReLU
from tinytorch.nn.layers import Linear, Sequential
from tinytorch.nn.module import Module

# %% [markdown]
"""
The chapter's own tools for demonstrations, measurement and plots (not part of the package):
"""

# %%
import math
import time
import tracemalloc
import warnings

import matplotlib.pyplot as plt

from tinytorch.nn.activation import Tanh, relu, softmax

# %% [markdown]
r"""
## Background

### The multilayer perceptron

An MLP with layer sizes $d_0, d_1, \dots, d_L$ maps an input batch
$X \in \mathbb{R}^{N \times d_0}$ through

$$H_0 = X, \qquad H_\ell = \phi\!\left(H_{\ell-1} W_\ell^\top + b_\ell\right)\ (\ell < L), \qquad
\text{logits} = H_{L-1} W_L^\top + b_L,$$

with $W_\ell \in \mathbb{R}^{d_\ell \times d_{\ell-1}}$ (PyTorch's `(out, in)`
layout) and $\phi$ the activation. The last layer has no activation: its
outputs are *logits*, unnormalised scores that a loss (or a softmax at
prediction time) interprets. Chapter 03 showed why the $\phi$ in between is
essential: without it the whole stack is one linear map.

Everything about the network's cost follows from the sizes:

* **Parameters:** $P = \sum_{\ell=1}^{L} (d_{\ell-1} d_\ell + d_\ell)$: a
  weight matrix and a bias vector per layer.
* **Forward FLOPs:** $\approx 2N \sum_\ell d_{\ell-1} d_\ell$ (one multiply
  and one add per weight per example); the biases and activations add
  $O(N \sum_\ell d_\ell)$, which is small beside it.
* **Activation memory:** $N \sum_\ell d_\ell$ numbers for the layer outputs,
  more in training (chapter 09 keeps every intermediate for the backward pass).

The parameter count is independent of the batch; the activations grow with
it. Keep both formulas in mind: the systems analysis measures both.

### Losses

A loss turns the network's output and the truth into one number to
minimise. Two cover most of deep learning.

**Mean squared error** for regression, with prediction $y$ and target $t$ of
the same shape, $n$ elements in all:

$$\text{MSE}(y, t) = \frac1n \sum_i (y_i - t_i)^2, \qquad \frac{\partial\, \text{MSE}}{\partial y_i} = \frac{2}{n}(y_i - t_i).$$

**Cross-entropy** for classification. The network gives logits
$z \in \mathbb{R}^{N \times C}$; the truth is one class index $t_n$ per
example. Softmax turns each row into probabilities and the loss is the
negative log-probability of the correct class, averaged over the batch:

$$\text{CE}(z, t) = -\frac1N \sum_n \log \operatorname{softmax}(z_n)_{t_n}
= \frac1N \sum_n \Big(\log \sum_c e^{z_{nc}} - z_{n t_n}\Big).$$

Its gradient with respect to the logits is
$\frac1N(\operatorname{softmax}(z_n) - \text{onehot}(t_n))$: push up the
correct class, push down the others in proportion to their probability.
Chapter 09's autograd will produce exactly this from our implementation.

Two consequences guide the implementation.

* **Take logits, not probabilities.** The right-hand form never computes a
  probability at all: it is a log-softmax (chapter 03's log-sum-exp) followed
  by *picking* one entry per row. A loss that took probabilities would have to
  take `log` of a number that may have underflowed to 0. That is why
  PyTorch's `CrossEntropyLoss` takes logits and why a classifier's last layer
  has no softmax.
* **The untrained loss is $\log C$.** A freshly initialised network's logits
  are small and nearly equal, so each class gets probability about $1/C$ and
  the loss is about $-\log(1/C) = \log C$: 2.30 for 10 classes, 1.10 for 3.
  A first loss far from $\log C$ is a bug (or a badly scaled initialisation)
  found before any training.

Cost: MSE is $O(n)$; cross-entropy is $O(NC)$, dwarfed by the last layer's
matrix multiplication ($O(N C d_{L-1})$).
"""

# %% [markdown]
"""
## Implementation

### The MLP

`MLP` *is* a `Sequential`: it only decides which layers to put in it. For
`MLP(2, [16, 16], 3)` that is

```
Linear(2, 16) -> ReLU -> Linear(16, 16) -> ReLU -> Linear(16, 3)
```

`Sequential` already chains the layers and registers each `Linear` under its
position, so the parameters are named `0.weight`, `0.bias`, `2.weight`, ...
exactly as in a PyTorch `nn.Sequential` (whose activations are modules too and
take the odd positions). `activation` is a class such as `ReLU` or `GELU`,
instantiated once per gap so that each gap gets its own layer object; an
already-built callable such as `relu` or `GELU()` is used as it is, and `None`
builds a purely linear stack. PyTorch's closest relative is
`torchvision.ops.MLP(in_channels, hidden_channels, ...)`, whose list includes
the output size; we keep `out_features` separate because it is easy to
forget that the last entry of that list is the output.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_MLP", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.networks
class MLP(Sequential):
    """Linear layers of sizes in_features -> *hidden_sizes -> out_features, an activation between each pair.

    Args:
        in_features: size of each input example.
        hidden_sizes: widths of the hidden layers, e.g. [64, 64]; [] gives a single Linear.
        out_features: size of the output (the number of classes for a classifier).
        activation: a class such as ReLU or GELU, instantiated once per gap; a function or an
            instance (relu, GELU()) is used as it is; None for no activation (a linear stack).
        bias: whether the Linear layers have biases.
    """

    def __init__(self, in_features: int, hidden_sizes, out_features: int, activation=ReLU, bias: bool = True):
        # 1. Refuse an int hidden_sizes (TypeError: MLP(2, 16, 3) is a common slip for [16]) and any
        #    size that is not a positive int (ValueError), naming the sizes you got.
        # 2. sizes = [in_features, *hidden_sizes, out_features]; one Linear per consecutive pair,
        #    and before every Linear except the first an activation: activation() if it is a class
        #    (a fresh object per gap), the object itself otherwise, nothing if it is None.
        # 3. super().__init__(*layers) registers them as 0, 1, 2, ...; then store in_features,
        #    out_features and hidden_sizes (as a list) on self.
        # Pitfall: no activation after the last Linear: the output is logits.
        ### BEGIN SOLUTION
        if isinstance(hidden_sizes, (int, np.integer)):
            raise TypeError(f"MLP: hidden_sizes must be a list like [{hidden_sizes}], not the int {hidden_sizes}")
        sizes = [in_features, *hidden_sizes, out_features]
        if not all(isinstance(size, (int, np.integer)) and size > 0 for size in sizes):
            raise ValueError(f"MLP: layer sizes must be positive ints, got {in_features} -> {list(hidden_sizes)} -> {out_features}")
        layers = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if index > 0 and activation is not None:
                layers.append(activation() if isinstance(activation, type) else activation)
            layers.append(Linear(fan_in, fan_out, bias=bias))
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features
        self.hidden_sizes = list(hidden_sizes)
        ### END SOLUTION

    def __repr__(self) -> str:
        return "MLP" + super().__repr__()[len("Sequential"):]


# %% [markdown]
"""
**Test.** `test_unit_mlp_structure` checks that the layers alternate
`Linear`, activation, ..., `Linear` with the requested sizes and no activation
after the last, that each gap gets its *own* activation object, that `None`
gives a linear stack, that the parameters carry PyTorch's names, and that a
bad `hidden_sizes` or a non-positive size is refused with a clear error.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_mlp_structure", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_mlp_structure():
    model = MLP(2, [16, 8], 3)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"], kinds
    linears = [layer for layer in model if isinstance(layer, Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(2, 16), (16, 8), (8, 3)]
    assert model[1] is not model[3], "each gap must get its own activation object"
    assert [name for name, _ in model.named_parameters()] == \
        ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [type(layer).__name__ for layer in MLP(4, [5], 2, activation=None)] == ["Linear", "Linear"]
    assert len(MLP(4, [], 2)) == 1
    assert repr(MLP(3, [4], 2)).startswith("MLP(\n  (0): Linear(in_features=3, out_features=4")
    for bad_args, error in [((2, 16, 3), TypeError), ((2, [16, 0], 3), ValueError), ((0, [4], 3), ValueError)]:
        try:
            MLP(*bad_args)
        except error:
            pass
        else:
            raise AssertionError(f"MLP{bad_args} must raise {error.__name__}")
    print("✓ MLP: Linear/activation alternation, sizes, names, errors")


test_unit_mlp_structure()

# %% [markdown]
r"""
**Test.** `test_unit_mlp_forward` checks what the structure is for: the MLP's
output equals the composition written out by hand,
$\text{relu}(\text{relu}(x W_0^\top + b_0) W_2^\top + b_2) W_4^\top + b_4$,
using the model's own weights. If the layers were not chained (each applied to
the input, or one skipped), this fails.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_mlp_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_mlp_forward():
    model = MLP(4, [6, 5], 3)
    x = Tensor(np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32))
    W0, b0, W2, b2, W4, b4 = (p.data for p in model.parameters())
    h = np.maximum(x.data @ W0.T + b0, 0)          # (7, 4) -> (7, 6)
    h = np.maximum(h @ W2.T + b2, 0)               # (7, 6) -> (7, 5)
    expected = h @ W4.T + b4                       # (7, 5) -> (7, 3)
    out = model(x)
    assert out.shape == (7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-6)
    print("✓ MLP forward: equals the hand-written composition")


test_unit_mlp_forward()

# %% [markdown]
"""
### Losses share one convention: `reduction`

PyTorch's losses take `reduction="mean"` (average over the batch), `"sum"`,
or `"none"` (one loss per example, for weighting or inspection). Both losses
here are written once as functions, and the `Module` versions only store the
setting. A loss is a `Module` with no parameters: that lets it sit in a model
definition and print like one, and costs nothing.
"""


# %%
#| export
_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str, where: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


# %% [markdown]
"""
### Mean squared error

One thing we do differently from PyTorch on purpose: the target must have
*exactly* the prediction's shape. A model that outputs `(N, 1)` compared with
targets of shape `(N,)` would broadcast to an `(N, N)` matrix of differences
and give a wrong loss that still decreases in training. PyTorch warns about
this; we raise an error, because a warning in a training loop scrolls away.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_mse_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error between input and target, which must have the same shape.

    Args: input, a Tensor of predictions; target, a Tensor or array of exactly input's shape;
        reduction, "mean" (default), "sum" or "none" (the per-element squared errors).
    Returns: a 0-d Tensor for "mean" and "sum", a Tensor of input's shape for "none".
    """
    # Check the reduction with _check_reduction; wrap an array target as a Tensor of input's dtype.
    # Pitfall: refuse different shapes with a ValueError that names both: (N, 1) - (N,) would
    # broadcast to (N, N) and give a wrong loss that still goes down in training.
    # Then square the difference as diff * diff (Tensor ops) and hand it to _reduce.
    ### BEGIN SOLUTION
    _check_reduction(reduction, "mse_loss")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ; "
                         "reshape one to match (broadcasting them is almost always a bug)")
    diff = input - target
    return _reduce(diff * diff, reduction)
    ### END SOLUTION


class MSELoss(Module):
    """Mean squared error as a layer: MSELoss()(input, target)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction, "MSELoss")
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return mse_loss(input, target, self.reduction)


# %% [markdown]
"""
**Test.** `test_unit_mse_loss` checks the three reductions against NumPy, that
the `Module` and the function agree, that the loss is 0 for a perfect
prediction, that targets may be arrays, and that a `(N, 1)` vs `(N,)` mismatch
and an unknown reduction are refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_mse_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_mse_loss():
    rng = np.random.default_rng(1)
    y, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(mse_loss(Tensor(y), Tensor(t)).item(), np.mean((y - t) ** 2), rtol=1e-12)
    np.testing.assert_allclose(mse_loss(Tensor(y), t, reduction="sum").item(), np.sum((y - t) ** 2), rtol=1e-12)
    np.testing.assert_allclose(mse_loss(Tensor(y), t, reduction="none").data, (y - t) ** 2, rtol=1e-12)
    assert MSELoss()(Tensor(y), Tensor(t)).item() == mse_loss(Tensor(y), Tensor(t)).item()
    assert mse_loss(Tensor(y), Tensor(y)).item() == 0.0
    for bad in [lambda: mse_loss(Tensor(np.zeros((4, 1))), np.zeros(4)), lambda: MSELoss(reduction="avg")]:
        try:
            bad()
        except ValueError:
            pass
        else:
            raise AssertionError("a shape mismatch or unknown reduction must raise ValueError")
    print("✓ MSE: three reductions, Module = function, errors for mismatched shapes")


test_unit_mse_loss()

# %% [markdown]
"""
### Cross-entropy

First, what goes wrong without care. Here is cross-entropy computed the way
the first formula reads (softmax, then log, then pick), in NumPy, per example,
on a batch of three: an ordinary one, and two with logits like $10^4$, once
with the confident class as the label and once with a wrong label.
"""


# %%
def naive_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -np.log(probs[np.arange(len(targets)), targets])


logits = np.array([[2.0, 1.0, 0.1], [1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=np.float32)
targets = np.array([0, 0, 2])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("naive softmax, then log: ", naive_cross_entropy(logits, targets))
    stable_probs = softmax(Tensor(logits)).data                 # chapter 03's stable softmax ...
    print("stable softmax, then log:", -np.log(stable_probs[np.arange(3), targets]))
for warning in caught:
    print("NumPy warned:", warning.message)

# %% [markdown]
r"""
The naive form gives `nan` for the confident, correct example (the
exponential overflowed and $\infty/\infty$ is `nan`) and `inf` for the wrong
one. Chapter 03's stable softmax fixes the first, but taking its `log` still
gives `inf` for the second: the wrong class's probability, $e^{-2 \times
10^4}$, underflowed to 0. The true losses are all finite: about 0.42, 0, and
$2 \times 10^4$. A single `nan` or `inf` in a loss poisons every weight in the
next update, so this is not a corner case to ignore.

The implementation never forms a probability. It takes chapter 03's
`log_softmax` of the logits, then picks entry $t_n$ from each row $n$ with
one fancy index, `logp[arange(N), t]` (the `GetItem` primitive, whose backward
in chapter 09 scatters the gradient back to exactly those entries).

Targets are class indices, as in PyTorch: a `Tensor`, a NumPy array or a list
of integers of shape `(N,)` for logits `(N, C)`, or a single index for logits
`(C,)`. Since indices address memory, we check them: a float target, a
negative index or one $\ge C$ is refused with a message. (NumPy would
silently read `logp[n, -1]` for a target of $-1$, the last class: a wrong
loss with no error.) PyTorch also accepts class *probabilities* as targets,
class weights, `ignore_index` and `label_smoothing`; tinytorch does not.

**A hook for a faster kernel.** Built from primitives, the loss is a chain of
about ten graph nodes, each of which reads and writes a whole `(N, C)` array.
Chapter 14 (kernels) writes the same computation as *one* primitive whose
backward is simply $\text{softmax} - \text{onehot}$, measures that it is
faster, and installs it here with `set_cross_entropy_kernel`. From then on
`cross_entropy` hands its per-row losses of 2-D logits to that kernel; the
numbers are the same (chapter 14 checks this), only the cost changes. This
chapter imports nothing from later ones: the hook is an empty slot until a
later chapter fills it.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def class_indices(target, logits: Tensor, where: str) -> np.ndarray:
    """Target class indices as an int array, checked against the logits' shape and class count."""
    indices = np.asarray(target.data if isinstance(target, Tensor) else target)
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"{where}: target must hold integer class indices, not {indices.dtype}; "
                        "pass e.g. np.array(labels, dtype=np.int64)")
    if logits.ndim not in (1, 2):
        raise ValueError(f"{where}: input must be logits of shape (N, C) or (C,), not {logits.shape}; "
                         "for (N, C, d1, ...) move C last and reshape to (-1, C)")
    if indices.shape != logits.shape[:-1]:
        raise ValueError(f"{where}: target shape {indices.shape} does not fit input shape {logits.shape}; "
                         f"expected {logits.shape[:-1]} (one class index per row)")
    classes = logits.shape[-1]
    if indices.size and (indices.min() < 0 or indices.max() >= classes):
        bad = int(indices.min() if indices.min() < 0 else indices.max())
        raise IndexError(f"{where}: target holds class {bad} but input has {classes} classes (valid: 0 to {classes - 1})")
    return indices


# The kernel cross_entropy uses for (N, C) logits; None: the composition below. set_cross_entropy_kernel
# changes it; the package's __init__ installs chapter 14's fused kernel here.
cross_entropy_kernel = None


def set_cross_entropy_kernel(kernel):
    """Compute cross_entropy's per-row losses of (N, C) logits as kernel(logits, indices) -> (N,).

    `kernel=None` restores log_softmax followed by indexing. Returns the kernel that was
    installed before, so a caller can put it back.
    """
    global cross_entropy_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_cross_entropy_kernel: expected a function (logits, indices) -> losses or None, "
                        f"not {type(kernel).__name__}")
    previous, cross_entropy_kernel = cross_entropy_kernel, kernel
    return previous


def get_cross_entropy_kernel():
    """The kernel cross_entropy uses for (N, C) logits now, or None for the composition below."""
    return cross_entropy_kernel


def cross_entropy(input: Tensor, target, reduction: str = "mean", *, weight=None, ignore_index: int = -100,
                  label_smoothing: float = 0.0) -> Tensor:
    """-log softmax(input)[n, target[n]] from raw logits (N, C) and integer class targets (N,).

    Computed as log_softmax followed by indexing, so it is finite for logits of any size
    (or by the kernel installed with set_cross_entropy_kernel, for 2-D logits). PyTorch's
    weight, ignore_index and label_smoothing are in the rest of the API, at the end of this section.
    """
    _check_reduction(reduction, "cross_entropy")
    if weight is not None or label_smoothing or np.any(np.asarray(getattr(target, "data", target)) == ignore_index):
        return _cross_entropy_with_options(input, target, reduction, weight, ignore_index, label_smoothing)
    indices = class_indices(target, input, "cross_entropy")
    if input.ndim == 2 and cross_entropy_kernel is not None:
        try:
            return _reduce(cross_entropy_kernel(input, indices), reduction)
        except NotImplementedError:
            pass  # the kernel is still a stub in a learner's package (its chapter not written yet): compose
    # 1. logp = log_softmax(input, dim=-1): (N, C) or (C,), finite for any finite logits.
    # 2. Pick the target's entry: logp[np.arange(N), indices] for (N, C) gives (N,);
    #    logp[int(indices)] for a single row (C,) gives a 0-d Tensor.
    # 3. The loss is minus the picked log-probabilities, reduced with _reduce.
    # Pitfall: never take log(softmax(...)): a probability that underflowed to 0 gives inf.
    ### BEGIN SOLUTION
    logp = log_softmax(input, dim=-1)                       # (N, C), never -inf for finite logits
    if input.ndim == 1:
        picked = logp[int(indices)]                          # (C,) -> ()
    else:
        picked = logp[np.arange(input.shape[0]), indices]    # (N, C) -> (N,): row n, column t[n]
    return _reduce(-picked, reduction)
    ### END SOLUTION


class CrossEntropyLoss(Module):
    """Cross-entropy from logits as a layer: CrossEntropyLoss()(logits (N, C), targets (N,))."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        _check_reduction(reduction, "CrossEntropyLoss")
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return cross_entropy(input, target, self.reduction, weight=self.weight, ignore_index=self.ignore_index,
                             label_smoothing=self.label_smoothing)


# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    per_example = cross_entropy(Tensor(logits), targets, reduction="none")
    batch_loss = CrossEntropyLoss()(Tensor(logits), targets)
print("cross_entropy, per example:", per_example.data)
print("CrossEntropyLoss(), mean:  ", batch_loss.item(), f"  ({len(caught)} warnings)")
np.testing.assert_allclose(per_example.data, [0.417, 0.0, 2e4], atol=1e-3)   # the values the text names

# %% [markdown]
r"""
**Test.** `test_unit_cross_entropy` checks the loss against the right-hand
closed form (log-sum-exp minus the correct logit) computed independently in
float64, that equal logits give exactly $\log C$, that logits like $\pm 10^4$
give the exact finite answer with no warning, that targets may be a `Tensor`,
an array or a list, that the three reductions and the `(C,)` form work, and
that float, out-of-range and wrongly shaped targets are refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_cross_entropy", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_cross_entropy():
    rng = np.random.default_rng(2)
    z, t = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    lse = np.log(np.exp(z).sum(axis=1))
    expected = lse - z[np.arange(6), t]
    np.testing.assert_allclose(cross_entropy(Tensor(z), t, reduction="none").data, expected, rtol=1e-12)
    np.testing.assert_allclose(cross_entropy(Tensor(z), t).item(), expected.mean(), rtol=1e-12)
    np.testing.assert_allclose(cross_entropy(Tensor(z), t, reduction="sum").item(), expected.sum(), rtol=1e-12)
    for as_given in (Tensor(t), t.tolist(), t.astype(np.int32)):
        np.testing.assert_allclose(CrossEntropyLoss()(Tensor(z), as_given).item(), expected.mean(), rtol=1e-12)
    np.testing.assert_allclose(cross_entropy(Tensor(np.zeros((3, 10))), [0, 5, 9]).item(), math.log(10), rtol=1e-12)
    ### BEGIN HIDDEN TESTS
    np.testing.assert_allclose(cross_entropy(Tensor(z[0]), int(t[0])).item(), expected[0], rtol=1e-12)
    ### END HIDDEN TESTS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = cross_entropy(Tensor(np.array([[1e4, 0.0, -1e4]], dtype=np.float32)), [2], reduction="none")
    np.testing.assert_allclose(huge.data, [2e4])
    for bad, error in [(np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0]), TypeError), (np.array([0, 1, 2, 3, 4, 0]), IndexError),
                       (np.array([0, 1, 2, 3, -1, 0]), IndexError), (np.array([0, 1]), ValueError)]:
        try:
            cross_entropy(Tensor(z), bad)
        except error:
            pass
        else:
            raise AssertionError(f"target {bad} must raise {error.__name__}")
    print("✓ cross-entropy: closed form, log C at equal logits, finite at 1e4, targets checked")


test_unit_cross_entropy()

# %% [markdown]
"""
### Counting parameters and memory

Three small functions turn the formulas of the background into numbers for a
real model.

* `count_parameters(model)` sums `numel()` over `model.parameters()` (each
  shared parameter once, because `parameters()` deduplicates). This is the
  number papers quote.
* `parameter_bytes(model, dtype=None)` is the memory those parameters take:
  as stored, or as they would take in another dtype, so you can compare
  float32 with float64 (or float16) without converting anything.
* `activation_bytes(model, x)` runs the model on a batch and adds up the
  bytes of every layer's output: the minimum a training step must keep for
  its backward pass. It walks the layers of a `Sequential` (an `MLP` is one);
  for any other model it counts only the final output.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_count_parameters", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.networks
def count_parameters(model: Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (each shared parameter counted once).

    Args: model, any Module; trainable_only, count only parameters with requires_grad.
    Returns: an int, e.g. 4,547 for MLP(2, [64, 64], 3).
    """
    # Sum numel() over model.parameters(): it already lists a shared (tied) parameter once.
    # Pitfall: do not walk named_modules() and add each layer's weights yourself: a tied weight
    # would be counted twice.
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    ### END SOLUTION


def parameter_bytes(model: Module, dtype=None) -> int:
    """Bytes the parameters take as stored, or as they would take in `dtype` (e.g. np.float64).

    Args: model, any Module; dtype, None for the stored size, or a dtype to ask "what if".
    Returns: an int number of bytes.
    """
    # As stored: the sum of each parameter's nbytes (so mixed dtypes are counted right).
    # In another dtype: count_parameters(model) times np.dtype(dtype).itemsize; convert nothing.
    ### BEGIN SOLUTION
    if dtype is None:
        return sum(p.nbytes for p in model.parameters())
    return count_parameters(model) * np.dtype(dtype).itemsize
    ### END SOLUTION


def activation_bytes(model: Module, x: Tensor) -> int:
    """Bytes of every layer's output for input x (a Sequential's layers one by one; else the output).

    Args: model, a Module (a Sequential or MLP is walked layer by layer); x, an input batch.
    Returns: an int: the sum of nbytes over every layer's output, activations included.
    """
    # Run the layers yourself, one at a time (list(model) for a Sequential, [model] otherwise),
    # feeding each output to the next and adding its nbytes.
    # Pitfall: count the activation layers' outputs too; each is a separate array in memory.
    ### BEGIN SOLUTION
    layers = list(model) if isinstance(model, Sequential) else [model]
    total = 0
    for layer in layers:
        x = layer(x)
        total += x.nbytes
    return total
    ### END SOLUTION


# %% [markdown]
r"""
**Test.** `test_unit_counting` checks the counts against the closed-form
$\sum (d_{\ell-1} d_\ell + d_\ell)$, that float64 doubles the bytes of float32
and that stored bytes equal the float32 figure, that a parameter shared by two
layers is counted once, and that the activation bytes of a batch are
$N \sum_\ell d_\ell \times 4$ (every layer output, activations included).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_counting", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_counting():
    model = MLP(10, [32, 16], 4)
    expected = 10 * 32 + 32 + 32 * 16 + 16 + 16 * 4 + 4
    assert count_parameters(model) == expected, (count_parameters(model), expected)
    assert parameter_bytes(model) == 4 * expected == parameter_bytes(model, np.float32)
    assert parameter_bytes(model, np.float64) == 8 * expected
    tied = Sequential(Linear(8, 8), ReLU(), Linear(8, 8))
    tied[2].weight = tied[0].weight                  # weight tying: one Parameter used by two layers
    assert count_parameters(tied) == 8 * 8 + 8 + 8, "a shared parameter must be counted once"
    x = Tensor(np.zeros((8, 10), dtype=np.float32))
    assert activation_bytes(model, x) == 8 * (32 + 32 + 16 + 16 + 4) * 4
    print("✓ counting: parameters, bytes in float32/float64, shared weights once, activation bytes")


test_unit_counting()


# %% [markdown]
"""
### The rest of the API

PyTorch's losses have options that change no idea above, and three more
losses that are one line each given what we have. None is an exercise:

- `nll_loss` / `NLLLoss` is cross-entropy's second half: it takes
  log-probabilities (the output of `log_softmax`) instead of logits.
- `weight` (one factor per class; the mean divides by the summed weights of
  the targets), `ignore_index` (targets to skip, such as padding) and
  `label_smoothing` (mix the one-hot target with the uniform distribution)
  are options of `cross_entropy` and `CrossEntropyLoss`, as in PyTorch.
- `binary_cross_entropy` / `BCELoss` takes probabilities (each log clamped at
  -100, as PyTorch does, so a probability of exactly 0 or 1 gives a finite loss);
  `binary_cross_entropy_with_logits` / `BCEWithLogitsLoss` takes logits and
  uses the stable form max(x, 0) - x t + log(1 + e^-|x|) (with `pos_weight`).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
def _weights_per_class(weight, classes: int, dtype) -> np.ndarray:
    w = np.ones(classes, dtype=dtype) if weight is None else np.asarray(getattr(weight, "data", weight), dtype=dtype)
    if w.shape != (classes,):
        raise ValueError(f"weight must have one entry per class, shape ({classes},), got {w.shape}")
    return w


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-input[n, target[n]] (times weight[target[n]]) for log-probabilities input (N, C) or (C,)."""
    _check_reduction(reduction, "nll_loss")
    t = np.asarray(getattr(target, "data", target))
    keep = t != ignore_index
    class_indices(np.where(keep, t, 0), input, "nll_loss")          # the shape and range checks
    w = _weights_per_class(weight, input.shape[-1], input.dtype)
    safe = np.where(keep, t, 0)
    picked = input[np.arange(input.shape[0]), safe] if input.ndim == 2 else input[int(safe)]
    factors = np.where(keep, w[safe], 0).astype(input.dtype)             # 0 for ignored targets
    losses = -picked * Tensor(factors)
    if reduction == "mean":
        return losses.sum() / float(factors.sum())                       # PyTorch's weighted mean
    return _reduce(losses, reduction)


def _cross_entropy_with_options(input, target, reduction, weight, ignore_index, label_smoothing) -> Tensor:
    logp = log_softmax(input, dim=-1)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    t = np.asarray(getattr(target, "data", target))
    keep = t != ignore_index
    w = _weights_per_class(weight, input.shape[-1], input.dtype)
    smooth = -(logp * Tensor(w)).sum(dim=-1) * Tensor(keep.astype(input.dtype))   # 0 for ignored targets
    if reduction == "mean":
        smooth = smooth.sum() / float(np.where(keep, w[np.where(keep, t, 0)], 0).sum())
    else:
        smooth = _reduce(smooth, reduction)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / input.shape[-1])


class NLLLoss(Module):
    """nll_loss as a layer: NLLLoss()(log_probabilities (N, C), targets (N,))."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction, "NLLLoss")
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


def _float_target(target, input: Tensor, where: str) -> Tensor:
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{where}: input shape {input.shape} and target shape {target.shape} differ; "
                         "give one target per input element")
    return target


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities p; each log clamped at -100, as in PyTorch."""
    _check_reduction(reduction, "binary_cross_entropy")
    target = _float_target(target, input, "binary_cross_entropy")
    with np.errstate(divide="ignore"):                                   # log(0) = -inf, then clamped
        losses = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    return _reduce(losses if weight is None else losses * weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Binary cross-entropy of sigmoid(input), computed stably from the logits."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    target = _float_target(target, input, "binary_cross_entropy_with_logits")
    softplus = ((-input.abs()).exp() + 1.0).log() + (-input).clamp(min=0)   # log(1 + e^-x), stably
    if pos_weight is None:
        losses = (1 - target) * input + softplus
    else:
        losses = (1 - target) * input + (target * (pos_weight - 1) + 1) * softplus
    return _reduce(losses if weight is None else losses * weight, reduction)


class BCELoss(Module):
    """binary_cross_entropy as a layer: BCELoss()(probabilities, targets of the same shape)."""

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction, "BCELoss")
        self.weight, self.reduction = weight, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(Module):
    """binary_cross_entropy_with_logits as a layer."""

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__()
        _check_reduction(reduction, "BCEWithLogitsLoss")
        self.weight, self.reduction, self.pos_weight = weight, reduction, pos_weight

    def forward(self, input: Tensor, target) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    logits = Tensor(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0]]))
    targets = np.array([0, 2, 1])
    logp = log_softmax(logits, dim=-1)
    assert np.isclose(nll_loss(logp, targets).item(), cross_entropy(logits, targets).item())
    first_two = cross_entropy(logits[:2], targets[:2]).item()
    assert np.isclose(cross_entropy(logits, np.array([0, 2, -100])).item(), first_two), "ignore_index skips a row"
    w = np.array([1.0, 2.0, 3.0])
    by_hand = -(logp.data[[0, 1, 2], targets] * w[targets]).sum() / w[targets].sum()
    assert np.isclose(cross_entropy(logits, targets, weight=w).item(), by_hand), "weighted mean"
    smooth = 0.9 * cross_entropy(logits, targets).item() + 0.1 / 3 * (-logp.data.sum(axis=1)).mean()
    assert np.isclose(CrossEntropyLoss(label_smoothing=0.1)(logits, targets).item(), smooth)
    p, t = Tensor(np.array([0.9, 0.2, 0.0])), np.array([1.0, 0.0, 1.0])
    assert np.isclose(BCELoss()(p, t).item(), (-np.log(0.9) - np.log(0.8) + 100) / 3), "log clamped at -100"
    x = Tensor(np.array([3.0, -2.0, 800.0]))
    expected = np.mean([np.log1p(np.exp(-3.0)), np.log1p(np.exp(-2.0)), 0.0])   # -log sigmoid(3), -log(1 - sigmoid(-2))
    got = BCEWithLogitsLoss()(x, np.array([1.0, 0.0, 1.0])).item()
    assert np.isfinite(got) and np.isclose(got, expected), f"stable for large logits: {got} vs {expected}"
    print("✓ the rest of the API: NLLLoss, weight / ignore_index / label_smoothing, BCELoss, BCEWithLogitsLoss")


test_unit_rest_of_api()

# %% [markdown]
"""
## Systems analysis

The measurements use an MLP the size of a classic MNIST classifier,
`MLP(784, [1024, 1024], 10)`, on random inputs: what matters here is shapes,
not values.

### Parameters: counted, and what they cost in float32 and float64
"""

# %%
from tinytorch import manual_seed

manual_seed(0)
counts = {}
print(f"{'model':28s} {'parameters':>11} {'float32 MB':>11} {'float64 MB':>11} {'in the w x w layer':>19}")
for width in (128, 512, 2048):
    model = MLP(784, [width, width], 10)
    formula = (784 * width + width) + (width * width + width) + (width * 10 + 10)
    assert count_parameters(model) == formula
    print(f"{'MLP(784, [%d, %d], 10)' % (width, width):28s} {count_parameters(model):11,d} "
          f"{parameter_bytes(model) / 1e6:11.2f} {parameter_bytes(model, np.float64) / 1e6:11.2f} "
          f"{(width * width + width) / formula:18.0%}")
    counts[width] = formula
print(f"\nwidth 512 -> 2048 (4x): {counts[2048] / counts[512]:.2f}x the parameters")
assert 8 < counts[2048] / counts[512] < 9, "the text says almost nine times the parameters"

# %% [markdown]
r"""
The count grows with the *square* of the width: quadrupling the hidden width
from 512 to 2048 multiplies the parameters by almost nine here, and the
$w \times w$ layer comes to dominate. `parameter_bytes` is the stored size
(every array's `nbytes`, which the table checks against the formula times 4
bytes); float64 doubles it. Deep learning trains in float32 (or 16-bit
formats) partly for this reason: the same model in float64 needs twice the
memory and twice the memory traffic, for precision that gradient descent does
not need.

### Activations: the memory that grows with the batch

Now the other half. For each batch size we record three numbers for the
1024-wide model:

* **layer outputs:** `activation_bytes`, the sum of every layer's output;
* **kept for backward:** what stays allocated after the forward pass while
  the output is alive, measured with `tracemalloc`. The `Linear` weights
  require gradients, so chapter 02's `Function.apply` records the graph, and
  the graph keeps every intermediate alive (the product before the bias is
  added, ReLU's mask, ...) for chapter 09's backward pass;
* **peak without a graph:** the same forward with graph recording switched off
  (the switch is `Function.grad_enabled`; chapter 09 wraps it as `no_grad()`),
  where each intermediate is freed as soon as it has been used: this is
  inference.
"""

# %%
import contextlib

from tinytorch.core.function import Function


@contextlib.contextmanager
def graph_recording(enabled: bool):
    """Switch recording of the computation graph on or off (chapter 09 calls this no_grad)."""
    previous = Function.grad_enabled
    Function.grad_enabled = enabled
    try:
        yield
    finally:
        Function.grad_enabled = previous


def retained_and_peak(model, x) -> tuple[int, int]:
    """Bytes still allocated after model(x) (the output and all it keeps alive), and the peak while computing."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = model(x)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    return current - base, peak - base


manual_seed(0)
model = MLP(784, [1024, 1024], 10)
params_mb = parameter_bytes(model) / 1e6
rng = np.random.default_rng(0)
batches = (16, 64, 256, 1024)
kept_per_example = []
print(f"parameters: {params_mb:.2f} MB (fixed)\n")
print(f"{'batch':>6} {'layer outputs MB':>17} {'kept for backward MB':>21} {'peak without graph MB':>22}")
for n in batches:
    x = Tensor(rng.standard_normal((n, 784)).astype(np.float32))
    kept, _ = retained_and_peak(model, x)
    with graph_recording(False):
        _, peak = retained_and_peak(model, x)
    kept_per_example.append(kept / n)
    outputs = activation_bytes(model, x)
    print(f"{n:6d} {outputs / 1e6:17.2f} {kept / 1e6:21.2f} {peak / 1e6:22.2f}")
    assert kept > outputs > peak, "the text says training keeps more than the layer outputs, inference less"
crossover = parameter_bytes(model) / np.median(kept_per_example)
print(f"\nkept for backward: about {np.median(kept_per_example) / 1e3:.1f} KB per example; "
      f"it exceeds the parameters from a batch of about {crossover:.0f}")
assert 100 <= crossover <= 1000, f"the text says the crossover is a batch of a few hundred; measured {crossover:.0f}"

# %% [markdown]
r"""
Activation memory is linear in the batch, and for training it is larger than
the sum of the layer outputs, because the graph keeps intermediates that are
not layer outputs. Past a batch of a few hundred, this small model's training
activations outweigh its parameters; for image and sequence models, whose
activations are per pixel or per token, the crossover comes far earlier,
often within the first few examples. Inference is cheap by comparison: without a graph only a couple of
layer outputs exist at any moment.

That is why the levers for training memory act on activations: smaller
batches (with gradient accumulation), activation checkpointing (keep only
some layer outputs and recompute the rest during backward), and 16-bit
activations.

### Time: where a forward pass goes

Forward time of the same model for growing batches, with the achieved
floating-point rate from the background's formula
$2N\sum_\ell d_{\ell-1} d_\ell$, and the cost of the loss at the end.
"""


# %%
from tinytorch.utils.timing import median_time    # chapter 01: the median of several runs


flops_per_example = 2 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
print(f"{'batch':>6} {'forward ms':>11} {'us/example':>11} {'GFLOP/s':>8} {'loss ms':>8}")
per_example_us, loss_share = {}, {}
for n in (1, 16, 128, 1024):
    x = Tensor(rng.standard_normal((n, 784)).astype(np.float32))
    labels = rng.integers(0, 10, n)
    forward = median_time(lambda: model(x))
    logits_n = model(x)
    loss_time = median_time(lambda: cross_entropy(logits_n, labels))
    per_example_us[n], loss_share[n] = forward / n * 1e6, loss_time / forward
    print(f"{n:6d} {forward * 1e3:11.2f} {forward / n * 1e6:11.1f} {flops_per_example * n / forward / 1e9:8.1f} "
          f"{loss_time * 1e3:8.3f}")
assert loss_share[1024] < 0.5, f"the text says the loss is small beside the forward pass; measured {loss_share[1024]:.0%}"

# %% [markdown]
r"""
On a quiet machine the time per example falls steeply with the batch (the
`us/example` column; see the caveat at the end of this paragraph): a single
example turns each
matrix multiplication into a matrix-*vector* product, which reads every weight
to do two operations with it, so it is limited by memory; a batch reuses each
weight it loads for every example, and BLAS gets closer to the processor's
peak. The loss, $O(NC)$ with $C = 10$, is a rounding error beside the forward
pass. (If another program is busy on the machine, BLAS threads wait for each
other and a row can come out many times slower than its neighbours: run the
cell again on a quiet machine. The loss column is not affected: it does no
matrix multiplication.)

**What breaks first at scale:** activation memory in training, which grows
with batch size and depth; then the parameters themselves, which grow with the
square of the width, and, in chapter 10, the optimizer's state, which for
Adam is two more copies of them.

## Production context

* **`torch.nn.CrossEntropyLoss`** computes `log_softmax` and then
  `nll_loss` (negative log-likelihood: the picking step), exactly our
  decomposition, with fused kernels. It adds `weight` (per-class weights),
  `ignore_index` (targets to skip, such as padding tokens, default -100),
  `label_smoothing`, class-probability targets, and inputs of shape
  `(N, C, d1, d2, ...)` for per-pixel or per-token classification. Both
  halves have hand-written backward kernels (together they give
  $\text{softmax} - \text{onehot}$ directly) instead of a chain of primitive
  rules like ours.
* **`torch.nn.MSELoss`** broadcasts mismatched shapes with a warning; we
  refuse them with an error.
* **MLPs** in PyTorch are usually written as an `nn.Sequential` by hand;
  `torchvision.ops.MLP` builds one from a list of widths (output included),
  with optional normalisation and dropout layers between.
* **Counting.** `sum(p.numel() for p in model.parameters())` is the standard
  idiom, and tools like `torchinfo.summary` print per-layer parameters and
  output shapes, from which activation memory follows. Real memory planning
  also counts gradients (one more copy of the parameters), optimizer state and
  the framework's caching allocator, which keeps freed blocks for reuse.
* **Mixed precision.** Training in bfloat16 or float16 halves parameter and
  activation memory and, on hardware with matrix units, multiplies the FLOP
  rate; a float32 master copy of the weights keeps the updates accurate.

## Integration: an untrained classifier on spirals

scikit-learn is not a dependency, so we generate the data ourselves: three
interleaved spiral arms in the plane, a classic dataset that no linear model
can separate (its classes wind around each other).
"""


# %%
def make_spirals(n_per_class: int = 200, n_classes: int = 3, noise: float = 0.2, seed: int = 0):
    """Points on n_classes interleaved spiral arms: X (n, 2) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for c in range(n_classes):
        radius = np.linspace(0.0, 1.0, n_per_class)
        angle = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0.0, noise, n_per_class)
        points.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        labels.append(np.full(n_per_class, c))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.int64)


X, y = make_spirals()
print(f"X: {X.shape} {X.dtype}, y: {y.shape} {y.dtype}, classes: {np.bincount(y)}")

# %% [markdown]
"""
A classifier for it: two hidden layers of 64 ReLU units and 3 outputs. Run
the whole dataset through it as one batch, score it with `CrossEntropyLoss`,
and count what it costs.
"""

# %%
manual_seed(0)
classifier = MLP(2, [64, 64], 3)
criterion = CrossEntropyLoss()
print(classifier)

logits = classifier(Tensor(X))                      # (600, 2) -> (600, 3)
loss = criterion(logits, y)
accuracy = float((logits.argmax(dim=1).data == y).mean())
print(f"\nlogits {logits.shape}, first row {np.round(logits.data[0], 3)}")
print(f"untrained loss {loss.item():.4f}   vs log(3) = {math.log(3):.4f}")
print(f"untrained accuracy {accuracy:.1%}   vs chance = {1 / 3:.1%}")
print(f"\nparameters: {count_parameters(classifier):,d}  "
      f"({parameter_bytes(classifier):,d} bytes in float32, {parameter_bytes(classifier, np.float64):,d} in float64)")
print(f"layer outputs for this batch of {len(X)}: {activation_bytes(classifier, Tensor(X)):,d} bytes")

# %% [markdown]
r"""
The loss is close to $\log 3$, as the background predicted, and the accuracy
is close to chance. Is that luck of one initialisation? Repeat with several
seeds and more classes, on random inputs of MNIST's size:
"""

# %%
print(f"{'classes':>8} {'log C':>7} {'untrained loss, 5 seeds (mean ± std)':>38}")
for classes in (3, 10, 100):
    losses = []
    for seed in range(5):
        manual_seed(seed)
        net = MLP(784, [256, 256], classes)
        inputs = Tensor(rng.standard_normal((256, 784)).astype(np.float32))
        losses.append(cross_entropy(net(inputs), rng.integers(0, classes, 256)).item())
    print(f"{classes:8d} {math.log(classes):7.3f} {np.mean(losses):31.3f} ± {np.std(losses):.3f}")
    assert 0 <= np.mean(losses) - math.log(classes) <= 0.05, "the text says the loss sits just above log C"

# %% [markdown]
r"""
With PyTorch's default initialisation (which `Linear` copies) the logits of
an untrained network are small, so its loss sits just above $\log C$. When
you train a classifier and the first loss printed is far above that, check the
initialisation or the inputs' scale before anything else.

What does the untrained network "think"? Evaluate it on a grid covering the
plane and draw two things: the class it predicts at each point, and how
confident it is (its largest softmax probability). The predicted regions have
nothing to do with the arms (often one class wins everywhere), and the
confidence is close to $1/3$ across the whole plane: the network is almost
uniformly unsure, which is exactly what a loss of about $\log 3$ says.
Chapters 09 and 10 will compute the gradient of this loss with respect to
every parameter and move the parameters downhill until the regions follow the
arms.
"""

# %%
from matplotlib.colors import ListedColormap

colours = ListedColormap(["tab:blue", "tab:red", "tab:green"])
grid_x, grid_y = np.meshgrid(np.linspace(-1.1, 1.1, 200), np.linspace(-1.1, 1.1, 200))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()]).astype(np.float32)      # (40000, 2)
grid_logits = classifier(Tensor(grid))                                            # (40000, 3)
regions = grid_logits.argmax(dim=1).data.reshape(grid_x.shape)
confidence = softmax(grid_logits, dim=1).data.max(axis=1).reshape(grid_x.shape)
print(f"largest softmax probability over the plane: {confidence.min():.3f} to {confidence.max():.3f}")
assert confidence.max() < 0.5, "the text says the untrained network is close to 1/3 everywhere"

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
axes[0].scatter(X[:, 0], X[:, 1], c=y, cmap=colours, vmin=0, vmax=2, s=8)
axes[0].set(title="three spirals (generated with NumPy)", aspect="equal")
axes[1].pcolormesh(grid_x, grid_y, regions, cmap=colours, vmin=0, vmax=2, alpha=0.25, shading="auto")
axes[1].scatter(X[:, 0], X[:, 1], c=y, cmap=colours, vmin=0, vmax=2, s=8)
axes[1].set(title=f"untrained MLP: predicted class (accuracy {accuracy:.0%})", aspect="equal")
mesh = axes[2].pcolormesh(grid_x, grid_y, confidence, cmap="viridis", shading="auto")
fig.colorbar(mesh, ax=axes[2], label="largest softmax probability")
axes[2].set(title="untrained MLP: confidence", aspect="equal")
plt.tight_layout()
plt.show()

# %% [markdown]
"""
`MSELoss` works the same way for regression. Ask a second MLP to predict each
point's distance from the origin, a target of shape `(N, 1)` to match the
model's `(N, 1)` output. Passing the target as `(N,)` is the classic mistake
that MSE's shape check catches:
"""

# %%
manual_seed(1)
regressor = MLP(2, [32], 1, activation=Tanh)
distance = np.linalg.norm(X, axis=1).astype(np.float32)          # (600,)
prediction = regressor(Tensor(X))                                # (600, 1)
print("MSE, untrained:", MSELoss()(prediction, distance.reshape(-1, 1)).item())
try:
    MSELoss()(prediction, distance)
except ValueError as err:
    print("ValueError:", err)


# %% [markdown]
r"""
**Test.** `test_unit_untrained_classifier` checks the integration: the spiral
classifier's loss equals the closed form computed from its own logits, lies
within 0.1 of $\log 3$, and the pieces (`MLP`, `CrossEntropyLoss`, counting)
agree on the model they describe.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_untrained_classifier", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_untrained_classifier():
    out = classifier(Tensor(X))
    z = out.data.astype(np.float64)
    closed_form = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y])
    np.testing.assert_allclose(CrossEntropyLoss()(out, y).item(), closed_form, rtol=1e-5)
    assert abs(closed_form - math.log(3)) < 0.1, f"untrained loss {closed_form:.3f} is far from log 3"
    assert count_parameters(classifier) == (2 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    assert activation_bytes(classifier, Tensor(X)) == len(X) * (64 + 64 + 64 + 64 + 3) * 4
    print("✓ untrained spiral classifier: loss = closed form ≈ log 3, counts consistent")


test_unit_untrained_classifier()

# %% [markdown]
r"""
## An early taste of learning: gradients by finite differences

Everything so far computes; nothing learns. Learning needs one more number per
parameter: how the loss changes when that parameter moves, the gradient
$\partial L / \partial \theta_i$. Chapter 09 will compute all of them at once by
backpropagation. But we can already *measure* them, with nothing more than
the forward pass and the loss of this chapter: nudge one parameter by a small
$h$ in each direction and watch the loss,

$$\frac{\partial L}{\partial \theta_i} \approx \frac{L(\theta + h\,e_i) - L(\theta - h\,e_i)}{2h},$$

the *central difference* (its error shrinks like $h^2$; the one-sided
$(L(\theta + h e_i) - L(\theta))/h$ only like $h$). Chapter 03 used the same
formula to draw the activations' derivatives. Here it is applied to every
scalar in every weight matrix, one at a time.

The function below is the whole gradient machinery of this section. It takes
a `loss_fn` with no arguments (a closure that runs the model on fixed data and
returns the loss) and the list of parameters, and for each entry of each
parameter evaluates the loss twice. We work in float64 (`Module.double()`):
with $h = 10^{-5}$ the difference of two float32 losses near 1 would be mostly
rounding.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_numerical_gradients", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numerical_gradients(loss_fn, params, h: float = 1e-5) -> list:
    """The gradient of loss_fn() with respect to every entry of every parameter, by central differences.

    Args:
        loss_fn: a function of no arguments returning a 0-d Tensor; it reads the parameters' current values.
        params: a list of Parameters (float64, so that the difference of two losses is not rounding).
        h: the step; each entry is moved to value + h and value - h.
    Returns:
        a list of NumPy arrays, one per parameter, each of that parameter's shape.
    """
    # For each parameter p, make g = np.zeros_like(p.data); for each index i in np.ndindex(p.shape):
    #   save old = p.data[i]; set p.data[i] = old + h and take loss_fn().item(); set old - h and
    #   take it again; put old back; g[i] = (plus - minus) / (2 * h).
    # That is exactly two calls of loss_fn per scalar parameter (the cost table below counts them).
    # Pitfall: restore each entry by assigning the saved value, not by adding h back (rounding
    # would drift the weights), and write into p.data in place: loss_fn holds these very arrays.
    ### BEGIN SOLUTION
    grads = []
    for p in params:
        g = np.zeros_like(p.data)
        for i in np.ndindex(p.shape):
            old = p.data[i]
            p.data[i] = old + h
            plus = loss_fn().item()
            p.data[i] = old - h
            minus = loss_fn().item()
            p.data[i] = old                          # exactly the value it had
            g[i] = (plus - minus) / (2 * h)
        grads.append(g)
    return grads
    ### END SOLUTION


# %% [markdown]
r"""
**Test.** `test_unit_numerical_gradients` checks the measured gradient against
one we can write by hand. For a `Linear` layer $y = x W^\top + b$ under
`mse_loss` over $n$ output elements, the chain rule gives
$\partial L / \partial W = \tfrac{2}{n} (y - t)^\top x$ and
$\partial L / \partial b = \tfrac{2}{n} \sum_{\text{rows}} (y - t)$. The test
also checks that `loss_fn` was called exactly twice per scalar parameter and
that every parameter is left exactly as it was.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_numerical_gradients", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_numerical_gradients():
    rng = np.random.default_rng(3)
    manual_seed(3)
    layer = Linear(4, 3).double()
    x, t = rng.standard_normal((10, 4)), rng.standard_normal((10, 3))
    calls = []

    def loss_fn():
        calls.append(1)
        return mse_loss(layer(Tensor(x)), t)

    before = [p.data.copy() for p in layer.parameters()]
    grad_w, grad_b = numerical_gradients(loss_fn, list(layer.parameters()))
    residual = x @ layer.weight.data.T + layer.bias.data - t          # (10, 3)
    np.testing.assert_allclose(grad_w, 2 / residual.size * residual.T @ x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad_b, 2 / residual.size * residual.sum(axis=0), rtol=1e-6, atol=1e-9)
    assert len(calls) == 2 * (4 * 3 + 3), f"expected 2 loss evaluations per parameter, got {len(calls)}"
    for p, old in zip(layer.parameters(), before):
        assert np.array_equal(p.data, old), "numerical_gradients must leave every parameter exactly as it was"
    print("✓ numerical gradients: match the chain rule for Linear + MSE, 2 evaluations per parameter")


test_unit_numerical_gradients()

# %% [markdown]
r"""
### Fitting a small classifier with them

With a gradient, learning is one line: move every parameter a little against
its gradient, $\theta \leftarrow \theta - \eta\, \partial L / \partial \theta$
(*gradient descent*, with learning rate $\eta$), and repeat. We fit a small
MLP, `MLP(2, [8], 3)` with 51 parameters, to the 600 spiral points, for 60
steps with $\eta = 1$, recording the loss and the accuracy. The graph is not
recorded (`graph_recording(False)`): these forward passes are only measured,
never differentiated.
"""

# %%
manual_seed(0)
tiny = MLP(2, [8], 3).double()                       # 2*8 + 8 + 8*3 + 3 = 51 parameters
tiny_params = list(tiny.parameters())
X64 = Tensor(X.astype(np.float64))


def spiral_loss():
    return cross_entropy(tiny(X64), y)


def spiral_accuracy():
    return float((tiny(X64).data.argmax(axis=1) == y).mean())


learning_rate, fd_steps = 1.0, 60
fd_history = []                                      # (step, loss, accuracy)
started = time.perf_counter()
with graph_recording(False):
    for step in range(fd_steps + 1):
        if step % 10 == 0:
            fd_history.append((step, spiral_loss().item(), spiral_accuracy()))
        if step == fd_steps:
            break
        for p, g in zip(tiny_params, numerical_gradients(spiral_loss, tiny_params)):
            p.data -= learning_rate * g                  # one step of gradient descent
fd_seconds = time.perf_counter() - started

print(f"{'step':>5} {'loss':>7} {'accuracy':>9}")
for step, loss_value, acc in fd_history:
    print(f"{step:5d} {loss_value:7.3f} {acc:9.1%}")
first_loss, last_loss = fd_history[0][1], fd_history[-1][1]
print(f"\n{count_parameters(tiny)} parameters, {fd_steps} steps: loss {first_loss:.3f} -> {last_loss:.3f}, "
      f"accuracy {fd_history[0][2]:.0%} -> {fd_history[-1][2]:.0%}, in {fd_seconds:.1f} s "
      f"({fd_seconds / fd_steps * 1e3:.0f} ms per step)")
assert last_loss < 0.8 * first_loss, f"finite-difference descent should lower the loss; {first_loss:.3f} -> {last_loss:.3f}"
assert last_loss < 0.8 * math.log(3), f"the text says the loss falls well below log 3; it ended at {last_loss:.3f}"
assert fd_history[-1][2] > max(0.5, fd_history[0][2] + 0.2), "the text says the accuracy climbs far above chance"

fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5), facecolor="white")
steps_axis = [row[0] for row in fd_history]
loss_ax.plot(steps_axis, [row[1] for row in fd_history], "o-")
loss_ax.axhline(math.log(3), color="grey", linestyle=":", label="log 3 (guessing)")
loss_ax.set(xlabel="gradient-descent step", ylabel="cross-entropy", title="loss, gradients by finite differences")
loss_ax.legend()
acc_ax.plot(steps_axis, [row[2] for row in fd_history], "o-", color="tab:green")
acc_ax.axhline(1 / 3, color="grey", linestyle=":", label="chance")
acc_ax.set(xlabel="gradient-descent step", ylabel="accuracy", ylim=(0, 1), title="accuracy on the 600 spiral points")
acc_ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
It learns. The loss falls well below $\log 3$ and the accuracy climbs far
above chance (the last printed line has the numbers), using nothing but the
forward pass and the loss written in this chapter. A tiny MLP will not
untangle three spirals in 60 steps; what matters here is the direction, and
the price.

### Why this cannot scale

Each step evaluated the loss twice for every parameter. The table below
measures one step for MLPs of growing width on the same data, counting the
forward passes (calls of `loss_fn`) rather than assuming them, and timing the
step.
"""

# %%
def time_finite_difference_step(hidden: int) -> tuple[int, int, float]:
    """(parameters, forward passes, seconds) of one finite-difference step of MLP(2, [hidden], 3)."""
    manual_seed(0)
    net = MLP(2, [hidden], 3).double()
    params, calls = list(net.parameters()), []

    def loss_fn():
        calls.append(1)
        return cross_entropy(net(X64), y)

    with graph_recording(False):
        numerical_gradients(loss_fn, params)                   # one step, counting its forward passes
        forwards = len(calls)
        seconds = median_time(lambda: numerical_gradients(loss_fn, params), repeats=3)
    return count_parameters(net), forwards, seconds


print(f"{'MLP':>16} {'parameters':>11} {'forwards/step':>14} {'ms/step':>8} {'ms/forward':>11}")
fd_cost = []
for hidden in (4, 8, 16, 32):
    params_n, forwards, seconds = time_finite_difference_step(hidden)
    fd_cost.append((params_n, forwards, seconds))
    print(f"{'MLP(2, [%d], 3)' % hidden:>16} {params_n:11d} {forwards:14d} {seconds * 1e3:8.1f} "
          f"{seconds / forwards * 1e3:11.3f}")
    assert forwards == 2 * params_n, "a central-difference step costs exactly two forward passes per parameter"
growth = fd_cost[-1][2] / fd_cost[0][2]
params_ratio = fd_cost[-1][0] / fd_cost[0][0]
print(f"\n{params_ratio:.1f}x the parameters: {growth:.1f}x the time per step")
assert growth >= params_ratio / 3, \
    f"the text says time per step grows with the parameter count; {params_ratio:.1f}x parameters took {growth:.1f}x"

# %% [markdown]
r"""
The forward passes per step are exactly twice the parameter count (the cell
asserts it), and each forward pass of such a small model costs about the same
(the last column), so the time per step grows in proportion to the
parameters: the last line compares the two ratios. That is
already slow for a model of a couple of hundred parameters. Now take a model of the size
one would train on CIFAR-10 images: an MLP on the 3 × 32 × 32 = 3072 pixel
values with two hidden layers of 1024, `MLP(3072, [1024, 1024], 10)`. Time one
forward pass and loss on a batch of 64 images, and multiply.
"""

# %%
manual_seed(0)
cifar_mlp = MLP(3 * 32 * 32, [1024, 1024], 10)
cifar_params = count_parameters(cifar_mlp)
cifar_batch = Tensor(rng.standard_normal((64, 3 * 32 * 32)).astype(np.float32))
cifar_labels = rng.integers(0, 10, 64)
with graph_recording(False):
    cifar_forward = median_time(lambda: cross_entropy(cifar_mlp(cifar_batch), cifar_labels))
fd_step_seconds = 2 * cifar_params * cifar_forward
steps_per_epoch = 50_000 // 64
print(f"MLP(3072, [1024, 1024], 10): {cifar_params:,d} parameters")
print(f"one forward pass + loss on a batch of 64: {cifar_forward * 1e3:.2f} ms")
print(f"one finite-difference step: 2 x {cifar_params:,d} forwards = {2 * cifar_params:,d} forwards, "
      f"about {fd_step_seconds / 3600:.1f} hours")
epoch_days = fd_step_seconds * steps_per_epoch / 86400
print(f"one epoch of CIFAR-10 ({steps_per_epoch} steps of 64): about {epoch_days:,.0f} days")
assert cifar_params == (3072 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 10 + 10)
assert fd_step_seconds > 3600 and epoch_days > 30, "the text says hours per step and months per epoch"
del cifar_mlp, cifar_batch

# %% [markdown]
r"""
Hours for a single step, months or more for one pass over the data: finite
differences cost a forward pass per parameter, and models have millions of
parameters. (They are also approximate: $h$ trades truncation error against
rounding error, which is why we needed float64.)

This is what chapter 09 fixes. Backpropagation computes the same gradient,
exactly rather than approximately, for *every* parameter at once: one forward
pass that records the graph, then one backward pass through it, whose cost is
a small multiple of one forward pass (chapter 09 measures it) *whatever the
number of parameters*. A step of the CIFAR-size model above then costs a
few of the forward passes timed above instead of eight million of them. The finite differences do not go away: they
become the referee. Chapter 09's `gradcheck` compares every backward rule with
exactly the central difference you wrote here.
"""

# %% [markdown]
"""
Every piece of this chapter, `MLP`, `mse_loss`, `cross_entropy`, is a
composition of chapter 02's primitives (`MatMul`, `Add`, `Mul`, `Max`, `Exp`,
`Log`, `Sum`, `GetItem`). When chapter 09 gives each primitive its backward
rule, `CrossEntropyLoss()(model(X), y).backward()` will fill in the gradient
of every weight, and chapter 10 will use it to train this classifier. Nothing
here is rewritten.

## Run all the tests
"""

# %%
if __name__ == "__main__":
    test_unit_mlp_structure()
    test_unit_mlp_forward()
    test_unit_mse_loss()
    test_unit_cross_entropy()
    test_unit_counting()
    test_unit_rest_of_api()
    test_unit_untrained_classifier()
    test_unit_numerical_gradients()
    print("All network tests passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory budget.** Your `MLP(784, [1024, 1024], 10)` kept a measured number
of bytes per example for backward. On a device with 1 GB free for
activations, what is the largest batch you could train, and how does the
answer change in float64, or if you doubled the depth with two more
1024-wide layers (each followed by a ReLU)?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory_budget", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The table measured about 26.8 KB per example (27.35 MB for a
batch of 1024, 26.7 KB each). It can be explained exactly: each `Linear` keeps its matmul
output and its biased output (2 × 1024 floats), each `ReLU` its bool mask
(1024 bytes) and its output (1024 floats), and the last layer 2 × 10 floats:
6,164 floats × 4 B + 2,048 B = 26,704 B. With 1 GB = 10⁹ B the largest batch
is 10⁹ / 26,704 ≈ 37,000 examples. In float64 the floats double and the
masks do not: 6,164 × 8 + 2,048 = 51,360 B, so about 19,000, roughly half.
Two more 1024-wide Linear + ReLU blocks add 3 × 1024 floats and 1024 mask
bytes each, 2 × 13,312 = 26,624 B: 53,328 B per example, about 18,700 examples,
again roughly half. (The parameters and their gradients need memory too; the
question gives 1 GB to activations alone.)

**Rubric (2 points).** 1 point for the batch from the measured bytes per
example (anything from 35,000 to 41,000, e.g. with 1 GB = 2³⁰ B); 1 point for
"about half" in both variants, with the reason (bytes per float doubled; kept
arrays per example doubled).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Width versus depth.** For 784 inputs and 10 classes, compare an MLP with
one hidden layer of width 1024, `MLP(784, [1024], 10)`, with one of four
hidden layers of width 512, `MLP(784, [512, 512, 512, 512], 10)`: their
parameters, forward FLOPs per example and layer-output memory per example,
from the formulas of the background. Which costs more to train, and where
is the difference largest?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_width_versus_depth", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Wide: $P = 784 \cdot 1024 + 1024 + 1024 \cdot 10 + 10 = 814{,}090$;
FLOPs $\approx 2(784 \cdot 1024 + 1024 \cdot 10) = 1{,}626{,}112$ per example;
layer outputs $1024 + 1024 + 10 = 2{,}058$ floats, 8,232 B per example.
Deep: $P = 784 \cdot 512 + 512 + 3(512 \cdot 512 + 512) + 512 \cdot 10 + 10 =
1{,}195{,}018$; FLOPs $\approx 2(784 \cdot 512 + 3 \cdot 512^2 + 512 \cdot 10) =
2{,}385{,}920$; layer outputs $4(512 + 512) + 10 = 4{,}106$ floats, 16,424 B.
The deep one has about 1.47× the parameters and the FLOPs but 2.0× the
activation memory (the same holds for what training keeps: about 13.4 KB
against 26.7 KB per example), and it runs five matrix multiplications in
sequence instead of two, so at small batches it also pays more per-call
overhead. It costs more to train in every measure, most of all in activation
memory, which grows with the batch.

**Rubric (2 points).** 1 point for the three quantities of both models
(within a few percent); 1 point for the conclusion that depth costs
activation memory more than parameters (2× vs about 1.5×), with a reason.
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Loss design.** Our `cross_entropy` computes the whole `(N, C)`
log-softmax to use one entry per row. For a language model with
$C = 50{,}000$ classes and $N = 8 \times 2048$ tokens, how many bytes is that
intermediate in float32, how many arrays of that size does our composition
keep for the backward pass, and what would a fused kernel avoid?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_loss_design", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** $N = 16{,}384$, so one `(N, C)` float32 array is
$16{,}384 \times 50{,}000 \times 4 = 3.28 \times 10^9$ bytes, 3.3 GB.
`log_softmax` makes three of them (the shifted logits `x - max`, their `exp`,
and the log-probabilities `shifted - log(sum)`); the graph keeps all three for
the backward pass: about 9.8 GB on top of the logits themselves. The backward
pass then creates several more `(N, C)` arrays (the gradient scattered by the
indexing, the one broadcast back through `sum`, the product with `exp`, their
sum), each a full 3.3 GB read and write. A fused kernel reads the logits once,
keeps only one number per row (the log-sum-exp, 64 KB), and in backward writes
the gradient $\operatorname{softmax} - \text{onehot}$ in one pass: one `(N, C)`
array instead of about three kept plus several temporaries, and a few sweeps
over memory instead of a dozen.

**Rubric (2 points).** 1 point for 3.3 GB and a count of the kept `(N, C)`
arrays (two to four accepted, with the arrays named); 1 point for what fusion
avoids (the kept intermediates and the passes), e.g. keeping only the per-row
log-sum-exp.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Silent bugs.** We turned two silent mistakes into errors: MSE with
`(N, 1)` against `(N,)`, and class targets that are negative or out of
range. Which other mistakes in a training pipeline give a wrong but
plausible loss (think of labels in the wrong order, logits passed through
softmax before `cross_entropy`, an accidental float target), and how would
you detect each?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_silent_bugs", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** *Labels out of order* (inputs shuffled without their labels):
the loss starts at $\log C$ and stays near it, accuracy at chance; detect by
overfitting one small batch (a correct pipeline drives its loss near 0) and by
plotting a few inputs with their labels. *Softmax before `cross_entropy`*: the
"logits" lie in $[0, 1]$, so even a perfect prediction has loss
$\log(e + C - 1) - 1$, 1.46 for $C = 10$ against $\log 10 = 2.30$ at chance,
and gradients are small; detect by checking the output range of the last
layer (logits should not all lie in [0, 1] and sum to 1) and by a loss that
plateaus far above 0 on one batch. *Float targets*: ours raise `TypeError`;
PyTorch reads float targets of shape `(N, C)` as class probabilities, so
multi-hot or unnormalised float labels give a plausible loss that means
something else, and in a regression loss an integer-coded class used as a
float target trains towards the class *number*; detect by asserting the dtype
and shape of the labels where the data loader hands them over. Other examples: labels numbered 1 to C (ours raises on C),
a `(N, 1)` prediction against `(N,)` in a framework that broadcasts, inputs
not normalised as at training time, `eval()` forgotten at test time.

**Rubric (2 points).** 1 point for at least two further silent mistakes with
what the loss looks like; 1 point for a concrete check for each (initial loss
near $\log C$, overfit one batch, range and dtype assertions).
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

* `MLP(in_features, hidden_sizes, out_features, activation=ReLU)` is a
  `Sequential` of `Linear` layers with an activation in every gap and none at
  the end; its parameters carry PyTorch's names.
* `MSELoss`/`mse_loss` and `CrossEntropyLoss`/`cross_entropy` follow PyTorch's
  names, `reduction` and target conventions. Cross-entropy takes logits
  `(N, C)` and integer classes `(N,)` (a `Tensor`, array or list), is computed as
  log-softmax plus indexing, and stays finite for logits of $10^4$, where the
  naive formula gives `nan` and softmax-then-log gives `inf`. Deliberate
  differences: MSE refuses mismatched shapes, cross-entropy checks its targets
  and has no `weight`, `ignore_index` or `label_smoothing`.
* An untrained classifier's loss is about $\log C$: we measured it for 3, 10
  and 100 classes.
* Gradients by central differences already make a model learn: the spiral
  MLP's loss fell well below $\log 3$. But a step costs two forward passes per
  parameter, hours per step for a CIFAR-size MLP of four million parameters;
  chapter 09's backpropagation gets every gradient from one backward pass.
* `count_parameters`, `parameter_bytes` (float32 vs float64) and
  `activation_bytes` put numbers on a model; we measured that training keeps
  more than the layer outputs, and that activation memory overtakes parameter
  memory at a batch of a few hundred for a 1024-wide MLP.
* The losses export to `tinytorch.nn.loss`, the MLP and the counts to
  `tinytorch.nn.networks`; both are also in `tinytorch.nn` and `tinytorch.nn.functional`.

Next, chapter 06 builds convolutions, whose parameters are few and whose
activations are many: everything measured here, turned up.
"""
