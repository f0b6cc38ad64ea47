"""Runs a checkpoint file's `check_*` functions in order and reports each.

A checkpoint is a capability test: each check builds something real with
tinytorch and asserts that it behaves, with an assertion message that says
what the learner's code got wrong. Run a checkpoint file directly
(`python checkpoints/checkpoint_02_tensor.py`) or through
`tito checkpoint run 2`; it exits non-zero when any check fails.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # tito's failure lines, when the checkpoint runs outside tito

try:
    from tito.failures import describe
except ImportError:  # a checkout without tito: the exception's own text
    describe = None


def _reason(err: Exception) -> str:
    """`check_x (the function under test): Type: the telling line [file:line]`, as tito prints failures."""
    if describe is not None:
        return describe(err, (ROOT,)).line()
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def run_checks(namespace: dict, verbose: bool = "--verbose" in sys.argv) -> int:
    checks = [(name, fn) for name, fn in namespace.items() if name.startswith("check_") and callable(fn)]
    if not checks:
        print("FAILED: this checkpoint defines no check_* functions")
        return 1
    doc = (namespace.get("__doc__") or "").strip()
    title = doc.splitlines()[0] if doc else Path(namespace.get("__file__", "checkpoint")).stem
    print(title)
    failures = []
    for name, fn in checks:
        what = (fn.__doc__ or name).strip().splitlines()[0]
        start = time.perf_counter()
        try:
            fn()
        except Exception as err:  # a check fails on any error, not only assertions
            reason = _reason(err)
            failures.append(reason if reason.startswith(name) else f"{name}: {reason}")
            print(f"  ✗ {what} -- {reason}")
            if verbose:
                traceback.print_exc(file=sys.stdout)
        else:
            print(f"  ✓ {what} ({(time.perf_counter() - start) * 1000:.0f} ms)")
    if failures:
        print(f"FAILED: {failures[0]}")
        return 1
    print(f"PASSED: {len(checks)} checks")
    return 0


def main(namespace: dict) -> None:
    sys.exit(run_checks(namespace))
