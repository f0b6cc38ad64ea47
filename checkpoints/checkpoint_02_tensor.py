"""Checkpoint 02 (tensor): Can I create and manipulate the building blocks of ML?

Every check computes something small whose answer is known exactly, so a
Tensor that adds wrongly, broadcasts wrongly, multiplies matrices wrongly,
reduces over the wrong axis, scrambles data in a reshape or transpose, or
accepts shapes that do not fit, fails here.
"""

import numpy as np
from _harness import main


def _tensor():
    from tinytorch import Tensor

    return Tensor


def _same(t, expected, what):
    expected = np.asarray(expected)
    assert tuple(t.shape) == expected.shape, f"{what}: shape {tuple(t.shape)}, expected {expected.shape}"
    assert np.allclose(t.data, expected), f"{what}: got {t.data.tolist()}, expected {expected.tolist()}"


def _raises(error, fn, *fragments):
    try:
        fn()
    except error as err:
        for fragment in fragments:
            assert fragment in str(err), f"the error message {str(err)!r} should mention {fragment!r}"
        return
    raise AssertionError(f"expected {error.__name__}, but nothing was raised")


def check_creation_and_dtypes():
    """Tensors hold data with PyTorch's default dtypes and share NumPy's memory"""
    Tensor = _tensor()
    assert Tensor([1.5, 2.5]).dtype == np.float32, "Python floats must become float32"
    assert Tensor([1, 2]).dtype == np.int64, "Python ints must become int64"
    array = np.arange(4, dtype=np.float64)
    t = Tensor(array)
    assert t.dtype == np.float64, "a NumPy array keeps its dtype"
    array[0] = 42.0
    assert t.data[0] == 42.0, "a Tensor made from an array shares its memory"
    assert t.shape == (4,) and t.numel() == 4 and t.nbytes == 32


def check_elementwise_arithmetic():
    """+, -, *, /, ** and negation compute the right values"""
    Tensor = _tensor()
    a, b = Tensor([[1.0, 2.0], [3.0, 4.0]]), Tensor([[5.0, 6.0], [7.0, 8.0]])
    _same(a + b, [[6, 8], [10, 12]], "a + b")
    _same(b - a, [[4, 4], [4, 4]], "b - a")
    _same(a * b, [[5, 12], [21, 32]], "a * b")
    _same(b / a, [[5, 3], [7 / 3, 2]], "b / a")
    _same(a ** 2, [[1, 4], [9, 16]], "a ** 2")
    _same(-a, [[-1, -2], [-3, -4]], "-a")
    _same(10 - a, [[9, 8], [7, 6]], "10 - a")
    _same(1 / a, [[1, 0.5], [1 / 3, 0.25]], "1 / a")
    _same(a.exp().log(), a.data, "log(exp(a))")
    for name, result in (("a + 1", a + 1), ("a * 0.5", a * 0.5), ("a / 3", a / 3), ("2 * a", 2 * a)):
        assert result.dtype == np.float32, f"{name} gave {result.dtype}: Python numbers must not change the dtype"


def check_broadcasting():
    """Broadcasting follows the trailing-dimension rule and refuses shapes that do not fit"""
    Tensor = _tensor()
    batch = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])            # (2, 3)
    bias = Tensor([10.0, 20.0, 30.0])                            # (3,)
    _same(batch + bias, [[11, 22, 33], [14, 25, 36]], "(2, 3) + (3,)")
    column = Tensor([[1.0], [2.0]])                              # (2, 1)
    _same(batch * column, [[1, 2, 3], [8, 10, 12]], "(2, 3) * (2, 1)")
    _same(Tensor([[1.0], [2.0], [3.0]]) + Tensor([[10.0, 20.0]]), [[11, 21], [12, 22], [13, 23]], "(3, 1) + (1, 2)")
    _raises(ValueError, lambda: batch + Tensor([1.0, 2.0]), "(2, 3)", "(2,)")
    _raises(ValueError, lambda: batch * Tensor(np.ones((3, 2), np.float32)), "(2, 3)", "(3, 2)")


