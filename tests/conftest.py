"""Shared fixtures. Tests that write anything work on a copy of the repository, never on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What a copy needs for tito to export, run checkpoints and import tinytorch.
_COPIED = ("modules", "checkpoints", "tinytorch", "tito", "curriculum.toml", "pyproject.toml")


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's course files in a temporary folder, set as TINYTORCH_ROOT."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in _COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".tito"))
        elif source.is_file():
            shutil.copy2(source, root / name)
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
def built_site(tmp_path_factory) -> Path:
    """The course site: the one named by $TINYTORCH_SITE (CI builds it with `make book` first), else a fresh build of a copy."""
    import os

    given = os.environ.get("TINYTORCH_SITE")
    if given:
        site = Path(given).resolve()
        assert (site / "index.html").is_file(), f"TINYTORCH_SITE={given} holds no index.html; run 'make book' first"
        return site
    return build_site(REPO, tmp_path_factory.mktemp("site"))
