"""The tito command line, run in-process with click's CliRunner on a copy of the repository
(the `repo_copy` fixture sets TINYTORCH_ROOT), plus a few runs of `python -m tito`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import __version__, curriculum
from tito.cli import cli

TENSOR_SOURCE = "modules/02_tensor/tensor_dev.py"
TENSOR_TARGET = "tinytorch/core/tensor.py"


def tito(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def tensor_repo(repo_copy: Path) -> Path:
    """A repository copy (chapter 02_tensor and its checkpoint 02 are there)."""
    assert curriculum.load(repo_copy).module("02_tensor").checkpoint.path(repo_copy).is_file()
    return repo_copy


def progress_of(root: Path) -> dict:
    return json.loads((root / ".tito" / "progress.json").read_text())


def package_state(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted((root / "tinytorch").rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def break_tensor_addition(root: Path) -> None:
    """Make `+` subtract in the copy's Tensor chapter."""
    source = root / TENSOR_SOURCE
    text = source.read_text()
    start = text.index("class Add(Function):")
    body = text.index("        return a + b\n", start)  # Add.forward's line (inside its solution region, if marked)
    assert body - start < 200, "the Tensor chapter's Add primitive changed; update this test"
    source.write_text(text[:body] + "        return a - b\n" + text[body + len("        return a + b\n"):])


# --- module names and errors ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["02_tensor", "02", "2", "tensor", "TENSOR", "modules/02_tensor/"])
def test_a_module_can_be_named_by_folder_number_or_name(repo_copy, name):
    result = tito("module", "export", name)
    assert result.exit_code == 0, result.output
    assert "02_tensor → " in result.output and TENSOR_TARGET in result.output, result.output


def test_an_unknown_module_is_one_red_line_a_hint_and_exit_1(repo_copy):
    result = tito("module", "export", "tensr")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "✗ Unknown module 'tensr'. Did you mean 02_tensor?",
        "  Run 'tito module status' to list modules.",
    ]


def test_an_unwritten_module_named_explicitly_is_an_error_listing_the_written_ones(repo_copy):
    (repo_copy / TENSOR_SOURCE).unlink()
    result = tito("module", "export", "tensor")
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message == f"✗ Module 02_tensor is not written yet: {TENSOR_SOURCE} does not exist."
    assert hint.startswith("  Written modules: ")


def test_export_needs_a_module_name_or_all(repo_copy):
    for args in (["module", "export"], ["module", "export", "02", "--all"]):
        result = tito(*args)
        assert result.exit_code == 1
        assert "Name one module or pass --all." in result.stderr


def test_an_unknown_checkpoint_is_an_error(repo_copy):
    result = tito("checkpoint", "run", "42")
    assert result.exit_code == 1
    assert result.stderr.startswith("✗ Unknown checkpoint '42'")
    assert "tito checkpoint status" in result.stderr


def test_a_checkpoint_of_an_unwritten_module_is_an_error(repo_copy):
    (repo_copy / TENSOR_SOURCE).unlink()
    result = tito("checkpoint", "run", "2")
    assert result.exit_code == 1
    assert "Checkpoint 02_tensor tests 02_tensor, which is not written yet." in result.stderr


# --- module export ----------------------------------------------------------------------------


@pytest.mark.slow
def test_export_all_twice_leaves_the_package_byte_identical(repo_copy):
    first = tito("module", "export", "--all")
    assert first.exit_code == 0, first.output
    before = package_state(repo_copy)
    second = tito("module", "export", "--all")
    assert second.exit_code == 0, second.output
    assert "(updated)" not in second.output
    assert package_state(repo_copy) == before  # bytes and modification times


def test_export_of_a_chapter_with_a_syntax_error_names_its_line_and_changes_nothing(repo_copy):
    source = repo_copy / TENSOR_SOURCE
    lines = source.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line == "class Add(Function):\n")
    lines[index] = "class Add(Function)\n"  # missing colon
    source.write_text("".join(lines))
    before = package_state(repo_copy)
    result = tito("module", "export", "02")
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message.startswith(f"✗ {TENSOR_SOURCE}:{index + 1}: ")
    assert hint == f"  Fix {TENSOR_SOURCE}, then run 'tito module export 02_tensor' again."
    assert package_state(repo_copy) == before


# --- module complete ---------------------------------------------------------------------------


def test_complete_fails_at_the_chapters_own_test_when_tensor_addition_is_broken(tensor_repo):
    break_tensor_addition(tensor_repo)
    result = tito("module", "complete", "02_tensor")
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message.startswith("✗ 02_tensor is not complete: test_unit_")
    assert "tito module test 02_tensor --verbose" in hint
    progress = progress_of(tensor_repo)
    assert progress["completed"]["02_tensor"]["passed"] is False
    assert "02_tensor" not in progress["checkpoints"]  # the tests stopped it before the checkpoint


def test_complete_with_skip_test_records_an_untested_completion(repo_copy):
    result = tito("module", "complete", "02", "--skip-test")
    assert result.exit_code == 0, result.output
    assert "was not run (--skip-test)" in result.output
    assert progress_of(repo_copy)["completed"]["02_tensor"]["tested"] is False


def test_a_damaged_progress_file_is_reported_and_left_as_it_is(repo_copy):
    record = repo_copy / ".tito" / "progress.json"
    record.parent.mkdir()
    record.write_text('{"format": 1, "completed": [')
    result = tito("module", "complete", "02", "--skip-test")
    assert result.exit_code == 1
    assert result.stderr.startswith("✗ .tito/progress.json is damaged")
    assert record.read_text() == '{"format": 1, "completed": ['


