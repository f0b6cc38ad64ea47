"""`tito checkpoint status|timeline|run`: the capability checkpoints."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .. import curriculum
from ..checkpoints import CheckpointResult, run_checkpoint
from ..curriculum import Checkpoint, Curriculum
from ..errors import TitoError
from ..export import jupytext_missing, out_of_sync
from ..progress import Progress, changed_files, depends_on, package_state
from ..ui import console, note, rel

# state -> (marker, style)
_LOOK = {
    "passed": ("●", "green"),
    "failed": ("✗", "red"),
    "stale": ("◐", "yellow"),
    "not run": ("○", "yellow"),
    "no file": ("◌", "dim"),
    "not written": ("·", "dim"),
}


@click.group("checkpoint")
def group() -> None:
    """Run the capability checkpoints and see how far you have come."""


def _state(course: Curriculum, progress: Progress, checkpoint: Checkpoint) -> str:
    """passed/failed: its last run, made on the package as it is now; stale: the package changed since."""
    last = progress.last_run(checkpoint)
    if last is not None:
        if changed_files(course.root, last):
            return "stale"
        return "passed" if last.get("passed") else "failed"
    if not course.module_of(checkpoint).is_written(course.root):
        return "not written"
    if not checkpoint.path(course.root).is_file():
        return "no file"
    return "not run"


def _styled(state: str) -> str:
    marker, style = _LOOK[state]
    return f"[{style}]{marker} {state}[/]"


def check_lines(result: CheckpointResult) -> list[str]:
    """The harness's line for each check: `✓ what it checks (12 ms)` or `✗ what it checks -- what went wrong`."""
    return [line.strip() for line in result.output.splitlines() if line.lstrip().startswith(("✓", "✗"))]


def run_and_record(course: Curriculum, checkpoint: Checkpoint, verbose: bool = False) -> CheckpointResult:
    """Run a checkpoint and record its result with the package state it ran on."""
    result = run_checkpoint(course.root, checkpoint, verbose=verbose)
    state = package_state(course.root, depends_on(course, course.module_of(checkpoint)))
    with Progress.update(course.root) as progress:
        progress.record(result, state)
    return result


@group.command("status")
@click.option("--detailed", is_flag=True, help="Run every written chapter's checkpoint again and list each of its checks.")
def status_command(detailed: bool) -> None:
    """Each checkpoint, its module and its last result (stale when the package changed since)."""
    course = curriculum.load()
    progress = Progress.load(course.root)
    if detailed:
        for checkpoint in course.checkpoints:
            module = course.module_of(checkpoint)
            if not module.is_written(course.root) or not checkpoint.path(course.root).is_file():
                continue
            result = run_and_record(course, checkpoint)
            mark = "[green]● passed[/]" if result.passed else "[red]✗ failed[/]"
            console.print(f"[bold]{checkpoint.id}[/] {mark} ({result.seconds:.1f} s): {escape(checkpoint.question)}", soft_wrap=True)
            lines = check_lines(result) or [result.summary]
            for line in lines:
                style = "green" if line.startswith("✓") else "red"
                console.print(f"    [{style}]{escape(line)}[/]", soft_wrap=True)
        progress = Progress.load(course.root)
    table = Table(title="TinyTorch checkpoints", title_justify="left")
    for column in ("Checkpoint", "Module", "State", "Last run"):
        table.add_column(column, no_wrap=column != "Last run")
    for checkpoint in course.checkpoints:
        state = _state(course, progress, checkpoint)
        last = progress.last_run(checkpoint)
        ran = ""
        if last is not None:
            ran = f"{last['at'][:16].replace('T', ' ')}: {escape(last.get('summary', ''))}"
            if state == "stale":
                ran += f" [yellow](since then {escape(', '.join(changed_files(course.root, last)))} changed; --detailed runs it again)[/]"
        table.add_row(f"{checkpoint.number:02d}", checkpoint.module_folder, _styled(state), ran)
    console.print(table)
    passed = sum(_state(course, progress, c) == "passed" for c in course.checkpoints)
    console.print(f"{passed} of {len(course.checkpoints)} checkpoints passed.")


@group.command("timeline")
@click.option("--horizontal", is_flag=True, help="One line of markers instead of one row per checkpoint.")
def timeline_command(horizontal: bool) -> None:
    """A progress line through all the checkpoints."""
    course = curriculum.load()
    progress = Progress.load(course.root)
    states = [(c, _state(course, progress, c)) for c in course.checkpoints]
    if horizontal:
        console.print(" ".join(f"{c.number:02d}" for c, _ in states))
        console.print("━━".join(f"[{_LOOK[s][1]}]{_LOOK[s][0]}[/]" for _, s in states))  # one marker under each number
    else:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column()
        for checkpoint, state in states:
            marker, style = _LOOK[state]
            table.add_row(f"[{style}]{marker}[/]", f"[{style}]{checkpoint.id}[/]", escape(checkpoint.question))
        console.print(table)
    passed = sum(s == "passed" for _, s in states)
    console.print(f"{passed}/{len(states)} passed   " + "  ".join(_styled(s) for s in _LOOK))
    upcoming = next((c for c, s in states if s != "passed"), None)
    if upcoming is not None:
        console.print(f"Next: checkpoint {upcoming.id} ({upcoming.module_folder}): {escape(upcoming.question)}", soft_wrap=True)


def _runnable(course: Curriculum, number: str) -> Checkpoint:
    checkpoint = course.checkpoint(number)
    module = course.module_of(checkpoint)
    if not module.is_written(course.root):
        raise TitoError(
            f"Checkpoint {checkpoint.id} tests {module.folder}, which is not written yet.",
            "Run 'tito checkpoint status' to see which checkpoints can run.",
        )
    unreadable = jupytext_missing()
    stale = [] if unreadable else out_of_sync(course.root, [m.dev_file(course.root) for m in course.written_modules()])
    if unreadable:
        note(f"cannot tell whether the package matches the chapters: {unreadable}")
    if stale:
        note(f"the package is out of sync with the chapters ({stale[0]}); run 'tito module export --all' first.")
    return checkpoint


@group.command("run")
@click.argument("number")
@click.option("--verbose", is_flag=True, help="Show the traceback of each failing check.")
def run_command(number: str, verbose: bool) -> None:
    """Run one checkpoint: each check's line, then whether it passed (recorded for status and timeline)."""
    course = curriculum.load()
    checkpoint = _runnable(course, number)
    Progress.load(course.root)  # a damaged record stops us before the run
    console.print(f"[bold]Checkpoint {checkpoint.number:02d}[/] ({checkpoint.module_folder}): {escape(checkpoint.question)}", soft_wrap=True)
    result = run_and_record(course, checkpoint, verbose=verbose)
    console.print(result.output.rstrip(), markup=False, soft_wrap=True)
    if not result.passed:
        module = course.module_of(checkpoint)
        hint = (
            f"Fix {rel(course.root, module.dev_file(course.root))}, then run 'tito module complete {module.folder}'."
            if verbose
            else f"Run 'tito checkpoint run {checkpoint.number} --verbose' to see each failing check's traceback."
        )
        raise TitoError(f"Checkpoint {checkpoint.id} failed: {result.summary}", hint)
    console.print(f"[green]✓ Checkpoint {checkpoint.id} passed[/] in {result.seconds:.1f} s: {result.summary}", soft_wrap=True)
