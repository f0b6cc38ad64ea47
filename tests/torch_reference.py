"""One helper to run a computation in tinytorch and in PyTorch and compare both ways.

Tests use `compare_with_torch(tiny_fn, torch_fn, *arrays)`: the same function
written twice, run on float64 copies of the same inputs; forward outputs and the
gradients of every input must agree. Without PyTorch installed these tests skip.
"""

from __future__ import annotations

import numpy as np
import pytest

try:
    import torch
except ImportError:  # the suite must pass without PyTorch
    torch = None

from tinytorch import Tensor

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed; comparison skipped")


def compare_with_torch(tiny_fn, torch_fn, *arrays, atol: float = 1e-6, rtol: float = 1e-5, backward: bool = True):
    """Assert tiny_fn(*Tensors) matches torch_fn(*torch tensors), forward and backward, in float64."""
    if torch is None:
        pytest.skip("PyTorch is not installed")
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    tiny_inputs = [Tensor(a.copy(), requires_grad=backward) for a in arrays]
    torch_inputs = [torch.tensor(a.copy(), requires_grad=backward) for a in arrays]
    tiny_out = tiny_fn(*tiny_inputs)
    torch_out = torch_fn(*torch_inputs)
    np.testing.assert_allclose(tiny_out.data, torch_out.detach().numpy(), atol=atol, rtol=rtol, err_msg="forward differs")
    if not backward:
        return
    weights = np.random.default_rng(0).standard_normal(torch_out.shape)
    (tiny_out * Tensor(weights)).sum().backward()
    (torch_out * torch.tensor(weights)).sum().backward()
    for i, (t, r) in enumerate(zip(tiny_inputs, torch_inputs)):
        expected = np.zeros_like(arrays[i]) if r.grad is None else r.grad.numpy()
        got = np.zeros_like(arrays[i]) if t.grad is None else t.grad.data
        np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol, err_msg=f"gradient of input {i} differs")
