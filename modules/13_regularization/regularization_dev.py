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
# Regularization: dropout, weight decay, augmentation, early stopping

At the end of chapter 12 a small MLP learned to recognise five glyphs in
noisy 8×8 images. Its training accuracy approached 100% while its
validation accuracy stayed well below, and its validation loss turned around
and rose while the training loss kept falling. The model had stopped learning what a
plus looks like and started memorising *these* 2,000 images, noise included.
That is **overfitting**, and every model with more capacity than its data
does it.

This chapter builds and measures the four standard defences, each of which
attacks the gap between training and validation from a different side:

| defence | what it does | what it costs | in tinytorch |
| --- | --- | --- | --- |
| **dropout** | zeroes random activations while training, so no unit can rely on any other | a random number per activation per step; a mask kept for backward | `Dropout`, `dropout` (`tinytorch.nn`, `tinytorch.nn.functional`) |
| **weight decay** | pulls every weight towards zero a little at every step, so only weights the data keeps pushing stay large | one multiply-add per parameter per step | `l2_penalty` here; `weight_decay=` in chapter 10's optimizers, `AdamW` |
| **data augmentation** | shows the model transformed copies of its data (shifted, flipped), teaching it what does *not* change the label | CPU time per batch, every epoch | chapter 11's transforms; a shift-and-flip written out below |
| **early stopping** | stops when the validation loss stops improving and keeps the best weights | one copy of the weights; it *saves* epochs | chapter 12's `Trainer(early_stopping_patience=...)` |

We build dropout as a `Module` from Tensor operations only, so its gradient
comes from chapter 09's `Mul` rule with nothing new; we show with a
measurement why Adam needs *decoupled* weight decay (AdamW) while plain SGD
does not; and at the end we take an overfitting model and apply each
defence in turn, on the same data, with the same budget, and compare what
each one buys and what it costs.
"""

# %% [markdown]
r"""
## Background

### Capacity, data, and the gap

The shapes MLP of chapter 12 has about 9,000 parameters. Trained on 500
images, it has about seventeen parameters per training image: enough to fit any
labelling of them, including their noise. Gradient descent lowers the
training loss by whatever means are available, and the cheapest means is
often a feature that only exists in the training set (this pixel of noise
happens to be bright in three of the plus images). Such features do not
transfer, so the validation loss rises while the training loss falls. There
are two ways to close the gap: give the model more (or more varied) data, or
make it harder for it to use spurious features. Augmentation is the first;
dropout, weight decay and early stopping are the second.

### Dropout

During training, dropout multiplies each activation by an independent random
mask:

$$y_i = \frac{m_i}{1-p}\,x_i, \qquad m_i \sim \text{Bernoulli}(1-p)$$

Each element is zeroed with probability $p$ and otherwise scaled by
$1/(1-p)$, so its expectation is unchanged: $\mathbb{E}[y_i] = x_i$. This
is **inverted** dropout: the scaling happens during training, so at
evaluation time dropout is simply the identity and inference needs no
change. (The original formulation scaled the weights at test time instead;
every framework now does it this way round.) The variance it adds is
$\text{Var}[y_i] = x_i^2\,p/(1-p)$: with $p = 0.5$, as large as the signal itself.

Why does noise help? A unit that can be switched off at any step cannot
depend on one particular partner to correct its mistakes, so each learns a
feature that is useful on its own. Another reading: each step trains a
different random sub-network, all sharing weights, and evaluation averages
over them. Its gradient needs nothing new: $y = x \cdot c$ with a constant
$c$ has $\partial y / \partial x = c$, the same mask, which chapter 09's
`Mul` rule already computes.

Cost: one random number per activation element per training step, and the
mask, one more activation-sized array, kept until backward.

### Weight decay: an L2 penalty, and why Adam needs it decoupled

Adding $\frac{\lambda}{2}\lVert w\rVert^2$ to the loss adds $\lambda w$ to
every gradient. For SGD with learning rate $\eta$, the update becomes

$$w \leftarrow w - \eta\,(g + \lambda w) = (1 - \eta\lambda)\,w - \eta\,g$$

so every step shrinks each weight by the factor $(1 - \eta\lambda)$ before
applying the gradient: *weight decay*. For SGD the penalty and the decay are
the same thing.

Adam divides each coordinate's step by a running estimate of its gradient's
magnitude, $\sqrt{\hat v}$ (chapter 10). If the penalty's $\lambda w$ is part
of the gradient, it is divided too: weights with large, noisy gradients are
hardly decayed, weights with small gradients are decayed hard. In the
extreme of no loss gradient at all, the gradient *is* $\lambda w$; Adam's
step $\hat m/\sqrt{\hat v}$ does not change when every gradient is
multiplied by the same constant, so $\lambda$ cancels and the weight decays
at a speed set by $\eta$ alone, *whatever $\lambda$ is*. Loshchilov and Hutter's **AdamW** (2019) takes the decay out
of the gradient and applies it directly, $w \leftarrow w - \eta\lambda w -
\eta\,\hat m/(\sqrt{\hat v}+\epsilon)$, so that every weight decays at the
same relative rate, as with SGD. We will measure the difference.

Cost: one multiply-add per parameter per step, negligible next to a
forward pass.

### Data augmentation

If the label of an image does not change when it is shifted by a pixel or
mirrored, then shifted and mirrored copies are free, correctly labelled
training data. Applying a random transformation to every batch, every epoch,
means the model never sees exactly the same image twice, and it learns the
invariance instead of memorising positions. The transformations must
respect the task: for our glyphs, shifts and flips preserve every label, but
a 90° rotation turns a horizontal bar into a vertical one, so rotating
*changes* labels, and training on it teaches the model something false. We
will measure that too.

Cost: CPU work per batch (here a gather of shifted windows and two
flips); on real image pipelines, decoding and augmenting is often the
bottleneck of training.

### Early stopping

Chapter 12's `Trainer` already stops after `patience` epochs without a new
best validation loss and restores the best weights. It is a regulariser in
its own right: a network starts near small weights and grows them as
training proceeds, so stopping early limits how far it gets. For a
quadratic loss and gradient descent, stopping after $t$ steps behaves
approximately like an L2 penalty with $\lambda \approx 1/(\eta t)$. Unlike the
others it saves compute instead of spending it.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.regularization

# %% [markdown]
"""
## Implementation

### What the experiments train with

The experiments use chapter 05's `CrossEntropyLoss`, chapter 10's `SGD`,
`Adam` and `AdamW`, chapter 11's `DataLoader` and chapter 12's `Trainer`.
The next cell imports them; for the first three chapters it also holds a
minimal version with the same interface, used only when the package it runs
against lacks that chapter, so that this chapter runs on its own.
"""

# %%
import json
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, Parameter, ReLU, Sequential
from tinytorch.nn.functional import log_softmax
from tinytorch.training import Trainer, evaluate_model

from tinytorch.nn import CrossEntropyLoss

from tinytorch.optim import SGD, Adam, AdamW

from tinytorch.data import DataLoader, TensorDataset

print("loss:", CrossEntropyLoss.__module__, "| optimizers:", SGD.__module__, "| loader:", DataLoader.__module__)

