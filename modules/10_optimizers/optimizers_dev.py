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
# Optimizers

Chapter 09 ended with a training loop of four lines: forward, `backward()`,
subtract `0.5 * grad` from every parameter, repeat. It worked on an easy
problem, and it hides three decisions that decide whether training works on
a hard one: *how far* to step (the learning rate, and how it changes over
training), *which direction* to step in (the raw gradient, or one smoothed and
rescaled by the history of gradients), and *what the optimizer must remember*
between steps to do that.

This chapter builds `tinytorch.optim` with PyTorch's names, signatures and
update rules, exactly, so that a step of ours and a step of PyTorch's give the
same numbers (the tests check it, step by step):

- `Optimizer`, the base class: parameter groups, `zero_grad()`, per-parameter
  `state`, and `state_dict()` / `load_state_dict()` to checkpoint that state;
- `SGD` with momentum, dampening, Nesterov momentum and weight decay;
- `Adam` and `AdamW` (Adam with decoupled weight decay);
- `lr_scheduler.StepLR` and `lr_scheduler.CosineAnnealingLR`.

The systems side of optimizers is memory and bandwidth. Momentum keeps one
extra array per parameter, Adam two: for the same model, Adam training holds
twice the memory of the weights on top of the weights and their gradients.
Every step reads and writes every one of those arrays, so an optimizer step
is limited by memory traffic, not arithmetic. We measure both on a real
model, compare the optimizers on the same problems, and finish by training a
classifier to high accuracy in a few seconds.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp optim.optimizers

# %% [markdown]
r"""
## Background

### Gradient descent and the condition number

Gradient descent steps against the gradient: $\theta \leftarrow \theta - \eta\, g$ with
$g = \nabla L(\theta)$. Near a minimum every loss looks like a quadratic
$L(\theta) \approx \tfrac12 \theta^\top H \theta$, and along each eigenvector of $H$,
with curvature $\lambda$, one step multiplies the error by $(1 - \eta \lambda)$.
Two constraints follow. The step must not overshoot along the *steepest*
direction: $\eta < 2 / \lambda_{\max}$. And along the *flattest* direction the error
then shrinks by only $1 - \eta\lambda_{\min} \approx 1 - 2\lambda_{\min}/\lambda_{\max}$ per step. So the number of steps grows with the
*condition number* $\kappa = \lambda_{\max} / \lambda_{\min}$, and neural network losses are
badly conditioned: $\kappa$ in the thousands is ordinary.

### Momentum

Momentum keeps a running sum of past gradients, a *velocity* $b$, and steps
along it (PyTorch's form, with dampening $\tau$, usually 0):

$$
b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t
\qquad (b_1 = g_1).
$$

Along a steep direction the gradient flips sign every step and the
contributions cancel; along a flat one they all point the same way and add up,
to about $1/(1-\mu)$ times the gradient: ten times for $\mu = 0.9$. With the best
$\eta$ and $\mu$ the number of steps on a quadratic grows like $\sqrt{\kappa}$
instead of $\kappa$. *Nesterov* momentum steps along $g_t + \mu b_t$ instead,
which looks one step ahead and damps the oscillation sooner.

PyTorch's form multiplies $\eta$ *outside* the velocity. Some textbooks (and
the original Sutskever et al. paper) write $v_t = \mu v_{t-1} - \eta g_t$,
$\theta_t = \theta_{t-1} + v_t$. The two agree while $\eta$ is constant and differ
as soon as a schedule changes it; we follow PyTorch.

### Adam

Adam rescales every coordinate by its own gradient history. It keeps two
exponential moving averages, of the gradient and of its square, and corrects
both for having started at zero:

$$
m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2,
$$
$$
\theta_t = \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\;
\frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}.
$$

Why the bias corrections: with $m_0 = 0$ the first average is
$m_1 = (1 - \beta_1) g_1$, a tenth of the gradient for $\beta_1 = 0.9$, and
$v_1 = (1-\beta_2) g_1^2$, a thousandth of its square. Dividing by
$1 - \beta^t$ undoes exactly that, so the first step is
$\eta\, g_1 / (|g_1| + \epsilon)$: a step of size $\eta$ in the direction of the
gradient's sign, whatever the gradient's scale. That scale invariance is
Adam's appeal: a coordinate whose gradients are tiny (a rarely used
embedding row) moves as far per step as one whose gradients are huge. The
$\epsilon$ only protects against dividing by zero, and it is added *after* the
square root and the correction, in that order, in PyTorch.

### Weight decay, coupled and decoupled

Weight decay pulls every weight towards zero. `SGD` and `Adam` do it as L2
regularisation, by adding $\lambda\theta$ to the gradient:
$g_t \leftarrow g_t + \lambda \theta_{t-1}$. For SGD that is the same as shrinking
the weights by $(1 - \eta\lambda)$ each step. For Adam it is not: the added
$\lambda\theta$ is divided by $\sqrt{v_t}$ like the rest of the gradient, so weights
with large gradients are hardly decayed at all. `AdamW` (Loshchilov and Hutter)
*decouples* the two: it shrinks the weights directly,
$\theta \leftarrow \theta(1 - \eta\lambda)$, then takes a plain Adam step. That is the
standard for transformers, and its default $\lambda = 0.01$ is not zero.

### Learning-rate schedules

A large step makes fast progress early and bounces around the minimum late.
Schedules lower $\eta$ over training; PyTorch's (with `last_epoch` $t$ counting
calls to `scheduler.step()`):

$$
\text{StepLR:}\quad \eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor}, \qquad
\text{CosineAnnealingLR:}\quad \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
\left(1 + \cos \frac{\pi t}{T_{\max}}\right).
$$

### What a step costs

Every optimizer step is a handful of elementwise operations on every
parameter: $O(P)$ work, tiny next to the forward and backward passes, which
are $O(P \times \text{batch})$. Its cost is *memory*, in two senses:

| optimizer | extra arrays per parameter | state bytes / parameter (float32) | minimum bytes moved per step / parameter |
| --- | --- | --- | --- |
| SGD | 0 | 0 | 12 (read $\theta$, $g$; write $\theta$) |
| SGD + momentum | 1 ($b$) | 4 | 20 |
| Adam, AdamW | 2 ($m$, $v$) | 8 | 28 |

With the weights (4 bytes) and the gradients (4), Adam training holds 16
bytes per parameter before a single activation: 112 GB for a 7-billion
parameter model.
"""

