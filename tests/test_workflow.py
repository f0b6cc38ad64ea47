"""The learner's own work: start a chapter, test it, complete it, reset it.

`tito module start` turns a complete chapter into its exercise (tito/solutions.py
stubs each solution region), `tito module complete` exports the learner's code and
runs the checkpoint, and `tito module reset` brings back the complete chapter byte
for byte. Everything runs on a copy of the repository (the `repo_copy` fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import curriculum, exercise
from tito.cli import cli
from tito.solutions import (BEGIN, END, SolutionError, clear_solutions, count_regions, is_code_cell, split_cells,
                            student_version)

from conftest import copy_course

SETUP = "01_setup"


def tito(*args: str):
    return CliRunner().invoke(cli, list(args))


def run_tito(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYTORCH_ROOT=str(root), PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-m", "tito", *args], env=env, capture_output=True, text=True, timeout=300)


def chapter_of(root: Path, name: str) -> Path:
    return curriculum.load(root).module(name).dev_file(root)


def regions(text: str) -> list[list[str]]:
    """The lines inside each solution region of a chapter's code cells, in order.

    Answer cells (markdown) hold regions too, but `tito module start` turns them into
    "YOUR ANSWER HERE", not into code stubs, so a finished chapter leaves them as they are.
    """
    found = []
    for _, lines in split_cells(text):
        if not is_code_cell(lines):
            continue
        current = None
        for line in lines:
            if BEGIN.match(line.rstrip("\r\n")):
                current = []
            elif END.match(line.rstrip("\r\n")):
                found.append(current)
                current = None
            elif current is not None:
                current.append(line)
    return found


def fill_in(student: str, original: str, replace: dict[str, str] | None = None) -> str:
    """A learner's finished chapter: each stub replaced by code (the original region's, edited by `replace`)."""
    bodies = iter(regions(original))
    out, skip = [], False
    for line in student.splitlines(keepends=True):
        if skip:  # the stub's `raise NotImplementedError(...)` line
            skip = False
            continue
        if line.lstrip().startswith("# YOUR CODE HERE: "):
            body = "".join(next(bodies))
            for old, new in (replace or {}).items():
                body = body.replace(old, new)
            out.append(body)
            skip = True
        else:
            out.append(line)
    assert next(bodies, None) is None, "every region was filled in"
    return "".join(out)


# --- the one function that makes exercises -----------------------------------------------------

CHAPTER = '''# %% [markdown]
"""
### BEGIN SOLUTION (prose that looks like a marker is left alone)
"""

# %% nbgrader={"solution": true}
#| export
class Adder:
    def add(self, a, b):
        """a + b"""
        ### BEGIN SOLUTION
        total = a + b
        return total
        ### END SOLUTION


def double(x):
    if x is not None:
        ### BEGIN SOLUTION
        return 2 * x
        ### END SOLUTION

# %%
print(Adder().add(1, 2))
'''


def test_the_student_version_stubs_each_region_and_keeps_every_other_byte():
    student, stubs = student_version(CHAPTER, "07_demo")
    assert stubs == 2 == count_regions(CHAPTER)
    assert "### BEGIN SOLUTION (prose" in student, "markdown cells are never touched"
    assert "total = a + b" not in student and "return 2 * x" not in student
    assert '        # YOUR CODE HERE: Adder.add\n        raise NotImplementedError("07_demo: implement Adder.add;' in student
    assert '        # YOUR CODE HERE: double\n        raise NotImplementedError("07_demo: implement double;' in student
    kept = [l for l in CHAPTER.splitlines() if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
            and l.strip() not in ("total = a + b", "return total", "return 2 * x")]
    assert [l for l in student.splitlines() if "YOUR CODE HERE" not in l and "NotImplementedError" not in l] == kept


def test_the_student_version_keeps_windows_line_endings():
    student, _ = student_version(CHAPTER.replace("\n", "\r\n"), "07_demo")
    assert "\n" not in student.replace("\r\n", "")


def test_a_stub_raises_not_implemented_error_naming_what_to_write():
    code, _ = clear_solutions("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n", "07_demo")
    namespace = {}
    exec(code, namespace)
    with pytest.raises(NotImplementedError, match="07_demo: implement f; the hints above it say what it must do"):
        namespace["f"](1)


@pytest.mark.parametrize("source, problem", [
    ("class A:\n    ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION\n", "inside a function body"),
    ("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n", "inside a function body"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", "inside another"),
    ("def f():\n    pass\n    ### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
])
def test_a_region_that_cannot_become_a_stub_is_refused(source, problem):
    with pytest.raises(SolutionError, match=re.escape(problem)):
        clear_solutions(source)


# --- the learner's cycle -------------------------------------------------------------------------


def test_start_complete_fails_fill_in_complete_passes_reset_restores_the_original(repo_copy):
    chapter = chapter_of(repo_copy, SETUP)
    original = chapter.read_bytes()

    result = tito("module", "start", SETUP)
    assert result.exit_code == 0, result.output
    assert f"{SETUP} is now your exercise" in result.output
    student = chapter.read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" not in student and student.count("raise NotImplementedError(") >= 3
    assert exercise.saved_original(repo_copy, curriculum.load(repo_copy).module(SETUP)).read_bytes() == original
    assert "your exercise" in tito("module", "status").output

    result = tito("module", "complete", SETUP)
    assert result.exit_code == 1
    message = result.stderr.splitlines()[0]
    assert message.startswith(f"✗ {SETUP} is not complete: test_unit_"), message
    assert f"NotImplementedError: {SETUP}: implement " in message, "the stub's own message names what to write"

    finished = fill_in(student, original.decode("utf-8"))
    chapter.write_text(finished, encoding="utf-8")
    result = tito("module", "complete", SETUP)
    assert result.exit_code == 0, result.output
    assert f"{SETUP} (Setup) is complete." in result.output

    result = tito("module", "reset", SETUP)
    assert result.exit_code == 0, result.output
    assert chapter.read_bytes() == original, "reset restores the chapter byte for byte"
    backups = list((repo_copy / ".tito" / "backups" / SETUP).iterdir())
    assert [b.read_text(encoding="utf-8") for b in backups] == [finished], "the learner's work is kept"


@pytest.fixture(scope="module")
def learners_tensor(tmp_path_factory) -> dict:
    """A repository copy where the learner started 02_tensor, wrote Max.forward their own way and ran
    `python -m tito module complete tensor`, as a learner runs it, in a process of its own.

    A real chapter's complete (its tests twice, then its checkpoint) is slow: it runs once, here, for the
    tests below (grouped on one worker), which check what it printed, recorded and exported.
    """
    root = copy_course(tmp_path_factory.mktemp("learner") / "repo")
    chapter = chapter_of(root, "02_tensor")
    original = chapter.read_text(encoding="utf-8")
    started = CliRunner(env={"TINYTORCH_ROOT": str(root)}).invoke(cli, ["module", "start", "02_tensor"])
    assert started.exit_code == 0, started.output
    mine = fill_in(chapter.read_text(encoding="utf-8"), original,
                   {"        out = np.max(a, axis=axis, keepdims=True)\n": "        out = np.amax(a, axis=axis, keepdims=True)\n"})
    chapter.write_text(mine, encoding="utf-8")
    done = run_tito(root, "module", "complete", "tensor")
    progress = root / ".tito" / "progress.json"
    return {"root": root, "done": done, "progress": json.loads(progress.read_text()) if progress.is_file() else None}


LEARNERS_TENSOR = pytest.mark.xdist_group("test_workflow-learners_tensor")


@pytest.mark.slow
@LEARNERS_TENSOR
def test_python_m_tito_completes_a_module(learners_tensor):
    done = learners_tensor["done"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "02_tensor (Tensor) is complete." in done.stdout
    assert "02_tensor" in learners_tensor["progress"]["completed"]


@pytest.mark.slow
@LEARNERS_TENSOR
def test_complete_runs_the_checkpoint_records_progress_and_names_the_next_module(learners_tensor):
    done = learners_tensor["done"]
    assert done.returncode == 0, done.stdout + done.stderr
    course = curriculum.load(learners_tensor["root"])
    tensor = course.module("02_tensor")
    assert f"Checkpoint 02_tensor: {tensor.checkpoint.question} Yes." in done.stdout
    assert f"Next: {course.next_module(tensor).folder}" in done.stdout
    progress = learners_tensor["progress"]
    assert progress["completed"]["02_tensor"]["tested"] is True
    assert progress["checkpoints"]["02_tensor"]["passed"] is True


@pytest.mark.slow
@LEARNERS_TENSOR
def test_later_chapters_work_against_the_package_the_learner_exported(learners_tensor, monkeypatch):
    root = learners_tensor["root"]
    assert learners_tensor["done"].returncode == 0, learners_tensor["done"].stdout + learners_tensor["done"].stderr
    assert "out = np.amax(a, axis=axis, keepdims=True)" in (root / "tinytorch" / "core" / "function.py").read_text(encoding="utf-8")
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    layers = curriculum.load(root).module("04_layers").checkpoint
    result = tito("checkpoint", "run", str(layers.number))
    assert result.exit_code == 0, result.output


def test_starting_twice_keeps_the_learners_work(repo_copy):
    assert tito("module", "start", SETUP).exit_code == 0
    chapter = chapter_of(repo_copy, SETUP)
    chapter.write_text(chapter.read_text() + "\n# my notes\n")
    result = tito("module", "start", SETUP)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"✗ {SETUP} is already started: your work is in modules/{SETUP}/setup_dev.py."
    assert chapter.read_text().endswith("# my notes\n")


def test_reset_without_start_points_at_git(repo_copy):
    result = tito("module", "reset", SETUP)
    assert result.exit_code == 1
    assert "was not started with 'tito module start'" in result.stderr
    assert f"git checkout -- modules/{SETUP}/setup_dev.py" in result.stderr


def test_a_chapter_without_solution_regions_cannot_be_started(repo_copy):
    chapter = chapter_of(repo_copy, SETUP)
    text = chapter.read_text()
    chapter.write_text("".join(l for l in text.splitlines(keepends=True) if "SOLUTION" not in l))
    result = tito("module", "start", SETUP)
    assert result.exit_code == 1
    assert "marks no solution regions" in result.stderr and "instructor-guide" in result.stderr
    assert chapter.read_text() == "".join(l for l in text.splitlines(keepends=True) if "SOLUTION" not in l)


def test_module_test_runs_each_test_and_prints_a_line_for_it(repo_copy):
    result = tito("module", "test", SETUP)
    assert result.exit_code == 0, result.output
    assert "  ✓ test_unit_system_info (" in result.output and "  ✓ test_unit_check_environment (" in result.output
    assert f"✓ {SETUP}: 2 test(s) passed (" in result.output


def test_module_test_names_the_test_the_function_and_where_it_was_raised(repo_copy):
    assert tito("module", "start", SETUP).exit_code == 0
    result = tito("module", "test", SETUP)
    assert result.exit_code == 1
    message = result.stderr.splitlines()[0]
    assert re.fullmatch(r"✗ 01_setup: test_unit_system_info \(system_info\): NotImplementedError: 01_setup: implement "
                        r"system_info; .* \[setup_dev\.py:\d+\]", message), message
