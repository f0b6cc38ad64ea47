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
# Autograd

Every chapter so far has computed forwards: tensors in, tensors out. A network
that only runs forward cannot learn. To improve a weight it must know, for that
weight, *if I nudge this number, how does the loss change?* That number is the
weight's gradient, and a network has millions of weights. This chapter builds
the machinery that computes all of them at once, for any computation made of
our primitives: automatic differentiation in reverse mode, *autograd* for short.

Most of the groundwork was laid in chapter 02. Every Tensor operation runs
through a `Function` primitive (`Add`, `Mul`, `MatMul`, `Sum`, `GetItem`, ...).
When one of its inputs requires a gradient, the primitive records itself as a
node of a graph: the output's `_ctx` points at the node, the node points at its
`inputs` and keeps the arrays it will need later (`ctx.saved_arrays`). What is
missing, and what we write here:

1. **one backward rule per primitive**: given the gradient of the loss with
   respect to the primitive's output, return the gradients with respect to its
   inputs. Thirteen small functions, each one or two lines of calculus, each
   shown next to the forward it differentiates (as in micrograd);
2. **an engine**, `Tensor.backward()`, that walks the recorded graph from the
   loss back to the parameters, visiting each node after everything that uses
   it, and adds up what every path contributes;
3. **`no_grad()`**, to stop recording when no gradient is wanted, and
   **`gradcheck()`**, which compares every rule with finite differences.

`Linear`, `ReLU`, `Sequential`, softmax and the losses (and, later, convolution,
attention and normalization) are built only from primitives. None of them
changes in this chapter: once the rules exist, they are trainable. The last
section proves it by training the MLP of chapter 04 without editing it.

The systems side of the story is memory. Backward runs in the opposite order to
forward and needs values that forward computed, so forward must keep them alive
until backward arrives. That is why training needs far more memory than
inference, and why the memory grows with batch size times depth rather than
with the number of parameters. We measure it, and see what `no_grad()` and
freeing the graph after backward give back.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp core.autograd

# %% [markdown]
"""
## Background

### The graph is already there

Chapter 02 records a node whenever an input requires a gradient. Before we
differentiate anything, look at what a small computation leaves behind. The
helper below (for this page only, not part of the package) draws the graph
under a tensor: one box per tensor, an arrow from each input to the node that
used it, and in each box the operation, the value, the arrays the node saved
for backward and, once we have an engine, the gradient.
"""

# %%
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

from tinytorch.core.tensor import Tensor


def graph_tensors(root):
    """Every tensor under root (constants too), each once, inputs before the tensors made from them."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
        elif id(tensor) not in seen:
            seen.add(id(tensor))
            stack.append((tensor, True))
            stack.extend((parent, False) for parent in reversed(tensor._ctx.inputs if tensor._ctx else ()))
    return order


def brief(array):
    """A short label for a small array: its numbers, rounded, or one number."""
    array = np.asarray(array)
    if array.size == 1:
        return f"{array.item():.3g}"
    return np.array2string(array.ravel(), precision=2, suppress_small=True)


def draw_graph(root, names, grads=None, title=""):
    """Draw the graph under `root`, left (inputs) to right (the output).

    names: {id(leaf tensor): label}; grads: {id(tensor): gradient}, or None before an engine exists.
    """
    tensors = graph_tensors(root)
    column = {}
    for t in tensors:                                # an operation sits one column right of its inputs
        if t._ctx is not None:
            column[id(t)] = 1 + max(column.get(id(p), 0) for p in t._ctx.inputs)
    for t in reversed(tensors):                      # a leaf sits just left of its first user
        for p in (t._ctx.inputs if t._ctx else ()):
            if p._ctx is None:
                column[id(p)] = min(column.get(id(p), column[id(t)] - 1), column[id(t)] - 1)
    rows, position = {}, {}
    for t in sorted(tensors, key=lambda t: t._ctx is None):      # operations on the top row
        c = column[id(t)]
        position[id(t)] = (c * 2.6, -1.5 * rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1
    fig, ax = plt.subplots(figsize=(2.2 * (max(column.values()) + 1), 3.6), facecolor="white")
    ax.set_facecolor("white")                        # an explicit light page: legible in dark mode too
    boxes = {}
    for t in tensors:
        if t._ctx is not None:
            saved = ", ".join(str(a.shape) for a in t._ctx.saved_arrays or ()) or "nothing"
            lines, color = [type(t._ctx).__name__, f"value {brief(t.data)}", f"saves {saved}"], "#fff2cc"
        elif t.requires_grad:
            lines, color = [f"{names.get(id(t), 'leaf')} (leaf)", f"value {brief(t.data)}"], "#dae8fc"
        else:
            lines, color = ["constant", f"value {brief(t.data)}"], "#eeeeee"
        if t.requires_grad:
            lines.append("grad ?" if grads is None else f"grad {brief(grads[id(t)])}")
        boxes[id(t)] = ax.text(*position[id(t)], "\n".join(lines), ha="center", va="center", fontsize=8,
                               color="black", bbox=dict(boxstyle="round,pad=0.4", facecolor=color, edgecolor="#333333"))
    fig.canvas.draw()                                # lay the boxes out, so arrows can stop at their edges
    for t in tensors:
        for p in (t._ctx.inputs if t._ctx else ()):
            ax.annotate("", xy=position[id(t)], xytext=position[id(p)],
                        arrowprops=dict(arrowstyle="-|>", color="#555555", shrinkA=2, shrinkB=2,
                                        patchA=boxes[id(p)].get_bbox_patch(), patchB=boxes[id(t)].get_bbox_patch()))
    xs, ys = zip(*position.values())
    ax.set_xlim(min(xs) - 1.3, max(xs) + 1.3)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_title(title, color="black")
    ax.axis("off")
    plt.tight_layout()
    plt.show()


x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)      # (1, 3)
w = Tensor(np.array([[0.5], [-1.0], [0.2]]), requires_grad=True)  # (3, 1)
b = Tensor(np.array([0.1]), requires_grad=True)                   # (1,)
y = ((x @ w + b).tanh() * 3).sum()
leaf_names = {id(x): "x", id(w): "w", id(b): "b"}
draw_graph(y, leaf_names, title="sum(3 * tanh(x @ w + b)) as recorded by forward")
print("nodes:", " -> ".join(type(t._ctx).__name__ for t in graph_tensors(y) if t._ctx is not None))

# %% [markdown]
r"""
Five nodes for `sum(3 * tanh(x @ w + b))`. The constant `3` became a tensor
that needs no gradient, and each box shows what its primitive kept for
later: `MatMul` both factors, `Tanh` its output, `Mul` both factors, `Add` and
`Sum` nothing at all. Backward will visit these nodes from right to left, and
fill in every "grad ?"; we draw the same graph again once the engine exists.

### The chain rule as a message passed backwards

Call the final scalar $L$ (the loss). For every tensor $x$ in the graph write
$\bar{x} = \partial L / \partial x$, an array of the same shape as $x$ (the
*gradient* of $L$ with respect to $x$; autodiff papers call it the adjoint). If
a primitive computes $y = f(a, b)$, the chain rule says

$$
\bar{a}_i \mathrel{+}= \sum_j \bar{y}_j \, \frac{\partial y_j}{\partial a_i},
\qquad
\bar{b}_i \mathrel{+}= \sum_j \bar{y}_j \, \frac{\partial y_j}{\partial b_i}.
$$

Each sum is a *vector–Jacobian product*: the upstream gradient $\bar{y}$ times the
Jacobian $\partial y / \partial a$. Nobody builds that Jacobian. For a
$(512 \times 256) \, @ \, (256 \times 256)$ matmul it would have
$512 \cdot 256 \times 256 \cdot 256 \approx 8.6 \cdot 10^9$ entries, almost all
zero. A backward rule computes the product directly, using what it knows about
the structure of $f$: for $C = AB$ the products are $\bar{A} = \bar{C} B^\top$
and $\bar{B} = A^\top \bar{C}$, two matmuls of the forward's size.

The `+=` matters. When a tensor feeds several operations (a weight used at
every time step, `x * x`, a residual connection), $L$ depends on it along
several paths and its gradient is the *sum* over the paths. The engine adds the
contributions up; the rules never need to know.

### Why reverse mode

There are two orders in which to multiply out the chain rule through
$L = f_n(\dots f_2(f_1(\theta)))$. *Forward mode* carries a derivative along
with the values from $\theta$ to $L$: one pass gives the derivative of
everything with respect to *one* input direction. *Reverse mode* carries
$\bar{y}$ from $L$ back to $\theta$: one pass gives the derivative of *one*
output with respect to everything. Training has exactly one output, the scalar
loss, and millions of inputs, the parameters. Reverse mode gets the whole
gradient for the price of a few forwards; forward mode, or finite differences
(its numerical cousin), would need one pass per parameter. We measure that
difference later in this chapter.

Reverse mode has a price too. Backward runs the graph in the opposite order to
forward, and most rules need values from forward ($\partial(ab)/\partial a = b$,
$\partial e^a / \partial a = e^a$). So forward must *keep* those values until
backward gets to them: memory proportional to depth times batch size.

### What each rule costs

For an input with $n$ elements (for matmul, $A$ is $n \times k$ and $B$ is
$k \times m$):

| primitive | forward flops | backward flops | kept for backward |
| --- | --- | --- | --- |
| `Add`, `Neg` | $n$ | 0 (the gradient passes through) | nothing |
| `Mul` | $n$ | $2n$ | both inputs |
| `Pow`, `Log` | $n$ | $2n$–$3n$ | the input |
| `Exp`, `Tanh` | $n$ | $n$–$2n$ | the output |
| `MatMul` | $2nkm$ | $4nkm$ (two matmuls) | both inputs |
| `Sum` | $n$ | $n$ (a broadcast) | only the input's shape |
| `Max` | $n$ | about $3n$ (a mask) | the input and the result |
| `Reshape`, `Transpose` | 0 (a view) | 0 (a view) | a shape or an axis order |
| `GetItem` | size of the result | size of the input (a scatter) | the index |

Matmuls dominate a network's forward, and backward does two of them for each
one forward did, so a training step costs about three forwards. Memory is the
other column: everything in "kept for backward" stays alive until backward runs.
"""

# %% [markdown]
r"""
## Implementation

### Attaching a rule to a primitive

A rule is a plain function `rule(ctx, grad)`. `ctx` is the node that forward
filled in (its `saved_arrays`, its options such as `ctx.axis`, and
`ctx.needs_input_grad`, one flag per input); `grad` is $\bar{y}$ as a NumPy
array. It returns one gradient per input, or `None` for an input that needs
none. The decorator below fastens a rule onto its primitive as the
`backward` staticmethod that chapter 02 left as a placeholder.
"""

# %%
#| export

import contextlib

import numpy as np

from tinytorch.core.function import (Add, Exp, Function, GetItem, Log, MatMul, Max, Mul, Neg, Pow, Reshape, Sum,
                                     Tanh, Transpose)
from tinytorch.core.tensor import Tensor


def backward_rule(function: type[Function]):
    """Decorator: make `rule(ctx, grad) -> input gradients` the backward of `function`."""
    def attach(rule):
        function.backward = staticmethod(rule)
        return rule
    return attach


# %% [markdown]
r"""
### Testing a rule on its own

Before there is an engine, we can already test a rule, with the idea that
`gradcheck` will generalise at the end of the chapter. Pick any upstream
gradient $g$ and look at the number $s(a) = \sum_j g_j \, y_j(a)$. Its
derivative with respect to $a_i$ is exactly what the rule must return:
$\sum_j g_j \, \partial y_j / \partial a_i$. And we can estimate that derivative
without calculus by nudging $a_i$ both ways:

