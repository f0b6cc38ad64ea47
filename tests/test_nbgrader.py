"""NBGrader: every chapter with metadata becomes a real exercise, and a submission round-trips.

For each written chapter that carries NBGrader metadata: its release holds no
solution code (each solution cell is exactly the chapter's cell with its regions
stubbed, the same stubs `tito module start` writes), `nbgrader validate --invert`
fails every test on the release, and the chapter's exercise notebook with its
solutions pasted in autogrades to full marks (hidden tests included) and passes
its own self-check. Then one chapter goes through the steps of book/instructor-guide.md in a
temporary course folder with a private exchange: generate, release, fetch,
fill in, submit, collect, autograde, feedback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import curriculum
from tito import nbgrader as tools
from tito.cli import cli
from tito.errors import TitoError
from tito.solutions import HIDDEN_BEGIN, HIDDEN_END, clear_answers, clear_solutions, student_version

from conftest import build_once, outcome, run_lock
from exercise_support import exercise, text_of, with_solutions_pasted

ROOT = Path(__file__).resolve().parent.parent
COURSE = curriculum.load(ROOT)
WRITTEN = COURSE.written_modules()
# Under `--dist loadgroup` (make test) a chapter's tests run in one worker, one after another.
CHAPTERS = [pytest.param(m, id=m.folder, marks=pytest.mark.xdist_group(f"nbgrader-{m.folder}")) for m in WRITTEN]


def tito(*args: str, root: Path = ROOT):
    return CliRunner(env={"TINYTORCH_ROOT": str(root)}).invoke(cli, list(args))


def nbgrader(cwd: Path, *args: str) -> str:
    """A student's or instructor's own nbgrader command, in the environment tito gives nbgrader."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def cells(path: Path) -> list[dict]:
    found = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in found:
        cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return found


def by_grade_id(notebook_cells: list[dict]) -> dict[str, dict]:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in notebook_cells if "nbgrader" in c["metadata"]}


def with_metadata(module: curriculum.Module) -> curriculum.Module:
    if not tools.has_metadata(module.dev_file(ROOT)):
        pytest.skip(f"{module.folder} carries no NBGrader metadata yet")
    return module


# --- the metadata checks (fast) ----------------------------------------------------------------

HEADER = "# %% nbgrader={meta}\n"
SOLUTION = '{"grade": false, "grade_id": "impl_f", "locked": false, "schema_version": 3, "solution": true, "task": false}'
TEST = '{"grade": true, "grade_id": "test_f", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}'
BODY = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"


def chapter(tmp_path: Path, *cells_text: str) -> Path:
    path = tmp_path / "x_dev.py"
    path.write_text("\n".join(cells_text), encoding="utf-8")
    return path


def test_good_metadata_is_counted(tmp_path):
    path = chapter(tmp_path, HEADER.format(meta=SOLUTION) + BODY,
                   HEADER.format(meta=TEST) + "def test_f():\n    assert f() == 1\n    ### BEGIN HIDDEN TESTS\n"
                                              "    assert f() + 1 == 2\n    ### END HIDDEN TESTS\n\ntest_f()\n")
    found = tools.check_metadata(path)
    assert (found.solution_cells, found.regions, found.graded_cells, found.points, found.hidden_regions) == \
        (1, 1, ["test_f"], 1, 1)


@pytest.mark.parametrize("cells_text, problem", [
    ([HEADER.format(meta=SOLUTION.replace('"schema_version": 3', '"schema_version": 1')) + BODY], '"schema_version": 3'),
    ([HEADER.format(meta=SOLUTION) + BODY, HEADER.format(meta=SOLUTION) + BODY.replace("f()", "g()")], "used twice"),
    ([HEADER.format(meta=SOLUTION.replace("impl_f", "impl f")) + BODY], "must be letters, digits"),
    ([HEADER.format(meta=TEST.replace('"points": 1, ', "")) + "def test_f():\n    pass\n"], 'needs "points"'),
    (["# %%\n" + BODY], "solution markers in a cell without nbgrader metadata"),
    ([HEADER.format(meta=SOLUTION) + "def f():\n    return 1\n"], "marks no region"),
    ([HEADER.format(meta=SOLUTION) + "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"], "inside a function body"),
    ([HEADER.format(meta=SOLUTION) + "def f():\n    ### BEGIN SOLUTION\n    return 1\n"], "has no '### END SOLUTION'"),
    (["# %%\ndef test_f():\n    ### BEGIN HIDDEN TESTS\n    pass\n    ### END HIDDEN TESTS\n"], "hidden-test markers"),
    ([HEADER.format(meta=TEST) + "#| export\ndef test_f():\n    pass\n"], "exported into the package"),
])
def test_each_metadata_problem_is_one_line_naming_the_file_line(tmp_path, cells_text, problem):
    path = chapter(tmp_path, *cells_text)
    with pytest.raises(TitoError) as raised:
        tools.check_metadata(path)
    assert problem in raised.value.message
    assert raised.value.message.startswith(f"{path}:")
    assert "\n" not in raised.value.message


