"""Module, Parameter, Linear, Sequential, ModuleList and the initialisers (chapter 04_layers).

Each test states one behaviour. Layers are compared with PyTorch (forward and
every gradient) where it is installed, and gradchecked in float64 everywhere.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, ModuleList, Parameter, ReLU, Sequential

from torch_reference import compare_with_torch, requires_torch, torch


def floats(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


class Affine(Module):
    """Elementwise x * weight + bias with a buffer: the smallest layer with every kind of state."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.weight = Parameter(np.ones(n, dtype=np.float32))
        self.bias = Parameter(np.zeros(n, dtype=np.float32))
        self.constant = Tensor(np.float32(2.0))
        self.register_buffer("running", Tensor(np.zeros(n, dtype=np.float32)))

    def forward(self, x):
        return x * self.weight + self.bias


class Pair(Module):
    def __init__(self, n: int = 3):
        super().__init__()
        self.first = Affine(n)
        self.second = Affine(n)

    def forward(self, x):
        return self.second(self.first(x))


def names(pairs) -> list[str]:
    return [name for name, _ in pairs]


def fill_distinct(module: Module) -> None:
    for i, p in enumerate(module.parameters()):
        p.data[...] = np.arange(p.numel(), dtype=p.dtype).reshape(p.shape) + 10 * i


# ---- registration -----------------------------------------------------------------------------

def test_parameters_submodules_and_buffers_land_in_their_registries():
    pair = Pair()
    assert list(pair._modules) == ["first", "second"]
    assert list(pair.first._parameters) == ["weight", "bias"]
    assert list(pair.first._buffers) == ["running"]


def test_plain_tensor_attribute_is_neither_parameter_nor_buffer():
    layer = Affine()
    assert "constant" not in layer._parameters and "constant" not in layer._buffers
    assert all(p is not layer.constant for p in layer.parameters())


def test_assigning_a_parameter_before_super_init_says_what_to_do():
    class Forgetful(Module):
        def __init__(self):
            self.weight = Parameter(np.ones(2, dtype=np.float32))

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Forgetful()


def test_plain_attributes_may_be_set_before_super_init_as_in_pytorch():
    class Early(Module):
        def __init__(self):
            self.size = 3
            super().__init__()

    assert Early().size == 3


def test_assigning_a_tensor_over_a_parameter_raises_type_error():
    layer = Affine()
    with pytest.raises(TypeError, match="Parameter"):
        layer.weight = layer.weight * 2
    assert "weight" in layer._parameters, "the failed assignment must leave the parameter registered"


def test_assigning_a_non_module_over_a_submodule_raises_type_error():
    pair = Pair()
    with pytest.raises(TypeError, match="Module"):
        pair.first = 3


def test_assigning_none_to_a_parameter_removes_it_from_the_listing():
    layer = Affine()
    layer.bias = None
    assert layer.bias is None
    assert names(layer.named_parameters()) == ["weight"]
    assert "bias" not in layer.state_dict()


def test_reassigning_a_parameter_replaces_it_in_place_of_the_old_one():
    layer = Affine()
    new = Parameter(np.full(3, 5.0, dtype=np.float32))
    layer.weight = new
    assert layer.weight is new and dict(layer.named_parameters())["weight"] is new


def test_del_unregisters_a_parameter():
    layer = Affine()
    del layer.bias
    assert names(layer.named_parameters()) == ["weight"]
    assert not hasattr(layer, "bias")


def test_register_parameter_and_add_module_register_under_the_given_name():
    m = Module()
    m.register_parameter("scale", Parameter(np.ones(1, dtype=np.float32)))
    m.add_module("inner", Affine(2))
    assert names(m.named_parameters()) == ["scale", "inner.weight", "inner.bias"]
    assert m.inner is m._modules["inner"]


@pytest.mark.parametrize("bad", ["a.b", ""])
def test_registered_names_may_not_contain_dots_or_be_empty(bad):
    with pytest.raises(KeyError):
        Module().register_parameter(bad, Parameter(np.ones(1, dtype=np.float32)))


def test_registering_over_an_existing_plain_attribute_is_refused():
    m = Module()
    m.note = "hello"
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("note", Tensor(np.zeros(1, dtype=np.float32)))


