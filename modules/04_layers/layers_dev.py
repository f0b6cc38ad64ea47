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
# Layers: Module, Parameter, Linear, Sequential

A neural network is a function with millions of numbers inside it. GPT-2 small
keeps 124 million of them in about 150 arrays; a ResNet-50 keeps 25 million in
about 160. Something has to know where every one of those arrays is, because
three different parts of a framework need the complete list:

- the **optimizer** (chapter 10) must update every learnable array after each
  step, and an array it does not know about silently never learns;
- **saving and loading** (chapter 12) must write every array under a stable
  name and put it back into the right place in a freshly built model;
- **switching modes** (chapters 08 and 13) must reach every layer whose
  behaviour differs between training and evaluation.

Nobody lists 150 arrays by hand. This chapter builds the abstraction PyTorch
uses instead: a `Module` that *discovers* its parameters by watching which
attributes you assign, so that writing `self.fc1 = Linear(784, 256)` in a
constructor is all it takes for the optimizer, the checkpoint code and
`model.eval()` to find the layer. On top of it we build:

| piece | what it is | PyTorch counterpart |
| --- | --- | --- |
| `init` | seeded random generator and the weight initialisers | `torch.manual_seed`, `torch.nn.init` |
| `Parameter` | a Tensor that a Module treats as learnable | `torch.nn.Parameter` |
| `Module` | registry of parameters, buffers, submodules; names, modes, `state_dict` | `torch.nn.Module` |
| `Linear` | the affine map `y = x Wᵀ + b` | `torch.nn.Linear` |
| `Sequential`, `ModuleList` | containers of layers | `torch.nn.Sequential`, `torch.nn.ModuleList` |

Everything here is built from the Tensor operations of chapter 02, so these
layers compute forward passes today and become **trainable in chapter 09
without a line of this chapter changing**: 09 attaches a backward rule to each
primitive (`MatMul`, `Add`, ...) that `Linear` already goes through.

Along the way we measure what a layer costs on your machine (time, GFLOP/s,
bytes) and show, with numbers, why the way weights are initialised decides
whether a deep network can work at all.
"""

# %% [markdown]
"""
## Background

### A layer is a function with state

An activation such as `relu` (chapter 03) is a plain function: the same input
always gives the same output, and there is nothing inside it to learn. A
*layer* is a function with state: `Linear` owns a weight matrix and a bias
vector, and training means changing them. So a layer is an object that holds
arrays and has a `forward` method, and a model is a tree of such objects:

```
MLP
├── fc1: Linear      weight (256, 784), bias (256,)
├── fc2: Linear      weight (10, 256),  bias (10,)
```

The tree gives every array a path, and the path is its name: `fc1.weight`,
`fc2.bias`. Those dotted names are what a checkpoint file stores, what an
optimizer's state is keyed by, and what an error message can point at. PyTorch
uses exactly this naming, so a tinytorch model built with the same attribute
names has the same `state_dict` keys as its PyTorch twin.

Not every array a layer holds is learned. PyTorch distinguishes three kinds of
state, and so do we:

- **parameters**: learned by gradient descent (a Linear's weight and bias);
- **buffers**: saved with the model but not learned (BatchNorm's running mean
  in chapter 08 is updated by averaging, not by gradients);
- **submodules**: other Modules, whose parameters and buffers are ours too.

### Linear: the math

`Linear(in_features, out_features)` computes, for an input `x` whose last
dimension is `in_features`,

    y = x Wᵀ + b        W: (out_features, in_features)    b: (out_features,)

For one sample, output `j` is a weighted sum of all inputs plus an offset,
`y_j = Σ_i W_ji·x_i + b_j`: row `j` of `W` holds the weights of output
(neuron) `j`. We store `W` as `(out, in)`, as PyTorch does, for three reasons:
each output's weights sit next to each other in memory; a convolution's weight
`(out_channels, in_channels, kh, kw)` follows the same "output first" rule; and
a state_dict copied from PyTorch fits without transposing anything. The price
is the transpose in `x @ W.T`, which in NumPy costs nothing: it is a view with
swapped strides (chapter 02), and BLAS reads transposed operands natively.

Leading dimensions are batch dimensions. A batch `(B, in)` gives `(B, out)`; a
sequence batch `(B, T, in)` (chapter 07) gives `(B, T, out)` with the same
weights applied at every position. The bias `(out,)` is added by broadcasting.

### What it costs

For an input with `B` rows (all leading dimensions multiplied together):

| quantity | count |
| --- | --- |
| parameters | `in·out + out` |
| multiply-adds in `x Wᵀ` | `B·in·out`, i.e. **FLOPs = 2·B·in·out** (one multiply and one add each) |
| bias adds | `B·out` (negligible next to the matmul) |
| bytes touched (float32), at least | `4·(B·in + in·out + B·out)` |

FLOPs divided by bytes touched is the *arithmetic intensity*. For a square
layer (`in = out = n`) with a single input row it is `2n² / 4(n² + 2n) ≈ 0.5`
FLOP per byte: every weight is read from memory to be used exactly once, so
memory bandwidth, not arithmetic, sets the speed. With a batch of `B` rows each
weight is reused `B` times: the intensity is `2Bn² / 4(n² + 2Bn)`, about `B/2`
while `B` is much smaller than `n`, until the arithmetic units become the
limit. That is why frameworks process batches, and it is the first thing we
measure below.

### Why initialisation matters

Training starts from the initial weights, and a deep network can be broken
before training begins: if each layer multiplies the size of its signal by a
factor a little below one, twenty layers shrink it to nothing; a little above
one and it overflows. Here is the arithmetic. Take `y_j = Σ_i W_ji x_i` with
independent weights of mean 0 and variance `Var(W)`, independent of the inputs:

    Var(y_j) = n_in · Var(W) · E[x_i²]

If `x` is the ReLU of a symmetric pre-activation `z`, half of `z`'s mass is
zeroed and `E[x²] = Var(z)/2`. So each Linear+ReLU block multiplies the
pre-activation variance by `n_in·Var(W)/2`, and `L` blocks multiply it by that
factor to the power `L`. The factor is exactly 1 when

    Var(W) = 2 / n_in        (Kaiming He et al., 2015)

Glorot and Bengio's earlier **Xavier** rule, `Var(W) = 2/(n_in + n_out)`,
balances the forward and backward passes for activations that are linear near
zero (tanh); in front of a ReLU with `n_in = n_out` it gives a factor of 1/2
per layer, so the signal's standard deviation shrinks by √2 each layer. A
uniform distribution on `[-a, a]` has variance `a²/3`, so each rule becomes a
uniform bound `a = √(3·Var)`:

| rule | Var(W) | uniform bound | per-layer variance factor with ReLU (`n_in = n_out = n`) |
| --- | --- | --- | --- |
| Kaiming uniform | `2/n_in` | `√(6/n_in)` | 1 |
| Xavier uniform | `2/(n_in+n_out)` | `√(6/(n_in+n_out))` | 1/2 |
| PyTorch's `Linear` default | `1/(3·n_in)` | `1/√n_in` | 1/6 |
| `N(0, 0.01²)` (too small) | `10⁻⁴` | (normal) | `n·10⁻⁴/2` (0.013 for n = 256) |
| `N(0, 1)` (too large) | `1` | (normal) | `n/2` (128 for n = 256) |

We will measure all five in the systems analysis. Generating the numbers costs
one random draw per weight, `O(in·out)`, done once.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.layers

# %% [markdown]
"""
## Implementation

### Randomness you can repeat, and the initialisers

Every random number tinytorch draws (initial weights here, dropout masks in
chapter 13, shuffled batches in chapter 11) comes from one NumPy `Generator`.
`manual_seed(s)` replaces it with a fresh one seeded with `s`, which makes a
whole run repeatable: same seed, same initial weights, same results. These
cells export to `tinytorch.nn.init` (note the `#| export nn.init` line),
the counterpart of `torch.nn.init`.
"""

# %%
#| export nn.init
import math

import numpy as np

_generator = None                                      # made on first use: importing tinytorch draws nothing


def manual_seed(seed: int) -> None:
    """Make every random draw in tinytorch (initialisers, dropout, shuffling) repeatable."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator tinytorch draws from; `manual_seed` replaces it."""
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


# %% [markdown]
"""
The initialisers fill an existing tensor **in place** and return it (the
trailing underscore is PyTorch's mark for "modifies its argument"). Two details
matter for memory:

- NumPy's `Generator.uniform(low, high, shape)` always returns a new float64
  array, twice the size of a float32 weight, which then has to be copied into
  the weight: three weight-sizes of memory alive at once. Instead we ask the
  generator to write its draws straight into the tensor's own array
  (`random(dtype=..., out=...)`) and scale them there. The systems analysis
  measures the difference.
- `_fans` computes `fan_in` and `fan_out` the way PyTorch does, so that the
  same functions serve a Linear weight `(out, in)` and, in chapter 06, a
  convolution weight `(out, in, kh, kw)`, whose fan-in is `in·kh·kw`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_fans", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.init
def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a weight (out, in, *kernel), as PyTorch computes them.

    Args: shape, a weight's shape: (out,) for a bias-like vector, (out, in) for Linear,
        (out, in, kh, kw) for a convolution.
    Returns: (fan_in, fan_out) as ints, e.g. (75, 400) for (16, 3, 5, 5).
    """
    # receptive = product of the dimensions after the first two (1 if there are none).
    # fan_in = shape[1] * receptive, fan_out = shape[0] * receptive; a 1-D shape has fan_in = shape[0].
    # Pitfall: a 0-d shape has no fans: raise a ValueError that says to pass a weight of >= 1 dimension.
    ### BEGIN SOLUTION
    if len(shape) == 0:
        raise ValueError("cannot compute fan_in/fan_out of a 0-d tensor; initialise a weight with at least 1 dimension")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive if len(shape) > 1 else shape[0]
    return fan_in, shape[0] * receptive
    ### END SOLUTION


def _fills_in_place(array: np.ndarray) -> bool:
    """The generator can write float32/float64 draws straight into a contiguous array."""
    return array.dtype in (np.float32, np.float64) and array.flags.c_contiguous and array.flags.writeable


def uniform_(tensor, low: float, high: float):
    """Fill `tensor` in place with draws from U(low, high); returns it.

    Args: tensor, any Tensor whose .data will be overwritten; low, high, the interval.
    Returns: the same tensor object (its .data is the same array as before, now filled).
    """
    # Fast path (when _fills_in_place(out)): generator().random(dtype=out.dtype, out=out) draws
    # U(0, 1) straight into the tensor's own memory; then scale and shift in place (*=, +=).
    # Otherwise (another dtype, or a non-contiguous view): assign a float64 draw with out[...] = ...
    # Pitfall: tensor.data = new_array would replace the array, not fill it; and uniform(low, high,
    # shape) allocates a float64 array twice the weight's size (the systems analysis measures it).
    ### BEGIN SOLUTION
    out = tensor.data
    if not _fills_in_place(out):
        out[...] = low + (high - low) * generator().random(out.shape)
        return tensor
    generator().random(dtype=out.dtype, out=out)   # U(0, 1), drawn into the tensor's own memory
    out *= high - low
    out += low
    return tensor
    ### END SOLUTION


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill `tensor` in place with draws from N(mean, std²); returns it.

    Args: tensor, any Tensor whose .data will be overwritten; mean, std of the normal.
    Returns: the same tensor object.
    """
    # The same two paths as uniform_: generator().standard_normal(dtype=..., out=...) into the
    # tensor's own array, then *= std and += mean; otherwise out[...] = generator().normal(...).
    # Pitfall: std is the standard deviation, not the variance.
    ### BEGIN SOLUTION
    out = tensor.data
    if not _fills_in_place(out):
        out[...] = generator().normal(mean, std, out.shape)
        return tensor
    generator().standard_normal(dtype=out.dtype, out=out)
    out *= std
    out += mean
    return tensor
    ### END SOLUTION


def constant_(tensor, val: float):
    tensor.data[...] = val
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


# %% [markdown]
"""
Now the two scaling rules from the background. `calculate_gain` returns the
factor that compensates what a nonlinearity does to the variance (√2 for ReLU,
which zeroes half of its input); the Kaiming functions take PyTorch's
`nonlinearity` and `mode` arguments, with PyTorch's defaults.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_calculate_gain", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.init
def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor the variance rules multiply by to undo what `nonlinearity` does to the scale."""
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; "
                     "use linear, sigmoid, tanh, relu, leaky_relu or selu")


def xavier_uniform_(tensor, gain: float = 1.0):
    """Glorot: U(-a, a) with a = gain·sqrt(6 / (fan_in + fan_out)), i.e. Var = gain²·2/(fan_in + fan_out).

    Args: tensor, a weight of shape (out, in, *kernel); gain, from calculate_gain.
    Returns: the same tensor, filled in place.
    """
    # Get the fans from _fans(tensor.shape), compute the bound, and let uniform_ do the filling.
    # Why 6: U(-a, a) has variance a²/3, and a²/3 = 2/(fan_in + fan_out) gives a = sqrt(6/(...)).
    ### BEGIN SOLUTION
    fan_in, fan_out = _fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)
    ### END SOLUTION


def xavier_normal_(tensor, gain: float = 1.0):
    fan_in, fan_out = _fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor, a: float, mode: str, nonlinearity: str) -> float:
    """The standard deviation He et al.'s rule gives: gain / sqrt(fan), shared by both Kaiming fills.

    Args: tensor, the weight; a, the leaky-ReLU slope (passed to calculate_gain as its param);
        mode, "fan_in" (keeps the forward signal's scale) or "fan_out" (the backward one's);
        nonlinearity, the name calculate_gain understands.
    Returns: a float, e.g. sqrt(2 / fan_in) for nonlinearity="relu", mode="fan_in".
    """
    # Pitfall: refuse any other mode with a ValueError naming the two allowed values; a typo
    # such as "fanin" must not silently fall back to one of them.
    ### BEGIN SOLUTION
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', not {mode!r}")
    fan_in, fan_out = _fans(tensor.shape)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    ### END SOLUTION


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He initialisation for ReLU nets: keeps activation variance steady through depth."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


# %% [markdown]
"""
### Unit test: initialisers

What it checks: every initialiser stays inside its bound and reaches the
variance its rule promises (Kaiming `2/fan_in`, Xavier `2/(fan_in+fan_out)`),
a 4-D convolution-shaped weight gets `fan_in = in·kh·kw`, the fill happens in
place (same array, float32 kept), and `manual_seed` makes draws repeatable.
Why: every later chapter's "same seed, same result" and every deep network's
ability to train rest on these few lines; a wrong fan or a forgotten square
root would not crash anything, it would just make deep models fail to learn.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_initialisers", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from tinytorch.core.tensor import Tensor  # chapter 02's Tensor: the initialisers fill its .data


def test_unit_initialisers():
    manual_seed(0)
    w = Tensor(np.empty((512, 256), dtype=np.float32))
    array_before = w.data
    kaiming_uniform_(w)
    bound = math.sqrt(6 / 256)
    assert w.data is array_before and w.dtype == np.float32, "initialisers must fill the tensor in place"
    assert np.abs(w.data).max() <= bound, "kaiming_uniform_ drew outside its bound sqrt(6/fan_in)"
    assert abs(w.data.var() - 2 / 256) < 0.05 * 2 / 256, f"kaiming variance {w.data.var():.2e}, expected {2 / 256:.2e}"

    xavier_uniform_(w)
    assert np.abs(w.data).max() <= math.sqrt(6 / 768), "xavier_uniform_ drew outside sqrt(6/(fan_in+fan_out))"
    assert abs(w.data.var() - 2 / 768) < 0.05 * 2 / 768, "xavier variance is not 2/(fan_in+fan_out)"

    kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - math.sqrt(2 / 256)) < 0.03 * math.sqrt(2 / 256), "kaiming_normal_ std is not sqrt(2/fan_in)"

    assert _fans((16, 3, 5, 5)) == (75, 400), "a conv weight's fan_in is in_channels*kh*kw"
    assert abs(calculate_gain("relu") - math.sqrt(2)) < 1e-12 and calculate_gain("linear") == 1.0

    manual_seed(123)
    first = normal_(Tensor(np.empty(5, dtype=np.float32))).data.copy()
    manual_seed(123)
    second = normal_(Tensor(np.empty(5, dtype=np.float32))).data.copy()
    assert np.array_equal(first, second), "manual_seed must make draws repeatable"
    assert not np.array_equal(first, normal_(Tensor(np.empty(5, dtype=np.float32))).data), \
        "consecutive draws must differ"
    print("✓ initialisers: bounds, variances, fans, in-place fills and seeding are right")