# %% [markdown]
"""
### Dropout, the function

`dropout(x, p, training)` draws one uniform number per element from
tinytorch's generator (chapter 04's `init.generator()`, which `manual_seed`
resets and chapter 12's checkpoints save), keeps the elements whose number
is at least `p` (probability `1 - p`), and multiplies `x` by the mask
`keep / (1 - p)`, built as a constant Tensor. That multiplication is the only
Tensor operation, so the output's graph is one `Mul` node and the gradient
with respect to `x` is the mask itself. We draw the uniform numbers in
float32, which is enough resolution for a probability and, as the systems
analysis measures, cheaper than NumPy's default float64.

Three edge cases follow PyTorch: `training=False` or `p = 0` return `x`
itself (no copy, no graph node); `p = 1` drops everything and returns zeros
(still connected to the graph, so the gradient is zero rather than missing);
a `p` outside `[0, 1]` is an error.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_dropout", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn import init
from tinytorch.nn.module import Module


def _probability(p, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p).

    Every element keeps its expectation, so with training=False this is the identity.
    The mask comes from tinytorch's generator (manual_seed makes it repeatable).

    Args:
        x: a floating-point Tensor of any shape (or an array, wrapped into one).
        p: the probability of zeroing an element, checked with `_probability(p, "dropout")`.
        training: False makes dropout the identity.
    Returns:
        A Tensor of x's shape and dtype: x itself when training is False or p == 0, else x * mask.
    """
    # 1. Check p, wrap x, and refuse an integer dtype with a TypeError (dropout scales by 1/(1-p)).
    # 2. Edge cases first: not training or p == 0 -> return x itself; p == 1 -> x * 0.0 (zeros, still in the graph).
    # 3. Draw uniforms of x.shape from init.generator().random(..., dtype=np.float32); keep where u >= p.
    # 4. mask = keep * 1/(1-p) in x's dtype (not float64, or the output's dtype changes); return x * Tensor(mask).
    # Pitfall: build the mask as a constant and multiply once, so chapter 09's Mul rule gives the gradient.
    ### BEGIN SOLUTION
    p = _probability(p, "dropout")
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"dropout needs a floating-point tensor, not {x.dtype}; convert it with .float()")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0                                   # everything dropped: zeros, gradient zero
    keep = init.generator().random(x.shape, dtype=np.float32) >= p      # True with probability 1 - p
    mask = keep * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)            # 0 or 1/(1-p), in x's dtype
    return x * Tensor(mask)                              # one Mul: its backward multiplies by the mask
    ### END SOLUTION


# %% [markdown]
"""
### Unit test: dropout

What must hold, and why each matters:

- in training mode about a fraction `p` of the elements is zero, and every
  survivor equals `x / (1 - p)` *exactly* (a wrong scale would shift every
  activation at evaluation time, when no scaling happens);
- the mean over many elements stays at the input's value (expectation
  preserved), within a tolerance of five standard deviations of the sampling
  noise, so the test fails on a real bias but practically never by chance;
- the gradient is the mask: for `x` of ones, `x.grad` equals the output;
- evaluation mode and `p = 0` return the input itself; `p = 1` returns zeros;
- the same seed gives the same mask; `p` outside `[0, 1]` raises.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_dropout", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_dropout():
    p, shape = 0.3, (400, 250)                                  # 100,000 elements
    manual_seed(0)
    x = Tensor(np.ones(shape, dtype=np.float32), requires_grad=True)
    y = dropout(x, p)
    zeros = float(np.mean(y.data == 0))
    sigma = np.sqrt(p * (1 - p) / y.data.size)                  # std of the fraction of zeros
    assert abs(zeros - p) < 5 * sigma, f"{zeros:.4f} of the elements are zero, expected {p} ± {5 * sigma:.4f}"
    survivors = y.data[y.data != 0]
    assert np.all(survivors == np.float32(1 / (1 - p))), "survivors must be scaled by exactly 1/(1-p)"
    mean_sigma = np.sqrt(p / (1 - p) / y.data.size)             # std of the mean of y
    assert abs(y.data.mean() - 1.0) < 5 * mean_sigma, f"mean {y.data.mean():.4f}: dropout must keep the expectation"
    y.sum().backward()
    assert np.array_equal(x.grad.data, y.data), "the gradient of dropout is its mask"

    assert dropout(x, p, training=False) is x and dropout(x, 0.0) is x, "eval mode and p=0 return the input"
    assert not np.any(dropout(x, 1.0).data), "p=1 drops every element"
    ### BEGIN HIDDEN TESTS
    manual_seed(5)
    a = dropout(x, 0.5).data
    manual_seed(5)
    assert np.array_equal(a, dropout(x, 0.5).data), "the same seed must give the same mask"
    ### END HIDDEN TESTS
    for bad in (-0.1, 1.5):
        try:
            dropout(x, bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"dropout accepted p={bad}")
    print(f"dropout: {zeros:.4f} zeroed (p={p}), survivors x{1 / (1 - p):.4f}, mean {y.data.mean():.4f}: OK")


test_unit_dropout()

# %% [markdown]
"""
### Dropout, the layer

As a `Module`, dropout reads the `training` flag that chapter 04's
`train()` and `eval()` set on every submodule: a model with dropout layers
needs nothing more than `model.eval()` before evaluation, which chapter 12's
`evaluate_model` and `Trainer` already call. It has no parameters and no
buffers, so it adds nothing to a `state_dict` or a checkpoint. (PyTorch's
`Dropout` also takes `inplace=True`, which overwrites the input to save
memory; tinytorch's tensors are never modified in place by operations, so it
has no such option.) The layer is given: its `forward` is one call of your
`dropout` with the layer's own `p` and `training` flag, so the test below
checks your function once more, through the layer.
"""

# %%
#| export
class Dropout(Module):
    """Dropout as a layer: active in train() mode, the identity in eval() mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _probability(p, "Dropout")

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# %% [markdown]
"""
### Unit test: the Dropout layer

A network with a dropout layer must compute a *different* function on each
call while training and exactly the dropout-free function in eval mode (the
same weights without the layer); it must own no parameters; and a bad `p`
must be refused when the layer is built, not at the first forward pass.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_dropout_layer", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_dropout_layer():
    manual_seed(0)
    body = [Linear(8, 16), ReLU()]
    head = Linear(16, 3)
    with_dropout = Sequential(*body, Dropout(0.5), head)
    without = Sequential(*body, head)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
    assert not np.array_equal(with_dropout(x).data, with_dropout(x).data), "in training mode each call draws a new mask"
    with_dropout.eval()
    assert np.array_equal(with_dropout(x).data, without(x).data), "in eval mode dropout must be the identity"
    assert len(list(Dropout(0.2).parameters())) == 0 and repr(Dropout(0.2)) == "Dropout(p=0.2)"
    try:
        Dropout(2)
    except ValueError:
        pass
    else:
        raise AssertionError("Dropout(2) was accepted")
    print("Dropout layer: train/eval behaviour, no parameters: OK")


test_unit_dropout_layer()

# %% [markdown]
"""
### Weight decay as a penalty: `l2_penalty`