$$
\frac{\partial s}{\partial a_i} \approx \frac{s(a + \epsilon e_i) - s(a - \epsilon e_i)}{2 \epsilon}.
$$

The central difference is accurate to $O(\epsilon^2)$, so in float64 with
$\epsilon = 10^{-6}$ it agrees with a correct rule to about 8 digits. In float32
the rounding error of $s$, about $10^{-7} |s|$, divided by $2\epsilon$ would drown
the answer: gradient checks always run in float64.

`check_rule` runs one primitive's forward directly on arrays (no engine, no
Tensor operations), calls its rule once, and compares every element with the
central difference. Inputs here have the same shape; broadcasting is the
engine's business and is tested with it.
"""

# %%
rng = np.random.default_rng(0)


def check_rule(primitive, *arrays, eps=1e-6, **options):
    """Compare primitive.backward with central differences of primitive.forward, element by element."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def run(*xs):                                   # a fresh node each time, as Function.apply makes
        ctx = primitive(*(Tensor(x, requires_grad=True) for x in xs))
        return ctx, primitive.forward(ctx, *xs, **options)

    ctx, out = run(*arrays)
    g = np.random.default_rng(1).standard_normal(np.shape(out))        # any upstream gradient
    rule = primitive.backward(ctx, g)
    assert len(rule) == len(arrays), f"{primitive.__name__}: the rule must return one gradient per input"
    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][j] += eps
            minus[i][j] -= eps
            numeric[j] = (np.sum(g * run(*plus)[1]) - np.sum(g * run(*minus)[1])) / (2 * eps)
        np.testing.assert_allclose(rule[i], numeric, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{primitive.__name__}: gradient of input {i}")


# %% [markdown]
r"""
### Sums and negation: `Add`, `Neg`

| forward (chapter 02) | math | backward |
| --- | --- | --- |
| `return a + b` | $y = a + b$, $\; \partial y / \partial a = \partial y / \partial b = 1$ | $\bar{a} = \bar{y}, \; \bar{b} = \bar{y}$ |
| `return -a` | $y = -a$, $\; \partial y / \partial a = -1$ | $\bar{a} = -\bar{y}$ |

Addition hands the upstream gradient to both inputs unchanged: it distributes.
Subtraction needs no rule of its own, because `a - b` is `a + (-b)`.
"""

# %%
#| export
@backward_rule(Add)
def add_backward(ctx, grad):
    return grad, grad                               # d(a+b)/da = d(a+b)/db = 1


@backward_rule(Neg)
def neg_backward(ctx, grad):
    return (-grad,)                                 # d(-a)/da = -1


# %% [markdown]
"""
The test runs both rules through `check_rule` and checks the one property
that makes `Add` cheap: its rule returns the upstream array itself, no copy.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_add_neg_rules", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_add_neg_rules():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_rule(Add, a, b)
    check_rule(Neg, a)
    g = np.ones((2, 3))
    assert all(out is g for out in add_backward(None, g)), "add's rule should pass the gradient through without copying"
    print("Add and Neg rules agree with finite differences")


test_unit_add_neg_rules()

# %% [markdown]
r"""
### Products: `Mul`

| forward | math | backward |
| --- | --- | --- |
| `ctx.save_for_backward(a, b)`<br>`return a * b` | $y = ab$, $\; \partial y/\partial a = b$, $\; \partial y/\partial b = a$ | $\bar{a} = \bar{y}\, b, \; \bar{b} = \bar{y}\, a$ |

This is why `Mul`'s forward saved both factors: each one is the other's
derivative. The rule skips the product for an input that needs no gradient
(`ctx.needs_input_grad`), which is common: in `relu(x) = x * (x > 0)` the mask
needs none, and in `x * 0.5` the constant needs none.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_mul_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@backward_rule(Mul)
def mul_backward(ctx, grad):
    """Gradients of y = a * b (same shapes here: the engine undoes broadcasting).

    Args: ctx, the node (`ctx.saved_arrays` is `(a, b)`, `ctx.needs_input_grad` two flags);
        grad, dL/dy, an array of y's shape.
    Returns: a 2-tuple (dL/da, dL/db); put None in the slot of an input whose flag is False.
    """
    # Each factor is the other's derivative: dL/da = grad * b, dL/db = grad * a.
    # Pitfall: skip the product for a constant (the ReLU mask, the 0.5 in x * 0.5): return None.
    ### BEGIN SOLUTION
    a, b = ctx.saved_arrays
    return (grad * b if ctx.needs_input_grad[0] else None,   # d(ab)/da = b
            grad * a if ctx.needs_input_grad[1] else None)   # d(ab)/db = a
    ### END SOLUTION


# %% [markdown]
"""
The test checks both gradients numerically, and that no work is done for an
input that is a constant (its slot must be `None`).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_mul_rule", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_mul_rule():
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    check_rule(Mul, a, b)
    ctx = Mul(Tensor(a, requires_grad=True), Tensor(b))          # b is a constant
    Mul.forward(ctx, a, b)
    grad_a, grad_b = Mul.backward(ctx, np.ones((3, 2)))
    np.testing.assert_allclose(grad_a, b)
    assert grad_b is None, "Mul computed a gradient for an input that does not need one"
    print("Mul rule agrees with finite differences and skips constants")


test_unit_mul_rule()

# %% [markdown]
r"""
### Powers, exponentials, logarithms, tanh

| forward | math | backward |
| --- | --- | --- |
| `save(a)`, `return a ** p` | $\partial a^p / \partial a = p\, a^{p-1}$ | $\bar{a} = \bar{y}\, p\, a^{p-1}$ |
| `out = exp(a)`, `save(out)` | $\partial e^a / \partial a = e^a = y$ | $\bar{a} = \bar{y}\, y$ |
| `save(a)`, `return log(a)` | $\partial \log a / \partial a = 1/a$ | $\bar{a} = \bar{y} / a$ |
| `out = tanh(a)`, `save(out)` | $\partial \tanh a / \partial a = 1 - \tanh^2 a = 1 - y^2$ | $\bar{a} = \bar{y}\,(1 - y^2)$ |

`Exp` and `Tanh` save their *output*, not their input: their derivatives are
cheapest to write in terms of the result, and the result is kept anyway when the
next operation uses it, so saving it costs nothing extra. Division and square
roots are powers (`a / b = a * b ** -1`, `sqrt(a) = a ** 0.5`) and need no rules
of their own. One special case: for $p = 0$ the formula $0 \cdot a^{-1}$ gives
`nan` at $a = 0$, although $a^0 = 1$ is flat everywhere; the rule returns zeros
there, as PyTorch does.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_pow_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@backward_rule(Pow)
def pow_backward(ctx, grad):
    """Gradient of y = a ** p for a number p (`ctx.exponent`); `ctx.saved_arrays` is `(a,)`.

    Returns: a 1-tuple (dL/da,), an array of a's shape: grad * p * a ** (p - 1).
    """
    # Two special cases first. p == 0: return zeros (the formula gives 0 * a**-1 = nan at a == 0).
    # p == -1 (every division): write -grad / (a * a), not a ** -2, which goes through
    # NumPy's general power routine (the systems analysis times both).
    ### BEGIN SOLUTION
    (a,) = ctx.saved_arrays
    p = ctx.exponent
    if p == 0:
        return (np.zeros_like(grad),)               # a**0 == 1 is flat, even at a == 0
    if p == -1:                                     # division: a multiply and a divide, no general power
        return (-grad / (a * a),)
    return (grad * (p * a ** (p - 1)),)             # d(a^p)/da = p a^(p-1)
    ### END SOLUTION


@backward_rule(Exp)
def exp_backward(ctx, grad):
    (out,) = ctx.saved_arrays
    return (grad * out,)                            # d(e^a)/da = e^a


@backward_rule(Log)
def log_backward(ctx, grad):
    (a,) = ctx.saved_arrays
    return (grad / a,)                              # d(log a)/da = 1/a


@backward_rule(Tanh)
def tanh_backward(ctx, grad):
    (out,) = ctx.saved_arrays
    return (grad * (1 - out * out),)                # d(tanh a)/da = 1 - tanh^2 a


# %% [markdown]
"""
The test checks each rule numerically, with several exponents (including
negative and fractional ones, which division and `sqrt` use), and the
$p = 0$ case at zero, where a careless formula gives `nan`.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_elementwise_rules", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_elementwise_rules():
    a = rng.uniform(0.5, 2.0, (2, 3))                # positive: log and fractional powers need it
    for p in (2, 3, -1, 0.5, -0.5):
        check_rule(Pow, a, exponent=p)
    check_rule(Exp, a)
    check_rule(Log, a)
    check_rule(Tanh, rng.standard_normal((2, 3)))
    ctx = Pow(Tensor(np.zeros(2), requires_grad=True))
    Pow.forward(ctx, np.zeros(2), exponent=0)
    np.testing.assert_array_equal(Pow.backward(ctx, np.ones(2))[0], 0.0, err_msg="d(a**0)/da must be 0, even at a == 0")
    print("Pow, Exp, Log and Tanh rules agree with finite differences")


test_unit_elementwise_rules()

# %% [markdown]
r"""
### Matrix multiplication

For $C = AB$ with $A$ of shape $(n, k)$ and $B$ of shape $(k, m)$, each
$C_{ij} = \sum_l A_{il} B_{lj}$. Then $\partial C_{ij} / \partial A_{il} = B_{lj}$, so

$$
\bar{A}_{il} = \sum_j \bar{C}_{ij} B_{lj} = (\bar{C} B^\top)_{il},
\qquad
\bar{B}_{lj} = \sum_i \bar{C}_{ij} A_{il} = (A^\top \bar{C})_{lj}.
$$

A way to remember it: the shapes only fit one way. $\bar{A}$ must be $(n, k)$,
$\bar{C}$ is $(n, m)$, so it must be $\bar{C}$ times something $(m, k)$: $B^\top$.

`np.matmul` adds two conveniences the rule must undo. Batched inputs
$(\dots, n, k)$ multiply matrix by matrix, which the same formulas handle with
`swapaxes` on the last two axes; if one operand had fewer batch axes, its
gradient comes out with the extra axes, and the engine sums them away (the
same broadcasting rule as for `Add`, below). The commonest such case, a batch
of inputs $(\dots, n, k)$ times one weight matrix $(k, m)$, deserves better:
$\sum_i A_i^\top \bar{C}_i$ over the batch is one matrix product of the
stacked rows, $A^\top \bar{C}$ with $A$ reshaped to one tall matrix of $k$
columns and $\bar{C}$ to one of $m$ columns, so the rule computes it that way,
with no $(\dots, k, m)$ stack to allocate and sum. A 1-D operand is treated as a row
($a$) or a column ($b$) and that axis is dropped from the result, so the rule
puts the axis back on both sides, multiplies, and drops it again.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_matmul_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@backward_rule(MatMul)
def matmul_backward(ctx, grad):
    """Gradients of C = A @ B: dA = dC @ B^T and dB = A^T @ dC, over the last two axes.

    Shapes: A (..., n, k), B (..., k, m), grad (..., n, m); a 1-D A is a row (1, k), a
    1-D B a column (k, 1), and matmul dropped that axis from grad.
    Returns: (dA, dB) of A's and B's shapes (None where `ctx.needs_input_grad` is False).
    """
    # 1. Make 1-D operands 2-D (a[None, :], b[:, None]) and put the dropped axis back into grad.
    # 2. Transpose with np.swapaxes(x, -1, -2), not .T: .T also reverses the batch axes.
    # 3. Drop the axis you added again, so each gradient has its input's exact shape.
    # 4. A batched a (..., n, k) times a 2-D b (a Linear layer's weight): dB is the sum over the batch
    #    of a_i^T @ dC_i, which is ONE product a.reshape(-1, k).T @ grad.reshape(-1, m) of shape (k, m).
    #    Compute it that way: the batched form makes a (..., k, m) stack the engine then sums away.
    ### BEGIN SOLUTION
    a, b = ctx.saved_arrays
    if a.ndim > 2 and b.ndim == 2:                    # batched input times a weight matrix
        k, m = b.shape
        g = np.ascontiguousarray(grad).reshape(-1, m)   # the whole batch as one tall (rows, m) matrix
        grad_a = (g @ b.T).reshape(a.shape) if ctx.needs_input_grad[0] else None   # (..., n, k)
        grad_b = a.reshape(-1, k).T @ g if ctx.needs_input_grad[1] else None       # (k, m): one product
        return grad_a, grad_b
    # Treat 1-D operands as a row (a) or a column (b), as matmul itself does.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = grad[..., None] if b.ndim == 1 else grad     # the column axis matmul dropped
    g2 = g2[..., None, :] if a.ndim == 1 else g2      # the row axis matmul dropped
    grad_a = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_a = g2 @ np.swapaxes(b2, -1, -2)        # (..., n, m) @ (..., m, k) -> (..., n, k)
        grad_a = grad_a[..., 0, :] if a.ndim == 1 else grad_a
    if ctx.needs_input_grad[1]:
        grad_b = np.swapaxes(a2, -1, -2) @ g2        # (..., k, n) @ (..., n, m) -> (..., k, m)
        grad_b = grad_b[..., :, 0] if b.ndim == 1 else grad_b
    return grad_a, grad_b
    ### END SOLUTION


# %% [markdown]
"""
The test covers every shape case the forward accepts where the two batch
shapes are equal: matrix @ matrix, vector @ matrix, matrix @ vector,
vector @ vector (a dot product, whose result is a 0-d array) and batched
matrices, plus the case every `Linear` layer makes: a batch of inputs
(2, 3, 4) times one weight matrix (4, 5), whose weight gradient the rule
returns already summed over the batch, (4, 5), with one matrix product
(step 4). Batches that broadcast against each other are checked through the
engine later.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_matmul_rule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_rule():
    cases = [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)), ((2, 2, 3), (2, 3, 4)),
             ((2, 3, 4), (4, 5))]                                     # batched input @ weight matrix
    for shape_a, shape_b in cases:
        check_rule(MatMul, rng.standard_normal(shape_a), rng.standard_normal(shape_b))
    print(f"MatMul rule agrees with finite differences for {len(cases)} shape cases")


test_unit_matmul_rule()

# %% [markdown]
r"""
### Reductions: `Sum` and `Max`

`Sum` over some axes: every input element contributes with weight 1 to the one
output element it was summed into, so each input element receives that output's
gradient. Backward is a *broadcast*, the mirror image of the reduction:

$$
y = \sum_{i} a_{i} \quad \Rightarrow \quad \bar{a}_i = \bar{y}.
$$

If the reduction dropped the summed axes (`keepdim=False`), we first put them
back as axes of length 1 so that the upstream gradient lines up with the
input. `np.broadcast_to` then makes the full-size gradient as a read-only
*view*: it costs no memory, however large the input.

`Max` passes the gradient only to the element that won:
$\partial \max(a) / \partial a_i = 1$ if $a_i$ is the maximum, else 0. When
several elements tie, the derivative does not exist; we split the gradient
evenly between them (so it still sums to $\bar{y}$), the convention of PyTorch's
`amax` and the value a central difference gives at a two-way tie. Forward saved
the result with its reduced axes kept, so `a == out` broadcasts into the mask
directly.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_sum_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _expand_reduced(grad, ctx):
    """Put back the axes a reduction removed, so grad broadcasts against the input."""
    if ctx.keepdims:
        return grad
    if ctx.axis is None:
        return np.reshape(grad, (1,) * len(ctx.input_shape))
    axes = tuple(a % len(ctx.input_shape) for a in np.atleast_1d(ctx.axis))
    return np.expand_dims(grad, axes)


@backward_rule(Sum)
def sum_backward(ctx, grad):
    """Gradient of a sum over `ctx.axis`: each input element receives its output's gradient.

    Returns: a 1-tuple with an array of `ctx.input_shape`.
    """
    # Put the reduced axes back first (`_expand_reduced(grad, ctx)`, given above), then
    # np.broadcast_to the input's shape: a read-only view that costs no memory.
    # Pitfall: without the expand, grad (2,) against input (2, 3) reduced on axis 1 broadcasts wrongly.
    ### BEGIN SOLUTION
    return (np.broadcast_to(_expand_reduced(grad, ctx), ctx.input_shape),)
    ### END SOLUTION


@backward_rule(Max)
def max_backward(ctx, grad):
    """Gradient of a max over `ctx.axis`: only the elements equal to the max receive it.

    `ctx.saved_arrays` is `(a, out)`, with `out` keeping its reduced axes (keepdims), so
    `a == out` broadcasts into the mask. Returns: a 1-tuple with an array of a's shape.
    """
    # Ties share: divide the mask by its count over `ctx.axis` (keepdims), so it still sums to 1.
    # Pitfall: a boolean mask divided by a count is float64; cast the mask to a.dtype first.
    # Then multiply by the expanded upstream gradient (`_expand_reduced`, as in sum_backward).
    ### BEGIN SOLUTION
    a, out = ctx.saved_arrays                       # out kept its reduced axes (keepdims)
    mask = (a == out).astype(a.dtype)               # float mask in a's dtype: float32 stays float32
    mask /= mask.sum(axis=ctx.axis, keepdims=True)  # ties share the gradient
    return (_expand_reduced(grad, ctx) * mask,)
    ### END SOLUTION


# %% [markdown]
"""
The test reduces over no axis, one axis, a negative axis and a tuple of axes,
with and without `keepdim`, and puts a two-way tie into `Max`'s input on
purpose: the gradient must be split in half. It also checks that `Max` keeps
float32 gradients float32 (a boolean mask divided by its count is float64 in
NumPy, and would silently double the memory of every gradient behind it).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_reduction_rules", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_reduction_rules():
    a = rng.standard_normal((2, 3, 4))
    for axis, keepdims in [(None, False), (1, False), (-1, True), ((0, 2), False), (None, True)]:
        check_rule(Sum, a, axis=axis, keepdims=keepdims)
        check_rule(Max, a, axis=axis, keepdims=keepdims)
    tie = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    check_rule(Max, tie, axis=1)
    ctx = Max(Tensor(tie, requires_grad=True))
    Max.forward(ctx, tie, axis=1)
    np.testing.assert_allclose(Max.backward(ctx, np.ones(2))[0], [[0, 0.5, 0.5], [1, 0, 0]])
    a32 = np.ones((2, 2), dtype=np.float32)
    ctx = Max(Tensor(a32, requires_grad=True))
    out = Max.forward(ctx, a32, axis=None)
    assert Max.backward(ctx, np.ones_like(out))[0].dtype == np.float32, "Max's gradient left float32"
    print("Sum and Max rules agree with finite differences; ties share the gradient")


test_unit_reduction_rules()

# %% [markdown]
"""
### Views: `Reshape` and `Transpose`

A reshape moves no numbers, it only renames positions, so its gradient is the
upstream gradient renamed back: reshape it to the input's shape. A transpose
with axis order `axes` sends input axis `axes[i]` to output axis `i`; undoing
it needs the *inverse* permutation, which `np.argsort(axes)` computes (for a
plain 2-D transpose it is the same swap again). Both are views in NumPy, so
both backward passes are free.
"""


# %%
#| export
@backward_rule(Reshape)
def reshape_backward(ctx, grad):
    return (np.reshape(grad, ctx.input_shape),)


@backward_rule(Transpose)
def transpose_backward(ctx, grad):
    return (np.transpose(grad, np.argsort(ctx.axes)),)


# %% [markdown]
"""
The test uses a 3-axis permutation that is *not* its own inverse,
`(1, 2, 0)`: a rule that applied `axes` instead of its inverse would pass on
every 2-D case and fail here.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_view_rules", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_view_rules():
    a = rng.standard_normal((2, 3, 4))
    check_rule(Reshape, a, shape=(4, 6))
    check_rule(Reshape, a, shape=(24,))
    check_rule(Transpose, a, axes=(1, 2, 0))
    check_rule(Transpose, a[0], axes=(1, 0))
    print("Reshape and Transpose rules agree with finite differences")


test_unit_view_rules()

# %% [markdown]
r"""
### Indexing: `GetItem`

`y = a[index]` copies some elements of `a` into `y`. Backward sends each
element of $\bar{y}$ back to the place it came from and leaves zeros
everywhere else: a *scatter* into a zero array of the input's shape.

For basic indexing (integers and slices), each input element appears in the
output at most once and a plain assignment `full[index] = grad` does it. Integer
arrays are different: `table[[3, 7, 3]]` reads row 3 twice, as an embedding
lookup does for a repeated token, and row 3 must receive *both* gradients.
`full[index] = grad` would keep only the last one (NumPy's fancy assignment does
not accumulate). `np.add.at(full, index, grad)` adds each one, repeats included,
at a cost: it is an unbuffered loop, several times slower than a plain
assignment, so the rule uses it only when the index contains an array. Boolean
masks are arrays too and take the same path. The test of this rule runs
through the engine, after the next section, with an embedding-style lookup.
"""

# %%
#| export
def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


@backward_rule(GetItem)
def getitem_backward(ctx, grad):
    full = np.zeros(ctx.input_shape, dtype=grad.dtype)
    if _is_advanced(ctx.index):
        np.add.at(full, ctx.index, grad)            # a repeated index collects every gradient
    else:
        full[ctx.index] = grad                      # a basic slice touches each element once
    return (full,)


# %% [markdown]
"""
## Primitives that bring their own rules

Chapter 06's `Pad2d` and `Im2col` define their `backward` beside their
`forward` (and check it there with finite differences), so the engine needs
nothing from the layer files: any `Function` subclass with both methods is
differentiated by the same loop. Everything else chapter 06 builds (the matmul
with the filters, the bias, the max or mean over each window) already uses the
rules above.
"""


# %% [markdown]
"""
### Rules for the rest of the API

Chapters 02 and 03 added a few more primitives for the conveniences a PyTorch
user expects. Each rule is short, and none is new in kind: `Cast` casts
the gradient back to the input's dtype; `TakeAlong` (what `max(dim)` picks)
puts the gradient back where the picked elements came from, as `GetItem` does; `Where` routes the gradient to the
operand that was chosen, element by element; `Expand` returns the gradient
as it is (the engine sums it back over the broadcast dimensions, as it does
for `Add`); and `Cat` splits the gradient into the pieces that were joined.
(`Erf`, behind the exact GELU, brought its derivative with it from chapter 03:
a primitive defined outside the engine carries its own `backward`, so the
engine never imports a layer file.)
"""


# %%
#| export
from tinytorch.core.function import Cast, Cat, Expand, TakeAlong, Where


@backward_rule(Cast)
def cast_backward(ctx, grad):
    return (grad.astype(ctx.input_dtype),)


@backward_rule(TakeAlong)
def take_along_backward(ctx, grad):
    full = np.zeros(ctx.input_shape, dtype=grad.dtype)
    if ctx.indices.shape[ctx.axis] == 1:             # one pick per slice (max, min): no index repeats
        np.put_along_axis(full, ctx.indices, grad, axis=ctx.axis)
    else:                                            # a general gather: repeated indices add up
        index = list(np.indices(ctx.indices.shape, sparse=True))
        index[ctx.axis] = ctx.indices
        np.add.at(full, tuple(index), grad)
    return (full,)


@backward_rule(Where)
def where_backward(ctx, grad):
    # Each side gets the gradient where it was chosen, 0 elsewhere: grad times the 0/1 mask, and
    # only for the sides that need it. (np.where would say the same, but at several times the
    # cost of a multiply on this machine: relu, a where, runs this on every activation.)
    keep = ctx.condition
    return (grad * keep if ctx.needs_input_grad[0] else None,
            grad * ~keep if ctx.needs_input_grad[1] else None)


@backward_rule(Expand)
def expand_backward(ctx, grad):
    return (grad,)                                   # the engine sums it back to the input's shape


@backward_rule(Cat)
def cat_backward(ctx, grad):
    return tuple(np.split(grad, np.cumsum(ctx.sizes)[:-1], axis=ctx.dim))



# %% [markdown]
"""
## Walking the graph backwards
"""


# %% [markdown]
"""
Every primitive now has a rule. The engine turns them into gradients of a
whole graph, in three steps, each its own function below:

1. order the graph so that a tensor comes after everything it was computed
   from (a *topological order*), and walk that order backwards, from the loss;
2. at each node, call its rule with the node's accumulated gradient, and
   *add* what comes out to the gradients of its inputs;
3. before adding, sum each input's gradient back to the input's own shape:
   broadcasting in forward becomes summation in backward.

Step 3 comes first in the code, because it is the rule that is easiest to get
wrong and the one every bias gradient depends on.

### Undoing broadcasting

In `x @ W.T + b`, the bias `b` has shape `(out,)` and is added to a
`(batch, out)` matrix. Broadcasting copied `b` into every row, so `b` was used
`batch` times, and by the `+=` of the chain rule its gradient is the *sum* of
the upstream gradient over the batch axis. In general the rule returns a
gradient of the broadcast (output) shape, and the engine sums it back:

- over leading axes the input did not have (`(batch, out)` to `(out,)`);
- over axes where the input had length 1 but the output did not, keeping them
  (`(batch, out)` to `(1, out)`).

Doing this once in the engine, not in every rule, means that `Add`, `Mul` and
`MatMul` need no broadcasting logic at all, and that a primitive added later
(convolution's `im2col` in chapter 06) gets it for free. It is also what makes
batch sizes free to change between steps: the gradient of `b` has `b`'s shape
whatever the batch size was.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_unbroadcast", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient back to `shape`, undoing NumPy broadcasting (the bias-gradient rule).

    Args: grad, an array of the broadcast (output) shape; shape, the input's shape.
    Returns: an array of exactly `shape` (grad itself when it already fits: no copy).
    """
    # 1. Sum over the leading axes that broadcasting added (grad.ndim - len(shape) of them).
    # 2. Then, for every axis where the input had size 1 and grad has more, sum with keepdims=True.
    # Pitfall: a size-1 axis must stay (keepdims), or the shape is wrong for (3, 1) inputs.
    # If grad has fewer axes than shape, return it unchanged: backward reports the faulty rule.
    ### BEGIN SOLUTION
    if grad.shape == shape or grad.ndim < len(shape):
        return grad                                   # (too few axes: a faulty rule; backward says so)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))     # axes broadcasting added in front
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)  # axes of length 1 that were stretched
    return grad
    ### END SOLUTION


