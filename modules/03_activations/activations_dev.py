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
# Activations

A neural network layer multiplies by a matrix and adds a vector. Stack as many
of those as you like and you still have one matrix and one vector: a hundred
layers of pure matrix multiplication can draw exactly the same straight
decision boundaries as one. What turns a stack of layers into something that
can bend, fold and carve up its input space is the small function applied to
every number between the layers: the **activation**.

This chapter builds the six activations that modern networks actually use:

| function | formula | where you meet it |
| --- | --- | --- |
| `relu` | $\max(0, x)$ | the default hidden-layer activation of CNNs and MLPs |
| `sigmoid` | $1 / (1 + e^{-x})$ | gates of LSTMs, binary probabilities |
| `tanh` | $(e^x - e^{-x}) / (e^x + e^{-x})$ | RNNs, bounded outputs |
| `gelu` | $x\,\Phi(x)$ (tanh approximation) | transformers: BERT, GPT |
| `softmax` | $e^{x_i} / \sum_j e^{x_j}$ | turning scores into a probability distribution |
| `log_softmax` | $x_i - \log \sum_j e^{x_j}$ | the first half of every classification loss |

and a class for each (`ReLU`, `Sigmoid`, `Tanh`, `GELU`, `Softmax`,
`LogSoftmax`) that the layers of chapter 04 can hold.

They look like one-liners, and three things make them worth a chapter.

* **Numerics.** `exp` overflows float32 at an argument of about 88.7. A naive
  softmax turns a logit of 1000 into `nan`; a naive log-softmax turns a
  confident prediction into `-inf`. Every framework ships the *stable* forms,
  and you will see exactly why.
* **Derivatives.** Learning (chapter 09) multiplies derivatives through the
  network. An activation whose derivative is almost zero over most of its
  input (it *saturates*) stops the signal; one whose derivative is exactly
  zero on half its input can *die*.
* **Cost.** An activation does a handful of arithmetic per element, so its
  speed is set by how many times it sweeps through memory, not by arithmetic.
  We measure it per element on your machine, and find one spelling of $x^3$
  that can be many times slower than another.

**Where this sits.** Chapter 02 built the `Tensor` and its primitives (`Add`,
`Mul`, `Exp`, `Tanh`, `Max`, ...). Every activation here is a composition of
those primitives, nothing else. That is a deliberate constraint: chapter 09
gives each primitive a backward rule, and at that moment every function in
this chapter becomes differentiable without a single line of it changing.

**Learning objectives.** After this chapter you can

1. show numerically why a network without nonlinearities is a single linear map;
2. implement ReLU, sigmoid, tanh, GELU, softmax and log-softmax from Tensor primitives;
3. explain and demonstrate overflow in `exp`, and write the shifted (stable) forms;
4. read an activation's derivative curve and say where it saturates;
5. measure the time and memory an elementwise function costs per element, and say why.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.activation

# %%
#| export

import math
import sys

import numpy as np

from tinytorch.core.function import Function
from tinytorch.core.ops import where
from tinytorch.core.tensor import Tensor

# %% [markdown]
"""
The cell below imports what the chapter itself uses for demonstrations,
measurements and plots. None of it goes into the package.
"""

# %%
import tracemalloc
import warnings

import matplotlib.pyplot as plt

# %% [markdown]
r"""
## Background: why a network needs nonlinearity

A linear layer computes $y = W x + b$. Feed its output into a second one:

$$W_2 (W_1 x + b_1) + b_2 = (W_2 W_1)\,x + (W_2 b_1 + b_2) = W x + b.$$

The composition is again *one* affine map, with $W = W_2 W_1$ and
$b = W_2 b_1 + b_2$. By induction, any depth of linear layers collapses
into a single layer. Depth only helps if something between the layers is
not linear.

Do not take the algebra on trust: build a three-layer linear network with
random weights, collapse it into one matrix and one vector, and compare the
outputs on a batch.
"""

# %%
rng = np.random.default_rng(0)
shapes = [(3, 8), (8, 16), (16, 2)]                      # (in, out) of three layers
weights = [Tensor(rng.standard_normal((o, i)).astype(np.float32) / math.sqrt(i)) for i, o in shapes]
biases = [Tensor(rng.standard_normal(o).astype(np.float32)) for _, o in shapes]
x = Tensor(rng.uniform(-3, 3, (500, 3)).astype(np.float32))   # a batch of 500 points in 3-D

h = x
for W, b in zip(weights, biases):
    h = h @ W.T + b                                     # (500, in) @ (in, out) -> (500, out)
deep = h

W_total = weights[2] @ weights[1] @ weights[0]          # (2, 16) @ (16, 8) @ (8, 3) -> (2, 3)
b_total = (weights[2] @ (weights[1] @ biases[0] + biases[1])) + biases[2]
shallow = x @ W_total.T + b_total

print(f"three linear layers vs one collapsed layer: max |difference| = "
      f"{np.abs(deep.data - shallow.data).max():.2e} (float32 rounding)")

# %% [markdown]
r"""
The difference is float32 rounding, nothing more: the three layers *are* one
layer. Now put a nonlinearity between them, here $\max(0, h)$ written
directly in NumPy (we build the real `relu` below), and ask the strongest
question we can: what is the *best* single affine map that imitates this
network? Least squares answers it. If the network were still affine, the best
fit would reproduce it to rounding error.
"""


# %%
def best_affine_fit_error(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Relative error of the least-squares affine map inputs -> outputs (0 means: it is affine)."""
    design = np.hstack([inputs, np.ones((len(inputs), 1))]).astype(np.float64)   # [x, 1]
    coef, *_ = np.linalg.lstsq(design, outputs.astype(np.float64), rcond=None)
    residual = design @ coef - outputs
    return float(np.linalg.norm(residual) / np.linalg.norm(outputs - outputs.mean(axis=0)))


h = x.data
for i, (W, b) in enumerate(zip(weights, biases)):
    h = h @ W.data.T + b.data
    if i < len(weights) - 1:
        h = np.maximum(h, 0)                          # the nonlinearity between layers
with_relu = h

print(f"best affine fit to the linear stack:        relative error {best_affine_fit_error(x.data, deep.data):.1e}")
print(f"best affine fit to the same stack with ReLU: relative error {best_affine_fit_error(x.data, with_relu):.1e}")

# %% [markdown]
r"""
With the nonlinearity no affine map comes close: the network now computes a
function that bends. A ReLU network is *piecewise* linear: each neuron's
$\max(0, \cdot)$ splits the input space along a hyperplane, and inside each
of the resulting regions the network is affine. More neurons and more layers
make more regions, which is how a ReLU network approximates curved
functions. (The *universal approximation theorem* makes this precise: one
hidden layer with enough units approximates any continuous function on a
bounded domain, for any non-polynomial activation.)

## Background: the six functions

Write $x$ for one input element. The elementwise activations and their derivatives:

| | $f(x)$ | $f'(x)$ | range | $f'$ at its largest |
| --- | --- | --- | --- | --- |
| ReLU | $\max(0, x)$ | $1$ if $x > 0$ else $0$ | $[0, \infty)$ | 1 (for every $x > 0$) |
| sigmoid $\sigma$ | $\dfrac{1}{1 + e^{-x}}$ | $\sigma(x)\,(1 - \sigma(x))$ | $(0, 1)$ | 0.25 at $x = 0$ |
| tanh | $\dfrac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1$ | $1 - \tanh^2 x$ | $(-1, 1)$ | 1 at $x = 0$ |
| GELU | $x\,\Phi(x) = \tfrac{x}{2}\left(1 + \operatorname{erf}(x/\sqrt 2)\right)$ | $\Phi(x) + x\,\varphi(x)$ | $[-0.17, \infty)$ | about 1.13 near $x = 1.4$ |

$\Phi$ and $\varphi$ are the standard normal CDF and density. GELU weights
its input by the probability that a standard normal variable lies below it:
near zero it behaves like $x/2$, far to the right like $x$, far to the left
like 0, and, unlike ReLU, it is smooth and dips slightly below zero.

Two derivative facts matter most for learning:

* **Saturation.** $\sigma'(x)$ and $\tanh'(x)$ fall towards zero as $|x|$
  grows: $\sigma'(5) \approx 0.0066$, $\tanh'(5) \approx 0.00018$. Backpropagation
  multiplies one such factor per layer, so ten sigmoid layers scale a gradient
  by at most $0.25^{10} \approx 10^{-6}$: the *vanishing gradient*.
* **Dead units.** ReLU's derivative is exactly 1 for $x > 0$ (nothing vanishes
  there) and exactly 0 for $x < 0$. A unit whose input is negative for every
  example never gets a gradient again.

Softmax and log-softmax act on a whole vector $z \in \mathbb{R}^C$ (one row of
scores, or *logits*, per example) rather than on one element:

$$\operatorname{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}, \qquad
\operatorname{log\_softmax}(z)_i = z_i - \log \sum_j e^{z_j}.$$

The outputs of softmax are positive and sum to one, so they can be read as
class probabilities. Its derivative is a $C \times C$ matrix,
$\partial s_i / \partial z_j = s_i(\delta_{ij} - s_j)$. Both functions are
unchanged when the same constant is added to every $z_i$, because $e^{z_i + c}
= e^c e^{z_i}$ and $e^c$ cancels. That one line is what makes them computable
for huge logits, as the implementation shows.