Chapter 10's optimizers take `weight_decay=` and apply it inside `step()`.
The penalty form is still worth having, for two reasons: it lets you decay
only *some* parameters (common practice exempts biases and normalisation
gains, whose size carries no risk of overfitting), and it makes the
equivalence with SGD's `weight_decay` something we can test rather than
assert. `l2_penalty(parameters, weight_decay)` returns
`weight_decay / 2 · Σ‖p‖²` built from Tensor operations, so
`loss + l2_penalty(...)` backpropagates `weight_decay · p` into every `p`.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_l2_penalty", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def l2_penalty(parameters, weight_decay: float) -> Tensor:
    """weight_decay/2 · Σ‖p‖² over the given parameters: add it to the loss for L2 regularisation.

    Its gradient is weight_decay · p for each p, exactly what SGD(weight_decay=...) adds.
    Pass only the parameters to decay, e.g. the weights but not the biases.

    Args:
        parameters: an iterable of Parameters (a generator such as model.parameters() is fine).
        weight_decay: λ >= 0.
    Returns:
        A scalar Tensor in the graph, so loss + l2_penalty(...) backpropagates λ·p into every p.
    """
    # Turn `parameters` into a list first: a generator can be read only once. Refuse an empty
    # list and a negative weight_decay with a ValueError that says what to pass instead.
    # Build the sum from Tensor operations ((p * p).sum(), then +), never from p.data, or no
    # gradient reaches the parameters. Multiply by weight_decay / 2 once at the end.
    ### BEGIN SOLUTION
    params = list(parameters)
    if not params:
        raise ValueError("l2_penalty: no parameters given; pass e.g. model.parameters()")
    if weight_decay < 0:
        raise ValueError(f"l2_penalty: weight_decay must be >= 0, not {weight_decay}")
    total = (params[0] * params[0]).sum()
    for p in params[1:]:
        total = total + (p * p).sum()
    return total * (weight_decay / 2)
    ### END SOLUTION


# %% [markdown]
"""
### Unit test: l2_penalty

The penalty's value must be `λ/2 · Σ p²` and its gradient `λ · p`. Then the
equivalence the background derived: one SGD step on `loss + l2_penalty(λ)`
must give the same weights as one step of `SGD(weight_decay=λ)` on the loss
alone (to float32 rounding), and both must differ from a step with no decay.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_l2_penalty", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_l2_penalty():
    w = Parameter(np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32))
    b = Parameter(np.array([4.0, 0.0], dtype=np.float32))
    penalty = l2_penalty([w, b], 0.1)
    assert np.isclose(penalty.item(), 0.05 * (1 + 4 + 0.25 + 9 + 16)), penalty.item()
    penalty.backward()
    assert np.allclose(w.grad.data, 0.1 * w.data) and np.allclose(b.grad.data, 0.1 * b.data), "gradient must be λ·p"

    X = Tensor(np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32))
    y = np.random.default_rng(2).integers(0, 3, 16)
    loss_fn = CrossEntropyLoss()
    results = {}
    for name, in_loss, in_optimizer in (("penalty", 0.1, 0.0), ("weight_decay", 0.0, 0.1), ("none", 0.0, 0.0)):
        manual_seed(0)
        model = Sequential(Linear(4, 8), ReLU(), Linear(8, 3))
        optimizer = SGD(model.parameters(), lr=0.5, weight_decay=in_optimizer)
        loss = loss_fn(model(X), y)
        if in_loss:
            loss = loss + l2_penalty(model.parameters(), in_loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        results[name] = model.state_dict()
    for key in results["none"]:
        assert np.allclose(results["penalty"][key], results["weight_decay"][key], rtol=1e-6, atol=1e-7), key
    assert not np.allclose(results["penalty"]["0.weight"], results["none"]["0.weight"])
    print("l2_penalty: value, gradient λ·p, and SGD(weight_decay) equivalence: OK")


test_unit_l2_penalty()

# %% [markdown]
"""
### Why AdamW decouples the decay: a measurement

The background claimed that Adam, with the decay inside the gradient,
ignores `λ` for a weight that receives no gradient from the loss. Here is
the cleanest possible test: one weight vector starting at 1, a loss whose
gradient is zero (`(w * 0).sum()`), and 300 steps at learning rate 0.01 with
`λ = 0.001` and `λ = 0.1`. With SGD and with AdamW each step multiplies
`w` by `1 - ηλ`, so `λ` sets the speed of the decay. With Adam's L2 form
the gradient is `λw`, and `λ` cancels between `m̂` and `√v̂`: the first step
is `η·sign(w)`, and every later one is the same for both values of `λ`, as
long as `λw` stays large next to Adam's `ε = 1e-8`.
"""

# %%
def decay_trajectory(make_optimizer, weight_decay, steps=300, lr=0.01):
    w = Parameter(np.ones(4, dtype=np.float32))
    optimizer = make_optimizer([w], lr, weight_decay)
    trajectory = [1.0]
    for _ in range(steps):
        loss = (w * 0.0).sum()                               # no gradient from the data at all
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trajectory.append(float(np.abs(w.data).mean()))
    return trajectory


optimizers = {
    "SGD, weight_decay": lambda params, lr, wd: SGD(params, lr=lr, weight_decay=wd),
    "Adam, weight_decay (L2 in the gradient)": lambda params, lr, wd: Adam(params, lr=lr, weight_decay=wd),
    "AdamW (decoupled)": lambda params, lr, wd: AdamW(params, lr=lr, weight_decay=wd),
}
trajectories = {(name, wd): decay_trajectory(make, wd) for name, make in optimizers.items() for wd in (1e-3, 1e-1)}
print(f"{'optimizer':<42}{'|w| after 300 steps, λ=0.001':>30}{'λ=0.1':>10}{'predicted (1-ηλ)^300':>24}")
for name in optimizers:
    predicted = "" if name.startswith("Adam,") else f"{(1 - 0.01 * 1e-3) ** 300:.4f} / {(1 - 0.01 * 0.1) ** 300:.4f}"
    print(f"{name:<42}{trajectories[(name, 1e-3)][-1]:>30.4f}{trajectories[(name, 1e-1)][-1]:>10.4f}{predicted:>24}")
adam = "Adam, weight_decay (L2 in the gradient)"
assert np.max(np.abs(np.subtract(trajectories[(adam, 1e-3)], trajectories[(adam, 1e-1)]))) < 1e-4, \
    "the text says λ cancels in Adam: the two curves agree to four decimals at every step"
assert trajectories[(adam, 1e-1)][-1] < 0.01, "the text says Adam's L2 form drives the weight to zero in 300 steps"
for name in ("SGD, weight_decay", "AdamW (decoupled)"):
    for wd in (1e-3, 1e-1):
        assert np.isclose(trajectories[(name, wd)][-1], (1 - 0.01 * wd) ** 300, rtol=1e-4), (name, wd)

fig, ax = plt.subplots(figsize=(7, 3.5))
for (name, wd), trajectory in trajectories.items():
    ax.plot(trajectory, linestyle="-" if wd == 1e-1 else ":", label=f"{name}, λ={wd:g}")
ax.set(xlabel="step", ylabel="|w|", title="Weight decay alone, no gradient from the loss (η = 0.01)")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
"""
The two Adam curves lie on top of each other (the cell checks that they
agree to four decimals at every step): a hundredfold change
of the decay coefficient changed nothing, and both drive the weight to zero
within a few hundred steps, far faster than either `λ` asked for. SGD and AdamW decay
exponentially, at the rate `λ` asks for, and agree with the prediction
`(1 - ηλ)^300`. Real weights also receive a loss gradient, and then Adam's
L2 form decays each weight by an amount that depends on its gradient
history (weights with large gradients barely decay), which is why, for
Adam-type optimizers, `λ` is not a regularisation strength you can reason
about, and why transformer training uses AdamW.

