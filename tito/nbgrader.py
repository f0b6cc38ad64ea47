"""NBGrader for the TinyTorch chapters: metadata checks, the course folder, and nbgrader's steps.

Chapters carry NBGrader cell metadata in their jupytext headers
(`# %% nbgrader={"grade": false, "grade_id": ..., "schema_version": 3, ...}`).
`tito nbgrader generate` converts a chapter into `course/source/<module>/`
and runs `nbgrader generate_assignment` on it; the course folder's
`nbgrader_config.py` calls `configure(c)` below, which makes nbgrader stub
solutions with tito/solutions.py, the same function `tito module start` uses.
The other steps (release, collect, autograde, feedback) run nbgrader's own
commands in the course folder, so an instructor can run them by hand too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoints import checkout_env
from .curriculum import Module
from .errors import TitoError
from .exercise import is_started
from .solutions import BEGIN, END, HIDDEN_BEGIN, HIDDEN_END, STUB, SolutionError, clear_answers, clear_solutions

COURSE_DIR = "course"
COURSE_ID = "tinytorch"
CONFIG_FILE = "nbgrader_config.py"
GRADEBOOK = "gradebook.db"
CONFIG_TEXT = '''"""nbgrader settings for the TinyTorch course folder.

Written by 'tito nbgrader generate' because the folder had none; edit it freely,
but keep the call to configure(c): it sets the course id and makes nbgrader
stub solutions exactly as 'tito module start' does.
"""

from tito.nbgrader import configure

c = get_config()  # noqa: F821 (nbgrader defines get_config for its config files)
configure(c)
'''
STUB_MARK = STUB.split("{")[0]  # "# YOUR CODE HERE: ", the start of every stub tito writes
_GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_GUIDE = "book/instructor-guide.md"


# ---- nbgrader's configuration -----------------------------------------------------------------


def clear_solutions_preprocessor():
    """nbgrader's ClearSolutions, with each solution region replaced by tito/solutions.py's stub."""
    from nbgrader.preprocessors import ClearSolutions as NbgraderClearSolutions

    class ClearSolutions(NbgraderClearSolutions):
        module = ""

        def preprocess(self, nb, resources):
            # The assignment is the module folder (02_tensor): its name goes into each stub.
            self.module = resources.get("nbgrader", {}).get("assignment", "") or ""
            return super().preprocess(nb, resources)

        def _replace_solution_region(self, cell, language):
            if cell.cell_type != "code":
                return super()._replace_solution_region(cell, language)
            try:
                cell.source, replaced = clear_solutions(cell.source, self.module)
            except SolutionError as err:
                raise RuntimeError(f"{self.module}: {err}") from None
            return replaced > 0

    return ClearSolutions


def execute_preprocessor():
    """nbgrader's Execute step with a time budget per submission (`Execute.time_budget`, seconds).

    Each cell still has nbgrader's own limit (`Execute.timeout`). Once the budget is spent,
    the remaining code cells are not run: each gets an error output, so it scores nothing,
    and the cells that passed before keep their points. 0 means no budget (nbgrader's behaviour).
    """
    import time

    from nbformat.notebooknode import NotebookNode
    from nbgrader.preprocessors import Execute as NbgraderExecute
    from traitlets import Float

    class Execute(NbgraderExecute):
        time_budget = Float(0.0, help="Seconds one notebook may run in all; 0 for no limit.").tag(config=True)
        _deadline = None

        def preprocess(self, nb, resources=None, km=None):
            self._deadline = time.monotonic() + self.time_budget if self.time_budget > 0 else None
            return super().preprocess(nb, resources, km)

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type == "code" and self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    cell.outputs = [NotebookNode(
                        output_type="error", ename="SubmissionTimeBudget",
                        evalue=f"not run: the submission's time budget of {self.time_budget:g} s was spent",
                        traceback=[f"SubmissionTimeBudget: not run, the submission's time budget of "
                                   f"{self.time_budget:g} s was spent"])]
                    cell.execution_count = None
                    return cell, resources
            return super().preprocess_cell(cell, resources, index)

        def _get_timeout(self, cell):
            timeout = super()._get_timeout(cell)
            if self._deadline is not None and timeout:
                timeout = max(1, min(timeout, int(self._deadline - time.monotonic()) + 1))
            return timeout

    return Execute


def configure(c) -> None:
    """Settings for a TinyTorch course folder; call it from nbgrader_config.py."""
    from nbgrader.converters import Autograde, GenerateAssignment

    if "course_id" not in c.CourseDirectory:
        c.CourseDirectory.course_id = COURSE_ID
    ours = clear_solutions_preprocessor()
    defaults = GenerateAssignment.class_traits()["preprocessors"].default()
    if sum(pp.__name__ == "ClearSolutions" for pp in defaults) != 1:
        raise RuntimeError("this nbgrader's generate_assignment has no single ClearSolutions step for tito to replace")
    c.GenerateAssignment.preprocessors = [ours if pp.__name__ == "ClearSolutions" else pp for pp in defaults]
    execute = execute_preprocessor()
    steps = Autograde.class_traits()["autograde_preprocessors"].default()
    if sum(pp.__name__ == "Execute" for pp in steps) != 1:
        raise RuntimeError("this nbgrader's autograde has no single Execute step for tito to replace")
    c.Autograde.autograde_preprocessors = [execute if pp.__name__ == "Execute" else pp for pp in steps]
    if "timeout" not in c.Execute:
        c.Execute.timeout = 120  # seconds per cell; 'tito nbgrader autograde --timeout' sets it per run


# ---- the metadata in a chapter ----------------------------------------------------------------


@dataclass
class Metadata:
    """What a chapter's NBGrader metadata amounts to."""

    solution_cells: int = 0
    regions: int = 0
    graded_cells: list[str] = field(default_factory=list)
    points: float = 0.0
    locked_cells: int = 0
    hidden_regions: int = 0
    answer_cells: list[str] = field(default_factory=list)  # manually graded markdown answers (questions)
    answer_points: float = 0.0  # part of `points`, graded by hand, not by autograde

    @property
    def present(self) -> bool:
        return bool(self.solution_cells or self.graded_cells or self.locked_cells)


def read_notebook(path: Path):
    """A chapter (.py in percent format, or .ipynb) as a notebook, without jupytext's own metadata."""
    import jupytext

    notebook = jupytext.read(path, fmt="py:percent" if path.suffix == ".py" else None)
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        cell.metadata.pop("cell_marker", None)
    return notebook


def _line_of(text_lines: list[str], cell_index: int) -> int:
    """The file line of the header of the cell_index-th cell (0-based) of a percent file."""
    from .solutions import CELL_MARKER

    markers = [n for n, line in enumerate(text_lines, start=1) if CELL_MARKER.match(line)]
    return markers[cell_index] if cell_index < len(markers) else 0


def check_metadata(path: Path, root: Path | None = None) -> Metadata:
    """Check a chapter's NBGrader metadata; raise a TitoError naming the first problem's line."""
    display = path.relative_to(root).as_posix() if root and path.is_relative_to(root) else str(path)
    notebook = read_notebook(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.suffix == ".py" else []
    found, seen = Metadata(), {}

    def fail(index: int, problem: str):
        where = f"{display}:{_line_of(lines, index)}" if lines else f"{display}, cell {index + 1}"
        raise TitoError(f"{where}: {problem}", f"{_GUIDE} explains the NBGrader metadata a chapter carries.")

    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader")
        source = cell.source.split("\n")
        has_begin = any(BEGIN.match(s) or END.match(s) for s in source)
        has_hidden = any(HIDDEN_BEGIN.match(s) or HIDDEN_END.match(s) for s in source)
        if meta is None:
            if has_begin:
                fail(index, "solution markers in a cell without nbgrader metadata; give it "
                            '# %% nbgrader={"grade": false, "grade_id": "...", "locked": false, '
                            '"schema_version": 3, "solution": true, "task": false}')
            if has_hidden:
                fail(index, "hidden-test markers in a cell that is not a graded test cell")
            continue
        if meta.get("schema_version") != 3:
            fail(index, 'nbgrader metadata needs "schema_version": 3')
        grade_id = meta.get("grade_id", "")
        if not isinstance(grade_id, str) or not _GRADE_ID.match(grade_id):
            fail(index, f"grade_id {grade_id!r} must be letters, digits, '_' or '-'")
        if grade_id in seen:
            fail(index, f"grade_id {grade_id!r} is used twice (first at cell {seen[grade_id] + 1}); each must be unique")
        seen[grade_id] = index
        for key in ("grade", "solution", "locked", "task"):
            if not isinstance(meta.get(key), bool):
                fail(index, f'nbgrader metadata needs "{key}": true or false')
        if cell.cell_type == "markdown" and meta["solution"]:
            # A question's answer cell: manually graded, its region is the answer key and rubric.
            if not meta["grade"]:
                fail(index, f"answer cell {grade_id!r} needs \"grade\": true and \"points\" (it is graded by hand)")
            points = meta.get("points")
            if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
                fail(index, f"answer cell {grade_id!r} needs \"points\" greater than 0")
            try:
                _, regions = clear_answers(cell.source)
            except SolutionError as err:
                fail(index, f"answer cell {grade_id!r}, {err}")
            if regions == 0:
                fail(index, f"answer cell {grade_id!r} marks no answer key; wrap it in "
                            "### BEGIN SOLUTION / ### END SOLUTION")
            found.answer_cells.append(grade_id)
            found.points += points
            found.answer_points += points
            continue
        if meta["grade"]:
            points = meta.get("points")
            if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
                fail(index, f"graded cell {grade_id!r} needs \"points\" greater than 0")
            if any(re.match(r"^\s*#\|\s*export", s) for s in source):
                fail(index, f"graded cell {grade_id!r} is exported into the package; tests stay out of tinytorch/")
            found.graded_cells.append(grade_id)
            found.points += points
            if meta["solution"]:
                fail(index, f"cell {grade_id!r} is both graded and a solution; tests and solutions go in separate cells")
        elif has_hidden:
            fail(index, f"hidden-test markers in cell {grade_id!r}, which is not graded")
        if meta["solution"]:
            if cell.cell_type != "code":
                fail(index, f"solution cell {grade_id!r} is raw text; exercises are code cells, answers markdown cells")
            try:
                _, regions = clear_solutions(cell.source, first_line=1)
            except SolutionError as err:
                fail(index, f"cell {grade_id!r}, {err}")
            if regions == 0:
                fail(index, f"solution cell {grade_id!r} marks no region; wrap the code to write in "
                            "### BEGIN SOLUTION / ### END SOLUTION inside a function body")
            found.solution_cells += 1
            found.regions += regions
        elif has_begin:
            fail(index, f"solution markers in cell {grade_id!r}, which is not a solution cell")
        if meta["locked"] and not meta["grade"]:
            found.locked_cells += 1
        found.hidden_regions += sum(bool(HIDDEN_BEGIN.match(s)) for s in source)
    return found


def has_metadata(path: Path) -> bool:
    """Whether any cell header of the chapter carries NBGrader metadata (a cheap text check)."""
    return "nbgrader=" in path.read_text(encoding="utf-8")


# ---- the course folder -----------------------------------------------------------------------


def course_dir(root: Path, given: str | None) -> Path:
    return (Path(given) if given else Path(root) / COURSE_DIR).resolve()


def prepare_course(course: Path) -> bool:
    """Create the course folder and its nbgrader_config.py (never overwriting one); True if written now."""
    course.mkdir(parents=True, exist_ok=True)
    config = course / CONFIG_FILE
    if config.exists():
        if "configure(c)" not in config.read_text(encoding="utf-8"):
            raise TitoError(
                f"{config} does not call tito's configure(c), so nbgrader would stub solutions its own way.",
                "Add these two lines to it: 'from tito.nbgrader import configure' and 'configure(c)'.",
            )
        return False
    config.write_text(CONFIG_TEXT, encoding="utf-8")
    return True


def notebook_name(module: Module) -> str:
    return f"{module.name}_dev.ipynb"


def write_source(root: Path, course: Path, module: Module) -> Path:
    """The instructor's notebook for a module: the chapter as .ipynb in course/source/<module>/."""
    import nbformat

    notebook = read_notebook(module.dev_file(root))
    target = course / "source" / module.folder / notebook_name(module)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(notebook) + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def run(root: Path, course: Path, *args: str, timeout: int = 3600) -> str:
    """Run one nbgrader command in the course folder; raise a TitoError with nbgrader's own error line."""
    env = checkout_env(root)
    # nbgrader calls `alembic` to set up its gradebook: it must find this environment's scripts.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    command = [sys.executable, "-m", "nbgrader", *args]
    try:
        done = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TitoError(f"nbgrader {args[0]} did not finish within {timeout} s.") from None
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "| ERROR]" in line or line.startswith(("Error", "ERROR"))]
    if any("Exception while loading config file" in line for line in errors):
        # nbgrader logs a broken config and carries on with its defaults: never accept that.
        last = (output.strip().splitlines() or ["no output"])
        cause = next((line.strip() for line in reversed(last) if "Error" in line and "|" not in line), errors[0])
        raise TitoError(
            f"nbgrader could not load {course / CONFIG_FILE}: {cause}",
            "Fix that file (it must run 'from tito.nbgrader import configure' and 'configure(c)').",
        )
    if done.returncode != 0:
        detail = errors[0] if errors else (output.strip().splitlines() or ["no output"])[-1]
        raise TitoError(
            f"nbgrader {' '.join(args)} failed: {detail.strip()}",
            f"Run it yourself for the whole log: cd {course} && nbgrader {' '.join(args)}",
        )
    return output


ANSWER_KEYS = "answer_keys"


def answer_key_path(course: Path, module: Module) -> Path:
    """The instructor's answer keys for an assignment: in the course folder, never in release/ or feedback/."""
    return course / ANSWER_KEYS / f"{module.folder}.md"


def answer_keys(notebook) -> list[tuple[str, float, str, str]]:
    """(grade_id, points, question, answer key and rubric) for each answer cell of a notebook."""
    found, question = [], ""
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader") or {}
        if cell.cell_type != "markdown":
            continue
        if not meta.get("solution"):
            question = cell.source.strip()
            continue
        key, inside = [], False
        for line in cell.source.split("\n"):
            if BEGIN.match(line):
                inside = True
            elif END.match(line):
                inside = False
            elif inside:
                key.append(line)
        found.append((meta.get("grade_id", ""), float(meta.get("points", 0)), question, "\n".join(key).strip()))
    return found


def write_answer_keys(root: Path, course: Path, module: Module) -> Path | None:
    """course/answer_keys/<module>.md: each question with its answer key and rubric (None if it has none)."""
    keys = answer_keys(read_notebook(module.dev_file(root)))
    target = answer_key_path(course, module)
    if not keys:
        return None
    total = sum(points for _, points, _, _ in keys)
    parts = [f"# {module.folder}: answer keys and rubrics\n",
             f"Written by 'tito nbgrader generate {module.folder}' from "
             f"modules/{module.folder}/{module.dev_file(root).name}; do not hand this file out.",
             f"{len(keys)} answer cell(s), {total:g} point(s), graded by hand (nbgrader formgrader).\n"]
    for grade_id, points, question, key in keys:
        parts += [f"## {grade_id} ({points:g} point(s))\n", question + "\n", key + "\n"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target


@dataclass
class Generated:
    module: Module
    source: Path
    release: Path
    metadata: Metadata


def generate(root: Path, course: Path, module: Module) -> Generated:
    """Check the chapter's metadata, write its source notebook, and run nbgrader generate_assignment."""
    chapter = module.dev_file(root)
    if is_started(root, module):
        raise TitoError(
            f"{module.folder} is started as your own exercise, so its chapter file holds stubs, not solutions.",
            f"Generate from the complete chapter: 'tito module reset {module.folder}' first (it backs up your version).",
        )
    if not has_metadata(chapter):
        raise TitoError(
            f"{module.folder} has no NBGrader metadata yet, so there is nothing to release.",
            f"Run 'tito nbgrader annotate {module.folder}' and mark its solutions ({_GUIDE} shows how).",
        )
    metadata = check_metadata(chapter, root)
    prepare_course(course)
    source = write_source(root, course, module)
    run(root, course, "generate_assignment", module.folder, "--force")
    release = course / "release" / module.folder / notebook_name(module)
    if not release.is_file():
        raise TitoError(f"nbgrader wrote no {release}.", f"Run it yourself: cd {course} && nbgrader generate_assignment {module.folder}")
    text = release.read_text(encoding="utf-8")
    if metadata.regions and STUB_MARK not in text:
        raise TitoError(f"{release} does not hold tito's stubs, so nbgrader did not use {course / CONFIG_FILE}'s configure(c).",
                        "Check that file, then generate again.")
    if "BEGIN SOLUTION" in text or "END SOLUTION" in text or "HIDDEN TESTS" in text:
        raise TitoError(f"{release} still holds solution or hidden-test markers; do not hand it out.",
                        f"Check the markers in {chapter.relative_to(root).as_posix()}.")
    write_answer_keys(root, course, module)
    return Generated(module, source, release, metadata)


@dataclass
class Score:
    student: str
    score: float
    max_score: float


def scores(course: Path, assignment: str) -> list[Score]:
    """Every autograded submission of an assignment, from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    database = course / GRADEBOOK
    if not database.is_file():
        return []
    found = []
    with Gradebook(f"sqlite:///{database}", course_id(course)) as gradebook:
        try:
            submissions = gradebook.assignment_submissions(assignment)
        except MissingEntry:
            return []
        for submission in submissions:
            found.append(Score(submission.student_id, submission.score, submission.max_score))
    return sorted(found, key=lambda s: s.student)


def course_id(course: Path) -> str:
    """The course id the folder's config sets (configure's default unless the instructor changed it)."""
    text = (course / CONFIG_FILE).read_text(encoding="utf-8") if (course / CONFIG_FILE).is_file() else ""
    match = re.search(r"course_id\s*=\s*['\"]([^'\"]+)['\"]", text)
    return match[1] if match else COURSE_ID


def exchange_args(exchange: str | None) -> list[str]:
    return [f"--Exchange.root={Path(exchange).resolve()}"] if exchange else []


