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
# Activations

(Prose to be written.)
"""

# %%
#| default_exp core.activations

# %%
#| export

import math

from tinytorch.core.tensor import Tensor


# %%
#| export
def relu(x: Tensor) -> Tensor:
    """max(0, x), written as x times a 0/1 mask so its derivative falls out of Mul's."""
    return x * (x > 0)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    return ((x * 0.5).tanh() + 1.0) * 0.5


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def gelu(x: Tensor) -> Tensor:
    """GELU with the tanh approximation (PyTorch's GELU(approximate="tanh"))."""
    inner = (x + x ** 3 * 0.044715) * math.sqrt(2.0 / math.pi)
    return x * (inner.tanh() + 1.0) * 0.5


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)), shifted by the max first so exp never overflows."""
    shifted = x - x.max(dim=dim, keepdim=True).detach()  # softmax(x - c) == softmax(x)
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - log(sum(exp(x))), shifted by the max so large logits stay finite."""
    shifted = x - x.max(dim=dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


# %%
#| export
class _Activation:
    """A parameter-free layer: calling it applies its function. (Chapter 04 explains Module.)"""

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class ReLU(_Activation):
    def forward(self, x):
        return relu(x)


class Sigmoid(_Activation):
    def forward(self, x):
        return sigmoid(x)


class Tanh(_Activation):
    def forward(self, x):
        return tanh(x)


class GELU(_Activation):
    def __init__(self, approximate: str = "tanh"):
        if approximate != "tanh":
            raise ValueError("tinytorch's GELU implements approximate='tanh' only")
        self.approximate = approximate

    def forward(self, x):
        return gelu(x)

    def extra_repr(self):
        return f"approximate='{self.approximate}'"


class Softmax(_Activation):
    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return log_softmax(x, self.dim)
