"""Networks (chapter 05): MLP construction, MSE and cross-entropy losses, parameter and memory counts."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck, manual_seed, nn
from tinytorch.nn import functional as F
from tinytorch.nn.networks import activation_bytes, count_parameters, parameter_bytes
from torch_reference import compare_with_torch, requires_torch, torch



def as_float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def logsumexp_minus_target(z, t):
    """Cross-entropy per example, computed independently in float64."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(z, np.asarray(t)[..., None], axis=-1)[..., 0]


# ---- MLP ------------------------------------------------------------------------------------------
def test_mlp_alternates_linear_and_activation_with_no_activation_at_the_end():
    model = nn.MLP(3, [8, 5], 2)
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(l.in_features, l.out_features) for l in model if isinstance(l, nn.Linear)] == [(3, 8), (8, 5), (5, 2)]


def test_mlp_is_a_sequential_with_pytorch_parameter_names():
    model = nn.MLP(3, [8], 2)
    assert isinstance(model, nn.Sequential) and isinstance(model, nn.Module)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_mlp_builds_one_activation_per_gap_from_a_class():
    model = nn.MLP(2, [4, 4, 4], 1, activation=nn.GELU)
    gaps = [layer for layer in model if isinstance(layer, nn.GELU)]
    assert len(gaps) == 3 and len({id(g) for g in gaps}) == 3


def test_mlp_uses_a_function_or_instance_as_given_and_none_for_linear():
    assert [type(l).__name__ for l in nn.MLP(2, [4], 1, activation=nn.Tanh())] == ["Linear", "Tanh", "Linear"]
    assert nn.MLP(2, [4], 1, activation=F.relu)[1] is F.relu
    assert [type(l).__name__ for l in nn.MLP(2, [4, 4], 1, activation=None)] == ["Linear"] * 3


def test_mlp_with_no_hidden_layers_is_one_linear():
    model = nn.MLP(5, [], 3, bias=False)
    assert len(model) == 1 and model[0].bias is None and count_parameters(model) == 15


def test_mlp_repr_names_the_class():
    assert repr(nn.MLP(3, [4], 2)).splitlines()[:3] == [
        "MLP(", "  (0): Linear(in_features=3, out_features=4, bias=True)", "  (1): ReLU()"]


@pytest.mark.parametrize("args,error,message", [
    ((2, 16, 3), TypeError, r"hidden_sizes must be a list like \[16\]"),
    ((2, [16, 0], 3), ValueError, "positive ints"),
    ((2, [16], -1), ValueError, "positive ints")])
def test_mlp_refuses_bad_sizes(args, error, message):
    with pytest.raises(error, match=message):
        nn.MLP(*args)


def test_mlp_forward_chains_every_layer():
    rng = np.random.default_rng(0)
    model = as_float64(nn.MLP(4, [6, 5], 3))
    x = rng.standard_normal((7, 4))
    W0, b0, W1, b1, W2, b2 = (p.data for p in model.parameters())
    expected = np.maximum(np.maximum(x @ W0.T + b0, 0) @ W1.T + b1, 0) @ W2.T + b2
    np.testing.assert_allclose(model(Tensor(x)).data, expected, rtol=1e-12)


def test_mlp_keeps_float32():
    rng = np.random.default_rng(0)
    out = nn.MLP(4, [6], 3)(Tensor(rng.standard_normal((2, 4)).astype(np.float32)))
    assert out.dtype == np.float32 and out.shape == (2, 3)


def test_gradcheck_mlp_wrt_input_and_every_parameter():
    rng = np.random.default_rng(0)
    manual_seed(0)
    model = as_float64(nn.MLP(3, [4], 2, activation=nn.Tanh))
    x = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    assert gradcheck(lambda inp, *params: model(inp), [x, *model.parameters()])


