"""Autograding that a hostile or stuck submission cannot break, and feedback that skips what failed.

nbgrader runs each student's notebook with the instructor's rights, in the
course folder: a submission can delete `gradebook.db` or `nbgrader_config.py`
with a relative path, read other submissions, and an endless loop holds the
whole class up. So each submission is graded in its own throwaway copy:

    <tmp>/throwaway/.../course/  nbgrader_config.py, source/<assignment>/, release/<assignment>/,
                                 submitted/<student>/<assignment>/ (that student's files only)
    <tmp>/gradebook/             gradebook.db: a copy of the real one without the other students
    <tmp>/package/tinytorch/     the course's package with this assignment's chapter exported from
                                 the submission itself, first on the kernel's PYTHONPATH, so
                                 importing the finished chapter from tinytorch passes no test

nbgrader runs there (`--CourseDirectory.root`, `--CourseDirectory.db_url`), the
kernel's working folder is `.../course/autograded/<student>/<assignment>/`, so
`../../../gradebook.db` names nothing and writes outside the folder (up to eleven
levels up) land in the throwaway. When it finishes, this process (never the
student's code) reads the copy's grades for that submission, clamps each to the points the real gradebook
gives its cell, and writes them into the real gradebook with nbgrader's
Gradebook API; the autograded notebooks are copied back for feedback. The real
gradebook is backed up (a timestamped copy) before every run.

Each cell has nbgrader's per-cell limit (`Execute.timeout`); a submission also
has a time budget: once it is spent, the remaining cells are not run and score
nothing (the `Execute` step that `configure(c)` installs does this), so a
submission that loops is still scored for what passed. A process that outlives
budget and slack is killed, and the student is reported as not graded.

This protects against relative paths and stray writes, not against code that
deliberately hunts for absolute paths under the same user account: for that,
grade in a container or per-user JupyterHub (the instructor guide says so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .checkpoints import checkout_env
from .errors import TitoError
from .export import export_source
from .nbgrader import CONFIG_FILE, GRADEBOOK, course_id

BACKUPS = "gradebook-backups"
DEFAULT_TIMEOUT = 120  # seconds per cell, as in `configure(c)`
BUDGET_CELLS = 5  # a submission's time budget is this many cell limits
SLACK_SECONDS = 120  # start-up, sanitising and writing, on top of the budget, before a kill
TIMEOUT_ERROR = "CellTimeoutError"  # nbgrader's error name for a cell that hit its limit
BUDGET_ERROR = "SubmissionTimeBudget"  # ours, for a cell not run because the budget was spent
LOCK_WAIT_SECONDS = 5
SANDBOX_DEPTH = 8


# ---- the real gradebook ------------------------------------------------------------------------


def check_course(course: Path, assignment: str) -> Path:
    """The real gradebook, after checking the folder, the gradebook and that it can be written."""
    if not course.is_dir():
        raise TitoError(f"No course folder at {course}.",
                        f"Run 'tito nbgrader generate {assignment}' first, or pass --course DIR.")
    if not (course / CONFIG_FILE).is_file():
        raise TitoError(f"{course} has no {CONFIG_FILE}, so nbgrader would grade it with the wrong settings.",
                        f"Restore it from your own copy, or run 'tito nbgrader generate {assignment}' to write a new one.")
    database = course / GRADEBOOK
    if not database.is_file():
        backups = sorted((course / BACKUPS).glob("gradebook-*.db"))
        hint = (f"Restore the latest backup: cp {backups[-1]} {database}" if backups
                else f"Run 'tito nbgrader generate {assignment}' to record the assignment's tests in a new gradebook.")
        raise TitoError(f"No gradebook at {database}, so {assignment}'s tests and scores are unknown.", hint)
    try:
        connection = sqlite3.connect(database, timeout=LOCK_WAIT_SECONDS)
        try:
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock: fails if another program holds it
            connection.rollback()
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.OperationalError as err:
        if "locked" in str(err):
            raise TitoError(f"{database} is locked by another program (formgrader, or another autograde).",
                            "Close it and run this again; nothing was changed.") from None
        raise TitoError(f"{database} cannot be written: {err}.",
                        "Check the file's permissions; nothing was changed.") from None
    except sqlite3.DatabaseError as err:
        raise TitoError(f"{database} is not a readable gradebook: {err}.",
                        f"Restore a backup from {course / BACKUPS}/ (cp it over {database}).") from None
    if "assignment" not in tables:
        raise TitoError(f"{database} is not an nbgrader gradebook (it has no assignment table).",
                        f"Restore a backup from {course / BACKUPS}/, or run 'tito nbgrader generate {assignment}'.")
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{database}", course_id(course)) as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            raise TitoError(f"The gradebook has no assignment {assignment}.",
                            f"Run 'tito nbgrader generate {assignment}' first.") from None
    return database


def backup_gradebook(course: Path) -> Path:
    """A consistent, timestamped copy of the gradebook in <course>/gradebook-backups/."""
    folder = course / BACKUPS
    folder.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = folder / f"gradebook-{stamp}.db"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"gradebook-{stamp}-{n}.db"
    _copy_database(course / GRADEBOOK, target)
    return target


def _copy_database(source: Path, target: Path) -> None:
    """sqlite's own backup: a consistent copy even while another connection reads the file."""
    src = sqlite3.connect(source, timeout=LOCK_WAIT_SECONDS)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# ---- one submission in its throwaway copy -----------------------------------------------------


