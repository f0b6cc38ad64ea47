"""Kernels (chapter 14): matmuls, blocked transpose, direct convolution, fused softmax cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch.nn as nn
import tinytorch.nn.functional as F
from tinytorch import Tensor, gradcheck
from tinytorch import kernels
from tinytorch.kernels import (
    SoftmaxCrossEntropy,
    conv2d_direct,
    cross_entropy_kernel,
    matmul_blocked,
    matmul_naive,
    softmax_cross_entropy,
    transpose_blocked,
)
from tinytorch.nn.loss import get_cross_entropy_kernel

from strategies import SETTINGS
from torch_reference import compare_with_torch, requires_torch, torch


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def count_nodes(t: Tensor) -> int:
    seen, stack = set(), [t]
    while stack:
        node = stack.pop()._ctx
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.inputs)
    return len(seen)


# ---- matrix multiplication ---------------------------------------------------------------------------
def test_matmul_naive_equals_numpy_on_rectangular_matrices():
    a, b = rand(4, 6), rand(6, 3, seed=1)
    np.testing.assert_allclose(matmul_naive(a, b), a @ b, rtol=1e-12)


def test_matmul_naive_keeps_the_operands_dtype():
    a = rand(3, 3).astype(np.float32)
    assert matmul_naive(a, a).dtype == np.float32


@pytest.mark.parametrize("kernel", [matmul_naive, matmul_blocked])
def test_matmul_kernels_refuse_mismatched_shapes(kernel):
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 3\)"):
        kernel(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="matrices"):
        kernel(np.zeros(3), np.zeros(3))


@SETTINGS
@given(n=st.integers(1, 23), k=st.integers(1, 23), m=st.integers(1, 23),
       tile=st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9))))
def test_matmul_blocked_equals_numpy_for_any_sizes_and_tiles(n, k, m, tile):
    a, b = rand(n, k), rand(k, m, seed=1)
    np.testing.assert_allclose(matmul_blocked(a, b, tile), a @ b, rtol=1e-10, atol=1e-12)


def test_matmul_blocked_panels_and_oversized_tiles_equal_numpy():
    a, b = rand(20, 30), rand(30, 10, seed=1)
    np.testing.assert_allclose(matmul_blocked(a, b, tile=(20, 10, 4)), a @ b, rtol=1e-12)
    np.testing.assert_allclose(matmul_blocked(a, b, tile=1000), a @ b, rtol=1e-12)


def test_matmul_blocked_keeps_float32():
    a = rand(9, 9).astype(np.float32)
    assert matmul_blocked(a, a, 4).dtype == np.float32


@pytest.mark.parametrize("tile", [0, -1, (2, 2), (2, 0, 2), 2.5])
def test_matmul_blocked_refuses_bad_tiles(tile):
    with pytest.raises(ValueError, match="tile must be"):
        matmul_blocked(np.zeros((2, 2)), np.zeros((2, 2)), tile)


# ---- transpose -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tile", [1, 3, 16, 64, 200])
def test_transpose_blocked_is_a_contiguous_copy_of_the_transpose(tile):
    a = rand(37, 50).astype(np.float32)
    out = transpose_blocked(a, tile)
    np.testing.assert_array_equal(out, a.T)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.float32 and not np.shares_memory(out, a)


def test_transpose_blocked_reads_strided_views():
    a = rand(30, 40)[::3, 1::2]
    np.testing.assert_array_equal(transpose_blocked(a, 4), a.T)


@pytest.mark.parametrize("args, message", [((np.zeros((2, 2, 2)),), "2-D"), ((np.zeros((2, 2)), 0), "positive int")])
def test_transpose_blocked_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        transpose_blocked(*args)


# ---- direct convolution ------------------------------------------------------------------------------------
CONV_CASES = [  # input shape, (O, kh, kw), stride, padding, bias
    ((2, 3, 7, 7), (4, 3, 3), 1, 0, True),
    ((2, 3, 7, 7), (4, 3, 3), 1, 1, True),
    ((1, 2, 9, 8), (3, 3, 2), 2, 1, True),
    ((3, 1, 6, 6), (2, 1, 1), (2, 1), (0, 2), False),
]


@pytest.mark.parametrize("shape, kernel, stride, padding, bias", CONV_CASES)
def test_conv2d_direct_equals_im2col_conv2d(shape, kernel, stride, padding, bias):
    O, kh, kw = kernel
    x, w = Tensor(rand(*shape)), Tensor(rand(O, shape[1], kh, kw, seed=1))
    b = Tensor(rand(O, seed=2)) if bias else None
    expected = F.conv2d(x, w, b, stride, padding)
    out = conv2d_direct(x, w, b, stride, padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-12, atol=1e-12)


def test_conv2d_direct_takes_a_single_image():
    x, w = Tensor(rand(3, 6, 6)), Tensor(rand(2, 3, 3, 3, seed=1))
    np.testing.assert_allclose(conv2d_direct(x, w, padding=1).data, F.conv2d(x, w, padding=1).data, atol=1e-12)


def test_conv2d_direct_keeps_float32():
    x, w = Tensor(rand(1, 2, 5, 5).astype(np.float32)), Tensor(rand(3, 2, 3, 3).astype(np.float32))
    assert conv2d_direct(x, w).dtype == np.float32


def test_conv2d_direct_refuses_a_channel_mismatch_like_conv2d():
    with pytest.raises(ValueError, match="has 4 channels"):
        conv2d_direct(Tensor(np.zeros((1, 4, 5, 5))), Tensor(np.zeros((2, 3, 3, 3))))


@pytest.mark.parametrize("shape, kernel, stride, padding, bias", CONV_CASES[1:3])
def test_gradcheck_conv2d_direct(shape, kernel, stride, padding, bias):
    O, kh, kw = kernel
    x = Tensor(rand(*shape), requires_grad=True)
    w = Tensor(rand(O, shape[1], kh, kw, seed=1), requires_grad=True)
    b = Tensor(rand(O, seed=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: conv2d_direct(x, w, b, stride, padding), [x, w, b])


@requires_torch
@pytest.mark.parametrize("shape, kernel, stride, padding, bias", CONV_CASES)
def test_conv2d_direct_matches_torch(shape, kernel, stride, padding, bias):
    O, kh, kw = kernel
    arrays = [rand(*shape), rand(O, shape[1], kh, kw, seed=1)] + ([rand(O, seed=2)] if bias else [])
    compare_with_torch(lambda *t: conv2d_direct(*t[:2], t[2] if bias else None, stride, padding),
                       lambda *t: torch.nn.functional.conv2d(*t[:2], t[2] if bias else None, stride, padding),
                       *arrays)


# ---- fused softmax cross-entropy ----------------------------------------------------------------------------
def test_importing_tinytorch_installs_the_fused_kernel_behind_cross_entropy():
    assert get_cross_entropy_kernel() is kernels.softmax_cross_entropy_rows
    loss = nn.CrossEntropyLoss()(Tensor(rand(4, 3), requires_grad=True), [0, 1, 2, 0])
    assert count_nodes(loss) <= 3, "the mean loss should be the fused primitive plus sum and scale"


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_and_composite_cross_entropy_agree_on_values_and_gradients(reduction):
    z, t = rand(7, 5) * 30, np.array([0, 4, 4, 1, 2, 3, 0])
    results = []
    for kernel in (None, kernels.softmax_cross_entropy_rows):
        zt = Tensor(z, requires_grad=True)
        with cross_entropy_kernel(kernel):
            loss = F.cross_entropy(zt, t, reduction=reduction)
        (loss * Tensor(np.linspace(1, 2, loss.numel()).reshape(loss.shape))).sum().backward()
        results.append((loss.data, zt.grad.data))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-10, atol=1e-14)


def test_fused_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    z, t = rand(5, 4), np.array([3, 0, 0, 2, 1])
    zt = Tensor(z, requires_grad=True)
    F.cross_entropy(zt, t).backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p[np.arange(5), t] -= 1
    np.testing.assert_allclose(zt.grad.data, p / 5, rtol=1e-12)


def test_fused_cross_entropy_is_finite_and_exact_for_huge_logits():
    z = Tensor(np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32), requires_grad=True)
    loss = softmax_cross_entropy(z, [2, 1])
    np.testing.assert_allclose(loss.data, [2e4, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(z.grad.data).all()


def test_fused_cross_entropy_keeps_float32():
    z = Tensor(rand(3, 4).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(z, [0, 1, 2])
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


def test_fused_backward_leaves_the_saved_softmax_intact_for_a_second_backward():
    zt = Tensor(rand(4, 3), requires_grad=True)
    loss = softmax_cross_entropy(zt, [0, 1, 2, 0]).sum()
    loss.backward(retain_graph=True)
    first = zt.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(zt.grad.data, 2 * first, rtol=1e-12)


def test_gradcheck_softmax_cross_entropy():
    t = np.array([1, 0, 2, 2])
    assert gradcheck(lambda z: softmax_cross_entropy(z, t), [Tensor(rand(4, 3) * 3, requires_grad=True)])


def test_gradcheck_softmax_cross_entropy_with_every_row_on_one_class():
    assert gradcheck(lambda z: SoftmaxCrossEntropy.apply(z, target=np.zeros(3, dtype=np.int64)),
                     [Tensor(rand(3, 4), requires_grad=True)])


@pytest.mark.parametrize("logits, target, error, message", [
    (np.zeros((2, 3)), [0, 3], IndexError, "class 3"),
    (np.zeros((2, 3)), [0.0, 1.0], TypeError, "integer class indices"),
    (np.zeros(3), 0, ValueError, r"shape \(N, C\)"),
])
def test_softmax_cross_entropy_checks_its_arguments(logits, target, error, message):
    with pytest.raises(error, match=message):
        softmax_cross_entropy(Tensor(logits), target)


def test_cross_entropy_kernel_restores_the_previous_kernel_even_after_an_error():
    before = get_cross_entropy_kernel()
    with pytest.raises(RuntimeError):
        with cross_entropy_kernel(None):
            assert get_cross_entropy_kernel() is None
            raise RuntimeError("inside")
    assert get_cross_entropy_kernel() is before


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_cross_entropy_matches_torch(reduction):
    t = np.array([2, 0, 1, 1, 3])
    compare_with_torch(lambda z: F.cross_entropy(z, t, reduction=reduction),
                       lambda z: torch.nn.functional.cross_entropy(z, torch.from_numpy(t), reduction=reduction),
                       rand(5, 4) * 4)


def test_the_package_installs_the_convolution_batch_norm_and_pooling_kernels():
    from tinytorch.nn import normalization, spatial
    assert spatial.conv2d_kernel is kernels.conv2d_channels_last
    assert spatial.max_pool2d_kernel is kernels.max_pool2d_tiles
    assert normalization.batch_norm_kernel is kernels.batch_norm_fused


def test_a_cnn_stage_trains_the_same_with_and_without_the_kernels():
    from tinytorch.nn import normalization, spatial
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 9, 8))
    results = []
    for on in (False, True):
        previous = (spatial.set_conv2d_kernel(kernels.conv2d_channels_last if on else None),
                    spatial.set_max_pool2d_kernel(kernels.max_pool2d_tiles if on else None),
                    normalization.set_batch_norm_kernel(kernels.batch_norm_fused if on else None))
        try:
            manual = np.random.default_rng(0)
            stage = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 5, 3, padding=1)).double()
            for p in stage.parameters():
                p.data[...] = manual.standard_normal(p.shape)
            xt = Tensor(x, requires_grad=True)
            out = stage(xt)
            (out * out).sum().backward()
            results.append([out.data, xt.grad.data] + [p.grad.data for p in stage.parameters()]
                           + [stage[1].running_mean.data, stage[1].running_var.data])
        finally:
            spatial.set_conv2d_kernel(previous[0])
            spatial.set_max_pool2d_kernel(previous[1])
            normalization.set_batch_norm_kernel(previous[2])
    for fast, composed in zip(results[1], results[0]):
        np.testing.assert_allclose(fast, composed, rtol=1e-9, atol=1e-9)


# ---- Winograd F(4x4, 3x3) inside Conv2dChannelsLast -----------------------------------------------------
def _conv_and_grads(kernel, x, w, b, padding, winograd=None):
    """Output and the three gradients of sum(out * cos) for conv2d with `kernel` (None: chapter 06's im2col)."""
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if b is not None else None
    if kernel is None:
        with kernels.conv2d_kernel(None):
            out = F.conv2d(xt, wt, bt, 1, padding)
    else:
        out = kernel(xt, wt, bt, 1, padding, winograd=winograd)
    (out * Tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum().backward()
    return out, [out.data, xt.grad.data, wt.grad.data] + ([bt.grad.data] if b is not None else [])


@given(n=st.integers(1, 3), c=st.integers(1, 20), o=st.integers(1, 20), h=st.integers(1, 11),
       w=st.integers(1, 11), padding=st.integers(0, 2), bias=st.booleans())
@SETTINGS
def test_winograd_equals_im2col_for_any_image_size_padding_and_channels(n, c, o, h, w, padding, bias):
    if min(h, w) + 2 * padding < 3:
        return                                                     # no output: conv2d refuses it
    rng = np.random.default_rng(n * 1000 + h * 10 + w)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3))
    b = rng.standard_normal(o) if bias else None
    out, fast = _conv_and_grads(kernels.conv2d_channels_last, x, weight, b, padding, winograd=True)
    assert out._ctx.winograd, "winograd=True must run Winograd on every 3x3 stride-1 layer"
    _, reference = _conv_and_grads(None, x, weight, b, padding)
    for mine, expected in zip(fast, reference):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-10)


