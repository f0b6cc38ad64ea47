"""`tito module start|test|complete|reset|export|status`: work through the chapters and build the package."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .. import curriculum, exercise, protect
from ..checkpoints import run_checkpoint
from ..curriculum import Curriculum, Module
from ..errors import TitoError
from ..export import ExportError, export_source, out_of_sync
from ..progress import Progress
from ..ui import console, rel


@click.group("module")
def group() -> None:
    """Start, test, complete, reset, export and list the course's modules."""


def written_module(course: Curriculum, name: str) -> Module:
    """The module called `name`, which must have its chapter file."""
    module = course.module(name)
    if not module.is_written(course.root):
        written = ", ".join(m.folder for m in course.written_modules()) or "none yet"
        raise TitoError(
            f"Module {module.folder} is not written yet: {rel(course.root, module.dev_file(course.root))} does not exist.",
            f"Written modules: {written}.",
        )
    return module


def export_module(course: Curriculum, module: Module) -> None:
    """Export one chapter and print one line saying what changed."""
    try:
        result = export_source(course.root, module.dev_file(course.root))
    except ExportError as err:
        raise TitoError(
            err.message,
            err.hint or f"Fix {rel(course.root, module.dev_file(course.root))}, then run 'tito module export {module.folder}' again.",
        ) from None
    parts = [f"{rel(course.root, p)} (updated)" for p in result.written]
    parts += [f"{rel(course.root, p)} (unchanged)" for p in result.unchanged]
    parts += [f"{rel(course.root, p)} (removed)" for p in result.removed]
    console.print(f"[green]✓[/] {module.folder} → " + ", ".join(sorted(parts)))
    protect.refresh(course.root)  # a newly exported file is protected like the rest, when protection is on


@group.command("start")
@click.argument("name")
def start_command(name: str) -> None:
    """Turn a chapter into your exercise: its solutions become stubs for you to write."""
    course = curriculum.load()
    module = written_module(course, name)
    stubs = exercise.start(course.root, module)
    chapter = rel(course.root, module.dev_file(course.root))
    saved = rel(course.root, exercise.saved_original(course.root, module))
    console.print(f"[green]✓[/] {module.folder} is now your exercise: {chapter} has {stubs} stub(s) to implement.", soft_wrap=True)
    console.print(f"  The complete chapter is saved in {saved}.", soft_wrap=True)
    console.print(
        f"  While you work: 'tito module test {module.folder}'. When it passes: 'tito module complete {module.folder}'. "
        f"To go back to the complete chapter: 'tito module reset {module.folder}'.",
        soft_wrap=True,
    )


@group.command("reset")
@click.argument("name")
def reset_command(name: str) -> None:
    """Restore the complete chapter (your version is backed up first) and export it."""
    course = curriculum.load()
    module = written_module(course, name)
    result = exercise.reset(course.root, module)
    chapter = rel(course.root, module.dev_file(course.root))
    console.print(f"[green]✓[/] {chapter} is the complete chapter again.", soft_wrap=True)
    if result.backup is not None:
        console.print(f"  Your version is saved in {rel(course.root, result.backup)}.", soft_wrap=True)
    export_module(course, module)


@group.command("test")
@click.argument("name")
@click.option("--verbose", "-v", is_flag=True, help="Show everything the chapter printed.")
def test_command(name: str, verbose: bool) -> None:
    """Run a chapter as a script: its `__main__` block runs all of its tests."""
    course = curriculum.load()
    module = written_module(course, name)
    run = exercise.run_tests(course.root, module)
    if verbose and run.output.strip():
        console.out(run.output.rstrip(), highlight=False)
    if not run.passed:
        chapter = rel(course.root, module.dev_file(course.root))
        raise TitoError(
            f"{module.folder}: the chapter's tests failed after {run.seconds:.1f} s: {run.failure}",
            f"Run 'tito module test {module.folder} --verbose' (or: cd modules/{module.folder} && python {module.dev_file(course.root).name}) "
            f"to see the whole output; the code to fix is in {chapter}.",
        )
    console.print(f"[green]✓[/] {module.folder}: the chapter ran as a script and its tests passed ({run.seconds:.1f} s).")


@group.command("export")
@click.argument("name", required=False)
@click.option("--all", "export_all", is_flag=True, help="Export every written module.")
def export_command(name: str | None, export_all: bool) -> None:
    """Export a chapter's `#| export` cells into the tinytorch package."""
    if bool(name) == export_all:
        raise TitoError(
            "Name one module or pass --all.",
            "For example: 'tito module export 02_tensor' or 'tito module export --all'.",
        )
    course = curriculum.load()
    modules = course.written_modules() if export_all else [written_module(course, name)]
    if not modules:
        raise TitoError("No module is written yet, so there is nothing to export.", "Run 'tito module status'.")
    for module in modules:
        export_module(course, module)