@dataclass
class Outcome:
    """What grading one submission gave: scores to merge, or why there are none."""

    student: str
    grades: list[dict] = field(default_factory=list)  # per graded cell: name, notebook, auto_score, ...
    comments: list[dict] = field(default_factory=list)
    notebooks: list[dict] = field(default_factory=list)  # name, late_submission_penalty
    timestamp: datetime | None = None
    problem: str = ""  # not graded, and why
    notes: list[str] = field(default_factory=list)  # graded, but something the instructor should know
    seconds: float = 0.0

    @property
    def graded(self) -> bool:
        return not self.problem


def submissions(course: Path, assignment: str) -> list[str]:
    """Students with a submission folder for the assignment."""
    return sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir())


def _copy_files(source: Path, target: Path, keep=None) -> None:
    """Regular files only (a symlink in a submission could point at the real gradebook);
    `keep(rel)` chooses which, by path relative to `source`."""
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(source)
        if keep is not None and not keep(rel):
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints and the like
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / rel)


def _unreadable_notebooks(folder: Path) -> list[str]:
    import nbformat

    problems = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nbformat's notes about missing cell ids
                nbformat.read(path, as_version=4)
        except Exception as err:  # json errors, validation errors, bad encodings
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problems.append(f"{path.name} is not a readable notebook ({detail[:120]})")
    return problems


def _prune_other_students(database: Path, course_name: str, student: str) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{database}", course_name) as gradebook:
        for other in [s.id for s in gradebook.students if s.id != student]:
            gradebook.remove_student(other)


def _read_submission(database: Path, course_name: str, assignment: str, student: str, outcome: Outcome) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{database}", course_name) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            outcome.problem = "its grading left no scores (did the submission tamper with its copy of the gradebook?)"
            return
        outcome.timestamp = submission.timestamp
        for notebook in submission.notebooks:
            outcome.notebooks.append({"name": notebook.name, "late_submission_penalty": notebook.late_submission_penalty})
            for grade in notebook.grades:
                outcome.grades.append({"name": grade.name, "notebook": notebook.name, "auto_score": grade.auto_score,
                                       "needs_manual_grade": grade.needs_manual_grade})
            for comment in notebook.comments:
                outcome.comments.append({"name": comment.name, "notebook": notebook.name,
                                         "auto_comment": comment.auto_comment})


def _notes_from_outputs(folder: Path, timeout: int) -> list[str]:
    """What the autograded notebooks say about cells that hit the limit or were not run."""
    timed_out = skipped = died = 0
    for path in sorted(folder.glob("*.ipynb")):
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for cell in notebook.get("cells", []):
            names = {o.get("ename") for o in cell.get("outputs", []) if o.get("output_type") == "error"}
            timed_out += TIMEOUT_ERROR in names
            skipped += BUDGET_ERROR in names
            died += "DeadKernelError" in names
    notes = []
    if timed_out:
        notes.append(f"{timed_out} cell(s) hit the {timeout} s limit")
    if skipped:
        notes.append(f"time budget spent: {skipped} later cell(s) not run")
    if died:
        notes.append("the kernel died")
    return notes


