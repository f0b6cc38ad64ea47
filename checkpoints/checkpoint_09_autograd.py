"""Checkpoint 09 (autograd): Can I automatically compute gradients for learning?

Passes when every primitive's backward rule agrees with finite differences,
the engine sums broadcast gradients back and accumulates over reused tensors,
no_grad records nothing, deep graphs work, and the layers of chapters 03-04
get gradients that make a loss go down.
"""

from _harness import main

import numpy as np

from tinytorch import Tensor, gradcheck, manual_seed, no_grad
from tinytorch.core.autograd import GradcheckError
from tinytorch.nn import Linear, ReLU, Sequential, Tanh
from tinytorch.nn.functional import log_softmax

RNG = np.random.default_rng(8)

# Each entry exercises one primitive alone: backward() is seeded with a random
# upstream gradient, so no other rule (not even Mul or Sum) takes part, and a
# failure names the rule that is actually wrong.
PRIMITIVES = {
    "Add": (lambda a, b: a + b, [(2, 3), (2, 3)]),
    "Mul": (lambda a, b: a * b, [(2, 3), (2, 3)]),
    "Neg": (lambda a: -a, [(2, 3)]),
    "Pow": (lambda a: a ** 3, [(2, 3)]),
    "Pow (negative exponent)": (lambda a: a ** -1, [(2, 3)]),
    "Exp": (lambda a: a.exp(), [(2, 3)]),
    "Log": (lambda a: a.log(), [(2, 3)]),
    "Tanh": (lambda a: a.tanh(), [(2, 3)]),
    "MatMul": (lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
    "Sum": (lambda a: a.sum(dim=1), [(2, 3, 4)]),
    "Max": (lambda a: a.amax(dim=-1), [(2, 3, 4)]),
    "Reshape": (lambda a: a.reshape(4, 3), [(2, 6)]),
    "Transpose": (lambda a: a.permute(1, 2, 0), [(2, 3, 4)]),
    "GetItem": (lambda a: a[np.array([2, 0, 2]), 1:], [(3, 4)]),
}


def _rule_error(name, fn, shapes, eps=1e-6):
    """None when `fn`'s backward agrees with central differences, else what is wrong."""
    inputs = [Tensor(RNG.uniform(0.5, 2.0, shape), requires_grad=True) for shape in shapes]
    out = fn(*inputs)
    upstream = np.random.default_rng(9).standard_normal(out.shape)
    try:
        out.backward(upstream)
    except NotImplementedError as err:
        return f"{name} has no backward rule: {err}"
    for i, t in enumerate(inputs):
        analytic = t.grad.data if t.grad is not None else np.zeros_like(t.data)
        if analytic.shape != t.shape:
            return f"{name}'s backward rule is wrong: gradient of input {i} has shape {analytic.shape}, input has {t.shape}"
        for index in np.ndindex(t.shape):
            original = t.data[index]
            with no_grad():
                t.data[index] = original + eps
                plus = float(np.sum(fn(*inputs).data * upstream))
                t.data[index] = original - eps
                minus = float(np.sum(fn(*inputs).data * upstream))
            t.data[index] = original
            numeric = (plus - minus) / (2 * eps)
            if abs(analytic[index] - numeric) > 1e-5 + 1e-3 * abs(numeric):
                return (f"{name}'s backward rule is wrong: gradient of input {i} at {index} is {analytic[index]:.6g}, "
                        f"finite differences give {numeric:.6g}")
    return None


def _gradchecks(name, fn, shapes):
    inputs = [Tensor(RNG.uniform(0.5, 2.0, shape), requires_grad=True) for shape in shapes]
    try:
        gradcheck(fn, inputs)
    except GradcheckError as err:
        raise AssertionError(f"{name}'s backward rule is wrong: {err}") from None
    except NotImplementedError as err:
        raise AssertionError(f"{name} has no backward rule: {err}") from None


def check_every_primitive():
    """Every primitive's backward rule, alone, agrees with central finite differences (float64)."""
    wrong = [error for name, (fn, shapes) in PRIMITIVES.items() if (error := _rule_error(name, fn, shapes))]
    if wrong:
        more = f" (and {len(wrong) - 1} more: " + "; ".join(w.split(":")[0] for w in wrong[1:]) + ")" if len(wrong) > 1 else ""
        raise AssertionError(wrong[0] + more)


def check_compositions():
    """Subtraction, division, mean and sqrt, built from primitives, differentiate correctly."""
    _gradchecks("a - b / mean(b) + sqrt(a)", lambda a, b: a - b / b.mean() + a.sqrt(), [(3, 4), (3, 4)])


def check_broadcasting_is_undone():
    """A bias added to a batch gets a gradient of its own shape: the sum over the batch."""
    bias = Tensor(np.zeros(3), requires_grad=True)
    for batch in (5, 2):
        bias.grad = None
        (Tensor(np.ones((batch, 3))) + bias).sum().backward()
        assert bias.grad is not None and bias.grad.shape == (3,), \
            f"bias gradient has shape {None if bias.grad is None else bias.grad.shape}; it must match the bias, (3,)"
        assert np.allclose(bias.grad.data, batch), f"bias gradient should be {batch} (the batch size), got {bias.grad.data}"


def check_reuse_accumulates():
    """A tensor used twice (x * x) collects the gradient of both uses, and .grad adds across backward calls."""
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    assert np.allclose(x.grad.data, 2 * x.data), f"d(x*x)/dx should be 2x = {2 * x.data}, got {x.grad.data}"
    (x * 4).sum().backward()
    assert np.allclose(x.grad.data, 2 * x.data + 4), "a second backward() must add to .grad, not replace it"


def check_no_grad():
    """Under no_grad() operations record no graph."""
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
    assert y._ctx is None and not y.requires_grad, "no_grad() still recorded a graph"
    assert (x * 2).requires_grad, "recording did not come back on after no_grad()"


def check_deep_graph():
    """A chain of 3000 operations differentiates without hitting Python's recursion limit."""
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    assert np.allclose(x.grad.data, 1.0), f"gradient through a deep chain should be 1, got {x.grad.data}"


def check_mlp_gradients():
    """An MLP of chapter 04 layers with a cross-entropy loss gets correct gradients for every parameter."""
    manual_seed(8)
    model = Sequential(Linear(3, 6), Tanh(), Linear(6, 3))
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    x = Tensor(RNG.standard_normal((5, 3)))
    targets = np.array([0, 2, 1, 1, 0])
    try:
        gradcheck(lambda *params: -log_softmax(model(x), dim=1)[np.arange(5), targets].mean(), list(model.parameters()))
    except GradcheckError as err:
        raise AssertionError(f"MLP gradients are wrong: {err}") from None


def check_gradient_descent_learns():
    """Twenty steps of plain gradient descent on a ReLU MLP lower a regression loss by more than half."""
    manual_seed(0)
    model = Sequential(Linear(2, 16), ReLU(), Linear(16, 1))
    x = Tensor(RNG.standard_normal((64, 2)).astype(np.float32))
    y = Tensor((np.sin(x.data[:, :1]) + 0.5 * x.data[:, 1:]).astype(np.float32))
    first = None
    for _ in range(20):
        loss = ((model(x) - y) ** 2).mean()
        first = loss.item() if first is None else first
        model.zero_grad()
        loss.backward()
        with no_grad():
            for p in model.parameters():
                p.data -= 0.1 * p.grad.data
    last = ((model(x) - y) ** 2).mean().item()
    assert last < 0.5 * first, f"loss went from {first:.4f} to {last:.4f}; gradients are not pointing downhill"


if __name__ == "__main__":
    main(globals())