# %% [markdown]
"""
## Implementation

### The `Optimizer` base class

Everything that is not an update rule lives here, as in PyTorch:

- **parameter groups.** `param_groups` is a list of dicts, each with its
  `params` and its own hyperparameters (`lr`, `weight_decay`, ...). Passing
  `model.parameters()` makes one group; passing a list of dicts makes several,
  e.g. no weight decay on biases, or a smaller learning rate for a pretrained
  backbone. Missing hyperparameters are filled in from the optimizer's
  defaults. Schedulers change `group["lr"]` and the next step uses it;
- **state.** `state[p]` is a dict of whatever the rule keeps for parameter `p`
  (a momentum buffer, Adam's moments, a step count), created on the first
  step that sees a gradient for `p`. Parameters key it by identity (a Tensor's
  hash is its `id`, chapter 02). We keep the buffers as NumPy arrays, because
  nothing about them is differentiable;
- **`zero_grad(set_to_none=True)`**: gradients accumulate (chapter 09), so
  each step starts by clearing them. Setting `.grad = None` rather than filling
  it with zeros frees the memory until backward writes a new one, and is
  PyTorch's default since 2.0;
- **`state_dict()` / `load_state_dict()`**: the state, keyed by the position of
  each parameter across the groups (not by object, which would not survive a
  restart), plus the groups' hyperparameters. Resuming training needs this as
  much as the weights: Adam with fresh moments takes a few hundred steps to
  recover.

`step()` is left to the subclasses. All updates are done in place on
`p.data` under `no_grad()`: in place, so that everything holding the
parameter (the module, a tied weight) sees the new values and the array keeps
its dtype; under `no_grad()`, because an update must never become part of a
graph.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_Optimizer", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

import math
from typing import Callable, Iterable

import numpy as np

from tinytorch.core.autograd import enable_grad, no_grad
from tinytorch.core.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad and state_dict; subclasses define step().

    Args:
        params: an iterable of Tensors (one group) or of dicts with a "params" entry (several groups).
        defaults: hyperparameters used where a group does not set its own.
    """

    def __init__(self, params: Iterable, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors (e.g. model.parameters()), not a single Tensor; "
                            "wrap it in a list")
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}                         # Tensor -> {name: array or number}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list; pass model.parameters() or a list of Tensors")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (the defaults fill in the rest)."""
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer params must be Tensors, got {type(p).__name__}")
        ids = [id(p) for p in params]                 # by identity: Tensor == compares elementwise
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if len(set(ids)) != len(ids) or taken & set(ids):
            raise ValueError("a parameter appears twice in the optimizer's parameter groups; pass each once")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (None by default, which also frees its memory).

        Args:
            set_to_none: True sets `p.grad = None`; False keeps each gradient Tensor and fills it with zeros.
        """
        # Visit every parameter of every group: `for group in self.param_groups: for p in group["params"]`.
        # set_to_none=False writes zeros *into* the existing array (`p.grad.data[...] = 0`): same object, same memory.
        # Pitfall: a parameter that has not received a gradient yet has `p.grad is None`; skip it, don't crash.
        ### BEGIN SOLUTION
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0
        ### END SOLUTION

    def step(self, closure: Callable | None = None):
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def _evaluate(self, closure):
        """Run the optional closure (which recomputes the loss) with recording on, as PyTorch does."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ---- saving and resuming ------------------------------------------------------------------
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {name: array copy}}, "param_groups": [{hyperparameters, "params": [indices]}]}."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for p, s in self.state.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state saved by state_dict(); checks the groups and every buffer's shape before changing anything."""
        groups, saved = state_dict["param_groups"], state_dict["state"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("state_dict does not fit this optimizer: its parameter groups have sizes "
                             f"{[len(g['params']) for g in groups]}, this optimizer's "
                             f"{[len(g['params']) for g in self.param_groups]}")
        params = self._params()
        order = [i for g in groups for i in g["params"]]
        by_saved_index = dict(zip(order, params))
        for i, entries in saved.items():
            p = by_saved_index[i]
            for name, value in entries.items():
                if isinstance(value, np.ndarray) and value.shape != p.shape:
                    raise ValueError(f"state_dict does not fit: state '{name}' of parameter {i} has shape "
                                     f"{value.shape}, the parameter {p.shape}")
        self.state = {by_saved_index[i]: {k: (np.array(v, dtype=by_saved_index[i].dtype) if isinstance(v, np.ndarray)
                                              else v) for k, v in entries.items()}
                      for i, entries in saved.items()}
        for group, saved_group in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved_group.items() if k != "params"})

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


# %% [markdown]
"""
The test checks the bookkeeping without any update rule: one group from a
parameter list, defaults filled into explicit groups, the errors for a single
Tensor, an empty list and a parameter given twice, and both forms of
`zero_grad`.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_optimizer_base", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_optimizer_base():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    opt = Optimizer([a, b], {"lr": 0.1})
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 0.1
    opt = Optimizer([{"params": [a]}, {"params": [b], "lr": 0.5}], {"lr": 0.1})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5], "groups must take their own lr or the default"
    for bad, error in [(a, TypeError), ([], ValueError), ([a, a], ValueError)]:
        try:
            Optimizer(bad, {"lr": 0.1})
            raise AssertionError(f"Optimizer({bad!r:.20}) should raise {error.__name__}")
        except error:
            pass
    a.grad = Tensor(np.ones(2, dtype=np.float32))
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.data.any(), "zero_grad(set_to_none=False) must fill with zeros"
    opt.zero_grad()
    assert a.grad is None, "zero_grad() must set .grad to None"
    print("Optimizer: groups, defaults, errors and zero_grad behave as in PyTorch")


test_unit_optimizer_base()

# %% [markdown]
"""
### `SGD`

The update, in PyTorch's order: weight decay joins the gradient first;
momentum then updates the buffer (created as a copy of the first gradient,
with no dampening on that first step) and replaces the gradient by the buffer,
or by `g + momentum * buf` for Nesterov; finally the in-place step.
PyTorch's argument checks come along: negative values are rejected, and
Nesterov needs a momentum and zero dampening. The default `lr=1e-3` is
PyTorch's too.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_SGD", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay.

    Args:
        params: parameters (or parameter groups) to update.
        lr: learning rate.
        momentum: factor mu of the momentum buffer b = mu * b + (1 - dampening) * g.
        dampening: damping of the gradient's share of the buffer.
        weight_decay: L2 penalty lambda, added to the gradient as lambda * p.
        nesterov: step along g + mu * b instead of b.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        for name, value in (("learning rate", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"Invalid {name}: {value}; it must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @no_grad()
    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; returns the closure's loss if one is given.

        Each group carries its own lr, momentum, dampening, weight_decay and nesterov: read them per group.
        """
        # 1. loss = self._evaluate(closure) first; return it at the end. Skip parameters whose grad is None.
        # 2. g = p.grad.data; with weight decay, g = g + weight_decay * p.data (a new array: never edit p.grad).
        # 3. With momentum, the buffer lives in self.state[p]["momentum_buffer"]: on p's first step it is a
        #    copy of g (np.array(g, dtype=p.dtype), no dampening); later buf = momentum * buf + (1 - dampening) * g,
        #    updated in place (buf *= ...; buf += ...). Then step along g + momentum * buf (nesterov) or along buf.
        # 4. p.data -= lr * g, in place: the array keeps its float32 dtype and every holder of p sees the update.
        ### BEGIN SOLUTION
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if weight_decay != 0:
                    g = g + weight_decay * p.data                      # L2: d(lambda/2 |p|^2)/dp
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)   # b_1 = g_1
                    else:
                        buf *= momentum                                 # b = mu b + (1 - tau) g, in place
                        buf += (1 - dampening) * g
                    g = g + momentum * buf if nesterov else buf
                p.data -= lr * g                                        # in place: keeps dtype and aliases
        return loss
        ### END SOLUTION


# %% [markdown]
"""
The test computes two steps of each variant by hand, with numbers small
enough to check mentally, and checks that a float32 parameter stays float32
and keeps its array (a model holding the parameter must see the update).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_sgd", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _param(values, grad, dtype=np.float32):
    p = Tensor(np.array(values, dtype=dtype), requires_grad=True)
    p.grad = Tensor(np.array(grad, dtype=dtype))
    return p


def test_unit_sgd():
    p = _param([1.0, -2.0], [0.5, 1.0])
    array = p.data
    opt = SGD([p], lr=0.1)
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-6)
    assert p.data is array and p.dtype == np.float32, "SGD must update in place and keep float32"

    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()                                        # b = g = 1            -> p = 1 - 0.1
    opt.step()                                        # b = 0.9 * 1 + 1 = 1.9 -> p = 0.9 - 0.19
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.9], rtol=1e-6)
    np.testing.assert_allclose(p.data, [0.71], rtol=1e-6)

    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    opt.step()                                        # b = 1; step along 1 + 0.9 * 1 = 1.9
    np.testing.assert_allclose(p.data, [0.81], rtol=1e-6)

    ### BEGIN HIDDEN TESTS
    p = _param([2.0], [0.0])
    SGD([p], lr=0.1, weight_decay=0.5).step()         # g = 0 + 0.5 * 2 = 1
    np.testing.assert_allclose(p.data, [1.9], rtol=1e-6)
    ### END HIDDEN TESTS

    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.5, dampening=0.5)
    opt.step()
    opt.step()                                        # b = 0.5 * 1 + 0.5 * 1 = 1
    np.testing.assert_allclose(p.data, [0.8], rtol=1e-6)
    for kwargs in ({"lr": -1}, {"lr": 0.1, "nesterov": True}, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}):
        try:
            SGD([p], **kwargs)
            raise AssertionError(f"SGD({kwargs}) should raise ValueError")
        except ValueError:
            pass
    print("SGD: plain, momentum, Nesterov, weight decay and dampening match the hand-computed steps")


test_unit_sgd()

