"""Checkpoint 04 (layers): Can I build the fundamental building blocks of neural networks?

Builds layers and small models with tinytorch and checks that they compute the
right values, that a Module finds every parameter under PyTorch's names, that
a state_dict moves a model's state exactly (and a bad one changes nothing), and
that initialisation keeps a deep stack's signal alive.
"""

import math
from collections import OrderedDict

import numpy as np

from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, ModuleList, Parameter, ReLU, Sequential


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class _Block(Module):
    """A custom layer holding its own Parameter, a submodule and a buffer."""

    def __init__(self):
        super().__init__()
        self.proj = Linear(4, 4)
        self.gain = Parameter(np.ones(4, dtype=np.float32))
        self.register_buffer("count", Tensor(np.zeros(1, dtype=np.float32)))

    def forward(self, x):
        return self.proj(x) * self.gain


class _Net(Module):
    def __init__(self):
        super().__init__()
        self.body = Sequential(Linear(3, 4), ReLU())
        self.blocks = ModuleList([_Block(), _Block()])
        self.head = Linear(4, 2)

    def forward(self, x):
        x = self.body(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def check_linear_computes_the_affine_map():
    """Linear(in, out) computes x @ W.T + b for single samples, batches and sequence batches."""
    manual_seed(0)
    layer = Linear(5, 3)
    assert layer.weight.shape == (3, 5), f"weight has shape {layer.weight.shape}; it must be (out_features, in_features) = (3, 5)"
    assert layer.bias is not None and layer.bias.shape == (3,), "bias must have shape (out_features,) = (3,)"
    layer.weight.data[...] = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    layer.bias.data[...] = [1.0, -1.0, 0.5]
    for shape in [(5,), (4, 5), (2, 3, 5)]:
        x = _x(*shape)
        y = layer(Tensor(x))
        expected = x @ layer.weight.data.T + layer.bias.data
        assert y.shape == expected.shape, f"input {shape} gave output {y.shape}, expected {expected.shape}"
        assert np.allclose(y.data, expected, atol=1e-5), \
            f"Linear computed wrong values for input {shape}: max error {np.abs(y.data - expected).max():.3g}"
    no_bias = Linear(5, 3, bias=False)
    x = _x(4, 5)
    assert np.allclose(no_bias(Tensor(x)).data, x @ no_bias.weight.data.T, atol=1e-5), "Linear(bias=False) must add no bias"
    try:
        layer(Tensor(_x(4, 6)))
    except ValueError:
        pass
    else:
        raise AssertionError("Linear(5, 3) accepted an input whose last dimension is 6; it must raise ValueError")


def check_parameters_are_discovered():
    """A model's parameters are found by walking its attributes, named as PyTorch names them."""
    net = _Net()
    expected = ["body.0.weight", "body.0.bias",
                "blocks.0.gain", "blocks.0.proj.weight", "blocks.0.proj.bias",
                "blocks.1.gain", "blocks.1.proj.weight", "blocks.1.proj.bias",
                "head.weight", "head.bias"]
    got = [name for name, _ in net.named_parameters()]
    assert got == expected, f"named_parameters() gave {got}, expected {expected}"
    count = sum(p.numel() for p in net.parameters())
    assert count == (3 * 4 + 4) + 2 * (4 + 4 * 4 + 4) + (4 * 2 + 2), f"parameter count {count} is wrong"
    buffers = [name for name, _ in net.named_buffers()]
    assert buffers == ["blocks.0.count", "blocks.1.count"], f"named_buffers() gave {buffers}"
    net.blocks[1].proj.weight = net.blocks[0].proj.weight
    shared = [name for name, _ in net.named_parameters()]
    assert shared.count("blocks.0.proj.weight") == 1 and "blocks.1.proj.weight" not in shared, \
        "a Parameter shared by two layers must be listed once"
    net.eval()
    assert not any(m.training for m in net.modules()), "eval() must reach every submodule"
    named = Sequential(OrderedDict([("fc1", Linear(2, 3)), ("act", ReLU()), ("fc2", Linear(3, 1))]))
    assert [n for n, _ in named.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], \
        "Sequential(OrderedDict(...)) must name parameters after its keys"


def check_state_dict_round_trips():
    """state_dict copies every parameter and buffer; load_state_dict restores them, or changes nothing."""
    manual_seed(1)
    source, target = _Net(), _Net()
    for p in source.parameters():
        p.data[...] = _x(*p.shape, seed=p.numel())
    x = Tensor(_x(6, 3, seed=5))
    state = source.state_dict()
    assert "blocks.0.count" in state, "state_dict must include buffers"
    saved_bias = source.head.bias.data.copy()
    source.head.bias.data[...] = 7.0
    assert np.array_equal(state["head.bias"], saved_bias), \
        "state_dict must hold copies: changing the model afterwards changed the saved state"
    source.head.bias.data[...] = saved_bias
    target.load_state_dict(state)
    assert np.array_equal(target(x).data, source(x).data), "after load_state_dict the two models compute different outputs"

    fresh = _Net()
    before = fresh.state_dict()
    wrong = dict(state, **{"head.weight": np.zeros((3, 4), dtype=np.float32)})
    try:
        fresh.load_state_dict(wrong)
    except ValueError:
        pass
    else:
        raise AssertionError("load_state_dict accepted head.weight of shape (3, 4) for a (2, 4) weight")
    missing = {k: v for k, v in state.items() if k != "body.0.bias"}
    try:
        fresh.load_state_dict(missing)
    except KeyError:
        pass
    else:
        raise AssertionError("load_state_dict accepted a state_dict without body.0.bias")
    changed = [k for k, v in fresh.state_dict().items() if not np.array_equal(v, before[k])]
    assert not changed, f"a failed load_state_dict still changed {changed}"


def check_initialisation_keeps_a_deep_signal():
    """Kaiming initialisation keeps activations alive through 16 Linear+ReLU layers; a tiny init does not."""
    manual_seed(2)
    x = Tensor(_x(256, 128, seed=3))

    def final_std(fill):
        h = x
        for _ in range(16):
            layer = Linear(128, 128)
            fill(layer.weight)
            init.zeros_(layer.bias)
            h = ReLU()(layer(h))
        return float(h.data.std())

    kaiming = final_std(lambda w: init.kaiming_uniform_(w, nonlinearity="relu"))
    tiny = final_std(lambda w: init.normal_(w, 0.0, 0.01))
    expected = math.sqrt(1 - 1 / math.pi)   # std of ReLU(N(0, 2)), which Kaiming preserves
    assert expected / 3 < kaiming < expected * 3, \
        f"with Kaiming init the activation std after 16 layers is {kaiming:.3g}; expected about {expected:.2f}"
    assert tiny < 1e-8, f"with N(0, 0.01^2) weights the signal should vanish, but its std is {tiny:.3g}"
    manual_seed(3)
    a = Linear(3, 3).weight.data.copy()
    manual_seed(3)
    assert np.array_equal(a, Linear(3, 3).weight.data), "manual_seed must make initial weights repeatable"


if __name__ == "__main__":
    main(globals())
