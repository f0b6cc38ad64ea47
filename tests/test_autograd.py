"""Autograd (chapter 09): every primitive's rule, the engine's contract, no_grad and gradcheck.

Each primitive case below is one line and runs twice: against central finite
differences (gradcheck, float64) and against PyTorch (forward and input
gradients; skipped without PyTorch).
"""

from __future__ import annotations

import gc
import re
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch.core.tensor as tensor_module
from tinytorch import Tensor, enable_grad, gradcheck, is_grad_enabled, no_grad
from tinytorch.core.autograd import GradcheckError, backward_rule
from tinytorch.core.function import Function, Tanh
from tinytorch.nn import Linear, ReLU, Sequential
from tinytorch.nn import Tanh as TanhLayer
from tinytorch.nn.functional import log_softmax

from torch_reference import compare_with_torch, requires_torch, torch

RNG = np.random.default_rng(0)


def normal(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def torch_index(index):
    """The same index for a torch tensor: NumPy arrays become torch tensors."""
    if isinstance(index, tuple):
        return tuple(torch_index(i) for i in index)
    return torch.as_tensor(index) if isinstance(index, np.ndarray) else index


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, -1.0, 0.5, 2.0]])      # two-way ties in each row

# (name, tinytorch fn, torch fn, input arrays): one line per case.
CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [normal(2, 3), normal(2, 3)]),
    ("add_broadcast_bias", lambda a, b: a + b, lambda a, b: a + b, [normal(4, 3), normal(3)]),
    ("add_broadcast_both", lambda a, b: a + b, lambda a, b: a + b, [normal(3, 1), normal(1, 4)]),
    ("add_scalar_tensor", lambda a, b: a + b, lambda a, b: a + b, [normal(2, 3), normal()]),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [normal(2, 3), normal(2, 3)]),
    ("mul_broadcast", lambda a, b: a * b, lambda a, b: a * b, [normal(2, 1, 3), normal(4, 1)]),
    ("mul_same_tensor", lambda a: a * a, lambda a: a * a, [normal(3)]),
    ("neg", lambda a: -a, lambda a: -a, [normal(2, 3)]),
    ("pow_2", lambda a: a ** 2, lambda a: a ** 2, [normal(2, 3)]),
    ("pow_3", lambda a: a ** 3, lambda a: a ** 3, [normal(2, 3)]),
    ("pow_minus_1", lambda a: a ** -1, lambda a: a ** -1, [positive(2, 3)]),
    ("pow_half", lambda a: a ** 0.5, lambda a: a ** 0.5, [positive(2, 3)]),
    ("pow_zero", lambda a: a ** 0, lambda a: a ** 0, [normal(2, 3)]),
    ("exp", lambda a: a.exp(), lambda a: a.exp(), [normal(2, 3)]),
    ("log", lambda a: a.log(), lambda a: a.log(), [positive(2, 3)]),
    ("tanh", lambda a: a.tanh(), lambda a: a.tanh(), [normal(2, 3)]),
    ("matmul_2d", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3), normal(3, 4)]),
    ("matmul_1d_2d", lambda a, b: a @ b, lambda a, b: a @ b, [normal(3), normal(3, 4)]),
    ("matmul_2d_1d", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3), normal(3)]),
    ("matmul_1d_1d", lambda a, b: a @ b, lambda a, b: a @ b, [normal(3), normal(3)]),
    ("matmul_batched", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(2, 4, 5)]),
    ("matmul_batched_broadcast_b", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 5)]),
    ("matmul_batched_broadcast_a", lambda a, b: a @ b, lambda a, b: a @ b, [normal(3, 4), normal(2, 4, 5)]),
    ("matmul_batch_axes_broadcast", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    ("matmul_1d_batched", lambda a, b: a @ b, lambda a, b: a @ b, [normal(4), normal(2, 4, 3)]),
    ("matmul_batched_1d", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4)]),
    ("sum_all", lambda a: a.sum(), lambda a: a.sum(), [normal(2, 3, 4)]),
    ("sum_dim", lambda a: a.sum(dim=1), lambda a: a.sum(dim=1), [normal(2, 3, 4)]),
    ("sum_negative_dim_keepdim", lambda a: a.sum(dim=-1, keepdim=True), lambda a: a.sum(dim=-1, keepdim=True), [normal(2, 3, 4)]),
    ("sum_dims_tuple", lambda a: a.sum(dim=(0, 2)), lambda a: a.sum(dim=(0, 2)), [normal(2, 3, 4)]),
    ("sum_all_keepdim", lambda a: a.sum(dim=(0, 1), keepdim=True), lambda a: a.sum(dim=(0, 1), keepdim=True), [normal(2, 3)]),
    ("max_all", lambda a: a.max(), lambda a: a.amax(), [normal(2, 3, 4)]),
    ("max_dim", lambda a: a.max(dim=1).values, lambda a: a.max(dim=1).values, [normal(2, 3, 4)]),
    ("max_dim_keepdim", lambda a: a.max(dim=-1, keepdim=True).values, lambda a: a.max(dim=-1, keepdim=True).values,
     [normal(2, 3, 4)]),
    ("min_dim", lambda a: a.min(dim=0).values, lambda a: a.min(dim=0).values, [normal(2, 3, 4)]),
    ("min_all", lambda a: a.min(), lambda a: a.min(), [normal(2, 3, 4)]),
    ("amax_dim", lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), [normal(2, 3, 4)]),
    ("amax_dims_tuple", lambda a: a.amax(dim=(0, 2)), lambda a: a.amax(dim=(0, 2)), [normal(2, 3, 4)]),
    ("amax_ties_dim", lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), [TIES]),
    ("amin_dim", lambda a: a.amin(dim=-1), lambda a: a.amin(dim=-1), [normal(2, 3, 4)]),
    ("max_ties_all", lambda a: a.max(), lambda a: a.amax(), [np.array([1.0, 4.0, 4.0, -2.0])]),
    ("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [normal(2, 3, 4)]),
    ("reshape_infer", lambda a: a.reshape(-1), lambda a: a.reshape(-1), [normal(2, 3, 4)]),
    ("unsqueeze_flatten", lambda a: a.unsqueeze(1).flatten(1), lambda a: a.unsqueeze(1).flatten(1), [normal(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [normal(2, 3, 4)]),
    ("permute_cycle", lambda a: a.permute(1, 2, 0), lambda a: a.permute(1, 2, 0), [normal(2, 3, 4)]),
    ("T_2d", lambda a: a.T, lambda a: a.T, [normal(2, 3)]),
    ("getitem_int", lambda a: a[1], lambda a: a[1], [normal(3, 4)]),
    ("getitem_slice", lambda a: a[1:3], lambda a: a[1:3], [normal(4, 3)]),
    ("getitem_slice_step", lambda a: a[::2, 1:], lambda a: a[::2, 1:], [normal(5, 3)]),
    ("getitem_negative_step", lambda a: a[::-1], lambda a: a.flip(0), [normal(4, 2)]),
    ("getitem_int_array", lambda a: a[np.array([2, 0])], lambda a: a[torch_index(np.array([2, 0]))], [normal(4, 3)]),
    ("getitem_repeated", lambda a: a[np.array([1, 1, 3, 1])], lambda a: a[torch_index(np.array([1, 1, 3, 1]))], [normal(4, 3)]),
    ("getitem_pairs", lambda a: a[np.arange(3), np.array([0, 2, 2])], lambda a: a[torch_index((np.arange(3), np.array([0, 2, 2])))], [normal(3, 3)]),
    ("getitem_slice_and_array", lambda a: a[:, np.array([0, 0, 2])], lambda a: a[:, torch_index(np.array([0, 0, 2]))], [normal(2, 3)]),
    ("getitem_bool_mask", lambda a: a[np.array([True, False, True])], lambda a: a[torch_index(np.array([True, False, True]))], [normal(3, 2)]),
    ("getitem_list", lambda a: a[[0, 0]], lambda a: a[[0, 0]], [normal(3, 2)]),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [normal(2, 3), normal(3)]),
    ("rsub", lambda a: 1.0 - a, lambda a: 1.0 - a, [normal(2, 3)]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), positive(2, 3)]),
    ("div_broadcast", lambda a, b: a / b, lambda a, b: a / b, [normal(2, 3), positive(2, 1)]),
    ("rdiv", lambda a: 2.0 / a, lambda a: 2.0 / a, [positive(2, 3)]),
    ("mean_all", lambda a: a.mean(), lambda a: a.mean(), [normal(2, 3)]),
    ("mean_dim", lambda a: a.mean(dim=0, keepdim=True), lambda a: a.mean(dim=0, keepdim=True), [normal(2, 3)]),
    ("sqrt", lambda a: a.sqrt(), lambda a: a.sqrt(), [positive(2, 3)]),
    ("chain", lambda a, b: ((a @ b).tanh() * a.sum(dim=1, keepdim=True)).exp().mean(), lambda a, b: ((a @ b).tanh() * a.sum(dim=1, keepdim=True)).exp().mean(), [normal(3, 4), normal(4, 2)]),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", CASES, ids=IDS)
