"""Chapter 01's environment report and checks (tinytorch.utils.environment)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tinytorch.utils import environment as setup
from tinytorch.utils.environment import check_environment, system_info

KEYS = {"python", "implementation", "platform", "machine", "numpy", "blas", "cpu_count", "memory_gb"}


def test_system_info_has_every_key_with_plain_values():
    info = system_info()
    assert set(info) == KEYS
    assert info["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert info["numpy"] == np.__version__
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert info["memory_gb"] is None or (isinstance(info["memory_gb"], float) and info["memory_gb"] > 0)
    assert info["blas"] is None or isinstance(info["blas"], str)


def test_blas_name_is_none_when_numpy_cannot_say(monkeypatch):
    def old_show_config(*args, **kwargs):
        raise TypeError("show_config() got an unexpected keyword argument 'mode'")

    monkeypatch.setattr(np, "show_config", old_show_config)
    assert system_info()["blas"] is None


def test_blas_name_includes_the_version(monkeypatch):
    monkeypatch.setattr(np, "show_config", lambda mode=None: {"Build Dependencies": {"blas": {"name": "openblas", "version": "0.3.27"}}})
    assert system_info()["blas"] == "openblas 0.3.27"


def test_memory_is_none_where_sysconf_is_missing(monkeypatch):
    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(setup.os, "sysconf", no_sysconf, raising=False)
    assert system_info()["memory_gb"] is None


def test_this_environment_has_no_problems():
    assert check_environment() == []


@pytest.mark.parametrize("text, expected", [
    ("1.26.4", (1, 26, 4)),
    ("2.0.0rc1", (2, 0, 0)),
    ("2.1.0.dev0+git20240101", (2, 1, 0)),
    ("1.24", (1, 24)),
    ("3.13.0+", (3, 13, 0)),
])
def test_version_strings_become_number_tuples(text, expected):
    assert setup._version_tuple(text) == expected


@pytest.mark.parametrize("version, ok", [((3, 9, 18), False), ((3, 10, 9), False), ((3, 11, 0), True), ((3, 13, 1), True), ((2, 7, 18), False)])
def test_python_version_check(version, ok):
    problems = check_environment(python_version=version)
    assert (problems == []) == ok
    if not ok:
        assert len(problems) == 1 and "3.11" in problems[0] and ".".join(map(str, version)) in problems[0]


@pytest.mark.parametrize("version, ok", [("1.23.5", False), ("1.24.0", True), ("1.24.0rc1", True), ("1.3.0", False), ("2.2.1", True)])
def test_numpy_version_check(version, ok):
    problems = check_environment(numpy_version=version)
    assert (problems == []) == ok
    if not ok:
        assert len(problems) == 1 and version in problems[0] and "pip install --upgrade numpy" in problems[0]


def _raises(a, b):
    raise RuntimeError("libopenblas.so: cannot open shared object file")


@pytest.mark.parametrize("name, matmul", [
    ("slightly off", lambda a, b: np.matmul(a, b) * 1.001),
    ("transposed operand", lambda a, b: np.matmul(a, b[::-1])),
    ("wrong shape", lambda a, b: np.matmul(a, b)[:, 1:]),
    ("float32 broken only", lambda a, b: np.matmul(a, b) + (0.1 if a.dtype == np.float32 else 0.0)),
    ("raises", _raises),
])
def test_broken_matmul_is_reported(name, matmul):
    problems = check_environment(matmul=matmul)
    assert len(problems) == 1, name
    assert "matmul" in problems[0] and "\n" not in problems[0]


def test_a_raising_matmul_reports_its_error():
    assert "cannot open shared object file" in check_environment(matmul=_raises)[0]


def test_every_problem_is_reported_at_once():
    problems = check_environment(python_version=(3, 8), numpy_version="1.20.0", matmul=_raises)
    assert len(problems) == 3


# ---- timing (chapter 01's timers, shared by the later chapters) ----------------------------

def _clock(monkeypatch, durations):
    """Make time.perf_counter advance by the next of `durations` on every call to the timed function."""
    from tinytorch.utils import timing

    now, pending = [0.0], list(durations)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])

    def fn():
        now[0] += pending.pop(0)

    return fn


def test_best_time_is_the_fastest_run(monkeypatch):
    from tinytorch.utils.timing import best_time

    fn = _clock(monkeypatch, [0.3, 0.1, 0.2])
    assert best_time(fn, repeats=3, budget=0.0) == pytest.approx(0.1)


def test_median_times_runs_the_functions_in_turns(monkeypatch):
    from tinytorch.utils.timing import median_time, median_times

    calls = []
    step = _clock(monkeypatch, [1, 5, 2, 6, 3, 7])             # a's runs take 1, 2, 3; b's take 5, 6, 7
    medians = median_times([lambda: (calls.append("a"), step()), lambda: (calls.append("b"), step())], repeats=3)
    assert calls == ["a", "b"] * 3, "one run of each function per round"
    assert medians == [2, 6]
    assert median_time(_clock(monkeypatch, [4, 1, 9]), repeats=3) == 4
