"""tinytorch.deploy: packaging, serving, drift monitoring, quantization and pruning (chapter 16)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_reference import compare_with_torch, requires_torch, torch
from tinytorch import Tensor, gradcheck, manual_seed, no_grad
from tinytorch.deploy import (DriftMonitor, ModelFormatError, Predictor, QuantizedLinear, QuantizedWeight,
                              build_model, kolmogorov_sf, ks_2samp, load_model, model_info, model_nbytes,
                              prune_magnitude, psi, quantize, quantize_model, register_builder, save_model, sparsity)
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, Parameter, ReLU, Sequential

CONFIG = {"architecture": "mlp", "sizes": [6, 16, 3]}


def _model(seed: int = 0):
    manual_seed(seed)
    return build_model(CONFIG)


def _x(n: int = 20, features: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)


def _outputs(model, x):
    with no_grad():
        return model(Tensor(x)).data


def _rewrite(source, target, replace: dict):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            if replace.get(name, b"") is not None:
                dst.writestr(name, replace.get(name, src.read(name)))
    return target


@pytest.fixture
def saved(tmp_path):
    model = _model()
    path = save_model(tmp_path / "m.ttm", model, CONFIG, "2.1.0", input_shape=(6,), class_names=["a", "b", "c"])
    return model, path


# ---- packaging ------------------------------------------------------------------------------------------------
def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    x = _x()
    assert np.array_equal(_outputs(load_model(path), x), _outputs(model, x))


def test_loaded_model_is_in_eval_mode_and_records_no_graph(saved):
    loaded = load_model(saved[1])
    out = loaded(Tensor(_x()))
    assert not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    assert out._ctx is None and not out.requires_grad


def test_model_info_records_versions_shape_classes_and_checksum(saved):
    info = model_info(saved[1])
    assert info["format"] == "tinytorch-model" and info["format_version"] == 1
    assert info["model_version"] == "2.1.0" and info["architecture"] == CONFIG
    assert info["input_shape"] == [None, 6] and info["class_names"] == ["a", "b", "c"]
    assert len(info["weights_sha256"]) == 64 and info["tensors"]["0.weight"] == {"shape": [16, 6], "dtype": "float32"}


def test_the_file_is_a_zip_of_json_and_a_pickle_free_npz(saved):
    with zipfile.ZipFile(saved[1]) as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.npz"]
        with np.load(io.BytesIO(archive.read("weights.npz")), allow_pickle=False) as arrays:
            assert sorted(arrays.files) == sorted(saved[0].state_dict())


def test_saving_the_same_model_twice_gives_the_same_bytes(saved, tmp_path):
    again = save_model(tmp_path / "again.ttm", saved[0], CONFIG, "2.1.0", input_shape=(6,), class_names=["a", "b", "c"])
    assert again.read_bytes() == saved[1].read_bytes()


def test_loading_leaves_the_callers_random_stream_alone(saved):
    init.manual_seed(3)
    expected = init.generator().random()
    init.manual_seed(3)
    load_model(saved[1])
    assert init.generator().random() == expected


def test_saving_writes_no_temporary_files_beside_the_model(saved):
    assert [p.name for p in saved[1].parent.iterdir()] == ["m.ttm"]


def test_save_refuses_a_config_that_does_not_describe_the_model(tmp_path):
    with pytest.raises(ModelFormatError, match="does not describe this model"):
        save_model(tmp_path / "x.ttm", _model(), {"architecture": "mlp", "sizes": [6, 8, 3]})
    assert not (tmp_path / "x.ttm").exists()


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "nothing.ttm")


@pytest.mark.parametrize("damage, message", [
    ("cut", "damaged"),
    ("flip", "damaged"),
    ("text", "not a tinytorch model file"),
    ("swap", "checksum"),
    ("newer", "format version 2"),
    ("no_json", "has no model.json"),
    ("not_ours", "not a tinytorch model file"),
    ("bad_json", "not valid JSON"),
    ("unknown_arch", "unknown architecture"),
    ("wrong_shapes", "do not fit the architecture"),
])
def test_damaged_files_are_refused_with_one_line(saved, tmp_path, damage, message):
    model, path = saved
    data = path.read_bytes()
    target = tmp_path / f"{damage}.ttm"
    with zipfile.ZipFile(path) as archive:
        info = json.loads(archive.read("model.json"))
    if damage == "cut":
        target.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-150] + bytes([data[-150] ^ 0xFF]) + data[-149:])
    elif damage == "text":
        target.write_text("hello")
    elif damage == "swap":
        other = save_model(tmp_path / "other.ttm", _model(seed=5), CONFIG)
        with zipfile.ZipFile(other) as archive:
            _rewrite(path, target, {"weights.npz": archive.read("weights.npz")})
    elif damage == "newer":
        _rewrite(path, target, {"model.json": json.dumps(info | {"format_version": 2}).encode()})
    elif damage == "no_json":
        _rewrite(path, target, {"model.json": None})
    elif damage == "not_ours":
        _rewrite(path, target, {"model.json": json.dumps({"format": "something-else"}).encode()})
    elif damage == "bad_json":
        _rewrite(path, target, {"model.json": b"{not json"})
    elif damage == "unknown_arch":
        _rewrite(path, target, {"model.json": json.dumps(info | {"architecture": {"architecture": "rnn"}}).encode()})
    elif damage == "wrong_shapes":
        arch = {"architecture": "mlp", "sizes": [6, 8, 3]}
        _rewrite(path, target, {"model.json": json.dumps(info | {"architecture": arch}).encode()})
    with pytest.raises(ModelFormatError, match=message) as caught:
        load_model(target)
    assert "\n" not in str(caught.value)


def test_an_object_array_in_the_weights_is_refused_not_unpickled(saved, tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **{"0.weight": np.array([{"evil": 1}], dtype=object)})
    weights = buffer.getvalue()
    with zipfile.ZipFile(saved[1]) as archive:
        info = json.loads(archive.read("model.json")) | {"weights_sha256": hashlib.sha256(weights).hexdigest()}
    target = _rewrite(saved[1], tmp_path / "pickled.ttm", {"model.json": json.dumps(info).encode(), "weights.npz": weights})
    with pytest.raises(ModelFormatError, match="without pickle"):
        load_model(target)


def test_build_model_names_the_known_architectures():
    with pytest.raises(ModelFormatError, match="known: .*mlp.*sequential"):
        build_model({"architecture": "transformer"})
    with pytest.raises(ModelFormatError, match="cannot build"):
        build_model({"architecture": "mlp", "sizes": [3, 2], "depth": 3})


def test_mlp_builder_puts_the_activation_between_layers_only():
    model = build_model({"architecture": "mlp", "sizes": [4, 5, 6, 2], "activation": "tanh"})
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]


def test_sequential_builder_round_trips(tmp_path):
    config = {"architecture": "sequential",
              "layers": [["linear", {"in_features": 4, "out_features": 3}], ["relu", {}],
                         ["linear", {"in_features": 3, "out_features": 2, "bias": False}]]}
    manual_seed(0)
    model = build_model(config)
    path = save_model(tmp_path / "s.ttm", model, config)
    x = _x(features=4)
    assert np.array_equal(_outputs(load_model(path), x), _outputs(model, x))


def test_a_registered_builder_is_used_by_load_model(tmp_path):
    class Doubler(Module):
        def __init__(self, n):
            super().__init__()
            self.scale = Parameter(np.full(n, 2.0, np.float32))

        def forward(self, x):
            return x * self.scale

    register_builder("test-doubler")(Doubler)
    model = build_model({"architecture": "test-doubler", "n": 3})
    model.scale.data[...] = [1.0, 2.0, 3.0]
    path = save_model(tmp_path / "d.ttm", model, {"architecture": "test-doubler", "n": 3})
    assert np.array_equal(load_model(path).scale.data, [1.0, 2.0, 3.0])


def test_cnn_spec_builds_with_chapter_06_layers(tmp_path):
    pytest.importorskip("tinytorch.nn.spatial")
    config = {"architecture": "sequential",
              "layers": [["conv2d", {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}],
                         ["relu", {}], ["maxpool2d", {"kernel_size": 2}], ["flatten", {}],
                         ["linear", {"in_features": 4 * 4 * 4, "out_features": 3}]]}
    manual_seed(0)
    model = build_model(config)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    path = save_model(tmp_path / "cnn.ttm", model, config, input_shape=(1, 8, 8))
    assert np.array_equal(_outputs(load_model(path), x), _outputs(model, x))
    q = quantize_model(model)
    assert type(q[0]).__name__ == "QuantizedWeight"
    np.testing.assert_allclose(_outputs(q, x), _outputs(model, x), atol=0.05)
    qpath = save_model(tmp_path / "cnn-int8.ttm", q, config)
    assert np.array_equal(_outputs(load_model(qpath), x), _outputs(q, x))


def test_spatial_layers_without_chapter_06_name_the_chapter():
    try:
        import tinytorch.nn.spatial  # noqa: F401
    except ImportError:
        with pytest.raises(ModelFormatError, match="06_spatial"):
            build_model({"architecture": "sequential", "layers": [["conv2d", {}]]})
    else:
        pytest.skip("chapter 06 is exported, so conv2d builds")


# ---- serving ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 16, 1000])
def test_predictor_batches_give_the_outputs_of_one_call(batch_size):
    model, x = _model(), _x(37)
    predictor = Predictor(model, batch_size=batch_size)
    np.testing.assert_allclose(predictor.predict(x), _outputs(model, x), rtol=1e-5, atol=1e-5)  # float32 BLAS kernels differ by batch size
    stats = predictor.latency_stats()
    assert stats["requests"] == 37 and stats["batches"] == -(-37 // batch_size)


def test_predictor_accepts_a_list_of_single_requests_and_float64():
    model, x = _model(), _x(5)
    predictor = Predictor(model, batch_size=2)
    np.testing.assert_allclose(predictor.predict([row.astype(np.float64) for row in x]), _outputs(model, x), rtol=1e-5)
    assert predictor.predict_classes(x).tolist() == _outputs(model, x).argmax(1).tolist()


def test_predictor_latency_percentiles_are_ordered():
    predictor = Predictor(_model(), batch_size=4)
    predictor.predict(_x(40))
    stats = predictor.latency_stats()
    assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
    assert stats["throughput_per_s"] > 0
    predictor.reset_stats()
    with pytest.raises(RuntimeError, match="call predict"):
        predictor.latency_stats()


def test_predictor_from_file_checks_the_recorded_input_shape(saved):
    predictor = Predictor.from_file(saved[1], batch_size=8)
    assert predictor.input_shape == (6,) and predictor.class_names == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"must have shape \(6,\)"):
        predictor.predict(np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("bad", [0, -1])
def test_predictor_refuses_a_batch_size_below_one(bad):
    with pytest.raises(ValueError, match="at least 1"):
        Predictor(_model(), batch_size=bad)


def test_predictor_refuses_no_requests():
    with pytest.raises(ValueError, match="no requests"):
        Predictor(_model()).predict([])


# ---- monitoring -------------------------------------------------------------------------------------------------
def test_psi_matches_the_hand_computed_value():
    assert psi([0.0] * 50 + [1.0] * 50, [0.0] * 25 + [1.0] * 75, bins=[0.5]) == pytest.approx(0.27465, abs=1e-4)


def test_psi_with_fixed_edges_is_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(500), rng.standard_normal(500) + 0.3
    edges = np.linspace(-2, 2, 9)
    assert psi(a, b, edges) == pytest.approx(psi(b, a, edges))


def test_psi_is_near_zero_for_one_distribution_and_near_delta_squared_for_a_shift():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(50000), rng.standard_normal(50000)
    assert psi(a, b) < 0.005
    assert 0.2 < psi(a, b + 0.5) < 0.27                     # ten decile bins: 0.238 exactly; delta^2 = 0.25


def test_psi_stays_finite_when_a_bin_is_empty():
    assert np.isfinite(psi(np.random.default_rng(2).standard_normal(100), np.full(50, 9.0)))


def test_ks_statistic_of_the_hand_example():
    d, p = ks_2samp([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8])
    assert d == 0.5 and 0 < p < 1


def brute_force_ks(a, b) -> float:
    points = np.concatenate([a, b])
    return max(abs(np.mean(a <= x) - np.mean(b <= x)) for x in points)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=30), st.lists(st.integers(-5, 5), min_size=1, max_size=30))
def test_ks_statistic_matches_a_brute_force_scan_even_with_ties(a, b):
    a, b = np.array(a, float), np.array(b, float)
    assert ks_2samp(a, b)[0] == pytest.approx(brute_force_ks(a, b))
    assert ks_2samp(a, b)[0] == ks_2samp(b, a)[0]


@pytest.mark.parametrize("lam, expected", [(0.3, 0.99999), (0.5, 0.96394), (1.0, 0.26999), (1.224, 0.09993),
                                           (1.36, 0.04949), (1.6276, 0.01000), (3.0, 3.0e-8)])
def test_kolmogorov_tail_matches_tables(lam, expected):
    assert kolmogorov_sf(lam) == pytest.approx(expected, abs=2e-5)


def test_kolmogorov_tail_is_continuous_and_decreasing():
    lams = np.linspace(0.05, 3, 400)
    values = np.array([kolmogorov_sf(x) for x in lams])
    assert np.all(np.diff(values) <= 1e-15) and values[0] == pytest.approx(1.0) and values[-1] < 1e-7


def test_ks_two_samples_of_one_distribution_rarely_reject():
    rng = np.random.default_rng(3)
    p_values = [ks_2samp(rng.standard_normal(200), rng.standard_normal(300))[1] for _ in range(200)]
    assert np.mean(np.array(p_values) < 0.05) < 0.1           # about 5 % expected


def _reference():
    return np.random.default_rng(10).standard_normal((3000, 5))


def test_monitor_is_quiet_on_data_from_the_reference_distribution():
    monitor = DriftMonitor(_reference())
    alarms = [monitor.check(np.random.default_rng(s).standard_normal((400, 5))).drift_detected for s in range(20)]
    assert not any(alarms)


def test_monitor_names_exactly_the_shifted_and_rescaled_features():
    monitor = DriftMonitor(_reference(), feature_names=["a", "b", "c", "d", "e"])
    batch = np.random.default_rng(11).standard_normal((400, 5))
    batch[:, 1] += 1.0
    batch[:, 3] *= 2.5
    report = monitor.check(batch)
    assert report.drifted_features == ["b", "d"]
    assert json.loads(json.dumps(report.to_dict()))["drift_detected"] is True
    assert "DRIFT in b, d" in str(report)


def test_monitor_ignores_a_tiny_shift_that_is_significant_but_small():
    monitor = DriftMonitor(np.random.default_rng(12).standard_normal((20000, 1)))
    batch = np.random.default_rng(13).standard_normal((20000, 1)) + 0.1
    row = monitor.check(batch).features[0]
    assert row.p_value < 1e-6 and not row.drifted              # KS says "different", PSI says "barely"


@pytest.mark.parametrize("batch, message", [(np.zeros((10, 4)), r"shape \(samples, 5\)"),
                                            (np.full((10, 5), np.nan), "NaN in x0")])
def test_monitor_refuses_malformed_batches(batch, message):
    with pytest.raises(ValueError, match=message):
        DriftMonitor(_reference()).check(batch)


def test_monitor_refuses_a_reference_too_small_to_bin():
    with pytest.raises(ValueError, match="at least 20 samples"):
        DriftMonitor(np.zeros((5, 2)))


# ---- quantization -----------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.floats(1e-3, 1e3), st.booleans(), st.booleans(), st.integers(0, 1000))
def test_quantization_error_is_at_most_half_a_step(rows, cols, magnitude, symmetric, per_channel, seed):
    x = (np.random.default_rng(seed).standard_normal((rows, cols)) * magnitude).astype(np.float32)
    qt = quantize(x, symmetric=symmetric, per_channel=per_channel)
    assert qt.q.dtype == np.int8
    assert np.all(np.abs(qt.dequantize() - x) <= qt.scale / 2 * (1 + 1e-5) + 1e-30)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_zero_is_represented_exactly(symmetric, per_channel):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (4, 6, 3, 3)).astype(np.float32)   # all positive
    x[:, :, 1, 1] = 0
    assert np.all(quantize(x, symmetric=symmetric, per_channel=per_channel).dequantize()[x == 0] == 0)


def test_per_channel_scales_follow_the_output_axis_of_a_conv_weight():
    qt = quantize(np.ones((8, 3, 3, 3), np.float32), per_channel=True)
    assert qt.scale.shape == (8, 1, 1, 1) and qt.zero_point.shape == (8, 1, 1, 1)


def test_an_all_zero_tensor_quantizes_to_zeros():
    qt = quantize(np.zeros((3, 4)), symmetric=False, per_channel=True)
    assert np.all(qt.dequantize() == 0) and np.all(qt.scale == 1)


def test_symmetric_quantization_uses_the_restricted_range():
    qt = quantize(np.array([[-1.0, 0.5, 1.0]]))
    assert qt.q.tolist() == [[-127, 64, 127]] and qt.zero_point.item() == 0


@requires_torch
def test_affine_quantization_matches_pytorch_minmax_observer():
    from torch.ao.quantization.observer import MinMaxObserver
    x = (np.random.default_rng(1).standard_normal((7, 9)) * 3 + 1).astype(np.float32)
    observer = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_affine)
    observer(torch.tensor(x))
    scale, zero_point = observer.calculate_qparams()
    qt = quantize(x, symmetric=False)
    assert qt.scale.item() == pytest.approx(scale.item(), rel=1e-6) and qt.zero_point.item() == zero_point.item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                        # PyTorch 2.13 deprecates its quantized tensors
        expected = torch.quantize_per_tensor(torch.tensor(x), scale.item(), zero_point.item(), torch.qint8)
    assert np.array_equal(qt.q, expected.int_repr().numpy())


@requires_torch
def test_per_channel_affine_quantization_matches_pytorch():
    from torch.ao.quantization.observer import PerChannelMinMaxObserver
    x = (np.random.default_rng(2).standard_normal((5, 8)) * np.arange(1, 6)[:, None]).astype(np.float32)
    observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
    observer(torch.tensor(x))
    scales, zero_points = observer.calculate_qparams()
    qt = quantize(x, symmetric=False, per_channel=True)
    np.testing.assert_allclose(qt.scale.ravel(), scales.numpy(), rtol=1e-6)
    assert qt.zero_point.ravel().tolist() == zero_points.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.quantize_per_channel(torch.tensor(x), scales.double(), zero_points, 0, torch.qint8)
    assert np.array_equal(qt.q, expected.int_repr().numpy())


def _linear(n_in=12, n_out=5, seed=0):
    manual_seed(seed)
    return Linear(n_in, n_out)


def test_quantized_linear_stays_within_the_rounding_bound():
    linear, x = _linear(), _x(9, 12)
    layer = QuantizedLinear.from_float(linear)
    bound = layer.weight_scale.data.reshape(1, -1) / 2 * np.abs(x).sum(axis=1, keepdims=True)
    assert np.all(np.abs(_outputs(layer, x) - _outputs(linear, x)) <= bound * (1 + 1e-4) + 1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_mode_is_close_to_the_float_layer(symmetric, per_channel):
    linear, x = _linear(), _x(9, 12)
    layer = QuantizedLinear.from_float(linear, symmetric=symmetric, per_channel=per_channel, mode="int8")
    np.testing.assert_allclose(_outputs(layer, x), _outputs(linear, x), atol=0.05)


def test_int8_mode_refuses_an_input_that_needs_a_gradient():
    layer = QuantizedLinear.from_float(_linear(), mode="int8")
    with pytest.raises(RuntimeError, match="no_grad"):
        layer(Tensor(_x(2, 12), requires_grad=True))


def test_quantized_linear_stores_a_quarter_of_the_weight_bytes():
    linear = _linear(64, 32)
    layer = QuantizedLinear.from_float(linear)
    assert layer.weight_q.data.dtype == np.int8 and layer.weight_q.data.nbytes * 4 == linear.weight.data.nbytes


def test_quantized_linear_refuses_a_wrong_input_width_and_an_unknown_mode():
    with pytest.raises(ValueError, match="last dimension must be 12"):
        QuantizedLinear.from_float(_linear())(Tensor(_x(2, 11)))
    with pytest.raises(ValueError, match="mode must be"):
        QuantizedLinear(3, 2, mode="int4")


def test_gradcheck_quantized_linear_input():
    layer = QuantizedLinear.from_float(_linear(4, 3))
    layer.bias.data = layer.bias.data.astype(np.float64)
    assert gradcheck(lambda t: layer(t), [Tensor(_x(2, 4).astype(np.float64), requires_grad=True)])


def test_gradcheck_quantized_weight_wrapper_input():
    wrapped = QuantizedWeight(_linear(4, 3))
    wrapped.layer.bias.data = wrapped.layer.bias.data.astype(np.float64)
    assert gradcheck(lambda t: wrapped(t), [Tensor(_x(2, 4).astype(np.float64), requires_grad=True)])


@requires_torch
def test_quantized_linear_matches_torch_linear_with_the_dequantized_weight():
    layer = QuantizedLinear.from_float(_linear(6, 4))
    weight = layer.weight_q.data.astype(np.float64) * layer.weight_scale.data
    bias = layer.bias.data.astype(np.float64)
    compare_with_torch(lambda x: layer(x), lambda x: torch.nn.functional.linear(x, torch.tensor(weight), torch.tensor(bias)),
                       _x(3, 6))


class _Mix(Module):
    """Not a Linear, but forward reads a weight matrix: quantize_model must wrap it."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.random.default_rng(4).standard_normal((6, 6)).astype(np.float32))
        self.norm = Parameter(np.ones(6, np.float32))   # a 1-D weight-like parameter stays float

    def forward(self, x):
        return (x @ self.weight) * self.norm


