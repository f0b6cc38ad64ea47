"""Hypothesis strategies shared by the tensor tests: shapes, shape pairs, float arrays.

Sizes stay small (at most 4 dimensions of at most 5) so that a property runs
in milliseconds; values stay finite and moderate so that comparisons with NumPy
test the operation, not float32 overflow.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Modest and without deadlines: the machine is shared, and timing is not what we test.
SETTINGS = settings(max_examples=50, deadline=None)

MAX_DIMS = 4
MAX_SIDE = 5


def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE):
    """Array shapes such as (), (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(min_dims: int = 0):
    """Pairs of shapes that broadcast together, e.g. ((3, 1), (4,)), with sizes of 1 on either side."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE
    ).map(lambda b: b.input_shapes)


@st.composite
def incompatible_shapes(draw):
    """Pairs of shapes that do not broadcast: some aligned pair of sizes differs and neither is 1."""
    a = draw(shapes(min_dims=1, min_side=2))
    b = list(draw(shapes(min_dims=1, max_dims=len(a), min_side=1)))
    position = draw(st.integers(1, len(b)))
    b[-position] = a[-position] + draw(st.integers(1, 3))  # differs, and both sides are >= 2
    return a, tuple(b)


def float_arrays(shape, dtype=np.float32, low: float = -10.0, high: float = 10.0):
    """Arrays of finite floats in [low, high] (no NaN, no infinity)."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


def nonzero_arrays(shape, dtype=np.float32):
    """Arrays whose elements are at least 0.5 away from zero: safe divisors."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    magnitude = st.floats(0.5, 10.0, allow_nan=False, width=width)
    return hnp.arrays(dtype, shape, elements=st.one_of(magnitude, magnitude.map(lambda v: -v)))


def positive_arrays(shape, dtype=np.float32, low: float = 0.125, high: float = 10.0):
    """Arrays of positive floats: inputs for log, sqrt and fractional powers."""
    return float_arrays(shape, dtype, low, high)


@st.composite
def arrays_with_shapes(draw, shape_strategy=None, dtype=np.float32):
    """One float array of a drawn shape."""
    shape = draw(shape_strategy if shape_strategy is not None else shapes())
    return draw(float_arrays(shape, dtype))


@st.composite
def axes(draw, ndim: int):
    """A reduction axis argument for an ndim-dimensional array: None, an int (maybe negative) or a tuple."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return draw(hnp.valid_tuple_axes(ndim, min_size=1))


@st.composite
def matmul_shapes(draw):
    """Shape pairs that matmul accepts: vectors, matrices, and batches that broadcast."""
    m, k, n = (draw(st.integers(1, MAX_SIDE)) for _ in range(3))
    kind = draw(st.sampled_from(["matrix", "vector-left", "vector-right", "vectors", "batched"]))
    if kind == "matrix":
        return (m, k), (k, n)
    if kind == "vector-left":
        return (k,), (k, n)
    if kind == "vector-right":
        return (m, k), (k,)
    if kind == "vectors":
        return (k,), (k,)
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
    ).input_shapes
    return batch_a + (m, k), batch_b + (k, n)


@st.composite
def reshape_targets(draw, shape: tuple):
    """A new shape with as many elements as `shape` (its sizes reordered and regrouped), maybe one -1."""
    sides = list(shape)
    sides = draw(st.permutations(sides)) if sides else []
    grouped, current = [], 1
    for side in sides:  # merge neighbouring sizes at random
        current *= side
        if draw(st.booleans()):
            grouped.append(current)
            current = 1
    if current != 1 or not grouped:
        grouped.append(current)
    if draw(st.booleans()):
        grouped[draw(st.integers(0, len(grouped) - 1))] = -1
    return tuple(grouped)
