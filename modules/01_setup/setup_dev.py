# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
"""
# Setup

Before building a framework, know the machine it runs on. The same TinyTorch
code can be twice as fast on one laptop as on another, give a float64 result
where you expected float32, or (rarely, but it happens) compute a wrong matrix
product because of a broken numerical library. This short chapter builds two
functions that the rest of the course, and `tito system doctor`, rely on:

- `system_info()`: a dictionary describing the Python, the operating system,
  NumPy, the linear-algebra library (BLAS) under NumPy, the CPU cores and the
  memory of the machine;
- `check_environment()`: a list of problems that would stop the course from
  working, each one line saying what is wrong and what to do (empty when all is well).

Then we measure what the machine can do: how many floating-point operations
per second a matrix multiplication reaches, in float32 and in float64.

The cells marked `#| export` become `tinytorch/utils/environment.py`; the timers
of the last section become `tinytorch/utils/timing.py`.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp utils.environment

# %%
#| export
import os
import platform
import re
import sys

import numpy as np

# %% [markdown]
"""
## Background: what decides how fast (and how correct) the code is

**Python and NumPy versions.** TinyTorch declares Python 3.11 and NumPy 1.24
as its oldest supported versions (in `pyproject.toml`), and older ones lack
features its code uses. Versions
also change results, not only features: NumPy 2 changed its type-promotion rules
(NEP 50), so `np.float32(3) * 3.0` is float32 in NumPy 2 but float64 in NumPy
1.x. A bug report without versions is hard to reproduce for this reason.

**BLAS.** NumPy does not multiply matrices itself. `a @ b` calls a BLAS
(Basic Linear Algebra Subprograms) library: OpenBLAS in the NumPy wheels from
PyPI, Intel MKL in some distributions, Apple Accelerate on macOS. These
libraries use every trick the CPU offers (SIMD registers, fused multiply-add,
blocking for the caches, several threads), and the difference between them
can be several times in speed. The library is chosen when NumPy is built, so
the only way to know is to ask NumPy: `np.show_config(mode="dicts")` (NumPy
1.26 and later).

**Cores and threads.** BLAS runs a large matmul on several cores; elementwise
NumPy operations run on one. The number of cores *this process may use* can be
smaller than the machine's (containers and job schedulers restrict it), and
environment variables such as `OPENBLAS_NUM_THREADS` or `OMP_NUM_THREADS` cap
the BLAS threads.

**float32 vs float64.** A multiplication of two `n x n` matrices does `n³`
multiplies and `n³` adds: `2n³` floating-point operations (FLOPs). A CPU core
with 256-bit SIMD registers processes 8 float32 numbers or 4 float64 numbers per
instruction, so float32 can do about twice the FLOPs per second, and it moves
half the bytes. Dividing `2n³` by the measured time gives the achieved
GFLOP/s (billions of FLOPs per second), the number we measure at the end.
"""

# %% [markdown]
"""
## Implementation

### Step 1: describe the system

`system_info()` collects facts that are cheap to read and never fail: when a
fact cannot be read on this platform (the memory size on Windows, the BLAS name
on an old NumPy), its value is `None` rather than an exception, because a
diagnostic that crashes on an unusual machine is useless exactly where it is
needed.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_system_info", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _cpu_count() -> int:
    """Cores this process may use (a container or scheduler may allow fewer than the machine has)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memory_gb() -> float | None:
    """Physical memory in GB where the OS reports it through sysconf (Linux, macOS), else None."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):
        return None


