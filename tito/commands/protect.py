"""`tito system protect enable|disable|status|validate`: keep hand edits out of the generated package."""

from __future__ import annotations

import click
from rich.markup import escape

from .. import curriculum, protect
from ..errors import TitoError
from ..ui import console


@click.group("protect")
def group() -> None:
    """Protect the generated tinytorch/ files from hand edits (reversibly)."""


@group.command("enable")
@click.option("--shared-hooks", is_flag=True,
              help="Install the pre-commit hook even where core.hooksPath points outside this repository.")
def enable_command(shared_hooks: bool) -> None:
    """Read-only generated files, .gitattributes, a pre-commit hook and VS Code settings."""
    root = curriculum.find_root()
    for line in protect.enable(root, shared_hooks=shared_hooks):
        console.print(f"[green]✓[/] {escape(line)}", soft_wrap=True)
    console.print("Protection is on. Export still works; 'tito system protect disable' undoes all of it.", soft_wrap=True)


@group.command("disable")
def disable_command() -> None:
    """Undo everything enable changed, exactly."""
    root = curriculum.find_root()
    for line in protect.disable(root):
        console.print(f"[green]✓[/] {escape(line)}", soft_wrap=True)


@group.command("status")
def status_command() -> None:
    """Whether protection is on, and whether every part of it is in place."""
    ok, detail, hint = protect.status(curriculum.find_root())
    if not ok:
        raise TitoError(f"Protection is {detail}.", hint)
    console.print(f"[green]✓[/] Protection is {escape(detail)}.", soft_wrap=True)


@group.command("validate")
def validate_command() -> None:
    """Compare every generated file with the export manifest and name each one edited by hand."""
    root = curriculum.find_root()
    edited = protect.validate(root)
    if edited:
        for generated, source in edited:
            console.print(f"[red]✗ {escape(generated)} was edited by hand; its source is {escape(source)}[/]", soft_wrap=True)
        first = edited[0][1].split("/")[1] if edited[0][1].startswith("modules/") else "NAME"
        raise TitoError(
            f"{len(edited)} generated file(s) differ from what export wrote.",
            f"Move each change into its chapter, then run 'tito module export {first}' "
            "(export overwrites the generated file).",
        )
    count = len(protect.generated_files(root)) - 1  # the manifest itself is not in its own list
    console.print(f"[green]✓[/] All {count} generated files match the export manifest.")


@group.command("check-commit", hidden=True)
def check_commit_command() -> None:
    """Run by the pre-commit hook: refuse a commit whose generated files are out of step with its chapters."""
    problems = protect.check_commit(curriculum.find_root())
    if problems:
        for problem in problems:
            console.print(f"[red]✗ {escape(problem)}[/]", soft_wrap=True)
        raise TitoError(
            "Commit refused: generated files in tinytorch/ differ from what export writes.",
            "Fix as above and commit again (or commit with --no-verify to skip this check).",
        )