# %% [markdown]
r"""
### `Adam`

The state for each parameter is created on its first step: a step count and
the two moment arrays, `exp_avg` ($m$) and `exp_avg_sq` ($v$), each the size
of the parameter. The moment updates are written in place (`*=`, `+=`) so
that the state arrays keep their dtype and are never reallocated. The order
of the operations is PyTorch's: count the step, apply weight decay, update
both moments, then step by the bias-corrected ratio, with $\epsilon$ added
after the square root and the correction.

Weight decay is the one place where `Adam` and `AdamW` differ, so `step()`
delegates it to a small method, `_apply_weight_decay(p, g, lr, weight_decay)`,
which returns the gradient the rest of the step uses. `Adam`'s version is
given: the L2 term joins the gradient. `AdamW` (next) overrides it. PyTorch's
optimizers take more options than ours (`amsgrad`, `maximize`, and the
implementation switches `foreach`, `fused`, `capturable`, `differentiable`);
every option we do take means exactly what it means there.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Adam", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Adam(Optimizer):
    """Adam: per-coordinate steps from bias-corrected moving averages of the gradient and its square.

    Args:
        params: parameters (or parameter groups) to update.
        lr: learning rate.
        betas: decay rates (beta1, beta2) of the first and second moment averages.
        eps: added to the denominator, after the square root and bias correction.
        weight_decay: L2 penalty added to the gradient (Adam) or decoupled decay (AdamW).
        amsgrad: divide by the largest second moment seen so far (the rest of the API, below).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Invalid lr={lr}, eps={eps} or weight_decay={weight_decay}; each must be >= 0")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"Invalid betas {tuple(betas)}; each must be in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _apply_weight_decay(self, p: Tensor, g: np.ndarray, lr: float, weight_decay: float) -> np.ndarray:
        """Adam's (coupled) L2 weight decay: the gradient plus weight_decay * p; p itself is unchanged."""
        return g + weight_decay * p.data

    def _second_moment(self, group: dict, state: dict, v: np.ndarray) -> np.ndarray:
        """The second moment the step divides by: v itself, or with amsgrad its running maximum."""
        if not group.get("amsgrad"):
            return v
        running = state.setdefault("max_exp_avg_sq", np.zeros_like(v))
        np.maximum(running, v, out=running)
        return running

    @no_grad()
    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; returns the closure's loss if one is given.

        Each group carries its own lr, betas = (beta1, beta2), eps and weight_decay: read them per group.
        """
        # 1. loss = self._evaluate(closure) first; return it at the end. Skip parameters whose grad is None.
        # 2. state = self.state.setdefault(p, {}); if it is empty (p's first step), set state["step"] = 0 and
        #    state["exp_avg"], state["exp_avg_sq"] to np.zeros_like(p.data): p's shape and dtype.
        # 3. state["step"] += 1 (t); if weight_decay != 0, g = self._apply_weight_decay(p, g, lr, weight_decay).
        # 4. In place: m = beta1 * m + (1 - beta1) * g and v = beta2 * v + (1 - beta2) * g * g.
        # 5. v = self._second_moment(group, state, v) (v itself, unless the group asks for amsgrad), then
        #    p.data -= lr / (1 - beta1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps).
        # Pitfall: eps goes in *after* the square root and v's correction, or the first steps differ from PyTorch's.
        ### BEGIN SOLUTION
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = np.zeros_like(p.data)        # m: moving average of g
                    state["exp_avg_sq"] = np.zeros_like(p.data)     # v: moving average of g^2
                state["step"] += 1
                t = state["step"]
                if weight_decay != 0:
                    g = self._apply_weight_decay(p, g, lr, weight_decay)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * (g * g)
                v = self._second_moment(group, state, v)            # amsgrad: the running maximum of v
                step_size = lr / (1 - beta1 ** t)                   # bias correction of m
                denom = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps  # of v, then eps, as PyTorch
                p.data -= step_size * (m / denom)
        return loss
        ### END SOLUTION


# %% [markdown]
r"""
The test checks the claim of the background section, that bias correction
makes the first step $\eta \cdot \mathrm{sign}(g)$ whatever the gradient's
scale (gradients from $10^{-4}$ to $10^{3}$ all move by $\eta$); a second step
computed by hand; Adam's coupled weight decay on a zero gradient, where the
L2 term becomes a full-size normalised step of $\eta$ whatever the weight
(a weight of 2 and a weight of 20 both move by 0.1); and that a bias
parameter, whose gradient chapter 09 sums over the batch, gets moments of its
own shape.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_adam", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_adam():
    p = _param([1.0, 1.0, 1.0, 1.0], [1e-4, -0.5, 2.0, 1e3])
    Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, [0.99, 1.01, 0.99, 0.99], rtol=1e-5)

    p = _param([0.0], [2.0], dtype=np.float64)
    opt = Adam([p], lr=0.1, betas=(0.5, 0.5), eps=0.0)
    opt.step()                                              # m=1, v=2 -> corrected 2 and 4 -> step 0.1
    p.grad = Tensor(np.array([1.0]))
    opt.step()                                              # m=1, v=1.5 -> 4/3 and 2 -> 0.1*(4/3)/sqrt(2)
    np.testing.assert_allclose(p.data, [-0.1 - 0.1 * (4 / 3) / math.sqrt(2)], rtol=1e-12)
    assert opt.state[p]["step"] == 2

    p = _param([2.0], [0.0], dtype=np.float64)
    Adam([p], lr=0.1, weight_decay=0.5).step()              # g = 1 in the gradient: a full step of 0.1
    np.testing.assert_allclose(p.data, [1.9], rtol=1e-6)
    p = _param([20.0], [0.0], dtype=np.float64)
    Adam([p], lr=0.1, weight_decay=0.5).step()              # ten times the weight, still a step of 0.1
    np.testing.assert_allclose(p.data, [19.9], rtol=1e-6)

    from tinytorch.nn.layers import Linear
    layer = Linear(3, 2)
    opt = Adam(layer.parameters(), lr=0.01)
    for batch in (5, 2):
        opt.zero_grad()
        layer(Tensor(np.ones((batch, 3), dtype=np.float32))).sum().backward()
        opt.step()
    assert opt.state[layer.bias]["exp_avg"].shape == layer.bias.shape == (2,), "bias moments must have the bias's shape"
    assert layer.bias.dtype == np.float32 and opt.state[layer.bias]["exp_avg_sq"].dtype == np.float32
    print("Adam: scale-free first step, hand-computed second step, coupled L2 decay; bias state fits")


test_unit_adam()

# %% [markdown]
r"""
### `AdamW`: decoupled weight decay

`AdamW` is `Adam` with one method replaced, as in PyTorch (where `AdamW` is a
subclass of `Adam`). Instead of adding $\lambda\theta$ to the gradient, where
the division by $\sqrt{v_t}$ would rescale it, it shrinks the weights
directly, $\theta \leftarrow \theta(1 - \eta\lambda)$, and hands the gradient
on untouched: the Adam step that follows sees no L2 term at all. The decay is
then proportional to the weight and independent of the gradient's history,
which is what "decoupled" means. Its default `weight_decay` is 0.01, not 0.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_AdamW", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay, then an Adam step without L2."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _apply_weight_decay(self, p: Tensor, g: np.ndarray, lr: float, weight_decay: float) -> np.ndarray:
        """Decoupled weight decay: shrink the weights themselves and return the gradient unchanged.

        Args: p, the parameter (its array is p.data); g, its gradient array; lr and weight_decay, the group's.
        Returns: the gradient the Adam step continues with.
        """
        # Adam.step() calls this after counting the step and before updating the moments.
        # Multiply p.data by (1 - lr * weight_decay) in place (`*=`), so p keeps its array and its float32 dtype.
        # Pitfall: do not add weight_decay * p to g; that is Adam's coupled L2, which sqrt(v) would rescale.
        ### BEGIN SOLUTION
        p.data *= 1 - lr * weight_decay
        return g
        ### END SOLUTION


# %% [markdown]
r"""
The test puts `AdamW` next to `Adam` where they differ. On a zero gradient
only the decay acts: a weight of 2 becomes $2(1 - 0.1 \cdot 0.5) = 1.9$ and a
weight of 20 becomes 19, ten times the change, where `Adam` moved both by
0.1. With a gradient, the decay and an ordinary Adam step add up
($1 \to 0.99 \to 0.89$), while `Adam` folds the decay into the gradient and
takes one step of 0.1. Without weight decay the two are the same optimizer,
and the default decay is PyTorch's 0.01.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_adamw", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_adamw():
    p = _param([2.0], [0.0], dtype=np.float64)
    AdamW([p], lr=0.1, weight_decay=0.5).step()             # g = 0: only the decay, 2 * (1 - 0.05)
    np.testing.assert_allclose(p.data, [1.9], rtol=1e-12)
    p = _param([20.0], [0.0], dtype=np.float64)
    AdamW([p], lr=0.1, weight_decay=0.5).step()             # proportional to the weight: 20 * 0.95
    np.testing.assert_allclose(p.data, [19.0], rtol=1e-12)

    p, q = _param([1.0], [0.5], dtype=np.float64), _param([1.0], [0.5], dtype=np.float64)
    AdamW([p], lr=0.1, weight_decay=0.1).step()             # 1 * 0.99, then an Adam step of 0.1
    Adam([q], lr=0.1, weight_decay=0.1).step()              # g = 0.5 + 0.1: one Adam step of 0.1
    np.testing.assert_allclose(p.data, [0.89], rtol=1e-7)             # eps = 1e-8 shortens a step by 1e-8
    np.testing.assert_allclose(q.data, [0.9], rtol=1e-7)

    p, q = _param([1.0, -3.0], [0.3, -2.0]), _param([1.0, -3.0], [0.3, -2.0])
    a, b = AdamW([p], lr=0.01, weight_decay=0.0), Adam([q], lr=0.01)
    for _ in range(3):
        a.step()
        b.step()
    np.testing.assert_array_equal(p.data, q.data, err_msg="without weight decay AdamW must be Adam")
    assert p.dtype == np.float32, "the decay must keep float32 weights float32"
    assert AdamW([_param([1.0], [0.0])]).param_groups[0]["weight_decay"] == 0.01
    print("AdamW: decoupled decay, proportional to the weight; no decay makes it Adam; default 0.01")


