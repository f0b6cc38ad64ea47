"""Dropout, the L2 penalty and regularisation with the Trainer (chapter 13_regularization).

Each test states one behaviour. Statistical checks use a tolerance of five
standard deviations of the sampling noise, so they fail on a real bias but
practically never by chance (and every draw is seeded anyway).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch.nn as nn
import tinytorch.nn.functional as F
from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.nn import init
from tinytorch.nn import Linear, ReLU, Sequential
from tinytorch.nn.regularization import Dropout, dropout, l2_penalty
from tinytorch.training import Trainer

from torch_reference import compare_with_torch, requires_torch, torch
from training_support import SGD, ShuffledBatches, blobs, cross_entropy


def ones(*shape, dtype=np.float32):
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=True)


def test_public_names():
    assert nn.Dropout is Dropout and F.dropout is dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_training_mode_zeroes_a_fraction_p(p):
    manual_seed(0)
    y = dropout(ones(500, 200), p)
    zeros = np.mean(y.data == 0)
    assert abs(zeros - p) < 5 * np.sqrt(p * (1 - p) / y.data.size)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_survivors_are_scaled_by_one_over_keep_probability(p):
    manual_seed(1)
    x = Tensor(np.random.default_rng(0).standard_normal((100, 100)).astype(np.float32))
    y = dropout(x, p)
    kept = y.data != 0
    np.testing.assert_array_equal(y.data[kept], x.data[kept] * np.float32(1 / (1 - p)))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_scaling_keeps_the_expectation(p):
    manual_seed(2)
    y = dropout(Tensor(np.full((1000, 200), 3.0, dtype=np.float32)), p)
    sigma = 3.0 * np.sqrt(p / (1 - p) / y.data.size)            # std of the mean of y
    assert abs(y.data.mean() - 3.0) < 5 * sigma


def test_each_call_draws_a_new_mask_from_tinytorchs_generator():
    manual_seed(3)
    a = dropout(ones(50, 50), 0.5).data
    b = dropout(ones(50, 50), 0.5).data
    manual_seed(3)
    assert np.array_equal(dropout(ones(50, 50), 0.5).data, a)
    assert not np.array_equal(a, b)


def test_dropout_advances_the_generator_that_checkpoints_save():
    manual_seed(4)
    before = init.generator().bit_generator.state
    dropout(ones(10), 0.5)
    assert init.generator().bit_generator.state != before


def test_eval_mode_and_p_zero_return_the_input_itself():
    x = ones(4, 3)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


def test_p_one_drops_everything_and_gives_a_zero_gradient():
    x = ones(4, 3)
    y = dropout(x, 1.0)
    assert not np.any(y.data)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros((4, 3)))


@pytest.mark.parametrize("p", [-0.1, 1.0001, 2, float("nan"), True, "0.5"])
def test_probabilities_outside_zero_one_are_refused(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(ones(3), p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(p)


def test_integer_tensors_are_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        dropout(Tensor(np.arange(4)), 0.5)


def test_dtype_and_shape_are_kept():
    manual_seed(5)
    for dtype in (np.float32, np.float64):
        y = dropout(Tensor(np.ones((2, 3, 4), dtype=dtype)), 0.3)
        assert y.dtype == dtype and y.shape == (2, 3, 4)


def test_gradient_is_the_mask():
    manual_seed(6)
    x = ones(20, 30)
    y = dropout(x, 0.4)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)         # x is all ones, so y is the mask itself


def test_gradcheck_through_dropout_with_a_fixed_mask():
    x = Tensor(np.random.default_rng(7).standard_normal((3, 4)), requires_grad=True)   # float64

    def f(t):
        manual_seed(11)                                         # the same mask on every call
        return dropout(t, 0.5) * t                              # a nonlinear function through the mask

    assert gradcheck(f, [x])


def test_layer_follows_train_and_eval():
    manual_seed(8)
    layer = Dropout(0.5)
    x = Tensor(np.ones((10, 10), np.float32))
    assert np.any(layer(x).data == 0)
    layer.eval()
    assert layer(x) is x
    layer.train()
    assert np.any(layer(x).data == 0)


def test_layer_inside_a_model_is_switched_by_model_eval():
    manual_seed(9)
    model = Sequential(Linear(4, 8), ReLU(), Dropout(0.5), Linear(8, 2))
    x = Tensor(np.ones((3, 4), np.float32))
    model.eval()
    np.testing.assert_array_equal(model(x).data, model[3](model[1](model[0](x))).data)


def test_layer_has_no_state_and_prints_its_p():
    layer = Dropout(0.25)
    assert list(layer.parameters()) == [] and layer.state_dict() == {}
    assert repr(layer) == "Dropout(p=0.25)"
    assert "(2): Dropout(p=0.25)" in repr(Sequential(Linear(2, 2), ReLU(), layer))


@requires_torch
def test_eval_mode_matches_torch():
    compare_with_torch(lambda x: dropout(x, 0.5, training=False),
                       lambda x: torch.nn.functional.dropout(x, 0.5, training=False),
                       np.random.default_rng(0).standard_normal((3, 5)))


@requires_torch
def test_p_one_matches_torch():
    compare_with_torch(lambda x: dropout(x, 1.0), lambda x: torch.nn.functional.dropout(x, 1.0),
                       np.random.default_rng(0).standard_normal((3, 5)))


@requires_torch
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_training_mode_matches_torch_given_the_same_mask(p):
    """PyTorch draws its mask from its own generator: feed ours the mask torch drew, then compare both ways."""
    x = np.random.default_rng(1).standard_normal((6, 7))
    weights = np.random.default_rng(2).standard_normal((6, 7))
    xt = torch.tensor(x, requires_grad=True)
    torch.manual_seed(0)
    yt = torch.nn.functional.dropout(xt, p)
    (yt * torch.tensor(weights)).sum().backward()
    kept = yt.detach().numpy() != 0

    class TorchsMask:
        def random(self, shape, dtype):
            return kept.astype(dtype)                           # 1 >= p where torch kept, 0 < p where it dropped

    original = init._generator
    init._generator = TorchsMask()
    try:
        xs = Tensor(x.copy(), requires_grad=True)
        ys = dropout(xs, p)
    finally:
        init._generator = original
    (ys * Tensor(weights)).sum().backward()
    np.testing.assert_allclose(ys.data, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-12)


# ---- L2 penalty ---------------------------------------------------------------------------------
def test_l2_penalty_value_and_gradient():
    w = Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    b = Tensor(np.array([4.0, -1.0]), requires_grad=True)
    penalty = l2_penalty([w, b], 0.2)
    assert penalty.item() == pytest.approx(0.1 * (1 + 4 + 9 + 0.25 + 16 + 1))
    penalty.backward()
    np.testing.assert_allclose(w.grad.data, 0.2 * w.data)
    np.testing.assert_allclose(b.grad.data, 0.2 * b.data)


def test_gradcheck_l2_penalty():
    w = Tensor(np.random.default_rng(0).standard_normal((3, 2)), requires_grad=True)
    b = Tensor(np.random.default_rng(1).standard_normal(2), requires_grad=True)
    assert gradcheck(lambda w, b: l2_penalty([w, b], 0.3), [w, b])


@requires_torch
def test_l2_penalty_matches_torch():
    compare_with_torch(lambda w, b: l2_penalty([w, b], 0.3),
                       lambda w, b: 0.15 * ((w * w).sum() + (b * b).sum()),
                       np.random.default_rng(0).standard_normal((3, 2)), np.random.default_rng(1).standard_normal(2))


def test_l2_penalty_in_the_loss_equals_sgd_weight_decay():
    X, y = blobs(16, seed=0)
    states = []
    for in_loss, in_optimizer in ((0.05, 0.0), (0.0, 0.05)):
        manual_seed(0)
        model = Sequential(Linear(4, 8), ReLU(), Linear(8, 3))
        opt = SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=in_optimizer)
        for _ in range(3):
            loss = cross_entropy(model(Tensor(X)), y)
            if in_loss:
                loss = loss + l2_penalty(model.parameters(), in_loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
        states.append(model.state_dict())
    for key in states[0]:
        np.testing.assert_allclose(states[0][key], states[1][key], rtol=1e-5, atol=1e-6)


def test_l2_penalty_refuses_no_parameters_and_negative_decay():
    with pytest.raises(ValueError, match="no parameters"):
        l2_penalty([], 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        l2_penalty([ones(2)], -1.0)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_package_adam_decay_behaves_as_the_chapter_measures(name):
    optim = pytest.importorskip("tinytorch.optim", reason="chapter 10's optimizers are not in this tree")
    final = {}
    for wd in (1e-3, 1e-1):
        w = Tensor(np.ones(4, dtype=np.float32), requires_grad=True)
        opt = getattr(optim, name)([w], lr=0.01, weight_decay=wd)
        for _ in range(300):
            loss = (w * 0.0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[wd] = float(np.abs(w.data).mean())
    if name == "AdamW":
        assert final[1e-1] == pytest.approx((1 - 0.01 * 0.1) ** 300, rel=1e-3)
    else:
        assert final[1e-3] == pytest.approx(final[1e-1], abs=1e-3)   # λ cancels in Adam's L2 form


# ---- with the Trainer ---------------------------------------------------------------------------
def test_a_model_with_dropout_resumes_exactly(tmp_path):
    """Dropout masks come from tinytorch's generator, which the Trainer's checkpoints save."""
    def run(**options):
        manual_seed(0)
        model = Sequential(Linear(4, 16), ReLU(), Dropout(0.3), Linear(16, 3))
        X, y = blobs(64, seed=1)
        trainer = Trainer(model, SGD(model.parameters(), lr=0.1, momentum=0.9), cross_entropy,
                          seed=2, progress=False, **options)
        return trainer, ShuffledBatches(X, y, 16, seed=3)

    full, loader = run()
    full.fit(loader, epochs=4)
    first, loader = run(checkpoint_dir=tmp_path)
    first.fit(loader, epochs=2)
    resumed, loader = run()
    resumed.fit(loader, epochs=4, resume_from=tmp_path / "last.npz")
    for key, value in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value)


def test_evaluation_turns_dropout_off():
    from tinytorch.training import evaluate_model

    manual_seed(0)
    model = Sequential(Linear(4, 8), ReLU(), Dropout(0.9), Linear(8, 3))
    X, y = blobs(32, seed=0)
    first = evaluate_model(model, [(X, y)], cross_entropy)["loss"]
    second = evaluate_model(model, [(X, y)], cross_entropy)["loss"]
    assert first == second and model.training
