"""The chapters as exercises: every stub comes with guidance, every chapter's questions have
answer cells, and the capstone has code for the learner to write.

A learner who runs `tito module start` sees only what stays in the chapter once its
solution regions are stubbed: the docstring and comments directly above each region are
the hint. "Directly above" is what these tests measure: the comment lines and docstring
lines between the previous line of code and `### BEGIN SOLUTION`.
"""

from __future__ import annotations

import re

import pytest

from tito import curriculum
from tito.nbgrader import check_metadata
from tito.solutions import BEGIN, count_regions, is_code_cell, split_cells

MIN_GUIDANCE_LINES = 3
_DOC_QUOTES = re.compile(r"^[rbuRBU]*(\"\"\"|''')")
COURSE = curriculum.load()
MODULES = COURSE.written_modules()
CHAPTERS = [m for m in MODULES if m.folder != "01_setup"]  # 01 (setup) asks no questions to answer


def guidance_before_regions(text: str) -> list[tuple[int, int]]:
    """(file line of each `### BEGIN SOLUTION` in a code cell, lines of guidance directly above it).

    Guidance is `#` comments (not `#|` directives) and docstring lines, read upwards from
    the marker until the first line of code; blank lines are skipped, not counted.
    """
    found = []
    for first, lines in split_cells(text):
        if not is_code_cell(lines):
            continue
        body = [line.rstrip("\r\n") for line in lines]
        for index, line in enumerate(body):
            if not BEGIN.match(line):
                continue
            count, above, in_docstring = 0, index - 1, False
            while above >= 1:  # body[0] is the cell marker
                stripped = body[above].strip()
                above -= 1
                if in_docstring:
                    opening = _DOC_QUOTES.match(stripped)
                    if opening:
                        stripped, in_docstring = stripped[opening.end():], False
                    count += bool(stripped.strip())
                elif not stripped or stripped.startswith("#|"):
                    continue
                elif stripped.startswith("#"):
                    count += bool(stripped.lstrip("#").strip())
                elif stripped.endswith(('"""', "'''")):
                    inner = stripped[:-3]
                    opening = _DOC_QUOTES.match(inner)
                    if opening:  # a one-line docstring
                        count += bool(inner[opening.end():].strip())
                    else:
                        count += bool(inner.strip())
                        in_docstring = True
                else:
                    break
            found.append((first + index, count))
    return found


def test_guidance_counts_comments_and_a_docstring_above_the_region():
    text = (
        "# %%\n"
        "def f(x):\n"
        '    """One line of docstring.\n'
        "\n"
        "    A second, after a blank line.\n"
        '    """\n'
        "    y = x\n"
        "    # the shapes: x is (N, D)\n"
        "    # the pitfall: keep the dtype\n"
        "    #| not guidance\n"
        "    ### BEGIN SOLUTION\n"
        "    return y\n"
        "    ### END SOLUTION\n"
        "\n"
        "# %%\n"
        "def g(x):\n"
        '    """Say what g does."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return x\n"
        "    ### END SOLUTION\n"
        "\n"
        "# %%\n"
        "def h(x):\n"
        '    """What h does.\n'
        "\n"
        "    Shapes: (N,) in, (N,) out.\n"
        "    Pitfall: do not copy.\n"
        '    """\n'
        "    ### BEGIN SOLUTION\n"
        "    return x\n"
        "    ### END SOLUTION\n"
    )
    assert [count for _, count in guidance_before_regions(text)] == [2, 1, 3]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.folder)
def test_every_solution_region_has_at_least_three_lines_of_guidance(module):
    path = module.dev_file(COURSE.root)
    thin = [f"line {line} ({count})" for line, count in guidance_before_regions(path.read_text(encoding="utf-8"))
            if count < MIN_GUIDANCE_LINES]
    assert not thin, (
        f"{path.name}: these solution regions have fewer than {MIN_GUIDANCE_LINES} lines of guidance "
        f"(docstring or comments) directly above them: {', '.join(thin)}"
    )


@pytest.mark.parametrize("module", CHAPTERS, ids=lambda m: m.folder)
def test_every_chapter_has_graded_answer_cells_for_its_questions(module):
    metadata = check_metadata(module.dev_file(COURSE.root), COURSE.root)
    assert len(metadata.answer_cells) >= 3, (
        f"{module.folder} has {len(metadata.answer_cells)} answer cell(s); its ML systems thinking "
        "questions each need a manually graded markdown answer cell"
    )


def test_the_capstone_has_at_least_five_exercises():
    capstone = COURSE.module("17_capstone")
    assert count_regions(capstone.dev_file(COURSE.root).read_text(encoding="utf-8")) >= 5


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.folder)
def test_no_stub_points_at_text_elsewhere(module):
    text = module.dev_file(COURSE.root).read_text(encoding="utf-8")
    assert not re.search(r"the text before this cell says", text)
