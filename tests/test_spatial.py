"""Convolution, pooling and flattening (chapter 06) and their backward rules (chapter 09)."""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch.nn as nn
import tinytorch.nn.functional as F
from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.nn.spatial import Im2col, Pad2d, conv_output_size

from torch_reference import compare_with_torch, requires_torch, torch


def conv2d_loops(x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
    """The convolution formula written as loops over every index: the reference."""
    (sh, sw), (ph, pw) = stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for y in range(OH):
                for xx in range(OW):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[o, c, i, j] * x[n, c, y * sh + i, xx * sw + j]
                    out[n, o, y, xx] = total
    return out


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def double(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


# ---- shapes and values -------------------------------------------------------------------

@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (32, 3, 1, 0, 30), (32, 3, 1, 1, 32), (32, 3, 2, 1, 16), (13, 2, 2, 0, 6), (7, 7, 1, 0, 1), (8, 3, 3, 2, 4),
])
def test_conv_output_size_follows_the_floor_formula(size, kernel, stride, padding, expected):
    assert conv_output_size(size, kernel, stride, padding) == expected


@pytest.mark.parametrize("shape, out_channels, kernel, stride, padding, expected", [
    ((2, 3, 8, 8), 4, 3, 1, 0, (2, 4, 6, 6)),
    ((2, 3, 8, 8), 4, 3, 1, 1, (2, 4, 8, 8)),
    ((2, 3, 8, 8), 4, 3, 2, 1, (2, 4, 4, 4)),
    ((1, 2, 9, 6), 5, (3, 2), (2, 1), (1, 0), (1, 5, 5, 5)),
    ((1, 1, 5, 5), 2, 5, 1, 0, (1, 2, 1, 1)),
])
def test_conv2d_output_shape_with_stride_and_padding(shape, out_channels, kernel, stride, padding, expected):
    layer = nn.Conv2d(shape[1], out_channels, kernel, stride=stride, padding=padding)
    assert layer(Tensor(np.zeros(shape, dtype=np.float32))).shape == expected


@pytest.mark.parametrize("stride, padding, kernel", [((1, 1), (0, 0), (3, 3)), ((2, 2), (1, 1), (3, 3)),
                                                     ((2, 1), (0, 2), (2, 3)), ((1, 3), (1, 0), (1, 1))])
def test_conv2d_equals_the_loop_reference(stride, padding, kernel):
    x, w, b = rand(2, 3, 7, 8, seed=1), rand(4, 3, *kernel, seed=2), rand(4, seed=3)
    out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    np.testing.assert_allclose(out.data, conv2d_loops(x, w, b, stride, padding), atol=1e-12)


def test_conv2d_without_bias_equals_the_loop_reference():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 2, 2, seed=1)
    np.testing.assert_allclose(F.conv2d(Tensor(x), Tensor(w)).data, conv2d_loops(x, w), atol=1e-12)


def test_conv2d_accepts_one_unbatched_image():
    x, w = rand(3, 6, 6), rand(2, 3, 3, 3, seed=1)
    out = F.conv2d(Tensor(x), Tensor(w), padding=1)
    assert out.shape == (2, 6, 6)
    np.testing.assert_allclose(out.data, conv2d_loops(x[None], w, padding=(1, 1))[0], atol=1e-12)


def test_conv2d_keeps_float32():
    layer = nn.Conv2d(3, 4, 3)
    assert layer(Tensor(np.ones((1, 3, 5, 5), dtype=np.float32))).dtype == np.float32


def test_conv2d_layer_parameters_follow_pytorch():
    manual_seed(0)
    layer = nn.Conv2d(4, 6, (3, 2))
    assert layer.weight.shape == (6, 4, 3, 2) and layer.bias.shape == (6,)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / np.sqrt(4 * 3 * 2)                              # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound        # the whole range is used
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    assert len(list(nn.Conv2d(1, 2, 3, bias=False).parameters())) == 1


def test_conv2d_repr_names_the_configuration():
    assert repr(nn.Conv2d(3, 32, 3)) == "Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)) == \
        "Conv2d(3, 8, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), bias=False)"


def test_max_pool2d_takes_the_maximum_of_each_window():
    x = Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    assert nn.MaxPool2d(2)(x).data[0, 0].tolist() == [[5, 7], [13, 15]]
    assert F.max_pool2d(x, 3, stride=1).data[0, 0].tolist() == [[10, 11], [14, 15]]
    assert F.max_pool2d(-x, 2, padding=1).data[0, 0, 0, 0] == 0      # padding is -inf, never the max