### Data augmentation: shift and flip

Our glyphs keep their label when shifted or mirrored. `random_shift_and_flip`
applies both to a batch of flattened 8×8 images at once: it pads each image
with zeros, cuts an 8×8 window at a random offset of up to `max_shift`
pixels (one fancy-indexing gather for the whole batch, no Python loop over
images), and mirrors a random half left-right and another random half
top-bottom. It draws from tinytorch's generator, so `manual_seed` makes it
repeatable and chapter 12's checkpoints capture its state. This is the same
operation as chapter 11's `RandomCrop(8, padding=2)` followed by random
flips, written out on the shape of this chapter's data; it is not exported,
because the package's transforms live in `tinytorch.data`.

`Augmented` wraps any loader and transforms each batch's inputs, so the
Trainer sees an ordinary loader. A new random transformation is drawn for
every batch of every epoch.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_random_shift_and_flip", "locked": false, "schema_version": 3, "solution": true, "task": false}
def random_shift_and_flip(images: Tensor, max_shift: int = 2, size: int = 8) -> Tensor:
    """Shift each image by up to max_shift pixels (zeros fill in) and flip it at random: (N, size²) -> (N, size²).

    Args:
        images: a Tensor (or array) of N flattened size x size images.
        max_shift: the largest shift, in pixels, in each direction.
    Returns:
        A new Tensor of shape (N, size * size), the input's dtype; the input is not modified.
    """
    # 1. g = init.generator() (every random draw from it, so manual_seed repeats the batch);
    #    reshape to (N, size, size) and copy into a zero array padded by max_shift on every side.
    # 2. Draw a window corner (top, left) in 0..2*max_shift per image; build row and column index
    #    arrays of shape (N, size) and gather all N windows with one fancy index: (N, size, size).
    # 3. Mirror a random half left-right ([:, :, ::-1]) and another random half top-bottom.
    # Pitfall: no Python loop over images; and reshape back to (N, size * size) at the end.
    ### BEGIN SOLUTION
    g = init.generator()
    x = np.asarray(images.data if isinstance(images, Tensor) else images).reshape(-1, size, size)   # (N, H, W)
    n, pad = len(x), max_shift
    padded = np.zeros((n, size + 2 * pad, size + 2 * pad), dtype=x.dtype)                      # (N, H+2p, W+2p)
    padded[:, pad:pad + size, pad:pad + size] = x
    top, left = g.integers(0, 2 * pad + 1, (2, n))                     # window corners: shift in -pad..pad
    rows = top[:, None] + np.arange(size)                              # (N, H)
    cols = left[:, None] + np.arange(size)                             # (N, W)
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]            # (N, H, W)
    mirror = g.random(n) < 0.5
    out[mirror] = out[mirror][:, :, ::-1]                              # left-right
    upside = g.random(n) < 0.5
    out[upside] = out[upside][:, ::-1, :]                              # top-bottom
    return Tensor(out.reshape(n, size * size))
    ### END SOLUTION


class Augmented:
    """A loader whose batches' inputs pass through a random transform (a new draw every batch)."""

    def __init__(self, loader, transform):
        self.loader, self.transform = loader, transform

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for inputs, targets in self.loader:
            yield self.transform(inputs), targets


# %% [markdown]
"""
### A problem that overfits, and a test of the augmentation

The data is chapter 12's: five 3×3 glyphs (plus, cross, ring, horizontal
bar, vertical bar) at random positions in 8×8 images with Gaussian noise.
All five glyphs are symmetric under both flips, which is what makes flips a
label-preserving augmentation here.

The augmentation test uses noise-free images with the glyph placed in the
middle, so that no shift of up to two pixels can push it out of the frame.
Then every transformed image must contain exactly the same glyph (the same
nine pixel values, summing to the same total) at a position a two-pixel
shift and a mirror can reach, shapes must be preserved, and the same seed
must give the same batch.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_augmentation", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
CLASS_NAMES = ["plus", "cross", "ring", "h-bar", "v-bar"]
GLYPHS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[1, 0, 1], [0, 1, 0], [1, 0, 1]],
                   [[1, 1, 1], [1, 0, 1], [1, 1, 1]],
                   [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
                   [[0, 1, 0], [0, 1, 0], [0, 1, 0]]], dtype=np.float32)


def make_shapes(n: int, noise: float = 0.25, seed: int = 0, size: int = 8, center: bool = False):
    """n flattened size×size images, each one glyph (at a random position, or centred) plus N(0, noise²) pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(GLYPHS), n)
    images = rng.normal(0.0, noise, (n, size, size)).astype(np.float32)
    rows, cols = rng.integers(0, size - 2, n), rng.integers(0, size - 2, n)
    if center:
        rows[:], cols[:] = (size - 3) // 2, (size - 3) // 2
    for i in range(n):
        images[i, rows[i]:rows[i] + 3, cols[i]:cols[i] + 3] += GLYPHS[labels[i]]
    return images.reshape(n, size * size), labels.astype(np.int64)


def test_unit_augmentation():
    X, y = make_shapes(200, noise=0.0, seed=0, center=True)            # glyph at rows/cols 2..4
    manual_seed(1)
    out = random_shift_and_flip(Tensor(X)).data
    assert out.shape == X.shape and out.dtype == X.dtype
    assert np.allclose(out.sum(axis=1), X.sum(axis=1)), "a shift within the padding must not lose pixels"
    images = out.reshape(-1, 8, 8)
    for image, label in zip(images, y):
        lit_rows, lit_cols = np.nonzero(image)
        top, left = lit_rows.min(), lit_cols.min()
        if label == 3:
            top -= 1                                                   # an h-bar's top row is empty
        if label == 4:
            left -= 1                                                  # a v-bar's left column is empty
        # a shift moves the glyph by up to 2; mirroring the 8-pixel frame maps position 2 to 3
        assert 0 <= top <= 5 and 0 <= left <= 5 and abs(top - 2.5) <= 2.5, "moved further than a shift and a mirror can"
        assert np.array_equal(image[top:top + 3, left:left + 3], GLYPHS[label]), "the glyph changed: the label would be wrong"
    moved = np.mean([not np.array_equal(a, b) for a, b in zip(out, X)])
    assert moved > 0.5, f"only {moved:.0%} of the images changed"
    manual_seed(1)
    assert np.array_equal(random_shift_and_flip(Tensor(X)).data, out), "the same seed must give the same batch"
    print(f"augmentation: {moved:.0%} of images changed, every glyph intact and inside the frame: OK")


test_unit_augmentation()

examples, example_labels = make_shapes(6, seed=3)
manual_seed(0)
shifted = random_shift_and_flip(Tensor(np.repeat(examples[:1], 5, axis=0))).data
fig, axes = plt.subplots(1, 6, figsize=(7, 1.5))
for ax, image, title in zip(axes, [examples[0], *shifted], ["original"] + ["augmented"] * 5):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
"""
## Systems analysis

Everything below is measured while this page runs. Timings on a shared
machine are noisy, and background load only ever makes an operation
slower, so each number is the fastest of seven repeats, and the compared
operations take turns so that a burst of load hits them alike. The text
quotes no timing of its own: where it states a size or a ratio, the cell
beside it prints the number and checks a range wide enough for a busy
machine.

### What dropout costs: time

Dropout's arithmetic is trivial (one comparison and one multiplication per
element). Its real cost is the random numbers. We time, for a `(128, 1024)`
activation, drawing the uniform numbers in float64 (NumPy's default) and in
float32, the whole `dropout` call, and, for scale, the `Linear(1024, 1024)`
forward pass that would produce that activation.
"""