# %% [markdown]
"""
The test sums a gradient back to a bias shape, to a keepdim shape, and to a
shape that needs both kinds of summing; each element of the result must count
how many output elements its input element was copied into.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_unbroadcast", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_unbroadcast():
    g = np.ones((5, 3))
    np.testing.assert_array_equal(_unbroadcast(g, (3,)), [5, 5, 5])          # a bias
    np.testing.assert_array_equal(_unbroadcast(g, (1, 3)), [[5, 5, 5]])      # keepdim
    np.testing.assert_array_equal(_unbroadcast(g, (5, 1)), [[3]] * 5)
    np.testing.assert_array_equal(_unbroadcast(np.ones((2, 4, 3)), (4, 1)), [[6]] * 4)
    assert _unbroadcast(g, (5, 3)) is g, "an already-fitting gradient should not be copied"
    print("gradients sum back to every broadcast input shape")


test_unit_unbroadcast()

# %% [markdown]
"""
### A topological order

The loss must be processed first, and a tensor may only pass its gradient on
once it has received *all* of it, that is, after every tensor that used it has
been processed. A depth-first walk that appends a tensor after all of its
inputs gives exactly that order when reversed.

micrograd writes the walk as a recursive function, which is the clearest form.
It breaks on real graphs: Python's recursion limit is about 1000 frames, and an
RNN unrolled over 1000 steps, or a loop of 5000 small updates, is deeper than
that. So we keep our own stack. Each tensor goes onto it twice: once to be
expanded (push its inputs) and once, underneath them, to be emitted after they
are all done. Only tensors that require gradients are visited; constants and
data inputs are left out of the walk altogether.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_topological_order", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor root depends on, each after all of its inputs (iterative: graphs get deep).

    Returns: a list that starts with leaves and ends with `root`, each tensor exactly once,
    holding only tensors that require grad (the inputs of a node are `tensor._ctx.inputs`).
    """
    # Keep a stack of (tensor, expanded) pairs, starting with [(root, False)]. Pop one:
    # - expanded: all its inputs are done, append it to the order;
    # - not expanded and not yet visited (track id(tensor)): mark it, push (tensor, True),
    #   then (parent, False) for every parent that requires grad.
    # Pitfall: no recursion (a 5000-step chain exceeds Python's limit of about 1000 frames).
    ### BEGIN SOLUTION
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)                      # all of its inputs are already in `order`
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._ctx is not None:
            for parent in tensor._ctx.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order
    ### END SOLUTION


# %% [markdown]
"""
The test builds a diamond (a tensor used by two branches that meet again) and
checks the defining property, every tensor after its inputs and each tensor
exactly once, then a chain of 5000 additions, deeper than the recursion limit,
which must not raise.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_topological_order", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_topological_order():
    a = Tensor(np.ones(3), requires_grad=True)
    b = a * 2
    c, d = b.exp(), b * b
    e = (c + d).sum()
    order = _topological_order(e)
    position = {id(t): i for i, t in enumerate(order)}
    assert len(position) == len(order) == 6, "every tensor should appear exactly once"
    for t in order:
        for parent in (t._ctx.inputs if t._ctx else ()):
            if parent.requires_grad:
                assert position[id(parent)] < position[id(t)], "a tensor came before one of its inputs"
    deep = a
    for _ in range(5000):
        deep = deep + 1.0
    assert len(_topological_order(deep)) == 5001
    print("topological order: inputs first, each tensor once, 5000 levels deep without recursion")


