"""Benchmarking (chapter 15): the timing harness, the per-layer profiler, the roofline, the workloads.

Timing statistics are tested on a fake clock, never on real time: the machine is shared.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import tinytorch.nn as nn
import tinytorch.nn.functional as F
from tinytorch import Tensor, manual_seed
from tinytorch.core.function import Add, Function, MatMul, Mul, Reshape
from tinytorch.kernels import SoftmaxCrossEntropy
from tinytorch.profiling import (
    AttentionBlock,
    BenchmarkResult,
    Comparison,
    Roofline,
    benchmark,
    compare,
    format_time,
    primitive_bytes,
    primitive_flops,
    profile_model,
    reference_cnn,
    roofline_points,
)

from torch_reference import requires_torch, torch

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def stepping(clock, durations, calls=None):
    """A function that advances the clock by the next duration on each call."""
    durations = iter(durations)

    def run():
        if calls is not None:
            calls.append(run)
        clock.advance(next(durations))
    return run


# ---- benchmark ----------------------------------------------------------------------------------------
def test_benchmark_statistics_on_a_fake_clock():
    clock = FakeClock()
    result = benchmark(stepping(clock, [0.004, 0.001, 0.003, 0.002, 0.010]), warmup=0, repeats=5, clock=clock)
    np.testing.assert_allclose(result.times, [0.004, 0.001, 0.003, 0.002, 0.010])
    np.testing.assert_allclose([result.median, result.q1, result.q3, result.iqr, result.min, result.max, result.mean],
                               [0.003, 0.002, 0.004, 0.002, 0.001, 0.010, 0.004])


def test_benchmark_does_not_time_the_warmup_calls():
    clock, calls = FakeClock(), []
    result = benchmark(stepping(clock, [5.0, 5.0, 0.1, 0.1], calls), warmup=2, repeats=2, clock=clock)
    assert len(calls) == 4 and result.runs == 2
    np.testing.assert_allclose(result.times, [0.1, 0.1])


def test_benchmark_keeps_running_until_min_time_but_not_past_max_runs():
    clock = FakeClock()
    assert benchmark(lambda: clock.advance(0.125), warmup=0, repeats=2, min_time=1.0, clock=clock).runs == 8
    assert benchmark(lambda: clock.advance(0.125), warmup=0, repeats=2, min_time=100.0, max_runs=5, clock=clock).runs == 5


def test_benchmark_reports_time_per_call_when_a_run_makes_several_calls():
    clock, calls = FakeClock(), []
    result = benchmark(stepping(clock, [0.001] * 12, calls), warmup=0, repeats=3, number=4, clock=clock)
    assert len(calls) == 12 and result.number == 4
    np.testing.assert_allclose(result.times, [0.001] * 3)


def test_benchmark_names_the_result_after_the_function_unless_told():
    def my_step():
        pass
    assert benchmark(my_step, warmup=0, repeats=1).name == "my_step"
    assert benchmark(my_step, warmup=0, repeats=1, name="step").name == "step"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page faults are counted where getrusage reports them")
def test_benchmark_counts_the_page_faults_of_fresh_memory():
    result = benchmark(lambda: np.ones(2**22, dtype=np.float32), warmup=1, repeats=3)   # 16 MiB, fresh each call
    assert len(result.faults) == 3 and result.faults_per_call >= 0


@pytest.mark.parametrize("options", [dict(repeats=0), dict(warmup=-1), dict(number=0), dict(min_time=-1.0)])
def test_benchmark_refuses_nonsense_counts(options):
    with pytest.raises(ValueError, match="benchmark: need"):
        benchmark(lambda: None, **options)


def test_result_prints_its_median_spread_and_runs():
    text = str(BenchmarkResult("step", (0.002, 0.004, 0.003)))
    assert text.startswith("step: median 3 ms") and "3 runs" in text


@pytest.mark.parametrize("seconds, text", [(2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 us"), (3e-9, "3 ns")])
def test_format_time_picks_a_readable_unit(seconds, text):
    assert format_time(seconds) == text


# ---- compare ------------------------------------------------------------------------------------------
def test_compare_gives_exact_ratios_to_the_baseline_on_a_fake_clock():
    clock = FakeClock()
    comparison = compare({"slow": lambda: clock.advance(0.03), "base": lambda: clock.advance(0.01),
                          "fast": lambda: clock.advance(0.005)}, baseline="base", warmup=0, repeats=4, clock=clock)
    assert comparison.baseline == "base" and comparison.rounds == 4
    assert math.isclose(comparison.ratio("slow"), 3.0) and math.isclose(comparison.ratio("fast"), 0.5)
    assert comparison.ratio("base") == 1.0


def test_compare_alternates_and_rotates_the_order_of_candidates():
    clock, order = FakeClock(), []
    candidates = {name: (lambda name=name: (order.append(name), clock.advance(0.001))) for name in "xyz"}
    compare(candidates, warmup=1, repeats=3, clock=clock)
    assert "".join(order) == "xyz" + "xyz" + "yzx" + "zxy"


def test_compare_defaults_to_the_first_candidate_as_baseline():
    assert compare({"a": lambda: None, "b": lambda: None}, warmup=0, repeats=1).baseline == "a"


def test_ratio_pairs_the_runs_of_each_round():
    baseline = BenchmarkResult("base", (1.0, 2.0, 10.0))
    candidate = BenchmarkResult("new", (3.0, 2.0, 30.0))     # per round: 3x, 1x, 3x
    comparison = Comparison({"base": baseline, "new": candidate}, "base")
    assert comparison.ratio("new") == 3.0                     # the ratio of the medians would say 1.0
    assert comparison.ratio_spread("new") == (2.0, 3.0)


def test_compare_stops_on_min_time_counted_over_all_candidates():
    clock = FakeClock()
    comparison = compare({"a": lambda: clock.advance(0.125), "b": lambda: clock.advance(0.125)},
                         warmup=0, repeats=1, min_time=1.0, clock=clock)
    assert comparison.rounds == 4


def test_compare_refuses_an_unknown_baseline_and_no_candidates():
    with pytest.raises(KeyError, match="baseline 'z' is not a candidate"):
        compare({"a": lambda: None}, baseline="z")
    with pytest.raises(ValueError, match="no candidates"):
        compare({})


def test_comparison_table_and_plot():
    comparison = Comparison({"base": BenchmarkResult("base", (0.01, 0.01)),
                             "new": BenchmarkResult("new", (0.02, 0.02))}, "base")
    table = comparison.to_markdown()
    assert table.splitlines()[0].startswith("| candidate | median |")
    assert "| new | 20 ms | 0 ns | 20 ms | 2 | 2.00x (2.00-2.00) |" in table and "1 (baseline)" in table
    ax = comparison.plot()
    assert [label.get_text() for label in ax.get_yticklabels()] == ["base", "new (2.00x)"]
    with pytest.raises(KeyError, match="no candidate named"):
        comparison.ratio("other")


# ---- primitive counts -------------------------------------------------------------------------------------
def test_matmul_flops_are_two_per_multiply_add_including_batches_and_vectors():
    a, b = np.ones((3, 4, 5)), np.ones((5, 6))
    assert primitive_flops(MatMul, [a, b], a @ b) == 2 * 3 * 4 * 6 * 5
    v = np.ones(5)
    assert primitive_flops(MatMul, [b.T, v], b.T @ v) == 2 * 6 * 5


def test_elementwise_and_unknown_primitives_count_one_flop_per_output():
    x, y = np.ones((4, 3)), np.ones(3)
    assert primitive_flops(Add, [x, y], x + y) == 12 and primitive_flops(Mul, [x, y], x * y) == 12

    class Custom(Function):
        pass
    assert primitive_flops(Custom, [x], x * 2) == 12


def test_fused_cross_entropy_counts_five_flops_per_logit():
    z = np.ones((4, 10))
    assert primitive_flops(SoftmaxCrossEntropy, [z], np.ones(4)) == 200


def test_views_move_no_bytes_and_copies_move_input_and_output():
    x = np.ones((4, 6), dtype=np.float32)
    assert primitive_flops(Reshape, [x], x.reshape(6, 4)) == 0
    assert primitive_bytes([x], x.reshape(6, 4)) == 0
    assert primitive_bytes([x, x], x + x) == 3 * x.nbytes


# ---- profile_model ------------------------------------------------------------------------------------------
def small_cnn():
    manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_profile_has_an_entry_per_layer_including_plain_callables():
    model = small_cnn()
    profile = profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), runs=1, warmup=0)
    assert [(layer.name, layer.kind, layer.depth) for layer in profile.layers] == [
        ("", "Sequential", 0), ("0", "Conv2d", 1), ("1", "ReLU", 1), ("2", "Flatten", 1), ("3", "Linear", 1)]
    assert [layer.name for layer in profile.leaves()] == ["0", "1", "2", "3"]
    assert profile["3"].kind == "Linear"
    with pytest.raises(KeyError, match="no layer named"):
        profile["9"]


def test_profile_flops_of_conv2d_and_linear_equal_the_formulas():
    model = small_cnn()
    N = 2
    profile = profile_model(model, Tensor(np.ones((N, 3, 8, 8), np.float32)), runs=1, warmup=0)
    O, OH, OW, C, k = 4, 4, 4, 3, 3
    assert profile["0"].flops == 2 * N * O * OH * OW * C * k * k + N * O * OH * OW
    assert profile["3"].flops == 2 * N * 64 * 5 + N * 5
    assert profile[""].flops == sum(layer.flops for layer in profile.leaves())


def test_profile_parameter_and_output_bytes():
    model = small_cnn()
    profile = profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), runs=1, warmup=0)
    assert profile["0"].param_bytes == (4 * 3 * 9 + 4) * 4 and profile["1"].param_bytes == 0
    assert profile[""].param_bytes == sum(p.nbytes for p in model.parameters())
    assert profile["0"].output_bytes == 2 * 4 * 4 * 4 * 4 and profile["3"].output_bytes == 2 * 5 * 4


def test_profile_times_are_nonnegative_and_nest():
    model = small_cnn()
    targets = np.array([0, 3])
    profile = profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), lambda out: F.cross_entropy(out, targets),
                            runs=2)
    for layer in profile.layers + [profile.loss]:
        assert layer.forward_time >= 0 and layer.backward_time >= 0 and layer.self_forward_time >= -1e-9
    assert profile[""].forward_time >= sum(layer.forward_time for layer in profile.leaves())
    assert profile["0"].backward_time > 0 and profile["3"].backward_time > 0 and profile.engine_time >= 0
    assert profile.backward_time >= profile[""].backward_time + profile.loss.backward_time
    assert profile.total_time == pytest.approx(profile.forward_time + profile.loss_time + profile.backward_time)
    assert profile.peak_memory >= profile.memory_after_forward > 0


def test_profile_charges_the_loss_primitives_to_the_loss():
    model = small_cnn()
    targets = np.array([1, 2])
    profile = profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), lambda out: F.cross_entropy(out, targets),
                            runs=1, warmup=0)
    assert profile.loss.flops >= 5 * 2 * 5                       # the fused primitive on (2, 5) logits
    assert profile[""].flops == sum(layer.flops for layer in profile.leaves())


def test_profile_counts_a_shared_module_once_with_two_calls():
    manual_seed(0)
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    profile = profile_model(model, Tensor(np.ones((2, 3), np.float32)), runs=1, warmup=0)
    assert [layer.name for layer in profile.layers] == ["", "0", "1"]
    assert profile["0"].calls == 2 and profile["0"].flops == 2 * (2 * 2 * 3 * 3 + 2 * 3)


def test_profile_attention_flops_cover_projections_scores_and_weighted_sum():
    manual_seed(0)
    B, T, d = 2, 6, 8
    block = AttentionBlock(d_model=d, n_heads=2)
    profile = profile_model(block, Tensor(np.ones((B, T, d), np.float32)), runs=1, warmup=0)
    matmuls = 8 * B * T * d * d + 4 * B * T * T * d                 # q, k, v and output projections; scores; weights @ v
    elementwise = profile["attn"].flops - matmuls
    assert 0 < elementwise < 20 * B * 2 * T * T + 20 * B * T * d, profile["attn"].flops


def test_profile_leaves_no_instrumentation_behind_even_when_the_model_raises():
    apply_before, add_rule = Function.__dict__["apply"], Add.__dict__["backward"]

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            self.linear(x) + 1.0
            raise RuntimeError("broken on purpose")

    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), Broken())
    relu = model.layers[1]
    with pytest.raises(RuntimeError, match="broken on purpose"):
        profile_model(model, Tensor(np.ones((1, 2), np.float32)), warmup=0)
    assert Function.__dict__["apply"] is apply_before and Add.__dict__["backward"] is add_rule
    assert all("forward" not in module.__dict__ for module in model.modules()) and model.layers[1] is relu


def test_profile_restores_backward_rules_after_a_loss():
    rule = MatMul.__dict__["backward"]
    model = small_cnn()
    profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), lambda out: out.sum(), runs=1, warmup=0)
    assert MatMul.__dict__["backward"] is rule
    assert "_profiler_owner" not in vars(Function)


def test_profile_without_a_loss_measures_the_forward_only():
    profile = profile_model(small_cnn(), Tensor(np.ones((2, 3, 8, 8), np.float32)), runs=1, warmup=0)
    assert profile.loss is None and profile.backward_time == 0.0 and profile.engine_time == 0.0
    assert "(autograd engine)" not in profile.table()


def test_profile_takes_a_tuple_of_arguments():
    manual_seed(0)
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    x = Tensor(np.ones((1, 4, 8), np.float32))
    profile = profile_model(attention, (x, x, x), runs=1, warmup=0)
    assert profile[""].kind == "MultiheadAttention" and profile["out_proj"].kind == "Linear"


def test_bottleneck_is_the_layer_with_the_most_own_time():
    model = small_cnn()
    targets = np.array([0, 1])
    profile = profile_model(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), lambda out: F.cross_entropy(out, targets),
                            runs=1, warmup=0)
    assert profile.bottleneck() is max(profile.layers + [profile.loss], key=lambda layer: layer.self_time)


def test_profile_table_markdown_and_plot():
    targets = np.array([0, 1])
    profile = profile_model(small_cnn(), Tensor(np.ones((2, 3, 8, 8), np.float32)),
                            lambda out: F.cross_entropy(out, targets), runs=1, warmup=0)
    table = profile.table()
    assert "Conv2d" in table and "(loss)" in table and "(autograd engine)" in table and "step total" in table
    assert "| 3 | Linear |" in profile.to_markdown()
    labels = [label.get_text() for label in profile.plot().get_yticklabels()]
    assert "0 Conv2d" in labels and "(autograd engine)" in labels


def test_profile_refuses_no_runs():
    with pytest.raises(ValueError, match="runs >= 1"):
        profile_model(small_cnn(), Tensor(np.ones((1, 3, 8, 8), np.float32)), runs=0)


# ---- roofline ------------------------------------------------------------------------------------------------
def test_roofline_ridge_and_attainable_rate():
    roof = Roofline(peak_flops=200e9, bandwidth=20e9)
    assert roof.ridge == 10.0
    np.testing.assert_allclose(roof.attainable([0.5, 10, 100]), [10e9, 200e9, 200e9])
    assert roof.bound(9.99) == "memory" and roof.bound(10) == "compute"
    assert roof.efficiency(0.5, 5e9) == pytest.approx(0.5)


def test_roofline_points_are_the_leaves_that_compute():
    profile = profile_model(small_cnn(), Tensor(np.ones((2, 3, 8, 8), np.float32)), runs=1, warmup=0)
    points = roofline_points(profile, prefix="cnn ")
    assert set(points) == {"cnn 0 Conv2d", "cnn 1 ReLU", "cnn 3 Linear"}            # Flatten does no arithmetic
    intensity, rate = points["cnn 3 Linear"]
    assert intensity == pytest.approx(profile["3"].flops / profile["3"].bytes_moved) and rate > 0
    ax = Roofline(100e9, 10e9).plot(points)
    assert ax.get_xscale() == "log" and len(ax.get_legend().get_texts()) == 4         # the roof and three layers


# ---- workloads --------------------------------------------------------------------------------------------------
def test_reference_cnn_maps_cifar_images_to_ten_scores_with_the_known_parameter_count():
    manual_seed(0)
    model = reference_cnn()
    assert model(Tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 896 + 18496 + 590080 + 2570


def test_attention_block_is_causal_and_keeps_its_shape():
    manual_seed(0)
    block = AttentionBlock(d_model=8, n_heads=2)
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    later = x.copy()
    later[:, 3:] += 1.0
    out, out_later = block(Tensor(x)).data, block(Tensor(later)).data
    assert out.shape == (2, 5, 8)
    np.testing.assert_allclose(out[:, :3], out_later[:, :3], atol=1e-6)


@requires_torch
def test_attention_block_matches_its_pytorch_twin_in_the_benchmark_script():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.pop(0)
    manual_seed(0)
    block = AttentionBlock(d_model=16, n_heads=4)
    twin = run_all.torch_attention_block(16, 4).double()
    for p in block.parameters():
        p.data = p.data.astype(np.float64)
    run_all.copy_weights(block, twin)
    x = np.random.default_rng(0).standard_normal((2, 7, 16))
    out, expected = block(Tensor(x)), twin(torch.from_numpy(x))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), atol=1e-10)
    (out * out).sum().backward()
    (expected * expected).sum().backward()
    grads = dict(block.named_parameters())
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(grads[name].grad.data, p.grad.numpy(), atol=1e-9, err_msg=name)


def test_benchmark_page_names_the_command_the_machine_and_every_workload():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.pop(0)
    rows = [run_all.Row(run_all.Workload("cnn", "reference CNN step", lambda: None),
                        BenchmarkResult("tinytorch", (0.05, 0.06)), BenchmarkResult("PyTorch", (0.03, 0.03)),
                        1.8, (1.7, 1.9), "9 arrays agree"),
            run_all.Row(run_all.Workload("gpt", "GPT step", lambda: None), BenchmarkResult("tinytorch", (0.2,)))]
    page = run_all.render_page(rows, ["attention: skipped"], ["**Machine:** x86_64, 2 cores"],
                               "python benchmarks/run_all.py --write-book", "2025-01-01 00:00 UTC", "benchmarks.png")
    assert page.startswith("# Benchmarks")
    assert "| cnn: reference CNN step | 55 ms (5 ms) | 30 ms (0 ns) | 1.80x (1.70-1.90) |" in page
    assert "| gpt: GPT step | 200 ms (0 ns) | - | - |" in page
    assert "`python benchmarks/run_all.py --write-book`" in page and "2 cores" in page and "2025-01-01" in page
    assert "![" in page and "attention: skipped" in page and "9 arrays agree" in page


def test_benchmark_agreement_check_measures_each_array_its_own_way():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.pop(0)
    reference = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    one_term_moved = reference.copy()
    one_term_moved[7] += 0.05 * np.abs(reference).max()       # what a flipped max-pool window does
    with pytest.raises(SystemExit, match="g differs between tinytorch and PyTorch by 5.0e-02"):
        run_all.agreement("w", [("g", one_term_moved, reference)])
    assert "(g)" in run_all.agreement("w", [("g", one_term_moved, reference, run_all.ByNorm(5e-2))])
    wrong = reference * 1.2                                   # a real mistake moves every term
    with pytest.raises(SystemExit, match="g differs between tinytorch and PyTorch by 2.0e-01"):
        run_all.agreement("w", [("g", wrong, reference, run_all.ByNorm(5e-2))])
    with pytest.raises(SystemExit, match="has shape"):
        run_all.agreement("w", [("g", reference[:5], reference)])


def test_profile_charges_forward_and_backward_time_to_the_layer_that_did_the_work():
    from tinytorch.core.autograd import backward_rule
    clock = FakeClock()

    class SlowBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

    @backward_rule(SlowBackward)
    def slow_backward(ctx, grad):
        clock.advance(0.25)
        return (grad,)

    class Planted(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(3, 3)

        def forward(self, x):
            clock.advance(0.5)
            return SlowBackward.apply(self.inner(x))

    manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), Planted(), nn.Linear(3, 2))
    profile = profile_model(model, Tensor(np.ones((2, 3), np.float32)), lambda out: out.sum(), runs=2, clock=clock)
    planted = profile["1"]
    assert planted.forward_time == pytest.approx(0.5) and planted.self_forward_time == pytest.approx(0.5)
    assert planted.self_backward_time == pytest.approx(0.25) and planted.backward_time == pytest.approx(0.25)
    assert profile["1.inner"].total_time == 0 and profile["0"].total_time == 0 and profile["2"].total_time == 0
    assert profile[""].backward_time == pytest.approx(0.25) and profile.engine_time == pytest.approx(0.0)
    assert profile.bottleneck() is planted
    assert SlowBackward.__dict__["backward"].__func__ is slow_backward