test_unit_initialisers()

# %% [markdown]
"""
### Parameter: a Tensor with a label

A `Parameter` is an ordinary Tensor with one difference in meaning: it is
*learnable* and belongs to a Module. Technically it differs in two small ways:
it requires gradients by default, and its type is what a Module looks for when
you assign it as an attribute. Arithmetic on a Parameter gives plain Tensors
(`weight * 2` is a new value computed from the parameter, not a new parameter),
and wrapping an array shares its memory rather than copying it, as in PyTorch.

Why a separate type instead of "every Tensor attribute is a parameter"? Because
layers hold tensors that must not be learned: a causal mask in chapter 07, a
running mean in chapter 08, a constant scale. The type states the intent.
"""

# %%
#| export
import math
from collections import OrderedDict

import numpy as np

from tinytorch.core.function import Function
from tinytorch.core.tensor import Tensor
from tinytorch.nn import init


# %%
#| export nn.module
from collections import OrderedDict
from typing import Callable, Iterator, NamedTuple

import numpy as np

from tinytorch.core.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable part of a Module: it requires gradients by default."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)   # the same Tensor; only the default differs

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


# %% [markdown]
"""
From here on the chapter's code reaches the initialisers through
`tinytorch.nn.init`, the exported copy of the cells above, exactly as the
package will; so in the cells below we seed with `init.manual_seed(...)`.

### Unit test: Parameter

What it checks: a Parameter is a Tensor, requires gradients unless told not
to, shares the memory of the array it wraps, and arithmetic on it gives plain
Tensors. Why: chapter 10's optimizer updates `p.data` in place and relies on
the Module's parameters being the very arrays the layers compute with.
(`Parameter` is given code, one line, so this test carries no points: it
checks what later chapters rely on.)
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_parameter", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_parameter():
    array = np.zeros((2, 3), dtype=np.float32)
    p = Parameter(array)
    assert isinstance(p, Tensor) and p.requires_grad, "a Parameter is a Tensor that requires grad"
    assert not Parameter(array, requires_grad=False).requires_grad, "requires_grad=False must be kept"
    array[0, 0] = 7.0
    assert p.data[0, 0] == 7.0, "Parameter(array) must share the array's memory, not copy it"
    doubled = p * 2
    assert type(doubled) is Tensor, "arithmetic on a Parameter gives a plain Tensor, not a new Parameter"
    assert repr(p).startswith("Parameter containing:")
    print("✓ Parameter: a Tensor that requires grad, shares memory, and computes plain Tensors")


test_unit_parameter()

# %% [markdown]
"""
### Module: finding parameters by walking attributes

First, the problem. Here is a two-layer network written without a
`Module`, with a hand-written list of its parameters, and one bug:
"""

# %%
from tinytorch.nn.activation import ReLU, log_softmax, relu


class HandWrittenMLP:
    def __init__(self):
        self.w1 = Parameter(np.ones((4, 3), dtype=np.float32))
        self.b1 = Parameter(np.zeros(4, dtype=np.float32))
        self.w2 = Parameter(np.ones((2, 4), dtype=np.float32))
        self.b2 = Parameter(np.zeros(2, dtype=np.float32))

    def forward(self, x):
        return relu(x @ self.w1.T + self.b1) @ self.w2.T + self.b2

    def parameters(self):
        return [self.w1, self.b1, self.w2]          # b2 forgotten: nothing will ever tell you


hand = HandWrittenMLP()
print("arrays the model uses:", 4, "| arrays its parameters() returns:", len(hand.parameters()))

# %% [markdown]
"""
Nothing fails. The forward pass is right; an optimizer would update three of
the four arrays, a checkpoint would save three, and the model would train a
little worse than it should, forever. The list duplicates information the
constructor already states, and duplicated information drifts.

The fix PyTorch chose: let the object *watch its own assignments*. Python
calls `obj.__setattr__(name, value)` for every `obj.name = value`, so a class
that overrides `__setattr__` sees each attribute as it is created:
"""


# %%
class Spy:
    def __setattr__(self, name, value):
        print(f"  __setattr__({name!r}, {type(value).__name__})")
        object.__setattr__(self, name, value)       # then store it as usual


class TinyLayer(Spy):
    def __init__(self):
        self.weight = Parameter(np.ones((2, 2), dtype=np.float32))
        self.scale = 0.5


print("constructing TinyLayer():")
_ = TinyLayer()

# %% [markdown]
"""
`Module.__setattr__` does the same thing and, depending on the value's type,
files it into one of three ordered dictionaries:

- a `Parameter` goes into `self._parameters`,
- a `Module` goes into `self._modules`,
- a Tensor under a name registered with `register_buffer` goes into `self._buffers`;
- anything else (numbers, strings, plain Tensors) is an ordinary attribute.

Everything else is a walk over those dictionaries. `named_modules()` visits the
tree depth-first, building each submodule's dotted prefix; `named_parameters()`
lists each module's own parameters under that prefix, in registration order,
skipping any parameter it has already yielded, so a weight shared by two layers
(GPT-style models tie the token embedding to the output layer) is counted and
updated once. `state_dict()` and `load_state_dict()` sit on the same walk, and
so do `train()`/`eval()` and `zero_grad()`.

A few rules keep the registry honest, the same ones PyTorch enforces:

- `super().__init__()` must run before the first Parameter or Module is
  assigned (otherwise there is no registry yet); we say so in the error.
- Assigning a plain Tensor to a name that holds a Parameter is refused:
  `self.weight = self.weight * 2` would otherwise silently turn a learnable
  weight into a constant. Assign `Parameter(...)` (or `None`) instead.
- `del module.name` removes the name from the registry too.