**Cost.** Every function here does $O(1)$ work per element, so a tensor of
$n$ elements costs $O(n)$, and softmax over rows of length $C$ costs $O(N C)$
for $N$ rows: a max, an exponential and a sum, and a division. A matrix
multiplication does $k$ multiply-adds for each output element ($k$ the inner
dimension, often hundreds); an activation does a few operations per element,
so its arithmetic is cheap and what costs time is reading and writing memory. Each Tensor operation reads its inputs and
writes a new array, so the number of operations in a formula is, to first
order, the number of sweeps through memory it costs.
"""

# %% [markdown]
r"""
## Implementation

Every function below takes a `Tensor` and returns a new `Tensor`, and is
written only with Tensor operations. Comparisons such as `x > 0` give boolean
tensors that carry no gradient; they are the masks that select between
branches.

### ReLU

$\max(0, x)$ is a choice made element by element: 0 where $x \le 0$, and $x$
itself elsewhere. Chapter 02's `where(condition, a, b)` is exactly that choice,
as one `Where` primitive, and its derivative is the same choice applied to the
gradient: it flows through where $x$ was kept and is blocked where 0 was
chosen.

It is tempting to write $x$ times a 0/1 mask instead, and for finite inputs it
gives the same numbers. But $-\infty \cdot 0$ is `nan`, so that form turns an
overflowed activation into a `nan` that poisons everything after it, where
PyTorch's `relu` (a compare-and-select kernel, like `where`) returns 0.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_relu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def relu(x: Tensor) -> Tensor:
    """max(0, x), written as a select (chapter 02's `where`) so its derivative falls out of Where's.

    Args: x, a Tensor of any shape and float dtype.
    Returns: a Tensor of the same shape and dtype, x where x > 0 and 0 elsewhere (0 for -inf).
    """
    # One call: where(condition, a, b) with the condition x <= 0 (a boolean Tensor, no gradient),
    # 0.0 where it holds and x elsewhere; the number 0.0 takes x's dtype.
    # Pitfall: do not multiply x by a mask (-inf * 0 is nan) or call np.maximum on x.data: it
    # must stay a Tensor operation so chapter 09 can differentiate it. Ask `x <= 0`, so nan stays nan.
    ### BEGIN SOLUTION
    return where(x <= 0, 0.0, x)
    ### END SOLUTION


# %% [markdown]
r"""
Asking `x <= 0` rather than `x > 0` decides what happens to `nan`: every
comparison with `nan` is false, so `nan` is kept and propagates, as in PyTorch,
instead of being silently replaced by 0.

**Test.** `test_unit_relu` checks ReLU against NumPy's `maximum` on random
inputs, that the output keeps the input's dtype and shape (a float32 network
must stay float32, or its memory doubles), and that huge inputs pass through
unchanged.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_relu():
    values = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    out = relu(Tensor(values))
    assert out.shape == (4, 5) and out.dtype == np.float32, f"relu changed shape/dtype: {out.shape} {out.dtype}"
    np.testing.assert_array_equal(out.data, np.maximum(values, 0))
    big = relu(Tensor(np.array([-1e30, -1.0, 0.0, 2.5, 1e30], dtype=np.float32)))
    np.testing.assert_array_equal(big.data, np.array([0.0, 0.0, 0.0, 2.5, 1e30], dtype=np.float32))
    edges = relu(Tensor(np.array([-np.inf, np.inf, np.nan], dtype=np.float32))).data
    assert edges[0] == 0.0 and edges[1] == np.inf and np.isnan(edges[2]), f"relu(-inf, inf, nan) gave {edges}"
    print("✓ relu: max(0, x), dtype and shape kept, relu(-inf) = 0")


test_unit_relu()

# %% [markdown]
r"""
### Sigmoid: three ways to write one formula

The textbook form $1/(1 + e^{-x})$ has a problem for very negative $x$:
$e^{-x}$ overflows. In float32 that happens for $x < -88.7$. The forward
value survives by luck ($1/(1 + \infty) = 0$, the right answer), but the
derivative does not: written out by the chain rule it is
$e^{-x} / (1 + e^{-x})^2 = \infty / \infty$, which is `nan`. When chapter 09
computes gradients by the chain rule, that `nan` is exactly what it would get.
"""


# %%
def naive_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def naive_sigmoid_derivative(x: np.ndarray) -> np.ndarray:
    e = np.exp(-x)
    return e / (1.0 + e) ** 2                     # the chain rule applied to the formula above


probe = np.array([-1000.0, -100.0, -20.0, 0.0, 20.0], dtype=np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("naive sigmoid:           ", naive_sigmoid(probe))
    print("its derivative formula:  ", naive_sigmoid_derivative(probe))
for warning in caught:
    print("NumPy warned:", warning.message)

# %% [markdown]
r"""
The fix uses a rule that comes back in softmax: **never exponentiate a
positive number.** Let $z = e^{-|x|}$, which lies in $(0, 1]$ for every $x$.
Then

$$\sigma(x) = \begin{cases} \dfrac{1}{1 + z} & x \ge 0 \\[2mm] \dfrac{z}{1 + z} & x < 0 \end{cases}$$

(the second line is the first multiplied above and below by $e^{x}$). No
exponent is positive, so nothing overflows, and in the left tail the result is
$z/(1+z)$, a tiny number computed *as* a tiny number, with full relative
precision.

A shortcut many libraries use is $\sigma(x) = (1 + \tanh(x/2))/2$. It cannot
overflow either, but for very negative $x$ it computes $1 + (-0.99999\ldots)$,
subtracting two nearly equal numbers. In float32, whose spacing just below 1
is $6 \times 10^{-8}$, every value of $\sigma$ smaller than that is lost. The
cell after the implementation measures this.

In Tensor operations the branch becomes a 0/1 mask. The mask and the $\pm 1$
sign are constants computed from the input's values (like the condition in `relu`);
the gradient flows through $x$ in `x * sign`, which is $|x|$ with the right slope
on each side.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_sigmoid", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x), computed from z = e^-|x| so that no exponent is ever positive.

    For x >= 0 it is 1 / (1 + z); for x < 0 the same value is z / (1 + z). z lies in
    (0, 1], so nothing overflows and the tiny values of the left tail keep full precision.

    Args: x, a Tensor of any shape. Returns: a Tensor of x's shape and dtype, values in [0, 1].
    """
    # 1. below = (x.data < 0) as an array of x's dtype: a constant 0/1 mask (like relu's condition).
    # 2. z = exp(x * sign) with sign = -1 where x >= 0 and +1 where x < 0 (that is, 2*below - 1),
    #    so the exponent is -|x| and x stays in the graph.
    # 3. numerator = z where x < 0 and 1 elsewhere; return numerator / (z + 1).
    # Pitfall: wrap the masks with Tensor(...) in x's dtype, or float32 inputs come back float64.
    ### BEGIN SOLUTION
    below = np.asarray(x.data < 0, dtype=x.dtype)       # 1 where x < 0: a constant mask, like relu's condition
    z = (x * Tensor(2 * below - 1)).exp()               # x * (-1 or +1) = -|x|, so z = e^-|x|
    numerator = z * Tensor(below) + Tensor(1 - below)   # z where x < 0, 1 where x >= 0
    return numerator / (z + 1.0)
    ### END SOLUTION


# %% [markdown]
r"""
Compare the three forms in float32 against a float64 reference (where
$e^{20}$ is no trouble at all). The tanh shortcut returns exactly 0 for
$\sigma(-20) \approx 2 \times 10^{-9}$; the split form keeps all its digits.
"""

# %%
tails = np.array([-80.0, -30.0, -20.0, -17.0, -5.0, 0.0, 5.0, 30.0], dtype=np.float32)
reference = 1.0 / (1.0 + np.exp(-tails.astype(np.float64)))
via_tanh = (1.0 + np.tanh(tails / 2)) / 2
split = sigmoid(Tensor(tails)).data
print(f"{'x':>7} {'float64 reference':>18} {'tanh form (f32)':>16} {'split form (f32)':>17}")
for x_i, r, t, s in zip(tails, reference, via_tanh, split):
    print(f"{x_i:7.0f} {r:18.6e} {t:16.6e} {s:17.6e}")
rel = lambda got: np.max(np.abs(got - reference) / reference)
print(f"worst relative error: tanh form {rel(via_tanh):.1e}, split form {rel(split):.1e}")

# %% [markdown]
r"""
(Below $x \approx -87$, $\sigma(x)$ is smaller than float32's smallest normal
number, $1.2 \times 10^{-38}$, and precision fades through the subnormal
numbers to 0 whatever the formula.)

Does the left tail matter? A probability of $2 \times 10^{-9}$ versus 0 makes
no difference to a prediction, but it makes all the difference to its
logarithm, and losses take logarithms: $\log 0 = -\infty$. The split form
costs more passes through memory than the tanh form (the systems analysis
measures how many more); we pay it for a sigmoid that is right in both tails.