def test_register_buffer_and_parameter_check_types():
    with pytest.raises(TypeError, match="Tensor"):
        Module().register_buffer("stats", np.zeros(3))
    with pytest.raises(TypeError, match="Parameter"):
        Module().register_parameter("w", Tensor(np.zeros(3, dtype=np.float32)))
    with pytest.raises(TypeError, match="Module"):
        Module().add_module("child", lambda x: x)


def test_assigning_a_tensor_to_a_buffer_name_updates_the_buffer():
    layer = Affine()
    new = Tensor(np.ones(3, dtype=np.float32))
    layer.running = new
    assert dict(layer.named_buffers())["running"] is new


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        Module()(Tensor(np.zeros(1, dtype=np.float32)))


# ---- names and order --------------------------------------------------------------------------

def test_named_parameters_use_dotted_paths_in_registration_order():
    assert names(Pair().named_parameters()) == ["first.weight", "first.bias", "second.weight", "second.bias"]


def test_named_parameters_prefix_and_recurse():
    pair = Pair()
    assert names(pair.named_parameters(prefix="model"))[0] == "model.first.weight"
    assert list(pair.parameters(recurse=False)) == []
    assert names(pair.first.named_parameters(recurse=False)) == ["weight", "bias"]


def test_sequential_names_parameters_by_position_as_pytorch_does():
    model = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    assert names(model.named_parameters()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_of_ordered_dict_uses_its_names():
    model = Sequential(OrderedDict([("fc1", Linear(4, 8)), ("act", ReLU()), ("fc2", Linear(8, 2))]))
    assert names(model.named_parameters()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert model.fc1 is model[0] and isinstance(model.act, ReLU)


def test_nested_containers_compose_their_names():
    class Net(Module):
        def __init__(self):
            super().__init__()
            self.body = Sequential(Linear(2, 3), ReLU(), Linear(3, 3))
            self.blocks = ModuleList([Linear(3, 3)])
            self.head = Linear(3, 1)

    assert names(Net().named_parameters()) == [
        "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
        "blocks.0.weight", "blocks.0.bias", "head.weight", "head.bias"]


def test_named_modules_and_named_children():
    model = Sequential(Linear(2, 3), ReLU(), Linear(3, 1))
    assert names(model.named_modules()) == ["", "0", "1", "2"]     # activation layers are Modules, as in PyTorch
    assert names(model.named_children()) == ["0", "1", "2"]
    assert list(model.children()) == [model[0], model[1], model[2]]


def test_named_buffers_use_dotted_paths():
    assert names(Pair().named_buffers()) == ["first.running", "second.running"]


@requires_torch
def test_parameter_names_match_torch_for_the_same_architecture():
    ours = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    assert names(ours.named_parameters()) == names(theirs.named_parameters())
    assert list(ours.state_dict()) == list(theirs.state_dict())


# ---- sharing ------------------------------------------------------------------------------------

def test_a_shared_parameter_is_listed_once():
    pair = Pair()
    pair.second.weight = pair.first.weight
    assert names(pair.named_parameters()) == ["first.weight", "first.bias", "second.bias"]
    assert sum(p.numel() for p in pair.parameters()) == 9


def test_a_shared_submodule_is_visited_once():
    shared = Linear(2, 2)
    model = Sequential(shared, ReLU(), shared)
    assert names(model.named_modules()) == ["", "0", "1"]           # as torch: the ReLU is a Module too
    assert names(model.named_parameters()) == ["0.weight", "0.bias"]


def test_state_dict_keeps_a_tied_weight_under_both_names_as_pytorch_does():
    pair = Pair()
    pair.second.weight = pair.first.weight
    state = pair.state_dict()
    assert "first.weight" in state and "second.weight" in state
    fresh = Pair()
    fresh.second.weight = fresh.first.weight
    fresh.load_state_dict(state)


# ---- modes, gradients, dtypes -------------------------------------------------------------------

def test_eval_and_train_reach_every_submodule():
    model = Sequential(Pair(), Sequential(Linear(2, 2)))
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model
    assert all(m.training for m in model.modules())


def test_train_takes_a_bool():
    with pytest.raises(ValueError, match="True or False"):
        Pair().train("no")


def test_zero_grad_clears_every_gradient_after_backward():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    model(Tensor(floats(5, 3))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_zero_grad_without_set_to_none_zeros_in_place():
    layer = Linear(3, 2)
    layer(Tensor(floats(4, 3))).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and not grad.data.any()


def test_requires_grad_false_freezes_every_parameter():
    model = Sequential(Linear(3, 2), Linear(2, 1)).requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_double_and_float_cast_parameters_and_buffers_in_place():
    pair = Pair()
    weight = pair.first.weight
    pair.double()
    assert pair.first.weight is weight, "casting keeps the Parameter objects an optimizer holds"
    assert all(t.dtype == np.float64 for t in list(pair.parameters()) + list(pair.buffers()))
    pair.float()
    assert all(t.dtype == np.float32 for t in list(pair.parameters()) + list(pair.buffers()))


def test_apply_visits_children_before_their_parent():
    seen = []
    model = Sequential(Linear(2, 2), Sequential(Linear(2, 2)))
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "Linear", "Sequential", "Sequential"]


def test_repr_shows_the_tree():
    model = Sequential(Linear(2, 3), ReLU())
    assert repr(model) == "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"
    assert repr(Pair()) == "Pair(\n  (first): Affine()\n  (second): Affine()\n)"


# ---- state_dict ------------------------------------------------------------------------------------

def test_state_dict_order_is_parameters_then_buffers_per_module_then_children():
    outer = Affine()
    outer.inner = Affine()
    assert list(outer.state_dict()) == ["weight", "bias", "running", "inner.weight", "inner.bias", "inner.running"]


def test_state_dict_values_are_copies():
    layer = Linear(3, 2)
    state = layer.state_dict()
    before = state["weight"].copy()
    layer.weight.data[...] = 0
    assert np.array_equal(state["weight"], before)
    state["bias"][...] = 99
    assert not np.any(layer.bias.data == 99)


def test_state_dict_leaves_out_non_persistent_buffers():
    layer = Affine()
    layer.register_buffer("mask", Tensor(np.ones(3, dtype=np.float32)), persistent=False)
    assert "mask" not in layer.state_dict()
    assert "mask" in dict(layer.named_buffers())


def test_load_state_dict_round_trip_restores_outputs_exactly():
    manual_seed(0)
    source = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    target = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    x = Tensor(floats(5, 4))
    assert not np.array_equal(source(x).data, target(x).data)
    target.load_state_dict(source.state_dict())
    assert np.array_equal(source(x).data, target(x).data)


def test_load_state_dict_writes_into_the_existing_parameters():
    layer, other = Linear(3, 2), Linear(3, 2)
    weight = layer.weight
    layer.load_state_dict(other.state_dict())
    assert layer.weight is weight and np.array_equal(layer.weight.data, other.weight.data)


def assert_unchanged(module: Module, snapshot: dict) -> None:
    for name, value in module.state_dict().items():
        assert np.array_equal(value, snapshot[name]), f"{name} changed although loading failed"


def test_load_state_dict_with_a_missing_key_raises_and_changes_nothing():
    pair, source = Pair(), Pair()
    fill_distinct(source)
    state = source.state_dict()
    del state["second.bias"]
    snapshot = pair.state_dict()
    with pytest.raises(KeyError, match="second.bias"):
        pair.load_state_dict(state)
    assert_unchanged(pair, snapshot)


def test_load_state_dict_with_an_unexpected_key_raises_and_changes_nothing():
    pair, source = Pair(), Pair()
    fill_distinct(source)
    state = dict(source.state_dict(), extra=np.zeros(2))
    snapshot = pair.state_dict()
    with pytest.raises(KeyError, match="extra"):
        pair.load_state_dict(state)
    assert_unchanged(pair, snapshot)


def test_load_state_dict_with_a_wrong_shape_raises_and_changes_nothing():
    model = Sequential(Linear(3, 4), Linear(4, 2))
    source = Sequential(Linear(3, 4), Linear(4, 2))
    fill_distinct(source)
    state = source.state_dict()
    state["1.weight"] = np.zeros((5, 5), dtype=np.float32)   # the last entry: everything before it fits
    snapshot = model.state_dict()
    with pytest.raises(ValueError, match=r"1\.weight: \(5, 5\) vs \(2, 4\)"):
        model.load_state_dict(state)
    assert_unchanged(model, snapshot)


def test_load_state_dict_with_values_that_cannot_be_converted_changes_nothing():
    layer = Linear(2, 1)
    snapshot = layer.state_dict()
    state = {"weight": np.ones((1, 2)), "bias": np.array(["x"])}
    with pytest.raises(ValueError):
        layer.load_state_dict(state)
    assert_unchanged(layer, snapshot)


def test_load_state_dict_non_strict_loads_what_fits_and_reports_the_rest():
    layer = Linear(3, 2)
    state = {"weight": np.ones((2, 3)), "unknown": np.zeros(1)}
    result = layer.load_state_dict(state, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["unknown"]
    assert np.all(layer.weight.data == 1)


def test_load_state_dict_converts_to_the_model_dtype_and_accepts_tensors():
    layer = Linear(3, 2)
    layer.load_state_dict({"weight": Tensor(np.ones((2, 3), dtype=np.float64)), "bias": [1.0, 2.0]})
    assert layer.weight.dtype == np.float32 and layer.bias.data.tolist() == [1.0, 2.0]


@requires_torch
def test_a_torch_state_dict_loads_into_the_tinytorch_twin():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    ours = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    ours.load_state_dict(theirs.state_dict())
    x = floats(5, 4)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(Tensor(x)).data, expected, atol=1e-6)


# ---- Linear --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4,), (5, 4), (2, 6, 4), (2, 1, 3, 4)])
def test_linear_computes_x_times_w_transposed_plus_b(shape):
    layer = Linear(4, 3)
    x = floats(*shape)
    y = layer(Tensor(x))
    assert y.shape == shape[:-1] + (3,)
    np.testing.assert_allclose(y.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6, atol=1e-6)


def test_linear_weight_is_out_by_in_and_bias_is_out():
    layer = Linear(5, 2)
    assert layer.weight.shape == (2, 5) and layer.bias.shape == (2,)
    assert layer.weight.dtype == np.float32 and isinstance(layer.weight, Parameter)


def test_linear_without_bias_has_no_bias_parameter():
    layer = Linear(4, 3, bias=False)
    x = floats(2, 4)
    assert layer.bias is None and names(layer.named_parameters()) == ["weight"]
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T, rtol=1e-6)


def test_linear_with_the_wrong_input_width_names_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"Linear\(4, 3\) got input of shape \(5, 3\); its last dimension must be 4"):
        Linear(4, 3)(Tensor(np.zeros((5, 3), dtype=np.float32)))