Where we differ from PyTorch on purpose: PyTorch keeps parameters *only* in
`_parameters` and finds them on attribute reads through `__getattr__`; we also
store them as ordinary attributes, so reading `self.weight` in `forward` is a
plain, fast attribute lookup and the class is easier to read in a debugger.
The cost is that two places must agree, which `__setattr__` and `__delattr__`
guarantee.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Module", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.module
class _IncompatibleKeys(NamedTuple):
    """What load_state_dict(strict=False) returns, as in PyTorch."""
    missing_keys: list
    unexpected_keys: list


_IncompatibleKeys.__name__ = "IncompatibleKeys"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of every layer and model: it finds its parameters by looking at its attributes."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration: every `self.name = value` passes through here ----------------------
    def __setattr__(self, name, value):
        """File `value` under `name`: Parameters, Modules and registered buffers into their registries."""
        # registered = "_parameters" in self.__dict__ (False until Module.__init__ has run).
        # 1. A Parameter or Module assigned before registration exists: AttributeError telling the
        #    user to call super().__init__() first.
        # 2. A Parameter: self._forget(name) (it may have been a submodule before), then _parameters.
        #    A Module: the same, into _modules.
        # 3. Any other value under a name already in _parameters (or _modules): only None is allowed
        #    (store None there); anything else is a TypeError that names the attribute and says to
        #    assign a Parameter (a Module). Under a buffer's name: a Tensor or None, else TypeError.
        # 4. In every allowed case, finish with object.__setattr__(self, name, value) so that reading
        #    self.name stays a plain attribute lookup.
        # Pitfall: self.weight = self.weight * 2 must raise: it would turn a weight into a constant.
        ### BEGIN SOLUTION
        registered = "_parameters" in self.__dict__
        if isinstance(value, (Parameter, Module)) and not registered:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning {name}")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif registered and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter '{name}' of {type(self).__name__}; "
                                "assign a Parameter (or None)")
            self._parameters[name] = None
        elif registered and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule '{name}' of {type(self).__name__}; "
                                "assign a Module (or None)")
            self._modules[name] = None
        elif registered and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer '{name}' of {type(self).__name__}; "
                                "assign a Tensor (or None)")
            self._buffers[name] = value
        object.__setattr__(self, name, value)
        ### END SOLUTION

    def __delattr__(self, name):
        if "_parameters" in self.__dict__:
            self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def _check_new_name(self, kind: str, name: str, registry: dict) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before adding {kind} {name!r}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in registry:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}; choose another {kind} name")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_new_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got {type(param).__name__}")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State that is saved with the model but not trained (e.g. BatchNorm's running mean)."""
        self._check_new_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)   # e.g. a mask rebuilt in __init__: not in state_dict
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._check_new_name("module", name, self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module or None, got {type(module).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree of modules ------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """This module and every submodule, depth first, with dotted names ('' for this one).

        Args: prefix, the name to give this module (its children get prefix.child);
            remove_duplicate, visit a module that appears twice in the tree only once.
        Yields: (name, module) pairs: ("", self), ("body", ...), ("body.0", ...), ...
        """
        # Write a recursive generator walk(module, path): yield (path, module), then for each
        # (name, child) in module.named_children() yield from walk(child, _join(path, name)).
        # Keep a set of id(module) already yielded and skip those when remove_duplicate is True.
        # Pitfall: compare by id(), not ==: two different layers may compare equal.
        ### BEGIN SOLUTION
        seen = set()

        def walk(module, path):
            if remove_duplicate:
                if id(module) in seen:
                    return
                seen.add(id(module))
            yield path, module
            for name, child in module.named_children():
                yield from walk(child, _join(path, name))

        yield from walk(self, prefix)
        ### END SOLUTION

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        """(dotted name, tensor) for each entry of `registry` ("_parameters" or "_buffers") in the tree.

        named_parameters() and named_buffers() are this one walk with a different registry.
        """
        # Modules to visit: self.named_modules(prefix, remove_duplicate) if recurse, else [(prefix, self)].
        # For each module, for each (name, member) of getattr(module, registry): skip None entries,
        # and (when remove_duplicate) members whose id() was already yielded: a tied weight counts
        # once, under the first name met. Yield (_join(module_name, name), member).
        ### BEGIN SOLUTION
        seen = set()
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue                         # a shared weight counts once
                seen.add(id(member))
                yield _join(module_name, name), member
        ### END SOLUTION

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule, then on this module (e.g. a custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes, gradients, dtypes -----------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set `training` to `mode` on this module and every submodule; returns self (calls chain)."""
        # Walk self.modules() and set each one's training flag; return self.
        # Pitfall: mode must be a bool (train(0) and train("eval") are mistakes): raise ValueError.
        # Set the flag with object.__setattr__ (it is plain state, nothing to register).
        ### BEGIN SOLUTION
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be True or False, not {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self
        ### END SOLUTION

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradient of every parameter before the next backward pass (chapter 09).

        set_to_none=True (PyTorch's default) drops the gradient array (frees its memory);
        False keeps the array and fills it with zeros.
        """
        # Loop over self.parameters(); with set_to_none set p.grad = None; otherwise zero
        # p.grad.data in place ([...] = 0), skipping parameters whose grad is None.
        ### BEGIN SOLUTION
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.data[...] = 0
        ### END SOLUTION

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze every parameter, e.g. to fine-tune only the last layer."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def _cast(self, dtype) -> "Module":
        for tensor in list(self.parameters()) + list(self.buffers()):
            if np.issubdtype(tensor.dtype, np.floating):
                tensor.data = tensor.data.astype(dtype)
                if tensor.grad is not None:
                    tensor.grad.data = tensor.grad.data.astype(dtype)
        return self

    def float(self) -> "Module":
        """Cast floating-point parameters and buffers to float32, in place (same Parameter objects)."""
        return self._cast(np.float32)

    def double(self) -> "Module":
        """Cast floating-point parameters and buffers to float64, in place (for gradcheck)."""
        return self._cast(np.float64)

    # ---- saving and loading -------------------------------------------------------------------
    def _state_tensors(self) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name, in PyTorch's state_dict order.

        Returns: an OrderedDict name -> Tensor (the live tensors, not copies).
        """
        # Walk self.named_modules(remove_duplicate=False): a tied weight gets a key under each name,
        # as in PyTorch. For each module: first its non-None parameters, then its non-None buffers
        # that are not in module._non_persistent_buffers, each under _join(module_name, name).
        ### BEGIN SOLUTION
        state = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            for name, param in module._parameters.items():
                if param is not None:
                    state[_join(module_name, name)] = param
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent_buffers:
                    state[_join(module_name, name)] = buffer
        return state
        ### END SOLUTION

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter and buffer by dotted name, as arrays (copies: later steps do not change them)."""
        return OrderedDict((name, t.data.copy()) for name, t in self._state_tensors().items())

    def load_state_dict(self, state: dict, strict: bool = True):
        """Copy values into this model's tensors; checks every name and shape before changing any.

        Args: state, name -> array (or Tensor), e.g. another model's state_dict();
            strict, refuse missing or unexpected names (False: load what matches).
        Returns: IncompatibleKeys(missing_keys, unexpected_keys), both lists of names.
        """
        # 1. own = self._state_tensors(); missing = own names not in state; unexpected = the reverse.
        #    With strict and either list non-empty: KeyError listing both.
        # 2. Check every shape first; collect all mismatches into one ValueError that names each
        #    entry and says nothing was loaded.
        # 3. Convert every value to its tensor's dtype (this can fail too), and only then write
        #    them all, in place: own[name].data[...] = value (an optimizer holds these very arrays).
        # Pitfall: writing entries as you check them leaves a half-loaded model when a later one fails.
        ### BEGIN SOLUTION
        own = self._state_tensors()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not fit {type(self).__name__}: missing {missing}, unexpected {unexpected}; "
                           "load one saved from the same architecture (or pass strict=False)")
        values, wrong = {}, []
        for name, tensor in own.items():
            if name in state:
                value = state[name]
                value = np.asarray(value.data if isinstance(value, Tensor) else value)
                if value.shape != tensor.shape:
                    wrong.append(f"{name}: {value.shape} vs {tensor.shape}")
                values[name] = value
        if wrong:
            raise ValueError(f"state_dict shapes do not fit {type(self).__name__}: " + "; ".join(wrong) +
                             " (saved value vs this model); nothing was loaded")
        converted = {name: value.astype(own[name].dtype) for name, value in values.items()}  # may raise: nothing changed yet
        for name, value in converted.items():
            own[name].data[...] = value
        return _IncompatibleKeys(missing, unexpected)
        ### END SOLUTION

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = ([self.extra_repr()] if self.extra_repr() else []) + children
        return f"{type(self).__name__}(\n" + "\n".join("  " + line for line in lines) + "\n)"


# %% [markdown]
"""
### Unit test: registration

To test the Module before `Linear` exists we use a tiny layer of our own,
`Affine` (an elementwise `x·weight + bias`), and a `Pair` that holds two of
them. This is also the pattern every model in the course follows: subclass
`Module`, call `super().__init__()`, assign layers, write `forward`.

What it checks: Parameters, submodules and buffers land in their registries and
plain Tensors do not; names are PyTorch's dotted paths in registration order; a
Parameter shared by two submodules is listed once; the mistakes the registry
refuses (no `super().__init__()`, a plain Tensor over a Parameter) fail with
a message; `del` unregisters. Why: every later chapter finds parameters this
way, and a parameter that is not found is a parameter that never trains.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_module_registration", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
class Affine(Module):
    """y = x * weight + bias, elementwise: a layer small enough to test Module with."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = Parameter(np.ones(n, dtype=np.float32))
        self.bias = Parameter(np.zeros(n, dtype=np.float32))
        self.factor = Tensor(np.float32(2.0))                 # a constant: not learned, not saved
        self.register_buffer("calls", Tensor(np.zeros(1, dtype=np.float32)))

    def forward(self, x):
        return x * self.weight + self.bias


class Pair(Module):
    def __init__(self, n: int = 3):
        super().__init__()
        self.first = Affine(n)
        self.second = Affine(n)

    def forward(self, x):
        return self.second(self.first(x))


def test_unit_module_registration():
    layer = Affine(3)
    assert list(layer._parameters) == ["weight", "bias"], "Parameters must be registered in assignment order"
    assert "factor" not in layer._parameters and "factor" not in layer._buffers, "a plain Tensor is not registered"
    assert list(layer._buffers) == ["calls"], "register_buffer must register the buffer"

    pair = Pair()
    assert list(pair._modules) == ["first", "second"], "submodules must be registered"
    assert [n for n, _ in pair.named_parameters()] == ["first.weight", "first.bias", "second.weight", "second.bias"]
    assert [n for n, _ in pair.named_buffers()] == ["first.calls", "second.calls"]
    assert [n for n, _ in pair.named_modules()] == ["", "first", "second"]
    assert len(list(pair.parameters(recurse=False))) == 0, "recurse=False lists only the module's own parameters"

    pair.second.weight = pair.first.weight                   # tie the two weights
    assert [n for n, _ in pair.named_parameters()] == ["first.weight", "first.bias", "second.bias"], \
        "a shared Parameter must be listed once"

    class Forgetful(Module):
        def __init__(self):
            self.weight = Parameter(np.ones(2, dtype=np.float32))   # before super().__init__()

    try:
        Forgetful()
        raise AssertionError("assigning a Parameter before super().__init__() must fail")
    except AttributeError as err:
        assert "super().__init__()" in str(err)
    try:
        layer.weight = layer.weight * 2
        raise AssertionError("assigning a plain Tensor over a Parameter must fail")
    except TypeError as err:
        assert "Parameter" in str(err)
    del layer.bias
    assert [n for n, _ in layer.named_parameters()] == ["weight"], "del must unregister the parameter"
    print("✓ registration: parameters, buffers and submodules found, named, and counted once")


test_unit_module_registration()

# %% [markdown]
"""
### Unit test: modes and gradients

What it checks: `eval()` reaches every module in the tree and `train()` turns
it back, both returning the module so calls chain; `zero_grad()` clears the
gradient of every parameter (setting it to `None`, PyTorch's default, which
frees the memory; or to zeros with `set_to_none=False`). There is no
`backward()` in this chapter yet, so the test places gradients by hand. Why:
BatchNorm (08) and Dropout (13) behave differently in evaluation, and a
submodule left in training mode silently changes a model's test accuracy;
gradients that are not cleared accumulate across steps (chapter 09).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_modes_and_zero_grad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_modes_and_zero_grad():
    pair = Pair()
    assert all(m.training for m in pair.modules()), "a new module starts in training mode"
    assert pair.eval() is pair, "eval() returns the module"
    assert not any(m.training for m in pair.modules()), "eval() must reach every submodule"
    pair.train()
    assert all(m.training for m in pair.modules()), "train() must reach every submodule"

    for p in pair.parameters():
        p.grad = Tensor(np.ones_like(p.data))
    pair.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in pair.parameters()), \
        "zero_grad(set_to_none=False) must zero the gradients"
    pair.zero_grad()
    assert all(p.grad is None for p in pair.parameters()), "zero_grad() must clear every gradient"
    print("✓ modes and gradients: train/eval reach every module, zero_grad clears every parameter")


test_unit_modes_and_zero_grad()

# %% [markdown]
"""
### Saving and loading: `state_dict`

A trained model is its architecture (code) plus its numbers (state). The
architecture is rebuilt by running the constructor; the numbers travel in a
`state_dict`: an ordered mapping from each dotted name to an array, in
PyTorch's order (each module's parameters, then its buffers, then its
children). Chapter 12 writes it to disk; here we check the contract it must
keep.

- **Keys are the names** `named_parameters()` and `named_buffers()` produce,
  plus, unlike those, a second key for a tied weight (PyTorch does the same:
  loading must be able to fill either name). Buffers registered with
  `persistent=False` are left out: they are rebuilt by the constructor.
- **Values are copies.** A checkpoint taken at step 100 must still hold the
  step-100 weights after step 101 updates the model in place. PyTorch returns
  tensors that *share* memory with the model and leaves copying to whoever
  saves them; we copy at once so the mistake cannot happen, and pay for it in
  memory (measured below).
- **Loading checks everything before changing anything.** Every name must
  match (both ways: missing and unexpected keys), and every shape. Only then is
  any value written, converted to the model's dtype, into the existing arrays
  (in place: the Parameter objects, which an optimizer holds on to, stay the
  same). A failed load leaves the model exactly as it was. PyTorch differs
  here: it copies every entry that fits and then raises, so after an error
  the model holds a mixture of old and new weights (the production section
  shows it). `strict=False` loads the names that match and returns the
  missing and unexpected ones, as PyTorch's does.

### Unit test: state_dict

What it checks: keys and order, values equal and independent (a copy), a round
trip into a second model reproduces its outputs exactly, non-persistent buffers
are left out, and a missing key or a wrong shape raises and changes nothing.
Why: a checkpoint that does not restore exactly, or a failed load that
half-overwrites a model, turns into results nobody can reproduce.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_state_dict", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_state_dict():
    source, target = Pair(), Pair()
    for i, p in enumerate(source.parameters()):
        p.data[...] = np.arange(p.numel(), dtype=np.float32) + i
    state = source.state_dict()
    assert list(state) == ["first.weight", "first.bias", "first.calls", "second.weight", "second.bias", "second.calls"]
    source.first.weight.data[0] = -100.0
    assert state["first.weight"][0] == 0.0, "state_dict must copy: later changes to the model must not reach it"

    source.first.weight.data[0] = 0.0
    weight_before = target.first.weight
    target.load_state_dict(state)
    x = Tensor(np.array([[1.0, -2.0, 3.0]], dtype=np.float32))
    assert np.array_equal(target(x).data, source(x).data), "after loading, both models must compute the same"
    assert target.first.weight is weight_before, "loading writes into the existing Parameters"

    snapshot = target.state_dict()
    bad_shape = dict(state, **{"second.bias": np.zeros(4, dtype=np.float32)})
    bad_shape["first.weight"] = np.full(3, 9.0, dtype=np.float32)   # fits: must still not be written
    try:
        target.load_state_dict(bad_shape)
        raise AssertionError("a wrong shape must raise")
    except ValueError as err:
        assert "second.bias" in str(err), "the error must name the entry that does not fit"
    missing = {k: v for k, v in bad_shape.items() if k != "second.bias"}
    try:
        target.load_state_dict(missing)
        raise AssertionError("a missing key must raise")
    except KeyError as err:
        assert "second.bias" in str(err)
    for name, value in target.state_dict().items():
        assert np.array_equal(value, snapshot[name]), f"a failed load changed {name}"

    result = target.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["second.bias"] and result.unexpected_keys == []
    assert np.all(target.first.weight.data == 9.0), "strict=False loads the entries that fit"

    target.first.register_buffer("mask", Tensor(np.ones(3, dtype=np.float32)), persistent=False)
    assert "first.mask" not in target.state_dict(), "non-persistent buffers are not saved"
    print("✓ state_dict: copies, round-trips exactly, and a failed load changes nothing")


test_unit_state_dict()

# %% [markdown]
"""
### Linear

With the machinery in place, the layer itself is short. Three choices in it
are worth naming:

- **Built only from Tensor operations.** `x @ self.weight.T` is a `MatMul`
  of `x` with a `Transpose` view of the weight, and `+ self.bias` is an `Add`
  that broadcasts the `(out,)` bias over every leading dimension. Chapter 09
  gives those primitives backward rules, and the backward of a broadcast add
  sums the gradient over the broadcast dimensions, which is exactly the bias
  gradient. Nothing here will change to make Linear trainable. (A batch may
  take the given fast path, `LinearFused`, the same arithmetic as one
  primitive that carries its own backward; the composition stays the
  reference it is tested against.)
- **Checks its input** and says what was expected: a `(32, 100)` batch fed to
  `Linear(784, 10)` should fail here, naming the layer, rather than deep inside
  a matmul.
- **PyTorch's default initialisation**, in `reset_parameters()`: weight and
  bias uniform on `±1/√in_features` (PyTorch writes the weight's as
  `kaiming_uniform_(w, a=√5)`, which is the same distribution). The background
  table showed this is not the variance-preserving choice for a deep ReLU
  stack; we keep it so that a tinytorch Linear starts from the same
  distribution as PyTorch's, and measure its effect below.
"""


# %% [markdown]
r"""
**The fast path, given.** `x @ self.weight.T + self.bias` is two primitives and
two fresh arrays of the output's size: the product, then the sum with the
bias. The second array is pure memory traffic, one more sweep and one more
allocation (for a transformer's first MLP layer, 16 × 128 tokens × 512
features, 4 MB each step). `LinearFused` below is the whole layer as one
primitive: one matrix product of the input's rows, `(rows, in) @ (in, out)`,
into a new array, to which the bias is added **in place**. Like chapter 03's
`GELUTanh`, it carries its own backward, three matrix expressions you will
derive in chapter 09:

$$\frac{\partial L}{\partial x} = G W,\qquad \frac{\partial L}{\partial W} = G^\top X,
\qquad \frac{\partial L}{\partial b} = \textstyle\sum_{\text{rows}} G,$$

with $X$ the input's rows and $G$ the output gradient's. Your `Linear.forward`
may hand a batch (two or more dimensions) of floats to it, keeping the
composition for the rest; the test below checks that both give the same
values, and the primitive's backward against finite differences.
"""


# %%
#| export
class LinearFused(Function):
    """y = x @ W.T + b as one primitive: x (..., in), weight (out, in), optional bias (out,) -> (..., out).

    Forward: one matrix product of the input's rows, then the bias added in place (no second
    array). Backward: dx = g @ W, dW = g^T @ x, db = the column sums of g, over all rows.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if x.dtype != weight.dtype:                          # as Tensor's @: no silent promotion
            raise TypeError(f"linear: input {x.shape} {x.dtype} and weight {weight.shape} {weight.dtype}: "
                            "dtypes differ; convert one, e.g. x.float() for a float32 layer")
        rows = x.reshape(-1, x.shape[-1])                    # (N, in): a view when x is contiguous
        out = rows @ weight.T                                # (N, out), a new array: ours to write into
        if bias is not None:
            out += bias                                      # in place: no second (N, out) array
        ctx.input_shape = x.shape
        ctx.save_for_backward(rows, weight)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        rows, weight = ctx.saved_arrays
        g = np.ascontiguousarray(grad).reshape(-1, weight.shape[0])       # (N, out)
        needs = ctx.needs_input_grad
        dx = (g @ weight).reshape(ctx.input_shape) if needs[0] else None   # (N, out) @ (out, in)
        dw = g.T @ rows if needs[1] else None                             # (out, N) @ (N, in)
        if len(needs) == 2:                                               # called without a bias
            return dx, dw
        return dx, dw, (g.sum(axis=0) if needs[2] else None)              # (out,)


# %% nbgrader={"grade": false, "grade_id": "impl_Linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Linear(Module):
    """y = x @ W.T + b, with W of shape (out_features, in_features) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        # super().__init__() first (the registry), then store in_features and out_features.
        # weight: a Parameter of np.empty((out_features, in_features), float32): (out, in) as in PyTorch.
        # bias: a Parameter of shape (out_features,), or None when bias=False (so it is not registered).
        # Then self.reset_parameters() fills both (np.empty holds whatever was in memory).
        ### BEGIN SOLUTION
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        self.bias = Parameter(np.empty(out_features, dtype=np.float32)) if bias else None
        self.reset_parameters()
        ### END SOLUTION

    def reset_parameters(self) -> None:
        """PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias (kaiming_uniform_ with a=sqrt(5))."""
        # bound = 1 / sqrt(in_features) (0 when in_features is 0: nothing to scale by).
        # Fill the weight and, if there is one, the bias with init.uniform_(..., -bound, bound).
        # Pitfall: fill in place through init (seeded by init.manual_seed); do not assign new arrays.
        ### BEGIN SOLUTION
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features): x @ W.T + b, any number of leading dimensions."""
        # Check first: a 0-d x, or a last dimension other than in_features, is a ValueError that
        # names the layer ("Linear(4, 3)") and the shape it got.
        # Then x @ self.weight.T (a view: no copy) and + self.bias, which broadcasts over the rows.
        # Optional fast path: a float input of 2+ dimensions may go to the given primitive instead,
        # LinearFused.apply(x, self.weight, self.bias) (leave the bias argument out when it is None).
        # Pitfall: Tensor operations only (no .data), or chapter 09 cannot differentiate it.
        ### BEGIN SOLUTION
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) got input of shape {x.shape}; "
                             f"its last dimension must be {self.in_features}")
        if x.ndim >= 2 and np.issubdtype(x.dtype, np.floating):   # a batch: one primitive, bias in place
            inputs = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
            return LinearFused.apply(*inputs)
        out = x @ self.weight.T          # (..., in) @ (in, out) -> (..., out)
        return out + self.bias if self.bias is not None else out
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# %% [markdown]
"""
### Unit test: Linear