def _nbgrader_error(output: str) -> str:
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    for line in lines:
        if "No submitted file" in line:
            return line.split("]", 1)[-1].strip()
    interesting = [l for l in lines if "| ERROR]" in l and "There was an error processing" not in l
                   and "Please see the" not in l]
    if interesting:
        return interesting[0].split("]", 1)[-1].strip()[:200]
    return (lines[-1] if lines else "no output")[:200]


def grade_submission(root: Path, course: Path, assignment: str, student: str, timeout: int, budget: float,
                     package: Path | None = None) -> Outcome:
    """Grade one submission in a throwaway copy of the course folder; never touches the real gradebook."""
    outcome = Outcome(student)
    started = time.monotonic()
    submitted = course / "submitted" / student / assignment
    unreadable = _unreadable_notebooks(submitted)
    if unreadable:
        outcome.problem = "; ".join(unreadable)
        return outcome
    with tempfile.TemporaryDirectory(prefix="tito-grade-") as tmp:
        # The copy sits deep in the throwaway, so a relative path up to SANDBOX_DEPTH + 3 levels
        # above the notebook's folder still lands in the throwaway, not beside it.
        box = Path(tmp).joinpath(*["throwaway"] * SANDBOX_DEPTH, "course")
        private = Path(tmp) / "gradebook"
        box.mkdir(parents=True)
        private.mkdir()
        shutil.copyfile(course / CONFIG_FILE, box / CONFIG_FILE)
        for part in ("source", "release"):
            if (course / part / assignment).is_dir():
                _copy_files(course / part / assignment, box / part / assignment)
        _copy_files(submitted, box / "submitted" / student / assignment)
        database = private / GRADEBOOK
        _copy_database(course / GRADEBOOK, database)
        name = course_id(course)
        _prune_other_students(database, name, student)

        env = checkout_env(root)
        if package is not None:
            # The package with this chapter exported from the submission itself (as 'tito module complete'
            # does), so importing the chapter from tinytorch gives the student's own code, never the
            # finished chapter. A notebook that does not export leaves the chapter's exercise stubs.
            own = Path(tmp) / "package"
            shutil.copytree(package, own)
            for notebook in sorted((box / "submitted" / student / assignment).glob("*.ipynb")):
                try:
                    export_source(own, notebook)
                except TitoError as err:
                    _export_exercise(root, assignment, own)
                    outcome.notes.append(f"its notebook does not export ({err.message[:80]}), "
                                         f"so tinytorch held the exercise's stubs for {assignment}")
            env["PYTHONPATH"] = os.pathsep.join([str(own), env["PYTHONPATH"]])
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("MPLBACKEND", "Agg")
        command = [sys.executable, "-m", "nbgrader", "autograde", assignment, "--student", student, "--force",
                   f"--CourseDirectory.root={box}", f"--CourseDirectory.db_url=sqlite:///{database}",
                   f"--Execute.timeout={timeout}", f"--Execute.time_budget={budget:g}"]
        limit = budget + 2 * timeout + SLACK_SECONDS
        process = subprocess.Popen(command, cwd=box, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_tree(process)
            process.communicate()
            outcome.problem = f"still running after {limit:g} s, so it was stopped (its kernel ignored the limits)"
            outcome.seconds = time.monotonic() - started
            return outcome
        finally:
            _kill_group(process)  # anything the submission left running in the background
        graded = box / "autograded" / student / assignment
        if process.returncode != 0 or not any(graded.glob("*.ipynb")):
            outcome.problem = f"nbgrader could not grade it: {_nbgrader_error(output)}"
        else:
            _read_submission(database, name, assignment, student, outcome)
        if outcome.graded:
            outcome.notes += _notes_from_outputs(graded, timeout)
            target = course / "autograded" / student / assignment
            if target.exists():
                shutil.rmtree(target)
            # The notebooks, and the files the student handed in (submission_secret.txt, timestamp.txt),
            # which nbgrader's feedback needs; nothing the student's code wrote while it ran.
            handed_in = {p.relative_to(submitted) for p in submitted.rglob("*") if p.is_file()}
            _copy_files(graded, target, keep=lambda rel: rel.suffix == ".ipynb" or rel in handed_in)
    outcome.seconds = time.monotonic() - started
    return outcome


def _export_exercise(root: Path, assignment: str, package_root: Path) -> None:
    """Export the chapter's exercise version (stubs) into the grading package, over the finished one."""
    from . import curriculum
    from .solutions import exercise_version

    module = curriculum.load(root).module(assignment)
    chapter = package_root / "exercise" / assignment / module.dev_file(root).name
    chapter.parent.mkdir(parents=True, exist_ok=True)
    chapter.write_text(exercise_version(module.dev_file(root).read_text(encoding="utf-8"), assignment)[0],
                       encoding="utf-8")
    export_source(package_root, chapter)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tree(process: subprocess.Popen) -> None:
    """nbgrader and every process below it: the kernel runs in a session of its own."""
    try:
        import psutil

        children = psutil.Process(process.pid).children(recursive=True)
    except Exception:  # psutil missing, or the process already gone
        children = []
    _kill_group(process)
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGKILL) if child.pid == os.getpgid(child.pid) else None
            child.kill()
        except Exception:
            pass