test_unit_topological_order()

# %% [markdown]
r"""
### `backward()`

Now the engine itself, in one reversed loop, as in micrograd. It keeps one
dictionary, `grads`, from a tensor to the gradient accumulated for it so far.
The loss starts with $\bar{L} = 1$ (for a non-scalar output the caller passes
the upstream gradient explicitly, as in PyTorch). For each tensor, in reverse
topological order:

- a **leaf** (a tensor the user made, such as a parameter) has no node; its
  gradient is *added* to `tensor.grad`. Accumulating instead of overwriting is
  PyTorch's contract, and what makes gradient accumulation over several small
  batches possible; it is also why every training loop must zero the gradients
  before each step;
- a **node** calls its rule, sums each input gradient back to the input's shape,
  and adds it to that input's entry in `grads`.

Adding is where an engine can waste memory. The first gradient that reaches
a tensor is stored as it is: it may be a read-only view (`broadcast_to`) or an
array another input received too (`Add` hands the same `grad` to both sides),
so it must never be written to. The second makes a new array, the sum, and
that one belongs to the engine: the third and later are added into it in
place (`+=`), and a leaf whose gradient is such a sum takes it without a copy.
Any other array a leaf receives is copied, once, into the leaf's dtype.

The dictionary entry is dropped once a tensor is processed, so at any moment
`grads` holds gradients only for the "frontier" between processed and waiting
tensors.

The last line frees memory. Unless asked to `retain_graph`, each node drops
its saved arrays and its links to its inputs as soon as its rule has run. That
releases everything forward kept alive for backward (we measure how much in the
systems analysis), and it makes a second `backward()` through the same graph
fail with a clear message instead of silently producing garbage.

The engine also checks its inputs and the rules' outputs, six checks in all,
each with a message that says what to do. They are given code, in the next
cell, so that the engine itself (the cell after) is only the loop:

1. `backward()` on a tensor that does not require grad;
2. a non-scalar output without `gradient` (which direction to differentiate?);
3. a `gradient` whose shape is not the output's;
4. a second `backward()` through a graph the first call freed;
5. a rule that returns the wrong number of gradients;
6. a gradient that cannot be summed back to its input's shape.

The last two are there for the person who adds a primitive later: a faulty
rule is reported by name instead of corrupting a gradient three nodes away.
"""


# %%
#| export
def _seed_gradient(output: Tensor, gradient) -> np.ndarray:
    """Checks 1-3: the gradient that backward() starts from, as an array of the output's shape."""
    if not output.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad (no input had requires_grad=True)")
    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError(f"backward(): output has shape {output.shape}; pass `gradient` for a non-scalar output")
        gradient = np.ones_like(output.data)
    gradient = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=output.dtype)
    if gradient.shape != output.shape:
        raise ValueError(f"backward(): gradient has shape {gradient.shape} but the output has shape {output.shape}; "
                         "pass a gradient of the output's shape")
    return gradient


def _check_not_freed(ctx) -> None:
    """Check 4: the node still holds what its rule needs."""
    if ctx.saved_arrays is None:
        raise RuntimeError("backward() through this graph a second time: the first call freed it; "
                           "pass retain_graph=True to the first call")


def _free(ctx) -> None:
    """Drop what a node kept for backward, so intermediate tensors can be collected.

    A node that saved arrays forgets its inputs too: a second backward() through it raises. One
    that saved nothing (Add, Sum, Reshape...) keeps a data-free outline of each input (its shape,
    dtype and node, over a zero-stride array), so backward() may run through it again, as PyTorch allows.
    """
    if ctx.saved_arrays:
        ctx.saved_arrays, ctx.inputs = None, ()
        return
    outlines = []
    for t in ctx.inputs:
        if t._ctx is not None:                          # an intermediate: keep its node, not its data
            outline = Tensor._wrap(np.broadcast_to(np.zeros((), dtype=t.dtype), t.shape))
            outline.requires_grad, outline._ctx = t.requires_grad, t._ctx
            t = outline
        outlines.append(t)
    ctx.inputs = tuple(outlines)


def _check_rule_output(ctx, input_grads) -> None:
    """Check 5: one gradient (or None) per input."""
    if len(input_grads) != len(ctx.inputs):
        raise RuntimeError(f"the backward rule of {type(ctx).__name__} returned {len(input_grads)} gradients for "
                           f"{len(ctx.inputs)} inputs; return one per input (None where not needed)")


