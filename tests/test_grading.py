"""Autograding a class: a hostile or stuck submission costs nobody else their grade.

Each submission is graded in a throwaway copy of the course folder; these tests
hand in, beside a solved and an untouched notebook, one that deletes the gradebook
and the config and writes outside its folder, one that never ends, and one that is
not a notebook at all, and check what the instructor is left with.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import autograde as grading
from tito import curriculum
from tito import nbgrader as tools
from tito.cli import cli

from conftest import as_result, build_once, outcome

ROOT = Path(__file__).resolve().parent.parent
COURSE = curriculum.load(ROOT)
MODULE = COURSE.module("01_setup")
NOTEBOOK = tools.notebook_name(MODULE)
PACKAGE_MODULE = f"tinytorch.{MODULE.export}"


def tito(*args: str):
    return CliRunner(env={"TINYTORCH_ROOT": str(ROOT)}).invoke(cli, list(args))


def code_cell(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}


def hand_in(course: Path, student: str, notebook: dict | str) -> Path:
    folder = course / "submitted" / student / MODULE.folder
    folder.mkdir(parents=True)
    text = notebook if isinstance(notebook, str) else json.dumps(notebook)
    (folder / NOTEBOOK).write_text(text, encoding="utf-8")
    return folder


HOSTILE = """import os
for path in ['../../../gradebook.db', '../../../nbgrader_config.py', '../../../../gradebook.db']:
    try:
        os.remove(path)
    except OSError:
        pass
for path in ['../../../escaped.txt', '../../../../escaped.txt', '../../../../../escaped.txt',
             '../../../../../../../../escaped.txt']:
    try:
        open(path, 'w').write('written by a submission')
    except OSError:
        pass