def test_quantize_model_replaces_linears_wraps_other_matrices_and_keeps_the_original():
    model = Sequential(_Mix(), ReLU(), Linear(6, 3))
    before = copy.deepcopy(model.state_dict())
    q = quantize_model(model)
    assert [type(m).__name__ for m in q] == ["QuantizedWeight", "ReLU", "QuantizedLinear"]
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert q[0].layer.norm.dtype == np.float32 and q[0].layer.weight is None
    np.testing.assert_allclose(_outputs(q, _x(4)), _outputs(model, _x(4)), atol=0.1)
    assert q.quantization == {"symmetric": True, "per_channel": True, "mode": "dequantize"} and not q.training


def test_quantize_model_inplace_returns_the_same_object():
    model = _model()
    assert quantize_model(model, inplace=True) is model and isinstance(model[0], QuantizedLinear)


def test_quantize_model_refuses_a_quantized_model_and_a_bare_layer():
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(quantize_model(_model()))
    with pytest.raises(ValueError, match="from_float"):
        quantize_model(Linear(3, 2))


@pytest.mark.parametrize("mode", ["dequantize", "int8"])
def test_a_quantized_model_saves_and_loads_with_identical_outputs(tmp_path, mode):
    q = quantize_model(_model(), symmetric=False, per_channel=False, mode=mode)
    path = save_model(tmp_path / "q.ttm", q, CONFIG)
    loaded = load_model(path)
    assert loaded.quantization == q.quantization
    assert np.array_equal(_outputs(loaded, _x()), _outputs(q, _x()))
    assert model_nbytes(loaded) == model_nbytes(q) < model_nbytes(_model())


