"""Run one chapter's tests, one at a time, and report each on a pipe: the child process of `tito module test|complete`.

    python -m tito.chapter_runner CHAPTER EVENTS_FD ROOT [--package]

The chapter executes as a module named after its file (`tensor_dev`), not as
`__main__`, so its `if __name__ == "__main__":` block does not run. Each
top-level call of a test (`test_unit_creation()`, the chapter's "test at once"
pattern) is routed through `run_test`, which reports when it starts and how it
ended. Then every `test_*` function the chapter never called is called, in
file order (what its `__main__` block would have run).

With --package, each function and class that an `#| export` cell defines is
not defined from the chapter's text but taken from the exported package
(`Tensor = tinytorch.core.tensor.Tensor`): everything else in the chapter (its
tests, the helpers and classes the tests build, its measurements) then runs on
the code in `tinytorch/`. The package is seen as it stands after this chapter:
`tinytorch/__init__.py`, which imports every chapter's code, runs only when the
chapter first asks `tinytorch` for a name, so chapter 02's tests see the Tensor
without the backward rules chapter 09 will attach, as they do in the chapter.

Events are JSON lines: start, pass, fail, phase, done. Everything the chapter
prints goes to stdout/stderr, which tito keeps for --verbose.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
import types
from pathlib import Path

from .errors import TitoError
from .failures import describe


class _Stopped(Exception):
    """A test failed and was reported: the rest of the chapter depends on it, so stop."""


class _Runner:
    def __init__(self, chapter: Path, events, roots: tuple[Path, ...]):
        self.chapter = chapter
        self.events = events
        self.roots = roots
        self.passed: set[str] = set()

    def emit(self, **event) -> None:
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    def run_test(self, fn) -> None:
        name = getattr(fn, "__name__", repr(fn))
        self.emit(event="start", test=name)
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            traceback.print_exc()
            self.emit(event="fail", test=name, line=describe(exc, self.roots).line(), seconds=time.perf_counter() - start)
            raise _Stopped from None
        self.emit(event="pass", test=name, seconds=time.perf_counter() - start)
        self.passed.add(name)


class _HookTestCalls(ast.NodeTransformer):
    """`test_x()` as a top-level statement becomes `__tito_run_test__(test_x)`.

    With `exported` ({first line: (last line, target)} of each export cell), a
    top-level def or class inside an export cell becomes
    `name = __tito_package__(target, "name")`.
    """

    def __init__(self, exported: dict[int, tuple[int, str]] | None = None):
        self.exported = exported or {}

    def _target(self, line: int) -> str | None:
        for first, (last, target) in self.exported.items():
            if first <= line <= last:
                return target
        return None

    def visit_Module(self, node: ast.Module) -> ast.Module:
        for index, statement in enumerate(node.body):
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                target = self._target(statement.lineno)
                if target is not None:
                    taken = ast.Call(ast.Name("__tito_package__", ast.Load()),
                                     [ast.Constant(target), ast.Constant(statement.name)], [])
                    node.body[index] = ast.copy_location(
                        ast.Assign([ast.Name(statement.name, ast.Store())], taken), statement)
                    continue
            call = statement.value if isinstance(statement, ast.Expr) else None
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id.startswith("test_")
                    and not call.args and not call.keywords):
                hooked = ast.Call(ast.Name("__tito_run_test__", ast.Load()), [ast.Name(call.func.id, ast.Load())], [])
                node.body[index] = ast.copy_location(ast.Expr(ast.copy_location(hooked, call)), statement)
        return ast.fix_missing_locations(node)


def chapter_tests(namespace: dict, chapter: Path) -> list[types.FunctionType]:
    """The chapter's own test_* functions, in the order they appear in the file."""
    found = [
        value for key, value in namespace.items()
        if key.startswith("test_") and isinstance(value, types.FunctionType)
        and Path(value.__code__.co_filename) == chapter
    ]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def exported_cells(chapter: Path) -> dict[int, tuple[int, str]]:
    """{first line: (last line, tinytorch module)} of each `#| export` cell, read as the exporter reads them."""
    from .export import PACKAGE, _EXPORT_DIRECTIVES, _directives, _read_code_cells

    cells = _read_code_cells(chapter)
    default = next((arg for cell in cells for name, arg in _directives(cell.source) if name == "default_exp"), None)
    found = {}
    for cell in cells:
        targets = [arg or default for name, arg in _directives(cell.source) if name in _EXPORT_DIRECTIVES]
        if targets and targets[0] and cell.line is not None:
            found[cell.line] = (cell.line + len(cell.source.splitlines()) - 1, f"{PACKAGE}.{targets[0]}")
    return found