def _fit_to_input(ctx, parent: Tensor, parent_grad) -> np.ndarray:
    """Check 6: sum a rule's gradient back to its input's shape (`_unbroadcast`), or say which rule is wrong."""
    parent_grad = _unbroadcast(np.asarray(parent_grad), parent.shape)
    if parent_grad.shape != parent.shape:
        raise RuntimeError(f"the backward rule of {type(ctx).__name__} returned a gradient of shape "
                           f"{parent_grad.shape} for an input of shape {parent.shape}; fix the rule")
    return parent_grad


# %% nbgrader={"grade": false, "grade_id": "impl_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def backward(self: Tensor, gradient=None, retain_graph: bool = False) -> None:
    """Fill `.grad` of every leaf tensor that requires grad with d(self)/d(leaf), accumulating.

    Args:
        gradient: the gradient of some scalar with respect to self; needed when self
            has more than one element (for a scalar it defaults to 1).
        retain_graph: keep the saved arrays so that backward() can run through this
            graph again; by default they are freed as soon as each node is done.
    """
    # 1. grads = {id(self): _seed_gradient(self, gradient)}: id(tensor) -> gradient so far.
    # 2. For each tensor in reversed(_topological_order(self)): pop its gradient (skip if none).
    # 3. A leaf (tensor._ctx is None): add its gradient into tensor.grad (Tensor._wrap(...); start from
    #    None), never overwrite: PyTorch accumulates. Copy it into the tensor's dtype first, unless it
    #    is a sum the engine made itself (keep a set `owned` of the ids whose entry is such a sum).
    # 4. A node: _check_not_freed(ctx); input_grads = type(ctx).backward(ctx, grad);
    #    _check_rule_output(ctx, input_grads); for each (parent, ctx.needs_input_grad flag, gradient)
    #    that is needed and not None, _fit_to_input(...) it and ADD it to grads[id(parent)]: the first
    #    is stored as it is, the second makes a new array (owned from then on), later ones go in with +=.
    # 5. Unless retain_graph: _free(ctx) (drops what the node saved; one that saved nothing stays usable).
    # Pitfall: a rule's gradient may be a read-only view (broadcast_to) or shared with another input:
    # += only into a sum the engine allocated, and only when it keeps the sum's dtype.
    ### BEGIN SOLUTION
    grads = {id(self): _seed_gradient(self, gradient)}
    owned = set()                                     # ids whose entry in grads is a sum the engine made
    for tensor in reversed(_topological_order(self)):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        ctx = tensor._ctx
        if ctx is None:                               # a leaf: accumulate, as PyTorch does
            if id(tensor) not in owned or grad.dtype != tensor.dtype:
                grad = np.array(grad, dtype=tensor.dtype)  # own copy: a rule's array may be shared or read-only
            tensor.grad = Tensor._wrap(grad if tensor.grad is None else tensor.grad.data + grad)
            continue
        _check_not_freed(ctx)
        input_grads = type(ctx).backward(ctx, grad)
        _check_rule_output(ctx, input_grads)
        for parent, needed, parent_grad in zip(ctx.inputs, ctx.needs_input_grad, input_grads):
            if needed and parent_grad is not None:
                key, parent_grad = id(parent), _fit_to_input(ctx, parent, parent_grad)
                if key not in grads:
                    grads[key] = parent_grad              # the first: stored as it is, never written to
                elif key in owned and np.result_type(grads[key], parent_grad) == grads[key].dtype:
                    grads[key] += parent_grad             # our own sum: add in place
                else:
                    grads[key] = grads[key] + parent_grad  # a new array, the engine's from now on
                    owned.add(key)
        if not retain_graph:
            _free(ctx)                                # free what forward kept for us
    ### END SOLUTION


Tensor.backward = backward


# %% [markdown]
"""
The tests pin down the engine's contract, each with a case small enough to
differentiate by hand:

- the chain rule through the graph of the Background section;
- a tensor used twice (`x * x`, `x + x`) collects both contributions;
- two backward calls on two fresh graphs *add* into `.grad`;
- a bias gradient has the bias's shape, whatever the batch size, alternating;
- a non-scalar output without `gradient` raises, and so does a second
  backward without `retain_graph`, while with it the second call works.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_backward():
    x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    w = Tensor(np.array([[0.5], [-1.0], [0.2]]), requires_grad=True)
    b = Tensor(np.array([0.1]), requires_grad=True)
    ((x @ w + b).tanh() * 3).sum().backward()
    z = x.data @ w.data + b.data
    dz = 3 * (1 - np.tanh(z) ** 2)                  # d(3 tanh z)/dz, by hand
    np.testing.assert_allclose(w.grad.data, x.data.T @ dz)
    np.testing.assert_allclose(x.grad.data, dz @ w.data.T)
    np.testing.assert_allclose(b.grad.data, dz.sum(0))

    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data, err_msg="x * x must collect both paths")
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0, err_msg="x + x must collect both paths")
    (x * 3).sum().backward()                        # a second, fresh graph: .grad accumulates
    np.testing.assert_allclose(x.grad.data, 5.0, err_msg="backward must add to .grad, not overwrite it")

    ### BEGIN HIDDEN TESTS
    weight = Tensor(np.ones((3, 2)), requires_grad=True)
    bias = Tensor(np.zeros(2), requires_grad=True)
    for batch in (4, 1, 7):                         # alternating batch sizes
        bias.grad = None
        (Tensor(np.ones((batch, 3))) @ weight + bias).sum().backward()
        assert bias.grad.shape == (2,), f"bias gradient has shape {bias.grad.shape}, the bias has (2,)"
        np.testing.assert_allclose(bias.grad.data, batch)
    ### END HIDDEN TESTS

    y = x * 2
    try:
        y.backward()
        raise AssertionError("backward() on a non-scalar output without `gradient` should raise")
    except RuntimeError as err:
        assert "gradient" in str(err)
    loss = (x * x).sum()
    x.grad = None
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data, err_msg="retain_graph=True should allow a second backward")
    try:
        loss.backward()
        raise AssertionError("a second backward() through a freed graph should raise")
    except RuntimeError as err:
        assert "retain_graph" in str(err)
    print("backward: chain rule, accumulation, bias shapes, and the errors all as specified")


test_unit_backward()

# %% [markdown]
r"""
### The graph of the Background section, with its gradients

Each rule receives the gradient of its node's output. The helper below (page
only) listens in: it wraps every rule of the graph for one `backward()` call,
notes the `grad` each node received, and restores the rules. Read the figure
from right to left: `Sum` starts from 1, `Mul` hands $3 \times 1$ to `Tanh`,
`Tanh` multiplies by $1 - y^2$, `Add` passes the result through to `MatMul`
and to `b` unchanged, and `MatMul` turns it into $\bar{C} w^\top$ for `x` and
$x^\top \bar{C}$ for `w`. The cell checks every number in the figure against the
chain rule worked out by hand.
"""


# %%
def gradients_received(root):
    """Run root.backward(retain_graph=True); return {id(tensor): its gradient} for every tensor that got one."""
    received = {}
    kinds = {type(t._ctx) for t in graph_tensors(root) if t._ctx is not None}
    rules = {kind: kind.backward for kind in kinds}   # the plain functions behind the staticmethods

    def listening(kind, rule):
        def rule_that_records(ctx, grad):
            received[id(ctx)] = grad
            return rule(ctx, grad)
        kind.backward = staticmethod(rule_that_records)

    for kind, rule in rules.items():
        listening(kind, rule)
    try:
        root.backward(retain_graph=True)              # keep the graph: we draw it afterwards
    finally:
        for kind, rule in rules.items():
            kind.backward = staticmethod(rule)
    grads = {id(t): received[id(t._ctx)] for t in graph_tensors(root) if t._ctx is not None}
    grads.update({id(t): t.grad.data for t in graph_tensors(root) if t._ctx is None and t.requires_grad})
    return grads


x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
w = Tensor(np.array([[0.5], [-1.0], [0.2]]), requires_grad=True)
b = Tensor(np.array([0.1]), requires_grad=True)
y = ((x @ w + b).tanh() * 3).sum()
grads = gradients_received(y)
draw_graph(y, {id(x): "x", id(w): "w", id(b): "b"}, grads, title="the same graph after backward()")

z = x.data @ w.data + b.data                          # the chain rule by hand, right to left
dz = 3 * (1 - np.tanh(z) ** 2)
for tensor, expected in [(x, dz @ w.data.T), (w, x.data.T @ dz), (b, dz.sum(0))]:
    np.testing.assert_allclose(grads[id(tensor)], expected)
print(f"z = x @ w + b = {z.item():.3f}; dL/dz = 3 (1 - tanh(z)^2) = {dz.item():.3f}; "
      f"dL/dw = x^T dL/dz = {brief(x.data.T @ dz)}: as drawn")

# %% [markdown]
"""
Now `GetItem`'s rule can be tested the way it is used. An embedding lookup
reads rows of a table by token id; in a real sentence ids repeat, and every
repetition must add its gradient to the row. The test also covers a slice, a
negative step, an integer-and-slice mix, and a boolean mask.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_indexing_gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_indexing_gradients():
    table = Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    ids = np.array([3, 1, 3, 3])                     # token 3 appears three times
    table[ids].sum().backward()
    np.testing.assert_array_equal(table.grad.data[:, 0], [0, 1, 0, 3], err_msg="repeated ids must add up")
    for index in [slice(1, 3), (slice(None, None, -2), 1), (0, slice(1, None)), table.data > 5]:
        table.grad = None
        table[index].sum().backward()
        expected = np.zeros((4, 3))
        expected[index] = 1
        np.testing.assert_array_equal(table.grad.data, expected, err_msg=f"index {index}")
    print("indexing gradients land where the elements came from; repeated ids add up")


test_unit_indexing_gradients()

# %% [markdown]
"""
### Turning the recording off: `no_grad`, `enable_grad`

Recording costs memory (the saved arrays) and time (a node per operation). When
no gradient will be needed, evaluating a model, or updating parameters in an
optimizer, we switch it off. Chapter 02's `Function.apply` already consults a
flag, `Function.grad_enabled`; `no_grad()` clears it for the duration of a
`with` block and restores the previous value afterwards, and `enable_grad()`
sets it (to record one piece inside a `no_grad` region). Both also work as
decorators, because they derive from `contextlib.ContextDecorator`.

A decorator reuses *one* instance for every call, so the previous value cannot
live in a single attribute: when a `@no_grad()` function calls itself, the inner
call would overwrite the outer's saved value and leave recording off forever.
Each instance keeps a stack instead.
"""


# %%
#| export
class _GradMode(contextlib.ContextDecorator):
    """Set whether operations record the graph, and restore the previous setting on exit."""

    enabled: bool

    def __init__(self):
        self._previous: list[bool] = []               # a stack: one instance may be entered re-entrantly

    def __enter__(self):
        self._previous.append(Function.grad_enabled)
        Function.grad_enabled = self.enabled

    def __exit__(self, *exc):
        Function.grad_enabled = self._previous.pop()
        return False


class no_grad(_GradMode):
    """Within `with no_grad():` operations record no graph (evaluation, optimizer updates)."""
    enabled = False


