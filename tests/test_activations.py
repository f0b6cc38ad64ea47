"""Activations (chapter 03): values, numerical stability, gradients, and agreement with PyTorch."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck, nn
from tinytorch.nn import functional as F
from torch_reference import compare_with_torch, requires_torch, torch

ELEMENTWISE = {"relu": F.relu, "sigmoid": F.sigmoid, "tanh": F.tanh, "gelu": F.gelu}
erf = np.vectorize(math.erf)


def no_warnings(fn, *args):
    """Run fn, failing on any floating-point warning (overflow, invalid, divide by zero)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


def gelu_tanh_reference(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# ---- values ---------------------------------------------------------------------------------
def test_relu_matches_numpy_maximum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7))
    np.testing.assert_array_equal(F.relu(Tensor(x)).data, np.maximum(x, 0))


def test_elementwise_activations_keep_float32_and_shape():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    for name, fn in ELEMENTWISE.items():
        out = fn(x)
        assert out.dtype == np.float32 and out.shape == (2, 3, 4), f"{name}: {out.dtype} {out.shape}"


def test_sigmoid_matches_closed_form():
    rng = np.random.default_rng(0)
    x = rng.uniform(-10, 10, 100)
    np.testing.assert_allclose(F.sigmoid(Tensor(x)).data, 1 / (1 + np.exp(-x)), rtol=1e-13)


def test_sigmoid_is_exactly_zero_and_one_at_extremes_without_warnings():
    x = Tensor(np.array([-np.inf, -1e4, -1000.0, 1000.0, 1e4, np.inf], dtype=np.float32))
    np.testing.assert_array_equal(no_warnings(F.sigmoid, x).data, [0, 0, 0, 1, 1, 1])


def test_sigmoid_left_tail_keeps_relative_precision_in_float32():
    x = np.array([-80.0, -30.0, -20.0, -17.0], dtype=np.float32)
    expected = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(F.sigmoid(Tensor(x)).data, expected, rtol=1e-6)


def test_tanh_matches_numpy_and_is_bounded():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, 50)
    np.testing.assert_allclose(F.tanh(Tensor(x)).data, np.tanh(x), rtol=1e-15)
    np.testing.assert_array_equal(no_warnings(F.tanh, Tensor(np.array([-1e4, 1e4]))).data, [-1.0, 1.0])


def test_gelu_tanh_matches_tanh_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 6, 200)
    np.testing.assert_allclose(F.gelu(Tensor(x), approximate="tanh").data, gelu_tanh_reference(x), rtol=1e-12, atol=1e-15)


def test_gelu_default_is_the_exact_erf_form():
    x = np.linspace(-8, 8, 16001)
    exact = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, exact, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(nn.GELU()(Tensor(x)).data, exact, rtol=1e-13, atol=1e-15)


def test_gelu_tanh_is_a_few_1e4_from_exact():
    x = np.linspace(-8, 8, 16001)
    gap = np.abs(F.gelu(Tensor(x), approximate="tanh").data - 0.5 * x * (1 + erf(x / math.sqrt(2))))
    assert 4e-4 < gap.max() < 5e-4, f"max |gelu - exact| = {gap.max():.2e}; the tanh approximation gives 4.7e-4"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_asymptotes_without_overflow(approximate):
    out = no_warnings(lambda t: F.gelu(t, approximate=approximate), Tensor(np.array([-1e4, 1e4], dtype=np.float32))).data
    np.testing.assert_array_equal(out, np.array([0.0, 1e4], dtype=np.float32))


def test_gelu_refuses_unknown_forms_with_a_clear_error():
    with pytest.raises(ValueError, match="'none'.*'tanh'"):
        F.gelu(Tensor([1.0]), approximate="erf")
    with pytest.raises(ValueError, match="'none'.*'tanh'"):
        nn.GELU(approximate="erf")


