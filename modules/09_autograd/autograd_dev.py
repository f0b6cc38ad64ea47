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

(Prose to be written.)
"""

# %%
#| default_exp core.autograd

# %%
#| export
from __future__ import annotations

import contextlib

import numpy as np

from tinytorch.core.tensor import (Add, Exp, Function, GetItem, Log, MatMul, Max, Mul, Neg, Pow,
                                   Reshape, Sum, Tanh, Tensor, Transpose)


def backward_rule(function: type[Function]):
    """Decorator: make `rule(ctx, grad) -> input gradients` the backward of `function`."""
    def attach(rule):
        function.backward = staticmethod(rule)
        return rule
    return attach


# %% [markdown]
"""
## One rule per primitive

Each rule receives `grad`, the gradient of the final result with respect to the
primitive's output, and returns one gradient per input (None where an input needs
none). The rules may return gradients of the broadcast shape: `backward()` sums
them back to each input's shape.
"""


# %%
#| export
@backward_rule(Add)
def add_backward(ctx, grad):
    return grad, grad                               # d(a+b)/da = d(a+b)/db = 1


@backward_rule(Mul)
def mul_backward(ctx, grad):
    a, b = ctx.saved_arrays
    return (grad * b if ctx.needs_input_grad[0] else None,   # d(ab)/da = b
            grad * a if ctx.needs_input_grad[1] else None)   # d(ab)/db = a


@backward_rule(Neg)
def neg_backward(ctx, grad):
    return (-grad,)


@backward_rule(Pow)
def pow_backward(ctx, grad):
    (a,) = ctx.saved_arrays
    p = ctx.exponent
    return (grad * (p * a ** (p - 1)),)             # d(a^p)/da = p a^(p-1)


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


@backward_rule(MatMul)
def matmul_backward(ctx, grad):
    a, b = ctx.saved_arrays
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
    return (np.broadcast_to(_expand_reduced(grad, ctx), ctx.input_shape),)


@backward_rule(Max)
def max_backward(ctx, grad):
    a, out = ctx.saved_arrays                       # out kept its reduced axes (keepdims)
    mask = (a == out).astype(grad.dtype)            # in grad's dtype: a bool/int ratio would be float64
    mask /= mask.sum(axis=ctx.axis, keepdims=True)  # ties share the gradient
    return (_expand_reduced(grad, ctx) * mask,)


@backward_rule(Reshape)
def reshape_backward(ctx, grad):
    return (np.reshape(grad, ctx.input_shape),)


@backward_rule(Transpose)
def transpose_backward(ctx, grad):
    return (np.transpose(grad, np.argsort(ctx.axes)),)


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
## Rules for the spatial primitives of chapter 06

Chapter 06 built convolution and pooling from two primitives of its own;
everything else there (the matmul with the filters, the bias, the max or mean
over each window) already has a rule above.

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
"""


# %%
#| export
from tinytorch.core.spatial import Im2col, Pad2d


@backward_rule(Pad2d)
def pad2d_backward(ctx, grad):
    (ph, pw), (H, W) = ctx.padding, ctx.input_shape[-2:]
    return (grad[..., ph:ph + H, pw:pw + W],)        # crop: the padding's gradient goes nowhere


@backward_rule(Im2col)
def im2col_backward(ctx, grad):
    """col2im: add every window's gradient back onto the pixels it was copied from."""
    N, C, H, W = ctx.input_shape
    (kh, kw), (sh, sw) = ctx.kernel_size, ctx.stride
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    windows = grad.reshape(C, kh, kw, N, OH, OW)     # row (c, i, j), column (n, y, x), as Im2col laid them out
    dx = np.zeros((C, N, H, W), dtype=grad.dtype)    # channel-major, the order the columns are in
    for i in range(kh):
        for j in range(kw):                          # pixel (i, j) of every window, all at once
            dx[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += windows[:, i, j]
    return (dx.transpose(1, 0, 2, 3),)               # (N, C, H, W), a view


# %% [markdown]
"""
## Walking the graph backwards
"""


# %%
#| export
def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient back to `shape`, undoing NumPy broadcasting (the bias-gradient rule)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor root depends on, each after all of its inputs (iterative: graphs get deep)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
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


def backward(self: Tensor, gradient=None, retain_graph: bool = False) -> None:
    """Fill `.grad` of every leaf tensor that requires grad with d(self)/d(leaf)."""
    if not self.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad (no input had requires_grad=True)")
    if gradient is None:
        if self.data.size != 1:
            raise RuntimeError(f"backward(): output has shape {self.shape}; pass `gradient` for a non-scalar output")
        gradient = np.ones_like(self.data)
    grads = {id(self): np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)}
    for tensor in reversed(_topological_order(self)):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        ctx = tensor._ctx
        if ctx is None:                               # a leaf: accumulate, as PyTorch does
            grad = np.array(grad, dtype=tensor.dtype)  # own copy: grads may be shared or read-only views
            tensor.grad = Tensor._wrap(grad if tensor.grad is None else tensor.grad.data + grad)
            continue
        if ctx.saved_arrays is None:
            raise RuntimeError("backward() through this graph a second time: pass retain_graph=True the first time")
        input_grads = type(ctx).backward(ctx, grad)
        for parent, needed, parent_grad in zip(ctx.inputs, ctx.needs_input_grad, input_grads):
            if needed and parent_grad is not None:
                parent_grad = _unbroadcast(parent_grad, parent.shape)
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        if not retain_graph:
            ctx.saved_arrays = None                   # free what forward kept for us


Tensor.backward = backward


# %%
#| export
class no_grad(contextlib.ContextDecorator):
    """Within `with no_grad():` operations record no graph (evaluation, optimizer updates)."""

    def __enter__(self):
        self._previous = Function.grad_enabled
        Function.grad_enabled = False

    def __exit__(self, *exc):
        Function.grad_enabled = self._previous
        return False


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        self._previous = Function.grad_enabled
        Function.grad_enabled = True

    def __exit__(self, *exc):
        Function.grad_enabled = self._previous
        return False


def is_grad_enabled() -> bool:
    return Function.grad_enabled


# %%
#| export
class GradcheckError(RuntimeError):
    pass


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare backward() with central finite differences on float64 inputs.

    Checks d(sum(fn(*inputs) * w))/d(input) for a fixed random w, element by element,
    and reports the worst element when any differs by more than atol + rtol * |numeric|.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} is {t.dtype}; use float64 inputs (finite differences need the precision)")
    out = fn(*inputs)
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
        flat = t.data.reshape(-1)                     # a view: nudging it nudges t
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            got = analytic.reshape(-1)[j]
            excess = abs(got - numeric) - (atol + rtol * abs(numeric))
            if worst is None or excess > worst[0]:
                worst = (excess, i, np.unravel_index(j, t.shape), got, numeric)
    if worst is not None and worst[0] > 0:
        _, i, index, got, numeric = worst
        message = (f"gradcheck failed: input {i} at index {tuple(int(k) for k in index)}: "
                   f"backward gives {got:.6g}, finite differences {numeric:.6g}")
        if raise_exception:
            raise GradcheckError(message)
        return False
    return True