class enable_grad(_GradMode):
    """Within `with enable_grad():` operations record the graph again, even inside no_grad."""
    enabled = True


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph."""
    return Function.grad_enabled


# %% [markdown]
"""
The test checks that nothing is recorded inside `no_grad` (no node, no
`requires_grad`), that `enable_grad` records inside it, that the flag is
restored after an exception, and the re-entrant decorator case that a single
saved attribute gets wrong.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_no_grad", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_no_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
        with enable_grad():
            z = x * 2
    assert y._ctx is None and not y.requires_grad, "no_grad() must not record a graph"
    assert z._ctx is not None and z.requires_grad, "enable_grad() must record inside no_grad()"
    assert is_grad_enabled()
    try:
        with no_grad():
            raise KeyError
    except KeyError:
        pass
    assert is_grad_enabled(), "no_grad() must restore recording after an exception"

    @no_grad()
    def countdown(n):
        assert not is_grad_enabled()
        return countdown(n - 1) if n else (x * 2)
    assert countdown(3)._ctx is None
    assert is_grad_enabled(), "a re-entrant @no_grad() function left recording switched off"
    print("no_grad and enable_grad record exactly when they should, and restore the flag")


test_unit_no_grad()

# %% [markdown]
r"""
### `gradcheck`: every rule against finite differences, through the engine

`check_rule` tested rules one at a time. `gradcheck(fn, inputs)` tests the
whole machinery: any function of tensors, any graph, broadcasting, the engine's
accumulation. It uses the same trick: a fixed random weight array $w$ turns the
output into a scalar $s = \sum w \odot f(\text{inputs})$; one `backward()` gives
$\partial s / \partial x$ for every element of every input; then every element is
nudged by $\pm\epsilon$ and $s$ recomputed under `no_grad` (two forwards per
element, which is why gradcheck is for small tensors only).

An element passes when $|\text{analytic} - \text{numeric}| \le \text{atol} +
\text{rtol} \cdot |\text{numeric}|$. On failure the error names the *worst*
element, the one that exceeds its tolerance the most, with both values: the
first line to read when a new rule is wrong. Inputs that require gradients must
be float64, for the reason given above.
"""


