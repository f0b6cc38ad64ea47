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
$\log C$ for $C$ classes. Training it is the job of chapters 09 (gradients)
and 10 (optimizers); everything here is built from Tensor primitives, so it
will train then without a line being rewritten.

**Learning objectives.** After this chapter you can

1. build an MLP of any depth from `Linear` and activations, and predict its
   parameter count and forward FLOPs from its layer sizes;
2. implement mean squared error and cross-entropy as `Module`s and functions,
   and explain why cross-entropy takes logits rather than probabilities;
3. make cross-entropy stable for huge logits and say why an untrained
   classifier's loss is about $\log C$;
4. measure parameter memory (float32 vs float64) and activation memory per
   batch, and find where one overtakes the other.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp core.networks

# %%
#| export

import numpy as np

from tinytorch.core.activations import ReLU, log_softmax
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.tensor import Tensor

# %% [markdown]
"""
The chapter's own tools for demonstrations, measurement and plots (not part of the package):
"""

# %%
import math
import tracemalloc
import warnings

import matplotlib.pyplot as plt

from tinytorch.core.activations import Tanh, relu, softmax

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
#| export
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
    """Mean squared error between input and target, which must have the same shape."""
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
def _class_indices(target, logits: Tensor, where: str) -> np.ndarray:
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


# A kernel installed by set_cross_entropy_kernel (chapter 14 installs a fused one); None: the composition below.
_cross_entropy_kernel = None


def set_cross_entropy_kernel(kernel):
    """Compute cross_entropy's per-row losses of (N, C) logits as kernel(logits, indices) -> (N,).

    `kernel=None` restores log_softmax followed by indexing. Returns the kernel that was
    installed before, so a caller can put it back.
    """
    global _cross_entropy_kernel
    if kernel is not None and not callable(kernel):
        raise TypeError(f"set_cross_entropy_kernel: expected a function (logits, indices) -> losses or None, "
                        f"not {type(kernel).__name__}")
    previous, _cross_entropy_kernel = _cross_entropy_kernel, kernel
    return previous


def cross_entropy(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """-log softmax(input)[n, target[n]] from raw logits (N, C) and integer class targets (N,).

    Computed as log_softmax followed by indexing, so it is finite for logits of any size
    (or by the kernel installed with set_cross_entropy_kernel, for 2-D logits).
    """
    _check_reduction(reduction, "cross_entropy")
    indices = _class_indices(target, input, "cross_entropy")
    if input.ndim == 2 and _cross_entropy_kernel is not None:
        return _reduce(_cross_entropy_kernel(input, indices), reduction)
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

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction, "CrossEntropyLoss")
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return cross_entropy(input, target, self.reduction)


# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    per_example = cross_entropy(Tensor(logits), targets, reduction="none")
    batch_loss = CrossEntropyLoss()(Tensor(logits), targets)
