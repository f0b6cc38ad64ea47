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

Every number a neural network touches lives in a tensor: the pixels of an
image, the weights of a layer, the gradient that updates them. This chapter
builds TinyTorch's `Tensor` on top of a NumPy array.
"""

# %%
#| default_exp core.tensor

# %%
#| export
from __future__ import annotations

import numpy as np

# %% [markdown]
"""
## Primitives: the small set of operations everything is built from
"""


# %%
#| export
class Function:
    """One primitive operation on NumPy arrays, and a node of the computation graph.

    Subclasses define `forward(ctx, *arrays, **options) -> array`; chapter 09 gives
    each one a `backward(ctx, grad) -> tuple of input gradients`. `ctx` is the node
    itself: forward stores there (with `save_for_backward`) what backward will need.
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

    @classmethod
    def apply(cls, *inputs, **options) -> "Tensor":
        """Run forward on the inputs' arrays; remember the node if a gradient will be needed."""
        like = next(x for x in inputs if isinstance(x, Tensor))
        tensors = tuple(x if isinstance(x, Tensor) else like._constant(x) for x in inputs)
        ctx = cls(*tensors)
        out = Tensor._wrap(cls.forward(ctx, *(t.data for t in tensors), **options))
        if Function.grad_enabled and any(ctx.needs_input_grad):
            out.requires_grad = True
            out._ctx = ctx
        return out


# %%
#| export
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a


class Pow(Function):
    """a ** exponent for a constant (Python number) exponent."""

    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a ** exponent


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.input_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)


class Max(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.input_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        out = np.max(a, axis=axis, keepdims=True)
        ctx.save_for_backward(a, out)
        return out if keepdims else np.squeeze(out, axis=axis)


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        return a.reshape(shape)


class Transpose(Function):
    """Permute axes: `axes[i]` is the input axis that becomes output axis i."""

    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return np.transpose(a, axes)


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.input_shape, ctx.index = a.shape, index
        return a[index]


# %% [markdown]
"""
## The Tensor
"""


# %%
#| export
def _shape_error(op: str, a: "Tensor", b: "Tensor") -> ValueError:
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together "
                      "(trailing dimensions must be equal or 1)")


def _reduction_args(dim, keepdim, axis, keepdims):
    dim = axis if dim is None else dim
    dim = tuple(dim) if isinstance(dim, list) else dim
    return dim, bool(keepdim if keepdims is None else keepdims)