def test_avg_pool2d_takes_the_mean_of_each_window_and_counts_zero_padding():
    x = Tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    assert nn.AvgPool2d(2)(x).data[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert F.avg_pool2d(x + 4, 2, padding=1).data[0, 0, 0, 0] == 1.0  # (4 + 0 + 0 + 0) / 4


def test_pooling_stride_defaults_to_kernel_and_drops_leftovers():
    pool = nn.MaxPool2d(2)
    assert pool.stride == 2 and repr(pool) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert pool(Tensor(np.zeros((2, 3, 13, 13), dtype=np.float32))).shape == (2, 3, 6, 6)
    assert nn.AvgPool2d(3, stride=1)(Tensor(np.zeros((1, 1, 5, 4)))).shape == (1, 1, 3, 2)


def test_pooling_keeps_channels_and_images_apart():
    x = rand(2, 3, 4, 4)
    out = F.max_pool2d(Tensor(x), 4).data
    np.testing.assert_array_equal(out[:, :, 0, 0], x.max(axis=(2, 3)))


def test_flatten_merges_the_requested_dimensions_in_row_major_order():
    x = Tensor(np.arange(48, dtype=np.float32).reshape(2, 3, 2, 4))
    assert nn.Flatten()(x).shape == (2, 24)
    assert nn.Flatten(0, 1)(x).shape == (6, 2, 4) and nn.Flatten(1, 2)(x).shape == (2, 6, 4)
    assert nn.Flatten()(x).data[1].tolist() == list(range(24, 48))
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_flatten_of_a_convolution_output_is_row_major():
    x, w = rand(2, 3, 4, 4), rand(5, 3, 1, 1, seed=1)
    out = F.conv2d(Tensor(x), Tensor(w))                     # a permuted view in memory
    np.testing.assert_allclose(nn.Flatten()(out).data, conv2d_loops(x, w).reshape(2, -1), atol=1e-12)


def test_im2col_puts_each_window_in_a_column():
    x = rand(2, 3, 6, 5)
    cols = Im2col.apply(Tensor(x), kernel_size=(3, 2), stride=(2, 1)).data
    OH, OW = 2, 4
    assert cols.shape == (3 * 3 * 2, 2 * OH * OW)
    np.testing.assert_array_equal(cols[:, 1 * OH * OW + 1 * OW + 3], x[1, :, 2:5, 3:5].reshape(-1))


def test_im2col_columns_take_kernel_area_times_the_input_memory():
    x = Tensor(rand(4, 8, 10, 10).astype(np.float32))
    padded = Pad2d.apply(x, padding=(1, 1))
    cols = Im2col.apply(padded, kernel_size=(3, 3), stride=(1, 1))
    assert cols.nbytes == 9 * x.nbytes


def test_pad2d_surrounds_with_the_value():
    x = Tensor(np.ones((1, 2, 2, 3)))
    out = Pad2d.apply(x, padding=(1, 2), value=-1.0).data
    assert out.shape == (1, 2, 4, 7)
    assert out.sum() == 2 * 6 - (2 * 28 - 2 * 6)


# ---- clear errors --------------------------------------------------------------------------

def test_conv2d_layer_rejects_the_wrong_channel_count():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*expects input \(N, 3, H, W\).*\(2, 4, 5, 5\)"):
        nn.Conv2d(3, 8, 3)(Tensor(np.zeros((2, 4, 5, 5), dtype=np.float32)))


def test_conv2d_function_rejects_the_wrong_channel_count():
    with pytest.raises(ValueError, match="has 4 channels but weight .* expects 3"):
        F.conv2d(Tensor(np.zeros((1, 4, 5, 5))), Tensor(np.zeros((2, 3, 3, 3))))


def test_conv2d_rejects_a_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match="kernel 5x5 is larger than the padded input 4x4"):
        F.conv2d(Tensor(np.zeros((1, 1, 2, 2))), Tensor(np.zeros((1, 1, 5, 5))), padding=1)


def test_conv2d_rejects_a_zero_stride_and_a_bad_bias():
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d(Tensor(np.zeros((1, 1, 4, 4))), Tensor(np.zeros((1, 1, 3, 3))), stride=0)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.conv2d(Tensor(np.zeros((1, 1, 4, 4))), Tensor(np.zeros((2, 1, 3, 3))), Tensor(np.zeros(3)))


def test_conv2d_rejects_input_that_is_not_an_image_batch():
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, H, W\)"):
        F.conv2d(Tensor(np.zeros((4, 4))), Tensor(np.zeros((1, 1, 3, 3))))


def test_kernel_size_must_be_an_int_or_a_pair():
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(1, 1, (3, 3, 3))


def test_pooling_rejects_a_kernel_larger_than_the_input_and_too_much_padding():
    x = Tensor(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="kernel 3x3 is larger than the padded input 2x2"):
        F.max_pool2d(x, 3)
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.avg_pool2d(x, 2, padding=2)


def test_flatten_rejects_an_empty_range():
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        nn.Flatten(2, 1)(Tensor(np.zeros((2, 3, 4))))


# ---- gradients: finite differences in float64 ---------------------------------------------