# ---- pruning ----------------------------------------------------------------------------------------------------
def _weights(model):
    return [m.weight.data for m in model if isinstance(m, Linear)]


@pytest.mark.parametrize("amount", [0.0, 0.25, 0.5, 0.9, 0.99])
def test_global_pruning_zeroes_exactly_the_requested_number_of_smallest_weights(amount):
    model = build_model({"architecture": "mlp", "sizes": [10, 20, 5]})
    magnitudes = np.concatenate([np.abs(w).ravel() for w in _weights(model)])
    masks = prune_magnitude(model, amount)
    zeros = sum(int((w == 0).sum()) for w in _weights(model))
    assert zeros == round(amount * magnitudes.size)
    kept = np.concatenate([m.ravel() for m in masks.values()])
    if 0 < zeros < magnitudes.size:
        assert magnitudes[~kept].max() <= magnitudes[kept].min()


def test_layer_pruning_gives_every_matrix_its_share():
    model = build_model({"architecture": "mlp", "sizes": [10, 20, 5]})
    prune_magnitude(model, 0.6, scope="layer")
    for w in _weights(model):
        assert (w == 0).sum() == round(0.6 * w.size)


def test_pruning_counts_ties_exactly():
    model = Sequential(Linear(4, 4))
    model[0].weight.data[...] = 1.0                            # sixteen equal magnitudes
    prune_magnitude(model, 0.25)
    assert (model[0].weight.data == 0).sum() == 4