def test_gradcheck(name, tiny_fn, torch_fn, arrays):
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    assert gradcheck(tiny_fn, inputs)


@requires_torch
@pytest.mark.parametrize("name, tiny_fn, torch_fn, arrays", CASES, ids=IDS)
def test_matches_torch(name, tiny_fn, torch_fn, arrays):
    compare_with_torch(tiny_fn, torch_fn, *arrays)


@requires_torch
def test_max_three_way_tie_shares_gradient_like_torch_amax():
    # Central differences give 1/2 at any tie, so this case is checked against torch only.
    compare_with_torch(lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), np.array([[2.0, 2.0, 2.0], [0.0, 1.0, 1.0]]))


def test_max_three_way_tie_splits_in_thirds():
    a = Tensor(np.array([[2.0, 2.0, 2.0, 1.0]]), requires_grad=True)
    a.amax(dim=1).sum().backward()
    np.testing.assert_allclose(a.grad.data, [[1 / 3, 1 / 3, 1 / 3, 0]])


@requires_torch
def test_max_dim_with_ties_gives_the_gradient_to_one_index_like_torch():
    # max(dim) picks one index per row (the first, as torch's CPU kernel does): it alone gets the gradient.
    compare_with_torch(lambda a: a.max(dim=1).values, lambda a: a.max(dim=1).values,
                       np.array([[2.0, 2.0, 2.0], [0.0, 1.0, 1.0]]))


