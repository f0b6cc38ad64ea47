"""A learner's own version of a chapter: start it, test it, reset it.

The repository holds the complete chapters. `start` saves a chapter's original
bytes under `.tito/exercises/` and writes its student version in its place
(solution regions replaced by stubs, through tito/solutions.py); `reset` backs
the learner's file up under `.tito/backups/` and puts the original back, byte
for byte. `.tito/` is git-ignored, so none of this touches the course's history.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .checkpoints import checkout_env
from .curriculum import Module
from .errors import TitoError
from .progress import FOLDER
from .solutions import SolutionError, student_version

EXERCISES = "exercises"
BACKUPS = "backups"
TEST_TIMEOUT_SECONDS = 600


def saved_original(root: Path, module: Module) -> Path:
    return Path(root) / FOLDER / EXERCISES / module.folder / module.dev_file(root).name


def is_started(root: Path, module: Module) -> bool:
    """Started: an original is saved and the chapter file is no longer that original."""
    saved = saved_original(root, module)
    chapter = module.dev_file(root)
    return saved.is_file() and (not chapter.is_file() or chapter.read_bytes() != saved.read_bytes())


def _write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, keeping the old file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def start(root: Path, module: Module) -> int:
    """Turn the chapter into its student version; return the number of stubs. The original is saved first."""
    chapter = module.dev_file(root)
    display = chapter.relative_to(root).as_posix()
    if is_started(root, module):
        raise TitoError(
            f"{module.folder} is already started: your work is in {display}.",
            f"To start over from the complete chapter, run 'tito module reset {module.folder}' "
            f"(it backs up your work), then 'tito module start {module.folder}'.",
        )
    original = chapter.read_bytes()
    try:
        student, stubs = student_version(original.decode("utf-8"), module.folder)
    except SolutionError as err:
        raise TitoError(f"{display}, {err}.", "Fix the chapter's solution markers, then try again.") from None
    if stubs == 0:
        raise TitoError(
            f"{display} marks no solution regions (### BEGIN SOLUTION ... ### END SOLUTION), so there is nothing to implement yet.",
            "book/instructor-guide.md shows how a chapter gets them.",
        )
    _write_bytes(saved_original(root, module), original)
    _write_bytes(chapter, student.encode("utf-8"))
    return stubs


@dataclass
class ResetResult:
    backup: Path | None  # the learner's file, if it differed from the original


def reset(root: Path, module: Module) -> ResetResult:
    """Put the saved original back, after backing up the learner's version of the chapter."""
    chapter = module.dev_file(root)
    saved = saved_original(root, module)
    display = chapter.relative_to(root).as_posix()
    if not saved.is_file():
        raise TitoError(
            f"{module.folder} was not started with 'tito module start', so there is no saved original to restore.",
            f"To discard your changes to the chapter with git instead: git checkout -- {display}",
        )
    original = saved.read_bytes()
    backup = None
    if chapter.is_file() and chapter.read_bytes() != original:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path(root) / FOLDER / BACKUPS / module.folder
        backup = folder / f"{chapter.stem}.{stamp}{chapter.suffix}"
        counter = 1
        while backup.exists():
            counter += 1
            backup = folder / f"{chapter.stem}.{stamp}-{counter}{chapter.suffix}"
        _write_bytes(backup, chapter.read_bytes())
    _write_bytes(chapter, original)
    saved.unlink()
    if not any(saved.parent.iterdir()):
        saved.parent.rmdir()
    return ResetResult(backup)


@dataclass
class TestRun:
    passed: bool
    seconds: float
    output: str
    failure: str  # the error's last line, and where in the chapter it was raised


def _failure(output: str, chapter: Path) -> str:
    """`AssertionError: ... (tensor_dev.py:412, in test_unit_creation)` from a traceback."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return "no output"
    error = lines[-1].strip()
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', output)
    mine = [(line, name) for path, line, name in frames if Path(path).name == chapter.name]
    if mine:
        line, name = mine[-1]
        where = f"{chapter.name}:{line}" + (f", in {name}" if name != "<module>" else "")
        return f"{error} ({where})"
    return error


def run_tests(root: Path, module: Module) -> TestRun:
    """Run the chapter as a script (its `__main__` block runs every test), in its own folder, against the checkout."""
    chapter = module.dev_file(root)
    env = checkout_env(root)
    env.setdefault("MPLBACKEND", "Agg")  # plots render off-screen
    start_time = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, chapter.name], cwd=chapter.parent, env=env,
            capture_output=True, text=True, timeout=TEST_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - start_time
        return TestRun(False, seconds, "", f"timed out after {TEST_TIMEOUT_SECONDS} s")
    seconds = time.perf_counter() - start_time
    output = done.stdout + done.stderr
    failure = "" if done.returncode == 0 else _failure(done.stderr or done.stdout, chapter)
    return TestRun(done.returncode == 0, seconds, output, failure)
