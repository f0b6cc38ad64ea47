"""Shared fixtures. Tests that write anything work on a copy of the repository, never on it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core already: a second BLAS thread in each worker (and in each kernel or
    # chapter a test starts, which inherit this) only makes the two fight over the cores.
    # Chapters 14-17 pin one thread themselves for the same reason. An explicit setting wins.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")


# --- how `make test` spreads the tests over the workers ---------------------------------------------

# Module-scoped fixtures that build something big: under `--dist loadgroup` (make test) the tests
# using one run in one worker, so none waits while another worker builds it (`build_once`).
SHARED_FIXTURES = ("graded_class", "green", "student_repository", "desktop")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group the users of each shared fixture; then slow tests (the `slow` marker) first, the rest after.

    Workers take tests in this order (groups with the most tests first), so the chapter-long ones
    start early and the many short ones fill in at the end: no worker sits idle while the other
    finishes a one-minute test.
    """
    building_the_site = not os.environ.get("TINYTORCH_SITE")
    for item in items:
        if building_the_site and "built_site" in getattr(item, "fixturenames", ()):
            # Without $TINYTORCH_SITE the site is built (minutes): by one worker, which then runs every
            # test that reads it, while the other runs the rest. With it, they spread like any test.
            item.add_marker(pytest.mark.xdist_group("built_site"))
            continue
        for name in SHARED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}-{name}"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class _GroupedNodeIds:
    """pytest-xdist 3.8 names a grouped test `nodeid@group` by setting `item._nodeid`, but pytest 9.2
    reads a test's id from `item._id`: without this, `--dist loadgroup` silently groups nothing."""

    @pytest.hookimpl(trylast=True)  # after xdist's own hook has named them
    def pytest_collection_modifyitems(self, config, items):
        try:
            from _pytest.nodeid import NodeId
        except ImportError:  # a pytest that reads _nodeid itself
            return
        for item in items:
            named = item.__dict__.get("_nodeid")
            if isinstance(named, str) and "@" in named and named != item.nodeid:
                parsed = NodeId.parse(named)
                if str(parsed) == named:
                    item._id = parsed


def pytest_configure(config):
    config.pluginmanager.register(_GroupedNodeIds(), "tinytorch-grouped-node-ids")


# --- things built once per test run, shared by the workers ------------------------------------------


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder shared by every worker of this run (pytest-xdist), for what is built once per run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # .../pytest-N/popen-gw0 -> .../pytest-N, this run's own folder
    folder = base / "shared"
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def run_lock(shared: Path, name: str) -> Iterator[None]:
    """Hold `name`'s lock, shared by every worker of this run."""
    with open(shared / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_once(shared: Path, name: str, build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """The folder `shared/name` and what `build(folder)` said about it, built by the first worker that asks.

    The others wait for it and read the same folder and record. A build that fails (raises) leaves
    no record, so the next test that asks builds it again and fails with its own message.
    """
    folder, record = shared / name, shared / f"{name}.json"
    with run_lock(shared, name):
        if not record.is_file():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            record.write_text(json.dumps(build(folder)), encoding="utf-8")
        return folder, json.loads(record.read_text(encoding="utf-8"))


def outcome(result) -> dict:
    """What a test reads of a click or subprocess result, as JSON (for `build_once` records)."""
    if hasattr(result, "exit_code"):  # click's CliRunner
        return {"exit_code": result.exit_code, "output": result.output, "stdout": result.stdout, "stderr": result.stderr}
    return {"returncode": result.returncode, "output": getattr(result, "output", result.stdout + result.stderr)}


def as_result(record: dict) -> SimpleNamespace:
    return SimpleNamespace(**record)


# What a copy needs for tito to export, run checkpoints and import tinytorch.
_COPIED = ("modules", "checkpoints", "tinytorch", "tito", "curriculum.toml", "pyproject.toml")


def copy_course(root: Path) -> Path:
    """Copy the repository's course files into the new folder `root`; return it."""
    root.mkdir()
    for name in _COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".tito"))
        elif source.is_file():
            shutil.copy2(source, root / name)
    return root


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's course files in a temporary folder, set as TINYTORCH_ROOT."""
    root = copy_course(tmp_path / "repo")
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    return root


# --- the built course site, for the launch-link and browser tests ------------------------------------


def _tracked_files(root: Path) -> list[str]:
    """The checkout's files as git sees them (tracked, plus new files not ignored)."""
    import subprocess

    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("the site copy is made from git's file list, and this is not a git checkout")
    return [f for f in done.stdout.split("\0") if f and (root / f).is_file()]


def unfinished_chapters(root: Path) -> list[str]:
    """Written chapters whose checkpoint file does not exist yet: a build fails at them by design."""
    from tito import curriculum

    course = curriculum.load(root)
    return [m.folder for m in course.written_modules() if m.checkpoint and not m.checkpoint.path(root).is_file()]


def build_site(source: Path, destination: Path) -> Path:
    """Copy the course to `destination` and build its site there, as `make book` does; return the html folder.

    A chapter still without its checkpoint is built as not yet written (its README page),
    and the test run says so.
    """
    import os
    import subprocess
    import sys
    import warnings

    for name in _tracked_files(source):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    from tito import curriculum

    course = curriculum.load(destination)
    left_out = unfinished_chapters(destination)
    for folder in left_out:
        course.module(folder).dev_file(destination).unlink()
    if left_out:
        warnings.warn(f"site built without {', '.join(left_out)}: their checkpoints do not exist yet", stacklevel=2)
    script = Path(sys.executable).parent / "jupyter-book"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(destination), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command + ["build", str(destination), "-W", "--keep-going"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return destination / "_build" / "html"


@pytest.fixture(scope="session")
def built_site(shared_dir) -> Path:
    """The course site: the one named by $TINYTORCH_SITE (CI builds it with `make book` first), else a
    fresh build of a copy, built once per test run (`build_once`) whichever worker asks first."""
    given = os.environ.get("TINYTORCH_SITE")
    if given:
        site = Path(given).resolve()
        assert (site / "index.html").is_file(), f"TINYTORCH_SITE={given} holds no index.html; run 'make book' first"
        return site
    folder, record = build_once(shared_dir, "site", lambda folder: {"html": str(build_site(REPO, folder).relative_to(folder))})
    return folder / record["html"]
