"""`tito system doctor|info`: is this checkout ready for the course, and what machine is it on?"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from .. import curriculum
from ..checkpoints import checkout_env
from ..errors import TitoError
from ..export import out_of_sync
from ..progress import Progress
from ..ui import console

_LOOK = {"ok": "[green]✓ ok[/]", "warn": "[yellow]! warning[/]", "fail": "[red]✗ problem[/]", "info": "[dim]· info[/]"}


@click.group("system")
def group() -> None:
    """Check this checkout and describe the machine it runs on."""


@dataclass
class Check:
    name: str
    state: str  # ok, warn, fail or info
    detail: str
    hint: str = ""


@dataclass
class Package:
    name: str
    requirement: str
    required: bool
    installed: str | None


def _pyproject(root: Path) -> dict:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def packages(root: Path) -> list[Package]:
    """The packages pyproject.toml asks for: its dependencies are required, its dev extra optional."""
    project = _pyproject(root).get("project", {})
    wanted = [(r, True) for r in project.get("dependencies", [])]
    wanted += [(r, False) for r in project.get("optional-dependencies", {}).get("dev", [])]
    found = []
    for requirement, required in wanted:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        found.append(Package(name, requirement, required, installed))
    return found


def _satisfies(requirement: str, installed: str) -> bool | None:
    """Whether `installed` meets `requirement`; None when `packaging` is not there to tell."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return None
    try:
        return Requirement(requirement).specifier.contains(installed, prereleases=True)
    except ValueError:
        return None


def _python_check(root: Path) -> Check:
    here = platform.python_version()
    spec = _pyproject(root).get("project", {}).get("requires-python", "")
    match = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*", spec)
    if not match:
        return Check("Python", "info", f"{here} (cannot check against '{spec}')")
    needed = (int(match[1]), int(match[2]))
    if sys.version_info[:2] < needed:
        return Check("Python", "fail", f"{here}; TinyTorch needs {spec}", f"Install Python {needed[0]}.{needed[1]} or newer.")
    return Check("Python", "ok", f"{here} (needs {spec})")


def _package_check(package: Package) -> Check:
    label = package.name if package.required else f"{package.name} (optional)"
    install = f"pip install '{package.requirement}'"
    if package.installed is None:
        if package.required:
            return Check(label, "fail", "not installed", f"Run {install}.")
        return Check(label, "warn", "not installed; needed for the book, grading and tests", f"Run {install}.")
    if _satisfies(package.requirement, package.installed) is False:
        return Check(label, "fail" if package.required else "warn", f"{package.installed}, but {package.requirement} is needed", f"Run {install}.")
    return Check(label, "ok", package.installed)


def _import_check(root: Path) -> Check:
    """Import tinytorch the way checkpoints do: a fresh interpreter with the checkout first on the path."""
    code = "import tinytorch; print(tinytorch.__file__); print(getattr(tinytorch, '__version__', '?'))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=checkout_env(root), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        return Check("tinytorch import", "fail", lines[-1], "Run 'tito module export --all', then 'tito system doctor' again.")
    where, found_version = (done.stdout.strip().splitlines() + ["?", "?"])[:2]
    location = Path(where).resolve()
    if not location.is_relative_to(root):
        return Check("tinytorch import", "fail", f"imports from {location}, not this checkout", "Run tito inside your TinyTorch checkout.")
    return Check("tinytorch import", "ok", f"tinytorch {found_version} from {location.relative_to(root).as_posix()}")


def _export_check(course: curriculum.Curriculum) -> Check:
    written = course.written_modules()
    problems = list(dict.fromkeys(out_of_sync(course.root, [m.dev_file(course.root) for m in written])))
    missing = [p for p in problems if "jupytext is not installed" in p]
    if missing:
        return Check("export in sync", "fail", "cannot check: jupytext is not installed (tito reads the chapters with it)",
                     "Run: pip install jupytext (or 'make .venv/.installed' in the checkout).")
    if problems:
        return Check(
            "export in sync",
            "fail",
            "\n".join(problems),
            "Run 'tito module export --all' (it overwrites generated files: move any hand edit into its chapter first).",
        )
    return Check("export in sync", "ok", f"tinytorch/ matches the {len(written)} written module(s)")


def _checkpoint_files_check(course: curriculum.Curriculum) -> Check:
    missing = [
        f"checkpoints/{m.checkpoint.filename}"
        for m in course.written_modules()
        if m.checkpoint is not None and not m.checkpoint.path(course.root).is_file()
    ]
    if missing:
        return Check("checkpoint files", "warn", "missing: " + ", ".join(missing), "Restore them with 'git checkout -- checkpoints/'.")
    return Check("checkpoint files", "ok", "every written module's checkpoint is there")