def from_package(module: str, name: str):
    """What the exported package calls `name` in `module`; a clear error when the export lacks it."""
    package_module = importlib.import_module(module)
    try:
        return getattr(package_module, name)
    except AttributeError:
        raise ImportError(f"{module} has no {name}: the chapter defines it in an export cell, so export the chapter "
                          "again ('tito module export') and retry") from None


class _DeferredPackage(types.ModuleType):
    """The top-level package, whose `__init__.py` runs when a name is first asked of it (not on submodule imports)."""

    def __getattr__(self, name: str):
        if name in ("__path__", "__spec__", "__loader__", "__file__") or self.__dict__.get("_tito_initialised"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        self.__dict__["_tito_initialised"] = True
        init = Path(self.__file__)
        exec(compile(init.read_text(encoding="utf-8"), str(init), "exec"), self.__dict__)
        return getattr(self, name)


def defer_package_init(root: Path) -> None:
    """Let `import tinytorch.core.tensor` load that file alone, as the package stood when its chapter was written."""
    from .export import PACKAGE

    init = root / PACKAGE / "__init__.py"
    if PACKAGE in sys.modules or not init.is_file():
        return
    spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(init.parent)])
    package = _DeferredPackage(PACKAGE)
    package.__spec__, package.__file__, package.__path__, package.__package__ = spec, str(init), [str(init.parent)], PACKAGE
    package.__loader__ = spec.loader
    sys.modules[PACKAGE] = package


def main(argv: list[str]) -> int:
    chapter, fd, root = Path(argv[0]).resolve(), int(argv[1]), Path(argv[2]).resolve()
    package = "--package" in argv
    events = os.fdopen(fd, "w", encoding="utf-8")
    runner = _Runner(chapter, events, (chapter.parent, root))
    try:
        source = chapter.read_text(encoding="utf-8")
        exported = exported_cells(chapter) if package else None
        tree = _HookTestCalls(exported).visit(ast.parse(source, str(chapter)))
        code = compile(tree, str(chapter), "exec")
    except SyntaxError as err:
        runner.emit(event="fail", test=None, line=describe(err).line())
        return 1
    except TitoError as err:  # the exporter could not read the chapter's cells
        runner.emit(event="fail", test=None, line=str(err))
        return 1
    name = chapter.stem
    module = types.ModuleType(name)
    module.__file__ = str(chapter)
    module.__dict__["__tito_run_test__"] = runner.run_test
    module.__dict__["__tito_package__"] = from_package
    sys.modules[name] = module  # so pickle and dataclasses find the chapter's classes
    sys.argv = [str(chapter)]
    if str(chapter.parent) not in sys.path:
        sys.path.insert(0, str(chapter.parent))
    namespace = module.__dict__
    if package:
        defer_package_init(root)
    try:
        exec(code, namespace)
        tests = chapter_tests(namespace, chapter)
        if not tests:
            runner.emit(event="fail", test=None,
                        line=f"{chapter.name} defines no test_* functions, so nothing checks it: an untested chapter is not complete")
            return 1
        for test in tests:
            if test.__name__ not in runner.passed:
                runner.run_test(test)
    except _Stopped:
        return 1
    except Exception as exc:  # the chapter's code outside any test
        traceback.print_exc()
        runner.emit(event="fail", test=None, line=describe(exc, runner.roots).line())
        return 1
    runner.emit(event="done", tests=[t.__name__ for t in tests])
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a chapter's leftover threads or atexit hooks must not keep the run alive