def test_pruning_leaves_biases_alone_and_masks_mark_the_survivors():
    model = _model()
    biases = [m.bias.data.copy() for m in model if isinstance(m, Linear)]
    masks = prune_magnitude(model, 0.5)
    assert sorted(masks) == ["0.weight", "2.weight"]
    assert all(np.array_equal(b, m.bias.data) for b, m in zip(biases, [m for m in model if isinstance(m, Linear)]))
    assert all(np.array_equal(mask, w != 0) for mask, w in zip(masks.values(), _weights(model)))


def test_pruning_to_a_target_counts_zeros_already_there():
    model = _model()
    prune_magnitude(model, 0.5)
    prune_magnitude(model, 0.8)
    assert sparsity(model) == pytest.approx(0.8, abs=1 / 120)


@pytest.mark.parametrize("kwargs, message", [({"amount": 1.0}, r"in \[0, 1\)"), ({"amount": -0.2}, r"in \[0, 1\)"),
                                             ({"amount": 0.5, "scope": "row"}, "scope must be")])
def test_pruning_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune_magnitude(_model(), **kwargs)


def test_pruning_a_model_without_weight_matrices_is_an_error():
    with pytest.raises(ValueError, match="no weight matrices"):
        prune_magnitude(Sequential(ReLU()), 0.5)


