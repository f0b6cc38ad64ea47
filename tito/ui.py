"""How tito prints: one Rich console for results, and one way to show an error."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
_errors = Console(stderr=True, highlight=False)


def show_error(message: str, hint: str = "") -> None:
    """One red line saying what went wrong, then (if known) one line saying what to do."""
    _errors.print(f"[bold red]✗ {escape(message)}[/]", soft_wrap=True)
    if hint:
        _errors.print(f"  {escape(hint)}", style="yellow", soft_wrap=True)


def note(text: str) -> None:
    """A warning that does not stop the command."""
    console.print(f"[yellow]! {escape(text)}[/]", soft_wrap=True)


def rel(root, path) -> str:
    """A path as the learner sees it: relative to the project root."""
    return path.relative_to(root).as_posix()
