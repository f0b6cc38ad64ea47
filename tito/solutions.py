"""Solution regions: the one function that turns a chapter's code into the learner's exercise.

A chapter marks the code a learner writes with NBGrader's delimiters, inside a
function body:

    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        return a + b
        ### END SOLUTION

`clear_solutions` replaces each region with a stub that says what to implement
and raises NotImplementedError. A question's answer cell is a markdown cell
whose region holds the answer key and rubric; `clear_answers` replaces that
region with nbgrader's own "YOUR ANSWER HERE". These are the only
implementations of those rules:
`tito module start` applies it to the chapter file (`student_version`), and
`tito nbgrader generate` applies it to the release notebook (through the
ClearSolutions preprocessor in tito/nbgrader.py), so a learner working from
the repository and a student working from a release see the same stubs.
`exercise_version` also removes hidden tests: it is what a learner is handed
outside the repository (the site's exercise notebooks, a student repository).
"""

from __future__ import annotations

import re

BEGIN = re.compile(r"^\s*###\s*BEGIN\s+SOLUTION\s*$")
END = re.compile(r"^\s*###\s*END\s+SOLUTION\s*$")
HIDDEN_BEGIN = re.compile(r"^\s*###\s*BEGIN\s+HIDDEN\s+TESTS\s*$")
HIDDEN_END = re.compile(r"^\s*###\s*END\s+HIDDEN\s+TESTS\s*$")
# A jupytext percent-format cell marker, e.g. `# %%`, `# %% [markdown]`, `# %% nbgrader={...}`.
CELL_MARKER = re.compile(r"^#\s*%%(?=\s|\[|$)")
_TEXT_CELL = re.compile(r"^#\s*%%\s*\[(markdown|md|raw)\]")

STUB = (
    "# YOUR CODE HERE: {name}\n"
    'raise NotImplementedError("{where}implement {name}; the hints above it say what it must do")'
)
# What a learner's answer cell (a question's markdown cell) shows in place of the answer key:
# nbgrader's own text for a cleared markdown solution, so both tools agree.
ANSWER_STUB = "YOUR ANSWER HERE"


class SolutionError(ValueError):
    """A solution region that cannot be turned into a stub (unclosed, nested, or outside a function)."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _definitions(source: str) -> list[tuple[int, int, bool, str]]:
    """(first line, last line, is_function, name) of every def and class in a cell, outermost first."""
    import ast

    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                found.append((child.lineno, child.end_lineno, not isinstance(child, ast.ClassDef), name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    # Magics (`%timeit`, `!pip`) are not Python; blank them so the rest of the cell parses.
    code = "\n".join("" if re.match(r"^\s*[%!]", line) else line for line in source.split("\n"))
    visit(ast.parse(code), "")
    return found


def _enclosing_function(definitions, line: int) -> str | None:
    """`Class.method` or `function` whose body holds `line` (1-based); None at module or class level."""
    around = [d for d in definitions if d[0] < line <= d[1]]
    if not around:
        return None
    innermost = max(around, key=lambda d: d[0])
    return innermost[3] if innermost[2] else None


def clear_solutions(source: str, module: str = "", first_line: int = 1) -> tuple[str, int]:
    """One code cell's source with every solution region replaced by a stub; also the number replaced.

    `module` (a folder such as 02_tensor) goes into the stub's message; `first_line`
    is the file line of the cell's first line, for error messages.
    """
    lines = source.split("\n")
    if not any(BEGIN.match(line) or END.match(line) for line in lines):
        return source, 0
    try:
        definitions = _definitions(source)
    except SyntaxError as err:
        raise SolutionError(f"line {first_line + (err.lineno or 1) - 1}: {err.msg}; a cell with solution regions must be valid Python") from None
    out, start, replaced = [], None, 0
    where = f"{module}: " if module else ""
    for number, line in enumerate(lines):
        if BEGIN.match(line):
            if start is not None:
                raise SolutionError(f"line {first_line + number}: '### BEGIN SOLUTION' inside another solution region")
            name = _enclosing_function(definitions, number + 1)
            if name is None:
                raise SolutionError(
                    f"line {first_line + number}: a solution region must sit inside a function body "
                    "(at module or class level its stub would fail when the file is imported)"
                )
            start = number
            indent = line[: _indent(line)]
            out += [indent + stub for stub in STUB.format(name=name, where=where).split("\n")]
            replaced += 1
        elif END.match(line):
            if start is None:
                raise SolutionError(f"line {first_line + number}: '### END SOLUTION' without a '### BEGIN SOLUTION' before it")
            start = None
        elif start is None:
            out.append(line)
    if start is not None:
        raise SolutionError(f"line {first_line + start}: '### BEGIN SOLUTION' has no '### END SOLUTION'")
    return "\n".join(out), replaced


def split_cells(text: str) -> list[tuple[int, list[str]]]:
    """A percent-format file as (first line number, lines with their endings), one entry per cell.

    The first entry is whatever precedes the first cell marker (the jupytext header).
    """
    cells, current, start = [], [], 1
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if CELL_MARKER.match(line) and (current or number > 1):
            cells.append((start, current))
            current, start = [], number
        current.append(line)
    cells.append((start, current))
    return cells


def is_code_cell(lines: list[str]) -> bool:
    return bool(lines) and bool(CELL_MARKER.match(lines[0])) and not _TEXT_CELL.match(lines[0])


def is_markdown_cell(lines: list[str]) -> bool:
    return bool(lines) and bool(CELL_MARKER.match(lines[0])) and bool(_TEXT_CELL.match(lines[0]))


def _replace_regions(source: str, begin, end, what: str, replacement: list[str], first_line: int) -> tuple[str, int]:
    """`source` with every region between a `begin` and an `end` marker line (markers included)
    replaced by `replacement`; also the number of regions. `what` names the markers in errors."""
    out, start, count = [], None, 0
    for number, line in enumerate(source.split("\n")):
        if begin.match(line):
            if start is not None:
                raise SolutionError(f"line {first_line + number}: '### BEGIN {what}' inside another such region")
            start, count = number, count + 1
            out += replacement
        elif end.match(line):
            if start is None:
                raise SolutionError(f"line {first_line + number}: '### END {what}' without a '### BEGIN {what}' before it")
            start = None
        elif start is None:
            out.append(line)
    if start is not None:
        raise SolutionError(f"line {first_line + start}: '### BEGIN {what}' has no '### END {what}'")
    return "\n".join(out), count


def clear_answers(source: str, first_line: int = 1) -> tuple[str, int]:
    """A markdown (answer) cell's text with each solution region (the answer key) replaced by
    ANSWER_STUB; also the number replaced. The markers may sit anywhere in the text."""
    return _replace_regions(source, BEGIN, END, "SOLUTION", [ANSWER_STUB], first_line)


def remove_hidden_tests(source: str, first_line: int = 1) -> tuple[str, int]:
    """A code cell without its hidden-test regions (markers included), as nbgrader's release has it."""
    return _replace_regions(source, HIDDEN_BEGIN, HIDDEN_END, "HIDDEN TESTS", [], first_line)


