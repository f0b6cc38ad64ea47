"""What every milestone script shares: its command line, its clock and its last line.

The standard library and NumPy only: a milestone imports tinytorch, NumPy and this file. Each
script describes itself in a `MILESTONE` dict (year, what it recreates, the
chapters it needs, when it passes); `tito milestone list` reads those dicts
without running anything, and `tito milestone run YEAR` runs the script with
`--result FILE` and reads the outcome from that file.

A run ends with one line, `PASSED: ...` or `FAILED: ...`, and exit status 0 or 1.
A learner's code that raises (an unfinished stub, a shape error) fails the run
with one line naming the error and where it happened, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path


def parse_args(milestone: dict, doc: str, argv=None, options=()) -> argparse.Namespace:
    """The options every milestone takes, plus the script's own: (flags, keyword arguments) pairs."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--result", default=None, metavar="FILE",
                        help="also write the outcome as JSON to FILE (tito milestone run does)")
    for flags, kwargs in options:
        parser.add_argument(*flags, **kwargs)
    return parser.parse_args(argv)


def _where(err: BaseException) -> dict:
    """The innermost frame of the error inside the tinytorch package (else the innermost frame at all)."""
    frames = traceback.extract_tb(err.__traceback__)
    inside = [f for f in frames if f"{os.sep}tinytorch{os.sep}" in f.filename]
    frame = (inside or frames or [None])[-1]
    if frame is None:
        return {}
    path = Path(frame.filename)
    parts = path.parts
    rel = "/".join(parts[parts.index("tinytorch"):]) if "tinytorch" in parts else path.name
    return {"file": rel, "line": frame.lineno, "function": frame.name}


def run(milestone: dict, main, args: argparse.Namespace) -> int:
    """Run `main(args)` (it returns {"passed", "summary", "details"}), print the last line, write --result."""
    start = time.perf_counter()
    try:
        outcome = main(args)
    except Exception as err:  # the learner's code may raise anything: it is a failed run, not a crash
        where = _where(err)
        at = f" at {where['file']}:{where['line']} in {where['function']}" if where else ""
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        outcome = {"passed": False, "summary": f"the run stopped on {type(err).__name__}{at}"
                   + (f": {message}" if message else ""),
                   "details": {}, "error": {"type": type(err).__name__, "message": message, **where}}
    outcome["seconds"] = round(time.perf_counter() - start, 2)
    outcome.update(year=milestone["year"], threshold=milestone["passes_when"],
                   machine=f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    word = "PASSED" if outcome["passed"] else "FAILED"
    print(f"{word}: {outcome['summary']} ({outcome['seconds']:.1f} s)", flush=True)
    if args.result:
        Path(args.result).write_text(json.dumps(outcome, indent=1, default=float) + "\n", encoding="utf-8")
    return 0 if outcome["passed"] else 1


def accuracy(logits, labels) -> float:
    """The share of rows whose largest score is the label (logits: a Tensor or array (N, C); labels (N,))."""
    import numpy as np

    scores = np.asarray(getattr(logits, "data", logits))
    return float(np.mean(scores.argmax(axis=-1) == np.asarray(getattr(labels, "data", labels))))