def test_a_course_folders_own_config_is_never_overwritten(tmp_path):
    config = tmp_path / tools.CONFIG_FILE
    config.write_text("c = get_config()\nc.CourseDirectory.course_id = 'mine'\n")
    with pytest.raises(TitoError, match="does not call tito's configure"):
        tools.prepare_course(tmp_path)
    assert config.read_text() == "c = get_config()\nc.CourseDirectory.course_id = 'mine'\n"
    config.write_text("from tito.nbgrader import configure\nc = get_config()\nconfigure(c)\n")
    assert tools.prepare_course(tmp_path) is False


def test_the_exported_package_never_contains_solution_or_hidden_test_markers():
    for path in (ROOT / "tinytorch").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.relative_to(ROOT)} contains '{marker}'"


def test_a_chapter_without_metadata_gets_a_clear_message(repo_copy, tmp_path):
    source = curriculum.load(repo_copy).module("01_setup").dev_file(repo_copy)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    source.write_text("".join(l.split(" nbgrader=")[0] + "\n" if l.startswith("# %% nbgrader=") else l for l in lines))
    result = tito("nbgrader", "generate", "01_setup", "--course", str(tmp_path / "course"), root=repo_copy)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "✗ 01_setup has no NBGrader metadata yet, so there is nothing to release."
    assert "tito nbgrader annotate 01_setup" in result.stderr


def test_a_chapter_started_as_an_exercise_is_not_generated(repo_copy, tmp_path):
    assert tito("module", "start", "01_setup", root=repo_copy).exit_code == 0
    result = tito("nbgrader", "generate", "01_setup", "--course", str(tmp_path / "course"), root=repo_copy)
    assert result.exit_code == 1
    assert "started as your own exercise" in result.stderr and "tito module reset 01_setup" in result.stderr


# --- every chapter with metadata (slow: nbgrader runs each notebook) ---------------------------


@pytest.fixture(scope="module")
def course_folder(shared_dir) -> Path:
    """One course folder for the whole test run, shared by the workers; tests only read it (grading copies it)."""
    folder = shared_dir / "course"
    folder.mkdir(exist_ok=True)
    return folder


def generate(course_folder: Path, module: curriculum.Module) -> Path:
    """The release notebook of a module, generated once per test run through `tito nbgrader generate`.

    Whichever worker first needs a chapter generates it; nbgrader writes one gradebook, so one
    chapter is generated at a time. A failed generate is tried again by the chapter's next test.
    """
    shared = course_folder.parent
    with run_lock(shared, "course"):
        generated = shared / f"course-{module.folder}.generated"
        if not generated.is_file():
            result = tito("nbgrader", "generate", module.folder, "--course", str(course_folder))
            assert result.exit_code == 0, result.output
            generated.touch()
    return course_folder / "release" / module.folder / tools.notebook_name(module)