# ---- broadcasting and accumulation ---------------------------------------------------------------

def test_bias_gradient_has_bias_shape_under_broadcasting():
    x = Tensor(np.ones((5, 3)))
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    (x @ w + b).sum().backward()
    assert b.grad.shape == (2,)
    np.testing.assert_allclose(b.grad.data, [5.0, 5.0])


def test_keepdim_shaped_bias_gradient_keeps_its_axes():
    b = Tensor(np.zeros((1, 3)), requires_grad=True)
    (Tensor(np.ones((4, 3))) * b).sum().backward()
    assert b.grad.shape == (1, 3)
    np.testing.assert_allclose(b.grad.data, [[4.0, 4.0, 4.0]])


def test_reused_tensor_accumulates_through_mul():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, -4.0, 6.0])


def test_reused_tensor_accumulates_through_add():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0, 2.0])


def test_reused_tensor_accumulates_across_branches():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    y = x * 2
    (y.exp() + y * y).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(2 * x.data) + 8 * x.data)


def test_gradients_accumulate_across_backward_calls_on_fresh_graphs():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 + 2 * x.data)


def test_alternating_batch_sizes_give_parameter_shaped_gradients():
    layer = Linear(3, 2)
    for batch in (4, 1, 7, 1, 4):
        layer.zero_grad()
        layer(Tensor(np.ones((batch, 3), dtype=np.float32))).sum().backward()
        assert layer.weight.grad.shape == (2, 3)
        assert layer.bias.grad.shape == (2,)
        np.testing.assert_allclose(layer.bias.grad.data, [batch, batch])


def test_leaf_gradient_is_a_private_copy():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x + 0).sum().backward()
    x.grad.data[0] = 99.0                    # must not corrupt anything the engine shares
    y = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (y + 0).sum().backward()
    np.testing.assert_allclose(y.grad.data, [1.0, 1.0])
    assert x.grad.data.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_keep_the_parameter_dtype(dtype):
    x = Tensor(np.array([[1.0, 5.0], [3.0, 2.0]], dtype=dtype), requires_grad=True)
    w = Tensor(np.ones((2, 2), dtype=dtype), requires_grad=True)
    ((x @ w).max(dim=1).values.exp() * 0.5).sum().backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype


# ---- the engine's errors and memory --------------------------------------------------------------

def test_backward_twice_without_retain_graph_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_backward_twice_with_retain_graph_accumulates():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)


def test_backward_frees_the_graph_so_intermediates_are_collected():
    x = Tensor(np.ones((4, 4)), requires_grad=True)
    hidden = x.tanh() * 2
    alive = weakref.ref(hidden)
    loss = hidden.sum()
    del hidden
    loss.backward()
    gc.collect()
    assert alive() is None, "backward() should release the graph while `loss` is still alive"


