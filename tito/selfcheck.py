"""The self-check at the end of an exercise notebook: `tito module complete`, inside the notebook.

On Colab there is no checkout and no `tito` command, only the installed package.
The last cell of each exercise notebook calls `self_check(chapter, globals())`,
which

1. runs the chapter's tests: the `test_*` functions the notebook defined, in the
   order it defined them, against the notebook's own code;
2. runs the chapter's checkpoint against the notebook's code too: while the
   checks run, each package module the chapter exports (`tinytorch.core.tensor`
   for chapter 02) is replaced by a `NotebookModule` whose chapter names read and
   write the notebook's own (so a check that sets a module constant reaches the
   notebook's functions), and every module of a later chapter, and the package's re-exporting
   `__init__` files, are imported afresh so that they build on those
   definitions; the modules of earlier chapters are kept as they are (chapter 09
   attaches its backward rules to chapter 02's classes: the notebook did that to
   the very classes the checks use). Everything is put back afterwards;
3. prints the same pass/fail lines `tito module complete` prints (`result_lines`).

With stubs, a test fails with the stub's NotImplementedError, and the last line
names the first function still to write. The checkpoint files and the curriculum
come from the checkout when there is one, else from the copy packaged with tito
(`tito/_course/`, written when the package is built: see setup.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import runpy
import sys
import time
import traceback
import types
from pathlib import Path

from . import curriculum
from .errors import TitoError
from .failures import describe, result_line

PACKAGE = "tinytorch"
PACKAGED_COURSE = Path(__file__).resolve().parent / "_course"
_STUB_MESSAGE = re.compile(r"implement (?P<name>[\w.<>]+);")


# ---- the lines the learner reads ---------------------------------------------------------------


def result_lines(module: curriculum.Module, passed: bool, detail: str = "") -> list[str]:
    """The closing lines of a completion check, in the words of `tito module complete`.

    passed: the module is complete (its checkpoint answered yes). Otherwise `detail`
    says what stopped it (the first failing test, or the checkpoint's failure).
    """
    checkpoint = module.checkpoint
    if passed:
        lines = [f"✓ {module.folder} ({module.title}) is complete."]
        if checkpoint is not None:
            lines.append(f"  Checkpoint {checkpoint.id}: {checkpoint.question} Yes.")
        else:
            lines.append("  This module has no checkpoint of its own; the next one builds on it.")
        return lines
    return [f"✗ {module.folder} ({module.title}) is not complete: {detail}"]


# ---- where the course files are ------------------------------------------------------------------


def course_root() -> Path:
    """The checkout (when the notebook runs inside one), else the course files packaged with tito."""
    try:
        return curriculum.find_root()
    except TitoError:
        if (PACKAGED_COURSE / curriculum.CURRICULUM_FILE).is_file():
            return PACKAGED_COURSE
        raise TitoError(
            "This tito has no course files: it was installed without the checkpoints.",
            "Reinstall tinytorch from the repository (the notebook's first cell does it on Colab).",
        ) from None


def _package_modules_by_chapter(course: curriculum.Curriculum) -> dict[str, str]:
    """Generated package module name -> the chapter folder it is exported from (the package's manifest)."""
    package = importlib.import_module(PACKAGE)
    manifest = Path(package.__file__).resolve().parent / "_manifest.json"
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError) as err:
        raise TitoError(f"cannot read the package's manifest {manifest.name} ({err}).",
                        "Reinstall tinytorch from the repository.") from None
    folders = {m.folder for m in course.modules}
    owners = {}
    for path, record in files.items():
        folder = Path(record.get("source", "")).parent.name
        if folder in folders:
            owners[f"{PACKAGE}." + path.removesuffix(".py").replace("/", ".")] = folder
    return owners


# ---- the notebook's definitions as package modules ---------------------------------------------------


class NotebookModule(types.ModuleType):
    """A package module whose chapter code lives in the notebook: reading one of those names reads the
    notebook's current value, and setting it sets the notebook's (a check that changes a module constant,
    or replaces a function, changes what the notebook's own functions see, as with a real module)."""

    def __init__(self, name: str, doc: str | None, namespace: dict, shared: set[str]):
        super().__init__(name, doc)
        object.__setattr__(self, "_notebook", namespace)
        object.__setattr__(self, "_shared", frozenset(shared))
        object.__setattr__(self, "_defined", frozenset())

    def __getattr__(self, key: str):
        if key in self._shared:
            return self._notebook[key]
        raise AttributeError(f"module {self.__name__!r} has no attribute {key!r}")

    def __setattr__(self, key: str, value) -> None:
        if key in self._shared:
            self._notebook[key] = value
        else:
            super().__setattr__(key, value)

    def __delattr__(self, key: str) -> None:
        if key in self._shared:
            del self._notebook[key]
        else:
            super().__delattr__(key)

    def defined_here(self) -> list:
        """The notebook's classes and functions that the package defines in this very module."""
        return [self._notebook[key] for key in self._defined if key in self._notebook]


def notebook_module(installed: types.ModuleType, namespace: dict, chapter_modules: set[str] = frozenset()) -> tuple[NotebookModule, list[str]]:
    """A module named like `installed` whose code is the notebook's: every class and function the
    package module defines is taken from the notebook (missing ones are left out and listed), as is
    every plain value they share; what the package module imports from other chapters stays."""
    name = installed.__name__
    mine = set(chapter_modules) | {name}
    shared, missing, defined = set(), [], set()
    for key, value in vars(installed).items():
        if key.startswith("__") or inspect.ismodule(value):
            continue
        code = inspect.isclass(value) or inspect.isfunction(value)
        own = code and getattr(value, "__module__", None) in mine
        if code and not own:
            continue  # imported from another chapter's module: the notebook uses that module's too
        here = own and getattr(value, "__module__", None) == name
        if key in namespace and not inspect.ismodule(namespace[key]):
            shared.add(key)
            if here:
                defined.add(key)
        elif here:
            missing.append(key)
    module = NotebookModule(name, installed.__doc__, namespace, shared)
    object.__setattr__(module, "_defined", frozenset(defined))
    for key, value in vars(installed).items():
        if key not in shared and key not in missing and key not in ("__name__", "__doc__"):
            setattr(module, key, value)
    return module, missing


class _NotebookPackage:
    """While active, `tinytorch` is the installed package with this chapter's modules replaced by
    the notebook's code and the modules of later chapters imported afresh on top of them."""

    def __init__(self, course: curriculum.Curriculum, module: curriculum.Module, namespace: dict):
        self.course, self.module, self.namespace = course, module, namespace
        self.missing: dict[str, list[str]] = {}

    def __enter__(self) -> "_NotebookPackage":
        self.saved = {k: v for k, v in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".")}
        self.renamed: list[tuple[object, str]] = []
        owners = _package_modules_by_chapter(self.course)
        order = [m.folder for m in self.course.modules]
        mine = [name for name, folder in owners.items() if folder == self.module.folder]
        earlier = {name for name, folder in owners.items() if order.index(folder) < order.index(self.module.folder)}
        replacements = {}
        for name in mine:
            installed = importlib.import_module(name)
            replacements[name], missing = notebook_module(installed, self.namespace, set(mine))
            if missing:
                self.missing[name] = missing
        # Pickling and error messages find the notebook's classes and functions under the package's names.
        for name, replacement in replacements.items():
            for value in replacement.defined_here():
                if (inspect.isclass(value) or inspect.isfunction(value)) and getattr(value, "__module__", None) == "__main__":
                    self.renamed.append((value, value.__module__))
                    value.__module__ = name
        kept = {k: v for k, v in sys.modules.items() if k in earlier}
        # Everything of the package goes, including what importing the installed modules just loaded.
        for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
            del sys.modules[key]
        sys.modules.update(kept)
        sys.modules.update(replacements)
        importlib.invalidate_caches()
        importlib.import_module(PACKAGE)
        for name in list(kept) + list(replacements):
            importlib.import_module(name.rsplit(".", 1)[0])  # the (fresh) package above it
        self._link_parents()
        return self

    @staticmethod
    def _link_parents() -> None:
        """`tinytorch.core.tensor` as an attribute of `tinytorch.core`, for every module in place."""
        for key, value in list(sys.modules.items()):
            if key.startswith(PACKAGE + ".") and value is not None:
                parent, _, child = key.rpartition(".")
                if parent in sys.modules and not hasattr(sys.modules[parent], child):
                    setattr(sys.modules[parent], child, value)  # never over a name the package exports

    def __exit__(self, *exc) -> None:
        for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
            del sys.modules[key]
        sys.modules.update(self.saved)
        for value, original in self.renamed:
            value.__module__ = original


