"""A learner's own version of a chapter: start it, test it, reset it.

The repository holds the complete chapters. `start` saves a chapter's original
bytes under `.tito/exercises/` and writes its student version in its place
(solution regions replaced by stubs, through tito/solutions.py); `reset` backs
the learner's file up under `.tito/backups/` and puts the original back, byte
for byte. `.tito/` is git-ignored, so none of this touches the course's history.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from .checkpoints import checkout_env
from .curriculum import Module
from .errors import TitoError
from .failures import result_line
from .files import write_atomic
from .progress import FOLDER
from .solutions import SolutionError, student_version

EXERCISES = "exercises"
BACKUPS = "backups"
DEFAULT_TIMEOUT_SECONDS = 120  # per test: `--timeout` changes it


def saved_original(root: Path, module: Module) -> Path:
    return Path(root) / FOLDER / EXERCISES / module.folder / module.dev_file(root).name


def is_started(root: Path, module: Module) -> bool:
    """Started: an original is saved and the chapter file is no longer that original."""
    saved = saved_original(root, module)
    chapter = module.dev_file(root)
    return saved.is_file() and (not chapter.is_file() or chapter.read_bytes() != saved.read_bytes())


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


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
class TestResult:
    name: str
    passed: bool
    seconds: float
    line: str  # result_line(): what tito prints for this test
    package: bool  # ran against the exported package (complete), not the chapter's own definitions


@dataclass
class TestRun:
    passed: bool
    seconds: float
    output: str  # everything the chapter printed
    failure: str  # one line: the test, the function under test, the message, file:line
    results: list[TestResult] = field(default_factory=list)
    timed_out: bool = False

    @property
    def tests(self) -> int:
        return len({r.name for r in self.results})


def run_tests(root: Path, module: Module, timeout: float = DEFAULT_TIMEOUT_SECONDS, package: bool = False,
              report: Callable[[TestResult], None] | None = None) -> TestRun:
    """Run the chapter's tests one by one in a child process (tito/chapter_runner.py), in the chapter's folder.

    `timeout` limits each test (and each stretch of the chapter's code between tests);
    `package=True` runs them on the exported package: each function and class of the chapter's
    export cells is taken from tinytorch/ instead of the chapter's text (what `complete` does).
    `report(result)` is called as each test ends, so the caller can show progress.
    """
    root = Path(root).resolve()
    chapter = module.dev_file(root)
    env = checkout_env(root)
    env.setdefault("MPLBACKEND", "Agg")  # plots render off-screen
    command = [sys.executable, "-m", "tito.chapter_runner", str(chapter), "", str(root)]
    if package:
        command.append("--package")
    results: list[TestResult] = []
    failure, timed_out = "", False
    in_package = package
    running: str | None = None
    last_passed: str | None = None
    start_time = time.perf_counter()
    read_end, write_end = os.pipe()
    command[4] = str(write_end)
    with tempfile.TemporaryFile() as output:
        try:
            child = subprocess.Popen(command, cwd=chapter.parent, env=env, stdout=output, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=(write_end,), start_new_session=True)
        finally:
            os.close(write_end)
        deadline = time.monotonic() + timeout
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as events:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    _stop(child)
                    break
                ready, _, _ = select.select([events], [], [], remaining)
                if not ready:
                    continue
                chunk = events.read(65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    event = json.loads(raw)
                    kind = event["event"]
                    if kind == "start":
                        running = event["test"]
                    elif kind in ("pass", "fail"):
                        passed = kind == "pass"
                        name = event.get("test") or ""
                        if passed:
                            last_passed, line = name, result_line(name, True, event["seconds"])
                        else:
                            failure = event["line"]
                            line = "✗ " + failure
                        running = None
                        if name or not passed:
                            result = TestResult(name, passed, event.get("seconds", 0.0), line, in_package)
                            results.append(result)
                            if report is not None:
                                report(result)
                    deadline = time.monotonic() + timeout
        returncode = child.wait()
        output.seek(0)
        text = output.read().decode("utf-8", errors="replace")
    seconds = time.perf_counter() - start_time
    if timed_out:
        after = f"the last test that passed was {last_passed}" if last_passed else "no test had passed yet"
        if running:
            failure = f"{running} was still running after {timeout:g} s and was stopped; {after}"
        else:
            failure = f"the chapter's code {'after ' + last_passed if last_passed else 'before its first test'} " \
                      f"ran for more than {timeout:g} s and was stopped; {after}"
        return TestRun(False, seconds, text, failure, results, timed_out=True)
    if returncode != 0 and not failure:
        lines = [line for line in text.splitlines() if line.strip()]
        failure = (f"{running} crashed the chapter's process (exit status {returncode}): " if running else
                   f"the chapter's process failed (exit status {returncode}): ") + (lines[-1].strip() if lines else "no output")
    return TestRun(returncode == 0 and not failure, seconds, text, failure, results)


def _stop(child: subprocess.Popen) -> None:
    """End the child and anything it started (it leads its own process group)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()
