"""`tito module test|complete` as strict as the chapter's own tests, failure lines that teach,
per-test timeouts, progress that stays true, and errors that are one line.

Most tests use a one-chapter course written into a temporary folder (fast, and
every case is built for the purpose); a few use a copy of the real repository.

PYTEST_DONT_REWRITE: the failure-line tests need Python's own assert messages.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tito import curriculum, exercise
from tito.cli import cli
from tito.failures import describe, informative, result_line
from tito.progress import Progress, changed_files

REPO = Path(__file__).resolve().parent.parent

CURRICULUM = """\
[[module]]
folder = "01_demo"
title = "Demo"
builds = "double and half"
export = "core.demo"
checkpoint = { question = "Can I double a number?" }
"""

CHAPTER = '''\
# %%
#| default_exp core.demo

# %%
#| export
def double(x):
    """2 * x"""
    return 2 * x


# %%
def test_unit_double():
    assert double(2) == 4
    assert double(-1.5) == -3.0, "double must work for negative floats"


test_unit_double()

# %%
#| export
def half(x):
    return x / 2


# %%
def test_unit_half():
    assert half(4) == 2


test_unit_half()

# %%
if __name__ == "__main__":
    test_unit_double()
    test_unit_half()
'''

CHECKPOINT = '''\
"""Checkpoint 01 (demo): Can I double a number?"""

from _harness import main


def check_double():
    """double(3) is 6"""
    from tinytorch.core.demo import double

    assert double(3) == 6, f"double(3) gave {double(3)}, expected 6"


if __name__ == "__main__":
    main(globals())
'''


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "course"
    files = {
        "curriculum.toml": CURRICULUM,
        "modules/01_demo/README.md": "# Demo\n",
        "modules/01_demo/demo_dev.py": CHAPTER,
        "checkpoints/checkpoint_01_demo.py": CHECKPOINT,
        "tinytorch/__init__.py": '"""A one-chapter package."""\n',
        "tinytorch/core/__init__.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    shutil.copy(REPO / "checkpoints" / "_harness.py", root / "checkpoints" / "_harness.py")
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    from tito.export import export_source

    export_source(root, root / "modules" / "01_demo" / "demo_dev.py")  # the package as a fresh clone has it
    return root


def tito(*args: str):
    return CliRunner().invoke(cli, list(args))


def chapter(root: Path) -> Path:
    return root / "modules" / "01_demo" / "demo_dev.py"


def rewrite(root: Path, old: str, new: str) -> None:
    text = chapter(root).read_text(encoding="utf-8")
    assert old in text, old
    chapter(root).write_text(text.replace(old, new), encoding="utf-8")


def progress_of(root: Path) -> dict:
    return json.loads((root / ".tito" / "progress.json").read_text(encoding="utf-8"))


# --- complete is the chapter's tests plus its checkpoint ------------------------------------------


def test_complete_runs_each_test_then_the_checkpoint_and_records_it(course):
    result = tito("module", "complete", "01")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum("✓ test_unit_double (" in line for line in lines) == 2  # the chapter as written, then tinytorch/
    assert any("✓ test_unit_half (" in line and "(tinytorch/)" in line for line in lines)
    assert any("✓ double(3) is 6" in line for line in lines)
    assert "01_demo (Demo) is complete." in result.output
    record = progress_of(course)["completed"]["01_demo"]
    assert record["passed"] is True and record["package"] == {
        "tinytorch/core/demo.py": record["package"]["tinytorch/core/demo.py"]}


def test_complete_fails_on_a_bug_only_the_chapters_tests_catch(course):
    rewrite(course, "    return 2 * x\n", "    return abs(x) * 2\n")  # right for the checkpoint's 3, wrong for -1.5
    result = tito("module", "complete", "01")
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message == ("✗ 01_demo is not complete: test_unit_double (double): AssertionError: "
                       "double must work for negative floats [demo_dev.py:14]")
    assert "tito module test 01_demo --verbose" in hint
    assert "Running checkpoint" not in result.output
    assert progress_of(course)["completed"]["01_demo"]["passed"] is False


def test_complete_checks_the_exported_package_not_only_the_chapter(course):
    # the exported double calls a helper from a cell that is not exported: fine in the chapter, broken in tinytorch/
    rewrite(course, "    return 2 * x\n", "    return _twice(x)\n")
    rewrite(course, "# %%\ndef test_unit_double", "# %%\ndef _twice(x):\n    return x + x\n\n\n# %%\ndef test_unit_double")
    assert tito("module", "test", "01").exit_code == 0
    result = tito("module", "complete", "01")
    assert result.exit_code == 1
    assert result.stderr.startswith("✗ 01_demo is not complete: test_unit_double (double): NameError: name '_twice' is not defined")
    assert "[tinytorch/core/demo.py:" in result.stderr


def test_a_failing_checkpoint_still_fails_complete_after_the_tests_pass(course):
    (course / "checkpoints" / "checkpoint_01_demo.py").write_text(CHECKPOINT.replace("== 6", "== 7"))
    result = tito("module", "complete", "01")
    assert result.exit_code == 1
    assert result.stderr.startswith("✗ Checkpoint 01_demo failed, so 01_demo is not complete: FAILED: check_double (double): ")
    assert progress_of(course)["completed"]["01_demo"]["passed"] is False


@pytest.mark.parametrize("text", ["", "# %%\n#| default_exp core.demo\n\n# %%\n#| export\ndef double(x):\n    return 2 * x\n"],
                         ids=["empty", "no tests"])
def test_a_chapter_with_nothing_to_test_fails_test_and_complete(course, text):
    chapter(course).write_text(text, encoding="utf-8")
    result = tito("module", "test", "01")
    assert result.exit_code == 1
    assert "defines no test_* functions" in result.stderr
    assert tito("module", "complete", "01").exit_code == 1
    assert "01_demo" not in progress_of(course)["completed"] or progress_of(course)["completed"]["01_demo"]["passed"] is False


def test_a_test_only_the_main_block_would_call_still_runs(course):
    rewrite(course, "\ntest_unit_half()\n", "\n")
    rewrite(course, "    return x / 2\n", "    return x / 3\n")
    result = tito("module", "test", "01")
    assert result.exit_code == 1
    assert "test_unit_half (half): AssertionError: assert half(4) == 2" in result.stderr


def test_complete_is_never_weaker_than_module_test(course):
    rewrite(course, "    assert half(4) == 2\n", "    assert half(4) == 2\n    assert open(__file__).read().startswith('# %%')\n")
    # reads the chapter's own file: passes as written; the package run reads the same chapter, so both agree
    assert tito("module", "test", "01").exit_code == 0
    assert tito("module", "complete", "01").exit_code == 0
    rewrite(course, "    return x / 2\n", "    return x // 3\n")
    test, complete = tito("module", "test", "01"), tito("module", "complete", "01")
    assert test.exit_code == complete.exit_code == 1
    assert test.stderr.splitlines()[0].split(": ", 1)[1] in complete.stderr.splitlines()[0]


# --- failure lines --------------------------------------------------------------------------------


def _raised(fn):
    try:
        fn()
    except BaseException as err:  # noqa: BLE001
        return err
    raise AssertionError("expected an exception")


def check_rule_helper():
    np.testing.assert_allclose(np.ones(3), np.zeros(3), err_msg="Pow: gradient of input 1")


def test_the_message_line_that_names_the_problem_is_chosen_over_numpy_noise():
    def test_unit_rules():
        check_rule_helper()

    failure = describe(_raised(test_unit_rules), (REPO,))
    assert failure.test == "test_unit_rules > check_rule_helper"
    assert failure.message == "AssertionError: Pow: gradient of input 1"
    assert failure.where.startswith("test_tito_complete.py:")


def test_a_bare_assert_shows_its_source_line_and_the_function_it_tests():
    def shape_rule(a, b):
        return (max(a[0], b[0]),)

    def test_unit_shapes():
        assert shape_rule((0,), (1,)) == (0,)

    failure = describe(_raised(test_unit_shapes), (REPO,))
    assert failure.function == "shape_rule"
    assert failure.message == "AssertionError: assert shape_rule((0,), (1,)) == (0,)"
    assert failure.line().startswith("test_unit_shapes (shape_rule): AssertionError: assert shape_rule((0,), (1,)) == (0,) [")


def test_an_error_inside_the_code_under_test_names_that_function_and_its_line():
    class Layer:
        def forward(self, x):
            return x.missing

    def test_unit_layer():
        Layer().forward(1)

    failure = describe(_raised(test_unit_layer), (REPO,))
    assert failure.test == "test_unit_layer" and failure.function.endswith("Layer.forward")
    assert failure.message == "AttributeError: 'int' object has no attribute 'missing'"


def test_a_syntax_error_in_a_chapter_names_file_and_line(course):
    rewrite(course, "    return x / 2\n", "    return (x / 2\n")
    result = tito("module", "test", "01")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "✗ 01_demo: SyntaxError: '(' was never closed [demo_dev.py:22]"


def test_result_line_is_the_line_complete_prints():
    assert result_line("test_unit_x", True, 0.1234) == "✓ test_unit_x (0.12 s)"
    failure = describe(_raised(lambda: (_ for _ in ()).throw(ValueError("shapes (2,) and (3,) differ"))))
    assert result_line("test_unit_x", False, 0.0, failure) == "✗ " + failure.line()
    assert informative(AssertionError("\nArrays are not equal\n\nMismatched elements: 1 / 3\n x: array([1])")) \
        == "AssertionError: Arrays are not equal"


# --- timeouts -------------------------------------------------------------------------------------


def test_an_endless_test_is_stopped_and_named_with_the_last_test_that_passed(course):
    rewrite(course, "def test_unit_half():\n", "def test_unit_half():\n    while True:\n        pass\n")
    start = time.monotonic()
    result = tito("module", "complete", "01", "--timeout", "3")
    assert time.monotonic() - start < 60
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message == ("✗ 01_demo is not complete: test_unit_half was still running after 3 s and was stopped; "
                       "the last test that passed was test_unit_double")
    assert "--timeout SECONDS (now 3)" in hint


def test_endless_code_between_tests_is_stopped_too(course):
    rewrite(course, "# %%\n#| export\ndef half", "# %%\nwhile True:\n    pass\n\n# %%\n#| export\ndef half")
    result = tito("module", "test", "01", "--timeout", "3")
    assert result.exit_code == 1
    assert "the chapter's code after test_unit_double ran for more than 3 s and was stopped" in result.stderr


def test_the_progress_of_each_test_is_reported_as_it_ends(course):
    seen = []
    run = exercise.run_tests(course, curriculum.load(course).module("01"), timeout=30,
                             report=lambda r: seen.append((r.name, r.passed, time.monotonic())))
    assert run.passed and [name for name, _, _ in seen] == ["test_unit_double", "test_unit_half"]


# --- progress -------------------------------------------------------------------------------------


def _slow_update(root: str, folder: str, barrier) -> None:
    module = curriculum.load(Path(root)).module(folder)
    barrier.wait()
    with Progress.update(Path(root)) as progress:
        time.sleep(0.5)  # both processes have read the file before either writes, unless the lock serialises them
        progress.mark_completed(module, tested=True)


def test_two_updates_at_once_both_keep_their_record(repo_copy):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_slow_update, args=(str(repo_copy), f, barrier)) for f in ("01_setup", "03_activations")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert set(progress_of(repo_copy)["completed"]) == {"01_setup", "03_activations"}


def test_a_later_export_that_changes_the_package_makes_records_stale_until_checked_again(course):
    assert tito("module", "complete", "01").exit_code == 0
    assert "● passed" in tito("checkpoint", "status").output
    rewrite(course, "    return x / 2\n", "    return x * 0.5\n")
    assert tito("module", "export", "01").exit_code == 0
    assert changed_files(course, progress_of(course)["completed"]["01_demo"]) == ["tinytorch/core/demo.py"]
    row = next(line for line in tito("module", "status").output.splitlines() if "01_demo" in line)
    assert "stale" in row
    assert "◐ stale" in tito("checkpoint", "status").output
    detailed = tito("module", "status", "--detailed")
    assert detailed.exit_code == 0, detailed.output
    assert "✓ double(3) is 6" in detailed.output  # each check listed
    row = next(line for line in detailed.output.splitlines() if line.startswith("│ 01_demo"))
    assert "stale" not in row and "✓" in row
    assert "● passed" in tito("checkpoint", "status").output


def test_a_failed_complete_replaces_the_earlier_completion_and_a_fixed_package_passes_again(course):
    assert tito("module", "complete", "01").exit_code == 0
    rewrite(course, "    return 2 * x\n", "    return 3 * x\n")
    assert tito("module", "complete", "01").exit_code == 1
    row = next(line for line in tito("module", "status").output.splitlines() if "01_demo" in line)
    assert "failed" in row
    rewrite(course, "    return 3 * x\n", "    return 2 * x\n")
    assert tito("module", "export", "01").exit_code == 0
    detailed = tito("checkpoint", "status", "--detailed")
    assert "✓ double(3) is 6" in detailed.output and "● passed" in detailed.output


def test_checkpoint_status_detailed_lists_each_check_of_each_written_chapter(course):
    result = tito("checkpoint", "status", "--detailed")
    assert result.exit_code == 0, result.output
    assert "01_demo ● passed" in result.output and "    ✓ double(3) is 6 (" in result.output


# --- one line, never a traceback ------------------------------------------------------------------


def run_tito(root: Path, *args: str, pythonpath: list[Path] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYTORCH_ROOT=str(root),
               PYTHONPATH=os.pathsep.join([*(str(p) for p in pythonpath), str(REPO)]), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "tito", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def without(tmp_path: Path):
    """A folder that, first on the path, makes the named packages fail to import as if missing."""

    def make(*names: str) -> Path:
        folder = tmp_path / "missing"
        folder.mkdir(exist_ok=True)
        for name in names:
            (folder / f"{name}.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
        return folder

    return make


@pytest.mark.parametrize("args", [["module", "export", "01"], ["module", "status"], ["checkpoint", "run", "1"],
                                  ["module", "test", "01"]], ids=" ".join)
def test_a_missing_jupytext_is_never_a_traceback(course, without, args):
    done = run_tito(course, *args, pythonpath=[without("jupytext")])
    assert "Traceback" not in done.stdout + done.stderr
    if done.returncode:
        assert done.stderr.startswith("✗ ") and len(done.stderr.splitlines()) == 2, done.stderr
        assert "jupytext" in done.stderr


def test_doctor_reports_a_missing_jupytext_and_finishes(course, without):
    done = run_tito(course, "system", "doctor", pythonpath=[without("jupytext")])
    assert "Traceback" not in done.stdout + done.stderr
    assert "jupytext is not installed" in done.stdout
    assert "protection" in done.stdout  # the checks after the broken one still ran
    assert done.returncode == 1 and done.stderr.startswith("✗ ")


def test_a_missing_nbgrader_is_one_line(course, without):
    done = run_tito(course, "nbgrader", "generate", "01", pythonpath=[without("nbgrader")])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0] == "✗ nbgrader is not installed."


def test_a_package_folder_that_cannot_be_written_is_one_line(course, monkeypatch):
    from tito import export

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path.parent / f".{path.name}.tmp"))

    monkeypatch.setattr(export, "write_atomic", refuse)
    rewrite(course, "    return x / 2\n", "    return x * 0.5\n")  # so the export has a file to write
    result = tito("module", "complete", "01")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "✗ Cannot write tinytorch/core (Permission denied); the export stopped there.",
        "  Make tinytorch/ writable (for example: chmod -R u+w tinytorch), then export again.",
    ]


def test_an_unexpected_error_is_one_line_with_a_hint(course, monkeypatch):
    monkeypatch.setattr(curriculum.Curriculum, "written_modules", lambda self: 1 / 0)
    result = tito("module", "status")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "✗ tito stopped on an unexpected ZeroDivisionError: division by zero.",
        "  Run it again with TITO_DEBUG=1 to see the traceback, and include 'tito system info' when you report it.",
    ]


# --- the real course: checkpoint 09 blames the rule that is wrong ---------------------------------


def test_checkpoint_09_names_a_wrong_sum_rule_although_its_gradchecks_use_sum_too(repo_copy):
    source = repo_copy / "modules" / "09_autograd" / "autograd_dev.py"
    right = "    return (np.broadcast_to(_expand_reduced(grad, ctx), ctx.input_shape),)\n"
    text = source.read_text(encoding="utf-8")
    assert right in text, "chapter 09's sum_backward changed; update this test"
    source.write_text(text.replace(right, right.replace("(grad, ctx)", "(2 * grad, ctx)")), encoding="utf-8")
    assert tito("module", "export", "09").exit_code == 0
    result = tito("checkpoint", "run", "9")
    assert result.exit_code == 1
    failed = next(line for line in result.stdout.splitlines() if line.startswith("FAILED: "))
    assert failed.startswith("FAILED: check_every_primitive: AssertionError: Sum's backward rule is wrong"), failed


def test_a_notebook_self_check_prints_the_lines_complete_prints(tmp_path):
    printed = []

    def test_unit_good():
        assert 1 + 1 == 2

    def test_unit_bad():
        assert sorted([3, 1]) == [3, 1]

    test_unit_good.__module__ = test_unit_bad.__module__ = "__main__"  # as a notebook's functions are
    namespace = {"test_unit_good": test_unit_good, "test_unit_bad": test_unit_bad, "test_data": [1, 2]}
    from tito.selfcheck import run_tests

    first = run_tests(namespace, printed.append)
    assert first == "test_unit_bad failed: AssertionError: assert sorted([3, 1]) == [3, 1]"
    assert printed[0] == "Tests (2):"
    assert printed[1].startswith("  ✓ test_unit_good (")
    assert printed[2].startswith("  ✗ test_unit_bad: AssertionError: assert sorted([3, 1]) == [3, 1] [test_tito_complete.py:")
    assert len(printed) == 3  # a list named test_data is not a test