# ---- running the tests and the checkpoint ------------------------------------------------------------


def notebook_tests(namespace: dict) -> list[tuple[str, object]]:
    """The notebook's own test_* functions, in the order it first defined them."""
    return [
        (key, value) for key, value in namespace.items()
        if key.startswith("test_") and inspect.isfunction(value) and value.__module__ in ("__main__", namespace.get("__name__"))
    ]


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _unfinished(err: BaseException) -> str | None:
    """The function a stub's NotImplementedError names, if this error is one."""
    if isinstance(err, NotImplementedError):
        match = _STUB_MESSAGE.search(str(err))
        return match["name"] if match else None
    return None


def _code_roots() -> tuple[Path, ...]:
    """Where the learner's code lives, for blaming a frame: the notebook's folder and the package's checkout."""
    roots = [Path.cwd()]
    package = sys.modules.get(PACKAGE)
    if package is not None and getattr(package, "__file__", None):
        roots.append(Path(package.__file__).resolve().parent.parent)
    return tuple(roots)


def run_tests(namespace: dict, out=print) -> str | None:
    """Run every test, printing one line each as `tito module complete` does (tito.failures.result_line);
    return None when all pass, else what to say about the first failure."""
    tests = notebook_tests(namespace)
    if not tests:
        return "this notebook defines no test_* functions (run every cell above first)"
    out(f"Tests ({len(tests)}):")
    first, roots = None, _code_roots()
    for key, test in tests:
        start = time.perf_counter()
        try:
            test()
        except Exception as err:  # a test fails on any error, not only assertions
            failure = describe(err, roots)
            if failure.test is None:  # the error came from the notebook's code called by the test
                failure = dataclasses.replace(failure, test=key)
            out("  " + result_line(key, False, time.perf_counter() - start, failure))
            unfinished = _unfinished(err)
            if first is None:
                first = (f"{key} failed: {unfinished} is not written yet (its stub raises NotImplementedError)."
                         if unfinished else f"{key} failed: {failure.message}")
        else:
            out("  " + result_line(key, True, time.perf_counter() - start))
    return first