def test_linear_rejects_a_scalar_input():
    with pytest.raises(ValueError, match="last dimension must be 1"):
        Linear(1, 1)(Tensor(np.float32(2.0)))


def test_linear_default_init_is_uniform_within_one_over_sqrt_in_features():
    manual_seed(0)
    layer = Linear(400, 300)
    bound = 1 / math.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert abs(layer.weight.data.var() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3


def test_linear_reset_parameters_redraws():
    layer = Linear(3, 2)
    before = layer.weight.data.copy()
    layer.reset_parameters()
    assert not np.array_equal(before, layer.weight.data)


def test_linear_repr():
    assert repr(Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3)])
def test_gradcheck_linear_in_float64(shape):
    manual_seed(0)
    layer = Linear(3, 2)
    for p in layer.parameters():
        p.data = p.data.astype(np.float64)
    x = Tensor(floats(*shape, dtype=np.float64), requires_grad=True)
    assert gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


def linear_twins(in_features: int, out_features: int, bias: bool = True):
    """A float64 tinytorch Linear and a torch.nn.Linear holding the same weights."""
    tiny = Linear(in_features, out_features, bias=bias).double()
    ref = torch.nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    ref.load_state_dict({name: torch.from_numpy(value) for name, value in tiny.state_dict().items()})
    return tiny, ref