# %%
#| export
class GradcheckError(RuntimeError):
    """backward() and finite differences disagree (the message names the worst element)."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare backward() with central finite differences on float64 inputs.

    Checks d(sum(fn(*inputs) * w))/d(input) for a fixed random w, element by element,
    and reports the worst element when any differs by more than atol + rtol * |numeric|.

    Args:
        fn: a function of the inputs returning a Tensor.
        inputs: Tensors (those with requires_grad=True are checked) and other arguments.
        raise_exception: raise GradcheckError on a mismatch (else return False).
    Returns:
        True when every element agrees.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} is {t.dtype}; use float64 inputs (finite differences need the precision)")
    out = fn(*inputs)
    if not out.requires_grad:
        raise ValueError("gradcheck: fn's output does not depend on any input with requires_grad=True")
    weights = np.random.default_rng(0).standard_normal(out.shape)

    def objective() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * weights))

    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    (out * Tensor(weights)).sum().backward()
    worst = None
    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        analytic = t.grad.data if t.grad is not None else np.zeros_like(t.data)
        for index in np.ndindex(t.shape):             # index t.data itself: works for non-contiguous arrays
            original = t.data[index]
            t.data[index] = original + eps
            plus = objective()
            t.data[index] = original - eps
            minus = objective()
            t.data[index] = original
            numeric = (plus - minus) / (2 * eps)
            got = analytic[index]
            excess = abs(got - numeric) - (atol + rtol * abs(numeric))
            if worst is None or excess > worst[0]:
                worst = (excess, i, index, got, numeric)
    if worst is not None and worst[0] > 0:
        _, i, index, got, numeric = worst
        message = (f"gradcheck failed: input {i} at index {tuple(int(k) for k in index)}: "
                   f"backward gives {got:.6g}, finite differences {numeric:.6g}")
        if raise_exception:
            raise GradcheckError(message)
        return False
    return True


# %% [markdown]
"""
The test runs gradcheck on the compositions that have no rule of their own
(subtraction, division, mean, square root, softmax), on a matmul whose batch
axes broadcast (so the engine must sum `B`'s gradient over the batch), on a
non-contiguous (transposed) input, and finally on a *deliberately wrong* rule:
we swap `Tanh`'s rule for one that forgets to square, and gradcheck must fail
and say where.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_gradcheck", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from tinytorch.nn.activation import softmax


def test_unit_gradcheck():
    def t64(*shape, low=-1.0, high=1.0):
        return Tensor(rng.uniform(low, high, shape), requires_grad=True)

    a, b = t64(3, 4), t64(4, low=0.5, high=2.0)
    assert gradcheck(lambda a, b: (a - b) / b, [a, b])
    assert gradcheck(lambda a: a.mean(dim=1), [a])
    assert gradcheck(lambda b: b.sqrt(), [b])
    assert gradcheck(lambda a: softmax(a, dim=1), [a])                       # chapter 03, unchanged
    assert gradcheck(lambda p, q: p @ q, [t64(2, 3, 4), t64(4, 5)])          # B's batch axis broadcasts
    assert gradcheck(lambda p, q: p @ q, [t64(4), t64(2, 4, 3)])             # 1-D @ batched
    transposed = Tensor(rng.standard_normal((4, 3)).T, requires_grad=True)   # not C-contiguous
    assert gradcheck(lambda t: (t * t).sum(dim=0), [transposed])

    right = Tanh.backward
    Tanh.backward = staticmethod(lambda ctx, grad: (grad * (1 - ctx.saved_arrays[0]),))   # forgot the square
    try:
        gradcheck(lambda a: a.tanh(), [a])
        raise AssertionError("gradcheck accepted a wrong rule")
    except GradcheckError as err:
        message = str(err)
    finally:
        Tanh.backward = right
    assert "input 0 at index" in message and "finite differences" in message, message
    print("gradcheck passes the compositions and catches a wrong rule:")
    print("   ", message)


test_unit_gradcheck()

# %% [markdown]
"""
## Systems analysis

Three questions, each answered by measuring on the machine that builds this
page: how much memory does the graph hold, and what gives it back; what does
backward cost compared with forward; and how much does reverse mode save over
computing the gradient one parameter at a time.

### What forward keeps alive for backward

`tracemalloc` sees every NumPy allocation. We build MLPs of `depth` blocks of
a 256-by-256 linear layer and `ReLU()`, create the input, and measure how many
bytes are still allocated after the forward pass while we hold the output:
first with the graph recorded, then under `no_grad()`. The linear layer is
chapter 04's `Linear` with its forward written out as the composition
`x @ W.T + b`, so that we see what the engine keeps for ordinary Tensor
operations; chapter 04's own `Linear` may take its fused fast path
(`LinearFused`), and we measure that too at the end.
"""

# %%
import gc

from tinytorch.nn.activation import ReLU, Tanh as TanhLayer, log_softmax
from tinytorch.nn.init import manual_seed
from tinytorch.nn.layers import Linear, Sequential

manual_seed(0)
WIDTH = 256


class ComposedLinear(Linear):
    """Chapter 04's Linear with its forward as three Tensor operations, whatever fast path Linear takes."""

    def forward(self, x):
        return x @ self.weight.T + self.bias    # Transpose (a view), MatMul, Add: three graph nodes


def mlp(depth, width=WIDTH, linear=ComposedLinear):
    """`depth` blocks of linear(width, width) + ReLU: chapter 04's layers."""
    layers = []
    for _ in range(depth):
        layers += [linear(width, width), ReLU()]
    return Sequential(*layers)


def bytes_held(fn):
    """Bytes still allocated after fn() returns (fn's result is kept alive while we measure)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = fn()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del result
    return held


def forward_held(depth, batch, grad=True, linear=ComposedLinear):
    model = mlp(depth, linear=linear)
    x = Tensor(np.random.default_rng(0).standard_normal((batch, WIDTH)).astype(np.float32))
    if grad:
        return bytes_held(lambda: model(x).sum())
    with no_grad():
        return bytes_held(lambda: model(x).sum())


depths, batches = [1, 2, 4, 8], [64, 256]
held = {(d, b, g): forward_held(d, b, g) for d in depths for b in batches for g in (True, False)}
print(f"{'depth':>5} {'batch':>5} {'recorded (MB)':>14} {'no_grad (MB)':>13} {'bytes / activation element':>27}")
for b in batches:
    for d in depths:
        per_element = held[d, b, True] / (d * b * WIDTH)
        print(f"{d:>5} {b:>5} {held[d, b, True] / 2**20:>14.2f} {held[d, b, False] / 2**20:>13.3f} {per_element:>27.1f}")
per_block = [held[d, b, True] / (d * b * WIDTH) for d in depths for b in batches]
assert all(12.5 <= v <= 14.5 for v in per_block), f"the text says about 13 bytes per element; measured {per_block}"
assert max(held[d, b, False] for d in depths for b in batches) < 2**15, "the text says no_grad holds a few kB"
per_block_fused = forward_held(4, 256, linear=Linear) / (4 * 256 * WIDTH)
print(f"with chapter 04's Linear as it is: {per_block_fused:.1f} bytes per activation element per block")
assert per_block_fused <= max(per_block) + 0.5, "chapter 04's Linear keeps at most what the composition keeps"

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for b in batches:
    ax.plot(depths, [held[d, b, True] / 2**20 for d in depths], "o-", label=f"recorded, batch {b}")
    ax.plot(depths, [held[d, b, False] / 2**20 for d in depths], "x--", label=f"no_grad, batch {b}")
ax.set_xlabel("depth (Linear + ReLU blocks)")
ax.set_ylabel("MB held after forward")
ax.set_title("The graph keeps activations alive: memory ~ depth x batch")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
"""
The recorded graph grows in proportion to depth and to batch size, at about
13 bytes per activation element per block (the cell asserts 12.5 to 14.5) (the rest is Python's node
objects). Where they come from, for one block on a `(batch, 256)` float32
input:

| tensor | kept by | bytes per element |
| --- | --- | --- |
| `x @ W.T` | `Add`'s inputs | 4 |
| `... + b` | `Mul` (the ReLU) saves it | 4 |
| the mask `x > 0` | `Mul` saves it (bool) | 1 |
| `x * mask` | the next block's `MatMul` saves it | 4 |

The last line printed is chapter 04's `Linear` as it is. When it takes its
fused fast path, `LinearFused` adds the bias into the product's own array, and
its rule needs only the input and the weight: the first row of the table is
not kept, and the block keeps 4 bytes per element fewer (a learner's `Linear`
without the fast path keeps the same as the composition).

The parameters do not appear at all: at width 256 they are 0.25 MB per block,
allocated before the measurement. What training holds is *activations*, and
they scale with the batch. Under `no_grad()` nothing is recorded, every
intermediate is freed as soon as the next operation has used it, and what
remains is the output: a few kilobytes whatever the depth (asserted: under 32 kB). This is why
inference fits batch sizes that training cannot, and why evaluation code must
run under `no_grad()`.

### Freeing the graph after backward

`backward()` drops each node's saved arrays and input links as it goes. The
next cell measures what is still allocated after backward, with and without
`retain_graph=True`, and then the *peak* of two consecutive training steps.
The peak is where forgetting to free hurts: in `loss = model(x).sum()`, the
old `loss`, and with it the old graph if it was retained, is still alive while
the new forward runs.
"""


# %%
def after_backward(retain_graph):
    model = mlp(4)
    x = Tensor(np.random.default_rng(0).standard_normal((256, WIDTH)).astype(np.float32))

    def step():
        loss = model(x).sum()
        loss.backward(retain_graph=retain_graph)
        return loss                                  # we keep `loss`, as a training loop does

    after = bytes_held(step)
    grads = sum(p.grad.nbytes for p in model.parameters())
    gc.collect()
    tracemalloc.start()
    loss = step()
    loss = step()                                    # the second forward runs while the first loss is alive
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return after, grads, peak


graph_mb = held[4, 256, True] / 2**20
print(f"graph of a forward pass (depth 4, batch 256): {graph_mb:.2f} MB")
for retain in (False, True):
    after, grads, peak = after_backward(retain)
    print(f"retain_graph={retain!s:5}: held after backward {after / 2**20:5.2f} MB "
          f"(of which .grad {grads / 2**20:.2f} MB); peak over two steps {peak / 2**20:5.2f} MB")

# %% [markdown]
"""
After a default backward, what is left is the gradients themselves (one array
per parameter, the size of the parameters). With `retain_graph=True`, the whole
graph stays alive as long as `loss` does, and the peak of the next step holds
two graphs at once. `retain_graph=True` is for the rare cases that need two
backward passes through one graph; a training loop should never set it.

### What backward costs, and what reverse mode saves

First, the prediction. Count the flops of an MLP with three `512 x 512`
hidden layers, a `512 x 1` output layer and a batch of 256: forward runs four
matmuls; backward computes the weight gradient of every layer and the input
gradient of every layer but the first (whose input is the data and needs
none). The elementwise rules are cheap next to the matmuls.
"""


# %%
from tinytorch.utils.timing import median_times    # chapter 01: medians of several functions, run in turns

batch, layer_shapes = 256, [(512, 512), (512, 512), (512, 512), (512, 1)]
forward_flops = sum(2 * batch * n_in * n_out for n_in, n_out in layer_shapes)
backward_flops = sum(2 * batch * n_in * n_out for n_in, n_out in layer_shapes)            # weight gradients
backward_flops += sum(2 * batch * n_in * n_out for n_in, n_out in layer_shapes[1:])       # input gradients
flop_ratio = backward_flops / forward_flops
print(f"forward {forward_flops / 1e6:.0f} Mflop, backward {backward_flops / 1e6:.0f} Mflop: "
      f"backward = {flop_ratio:.2f} forwards, a training step = {1 + flop_ratio:.2f} forwards")

# %% [markdown]
"""
Now the measurement: a forward under `no_grad`, a recorded forward, and a
forward plus backward, run in turns eleven times. Each round's times are
divided by that round's forward, and we report the median of those ratios: a
busy machine slows the three runs of a round alike, so the ratio is steadier
than the times themselves.
"""


# %%
def forward_only(model, x):
    with no_grad():
        model(x).sum()


big = Sequential(Linear(512, 512), ReLU(), Linear(512, 512), ReLU(), Linear(512, 512), ReLU(), Linear(512, 1))
x_big = Tensor(np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32))
rounds = np.array([median_times([lambda: forward_only(big, x_big),
                                 lambda: big(x_big).sum(),
                                 lambda: big(x_big).sum().backward()], repeats=1) for _ in range(11)])
recorded_ratio = float(np.median(rounds[:, 1] / rounds[:, 0]))
step_ratio = float(np.median(rounds[:, 2] / rounds[:, 0]))
nodes = sum(t._ctx is not None for t in graph_tensors(big(x_big).sum()))
print(f"forward under no_grad : {np.median(rounds[:, 0]) * 1e3:6.2f} ms (median)")
print(f"forward, recorded     : {recorded_ratio:.2f}x a forward ({nodes} nodes recorded)")
print(f"forward + backward    : {step_ratio:.2f}x a forward (the flop count says {1 + flop_ratio:.2f}x)")
assert 0.7 <= recorded_ratio <= 1.5, f"the text says recording costs next to nothing here; measured {recorded_ratio:.2f}x"
assert 1.3 <= step_ratio <= 12, f"the text says a step is a small multiple of a forward; measured {step_ratio:.2f}x"

# %% [markdown]
"""
By the flop count (printed above), backward costs 1.67 forwards here, so a
training step costs 2.67. The measured ratio is printed beside it. It also
pays for what the flop count leaves out (allocating and writing a gradient
for every activation, the elementwise rules), and the build shares its
machine with other work, so the cell asserts only a wide band: a step costs
between 1.3 and 12 forwards, a small multiple, not the $2P$ forwards of the
alternative below. The second line is the price of recording alone:
creating the printed number of nodes, each a small Python object holding
*references* to arrays that forward computed anyway, not copies. Against
milliseconds of matmuls that is within the noise (the cell asserts 0.7 to 1.5
times a forward).

The exponent special case in `pow_backward` is a similar, smaller lesson in
where time goes. For $p = -1$ (every division) the general formula computes
`a ** -2`, which NumPy sends through its general power routine; the rule
writes `-grad / (a * a)` instead, a multiply and a divide. Both, timed on a
million elements (the ratio depends on the CPU and the NumPy build; here it
is printed, not promised):
"""


# %%
a_big = np.random.default_rng(0).uniform(0.5, 2.0, 1_000_000)
g_big = np.ones_like(a_big)
t_power, t_divide = median_times([lambda: g_big * (-1 * a_big ** -2), lambda: -g_big / (a_big * a_big)], repeats=9)
np.testing.assert_allclose(g_big * (-1 * a_big ** -2), -g_big / (a_big * a_big))
print(f"grad * (-1 * a ** -2): {t_power * 1e3:.2f} ms; -grad / (a * a): {t_divide * 1e3:.2f} ms "
      f"({t_power / t_divide:.1f}x); the same numbers")

# %% [markdown]
"""
Now the alternative to reverse mode. Finite differences, like forward mode,
need a pass per parameter: two forwards for every one of the $P$ parameters.
Small MLPs (on 64 two-dimensional points, float64) of growing width show how
the two costs scale.
"""


# %%
def fd_gradient(model, loss_fn, eps=1e-6):
    """The gradient of every parameter by central differences: 2 forwards per parameter."""
    grads = []
    with no_grad():
        for p in model.parameters():
            g = np.zeros_like(p.data)
            for i in np.ndindex(p.shape):
                original = p.data[i]
                p.data[i] = original + eps
                plus = loss_fn().item()
                p.data[i] = original - eps
                minus = loss_fn().item()
                p.data[i] = original
                g[i] = (plus - minus) / (2 * eps)
            grads.append(g)
    return grads


x_small = Tensor(np.random.default_rng(1).standard_normal((64, 2)))
sizes, t_fd, t_bw = [], [], []
for width in (4, 8, 16, 32):
    small = Sequential(Linear(2, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 1))
    for p in small.parameters():
        p.data = p.data.astype(np.float64)
    loss_fn = lambda: (small(x_small) ** 2).mean()                          # noqa: E731
    start = time.perf_counter()
    numeric = fd_gradient(small, loss_fn)
    t_fd.append(time.perf_counter() - start)
    t_bw.append(median_times([lambda: loss_fn().backward()])[0])
    small.zero_grad()
    loss_fn().backward()
    error = max(np.abs(n - p.grad.data).max() for n, p in zip(numeric, small.parameters()))
    sizes.append(sum(p.numel() for p in small.parameters()))
    print(f"P = {sizes[-1]:5d} parameters: backward {t_bw[-1] * 1e3:6.2f} ms, finite differences "
          f"{t_fd[-1] * 1e3:7.1f} ms ({t_fd[-1] / t_bw[-1]:5.0f}x); largest difference {error:.1e}")
    assert error < 1e-8, f"the text says the two gradients agree to below 1e-8; measured {error:.1e}"
print(f"from P = {sizes[0]} to P = {sizes[-1]} ({sizes[-1] / sizes[0]:.0f}x the parameters): finite differences "
      f"took {t_fd[-1] / t_fd[0]:.0f}x as long, backward {t_bw[-1] / t_bw[0]:.1f}x")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(sizes, np.array(t_fd) * 1e3, "o-", label="finite differences (2 forwards per parameter)")
ax.loglog(sizes, np.array(t_bw) * 1e3, "s-", label="reverse mode (one backward)")
ax.set_xlabel("number of parameters P")
ax.set_ylabel("ms for the full gradient")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
"""
The two methods agree to the largest difference printed, which the cell
asserts is below $10^{-8}$ (the finite-difference error). Finite differences
cost $2P$ forwards, so their time grows with $P$, while one backward costs a
small constant number of forwards; the printed line above the plot compares
the growth of the two times. At the 124 million parameters of GPT-2 small,
the same ratio would be hundreds of millions of forwards per step against one
backward. Reverse mode is not an optimisation of training; it is what makes it
possible.

### What breaks first at scale

Activation memory. Parameters, gradients and (next chapter) optimizer state
are fixed multiples of the parameter count, but the graph grows with batch
times depth times width (and, for transformers, sequence length), so it is the
first thing to exceed memory when a model is made deeper or fed larger
batches. The remedies all trade something for memory: smaller batches
(accumulating gradients over several, which `.grad`'s `+=` allows), saving
less per primitive (a fused matmul and bias, a ReLU that keeps only its
output: see the next section), recomputing instead of saving (activation checkpointing, below), or lower precision.
"""

# %% [markdown]
r"""
## Production context

PyTorch's autograd follows the same design (a tape of nodes recorded during
forward, one backward formula per primitive, a reverse topological walk), and
differs in ways that matter at scale:

- **Nodes keep only what backward needs.** A PyTorch node (`y.grad_fn`) links
  to the *nodes* of its inputs (`next_functions`) and holds only its saved
  tensors. An intermediate that no rule saves is freed right after forward. Our
  nodes hold their input tensors, as micrograd's do, which is simpler and
  costs the 4 bytes per element that `Add`'s inputs held in our measurement.
- **Fewer, fused primitives save less.** `nn.Linear` runs one `addmm`
  (matmul and bias together), which saves its input and the weight; `relu`
  saves its *output*, which the next layer's matmul saves anyway. So, by
  those two rules, a Linear + ReLU block keeps about 4 bytes per activation
  element in PyTorch, against the 13 we measured. (This build has no PyTorch
  to measure it; where PyTorch is installed,
  `torch.autograd.graph.saved_tensors_hooks` lets you count the saved bytes
  yourself.)
- **Version counters.** Every tensor counts its in-place modifications, and a
  saved tensor remembers the count it was saved at. Modify it before backward
  and PyTorch raises "one of the variables needed for gradient computation has
  been modified by an inplace operation". We save references without copies
  and without counters, so the same mistake gives a silently wrong gradient
  (next cell). This is why an optimizer step must come after backward.
- **Grad mode is thread-local,** so a serving thread in `no_grad` does not
  switch recording off for a training thread. Ours is one global flag.
  `torch.inference_mode()` goes further than `no_grad`: tensors made in it can
  never join a graph, which lets PyTorch skip the version counters too.
- **The engine is C++ and multi-threaded** (one worker per device), rules are
  generated from a table of derivative formulas (`derivatives.yaml`), and
  `create_graph=True` records the backward pass itself, giving second
  derivatives. Our rules work on NumPy arrays, so a backward pass records
  nothing: no higher-order gradients, on purpose, to keep each rule two lines.
- **Activation checkpointing** (`torch.utils.checkpoint`) trades compute for
  the memory measured above: run a segment of the network under `no_grad`,
  keep only its input, and re-run it with recording during backward. Keeping
  one checkpoint every $\sqrt{L}$ layers cuts activation memory from $O(L)$ to
  $O(\sqrt{L})$ for about one extra forward.
- **JAX** has no tape on tensors at all: `jax.grad(f)` transforms the function
  `f` into one that computes its gradient, and `jax.vjp` exposes exactly the
  vector–Jacobian products our rules compute.

The in-place hazard, demonstrated:
"""

# %%
x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
y = (x * x).sum()              # Mul saved x.data itself, not a copy
x.data *= 10                   # an in-place update before backward (an optimizer step too early)
y.backward()
print("gradient of sum(x*x) at x = [1, 2, 3]:", x.grad.data, "(should be [2. 4. 6.])")

# %% [markdown]
"""
## Integration: the layers of chapters 03 and 04 train, unchanged

Nothing in chapters 03 and 04 mentions gradients, yet everything there is made
of primitives, so it is all differentiable now. The checks below use those
layers exactly as they were written:

1. gradcheck of a whole `Sequential` MLP (`Linear`, `Tanh`, `Linear`) with a
   cross-entropy loss built from chapter 03's `log_softmax` and an integer-array
   index (chapter 05 ships cross-entropy and MSE as layers, built the same
   way), with respect to every weight and bias and the input;
2. one weight's gradient against a finite difference, printed;
3. plain gradient descent, a few lines of code: the loss must go down.
"""


# %%
def cross_entropy(logits, targets):
    """Mean of -log softmax(logits)[i, targets[i]]: log_softmax, then an integer-array index."""
    n = logits.shape[0]
    return -log_softmax(logits, dim=1)[np.arange(n), targets].mean()


manual_seed(0)
data_rng = np.random.default_rng(0)
centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
labels = data_rng.integers(0, 3, 150)
points = (centers[labels] + 0.5 * data_rng.standard_normal((150, 2))).astype(np.float32)

model = Sequential(Linear(2, 16), TanhLayer(), Linear(16, 3))
for p in model.parameters():
    p.data = p.data.astype(np.float64)              # gradcheck needs float64
inputs64 = Tensor(points[:8].astype(np.float64), requires_grad=True)
params = list(model.parameters())
assert gradcheck(lambda x, *ps: cross_entropy(model(x), labels[:8]), [inputs64, *params])
print("gradcheck: the chapter 04 MLP with a cross-entropy loss, every parameter and the input")

loss = cross_entropy(model(Tensor(points.astype(np.float64))), labels)
model.zero_grad()
loss.backward()
W = model[0].weight
with no_grad():
    W.data[3, 1] += 1e-6
    plus = cross_entropy(model(Tensor(points.astype(np.float64))), labels).item()
    W.data[3, 1] -= 2e-6
    minus = cross_entropy(model(Tensor(points.astype(np.float64))), labels).item()
    W.data[3, 1] += 1e-6
print(f"dL/dW[3, 1]: backward {W.grad.data[3, 1]:.8f}, finite difference {(plus - minus) / 2e-6:.8f}")

# %% [markdown]
"""
And the step that the next chapter turns into `tinytorch.optim.SGD`: subtract
a small multiple of each gradient from its parameter, under `no_grad` (the
update itself must not be recorded), zero the gradients, repeat.
"""

# %%
model = Sequential(Linear(2, 16), ReLU(), Linear(16, 3))     # float32, as it comes
x_all = Tensor(points)
losses = []
for step in range(30):
    loss = cross_entropy(model(x_all), labels)
    model.zero_grad()
    loss.backward()
    with no_grad():
        for p in model.parameters():
            p.data -= 0.5 * p.grad.data
    losses.append(loss.item())
accuracy = float((model(x_all).argmax(dim=1).data == labels).mean())
assert losses[1] < losses[0] and losses[-1] < 0.5 * losses[0], "gradient descent did not lower the loss"
print(f"cross-entropy: {losses[0]:.3f} before, {losses[1]:.3f} after one step, {losses[-1]:.3f} after 30; "
      f"accuracy {accuracy:.0%}; parameters still {model[0].weight.dtype}")

# %% [markdown]
"""
## Run every test of this chapter

Each unit test above ran right after the code it checks. This cell runs them
all again, in order, so that a change anywhere in the chapter is checked
against everything (and so that `python -m pytest`-style runners and the book
build have one place to look).
"""

# %%
if __name__ == "__main__":
    test_unit_add_neg_rules()
    test_unit_mul_rule()
    test_unit_elementwise_rules()
    test_unit_matmul_rule()
    test_unit_reduction_rules()
    test_unit_view_rules()
    test_unit_unbroadcast()
    test_unit_topological_order()
    test_unit_backward()
    test_unit_indexing_gradients()
    test_unit_no_grad()
    test_unit_gradcheck()
    print("All tests of chapter 09 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory per activation.** We measured about 13 bytes per activation element
for each Linear + ReLU block. Which of the four tensors in that table could a
different set of primitives avoid keeping (think of a ReLU primitive whose
rule needs only its output, and of a fused matmul-plus-bias)? Estimate the
activation memory of a 24-block model of width 1024 on a batch of 64
sequences of 512 tokens, with our primitives and with fused ones. Which is
larger: that, or the 4 bytes per parameter of the weights?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory_per_activation", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** A fused matmul-plus-bias saves only its
input and the weight, so `x @ W.T` (4 bytes, kept today as `Add`'s input) goes;
a ReLU whose rule reads its output drops the pre-activation `... + b` (4 bytes)
and the boolean mask (1 byte). Only `x * mask`, the ReLU output that the next
matmul needs anyway, stays: 4 bytes per element instead of 13. The model sees
64 × 512 = 32,768 rows of width 1024, 33.5 million elements per block. Ours:
13 × 33.5 M = 436 MB per block, × 24 = 10.5 GB. Fused: 4 × 33.5 M = 134 MB per
block, × 24 = 3.2 GB. The weights are 24 × (1024 × 1024 + 1024) = 25.2 M
parameters, 101 MB in float32: activations are about 100 times (ours) or 32
times (fused) larger than the weights.

**Rubric (2 points).** 1 point for naming the three avoidable tensors
(pre-activation, mask, matmul output) and the 4 bytes that remain; 1 point for
the two totals (within 10 %: 10.5 GB and 3.2 GB) and the comparison with about
0.1 GB of weights.
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Graph ownership.** Our nodes hold their input tensors; PyTorch's hold
only saved arrays and links to other nodes. Change `Function` (on paper) so
that a node keeps only what its rule needs. What would the engine use
instead of `ctx.inputs` to find a parent's node and to recognise a leaf, and
where would the leaf's `.grad` then be written?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_graph_ownership", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Each node keeps, instead of `inputs`, a tuple
`next_functions` with one entry per input: the node that produced that input
(`input._ctx`), or, for a leaf that requires grad, a small "accumulate" node
that holds a reference to the leaf tensor, or `None` for a constant. The
engine sorts and walks *nodes*, keys its `grads` dictionary by node, and
recognises a leaf by its accumulate node, whose rule adds the incoming
gradient into the referenced tensor's `.grad` (this is PyTorch's
`AccumulateGrad`). Intermediate tensors are then referenced by nobody after
forward, unless a rule saved them, so they are freed at once; the engine
also needs each input's shape (and dtype) stored in the node to undo
broadcasting, since it no longer has the input tensor.

**Rubric (2 points).** 1 point for links to the parents'
nodes (not tensors) with `None` for constants, and the engine walking nodes;
1 point for an accumulate node that holds the leaf and writes `.grad`
(mentioning that the input shapes must be kept for unbroadcasting is a plus).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Recompute instead of store.** Sketch activation checkpointing with the
tools of this chapter: run each segment of a `Sequential` under `no_grad()`,
keep only the segment inputs, and re-run a segment with recording when
backward reaches it. With $L$ blocks and a checkpoint every $k$ blocks, how
many block activations are alive at the peak, and how many extra block
forwards does one step cost? Which $k$ minimises memory?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_recompute_instead_of_store", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Forward: for each segment, keep its
input `s_i` (detached: `Tensor(s.data, requires_grad=True)`), run the segment
under `no_grad()`. Backward, segments in reverse: re-run the segment on its
saved input with recording on, call `out.backward(gradient=grad_of_out)`, and
pass `s_i.grad` on as the gradient of the previous segment's output. At the
peak, the $L/k$ segment inputs are alive plus the $k$ block activations of the
one segment being recomputed: $L/k + k$ instead of $L$. Every block runs one
extra forward (each segment is recomputed once), so a step costs about one
more forward: about 3.7 forwards instead of 2.7 for this chapter's flop count,
some 37 % more compute. $L/k + k$ is smallest at $k = \sqrt{L}$, giving
$2\sqrt{L}$: for $L = 64$, $k = 8$ keeps 16 block activations instead of 64.

**Rubric (2 points).** 1 point for
$L/k + k$ alive and about $L$ extra block forwards (one extra forward);
1 point for $k = \sqrt{L}$ with the $2\sqrt{L}$ minimum (a worked example is
welcome; a sketch that forgets to detach the segment input loses nothing
here but should be noted).
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Concurrency.** `no_grad()` flips one global flag. A model server answers
requests in threads under `no_grad()` while a background thread fine-tunes
the same model. What goes wrong, in which order of events, and what would
a thread-local flag (`threading.local`) change?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_concurrency", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Order of events: a server thread enters
`no_grad()` (saves True, sets False); the training thread runs its forward
meanwhile, and nothing it computes while the flag is False is recorded: the
loss does not require grad and `backward()` raises, or, if the flag flips back
mid-forward, the layers computed before that point silently get no gradient.
With two server threads: A enters (saves True), B enters (saves False), A
exits (restores True) while B still serves, so B records graphs and holds
their memory; B exits and restores False, and recording is now off for
everyone until something turns it on: training stops learning. A
thread-local flag gives each thread its own value and its own saved stack, so
a server's `no_grad()` changes nothing for the trainer and the enter/exit
pairs cannot interleave. It does not make the shared weights safe: the
optimizer still updates arrays that server threads are reading (a lock, or
serving from a copy of the weights, is still needed).

**Rubric (2 points).** 1 point for an interleaving that
shows lost recording in the trainer (or recording left on or off by
overlapping enter/exit); 1 point for what thread-local fixes (per-thread flag)
and what it does not (concurrent reads of weights being updated).
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

What you built:

- **A backward rule for each of the 13 primitives** of chapter 02, each one or
  two lines next to the forward it differentiates: a vector–Jacobian product,
  never a Jacobian. `Add` passes the gradient through, `Mul` swaps the
  factors, `MatMul` is two matmuls, `Sum` broadcasts, `Max` masks and shares
  ties, views undo themselves, indexing scatters with `np.add.at` so repeated
  indices add up.
- **An engine**, `Tensor.backward(gradient=None, retain_graph=False)`: an
  iterative topological sort (deep graphs do not hit the recursion limit) and
  one reversed loop that accumulates gradients over every path, sums
  broadcast gradients back to each input's shape (the bias gradient), adds
  into the leaves' `.grad`, and frees each node once its rule has run.
- **`no_grad()` / `enable_grad()`**, as context managers and decorators that
  are safe to re-enter, and **`gradcheck()`**, which compares backward with
  central differences in float64 and names the worst element.

What you measured: the graph keeps about 13 bytes per activation element per
Linear + ReLU block, growing linearly with depth and batch, and `no_grad()`
keeps almost none; default backward frees the graph, leaving only the
gradients; forward plus backward costs a small multiple of a forward, while
finite differences cost $2P$ forwards, a gap that grows with every parameter.

What it unlocked: chapters 03 and 04 became trainable without a line changed
(chapters 05 to 08 too, for the same reason). A hand-written gradient step
already lowered a classifier's loss. Chapter 10 turns that step into
optimizers: SGD with momentum, Adam and AdamW, learning-rate schedules, and
the memory their state costs.
"""
