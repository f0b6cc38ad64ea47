"""Checkpoint 01 (setup): Can I configure my TinyTorch development environment?

Passes when this machine runs the course (Python, NumPy and a correct matmul),
when `system_info()` describes it, and when `check_environment()` is a real
check: it must catch an old Python, an old NumPy and a broken matmul.
"""

import sys

import numpy as np
from _harness import main


def check_package_imports():
    """The tinytorch package and its setup module import"""
    import tinytorch
    from tinytorch.utils import environment as setup

    assert tinytorch.__version__, "tinytorch has no __version__"
    assert callable(setup.system_info) and callable(setup.check_environment)


def check_environment_is_ready():
    """This machine has no environment problems"""
    from tinytorch.utils.environment import check_environment

    problems = check_environment()
    assert isinstance(problems, list), f"check_environment() must return a list, not {type(problems).__name__}"
    assert problems == [], "; ".join(problems)


def check_system_info_describes_this_machine():
    """system_info() reports Python, NumPy, cores, memory and BLAS"""
    from tinytorch.utils.environment import system_info

    info = system_info()
    for key in ("python", "platform", "numpy", "cpu_count", "memory_gb", "blas"):
        assert key in info, f"system_info() has no '{key}' entry"
    assert info["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}."), \
        f"system_info()['python'] is {info['python']!r}, but this is Python {sys.version.split()[0]}"
    assert info["numpy"] == np.__version__, f"system_info()['numpy'] is {info['numpy']!r}, not {np.__version__}"
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1, "cpu_count must be a positive int"
    assert info["memory_gb"] is None or info["memory_gb"] > 0, "memory_gb must be positive or None"


def check_old_versions_are_caught():
    """check_environment() rejects Python 3.9 and NumPy 1.23, accepts 3.11 and 1.24"""
    from tinytorch.utils.environment import check_environment

    assert len(check_environment(python_version=(3, 9, 0))) == 1, "Python 3.9 must be reported as too old"
    assert len(check_environment(numpy_version="1.23.5")) == 1, "NumPy 1.23.5 must be reported as too old"
    assert len(check_environment(numpy_version="1.9.0")) == 1, "NumPy 1.9 is older than 1.24 (compare numbers, not strings)"
    assert check_environment(python_version=(3, 11, 0), numpy_version="1.24.0") == [], \
        "Python 3.11 with NumPy 1.24 is supported"


def check_broken_matmul_is_caught():
    """check_environment() catches a matmul that is wrong or fails"""
    from tinytorch.utils.environment import check_environment

    def fails(a, b):
        raise RuntimeError("no BLAS")

    for name, matmul in (("off by 1%", lambda a, b: np.matmul(a, b) * 1.01),
                         ("transposing an operand", lambda a, b: np.matmul(a, b[::-1])),
                         ("wrong only in float32", lambda a, b: np.matmul(a, b) + (0.1 if a.dtype == np.float32 else 0.0)),
                         ("raising", fails)):
        assert len(check_environment(matmul=matmul)) == 1, f"a matmul {name} was not reported"


def check_float32_matmul_is_correct():
    """NumPy's float32 matmul agrees with a float64 product computed without BLAS"""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((96, 80)), rng.standard_normal((80, 72))
    reference = (a[:, :, None] * b[None, :, :]).sum(axis=1)
    got = a.astype(np.float32) @ b.astype(np.float32)
    assert got.dtype == np.float32, f"float32 @ float32 gave {got.dtype}"
    assert np.allclose(got, reference, rtol=1e-3, atol=1e-3), "float32 matmul disagrees with the reference"


if __name__ == "__main__":
    main(globals())