# %%
def best_seconds(*fns, repeats=7, number=5):
    """Seconds per call of each fn in its fastest repeat; the fns take turns within each repeat.

    Background load only ever slows a repeat down, so the fastest one is the least disturbed.
    """
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            record.append((time.perf_counter() - start) / number)
    return [min(record) for record in times]


manual_seed(0)
h = Tensor(np.random.default_rng(0).standard_normal((128, 1024)).astype(np.float32))
layer = Linear(1024, 1024)
g = init.generator()
t64, t32, t_dropout, t_linear = best_seconds(lambda: g.random(h.shape), lambda: g.random(h.shape, dtype=np.float32),
                                              lambda: dropout(h, 0.5), lambda: layer(h))
print(f"activation (128, 1024): {h.numel():,} elements")
for name, t in [("uniform draws, float64", t64), ("uniform draws, float32", t32),
                ("dropout(h, 0.5), whole call", t_dropout), ("Linear(1024, 1024) forward", t_linear)]:
    print(f"  {name:<30} {t * 1e6:8.0f} µs   {t / h.numel() * 1e9:6.2f} ns per element")
print(f"dropout costs {t_dropout / t_linear:.0%} of the Linear layer that feeds it; the whole call takes "
      f"{t_dropout / t32:.1f}x the time of its float32 draws, which take {t32 / t64:.2f}x the time of float64 draws")
# The text below relies on these, with bands wide enough for a busy machine:
assert 0.3 < t32 / h.numel() * 1e9 < 20, "the text says drawing costs a nanosecond or two per element"
assert t_dropout / t32 < 4, "the text says the dropout call costs little more than its draws"
assert t_dropout / t_linear < 0.5, "the text says dropout is cheap next to the Linear that feeds it"

# %% [markdown]
"""
The random numbers *are* the cost: the whole `dropout` call takes little
more than drawing them (the printed ratio; the cell checks it is under 4×),
drawing costs of the order of a nanosecond or two per element (the cell
checks 0.3 to 20 ns, a band wide enough for a busy machine), and the
comparison and multiplication add comparatively little. Drawing float32
numbers should be somewhat cheaper than float64 (NumPy builds a float32 from
32 random bits and a float64 from 64, and writes half the bytes), which is
why `dropout` asks for float32; the printed ratio shows by how much on your
machine, and on a busy one the two can come out within noise of each other.

Next to the `Linear(1024, 1024)` that produces the activation, dropout is
cheap: the layer does 1,024 multiply-adds for every output element, dropout
one random number. That balance is specific to a CPU running a large matrix
product. On a GPU, matrix products run on dedicated units many times faster
than elementwise work, which is limited by memory bandwidth, so an unfused
dropout can take a noticeable share of a layer's time; this is why PyTorch's
fused attention kernels and its compiler fold dropout into neighbouring
kernels.
"""

# %% [markdown]
"""
### What dropout costs: memory

The graph keeps what backward needs until backward runs (chapter 09). Our
dropout is a `Mul` of `x` and a mask, and `Mul` saves *both* operands,
because in general it needs each to differentiate with respect to the other.
We measure with `tracemalloc` how many bytes the graph holds after the
forward pass of a two-layer block on a batch of 256, with and without a
dropout layer between the two `Linear`s.
"""


# %%
def graph_bytes(model, x) -> int:
    """Bytes allocated by a forward pass that stay alive while its output (and so its graph) is kept."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out = model(x)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del out
    return held


manual_seed(0)
first, second = Linear(1024, 1024), Linear(1024, 1024)
x = Tensor(np.random.default_rng(1).standard_normal((256, 1024)).astype(np.float32))
plain = graph_bytes(Sequential(first, ReLU(), second), x)
with_dropout = graph_bytes(Sequential(first, ReLU(), Dropout(0.5), second), x)
activation = 256 * 1024 * 4
print(f"one (256, 1024) float32 activation: {activation / 1e6:.2f} MB")
print(f"graph of Linear-ReLU-Linear:         {plain / 1e6:6.2f} MB")
print(f"with Dropout between them:           {with_dropout / 1e6:6.2f} MB "
      f"(+{(with_dropout - plain) / activation:.1f} activations)")
print(f"a 1-byte boolean mask instead would be {activation / 4 / 1e6:.2f} MB")
# Chapter 04's Linear with its fused fast path keeps no separate product: 3.25 arrays; composed, 5.25.
assert min(abs(plain / activation - 3.25), abs(plain / activation - 5.25)) < 0.4, \
    f"the text says 3.25 activations (fused Linear) or 5.25 (composed); measured {plain / activation:.2f}"
assert 1.8 <= (with_dropout - plain) / activation <= 2.2, "the text says dropout adds two activation-sized arrays"

# %% [markdown]
"""
Without dropout, the graph of Linear-ReLU-Linear holds about three and a
quarter activation-sized arrays: each `Linear`'s output, ReLU's one-byte mask
(a quarter) and its output. That is chapter 04's `Linear` taking its fused
fast path, `LinearFused`, which adds the bias into the product's own array; a
`Linear` that composes `x @ W.T + b` also keeps each product's output, five
and a quarter in all (the cell accepts either). Chapter 09 counted what a
graph keeps in the same way. Dropout adds two more: its float32 mask, which `Mul` saved for the
backward pass, and its own output, a new array that the second `Linear`
saves as its input. For a network whose training memory is dominated by
activations, a dropout after every layer costs a large share more.

PyTorch keeps the mask as one byte per element, a quarter of our float32
mask. We could do the same only by giving dropout its own primitive with its
own backward rule (save a boolean mask, multiply by `1/(1-p)` in backward),
instead of composing it from `Mul`. This chapter keeps the composition,
which needs no new backward rule and is correct by construction; chapter 14
turns to fused kernels of this kind.
"""

# %% [markdown]
"""
### What augmentation costs