def test_gradcheck_winograd():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((1, 5, 5, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 5, 3, 3)) / 6, requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    assert kernels.conv2d_channels_last(x, w, b, padding=1, winograd=True)._ctx.winograd
    assert gradcheck(lambda x, w, b: kernels.conv2d_channels_last(x, w, b, padding=1, winograd=True), [x, w, b])


@pytest.mark.parametrize("shape, weight_shape, stride, padding, chosen", [
    ((2, 16, 8, 8), (16, 16, 3, 3), 1, 1, True),     # many channels, 8x8 output: two whole tiles a side
    ((2, 32, 32, 32), (16, 32, 3, 3), 1, 1, True),
    ((2, 16, 30, 30), (16, 16, 3, 3), 1, 0, True),   # 28x28: whole tiles
    ((2, 16, 15, 15), (16, 16, 3, 3), 1, 0, False),  # 13x13 output in 16x16 of tiles: 1.5x the work
    ((2, 3, 8, 8), (16, 3, 3, 3), 1, 1, False),      # few input channels: columns
    ((2, 16, 8, 8), (8, 16, 3, 3), 1, 1, False),     # few output channels: columns
    ((2, 16, 9, 9), (16, 16, 3, 3), 2, 1, False),    # stride 2
    ((2, 16, 8, 8), (16, 16, 5, 5), 1, 2, False),    # 5x5
])
def test_winograd_runs_where_it_pays_unless_told(shape, weight_shape, stride, padding, chosen):
    x, w = Tensor(rand(*shape), requires_grad=True), Tensor(rand(*weight_shape, seed=1))
    with kernels.conv2d_kernel(None):
        expected = F.conv2d(x, w, stride=stride, padding=padding).data
    for option, runs in ((None, chosen), (False, False), (True, stride == 1 and weight_shape[2:] == (3, 3))):
        out = kernels.conv2d_channels_last(x, w, stride=stride, padding=padding, winograd=option)
        assert out._ctx.winograd == runs, option
        np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-10)