@requires_torch
@pytest.mark.parametrize("shape, bias", [((5, 4), True), ((4,), True), ((2, 6, 4), True), ((3, 4), False)])
def test_linear_matches_torch_forward_and_every_gradient(shape, bias):
    tiny, ref = linear_twins(4, 3, bias)
    compare_with_torch(tiny, ref, floats(*shape, dtype=np.float64))   # output and input gradient
    np.testing.assert_allclose(tiny.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-6, atol=1e-9)
    if bias:
        np.testing.assert_allclose(tiny.bias.grad.data, ref.bias.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_linear_bias_gradient_keeps_the_bias_shape_across_batch_sizes():
    """Regression: the bias gradient must be summed back to (out,) whatever the batch, step after step."""
    layer = Linear(3, 2)
    total_rows = 0
    for batch in [4, 1, 7, 2]:
        layer(Tensor(floats(batch, 3, seed=batch))).sum().backward()   # no zero_grad: gradients accumulate
        total_rows += batch
        assert layer.bias.grad.shape == (2,), f"bias grad has shape {layer.bias.grad.shape} after batch {batch}"
        assert layer.weight.grad.shape == (2, 3)
        np.testing.assert_allclose(layer.bias.grad.data, [total_rows, total_rows])
    layer.zero_grad()
    layer(Tensor(floats(2, 5, 3))).sum().backward()
    np.testing.assert_allclose(layer.bias.grad.data, [10, 10])


# ---- Sequential and ModuleList ----------------------------------------------------------------------

def test_sequential_applies_layers_in_order_including_plain_callables():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2), lambda t: t * 0 + 1)
    assert np.all(model(Tensor(floats(5, 3))).data == 1)
    first, relu_, second = model[0], model[1], model[2]
    x = Tensor(floats(5, 3))
    np.testing.assert_allclose(model[:3](x).data, second(relu_(first(x))).data)


