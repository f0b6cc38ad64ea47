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
# Layers

(Prose to be written.)
"""

# %%
#| default_exp core.layers

# %%
#| export core.init
from __future__ import annotations

import math

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Make every random draw in tinytorch (initialisers, dropout, shuffling) repeatable."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator tinytorch draws from; `manual_seed` replaces it."""
    return _generator


# %%
#| export core.init
def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a weight (out, in, *kernel), as PyTorch computes them."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive if len(shape) > 1 else shape[0]
    return fan_in, shape[0] * receptive


def uniform_(tensor, low: float, high: float):
    tensor.data[...] = generator().uniform(low, high, tensor.shape)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    tensor.data[...] = generator().normal(mean, std, tensor.shape)
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def xavier_uniform_(tensor, gain: float = 1.0):
    fan_in, fan_out = _fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def kaiming_uniform_(tensor, a: float = 0.0):
    """He initialisation for ReLU nets: keeps activation variance steady through depth."""
    fan_in, _ = _fans(tensor.shape)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


# %%
#| export
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from tinytorch.core import init
from tinytorch.core.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable part of a Module: it requires gradients by default."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


# %%
#| export
class Module:
    """Base class of every layer and model: it finds its parameters by looking at its attributes."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning {name}")
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """State that is saved with the model but not trained (e.g. BatchNorm's running mean)."""
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree of modules ------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator["Module"]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is not None and id(param) not in seen:  # a shared weight counts once
                    seen.add(id(param))
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    # ---- modes and gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    # ---- saving and loading -------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter and buffer by dotted name, as arrays (copies: later steps do not change them)."""
        state = OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())
        state.update((name, b.data.copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy values into this model's tensors; checks every name and shape before changing any."""
        own = OrderedDict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise KeyError(f"state_dict does not fit {type(self).__name__}: missing {missing}, unexpected {unexpected}")
        values = {k: np.asarray(v.data if isinstance(v, Tensor) else v) for k, v in state.items()}
        wrong = [f"{k}: {values[k].shape} vs {t.shape}" for k, t in own.items() if values[k].shape != t.shape]
        if wrong:
            raise ValueError(f"state_dict shapes do not fit {type(self).__name__}: " + "; ".join(wrong))
        for name, tensor in own.items():
            tensor.data[...] = values[name]

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


# %%
#| export
class Linear(Module):
    """y = x @ W.T + b, with W of shape (out_features, in_features) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / np.sqrt(in_features)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.weight = init.uniform_(Parameter(np.empty((out_features, in_features), dtype=np.float32)), -bound, bound)
        self.bias = init.uniform_(Parameter(np.empty(out_features, dtype=np.float32)), -bound, bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) got input of shape {x.shape}; "
                             f"its last dimension must be {self.in_features}")
        out = x @ self.weight.T          # (..., in) @ (in, out) -> (..., out)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Layers applied in order; parameter-free callables (activations) may sit between them."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)
        for index, layer in enumerate(layers):
            if isinstance(layer, Module):
                self._modules[str(index)] = layer

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"
