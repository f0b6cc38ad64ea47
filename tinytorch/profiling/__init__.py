"""Measuring tinytorch: a timing harness, a per-layer profiler, the roofline model, and the workloads the course measures."""

from tinytorch.profiling.benchmark import (
    BenchmarkResult,
    Comparison,
    benchmark,
    compare,
    format_time,
    minor_page_faults,
)
from tinytorch.profiling.profiler import (
    FLOP_RULES,
    LayerProfile,
    Profile,
    primitive_bytes,
    primitive_flops,
    profile_model,
)
from tinytorch.profiling.roofline import (
    Roofline,
    measure_bandwidth,
    measure_peak_flops,
    measure_roofline,
    roofline_points,
)
from tinytorch.profiling.workloads import AttentionBlock, reference_cnn