def test_winograd_float32_error_stays_far_below_the_benchmark_tolerance():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((4, 32, 16, 16)), rng.standard_normal((64, 32, 3, 3)) / 17
    _, reference = _conv_and_grads(kernels.conv2d_channels_last, x, w, None, 1, winograd=False)
    out, single = _conv_and_grads(kernels.conv2d_channels_last, x.astype(np.float32), w.astype(np.float32), None, 1)
    assert out._ctx.winograd and out.dtype == np.float32
    for mine, expected in zip(single, reference):
        assert mine.dtype == np.float32
        assert np.abs(mine - expected).max() < 3e-5 * np.abs(expected).max()


def test_a_stubbed_winograd_transform_falls_back_to_the_columns(monkeypatch):
    def stub(*args, **kwargs):
        raise NotImplementedError("winograd_transform")
    monkeypatch.setattr(kernels.conv, "winograd_transform", stub)
    x, w = rand(2, 16, 8, 8), rand(16, 16, 3, 3, seed=1)
    out, fast = _conv_and_grads(kernels.conv2d_channels_last, x, w, rand(16, seed=2), 1)
    assert not out._ctx.winograd
    _, reference = _conv_and_grads(None, x, w, rand(16, seed=2), 1)
    for mine, expected in zip(fast, reference):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-10)