def _rewrite_cells(text: str, rewrite) -> tuple[str, int]:
    """Apply `rewrite(lines, body, first_line) -> (new body or None, count)` to every cell; other bytes unchanged."""
    parts, total = [], 0
    for start, lines in split_cells(text):
        body = [l.rstrip("\r\n") for l in lines[1:]]
        new, count = rewrite(lines, "\n".join(body), start + 1) if lines and CELL_MARKER.match(lines[0]) else (None, 0)
        if new is None:
            parts.append("".join(lines))
            continue
        total += count
        ending = "\r\n" if lines[0].endswith("\r\n") else "\n"
        last_has_end = lines[-1].endswith(("\n", "\r"))
        parts.append(lines[0] + ending.join(new.split("\n")) + (ending if last_has_end else ""))
    return "".join(parts), total


def _has_marker(lines: list[str], *patterns) -> bool:
    return any(p.match(l.rstrip("\r\n")) for l in lines for p in patterns)


def student_version(text: str, module: str = "") -> tuple[str, int]:
    """A chapter file (percent format) with its solution regions stubbed; every other byte unchanged.

    Code regions become stubs that raise NotImplementedError; a question's answer cell
    (a markdown cell with a region) shows ANSWER_STUB in place of its answer key. The
    count is of code stubs only (the exercises to implement).
    """
    def rewrite(lines, body, first_line):
        if not _has_marker(lines, BEGIN, END):
            return None, 0
        if is_code_cell(lines):
            return clear_solutions(body, module, first_line=first_line)
        if is_markdown_cell(lines):
            cleared, _ = clear_answers(body, first_line=first_line)
            return cleared, 0
        return None, 0

    return _rewrite_cells(text, rewrite)


def exercise_version(text: str, module: str = "") -> tuple[str, int]:
    """What a learner is handed outside the repository (exercise notebooks, a student repository):
    the student version with hidden-test regions removed too, as in nbgrader's release. Locked
    (visible) tests stay. Returns the text and the number of code stubs."""
    student, stubs = student_version(text, module)

    def rewrite(lines, body, first_line):
        if not (is_code_cell(lines) and _has_marker(lines, HIDDEN_BEGIN, HIDDEN_END)):
            return None, 0
        return remove_hidden_tests(body, first_line=first_line)

    without_hidden, _ = _rewrite_cells(student, rewrite)
    return without_hidden, stubs


def count_regions(text: str) -> int:
    """How many solution regions a chapter file marks in code cells (the exercises; answer cells not counted)."""
    return sum(
        sum(bool(BEGIN.match(l.rstrip("\r\n"))) for l in lines)
        for _, lines in split_cells(text)
        if is_code_cell(lines)
    )
