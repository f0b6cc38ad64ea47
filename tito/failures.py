"""One line that says what failed: the test, the function under test, the message that matters, where.

`describe(exc)` reads an exception's traceback; `Failure.line()` is the line that
`tito module test`, `tito module complete` and the checkpoints print, and
`result_line(name, passed, seconds, failure)` is the line for one test. They
use the standard library only, so a notebook's self-check cell can print the
same lines by importing this module.
"""

from __future__ import annotations

import ast
import builtins
import linecache
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

# Lines of an assertion message that say *how* values differ rather than *what* is wrong
# (numpy.testing's preamble and statistics, array rows).
_NOISE = re.compile(
    r"^(Not equal to tolerance|Arrays are not (almost )?equal|Mismatched elements|Max absolute difference|"
    r"Max relative difference|x:|y:|ACTUAL:|DESIRED:|\(shapes? |\(mismatch )"
)
_ARRAY_ROW = re.compile(r"^[\s\[\]\(\)\-+.,:0-9eEnaNif]*$|^(array|tensor|Tensor)\(")
_TEST_NAME = re.compile(r"^(test|check)_")
# Calls that check a value rather than compute it: never "the function under test".
_LIBRARIES = {"np", "numpy", "math", "torch", "random", "time", "os", "pytest"}
_CHECKERS = {"assert_allclose", "assert_array_equal", "assert_equal", "assert_almost_equal", "allclose",
             "array_equal", "isclose", "approx", "raises", "all", "any", "asarray", "array", "np", "numpy"}


@dataclass
class Failure:
    test: str | None  # the innermost test_*/check_* function (and the outer test, when a helper check_* failed)
    function: str | None  # the function under test
    message: str  # "AssertionError: Mul: gradient of input 0"
    where: str | None  # "autograd_dev.py:259"

    def line(self) -> str:
        """`test_x (broadcast_shape): AssertionError: ... [tensor_dev.py:560]`"""
        if self.test is None and self.message.startswith("SyntaxError"):
            return f"{self.message} [{self.where}]" if self.where else self.message
        head = self.test or "the code outside the tests"
        if self.function and self.function not in (self.test or "").split(" > "):
            head += f" ({self.function})"
        where = f" [{self.where}]" if self.where else ""
        return f"{head}: {self.message}{where}"


def result_line(name: str, passed: bool, seconds: float, failure: Failure | None = None) -> str:
    """One test's result as `complete` prints it: `✓ test_x (0.12 s)` or `✗ test_x (...): message [file:line]`."""
    if passed:
        return f"✓ {name} ({seconds:.2f} s)"
    return f"✗ {failure.line() if failure else name}"


def informative(exc: BaseException, source_line: str = "") -> str:
    """`Type: the line of the message that says what is wrong`; a bare assert shows its own source line."""
    kind = type(exc).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if not _NOISE.match(line) and not _ARRAY_ROW.match(line)]
    message = telling[0] if telling else lines[0] if lines else ""
    source = source_line.strip()
    if source and not re.search(r"[A-Za-z]{2}", message):
        # a bare assert, or a message that is only data (`((0,), (1,))`): the assert's own line says what was checked
        return f"{kind}: {source}" + (f" -- {message}" if message else "")
    return f"{kind}: {message}" if message else kind


def _called_names(source_line: str) -> list[str]:
    """Names called in one line of source, outermost first: `assert f(g(x)) == 1` -> ['f', 'g']."""
    text = source_line.strip()
    tree = None
    for attempt in (text, text.rstrip("\\").rstrip().rstrip(",")):
        try:
            tree = ast.parse(attempt)
            break
        except SyntaxError:
            continue
    if tree is None:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _LIBRARIES:
                continue  # np.zeros(...) builds an expected value; it is not what the test tests
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name and name not in _CHECKERS and not hasattr(builtins, name) and not _TEST_NAME.match(name):
                names.append(name)
    return names


def _display(filename: str, ours: tuple[Path, ...]) -> str | None:
    """How a file is shown (`tensor_dev.py`, `tinytorch/core/tensor.py`), or None when it is not the learner's code."""
    path = Path(filename)
    if {"site-packages", "dist-packages"} & set(path.parts):  # installed libraries, even inside the checkout's .venv
        return None
    for root in ours:
        try:
            rel = path.resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        return path.name if rel.parts[:1] != ("tinytorch",) else rel.as_posix()
    return None


@dataclass
class _Frame:
    name: str  # the function's qualified name (Mul.backward)
    filename: str
    lineno: int

    @property
    def line(self) -> str:
        return linecache.getline(self.filename, self.lineno)


def _frames(exc: BaseException) -> list[_Frame]:
    """Each frame's function as `Class.method` (a function defined inside another is shown by its own name)."""
    return [_Frame(getattr(frame.f_code, "co_qualname", frame.f_code.co_name).rsplit("<locals>.", 1)[-1],
                   frame.f_code.co_filename, lineno)
            for frame, lineno in traceback.walk_tb(exc.__traceback__)]


def describe(exc: BaseException, code_roots: tuple[Path, ...] = ()) -> Failure:
    """What failed, read from `exc`'s traceback.

    `code_roots` are folders whose files are the learner's code (the chapter's folder,
    the checkout); frames elsewhere (NumPy, the standard library) are never blamed.
    With no roots, every frame counts.
    """
    if isinstance(exc, SyntaxError):  # the file and line of the code that does not parse, not of the parser
        where = f"{Path(exc.filename).name}:{exc.lineno}" if exc.filename else None
        return Failure(None, None, f"SyntaxError: {exc.msg}", where)
    roots = tuple(Path(r).resolve() for r in code_roots)

    def ours(frame: _Frame) -> bool:
        return not roots or _display(frame.filename, roots) is not None

    frames = _frames(exc)
    tests = [i for i, f in enumerate(frames) if _TEST_NAME.match(f.name.rsplit(".", 1)[-1])]
    test = None
    if tests:
        inner, outer = frames[tests[-1]].name, frames[tests[0]].name
        test = inner if outer == inner else f"{outer} > {inner}"
    below = frames[tests[-1] + 1:] if tests else frames
    mine = [f for f in below if ours(f) and f.name != "<module>"]
    if mine:
        blamed = mine[-1]
    elif tests:
        blamed = frames[tests[-1]]
    else:
        blamed = next((f for f in reversed(frames) if ours(f)), None)
    function = mine[-1].name if mine else None
    if function is None and tests:
        called = _called_names(frames[tests[-1]].line)
        function = called[0] if called else None
    where = None
    if blamed is not None:
        shown = _display(blamed.filename, roots) if roots else None
        where = f"{shown or Path(blamed.filename).name}:{blamed.lineno}"
    return Failure(test, function, informative(exc, blamed.line if blamed else ""), where)