def test_softmax_matches_formula_and_rows_sum_to_one():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 6))
    s = F.softmax(Tensor(z)).data
    np.testing.assert_allclose(s, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-14)


def test_softmax_is_unchanged_by_a_shift():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 5))
    np.testing.assert_allclose(F.softmax(Tensor(z + 1000.0)).data, F.softmax(Tensor(z)).data, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_finite_for_logits_of_1e4(dtype):
    z = Tensor(np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1, -1e4]], dtype=dtype))
    s = no_warnings(F.softmax, z).data
    assert np.all(np.isfinite(s)), s
    np.testing.assert_allclose(s[0], [1, 0, 0])
    np.testing.assert_allclose(s[1, :2], [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))], rtol=1e-6)


def test_softmax_follows_dim():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 3, 4))
    for dim in (0, 1, 2, -1):
        np.testing.assert_allclose(F.softmax(Tensor(z), dim=dim).data.sum(axis=dim), 1.0, rtol=1e-14)


def test_log_softmax_equals_log_of_softmax():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    np.testing.assert_allclose(F.log_softmax(Tensor(z)).data, np.log(F.softmax(Tensor(z)).data), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_is_finite_and_exact_where_log_of_softmax_is_minus_inf(dtype):
    z = Tensor(np.array([[0.0, 200.0], [1e4, -1e4]], dtype=dtype))
    np.testing.assert_allclose(no_warnings(F.log_softmax, z).data, [[-200.0, 0.0], [0.0, -2e4]])


# ---- layers -----------------------------------------------------------------------------------
LAYERS = [(nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh), (nn.GELU(), F.gelu),
          (nn.Softmax(dim=-1), F.softmax), (nn.LogSoftmax(dim=-1), F.log_softmax)]


@pytest.mark.parametrize("layer,fn", LAYERS, ids=[repr(layer) for layer, _ in LAYERS])
def test_layer_computes_its_function(layer, fn):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)))
    np.testing.assert_array_equal(layer(x).data, fn(x).data)


def test_layers_print_like_pytorch():
    assert [repr(layer) for layer, _ in LAYERS] == [
        "ReLU()", "Sigmoid()", "Tanh()", "GELU(approximate='none')", "Softmax(dim=-1)", "LogSoftmax(dim=-1)"]


def test_softmax_layers_use_their_dim():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)))
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).data, F.softmax(x, dim=0).data)
    np.testing.assert_allclose(nn.LogSoftmax(dim=0)(x).data, F.log_softmax(x, dim=0).data)