@requires_torch
def test_mlp_matches_torch_sequential_forward_and_all_gradients():
    rng = np.random.default_rng(0)
    manual_seed(0)
    tiny = as_float64(nn.MLP(4, [8, 6], 3, activation=nn.GELU))
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 6),
                              torch.nn.GELU(), torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for (name, p), (ref_name, q) in zip(tiny.named_parameters(), ref.named_parameters()):
            assert name == ref_name
            q.copy_(torch.from_numpy(p.data))
    x = rng.standard_normal((5, 4))
    compare_with_torch(tiny, ref, x)          # forward and the input's gradient
    for (name, p), (_, q) in zip(tiny.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ---- MSE ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction,reduce", [("mean", np.mean), ("sum", np.sum), ("none", lambda a: a)])
def test_mse_loss_reductions_match_numpy(reduction, reduce):
    rng = np.random.default_rng(0)
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(F.mse_loss(Tensor(y), Tensor(t), reduction=reduction).data, reduce((y - t) ** 2), rtol=1e-13)
    np.testing.assert_allclose(nn.MSELoss(reduction=reduction)(Tensor(y), t).data, reduce((y - t) ** 2), rtol=1e-13)


def test_mse_loss_accepts_array_targets_and_keeps_float32():
    y = Tensor(np.ones((3, 2), dtype=np.float32))
    loss = F.mse_loss(y, np.zeros((3, 2)))
    assert loss.item() == 1.0 and loss.dtype == np.float32


def test_mse_loss_refuses_shapes_that_would_broadcast():
    with pytest.raises(ValueError, match=r"\(4, 1\) and target shape \(4,\) differ"):
        F.mse_loss(Tensor(np.zeros((4, 1))), np.zeros(4))


@pytest.mark.parametrize("make", [lambda: nn.MSELoss(reduction="avg"), lambda: nn.CrossEntropyLoss(reduction="avg"),
                                  lambda: F.mse_loss(Tensor([1.0]), [1.0], reduction="avg"),
                                  lambda: F.cross_entropy(Tensor([[1.0, 2.0]]), [0], reduction="avg")])
def test_losses_refuse_unknown_reductions(make):
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        make()


def test_losses_are_parameter_free_modules_printed_like_pytorch():
    for loss in (nn.MSELoss(), nn.CrossEntropyLoss()):
        assert isinstance(loss, nn.Module) and list(loss.parameters()) == []
    assert (repr(nn.MSELoss()), repr(nn.CrossEntropyLoss())) == ("MSELoss()", "CrossEntropyLoss()")


def test_gradcheck_mse_loss_wrt_input_and_target():
    rng = np.random.default_rng(0)
    y = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    t = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [y, t])


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    rng = np.random.default_rng(0)
    compare_with_torch(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction),
                       rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))


# ---- cross-entropy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction,reduce", [("mean", np.mean), ("sum", np.sum), ("none", lambda a: a)])
def test_cross_entropy_matches_closed_form(reduction, reduce):
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    expected = reduce(logsumexp_minus_target(z, t))
    np.testing.assert_allclose(F.cross_entropy(Tensor(z), t, reduction=reduction).data, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction=reduction)(Tensor(z), t).data, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("convert", [Tensor, list, lambda t: t.astype(np.int32), lambda t: t.astype(np.uint8)],
                         ids=["Tensor", "list", "int32", "uint8"])
def test_cross_entropy_accepts_targets_as_tensor_list_or_any_int_array(convert):
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    np.testing.assert_allclose(F.cross_entropy(Tensor(z), convert(t)).item(), logsumexp_minus_target(z, t).mean(), rtol=1e-12)


def test_cross_entropy_of_a_single_example_with_logits_of_shape_c():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(5)
    assert F.cross_entropy(Tensor(z), 3).shape == ()
    np.testing.assert_allclose(F.cross_entropy(Tensor(z), np.int64(3)).item(), logsumexp_minus_target(z, 3), rtol=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_cross_entropy_of_equal_logits_is_log_c(classes):
    np.testing.assert_allclose(F.cross_entropy(Tensor(np.zeros((4, classes))), [0, 1, 0, 1]).item(), math.log(classes), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_finite_and_exact_for_logits_of_1e4(dtype):
    z = Tensor(np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(z, [0, 2, 1], reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 2e4, math.log(2)], rtol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
    logits = Tensor(z, requires_grad=True)
    F.cross_entropy(logits, t).backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(logits.grad.data, (p - np.eye(5)[t]) / 4, rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradient_is_finite_for_huge_logits():
    logits = Tensor(np.array([[1e4, 0.0, -1e4]]), requires_grad=True)
    F.cross_entropy(logits, [2]).backward()
    np.testing.assert_allclose(logits.grad.data, [[1.0, 0.0, -1.0]])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_cross_entropy(reduction):
    rng = np.random.default_rng(0)
    z = Tensor(rng.standard_normal((4, 3)) * 2, requires_grad=True)
    assert gradcheck(lambda logits: F.cross_entropy(logits, [2, 0, 1, 2], reduction=reduction), [z])


def test_gradcheck_cross_entropy_with_a_repeated_class_in_the_batch():
    rng = np.random.default_rng(0)
    z = Tensor(rng.standard_normal((5, 2)), requires_grad=True)
    assert gradcheck(lambda logits: nn.CrossEntropyLoss()(logits, np.array([1, 1, 1, 0, 1])), [z])


@pytest.mark.parametrize("target,error,message", [
    (np.array([0.0, 1.0, 2.0]), TypeError, "integer class indices, not float64"),
    (np.array([0, 1, 3]), IndexError, "class 3 but input has 3 classes"),
    (np.array([0, -1, 2]), IndexError, "class -1 but input has 3 classes"),
    (np.array([0, 1]), ValueError, r"target shape \(2,\) does not fit input shape \(3, 3\)"),
    (np.array([[0], [1], [2]]), ValueError, "does not fit")])
def test_cross_entropy_refuses_bad_targets_with_a_clear_error(target, error, message):
    with pytest.raises(error, match=message):
        F.cross_entropy(Tensor(np.zeros((3, 3))), target)


def test_cross_entropy_refuses_inputs_with_extra_dimensions():
    with pytest.raises(ValueError, match="reshape to"):
        F.cross_entropy(Tensor(np.zeros((2, 3, 4))), np.zeros((2, 4), dtype=np.int64))


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    rng = np.random.default_rng(0)
    t = np.array([1, 0, 3, 3, 2])
    compare_with_torch(lambda z: nn.CrossEntropyLoss(reduction=reduction)(z, t),
                       lambda z: torch.nn.CrossEntropyLoss(reduction=reduction)(z, torch.from_numpy(t)),
                       rng.standard_normal((5, 4)) * 3)


@requires_torch
def test_cross_entropy_matches_torch_for_logits_of_1e4_and_for_one_example():
    rng = np.random.default_rng(0)
    t = np.array([0, 2, 1])
    compare_with_torch(lambda z: F.cross_entropy(z, t), lambda z: torch.nn.functional.cross_entropy(z, torch.from_numpy(t)),
                       np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]]))
    compare_with_torch(lambda z: F.cross_entropy(z, 2), lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(2)),
                       rng.standard_normal(4))


