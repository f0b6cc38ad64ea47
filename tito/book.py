"""The book's table of contents, generated from curriculum.toml.

`_toc.yml` is written by `tito book toc` (and by the book build) and never by
hand: its parts, the chapters in each (a module's chapter once its `name_dev.py`
exists, its README until then) and the other pages all come from the curriculum,
so adding a chapter or a page is one entry there.
"""

from __future__ import annotations

from pathlib import Path

from .curriculum import Curriculum
from .errors import TitoError

TOC_FILE = "_toc.yml"
HEADER = """\
# Table of contents (Jupyter Book 1.x), generated from curriculum.toml by
# `tito book toc`; do not edit it by hand. Parts, chapters and pages are
# declared there ([[part]] and each module's `part`); the book build and
# tests/test_curriculum.py check that this file is what the curriculum gives.
"""


def toc_text(course: Curriculum) -> str:
    """The text of `_toc.yml` for the curriculum and the chapters written so far (the same input, the same bytes)."""
    if not course.book_root:
        raise TitoError("curriculum.toml has no [book] root page.", 'Add [book] with root = "book/intro".')
    lines = [HEADER.rstrip("\n"), "format: jb-book", f"root: {course.book_root}", "parts:"]
    for part in course.parts:
        entries = [m.toc_entry(course.root) for m in course.chapters_of(part)] + list(part.pages)
        if not entries:
            raise TitoError(f"curriculum.toml: part {part.caption!r} has no chapter and no page.",
                            "Give it pages, name it in a module's `part`, or remove it.")
        lines.append(f"  - caption: {part.caption}")
        if part.numbered:
            lines.append("    numbered: true")
        lines.append("    chapters:")
        lines += [f"      - file: {entry}" for entry in entries]
    return "\n".join(lines) + "\n"


def write_toc(course: Curriculum) -> bool:
    """Write `_toc.yml` if it differs from what the curriculum gives; whether it changed."""
    path = Path(course.root) / TOC_FILE
    text = toc_text(course)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
