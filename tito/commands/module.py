"""`tito module start|test|complete|reset|export|status`: work through the chapters and build the package."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .. import curriculum, exercise, protect
from ..checkpoints import run_checkpoint
from ..curriculum import Curriculum, Module
from ..errors import TitoError
from ..export import ExportError, export_source, jupytext_missing, out_of_sync
from ..progress import Progress, changed_files, depends_on, package_state
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


_timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=1), default=exercise.DEFAULT_TIMEOUT_SECONDS, show_default=True,
    metavar="SECONDS", help="Stop a test that runs longer than this, and name it.",
)


def _show_test(result: exercise.TestResult) -> None:
    """One line per test as it ends (what a notebook's self-check prints too: tito.failures.result_line)."""
    style = "green" if result.passed else "red"
    against = " [dim](tinytorch/)[/]" if result.package and result.passed else ""
    console.print(f"  [{style}]{escape(result.line)}[/]{against}", soft_wrap=True)


def run_chapter_tests(course: Curriculum, module: Module, timeout: float, package: bool, verbose: bool) -> exercise.TestRun:
    """Run the chapter's tests one by one (live, one line each); raise a one-line TitoError when any fails."""
    run = exercise.run_tests(course.root, module, timeout=timeout, package=package, report=_show_test)
    if verbose and run.output.strip():
        console.out(run.output.rstrip(), highlight=False)
    if not run.passed:
        chapter = rel(course.root, module.dev_file(course.root))
        if run.timed_out:
            hint = (f"Look for a loop that never ends in {chapter}, or give slow tests more time with "
                    f"--timeout SECONDS (now {timeout:g}).")
        else:
            hint = (f"Run 'tito module test {module.folder} --verbose' to see the whole output and the traceback; "
                    f"the code to fix is in {chapter}.")
        raise TitoError(f"{module.folder}: {run.failure}", hint)
    return run


@group.command("test")
@click.argument("name")
@click.option("--verbose", "-v", is_flag=True, help="Show everything the chapter printed, and any traceback.")
@_timeout_option
def test_command(name: str, verbose: bool, timeout: float) -> None:
    """Run the chapter and each of its tests, one line per test; the first failure names the test and the line."""
    course = curriculum.load()
    module = written_module(course, name)
    console.print(f"Testing {module.folder} ({rel(course.root, module.dev_file(course.root))}) ...")
    run = run_chapter_tests(course, module, timeout, package=False, verbose=verbose)
    console.print(f"[green]✓[/] {module.folder}: {run.tests} test(s) passed ({run.seconds:.1f} s).")


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
@click.option("--skip-test", is_flag=True, help="Record completion without running the tests and the checkpoint.")
@click.option("--verbose", "-v", is_flag=True, help="Show everything the chapter printed, and any traceback.")
@_timeout_option
def complete_command(name: str, skip_test: bool, verbose: bool, timeout: float) -> None:
    """Export a module, run its tests against the package and its checkpoint, and record the result."""
    course = curriculum.load()
    Progress.load(course.root)  # a damaged record stops us before any work
    module = written_module(course, name)
    checkpoint = module.checkpoint
    if checkpoint and not skip_test and not checkpoint.path(course.root).is_file():
        raise TitoError(
            f"Checkpoint {checkpoint.id} has no file checkpoints/{checkpoint.filename}, so {module.folder} cannot be checked.",
            f"Restore it with 'git checkout -- checkpoints/', or record completion untested: "
            f"'tito module complete {module.folder} --skip-test'.",
        )
    try:
        export_module(course, module)
    except TitoError:
        _record_failure(course, module, "the chapter did not export")
        raise
    if skip_test:
        _finish(course, module, tested=False)
        return
    for package, what in ((False, "the chapter as written"), (True, "the exported package (tinytorch/)")):
        console.print(f"Running {module.folder}'s tests on {what} ...")
        try:
            run_chapter_tests(course, module, timeout, package=package, verbose=verbose)
        except TitoError as err:
            _record_failure(course, module, err.message)
            raise TitoError(f"{module.folder} is not complete: {err.message.removeprefix(module.folder + ': ')}", err.hint) from None
    result = None
    if checkpoint:
        console.print(f"Running checkpoint {checkpoint.id} ...")
        result = run_checkpoint(course.root, checkpoint)
        for line in result.output.splitlines():
            if line.lstrip().startswith(("✓", "✗")):
                console.print(f"  [{'green' if line.lstrip().startswith('✓') else 'red'}]{escape(line.strip())}[/]", soft_wrap=True)
        state = package_state(course.root, depends_on(course, module))
        with Progress.update(course.root) as progress:
            progress.record(result, state)
            if not result.passed:
                progress.mark_failed(module, result.summary, state)
        if not result.passed:
            failing = sum(line.lstrip().startswith("✗") for line in result.output.splitlines())
            more = f" (and {failing - 1} more failing check(s))" if failing > 1 else ""
            raise TitoError(
                f"Checkpoint {checkpoint.id} failed, so {module.folder} is not complete: {result.summary}{more}",
                f"Run 'tito checkpoint run {checkpoint.number} --verbose' to see each check.",
            )
    _finish(course, module, tested=True)


def _record_failure(course: Curriculum, module: Module, failure: str) -> None:
    with Progress.update(course.root) as progress:
        progress.mark_failed(module, failure, package_state(course.root, depends_on(course, module)))


def _finish(course: Curriculum, module: Module, tested: bool) -> None:
    with Progress.update(course.root) as progress:
        progress.mark_completed(module, tested=tested, package=package_state(course.root, depends_on(course, module)))
    _show_achievement(course, module, tested)


def _show_achievement(course: Curriculum, module: Module, tested: bool) -> None:
    console.print(f"[bold green]✓ {module.folder} ({module.title}) is complete.[/]")
    checkpoint = module.checkpoint
    if checkpoint and tested:
        console.print(f"  Checkpoint {checkpoint.id}: {escape(checkpoint.question)} [bold green]Yes.[/]", soft_wrap=True)
    elif checkpoint:
        console.print(
            f"  [yellow]Checkpoint {checkpoint.id} was not run (--skip-test); "
            f"'tito checkpoint run {checkpoint.number}' runs it.[/]",
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
@click.option("--detailed", is_flag=True, help="Check every module with a record again (its tests when stale, and its checkpoint) and list each check.")
@_timeout_option
def status_command(detailed: bool, timeout: float) -> None:
    """Every module: written, exported in sync, completed (or stale, or failed), and its checkpoint."""
    course = curriculum.load()
    progress = Progress.load(course.root)
    if detailed:
        _recheck(course, progress, timeout)
        progress = Progress.load(course.root)
    table = Table(title="TinyTorch modules", title_justify="left")
    for column in ("Module", "Written", "Export", "Completed", "Checkpoint"):
        table.add_column(column, no_wrap=column != "Checkpoint")
    problems = []
    unreadable = jupytext_missing()
    if unreadable:
        problems.append(unreadable)
    for module in course.modules:
        written = module.is_written(course.root)
        export_state = "[dim]-[/]"
        if written and unreadable:
            export_state = "[yellow]unknown[/]"
        elif written:
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
            _completion(course, progress.attempt(module)),
            _checkpoint_cell(module, progress),
        )
    console.print(table)
    done = sum(progress.completion(m) is not None for m in course.modules)
    console.print(f"{len(course.written_modules())} of {len(course.modules)} modules written, {done} completed.")
    for problem in problems:
        console.print(f"[red]  {escape(problem)}[/]", soft_wrap=True)
    if problems and not unreadable:
        console.print("[yellow]  Run 'tito module export --all' to bring the package in sync.[/]")


def _completion(course: Curriculum, record: dict | None) -> str:
    if record is None:
        return ""
    day = record.get("at", "")[:10]
    if record.get("passed") is False:
        return f"[red]✗ {day} failed[/]"
    if changed_files(course.root, record):
        return f"[yellow]✓ {day} stale: the package changed since[/]"
    return f"[green]✓ {day}[/]" if record.get("tested") else f"[yellow]✓ {day} untested[/]"


def _recheck(course: Curriculum, progress: Progress, timeout: float) -> None:
    """For each module with a record: rerun its tests on the package if the record is stale, then its checkpoint,
    listing each check; the record is updated to what was found."""
    from .checkpoint import check_lines, run_and_record

    for module in course.modules:
        record = progress.attempt(module)
        if record is None or not module.is_written(course.root):
            continue
        console.print(f"[bold]{module.folder}[/]", soft_wrap=True)
        failure = None
        if changed_files(course.root, record) or record.get("passed") is False:
            try:
                run_chapter_tests(course, module, timeout, package=True, verbose=False)
            except TitoError as err:
                failure = err.message
                console.print(f"    [red]✗ {escape(err.message)}[/]", soft_wrap=True)
        checkpoint = module.checkpoint
        if failure is None and checkpoint is not None and checkpoint.path(course.root).is_file():
            result = run_and_record(course, checkpoint)
            for line in check_lines(result) or [result.summary]:
                console.print(f"    [{'green' if line.startswith('✓') else 'red'}]{escape(line)}[/]", soft_wrap=True)
            failure = None if result.passed else f"checkpoint {checkpoint.id}: {result.summary}"
        state = package_state(course.root, depends_on(course, module))
        with Progress.update(course.root) as fresh:
            if failure is not None:
                fresh.mark_failed(module, failure, state)
            else:
                fresh.mark_completed(module, tested=record.get("tested", True), package=state)


def _checkpoint_cell(module: Module, progress: Progress) -> str:
    if module.checkpoint is None:
        return "[dim]-[/]"
    last = progress.last_run(module.checkpoint)
    mark = "" if last is None else (" [green]passed[/]" if last.get("passed") else " [red]failed[/]")
    return f"{module.checkpoint.id}{mark}"
