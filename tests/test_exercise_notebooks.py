"""Exercise notebooks run top to bottom, as on Colab, and end with a self-check of the learner's code.

The notebook is the one the book build publishes (book/_ext/launch_notebooks.py):
install cell, the chapter's exercise version, the self-check. It runs here with
nbclient in a folder outside the repository, with no network (the install cell
only installs on Colab). With the stubs left, it names the first function still
to write. Chapter 02 builds the Tensor itself; chapter 09 attaches its backward
rules to chapter 02's classes, so both ways of being "the notebook's code" are
exercised.

With the solutions pasted back into the stubs, every chapter's notebook runs
without an error and its self-check passes (the chapter's tests and its
checkpoint, on the notebook's code): tests/test_nbgrader.py checks that on the
run that autogrades the notebook, so each chapter executes once for both.
"""

from __future__ import annotations

import re
import sys

import pytest

from exercise_support import ROOT, exercise, launch_notebooks, run, text_of, with_solutions_pasted
from tito import curriculum

pytestmark = pytest.mark.slow
CHAPTERS = ["02_tensor", "09_autograd"]
STUB = re.compile(r"implement (?P<name>[\w.<>]+);")


def first_stub_hit(notebook) -> str:
    """The stub whose NotImplementedError stopped the first failing cell: where "Run all" stops."""
    for cell in notebook.cells[:-1]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                match = STUB.search(output["evalue"])
                assert match, f"the first failing cell failed for another reason: {output['ename']}: {output['evalue']}"
                return match["name"]
    raise AssertionError("no cell failed, though the notebook holds stubs")


def test_the_exercise_notebook_holds_stubs_and_no_solution():
    module, notebook = exercise("02_tensor")
    sources = "\n".join(c.source for c in notebook.cells)
    assert "### BEGIN SOLUTION" not in sources and "### BEGIN HIDDEN TESTS" not in sources
    assert "raise NotImplementedError" in sources
    assert notebook.cells[0].metadata["tinytorch"] == "install on Colab"
    assert "self_check('02_tensor', globals())" in notebook.cells[-1].source


@pytest.mark.parametrize("folder", CHAPTERS)
def test_with_the_stubs_left_the_self_check_names_the_first_function_to_write(folder, tmp_path):
    module, notebook = exercise(folder)
    done = run(notebook, tmp_path, allow_errors=True)
    last = text_of(done.cells[-1]).strip().splitlines()
    assert last, "the self-check printed nothing"
    name = first_stub_hit(done)
    assert last[-1].startswith(f"✗ {module.folder} ({module.title}) is not complete:"), last[-5:]
    assert f"{name} is not written yet" in last[-1], last[-5:]


def test_a_checkpoint_runs_on_the_notebooks_definitions_not_the_packages(tmp_path):
    """The package module is replaced while the checks run: a wrong Tensor in the notebook fails checkpoint 01."""
    import nbformat

    module, notebook = exercise("02_tensor")
    notebook = with_solutions_pasted(module, notebook)
    sabotage = nbformat.v4.new_code_cell(
        "_right_add = Tensor.__add__\n"
        "def _wrong_add(self, other):\n"
        "    return _right_add(self, other) * 2 if not isinstance(other, (int, float)) else _right_add(self, other)\n"
        "test_only_this = None\n")
    notebook.cells.insert(len(notebook.cells) - 2, sabotage)
    # Break addition only after the chapter's tests have run, inside the self-check's checkpoint run.
    notebook.cells[-1].source = (
        "import tito.selfcheck as _sc\n"
        "_tests = _sc.run_tests\n"
        "def _run_tests_then_break(namespace, out=print):\n"
        "    result = _tests(namespace, out)\n"
        "    Tensor.__add__ = _wrong_add\n"
        "    return result\n"
        "_sc.run_tests = _run_tests_then_break\n" + notebook.cells[-1].source)
    done = run(notebook, tmp_path, allow_errors=False)
    last = text_of(done.cells[-1])
    assert "is not complete: checkpoint" in last and "a + b" in last, last


def test_an_exercise_imports_none_of_its_own_code_from_the_package():
    """Where a chapter imports from the package a name it defines itself, the exercise uses the notebook's."""
    owners = launch_notebooks._package_owners(ROOT)
    own = {"Dataset", "Tensor", "check_environment"}
    cases = {
        "from tinytorch.data.loader import Dataset\n": ("11_dataloader", "from tinytorch.data.loader import"),
        "from tinytorch.core.tensor import Tensor, Function\n": ("02_tensor", "import Tensor"),
        "T = tinytorch.Tensor   # the exported class\n": ("02_tensor", "tinytorch.Tensor"),
        "from tinytorch.utils import environment as package_setup\n": ("01_setup", "from tinytorch.utils import environment"),
    }
    for source, (folder, gone) in cases.items():
        new, changed = launch_notebooks.own_imports_removed(source, folder, own, owners)
        assert changed and gone not in new, (source, new)
    # Another chapter's code is imported as before: chapter 09 builds on chapter 02's Tensor.
    kept = "from tinytorch.core.tensor import Tensor\n"
    assert launch_notebooks.own_imports_removed(kept, "09_autograd", {"backward"}, owners) == (kept, [])


def test_the_built_package_carries_the_checkpoints_the_self_check_runs(tmp_path, monkeypatch):
    """A wheel (what pip builds on Colab from the repository) holds tito/_course: curriculum and checkpoints."""
    import subprocess
    import zipfile

    from tito import selfcheck
    from tito.errors import TitoError

    import shutil

    source = tmp_path / "source"  # build from a copy: setuptools writes build/ beside the sources
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "curriculum.toml"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name in ("checkpoints", "tinytorch", "tito"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "_course"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("tinytorch-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    course = curriculum.load(ROOT)
    assert "tito/_course/curriculum.toml" in names
    for module in course.modules:
        if module.checkpoint and module.checkpoint.path(ROOT).is_file():
            assert f"tito/_course/checkpoints/{module.checkpoint.filename}" in names
    assert "tito/_course/checkpoints/_harness.py" in names
    # With no checkout to be found, the self-check reads the packaged copy.
    packaged = tmp_path / "installed" / "tito" / "_course"

    def no_checkout(start=None):
        raise TitoError("no checkout")

    monkeypatch.setattr(selfcheck.curriculum, "find_root", no_checkout)
    monkeypatch.setattr(selfcheck, "PACKAGED_COURSE", packaged)
    root = selfcheck.course_root()
    assert root == packaged
    chapter = curriculum.load(root).module("02_tensor")
    assert chapter.checkpoint.path(root).is_file()
