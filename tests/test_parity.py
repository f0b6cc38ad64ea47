"""Where tinytorch used to disagree with PyTorch, and the API a PyTorch user reaches for first.

Every differentiable case is run twice: against PyTorch (forward and gradients, float64,
skipped without torch) and through gradcheck (finite differences, always run).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch
from tinytorch import Tensor, gradcheck, nn
from tinytorch.nn import functional as F
from torch_reference import compare_with_torch, requires_torch, torch

rng = np.random.default_rng(15)


def normal(*shape):
    return rng.standard_normal(shape)


# name, tinytorch function, torch function, inputs (float64 arrays)
CASES = [
    ("max_dim_values", lambda a: a.max(1).values, lambda a: a.max(1).values, [normal(3, 4)]),
    ("max_dim_keepdim", lambda a: a.max(dim=0, keepdim=True).values, lambda a: a.max(dim=0, keepdim=True).values,
     [normal(3, 4)]),
    ("min_dim_values", lambda a: a.min(-1).values, lambda a: a.min(-1).values, [normal(2, 3, 4)]),
    ("max_all", lambda a: a.max(), lambda a: a.max(), [normal(3, 4)]),
    ("min_all", lambda a: a.min(), lambda a: a.min(), [normal(3, 4)]),
    ("amin_dims", lambda a: a.amin(dim=(0, 2)), lambda a: a.amin(dim=(0, 2)), [normal(2, 3, 4)]),
    ("double_keeps_graph", lambda a: a.float().double() * 2, lambda a: a.float().double() * 2, [normal(3)]),
    ("to_dtype", lambda a: a.to(np.float32).to(np.float64), lambda a: a.to(torch.float32).to(torch.float64),
     [normal(3)]),
    ("relu", F.relu, torch.relu if torch else None, [normal(3, 4)]),
    ("gelu_exact", F.gelu, torch.nn.functional.gelu if torch else None, [normal(3, 4)]),
    ("abs", lambda a: a.abs(), lambda a: a.abs(), [normal(3, 4)]),
    ("clamp", lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [normal(3, 4)]),
    ("clamp_min", lambda a: a.clamp(min=0.1), lambda a: a.clamp(min=0.1), [normal(3, 4)]),
    ("var_unbiased", lambda a: a.var(1), lambda a: a.var(1), [normal(3, 4)]),
    ("var_biased", lambda a: a.var(0, unbiased=False), lambda a: a.var(0, unbiased=False), [normal(3, 4)]),
    ("var_correction_keepdim", lambda a: a.var(dim=(0, 1), correction=2, keepdim=True),
     lambda a: a.var(dim=(0, 1), correction=2, keepdim=True), [normal(3, 4, 2)]),
    ("std_all", lambda a: a.std(), lambda a: a.std(), [normal(3, 4)]),
    ("cat", lambda a, b: tinytorch.cat([a, b], dim=1), lambda a, b: torch.cat([a, b], dim=1),
     [normal(2, 3), normal(2, 2)]),
    ("stack", lambda a, b: tinytorch.stack([a, b], dim=-1), lambda a, b: torch.stack([a, b], dim=-1),
     [normal(2, 3), normal(2, 3)]),
    ("squeeze", lambda a: a.squeeze() * 1, lambda a: a.squeeze() * 1, [normal(1, 3, 1)]),
    ("squeeze_dim", lambda a: a.squeeze(0) * 1, lambda a: a.squeeze(0) * 1, [normal(1, 3, 1)]),
    ("expand", lambda a: a.expand(2, 3, 4) * 1, lambda a: a.expand(2, 3, 4) * 1, [normal(3, 1)]),
    ("expand_minus_one", lambda a: a.expand(-1, 5) * 1, lambda a: a.expand(-1, 5) * 1, [normal(3, 1)]),
    ("repeat", lambda a: a.repeat(2, 3), lambda a: a.repeat(2, 3), [normal(2, 3)]),
    ("repeat_new_dims", lambda a: a.repeat(2, 1, 2), lambda a: a.repeat(2, 1, 2), [normal(2, 3)]),
    ("where", lambda a, b: tinytorch.where(a > 0, a, b), lambda a, b: torch.where(a > 0, a, b),
     [normal(3, 4), normal(3, 4)]),
    ("where_scalar", lambda a: tinytorch.where(a > 0, a, 0.0), lambda a: torch.where(a > 0, a, 0.0), [normal(3, 4)]),
    ("masked_fill", lambda a: a.masked_fill(Tensor(np.eye(3, 4, dtype=bool)), -1.0),
     lambda a: a.masked_fill(torch.tensor(np.eye(3, 4, dtype=bool)), -1.0), [normal(3, 4)]),
    ("relu_method", lambda a: a.relu(), lambda a: a.relu(), [normal(3, 4)]),
    ("sigmoid_method", lambda a: a.sigmoid(), lambda a: a.sigmoid(), [normal(3, 4)]),
    ("softmax_method", lambda a: a.softmax(-1), lambda a: a.softmax(-1), [normal(3, 4)]),
    ("log_softmax_method", lambda a: a.log_softmax(dim=0), lambda a: a.log_softmax(dim=0), [normal(3, 4)]),
    ("max_pool_ties", lambda a: F.max_pool2d(F.relu(a), 2), lambda a: torch.nn.functional.max_pool2d(torch.relu(a), 2),
     [np.concatenate([-np.ones((1, 1, 2, 4)), normal(1, 1, 2, 4)], axis=2)]),
]
IDS = [case[0] for case in CASES]


@requires_torch
@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", CASES, ids=IDS)
def test_matches_torch(name, tiny_fn, torch_fn, arrays):
    compare_with_torch(tiny_fn, torch_fn, *arrays)


# A gradient at a tie is a convention, not a derivative; and a float32 round trip is below the
# resolution of finite differences at eps 1e-6 (both are compared with PyTorch above).
GRADCHECK_SKIP = {"max_pool_ties", "double_keeps_graph", "to_dtype"}


@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", [c for c in CASES if c[0] not in GRADCHECK_SKIP],
                         ids=[i for i in IDS if i not in GRADCHECK_SKIP])
def test_gradcheck(name, tiny_fn, torch_fn, arrays):
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    assert gradcheck(tiny_fn, inputs)


# ---- 1. max(dim) / min(dim) return (values, indices) ------------------------------------------

def test_max_dim_returns_values_and_indices_like_torch_return_types():
    out = Tensor([[1.0, 7.0, 3.0], [9.0, 2.0, 9.0], [4.0, 4.0, 0.0]])
    _, predicted = out.max(1)                          # the classification idiom, any batch size
    np.testing.assert_array_equal(predicted.data, [1, 0, 0])
    result = out.min(dim=0)
    np.testing.assert_array_equal(result.values.data, [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(result.indices.data, [0, 1, 2])
    assert out.max().shape == () and out.max().item() == 9.0


def test_max_with_several_dims_points_to_amax():
    with pytest.raises(TypeError, match="amax"):
        Tensor(np.ones((2, 3))).max(dim=(0, 1))


@requires_torch
def test_max_pool_gradient_goes_to_one_element_per_window_like_torch():
    x = np.ones((1, 1, 4, 4))                          # a constant region: every pixel ties
    compare_with_torch(lambda t: F.max_pool2d(t, 2), lambda t: torch.nn.functional.max_pool2d(t, 2), x)


def test_max_pool_gradient_at_ties_sums_to_one_per_window():
    x = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert x.grad.data.sum() == 4.0 and set(np.unique(x.grad.data)) == {0.0, 1.0}


# ---- 3. dtype conversions stay in the graph --------------------------------------------------

def test_float_and_double_keep_the_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad and y._ctx is not None
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


# ---- 4. dtype promotion ---------------------------------------------------------------------

PROMOTIONS = [
    ("int_plus_python_float", lambda T: T([1, 2]) + 0.5),
    ("int_times_python_int", lambda T: T([1, 2]) * 3),
    ("float32_times_0d_float64", lambda T: T(np.ones(3, np.float32)) * T(np.float64(2.0))),
    ("int_plus_0d_float64", lambda T: T([1, 2]) + T(np.float64(0.5))),
    ("bool_plus_python_int", lambda T: T([True, False]) + 1),
    ("float32_plus_float64_tensor", lambda T: T(np.ones(3, np.float32)) + T(np.ones(3))),
    ("0d_int_plus_0d_float32", lambda T: T(1) + T(np.float32(2.0))),
    ("int_tensor_plus_float32_tensor", lambda T: T([1, 2]) + T(np.ones(2, np.float32))),
    ("int32_plus_python_int", lambda T: T(np.array([1, 2], np.int32)) + 5),
    ("int_divided_by_int", lambda T: T([1, 2]) / 2),
    ("float32_minus_0d_float64", lambda T: T(np.ones(2, np.float32)) - T(np.float64(1.0))),
]


@requires_torch
@pytest.mark.parametrize("name, build", PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_dtype_promotion_matches_torch(name, build):
    def torch_tensor(value):
        return torch.from_numpy(np.asarray(value)) if isinstance(value, (np.ndarray, np.generic)) else torch.tensor(value)
    ours, theirs = build(Tensor), build(torch_tensor)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), f"{ours.dtype} vs {theirs.dtype}"
    np.testing.assert_allclose(ours.data, theirs.numpy())


def test_float64_input_to_float32_layer_is_refused():
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="dtypes differ"):
        layer(Tensor(np.ones((4, 3))))


# ---- 6. out-of-range dims -------------------------------------------------------------------

@pytest.mark.parametrize("call", [lambda x: x.permute(0, 1, 5), lambda x: x.unsqueeze(5), lambda x: x.transpose(0, 3),
                                  lambda x: x.max(dim=3), lambda x: x.squeeze(4),
                                  lambda x: tinytorch.cat([x, x], dim=3)])
def test_out_of_range_dims_raise_index_error(call):
    with pytest.raises(IndexError, match="out of range"):
        call(Tensor(np.zeros((2, 3, 4))))


def test_transpose_of_a_1d_tensor_names_the_dims():
    with pytest.raises(IndexError, match="out of range for a 1-D tensor"):
        Tensor([1.0, 2.0]).transpose()


def test_unsqueeze_accepts_the_new_last_position():
    assert Tensor(np.zeros((2, 3))).unsqueeze(2).shape == (2, 3, 1)
    assert Tensor(np.zeros((2, 3))).unsqueeze(-1).shape == (2, 3, 1)
    assert Tensor(np.zeros((2, 3))).unsqueeze(-3).shape == (1, 2, 3)


# ---- also: backward twice, bad data -----------------------------------------------------------

def test_backward_twice_through_a_graph_that_saved_nothing_accumulates_like_torch():
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    y = (a + b).reshape(2, 1).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(a.grad.data, [2.0, 2.0])


def test_backward_twice_through_a_graph_that_saved_arrays_still_raises():
    a = Tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


@pytest.mark.parametrize("data", ["abc", [[1, 2], [3]], None, {"a": 1}])
def test_tensor_refuses_non_numeric_data_in_one_line(data):
    with pytest.raises(TypeError, match="Tensor: cannot make a tensor") as err:
        Tensor(data)
    assert "\n" not in str(err.value)


# ---- the rest of the API --------------------------------------------------------------------

def test_factories_have_torch_dtypes_and_shapes():
    assert tinytorch.zeros(2, 3).shape == (2, 3) and tinytorch.zeros(2, 3).dtype == np.float32
    assert tinytorch.ones((4,)).dtype == np.float32
    assert tinytorch.arange(5).dtype == np.int64 and tinytorch.arange(0, 1, 0.25).dtype == np.float32
    assert tinytorch.full((2,), 7).dtype == np.int64 and tinytorch.full((2,), 0.5).dtype == np.float32
    x = tinytorch.tensor([[1.0, 2.0]], requires_grad=True)
    assert x.requires_grad and x.dtype == np.float32
    assert tinytorch.zeros_like(x).shape == (1, 2) and tinytorch.ones_like(x, dtype=np.float64).dtype == np.float64
    assert tinytorch.full_like(x, 3.0).data.tolist() == [[3.0, 3.0]]
    tinytorch.manual_seed(0)
    r = tinytorch.randn(3, 4)
    assert r.shape == (3, 4) and r.dtype == np.float32
    assert tinytorch.rand(2).dtype == np.float32 and tinytorch.randn_like(x).shape == (1, 2)
    ints = tinytorch.randint(0, 5, (100,))
    assert ints.dtype == np.int64 and 0 <= ints.data.min() and ints.data.max() < 5


def test_setitem_on_a_tensor_without_grad_writes_in_place():
    x = tinytorch.zeros(2, 3)
    x[0, 1] = 5.0
    x[1] = Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.data, [[0, 5, 0], [1, 2, 3]])


def test_setitem_on_a_tensor_that_requires_grad_is_refused():
    x = tinytorch.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        x[0] = 1.0
    with tinytorch.no_grad():
        x[0] = 1.0                                   # allowed under no_grad, as in PyTorch
    assert x.data[0] == 1.0


def test_requires_grad_underscore_sets_the_flag_in_place():
    x = tinytorch.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        tinytorch.arange(3).requires_grad_()


def test_var_of_one_element_is_nan_as_in_torch():
    assert np.isnan(Tensor([1.0]).var().item())


# ---- losses ---------------------------------------------------------------------------------

TARGETS = np.array([0, 2, 1, 2])
WEIGHT = np.array([0.5, 2.0, 1.5])
PROBS = 1 / (1 + np.exp(-normal(4, 3)))
BINARY = (normal(4, 3) > 0).astype(np.float64)


def _torch_long(a):
    return torch.tensor(a, dtype=torch.int64)


LOSS_CASES = [
    ("nll", lambda x: F.nll_loss(F.log_softmax(x, dim=-1), TARGETS),
     lambda x: torch.nn.functional.nll_loss(torch.log_softmax(x, -1), _torch_long(TARGETS)), [normal(4, 3)]),
    ("nll_weight_sum", lambda x: nn.NLLLoss(weight=WEIGHT, reduction="sum")(x, TARGETS),
     lambda x: torch.nn.NLLLoss(weight=torch.tensor(WEIGHT), reduction="sum")(x, _torch_long(TARGETS)), [normal(4, 3)]),
    ("ce_weight", lambda x: nn.CrossEntropyLoss(weight=WEIGHT)(x, TARGETS),
     lambda x: torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT))(x, _torch_long(TARGETS)), [normal(4, 3)]),
    ("ce_ignore_index", lambda x: nn.CrossEntropyLoss(ignore_index=2)(x, TARGETS),
     lambda x: torch.nn.CrossEntropyLoss(ignore_index=2)(x, _torch_long(TARGETS)), [normal(4, 3)]),
    ("ce_ignore_index_none", lambda x: F.cross_entropy(x, np.array([0, -100, 1, 2]), reduction="none"),
     lambda x: torch.nn.functional.cross_entropy(x, _torch_long([0, -100, 1, 2]), reduction="none"), [normal(4, 3)]),
    ("ce_label_smoothing", lambda x: nn.CrossEntropyLoss(label_smoothing=0.2)(x, TARGETS),
     lambda x: torch.nn.CrossEntropyLoss(label_smoothing=0.2)(x, _torch_long(TARGETS)), [normal(4, 3)]),
    ("ce_all_options", lambda x: nn.CrossEntropyLoss(weight=WEIGHT, ignore_index=1, label_smoothing=0.1)(x, TARGETS),
     lambda x: torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT), ignore_index=1, label_smoothing=0.1)(
         x, _torch_long(TARGETS)), [normal(4, 3)]),
    ("ce_smoothing_sum", lambda x: F.cross_entropy(x, TARGETS, reduction="sum", label_smoothing=0.3),
     lambda x: torch.nn.functional.cross_entropy(x, _torch_long(TARGETS), reduction="sum", label_smoothing=0.3),
     [normal(4, 3)]),
    ("bce", lambda p: nn.BCELoss()(p, BINARY), lambda p: torch.nn.BCELoss()(p, torch.tensor(BINARY)), [PROBS]),
    ("bce_weight_none", lambda p: F.binary_cross_entropy(p, BINARY, weight=Tensor(WEIGHT), reduction="none"),
     lambda p: torch.nn.functional.binary_cross_entropy(p, torch.tensor(BINARY), weight=torch.tensor(WEIGHT),
                                                        reduction="none"), [PROBS]),
    ("bce_with_logits", lambda x: nn.BCEWithLogitsLoss()(x, BINARY),
     lambda x: torch.nn.BCEWithLogitsLoss()(x, torch.tensor(BINARY)), [normal(4, 3) * 5]),
    ("bce_with_logits_pos_weight", lambda x: nn.BCEWithLogitsLoss(pos_weight=Tensor(WEIGHT))(x, BINARY),
     lambda x: torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(WEIGHT))(x, torch.tensor(BINARY)),
     [normal(4, 3) * 5]),
]
LOSS_IDS = [c[0] for c in LOSS_CASES]


@requires_torch
@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", LOSS_CASES, ids=LOSS_IDS)
def test_loss_matches_torch(name, tiny_fn, torch_fn, arrays):
    compare_with_torch(tiny_fn, torch_fn, *arrays)


@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", LOSS_CASES, ids=LOSS_IDS)
def test_loss_gradcheck(name, tiny_fn, torch_fn, arrays):
    assert gradcheck(tiny_fn, [Tensor(a.copy(), requires_grad=True) for a in arrays])


@requires_torch
def test_bce_with_logits_is_finite_for_huge_logits_like_torch():
    x, t = np.array([800.0, -800.0, 0.0]), np.array([0.0, 1.0, 1.0])
    ours = F.binary_cross_entropy_with_logits(Tensor(x), t).item()
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t)).item()
    assert np.isclose(ours, theirs)


def test_activation_layers_are_modules_and_identity_passes_through():
    for layer in (nn.ReLU(), nn.GELU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=1), nn.LogSoftmax(dim=1),
                  nn.LeakyReLU(0.2), nn.Identity()):
        assert isinstance(layer, nn.Module)
        assert layer.train() is layer and layer.training
    x = Tensor(np.ones((2, 2)))
    assert nn.Identity()(x) is x


@requires_torch
def test_leaky_relu_matches_torch():
    compare_with_torch(nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2), normal(3, 4))


# ---- optimizers and schedules ----------------------------------------------------------------

def _run_both(make_tiny, make_torch, steps=6):
    """Minimise sum(w^2 * c) with both optimizers from the same start; return both trajectories' ends."""
    start, c = normal(5), np.abs(normal(5)) + 0.5
    w = Tensor(start.copy(), requires_grad=True)
    r = torch.tensor(start.copy(), requires_grad=True)
    tiny, ref = make_tiny([w]), make_torch([r])
    for _ in range(steps):
        tiny.zero_grad()
        ref.zero_grad()
        (w * w * Tensor(c)).sum().backward()
        (r * r * torch.tensor(c)).sum().backward()
        tiny.step()
        ref.step()
    return w.data, r.detach().numpy()