**Test.** `test_unit_sigmoid` checks values against the closed form in
float64, that inputs of $\pm 1000$ and $\pm\infty$ give exactly 0 and 1
*without any floating-point warning*, and that the left tail keeps its
relative precision in float32 ($\sigma(-20)$ to 6 digits).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_sigmoid", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_sigmoid():
    values = np.random.default_rng(2).uniform(-8, 8, (3, 7))
    np.testing.assert_allclose(sigmoid(Tensor(values)).data, 1 / (1 + np.exp(-values)), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # any overflow warning fails the test
        extremes = sigmoid(Tensor(np.array([-np.inf, -1000.0, 1000.0, np.inf], dtype=np.float32)))
    np.testing.assert_array_equal(extremes.data, [0.0, 0.0, 1.0, 1.0])
    tail = sigmoid(Tensor(np.array([-20.0], dtype=np.float32)))
    assert tail.dtype == np.float32
    np.testing.assert_allclose(tail.data, [1 / (1 + math.exp(20))], rtol=1e-6)
    print("✓ sigmoid: closed form, no overflow at ±1000 or ±inf, accurate left tail")


test_unit_sigmoid()

# %% [markdown]
r"""
### Tanh

`Tanh` is already a primitive (chapter 02), because NumPy computes it
accurately and without overflow in one pass. The activation is a thin wrapper.
Compared with the sigmoid it is zero-centred ($\tanh 0 = 0$) and its slope at
the origin is 1, not 0.25, which is why it was the preferred hidden activation
before ReLU.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_tanh", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def tanh(x: Tensor) -> Tensor:
    """(e^x - e^-x) / (e^x + e^-x): the Tanh primitive, which NumPy computes without overflow.

    Args: x, a Tensor of any shape. Returns: a Tensor of the same shape and dtype, in [-1, 1].
    """
    # Chapter 02's Tensor already has the Tanh primitive as a method: use it, one operation.
    # Pitfall: the formula written out with exp overflows at |x| > 88 in float32; don't.
    ### BEGIN SOLUTION
    return x.tanh()
    ### END SOLUTION


# %% [markdown]
r"""
**Test.** `test_unit_tanh` checks tanh against its definition through the
sigmoid, $\tanh x = 2\sigma(2x) - 1$ (two of our functions must agree), and
that it is odd and bounded by 1 for huge inputs.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_tanh", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_tanh():
    values = np.random.default_rng(3).uniform(-5, 5, 50)
    t = tanh(Tensor(values)).data
    np.testing.assert_allclose(t, 2 * sigmoid(Tensor(2 * values)).data - 1, atol=1e-12)
    np.testing.assert_allclose(tanh(Tensor(-values)).data, -t)
    np.testing.assert_array_equal(tanh(Tensor(np.array([-1e4, 1e4]))).data, [-1.0, 1.0])
    print("✓ tanh: equals 2σ(2x) - 1, odd, bounded")


test_unit_tanh()

# %% [markdown]
r"""
### GELU

GELU weighs $x$ by the probability that a standard normal variable is below
it: $\operatorname{GELU}(x) = x\,\Phi(x) = \tfrac{x}{2}\left(1 + \operatorname{erf}(x/\sqrt{2})\right)$.
NumPy has no $\operatorname{erf}$, so the exact form (given below) uses an `Erf`
primitive that calls Python's `math.erf` once per element: exact, but a
Python call per element. Hendrycks and Gimpel, who introduced GELU, also gave
an approximation built only from primitives we have, and it is yours to write:

$$\operatorname{GELU}(x) \approx \tfrac{x}{2}\left(1 + \tanh\!\left(\sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)\right)\right).$$

This is the form GPT-2 used. The names are PyTorch's: `gelu(x)` and `GELU()`
are the exact form (the default), `approximate="tanh"` asks for this one, and
any other value is refused, so nobody gets one while believing they asked for
the other.

One implementation detail turns out to matter a great deal for speed: the
cube is written `x * x * x`, not `x ** 3`. The systems analysis shows why.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_gelu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
_SQRT_2_OVER_PI = 0.7978845608028654                 # math.sqrt(2 / math.pi), written out: importing computes nothing


def _erf(a: np.ndarray) -> np.ndarray:
    """math.erf on every element (through an object array)."""
    return np.frompyfunc(math.erf, 1, 1)(a)


class Erf(Function):
    """The error function, elementwise, with its derivative beside it (chapter 09's engine calls backward)."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf(a).astype(a.dtype) if a.size else a.copy()

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_arrays
        return (grad * (2.0 / np.sqrt(np.pi)) * np.exp(-a * a),)   # d erf(a)/da = 2/sqrt(pi) e^(-a^2)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU, as PyTorch's gelu: exact, x/2 (1 + erf(x / sqrt 2)), or with approximate="tanh"
    the approximation x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Args: x, a Tensor of any shape; approximate, "none" (exact) or "tanh".
    Returns: a Tensor of x's shape and dtype.
    Raises: ValueError naming the argument for any other `approximate`.
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu(approximate={approximate!r}): use 'none' (exact, the default) or 'tanh'")
    if approximate == "none":                        # given: the exact form, with the Erf primitive
        return x * 0.5 * (Erf.apply(x * (1.0 / math.sqrt(2.0))) + 1.0)
    # inner = sqrt(2/pi) * (x + 0.044715 * x^3), using _SQRT_2_OVER_PI; then x * 0.5 * (tanh(inner) + 1).
    # Pitfall: write the cube as x * x * x, not x ** 3 (the systems analysis measures why).
    # Multiply Tensors by Python floats, not float64 arrays, so float32 stays float32.
    ### BEGIN SOLUTION
    inner = (x + x * x * x * 0.044715) * _SQRT_2_OVER_PI   # x*x*x, not x**3: see the systems analysis
    return x * 0.5 * (inner.tanh() + 1.0)
    ### END SOLUTION


# %% [markdown]
"""
How far is the approximation from the exact function? Evaluate both in
float64 on a fine grid, with `math.erf` for the exact one, and find the
largest difference.
"""

# %%
erf = np.vectorize(math.erf)
grid = np.linspace(-8.0, 8.0, 160_001)
gelu_exact = 0.5 * grid * (1.0 + erf(grid / math.sqrt(2.0)))
gelu_tanh = gelu(Tensor(grid), approximate="tanh").data
gelu_gap = np.abs(gelu_tanh - gelu_exact)
worst = int(gelu_gap.argmax())
print(f"max |tanh approximation - exact GELU| on [-8, 8] = {gelu_gap[worst]:.2e} at x = {grid[worst]:.3f}")
print(f"float32 resolution near GELU's value there:      {np.spacing(np.float32(abs(gelu_exact[worst]))):.1e}")
assert 1e-4 < gelu_gap[worst] < 1e-3, f"the text says the gap is a few times 1e-4; measured {gelu_gap[worst]:.2e}"

# %% [markdown]
r"""
The gap is a few times $10^{-4}$: invisible in a network's accuracy, but far
larger than float32 rounding. That is why a test that compares tinytorch's GELU
of the tanh form with PyTorch must ask PyTorch for `approximate="tanh"`, and why a model trained
with one GELU and run with the other gives slightly different numbers.

**Test.** `test_unit_gelu` checks the tanh form against its formula written
independently in NumPy and against the exact erf form within $10^{-3}$, the
default (exact) form against `math.erf` to rounding, the asymptotes of both
(about $x$ far right, 0 far left, with no overflow at $\pm 10^4$), and that an
unknown `approximate` is refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_gelu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_gelu():
    values = np.random.default_rng(4).uniform(-6, 6, 200)
    formula = 0.5 * values * (1 + np.tanh(math.sqrt(2 / math.pi) * (values + 0.044715 * values ** 3)))
    got = gelu(Tensor(values), approximate="tanh").data
    np.testing.assert_allclose(got, formula, rtol=1e-12, atol=1e-15)
    exact = 0.5 * values * (1 + erf(values / math.sqrt(2)))
    np.testing.assert_allclose(got, exact, atol=1e-3)
    np.testing.assert_allclose(gelu(Tensor(values)).data, exact, rtol=1e-12, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for form in ("none", "tanh"):
            far = gelu(Tensor(np.array([-1e4, 1e4], dtype=np.float32)), approximate=form).data
            np.testing.assert_array_equal(far, [0.0, 1e4])
    try:
        gelu(Tensor(values), approximate="erf")
    except ValueError:
        pass
    else:
        raise AssertionError("gelu(approximate='erf') must raise: the names are 'none' and 'tanh'")
    print("✓ gelu: exact by default, tanh formula within 1e-3 of it, asymptotes, unknown forms refused")


test_unit_gelu()

# %% [markdown]
r"""
### The fused form: one primitive for the layer

The tanh form above runs nine primitives. Each is one more sweep through
memory, one more fresh array, and (once chapter 09 records gradients) one more
array kept for the backward pass. Nothing forces that: the same arithmetic can
run as **one** primitive that works in place on two buffers of its own and
keeps only $t = \tanh(u)$, with $u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)$.
It goes through the array in blocks of 64 K elements (256 KB of float32): a
block's several sweeps then stay in the CPU's cache, and only the first read
and the last write of each element travel to and from main memory.
Its derivative is one expression too. With $k = \sqrt{2/\pi}$ and
$1 - t^2 = (1 + t)(1 - t)$,

$$\frac{d}{dx}\,\tfrac{x}{2}(1 + t) = \tfrac12(1 + t) + \tfrac{x}{2}(1 - t^2)\,k\,(1 + 3 \cdot 0.044715\,x^2)
= (1 + t)\left[\tfrac12 + \tfrac{x}{2}\,k\,(1 + 3 \cdot 0.044715\,x^2)\,(1 - t)\right].$$

`GELUTanh` below carries both: `forward`, and `backward(ctx, grad)` returning
`grad` times that derivative. A primitive's backward is plain NumPy on arrays,
so it can be checked right here against finite differences, without the
autograd engine of chapter 09. `gelu(x, approximate="tanh")` stays the
composition you wrote (the reference, easy to read); the `GELU(approximate="tanh")`
layer, the one transformers use, calls the fused primitive. The systems
analysis measures what it saves.

One more cost hides in `np.empty`. A multi-megabyte array that the allocator
takes fresh from the operating system arrives as untouched pages, and the first
write to each 4 KB page is a *page fault*: the kernel stops the program to map
and zero the page. A training step that allocates the same large buffers every
step pays that every step. A `Workspace` keeps such buffers (`workspace()` is
the one the primitives share): `empty(shape, dtype)` hands back a kept array
that nothing else refers to any more (Python's reference count says so), else
a new one that it keeps, up to a limit. The fused primitives take from it only
the arrays no one else ever sees, here the saved `t` and the backward's scratch
block.
"""


# %%
#| export
_BLOCK = 1 << 16            # elements per block: 256 KB of float32, small enough to stay in a core's cache


class Workspace:
    """Large scratch arrays kept for reuse: a primitive asks for one each step instead of a fresh one.

    A fresh multi-megabyte np.empty is cheap to ask for but not to use: the allocator often takes
    it from the operating system as untouched pages, and every first write to a 4 KB page is a
    page fault. `empty(shape, dtype)` returns a kept array of that shape and dtype that nothing
    else refers to any more (its reference count says so; a view of it counts too), else a new
    one, which it keeps. Only arrays of at least `min_bytes` are kept, at most `max_bytes` in
    all (the oldest are let go first). Its contents are arbitrary, as np.empty's are.
    """

    def __init__(self, min_bytes: int = 1 << 18, max_bytes: int = 1 << 27):
        self.min_bytes, self.max_bytes, self.arrays = min_bytes, max_bytes, []

    def empty(self, shape, dtype) -> np.ndarray:
        shape, dtype = tuple(shape), np.dtype(dtype)
        for array in self.arrays:
            # 3 references: the list, the loop variable and getrefcount's own argument: nobody else.
            if array.shape == shape and array.dtype == dtype and sys.getrefcount(array) <= 3:
                return array
        array = np.empty(shape, dtype)
        if array.nbytes >= self.min_bytes:
            self.arrays.append(array)
            while sum(a.nbytes for a in self.arrays) > self.max_bytes:
                self.arrays.pop(0)                   # let the oldest go (still valid where in use)
        return array

    def clear(self) -> None:
        """Let every kept array go (memory returns once nothing else refers to it)."""
        self.arrays = []


_shared_workspace = None    # made on first use: importing the module does no work


def workspace() -> Workspace:
    """The Workspace shared by the fused primitives (GELUTanh here, chapter 07's attention)."""
    global _shared_workspace
    if _shared_workspace is None:
        _shared_workspace = Workspace()
    return _shared_workspace


class GELUTanh(Function):
    """GELU's tanh form as one primitive: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Forward keeps t = tanh(inner) (and its input); backward is one expression in x and t.
    Both run block by block (_BLOCK elements at a time), so each block's several in-place
    sweeps read and write the CPU's cache instead of main memory.
    """

    @staticmethod
    def forward(ctx, x):
        flat = x.reshape(-1)
        t, out = workspace().empty(flat.shape, flat.dtype), np.empty_like(flat)   # t: kept for backward only
        for i in range(0, flat.size, _BLOCK):
            xb, tb, yb = flat[i:i + _BLOCK], t[i:i + _BLOCK], out[i:i + _BLOCK]
            np.multiply(xb, xb, out=tb)              # tb becomes sqrt(2/pi) (x + 0.044715 x^3)
            tb *= 0.044715 * _SQRT_2_OVER_PI
            tb += _SQRT_2_OVER_PI
            tb *= xb
            np.tanh(tb, out=tb)                      # t = tanh(inner)
            np.add(tb, 1.0, out=yb)                  # out = x/2 (1 + t)
            yb *= xb
            yb *= 0.5
        ctx.save_for_backward(flat, t)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_arrays
        g = grad.reshape(-1)
        dx = np.empty_like(x)
        other = workspace().empty((min(_BLOCK, x.size),), x.dtype)   # one block of scratch space
        for i in range(0, x.size, _BLOCK):
            xb, tb, db = x[i:i + _BLOCK], t[i:i + _BLOCK], dx[i:i + _BLOCK]
            ob = other[:len(xb)]
            np.multiply(xb, xb, out=db)              # (x/2) k (1 + 3 * 0.044715 x^2)
            db *= 1.5 * 0.044715 * _SQRT_2_OVER_PI
            db += 0.5 * _SQRT_2_OVER_PI
            db *= xb
            np.subtract(1.0, tb, out=ob)             # ... times (1 - t), plus 1/2
            db *= ob
            db += 0.5
            np.add(tb, 1.0, out=ob)                  # ... times (1 + t)
            db *= ob
            db *= g[i:i + _BLOCK]                    # chain rule: dL/dx = grad * dGELU/dx
        return (dx.reshape(grad.shape),)


# %% [markdown]
"""
**Test.** `test_unit_gelu_tanh_fused` checks that the primitive computes what
your composition computes (float64 and float32, and float32 stays float32),
and that its backward agrees with central finite differences of its own
forward, on values from $-6$ to $6$, where the slope of GELU changes most.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_gelu_tanh_fused", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_gelu_tanh_fused():
    values = np.random.default_rng(5).uniform(-6, 6, 300)
    fused = GELUTanh.apply(Tensor(values))
    np.testing.assert_allclose(fused.data, gelu(Tensor(values), approximate="tanh").data, rtol=1e-12, atol=1e-15)
    small = values.astype(np.float32)
    fused32 = GELUTanh.apply(Tensor(small)).data
    assert fused32.dtype == np.float32, f"float32 in should give float32 out, got {fused32.dtype}"
    np.testing.assert_allclose(fused32, gelu(Tensor(small), approximate="tanh").data, rtol=1e-5, atol=1e-6)
    ctx = GELUTanh(Tensor(values))                   # a node, as Function.apply would make it
    GELUTanh.forward(ctx, values)
    upstream = np.random.default_rng(6).standard_normal(values.shape)
    (got,) = GELUTanh.backward(ctx, upstream)
    h = 1e-6
    numeric = (GELUTanh.forward(GELUTanh(Tensor(values)), values + h)
               - GELUTanh.forward(GELUTanh(Tensor(values)), values - h)) / (2 * h)
    np.testing.assert_allclose(got, upstream * numeric, rtol=1e-6, atol=1e-8)
    print("✓ GELUTanh: same values as the composition, backward matches finite differences")


test_unit_gelu_tanh_fused()


# %% [markdown]
"""
**Test.** `test_unit_workspace` checks that a workspace hands back the same
array once nothing else refers to it, a different one while something (even a
view) still does, never keeps arrays below its size floor, and lets the oldest
go past its limit.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_workspace", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_workspace():
    pool = Workspace(min_bytes=64, max_bytes=3 * 400)
    first = pool.empty((10, 10), np.float32)             # 400 bytes: kept
    address = first.ctypes.data
    second = pool.empty((10, 10), np.float32)
    assert second.ctypes.data != address, "an array still in use must not be handed out again"
    view = first[2:]
    del first
    third = pool.empty((10, 10), np.float32)
    assert third.ctypes.data != address, "a view keeps its array in use"
    del view, second, third
    again = pool.empty((10, 10), np.float32)
    assert again.ctypes.data == address, "a free kept array is handed back"
    assert pool.empty((10, 10), np.float64).dtype == np.float64, "the dtype is part of the match"
    pool.empty((2,), np.float32)                          # 8 bytes: below the floor, not kept
    assert all(a.nbytes >= 64 for a in pool.arrays)
    assert sum(a.nbytes for a in pool.arrays) <= pool.max_bytes, "past the limit the oldest are let go"
    pool.clear()
    assert pool.arrays == []
    print("✓ Workspace: reuses free arrays only, keeps large ones only, within its limit")

test_unit_workspace()

# %% [markdown]
r"""
### Softmax

Softmax exponentiates every logit. In float32, $e^{89}$ is already infinite,
and logits of a few hundred are routine in an untrained or badly scaled
network. The naive formula then divides $\infty$ by $\infty$:
"""


# %%
def naive_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


logits = np.array([[1.0, 2.0, 3.0],
                   [1000.0, 1001.0, 1002.0]], dtype=np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print(naive_softmax(logits))
for warning in caught:
    print("NumPy warned:", warning.message)

# %% [markdown]
"""
The second row is the first plus 1000, so by the shift invariance it must
give the same probabilities. That invariance is also the cure: subtract each
row's maximum before exponentiating. The largest exponent becomes $e^0 = 1$,
so the sum lies between 1 and $C$ and nothing overflows; small exponents may
underflow to 0, which is the correct probability to float precision.

The maximum is `detach`ed: it is a constant we chose to subtract, and since
the result does not depend on it, no gradient should flow through it. (Chapter
09 makes `detach` meaningful; here it just says what we mean.)
"""


# %% nbgrader={"grade": false, "grade_id": "impl_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, shifted by the max first so exp never overflows.

    Args: x, a Tensor of logits, e.g. (N, C); dim, the axis that sums to 1 (default: the last).
    Returns: a Tensor of x's shape; every slice along dim is positive and sums to 1.
    """
    # 1. Subtract the max along dim (x.amax(dim, keepdim=True): (N, 1) broadcasts against (N, C)), and
    #    .detach() it: it is a constant we chose, the result does not depend on it.
    # 2. Exponentiate (every exponent is now <= 0), then divide by the sum along dim (keepdim=True).
    # Pitfall: without keepdim the (N,) max broadcasts along the wrong axis for square inputs.
    ### BEGIN SOLUTION
    shifted = x - x.amax(dim=dim, keepdim=True).detach()  # softmax(x - c) == softmax(x)
    e = shifted.exp()                                     # every exponent <= 0: values in (0, 1]
    return e / e.sum(dim=dim, keepdim=True)
    ### END SOLUTION


# %% [markdown]
r"""
**Test.** `test_unit_softmax` checks the stable softmax against the naive
formula on moderate logits (where the naive one is fine), that rows sum to 1,
that shifting the logits by 1000 changes nothing, that logits like $\pm 10^4$
give finite one-hot rows with no warning, and that `dim` picks the axis.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_softmax():
    z = np.random.default_rng(5).standard_normal((4, 6))
    s = softmax(Tensor(z)).data
    np.testing.assert_allclose(s, naive_softmax(z), rtol=1e-12)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(softmax(Tensor(z + 1000.0)).data, s, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = softmax(Tensor(np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4]], dtype=np.float32))).data
    assert np.all(np.isfinite(huge)), f"softmax of logits like 1e4 is not finite: {huge}"
    np.testing.assert_array_equal(huge, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ### BEGIN HIDDEN TESTS
    np.testing.assert_allclose(softmax(Tensor(z), dim=0).data.sum(axis=0), 1.0, rtol=1e-12)
    ### END HIDDEN TESTS
    print("✓ softmax: matches the formula, rows sum to 1, shift-invariant, finite at 1e4")


test_unit_softmax()

# %% [markdown]
r"""
### Log-softmax

Classification losses need $\log \operatorname{softmax}(z)$. Taking the log
of the stable softmax is not enough: when one logit dominates, the others'
probabilities underflow to exactly 0, and $\log 0 = -\infty$.
"""

# %%
confident = np.array([[0.0, 200.0]], dtype=np.float32)      # a very sure classifier
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("log(softmax(z)):", np.log(softmax(Tensor(confident)).data))
for warning in caught:
    print("NumPy warned:", warning.message)

# %% [markdown]
r"""
The exact answer for the first class is $-200$, a perfectly ordinary number.
Work in log space from the start instead. With $m = \max_j z_j$,

$$\log \operatorname{softmax}(z)_i = (z_i - m) - \log \sum_j e^{z_j - m}.$$

The sum contains the term $e^0 = 1$, so it is at least 1 and its log is at
least 0: the `Log` primitive never sees zero, and the result is never
$-\infty$ for finite logits. This is the *log-sum-exp trick*.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_log_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - log(sum(exp(x))) along dim, shifted by the max so large logits stay finite.

    Args: x, a Tensor of logits, e.g. (N, C); dim, the axis to normalise over.
    Returns: a Tensor of x's shape; exp of it sums to 1 along dim, and it is never -inf for finite x.
    """
    # shifted = x - max(x, dim, keepdim).detach(); return shifted - log(sum(exp(shifted), dim, keepdim)).
    # The sum contains e^0 = 1, so the log never sees 0: that is the whole trick.
    # Pitfall: log(softmax(x)) is NOT the same: softmax underflows to 0 and log(0) = -inf.
    ### BEGIN SOLUTION
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()   # the sum is >= 1: log never sees 0
    ### END SOLUTION


# %% [markdown]
r"""
**Test.** `test_unit_log_softmax` checks that log-softmax equals the log of
softmax where that is safe, that it stays finite and exact (the logit gap)
where the naive form gives $-\infty$, and that exponentiating it gives rows
summing to 1.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_log_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_log_softmax():
    z = np.random.default_rng(6).standard_normal((5, 4))
    ls = log_softmax(Tensor(z)).data
    np.testing.assert_allclose(ls, np.log(naive_softmax(z)), rtol=1e-12)
    np.testing.assert_allclose(np.exp(ls).sum(axis=-1), 1.0, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        far = log_softmax(Tensor(np.array([[0.0, 200.0], [1e4, -1e4]], dtype=np.float32))).data
    np.testing.assert_allclose(far, [[-200.0, 0.0], [0.0, -2e4]])
    print("✓ log_softmax: log of softmax, finite and exact for huge gaps")


test_unit_log_softmax()

# %% [markdown]
"""
### Activation layers

A network description is easier to read as a list of layers,
`[Linear, ReLU, Linear, Softmax]`, than as nested function calls. So each
function gets a small class whose instances are called like functions, with
PyTorch's names: `ReLU()`, `Sigmoid()`, `Tanh()`, `GELU()`,
`Softmax(dim=-1)`, `LogSoftmax(dim=-1)`.

In PyTorch these are `nn.Module`s. Here they are plain callables, because
`Module` (which finds a layer's parameters, switches train/eval mode and
saves state) arrives in chapter 04, and an activation has no parameters, no
state and no mode. Chapter 04's `Sequential` accepts any callable, so these
sit between its `Linear` layers as they are. Two more deliberate differences:
`Softmax` and `LogSoftmax` default to `dim=-1` (PyTorch's default, `None`,
guesses the axis and warns), and `GELU` defaults to the tanh form.
"""


# %%
#| export
class _Activation:
    """A parameter-free layer: calling it applies its function. (Module arrives in chapter 04.)"""

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class ReLU(_Activation):
    """max(0, x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class Sigmoid(_Activation):
    """1 / (1 + e^-x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Tanh(_Activation):
    """tanh(x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class GELU(_Activation):
    """GELU as a layer: exact by default, approximate='tanh' for the tanh form (PyTorch's names)."""

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU(approximate={approximate!r}): use 'none' (exact, the default) or 'tanh'")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh" and np.issubdtype(x.dtype, np.floating):
            return GELUTanh.apply(x)                 # the fused primitive: same values, one node
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class Softmax(_Activation):
    """softmax along `dim` as a layer."""

    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log_softmax along `dim` as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.dim)


# %% [markdown]
"""
**Test.** `test_unit_activation_layers` checks that each class computes
exactly its function, that the classes print like PyTorch's, that `Softmax`
honours its `dim`, and that an unknown `GELU(approximate=...)` is refused with
a `ValueError`.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_activation_layers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_activation_layers():
    x = Tensor(np.random.default_rng(7).standard_normal((3, 4)))
    pairs = [(ReLU(), relu), (Sigmoid(), sigmoid), (Tanh(), tanh), (GELU(), gelu),
             (Softmax(), softmax), (LogSoftmax(), log_softmax)]
    for layer, fn in pairs:
        np.testing.assert_array_equal(layer(x).data, fn(x).data, err_msg=repr(layer))
    assert [repr(layer) for layer, _ in pairs] == [
        "ReLU()", "Sigmoid()", "Tanh()", "GELU(approximate='none')", "Softmax(dim=-1)", "LogSoftmax(dim=-1)"]
    np.testing.assert_allclose(Softmax(dim=0)(x).data.sum(axis=0), 1.0)
    try:
        GELU(approximate="erf")
    except ValueError:
        pass
    else:
        raise AssertionError("GELU(approximate='erf') must raise ValueError")
    print("✓ activation layers: call their functions, PyTorch-style repr, dim honoured")


test_unit_activation_layers()

# %% [markdown]
"""
### The rest of the API

PyTorch also offers each activation as a tensor method, `x.relu()`,
`x.sigmoid()`, `x.softmax(dim)`, `x.log_softmax(dim)`, and `LeakyReLU`
(`x` for positive inputs, `negative_slope * x` otherwise: one more `where`).
They are the functions above under other spellings; nothing to write.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return where(x <= 0, x * negative_slope, x)


class LeakyReLU(_Activation):
    """leaky_relu as a layer."""

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


Tensor.relu = relu
Tensor.sigmoid = sigmoid
Tensor.softmax = lambda self, dim=-1: softmax(self, dim)
Tensor.log_softmax = lambda self, dim=-1: log_softmax(self, dim)


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    x = Tensor(np.array([[-2.0, 0.5], [3.0, -0.1]]))
    np.testing.assert_array_equal(x.relu().data, relu(x).data)
    np.testing.assert_array_equal(x.sigmoid().data, sigmoid(x).data)
    np.testing.assert_array_equal(x.softmax(0).data, softmax(x, 0).data)
    np.testing.assert_array_equal(x.log_softmax(dim=1).data, log_softmax(x, 1).data)
    np.testing.assert_allclose(LeakyReLU(0.1)(x).data, [[-0.2, 0.5], [3.0, -0.01]])
    assert repr(LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    print("✓ the rest of the API: tensor methods and LeakyReLU")


test_unit_rest_of_api()

# %% [markdown]
r"""
## The curves and their derivatives

Plot each elementwise activation and its derivative. The derivatives are not
taken from the formulas in the table: they are *measured* from our functions
by central differences, $f'(x) \approx (f(x+h) - f(x-h)) / 2h$ in float64, and
then checked against the closed forms. (Chapter 09 will get the same numbers
by backpropagation.)
"""

# %%
xs = np.linspace(-6.0, 6.0, 1200)        # an even count: the grid avoids ReLU's kink at exactly 0
step = 1e-5
def gelu_tanh(x: Tensor) -> Tensor:
    """The form you wrote, built only from primitives; this section measures it (the exact one calls math.erf)."""
    return gelu(x, approximate="tanh")


curves = {"ReLU": relu, "sigmoid": sigmoid, "tanh": tanh, "GELU (tanh)": gelu_tanh}
measured = {name: (fn(Tensor(xs + step)).data - fn(Tensor(xs - step)).data) / (2 * step)
            for name, fn in curves.items()}

s_ = 1 / (1 + np.exp(-xs))
u_ = _SQRT_2_OVER_PI * (xs + 0.044715 * xs ** 3)
closed_form = {
    "ReLU": (xs > 0).astype(float),
    "sigmoid": s_ * (1 - s_),
    "tanh": 1 - np.tanh(xs) ** 2,
    "GELU (tanh)": 0.5 * (1 + np.tanh(u_)) + 0.5 * xs * (1 - np.tanh(u_) ** 2) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * xs ** 2),
}
for name in curves:
    print(f"{name:12s} measured vs closed-form derivative: max |difference| = "
          f"{np.abs(measured[name] - closed_form[name]).max():.1e}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, fn in curves.items():
    left.plot(xs, fn(Tensor(xs)).data, label=name)
    right.plot(xs, measured[name], label=name)
left.set(title="activation f(x)", xlabel="x", ylim=(-1.5, 3))
right.set(title="derivative f'(x), measured by central differences", xlabel="x")
for ax in (left, right):
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
Read the right panel from the point of view of a gradient passing backwards
through the activation. Sigmoid's derivative peaks at 0.25 and is nearly zero
beyond $|x| \approx 5$; tanh's peaks at 1 but saturates faster still. ReLU's is
a step: 1 on the right, no saturation at all, and exactly 0 on the left. GELU's
is a smoothed step that overshoots 1 (about 1.13 near $x = 1.4$) and is
slightly negative left of GELU's minimum at $x \approx -0.75$ (down to about
$-0.13$ near $x = -1.4$): a gradient step pushes inputs there away from the minimum. The table
puts numbers on the saturation, and on what it does to a gradient after ten
layers.
"""

# %%
print(f"{'x':>4} {'sigmoid′':>10} {'tanh′':>10} {'GELU′':>8} {'ReLU′':>6}")
for point in [0.5, 1.0, 2.0, 5.0, 10.0]:
    at = np.array([point - step, point + step])
    slope = {name: float(np.diff(fn(Tensor(at)).data)[0] / (2 * step)) for name, fn in curves.items()}
    print(f"{point:4.1f} {slope['sigmoid']:10.2e} {slope['tanh']:10.2e} {slope['GELU (tanh)']:8.3f} {slope['ReLU']:6.1f}")
best_sigmoid_slope = float((sigmoid(Tensor(np.array([step]))).data[0] - 0.5) / step)
print(f"\nthe largest sigmoid slope is {best_sigmoid_slope:.4f}; after 10 sigmoid layers a gradient is "
      f"scaled by at most {best_sigmoid_slope ** 10:.1e}")

# %% [markdown]
r"""
## Systems analysis

### Time per element

Every activation here touches each element a fixed number of times, so the
interesting number is time **per element** on an array too large for the CPU
caches. The cell below times each function on a $2048 \times 2048$ float32
tensor (4 M elements, 16 MB), taking the median of five runs, and compares it
with the cheapest thing one can do to such an array: copy it (one read, one
write). It also counts the primitive operations each function performs, by
briefly wrapping chapter 02's `Function.apply`, through which every primitive
runs. (Comparisons and the sigmoid's masks are NumPy work outside the
primitives; they are not counted but do cost a sweep each.)
"""


# %%
from tinytorch.core.function import Function
from tinytorch.utils.timing import median_time    # chapter 01: the median of several runs


def primitives_used(fn, x: Tensor) -> list[str]:
    """The names of the primitives fn(x) runs, in order."""
    calls, original = [], Function.apply.__func__

    def counting_apply(cls, *inputs, **options):
        calls.append(cls.__name__)
        return original(cls, *inputs, **options)

    Function.apply = classmethod(counting_apply)
    try:
        fn(x)
    finally:
        Function.apply = classmethod(original)
    return calls


activations = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "gelu": gelu_tanh,
               "softmax": softmax, "log_softmax": log_softmax}
big = Tensor(np.random.default_rng(8).standard_normal((2048, 2048)).astype(np.float32))
copy_seconds = median_time(lambda: big.data.copy())
print(f"{'function':12s} {'ms':>7} {'ns/element':>11} {'x copy':>7} {'ops':>4}")
print(f"{'(copy)':12s} {copy_seconds * 1e3:7.2f} {copy_seconds / big.numel() * 1e9:11.2f} {1:7.1f} {'':>4}")
cost = {}
for name, fn in activations.items():
    seconds = median_time(lambda: fn(big))
    cost[name] = seconds / big.numel() * 1e9
    print(f"{name:12s} {seconds * 1e3:7.2f} {cost[name]:11.2f} {seconds / copy_seconds:7.1f} "
          f"{len(primitives_used(fn, Tensor(big.data[:2, :8]))):4d}")
print("\ngelu (tanh) runs:", " ".join(primitives_used(gelu_tanh, Tensor(big.data[:2, :8]))))
copy_ns = copy_seconds / big.numel() * 1e9
assert 0.25 <= cost["tanh"] / copy_ns <= 4, f"the text says tanh costs about a copy; measured {cost['tanh'] / copy_ns:.1f}x"
assert cost["sigmoid"] > 2 * cost["tanh"], "the text says the split sigmoid is among the most expensive"

# %% [markdown]
"""
Read the last two columns together: the cost follows the number of
operations, because each operation is one more sweep through 16 MB of memory
(and one more 16 MB output to allocate). The arithmetic inside (`exp`,
`tanh`) matters much less than the traffic: `tanh`, one primitive, is about
as cheap as a copy. The split-form sigmoid, with seven primitives and its
NumPy masks, is among the most expensive; that is the price of its accurate
tail, and a fused kernel (below) would remove most of it. Timings on a shared
machine jump around by tens of percent from run to run; compare the columns,
not the third digit.

### The cube that can cost more than the rest of GELU

GELU is written with `x * x * x`. Here is what `x ** 3` would have cost, on
positive inputs, negative inputs, and the mixed-sign inputs a network
actually produces (all 4 M float32 elements):
"""

# %%
signed = {"positive": np.abs(big.data), "negative": -np.abs(big.data), "mixed": big.data}
print(f"{'inputs':9s} {'x ** 3':>10} {'x * x * x':>10}   (ns per element)")
for label, values in signed.items():
    pow_ns = median_time(lambda: values ** 3, repeats=3) / values.size * 1e9
    mul_ns = median_time(lambda: values * values * values, repeats=3) / values.size * 1e9
    print(f"{label:9s} {pow_ns:10.2f} {mul_ns:10.2f}")
print(f"all of gelu (x * x * x version), mixed inputs: {cost['gelu']:.2f} ns per element")
mixed_pow_ns = median_time(lambda: big.data ** 3, repeats=3) / big.numel() * 1e9
print(f"on this machine, x ** 3 on mixed inputs costs {mixed_pow_ns / cost['gelu']:.1f}x all of gelu")

# %% [markdown]
"""
Two multiplications are two SIMD sweeps that run at memory speed, whatever
the values. NumPy turns a few exponents of `**` (2, 0.5, -1, 1) into such
fast loops, but a general exponent goes element by element through the C
library's `pow`, which is written for any real exponent and any sign of the
base. That path is slower for every input, and with some C libraries far
slower again for negative bases (the table shows whether yours is one), so
the cost of `x ** 3` can depend on the *values* in the array, not just its
size. Tinytorch's first GELU used `x ** 3`, and on the machine this chapter
was written on the cube alone cost more than the rest of the function (the
last line above gives the ratio on yours). Profile before you guess: the slow part of a
formula is often not the one that looks expensive, and a benchmark on
positive random numbers can hide it.

### Memory: temporaries and what a gradient would keep

Each Tensor operation allocates a new array. Without gradients, Python frees
each temporary as soon as the next operation has used it, so the *peak* is a
few arrays. With `requires_grad=True`, chapter 02's `Function.apply` records
the graph, and every operation keeps its inputs alive for the backward pass
of chapter 09. `tracemalloc` (which NumPy reports its allocations to) measures
both, per element of a 1 M element float32 input (4 bytes per element).
"""


# %%
def memory_per_element(fn, x: Tensor) -> tuple[float, float]:
    """(peak extra bytes while computing, bytes still held afterwards besides the output), per element."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = fn(x)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base - out.nbytes) / x.numel(), (current - base - out.nbytes) / x.numel()


medium = np.random.default_rng(9).standard_normal((1024, 1024)).astype(np.float32)
print(f"{'function':12s} {'peak temporaries':>17} {'kept for backward':>18}   (bytes per element)")
kept_bytes = {}
for name, fn in activations.items():
    peak_plain, _ = memory_per_element(fn, Tensor(medium))
    _, kept_bytes[name] = memory_per_element(fn, Tensor(medium, requires_grad=True))
    print(f"{name:12s} {peak_plain:17.1f} {kept_bytes[name]:18.1f}")
assert 28 <= kept_bytes["gelu"] <= 36 and 32 <= kept_bytes["sigmoid"] <= 40 and kept_bytes["tanh"] < 1, \
    f"the text says gelu keeps ~32 and sigmoid ~36 bytes per element, tanh none; measured {kept_bytes}"

# %% [markdown]
"""
Without gradients the temporaries are modest. With them, GELU keeps about 32
bytes (eight float32 values) for every input element and the split sigmoid
about 36 (nine); tanh keeps nothing extra: its one saved array is its output. For a transformer
whose MLP activations are the largest tensors in the model, that is where
training memory goes. This is the motivation for *activation checkpointing*
(recompute the forward in backward instead of keeping it) and for fused
kernels that save only the input.

### What the fused GELU saves

The `GELU(approximate="tanh")` layer runs the `GELUTanh` primitive instead of
the nine-primitive composition. Same values; the cell below times both on the
4 M element array (forward only: chapter 09 has not built the engine that
would run the composition backward), and measures what each keeps for the
backward pass.
"""

# %%
fused_layer = GELU(approximate="tanh")
composed_seconds = median_time(lambda: gelu_tanh(big))
fused_seconds = median_time(lambda: fused_layer(big))
backward_ctx = GELUTanh(big)
GELUTanh.forward(backward_ctx, big.data)
backward_seconds = median_time(lambda: GELUTanh.backward(backward_ctx, big.data))
_, fused_kept = memory_per_element(fused_layer, Tensor(medium, requires_grad=True))
print(f"gelu (composition): {composed_seconds * 1e3:6.2f} ms forward, {len(primitives_used(gelu_tanh, Tensor(big.data[:2, :8])))} primitives, "
      f"keeps {kept_bytes['gelu']:.0f} bytes per element")
print(f"GELUTanh (fused):   {fused_seconds * 1e3:6.2f} ms forward, "
      f"{len(primitives_used(fused_layer, Tensor(big.data[:2, :8])))} primitive,  keeps {fused_kept:.0f} bytes per element; "
      f"its backward {backward_seconds * 1e3:.2f} ms")
print(f"fused forward speed-up on this machine: {composed_seconds / fused_seconds:.1f}x")
assert composed_seconds / fused_seconds > 1.3, "the text says the fused forward is clearly faster"
assert fused_kept <= 5, f"the text says the fused GELU keeps one float32 per element; measured {fused_kept:.1f} bytes"

# %% [markdown]
"""
One pass through memory replaces nine (the fused primitive's sweeps run
block by block in the cache), and the memory kept for backward drops from
eight float32 values per element to one (`tanh(u)`; the input is kept anyway
by the layer before). The backward is one expression too, a handful of
in-place sweeps per block. Chapter 15's benchmark measures what this does to a whole transformer
block's training step.

### How the cost grows with size

Finally, time per element as the array grows from a thousand to four million
elements. Small arrays are dominated by the fixed cost of each Python call
(creating a Tensor, dispatching to NumPy), large ones by memory.
"""

# %%
sizes = [2 ** k for k in (10, 12, 14, 16, 18, 20, 22)]
flat = np.random.default_rng(10).standard_normal(sizes[-1]).astype(np.float32)
scaling = {name: [] for name in ("copy", "relu", "gelu", "softmax")}
for n in sizes:
    t = Tensor(flat[:n].copy())
    scaling["copy"].append(median_time(lambda: t.data.copy()) / n * 1e9)
    for name in ("relu", "gelu", "softmax"):
        scaling[name].append(median_time(lambda: activations[name](t)) / n * 1e9)
print(f"{'elements':>9} " + " ".join(f"{name:>9}" for name in scaling) + "   (ns per element)")
for i, n in enumerate(sizes):
    print(f"{n:9d} " + " ".join(f"{scaling[name][i]:9.2f}" for name in scaling))
print("rise from the cheapest size to the largest, ns per element: " +
      ", ".join(f"{name} +{per_element[-1] - min(per_element):.2f}" for name, per_element in scaling.items()))
assert scaling["gelu"][0] > 3 * min(scaling["gelu"]), "the text says time per element falls steeply at first"

plt.figure(figsize=(6, 4))
for name, per_element in scaling.items():
    plt.loglog(sizes, per_element, marker="o", label=name)
plt.xlabel("elements")
plt.ylabel("ns per element")
plt.title("time per element: call overhead, then cache, then memory")
plt.legend()
plt.show()

# %% [markdown]
r"""
Time per element falls steeply at first: at a thousand elements, GELU's
operations spend most of their time in Python, not in arithmetic. That is why
frameworks work on batches, and why a GPU, whose per-launch overhead is much
larger, needs even bigger ones. In the middle, while the input and its
temporaries fit in the CPU's caches (a few MB), time per element is lowest.
Beyond that, on most machines, it rises again: every temporary now travels to
and from main memory, and every fresh output array must be mapped in from the
operating system page by page. The last line printed puts numbers on it: a
plain copy pays the rise once per element, GELU once for each of its nine
operations.

**What breaks first at scale.** Not arithmetic: memory. An activation over
a large tensor costs one full read and write per operation in its formula,
and with gradients it also keeps copies of its intermediates.

## Production context

* **Fused kernels.** PyTorch's `relu`, `sigmoid`, `gelu` are each one compiled
  loop: one read, one write, whatever the formula. `torch.compile` goes further
  and fuses a chain of elementwise operations (bias add, GELU, dropout) into a
  single kernel, which is exactly the memory-traffic saving the table above
  argues for. On GPUs the activation is often folded into the epilogue of the
  matrix multiplication that produces its input, so it never touches memory on
  its own.
* **Saving less for backward.** PyTorch's ReLU backward needs only the output
  (where it is positive), and its sigmoid and tanh save only their output. Our
  compositions keep every intermediate. Chapter 09's autograd is correct with
  them; a production framework writes a dedicated backward for each activation
  to save memory.
* **In-place variants.** `nn.ReLU(inplace=True)` overwrites its input instead
  of allocating an output. Tinytorch has no in-place operations: they are an
  optimisation with sharp edges (autograd must check that nobody needed the
  overwritten values).
* **Softmax.** Fast softmax kernels fuse the max, the exponentials, the sum
  and the division into as few passes over each row as they can. The *online
  softmax* recurrence (keep a running max and rescale the running sum whenever
  it changes) needs a single pass, and is the heart of FlashAttention.
  `nn.CrossEntropyLoss` calls `log_softmax` and then picks one entry per row,
  never forming the probabilities; chapter 05 builds it the same way.
* **GELU.** BERT and GPT-2 used the tanh form for speed; PyTorch's default is
  exact. Models ported between frameworks can differ by the few times
  $10^{-4}$ measured above.

## Integration: a network that needs its nonlinearity

XOR is the classic function no linear model can compute: the outputs for
$(0,0), (0,1), (1,0), (1,1)$ are $0, 1, 1, 0$. The best affine fit predicts
0.5 for all four. With one hidden layer of two ReLUs it is exact, using
weights we can write by hand: $h_1 = \operatorname{relu}(x_1 + x_2)$,
$h_2 = \operatorname{relu}(x_1 + x_2 - 1)$, $y = h_1 - 2 h_2$.
"""

# %%
xor_inputs = Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32))
xor_targets = np.array([0, 1, 1, 0], dtype=np.float32)

W1 = Tensor(np.array([[1, 1], [1, 1]], dtype=np.float32))     # (hidden=2, in=2)
b1 = Tensor(np.array([0, -1], dtype=np.float32))
W2 = Tensor(np.array([[1, -2]], dtype=np.float32))            # (out=1, hidden=2)
hidden_layer = relu(xor_inputs @ W1.T + b1)                   # (4, 2) @ (2, 2) -> (4, 2)
xor_out = (hidden_layer @ W2.T).reshape(-1)                   # (4, 2) @ (2, 1) -> (4,)

design = np.hstack([xor_inputs.data, np.ones((4, 1), dtype=np.float32)])
linear_best = design @ np.linalg.lstsq(design, xor_targets, rcond=None)[0]
print("targets:              ", xor_targets)
print("best affine model:    ", np.round(linear_best, 3))
print("two ReLUs, one layer: ", xor_out.data)

# %% [markdown]
"""
And a small classifier written as a list of callables, the way chapter 04's
`Sequential` will run it: a batch of 4 examples with 5 features, a hidden
layer of 16 GELU units, 3 class scores, and a `Softmax`. The weights are
random and deliberately badly scaled, so the scores are in the hundreds,
where a naive softmax would already return `nan`.
"""

# %%
head_rng = np.random.default_rng(11)
A = Tensor(head_rng.standard_normal((16, 5)).astype(np.float32) * 10)   # (hidden, in)
B = Tensor(head_rng.standard_normal((3, 16)).astype(np.float32) * 10)   # (classes, hidden)
features = Tensor(head_rng.standard_normal((4, 5)).astype(np.float32))
layers = [lambda t: t @ A.T, GELU(), lambda t: t @ B.T]               # (4, 5) -> (4, 16) -> (4, 3)
scores = features
for layer in layers:
    scores = layer(scores)
probabilities = Softmax(dim=-1)(scores)
print("scores:\n", np.round(scores.data, 1))
print("probabilities (each row sums to 1):\n", np.round(probabilities.data, 4))
print("log-probabilities (finite, however confident):\n", np.round(LogSoftmax(dim=-1)(scores).data, 1))


# %% [markdown]
"""
**Test.** `test_unit_xor_needs_relu` checks the integration above: the
hand-built ReLU network computes XOR exactly, while the best affine model
misses by 0.5 on every input. If `relu` were the identity, the network would
be affine and this would fail.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_xor_needs_relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_xor_needs_relu():
    h = relu(xor_inputs @ W1.T + b1)
    y = (h @ W2.T).reshape(-1)
    np.testing.assert_array_equal(y.data, xor_targets)
    np.testing.assert_allclose(np.abs(linear_best - xor_targets), 0.5, atol=1e-5)
    print("✓ XOR: exact with two ReLUs, impossible for an affine model")


test_unit_xor_needs_relu()

# %% [markdown]
"""
Everything in this chapter is built from chapter 02's primitives, so nothing
here will be rewritten when chapter 09 adds backward rules: at that point
`relu`, `sigmoid`, `gelu`, `softmax` and `log_softmax` become differentiable,
and the central differences we measured above become what backpropagation
must reproduce (the test suite checks exactly that).

## Run all the tests
"""

# %%
if __name__ == "__main__":
    test_unit_relu()
    test_unit_sigmoid()
    test_unit_tanh()
    test_unit_gelu()
    test_unit_gelu_tanh_fused()
    test_unit_workspace()
    test_unit_softmax()
    test_unit_log_softmax()
    test_unit_activation_layers()
    test_unit_rest_of_api()
    test_unit_xor_needs_relu()
    print("All activation tests passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory traffic.** Your GELU performs nine Tensor operations (the
`gelu (tanh) runs:` line of the systems analysis), each reading one or two full-size
inputs and writing a full-size output. For a transformer MLP activation of shape
(batch 32, sequence 2048, width 3072) in float32, how many bytes does one
forward GELU move through memory in tinytorch, and in a single fused kernel
that reads once and writes once? Which would speed up tinytorch's GELU more:
faster arithmetic or more memory bandwidth?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory_traffic", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The tensor holds 32 × 2048 × 3072 = 201,326,592 ≈ 2.0 × 10⁸
elements, 805 MB in float32. The nine operations (`Mul Mul Mul Add Mul Mul Tanh
Add Mul`) write nine full-size arrays and read thirteen (`x * x`, `(x*x) * x`,
`x + ...` and the final product read two tensors each; the multiplications by a
Python number, `Tanh` and `+ 1.0` read one): 22 × 805 MB ≈ 17.7 GB. Counting
only one read and one write per operation gives 9 × 2 × 805 MB ≈ 14.5 GB, also
accepted. A fused kernel reads 805 MB and writes 805 MB: 1.6 GB, about eleven
times less. Each element costs a few tens of floating-point operations at most
(the tanh is the expensive one), against about 88 bytes moved per element
unfused: a fraction of a flop per byte, far below any CPU's ridge point of
several flops per byte, so GELU is memory-bound. More bandwidth (or fewer
passes, that is, fusion) speeds it up; faster arithmetic barely does.

**Rubric (2 points).** 1 point for the element count and both byte totals
(the unfused one anywhere from 14 to 18 GB, with the reasoning); 1 point for
"memory-bound, so bandwidth or fusion, not arithmetic", with the reason (few
flops per byte moved).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Saved for backward.** The memory table showed how many bytes per element
each activation keeps when its input requires a gradient. Which of them
could, in principle, compute its derivative from its *output* alone (as
PyTorch does for sigmoid and tanh)? For a 24-layer model whose activation
input has the shape of question 1, what would that save with sigmoid as the
activation?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_saved_for_backward", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Sigmoid ($\sigma' = \sigma(1-\sigma)$), tanh ($1 - y^2$) and ReLU
(the derivative is 1 exactly where the output is positive) can be
differentiated from the output alone; softmax too, through
$y \odot (g - \sum_j g_j y_j)$, and log-softmax through
$g - e^{y} \sum_j g_j$. GELU cannot: its derivative
$\Phi(x) + x\varphi(x)$ needs $x$, and $x$ is not a function of the output
(GELU is not one-to-one left of its minimum). The output is kept anyway (the
next layer's matrix multiplication saves its input), so differentiating from
it costs no extra memory. The table shows the split sigmoid keeping about 36
bytes per element today. With 2.01 × 10⁸ elements per layer that is
36 × 2.01 × 10⁸ ≈ 7.2 GB per layer, and 24 × 7.2 ≈ 174 GB for the model, all
of which a sigmoid that saves only its output no longer needs.

**Rubric (2 points).** 1 point for naming sigmoid and tanh (ReLU or softmax a
bonus) and why GELU is not among them; 1 point for the saving worked out as
bytes per element (from the table) × elements × 24 layers, about 170 GB
(any figure from the candidate's own table row is accepted).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Numerical contracts.** Our softmax subtracts the row max; our sigmoid
never exponentiates a positive number. Which other operations in a network
(think of losses, normalisation, attention with masks of $-\infty$) could
overflow, underflow or divide by zero, and what is the analogous trick for
each?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_numerical_contracts", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Cross-entropy computed as `log(softmax(x))` underflows to
`log(0) = -inf`: use log-sum-exp (`log_softmax`). Normalisation divides by a
standard deviation that can be 0: add `eps` inside the square root. Attention
rows that are fully masked with $-\infty$ give `-inf - (-inf) = nan`: mask
with a large finite negative number, or never mask a whole row. `exp` in any
loss or gate overflows past about 88 in float32: shift by the maximum first.

**Rubric (2 points).** 1 point for at least two distinct hazards beyond
softmax and sigmoid; 1 point for a correct trick for each named hazard.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Choosing a formula.** The split-form sigmoid costs more passes than the
tanh form but keeps the left tail. When would you choose the cheaper one,
and how would you make the choice safe (hint: where is `log(sigmoid(x))`
used, and what would you compute instead)?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_choosing_a_formula", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Where only the probability itself is used (a gate that
multiplies a value, a prediction that is thresholded), the relative error in
the far left tail does not matter and the cheaper form is fine. Where the
logarithm of the probability is taken (binary cross-entropy, log-likelihoods),
the tail is the whole answer: compute `log(sigmoid(x))` directly as
`-softplus(-x)` (`logsigmoid`), which stays exact, instead of taking the log
of a probability that has underflowed.

**Rubric (2 points).** 1 point for "cheap when only the value is used";
1 point for naming the log-probability use and the fused `logsigmoid` /
softplus form.
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

* Without a nonlinearity, any stack of linear layers is one linear layer: we
  showed it to float32 rounding, and showed that with ReLU no affine map fits.
* Tinytorch now has `relu`, `sigmoid`, `tanh`, `gelu`, `softmax`,
  `log_softmax` and the layer classes `ReLU`, `Sigmoid`, `Tanh`, `GELU`,
  `Softmax`, `LogSoftmax` (plain callables until `Module` exists), exported to
  `tinytorch.nn.activation` and gathered in `tinytorch.nn` and
  `tinytorch.nn.functional`.
* Stability comes from never exponentiating a positive number: the shifted
  softmax, the log-sum-exp log-softmax and the split sigmoid stay finite for
  logits of $10^4$ and beyond, where the naive formulas give `nan` and `-inf`.
* Tinytorch's GELU is the tanh approximation (PyTorch's default is exact); we
  measured the gap at a few times $10^{-4}$.
* Sigmoid and tanh saturate; ReLU does not, but can die; GELU is a smooth ReLU.
* An activation's cost is memory traffic: time per element follows the number
  of operations, `x ** 3` can cost more than all the rest of GELU, and with
  gradients each operation keeps its intermediate alive.

Next, chapter 04 builds `Module`, `Parameter` and `Linear`, and stacks them
with these activations into layers that hold their own weights.
"""