@requires_torch
def test_global_pruning_matches_pytorch_global_unstructured():
    import torch.nn.utils.prune as torch_prune
    model = build_model({"architecture": "mlp", "sizes": [8, 16, 4]})
    reference = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for mine, theirs in zip(_weights(model), [reference[0].weight, reference[2].weight]):
            theirs.copy_(torch.tensor(mine))
    torch_prune.global_unstructured([(reference[0], "weight"), (reference[2], "weight")],
                                    pruning_method=torch_prune.L1Unstructured, amount=0.6)
    masks = prune_magnitude(model, 0.6)
    assert np.array_equal(masks["0.weight"], reference[0].weight_mask.numpy().astype(bool))
    assert np.array_equal(masks["2.weight"], reference[2].weight_mask.numpy().astype(bool))


def test_model_nbytes_counts_dense_and_csr_storage():
    model = _model()                                           # 6*16 + 16 + 16*3 + 3 = 163 float32
    assert model_nbytes(model) == 163 * 4
    assert model_nbytes(model, sparse=True) == (96 + 48) * 8 + 4 * (16 + 1) + 4 * (3 + 1) + (16 + 3) * 4
    prune_magnitude(model, 0.75)
    assert model_nbytes(model, sparse=True) == 36 * 8 + 4 * 17 + 4 * 4 + 19 * 4
    assert model_nbytes(quantize_model(_model(), per_channel=False)) == 144 + 2 * (4 + 4) + 19 * 4