def private_copy(course_folder: Path, target: Path) -> Path:
    """The course folder as it is now, copied for a test that grades (grading writes the gradebook)."""
    with run_lock(course_folder.parent, "course"):
        shutil.copytree(course_folder, target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_the_release_holds_no_solution_code(course_folder, module):
    release = generate(course_folder, with_metadata(module))
    source = by_grade_id(cells(course_folder / "source" / module.folder / tools.notebook_name(module)))
    released = by_grade_id(cells(release))
    assert set(released) == set(source)
    regions = 0
    for grade_id, cell in source.items():
        meta = cell["metadata"]["nbgrader"]
        if meta["solution"] and cell["cell_type"] == "markdown":
            expected, _ = clear_answers(cell["source"])
            assert released[grade_id]["source"] == expected, f"{grade_id}: the release does not hide the answer key"
        elif meta["solution"]:
            expected, count = clear_solutions(cell["source"], module.folder)
            assert released[grade_id]["source"] == expected, f"{grade_id}: the release is not the cell with its regions stubbed"
            regions += count
        if meta["grade"] and any(HIDDEN_BEGIN.match(l) for l in cell["source"].splitlines()):
            hidden, inside = [], False
            for line in cell["source"].splitlines():
                inside = (inside or bool(HIDDEN_BEGIN.match(line))) and not HIDDEN_END.match(line)
                if inside and not HIDDEN_BEGIN.match(line) and line.strip():
                    hidden.append(line)
            assert not [l for l in hidden if l in released[grade_id]["source"].splitlines()], f"{grade_id} shows hidden tests"
    assert regions > 0
    text = release.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_the_release_and_tito_module_start_give_the_same_exercise(course_folder, module):
    import jupytext

    release = generate(course_folder, with_metadata(module))
    student, _ = student_version(module.dev_file(ROOT).read_text(encoding="utf-8"), module.folder)
    started = [c for c in jupytext.reads(student, fmt="py:percent").cells if c.metadata.get("nbgrader", {}).get("solution")]
    released = [c for c in cells(release) if c["metadata"].get("nbgrader", {}).get("solution")]
    assert [c.source for c in started] == [c["source"] for c in released]


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_validate_invert_fails_every_test_on_the_release(course_folder, module, monkeypatch):
    """What `nbgrader validate --invert` run in the course folder does, in this process: the course's
    nbgrader_config.py, nbgrader's Validator, its report. (Starting nbgrader costs a second per chapter;
    the round trip below runs the students' nbgrader commands as commands.)"""
    import io

    from nbgrader.validator import Validator
    from traitlets.config.loader import PyFileConfigLoader

    release = generate(course_folder, with_metadata(module))
    config = PyFileConfigLoader(tools.CONFIG_FILE, path=str(course_folder)).load_config()
    config.Validator.invert = True
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(course_folder)
    report = io.StringIO()
    validator = Validator(config=config)
    validator.stream = report
    validator.validate_and_print(str(release))
    output = report.getvalue()
    assert "Success! The notebook does not pass any tests." in output, output[-3000:]


def exercise_autograded(course_folder: Path, module: curriculum.Module) -> tuple[Path, dict]:
    """The chapter's Colab exercise notebook, with the chapter's solutions pasted into its stubs, handed in
    by "instructor" and autograded in a copy of the course: (that course folder, tito's result), once per
    test run. nbgrader puts the locked test cells back as the source has them, hidden tests included.
    The two tests below read the same run: each chapter executes once for both."""
    import nbformat

    def hand_in_and_grade(folder: Path) -> dict:
        generate(course_folder, with_metadata(module))
        course = private_copy(course_folder, folder / "course")
        _, notebook = exercise(module.folder)
        submitted = course / "submitted" / "instructor" / module.folder
        submitted.mkdir(parents=True, exist_ok=True)
        nbformat.write(with_solutions_pasted(module, notebook), submitted / tools.notebook_name(module))
        return outcome(tito("nbgrader", "autograde", module.folder, "--student", "instructor", "--course", str(course)))

    folder, record = build_once(course_folder.parent, f"exercise-autograded-{module.folder}", hand_in_and_grade)
    assert record["exit_code"] == 0, record["output"]
    return folder / "course", record


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_the_exercise_with_its_solutions_pasted_in_autogrades_to_full_marks(course_folder, module):
    course, result = exercise_autograded(course_folder, with_metadata(module))
    score = next(s for s in tools.scores(course, module.folder) if s.student == "instructor")
    metadata = tools.check_metadata(module.dev_file(ROOT))
    # Answers to the questions are graded by hand: autograde scores every test and none of them.
    assert score.max_score == metadata.points and score.score == metadata.points - metadata.answer_points, score
    if metadata.answer_points:
        assert f"{metadata.answer_points:g} point(s) of written answers" in result["output"]
        assert str(tools.answer_key_path(course, module)) in result["output"].replace("\n", "")
    name = tools.notebook_name(module)
    source = by_grade_id(cells(course / "source" / module.folder / name))
    tests = {g for g, c in source.items() if c["metadata"]["nbgrader"]["grade"] and c["cell_type"] == "code"}
    ran = {c["metadata"]["nbgrader"]["grade_id"]: c["source"]
           for c in cells(course / "autograded" / "instructor" / module.folder / name) if "nbgrader" in c["metadata"]}
    assert tests and all(ran.get(g) == source[g]["source"] for g in tests), "the tests that ran are not the source's"


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_the_exercise_with_its_solutions_pasted_in_runs_and_passes_its_self_check(course_folder, module):
    """The Colab notebook's own test (test_exercise_notebooks.py), on the autograded run above: no cell
    fails, and the self-check that ends it passes, the chapter's tests and its checkpoint."""
    course, _ = exercise_autograded(course_folder, with_metadata(module))
    graded = cells(course / "autograded" / "instructor" / module.folder / tools.notebook_name(module))
    failed = [f"cell {i}: {o['ename']}: {o['evalue']}"[:300] for i, c in enumerate(graded)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not failed, "\n".join(failed)
    last = text_of(graded[-1])
    assert f"✓ {module.folder} ({module.title}) is complete." in last, last
    if module.checkpoint is not None:
        assert f"Checkpoint {module.checkpoint.id}: {module.checkpoint.question} Yes." in last, last
    assert "✗" not in last, last


ANSWER = ('{"grade": true, "grade_id": "answer_why", "locked": false, "points": 2, "schema_version": 3, '
          '"solution": true, "task": false}')


def test_answer_keys_pair_each_question_with_its_key_and_rubric(tmp_path):
    path = chapter(tmp_path, '# %% [markdown]\n"""\n**1. Why?** Explain.\n"""\n',
                   f'# %% [markdown] nbgrader={ANSWER}\n"""\n**Your answer.**\n\n### BEGIN SOLUTION\n'
                   '**Answer key.** Because.\n\n**Rubric (2 points).** 2 for because.\n### END SOLUTION\n"""\n')
    [(grade_id, points, question, key)] = tools.answer_keys(tools.read_notebook(path))
    assert (grade_id, points, question) == ("answer_why", 2, "**1. Why?** Explain.")
    assert key == "**Answer key.** Because.\n\n**Rubric (2 points).** 2 for because."


@pytest.mark.slow
@pytest.mark.parametrize("module", CHAPTERS)
def test_answer_keys_go_to_the_course_folder_and_never_into_the_release(course_folder, module):
    release = generate(course_folder, with_metadata(module))
    keys = tools.answer_keys(tools.read_notebook(module.dev_file(ROOT)))
    if not keys:
        pytest.skip(f"{module.folder} has no answer cells yet")
    written = tools.answer_key_path(course_folder, module).read_text(encoding="utf-8")
    released = release.read_text(encoding="utf-8")
    for grade_id, _, _, key in keys:
        assert key in written
        for line in (l.strip() for l in key.splitlines() if len(l.strip()) >= 20):  # not a wrapped "layer."
            assert json.dumps(line)[1:-1] not in released, f"{grade_id}: the release shows {line!r}"
    assert not tools.answer_key_path(course_folder, module).is_relative_to(course_folder / "release")


# --- the instructor guide's cycle, in a temporary course folder --------------------------------


def fill_in(release: Path, source: Path) -> None:
    """What a student who solved everything hands in: each solution cell as the chapter has it."""
    notebook = json.loads(release.read_text(encoding="utf-8"))
    solutions = by_grade_id(cells(source))
    for cell in notebook["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = solutions[meta["grade_id"]]["source"]
    release.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


@pytest.mark.slow
def test_a_submission_round_trips_through_release_collect_autograde_and_feedback(tmp_path):
    module = with_metadata(COURSE.module("01_setup"))
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    where = ["--course", str(course)]

    # 1. generate, 2. release (the instructor)
    assert tito("nbgrader", "generate", module.folder, *where).exit_code == 0
    result = tito("nbgrader", "release", module.folder, *where, "--exchange", str(exchange))
    assert result.exit_code == 0, result.output

    # The students fetch it; alice solves it, bob hands it in untouched.
    notebook = tools.notebook_name(module)
    for student in ("alice", "bob"):
        home = tmp_path / student
        home.mkdir()
        nbgrader(home, "fetch_assignment", module.folder, "--course", "tinytorch", f"--Exchange.root={exchange}")
        fetched = home / module.folder / notebook
        assert "BEGIN SOLUTION" not in fetched.read_text() and "YOUR CODE HERE" in fetched.read_text()
        if student == "alice":
            fill_in(fetched, course / "source" / module.folder / notebook)
        nbgrader(home, "submit", module.folder, "--course", "tinytorch", "--student", student, f"--Exchange.root={exchange}")

    # 3. collect, 4. autograde
    result = tito("nbgrader", "collect", module.folder, *where, "--exchange", str(exchange))
    assert result.exit_code == 0, result.output
    assert "2 submission(s)" in result.output
    result = tito("nbgrader", "autograde", module.folder, *where)
    assert result.exit_code == 0, result.output
    points = tools.check_metadata(module.dev_file(ROOT)).points
    scores = {s.student: (s.score, s.max_score) for s in tools.scores(course, module.folder)}
    assert scores == {"alice": (points, points), "bob": (0, points)}
    assert "alice" in result.output and "bob" in result.output

    # 5. feedback, released to the exchange, fetched by alice
    result = tito("nbgrader", "feedback", module.folder, *where, "--exchange", str(exchange), "--release")
    assert result.exit_code == 0, result.output
    for student in ("alice", "bob"):
        assert (course / "feedback" / student / module.folder / notebook.replace(".ipynb", ".html")).is_file()
    nbgrader(tmp_path / "alice", "fetch_feedback", module.folder, "--course", "tinytorch", "--student", "alice",
             f"--Exchange.root={exchange}")
    assert list((tmp_path / "alice" / module.folder / "feedback").rglob("*.html"))