def test_winograd_forward_without_gradients_keeps_no_tiles():
    from tinytorch import no_grad
    x, w = Tensor(rand(2, 16, 8, 8).astype(np.float32)), Tensor(rand(16, 16, 3, 3, seed=1).astype(np.float32))
    with no_grad():
        out = kernels.conv2d_channels_last(x, w, padding=1)
    assert out._ctx is None
    with kernels.conv2d_kernel(None):
        np.testing.assert_allclose(out.data, F.conv2d(x, w, padding=1).data, rtol=1e-4, atol=1e-4)


# ---- BatchNorm in float32 -----------------------------------------------------------------------------
@pytest.mark.parametrize("mean, spread", [(0.0, 1.0), (1.0, 3.0), (20.0, 1.0)])
def test_fused_batch_norm_float32_is_as_close_to_float64_as_its_input_allows(mean, spread):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((64, 32, 32, 32)) * spread + mean).astype(np.float32)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # channels-last, as after a conv
    weight, bias = np.linspace(0.5, 2, 32).astype(np.float32), np.linspace(-1, 1, 32).astype(np.float32)
    out, batch_mean, batch_var = kernels.batch_norm_fused(Tensor(x), Tensor(weight), Tensor(bias), 1e-5)
    x64 = x.astype(np.float64)
    mu, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    expected = ((x64 - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * weight[:, None, None]
                + bias[:, None, None])
    # float32 rounding of x itself moves x - mean by up to |x| * 2**-24 / spread in normalized units
    allowed = 4e-6 + 2 * np.abs(x64).max() * 2.0**-24 / spread * 2
    assert np.abs(out.data - expected).max() < allowed
    np.testing.assert_allclose(batch_mean, mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch_var, var, rtol=1e-5)


# ---- fused LayerNorm --------------------------------------------------------------------------------


def layer_norm_both_ways(x: np.ndarray, normalized_shape: tuple, affine: bool, seed: int = 0) -> list:
    """[(output, input gradient, parameter gradients)] of nn.LayerNorm: chapter 08's composition, then the kernel."""
    from tinytorch.nn import normalization
    rng = np.random.default_rng(seed)
    upstream = rng.standard_normal(x.shape).astype(x.dtype)
    values = [rng.standard_normal(normalized_shape).astype(x.dtype) for _ in range(2 if affine else 0)]
    results = []
    for kernel in (None, kernels.layer_norm_fused):
        previous = normalization.set_layer_norm_kernel(kernel)
        try:
            layer = nn.LayerNorm(normalized_shape, elementwise_affine=affine)
            for p, value in zip(layer.parameters(), values):   # not the initial ones and zeros
                p.data = value.copy()
            tx = Tensor(x, requires_grad=True)
            out = layer(tx)
            (out * Tensor(upstream)).sum().backward()
            results.append((out.data, tx.grad.data, [p.grad.data for p in layer.parameters()]))
        finally:
            normalization.set_layer_norm_kernel(previous)
    return results


@SETTINGS
@given(rows=st.sampled_from([1, 3, 511, 512, 513, 1200]), shape=st.sampled_from([(64,), (5,), (4, 16)]),
       affine=st.booleans(), offset=st.floats(-20, 20), seed=st.integers(0, 2**16))
def test_fused_layer_norm_equals_the_composition_across_row_blocks(rows, shape, affine, offset, seed):
    # (64,) puts 512 rows in a block: 511, 512, 513 and 1200 rows end a block early, exactly and late.
    x = np.random.default_rng(seed).standard_normal((rows, *shape)) * 3 + offset
    (out, dx, grads), (fused_out, fused_dx, fused_grads) = layer_norm_both_ways(x, shape, affine, seed)
    np.testing.assert_allclose(fused_out, out, atol=1e-9)
    np.testing.assert_allclose(fused_dx, dx, atol=1e-8)
    assert len(fused_grads) == len(grads) == (2 if affine else 0)
    for mine, theirs in zip(fused_grads, grads):
        np.testing.assert_allclose(mine, theirs, atol=1e-8)


def test_fused_layer_norm_float32_and_gradcheck():
    x = np.random.default_rng(1).standard_normal((2, 300, 64)).astype(np.float32) * 2 + 5
    (out, dx, grads), (fused_out, fused_dx, fused_grads) = layer_norm_both_ways(x, (64,), True)
    assert fused_out.dtype == fused_dx.dtype == np.float32 and all(g.dtype == np.float32 for g in fused_grads)
    np.testing.assert_allclose(fused_out, out, atol=2e-5)
    np.testing.assert_allclose(fused_dx, dx, atol=2e-4)
    weight, bias = Tensor(rand(6), requires_grad=True), Tensor(rand(6, seed=2), requires_grad=True)
    assert gradcheck(lambda a, w, b: kernels.layer_norm_fused(a, w, b, (6,), 1e-5),
                     [Tensor(rand(700, 6, seed=3), requires_grad=True), weight, bias])