def _index_array(index):
    """Tensors used as indices become their arrays (x[idx] with idx a Tensor)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _resolve_shape(shape: tuple, current: tuple) -> tuple:
    """Fill in a single -1 and check the element count, with an error that shows both shapes."""
    size = int(np.prod(current))
    known = int(np.prod([d for d in shape if d != -1]))
    unknown = [i for i, d in enumerate(shape) if d == -1]
    bad = len(unknown) > 1 or any(d < -1 for d in shape)
    if not bad and unknown and known and size % known == 0:
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    if bad or int(np.prod(shape)) != size or -1 in shape:
        raise ValueError(f"reshape: cannot view {current} ({size} elements) as {shape}")
    return tuple(int(d) for d in shape)


class Tensor:
    """An n-dimensional array that can take part in automatic differentiation.

    `data` is the NumPy array holding the values. `requires_grad`, `grad` and
    `_ctx` (the Function that produced this tensor) are the hooks chapter 09 uses.
    """

    # NumPy defers to our reflected operators: np.float32(2) * t stays a Tensor.
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype == np.float64 and not isinstance(data, np.ndarray):
            array = array.astype(np.float32)  # Python floats become float32, as in PyTorch
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, not {array.dtype}")
        self.data = array
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._ctx: Function | None = None

    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        """A Tensor around an array that is already right (no checks: the fast path for ops)."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t._ctx = array, False, None, None
        return t

    def _constant(self, value) -> "Tensor":
        """A Python number or array as a Tensor of this tensor's dtype (for x + 1, x * 0.5)."""
        if isinstance(value, np.ndarray):
            return Tensor(value)
        return Tensor._wrap(np.asarray(value, dtype=self.data.dtype if np.issubdtype(self.data.dtype, np.floating) else None))

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
        """Steps, in elements, to the next index along each dimension (PyTorch counts elements, NumPy bytes)."""
        steps = tuple(s // self.data.itemsize for s in self.data.strides)
        return steps if dim is None else steps[dim]

    def is_contiguous(self) -> bool:
        return bool(self.data.flags["C_CONTIGUOUS"])

    def contiguous(self) -> "Tensor":
        return self if self.is_contiguous() else self.reshape(-1).reshape(self.shape)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.data.dtype}{grad})"

    def item(self):
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same values, cut from the graph (shares memory, like PyTorch)."""
        return Tensor._wrap(self.data)

    def float(self) -> "Tensor":
        return Tensor(self.data.astype(np.float32))

    def double(self) -> "Tensor":
        return Tensor(self.data.astype(np.float64))

    # ---- arithmetic: every operator is a primitive or a composition of them ------------------
    def _binary(self, op: type[Function], other, name: str) -> "Tensor":
        other = other if isinstance(other, Tensor) else self._constant(other)
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError:
            raise _shape_error(name, self, other) from None
        return op.apply(self, other)

    def __add__(self, other):
        return self._binary(Add, other, "add")

    def __radd__(self, other):
        return self._binary(Add, other, "add")

    def __mul__(self, other):
        return self._binary(Mul, other, "mul")

    def __rmul__(self, other):
        return self._binary(Mul, other, "mul")

    def __neg__(self):
        return Neg.apply(self)

    def __sub__(self, other):
        return self + (-(other if isinstance(other, Tensor) else self._constant(other)))

    def __rsub__(self, other):
        return (-self) + other

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; the exponent must be a Python number")
        return Pow.apply(self, exponent=exponent)

    def __truediv__(self, other):
        if isinstance(other, Tensor):
            return self * other ** -1
        return self * (1.0 / other)

    def __rtruediv__(self, other):
        return self ** -1 * other

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError("matmul: both operands need at least one dimension")
        inner_a = self.shape[-1]
        inner_b = other.shape[-2] if other.ndim > 1 else other.shape[0]
        if inner_a != inner_b:
            raise ValueError(f"matmul: {self.shape} @ {other.shape}: inner dimensions {inner_a} and {inner_b} differ")
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
        dim, keepdim = _reduction_args(dim, keepdim, axis, keepdims)
        return Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        dim, keepdim = _reduction_args(dim, keepdim, axis, keepdims)
        count = self.data.size if dim is None else int(np.prod([self.shape[d] for d in np.atleast_1d(dim)]))
        return self.sum(dim, keepdim) * (1.0 / count)

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The largest values (PyTorch's `max(dim)` also returns indices; use `argmax` for those)."""
        dim, keepdim = _reduction_args(dim, keepdim, axis, keepdims)
        return Max.apply(self, axis=dim, keepdims=keepdim)

    def argmax(self, dim=None) -> "Tensor":
        return Tensor._wrap(np.argmax(self.data, axis=dim))

    # ---- shape: views where NumPy can make them --------------------------------------------
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=_resolve_shape(shape, self.shape))

    def view(self, *shape):
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0):
        return self.reshape(*self.shape[:start_dim], -1)

    def unsqueeze(self, dim: int):
        dim = dim if dim >= 0 else self.ndim + dim + 1
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not an ordering of the {self.ndim} dimensions of {self.shape}")
        return Transpose.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int = -2, dim1: int = -1):
        """Swap two dimensions (PyTorch's meaning; NumPy's `transpose` reverses them all)."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Transpose.apply(self, axes=tuple(axes))

    @property
    def T(self):
        return Transpose.apply(self, axes=tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        return GetItem.apply(self, index=_index_array(index))

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