def test_retain_graph_keeps_intermediates_alive():
    x = Tensor(np.ones((4, 4)), requires_grad=True)
    hidden = x.tanh() * 2
    alive = weakref.ref(hidden)
    loss = hidden.sum()
    del hidden
    loss.backward(retain_graph=True)
    gc.collect()
    assert alive() is not None


def test_backward_on_non_scalar_without_gradient_raises():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="pass `gradient`"):
        (x * 2).backward()


def test_backward_on_non_scalar_with_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    (x * 2).backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0, 6.0])


def test_backward_with_wrongly_shaped_gradient_raises():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(3)).sum().backward()


def test_backward_on_a_leaf_scalar():
    x = Tensor(np.array(3.0), requires_grad=True)
    x.backward()
    np.testing.assert_allclose(x.grad.data, 1.0)


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 1.0])


class _Twice(Function):
    @staticmethod
    def forward(ctx, a):
        return 2 * a


def test_a_rule_returning_too_few_gradients_is_reported_by_name():
    @backward_rule(_Twice)
    def wrong(ctx, grad):
        return ()
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="rule of _Twice returned 0 gradients for 1 inputs"):
        _Twice.apply(x).sum().backward()


def test_a_rule_returning_a_wrong_shape_is_reported_by_name():
    @backward_rule(_Twice)
    def wrong(ctx, grad):
        return (np.ones(5),)
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"rule of _Twice returned a gradient of shape \(5,\) for an input of shape \(2,\)"):
        _Twice.apply(x).sum().backward()


def test_constants_get_no_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.ones(3))
    (x * c).sum().backward()
    assert c.grad is None


def test_rules_do_not_compute_unneeded_gradients():
    a, b = Tensor(np.ones((2, 2)), requires_grad=True), Tensor(np.ones((2, 2)))
    out = a @ b
    grads = out._ctx.backward(out._ctx, np.ones((2, 2)))
    assert grads[0] is not None and grads[1] is None


# ---- no_grad / enable_grad ----------------------------------------------------------------------

def test_no_grad_records_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2).exp().sum()
    assert y._ctx is None and not y.requires_grad
    assert is_grad_enabled()


def test_enable_grad_records_inside_no_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        with enable_grad():
            y = x * 2
    assert y.requires_grad and y._ctx is not None


def test_no_grad_restores_the_flag_after_an_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("x")
    assert is_grad_enabled()


def test_no_grad_decorator_is_reentrant():
    @no_grad()
    def depth(n):
        assert not is_grad_enabled()
        return depth(n - 1) if n else None
    depth(3)
    assert is_grad_enabled(), "a recursive @no_grad() function left recording off"


def test_no_grad_restores_a_disabled_flag():
    with no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


# ---- gradcheck ----------------------------------------------------------------------------------

def test_gradcheck_reports_the_worst_element_of_a_wrong_rule():
    right = Tanh.backward
    Tanh.backward = staticmethod(lambda ctx, grad: (grad * (1 - ctx.saved_arrays[0]),))
    try:
        x = Tensor(np.array([[0.1, -0.2, 1.5], [0.3, 0.0, -0.1]]), requires_grad=True)
        with pytest.raises(GradcheckError, match=r"input 0 at index \(\d, \d\): backward gives .*, finite differences"):
            gradcheck(lambda a: a.tanh() * Tensor(np.ones((2, 3))), [x])
    finally:
        Tanh.backward = right


class _Double(Function):
    @staticmethod
    def forward(ctx, a):
        return 2 * a


def test_gradcheck_names_the_element_that_is_furthest_off():
    error = np.array([0.0, 0.05, 3.0, 0.0])           # wrong at two elements, by far the most at index 2

    @backward_rule(_Double)
    def off(ctx, grad):
        return (2 * grad + error,)
    x = Tensor(np.ones(4), requires_grad=True)
    with pytest.raises(GradcheckError) as caught:
        gradcheck(lambda a: _Double.apply(a), [x])
    message = str(caught.value)
    assert "input 0 at index (2,)" in message, message
    got, numeric = (float(part) for part in re.findall(r"gives (\S+), finite differences (\S+)", message)[0])
    assert abs(got - numeric - 3.0) < 1e-4, message


def test_gradcheck_returns_false_without_raising_when_asked():
    right = Tanh.backward
    Tanh.backward = staticmethod(lambda ctx, grad: (grad,))
    try:
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        assert gradcheck(lambda a: a.tanh(), [x], raise_exception=False) is False
    finally:
        Tanh.backward = right


