"""Checkpoint 05 (networks): Can I build complete multi-layer neural networks?

Passes when an MLP chains Linear layers and activations in the right order,
the losses (MSE, cross-entropy from logits) give the right values even for huge
logits, an untrained classifier scores about log(C), and parameter and memory
counts agree with the layer sizes.
"""

import math
import warnings

import numpy as np

from _harness import main
from tinytorch import Tensor, manual_seed, nn
from tinytorch.nn import functional as F
from tinytorch.nn.networks import activation_bytes, count_parameters, parameter_bytes


def check_mlp_structure():
    """MLP(2, [16, 8], 3) is Linear, ReLU, Linear, ReLU, Linear with those sizes."""
    model = nn.MLP(2, [16, 8], 3)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"], (
        f"MLP(2, [16, 8], 3) has layers {kinds}; expected an activation between Linears and none at the end")
    sizes = [(layer.in_features, layer.out_features) for layer in model if isinstance(layer, nn.Linear)]
    assert sizes == [(2, 16), (16, 8), (8, 3)], f"MLP(2, [16, 8], 3) has Linear sizes {sizes}"


def check_mlp_chains_its_layers():
    """The MLP's output is each layer applied to the previous layer's output."""
    manual_seed(0)
    model = nn.MLP(4, [6, 5], 3)
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    W0, b0, W1, b1, W2, b2 = (p.data for p in model.parameters())
    expected = np.maximum(np.maximum(x @ W0.T + b0, 0) @ W1.T + b1, 0) @ W2.T + b2
    out = model(Tensor(x))
    assert out.shape == (7, 3), f"MLP(4, [6, 5], 3) on a (7, 4) batch gave shape {out.shape}, expected (7, 3)"
    assert np.allclose(out.data, expected, rtol=1e-4, atol=1e-5), (
        "MLP output differs from relu(relu(x W0^T + b0) W1^T + b1) W2^T + b2: are the layers chained in order?")


def check_cross_entropy():
    """Cross-entropy from logits equals logsumexp(z) - z[target], and log C for equal logits."""
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    expected = np.log(np.exp(z).sum(axis=1)) - z[np.arange(6), t]
    got = nn.CrossEntropyLoss(reduction="none")(Tensor(z), t).data
    assert np.allclose(got, expected, rtol=1e-9), f"per-example cross-entropy {got} differs from logsumexp(z) - z[t] = {expected}"
    mean = F.cross_entropy(Tensor(z), Tensor(t)).item()
    assert math.isclose(mean, expected.mean(), rel_tol=1e-9), f"mean cross-entropy {mean} != {expected.mean()}"
    equal = F.cross_entropy(Tensor(np.zeros((2, 10))), [3, 7]).item()
    assert math.isclose(equal, math.log(10), rel_tol=1e-9), f"equal logits over 10 classes gave {equal}, expected log 10 = 2.3026"


def check_cross_entropy_is_stable():
    """Cross-entropy stays finite and exact for logits like 1e4, and refuses out-of-range targets."""
    logits = Tensor(np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = F.cross_entropy(logits, [0, 2], reduction="none").data
    assert not caught, f"cross_entropy warned '{caught[0].message}'; compute it as log_softmax, then pick the target"
    assert np.allclose(loss, [0.0, 2e4]), f"cross_entropy of logits like 1e4 gave {loss.tolist()}, expected [0, 20000]"
    try:
        F.cross_entropy(Tensor(np.zeros((2, 3))), [0, 3])
    except IndexError:
        pass
    else:
        raise AssertionError("cross_entropy accepted class 3 for 3 classes; targets must be checked to lie in 0..C-1")


def check_mse_loss():
    """MSELoss is the mean of squared differences and refuses shapes that would broadcast."""
    y, t = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    got = nn.MSELoss()(Tensor(y), Tensor(t)).item()
    assert math.isclose(got, np.mean((y - t) ** 2)), f"MSELoss gave {got}, expected {np.mean((y - t) ** 2)}"
    total = F.mse_loss(Tensor(y), t, reduction="sum").item()
    assert math.isclose(total, np.sum((y - t) ** 2)), f"mse_loss(reduction='sum') gave {total}"
    try:
        F.mse_loss(Tensor(np.zeros((4, 1))), np.zeros(4))
    except ValueError:
        pass
    else:
        raise AssertionError("mse_loss accepted input (4, 1) with target (4,), which broadcasts to (4, 4)")


def check_untrained_classifier_scores_log_c():
    """An untrained MLP classifier's loss is about log(C)."""
    rng = np.random.default_rng(2)
    manual_seed(2)
    model = nn.MLP(20, [64, 64], 5)
    loss = nn.CrossEntropyLoss()(model(Tensor(rng.standard_normal((256, 20)).astype(np.float32))), rng.integers(0, 5, 256))
    assert abs(loss.item() - math.log(5)) < 0.15, f"untrained 5-class loss is {loss.item():.3f}, expected about log 5 = 1.609"


def check_parameter_and_memory_counts():
    """Parameter count, bytes (float32 and float64) and activation bytes follow the layer sizes."""
    model = nn.MLP(784, [128, 64], 10)
    expected = (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)
    assert count_parameters(model) == expected, f"count_parameters gave {count_parameters(model)}, expected {expected}"
    assert parameter_bytes(model) == 4 * expected, f"float32 parameters take {4 * expected} bytes, got {parameter_bytes(model)}"
    assert parameter_bytes(model, np.float64) == 8 * expected, "parameter_bytes(model, np.float64) must be 8 bytes per parameter"
    batch = Tensor(np.zeros((32, 784), dtype=np.float32))
    expected_activations = 32 * (128 + 128 + 64 + 64 + 10) * 4
    assert activation_bytes(model, batch) == expected_activations, (
        f"activation_bytes gave {activation_bytes(model, batch)}, expected {expected_activations} (every layer's output)")


if __name__ == "__main__":
    main(globals())
