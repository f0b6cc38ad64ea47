"""Optimizers and learning-rate schedules (chapter 10).

The torch comparisons feed the same parameters and the same sequence of
gradients to tinytorch.optim and torch.optim and compare the parameters (and
the optimizer state) after every step. The other tests pin the update rules
with hand-computed numbers and need no PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.nn import Linear, ReLU, Sequential
from tinytorch.nn.functional import log_softmax
from tinytorch.optim import SGD, Adam, AdamW, Optimizer
from tinytorch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

from torch_reference import requires_torch, torch

SHAPES = [(3, 4), (4,)]                     # a weight and a bias


def _gradients(steps, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]


def _start(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def _run_both(tiny_cls, torch_cls, kwargs, dtype=np.float64, steps=6, rtol=1e-10, atol=1e-12, lrs=None):
    """Step both optimizers on identical params and grads; compare params and state after every step."""
    start = _start(dtype)
    tiny_params = [Tensor(a.copy(), requires_grad=True) for a in start]
    torch_params = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    tiny_opt, torch_opt = tiny_cls(tiny_params, **kwargs), torch_cls(torch_params, **kwargs)
    for step, grads in enumerate(_gradients(steps, dtype)):
        if lrs is not None:
            for group in tiny_opt.param_groups + torch_opt.param_groups:
                group["lr"] = lrs[step]
        for p, q, g in zip(tiny_params, torch_params, grads):
            p.grad = Tensor(g.copy())
            q.grad = torch.tensor(g.copy())
        tiny_opt.step()
        torch_opt.step()
        for i, (p, q) in enumerate(zip(tiny_params, torch_params)):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"parameter {i} after step {step + 1}")
            assert p.dtype == dtype
            theirs = torch_opt.state[q]
            for name, value in tiny_opt.state.get(p, {}).items():
                expected = theirs[name].numpy() if torch.is_tensor(theirs[name]) else theirs[name]
                np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol,
                                           err_msg=f"state {name} of parameter {i} after step {step + 1}")
    return tiny_opt, torch_opt


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
]
ADAM_CONFIGS = [
    dict(lr=1e-3),
    dict(lr=0.01, betas=(0.8, 0.99)),
    dict(lr=0.01, eps=1e-3),
    dict(lr=0.01, weight_decay=0.1),
]


@requires_torch
@pytest.mark.parametrize("kwargs", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch_step_by_step(kwargs):
    _run_both(SGD, torch.optim.SGD, kwargs)


@requires_torch
@pytest.mark.parametrize("kwargs", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch_step_by_step(kwargs):
    _run_both(Adam, torch.optim.Adam, kwargs)


@requires_torch
@pytest.mark.parametrize("kwargs", ADAM_CONFIGS + [dict(lr=0.01)], ids=str)
def test_adamw_matches_torch_step_by_step(kwargs):
    _run_both(AdamW, torch.optim.AdamW, kwargs)


@requires_torch
@pytest.mark.parametrize("cls, torch_name, kwargs", [(SGD, "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
                                                    (Adam, "Adam", dict(lr=0.01, weight_decay=0.01)),
                                                    (AdamW, "AdamW", dict(lr=0.01))])
def test_float32_steps_match_torch(cls, torch_name, kwargs):
    _run_both(cls, getattr(torch.optim, torch_name), kwargs, dtype=np.float32, steps=10, rtol=1e-5, atol=1e-6)


@requires_torch
@pytest.mark.parametrize("cls, torch_name", [(SGD, "SGD"), (Adam, "Adam"), (AdamW, "AdamW")])
def test_changing_lr_between_steps_matches_torch(cls, torch_name):
    kwargs = dict(lr=0.1, momentum=0.9) if cls is SGD else dict(lr=0.1)
    _run_both(cls, getattr(torch.optim, torch_name), kwargs, lrs=[0.1, 0.05, 0.2, 0.01, 0.01, 0.3])


@requires_torch
def test_parameter_groups_match_torch():
    start = _start(np.float64)
    tiny = [Tensor(a.copy(), requires_grad=True) for a in start]
    ref = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    tiny_opt = Adam([{"params": [tiny[0]]}, {"params": [tiny[1]], "lr": 0.1, "weight_decay": 0.0}], lr=0.01, weight_decay=0.5)
    torch_opt = torch.optim.Adam([{"params": [ref[0]]}, {"params": [ref[1]], "lr": 0.1, "weight_decay": 0.0}], lr=0.01, weight_decay=0.5)
    for grads in _gradients(4, np.float64):
        for p, q, g in zip(tiny, ref, grads):
            p.grad, q.grad = Tensor(g.copy()), torch.tensor(g.copy())
        tiny_opt.step()
        torch_opt.step()
    for p, q in zip(tiny, ref):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10)


@requires_torch
def test_parameters_without_gradients_are_skipped_like_torch():
    start = _start(np.float64)
    tiny = [Tensor(a.copy(), requires_grad=True) for a in start]
    ref = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    tiny_opt, torch_opt = Adam(tiny, lr=0.1), torch.optim.Adam(ref, lr=0.1)
    g = _gradients(1, np.float64)[0][0]
    tiny[0].grad, ref[0].grad = Tensor(g.copy()), torch.tensor(g.copy())
    tiny_opt.step()
    torch_opt.step()
    np.testing.assert_array_equal(tiny[1].data, start[1])
    assert tiny[1] not in tiny_opt.state and len(tiny_opt.state) == len(torch_opt.state) == 1
    np.testing.assert_allclose(tiny[0].data, ref[0].detach().numpy(), rtol=1e-10)


@requires_torch
@pytest.mark.parametrize("name, kwargs", [("StepLR", dict(step_size=3, gamma=0.5)),
                                          ("StepLR", dict(step_size=1)),
                                          ("CosineAnnealingLR", dict(T_max=7)),
                                          ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01))])
def test_schedulers_match_torch(name, kwargs):
    import tinytorch.optim.lr_scheduler as tiny_schedulers
    tiny_opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    torch_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    tiny_sched = getattr(tiny_schedulers, name)(tiny_opt, **kwargs)
    torch_sched = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    for epoch in range(25):                          # past T_max: the cosine rises again, in both
        np.testing.assert_allclose(tiny_sched.get_last_lr(), torch_sched.get_last_lr(), rtol=1e-9, atol=1e-15,
                                   err_msg=f"epoch {epoch}")
        assert tiny_opt.param_groups[0]["lr"] == tiny_sched.get_last_lr()[0]
        torch_opt.step()
        tiny_sched.step()
        torch_sched.step()


# ---- update rules, by hand ---------------------------------------------------------------------------

def _param(values, grad, dtype=np.float64):
    p = Tensor(np.array(values, dtype=dtype), requires_grad=True)
    p.grad = Tensor(np.array(grad, dtype=dtype))
    return p


def test_sgd_step_is_p_minus_lr_times_grad():
    p = _param([1.0, -2.0], [0.5, 1.0])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -2.1])


def test_sgd_momentum_buffer_starts_as_the_gradient_then_accumulates():
    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.0])
    p.grad = Tensor(np.array([2.0]))
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [0.9 * 1.0 + 2.0])
    np.testing.assert_allclose(p.data, [1.0 - 0.1 - 0.1 * 2.9])


def test_sgd_momentum_buffer_is_a_copy_of_the_gradient():
    p = _param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    p.grad.data[...] = 100.0
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.0])


def test_sgd_dampening_scales_all_but_the_first_gradient():
    p = _param([0.0], [1.0])
    opt = SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    opt.step()
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [0.5 * 1.0 + 0.5 * 1.0])


def test_sgd_nesterov_steps_along_gradient_plus_momentum_times_buffer():
    p = _param([1.0], [1.0])
    SGD([p], lr=0.1, momentum=0.9, nesterov=True).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 1.9])


def test_sgd_weight_decay_adds_lambda_p_to_the_gradient():
    p = _param([2.0], [0.5])
    SGD([p], lr=0.1, weight_decay=0.25).step()
    np.testing.assert_allclose(p.data, [2.0 - 0.1 * (0.5 + 0.25 * 2.0)])


def test_adam_first_step_moves_every_coordinate_by_lr_whatever_the_gradient_scale():
    # Bias correction: m1/(1-b1) = g and v1/(1-b2) = g^2, so the step is lr * g / (|g| + eps).
    p = _param([0.0, 0.0, 0.0, 0.0], [1e-3, -1.0, 50.0, -1e4])
    Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01, 0.01], rtol=1e-4)


def test_adam_without_bias_correction_would_step_differently():
    # Guards the correction itself: with b1=0.9, b2=0.999 an uncorrected first step would be ~0.1*lr/0.0316 = 3.16*lr.
    p = _param([0.0], [1.0])
    Adam([p], lr=0.01, eps=0.0).step()
    np.testing.assert_allclose(p.data, [-0.01], rtol=1e-12)


def test_adam_second_step_by_hand():
    p = _param([0.0], [2.0])
    opt = Adam([p], lr=0.1, betas=(0.5, 0.5), eps=0.0)
    opt.step()
    p.grad = Tensor(np.array([1.0]))
    opt.step()
    m_hat, v_hat = 1.0 / 0.75, 1.5 / 0.75
    np.testing.assert_allclose(p.data, [-0.1 - 0.1 * m_hat / math.sqrt(v_hat)], rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["exp_avg"], [1.0])
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], [1.5])
    assert opt.state[p]["step"] == 2


def test_adam_weight_decay_goes_into_the_gradient():
    p = _param([20.0], [0.0])
    Adam([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [19.9], rtol=1e-8)       # g = 10, normalised to a step of lr


def test_adamw_weight_decay_shrinks_the_weight_directly():
    p = _param([20.0], [0.0])
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [20.0 * (1 - 0.05)], rtol=1e-12)


def test_adamw_default_weight_decay_is_one_hundredth():
    assert AdamW([_param([1.0], [0.0])]).param_groups[0]["weight_decay"] == 0.01
    assert Adam([_param([1.0], [0.0])]).param_groups[0]["weight_decay"] == 0.0


def test_adam_on_a_bias_parameter_keeps_bias_shaped_state():
    layer = Linear(3, 2)
    opt = Adam(layer.parameters(), lr=0.01)
    for batch in (5, 1, 3):
        opt.zero_grad()
        layer(Tensor(np.ones((batch, 3), dtype=np.float32))).sum().backward()
        opt.step()
        assert layer.bias.shape == (2,) and layer.weight.shape == (2, 3)
        assert opt.state[layer.bias]["exp_avg"].shape == (2,)
        assert opt.state[layer.bias]["exp_avg_sq"].shape == (2,)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.1, weight_decay=0.1),
                                  lambda ps: AdamW(ps, lr=0.1)], ids=["SGD", "Adam", "AdamW"])
def test_steps_keep_float32_and_update_in_place(make):
    p = _param([1.0, 2.0], [0.5, -0.5], dtype=np.float32)
    array = p.data
    opt = make([p])
    opt.step()
    opt.step()
    assert p.data is array, "the update must happen in place on the parameter's array"
    assert p.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: Adam(ps, lr=0.1)], ids=["SGD", "Adam"])
def test_step_records_no_graph(make):
    p = _param([1.0], [1.0])
    make([p]).step()
    assert p._ctx is None and p.requires_grad


def test_float64_gradient_on_float32_parameter_keeps_float32():
    p = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    p.grad = Tensor(np.ones(2, dtype=np.float64))
    opt = Adam([p], lr=0.1)
    opt.step()
    assert p.dtype == np.float32 and opt.state[p]["exp_avg"].dtype == np.float32


def test_step_returns_the_closure_loss():
    p = Tensor(np.array([3.0]), requires_grad=True)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    opt = SGD([p], lr=0.1)
    with no_grad():                                   # the closure must still record its graph
        loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(p.data, [3.0 - 0.1 * 6.0])


# ---- bookkeeping -----------------------------------------------------------------------------------

def test_zero_grad_sets_none_by_default():
    p = _param([1.0], [1.0])
    SGD([p]).zero_grad()
    assert p.grad is None


def test_zero_grad_can_fill_with_zeros():
    p = _param([1.0], [1.0])
    SGD([p]).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, [0.0])


def test_optimizer_accepts_a_generator_of_parameters():
    model = Linear(2, 2)
    opt = SGD(model.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2


@pytest.mark.parametrize("params, error, message", [
    (Tensor(np.ones(1), requires_grad=True), TypeError, "not a single Tensor"),
    ([], ValueError, "empty parameter list"),
    ([np.ones(2)], TypeError, "must be Tensors"),
])
def test_optimizer_rejects_bad_params(params, error, message):
    with pytest.raises(error, match=message):
        SGD(params, lr=0.1)


def test_optimizer_rejects_a_parameter_given_twice():
    p = _param([1.0], [1.0])
    with pytest.raises(ValueError, match="appears twice"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


@pytest.mark.parametrize("cls, kwargs", [(SGD, dict(lr=-0.1)), (SGD, dict(momentum=-0.5)),
                                         (SGD, dict(weight_decay=-1.0)), (SGD, dict(nesterov=True)),
                                         (SGD, dict(momentum=0.9, dampening=0.1, nesterov=True)),
                                         (Adam, dict(lr=-1.0)), (Adam, dict(betas=(1.0, 0.999))),
                                         (Adam, dict(betas=(0.9, -0.1))), (AdamW, dict(eps=-1e-8))])
def test_invalid_hyperparameters_raise(cls, kwargs):
    with pytest.raises(ValueError):
        cls([_param([1.0], [1.0])], **kwargs)


def test_base_optimizer_step_is_abstract():
    with pytest.raises(NotImplementedError, match="must define step"):
        Optimizer([_param([1.0], [1.0])], {"lr": 0.1}).step()


def test_groups_take_defaults_for_missing_hyperparameters():
    a, b = _param([1.0], [1.0]), _param([1.0], [1.0])
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)


def _adam_run(p, opt, grads):
    for g in grads:
        p.grad = Tensor(g.copy())
        opt.step()


def test_state_dict_round_trip_resumes_exactly():
    grads = [g[0] for g in _gradients(8, np.float32)]
    p = Tensor(_start(np.float32)[0], requires_grad=True)
    opt = Adam([p], lr=0.05, weight_decay=0.01)
    _adam_run(p, opt, grads[:4])
    saved, saved_data = opt.state_dict(), p.data.copy()
    _adam_run(p, opt, grads[4:])
    q = Tensor(saved_data, requires_grad=True)
    resumed = Adam([q], lr=1.0)
    resumed.load_state_dict(saved)
    _adam_run(q, resumed, grads[4:])
    np.testing.assert_array_equal(q.data, p.data)


def test_state_dict_holds_copies_keyed_by_position():
    a, b = _param([1.0], [1.0]), _param([1.0, 2.0], [1.0, 1.0])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    opt.step()
    state = opt.state_dict()
    assert set(state["state"]) == {0, 1} and state["param_groups"][0]["params"] == [0, 1]
    opt.step()
    np.testing.assert_allclose(state["state"][1]["momentum_buffer"], [1.0, 1.0])


def test_load_state_dict_rejects_different_shapes():
    opt = SGD([_param([1.0, 2.0], [1.0, 1.0])], lr=0.1, momentum=0.9)
    opt.step()
    other = SGD([_param([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="has shape"):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_different_groups():
    opt = SGD([_param([1.0], [1.0]), _param([1.0], [1.0])], lr=0.1)
    other = SGD([_param([1.0], [1.0])], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups have sizes"):
        other.load_state_dict(opt.state_dict())


# ---- schedulers ------------------------------------------------------------------------------------

def _lrs(scheduler_factory, epochs, base_lr=0.1):
    opt = SGD([_param([0.0], [0.0])], lr=base_lr)
    scheduler = scheduler_factory(opt)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        scheduler.step()
    return rates


def test_step_lr_follows_its_closed_form():
    rates = _lrs(lambda o: StepLR(o, step_size=4, gamma=0.3), 13)
    np.testing.assert_allclose(rates, [0.1 * 0.3 ** (e // 4) for e in range(13)], rtol=1e-12)


def test_step_lr_default_gamma_is_one_tenth():
    rates = _lrs(lambda o: StepLR(o, step_size=2), 5)
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-12)


def test_cosine_follows_its_closed_form_and_reaches_eta_min_at_t_max():
    rates = _lrs(lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.02), 15)
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(15)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert rates[0] == 0.1 and abs(rates[10] - 0.02) < 1e-15


def test_schedulers_set_each_group_from_its_own_base_lr():
    opt = SGD([{"params": [_param([0.0], [0.0])]}, {"params": [_param([0.0], [0.0])], "lr": 1.0}], lr=0.1)
    scheduler = StepLR(opt, step_size=1, gamma=0.5)
    scheduler.step()
    assert scheduler.base_lrs == [0.1, 1.0]
    np.testing.assert_allclose(scheduler.get_last_lr(), [0.05, 0.5])


def test_scheduler_state_dict_round_trip():
    opt = SGD([_param([0.0], [0.0])], lr=0.1)
    scheduler = CosineAnnealingLR(opt, T_max=10)
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert "optimizer" not in state
    fresh = CosineAnnealingLR(SGD([_param([0.0], [0.0])], lr=0.1), T_max=10)
    fresh.load_state_dict(state)
    fresh.step()
    scheduler.step()
    assert fresh.get_last_lr() == scheduler.get_last_lr()


def test_resuming_a_scheduler_needs_initial_lr():
    opt = SGD([_param([0.0], [0.0])], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt, step_size=2, last_epoch=5)


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=0), lambda o: CosineAnnealingLR(o, T_max=0)])
def test_schedulers_reject_non_positive_lengths(make):
    with pytest.raises(ValueError, match="positive"):
        make(SGD([_param([0.0], [0.0])], lr=0.1))


def test_base_scheduler_get_lr_is_abstract():
    with pytest.raises(NotImplementedError, match="must define get_lr"):
        LRScheduler(SGD([_param([0.0], [0.0])], lr=0.1))


# ---- learning --------------------------------------------------------------------------------------

def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = rng.integers(0, 3, n)
    return (centers[labels] + 0.6 * rng.standard_normal((n, 2))).astype(np.float32), labels


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: Adam(ps, lr=0.01),
                                  lambda ps: AdamW(ps, lr=0.01)], ids=["SGD momentum", "Adam", "AdamW"])
def test_mlp_training_reaches_a_loss_bound(make):
    manual_seed(0)
    x, y = _blobs()
    model = Sequential(Linear(2, 32), ReLU(), Linear(32, 3))
    opt = make(model.parameters())
    scheduler = CosineAnnealingLR(opt, T_max=150)
    first = None
    for _ in range(150):
        loss = -log_softmax(model(Tensor(x)), dim=1)[np.arange(len(y)), y].mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
    assert loss.item() < 0.15 < first, f"cross-entropy went from {first:.3f} to {loss.item():.3f}"
    with no_grad():
        assert (model(Tensor(x)).argmax(dim=1).data == y).mean() > 0.95