def run_checkpoint(root: Path, checkpoint: curriculum.Checkpoint, out=print) -> str | None:
    """Run the checkpoint's checks in this process (the package as it is now); None when they pass."""
    path = checkpoint.path(root)
    if not path.is_file():
        return f"checkpoint {checkpoint.id} has no file {path.name} in {path.parent}"
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        namespace = runpy.run_path(str(path), run_name=f"checkpoint_{checkpoint.id}")
        harness = sys.modules["_harness"]
        lines = []

        def capture(*args, **kwargs):
            text = " ".join(str(a) for a in args)
            lines.append(text)
            out(text)

        harness.print = capture  # the harness's own `print`, shadowed for this run
        try:
            code = harness.run_checks(namespace, verbose=False)
        finally:
            del harness.print
    except Exception as err:  # the checkpoint did not even import: the notebook's module lacks a name, say
        out("".join(traceback.format_exception_only(type(err), err)).rstrip())
        return f"checkpoint {checkpoint.id} could not run: {_reason(err)}"
    finally:
        sys.path.remove(folder)
        sys.modules.pop("_harness", None)
    if code == 0:
        return None
    failed = next((line for line in reversed(lines) if line.startswith("FAILED")), "FAILED")
    return f"checkpoint {checkpoint.id} failed: {failed.removeprefix('FAILED: ')}"


def self_check(chapter: str, namespace: dict, out=print) -> bool:
    """The exercise notebook's last cell: the chapter's tests, then its checkpoint, on the notebook's code."""
    root = course_root()
    course = curriculum.load(root)
    module = course.module(chapter)
    out(f"Self-check of {module.folder} ({module.title}): the chapter's tests and its checkpoint, on the code in this notebook.")
    failure = run_tests(namespace, out)
    if failure is None and module.checkpoint is not None:
        with _NotebookPackage(course, module, namespace) as package:
            for name, names in package.missing.items():
                out(f"  (not defined in this notebook, so missing from {name}: {', '.join(names)})")
            failure = run_checkpoint(root, module.checkpoint, out)
    for line in result_lines(module, failure is None, failure or ""):
        out(line)
    return failure is None