# --- status, checkpoints ----------------------------------------------------------------------------


def test_module_status_lists_every_module(repo_copy):
    result = tito("module", "status")
    assert result.exit_code == 0, result.output
    for module in curriculum.load(repo_copy).modules:
        assert module.folder in result.output
    assert "in sync" in result.output


def test_module_status_shows_a_completed_module(repo_copy):
    tito("module", "complete", "02", "--skip-test")
    row = next(line for line in tito("module", "status").output.splitlines() if "02_tensor" in line)
    assert "✓" in row and "untested" in row


@pytest.mark.parametrize(
    "args", [["status"], pytest.param(["status", "--detailed"], marks=pytest.mark.slow),  # runs every checkpoint
             ["timeline"], ["timeline", "--horizontal"]], ids=" ".join
)
def test_checkpoint_views_show_every_checkpoint(repo_copy, args):
    result = tito("checkpoint", *args)
    assert result.exit_code == 0, result.output
    for checkpoint in curriculum.load(repo_copy).checkpoints:
        shown = f"{checkpoint.number:02d}" if "--horizontal" in args else checkpoint.id
        assert shown in result.output


def test_checkpoint_run_shows_each_check_then_one_pass_line_and_records_it(tensor_repo):
    result = tito("checkpoint", "run", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Checkpoint 02 (02_tensor): ")
    assert any(line.lstrip().startswith("✓ ") for line in lines[1:-1])  # each check's own line
    assert lines[-1].startswith("✓ Checkpoint 02_tensor passed in ")
    assert progress_of(tensor_repo)["checkpoints"]["02_tensor"]["passed"] is True
    assert "● passed" in tito("checkpoint", "status").output


@pytest.mark.slow
def test_checkpoint_run_shows_each_check_and_fails_with_a_hint(tensor_repo):
    break_tensor_addition(tensor_repo)
    assert tito("module", "export", "02").exit_code == 0
    result = tito("checkpoint", "run", "tensor")
    assert result.exit_code == 1
    assert "  ✗ " in result.stdout  # the failing check's own line
    assert "FAILED: " in result.stdout
    assert "tito checkpoint run 2 --verbose" in result.stderr
    verbose = tito("checkpoint", "run", "2", "--verbose")
    assert "Traceback" in verbose.stdout  # the check's traceback, not tito's
    assert f"Fix {TENSOR_SOURCE}" in verbose.stderr


def test_checkpoint_run_warns_when_the_package_is_out_of_sync(tensor_repo):
    with open(tensor_repo / TENSOR_TARGET, "a") as handle:
        handle.write("\n# edited by hand\n")
    result = tito("checkpoint", "run", "2")
    assert "out of sync" in result.output and "tito module export --all" in result.output


# --- system ---------------------------------------------------------------------------------------


def test_doctor_passes_on_a_clean_copy_and_says_protection_is_off(repo_copy):
    result = tito("system", "doctor")
    assert result.exit_code == 0, result.output
    assert "off:" in next(line for line in result.output.splitlines() if "protection" in line)
    assert "✓ ok" in next(line for line in result.output.splitlines() if "tinytorch import" in line)


def test_doctor_reports_an_out_of_sync_export_after_a_hand_edit(repo_copy):
    with open(repo_copy / TENSOR_TARGET, "a") as handle:
        handle.write("\n# edited by hand\n")
    result = tito("system", "doctor")
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message == f"✗ 1 problem(s): export in sync: {TENSOR_TARGET} differs from {TENSOR_SOURCE}"
    assert "tito module export --all" in hint


def test_doctor_reports_a_tinytorch_that_does_not_import(repo_copy):
    with open(repo_copy / "tinytorch" / "__init__.py", "a") as handle:  # hand-written, so export stays in sync
        handle.write("import no_such_module_anywhere\n")
    result = tito("system", "doctor")
    assert result.exit_code == 1
    assert "tinytorch import: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in result.stderr


def test_system_info_reports_the_machine(repo_copy):
    result = tito("system", "info")
    assert result.exit_code == 0, result.output
    for fact in ("Platform", "CPU cores", "Memory", "NumPy", "BLAS", "numpy", "jupytext"):
        assert fact in result.output


def test_version():
    result = tito("--version")
    assert result.exit_code == 0
    assert result.output == f"tito {__version__}\n"


# --- python -m tito, as a learner runs it ------------------------------------------------------------


def run_tito(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYTORCH_ROOT=str(root), PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-m", "tito", *args], env=env, capture_output=True, text=True, timeout=120)


def test_python_m_tito_reports_an_error_without_a_traceback(repo_copy):
    done = run_tito(repo_copy, "module", "complete", "nosuchmodule")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "✗ Unknown module 'nosuchmodule'.",
        "  Run 'tito module status' to list modules.",
    ]


# --- the checkpoint harness that tito runs --------------------------------------------------------------


def test_a_checkpoint_without_a_docstring_is_titled_by_its_file_name(repo_copy):
    path = repo_copy / "checkpoints" / "checkpoint_99_bare.py"
    path.write_text("from _harness import main\n\ndef check_true():\n    assert True\n\nmain(globals())\n")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "checkpoint_99_bare"
