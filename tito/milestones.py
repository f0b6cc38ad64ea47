"""Milestones: historical results the learner reproduces with their own `tinytorch`.

Each milestone is a script `milestones/YEAR_name.py` that imports only tinytorch,
NumPy and `milestones/_milestone.py`, and describes itself in a `MILESTONE` dict
literal (year, title, what it recreates, the chapters it needs, when it passes,
its time budget). tito reads that dict with `ast` (nothing is imported, so a
half-written package cannot break `tito milestone list`), checks that the
chapters it needs hold no stubs, runs the script in a fresh interpreter on the
checkout's package, and records the outcome in `.tito/progress.json`.

`tito milestone run YEAR --write-book` also writes the run (its log, outcome,
command, machine and date) to `book/results/milestones/YEAR.json`, which the
milestone pages of the book show.
"""

from __future__ import annotations

import ast
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .checkpoints import checkout_env
from .curriculum import Curriculum, Module
from .errors import TitoError
from .export import PACKAGE, read_manifest
from .solutions import STUB

FOLDER = "milestones"
RESULTS = Path("book") / "results" / "milestones"
_SCRIPT = re.compile(r"^(?P<year>\d{4})_\w+\.py$")
_KEYS = ("year", "title", "recreates", "needs", "passes_when", "budget")
# The start of a stub's message: 'raise NotImplementedError("04_layers: implement Linear.forward; ...'
_STUB_START = STUB.split("\n")[1].split("{where}")[0]
_STUB_NAME = re.compile(r"implement (?P<name>[\w.<>]+);")
TIMEOUT_SECONDS = 1800


@dataclass(frozen=True)
class Milestone:
    year: int
    title: str
    recreates: str
    needs: tuple[str, ...]
    passes_when: str
    budget: str
    script: Path  # relative to the project root

    @property
    def key(self) -> str:
        return str(self.year)


def _read(root: Path, path: Path) -> Milestone:
    """The MILESTONE dict of a script, read without running it."""
    rel = path.relative_to(root).as_posix()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "MILESTONE" for t in n.targets))
        info = ast.literal_eval(node)
        missing = [k for k in _KEYS if k not in info]
        if missing:
            raise ValueError(f"its MILESTONE has no {missing[0]!r}")
    except (SyntaxError, StopIteration, ValueError, TypeError) as err:
        reason = "it defines no MILESTONE dict" if isinstance(err, StopIteration) else str(err)
        raise TitoError(f"{rel} is not a readable milestone: {reason}.",
                        f"Restore it with 'git checkout -- {rel}'.") from None
    return Milestone(int(info["year"]), info["title"], info["recreates"], tuple(info["needs"]),
                     info["passes_when"], info["budget"], Path(rel))


def discover(root: Path) -> list[Milestone]:
    """Every milestone script, by year."""
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        return []
    found = [_read(root, p) for p in sorted(folder.glob("*.py")) if _SCRIPT.match(p.name)]
    return sorted(found, key=lambda m: m.year)


def find(root: Path, year: str) -> Milestone:
    milestones = discover(root)
    for m in milestones:
        if m.key == str(year).strip():
            return m
    years = ", ".join(m.key for m in milestones) or "none"
    raise TitoError(f"There is no milestone {year!r} (the milestones are {years}).",
                    "Run 'tito milestone list' to see them.")


# ---- can the learner's package run it? ----------------------------------------------------------


def unfinished(root: Path, module: Module) -> list[str]:
    """The functions of a chapter whose exported code is still a stub (raises NotImplementedError)."""
    source = module.dev_file(root).relative_to(root).as_posix()
    names = []
    for rel, entry in sorted(read_manifest(root).items()):
        if entry["source"] != source:
            continue
        path = Path(root) / PACKAGE / rel
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        for line in text.splitlines():
            if _STUB_START in line and f"{module.folder}: implement" in line:
                match = _STUB_NAME.search(line)
                names.append(match["name"] if match else rel)
    return names


def exported(root: Path, module: Module) -> bool:
    source = module.dev_file(root).relative_to(root).as_posix()
    return any(entry["source"] == source for entry in read_manifest(root).values())


