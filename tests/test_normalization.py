"""LayerNorm, BatchNorm1d and BatchNorm2d (chapter 08) against their specification and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck
from tinytorch.nn import BatchNorm1d, BatchNorm2d, LayerNorm

from torch_reference import compare_with_torch, requires_torch, torch


def _array(*shape, seed=0, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _float64(module):
    """Cast a module's parameters and buffers to float64 (for gradcheck and exact comparisons)."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    for _, b in module.named_buffers():
        if np.issubdtype(b.dtype, np.floating):
            b.data = b.data.astype(np.float64)
    return module


def _random_affine(module, seed=1):
    rng = np.random.default_rng(seed)
    module.weight.data[...] = rng.uniform(0.5, 1.5, module.weight.shape)
    module.bias.data[...] = rng.uniform(-0.5, 0.5, module.bias.shape)
    return module


# ---- LayerNorm -------------------------------------------------------------------------------------------

def test_layer_norm_gives_each_sample_zero_mean_and_unit_variance():
    x = Tensor(_array(4, 5, 16, scale=30.0, shift=-7.0))
    y = LayerNorm(16)(x).data
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-5)


def test_layer_norm_without_eps_is_invariant_to_the_scale_and_shift_of_each_sample():
    ln = _float64(LayerNorm(8, eps=0.0))       # eps breaks the symmetry slightly, by design
    x = _array(3, 8)
    np.testing.assert_allclose(ln(Tensor(x * 50.0 + 3.0)).data, ln(Tensor(x)).data, atol=1e-6)


def test_layer_norm_with_a_tuple_shape_normalizes_over_all_of_it():
    y = LayerNorm((3, 4))(Tensor(_array(2, 3, 4, shift=5.0))).data.reshape(2, -1)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)


def test_layer_norm_parameters_follow_the_flags():
    assert [(n, p.shape) for n, p in LayerNorm(6).named_parameters()] == [("weight", (6,)), ("bias", (6,))]
    assert list(LayerNorm(6, elementwise_affine=False).named_parameters()) == []
    assert [n for n, _ in LayerNorm(6, bias=False).named_parameters()] == ["weight"]
    ln = LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and (ln.weight.data == 1).all() and (ln.bias.data == 0).all()


def test_layer_norm_rejects_a_wrong_trailing_shape_with_both_shapes_in_the_message():
    with pytest.raises(ValueError, match=r"\(5,\).*\(2, 4\)"):
        LayerNorm(5)(Tensor(np.zeros((2, 4))))
    with pytest.raises(ValueError):
        LayerNorm((2, 4))(Tensor(np.zeros(4)))


def test_layer_norm_keeps_float32():
    assert LayerNorm(4)(Tensor(np.ones((2, 4), dtype=np.float32))).dtype == np.float32


def test_layer_norm_passes_gradcheck_for_input_and_parameters():
    ln = _random_affine(_float64(LayerNorm(5)))
    x = Tensor(_array(3, 5), requires_grad=True)
    assert gradcheck(lambda t, w, b: ln(t), [x, ln.weight, ln.bias])


@requires_torch
@pytest.mark.parametrize("shape, normalized", [((2, 3, 8), 8), ((2, 3, 4), (3, 4)), ((5, 6), 6)])
def test_layer_norm_matches_torch_including_weight_and_bias_gradients(shape, normalized):
    def tiny(x, w, b):
        ln = LayerNorm(normalized)
        # Bypass the Parameter registry so the compared input tensors themselves get the gradients.
        vars(ln).update(weight=w, bias=b)
        return ln(x)

    ns = (normalized,) if isinstance(normalized, int) else normalized
    compare_with_torch(tiny, lambda x, w, b: torch.nn.functional.layer_norm(x, ns, w, b, eps=1e-5),
                       _array(*shape, scale=3.0), _array(*ns, seed=1, shift=1.0), _array(*ns, seed=2))


@requires_torch
def test_layer_norm_without_affine_matches_torch():
    ref = torch.nn.LayerNorm(7, elementwise_affine=False).double()
    compare_with_torch(lambda x: LayerNorm(7, elementwise_affine=False)(x), lambda x: ref(x), _array(4, 7))


