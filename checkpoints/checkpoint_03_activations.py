"""Checkpoint 03 (activations): Can I add nonlinearity - the key to neural network intelligence?

Passes when tinytorch's activations compute the right values, stay finite for
huge inputs (softmax of logits like 1e4, sigmoid of -1000) and actually make a
small network compute something no linear model can (XOR).
"""

import math
import warnings

import numpy as np

from _harness import main
from tinytorch import Tensor, nn
from tinytorch.nn import functional as F


def _quietly(fn, *args, fix: str, **kwargs):
    """Call fn and fail, saying how to fix it, on any floating-point warning (overflow, nan, log of 0)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    assert not caught, f"{fn.__name__} warned '{caught[0].message}' on large inputs; {fix}"
    return out


def check_relu():
    """ReLU is max(0, x) elementwise and keeps float32."""
    x = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0], [1e6, -1e6, 2.0, -2.0, 7.0]], dtype=np.float32)
    out = F.relu(Tensor(x))
    assert out.dtype == np.float32, f"relu returned {out.dtype} for float32 input; it must keep the dtype"
    assert np.array_equal(out.data, np.maximum(x, 0)), f"relu({x.tolist()}) gave {out.data.tolist()}, expected max(0, x)"


def check_nonlinearity_beats_linear_models():
    """Two ReLU units compute XOR exactly, which no linear model can."""
    inputs = Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32))
    hidden = nn.ReLU()(inputs @ Tensor(np.array([[1, 1], [1, 1]], dtype=np.float32)).T
                       + Tensor(np.array([0, -1], dtype=np.float32)))
    out = (hidden @ Tensor(np.array([[1], [-2]], dtype=np.float32))).reshape(-1)
    assert np.array_equal(out.data, [0, 1, 1, 0]), (
        f"a ReLU network with hand-set weights should compute XOR [0, 1, 1, 0] but gave {out.data.tolist()}; "
        "check relu and the ReLU layer")
    design = np.hstack([inputs.data, np.ones((4, 1))])
    best = design @ np.linalg.lstsq(design, out.data, rcond=None)[0]
    assert np.abs(best - out.data).max() > 0.4, "the ReLU network's output is fit by a linear model: relu is not nonlinear"


def check_sigmoid_and_tanh():
    """Sigmoid and tanh match their formulas and saturate to exact limits without overflow."""
    x = np.linspace(-8, 8, 33)
    assert np.allclose(F.sigmoid(Tensor(x)).data, 1 / (1 + np.exp(-x)), rtol=1e-10), "sigmoid differs from 1 / (1 + e^-x)"
    assert np.allclose(F.tanh(Tensor(x)).data, np.tanh(x), rtol=1e-12), "tanh differs from numpy.tanh"
    extremes = _quietly(F.sigmoid, Tensor(np.array([-1000.0, 1000.0], dtype=np.float32)),
                        fix="never exponentiate a positive number (use e^-|x|)").data
    assert np.array_equal(extremes, [0.0, 1.0]), f"sigmoid(±1000) gave {extremes.tolist()}, expected [0, 1]"
    tail = F.sigmoid(Tensor(np.array([-20.0], dtype=np.float32))).data[0]
    assert math.isclose(tail, 1 / (1 + math.exp(20)), rel_tol=1e-5), (
        f"sigmoid(-20) in float32 gave {tail:.3e}, expected 2.061e-09: the left tail lost its precision")


def check_gelu():
    """gelu(approximate="tanh") is the tanh approximation, within 1e-3 of the exact erf form."""
    x = np.linspace(-6, 6, 241)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    exact = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    got = F.gelu(Tensor(x), approximate="tanh").data
    assert np.allclose(got, tanh_form, rtol=1e-10, atol=1e-12), "gelu differs from x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))"
    assert np.abs(got - exact).max() < 1e-3, "gelu is more than 1e-3 from the exact GELU"


def check_softmax_is_stable():
    """Softmax gives finite probabilities summing to 1 even for logits like 1e4."""
    logits = Tensor(np.array([[1e4, 0.0, -1e4], [1000.0, 1001.0, 1002.0], [1.0, 2.0, 3.0]], dtype=np.float32))
    probs = _quietly(F.softmax, logits, dim=-1, fix="subtract the row max before exp").data
    assert np.all(np.isfinite(probs)), f"softmax of large logits gave {probs.tolist()}: subtract the row max before exp"
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6), f"softmax rows sum to {probs.sum(axis=1).tolist()}, not 1"
    assert np.allclose(probs[1], probs[2], atol=1e-6), "softmax(z + 1000) differs from softmax(z): it must be shift-invariant"
    assert np.allclose(probs[0], [1, 0, 0]), f"softmax([1e4, 0, -1e4]) gave {probs[0].tolist()}, expected [1, 0, 0]"


def check_log_softmax_is_stable():
    """Log-softmax stays finite and exact where log(softmax) would be -inf."""
    logits = Tensor(np.array([[0.0, 200.0], [1e4, -1e4]], dtype=np.float32))
    out = _quietly(F.log_softmax, logits, dim=-1, fix="use (x - max) - log(sum(exp(x - max)))").data
    assert np.all(np.isfinite(out)), f"log_softmax gave {out.tolist()}: use x - max - log(sum(exp(x - max)))"
    assert np.allclose(out, [[-200.0, 0.0], [0.0, -2e4]]), f"log_softmax gave {out.tolist()}, expected [[-200, 0], [0, -2e4]]"


def check_activation_layers():
    """The layer classes apply their functions and compose in a pipeline."""
    x = Tensor(np.random.default_rng(0).standard_normal((4, 6)))
    out = x
    for layer in [nn.Tanh(), nn.GELU(), nn.Sigmoid(), nn.ReLU(), nn.Softmax(dim=1)]:
        out = layer(out)
    expected = F.softmax(F.relu(F.sigmoid(F.gelu(F.tanh(x)))), dim=1)
    assert np.allclose(out.data, expected.data), "a pipeline of activation layers differs from composing the functions"
    assert np.allclose(nn.LogSoftmax(dim=1)(x).data, F.log_softmax(x, dim=1).data), "LogSoftmax differs from log_softmax"


if __name__ == "__main__":
    main(globals())