def blocker(course: Curriculum, milestone: Milestone) -> str | None:
    """One line naming the first chapter to finish before this milestone can run, or None when it can."""
    root = course.root
    for folder in milestone.needs:
        module = course.module(folder)
        if not module.is_written(root) or not exported(root, module):
            return f"chapter {module.folder} is not in your package yet: finish it first (tito module complete {module.folder})"
        stubs = unfinished(root, module)
        if stubs:
            more = f" and {len(stubs) - 1} more" if len(stubs) > 1 else ""
            verb = "raises" if len(stubs) == 1 else "raise"
            return (f"chapter {module.folder} is not complete ({stubs[0]}{more} still {verb} NotImplementedError): "
                    f"finish it first (tito module complete {module.folder})")
    return None


def chapter_of(root: Path, package_file: str) -> str | None:
    """The chapter folder that exports a file such as 'tinytorch/nn/layers.py'."""
    rel = package_file.removeprefix(f"{PACKAGE}/")
    entry = read_manifest(root).get(rel)
    if entry is None:
        return None
    return Path(entry["source"]).parent.name


# ---- running one ------------------------------------------------------------------------------


def command_line(milestone: Milestone, extra: tuple[str, ...] = ()) -> str:
    return " ".join(["python", milestone.script.as_posix(), *extra])