@group.command("complete")
@click.argument("name")
@click.option("--skip-test", is_flag=True, help="Record completion without running the module's checkpoint.")
def complete_command(name: str, skip_test: bool) -> None:
    """Export a module, run its checkpoint, and record it as completed."""
    course = curriculum.load()
    progress = Progress.load(course.root)  # a damaged record stops us before any work
    module = written_module(course, name)
    checkpoint = module.checkpoint
    if checkpoint and not skip_test and not checkpoint.path(course.root).is_file():
        raise TitoError(
            f"Checkpoint {checkpoint.id} has no file checkpoints/{checkpoint.filename}, so {module.folder} cannot be checked.",
            f"Restore it with 'git checkout -- checkpoints/', or record completion untested: "
            f"'tito module complete {module.folder} --skip-test'.",
        )
    export_module(course, module)
    result = None
    if checkpoint and not skip_test:
        console.print(f"Running checkpoint {checkpoint.id} ...")
        result = run_checkpoint(course.root, checkpoint)
        progress.record(result)
        progress.save()
        if not result.passed:
            failing = sum(line.lstrip().startswith("✗") for line in result.output.splitlines())
            more = f" (and {failing - 1} more failing check(s))" if failing > 1 else ""
            raise TitoError(
                f"Checkpoint {checkpoint.id} failed, so {module.folder} is not complete: {result.summary}{more}",
                f"Run 'tito checkpoint run {checkpoint.number} --verbose' to see each check.",
            )
    progress.mark_completed(module, tested=result is not None)
    progress.save()
    _show_achievement(course, module, result is not None)


def _show_achievement(course: Curriculum, module: Module, tested: bool) -> None:
    console.print(f"[bold green]✓ {module.folder} ({module.title}) is complete.[/]")
    checkpoint = module.checkpoint
    if checkpoint and tested:
        console.print(f"  Checkpoint {checkpoint.id}: {escape(checkpoint.question)} [bold green]Yes.[/]", soft_wrap=True)
    elif checkpoint:
        console.print(
            f"  [yellow]Checkpoint {checkpoint.id} was not run (--skip-test); "
            f"'tito checkpoint test {checkpoint.number}' runs it.[/]",
            soft_wrap=True,
        )
    else:
        console.print("  This module has no checkpoint of its own; the next one builds on it.")
    following = course.next_module(module)
    if following is None:
        console.print("  That was the last module: you have built TinyTorch from scratch.")
    else:
        later = "" if following.is_written(course.root) else " (not written yet)"
        console.print(f"  Next: {following.folder} ({escape(following.title)}){later}: {escape(following.builds)}.", soft_wrap=True)


@group.command("status")
def status_command() -> None:
    """Every module: written, exported in sync, completed, and its checkpoint."""
    course = curriculum.load()
    progress = Progress.load(course.root)
    table = Table(title="TinyTorch modules", title_justify="left")
    for column in ("Module", "Written", "Export", "Completed", "Checkpoint"):
        table.add_column(column, no_wrap=column != "Checkpoint")
    problems = []
    for module in course.modules:
        written = module.is_written(course.root)
        export_state = "[dim]-[/]"
        if written:
            found = out_of_sync(course.root, [module.dev_file(course.root)])
            problems += found
            export_state = "[red]out of sync[/]" if found else "[green]in sync[/]"
        written_cell = "[green]yes[/]" if written else "[dim]no[/]"
        if written and exercise.is_started(course.root, module):
            written_cell = "[cyan]your exercise[/]"
        table.add_row(
            module.folder,
            written_cell,
            export_state,
            _completion(progress.completion(module)),
            _checkpoint_cell(module, progress),
        )
    console.print(table)
    done = sum(progress.completion(m) is not None for m in course.modules)
    console.print(f"{len(course.written_modules())} of {len(course.modules)} modules written, {done} completed.")
    for problem in problems:
        console.print(f"[red]  {escape(problem)}[/]", soft_wrap=True)
    if problems:
        console.print("[yellow]  Run 'tito module export --all' to bring the package in sync.[/]")


def _completion(record: dict | None) -> str:
    if record is None:
        return ""
    day = record.get("at", "")[:10]
    return f"[green]✓ {day}[/]" if record.get("tested") else f"[yellow]✓ {day} untested[/]"


def _checkpoint_cell(module: Module, progress: Progress) -> str:
    if module.checkpoint is None:
        return "[dim]-[/]"
    last = progress.last_run(module.checkpoint)
    mark = "" if last is None else (" [green]passed[/]" if last.get("passed") else " [red]failed[/]")
    return f"{module.checkpoint.id}{mark}"