Augmentation runs on every batch of every epoch, on the CPU, before the
model sees the data. We time `random_shift_and_flip` on batches of 32 and
512 images against a full training step (forward, backward, optimizer) of the
shapes MLP on the same batch.
"""

# %%
def shapes_mlp(p: float = 0.0, hidden: int = 64) -> Sequential:
    """64 -> hidden -> hidden -> 5 with ReLU, and Dropout(p) after each hidden layer when p > 0."""
    drop = [Dropout(p)] if p > 0 else []
    return Sequential(Linear(64, hidden), ReLU(), *drop, Linear(hidden, hidden), ReLU(), *drop, Linear(hidden, 5))


loss_fn = CrossEntropyLoss()
rows = []
for batch in (32, 512):
    X, y = make_shapes(batch, seed=4)
    images = Tensor(X)
    manual_seed(0)
    model = shapes_mlp()
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(inputs):
        loss = loss_fn(model(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    t_aug, t_step = best_seconds(lambda: random_shift_and_flip(images), lambda: step(images), repeats=9)
    rows.append((batch, t_aug, t_step))
print(f"{'batch':>6}{'augment µs':>12}{'train step µs':>15}{'augment share of the two':>26}{'augment µs/image':>18}")
for batch, t_aug, t_step in rows:
    print(f"{batch:>6}{t_aug * 1e6:>12.0f}{t_step * 1e6:>15.0f}{t_aug / (t_aug + t_step):>26.0%}{t_aug / batch * 1e6:>18.2f}")
shares = [t_aug / (t_aug + t_step) for _, t_aug, t_step in rows]
per_image = [t_aug / batch * 1e6 for batch, t_aug, _ in rows]
print(f"augmentation took {min(shares):.0%} to {max(shares):.0%} of augment + step, "
      f"{min(per_image):.2f} to {max(per_image):.2f} µs per image")
assert all(0.01 <= x <= 0.5 for x in shares), "the text says augmentation is a visible share, not the whole step"
assert all(0.05 <= x <= 10 for x in per_image), "the text says a fraction of a microsecond to a few per image"

# %% [markdown]
"""
Augmentation is a visible share of the work even for this trivial
transformation (the printed range; the cell checks it lies between 1% and
50%, and it varies with the machine's load): the model is so small that a
training step costs only a few times more than the gather and flips of its
input, which take a fraction of a microsecond to a few microseconds per
image. For real image models the model's
cost per image is far larger, but so is the augmentation's: decoding a JPEG
and cropping, flipping and colour-jittering it takes on the order of a
millisecond of CPU per image. That is why PyTorch's `DataLoader` runs
augmentation in worker processes in parallel with training, and why a slow
input pipeline is one of the first things to check when a GPU is
underused.
"""

# %% [markdown]
"""
## Production context

**Dropout.** `torch.nn.Dropout(p)` and `torch.nn.functional.dropout(x, p,
training)` have the semantics built here, including inverted scaling,
`p = 1` giving zeros and an error outside `[0, 1]`. The implementations
differ where it pays: PyTorch fuses the random draw, comparison and
multiplication into one kernel, and on GPUs draws from a counter-based
generator (Philox), whose numbers can be *regenerated* from a seed and an
offset, which lets fused attention kernels recompute a dropout mask in the
backward pass instead of storing it. Large language model pre-training often
uses no dropout at all: with one pass over trillions of tokens, the model
never sees an example twice, so there is nothing to memorise; fine-tuning on
small data is where dropout returns.

**Weight decay.** Every PyTorch optimizer takes `weight_decay`; for `SGD` and
`Adam` it is the L2 form, for `AdamW` the decoupled one. Transformer recipes
use AdamW with `weight_decay` around 0.01 to 0.1 and put biases and
LayerNorm parameters in a parameter group with `weight_decay=0`: the
`param_groups` mechanism of chapter 10 exists largely for this.

**Augmentation.** `torchvision.transforms.v2` provides `RandomCrop`,
`RandomHorizontalFlip` and learned policies (AutoAugment, RandAugment, and
batch-mixing methods such as MixUp and CutMix, which blend two images and
their labels). Because augmentation costs CPU time per batch, PyTorch's
`DataLoader` runs it in worker processes, and GPU pipelines such as NVIDIA
DALI move decoding and augmentation onto the accelerator. The rule this
chapter measures holds there too: an augmentation must preserve the label,
which is why mirrored images are standard for photographs but not for text
recognition.

**Other regularisers** you will meet: label smoothing
(`CrossEntropyLoss(label_smoothing=0.1)`), which stops a classifier from
pushing its logits to infinity; stochastic depth, which drops whole residual
blocks; and normalisation layers (chapter 08), whose batch statistics add
noise much like dropout does.

**Early stopping** is a callback in Keras and PyTorch Lightning
(`EarlyStopping(monitor="val_loss", patience=...)`), usually combined with
a checkpoint callback that keeps the best weights on disk, as chapter 12's
`save_best` does.
"""

# %% [markdown]
"""
## Integration: curing an overfitting model

Now the experiment this chapter is about. One problem, chosen to overfit:
500 training images of the shapes (noise σ = 0.25), 500 validation images,
1,000 test images. One model, the 64 → 64 → 64 → 5 MLP. One budget: 40
epochs of SGD with momentum (learning rate 0.05, batch 32), chapter 12's
`Trainer`, the same seeds. Then one change at a time:

1. no regularisation (the baseline);
2. dropout, `p = 0.5`, after each hidden layer;
3. weight decay, `SGD(weight_decay=5e-3)`;
4. early stopping, patience 5 (it keeps the best weights);
5. augmentation, random shifts of up to 2 pixels and flips;
6. augmentation that also rotates by multiples of 90°, which does **not**
   preserve the labels (a rotated horizontal bar is a vertical bar).

For each we record the curves, and at the end evaluate the weights the run
ended with on the test set.
"""

# %%
X_train, y_train = make_shapes(500, seed=1)
X_val, y_val = make_shapes(500, seed=2)
X_test, y_test = make_shapes(1000, seed=3)
val = DataLoader(TensorDataset(Tensor(X_val), Tensor(y_val)), batch_size=500)
test = DataLoader(TensorDataset(Tensor(X_test), Tensor(y_test)), batch_size=500)


def random_shift_flip_rotate(images: Tensor) -> Tensor:
    """Shift and flip, then rotate each image by a random multiple of 90°: this changes bar labels."""
    x = random_shift_and_flip(images).data.reshape(-1, 8, 8)
    turns = init.generator().integers(0, 4, len(x))
    for k in (1, 2, 3):
        x[turns == k] = np.rot90(x[turns == k], k, axes=(1, 2))
    return Tensor(x.reshape(-1, 64))


EPOCHS = 40
experiments = {
    "none": {},
    "dropout 0.5": {"p": 0.5},
    "weight decay 5e-3": {"weight_decay": 5e-3},
    "early stopping": {"patience": 5},
    "shift + flip": {"transform": random_shift_and_flip},
    "shift + flip + rotate": {"transform": random_shift_flip_rotate},
}
results = {}
for name, options in experiments.items():
    manual_seed(0)
    model = shapes_mlp(options.get("p", 0.0))
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=options.get("weight_decay", 0.0))
    train = DataLoader(TensorDataset(Tensor(X_train), Tensor(y_train)), batch_size=32, shuffle=True, seed=3)
    if "transform" in options:
        train = Augmented(train, options["transform"])
    trainer = Trainer(model, optimizer, CrossEntropyLoss(), early_stopping_patience=options.get("patience"),
                      seed=1, progress=False)
    start = time.perf_counter()
    history = trainer.fit(train, val, epochs=EPOCHS)
    seconds = time.perf_counter() - start
    results[name] = (history, evaluate_model(model, test, CrossEntropyLoss()), seconds)

print(f"{'':<22}{'epochs':>7}{'train acc':>10}{'val acc':>9}{'val loss: best (epoch)':>24}{'last':>7}"
      f"{'test acc':>10}{'seconds':>9}")
print(f"{'':<22}{'':>7}{'(last epoch run)':>19}{'':>31}{'(kept weights)':>17}")
for name, (history, test_result, seconds) in results.items():
    best_epoch, best_loss = history.best("val_loss")
    print(f"{name:<22}{history.epochs:>7}{history['train_accuracy'][-1]:>10.3f}{history['val_accuracy'][-1]:>9.3f}"
          f"{best_loss:>17.3f} ({best_epoch:>2}){history['val_loss'][-1]:>7.3f}{test_result['accuracy']:>10.3f}"
          f"{seconds:>9.2f}")
n_params = sum(p.numel() for p in shapes_mlp().parameters())
baseline = results["none"][0]
first_perfect = next(e for e, a in zip(baseline["epoch"], baseline["train_accuracy"]) if a == 1.0)
print(f"\n{n_params:,} parameters, {n_params / len(X_train):.1f} per training image; the baseline first fits its "
      f"training set perfectly at epoch {first_perfect}")

# What the text below says about this (seeded, repeatable) run, checked:
test_acc = {name: result[1]["accuracy"] for name, result in results.items()}
assert first_perfect <= 20 and baseline.best("val_loss")[0] <= 15, "baseline: fits by ~15 epochs, best loss near 10"
assert baseline["val_loss"][-1] > 1.3 * baseline.best("val_loss")[1], "baseline: validation loss climbs well above its minimum"
assert results["dropout 0.5"][0]["train_accuracy"][-1] < 0.95, "dropout holds the training accuracy down"
assert results["weight decay 5e-3"][0]["train_accuracy"][-1] > 0.99, "weight decay still fits the training set"
assert results["early stopping"][0].epochs < EPOCHS / 2, "early stopping ends before half the budget"
assert results["early stopping"][0].best("val_loss") == baseline.best("val_loss"), "it keeps the baseline's best"
assert test_acc["shift + flip"] > max(test_acc[n] for n in ("none", "dropout 0.5", "weight decay 5e-3", "early stopping")) + 0.1
assert test_acc["shift + flip + rotate"] < test_acc["shift + flip"], "rotations make things worse"

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for name, (history, _, _) in results.items():
    line, = left.plot(history["epoch"], history["val_loss"], label=name)
    right.plot(history["epoch"], history["train_accuracy"], ":", color=line.get_color())
    right.plot(history["epoch"], history["val_accuracy"], "-", color=line.get_color(), label=name)
left.set(xlabel="epoch", ylabel="validation loss", title="Validation loss")
left.legend(fontsize=8)
right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy: training (dotted) and validation (solid)")
right.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
"""
Read the table and the curves together. Every run is seeded, so the table
is the same each time the chapter runs; the cell checks each statement
below against it.

- **No regularisation** fits its training set perfectly within the first
  twenty epochs (the printed epoch). Its validation loss is lowest early
  (the epoch in brackets) and then climbs steadily to well above its
  minimum, while its validation accuracy stalls near 50%: the textbook
  picture of overfitting.
- **Dropout** holds the training accuracy down (the noisy network cannot
  memorise as easily) and keeps the validation loss lower for longer, with a
  small gain in accuracy. It narrows the gap mostly from the training side.
- **Weight decay** still lets the model fit its training set perfectly, but
  the validation loss stops rising: with small weights the logits cannot
  grow large, so the model cannot become confidently wrong. Accuracy moves
  a little.
- **Early stopping** ends the run after fewer than half of the 40 epochs
  (its `epochs` column), on the weights with the baseline's best validation
  loss: the same model as the baseline's best, for less than half the
  compute. (Its accuracy columns
  describe the last epoch it ran; the test column evaluates the weights it
  kept.) Its test *accuracy* is lower than the baseline's at epoch 40, the disagreement between loss and
  accuracy chapter 12 noted: the baseline kept gaining a little accuracy
  while its loss grew.
- **Shift and flip augmentation** is in a different class: validation and
  test accuracy far above every other run, and a validation loss still
  falling at epoch 40 (this run would profit from more epochs). Its
  *training* accuracy is below its validation accuracy, because the training
  images are the harder, transformed ones. It is the only defence that gives
  the model information it did not have: that a glyph is the same glyph
  wherever it is and however it is mirrored.
- **Adding rotations** makes things worse than shift and flip alone, for a
  reason the next table shows.

The lesson generalises. Dropout, weight decay and early stopping trade
training fit for a more modest, better-calibrated model; they buy a little
generalisation, at little cost. The best regulariser is more data, and
augmentation is the cheapest way to get more, *if* the transformations
respect what the labels mean.
"""

# %%
print(f"{'per-class test accuracy':<24}" + "".join(f"{c:>8}" for c in CLASS_NAMES))
for name in ("none", "shift + flip", "shift + flip + rotate"):
    print(f"{name:<24}" + "".join(f"{a:>8.2f}" for a in results[name][1]["per_class_accuracy"]))
flip_bars = np.asarray(results["shift + flip"][1]["per_class_accuracy"])[3:]
rotate_bars = np.asarray(results["shift + flip + rotate"][1]["per_class_accuracy"])[3:]
assert rotate_bars.min() < 0.5 * flip_bars.min() and rotate_bars.max() >= flip_bars.min() - 0.05, \
    "the text says one bar class keeps its accuracy and the other collapses"

# %% [markdown]
"""
Plus, cross and ring look the same after a 90° rotation, so for them
rotating only adds variety. The two bars are different: a rotated
horizontal bar *is* a vertical bar. Training on rotated copies teaches the
model that the two glyphs are one shape with two labels, which it can no
longer separate. In the table above it gives most bars of *either*
orientation the same one of the two names, so one bar class keeps its
accuracy while the other collapses to well below chance between the two
(the cell checks that the weaker bar class falls below half its
shift-and-flip accuracy). An augmentation that changes
labels is label noise you add yourself, and no amount of training removes
it.
"""

# %% [markdown]
"""
## Run all the tests

The block below runs every unit test of this chapter again, in order. When the
chapter is run as a script (`python modules/13_regularization/regularization_dev.py`
from the repository root), this block is what checks it.
"""

# %%
if __name__ == "__main__":
    test_unit_dropout()
    test_unit_dropout_layer()
    test_unit_l2_penalty()
    test_unit_augmentation()
    print("All tests of 13_regularization passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Dropout's memory at scale.** You measured two extra activation-sized
arrays per dropout layer. A GPT-style model applies dropout to its
attention probabilities, an array of `batch · heads · T · T` elements per
layer. For batch 8, 12 heads, T = 1024 and 12 layers, how many bytes do
float32 masks take, and how many with 1-byte masks? PyTorch's fused
attention kernels store no mask at all and regenerate it in backward from
the random generator's seed and offset: what does that cost instead, and
why does it require a counter-based generator rather than a sequential
one like the PCG64 behind `init.generator()`?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_dropout_memory_at_scale", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Per layer 8 × 12 × 1024 × 1024 = 100,663,296 ≈ 1.0 × 10⁸
elements; over 12 layers 1.21 × 10⁹. Float32 masks take 4 bytes each:
4.83 GB (4.5 GiB); 1-byte masks 1.21 GB. (Our composition also keeps the
dropout's float32 output for the next matmul, another 4.83 GB.) Regenerating
costs no memory but a second pass of random-number generation in backward:
about 1.2 × 10⁹ more draws per step, arithmetic that is cheap on a GPU next
to storing and re-reading gigabytes. It needs a counter-based generator
(Philox): the value for element *i* is a pure function of (seed, offset + i),
so any thread can recompute any tile's mask, in any order, independently. A
sequential generator's numbers come from a state that advances draw by draw;
reproducing element *i* means replaying (or jumping) the stream from a saved
state in the order it was first drawn, which a kernel that processes tiles in
parallel, and in a different order in backward, cannot do cheaply.

**Rubric (2 points).** 1 point for the element count and both byte totals
(4.8 GB and 1.2 GB, within 10%); 1 point for "recompute costs extra RNG
work, not memory" and for random access by counter as the reason.
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Where augmentation runs.** Our augmentation runs in the training process
between steps. Using your measured augmentation share, at what ratio of
augmentation time to step time does it become the bottleneck, and what
are the alternatives: worker processes, precomputing a fixed number of
augmented copies on disk, moving augmentation onto the accelerator? What
does each cost in memory, disk or variety of the data, and how does each
interact with chapter 12's exact resume, which needs every random draw to
be replayable?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_where_augmentation_runs", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** In the training process the two add: a step costs
t_aug + t_step, so augmentation always slows training by the factor
1 + t_aug / t_step; a share *s* of the total means t_aug / t_step = s / (1 − s)
(for example 12% → 0.14, 5% → 0.05). Run in parallel (workers), it is hidden
as long as t_aug / workers < t_step and becomes the bottleneck when
t_aug / t_step exceeds the number of workers: with one worker, at a ratio of 1.
Alternatives: **worker processes** cost a CPU core and a process's memory each
(a copy or shared view of the dataset, plus a prefetch queue of batches) and
keep full variety; **precomputed copies** cost K times the dataset on disk,
nothing per step, and limit the variety to K views of each image;
**accelerator augmentation** costs device memory and a little device time, no
CPU, full variety. Resume: in-process draws come from tinytorch's generator,
which chapter 12's checkpoint saves, so resume is exact; workers each need
their own seed derived from (base seed, epoch, worker) and a fixed order in
which their batches are consumed, or resume cannot replay them; precomputed
copies are trivially replayable (only the choice of copy per epoch is random);
device augmentation needs the device generator's state in the checkpoint.

**Rubric (2 points).** 1 point for the serial versus parallel cost (additive
in process; bottleneck once t_aug / t_step exceeds the number of workers) with
the student's own share converted to a ratio; 1 point for at least two
alternatives with a correct cost each and a correct statement about resume.
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Weight decay and parameter groups.** The `l2_penalty` test showed the
penalty and SGD's `weight_decay` are the same update; the Adam
measurement showed that Adam's L2 form ignores `λ` for a weight with no
loss gradient. You fine-tune with `Adam(weight_decay=0.01)` applied to
every parameter, biases and LayerNorm gains included. Which parameters
does the L2 form shrink hardest, what happens to a LayerNorm gain that
receives small gradients, and how would you set up AdamW's
`param_groups` instead?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_weight_decay_param_groups", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Adam's step is m̂ / √v̂ of the gradient g + λw. Where the loss
gradient is large, λw is a small part of it and hardly moves the step: those
weights barely decay. Where the loss gradient is small, λw dominates, and the
normalised step approaches η · sign(w) whatever λ is: those parameters shrink
hardest, by up to η per step (our measurement: 1 → 0.0002 in 300 steps of
η = 0.01, for λ = 0.001 and λ = 0.1 alike). A LayerNorm gain starts at 1 and
often gets small gradients, so it is pulled towards 0 at up to η per step
(10⁴ steps at η = 10⁻⁴ can move it by 1): the layer's output scale collapses
unless the loss gradient pushes back, and the decay is strongest exactly
where it was not wanted. With AdamW, decay only the weight matrices:
`AdamW([{"params": matrices, "weight_decay": 0.01}, {"params": biases_and_norm_gains, "weight_decay": 0.0}], lr=...)`,
where `matrices` are the parameters with `ndim >= 2` (Linear, Conv, embedding
weights) and the rest are biases and normalisation gains and shifts.

**Rubric (2 points).** 1 point for "parameters with small loss gradients
(biases, norm gains) shrink hardest, at about η per step, whatever λ" and the
collapse of the gain; 1 point for two parameter groups split by what the
parameter is (matrices decayed, biases and norm parameters at 0) with AdamW.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Regularisation within a budget.** Under the 40-epoch budget the
augmented run was still improving at the end, the others had stopped long
before. Combine augmentation with dropout or weight decay in the
experiment above and predict, then measure: does the combination beat
augmentation alone at 40 epochs, and at 100? With a fixed compute budget,
how would you choose between more epochs with augmentation, a larger
model with dropout, and collecting more data?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_regularisation_budget", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Prediction: augmentation alone is still *under*-fitting at
40 epochs (its training accuracy is below its validation accuracy), so adding
more regularisation should slow it down further, not help. Measured with the
experiment's settings (same seeds, shift and flip in every run; test accuracy):
at 40 epochs shift + flip 0.721, + dropout 0.5 0.525, + dropout 0.2 0.653,
+ weight decay 5e-3 0.554; at 100 epochs 0.830, 0.681, 0.802 and 0.682. The
combinations lose at both budgets; a mild dropout (0.2) nearly catches up
by 100 epochs. Choosing under a fixed budget: while a model under-fits (train
accuracy ≤ validation accuracy, validation loss still falling), spend compute
on more epochs with augmentation, not on more regularisation; a larger model
with dropout pays only when the model is capacity-limited and over-fits;
more (real) data is the best regulariser of all and usually worth more than
either when it can be had, because augmentation only adds the invariances you
wrote down.

**Rubric (2 points).** 1 point for a measured (or well-argued) comparison at
both budgets with the conclusion that extra regularisation hurts an
under-fitting augmented model; 1 point for a budget rule that uses the
train/validation gap to decide, with data first when available.
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

You built and measured the standard defences against overfitting:

- **`dropout(x, p, training)` and `Dropout(p)`** (`tinytorch.nn.regularization`,
  also `tinytorch.nn.Dropout` and `tinytorch.nn.functional.dropout`):
  inverted dropout with PyTorch's semantics (identity in eval mode and for
  `p = 0`, zeros for `p = 1`, an error outside `[0, 1]`), its mask drawn in
  float32 from tinytorch's seeded generator, built from one `Mul`, so its
  gradient is the mask with no new backward rule.
- **`l2_penalty(parameters, weight_decay)`**: `λ/2 · Σ‖p‖²` from Tensor
  operations, for decaying chosen parameters; one SGD step with it equals
  one step of `SGD(weight_decay=λ)`.
- **Decoupled weight decay, measured**: with no loss gradient, SGD and AdamW
  shrink a weight by `(1 - ηλ)` per step as predicted, while Adam's L2 form
  decays it at the same speed for `λ = 0.001` and `λ = 0.1`, because `λ`
  cancels in Adam's normalised step.
- **Augmentation**: a vectorised random shift (pad and gather) and flips for
  a whole batch, and a wrapper that applies it to any loader; a rotation
  that changes labels, to see what a wrong augmentation does.
- **Early stopping in practice**, with chapter 12's `Trainer`.

What you measured: dropout's cost is its random numbers, a nanosecond or two
per element, a small fraction of the layer that feeds it on a CPU, but two
extra activation-sized arrays in the graph; augmentation is a visible share
of a small model's step; and on a problem built to overfit, dropout and
weight decay narrowed the gap modestly and stopped the validation loss
from climbing, early stopping matched the baseline's best validation loss
with less than half the epochs, and label-preserving augmentation beat them
all by a wide margin, while an augmentation that changes labels undid part of
its gain.

Next, chapter 14 turns from what a model learns to how fast its operations
run: naive, vectorised and blocked kernels, memory layout, and fused
operations like the one-byte-mask dropout this chapter left for later.
Checkpoint 13 ("regularization") checks that your dropout, weight decay and
early stopping behave: `tito checkpoint run 13`.
"""