def test_an_installed_cross_entropy_kernel_computes_the_rows_of_2d_logits_and_can_be_removed():
    from tinytorch.nn.loss import set_cross_entropy_kernel
    calls = []

    def kernel(logits, indices):
        calls.append(indices.tolist())
        return logits.sum(dim=1)                      # a stand-in: any per-row losses

    z = Tensor(np.arange(6.0).reshape(2, 3))
    previous = set_cross_entropy_kernel(kernel)
    try:
        assert F.cross_entropy(z, [2, 0], reduction="none").tolist() == [3.0, 12.0]
        assert F.cross_entropy(z[0], 2).item() == pytest.approx(logsumexp_minus_target([0.0, 1.0, 2.0], 2))
        assert calls == [[2, 0]], "1-D logits use the composition, 2-D logits the kernel"
    finally:
        assert set_cross_entropy_kernel(previous) is kernel
    np.testing.assert_allclose(F.cross_entropy(z, [2, 0], reduction="none").data, logsumexp_minus_target(z.data, [2, 0]))


def test_set_cross_entropy_kernel_refuses_what_is_not_a_function():
    from tinytorch.nn.loss import set_cross_entropy_kernel
    with pytest.raises(TypeError, match="expected a function"):
        set_cross_entropy_kernel("fused")


# ---- counting ---------------------------------------------------------------------------------------
def test_count_parameters_matches_the_formula():
    model = nn.MLP(10, [32, 16], 4)
    assert count_parameters(model) == (10 * 32 + 32) + (32 * 16 + 16) + (16 * 4 + 4)


def test_count_parameters_counts_a_tied_weight_once_and_can_skip_frozen_ones():
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))
    model[2].weight = model[0].weight
    assert count_parameters(model) == 36 + 6 + 6
    model[0].bias.requires_grad = False
    assert count_parameters(model, trainable_only=True) == 36 + 6


def test_parameter_bytes_as_stored_and_in_another_dtype():
    model = nn.MLP(10, [20], 5)
    n = count_parameters(model)
    assert parameter_bytes(model) == 4 * n == parameter_bytes(model, np.float32)
    assert parameter_bytes(model, np.float64) == 8 * n and parameter_bytes(model, "float16") == 2 * n
    assert parameter_bytes(as_float64(model)) == 8 * n


def test_activation_bytes_counts_every_layer_output():
    model = nn.MLP(10, [32, 16], 4)
    x = Tensor(np.zeros((8, 10), dtype=np.float32))
    assert activation_bytes(model, x) == 8 * (32 + 32 + 16 + 16 + 4) * 4
    assert activation_bytes(nn.Linear(10, 3), x) == 8 * 3 * 4


def test_losses_and_mlp_are_public_under_pytorch_names():
    assert {"MLP", "MSELoss", "CrossEntropyLoss"} <= set(dir(nn))
    assert {"mse_loss", "cross_entropy"} <= set(dir(F))