def test_sequential_slice_is_a_sequential_that_keeps_the_names():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    tail = model[1:]
    assert isinstance(tail, Sequential) and len(tail) == 2
    assert names(tail.named_parameters()) == ["2.weight", "2.bias"]
    assert tail[1] is model[2]


def test_sequential_append_registers_under_the_next_index():
    model = Sequential(Linear(3, 4), ReLU()).append(Linear(4, 1))
    assert len(model) == 3 and names(model.named_parameters())[-1] == "2.bias"
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Linear"]


def test_appending_to_a_slice_does_not_overwrite_a_kept_name():
    tail = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))[1:]      # names "1", "2"
    tail.append(Linear(2, 1))
    assert len(tail) == 3 and len(list(tail.parameters())) == 4
    assert names(tail.named_parameters()) == ["2.weight", "2.bias", "3.weight", "3.bias"]


def test_sequential_rejects_an_entry_that_cannot_be_called():
    with pytest.raises(TypeError, match="entry '1' is a int"):
        Sequential(Linear(2, 2), 3)


def test_a_plain_list_hides_parameters_and_module_list_registers_them():
    class Hidden(Module):
        def __init__(self):
            super().__init__()
            self.blocks = [Linear(2, 2), Linear(2, 2)]

    class Found(Module):
        def __init__(self):
            super().__init__()
            self.blocks = ModuleList([Linear(2, 2), Linear(2, 2)])

    assert list(Hidden().parameters()) == []
    assert names(Found().named_parameters()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]


def test_module_list_indexing_slicing_and_extend():
    blocks = ModuleList([Linear(2, 2)]).extend([Linear(2, 3), Linear(3, 1)])
    assert len(blocks) == 3 and blocks[-1].out_features == 1
    assert isinstance(blocks[1:], ModuleList) and len(blocks[1:]) == 2
    assert [b.out_features for b in blocks] == [2, 3, 1]
    with pytest.raises(TypeError, match="Module"):
        blocks.append(lambda x: x)


# ---- initialisers ----------------------------------------------------------------------------------

def empty(*shape, dtype=np.float32) -> Tensor:
    return Tensor(np.empty(shape, dtype=dtype))


def test_kaiming_uniform_stays_within_sqrt_6_over_fan_in_with_variance_2_over_fan_in():
    manual_seed(0)
    w = init.kaiming_uniform_(empty(512, 256))
    assert np.abs(w.data).max() <= math.sqrt(6 / 256)
    assert abs(w.data.var() - 2 / 256) < 0.03 * 2 / 256


def test_kaiming_uniform_with_fan_out_mode_uses_the_output_size():
    manual_seed(0)
    w = init.kaiming_uniform_(empty(128, 1024), mode="fan_out", nonlinearity="relu")
    assert np.abs(w.data).max() <= math.sqrt(6 / 128) and np.abs(w.data).max() > math.sqrt(6 / 1024)


def test_kaiming_normal_has_std_gain_over_sqrt_fan_in():
    manual_seed(0)
    w = init.kaiming_normal_(empty(512, 256), nonlinearity="relu")
    assert abs(w.data.std() - math.sqrt(2 / 256)) < 0.02 * math.sqrt(2 / 256)