print(sorted(os.listdir('../..')))
"""


# --- bad input: one line, nothing lost (fast) ----------------------------------------------------


def test_a_missing_course_folder_is_one_line(tmp_path):
    result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"✗ No course folder at {tmp_path / 'nowhere'}."
    assert "tito nbgrader generate 01_setup" in result.stderr


def test_a_missing_gradebook_names_the_latest_backup(tmp_path):
    (tmp_path / tools.CONFIG_FILE).write_text(tools.CONFIG_TEXT)
    (tmp_path / grading.BACKUPS).mkdir()
    (tmp_path / grading.BACKUPS / "gradebook-20260101-090000.db").write_bytes(b"")
    result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(tmp_path))
    assert result.exit_code == 1
    assert "No gradebook at" in result.stderr.splitlines()[0]
    assert "cp " in result.stderr and "gradebook-20260101-090000.db" in result.stderr


def test_a_locked_gradebook_is_refused_and_left_alone(tmp_path, monkeypatch):
    # tito waits LOCK_WAIT_SECONDS (5) for a lock to be released; nobody releases this one, so a short wait
    # reaches the same refusal.
    monkeypatch.setattr(grading, "LOCK_WAIT_SECONDS", 0.2)
    (tmp_path / tools.CONFIG_FILE).write_text(tools.CONFIG_TEXT)
    database = tmp_path / tools.GRADEBOOK
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE assignment (id TEXT)")
    holder.execute("BEGIN EXCLUSIVE")  # another program (formgrader) writing
    try:
        result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(tmp_path))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "is locked by another program" in result.stderr.splitlines()[0]
    assert not (tmp_path / grading.BACKUPS).exists()


def test_a_file_that_is_not_a_gradebook_is_refused(tmp_path):
    (tmp_path / tools.CONFIG_FILE).write_text(tools.CONFIG_TEXT)
    (tmp_path / tools.GRADEBOOK).write_text("not a database, just text " * 100)
    result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(tmp_path))
    assert result.exit_code == 1
    assert "is not a readable gradebook" in result.stderr.splitlines()[0]


# --- the time budget of one notebook (a kernel, no gradebook) -----------------------------------


@pytest.mark.slow
def test_a_spent_time_budget_leaves_the_remaining_cells_unrun(tmp_path):
    import nbformat
    from traitlets.config import Config

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("while True:\n    pass"),
        nbformat.v4.new_code_cell("while True:\n    pass"),
        nbformat.v4.new_code_cell("y = 2"),
    ])
    config = Config()
    config.Execute.timeout = 2
    config.Execute.time_budget = 3
    execute = tools.execute_preprocessor()(config=config)
    started = time.monotonic()
    executed, _ = execute.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    errors = [[o.get("ename") for o in cell.outputs if o.output_type == "error"] for cell in executed.cells]
    assert errors[0] == []
    assert grading.TIMEOUT_ERROR in errors[1]
    assert grading.BUDGET_ERROR in errors[3]  # never run: the budget was spent on the two loops
    assert time.monotonic() - started < 60


# --- the class: solved, untouched, hostile, stuck, corrupted -------------------------------------


@pytest.fixture(scope="module")
def graded_class(shared_dir):
    """A course folder in which six students' submissions were autograded, and what tito said.

    Built once per test run, whichever worker asks first; the tests only read it (the one that
    grades again works on a copy).
    """
    def build(tmp: Path) -> dict:
        course = tmp / "course"
        assert tito("nbgrader", "generate", MODULE.folder, "--course", str(course)).exit_code == 0
        source = json.loads((course / "source" / MODULE.folder / NOTEBOOK).read_text())
        release = json.loads((course / "release" / MODULE.folder / NOTEBOOK).read_text())
        hand_in(course, "solved", source)
        hand_in(course, "untouched", release)
        hostile = json.loads(json.dumps(release))
        hostile["cells"].insert(1, code_cell(HOSTILE))
        hand_in(course, "hostile", hostile)
        stuck = json.loads(json.dumps(source))
        stuck["cells"].insert(2, code_cell("while True:\n    pass"))
        hand_in(course, "stuck", stuck)
        hand_in(course, "corrupted", '{"cells": [ this is not json')
        copier = json.loads(json.dumps(release))  # imports the finished chapter after each stubbed cell
        for index in reversed(range(len(copier["cells"]))):
            if copier["cells"][index]["metadata"].get("nbgrader", {}).get("solution"):
                copier["cells"].insert(index + 1, code_cell(f"from {PACKAGE_MODULE} import *"))
        hand_in(course, "copier", copier)
        config_before = (course / tools.CONFIG_FILE).read_bytes()
        started = time.monotonic()
        result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(course), "--timeout", "5", "--jobs", "2")
        seconds = time.monotonic() - started
        feedback = tito("nbgrader", "feedback", MODULE.folder, "--course", str(course))
        return {"result": outcome(result), "feedback": outcome(feedback), "seconds": seconds, "config": config_before.hex()}

    tmp, record = build_once(shared_dir, "graded-class", build)
    return {"course": tmp / "course", "tmp": tmp, "result": as_result(record["result"]),
            "feedback": as_result(record["feedback"]), "seconds": record["seconds"],
            "config": bytes.fromhex(record["config"])}


def scores(course: Path) -> dict[str, tuple[float, float]]:
    return {s.student: (s.score, s.max_score) for s in tools.scores(course, MODULE.folder)}


@pytest.mark.slow
def test_the_gradebook_and_config_survive_a_submission_that_deletes_them(graded_class):
    course = graded_class["course"]
    assert (course / tools.CONFIG_FILE).read_bytes() == graded_class["config"]
    assert (course / tools.GRADEBOOK).is_file()
    assert set(scores(course)) == {"solved", "untouched", "hostile", "stuck", "copier"}


@pytest.mark.slow
def test_writes_outside_a_submissions_folder_land_in_the_throwaway(graded_class):
    import tempfile

    tmp = graded_class["tmp"]
    assert not list(tmp.rglob("escaped.txt"))
    assert not (Path(tempfile.gettempdir()) / "escaped.txt").exists()
    hostile = json.loads((graded_class["course"] / "autograded" / "hostile" / MODULE.folder / NOTEBOOK).read_text())
    listing = "".join("".join(o.get("text", "")) for o in hostile["cells"][1]["outputs"])
    assert "solved" not in listing and "untouched" not in listing  # no other submission in sight


@pytest.mark.slow
def test_the_solution_scores_full_marks_and_the_untouched_release_zero(graded_class):
    points = tools.check_metadata(MODULE.dev_file(ROOT))
    auto = points.points - points.answer_points
    found = scores(graded_class["course"])
    assert found["solved"] == (auto, points.points)
    assert found["untouched"] == (0, points.points)
    assert found["hostile"] == (0, points.points)


@pytest.mark.slow
def test_importing_the_finished_chapter_from_tinytorch_passes_no_test(graded_class):
    # Submissions run against the package as a student of this chapter has it: its own chapter stubbed.
    assert scores(graded_class["course"])["copier"][0] == 0


@pytest.mark.slow
def test_an_endless_loop_is_stopped_at_the_cell_limit_and_scored(graded_class):
    points = tools.check_metadata(MODULE.dev_file(ROOT))
    assert scores(graded_class["course"])["stuck"] == (points.points - points.answer_points, points.points)
    assert "1 cell(s) hit the 5 s limit" in graded_class["result"].output


@pytest.mark.slow
def test_every_student_is_in_the_table_and_the_failure_is_named(graded_class):
    result = graded_class["result"]
    table = result.stdout.split("autograded scores", 1)[1]
    for student in ("solved", "untouched", "hostile", "stuck", "copier", "corrupted"):
        assert student in table
    assert f"corrupted: {NOTEBOOK} is not a readable notebook" in result.stdout
    # exit 1 only because one submission could not be graded, after the table
    assert result.exit_code == 1
    assert "1 of 6 submission(s) of 01_setup could not be graded" in result.stderr


@pytest.mark.slow
def test_the_gradebook_is_backed_up_before_the_run(graded_class):
    backups = sorted((graded_class["course"] / grading.BACKUPS).glob("gradebook-*.db"))
    assert backups
    with sqlite3.connect(backups[0]) as connection:  # a copy from before any score was recorded
        assert connection.execute("SELECT count(*) FROM submitted_assignment").fetchone()[0] == 0


@pytest.mark.slow
def test_feedback_is_written_for_the_graded_and_skips_the_rest(graded_class):
    feedback, course = graded_class["feedback"], graded_class["course"]
    assert feedback.exit_code == 0, feedback.output
    html = NOTEBOOK.replace(".ipynb", ".html")
    for student in ("solved", "untouched", "hostile", "stuck", "copier"):
        assert (course / "feedback" / student / MODULE.folder / html).is_file()
    assert not (course / "feedback" / "corrupted").exists()
    assert "no feedback for corrupted" in feedback.output


@pytest.mark.slow
def test_regrading_one_student_keeps_the_others_scores(graded_class, tmp_path):
    course = tmp_path / "course"  # a copy: the other tests read the class as the first grading left it
    shutil.copytree(graded_class["course"], course)
    before = scores(course)
    result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(course), "--student", "untouched")
    assert result.exit_code == 0, result.output
    assert scores(course) == before


@pytest.mark.slow
def test_a_student_without_a_submission_is_one_line_naming_those_who_submitted(graded_class):
    result = tito("nbgrader", "autograde", MODULE.folder, "--course", str(graded_class["course"]), "--student", "zoe")
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("✗ zoe has no submission of 01_setup") and "solved" in first
