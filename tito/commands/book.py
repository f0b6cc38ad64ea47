"""`tito book toc [--check]`: the book's table of contents, from curriculum.toml."""

from __future__ import annotations

import click

from .. import book, curriculum
from ..errors import TitoError
from ..ui import console


@click.group("book")
def group() -> None:
    """The course site's table of contents."""


@group.command("toc")
@click.option("--check", is_flag=True, help="Write nothing; fail if _toc.yml is not what curriculum.toml gives.")
def toc_command(check: bool) -> None:
    """Write _toc.yml from curriculum.toml (parts, chapters, pages)."""
    course = curriculum.load()
    if check:
        path = course.root / book.TOC_FILE
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != book.toc_text(course):
            raise TitoError(f"{book.TOC_FILE} is not what curriculum.toml gives.",
                            "Run 'tito book toc' and commit _toc.yml.")
        console.print(f"[green]✓[/] {book.TOC_FILE} matches curriculum.toml.")
        return
    changed = book.write_toc(course)
    console.print(f"[green]✓[/] {book.TOC_FILE} " + ("written from curriculum.toml." if changed else "already matches curriculum.toml."))