print("cross_entropy, per example:", per_example.data)
print("CrossEntropyLoss(), mean:  ", batch_loss.item(), f"  ({len(caught)} warnings)")

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
#| export
def count_parameters(model: Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (each shared parameter counted once)."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    ### END SOLUTION


def parameter_bytes(model: Module, dtype=None) -> int:
    """Bytes the parameters take as stored, or as they would take in `dtype` (e.g. np.float64)."""
    ### BEGIN SOLUTION
    if dtype is None:
        return sum(p.nbytes for p in model.parameters())
    return count_parameters(model) * np.dtype(dtype).itemsize
    ### END SOLUTION


def activation_bytes(model: Module, x: Tensor) -> int:
    """Bytes of every layer's output for input x (a Sequential's layers one by one; else the output)."""
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
## Systems analysis

The measurements use an MLP the size of a classic MNIST classifier,
`MLP(784, [1024, 1024], 10)`, on random inputs: what matters here is shapes,
not values.

### Parameters: counted, and what they cost in float32 and float64
"""

# %%
from tinytorch import manual_seed

manual_seed(0)
print(f"{'model':28s} {'parameters':>11} {'float32 MB':>11} {'float64 MB':>11} {'in the w x w layer':>19}")
for width in (128, 512, 2048):
    model = MLP(784, [width, width], 10)
    formula = (784 * width + width) + (width * width + width) + (width * 10 + 10)
    assert count_parameters(model) == formula
    print(f"{'MLP(784, [%d, %d], 10)' % (width, width):28s} {count_parameters(model):11,d} "
          f"{parameter_bytes(model) / 1e6:11.2f} {parameter_bytes(model, np.float64) / 1e6:11.2f} "
          f"{(width * width + width) / formula:18.0%}")

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

from tinytorch.core.tensor import Function


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
    print(f"{n:6d} {activation_bytes(model, x) / 1e6:17.2f} {kept / 1e6:21.2f} {peak / 1e6:22.2f}")
crossover = parameter_bytes(model) / np.median(kept_per_example)
print(f"\nkept for backward: about {np.median(kept_per_example) / 1e3:.1f} KB per example; "
      f"it exceeds the parameters from a batch of about {crossover:.0f}")

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
from tinytorch.core.timing import median_time    # chapter 01: the median of several runs


flops_per_example = 2 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
print(f"{'batch':>6} {'forward ms':>11} {'us/example':>11} {'GFLOP/s':>8} {'loss ms':>8}")
for n in (1, 16, 128, 1024):
    x = Tensor(rng.standard_normal((n, 784)).astype(np.float32))
    labels = rng.integers(0, 10, n)
    forward = median_time(lambda: model(x))
    logits_n = model(x)
    loss_time = median_time(lambda: cross_entropy(logits_n, labels))
    print(f"{n:6d} {forward * 1e3:11.2f} {forward / n * 1e6:11.1f} {flops_per_example * n / forward / 1e9:8.1f} "
          f"{loss_time * 1e3:8.3f}")

# %% [markdown]
r"""
Time per example falls steeply with the batch: a single example turns each
matrix multiplication into a matrix-*vector* product, which reads every weight
to do two operations with it, so it is limited by memory; a batch reuses each
weight it loads for every example, and BLAS gets closer to the processor's
peak. The loss, $O(NC)$ with $C = 10$, is a rounding error beside the forward
pass. (If another program is busy on the machine, BLAS threads wait for each
other and these times jump around; the trend survives.)

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
    test_unit_untrained_classifier()
    print("All network tests passed.")

# %% [markdown]
r"""
## ML systems thinking

1. **Memory budget.** Your `MLP(784, [1024, 1024], 10)` kept a measured number
   of bytes per example for backward. On a device with 1 GB free for
   activations, what is the largest batch you could train, and how does the
   answer change in float64, or if you doubled the depth with two more
   1024-wide layers?
2. **Width versus depth.** Two MLPs with about the same parameter count: one
   with a single hidden layer of width $w$, one with four hidden layers of width
   $w/2$. Compare their parameters, FLOPs per example and activation memory per
   example using the formulas of the background. Which costs more to train?
3. **Loss design.** Our `cross_entropy` computes the whole `(N, C)`
   log-softmax to use one entry per row. For a language model with
   $C = 50{,}000$ classes and $N = 8 \times 2048$ tokens, how many bytes is that
   intermediate in float32, and how many times does a backward pass need it?
   What would a fused kernel avoid?
4. **Silent bugs.** We turned two silent mistakes into errors: MSE with
   `(N, 1)` against `(N,)`, and class targets that are negative or out of
   range. Which other mistakes in a training pipeline give a wrong but
   plausible loss (think of labels in the wrong order, logits passed through
   softmax twice, an accidental float target), and how would you detect each?

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
* `count_parameters`, `parameter_bytes` (float32 vs float64) and
  `activation_bytes` put numbers on a model; we measured that training keeps
  more than the layer outputs, and that activation memory overtakes parameter
  memory at a batch of a few hundred for a 1024-wide MLP.
* Everything exports to `tinytorch.core.networks`; the losses are also in
  `tinytorch.nn` and `tinytorch.nn.functional`.

Next, chapter 06 builds convolutions, whose parameters are few and whose
activations are many: everything measured here, turned up.
"""