# ---- ONNX export (optional: runs only where onnx and onnxruntime are installed) -------------------------------
def _onnx_run(path, x, optimize: bool = False):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_onnx_export_of_an_mlp_matches_onnx_runtime(tmp_path, activation):
    pytest.importorskip("onnx")
    from tinytorch.deploy import export_onnx
    manual_seed(0)
    model = build_model({"architecture": "mlp", "sizes": [6, 10, 3], "activation": activation})
    x = _x(7)
    np.testing.assert_allclose(_onnx_run(export_onnx(model, tmp_path / "m.onnx", (6,)), x), _outputs(model, x),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_onnx_export_keeps_int8_weights_and_matches_onnx_runtime(tmp_path, symmetric, per_channel):
    onnx = pytest.importorskip("onnx")
    from tinytorch.deploy import export_onnx
    q = quantize_model(_model(), symmetric=symmetric, per_channel=per_channel)
    path = export_onnx(q, tmp_path / "q.onnx", (6,))
    assert {t.data_type for t in onnx.load(str(path)).graph.initializer} >= {onnx.TensorProto.INT8}
    x = _x(9)
    np.testing.assert_allclose(_onnx_run(path, x), _outputs(q, x), rtol=1e-5, atol=1e-5)


def test_onnx_export_accepts_any_batch_size(tmp_path):
    pytest.importorskip("onnx")
    from tinytorch.deploy import export_onnx
    model = _model()
    path = export_onnx(model, tmp_path / "m.onnx", (6,))
    for n in (1, 33):
        assert _onnx_run(path, _x(n)).shape == (n, 3)


@pytest.mark.parametrize("pool", ["maxpool2d", "avgpool2d"])
def test_onnx_export_of_a_cnn_matches_onnx_runtime(tmp_path, pool):
    pytest.importorskip("onnx")
    pytest.importorskip("tinytorch.nn.spatial")
    from tinytorch.deploy import export_onnx
    config = {"architecture": "sequential",
              "layers": [["conv2d", {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1}],
                         ["relu", {}], [pool, {"kernel_size": 2}], ["flatten", {}],
                         ["linear", {"in_features": 3 * 2 * 2, "out_features": 4}]]}
    manual_seed(0)
    model = build_model(config)
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(_onnx_run(export_onnx(model, tmp_path / "c.onnx", (2, 9, 9)), x), _outputs(model, x),
                               rtol=1e-5, atol=1e-5)


def test_onnx_export_names_a_layer_it_cannot_export(tmp_path):
    pytest.importorskip("onnx")
    from tinytorch.deploy import export_onnx
    with pytest.raises(ValueError, match="cannot export _Mix"):
        export_onnx(Sequential(_Mix()), tmp_path / "x.onnx", (6,))


def test_onnx_export_without_onnx_says_what_to_install(tmp_path, monkeypatch):
    import sys
    from tinytorch.deploy import export_onnx
    monkeypatch.setitem(sys.modules, "onnx", None)            # importing onnx now fails, as if not installed
    with pytest.raises(ImportError, match="pip install onnx"):
        export_onnx(_model(), tmp_path / "m.onnx", (6,))


# ---- hostile model files: declared sizes, types, compression, bombs; atomic ONNX export ---------------------
def _with_info(path, target, **changes):
    with zipfile.ZipFile(path) as archive:
        info = json.loads(archive.read("model.json"))
    info.update(changes)
    return _rewrite(path, target, {"model.json": json.dumps(info).encode()})


def _with_weights(path, target, weights: bytes, **changes):
    with zipfile.ZipFile(path) as archive:
        info = json.loads(archive.read("model.json"))
    info.update(changes, weights_sha256=hashlib.sha256(weights).hexdigest())
    return _rewrite(path, target, {"model.json": json.dumps(info).encode(), "weights.npz": weights})


def test_a_small_model_json_declaring_a_huge_architecture_is_refused_before_allocating(saved, tmp_path):
    import tracemalloc

    target = _with_info(saved[1], tmp_path / "huge.ttm", architecture={"architecture": "mlp", "sizes": [200000, 200000]})
    assert target.stat().st_size < 8000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="declares 40000200000 parameters") as caught:
            load_model(target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    assert peak < 16 << 20, f"refusing it allocated {peak} bytes"


@pytest.mark.parametrize("change, message", [
    ({"architecture": {"architecture": "mlp", "sizes": "abc"}}, "sizes must be a list of positive integers"),
    ({"architecture": {"architecture": "mlp", "sizes": [6, -16, 3]}}, "sizes must be a list of positive integers"),
    ({"architecture": {"architecture": "mlp", "sizes": [6, True, 3]}}, "sizes must be a list of positive integers"),
    ({"architecture": "mlp"}, "not a config"),
    ({"architecture": {"architecture": "sequential", "layers": [["linear", {"in_features": 10 ** 6,
                                                                           "out_features": 10 ** 6}]]}}, "declares"),
    ({"architecture": {"architecture": "sequential", "layers": [["linear", [6, 3]]]}}, "kind, {options}"),
    ({"architecture": CONFIG | {"bogus": 1}}, "cannot build architecture"),
    ({"quantization": {"bogus": 1}}, "quantization"),
    ({"quantization": {"mode": 8}}, "quantization"),
    ({"tensors": {"0.weight": {"shape": [16, 6]}}}, "does not hold the tensors"),
    ({"tensors": {"0.weight": {"shape": "big"}}}, "tensors are not a mapping"),
    ({"input_shape": 6}, "input_shape"),
])
def test_malformed_model_json_is_refused_with_one_line(saved, tmp_path, change, message):
    target = _with_info(saved[1], tmp_path / "bad.ttm", **change)
    with pytest.raises(ModelFormatError, match=message) as caught:
        load_model(target)
    assert "\n" not in str(caught.value)


def test_an_npy_header_declaring_more_than_its_entry_holds_is_refused(saved, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("0.weight.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (200000, 200000)})
            f.write(bytes(16 * 6 * 4))
    target = _with_weights(saved[1], tmp_path / "forged.ttm", buffer.getvalue())
    with pytest.raises(ModelFormatError, match=r"declares \(200000, 200000\)"):
        load_model(target)


def test_a_decompression_bomb_in_the_weights_is_refused(saved, tmp_path):
    n = 200 << 20
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("0.weight.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
            zeros = bytes(1 << 20)
            for _ in range(n >> 20):
                f.write(zeros)
    assert len(buffer.getvalue()) < 2 << 20
    target = _with_weights(saved[1], tmp_path / "bomb.ttm", buffer.getvalue(), tensors={"0.weight": {"shape": [n]}})
    with pytest.raises(ModelFormatError, match="decompression bomb"):
        load_model(target)


def test_an_outer_entry_that_inflates_too_far_is_refused(saved, tmp_path):
    with zipfile.ZipFile(saved[1]) as archive:
        info, weights = json.loads(archive.read("model.json")), archive.read("weights.npz")
    info["padding"] = " " * (200 << 20)                       # 200 MiB of spaces deflate to about 200 KB
    target = tmp_path / "padded.ttm"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.json", json.dumps(info))
        archive.writestr("weights.npz", weights)
    with pytest.raises(ModelFormatError, match="decompression bomb|limit"):
        load_model(target)


@pytest.mark.parametrize("method, message", [(zipfile.ZIP_LZMA, "compression method 14"), (zipfile.ZIP_BZIP2, "compression method 12")])
def test_an_unknown_compression_method_is_refused(saved, tmp_path, method, message):
    target = tmp_path / "odd.ttm"
    with zipfile.ZipFile(saved[1]) as src, zipfile.ZipFile(target, "w", method) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    with pytest.raises(ModelFormatError, match=message):
        load_model(target)


def test_an_encrypted_entry_is_refused(saved, tmp_path):
    data = bytearray(saved[1].read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(signature)
        while i != -1:
            data[i + flag_offset] |= 0x01
            i = data.find(signature, i + 4)
    target = tmp_path / "locked.ttm"
    target.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="encrypted|damaged") as caught:
        load_model(target)
    assert "\n" not in str(caught.value)


def test_a_saved_model_honours_the_umask_and_keeps_an_existing_mode(tmp_path):
    import os

    old = os.umask(0o077)
    try:
        path = save_model(tmp_path / "m.ttm", _model(), CONFIG)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)
    save_model(path, _model(seed=3), CONFIG)
    assert path.stat().st_mode & 0o777 == 0o640


def test_export_onnx_writes_atomically(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    import os

    from tinytorch.deploy import export_onnx
    from tinytorch.training import checkpoint

    path = tmp_path / "m.onnx"
    path.write_bytes(b"the previous export")
    path.chmod(0o600)

    def interrupted(source, target):
        raise KeyboardInterrupt                                # as if the process stopped just before the rename
    monkeypatch.setattr(checkpoint.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(_model(), path, (6,))
    assert path.read_bytes() == b"the previous export" and os.listdir(tmp_path) == ["m.onnx"]
    monkeypatch.undo()
    export_onnx(_model(), path, (6,))
    assert path.read_bytes()[:1] != b"t" and path.stat().st_mode & 0o777 == 0o600
