"""Small pieces the training and regularization tests share.

The Trainer and the checkpoint code rely only on interfaces: an optimizer with
zero_grad/step/state_dict/load_state_dict, a scheduler with step/state_dict/
load_state_dict, and a loader that is an iterable of (inputs, targets) batches
with len(). These minimal implementations of those interfaces (PyTorch's
update rule and state_dict layout for SGD) let the tests pin exact behaviour;
tests that use the package's own optimizers and DataLoader run as well where
those are present.
"""

from __future__ import annotations

import numpy as np

from tinytorch import Tensor
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, Parameter, ReLU, Sequential
from tinytorch.nn.functional import log_softmax


class SGD:
    """SGD with momentum and L2 weight decay; state_dict laid out as PyTorch's."""

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        self.param_groups = [{"lr": lr, "momentum": momentum, "weight_decay": weight_decay}]
        self.state: dict[int, np.ndarray] = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        group = self.param_groups[0]
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            d = p.grad.data + group["weight_decay"] * p.data
            if group["momentum"]:
                buf = self.state.get(i)
                buf = d.copy() if buf is None else group["momentum"] * buf + d
                self.state[i] = buf
                d = buf
            p.data -= group["lr"] * d

    def state_dict(self):
        return {"state": {i: {"momentum_buffer": b.copy()} for i, b in self.state.items()},
                "param_groups": [dict(self.param_groups[0], params=list(range(len(self.params))))]}

    def load_state_dict(self, state):
        group = state["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"state has {len(group['params'])} parameters, this optimizer {len(self.params)}")
        for i, s in state["state"].items():
            if np.shape(s["momentum_buffer"]) != self.params[i].shape:
                raise ValueError(f"momentum buffer {i} has shape {np.shape(s['momentum_buffer'])}, "
                                 f"parameter {self.params[i].shape}")
        self.param_groups = [{k: v for k, v in group.items() if k != "params"}]
        self.state = {int(i): np.array(s["momentum_buffer"]) for i, s in state["state"].items()}


class StepLR:
    """Multiply the learning rate by gamma every step_size epochs."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        if self.last_epoch % self.step_size == 0:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.gamma

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "step_size": self.step_size, "gamma": self.gamma}

    def load_state_dict(self, state):
        self.last_epoch, self.step_size, self.gamma = state["last_epoch"], state["step_size"], state["gamma"]


class ShuffledBatches:
    """Reshuffles every epoch with its own generator, like a DataLoader(shuffle=True, seed=...)."""

    def __init__(self, X, y, batch_size: int, seed: int | None = None, shuffle: bool = True):
        self.X, self.y, self.batch_size, self.shuffle = X, y, batch_size, shuffle
        self.generator = np.random.default_rng(seed)
        self.epochs_set: list[int] = []

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def set_epoch(self, epoch: int):
        self.epochs_set.append(epoch)

    def __iter__(self):
        order = self.generator.permutation(len(self.X)) if self.shuffle else np.arange(len(self.X))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield Tensor(self.X[index]), self.y[index]


class Noise(Module):
    """Adds noise drawn from tinytorch's generator in training mode (as dropout does)."""

    def forward(self, x):
        if not self.training:
            return x
        return x + Tensor(init.generator().standard_normal(x.shape).astype(x.dtype) * 0.1)


def cross_entropy(logits, targets):
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    logp = log_softmax(logits, dim=-1)                       # (N, C)
    return -(logp[np.arange(logits.shape[0]), targets]).mean()


def blobs(n: int, seed: int, classes: int = 3, features: int = 4, spread: float = 0.6):
    """Gaussian clusters around fixed centres: an easy classification problem."""
    centres = np.random.default_rng(100).standard_normal((classes, features)) * 2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = (centres[y] + spread * rng.standard_normal((n, features))).astype(np.float32)
    return X, y.astype(np.int64)


def mlp(features: int = 4, hidden: int = 16, classes: int = 3, noise: bool = False):
    layers = [Linear(features, hidden), ReLU()] + ([Noise()] if noise else []) + [Linear(hidden, classes)]
    return Sequential(*layers)


class Scalar(Module):
    """outputs = w for every sample: with an MSE loss the whole trajectory of w is known in closed form."""

    def __init__(self):
        super().__init__()
        self.w = Parameter(np.zeros(1, dtype=np.float32))

    def forward(self, x):
        return x * 0.0 + self.w                                # (N, 1)


def mse(outputs, targets):
    diff = outputs - Tensor(np.asarray(targets, dtype=np.float32))
    return (diff * diff).mean()
