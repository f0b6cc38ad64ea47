"""Run checkpoint files, each in a fresh interpreter, and collect their results.

A fresh process per checkpoint means each one imports the package as it is on
disk now (after an export), and one checkpoint's state cannot leak into another.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .curriculum import Checkpoint, Curriculum
from .errors import TitoError

TIMEOUT_SECONDS = 600


@dataclass
class CheckpointResult:
    checkpoint: Checkpoint
    passed: bool
    seconds: float
    output: str

    @property
    def summary(self) -> str:
        """The harness's last PASSED/FAILED line, or the last line of any crash."""
        lines = [line for line in self.output.strip().splitlines() if line.strip()]
        for line in reversed(lines):
            if line.startswith(("PASSED", "FAILED")):
                return line
        return lines[-1] if lines else "no output"


def checkout_env(root: Path) -> dict[str, str]:
    """The environment for a child Python that must import the checkout's tinytorch."""
    env = dict(os.environ)
    # The checkout's package, not whatever tinytorch happens to be installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def run_checkpoint(root: Path, checkpoint: Checkpoint, verbose: bool = False) -> CheckpointResult:
    path = checkpoint.path(root)
    if not path.is_file():
        raise TitoError(
            f"Checkpoint {checkpoint.id} has no file {path.relative_to(root).as_posix()}.",
            "Restore it with 'git checkout -- checkpoints/'.",
        )
    env = checkout_env(root)
    command = [sys.executable, str(path)] + (["--verbose"] if verbose else [])
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as err:
        partial = err.stdout.decode("utf-8", "replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        done_checks = [line.strip()[2:] for line in partial.splitlines() if line.lstrip().startswith("✓")]
        after = f"the last check that passed: {done_checks[-1]}" if done_checks else "no check had passed yet"
        return CheckpointResult(checkpoint, False, time.perf_counter() - start,
                                partial + f"\nFAILED: timed out after {TIMEOUT_SECONDS} s; {after}")
    output = done.stdout + (("\n" + done.stderr) if done.stderr.strip() else "")
    return CheckpointResult(checkpoint, done.returncode == 0, time.perf_counter() - start, output)


def run_written(curriculum: Curriculum, report=None) -> list[CheckpointResult]:
    """Run the checkpoint of every written module, in course order; a missing file counts as a failure.

    `report(result)` is called after each one (the book build logs progress with it).
    """
    results = []
    for module in curriculum.written_modules():
        if module.checkpoint is None:
            continue
        try:
            result = run_checkpoint(curriculum.root, module.checkpoint)
        except TitoError as err:
            result = CheckpointResult(module.checkpoint, False, 0.0, f"FAILED: {err}")
        if report is not None:
            report(result)
        results.append(result)
    return results
