"""Checkpoint 10 (optimizers): Can I optimize neural networks with sophisticated algorithms?

Passes when SGD (with momentum, Nesterov and weight decay), Adam and AdamW
follow PyTorch's update rules over several steps, the schedulers follow
their closed forms, a saved optimizer resumes exactly, Adam's state costs
two arrays per parameter, and an MLP trained with these optimizers learns.
"""

from _harness import main

import math

import numpy as np

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.nn import Linear, ReLU, Sequential
from tinytorch.nn.functional import log_softmax
from tinytorch.optim import SGD, Adam, AdamW
from tinytorch.optim.lr_scheduler import CosineAnnealingLR, StepLR

RNG = np.random.default_rng(9)
GRADS = [RNG.standard_normal(4) for _ in range(5)]
START = RNG.standard_normal(4)


def _run(optimizer_class, **kwargs):
    p = Tensor(START.copy(), requires_grad=True)
    opt = optimizer_class([p], **kwargs)
    for g in GRADS:
        p.grad = Tensor(g.copy())
        opt.step()
    return p.data


def _reference_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    # torch.optim.SGD's documented rule, written out independently of the chapter's code.
    p, velocity = START.copy(), None
    for grad in GRADS:
        d = grad + weight_decay * p
        if momentum:
            velocity = d.copy() if velocity is None else momentum * velocity + (1 - dampening) * d
            d = (d + momentum * velocity) if nesterov else velocity
        p = p - lr * d
    return p


def _reference_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    (b1, b2), p = betas, START.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
    return p


def _agree(name, got, expected):
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-12), \
        f"{name} after {len(GRADS)} steps is {got}, PyTorch's update rule gives {expected}"


def check_sgd():
    """SGD, with momentum, dampening, Nesterov momentum and weight decay, follows PyTorch's update rule."""
    for kwargs in (dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.5),
                   dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.1, momentum=0.5, weight_decay=0.1)):
        _agree(f"SGD({kwargs})", _run(SGD, **kwargs), _reference_sgd(**kwargs))


def check_adam():
    """Adam's bias-corrected steps (and its L2 weight decay) follow PyTorch's update rule."""
    for kwargs in (dict(lr=0.01), dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.01, weight_decay=0.1)):
        _agree(f"Adam({kwargs})", _run(Adam, **kwargs), _reference_adam(**kwargs))
    p = Tensor(np.zeros(3), requires_grad=True)
    p.grad = Tensor(np.array([1e-4, -3.0, 500.0]))
    Adam([p], lr=0.01).step()
    assert np.allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-4), \
        f"Adam's first step should be lr * sign(grad) = [-0.01, 0.01, -0.01] (bias correction), got {p.data}"


def check_adamw():
    """AdamW decays the weights directly (decoupled), with PyTorch's default weight_decay of 0.01."""
    _agree("AdamW(lr=0.01)", _run(AdamW, lr=0.01), _reference_adam(0.01, weight_decay=0.01, decoupled=True))
    _agree("AdamW(lr=0.1, weight_decay=0.3)", _run(AdamW, lr=0.1, weight_decay=0.3),
           _reference_adam(0.1, weight_decay=0.3, decoupled=True))


def check_float32_in_place():
    """Steps update float32 parameters in place and keep them float32."""
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps), lambda ps: AdamW(ps)):
        p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
        array = p.data
        p.grad = Tensor(np.ones(3, dtype=np.float32))
        make([p]).step()
        assert p.data is array and p.dtype == np.float32, f"a step replaced the array or changed its dtype to {p.dtype}"


def check_schedulers():
    """StepLR and CosineAnnealingLR set the optimizer's lr to PyTorch's formulas, epoch by epoch."""
    for make, formula in ((lambda o: StepLR(o, step_size=3, gamma=0.5), lambda e: 0.1 * 0.5 ** (e // 3)),
                          (lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.01),
                           lambda e: 0.01 + 0.09 * (1 + math.cos(math.pi * e / 6)) / 2)):
        opt = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
        scheduler = make(opt)
        for epoch in range(10):
            lr = opt.param_groups[0]["lr"]
            assert abs(lr - formula(epoch)) < 1e-12, \
                f"{type(scheduler).__name__}: lr at epoch {epoch} is {lr}, expected {formula(epoch)}"
            scheduler.step()


def check_resume():
    """An optimizer restored from state_dict() continues exactly as the original."""
    p = Tensor(START.copy(), requires_grad=True)
    opt = Adam([p], lr=0.05)
    for g in GRADS[:2]:
        p.grad = Tensor(g.copy())
        opt.step()
    saved, data = opt.state_dict(), p.data.copy()
    q = Tensor(data, requires_grad=True)
    resumed = Adam([q], lr=0.05)
    resumed.load_state_dict(saved)
    for g in GRADS[2:]:
        for t, o in ((p, opt), (q, resumed)):
            t.grad = Tensor(g.copy())
            o.step()
    assert np.array_equal(p.data, q.data), "training resumed from state_dict() diverged from the original run"


def check_state_memory():
    """Adam keeps exactly two parameter-sized arrays per parameter; momentum SGD one."""
    model = Sequential(Linear(20, 30), ReLU(), Linear(30, 5))
    weights = sum(p.nbytes for p in model.parameters())
    for make, factor in ((lambda ps: SGD(ps, lr=0.1, momentum=0.9), 1), (lambda ps: Adam(ps), 2)):
        opt = make(list(model.parameters()))
        for p in model.parameters():
            p.grad = Tensor(np.ones(p.shape, dtype=np.float32))
        opt.step()
        state = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
        assert state == factor * weights, f"{type(opt).__name__} state is {state} bytes, expected {factor} x {weights}"


def check_model_learns():
    """An MLP trained with Adam and a cosine schedule classifies three Gaussian blobs above 95%."""
    manual_seed(9)
    labels = RNG.integers(0, 3, 300)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    x = Tensor((centers[labels] + 0.6 * RNG.standard_normal((300, 2))).astype(np.float32))
    model = Sequential(Linear(2, 32), ReLU(), Linear(32, 3))
    opt = Adam(model.parameters(), lr=0.02)
    scheduler = CosineAnnealingLR(opt, T_max=100)
    for _ in range(100):
        loss = -log_softmax(model(x), dim=1)[np.arange(300), labels].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
    with no_grad():
        accuracy = float((model(x).argmax(dim=1).data == labels).mean())
    assert accuracy > 0.95, f"accuracy after 100 Adam steps is {accuracy:.1%} (loss {loss.item():.3f}); the model did not learn"


if __name__ == "__main__":
    main(globals())