# ---- merging into the real gradebook ----------------------------------------------------------


def merge(course: Path, assignment: str, outcome: Outcome) -> None:
    """Write one graded submission's scores into the real gradebook (each clamped to its cell's points)."""
    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / GRADEBOOK}", course_id(course)) as gradebook:
        # nbgrader's own add_submission makes SQLAlchemy warn about its session; the rows are right.
        warnings.simplefilter("ignore")
        gradebook.update_or_create_student(outcome.student)
        extra = {"timestamp": outcome.timestamp} if outcome.timestamp else {}
        gradebook.update_or_create_submission(assignment, outcome.student, **extra)
        for entry in outcome.notebooks:
            try:
                notebook = gradebook.find_submission_notebook(entry["name"], assignment, outcome.student)
            except MissingEntry:
                continue
            notebook.late_submission_penalty = entry["late_submission_penalty"]
        for entry in outcome.grades:
            try:
                grade = gradebook.find_grade(entry["name"], entry["notebook"], assignment, outcome.student)
            except MissingEntry:
                continue  # a cell the real assignment does not have: ignore it
            score = entry["auto_score"]
            if score is not None:
                score = min(max(float(score), 0.0), float(grade.max_score))
            grade.auto_score = score
            grade.needs_manual_grade = bool(entry["needs_manual_grade"])
        for entry in outcome.comments:
            try:
                comment = gradebook.find_comment(entry["name"], entry["notebook"], assignment, outcome.student)
            except MissingEntry:
                continue
            comment.auto_comment = entry["auto_comment"]
        gradebook.db.commit()


def autograde(root: Path, course: Path, assignment: str, students: list[str], timeout: int,
              budget: float, jobs: int = 1, report=None, own_package: bool = True) -> list[Outcome]:
    """Grade each student's submission in its own throwaway copy and merge the scores; never raises for one."""
    outcomes: list[Outcome] = []
    # nbgrader's Gradebook makes SQLAlchemy warn about its own session (the rows are right), and
    # nbformat about cell ids; warnings.catch_warnings is not thread-safe, so filter them for the process.
    warnings.filterwarnings("ignore", module=r"nbgrader\.api")
    warnings.filterwarnings("ignore", module=r"nbformat\..*")

    def one(student: str) -> Outcome:
        try:
            return grade_submission(root, course, assignment, student, timeout, budget, package)
        except Exception as err:  # a tito bug or a full disk must not cost the other students their grades
            return Outcome(student, problem=f"{type(err).__name__}: {err}")

    from . import curriculum
    from .student_repo import grading_package

    chapters = curriculum.load(root)
    with tempfile.TemporaryDirectory(prefix="tito-package-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        package = grading_package(chapters, Path(tmp)) if own_package else None
        for outcome in pool.map(one, students):
            if outcome.graded:
                try:
                    merge(course, assignment, outcome)
                except Exception as err:
                    outcome.problem = f"its scores could not be written to the gradebook: {err}"
            outcomes.append(outcome)
            if report:
                report(outcome)
    return outcomes


# ---- feedback -----------------------------------------------------------------------------------


def graded_students(course: Path, assignment: str) -> set[str]:
    """Students whose submission of the assignment is in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / GRADEBOOK}", course_id(course)) as gradebook:
        try:
            return {s.student.id for s in gradebook.assignment_submissions(assignment)}
        except MissingEntry:
            return set()