RMSPROP_OPTIONS = [dict(), dict(momentum=0.9), dict(centered=True), dict(weight_decay=0.1, momentum=0.5, centered=True)]


@requires_torch
@pytest.mark.parametrize("options", RMSPROP_OPTIONS, ids=[str(o) for o in RMSPROP_OPTIONS])
def test_rmsprop_matches_torch(options):
    ours, theirs = _run_both(lambda p: tinytorch.optim.RMSprop(p, lr=0.01, **options),
                             lambda p: torch.optim.RMSprop(p, lr=0.01, **options))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def _schedule(make, opt_cls, steps, **opt_options):
    opt = opt_cls([Tensor(np.zeros(1), requires_grad=True) if opt_cls.__module__.startswith("tinytorch")
                   else torch.zeros(1, requires_grad=True)], lr=0.1, **opt_options)
    scheduler, rates = make(opt), []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        opt.step()
        scheduler.step()
    return rates


SCHEDULES = [
    ("MultiStepLR", lambda m: lambda o: m.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    ("ExponentialLR", lambda m: lambda o: m.ExponentialLR(o, gamma=0.9)),
    ("LinearLR", lambda m: lambda o: m.LinearLR(o, start_factor=0.25, total_iters=4)),
    ("OneCycleLR", lambda m: lambda o: m.OneCycleLR(o, max_lr=1.0, total_steps=10)),
    ("OneCycleLR_linear_three_phase", lambda m: lambda o: m.OneCycleLR(o, max_lr=0.5, total_steps=12,
                                                                       anneal_strategy="linear", three_phase=True)),
]


@requires_torch
@pytest.mark.parametrize("name, make", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch(name, make):
    ours = _schedule(make(tinytorch.optim.lr_scheduler), tinytorch.optim.SGD, 10, momentum=0.9)
    theirs = _schedule(make(torch.optim.lr_scheduler), torch.optim.SGD, 10, momentum=0.9)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@requires_torch
def test_one_cycle_cycles_momentum_and_adam_beta1_like_torch():
    for cls_name in ("SGD", "Adam"):
        options = dict(momentum=0.9) if cls_name == "SGD" else {}
        tiny_opt = getattr(tinytorch.optim, cls_name)([Tensor(np.zeros(1), requires_grad=True)], lr=0.1, **options)
        ref_opt = getattr(torch.optim, cls_name)([torch.zeros(1, requires_grad=True)], lr=0.1, **options)
        tiny = tinytorch.optim.lr_scheduler.OneCycleLR(tiny_opt, max_lr=1.0, total_steps=8)
        ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=1.0, total_steps=8)
        key = "momentum" if cls_name == "SGD" else "betas"
        for _ in range(7):
            tiny_opt.step()
            ref_opt.step()
            tiny.step()
            ref.step()
            np.testing.assert_allclose(np.atleast_1d(tiny_opt.param_groups[0][key])[0],
                                       np.atleast_1d(ref_opt.param_groups[0][key])[0], rtol=1e-12)


@requires_torch
@pytest.mark.parametrize("options", [dict(), dict(mode="max", patience=0, cooldown=1), dict(threshold_mode="abs",
                                                                                              threshold=0.5, patience=1)])
def test_reduce_lr_on_plateau_matches_torch(options):
    metrics = [5.0, 4.0, 4.0, 3.99, 3.99, 3.99, 4.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    tiny_opt = tinytorch.optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    tiny = tinytorch.optim.lr_scheduler.ReduceLROnPlateau(tiny_opt, **options)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **options)
    for m in metrics:
        tiny.step(m)
        ref.step(m)
        assert tiny.get_last_lr() == pytest.approx(ref.get_last_lr())


# ---- Embedding(padding_idx=) ------------------------------------------------------------------

@requires_torch
def test_embedding_padding_row_is_zero_and_gets_no_gradient_like_torch():
    tinytorch.manual_seed(0)
    tiny = nn.Embedding(5, 3, padding_idx=1)
    ref = torch.nn.Embedding(5, 3, padding_idx=1)
    assert np.array_equal(tiny.weight.data[1], np.zeros(3)) and repr(tiny) == "Embedding(5, 3, padding_idx=1)"
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(tiny.weight.data))
    ids = np.array([[1, 2, 1], [4, 1, 0]])
    weights = normal(2, 3, 3)
    (tiny(ids) * Tensor(weights.astype(np.float32))).sum().backward()
    (ref(torch.from_numpy(ids)) * torch.from_numpy(weights.astype(np.float32))).sum().backward()
    np.testing.assert_allclose(tiny.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert not tiny.weight.grad.data[1].any()


def test_embedding_negative_padding_idx_counts_from_the_end():
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4


# ---- Conv2d(padding='same', dilation=, groups=) ------------------------------------------------

CONV_CASES = [
    ("groups", dict(groups=2), (6, 2, 3, 3)),
    ("depthwise", dict(groups=4, padding=1), (4, 1, 3, 3)),
    ("dilation", dict(dilation=2), (3, 4, 3, 3)),
    ("dilation_pair_stride", dict(dilation=(2, 1), stride=2, padding=1), (3, 4, 3, 2)),
    ("same_odd", dict(padding="same"), (3, 4, 3, 3)),
    ("same_even_kernel", dict(padding="same"), (3, 4, 4, 2)),
    ("same_dilated_groups", dict(padding="same", dilation=2, groups=2), (4, 2, 2, 3)),
    ("valid", dict(padding="valid"), (3, 4, 3, 3)),
]


@requires_torch
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")   # torch's own note
@pytest.mark.parametrize("name, options, weight_shape", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d_options_match_torch(name, options, weight_shape):
    compare_with_torch(lambda x, w, b: F.conv2d(x, w, b, **options),
                       lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **options),
                       normal(2, 4, 7, 6), normal(*weight_shape), normal(weight_shape[0]))


@pytest.mark.parametrize("name, options, weight_shape", CONV_CASES[:4], ids=[c[0] for c in CONV_CASES[:4]])
def test_conv2d_options_gradcheck(name, options, weight_shape):
    inputs = [Tensor(normal(1, 4, 5, 5), requires_grad=True), Tensor(normal(*weight_shape), requires_grad=True)]
    assert gradcheck(lambda x, w: F.conv2d(x, w, **options), inputs)


def test_conv2d_layer_with_groups_has_torch_weight_shape():
    layer = nn.Conv2d(4, 8, 3, groups=4, bias=False)
    assert layer.weight.shape == (8, 1, 3, 3) and layer.bias is None


def test_conv2d_same_padding_with_stride_is_refused():
    with pytest.raises(ValueError, match="stride 1"):
        F.conv2d(Tensor(np.zeros((1, 1, 4, 4))), Tensor(np.zeros((1, 1, 3, 3))), stride=2, padding="same")


@requires_torch
@pytest.mark.parametrize("cls_name, options", [("Adam", dict(amsgrad=True)), ("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                               ("AdamW", dict(amsgrad=True))])
def test_amsgrad_matches_torch(cls_name, options):
    ours, theirs = _run_both(lambda p: getattr(tinytorch.optim, cls_name)(p, lr=0.05, **options),
                             lambda p: getattr(torch.optim, cls_name)(p, lr=0.05, **options), steps=12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
