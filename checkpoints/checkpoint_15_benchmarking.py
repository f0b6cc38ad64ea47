"""Checkpoint 15 (benchmarking): Can I analyze performance and identify bottlenecks in ML systems?

Passing means your timing harness summarises repeated runs with the right
statistics and compares candidates in alternating rounds by paired ratios,
your profiler counts each layer's FLOPs as the textbook formulas do, charges
forward and backward time to the layer that did the work (so it finds a
bottleneck planted in a model), and cleans up after itself, and your roofline
tells memory-bound from compute-bound work. Time is simulated with a fake
clock wherever an answer depends on it, so the checks give the same result on
a busy machine.
"""

import numpy as np
from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch.core.autograd import backward_rule
from tinytorch.core.function import Function, MatMul
from tinytorch.nn import Conv2d, Flatten, Linear, Module, ReLU, Sequential
from tinytorch.nn.functional import cross_entropy
from tinytorch.profiling import Roofline, benchmark, compare, profile_model


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


CLOCK = FakeClock()


class SlowBackward(Function):
    """Identity whose backward rule takes 0.25 s of simulated time."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()


@backward_rule(SlowBackward)
def _slow_backward(ctx, grad):
    CLOCK.now += 0.25
    return (grad,)


class Planted(Module):
    """A layer that takes 0.5 s of simulated time forward and 0.25 s backward."""

    def __init__(self):
        super().__init__()
        self.linear = Linear(4, 4)

    def forward(self, x):
        CLOCK.now += 0.5
        return SlowBackward.apply(self.linear(x))


def check_the_harness_summarises_repeated_runs():
    """benchmark() skips the warm-up and reports median, quartiles and runs of the timed calls."""
    durations = iter([9.0] + [0.01 * k for k in (3, 1, 4, 1, 5, 9, 2)])

    def run():
        CLOCK.now += next(durations)

    result = benchmark(run, warmup=1, repeats=7, clock=CLOCK)
    assert result.runs == 7, f"expected 7 timed runs, got {result.runs}"
    assert abs(result.median - 0.03) < 1e-9, f"median {result.median}, expected 0.03 (the warm-up must not count)"
    assert abs(result.iqr - 0.03) < 1e-9, f"IQR {result.iqr}, expected 0.03 (Q3 0.045 - Q1 0.015)"
    assert abs(result.min - 0.01) < 1e-9, f"min {result.min}, expected 0.01"


def check_comparisons_alternate_and_pair_their_runs():
    """compare() runs candidates in rotating rounds and reports the median per-round ratio to the baseline."""
    order = []

    def candidate(name, seconds):
        def run():
            order.append(name)
            CLOCK.now += seconds
        return run

    comparison = compare({"base": candidate("base", 0.02), "new": candidate("new", 0.05)}, baseline="base",
                         warmup=0, repeats=4, clock=CLOCK)
    assert order == ["base", "new", "new", "base", "base", "new", "new", "base"], \
        f"rounds must alternate and rotate who goes first, got {order}"
    assert abs(comparison.ratio("new") - 2.5) < 1e-9, f"ratio {comparison.ratio('new')}, expected 2.5"


def check_flops_per_layer_match_the_formulas():
    """The profiler's forward FLOPs for Conv2d and Linear equal 2*N*O*OH*OW*C*k*k + bias and 2*N*in*out + bias."""
    manual_seed(0)
    model = Sequential(Conv2d(3, 8, 3, padding=1), ReLU(), Flatten(), Linear(8 * 6 * 6, 10))
    profile = profile_model(model, Tensor(np.ones((4, 3, 6, 6), np.float32)), runs=1, warmup=0)
    conv, linear = profile["0"], profile["3"]
    expected_conv = 2 * 4 * 8 * 6 * 6 * 3 * 9 + 4 * 8 * 6 * 6
    expected_linear = 2 * 4 * 288 * 10 + 4 * 10
    assert conv.flops == expected_conv, f"Conv2d FLOPs {conv.flops}, formula {expected_conv}"
    assert linear.flops == expected_linear, f"Linear FLOPs {linear.flops}, formula {expected_linear}"
    assert linear.param_bytes == (288 * 10 + 10) * 4, f"Linear parameter bytes {linear.param_bytes}"


def check_the_profiler_finds_a_planted_bottleneck():
    """Forward and backward time go to the layer that did the work; the planted layer is the bottleneck."""
    manual_seed(0)
    original_apply = Function.__dict__["apply"]
    model = Sequential(Linear(4, 4), ReLU(), Planted(), Linear(4, 2))
    targets = np.array([0, 1, 1])
    profile = profile_model(model, Tensor(np.ones((3, 4), np.float32)), lambda out: cross_entropy(out, targets),
                            runs=2, warmup=1, clock=CLOCK)
    planted = profile["2"]
    assert abs(planted.forward_time - 0.5) < 1e-9, f"the planted layer's forward time is {planted.forward_time}, expected 0.5"
    assert abs(planted.self_backward_time - 0.25) < 1e-9, \
        f"its backward time is {planted.self_backward_time}, expected 0.25: tag each node with the layer that made it"
    assert profile["0"].total_time == 0 and profile["3"].total_time == 0, "time was charged to layers that took none"
    assert profile.bottleneck() is planted, f"the bottleneck should be the planted layer, got {profile.bottleneck().name!r}"
    assert Function.__dict__["apply"] is original_apply, "Function.apply was not restored"
    assert MatMul.__dict__["backward"].__func__.__name__ == "matmul_backward", "a backward rule was not restored"
    assert all("forward" not in m.__dict__ for m in model.modules()), "a layer still has the profiler's forward wrapper"


def check_the_roofline_tells_memory_bound_from_compute_bound():
    """Roofline: ridge = peak / bandwidth; a ReLU is memory-bound and a large Linear compute-bound."""
    roof = Roofline(peak_flops=100e9, bandwidth=20e9)
    assert roof.ridge == 5.0, f"ridge {roof.ridge}, expected 5 FLOP/byte"
    assert np.allclose(roof.attainable([1.0, 50.0]), [20e9, 100e9]), "attainable must be min(peak, bandwidth * intensity)"
    manual_seed(0)
    model = Sequential(Linear(256, 256), ReLU())
    profile = profile_model(model, Tensor(np.ones((256, 256), np.float32)), runs=1, warmup=0)
    linear, relu = profile["0"], profile["1"]
    assert linear.intensity > 20 and relu.intensity < 0.5, \
        f"intensities: Linear {linear.intensity:.2f}, ReLU {relu.intensity:.2f} FLOP/byte (count bytes once per primitive)"
    assert roof.bound(relu.intensity) == "memory" and roof.bound(linear.intensity) == "compute"


if __name__ == "__main__":
    main(globals())
