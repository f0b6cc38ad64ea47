"""The Colab exercise notebook of a chapter as the book build publishes it, and that notebook with the
chapter's solutions pasted back into its stubs: shared by the exercise-notebook and NBGrader tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tito import curriculum
from tito.solutions import remove_hidden_tests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import launch_notebooks  # noqa: E402

URL = "https://github.com/tinytorch-course/tinytorch"


def exercise(folder: str):
    course = curriculum.load(ROOT)
    module = course.module(folder)
    return module, launch_notebooks.exercise_notebook(module, ROOT, URL, None, launch_notebooks._package_owners(ROOT))


def with_solutions_pasted(module, notebook):
    """The exercise notebook with each stubbed cell's code replaced by the chapter's own (hidden tests still out)."""
    import jupytext

    text, _ = remove_hidden_tests(module.dev_file(ROOT).read_text(encoding="utf-8"))
    complete = jupytext.reads(text, fmt="py:percent").cells
    chapter_cells = notebook.cells[1:-2]  # after the install cell, before the self-check's two cells
    assert len(chapter_cells) == len(complete)
    owners = launch_notebooks._package_owners(ROOT)
    own = launch_notebooks.defined_names(launch_notebooks._export_cells(jupytext.read(module.dev_file(ROOT)).cells))
    pasted = 0
    for cell, original in zip(chapter_cells, complete):
        if cell.cell_type == "code" and "raise NotImplementedError" in cell.source:
            # The solution code goes where the stubs are; the rest of the cell stays as the exercise has it.
            cell.source, _ = launch_notebooks.own_imports_removed(original.source, module.folder, own, owners)
            pasted += 1
    assert pasted > 0
    return notebook


def run(notebook, tmp_path: Path, allow_errors: bool):
    from nbclient import NotebookClient

    env_before = dict(os.environ)
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return notebook


def text_of(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text = output["text"]  # a list of lines in a notebook read as plain JSON
            parts.append("".join(text) if isinstance(text, list) else text)
        elif output.get("output_type") == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "".join(parts)