test_unit_adamw()

# %% [markdown]
"""
### Saving and resuming

The test saves an Adam optimizer's state halfway through a few steps, builds
a *new* optimizer on a copy of the parameters, loads the state, and checks
that the rest of the run is identical to never having stopped. Then it checks
that a state dict holds copies (a later step must not change a saved
checkpoint) and that a state for differently shaped parameters is refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_state_dict", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_state_dict():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3).astype(np.float32) for _ in range(6)]

    def run(p, opt, steps):
        for g in steps:
            p.grad = Tensor(g)
            opt.step()

    p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    opt = Adam([p], lr=0.1, weight_decay=0.01)
    run(p, opt, grads[:3])
    saved, saved_p = opt.state_dict(), p.data.copy()
    run(p, opt, grads[3:])
    assert saved["state"][0]["step"] == 3, "a state dict must be a copy, not a view of the live state"

    q = Tensor(saved_p, requires_grad=True)
    resumed = Adam([q], lr=0.5)                       # wrong lr on purpose: load_state_dict restores it
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == 0.1
    run(q, resumed, grads[3:])
    np.testing.assert_array_equal(q.data, p.data, err_msg="resumed training must continue exactly")

    wrong = Adam([Tensor(np.ones(4, dtype=np.float32), requires_grad=True)])
    try:
        wrong.load_state_dict(saved)
        raise AssertionError("a state for a (3,) parameter must not load into a (4,) one")
    except ValueError:
        pass
    print("state_dict round trip: a resumed optimizer continues exactly where the first one was")


test_unit_state_dict()

# %% [markdown]
"""
### Learning-rate schedulers