def test_xavier_uniform_stays_within_its_bound_with_variance_2_over_fan_sum():
    manual_seed(0)
    w = init.xavier_uniform_(empty(512, 256))
    assert np.abs(w.data).max() <= math.sqrt(6 / 768)
    assert abs(w.data.var() - 2 / 768) < 0.03 * 2 / 768


def test_xavier_normal_std():
    manual_seed(0)
    w = init.xavier_normal_(empty(512, 256), gain=2.0)
    assert abs(w.data.std() - 2 * math.sqrt(2 / 768)) < 0.02 * 2 * math.sqrt(2 / 768)


def test_fans_of_a_convolution_weight_include_the_kernel():
    assert init._fans((16, 3, 5, 5)) == (75, 400)
    assert init._fans((10, 4)) == (4, 10)


def test_fans_of_a_scalar_raise():
    with pytest.raises(ValueError, match="0-d"):
        init.kaiming_uniform_(Tensor(np.float32(0.0)))


def test_kaiming_rejects_an_unknown_mode_and_gain_an_unknown_nonlinearity():
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(empty(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")


@requires_torch
@pytest.mark.parametrize("nonlinearity, param", [("linear", None), ("sigmoid", None), ("tanh", None),
                                                 ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                                                 ("selu", None)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initialisers_fill_in_place_and_keep_the_dtype(dtype):
    for fill in (lambda t: init.uniform_(t, -1, 1), init.normal_, init.xavier_uniform_, init.kaiming_normal_):
        t = empty(8, 4, dtype=dtype)
        array = t.data
        assert fill(t) is t and t.data is array and t.dtype == dtype


def test_initialisers_fill_a_non_contiguous_view():
    base = Tensor(np.zeros((4, 6), dtype=np.float32))
    view = Tensor._wrap(base.data[:, ::2])
    init.uniform_(view, 1.0, 2.0)
    assert np.all((base.data[:, ::2] >= 1) & (base.data[:, ::2] <= 2)) and not base.data[:, 1::2].any()


def test_constant_zeros_and_ones():
    t = empty(2, 3)
    assert np.all(init.constant_(t, 0.5).data == 0.5)
    assert not init.zeros_(t).data.any()
    assert np.all(init.ones_(t).data == 1)


def test_manual_seed_makes_initialisation_reproducible():
    manual_seed(42)
    first = Sequential(Linear(5, 4), Linear(4, 3)).state_dict()
    manual_seed(42)
    second = Sequential(Linear(5, 4), Linear(4, 3)).state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    third = Sequential(Linear(5, 4), Linear(4, 3)).state_dict()
    assert not np.array_equal(first["0.weight"], third["0.weight"])


# ---- LinearFused: the fast path against the composition ------------------------------------------

from hypothesis import given
from hypothesis import strategies as st

from strategies import SETTINGS
from tinytorch.nn.layers import LinearFused


def composed_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The reference: x @ W.T (+ b) through MatMul, Transpose and Add."""
    out = x @ weight.T
    return out + bias if bias is not None else out


@SETTINGS
@given(leading=st.lists(st.integers(1, 4), min_size=1, max_size=3), n_in=st.integers(1, 5),
       n_out=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_fused_equals_the_composition_in_values_and_every_gradient(leading, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((*leading, n_in)), rng.standard_normal((n_out, n_in))]
    arrays += [rng.standard_normal(n_out)] if bias else []
    upstream = Tensor(rng.standard_normal((*leading, n_out)))
    results = []
    for run in (lambda *t: LinearFused.apply(*t), lambda x, w, b=None: composed_linear(x, w, b)):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        out = run(*tensors)
        out.backward(upstream)
        results.append([out.data] + [t.grad.data for t in tensors])
    for fast, slow in zip(*results):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_linear_sends_a_float_batch_through_the_fused_primitive_and_a_single_row_through_the_composition():
    layer = Linear(3, 2)
    assert isinstance(layer(Tensor(floats(4, 3)))._ctx, LinearFused)
    single = layer(Tensor(floats(3)))
    assert single._ctx is not None and not isinstance(single._ctx, LinearFused)


def test_linear_fused_gradcheck_in_float64():
    rng = np.random.default_rng(3)
    x, w, b = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in [(2, 3, 4), (5, 4), (5,)])
    assert gradcheck(lambda x, w, b: LinearFused.apply(x, w, b), [x, w, b])