What it checks: the output equals `x Wᵀ + b` computed directly in NumPy for a
single sample `(in,)`, a batch `(B, in)` and a sequence batch `(B, T, in)`;
`bias=False` leaves the bias out of the math and of the parameters; a wrong
input width raises an error that names the layer; the default initialisation
stays within `±1/√in` and is repeatable with a seed. Why: Linear is the layer
every later chapter uses most (MLPs, attention projections, the GPT head), and
a transposed weight or a misplaced bias would still produce outputs of the
right shape, so only a check of the values catches it.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_linear", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_linear():
    init.manual_seed(0)
    layer = Linear(4, 3)
    W, b = layer.weight.data, layer.bias.data
    assert W.shape == (3, 4) and b.shape == (3,), "weight is (out_features, in_features), bias is (out_features,)"
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert np.abs(W).max() <= 0.5 and np.abs(b).max() <= 0.5, "default init must stay within 1/sqrt(in_features)"

    rng = np.random.default_rng(1)
    for shape in [(4,), (5, 4), (2, 6, 4)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = layer(Tensor(x))
        assert y.shape == shape[:-1] + (3,), f"input {shape} gave output {y.shape}"
        assert np.allclose(y.data, x @ W.T + b, atol=1e-6), f"Linear computed the wrong values for input {shape}"

    no_bias = Linear(4, 3, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    x = rng.standard_normal((5, 4)).astype(np.float32)
    assert np.allclose(no_bias(Tensor(x)).data, x @ no_bias.weight.data.T, atol=1e-6)

    try:
        layer(Tensor(np.zeros((5, 3), dtype=np.float32)))
        raise AssertionError("a wrong input width must raise")
    except ValueError as err:
        assert "Linear(4, 3)" in str(err) and "(5, 3)" in str(err), "the error must name the layer and the shape"

    ### BEGIN HIDDEN TESTS
    init.manual_seed(7)
    first = Linear(4, 3).weight.data.copy()
    init.manual_seed(7)
    assert np.array_equal(first, Linear(4, 3).weight.data), "the same seed must give the same weights"
    ### END HIDDEN TESTS
    assert repr(layer) == "Linear(in_features=4, out_features=3, bias=True)"
    print("✓ Linear: x @ W.T + b for 1-D, 2-D and 3-D inputs, clear shape errors, seeded init")


test_unit_linear()


# %% [markdown]
"""
**Test.** `test_unit_linear_fused` checks that the given primitive computes the
composition's values (with and without a bias, for 2-D and 3-D inputs, float32
staying float32) and that its backward, for the input, the weight and the bias,
matches central finite differences.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_linear_fused", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_linear_fused():
    rng = np.random.default_rng(2)
    x, weight, bias = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    for rows in (x, x[0]):
        fused = LinearFused.apply(Tensor(rows), Tensor(weight), Tensor(bias))
        np.testing.assert_allclose(fused.data, rows @ weight.T + bias, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(LinearFused.apply(Tensor(rows), Tensor(weight)).data, rows @ weight.T,
                                   rtol=1e-12, atol=1e-12)
    small = LinearFused.apply(*(Tensor(a.astype(np.float32)) for a in (x, weight, bias)))
    assert small.dtype == np.float32, "float32 in should give float32 out"

    arrays, upstream = [x, weight, bias], rng.standard_normal((2, 3, 5))
    ctx = LinearFused(*(Tensor(a, requires_grad=True) for a in arrays))
    LinearFused.forward(ctx, *arrays)
    grads = LinearFused.backward(ctx, upstream)
    h = 1e-6
    for which, (array, got) in enumerate(zip(arrays, grads)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[which][index] += h
            minus[which][index] -= h
            up = LinearFused.forward(LinearFused(*map(Tensor, plus)), *plus)
            down = LinearFused.forward(LinearFused(*map(Tensor, minus)), *minus)
            numeric[index] = ((up - down) * upstream).sum() / (2 * h)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)
    print("✓ LinearFused: the composition's values, backward matches finite differences")


test_unit_linear_fused()

# %% [markdown]
"""
### Sequential and ModuleList

Most models are, at least in part, a chain: the output of one layer is the
input of the next. `Sequential(a, b, c)` is that chain as a Module: its
`forward` applies the layers in order, and each Module in it is registered
under its position, so the names are PyTorch's: `Sequential(Linear, ReLU,
Linear)` has parameters `0.weight, 0.bias, 2.weight, 2.bias`. Pass an
`OrderedDict` to choose the names instead (`fc1.weight`, ...), as in PyTorch.

Where we differ from PyTorch on purpose: chapter 03 made activations plain
callables, because `Module` did not exist yet, so `Sequential` also accepts
any callable (an activation object, or a function such as `relu`). It keeps
its place and its index but has no parameters to register. In PyTorch every
entry must be a Module.

`ModuleList` is the container without a `forward`: a list whose Modules are
registered. It exists because of the most common way to lose parameters in
PyTorch, which the test below shows happening here too: a plain Python list of
layers is an ordinary attribute, so its layers' parameters are invisible to
`parameters()`, `state_dict()` and `eval()`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Sequential", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Sequential(Module):
    """Layers applied in order; parameter-free callables (activations) may sit between them."""

    def __init__(self, *layers):
        # Two ways to call it: Sequential(a, b, c) names the entries "0", "1", "2"; a single
        # OrderedDict argument gives the names itself (Sequential(OrderedDict(fc1=..., act=...))).
        # After super().__init__(), keep two parallel lists, self.layers and self._names, and add
        # each (name, layer) with self._add, which does the checking and registering.
        ### BEGIN SOLUTION
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            named = list(layers[0].items())                  # Sequential(OrderedDict(fc1=..., act=...))
        else:
            named = [(str(index), layer) for index, layer in enumerate(layers)]
        self.layers, self._names = [], []
        for name, layer in named:
            self._add(name, layer)
        ### END SOLUTION

    def _add(self, name: str, layer) -> None:
        """Append one entry: a Module is registered under `name`; a plain callable is only kept."""
        # Not callable: TypeError naming the entry (e.g. "entry '1' is a int").
        # A Module: self.add_module(name, layer), so its parameters get the prefix "name.".
        # Any other callable (relu, ReLU()): check the name with self._check_new_name("layer", name, {})
        # and set it with object.__setattr__. Finally append to self.layers and self._names.
        ### BEGIN SOLUTION
        if not callable(layer):
            raise TypeError(f"Sequential takes Modules or callables; entry {name!r} is a {type(layer).__name__}")
        if isinstance(layer, Module):
            self.add_module(name, layer)
        else:                                                 # a plain callable: in order, nothing to register
            self._check_new_name("layer", name, {})
            object.__setattr__(self, name, layer)
        self.layers.append(layer)
        self._names.append(name)
        ### END SOLUTION

    def append(self, layer) -> "Sequential":
        index = len(self.layers)
        while str(index) in self._names:                      # a slice keeps old names: do not reuse one
            index += 1
        self._add(str(index), layer)
        return self

    def forward(self, x):
        """Feed x through every layer in order; the output of one is the input of the next."""
        # One loop over self.layers (Modules and plain callables alike: both are called as layer(x)).
        # Pitfall: apply each layer to the previous output, not to the original x.
        ### BEGIN SOLUTION
        for layer in self.layers:
            x = layer(x)
        return x
        ### END SOLUTION

    def __getitem__(self, index):
        if isinstance(index, slice):                          # a slice is a Sequential, names kept (as in PyTorch)
            return Sequential(OrderedDict(zip(self._names[index], self.layers[index])))
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(layer).replace("\n", "\n  ") for name, layer in zip(self._names, self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of Modules that registers them (a plain Python list would hide their parameters)."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or []:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)               # registered as "0", "1", ...
        return self

    def extend(self, modules) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


# %% [markdown]
"""
### Unit test: Sequential and ModuleList

What it checks: `Sequential` applies its entries in order (Modules and plain
callables alike), names parameters by position (`0.weight`, `2.weight` around
a `ReLU` at position 1) or by the names of an `OrderedDict`, supports
indexing, slicing (names kept) and `append`, and rejects an entry that cannot
be called; `ModuleList` registers what a plain list hides. Why: chapter 05
builds its MLPs from these containers and chapter 12 saves them by these
names; a checkpoint from PyTorch's `Sequential` only loads if the names agree.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_sequential", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_sequential():
    init.manual_seed(0)
    model = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = Tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    expected = model[2](relu(model[0](x)))
    assert np.allclose(model(x).data, expected.data), "Sequential must apply its layers in order"
    assert len(model) == 3 and isinstance(model[1], ReLU)
    tail = model[1:]
    assert isinstance(tail, Sequential) and [n for n, _ in tail.named_parameters()] == ["2.weight", "2.bias"]
    model.append(relu)
    assert len(model) == 4 and np.all(model(x).data >= 0), "append adds a layer at the end"

    named = Sequential(OrderedDict([("fc1", Linear(4, 8)), ("act", ReLU()), ("fc2", Linear(8, 2))]))
    assert [n for n, _ in named.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert named.fc1 is named[0], "named entries are attributes too"
    try:
        Sequential(Linear(2, 2), 3)
        raise AssertionError("a non-callable entry must be refused")
    except TypeError as err:
        assert "'1'" in str(err)

    class Hidden(Module):
        def __init__(self):
            super().__init__()
            self.blocks = [Linear(2, 2), Linear(2, 2)]             # a plain list: not registered

    class Found(Module):
        def __init__(self):
            super().__init__()
            self.blocks = ModuleList([Linear(2, 2), Linear(2, 2)])

    assert len(list(Hidden().parameters())) == 0, "a plain list hides its layers' parameters"
    assert [n for n, _ in Found().named_parameters()] == ["blocks.0.weight", "blocks.0.bias",
                                                          "blocks.1.weight", "blocks.1.bias"]
    print("✓ Sequential and ModuleList: order, PyTorch's names, indexing, slicing, registration")


test_unit_sequential()


# %% [markdown]
"""
### The rest of the API

Three conveniences a PyTorch user expects, none of them new in kind:

- random factories, `randn`, `rand`, `randint` and `randn_like`, drawing from
  the generator that `manual_seed` controls (chapter 02's factories could not:
  the generator lives here);
- `Identity`, the layer that returns its input (a placeholder in a
  `Sequential`);
- chapter 03's activation layers as `Module`s, so that `isinstance(layer,
  Module)` holds and `.train()` / `.eval()` reach them inside a model. Each is
  its chapter 03 class with `Module` added as a base, so it still computes
  exactly chapter 03's function.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api_init", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export nn.init
from tinytorch.core.tensor import Tensor


def _size(size) -> tuple:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def randn(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """Standard normal samples of the given shape (float32 by default, as in PyTorch)."""
    return Tensor(generator().standard_normal(_size(size)).astype(dtype), requires_grad=requires_grad)


def rand(*size, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return Tensor(generator().random(_size(size)).astype(dtype), requires_grad=requires_grad)


def randint(low: int, high: int, size, dtype=np.int64) -> Tensor:
    """Integers drawn uniformly from [low, high)."""
    return Tensor(generator().integers(low, high, size=tuple(size)).astype(dtype))


def randn_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api_layers", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
from tinytorch.nn import activation as _activations


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


def _activation_init(self, *args, **kwargs):
    """Module's set-up, then the chapter 03 class's own (the first class in the MRO that is no Module)."""
    Module.__init__(self)
    next(c for c in type(self).__mro__ if not issubclass(c, Module)).__init__(self, *args, **kwargs)


# Each is its chapter 03 class with Module as a further base: the same function, now a Module.
class ReLU(_activations.ReLU, Module):
    __doc__, __init__ = _activations.ReLU.__doc__, _activation_init


class LeakyReLU(_activations.LeakyReLU, Module):
    __doc__, __init__ = _activations.LeakyReLU.__doc__, _activation_init


class Sigmoid(_activations.Sigmoid, Module):
    __doc__, __init__ = _activations.Sigmoid.__doc__, _activation_init


class Tanh(_activations.Tanh, Module):
    __doc__, __init__ = _activations.Tanh.__doc__, _activation_init


class GELU(_activations.GELU, Module):
    __doc__, __init__ = _activations.GELU.__doc__, _activation_init


class Softmax(_activations.Softmax, Module):
    __doc__, __init__ = _activations.Softmax.__doc__, _activation_init


class LogSoftmax(_activations.LogSoftmax, Module):
    __doc__, __init__ = _activations.LogSoftmax.__doc__, _activation_init


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    init.manual_seed(3)
    first = init.randn(2, 3)
    init.manual_seed(3)
    assert first.dtype == np.float32 and np.array_equal(first.data, init.randn((2, 3)).data), "manual_seed repeats"
    assert 0 <= init.rand(100).data.min() and init.rand(100).data.max() < 1
    assert init.randint(0, 3, (50,)).dtype == np.int64
    x = Tensor(np.array([[-1.0, 2.0]], dtype=np.float32))
    assert Identity(7, flag=True)(x) is x
    model = Sequential(Linear(2, 2), ReLU(), GELU(approximate="tanh"))
    assert all(isinstance(m, Module) for m in model), "activation layers are Modules"
    model.eval()
    assert not model[1].training, ".eval() reaches the activation layers"
    assert isinstance(model[1], _activations.ReLU) and repr(model[1]) == "ReLU()"
    np.testing.assert_array_equal(Softmax(dim=0)(x).data, _activations.softmax(x, 0).data)
    print("✓ the rest of the API: random factories, Identity, activation layers as Modules")


test_unit_rest_of_api()


# %% [markdown]
"""
## Systems analysis

Everything below is measured while this page runs, on the machine that runs
it; your numbers will differ from the ones in the prose, which come from the
2-core machine the chapter was written on. Timings are the median of seven
repeats, each repeat running the call enough times to last a few
milliseconds so that the clock's resolution does not matter. If another
program is busy on the same cores, NumPy's BLAS threads end up waiting for
each other and a row of a table can come out many times slower than its
neighbours: run the cell again on a quiet machine.

### What a Linear layer costs, and how it grows

We time one `Linear(512, 512)` forward pass for batches from 1 to 1024 rows,
and the same arithmetic done directly in NumPy (`x @ W.T + b`) beside it. The
FLOP count is `2·B·in·out`; dividing by the time gives the achieved GFLOP/s.
"""

# %%
import time

import matplotlib.pyplot as plt


def median_seconds(*fns, repeats: int = 7, min_time: float = 3e-3) -> list[float]:
    """Median seconds per call of each fn. Each repeat loops a fn for about min_time, and the
    fns take turns within every repeat, so a burst of background load hits them alike."""
    numbers = []
    for fn in fns:
        fn()                                               # warm-up: caches, lazy allocations
        once = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            once.append(time.perf_counter() - start)
        numbers.append(max(1, int(min_time / max(min(once), 1e-7))))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, number, record in zip(fns, numbers, times):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            record.append((time.perf_counter() - start) / number)
    return [float(np.median(record)) for record in times]


init.manual_seed(0)
rng = np.random.default_rng(0)
width = 512
layer = Linear(width, width)
W, b = layer.weight.data, layer.bias.data
batches = [1, 4, 16, 64, 256, 1024]
batch_rows = []
for B in batches:
    x_np = rng.standard_normal((B, width)).astype(np.float32)
    x = Tensor(x_np)
    t_tiny, t_numpy = median_seconds(lambda: layer(x), lambda: x_np @ W.T + b)
    flops = 2 * B * width * width
    batch_rows.append((B, t_tiny, t_numpy, flops / t_tiny / 1e9, flops / t_numpy / 1e9))

print(f"Linear({width}, {width}) forward, float32")
print(f"{'batch':>6} {'tinytorch µs':>13} {'NumPy µs':>9} {'tinytorch GFLOP/s':>18} {'NumPy GFLOP/s':>14}")
for B, t_tiny, t_numpy, g_tiny, g_numpy in batch_rows:
    print(f"{B:>6} {t_tiny * 1e6:>13.1f} {t_numpy * 1e6:>9.1f} {g_tiny:>18.1f} {g_numpy:>14.1f}")
per_row_small = batch_rows[0][1] / batches[0] * 1e6
per_row_large = batch_rows[-1][1] / batches[-1] * 1e6
print(f"time per sample: {per_row_small:.1f} µs at batch 1, {per_row_large:.2f} µs at batch {batches[-1]}")
print(f"tinytorch's fixed cost per call (batch 1, tinytorch minus NumPy): {(batch_rows[0][1] - batch_rows[0][2]) * 1e6:.1f} µs")

# %% [markdown]
"""
Read the table from top to bottom. At batch 1 the layer does half a million
FLOPs and reaches only a small fraction of the machine's speed: every weight
is read from memory to be used once (arithmetic intensity ≈ 0.5 FLOP/byte,
from the background), and the fixed cost of a call (Python, the Tensor
wrapper, dispatching to BLAS) is of the same order as the arithmetic. The
difference between the tinytorch and NumPy columns *is* that wrapper: the
last line printed measures it, a fixed cost per call that matters at batch 1
and disappears in the noise by batch 256. As the batch grows each weight is
reused `B` times, the time per sample falls many times over (the line under
the table), and the throughput levels off
at what the BLAS library reaches on these cores. This is why training and
batch inference use batches, and why serving one request at a time is
expensive.

Now the width, at a fixed batch of 64: the FLOPs grow as `width²`, so once
the fixed overheads are small the time should grow 4× for each doubling.
"""

# %%
widths = [64, 128, 256, 512, 1024, 2048]
width_rows = []
for n in widths:
    wide = Linear(n, n)
    x = Tensor(rng.standard_normal((64, n)).astype(np.float32))
    [t] = median_seconds(lambda: wide(x))
    width_rows.append((n, t, 2 * 64 * n * n / t / 1e9))
print(f"{'width':>6} {'µs':>9} {'GFLOP/s':>8} {'time ratio to previous':>23}")
for i, (n, t, g) in enumerate(width_rows):
    ratio = f"{t / width_rows[i - 1][1]:.1f}x" if i else ""
    print(f"{n:>6} {t * 1e6:>9.1f} {g:>8.1f} {ratio:>23}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.plot(batches, [r[3] for r in batch_rows], "o-", label="tinytorch Linear")
left.plot(batches, [r[4] for r in batch_rows], "s--", label="NumPy x @ W.T + b")
left.set(xscale="log", xlabel="batch size", ylabel="GFLOP/s", title=f"Linear({width}, {width}): throughput vs batch")
left.legend()
right.loglog(widths, [r[1] * 1e6 for r in width_rows], "o-", label="measured")
right.loglog(widths, [width_rows[-1][1] * 1e6 * (n / widths[-1]) ** 2 for n in widths], ":", label="∝ width² (FLOPs)")
right.set(xlabel="width (in = out)", ylabel="µs per forward", title="batch 64: time vs width")
right.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
"""
On the right, the measured times approach the `width²` line from above: at
small widths the call overhead dominates and the time barely changes; as the
width grows, the ratio column climbs towards the 4× of the FLOP count (a busy
machine can push a single row past it). A layer's cost is its FLOP count only
when it is big enough; below that, the number of calls is what you pay for.
Chapter 14 returns to this with fused kernels, chapter 15 with a roofline.

### Initialisation, measured

Now the experiment the background promised. We push one batch of 512
standard-normal inputs through 20 blocks of `Linear(256, 256)` + ReLU, forward
only, and record the standard deviation of the activations after every block,
for five ways of drawing the weights. For the first four we set the biases to
zero, as is usual with these rules; "PyTorch default" keeps `Linear`'s own
initialisation, bias included. The statistics are computed in float64 so that
huge values do not overflow while we measure them.
"""

# %%
depth, width, batch = 20, 256, 512
init.manual_seed(0)
inputs = Tensor(init.generator().standard_normal((batch, width)).astype(np.float32))
schemes = {
    "too small: N(0, 0.01²)": lambda w: init.normal_(w, 0.0, 0.01),
    "too large: N(0, 1)": lambda w: init.normal_(w, 0.0, 1.0),
    "Xavier uniform": init.xavier_uniform_,
    "Kaiming uniform": lambda w: init.kaiming_uniform_(w, nonlinearity="relu"),
    "PyTorch default": None,
}
stds, spreads, finals = {}, {}, {}
for name, fill in schemes.items():
    stack = [Linear(width, width) for _ in range(depth)]
    if fill is not None:
        for block in stack:
            fill(block.weight)
            init.zeros_(block.bias)
    h, per_layer = inputs, []
    for block in stack:
        h = relu(block(h))
        per_layer.append(float(h.data.std(dtype=np.float64)))
    stds[name], finals[name] = per_layer, h
    spreads[name] = float(h.data.std(axis=0, dtype=np.float64).mean())   # how much samples still differ

print(f"{'initialisation':<24}" + "".join(f"{'layer ' + str(k):>11}" for k in (1, 5, 10, 20)) + f"{'spread@20':>11}")
for name in schemes:
    print(f"{name:<24}" + "".join(f"{stds[name][k - 1]:>11.2e}" for k in (1, 5, 10, 20)) + f"{spreads[name]:>11.2e}")

h, layers_run = finals["too large: N(0, 1)"], depth      # keep stacking N(0, 1) layers until float32 overflows
with np.errstate(over="ignore", invalid="ignore"):
    while np.isfinite(h.data).all() and layers_run < 60:
        block = Linear(width, width)
        init.normal_(block.weight, 0.0, 1.0)
        init.zeros_(block.bias)
        h, layers_run = relu(block(h)), layers_run + 1
print(f"too large, stacked further: the first inf appears at layer {layers_run}")

final = {name: per_layer[-1] for name, per_layer in stds.items()}
assert 1e-21 < final["too small: N(0, 0.01²)"] < 1e-17, "the text says about 1e-19 after 20 layers"
assert 1e19 < final["too large: N(0, 1)"] < 1e23, "the text says about 1e21 after 20 layers"
assert 1e-4 < final["Xavier uniform"] < 1e-2, "the text says Xavier ends about 1000x smaller"
assert all(0.3 < s < 2.0 for s in stds["Kaiming uniform"]), "the text says Kaiming stays near 0.83"
assert spreads["PyTorch default"] < 1e-4 * final["PyTorch default"], "the text says the output hardly depends on the input"
assert 30 <= layers_run <= 42, f"the text says the first inf appears in the mid-30s; measured layer {layers_run}"

plt.figure(figsize=(7, 4))
for name in schemes:
    plt.semilogy(range(1, depth + 1), stds[name], "o-", markersize=3, label=name)
plt.axhline(math.sqrt(1 - 1 / math.pi), color="gray", linestyle=":", label="ReLU of N(0, 2): std 0.83")
plt.xticks([1, 5, 10, 15, 20])
plt.xlabel("layer (Linear + ReLU)")
plt.ylabel("std of activations (log scale)")
plt.title(f"{depth} layers of Linear({width}, {width}) + ReLU, forward only")
plt.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
"""
Each curve is a straight line on the log scale, because each layer multiplies
the variance by the same factor, as derived in the background:

- **Too small** shrinks by about `0.01·√(256/2) ≈ 0.11` per layer: after 20
  layers the activations are around 10⁻¹⁹ (between 10⁻²¹ and 10⁻¹⁷, the cell
  asserts) whatever the input, so the output
  carries essentially nothing (and, as chapter 09 will show, neither do the
  gradients flowing back).
- **Too large** grows by about `√128 ≈ 11` per layer, to around 10²¹ after 20.
  Float32 overflows at 3.4·10³⁸: stacked further, the first `inf` appears in
  the mid-30s (the line under the table says where; the cell asserts layers
  30 to 42), and the first `inf − inf` after that turns values into `nan`.
- **Xavier** loses a factor √2 per layer (it was derived for tanh, not for a
  ReLU that zeroes half its input): about 1000× smaller after 20 layers
  (√2²⁰ = 1024).
- **Kaiming** stays near 0.83, the standard deviation of a ReLU applied to a
  normal of variance 2, which is what it is designed to preserve. It wanders
  by some tens of percent from layer to layer (each layer's 256 random
  weights per output are a finite sample, and the errors compound like a
  random walk; another seed wanders differently), but it does not run away
  by orders of magnitude.
- **PyTorch's default** shrinks the signal by √6 per layer until the biases,
  which it does not zero, dominate: the curve flattens, but the last column
  ("spread@20", how much the outputs for different inputs still differ) shows
  that after 20 layers the output hardly depends on the input at all. PyTorch
  keeps this default for compatibility; deep PyTorch models either call
  `kaiming_*_` themselves or rely on normalisation and residual connections.

None of this needed a gradient. In chapter 09 you will see the same factors
act on the backward pass, where a vanishing signal means gradients too small
to learn from. Even the Kaiming column's "spread" falls with depth: different
inputs become more and more alike as they pass through a deep ReLU stack.
Normalisation (chapter 08) and residual connections (chapter 17) are the
repairs that let networks go much deeper than initialisation alone allows.

### Memory: parameters, dtypes, and when copies are made

A parameter costs its element count times the bytes per element: 4 in
float32, 8 in float64. We count a 784→512→256→10 MLP (the classic MNIST
network), then convert it with `model.double()`, and time the same forward
pass in both precisions.
"""

# %%
def mnist_mlp():
    return Sequential(Linear(784, 512), ReLU(), Linear(512, 256), ReLU(), Linear(256, 10))


init.manual_seed(0)
mlp, mlp64 = mnist_mlp(), mnist_mlp()
mlp64.load_state_dict(mlp.state_dict())
mlp64.double()                                           # same weights, now float64
count = sum(p.numel() for p in mlp.parameters())
formula = (784 * 512 + 512) + (512 * 256 + 256) + (256 * 10 + 10)
bytes32 = sum(p.nbytes for p in mlp.parameters())
bytes64 = sum(p.nbytes for p in mlp64.parameters())
x32 = Tensor(rng.standard_normal((256, 784)).astype(np.float32))
x64 = Tensor(x32.data.astype(np.float64))
t32, t64 = median_seconds(lambda: mlp(x32), lambda: mlp64(x64))
print(f"parameters: {count:,} (formula in*out + out per layer: {formula:,})")
print(f"float32: {bytes32 / 1e6:.2f} MB, forward on batch 256: {t32 * 1e3:.2f} ms")
print(f"float64: {bytes64 / 1e6:.2f} MB, forward on batch 256: {t64 * 1e3:.2f} ms "
      f"({bytes64 / bytes32:.1f}x the memory, {t64 / t32:.1f}x the time)")
print(f"for scale: 124M parameters (GPT-2 small) are {124e6 * 4 / 1e9:.2f} GB in float32, "
      f"{124e6 * 8 / 1e9:.2f} GB in float64, before any gradient or optimizer state")
assert count == formula and bytes64 == 2 * bytes32, "float64 must take exactly twice the bytes"

# %% [markdown]
"""
Float64 doubles the memory exactly (the cell asserts it) and costs more time
too (the printed ratio): the vector units process half as
many float64 numbers per instruction and twice the bytes move through the
caches. That is why every layer in tinytorch
defaults to float32, as PyTorch does, and why float64 is kept for
`gradcheck`, where precision matters more than speed. (Training adds a
gradient per parameter, and Adam two more arrays: chapter 10 measures that.)

Two places in this chapter decide whether memory is copied, and `tracemalloc`
(which NumPy reports its allocations to) shows both. First, the initialiser:
we fill a 2048×2048 float32 weight (16.8 MB) with our in-place `uniform_`, and
with the obvious one-liner that draws a new array and copies it in. Second,
`state_dict()`, which copies every parameter by design.
"""

# %%
import tracemalloc


def peak_extra_bytes(fn) -> int:
    """Bytes allocated at the peak of fn() beyond what was allocated before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak - before


def uniform_via_copy(tensor, low, high):
    tensor.data[...] = init.generator().uniform(low, high, tensor.shape)   # float64 draw, then a copy
    return tensor


big = Tensor(np.empty((2048, 2048), dtype=np.float32))
in_place = peak_extra_bytes(lambda: init.uniform_(big, -0.1, 0.1))
via_copy = peak_extra_bytes(lambda: uniform_via_copy(big, -0.1, 0.1))
saved = peak_extra_bytes(lambda: mlp.state_dict())
print(f"weight: {big.nbytes / 1e6:.1f} MB float32")
print(f"init.uniform_ (in place):   {in_place / 1e6:6.2f} MB extra at peak")
print(f"draw float64, then copy:    {via_copy / 1e6:6.2f} MB extra at peak")
print(f"mlp.state_dict():           {saved / 1e6:6.2f} MB (parameters: {bytes32 / 1e6:.2f} MB)")
assert in_place < 0.01 * big.nbytes, "the text says the in-place fill costs nothing extra"
assert abs(via_copy - 2 * big.nbytes) < 0.05 * big.nbytes, "the text says the float64 draw costs twice the weight"
assert abs(saved - bytes32) < 0.02 * bytes32, "the text says state_dict() costs exactly the parameters again"

# %% [markdown]
"""
The one-liner allocates a float64 temporary twice the size of the weight
before copying it in: for the 16.8 MB layer, 33.6 MB more at the peak; for a model
whose layers are built one by one it is a transient of twice the largest
layer, which is the number that decides whether a large model fits while it
is being constructed. Drawing straight into the tensor's own memory costs
nothing extra.

`state_dict()` allocates exactly the parameters' size again: the price of
copies that later training steps cannot change. PyTorch's `state_dict()`
returns tensors that share memory with the model and costs nothing until they
are written to disk; for a model that fills most of the memory, that is the
difference between being able to checkpoint and not.
"""


# %% [markdown]
"""
## Production context: how this maps to `torch.nn`

The names in this chapter are PyTorch's, so code written against tinytorch
reads like PyTorch code and a PyTorch `state_dict` loads into the tinytorch
twin of a model. The correspondence, and where the real thing does more:

| tinytorch | PyTorch | where PyTorch differs or does more |
| --- | --- | --- |
| `Parameter(data)` | `nn.Parameter(data)` | devices, dtypes, `requires_grad` tracked by the C++ autograd engine |
| `Module.__setattr__` registry | same three dicts | attribute reads go through `__getattr__` (we store attributes twice, see above); forward/backward hooks; `to(device)` |
| `named_parameters()`, `state_dict()` | same names, same order | `state_dict` returns tensors **sharing** memory (we copy) |
| `load_state_dict(sd, strict)` | same | PyTorch loads what fits, *then* raises: a failed load can leave a half-loaded model (we check first) |
| `train()` / `eval()` | same | nothing: it is the same flag, read by Dropout and BatchNorm |
| `Linear` | `nn.Linear` | one fused BLAS call (`addmm`: matmul and bias add in one pass); device kernels |
| `Sequential`, `ModuleList` | same | PyTorch requires Modules; we also accept plain callables (chapter 03's activations) |
| `init.kaiming_uniform_`, ... | `nn.init.*` | draws from a per-device generator; `torch.manual_seed` seeds all of them |

Two choices PyTorch made that this chapter copied deliberately: the weight is
`(out, in)`, and the default Linear initialisation is `U(±1/√in)`. Both keep
tinytorch and PyTorch weights interchangeable.

If PyTorch is installed where this page runs, the cell below builds the same
network in both frameworks, loads PyTorch's `state_dict` straight into the
tinytorch model (same names, same shapes, no conversion beyond NumPy's), and
compares the outputs. Then it feeds both a state_dict with one wrong shape and
counts how many entries changed anyway.
"""

# %%
try:
    import torch
except ImportError:
    torch = None

if torch is None:
    print("PyTorch is not installed here; the comparison is skipped (the tests compare Linear with torch.nn.Linear).")
else:
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    ours = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    ours.load_state_dict(theirs.state_dict())
    x_np = rng.standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x_np)).numpy()
    print("same state_dict keys:", list(ours.state_dict()) == list(theirs.state_dict()))
    print("largest output difference:", float(np.abs(ours(Tensor(x_np)).data - expected).max()))

    bad = {name: torch.zeros_like(value) for name, value in theirs.state_dict().items()}
    bad["2.weight"] = torch.zeros(3, 3)                        # the one entry that does not fit

    def as_arrays(state):
        return {k: v.numpy().copy() if torch.is_tensor(v) else v for k, v in state.items()}

    for name, model, error in [("PyTorch", theirs, RuntimeError), ("tinytorch", ours, ValueError)]:
        before = as_arrays(model.state_dict())
        try:
            model.load_state_dict(bad)
        except error:
            pass
        changed = [k for k, v in as_arrays(model.state_dict()).items() if not np.array_equal(v, before[k])]
        print(f"{name}: load raised; entries changed anyway: {changed}")

# %% [markdown]
"""
## Integration: a classifier from the pieces of chapters 02 to 04

Now the pieces together, the way chapter 05 will use them: a Module subclass
that holds a `Sequential` body and a `Linear` head, built from chapter 02's
Tensor and chapter 03's `ReLU` and `log_softmax`. We give it Kaiming
initialisation with `Module.apply`, which calls a function on every submodule
(how PyTorch code customises initialisation without touching the layers),
check what it computes and what it contains, and move its state into a second,
freshly built copy.
"""


# %%
class Classifier(Module):
    def __init__(self, in_features: int = 64, hidden: int = 32, classes: int = 10):
        super().__init__()
        self.body = Sequential(Linear(in_features, hidden), ReLU(), Linear(hidden, hidden), ReLU())
        self.head = Linear(hidden, classes)

    def forward(self, x):
        return log_softmax(self.head(self.body(x)), dim=-1)   # (B, classes) log-probabilities


def kaiming_for_relu(module):
    if isinstance(module, Linear):
        init.kaiming_uniform_(module.weight, nonlinearity="relu")
        init.zeros_(module.bias)


init.manual_seed(0)
model = Classifier().apply(kaiming_for_relu)
print(model)
images = Tensor(rng.standard_normal((16, 64)).astype(np.float32))      # a batch of 16 8x8 "images"
log_probs = model(images)
names = [n for n, _ in model.named_parameters()]
print("output:", log_probs.shape, "| probabilities sum to 1:", np.allclose(np.exp(log_probs.data).sum(axis=1), 1, atol=1e-5))
print("parameters:", names)
print("count:", sum(p.numel() for p in model.parameters()), "=", (64 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10))

restored = Classifier()                                  # different random weights...
restored.load_state_dict(model.state_dict())             # ...until the state moves across
print("restored copy computes the same:", np.array_equal(restored(images).data, log_probs.data))
model.eval()
print("eval() reached:", [name or "(model)" for name, m in model.named_modules() if not m.training])

assert names == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.weight", "head.bias"]
assert np.array_equal(restored(images).data, log_probs.data)

# %% [markdown]
"""
Every name is the path a reader would follow through the code
(`body.2.weight` is the weight of the layer at position 2 of `body`), which is
what makes a checkpoint readable and an error message useful. In chapter 09
this same `model` gets gradients with one call, `loss.backward()`, because
every operation in it went through a primitive; chapter 10's optimizer will
update exactly the arrays `model.parameters()` lists here.
"""

# %% [markdown]
"""
## Run all the tests

The block below runs every unit test of this chapter again, in order. When the
chapter is run as a script (`python modules/04_layers/layers_dev.py` from the
repository root), this block is what checks it.
"""

# %%
if __name__ == "__main__":
    test_unit_initialisers()
    test_unit_parameter()
    test_unit_module_registration()
    test_unit_modes_and_zero_grad()
    test_unit_state_dict()
    test_unit_linear()
    test_unit_linear_fused()
    test_unit_sequential()
    test_unit_rest_of_api()
    print("All tests of 04_layers passed.")

# %% [markdown]
"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Copies versus views in `state_dict`.** Our `state_dict()` copies every
array; PyTorch's shares memory with the model. For a model whose parameters
take 60% of the machine's memory, which design lets you save a checkpoint
at all, and what goes wrong with the sharing design if a background thread
writes the checkpoint to disk while training continues and updates the
weights in place? How would you get both safety and low memory?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_copies_versus_views", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Copying needs the parameters twice, 60% + 60% = 120% of
memory (the systems analysis measured `state_dict()` allocating exactly the
parameters' size again), so only the sharing design can checkpoint this
model. But a shared state_dict is a set of live views: if a background thread
writes it while the optimizer updates the weights in place, the file holds a
*torn* checkpoint, some tensors (or even parts of one tensor) from step k and
others from step k + 1, a state the model never was in. Nothing fails when it
is written or loaded. Safety with little memory: copy and write one tensor at
a time (peak: 60% plus the largest single tensor), or pause the updates only
while each tensor is copied out (to disk, or to host memory on a GPU), or
snapshot at a step boundary and write from that snapshot tensor by tensor.

**Rubric (2 points).** 1 point for "sharing, because copies need 120%" and
the torn (mixed-step) checkpoint; 1 point for a scheme whose extra memory is
one tensor (or a bounded buffer), not the whole model.
### END SOLUTION
"""

# %% [markdown]
"""
**2. Batch size and latency.** Your measurements show the time per sample
falling steeply from batch 1 to batch 256. A service receives one request
every 2 ms and must answer within 20 ms. What would you do with the gap
between those numbers, what does it cost each request, and where on your
measured curve would you stop?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_batch_size_and_latency", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Batch the requests (*dynamic batching*): hold arriving
requests for a window of W ms and run them as one batch. A request then waits
up to W, plus the batch's compute time t(B), so W + t(B) must stay under
20 ms; with one request every 2 ms a window of W ms collects B ≈ W / 2
requests. `Linear(512, 512)` is far below this budget at any batch in the
table (on the machine the chapter was written on: 34 µs at batch 1, 140 µs at
batch 16, 2.1 ms at batch 1024), so the arrival rate limits the batch, not
the compute: a window of about 16 to 18 ms gives batches of 8 or 9, and each
request pays up to that wait in latency in exchange for a several-fold
cheaper compute per sample (the batch-16 row costs about a quarter as much per
sample as batch 1). Stop where the curve flattens (the GFLOP/s column levels
off, in the hundreds here): beyond it a larger batch only adds latency. With a
bigger model, t(B) grows and the window must shrink to keep W + t(B) < 20 ms.

**Rubric (2 points).** 1 point for dynamic batching with the latency budget
W + t(B) < 20 ms and the batch set by the arrival rate (about 10 at most);
1 point for reading the stopping point off the candidate's own curve (where
time per sample stops falling).
### END SOLUTION
"""

# %% [markdown]
"""
**3. What the registry cannot see.** Discovery by `__setattr__` misses
weights kept in a plain list or dict, and tensors created inside
`forward`. For each, what happens to training (chapter 10), to a saved
checkpoint (chapter 12) and to `eval()`, and would anything crash? How do
`ModuleList`, `register_buffer` and the `TypeError` on assigning a Tensor
over a Parameter close these gaps, and which gap stays open?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_registry_gaps", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** *Layers or Parameters in a plain list or dict:* `parameters()`
does not list them, so the optimizer never updates them (they stay at their
initial values and the model trains worse); `state_dict()` leaves them out,
so a reloaded model has fresh random values there; `eval()` does not reach
layers in the list, so a Dropout or BatchNorm inside stays in training mode
at test time. Nothing crashes: the forward pass works throughout. *Tensors
created in `forward`:* they are rebuilt on every call, never learned and
never saved; harmless for a constant such as a mask (only the time to rebuild
it), wrong for state that should persist (a running statistic kept as a plain
attribute is lost at reload). The fixes: `ModuleList` registers the layers of
a list (parameters, state_dict, eval all see them); `register_buffer` makes
non-learned state part of `state_dict()` and of `.double()`; the `TypeError`
stops `self.weight = self.weight * 2` from quietly replacing a learnable
weight by a constant. Still open: Parameters kept in a plain list or dict
(tinytorch has no `ParameterList` / `ParameterDict`, which PyTorch adds for
this), a plain Tensor attribute that should have been a buffer, and anything
created in `forward`: none of them raises.

**Rubric (2 points).** 1 point for the three consequences (not trained, not
saved, eval not reached) and "no crash"; 1 point for what each mechanism
closes and one gap that stays open.
### END SOLUTION
"""

# %% [markdown]
"""
**4. Depth and initialisation.** With Kaiming initialisation the activation
scale stayed flat over 20 layers, but the spread between different inputs
still shrank. Predict, then measure by changing `depth` and `width` in the
experiment above, what happens at 100 layers, and at width 16 instead of
256. Why does a residual connection `x + f(x)` change the per-layer factor,
and why does the GPT of chapter 17 need both residuals and LayerNorm?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_depth_and_initialisation", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Kaiming makes the variance factor 1 *on average*; at finite
width each layer's factor is a random number near 1, with a spread of order
$1/\sqrt{\text{width}}$, and the scale after $L$ layers is their product: its
logarithm does a random walk whose spread grows like $\sqrt{L/\text{width}}$.
Measured with the experiment's code (Kaiming, three seeds): at width 256 the
final std stays within about 0.5 to 1.5 for 100 layers as for 20, while the
spread between inputs, relative to the std, falls from about 0.24 at 20
layers to 0.11-0.17 at 100: deep ReLU stacks make different inputs alike. At
width 16 each layer's factor is noisy: after 20 layers the std already
ranged from 0.08 to 0.33 over the seeds, and after 100 layers from 10⁻⁶ to
10⁻³, as if the initialisation were wrong (units also die: a width-16 layer
whose ReLUs are all off passes nothing). A residual block computes
$x + f(x)$: with $f(x)$ roughly uncorrelated with $x$ the variances *add*,
$\operatorname{Var}(x) + \operatorname{Var}(f(x))$, so the per-layer factor is
$1 + \epsilon$ instead of a random number that can be 0.8 or 1.2, the identity
path carries the signal (and in backward the gradient) unchanged, and depth
no longer multiplies errors. But adding a block's output at every layer makes
the variance grow with depth (linearly, $L$ blocks add $L$ variances), so GPT
puts a LayerNorm in front of each block (and scales the initialisation of the
residual projections down with depth) to keep every block's input at unit
scale.

**Rubric (2 points).** 1 point for a prediction backed by a measurement
(scale roughly kept at width 256 but spread shrinking with depth; scale
drifting by orders of magnitude at width 16); 1 point for the residual's
additive factor and the role of LayerNorm (growth of the residual stream).
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

You built the layer abstraction the rest of the course stands on, with
PyTorch's names and behaviour:

- **`tinytorch.nn.init`**: one seeded generator (`manual_seed`) and the
  initialisers `uniform_`, `normal_`, `constant_`, `zeros_`, `ones_`,
  `xavier_uniform_`/`xavier_normal_`, `kaiming_uniform_`/`kaiming_normal_`,
  with `calculate_gain` and PyTorch's fan rules; all fill in place, drawing
  straight into the tensor's memory.
- **`Parameter`**: a Tensor marked learnable.
- **`Module`**: parameters, buffers and submodules registered by
  `__setattr__`; `named_parameters()` with dotted names, shared weights once;
  `train()`/`eval()`, `zero_grad()`, `apply()`, `float()`/`double()`; a
  `state_dict()` of copies and a `load_state_dict()` that checks every name
  and shape before it changes anything.
- **`Linear`**: `y = x Wᵀ + b` for any number of leading dimensions, with
  PyTorch's weight layout and default initialisation.
- **`Sequential`** and **`ModuleList`**: containers that register what they hold.

What you measured: a Linear costs `2·B·in·out` FLOPs, but only large batches
and widths reach the machine's BLAS speed, while at batch 1 a call's fixed
overhead is comparable to its arithmetic; float64 costs twice the memory and
more time; a deep ReLU stack keeps its signal only with Kaiming
initialisation, and the other rules make it vanish or explode within 20
layers; copies made by `state_dict()` and by a careless initialiser show up in
`tracemalloc`.

Next, chapter 05 assembles these layers into multi-layer networks with loss
functions and counts their parameters and memory. Chapter 09 makes every layer
here trainable without changing it, and checkpoint 04 checks that what you
built computes, registers and round-trips correctly (`tito module complete
04_layers` exports your code, runs this chapter's tests on it, then runs
`tito checkpoint run 4`).
"""
