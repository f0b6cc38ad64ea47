"""Checkpoint 14 (kernels): Can I implement high-performance computational kernels?

Passing means your blocked matrix multiply and blocked transpose compute
exactly what the definitions say for sizes that are not multiples of the tile,
your direct convolution gives the same outputs and gradients as im2col, and
your fused softmax cross-entropy is right (its gradient is softmax minus
one-hot), is the kernel the package's loss actually runs, and keeps less
memory alive than the composite version it replaces.
"""

import tracemalloc

import numpy as np
from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch import kernels
from tinytorch.kernels import (
    conv2d_direct,
    cross_entropy_kernel,
    matmul_blocked,
    matmul_naive,
    softmax_cross_entropy,
    transpose_blocked,
)
from tinytorch.nn import CrossEntropyLoss, Linear, ReLU, Sequential
from tinytorch.nn.functional import conv2d, cross_entropy
from tinytorch.nn.loss import get_cross_entropy_kernel
from tinytorch.optim import SGD


def check_blocked_matmul_equals_the_definition():
    """matmul_blocked equals the triple loop for awkward sizes, square tiles, rectangular tiles and panels."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((19, 23)), rng.standard_normal((23, 11))
    expected = matmul_naive(a, b)
    assert np.allclose(expected, a @ b), "matmul_naive does not compute the matrix product"
    for tile in (4, 7, (5, 3, 2), (19, 11, 6), 64):
        got = matmul_blocked(a, b, tile)
        assert got.shape == (19, 11), f"tile={tile}: result has shape {got.shape}, expected (19, 11)"
        assert np.allclose(got, expected, atol=1e-10), \
            f"tile={tile}: the blocked product differs from the definition (check the edge tiles)"


def check_blocked_transpose_is_a_contiguous_transpose():
    """transpose_blocked returns a new C-contiguous array equal to a.T, for any tile."""
    a = np.arange(35 * 18, dtype=np.float32).reshape(35, 18)
    for tile in (1, 8, 16, 100):
        out = transpose_blocked(a, tile)
        assert out.shape == (18, 35) and np.array_equal(out, a.T), f"tile={tile}: values differ from a.T"
        assert out.flags["C_CONTIGUOUS"], f"tile={tile}: the result must be C-contiguous"


def check_direct_convolution_matches_im2col():
    """conv2d_direct gives conv2d's outputs and the same input, weight and bias gradients."""
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    grads = []
    for conv in (conv2d, conv2d_direct):
        tensors = [Tensor(v, requires_grad=True) for v in (x, w, b)]
        out = conv(*tensors, stride=2, padding=1)
        (out * Tensor(np.sin(np.arange(out.numel())).reshape(out.shape))).sum().backward()
        grads.append([out.data] + [t.grad.data for t in tensors])
    for what, mine, reference in zip(["output", "input gradient", "weight gradient", "bias gradient"], grads[1], grads[0]):
        assert mine.shape == reference.shape, f"conv2d_direct {what} has shape {mine.shape}, expected {reference.shape}"
        assert np.allclose(mine, reference, atol=1e-9), f"conv2d_direct's {what} differs from im2col conv2d's"


def check_fused_gradient_is_softmax_minus_onehot():
    """softmax_cross_entropy's losses are log-sum-exp minus the target logit; its gradient is softmax - onehot."""
    rng = np.random.default_rng(2)
    z, t = rng.standard_normal((6, 5)) * 4, np.array([0, 4, 2, 2, 1, 3])
    zt = Tensor(z, requires_grad=True)
    losses = softmax_cross_entropy(zt, t)
    expected = np.log(np.exp(z).sum(axis=1)) - z[np.arange(6), t]
    assert np.allclose(losses.data, expected), "the fused losses differ from log-sum-exp minus the target logit"
    losses.sum().backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p[np.arange(6), t] -= 1
    assert np.allclose(zt.grad.data, p), "the fused gradient is not softmax minus one-hot"
    huge = softmax_cross_entropy(Tensor(np.array([[1e4, 0.0, -1e4]], dtype=np.float32)), [2])
    assert np.allclose(huge.data, [2e4]), "the fused loss overflows on large logits: subtract each row's maximum"


def check_the_package_loss_runs_on_the_fused_kernel():
    """CrossEntropyLoss uses the fused primitive (a 3-node graph), with the composite's value, and trains a model."""
    assert get_cross_entropy_kernel() is kernels.softmax_cross_entropy_rows, \
        "importing tinytorch did not install the fused kernel into cross_entropy (set_cross_entropy_kernel)"
    manual_seed(0)
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((64, 8)).astype(np.float32))
    y = (x.data[:, 0] > 0).astype(np.int64) + (x.data[:, 1] > 0)
    model = Sequential(Linear(8, 32), ReLU(), Linear(32, 3))
    logits = model(x)
    loss = CrossEntropyLoss()(logits, y)
    nodes, stack = set(), [loss]                      # the loss's own nodes, stopping at the logits
    while stack:
        tensor = stack.pop()
        if tensor is not logits and tensor._ctx is not None and id(tensor._ctx) not in nodes:
            nodes.add(id(tensor._ctx))
            stack.extend(tensor._ctx.inputs)
    assert len(nodes) <= 3, f"the loss is a graph of {len(nodes)} nodes on top of the logits; the fused kernel needs 3"
    with cross_entropy_kernel(None):
        composite = CrossEntropyLoss()(model(x), y).item()
    assert abs(loss.item() - composite) < 1e-5, f"fused loss {loss.item()} differs from the composite {composite}"
    optimizer = SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        step_loss = CrossEntropyLoss()(model(x), y)
        step_loss.backward()
        optimizer.step()
        losses.append(step_loss.item())
    assert losses[-1] < 0.5 * losses[0], f"training with the fused loss went from {losses[0]:.3f} to {losses[-1]:.3f}"


def check_fused_loss_keeps_less_memory_alive():
    """Forward + backward of the fused loss peaks at well under the composite version's memory."""
    logits = np.random.default_rng(4).standard_normal((512, 1000)).astype(np.float32)
    targets = np.arange(512) % 1000
    peaks = {}
    for name, kernel in (("composite", None), ("fused", kernels.softmax_cross_entropy_rows)):
        z = Tensor(logits, requires_grad=True)
        tracemalloc.start()
        with cross_entropy_kernel(kernel):
            cross_entropy(z, targets).backward()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["fused"] < 0.6 * peaks["composite"], \
        (f"fused peak {peaks['fused'] / 2**20:.1f} MiB vs composite {peaks['composite'] / 2**20:.1f} MiB: "
         "the fused kernel should keep only the softmax for backward and work in place")


if __name__ == "__main__":
    main(globals())