# ---- BatchNorm: training mode ----------------------------------------------------------------------------

@pytest.mark.parametrize("layer, shape, axes", [(BatchNorm1d, (16, 3), (0,)), (BatchNorm1d, (4, 3, 10), (0, 2)),
                                                (BatchNorm2d, (4, 3, 5, 5), (0, 2, 3))])
def test_batch_norm_train_mode_normalizes_each_channel(layer, shape, axes):
    x = Tensor(_array(*shape, scale=4.0, shift=2.0))
    y = layer(3)(x).data
    np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-6)
    np.testing.assert_allclose(y.var(axes), 1.0, atol=1e-4)


def test_batch_norm_has_torch_parameter_and_buffer_names():
    bn = BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert bn.running_mean.dtype == np.float32 and bn.num_batches_tracked.dtype == np.int64
    assert list(BatchNorm1d(4, affine=False).parameters()) == []
    assert list(BatchNorm1d(4, track_running_stats=False).named_buffers()) == []


def test_batch_norm_running_stats_use_momentum_and_unbiased_variance():
    bn = _float64(BatchNorm1d(3, momentum=0.2))
    mean, var = np.zeros(3), np.ones(3)
    for seed in range(4):
        batch = _array(6, 3, 5, seed=seed, scale=2.0, shift=1.0)
        bn(Tensor(batch))
        mean = 0.8 * mean + 0.2 * batch.mean((0, 2))
        var = 0.8 * var + 0.2 * batch.var((0, 2), ddof=1)
    np.testing.assert_allclose(bn.running_mean.data, mean, atol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, var, atol=1e-12)
    assert int(bn.num_batches_tracked.data) == 4


def test_batch_norm_momentum_none_is_a_cumulative_average():
    bn = _float64(BatchNorm1d(2, momentum=None))
    batches = [_array(5, 2, seed=s, shift=s) for s in range(3)]
    for b in batches:
        bn(Tensor(b))
    np.testing.assert_allclose(bn.running_mean.data, np.mean([b.mean(0) for b in batches], axis=0), atol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean([b.var(0, ddof=1) for b in batches], axis=0), atol=1e-12)


def test_batch_norm_refuses_one_value_per_channel_in_training_but_not_in_eval():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(Tensor(np.ones((1, 3))))
    bn(Tensor(np.ones((1, 3, 2))))              # 2 values per channel: fine
    bn.eval()
    assert bn(Tensor(np.ones((1, 3)))).shape == (1, 3)


@pytest.mark.parametrize("layer, shape", [(BatchNorm1d, (0, 3)), (BatchNorm2d, (0, 3, 4, 4))])
def test_batch_norm_in_training_returns_an_empty_batch_empty_as_torch_does(layer, shape):
    bn = layer(3)
    out = bn(Tensor(np.zeros(shape, dtype=np.float32)))
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_array_equal(bn.running_mean.data, 0.0)


@pytest.mark.parametrize("layer, shape, words", [(BatchNorm1d, (2, 3, 4, 4), r"\(N, C\) or \(N, C, L\)"),
                                                 (BatchNorm2d, (2, 3), r"\(N, C, H, W\)"),
                                                 (BatchNorm1d, (4, 5), "C=3")])
def test_batch_norm_rejects_wrong_shapes_naming_what_it_expects(layer, shape, words):
    with pytest.raises(ValueError, match=words):
        layer(3)(Tensor(np.ones(shape)))


# ---- BatchNorm: eval mode ----------------------------------------------------------------------------------

def test_batch_norm_eval_mode_uses_running_stats_and_updates_nothing():
    bn = _float64(BatchNorm1d(2))
    bn.running_mean.data[...] = [1.0, -2.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.eval()
    x = _array(5, 2)
    expected = (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, atol=1e-12)
    np.testing.assert_allclose(bn(Tensor(x[:1])).data, expected[:1], atol=1e-12)
    assert int(bn.num_batches_tracked.data) == 0
    np.testing.assert_array_equal(bn.running_mean.data, [1.0, -2.0])


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval():
    bn = BatchNorm1d(2, track_running_stats=False).eval()
    y = bn(Tensor(_array(8, 2, scale=5.0, shift=3.0))).data
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-6)


