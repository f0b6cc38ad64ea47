"""The mechanical half of preparing a chapter for NBGrader: cell header metadata.

Deciding which code a learner writes is a teaching decision: the author wraps
it in `### BEGIN SOLUTION` / `### END SOLUTION` inside function bodies. The
headers follow from the cells, so this writes them:

- a cell with solution regions becomes a solution cell (`impl_<first name it defines>`);
- a cell that defines a `test_*` function becomes a graded, locked test cell named
  after that function, worth `points` (edit the number afterwards);
- the `#| default_exp` cell becomes a locked cell, so a student cannot retarget the export.

Cells that already carry `nbgrader=` metadata are left as they are, so running it
again after adding regions only adds what is missing. Only header lines change,
unless functions are named with `solutions`: their bodies (after the docstring)
are then wrapped in solution markers first.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .solutions import BEGIN, _definitions, _enclosing_function, is_code_cell, split_cells

_DEFAULT_EXP = re.compile(r"^\s*#\|\s*default_exp\b", re.MULTILINE)
_EXPORT = re.compile(r"^\s*#\|\s*export", re.MULTILINE)


@dataclass
class Annotated:
    solution_cells: int = 0
    graded_cells: int = 0
    locked_cells: int = 0
    points: int = 1
    marked: int = 0
    exported_without_regions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.marked or self.solution_cells or self.graded_cells or self.locked_cells)

    def describe(self) -> str:
        marked = f"{self.marked} function bod(ies) marked as solutions; " if self.marked else ""
        return (marked + f"metadata added to {self.solution_cells} solution cell(s), {self.graded_cells} graded test cell(s) "
                f"({self.points} point(s) each; edit \"points\" to weigh them) and {self.locked_cells} locked cell(s)")


def _names(code: str) -> list[str]:
    """Top-level functions and classes a cell defines, in order ([] if it does not parse)."""
    code = "\n".join("" if re.match(r"^\s*[%!]", line) else line for line in code.split("\n"))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _first_exercise(body: str, start: int) -> str:
    """The top-level name around the cell's first solution region (`Tensor` for Tensor.__init__)."""
    lines = body.split("\n")
    first = next(n for n, line in enumerate(lines, start=1) if BEGIN.match(line))
    try:
        name = _enclosing_function(_definitions(body), first)
    except SyntaxError:
        name = None
    return (name or f"line{start}").split(".")[0].strip("_") or f"line{start}"


def _metadata(grade_id: str, grade: bool = False, solution: bool = False, locked: bool = False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


class AnnotateError(ValueError):
    """A named function that cannot be marked as a solution."""


def _body_lines(code: str) -> dict[str, tuple[int, int, int]]:
    """For every function in a cell: its qualified name -> (first body line, last body line, indent), 1-based,
    the docstring left out (it tells the learner what to write)."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    body = child.body
                    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                            and isinstance(body[0].value.value, str):
                        body = body[1:]
                    if body:
                        found[name] = (body[0].lineno, body[-1].end_lineno, body[0].col_offset)
                visit(child, name + ".")
            else:
                visit(child, prefix)

    code = "\n".join("" if re.match(r"^\s*[%!]", line) else line for line in code.split("\n"))
    visit(ast.parse(code), "")
    return found


def mark_solutions(text: str, names: list[str]) -> str:
    """Wrap the bodies of the named functions (`Tensor.__init__`, `_broadcast_shape`) in solution markers."""
    wanted, parts = set(names), []
    for start, lines in split_cells(text):
        if not is_code_cell(lines):
            parts.append("".join(lines))
            continue
        body = [line.rstrip("\r\n") for line in lines[1:]]
        try:
            functions = _body_lines("\n".join(body))
        except SyntaxError:
            functions = {}
        ending = "\r\n" if lines[0].endswith("\r\n") else "\n"
        edits = []
        for name in sorted(wanted & set(functions)):
            first, last, indent = functions[name]
            if any(BEGIN.match(line) for line in body[first - 1:last]):
                raise AnnotateError(f"{name} (line {start + first}) already holds a solution region")
            edits.append((first, last, indent))
            wanted.discard(name)
        for first, last, indent in sorted(edits, reverse=True):
            body[last:last] = [" " * indent + "### END SOLUTION"]
            body[first - 1:first - 1] = [" " * indent + "### BEGIN SOLUTION"]
        if not edits:
            parts.append("".join(lines))
            continue
        keep_end = lines[-1].endswith(("\n", "\r"))
        parts.append(lines[0] + ending.join(body) + (ending if keep_end else ""))
    if wanted:
        raise AnnotateError(f"no function {', '.join(sorted(wanted))} in the chapter's code cells "
                            "(name methods as Class.method)")
    return "".join(parts)


def annotate(path: Path, points: int = 1, solutions: list[str] | None = None) -> Annotated:
    """Add NBGrader metadata to the headers of a chapter's cells that need it; write the file if anything changed.

    `solutions` names functions whose bodies become solution regions first.
    """
    original = path.read_bytes().decode("utf-8")
    text = mark_solutions(original, solutions) if solutions else original
    cells = split_cells(text)
    used = set(re.findall(r'"grade_id":\s*"([^"]+)"', text))
    result = Annotated(points=points)

    def unique(name: str) -> str:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name}_{n}"
        used.add(candidate)
        return candidate

    parts = []
    for start, lines in cells:
        if not is_code_cell(lines) or "nbgrader=" in lines[0]:
            parts.append("".join(lines))
            continue
        body = "".join(lines[1:])
        names = _names(body)
        meta = None
        if any(BEGIN.match(line.rstrip("\r\n")) for line in lines[1:]):
            meta = _metadata(unique("impl_" + _first_exercise(body, start)), solution=True)
            result.solution_cells += 1
        elif any(n.startswith("test_") for n in names):
            test = next(n for n in names if n.startswith("test_"))
            meta = _metadata(unique(test), grade=True, locked=True, points=points)
            result.graded_cells += 1
        elif _DEFAULT_EXP.search(body):
            meta = _metadata(unique("default_exp"), locked=True)
            result.locked_cells += 1
        elif _EXPORT.search(body) and names:
            result.exported_without_regions.append(f"line {start} ({', '.join(names[:3])})")
        if meta is None:
            parts.append("".join(lines))
            continue
        header = lines[0].rstrip("\r\n")
        ending = lines[0][len(header):]
        parts.append(f"{header} nbgrader={json.dumps(meta, sort_keys=True)}{ending}" + body)
    result.marked = len(solutions or [])
    new = "".join(parts)
    if new != original:
        path.write_bytes(new.encode("utf-8"))
    return result