def test_gradcheck_rejects_float32_inputs():
    with pytest.raises(ValueError, match="use float64"):
        gradcheck(lambda a: a * 2, [Tensor(np.ones(2, dtype=np.float32), requires_grad=True)])


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="does not depend on any input"):
        gradcheck(lambda a: a * 2, [Tensor(np.ones(2))])


def test_gradcheck_handles_non_contiguous_inputs():
    t = Tensor(RNG.standard_normal((4, 3)).T, requires_grad=True)
    assert not t.is_contiguous()
    assert gradcheck(lambda a: (a * a).sum(dim=0), [t])


def test_gradcheck_leaves_inputs_unchanged():
    data = RNG.standard_normal((2, 3))
    t = Tensor(data.copy(), requires_grad=True)
    gradcheck(lambda a: a.exp(), [t])
    np.testing.assert_array_equal(t.data, data)


# ---- earlier chapters' layers are trainable --------------------------------------------------------

def _float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def test_mlp_with_cross_entropy_gradchecks():
    model = _float64(Sequential(Linear(3, 5), TanhLayer(), Linear(5, 4)))
    x = Tensor(RNG.standard_normal((6, 3)), requires_grad=True)
    targets = np.array([0, 3, 1, 1, 2, 3])

    def loss(x, *params):
        return -log_softmax(model(x), dim=1)[np.arange(6), targets].mean()
    assert gradcheck(loss, [x, *model.parameters()])


@requires_torch
def test_mlp_gradients_match_torch():
    model = _float64(Sequential(Linear(3, 5), ReLU(), Linear(5, 2)))
    reference = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), reference.parameters()):
            theirs.copy_(torch.tensor(mine.data))
    x = RNG.standard_normal((7, 3))
    ((model(Tensor(x)) - 1.0) ** 2).mean().backward()
    ((reference(torch.tensor(x)) - 1.0) ** 2).mean().backward()
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_one_gradient_step_lowers_the_loss():
    from tinytorch.nn.init import manual_seed
    manual_seed(0)
    model = Sequential(Linear(2, 8), ReLU(), Linear(8, 1))
    x = Tensor(RNG.standard_normal((32, 2)).astype(np.float32))
    y = Tensor((x.data[:, :1] * 2 - x.data[:, 1:]).astype(np.float32))
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    with no_grad():
        for p in model.parameters():
            p.data -= 0.05 * p.grad.data
    assert ((model(x) - y) ** 2).mean().item() < loss.item()


# ---- properties ------------------------------------------------------------------------------------

broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


@settings(max_examples=40, deadline=None)
@given(broadcast_pairs)
def test_add_gradient_counts_how_often_each_element_was_broadcast(shapes):
    (shape_a, shape_b), out_shape = shapes
    a = Tensor(np.zeros(shape_a), requires_grad=True)
    b = Tensor(np.zeros(shape_b), requires_grad=True)
    (a + b).sum().backward()
    out_size = int(np.prod(out_shape))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_array_equal(a.grad.data, out_size // max(1, int(np.prod(shape_a))))
    np.testing.assert_array_equal(b.grad.data, out_size // max(1, int(np.prod(shape_b))))


@settings(max_examples=25, deadline=None)
@given(broadcast_pairs, st.integers(0, 2**32 - 1))
def test_mul_gradient_matches_finite_differences_for_any_broadcast(shapes, seed):
    (shape_a, shape_b), _ = shapes
    rng = np.random.default_rng(seed)
    a = Tensor(rng.standard_normal(shape_a), requires_grad=True)
    b = Tensor(rng.standard_normal(shape_b), requires_grad=True)
    assert gradcheck(lambda a, b: a * b, [a, b])
    assert a.grad.shape == shape_a and b.grad.shape == shape_b


@settings(max_examples=25, deadline=None)
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_sum_over_any_axes_broadcasts_ones_back(shape, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    keepdim = data.draw(st.booleans())
    x = Tensor(np.zeros(shape), requires_grad=True)
    x.sum(dim=tuple(axes), keepdim=keepdim).sum().backward()
    assert x.grad.shape == shape
    np.testing.assert_array_equal(x.grad.data, 1.0)


def test_function_grad_flag_is_the_one_no_grad_switches():
    # no_grad must act on the flag Function.apply reads, not on a copy of it.
    with no_grad():
        assert tensor_module.Function.grad_enabled is False
    assert tensor_module.Function.grad_enabled is True