A scheduler owns no parameters: it rewrites `group["lr"]` in the optimizer it
wraps, once per `scheduler.step()` (usually once per epoch, after the
optimizer's step). PyTorch's protocol, which we follow: on construction it
records each group's starting rate as `initial_lr` (kept in `base_lrs`) and
makes a first step to epoch 0; `get_last_lr()` returns the rates it last set.

PyTorch computes most schedules *recursively* (the new rate from the current
`group["lr"]`, so that several schedulers can be chained on one optimizer).
We use the *closed forms* of the background section, which PyTorch also
implements (`_get_closed_form_lr`): the two agree to rounding, which the tests
check against `torch.optim.lr_scheduler`; they differ only if something else
changes `group["lr"]` in between. These classes go to their own file,
`tinytorch/optim/lr_scheduler.py`, re-exported as `tinytorch.optim.lr_scheduler`.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_LRScheduler", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export optim.lr_scheduler

import math


class LRScheduler:
    """Base class: sets every parameter group's lr from get_lr() once per step().

    Args:
        optimizer: the optimizer whose param_groups' "lr" the scheduler sets.
        last_epoch: the index of the last epoch when resuming (-1 starts fresh).
    """

    def __init__(self, optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{i}] has no 'initial_lr'; resuming (last_epoch={last_epoch}) needs "
                               "the optimizer state of the run being resumed")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def step(self) -> None:
        """Advance one epoch and write the new learning rate into every parameter group."""
        # 1. Count the epoch: self.last_epoch += 1 (the constructor's own call takes it from -1 to 0).
        # 2. Ask the subclass for this epoch's rates, one per group: self.get_lr(); keep the list in
        #    self._last_lr, which get_last_lr() returns.
        # 3. Write each rate into its group's "lr" (zip them with self.optimizer.param_groups): the optimizer's
        #    next step() reads group["lr"], so this is all it takes to schedule it.
        ### BEGIN SOLUTION
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
        ### END SOLUTION

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last step(), one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply the learning rate by gamma every step_size epochs: lr = base * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive number of epochs, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for epoch self.last_epoch: each group's base rate times gamma ** (epoch // step_size)."""
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate down to eta_min over T_max epochs (and back up, if stepped further)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive number of epochs, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for epoch t = self.last_epoch, one per parameter group (one per entry of self.base_lrs)."""
        # eta_t = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2, with StepLR.get_lr as the model.
        # At t = 0 that is the base rate, at t = T_max exactly eta_min; past T_max it rises again (no clamping).
        # Pitfall: start from each group's own base rate (self.base_lrs), not from the current group["lr"].
        ### BEGIN SOLUTION
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]
        ### END SOLUTION


# %% [markdown]
"""
The test steps each scheduler past the end of its schedule and compares every
learning rate with the closed form, checks that two parameter groups are
scheduled from their own base rates, and that the optimizer really uses the
scheduled rate in its next step.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_schedulers", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_schedulers():
    a = Tensor(np.zeros(1), requires_grad=True)
    b = Tensor(np.zeros(1), requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    seen = []
    for epoch in range(10):
        seen.append(sched.get_last_lr())
        sched.step()
    expected = [[0.1 * 0.5 ** (e // 3), 1.0 * 0.5 ** (e // 3)] for e in range(10)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)

    opt = SGD([a], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=8, eta_min=0.01)
    lrs = []
    for epoch in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    closed = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(12)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12)
    assert abs(lrs[8] - 0.01) < 1e-12 and lrs[9] > lrs[8], "cosine reaches eta_min at T_max, then rises"

    a.grad = Tensor(np.ones(1))
    opt.step()                                        # uses the lr the scheduler set last (epoch 12)
    np.testing.assert_allclose(a.data, [-(0.01 + 0.09 * (1 + math.cos(math.pi * 12 / 8)) / 2)], rtol=1e-12)
    print("StepLR and CosineAnnealingLR follow their closed forms, per parameter group")


test_unit_schedulers()

# %% [markdown]
"""
### The rest of the API

One more optimizer and five more schedules that PyTorch users reach for, all
made of the same parts: per-parameter state arrays updated in place, and a
`get_lr()` that computes each group's rate from its base rate.

- `Adam(amsgrad=True)` (and `AdamW`): divide by the largest second moment
  seen so far, `max_v = max(max_v, v)`, so that a parameter's step size can
  only shrink; it costs a third state array. Your step already asks
  `_second_moment` for the array to divide by, and that is where the max is taken.
- `RMSprop`: Adam's second moment without the first or the bias correction
  (options `momentum` and `centered`, as in PyTorch).
- `MultiStepLR` (multiply by `gamma` at each milestone), `ExponentialLR`
  (every epoch), `LinearLR` (a linear warm-up factor), `OneCycleLR` (warm up to
  `max_lr`, then anneal far below the start; it also cycles momentum, as
  PyTorch's does by default), and `ReduceLROnPlateau`, which is driven by a
  metric: `scheduler.step(val_loss)`.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
class RMSprop(Optimizer):
    """RMSprop: divide each gradient by the root of a moving average of its square."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"Invalid lr={lr}, alpha={alpha}, eps={eps}, weight_decay={weight_decay} or "
                             f"momentum={momentum}; each must be >= 0 (alpha at most 1)")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    @no_grad()
    def step(self, closure: Callable | None = None):
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if group["weight_decay"] != 0:
                    g = g + group["weight_decay"] * p.data
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"], state["square_avg"] = 0, np.zeros_like(p.data)
                    if momentum > 0:
                        state["momentum_buffer"] = np.zeros_like(p.data)
                    if group["centered"]:
                        state["grad_avg"] = np.zeros_like(p.data)
                state["step"] += 1
                square_avg = state["square_avg"]
                square_avg *= alpha
                square_avg += (1 - alpha) * (g * g)
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    grad_avg *= alpha
                    grad_avg += (1 - alpha) * g
                    avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
                else:
                    avg = np.sqrt(square_avg) + eps
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += g / avg
                    p.data -= lr * buf
                else:
                    p.data -= lr * (g / avg)
        return loss


# %% nbgrader={"grade": false, "grade_id": "impl_rest_of_api_schedulers", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export optim.lr_scheduler
from bisect import bisect_right


class MultiStepLR(LRScheduler):
    """Multiply the rate by gamma at each milestone epoch: base * gamma ** (milestones passed)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by gamma every epoch: base * gamma ** epoch."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rate by a factor going linearly from start_factor to end_factor over total_iters epochs."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1], "
                             f"got {start_factor} and {end_factor}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        done = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """Warm up from max_lr / div_factor to max_lr over pct_start of the steps, then anneal to
    max_lr / (div_factor * final_div_factor); momentum (or Adam's beta1) moves the opposite way."""

    def __init__(self, optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if total_steps < 1 or anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: total_steps must be >= 1 and anneal_strategy 'cos' or 'linear', "
                             f"got {total_steps} and {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy, self.cycle_momentum = total_steps, anneal_strategy, cycle_momentum
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if three_phase:
            ends = [pct_start * total_steps - 1, 2 * pct_start * total_steps - 2, total_steps - 1]
            shapes = [("initial_lr", "max_lr", "max_momentum", "base_momentum"),
                      ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
                      ("initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            ends = [pct_start * total_steps - 1, total_steps - 1]
            shapes = [("initial_lr", "max_lr", "max_momentum", "base_momentum"),
                      ("max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._phases = list(zip(ends, shapes))
        self._beta1 = "betas" in optimizer.defaults
        if cycle_momentum and "momentum" not in optimizer.defaults and not self._beta1:
            raise ValueError("OneCycleLR: the optimizer has no momentum to cycle; pass cycle_momentum=False")
        for group, top in zip(groups, max_lrs):
            if last_epoch == -1:
                group["initial_lr"], group["max_lr"] = top / div_factor, top
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if cycle_momentum:
                if last_epoch == -1:
                    self._set_momentum(group, max_momentum)
                group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self._beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, but total_steps is {self.total_steps}")
        rates = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, (lr_from, lr_to, m_from, m_to)) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    rates.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m_from], group[m_to], pct))
                    break
                start = end
        return rates


class ReduceLROnPlateau:
    """Multiply the rate by `factor` when a metric has not improved for `patience` epochs: step(metric)."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0.0,
                 eps: float = 1e-8):
        if factor >= 1.0 or mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, mode 'min' or 'max', threshold_mode 'rel' "
                             f"or 'abs'; got {factor}, {mode!r}, {threshold_mode!r}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, cooldown, eps
        groups = optimizer.param_groups
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(groups)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0
        self._last_lr = [group["lr"] for group in groups]

    def _is_better(self, current: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return current < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return current > bound

    def step(self, metrics) -> None:
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, floor)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


# %% nbgrader={"grade": true, "grade_id": "test_unit_rest_of_api", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_rest_of_api():
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    w.grad = Tensor(np.array([0.5, 0.5]))
    RMSprop([w], lr=0.1).step()                      # first step: g / sqrt(0.01 g^2) = 10 sign(g)
    np.testing.assert_allclose(w.data, [1.0 - 1.0, -2.0 - 1.0], atol=1e-6)
    opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    multi = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    rates = []
    for _ in range(5):
        rates.append(multi.get_last_lr()[0])
        multi.step()
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25], rates
    opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0, momentum=0.9)
    cycle = OneCycleLR(opt, max_lr=1.0, total_steps=10)
    assert np.isclose(cycle.get_last_lr()[0], 1.0 / 25) and opt.param_groups[0]["momentum"] == 0.95
    plateau = ReduceLROnPlateau(SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0), patience=1)
    for loss in (1.0, 1.0, 1.0):
        plateau.step(loss)
    assert plateau.get_last_lr() == [0.1], "two epochs without improvement beyond patience=1 cut the rate"
    print("RMSprop and the schedules of the rest of the API follow PyTorch's definitions")


test_unit_rest_of_api()

# %% [markdown]
"""
## Systems analysis

### What the optimizer state costs, measured

A model of realistic shape: an MLP for 28 x 28 images,
`784 -> 1024 -> 1024 -> 10`, built from chapter 04's `Linear`. We give every
parameter a gradient, create each optimizer, run its first step (the state is
created lazily, on that step) and measure with `tracemalloc` what stays
allocated afterwards, and the peak during the step.
"""

# %%
import gc
import time
import tracemalloc

import matplotlib.pyplot as plt

from tinytorch.nn.activation import ReLU, log_softmax
from tinytorch.nn.init import manual_seed
from tinytorch.nn.layers import Linear, Sequential

manual_seed(0)
model = Sequential(Linear(784, 1024), ReLU(), Linear(1024, 1024), ReLU(), Linear(1024, 10))
params = list(model.parameters())
n_params = sum(p.numel() for p in params)
param_bytes = sum(p.nbytes for p in params)
grad_rng = np.random.default_rng(0)
for p in params:
    p.grad = Tensor((grad_rng.standard_normal(p.shape) * 1e-3).astype(np.float32))
print(f"{n_params:,} parameters, {param_bytes / 2**20:.2f} MB of float32 weights, as much again in gradients")


def first_step_memory(make):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    opt = make(params)
    opt.step()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
    return opt, state, held - before, peak - before


makers = {"SGD": lambda ps: SGD(ps, lr=0.01),
          "SGD momentum": lambda ps: SGD(ps, lr=0.01, momentum=0.9),
          "Adam": lambda ps: Adam(ps),
          "AdamW": lambda ps: AdamW(ps)}
optimizers, state_ratio = {}, {}
print(f"{'optimizer':14} {'state arrays':>13} {'x weights':>10} {'held after step':>16} {'peak in step':>13}")
for name, make in makers.items():
    optimizers[name], state, held, peak = first_step_memory(make)
    state_ratio[name] = state / param_bytes
    print(f"{name:14} {state / 2**20:10.2f} MB {state / param_bytes:10.1f} {held / 2**20:13.2f} MB {peak / 2**20:10.2f} MB")
assert state_ratio == {"SGD": 0, "SGD momentum": 1, "Adam": 2, "AdamW": 2}, \
    f"the text says 0, 1, 2 and 2 parameter-sized arrays; measured {state_ratio}"

# %% [markdown]
"""
The measurement matches the table of the background section exactly: SGD
keeps nothing, momentum one parameter-sized array, Adam and AdamW two.
`tracemalloc` sees the state arrays and nothing else stay behind. The peak is
higher than what stays: NumPy evaluates `step_size * (m / denom)` one operation
at a time, and each operation allocates a temporary the size of the parameter
(the largest here is the `1024 x 1024` weight, 4 MB). For the whole of Adam
training, add the weights and gradients: 4 + 4 + 8 = 16 bytes per parameter,
before any activation.

### What a step costs, measured

An optimizer step does a few flops per parameter, so its time is set by how
many bytes it moves. Below, each step is timed (the fastest of several runs,
the one least disturbed by whatever else the machine is doing) next to a
plain copy of a float32 array with as many elements as the model has
parameters: reading and writing each element once, the
fastest anything can touch all the parameters. For each optimizer we count two
byte totals: the *minimum* a single fused loop would move (the table of the
background section), and what our NumPy code really moves, one pass over
memory per operation. For Adam that is 13 passes: `m *= beta1` reads and
writes $m$ (8 bytes per parameter), `(1 - beta1) * g` reads $g$ and writes a
temporary (8), `m += ...` reads two arrays and writes one (12), and so on down
to `p.data -= ...`: 120 bytes per parameter instead of 28.
"""

# %%
from tinytorch.utils.timing import best_time    # chapter 01: the fastest of several runs


src = np.ones(n_params, dtype=np.float32)
dst = np.empty_like(src)
# bytes per parameter: (one fused loop, our NumPy passes), counted as described above
traffic = {"SGD": (12, 20), "SGD momentum": (20, 48), "Adam": (28, 120), "AdamW": (28, 128)}
times = [best_time(fn, repeats=7) for fn in [lambda: np.copyto(dst, src)] + [opt.step for opt in optimizers.values()]]
t_copy = times[0]
print(f"{'copy':14} {t_copy * 1e3:6.2f} ms   moves {8 * n_params / 2**20:6.1f} MB: {8 * n_params / t_copy / 1e9:5.1f} GB/s")
for (name, opt), t in zip(optimizers.items(), times[1:]):
    fused, ours = traffic[name]
    print(f"{name:14} {t * 1e3:6.2f} ms   moves {ours * n_params / 2**20:6.1f} MB: {ours * n_params / t / 1e9:5.1f} GB/s"
          f"   (a fused loop would move {fused * n_params / 2**20:5.1f} MB)")
t_sgd, t_adam = times[1], times[3]
print(f"Adam / SGD: {t_adam / t_sgd:.1f}x the time, {traffic['Adam'][1] / traffic['SGD'][1]:.1f}x the bytes (our passes)")
copy_rate = 8 * n_params / t_copy
rates = {name: traffic[name][1] * n_params / t for name, t in zip(optimizers, times[1:])}
assert all(0.1 <= rate / copy_rate <= 10 for rate in rates.values()), \
    f"the text says the steps move bytes at the order of a copy's rate; measured {rates} vs {copy_rate:.3g} B/s"
assert 2 <= t_adam / t_sgd <= 50, f"the text says Adam's step takes several times SGD's; measured {t_adam / t_sgd:.1f}x"

# %% [markdown]
r"""
Compare the GB/s column with the copy's: the optimizers move their bytes at a
rate of the same order as a plain copy, within a factor of a few either way
(the arrays here are a few megabytes, so part of the traffic, especially to
temporaries just written, is served from the processor's caches, and the
figures vary from machine to machine and from run to run). And Adam's step
takes several times SGD's, the same order as the ratio of the bytes they
move and often more (the last line prints both; the cell checks the time
ratio lies between 2 and 50), although Adam does many more flops per byte.
The "often more" is allocation: each of Adam's operations writes a fresh
temporary the size of the parameter, and fresh memory can cost page faults on
top of the traffic; SGD allocates one. The step is
*memory-bound*: its time is the bytes it moves divided by the bandwidth, and
the flops are nearly free. So there are two ways to make it faster, and
production uses both: move fewer bytes per parameter by fusing the passes
into one loop (PyTorch's `foreach` and `fused` implementations; about 4x fewer
for Adam, by the count above), or store the state in fewer bits (8-bit Adam).
Next to a forward and backward pass, whose cost grows with the batch, the
step is cheap; it matters for large models trained on small per-device
batches.

### The same problem, three optimizers

First, the situation the background section described: a quadratic
$L(x) = \tfrac12 x^\top H x$ in two dimensions with condition number
$\kappa = 50$, once with the steep direction along an axis and once rotated by
45 degrees. Each optimizer gets 100 steps from the same start, with its best
setting from a small grid (learning rates from 0.001 to 1; for momentum also
$\mu \in \{0.5, 0.7, 0.9\}$), judged by the geometric mean of the loss over
the last 20 steps (a method that oscillates should not win by ending on a
lucky step). The gradients come from chapter 09's `backward()`, like any
model's.
"""

# %%
def run_quadratic(make_optimizer, H, start=(-4.0, 2.0), steps=100):
    x = Tensor(np.array(start), requires_grad=True)
    H = Tensor(H)
    opt = make_optimizer([x])
    path, losses = [x.data.copy()], []
    with np.errstate(over="ignore", invalid="ignore"):     # a too-large lr diverges: we want to see it, quietly
        for _ in range(steps):
            loss = (x @ (H @ x)) * 0.5
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
            path.append(x.data.copy())
    return np.array(path), np.array(losses)


def late_loss(losses):
    """Geometric mean of the last 20 losses; inf for a run that diverged."""
    tail = losses[-20:]
    return float(np.exp(np.mean(np.log(tail)))) if np.all(np.isfinite(tail)) and np.all(tail > 0) else np.inf


kappa, angle = 50.0, np.pi / 4
rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
problems = {"axis-aligned": np.diag([1.0, kappa]), "rotated 45 degrees": rotation @ np.diag([1.0, kappa]) @ rotation.T}
lrs = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
candidates = {"SGD": [(f"lr {lr}", lambda ps, lr=lr: SGD(ps, lr=lr)) for lr in lrs],
              "SGD momentum": [(f"lr {lr}, momentum {mu}", lambda ps, lr=lr, mu=mu: SGD(ps, lr=lr, momentum=mu))
                               for lr in lrs for mu in (0.5, 0.7, 0.9)],
              "Adam": [(f"lr {lr}", lambda ps, lr=lr: Adam(ps, lr=lr)) for lr in lrs]}
best = {}
for problem, H in problems.items():
    for name, settings in candidates.items():
        runs = [(setting, *run_quadratic(make, H)) for setting, make in settings]
        best[problem, name] = min(runs, key=lambda r: late_loss(r[2]))
        setting, path, losses = best[problem, name]
        print(f"{problem:19} {name:13} best: {setting:22} late loss {late_loss(losses):.1e}")
late = {key: late_loss(run[2]) for key, run in best.items()}
for problem in problems:
    assert late[problem, "SGD momentum"] < 1e-4 * late[problem, "SGD"], \
        f"the text says momentum ends many orders of magnitude below SGD on the {problem} problem; measured {late}"
    assert "momentum 0.9" not in best[problem, "SGD momentum"][0], "the text says momentum's best mu is below 0.9"
assert late["axis-aligned", "Adam"] < late["axis-aligned", "SGD"], "the text says Adam beats SGD when axis-aligned"
assert late["rotated 45 degrees", "Adam"] > late["rotated 45 degrees", "SGD"], "the text says Adam loses when rotated"

fig, axes = plt.subplots(2, 2, figsize=(10, 7))
for column, (problem, H) in enumerate(problems.items()):
    u, v = np.meshgrid(np.linspace(-4.5, 4.5, 100), np.linspace(-3, 3, 100))
    levels = 0.5 * (H[0, 0] * u * u + 2 * H[0, 1] * u * v + H[1, 1] * v * v)
    axes[0, column].contour(u, v, levels, levels=np.geomspace(0.05, 300, 12), colors="0.8")
    for name in candidates:
        setting, path, losses = best[problem, name]
        axes[0, column].plot(path[:, 0], path[:, 1], ".-", markersize=3, label=f"{name} ({setting})")
        axes[1, column].semilogy(losses, label=name)
    axes[0, column].set_title(f"{problem}, condition number {kappa:.0f}")
    axes[0, column].set_xlim(-4.5, 4.5)
    axes[0, column].set_ylim(-3, 3)
    axes[0, column].legend(fontsize=8)
    axes[1, column].set_xlabel("step")
    axes[1, column].set_ylabel("loss")
axes[1, 0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
Plain SGD's learning rate is capped by the steep direction
($\eta < 2/\lambda_{\max} = 0.04$), so it crawls along the flat one. Momentum
accumulates speed along the flat direction and, with a well-chosen $\mu$,
reaches a loss many orders of magnitude lower in the same 100 steps, on both
problems: the $\sqrt{\kappa}$ rate. Its best $\mu$ here is well below the
customary 0.9 (theory gives $((\sqrt{\kappa}-1)/(\sqrt{\kappa}+1))^2 \approx 0.56$
for $\kappa = 50$); with 0.9 it overshoots and its loss falls in waves.
Adam's per-coordinate scaling is a *diagonal* rescaling: it beats SGD when
the steep and flat directions are the coordinate axes, and not when the same
problem is rotated, because then every coordinate sees a mix of both. And
near the minimum Adam's steps stay about as large as its learning rate (it
normalises the gradient away), so it circles instead of settling unless the
learning rate decays: one reason schedules exist.

Real losses are not quadratics. The second comparison is a small MLP
(`2 -> 64 -> 64 -> 3`, ReLU) classifying three interleaved spirals, 900 points
made with NumPy, trained with mini-batches of 128 for 300 steps. Each
optimizer uses a common default: SGD with `lr=0.5`, momentum 0.9 with
`lr=0.05` (the same effective step, since momentum multiplies it by about
$1/(1-\mu) = 10$), and Adam with `lr=0.01`.
"""


# %%
def spirals(n_per_class, classes=3, noise=0.2, seed=0):
    """`classes` interleaved spiral arms in 2-D, `n_per_class` points each (the classic CS231n toy set)."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for c in range(classes):
        radius = np.linspace(0.0, 1.0, n_per_class)
        theta = np.linspace(c * 4, (c + 1) * 4, n_per_class) + noise * rng.standard_normal(n_per_class)
        points.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        labels.append(np.full(n_per_class, c))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels)


def cross_entropy(logits, targets):
    """Mean of -log softmax(logits)[i, targets[i]] (chapter 05's CrossEntropyLoss computes the same)."""
    return -log_softmax(logits, dim=1)[np.arange(len(targets)), targets].mean()


def accuracy(model, x, y):
    with no_grad():
        return float((model(Tensor(x)).argmax(dim=1).data == y).mean())


x_train, y_train = spirals(300, seed=0)
x_test, y_test = spirals(300, seed=1)                    # a fresh draw of the noise: held-out points


def train_spirals(make_optimizer, steps=300, batch=128, make_scheduler=None, seed=0):
    manual_seed(seed)
    net = Sequential(Linear(2, 64), ReLU(), Linear(64, 64), ReLU(), Linear(64, 3))
    opt = make_optimizer(net.parameters())
    scheduler = make_scheduler(opt) if make_scheduler else None
    order = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = order.choice(len(x_train), batch, replace=False)
        loss = cross_entropy(net(Tensor(x_train[idx])), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return net, np.array(losses)


mlp_makers = {"SGD lr=0.5": lambda ps: SGD(ps, lr=0.5),
              "SGD momentum=0.9 lr=0.05": lambda ps: SGD(ps, lr=0.05, momentum=0.9),
              "Adam lr=0.01": lambda ps: Adam(ps, lr=0.01)}
spiral_losses = {}
fig, ax = plt.subplots(figsize=(7, 3.5))
for name, make in mlp_makers.items():
    net, losses = train_spirals(make)
    spiral_losses[name] = losses
    smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
    ax.semilogy(smooth, label=name)
    print(f"{name:25} loss over the last 20 steps {losses[-20:].mean():.3f}, "
          f"held-out accuracy {accuracy(net, x_test, y_test):.1%}")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (10-step mean)")
ax.legend()
plt.tight_layout()
plt.show()
sgd, momentum, adam = (spiral_losses[name] for name in mlp_makers)
print(f"mean loss over steps 41-60: SGD {sgd[40:60].mean():.3f}, momentum {momentum[40:60].mean():.3f}, "
      f"Adam {adam[40:60].mean():.3f}")
assert momentum[-20:].mean() < sgd[-20:].mean(), "the text says momentum ends a little ahead of plain SGD"
assert adam[40:60].mean() < min(sgd[40:60].mean(), momentum[40:60].mean()), \
    "the text says Adam is ahead of both within a few dozen steps"

# %% [markdown]
"""
On this problem momentum is a little ahead of plain SGD at the same effective
step, and smoother (the buffer averages the mini-batch noise), while Adam
with its default-sized learning rate is ahead of both within a few dozen
steps (the last line compares steps 41 to 60) and stays ahead. That is Adam's practical appeal more than any asymptotic property: its
scale-free steps make a reasonable learning rate easy to find. With enough
tuning (and a schedule), SGD with momentum often generalises as well or
better; image classifiers are still commonly trained with it.

### Learning-rate schedules

The two schedulers over 120 epochs, stepped once per epoch on an optimizer
with a base rate of 0.1: the rate that `optimizer.step()` would use in each
epoch.
"""

# %%
def lr_sequence(make_scheduler, epochs=120, base_lr=0.1):
    opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=base_lr)
    scheduler = make_scheduler(opt)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        scheduler.step()
    return rates


schedules = {"StepLR(step_size=30, gamma=0.5)": lambda o: StepLR(o, step_size=30, gamma=0.5),
             "CosineAnnealingLR(T_max=100, eta_min=0.001)": lambda o: CosineAnnealingLR(o, T_max=100, eta_min=0.001)}
fig, ax = plt.subplots(figsize=(7, 3))
for name, make in schedules.items():
    ax.plot(lr_sequence(make), label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
"""
`StepLR` halves the rate every 30 epochs, a staircase; the cosine glides from
0.1 to 0.001 at epoch 100 and, stepped past `T_max`, climbs back (PyTorch's
behaviour; warm restarts, `CosineAnnealingWarmRestarts`, jump back instead).
Cosine has no step-size hyperparameters to tune beyond its length, and is the
usual choice for transformers, after a short linear warm-up.
"""

# %% [markdown]
"""
## Production context

- **`torch.optim`** has the same structure: `Optimizer` with `param_groups`
  and `state`, and one `step()` per algorithm. Each algorithm has three
  implementations. The *single-tensor* loop is ours: one parameter at a time,
  one pass over memory per operation. *foreach* applies each operation to all
  parameters in one call (fewer kernel launches on a GPU); *fused* runs the
  whole update in a single kernel, one read and one write per array, the
  28 bytes per parameter of our count. On CUDA, foreach is the default.
- **State is keyed by position** in `state_dict()`, exactly as here, so a
  checkpoint loads into a freshly built model with the same parameter order.
  PyTorch stores `step` as a tensor (so that it can live on the GPU and be
  captured in CUDA graphs); we keep a Python integer.
- **Mixed precision** adds a float32 *master copy* of the weights next to the
  16-bit weights used in forward and backward: 2 + 2 + 4 + 4 + 4 = 16 bytes per
  parameter for Adam, the figure behind "a 7B model needs 112 GB to train".
  **ZeRO** (DeepSpeed) and PyTorch's **FSDP** shard the optimizer state, the
  gradients and even the weights across data-parallel workers, so that each
  holds $1/N$ of the 16 bytes. **8-bit Adam** (bitsandbytes) stores $m$ and $v$
  in 8 bits with block-wise scales: 2 bytes of state per parameter instead of 8.
- **Weight decay is usually not applied to everything**: biases and
  normalization parameters go into a parameter group with
  `weight_decay=0.0`. This is what parameter groups are for (the test above
  builds two).
- **Schedulers** in PyTorch are chainable (computed recursively from the
  current `lr`), and `torch.optim.lr_scheduler` has many more: warm-up
  (`LinearLR`), `OneCycleLR`, `ReduceLROnPlateau`, `SequentialLR` to join them.
"""

# %% [markdown]
"""
## Integration: train a classifier to high accuracy, in seconds

Everything together: chapter 04's `Linear` and `Sequential`, chapter 03's
ReLU and `log_softmax`, the cross-entropy above (built from `log_softmax` and
integer-array indexing: chapter 05 provides the same as `CrossEntropyLoss`),
chapter 09's `backward()`, and this chapter's `Adam` with a cosine schedule
stepped once per mini-batch. 400 steps of batch 128 on the spirals, then the
accuracy on the held-out points.
"""

# %%
start = time.perf_counter()
net, losses = train_spirals(lambda ps: Adam(ps, lr=0.01), steps=400,
                            make_scheduler=lambda opt: CosineAnnealingLR(opt, T_max=400))
seconds = time.perf_counter() - start
train_accuracy, test_accuracy = accuracy(net, x_train, y_train), accuracy(net, x_test, y_test)
print(f"trained in {seconds:.1f} s: final loss {losses[-20:].mean():.3f}, "
      f"train accuracy {train_accuracy:.1%}, held-out accuracy {test_accuracy:.1%}")
assert test_accuracy > 0.95, f"held-out accuracy {test_accuracy:.1%}: the optimizer or the model is not learning"

grid_x, grid_y = np.meshgrid(np.linspace(-1.1, 1.1, 200), np.linspace(-1.1, 1.1, 200))
with no_grad():
    regions = net(Tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float32))).argmax(dim=1).data
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.contourf(grid_x, grid_y, regions.reshape(grid_x.shape), alpha=0.3, levels=[-0.5, 0.5, 1.5, 2.5], cmap="brg")
ax.scatter(x_test[:, 0], x_test[:, 1], c=y_test, s=6, cmap="brg")
ax.set_title(f"held-out spirals: {test_accuracy:.1%} correct")
ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_optimizer_base()
    test_unit_sgd()
    test_unit_adam()
    test_unit_adamw()
    test_unit_state_dict()
    test_unit_schedulers()
    test_unit_rest_of_api()
    print("All tests of chapter 10 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. State memory at scale.** We measured Adam's state at exactly twice the
weights. For a 1.3-billion-parameter model trained in float32, add up
weights, gradients and Adam state. How many 24 GB GPUs does that take before
any activation, and how does ZeRO-style sharding of the state (and then the
gradients) over 8 workers change the per-GPU figure?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_state_memory_at_scale", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** At 4 bytes each: weights 1.3 × 10⁹ × 4 = 5.2 GB, gradients
5.2 GB, Adam's two moments 2 × 5.2 = 10.4 GB; in all 16 bytes per parameter,
20.8 GB. That fits on one 24 GB GPU, but leaves only about 3 GB for
activations, temporaries and the framework, so in practice it does not train
there. Sharding the optimizer state over 8 workers (ZeRO stage 1) leaves each
GPU 5.2 + 5.2 + 10.4 / 8 = 11.7 GB; sharding the gradients too (stage 2)
gives 5.2 + 0.65 + 1.3 ≈ 7.2 GB; sharding the weights as well (stage 3, FSDP)
gives 20.8 / 8 = 2.6 GB, at the price of gathering weights for every layer's
forward and backward.

**Rubric (2 points).** 1 point for the 16 bytes per parameter and 20.8 GB
total (GB or GiB accepted) with a sound conclusion about one 24 GB GPU;
1 point for the sharded figures (11.7 GB with the state sharded, about 7.2 GB
with the gradients too).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Bandwidth, not flops.** Our Adam moves about 120 bytes per parameter per
step, a fused loop 28. Using the copy bandwidth you measured, what is the
shortest possible Adam step for a 1-billion-parameter model on this machine?
Rewrite `Adam.step` on paper to need fewer NumPy passes (hint: `out=`
arguments and reusing one scratch array) and count the bytes again.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_bandwidth_not_flops", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** A fused step reads $p, g, m, v$ and writes $p, m, v$:
28 bytes × 10⁹ = 28 GB per step. At the copy rate $B$ of the "copy" row that
is at least 28 GB / $B$ per step (with $B$ = 13 GB/s, about 2 s); our 13
passes move about 120 GB, 120 GB / $B$ (about 9 s at 13 GB/s).
With one scratch array `s` and `out=`: `m *= b1; np.multiply(g, 1 - b1, out=s);
m += s; v *= b2; np.multiply(g, g, out=s); s *= 1 - b2; v += s;
np.sqrt(v, out=s); s += eps * sqrt(1 - b2**t)` (folding the correction of $v$
into the step size), `np.divide(m, s, out=s); s *= step_size; p -= s`. That
is still 12 passes, about 112 bytes per parameter if every pass goes to
memory: `out=` removes the allocations (fresh pages, page faults) and one
pass, not the traffic. The traffic falls only if the passes share the cache:
run them over cache-sized chunks (say 16 K elements) with a chunk-sized
scratch array, and memory sees little more than the fused loop's 28 bytes.

**Rubric (2 points).** 1 point for 28 GB (and about 120 GB for ours) divided
by a measured bandwidth, giving seconds; 1 point for a rewrite with a byte
count and the insight that fewer allocations is not fewer bytes (chunking or
fusion is what approaches 28).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Resuming correctly.** A run is checkpointed with the model's
`state_dict()` but not the optimizer's, and resumed with a new Adam. What
happens to the step count, and therefore to the bias correction, on the
first resumed steps? Why can that cause a loss spike, and what else (the
scheduler's `last_epoch`, the data order, the random seed) must a
checkpoint hold for a resumed run to be identical, as our test demands?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_resuming_correctly", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The new Adam starts at `step` 0 with $m = v = 0$. Its first
step divides by $1 - \beta_1 = 0.1$ and $1 - \beta_2 = 0.001$, so it moves
*every* coordinate by about $\eta \cdot \mathrm{sign}(g)$, as our test of the
first step showed, whatever that coordinate's history. Coordinates whose
gradients had been large and noisy were taking steps far below $\eta$ (their
$\sqrt{v}$ was large); now they all jump by the full $\eta$, and $v$, averaged
over only a few gradients for the next ~1/(1 − β₂) = 1000 steps, underestimates
their noise: a loss spike, even divergence, late in training where the weights
sit in a narrow valley. To be identical the checkpoint must also hold the
optimizer's `state_dict()` (step, `exp_avg`, `exp_avg_sq`, the groups' `lr`),
the scheduler's state (`last_epoch`, otherwise the schedule restarts at its
base rate), the data order (the loader's generator state and position in the
epoch), every random generator's state (dropout, augmentation), and the
epoch/step counters.

**Rubric (2 points).** 1 point for the reset step count making the first
steps of size about η for every coordinate, and why that spikes the loss;
1 point for listing optimizer state, scheduler state, data order and RNG
states.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Decay in the right place.** With `Adam(weight_decay=1e-2)`, a weight
whose gradients are large is decayed less than one whose gradients are
small; with `AdamW` both shrink by the same factor. Use the update formulas
to show why, and say which parameters of a transformer you would put in a
`weight_decay=0.0` group, and why.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_decay_in_the_right_place", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** With L2 in the gradient, $g = \nabla L + \lambda\theta$ goes
through the moments, and the step is about
$\eta\,(\widehat{\nabla L} + \lambda\theta) / \sqrt{\hat v}$. The decay's share,
$\eta\lambda\theta / \sqrt{\hat v}$, is divided by the root mean square of that
weight's gradients: large gradients, large $\sqrt{\hat v}$, little decay; tiny
gradients, strong decay (up to a full step of $\eta$, as our test with a zero
gradient showed). AdamW multiplies every weight by the same $1 - \eta\lambda$,
independent of $v$, then takes the Adam step. In a transformer, put biases and
LayerNorm gains and shifts (and usually the positional and token embeddings)
in the `weight_decay=0.0` group: they are few parameters that do not
overfit like the large matrices, and pulling a LayerNorm gain towards 0 would
shrink the normalised activations the model relies on; decay the weight
matrices of the attention and MLP layers (nanoGPT decays exactly the
parameters with 2 or more dimensions).

**Rubric (2 points).** 1 point for the derivation showing the L2 term divided
by $\sqrt{\hat v}$ versus AdamW's uniform factor; 1 point for biases and
normalisation parameters in the no-decay group, with a reason.
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

What you built, in `tinytorch.optim` with PyTorch's names and exact update
rules (the test suite checks them step by step against `torch.optim`):

- **`Optimizer`**: parameter groups with defaults, lazily created
  per-parameter `state`, `zero_grad(set_to_none=True)`, and
  `state_dict()`/`load_state_dict()` that let a run resume exactly;
- **`SGD`** with momentum, dampening, Nesterov and L2 weight decay;
  **`Adam`** with bias correction; **`AdamW`** with decoupled weight decay;
  all updating `p.data` in place under `no_grad()`, float32 kept float32;
- **`lr_scheduler.StepLR`** and **`lr_scheduler.CosineAnnealingLR`**, from
  their closed forms.

What you measured: Adam's state is exactly two parameter-sized arrays, 16
bytes per parameter with weights and gradients; an optimizer step runs at
memory bandwidth, and NumPy's pass per operation moves about four times the
bytes a fused kernel would; on an ill-conditioned quadratic, momentum beats
plain SGD and Adam's advantage depends on the problem's axes; on spirals,
Adam with a cosine schedule reaches high held-out accuracy in a few hundred
steps and a few seconds.

Next, chapter 11 feeds models real data in batches (`Dataset`,
`DataLoader`), and chapter 12 wraps forward, backward, `step()` and the
scheduler into a `Trainer` with checkpoints built on the `state_dict()`s of
this chapter and the last.
"""