def test_batch_norm_state_dict_round_trip_reproduces_eval_outputs():
    bn = BatchNorm2d(3)
    for seed in range(3):
        bn(Tensor(_array(4, 3, 2, 2, seed=seed, shift=seed).astype(np.float32)))
    bn.eval()
    restored = BatchNorm2d(3)
    restored.load_state_dict(bn.state_dict())
    restored.eval()
    x = Tensor(_array(2, 3, 2, 2, seed=9).astype(np.float32))
    np.testing.assert_array_equal(restored(x).data, bn(x).data)
    assert int(restored.num_batches_tracked.data) == 3


@pytest.mark.parametrize("layer, shape", [(BatchNorm1d, (6, 3)), (BatchNorm1d, (3, 3, 4)), (BatchNorm2d, (2, 3, 3, 2))])
def test_batch_norm_train_mode_passes_gradcheck(layer, shape):
    bn = _random_affine(_float64(layer(3)))
    x = Tensor(_array(*shape, scale=2.0), requires_grad=True)
    assert gradcheck(lambda t, w, b: bn(t), [x, bn.weight, bn.bias])


def test_batch_norm_eval_mode_passes_gradcheck():
    bn = _random_affine(_float64(BatchNorm2d(2)))
    bn.running_mean.data[...] = [0.5, -1.0]
    bn.running_var.data[...] = [2.0, 0.5]
    bn.eval()
    x = Tensor(_array(2, 2, 2, 2), requires_grad=True)
    assert gradcheck(lambda t, w, b: bn(t), [x, bn.weight, bn.bias])


# ---- BatchNorm against PyTorch -------------------------------------------------------------------------

_TORCH_CASES = [(BatchNorm1d, "BatchNorm1d", (8, 3)), (BatchNorm1d, "BatchNorm1d", (4, 3, 5)),
                (BatchNorm2d, "BatchNorm2d", (4, 3, 3, 3))]


@requires_torch
@pytest.mark.parametrize("layer, torch_name, shape", _TORCH_CASES)
def test_batch_norm_train_mode_matches_torch_including_weight_and_bias_gradients(layer, torch_name, shape):
    def tiny(x, w, b):
        bn = layer(3)
        vars(bn).update(weight=w, bias=b)     # as above: the inputs themselves get gradients
        return bn(x)

    compare_with_torch(tiny, lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True),
                       _array(*shape, scale=3.0, shift=1.0), _array(3, seed=1, shift=1.0), _array(3, seed=2))


@requires_torch
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("layer, torch_name, shape", _TORCH_CASES)
def test_batch_norm_running_stats_and_eval_outputs_match_torch(layer, torch_name, shape, momentum):
    tiny = _random_affine(_float64(layer(3, momentum=momentum)))
    ref = getattr(torch.nn, torch_name)(3, momentum=momentum).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in tiny.state_dict().items()})
    for seed in range(3):                       # a few training steps
        batch = _array(*shape, seed=10 + seed, scale=2.0, shift=seed)
        np.testing.assert_allclose(tiny(Tensor(batch)).data, ref(torch.tensor(batch)).detach().numpy(), atol=1e-10)
    for name, value in ref.state_dict().items():
        np.testing.assert_allclose(tiny.state_dict()[name], value.numpy(), atol=1e-12, err_msg=name)
    tiny.eval()
    ref.eval()
    compare_with_torch(lambda x: tiny(x), lambda x: ref(x), _array(*shape, seed=20))


@requires_torch
def test_batch_norm_loads_a_torch_state_dict():
    ref = torch.nn.BatchNorm1d(4)
    ref(torch.randn(10, 4) * 3 + 1)
    tiny = BatchNorm1d(4)
    tiny.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    ref.eval()
    tiny.eval()
    x = _array(3, 4).astype(np.float32)
    np.testing.assert_allclose(tiny(Tensor(x)).data, ref(torch.tensor(x)).detach().numpy(), atol=1e-6)