def run(course: Curriculum, milestone: Milestone, extra: tuple[str, ...] = (), echo=print) -> dict:
    """Run the script on the checkout's package, echoing each line it prints; return its outcome.

    The outcome is what the script wrote with --result (see milestones/_milestone.py), plus the
    lines it printed ("log"); a run that ended without writing one is a failed outcome naming why.
    """
    root = course.root
    with tempfile.TemporaryDirectory(prefix="tito-milestone-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, "-u", str(root / milestone.script), "--result", str(result_file), *extra]
        log, start = [], time.perf_counter()
        process = subprocess.Popen(command, cwd=root, env=checkout_env(root), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        try:
            for line in process.stdout:
                line = line.rstrip("\n")
                log.append(line)
                echo(line)
                if time.perf_counter() - start > TIMEOUT_SECONDS:
                    raise subprocess.TimeoutExpired(command, TIMEOUT_SECONDS)
            process.wait()
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return {"passed": False, "summary": f"stopped after {TIMEOUT_SECONDS} s without finishing",
                    "seconds": round(time.perf_counter() - start, 2), "log": log}
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        try:
            outcome = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            last = next((line for line in reversed(log) if line.strip()), "no output")
            outcome = {"passed": False, "summary": f"the script ended (exit status {process.returncode}) "
                       f"without a result; its last line: {last.strip()}",
                       "seconds": round(time.perf_counter() - start, 2)}
    outcome["log"] = [line for line in log if not line.startswith(("PASSED: ", "FAILED: "))]
    error = outcome.get("error") or {}
    if error.get("file", "").startswith(f"{PACKAGE}/"):
        chapter = chapter_of(root, error["file"])
        if chapter:
            stub = _STUB_NAME.search(error.get("message", "")) if error.get("type") == "NotImplementedError" else None
            outcome["summary"] += (f"; {stub['name']} is not written yet: finish chapter {chapter} first" if stub
                                   else f" (code from chapter {chapter})")
    return outcome


def book_record(milestone: Milestone, outcome: dict, extra: tuple[str, ...]) -> dict:
    """What --write-book keeps of a run: the outcome, the command that reproduces it, where and when it ran."""
    return {
        "year": milestone.year,
        "title": milestone.title,
        "passes_when": milestone.passes_when,
        "budget": milestone.budget,
        "command": f"tito milestone run {milestone.year}" + ("".join(f" {a}" for a in extra) if extra else ""),
        "script": command_line(milestone, extra),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": outcome.get("machine") or f"{platform.machine()}, Python {platform.python_version()}",
        "passed": outcome["passed"],
        "summary": outcome["summary"],
        "seconds": outcome.get("seconds"),
        "details": outcome.get("details", {}),
        "log": outcome.get("log", []),
    }


def write_book_record(root: Path, milestone: Milestone, record: dict) -> Path:
    from .export import write_atomic

    path = Path(root) / RESULTS / f"{milestone.year}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def recorded(root: Path, year: int | str) -> dict | None:
    """The run --write-book recorded for the book, if any."""
    path = Path(root) / RESULTS / f"{year}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---- the book's milestone pages -----------------------------------------------------------------


def results_table(root: Path):
    """The milestones page's table: each milestone and the run recorded for the book (an HTML display)."""
    from html import escape

    from IPython.display import HTML

    rows = []
    for m in discover(root):
        record = recorded(root, m.year)
        if record is None:
            result, took = f"not recorded yet (<code>tito milestone run {m.year} --write-book</code>)", "–"
        else:
            word = "PASSED" if record["passed"] else "FAILED"
            result, took = f"<b>{word}</b>: {escape(record['summary'])}", f"{record['seconds']:.1f} s"
        needs = ", ".join(f.split("_")[0] for f in m.needs)
        rows.append(f"<tr><td>{m.year}</td><td><a href=\"{m.script.stem}.html\">{escape(m.title)}</a>: "
                    f"{escape(m.recreates)}</td><td>{needs}</td><td>{escape(m.passes_when)}</td>"
                    f"<td>{result}</td><td>{took}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("year", "milestone", "needs chapters", "passes when",
                                              "recorded result", "time"))
    return HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def show_recorded(root: Path, year: int) -> None:
    """Print the run recorded for the book (command, machine, date, log, outcome) and plot its curve."""
    record = recorded(root, year)
    if record is None:
        print(f"No run of milestone {year} is recorded for the book yet: "
              f"run 'tito milestone run {year} --write-book' and commit {RESULTS.as_posix()}/{year}.json.")
        return
    word = "PASSED" if record["passed"] else "FAILED"
    print(f"Recorded with: {record['command']}   (the script alone: {record['script']})")
    print(f"On {record['date'][:16].replace('T', ' ')}, {record['machine']}; wall time {record['seconds']:.1f} s "
          f"(budget {record['budget']}; the machine was shared with other work, so times are noisy)")
    print()
    print("\n".join(record["log"]))
    print()
    print(f"{word}: {record['summary']}")
    curve = record.get("details", {}).get("curve")
    if curve:
        import matplotlib.pyplot as plt

        x_key = "epoch" if "epoch" in curve else "step"
        y_key = next(k for k in ("test_accuracy", "exact_match") if k in curve)
        fig, ax = plt.subplots(figsize=(5.5, 3.0))
        ax.plot(curve[x_key], [100 * v for v in curve[y_key]], "o-", markersize=3)
        ax.set_xlabel(x_key)
        ax.set_ylabel("held-out exact match (%)" if y_key == "exact_match" else "test accuracy (%)")
        ax.set_title(f"milestone {year}: {record['title']}", fontsize=10)
        ax.grid(alpha=0.3)
        plt.show()
    rows = record.get("details", {}).get("rows")
    if rows:
        print(f"{'workload':<24} {'yours':>9} {'complete package':>17} {'ratio':>7}")
        for row in rows:
            ref = f"{row['reference_seconds']:.2f} s" if row["reference_seconds"] else "–"
            ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "–"
            print(f"{row['workload']:<24} {row['seconds']:>7.2f} s {ref:>17} {ratio:>7}")


def progress_lines(course: Curriculum) -> list[str]:
    """The book's progress page section: each milestone and the learner's last run of it (.tito/progress.json)."""
    from .progress import Progress, changed_files

    milestones = discover(course.root)
    if not milestones:
        return []
    try:
        progress = Progress.load(course.root)
    except TitoError:
        progress = None
    rows = []
    for m in milestones:
        last = progress.last_milestone(m.year) if progress else None
        if last is None:
            status = "not run here yet"
        else:
            status = f"**{'PASSED' if last.get('passed') else 'FAILED'}** {last.get('summary', '')} ({last['at'][:10]})"
            if changed_files(course.root, last):
                status += "; the package changed since"
        page_file = course.root / "book" / "milestones" / f"{m.script.stem}.py"
        page = f"{{doc}}`{m.title} </book/milestones/{m.script.stem}>`" if page_file.is_file() else m.title
        rows.append(f"| {m.year} | {page} | {m.passes_when} | {status} |".replace("\n", " "))
    return ["## Milestones", "",
            "Your last run of each milestone on this checkout (`tito milestone run YEAR` records it);",
            "the milestones pages show the runs recorded for the book.", "",
            "| year | milestone | passes when | your last run |", "| --- | --- | --- | --- |", *rows, ""]