def test_gradcheck_conv2d_with_stride_and_padding():
    x = Tensor(rand(2, 2, 5, 4), requires_grad=True)
    w = Tensor(rand(3, 2, 3, 2, seed=1), requires_grad=True)
    b = Tensor(rand(3, seed=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1), [x, w, b])


def test_gradcheck_conv2d_layer():
    manual_seed(0)
    layer = double(nn.Conv2d(2, 3, 3, stride=2, padding=1))
    x = Tensor(rand(2, 2, 5, 5), requires_grad=True)
    assert gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 0)])
def test_gradcheck_max_pool2d(kernel, stride, padding):
    x = Tensor(rand(2, 2, 5, 5), requires_grad=True)          # random values: no ties
    assert gradcheck(lambda x: nn.MaxPool2d(kernel, stride, padding)(x), [x])


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), 0)])
def test_gradcheck_avg_pool2d(kernel, stride, padding):
    x = Tensor(rand(2, 2, 5, 6), requires_grad=True)
    assert gradcheck(lambda x: nn.AvgPool2d(kernel, stride, padding)(x), [x])


def test_gradcheck_flatten():
    x = Tensor(rand(2, 3, 2, 2), requires_grad=True)
    assert gradcheck(lambda x: nn.Flatten()(x), [x])


def test_gradcheck_pad2d():
    x = Tensor(rand(2, 1, 3, 2), requires_grad=True)
    assert gradcheck(lambda x: Pad2d.apply(x, padding=(1, 2)), [x])


@pytest.mark.parametrize("kernel, stride", [((2, 2), (1, 1)), ((3, 2), (2, 1)), ((2, 2), (2, 2))])
def test_gradcheck_im2col(kernel, stride):
    x = Tensor(rand(2, 2, 5, 4), requires_grad=True)
    assert gradcheck(lambda x: Im2col.apply(x, kernel_size=kernel, stride=stride), [x])


def test_col2im_adds_the_gradients_of_overlapping_windows():
    x = Tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    Im2col.apply(x, kernel_size=(3, 3), stride=(1, 1)).sum().backward()
    # how many of the four 3x3 windows cover each pixel
    assert x.grad.data[0, 0].tolist() == [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]


def test_conv_network_gradients_stay_float32():
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 2))
    x = Tensor(rand(2, 3, 8, 8).astype(np.float32), requires_grad=True)
    model(x).sum().backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


# ---- against PyTorch ---------------------------------------------------------------------

@requires_torch
@pytest.mark.parametrize("stride, padding, kernel", [(1, 0, (3, 3)), (2, 1, (3, 3)), ((1, 2), (2, 0), (2, 3))])
def test_conv2d_matches_torch(stride, padding, kernel):
    compare_with_torch(lambda x, w, b: F.conv2d(x, w, b, stride, padding),
                       lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride, padding),
                       rand(2, 3, 7, 6), rand(4, 3, *kernel, seed=1), rand(4, seed=2))


@requires_torch
def test_conv2d_layer_matches_torch_with_the_same_weights():
    manual_seed(0)
    tiny = double(nn.Conv2d(3, 5, 3, stride=2, padding=1))
    reference = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1).double()
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(tiny.weight.data))
        reference.bias.copy_(torch.tensor(tiny.bias.data))
    compare_with_torch(tiny, reference, rand(2, 3, 6, 6))
    np.testing.assert_allclose(tiny.weight.grad.data, reference.weight.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(tiny.bias.grad.data, reference.bias.grad.numpy(), atol=1e-6)


@requires_torch
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (2, 1), 0)])
def test_max_pool2d_matches_torch(kernel, stride, padding):
    compare_with_torch(lambda x: F.max_pool2d(x, kernel, stride, padding),
                       lambda x: torch.nn.functional.max_pool2d(x, kernel, stride, padding), rand(2, 3, 7, 6))


@requires_torch
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (2, 1), 0)])
def test_avg_pool2d_matches_torch(kernel, stride, padding):
    compare_with_torch(lambda x: F.avg_pool2d(x, kernel, stride, padding),
                       lambda x: torch.nn.functional.avg_pool2d(x, kernel, stride, padding), rand(2, 3, 7, 6))


@requires_torch
def test_flatten_matches_torch():
    compare_with_torch(lambda x: nn.Flatten(1, 2)(x), lambda x: torch.nn.Flatten(1, 2)(x), rand(2, 3, 4, 5))


def test_spatial_primitives_define_their_backward_beside_their_forward():
    import ast
    from pathlib import Path

    from tinytorch.core import autograd
    from tinytorch.core.tensor import Function
    assert Pad2d.backward is not Function.backward and Im2col.backward is not Function.backward
    tree = ast.parse(Path(autograd.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "tinytorch.core.spatial" not in imported, "the autograd engine must not import the spatial layer file"
