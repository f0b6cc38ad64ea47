"""The Tensor of chapter 02, checked against NumPy on random inputs (and against PyTorch where installed).

One comparison helper, `assert_matches`, checks type, shape, dtype and values
of every result; the properties below feed it operations on random shapes.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strategies import (
    SETTINGS,
    arrays_with_shapes,
    axes,
    broadcastable_shapes,
    float_arrays,
    incompatible_shapes,
    matmul_shapes,
    nonzero_arrays,
    positive_arrays,
    reshape_targets,
    shapes,
)
from tinytorch import Tensor
from tinytorch.core.function import Add, Function, MatMul, Mul, Pow, Sum


def assert_matches(result, expected, rtol=1e-6, atol=1e-6, dtype=None):
    """`result` is a Tensor over an ndarray with the shape, dtype and values of `expected`."""
    expected = np.asarray(expected)
    assert isinstance(result, Tensor), f"expected a Tensor, got {type(result).__name__}"
    assert isinstance(result.data, np.ndarray), f".data must be an ndarray, not {type(result.data).__name__}"
    assert result.shape == expected.shape, f"shape {result.shape} != {expected.shape}"
    assert result.dtype == (dtype or expected.dtype), f"dtype {result.dtype} != {dtype or expected.dtype}"
    np.testing.assert_allclose(result.data, expected, rtol=rtol, atol=atol)


# ---- elementwise arithmetic and broadcasting -----------------------------------------------

BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data())
def test_binary_op_broadcasts_like_numpy(name, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(float_arrays(shape_a)), data.draw(float_arrays(shape_b))
    op = BINARY[name]
    assert_matches(op(Tensor(a), Tensor(b)), op(a, b))


@SETTINGS
@given(data=st.data())
def test_division_broadcasts_like_numpy(data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(float_arrays(shape_a)), data.draw(nonzero_arrays(shape_b))
    # a / b is computed as a * b**-1: one extra rounding, so a relative tolerance of a few ulps
    assert_matches(Tensor(a) / Tensor(b), a / b, rtol=1e-6 * 4)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "rsub", "rdiv", "radd", "rmul"])
@SETTINGS
@given(a=arrays_with_shapes(), scalar=st.one_of(st.integers(-5, 5).filter(bool), st.floats(-5, 5).filter(lambda v: abs(v) > 0.1)))
def test_python_scalars_keep_float32(name, a, scalar):
    t = Tensor(a)
    safe = np.where(np.abs(a) < 0.5, np.float32(1), a)  # divisors away from zero
    ops = {
        "add": (lambda: t + scalar, lambda: a + np.float32(scalar)),
        "sub": (lambda: t - scalar, lambda: a - np.float32(scalar)),
        "mul": (lambda: t * scalar, lambda: a * np.float32(scalar)),
        "div": (lambda: t / scalar, lambda: a / np.float32(scalar)),
        "radd": (lambda: scalar + t, lambda: np.float32(scalar) + a),
        "rsub": (lambda: scalar - t, lambda: np.float32(scalar) - a),
        "rmul": (lambda: scalar * t, lambda: np.float32(scalar) * a),
        "rdiv": (lambda: scalar / Tensor(safe), lambda: np.float32(scalar) / safe),
    }
    ours, reference = ops[name]
    assert_matches(ours(), np.asarray(reference(), dtype=np.float32), rtol=1e-5, dtype=np.float32)


@SETTINGS
@given(shape_pair=incompatible_shapes())
def test_incompatible_shapes_raise_one_line_error_naming_both(shape_pair):
    a, b = shape_pair
    with pytest.raises(ValueError) as info:
        Tensor(np.zeros(a, np.float32)) + Tensor(np.zeros(b, np.float32))
    message = str(info.value)
    assert str(a) in message and str(b) in message and "\n" not in message
    with pytest.raises(ValueError, match="^mul:"):
        Tensor(np.zeros(a, np.float32)) * Tensor(np.zeros(b, np.float32))
    with pytest.raises(ValueError, match="^sub:"):
        Tensor(np.zeros(a, np.float32)) - Tensor(np.zeros(b, np.float32))
    with pytest.raises(ValueError, match="^div:"):
        Tensor(np.zeros(a, np.float32)) / Tensor(np.ones(b, np.float32))


def test_numpy_operands_defer_to_tensor():
    t = Tensor([1.0, 2.0])
    for result in (np.float32(2) * t, np.ones(2, np.float32) + t, np.ones(2, np.float32) - t,
                   np.float64(1) / t, np.ones((2, 2), np.float32) @ t):
        assert isinstance(result, Tensor)
    assert np.array_equal((np.ones(2, np.float32) - t).data, [0.0, -1.0])


# ---- unary functions ---------------------------------------------------------------------

@SETTINGS
@given(a=arrays_with_shapes())
def test_neg_exp_tanh_match_numpy(a):
    assert_matches(-Tensor(a), -a)
    assert_matches(Tensor(a).exp(), np.exp(a), rtol=1e-6)
    assert_matches(Tensor(a).tanh(), np.tanh(a))


@SETTINGS
@given(data=st.data())
def test_log_sqrt_pow_match_numpy_on_positive_inputs(data):
    a = data.draw(positive_arrays(data.draw(shapes())))
    exponent = data.draw(st.sampled_from([-2, -1, 0, 0.5, 1, 2, 3, 1.5]))
    assert_matches(Tensor(a).log(), np.log(a))
    assert_matches(Tensor(a).sqrt(), np.sqrt(a), rtol=1e-6)
    assert_matches(Tensor(a) ** exponent, a ** np.float32(exponent), rtol=1e-5)
    assert_matches(2 ** Tensor(a), np.float32(2) ** a, rtol=1e-5)


def test_tensor_exponent_and_nonpositive_base_are_refused():
    with pytest.raises(TypeError, match="exponent"):
        Tensor([1.0]) ** Tensor([2.0])
    with pytest.raises(ValueError, match="positive"):
        (-2) ** Tensor([1.0])


# ---- reductions -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "amax"])
@SETTINGS
@given(data=st.data())
def test_reductions_match_numpy(name, data):
    a = data.draw(arrays_with_shapes())
    axis = data.draw(axes(a.ndim))
    keepdims = data.draw(st.booleans())
    result = getattr(Tensor(a), name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(a, axis=axis, keepdims=keepdims)
    assert_matches(result, expected, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(data=st.data())
def test_argmax_matches_numpy(data):
    a = data.draw(arrays_with_shapes(shapes(min_dims=1)))
    axis = data.draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
    assert_matches(Tensor(a).argmax(dim=axis), np.argmax(a, axis=axis))


def test_reductions_return_zero_dim_arrays_not_numpy_scalars():
    for result in (Tensor([1.0, 2.0]).sum(), Tensor([1.0, 2.0]).mean(), Tensor([1.0, 2.0]).max(),
                   Tensor([1.0, 2.0]).argmax(), Tensor([1.0, 2.0])[0], Tensor(1.0) > 0):
        assert isinstance(result.data, np.ndarray) and result.shape == ()


# ---- matmul -----------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_matmul_matches_numpy_including_vectors_and_batches(data):
    shape_a, shape_b = data.draw(matmul_shapes())
    a, b = data.draw(float_arrays(shape_a)), data.draw(float_arrays(shape_b))
    assert_matches(Tensor(a) @ Tensor(b), np.matmul(a, b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("a, b, fragment", [
    ((2, 3), (2, 3), "inner dimensions 3 and 2"),
    ((3,), (4,), "inner dimensions 3 and 4"),
    ((2, 2, 3), (5, 3, 4), "batch dimensions"),
    ((), (3,), "at least one dimension"),
])
def test_matmul_shape_errors_name_both_shapes(a, b, fragment):
    with pytest.raises(ValueError) as info:
        Tensor(np.zeros(a, np.float32)) @ Tensor(np.zeros(b, np.float32))
    message = str(info.value)
    assert fragment in message and f"{a} @ {b}" in message and "\n" not in message


# ---- shapes, views and copies -------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_reshape_matches_numpy_and_shares_memory(data):
    a = data.draw(arrays_with_shapes())
    target = data.draw(reshape_targets(a.shape))
    result = Tensor(a).reshape(target)
    assert_matches(result, a.reshape(target))
    assert np.shares_memory(result.data, a)
    assert_matches(Tensor(a).reshape(*target), a.reshape(target))
    assert_matches(Tensor(a).view(target), a.reshape(target))


@SETTINGS
@given(a=arrays_with_shapes(), extra=st.integers(1, 3))
def test_bad_reshape_raises_error_with_both_shapes(a, extra):
    bad = (a.size + extra,)
    with pytest.raises(ValueError) as info:
        Tensor(a).reshape(bad)
    assert str(a.shape) in str(info.value) and str(bad) in str(info.value)
    with pytest.raises(ValueError):
        Tensor(a).reshape(-1, -1)


@SETTINGS
@given(data=st.data())
def test_permute_transpose_and_T_match_numpy_as_views(data):
    a = data.draw(arrays_with_shapes(shapes(min_dims=1)))
    order = data.draw(st.permutations(range(a.ndim)))
    d0, d1 = data.draw(st.integers(-a.ndim, a.ndim - 1)), data.draw(st.integers(-a.ndim, a.ndim - 1))
    swapped = np.swapaxes(a, d0, d1)
    for result, expected in ((Tensor(a).permute(*order), np.transpose(a, order)),
                             (Tensor(a).permute(order), np.transpose(a, order)),
                             (Tensor(a).transpose(d0, d1), swapped),
                             (Tensor(a).T, a.T)):
        assert_matches(result, expected)
        assert np.shares_memory(result.data, a)
        assert result.stride() == tuple(s // a.itemsize for s in expected.strides)


@SETTINGS
@given(data=st.data())
def test_basic_indexing_matches_numpy_and_views_share_memory(data):
    a = data.draw(arrays_with_shapes(shapes(min_dims=1)))
    index = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True))
    expected = a[index]
    result = Tensor(a)[index]
    assert_matches(result, expected)
    if isinstance(expected, np.ndarray) and expected.size:
        assert np.shares_memory(result.data, a), f"x[{index}] should be a view"


@SETTINGS
@given(data=st.data())
def test_fancy_indexing_copies(data):
    a = data.draw(arrays_with_shapes(shapes(min_dims=1)))
    rows = data.draw(st.lists(st.integers(0, a.shape[0] - 1), min_size=1, max_size=4))
    result = Tensor(a)[rows]
    assert_matches(result, a[rows])
    assert not np.shares_memory(result.data, a)
    mask = a > 0
    assert_matches(Tensor(a)[Tensor(mask)], a[mask])
    assert_matches(Tensor(a)[Tensor(np.array(rows))], a[rows])


@SETTINGS
@given(data=st.data())
def test_stride_and_contiguity_follow_numpy(data):
    a = data.draw(arrays_with_shapes(shapes(min_dims=1, min_side=2)))
    order = data.draw(st.permutations(range(a.ndim)))
    step = data.draw(st.integers(1, 2))
    for t in (Tensor(a), Tensor(a).permute(*order), Tensor(a)[::step]):
        expected = t.data
        assert t.stride() == tuple(s // a.itemsize for s in expected.strides)
        assert t.is_contiguous() == expected.flags["C_CONTIGUOUS"]
        c = t.contiguous()
        assert c.is_contiguous() and np.array_equal(c.data, expected)
        if t.is_contiguous():
            assert c is t
        else:
            assert not np.shares_memory(c.data, a), "contiguous() of a non-contiguous tensor copies"


def test_strides_count_elements_not_bytes():
    t = Tensor(np.zeros((2, 3, 4), dtype=np.float64))
    assert t.stride() == (12, 4, 1) and t.stride(-1) == 1
    assert t.transpose(0, 2).stride() == (1, 4, 12)
    assert Tensor(np.zeros(10, np.float32))[::3].stride() == (3,)


def test_contiguous_of_a_strided_vector_copies_into_row_major():
    strided = Tensor(np.arange(10, dtype=np.float32))[::2]
    assert not strided.is_contiguous()
    compact = strided.contiguous()
    assert compact.is_contiguous() and compact.tolist() == [0, 2, 4, 6, 8]


def test_view_refuses_what_only_a_copy_can_do():
    x = Tensor(np.arange(6, dtype=np.float32)).reshape(2, 3)
    with pytest.raises(RuntimeError, match="reshape"):
        x.T.view(6)
    assert x.T.reshape(6).tolist() == [0, 3, 1, 4, 2, 5], "reshape copies instead"
    compact = x.T.contiguous()
    assert np.shares_memory(compact.view(6).data, compact.data)


def test_writes_to_the_storage_show_through_every_view():
    base = np.zeros(6, dtype=np.float32)
    t = Tensor(base)
    views = [t.reshape(2, 3), t.reshape(2, 3).T, t[1:], t.view(3, 2)[:, 0]]
    base[2] = 5.0
    assert views[0].data[0, 2] == 5.0 and views[1].data[2, 0] == 5.0 and views[2].data[1] == 5.0
    assert views[3].data[1] == 5.0


@pytest.mark.parametrize("shape, args, expected", [
    ((2, 3, 4), (), (24,)),
    ((2, 3, 4), (1,), (2, 12)),
    ((2, 3, 4), (0, 1), (6, 4)),
    ((2, 3, 4), (1, -1), (2, 12)),
    ((), (), (1,)),
])
def test_flatten_follows_pytorch(shape, args, expected):
    assert Tensor(np.zeros(shape, np.float32)).flatten(*args).shape == expected


@pytest.mark.parametrize("dim, expected", [(0, (1, 2, 3)), (1, (2, 1, 3)), (2, (2, 3, 1)), (-1, (2, 3, 1)), (-3, (1, 2, 3))])
def test_unsqueeze_inserts_a_dimension(dim, expected):
    assert Tensor(np.zeros((2, 3), np.float32)).unsqueeze(dim).shape == expected


def test_permute_rejects_an_invalid_order():
    with pytest.raises(ValueError, match="permute"):
        Tensor(np.zeros((2, 3), np.float32)).permute(0, 0)


# ---- dtype rules --------------------------------------------------------------------------

@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32),
    ([1.0, 2.0], np.float32),
    ([[1, 2], [3, 4]], np.int64),
    (7, np.int64),
    ([True, False], np.bool_),
    (np.zeros(2, np.float64), np.float64),
    (np.zeros(2, np.float16), np.float16),
    (np.zeros(2, np.int32), np.int32),
    (np.float64(1.0), np.float64),
])
def test_creation_dtype_rules(data, dtype):
    assert Tensor(data).dtype == dtype


def test_explicit_dtype_wins():
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor(np.zeros(2, np.float32), dtype=np.float64).dtype == np.float64


def test_arrays_share_memory_lists_are_copied():
    array = np.zeros(3, np.float32)
    assert np.shares_memory(Tensor(array).data, array)
    assert Tensor(array).numpy() is array
    values = [1.0, 2.0]
    t = Tensor(values)
    values[0] = 9.0
    assert t.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_operations_keep_the_float_dtype(dtype):
    t = Tensor(np.ones((2, 2), dtype))
    for result in (t + 1, 2.5 * t, t / 3, 1 - t, t ** 2, t.sqrt(), t.mean(), t.sum(axis=0), t @ t, t.exp(), t[0]):
        assert result.dtype == dtype


def test_numpy_float64_scalars_do_not_promote_float32_tensors():
    t = Tensor([1.0, 2.0])
    for result in (t * np.sqrt(2.0), np.sqrt(2.0) * t, t + np.float64(1), np.float64(1) - t, t / np.float64(2)):
        assert isinstance(result, Tensor) and result.dtype == np.float32


def test_integer_division_gives_float32_and_integers_cannot_require_grad():
    assert (Tensor([1, 2]) / 2).dtype == np.float32
    assert (1 / Tensor([1, 2])).dtype == np.float32
    assert (Tensor([1, 2]) / Tensor([2, 4])).tolist() == [0.5, 0.5]
    with pytest.raises(TypeError, match="floating"):
        Tensor([1, 2], requires_grad=True)


def test_float_and_double_convert_and_skip_needless_copies():
    t = Tensor([1.0, 2.0])
    assert t.float() is t and t.double().dtype == np.float64
    assert t.double().float().dtype == np.float32


def test_comparisons_give_bool_tensors_without_gradient():
    t = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in ((t > 2, [False, False, True]), (t >= 2, [False, True, True]),
                             (t < 2, [True, False, False]), (t <= 2, [True, True, False]),
                             (t == 2, [False, True, False]), (t != 2, [True, False, True]),
                             (t == Tensor([1.0, 0.0, 3.0]), [True, False, True])):
        assert result.dtype == np.bool_ and result.tolist() == expected and not result.requires_grad


def test_truthiness_follows_pytorch():
    assert not Tensor([0.0]) and Tensor([2.0])
    with pytest.raises(ValueError):
        bool(Tensor([1.0, 2.0]))


def test_tensors_hash_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert len({a, b}) == 2


def test_scalar_tensor_helpers():
    t = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.numel() == 6 and t.dim() == 2 and t.ndim == 2 and t.size() == (2, 3) and t.size(-1) == 3
    assert t.nbytes == 24 and len(t) == 2 and Tensor(2.5).item() == 2.5
    assert np.array_equal(np.asarray(t), t.data)
    assert repr(Tensor([1.0], requires_grad=True)) == "tensor([1.], dtype=float32, requires_grad=True)"


# ---- the hooks chapter 09 builds on -------------------------------------------------------

@pytest.mark.parametrize("make, node", [
    (lambda w: w + 1, Add),
    (lambda w: w - 1, Add),
    (lambda w: w * 2, Mul),
    (lambda w: w / 2, Mul),
    (lambda w: w.mean(), Mul),
    (lambda w: w.sqrt(), Pow),
    (lambda w: w.sum(axis=0), Sum),
    (lambda w: w @ w, MatMul),
])
def test_operations_record_their_primitive_when_a_gradient_is_needed(make, node):
    w = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    out = make(w)
    assert out.requires_grad and isinstance(out._ctx, node)
    plain = make(Tensor(np.ones((2, 2), np.float32)))
    assert not plain.requires_grad and plain._ctx is None


def test_grad_disabled_records_nothing():
    w = Tensor([1.0], requires_grad=True)
    Function.grad_enabled = False
    try:
        out = w * 2
    finally:
        Function.grad_enabled = True
    assert out._ctx is None and not out.requires_grad


# ---- the same answers as PyTorch, where it is installed -------------------------------------

def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], [[1, 2]], 3, [True]])
def test_default_dtypes_agree_with_pytorch(data):
    torch = _torch()
    assert str(Tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")


@pytest.mark.parametrize("shape, dims", [((2, 3, 4), (2, 0, 1)), ((5, 1, 3), (1, 2, 0)), ((4, 4), (1, 0))])
def test_strides_agree_with_pytorch(shape, dims):
    torch = _torch()
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    ours, theirs = Tensor(a).permute(*dims), torch.from_numpy(a).permute(*dims)
    assert ours.stride() == theirs.stride() and ours.is_contiguous() == theirs.is_contiguous()
    assert ours.transpose(0, 1).stride() == theirs.transpose(0, 1).stride()
    assert np.array_equal(ours.contiguous().data, theirs.contiguous().numpy())


def test_transpose_reduce_and_matmul_agree_with_pytorch():
    torch = _torch()
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(Tensor(a).transpose(0, 2).data, torch.from_numpy(a).transpose(0, 2).numpy())
    np.testing.assert_allclose(Tensor(a).sum(axis=1, keepdims=True).data,
                               torch.from_numpy(a).sum(dim=1, keepdim=True).numpy(), rtol=1e-6)
    np.testing.assert_allclose(Tensor(a).amax(axis=-1).data, torch.from_numpy(a).amax(dim=-1).numpy())
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).data, (torch.from_numpy(a) @ torch.from_numpy(b)).numpy(),
                               rtol=1e-5, atol=1e-5)