def _progress_check(root: Path) -> Check:
    try:
        progress = Progress.load(root)
    except TitoError as err:
        return Check("progress record", "fail", err.message, err.hint)
    if not progress.path.exists():
        return Check("progress record", "ok", "none yet: 'tito module complete' starts .tito/progress.json")
    return Check("progress record", "ok", f".tito/progress.json: {len(progress.completed)} module(s) completed")


def _protection_check(root: Path) -> Check:
    """Protection of generated files arrives with tito/protect.py, which is to provide
    `status(root) -> (ok: bool, detail: str, hint: str)`; until that file exists, doctor says so."""
    if importlib.util.find_spec("tito.protect") is None:
        return Check("protection", "info", "protection: not available yet")
    from .. import protect

    ok, detail, hint = protect.status(root)
    return Check("protection", "ok" if ok else "warn", detail, hint)


def _safely(name: str, check) -> Check:
    """Run one check; whatever goes wrong becomes that check's problem, so doctor always finishes its report."""
    try:
        return check()
    except TitoError as err:
        return Check(name, "fail", err.message, err.hint)
    except Exception as err:  # doctor reports; it never crashes
        from ..cli import as_tito_error

        error = as_tito_error(err)
        return Check(name, "fail", f"could not check: {error.message}", error.hint)


@group.command("doctor")
def doctor_command() -> None:
    """Check Python, packages, the package import, the export and the progress record."""
    course = curriculum.load()
    root = course.root
    checks = [_python_check(root)]
    checks += [_package_check(p) for p in packages(root)] or [
        Check("packages", "fail", "pyproject.toml is missing or unreadable", "Restore it with 'git checkout -- pyproject.toml'.")
    ]
    for name, check in (
        ("tinytorch import", lambda: _import_check(root)),
        ("export in sync", lambda: _export_check(course)),
        ("checkpoint files", lambda: _checkpoint_files_check(course)),
        ("progress record", lambda: _progress_check(root)),
        ("protection", lambda: _protection_check(root)),
    ):
        checks.append(_safely(name, check))
    table = Table(title=f"tito system doctor: {root}", title_justify="left")
    table.add_column("Check", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for check in checks:
        table.add_row(check.name, _LOOK[check.state], escape(check.detail))
    console.print(table)
    failed = [c for c in checks if c.state == "fail"]
    warned = [c for c in checks if c.state == "warn"]
    if failed:
        hints = list(dict.fromkeys(c.hint for c in failed if c.hint))
        raise TitoError(
            f"{len(failed)} problem(s): " + "; ".join(f"{c.name}: {c.detail.splitlines()[0]}" for c in failed),
            " ".join(hints),
        )
    console.print(f"[green]✓ Ready.[/] {len(warned)} warning(s)." if warned else "[green]✓ Ready: every check passed.[/]")


def _memory() -> str:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total, free = page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return "unknown"
    return f"{total / 2**30:.1f} GiB total, {free / 2**30:.1f} GiB free"


def _cores() -> str:
    total = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return f"{total}" if usable == total else f"{total} ({usable} usable by this process)"


def _numpy() -> tuple[str, str]:
    """NumPy's version and the BLAS it was built with (NumPy >= 1.26 reports it)."""
    try:
        import numpy
    except ImportError:
        return "not installed", "-"
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError, ValueError):
        return numpy.__version__, "unknown"
    details = blas.get("openblas configuration", "").split()
    kernel = f" ({details[-2]} kernels)" if len(details) >= 2 and details[-1].startswith("MAX_THREADS") else ""
    return numpy.__version__, f"{blas.get('name', '?')} {blas.get('version', '')}".strip() + kernel


@group.command("info")
def info_command() -> None:
    """Platform, cores, memory, NumPy and its BLAS, package versions."""
    root = curriculum.find_root()
    numpy_version, blas = _numpy()
    threads = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ]
    facts = [
        ("Platform", platform.platform()),
        ("Machine", platform.machine() or "unknown"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("CPU cores", _cores()),
        ("Memory", _memory()),
        ("NumPy", numpy_version),
        ("BLAS", blas),
        ("Thread settings", ", ".join(threads) or "none set (BLAS picks its own thread count)"),
        ("Project root", str(root)),
    ]
    table = Table(title="tito system info", title_justify="left", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column()
    for name, value in facts:
        table.add_row(name, escape(value))
    console.print(table)
    listing = Table(title="Packages", title_justify="left")
    for column in ("Package", "Version", "Needed for"):
        listing.add_column(column, no_wrap=True)
    for package in packages(root):
        listing.add_row(
            package.name,
            package.installed or "[dim]not installed[/]",
            "required" if package.required else "optional: book, grading, tests",
        )
    console.print(listing)