def _blas_name() -> str | None:
    """The BLAS library NumPy was built with (NumPy >= 1.26 can say), e.g. 'scipy-openblas 0.3.27'."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older NumPy has no mode= argument; some builds lack the entry
        return None
    name, version = blas.get("name"), blas.get("version")
    if not name:
        return None
    return f"{name} {version}" if version and version != "unknown" else name


def system_info() -> dict:
    """Python, platform, NumPy, BLAS, cores and memory of this machine, as a dict of plain values.

    Returns:
        {"python": "3.11.7", "implementation": "CPython", "platform": ..., "machine": "x86_64",
         "numpy": "2.1.0", "blas": "scipy-openblas 0.3.27" or None,
         "cpu_count": 8, "memory_gb": 16.0 or None}
    """
    # Exactly these eight keys. The platform module gives the first four
    # (python_version(), python_implementation(), platform(), machine()), np.__version__
    # the fifth, and the three helpers above the rest: _blas_name(), _cpu_count(), _memory_gb().
    # Pitfall: never raise here; the helpers already return None for a fact this OS cannot give.
    ### BEGIN SOLUTION
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "blas": _blas_name(),
        "cpu_count": _cpu_count(),
        "memory_gb": _memory_gb(),
    }
    ### END SOLUTION


# %% [markdown]
"""
**What the next test checks, and why.** That `system_info()` returns every key
with a value of the right type, and that the values agree with what Python and
NumPy report through other routes (`sys.version_info`, `np.__version__`). Other
tools (`tito system info`, bug reports) print this dictionary, so a missing key
or a wrong type would break them.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_system_info", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_system_info():
    info = system_info()
    expected_keys = {"python", "implementation", "platform", "machine", "numpy", "blas", "cpu_count", "memory_gb"}
    assert set(info) == expected_keys, f"keys differ: {set(info) ^ expected_keys}"
    assert info["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert info["numpy"] == np.__version__
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert info["memory_gb"] is None or info["memory_gb"] > 0
    assert info["blas"] is None or isinstance(info["blas"], str)
    assert all(isinstance(info[k], str) and info[k] for k in ("platform", "implementation"))
    print("✓ system_info:", info)


test_unit_system_info()

# %% [markdown]
"""
### Step 2: check the environment

`check_environment()` returns a list of problems instead of raising at the
first one, so a learner sees everything to fix at once. It checks three
things: the Python version (3.11 or newer), the NumPy version (1.24 or newer),
and that NumPy's matmul gives correct results. The last check compares `a @ b`,
in float64 and float32, with a product computed without BLAS (broadcast the
two matrices against each other and sum), so a broken BLAS build cannot check
itself.

Version strings are not numbers (`"2.0.0rc1"`, `"1.26.4"`, `"3.13.0+"`), so
`_version_tuple` reads the leading numbers and compares tuples: `(1, 26) <
(2, 0)`, while the strings `"1.26" < "1.3"` would compare the wrong way.

The function takes the versions and the matmul as optional arguments. By
default it checks this machine; a test passes in an old version or a broken
matmul to prove that each check can fail.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_version_tuple", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
MIN_PYTHON = (3, 11)
MIN_NUMPY = (1, 24)


def _version_tuple(text: str) -> tuple[int, ...]:
    """'1.26.4' -> (1, 26, 4); '2.0.0rc1' -> (2, 0, 0); stops at the first part that is not a number.

    Args: text, a version string as Python or NumPy reports it ('3.13.0+', '1.24').
    Returns: a tuple of ints, so that versions compare as numbers: (1, 24) > (1, 3).
    """
    # Split on "." and read the leading digits of each part (re.match(r"\d+", part)).
    # A part with no leading digits ends the tuple; a part with digits followed by
    # something else ('0rc1', '0+') contributes its number and then ends the tuple.
    # Pitfall: never compare the strings themselves: "1.26" < "1.3" is True for strings.
    ### BEGIN SOLUTION
    numbers = []
    for part in str(text).split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)
    ### END SOLUTION


def _matmul_problem(matmul) -> str | None:
    """Compare matmul with a product computed without BLAS, in float64 and float32."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 48)), rng.standard_normal((48, 32))
    reference = (a[:, :, None] * b[None, :, :]).sum(axis=1)  # (64, 48, 1) * (1, 48, 32), summed over 48
    for dtype, tolerance in ((np.float64, 1e-9), (np.float32, 1e-3)):
        try:
            result = np.asarray(matmul(a.astype(dtype), b.astype(dtype)))
        except Exception as err:
            return f"NumPy's matmul failed in {np.dtype(dtype).name} ({type(err).__name__}: {err}); reinstall NumPy."
        if result.shape != reference.shape or not np.allclose(result, reference, rtol=tolerance, atol=tolerance):
            return (f"NumPy's matmul gives wrong {np.dtype(dtype).name} results (its BLAS library is broken); "
                    "reinstall NumPy from PyPI (pip install --force-reinstall numpy).")
    return None


def check_environment(python_version=None, numpy_version: str | None = None, matmul=None) -> list[str]:
    """Problems that stop TinyTorch from working here, one line each; an empty list means ready.

    Args:
        python_version: a version tuple to check instead of this interpreter's (for tests).
        numpy_version: a version string to check instead of the installed NumPy's.
        matmul: a function (a, b) -> a @ b to check instead of np.matmul.
    """
    # Collect every problem in a list instead of raising at the first one:
    # 1. Python: python_version (default sys.version_info[:3]), first two numbers < MIN_PYTHON;
    #    the line shows the version found ("3.9.18"), the one needed ("3.11") and what to do.
    # 2. NumPy: _version_tuple(numpy_version or np.__version__)[:2] < MIN_NUMPY, likewise.
    # 3. matmul: _matmul_problem(matmul or np.matmul) returns a problem line or None.
    ### BEGIN SOLUTION
    problems = []
    python_version = tuple(python_version or sys.version_info[:3])
    if python_version[:2] < MIN_PYTHON:
        found = ".".join(map(str, python_version))
        problems.append(f"Python {found} is too old: TinyTorch needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; "
                        "install a newer Python and recreate your virtual environment.")
    numpy_version = numpy_version or np.__version__
    if _version_tuple(numpy_version)[:2] < MIN_NUMPY:
        problems.append(f"NumPy {numpy_version} is too old: TinyTorch needs {MIN_NUMPY[0]}.{MIN_NUMPY[1]} or newer; "
                        "run: pip install --upgrade numpy")
    problem = _matmul_problem(matmul or np.matmul)
    if problem:
        problems.append(problem)
    return problems
    ### END SOLUTION


# %% [markdown]
"""
**What the next test checks, and why.** A checker that always says "all good"
is worse than none, so the test proves that each check can fail: an old Python,
an old NumPy (including pre-release version strings), a matmul that is slightly
off, one that returns the wrong shape, and one that raises must each produce
exactly one problem line that names the cause. And on this machine, which runs
the course, the list must be empty.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_check_environment", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_check_environment():
    assert _version_tuple("1.26.4") == (1, 26, 4) and _version_tuple("2.0.0rc1") == (2, 0, 0)
    assert _version_tuple("1.24") > _version_tuple("1.3"), "versions compare as numbers, not strings"
    assert check_environment() == [], check_environment()

    old_python = check_environment(python_version=(3, 9, 18))
    assert len(old_python) == 1 and "3.9.18" in old_python[0] and "3.11" in old_python[0]
    assert check_environment(python_version=(3, 11, 0)) == []
    old_numpy = check_environment(numpy_version="1.23.5")
    assert len(old_numpy) == 1 and "1.23.5" in old_numpy[0] and "1.24" in old_numpy[0]
    assert check_environment(numpy_version="1.24.0rc1") == []

    slightly_off = check_environment(matmul=lambda a, b: np.matmul(a, b) * 1.01)
    assert len(slightly_off) == 1 and "wrong" in slightly_off[0]
    assert len(check_environment(matmul=lambda a, b: np.matmul(a, b)[:, :-1])) == 1, "a wrong shape is a problem"

    def broken(a, b):
        raise RuntimeError("BLAS not found")

    failed = check_environment(matmul=broken)
    assert len(failed) == 1 and "BLAS not found" in failed[0]
    ### BEGIN HIDDEN TESTS
    both = check_environment(python_version=(3, 8), numpy_version="1.20.0")
    assert len(both) == 2, "every problem is reported at once"
    ### END HIDDEN TESTS
    print("✓ check_environment finds old versions and broken matmuls, and nothing wrong here")


test_unit_check_environment()

# %% [markdown]
"""
## Systems analysis: what this machine can do

How fast is matmul here, and how much faster is float32? We multiply square
matrices of a few sizes, take the fastest of several runs (the one least
disturbed by other programs), and convert to GFLOP/s with `2n³ / time`.
"""

# %% [markdown]
"""
Every later chapter times something, so the timers live in the package,
`tinytorch.utils.timing`, and the chapters import them. There are two ways
to summarise repeated runs. The **fastest** run is the one least disturbed
by other programs, which suits a clean figure for one operation such as a
matmul rate. The **median** is what a typical run costs, including the
hiccups a real program meets. When two versions are compared, they are run
**in turns**, so a machine that gets busier halfway through slows both
alike.
"""

# %%
#| export utils.timing
"""Timers the chapters share: the fastest of several runs, or the median, of one function or several in turns."""

import time

import numpy as np


def best_time(fn, repeats=5, budget=0.05):
    """The fastest run of fn, in seconds: at least `repeats` runs, more (up to 1000) while under `budget` s."""
    times, began = [], time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - began < budget and len(times) < 1000):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_times(fns, repeats=7):
    """Median seconds of each function, run in turns so that a busy machine slows all of them alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [float(np.median(record)) for record in times]


def median_time(fn, repeats=5):
    """Median seconds of fn over `repeats` runs."""
    return median_times([fn], repeats)[0]


# %%
rng = np.random.default_rng(0)
rates = {}
print(f"{'n':>6} {'float32 GFLOP/s':>16} {'float64 GFLOP/s':>16} {'float32 speed-up':>17}")
for n in (128, 256, 512, 1024):
    for dtype in (np.float32, np.float64):
        a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
        seconds = best_time(lambda: a @ b, repeats=5 if n < 1024 else 3, budget=0.2)
        rates[n, np.dtype(dtype).name] = 2 * n**3 / seconds / 1e9
    print(f"{n:6d} {rates[n, 'float32']:16.1f} {rates[n, 'float64']:16.1f} "
          f"{rates[n, 'float32'] / rates[n, 'float64']:16.2f}x")

info = system_info()
print(f"\nBLAS: {info['blas']}, cores available: {info['cpu_count']}, "
      f"BLAS thread limit from the environment: {os.environ.get('OPENBLAS_NUM_THREADS') or os.environ.get('OMP_NUM_THREADS') or 'none set'}")
if any(rates[big, d] < 0.5 * rates[small, d] for small, big in ((128, 256), (256, 512), (512, 1024))
       for d in ("float32", "float64")):
    print("note: the rate fell by more than half from one size to the next: another program was probably "
          "using the cores (see below). Rerun this cell for cleaner numbers.")
print(f"a 1024 x 1024 matrix takes {1024 * 1024 * 4 / 1e6:.1f} MB in float32 and {1024 * 1024 * 8 / 1e6:.1f} MB in float64")

# %% [markdown]
"""
Two patterns usually show up. The rate grows with `n` until it levels off:
small matrices do too little arithmetic to hide the fixed cost of each call
and of waking BLAS threads. And float32 reaches close to twice the float64
rate on large matrices, as the SIMD width predicts. Keep your float32 rate
for 1024 in mind: it is the ceiling for every layer you will write, and
chapter 15 compares measured layers with it.

A third pattern appears on a busy machine. BLAS splits a large matmul across
threads that wait for each other at every step; when other programs occupy the
cores, one delayed thread stalls all of them, and a matmul can run many times
slower than on a quiet machine (the note above flags it). That is why
benchmarks report the fastest of several runs, and why servers that run
several processes cap each one's BLAS threads.
"""

# %% [markdown]
"""
## Production context

PyTorch needs the same knowledge. `python -m torch.utils.collect_env` prints
the versions of Python, PyTorch, CUDA and the BLAS/LAPACK libraries, and
PyTorch's issue template asks for its output in every bug report;
`torch.__config__.show()` describes the build (MKL or OpenBLAS, oneDNN, SIMD
level), and `torch.get_num_threads()` / `torch.set_num_threads()` control
intra-op parallelism, as `OPENBLAS_NUM_THREADS` does for NumPy. Production
teams pin these versions (lock files, container images), because a different
BLAS or a different NumPy can change speed and even the last bits of results.
"""

# %% [markdown]
"""
## Integration

This is the first chapter, so there is nothing earlier to combine with; what
we can check is the package. The cell below imports the exported
`tinytorch.utils.environment`, the copy of this chapter's code that the package (and
`tito system doctor`) uses, and confirms the environment is ready for chapter 02.
"""

# %%
import tinytorch
from tinytorch.utils import environment as package_setup

print(f"tinytorch {tinytorch.__version__}")
problems = package_setup.check_environment()
assert set(package_setup.system_info()) == set(system_info())
print("environment ready for chapter 02" if not problems else "\n".join(problems))

# %% [markdown]
"""
## Run all the tests
"""

# %%
if __name__ == "__main__":
    test_unit_system_info()
    test_unit_check_environment()
    print("All tests of chapter 01 passed.")

# %% [markdown]
"""
## ML systems thinking

1. **Reproducibility.** Two teammates train the same model with the same seed
   and get losses that differ in the fifth digit. Which entries of
   `system_info()` would you compare first, and why can a different BLAS
   change the last bits of a sum?
2. **Parallelism.** Your float32 rate was measured with all the cores BLAS
   could use. If a data loader runs four worker processes on the same machine,
   each calling NumPy, what happens to the matmul rate, and which environment
   variable would you set?
3. **Precision and speed.** float32 roughly doubles the matmul rate and halves
   memory. What would you lose by training in float16 on a CPU without native
   float16 arithmetic, and why do GPUs change the answer?
"""

# %% [markdown]
"""
## Module summary

- `system_info()` reports Python, platform, NumPy, the BLAS library, usable
  cores and memory, with `None` where a platform cannot say;
- `check_environment()` returns one actionable line per problem (Python < 3.11,
  NumPy < 1.24, a matmul that disagrees with a BLAS-free reference), and each
  check is proven able to fail;
- you measured this machine's matmul rate in GFLOP/s and how much faster
  float32 is than float64: the reason TinyTorch, like PyTorch, defaults to float32.

Next, chapter 02 builds the Tensor on top of NumPy.
"""