# ---- gradients --------------------------------------------------------------------------------
def _away_from_zero(shape):
    """Inputs at least 0.1 from ReLU's kink, where finite differences are well defined."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 3, shape)
    return x * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu"])
def test_gradcheck_elementwise(name):
    x = Tensor(_away_from_zero((3, 4)), requires_grad=True)
    assert gradcheck(ELEMENTWISE[name], [x])


def test_gradcheck_sigmoid_in_both_tails():
    assert gradcheck(F.sigmoid, [Tensor(np.array([-30.0, -12.0, -0.5, 0.5, 12.0, 30.0]), requires_grad=True)])


@pytest.mark.parametrize("dim", [-1, 0])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_gradcheck_softmax_family(fn, dim):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 5)) * 3, requires_grad=True)
    assert gradcheck(lambda t: fn(t, dim=dim), [x])


def test_gradients_stay_finite_for_huge_inputs():
    for fn in (F.sigmoid, F.gelu, F.softmax, F.log_softmax):
        x = Tensor(np.array([[-1e4, 0.0, 1e4]]), requires_grad=True)
        (fn(x) * Tensor(np.array([[1.0, 2.0, 3.0]]))).sum().backward()
        assert np.all(np.isfinite(x.grad.data)), f"{fn.__name__}: gradient {x.grad.data}"


def test_relu_gradient_is_zero_at_zero_like_pytorch():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0])


def test_sigmoid_gradient_is_s_times_one_minus_s():
    values = np.array([-25.0, -3.0, 0.0, 3.0, 25.0])
    x = Tensor(values, requires_grad=True)
    F.sigmoid(x).sum().backward()
    z = np.exp(-np.abs(values))               # s (1 - s) written so neither tail cancels
    np.testing.assert_allclose(x.grad.data, z / (1 + z) ** 2, rtol=1e-12)


# ---- against PyTorch ----------------------------------------------------------------------------
@requires_torch
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_elementwise_match_torch(name):
    compare_with_torch(ELEMENTWISE[name], getattr(torch, name), _away_from_zero((4, 5)))


@requires_torch
def test_sigmoid_tails_match_torch():
    tails = np.array([-700.0, -80.0, -20.0, 20.0, 80.0, 700.0])
    # Forward to full relative precision. Gradients at the default tolerance: torch computes
    # s * (1 - s) from the output, which loses relative precision in the right tail; ours does not.
    compare_with_torch(F.sigmoid, torch.sigmoid, tails, rtol=1e-13, atol=0, backward=False)
    compare_with_torch(F.sigmoid, torch.sigmoid, tails)


@requires_torch
def test_gelu_matches_torch_tanh_approximation():
    rng = np.random.default_rng(0)
    compare_with_torch(lambda t: F.gelu(t, approximate="tanh"), lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
                       rng.uniform(-6, 6, (4, 5)))


@requires_torch
def test_gelu_default_matches_torch_default_exact_form():
    rng = np.random.default_rng(0)
    compare_with_torch(F.gelu, torch.nn.functional.gelu, rng.uniform(-6, 6, (4, 5)), rtol=1e-10, atol=1e-12)


def test_gelu_exact_gradcheck():
    x = Tensor(np.random.default_rng(1).uniform(-4, 4, (3, 4)), requires_grad=True)
    assert gradcheck(F.gelu, [x])


@requires_torch
def test_relu_of_infinities_and_nan_matches_torch():
    x = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan])
    np.testing.assert_array_equal(F.relu(Tensor(x)).data, torch.relu(torch.tensor(x)).numpy())
    compare_with_torch(F.relu, torch.relu, np.array([-np.inf, -1.5, 0.0, 2.0, np.inf]))


@requires_torch
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch(dim):
    rng = np.random.default_rng(0)
    compare_with_torch(lambda t: F.softmax(t, dim=dim), lambda t: torch.softmax(t, dim=dim),
                       rng.standard_normal((3, 4, 5)) * 4)


@requires_torch
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_log_softmax_matches_torch(dim):
    rng = np.random.default_rng(0)
    compare_with_torch(lambda t: F.log_softmax(t, dim=dim), lambda t: torch.log_softmax(t, dim=dim),
                       rng.standard_normal((3, 4, 5)) * 4)


@requires_torch
def test_softmax_family_matches_torch_for_logits_of_1e4():
    logits = np.array([[1e4, 0.0, -1e4], [5e3, 5e3 + 2, -1e4]])
    compare_with_torch(F.softmax, lambda t: torch.softmax(t, dim=-1), logits)
    compare_with_torch(F.log_softmax, lambda t: torch.log_softmax(t, dim=-1), logits)


TORCH_LAYERS = [  # built lazily: torch may not be installed
    (nn.ReLU(), lambda: torch.nn.ReLU()), (nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (nn.Tanh(), lambda: torch.nn.Tanh()), (nn.GELU(), lambda: torch.nn.GELU()),
    (nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)), (nn.LogSoftmax(dim=1), lambda: torch.nn.LogSoftmax(dim=1))]


@requires_torch
@pytest.mark.parametrize("layer,make_reference", TORCH_LAYERS, ids=[repr(layer) for layer, _ in TORCH_LAYERS])
def test_layers_match_torch_layers(layer, make_reference):
    compare_with_torch(layer, make_reference(), _away_from_zero((3, 4)))