def check_matmul():
    """Matrix products are right for matrices, vectors and batches, and refuse mismatched shapes"""
    Tensor = _tensor()
    a = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])               # (2, 3)
    b = Tensor([[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]])          # (3, 2)
    _same(a @ b, [[58, 64], [139, 154]], "(2, 3) @ (3, 2)")
    _same(b @ a, [[39, 54, 69], [49, 68, 87], [59, 82, 105]], "(3, 2) @ (2, 3)")
    _same(a @ Tensor([1.0, 0.0, -1.0]), [-2, -2], "(2, 3) @ (3,)")
    batch = Tensor(np.stack([a.data, 2 * a.data]))               # (2, 2, 3)
    _same(batch @ b, [[[58, 64], [139, 154]], [[116, 128], [278, 308]]], "(2, 2, 3) @ (3, 2)")
    _raises(ValueError, lambda: a @ a, "(2, 3)")


def check_reductions():
    """sum, mean and max reduce over the right axis, with and without keepdims"""
    Tensor = _tensor()
    x = Tensor([[1.0, 9.0, 2.0], [8.0, 3.0, 7.0]])
    assert x.sum().item() == 30.0, f"x.sum() gave {x.sum().item()}"
    _same(x.sum(axis=0), [9, 12, 9], "sum over axis 0")
    _same(x.sum(axis=1), [12, 18], "sum over axis 1")
    _same(x.sum(axis=-1, keepdims=True), [[12], [18]], "sum over axis -1 with keepdims")
    _same(x.mean(axis=0), [4.5, 6, 4.5], "mean over axis 0")
    assert abs(x.mean().item() - 5.0) < 1e-6, f"x.mean() gave {x.mean().item()}"
    _same(x.amax(axis=1), [9, 8], "max over axis 1")
    _same(x.amax(axis=0, keepdims=True), [[8, 9, 7]], "max over axis 0 with keepdims")
    _same(x - x.amax(axis=1, keepdims=True), [[-8, 0, -7], [0, -5, -1]], "x - x.amax(axis=1, keepdims=True)")


def check_views_keep_data():
    """reshape, transpose, permute and slicing keep every value in place and share memory"""
    Tensor = _tensor()
    storage = np.arange(12, dtype=np.float32)
    x = Tensor(storage).reshape(3, 4)
    _same(x, storage.reshape(3, 4), "reshape(3, 4)")
    _same(x.reshape(2, -1), storage.reshape(2, 6), "reshape(2, -1)")
    _same(x.T, storage.reshape(3, 4).T, "x.T")
    _same(x.transpose(0, 1), storage.reshape(3, 4).T, "transpose(0, 1)")
    y = Tensor(storage).reshape(2, 3, 2)
    _same(y.permute(2, 0, 1), np.transpose(storage.reshape(2, 3, 2), (2, 0, 1)), "permute(2, 0, 1)")
    _same(x[1], [4, 5, 6, 7], "x[1]")
    _same(x[:, 2], [2, 6, 10], "x[:, 2]")
    for name, view in (("reshape", x), ("transpose", x.T), ("slice", x[:, 1:])):
        assert np.shares_memory(view.data, storage), f"{name} copied the data; it should be a view"
    assert x.stride() == (4, 1) and x.T.stride() == (1, 4), f"strides {x.stride()} and {x.T.stride()}"
    assert not x.T.is_contiguous() and x.T.contiguous().is_contiguous()
    _same(x.T.contiguous(), storage.reshape(3, 4).T, "x.T.contiguous()")


def check_shape_errors():
    """Impossible reshapes and matmuls raise errors that name the shapes"""
    Tensor = _tensor()
    x = Tensor(np.zeros((2, 3), np.float32))
    _raises(ValueError, lambda: x.reshape(4, 2), "(2, 3)", "(4, 2)")
    _raises(ValueError, lambda: x.reshape(-1, -1))
    _raises(ValueError, lambda: x @ Tensor(np.zeros((2, 2), np.float32)), "(2, 3)", "(2, 2)")


def check_ready_for_autograd():
    """Operations on tensors that require gradients record the graph"""
    Tensor = _tensor()
    w = Tensor([1.0, 2.0], requires_grad=True)
    loss = ((w * 3 + 1) ** 2).sum()
    assert loss.requires_grad, "a result computed from a tensor that requires grad must require grad"
    assert loss._ctx is not None, "the result must remember the operation (_ctx) that produced it"
    assert (Tensor([1.0]) * 3)._ctx is None, "no graph may be recorded when no gradient is needed"


if __name__ == "__main__":
    main(globals())
