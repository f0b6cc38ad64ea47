"""The student repository: the course as students get it, without the answers they have not reached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import curriculum
from tito import student_repo
from tito.cli import cli
from tito.solutions import exercise_version

from conftest import build_once, outcome

ROOT = Path(__file__).resolve().parent.parent
COURSE = curriculum.load(ROOT)
THROUGH = COURSE.module("02_tensor")


def tito(*args: str, root: Path = ROOT):
    return CliRunner(env={"TINYTORCH_ROOT": str(root)}).invoke(cli, list(args))


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout


def later(through: curriculum.Module) -> list[curriculum.Module]:
    return [m for m in COURSE.written_modules() if int(m.number) > int(through.number)]


def text_files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(folder).parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


@pytest.fixture(scope="module")
def student_repository(shared_dir) -> Path:
    """One student repository (solutions through 02) per test run, whichever worker asks first; tests only read it."""
    def build(folder: Path) -> dict:
        return outcome(tito("course", "student-repo", str(folder / "tinytorch-student"), "--solutions-through", "02"))

    folder, result = build_once(shared_dir, "student-repository", build)
    assert result["exit_code"] == 0, result["output"]
    return folder / "tinytorch-student"


# --- what it holds ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_it_is_a_fresh_git_repository_with_one_commit(student_repository):
    assert git(student_repository, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(student_repository, "status", "--porcelain").strip() == ""


@pytest.mark.slow
def test_chapters_up_to_nn_are_complete_and_later_ones_are_exercises(student_repository):
    for module in COURSE.written_modules():
        text = module.dev_file(ROOT).read_text(encoding="utf-8")
        held = module.dev_file(student_repository).read_text(encoding="utf-8")
        if int(module.number) <= 2:
            assert held == text, module.folder
        else:
            assert held == exercise_version(text, module.folder)[0], module.folder


@pytest.mark.slow
def test_no_solution_line_of_a_later_chapter_is_anywhere_in_it(student_repository):
    secret = student_repo.secrets(COURSE, THROUGH)
    assert len(secret) > 500  # the chapters after 02 hold hundreds of lines of solutions
    for path, text in text_files(student_repository):
        for line in text.splitlines():
            assert line.strip() not in secret, f"{path.relative_to(student_repository)}: {line.strip()}"


@pytest.mark.slow
def test_no_answer_key_or_hidden_test_marker_of_a_later_chapter_is_in_it(student_repository):
    for module in later(THROUGH):
        text = module.dev_file(student_repository).read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "**Answer key.**", "**Rubric"):
            assert marker not in text, f"{module.folder} holds {marker}"
    for name in ("tests", "book", "examples", "benchmarks", "binder", ".ci"):
        assert not (student_repository / name).exists(), f"{name}/ carries chapter code or the site; it stays out"


@pytest.mark.slow
def test_the_package_imports_and_is_complete_exactly_up_to_nn(student_repository):
    script = (
        "import tinytorch, numpy as np\n"
        "from tinytorch.core.tensor import Tensor\n"
        "assert (Tensor([1.0, 2.0]) + Tensor([3.0, 4.0])).data.tolist() == [4.0, 6.0]\n"
        "from tinytorch.nn.activation import relu\n"
        "try:\n"
        "    relu(Tensor([1.0]))\n"
        "except NotImplementedError as err:\n"
        "    print('stub:', err)\n"
        "print(tinytorch.__file__)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(student_repository))
    done = subprocess.run([sys.executable, "-c", script], cwd=student_repository, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stub: 03_activations: implement relu" in done.stdout
    assert done.stdout.strip().endswith(str(student_repository / "tinytorch" / "__init__.py"))


@pytest.mark.slow
def test_its_readme_gives_the_two_set_up_commands(student_repository):
    readme = (student_repository / "README.md").read_text(encoding="utf-8")
    assert "python3 -m venv .venv && source .venv/bin/activate" in readme
    assert 'pip install -e ".[dev]"' in readme
    assert "02_tensor are complete" in readme and "03_activations to 18_generation are yours to write" in readme


@pytest.mark.slow
def test_a_learner_runs_tito_in_it(student_repository, tmp_path):
    learner = tmp_path / "tinytorch-student"  # a copy: tito keeps its records in it, and other tests read the shared one
    shutil.copytree(student_repository, learner)
    env = dict(os.environ, PYTHONPATH=str(learner))
    env.pop("TINYTORCH_ROOT", None)
    ran = subprocess.run([sys.executable, "-m", "tito", "module", "test", "03_activations"], cwd=learner, env=env,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 1
    assert "implement relu" in ran.stderr


# --- releasing the next solutions ------------------------------------------------------------------


@pytest.mark.slow
def test_releasing_the_next_chapter_is_one_commit_and_leaks_nothing_later(student_repository, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(student_repository, copy)
    result = tito("course", "release-solutions", str(copy), "--through", "03")
    assert result.exit_code == 0, result.output
    assert git(copy, "rev-list", "--count", "HEAD").strip() == "2"
    assert "03_activations" in git(copy, "log", "-1", "--format=%s")
    activations = COURSE.module("03_activations")
    assert activations.dev_file(copy).read_text() == activations.dev_file(ROOT).read_text()
    assert (copy / "tinytorch/nn/activation.py").read_text() == (ROOT / "tinytorch/nn/activation.py").read_text()
    assert student_repo.leaks(COURSE, copy, activations) == []
    assert 'solutions_through = "03_activations"' in (copy / student_repo.STATE_FILE).read_text()
    again = tito("course", "release-solutions", str(copy), "--through", "03")
    assert again.exit_code == 1 and "already holds the solutions through 03_activations" in again.stderr


def test_releasing_into_a_repository_with_uncommitted_work_is_refused(tmp_path):
    (tmp_path / student_repo.STATE_FILE).write_text('solutions_through = "02_tensor"\n')
    git(tmp_path, "init", "-q")
    result = tito("course", "release-solutions", str(tmp_path), "--through", "03")
    assert result.exit_code == 1
    assert "has uncommitted changes" in result.stderr.splitlines()[0]


# --- refusals and the leak check ---------------------------------------------------------------------


def test_a_non_empty_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = tito("course", "student-repo", str(tmp_path), "--solutions-through", "02")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"✗ {tmp_path} already exists and is not empty; nothing was written."
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_folder_inside_the_course_repository_is_refused():
    result = tito("course", "student-repo", str(ROOT / "student"), "--solutions-through", "02")
    assert result.exit_code == 1
    assert "is inside the course repository" in result.stderr.splitlines()[0]
    assert not (ROOT / "student").exists()


def test_the_leak_check_finds_a_later_chapters_solution_line(tmp_path):
    secret = student_repo.secrets(COURSE, THROUGH)
    line, chapter = next(iter(secret.items()))
    (tmp_path / "notes.md").write_text(f"# notes\n    {line}\n")
    found = student_repo.leaks(COURSE, tmp_path, THROUGH)
    assert found == [f"notes.md:2: a line of {chapter}'s solution: {line[:80]}"]


@pytest.mark.slow
def test_a_leaking_file_stops_the_build_and_writes_nothing(repo_copy, tmp_path):
    course = curriculum.load(repo_copy)
    line = next(iter(student_repo.secrets(course, course.module("02_tensor"))))
    (repo_copy / "tito" / "notes.txt").write_text(f"a note that quotes a later solution:\n{line}\n")
    target = tmp_path / "students"
    result = tito("course", "student-repo", str(target), "--solutions-through", "02", root=repo_copy)
    assert result.exit_code == 1
    assert "would be in the student repository" in result.stderr and "tito/notes.txt" in result.stderr
    assert not target.exists()
    assert not list(tmp_path.glob(".students.*"))


@pytest.mark.slow
def test_earlier_chapters_work_in_a_student_repository_before_chapter_14(student_repository):
    # A student through chapter 05 (here: its solution put in place) must be able to use cross_entropy.
    script = (
        "import numpy as np\n"
        "from tinytorch.core.tensor import Tensor\n"
        "from tinytorch.nn.loss import cross_entropy\n"
        "print(cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1])).item())\n"
    )
    copy = student_repository.parent / "through05"
    if not copy.exists():
        shutil.copytree(student_repository, copy)
        for module in COURSE.written_modules():
            if 3 <= int(module.number) <= 5:
                shutil.copyfile(module.dev_file(ROOT), module.dev_file(copy))
                from tito.export import export_source

                export_source(copy, module.dev_file(copy))
    env = dict(os.environ, PYTHONPATH=str(copy))
    done = subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
