"""`tito milestone list|run`: the field's history, rebuilt with the learner's own tinytorch."""

from __future__ import annotations

import click
from rich.markup import escape

from .. import curriculum
from .. import milestones as ms
from ..errors import TitoError
from ..progress import Progress, changed_files, package_state
from ..ui import console, rel


@click.group("milestone")
def group() -> None:
    """Reproduce historical results (1958 to 2018) with your own tinytorch."""


def _last_run(course, progress: Progress, milestone: ms.Milestone) -> str:
    last = progress.last_milestone(milestone.year)
    if last is None:
        return ""
    mark = "[green]passed[/]" if last.get("passed") else "[red]failed[/]"
    text = f"{mark} {last['at'][:16].replace('T', ' ')}: {escape(last.get('summary', ''))}"
    if changed_files(course.root, last):
        text += " [yellow](your package changed since)[/]"
    return text


@group.command("list")
def list_command() -> None:
    """Each milestone: its year, what it recreates, the chapters it needs and whether your package can run it."""
    course = curriculum.load()
    milestones = ms.discover(course.root)
    if not milestones:
        raise TitoError(f"There are no milestone scripts in {ms.FOLDER}/.",
                        f"Restore them with 'git checkout -- {ms.FOLDER}/'.")
    progress = Progress.load(course.root)
    ready = 0
    for m in milestones:
        blocker = ms.blocker(course, m)
        ready += blocker is None
        state = "[green]ready[/]" if blocker is None else f"[yellow]not yet: {escape(blocker)}[/]"
        needs = " ".join(course.module(f).number for f in m.needs)
        console.print(f"[bold]{m.key}[/]  [bold]{escape(m.title)}[/]: {escape(m.recreates)}", soft_wrap=True)
        console.print(f"      needs chapters {needs}; passes when {escape(m.passes_when)}; budget {escape(m.budget)}; "
                      f"{state}", soft_wrap=True)
        last = _last_run(course, progress, m)
        if last:
            console.print(f"      your last run: {last}", soft_wrap=True)
    console.print(f"{ready} of {len(milestones)} milestones can run on your package. "
                  "Run one with 'tito milestone run YEAR'.")


@group.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("year")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--write-book", is_flag=True,
              help=f"Also record the run for the book's milestone pages ({ms.RESULTS.as_posix()}/YEAR.json).")
def run_command(year: str, script_args: tuple[str, ...], write_book: bool) -> None:
    """Run milestone YEAR on your tinytorch; pass or fail against its threshold, and record the result.

    Options after YEAR that tito does not know go to the script (for example --seed 1).
    """
    course = curriculum.load()
    milestone = ms.find(course.root, year)
    blocker = ms.blocker(course, milestone)
    if blocker:
        raise TitoError(f"Milestone {milestone.year} cannot run yet: {blocker}.",
                        f"'tito milestone list' shows what each milestone needs.")
    console.print(f"[bold]{milestone.year}: {escape(milestone.title)}[/] ({escape(milestone.recreates)}); "
                  f"passes when {escape(milestone.passes_when)}; budget {escape(milestone.budget)}", soft_wrap=True)
    console.print(f"[dim]$ {escape(ms.command_line(milestone, script_args))}[/]", soft_wrap=True)
    with console.status(f"running milestone {milestone.year} on your tinytorch ...", spinner="dots"):
        outcome = ms.run(course, milestone, script_args,
                         echo=lambda line: line.startswith(("PASSED: ", "FAILED: "))
                         or console.print(f"  {escape(line)}", soft_wrap=True, highlight=False))
    state = package_state(course.root, [course.module(f) for f in milestone.needs])
    with Progress.update(course.root) as progress:
        progress.record_milestone(milestone.year, outcome, state)
    if write_book:
        path = ms.write_book_record(course.root, milestone, ms.book_record(milestone, outcome, script_args))
        console.print(f"recorded for the book in {rel(course.root, path)}")
    seconds = outcome.get("seconds")
    took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
    if outcome["passed"]:
        console.print(f"[bold green]✓ PASSED {milestone.year}[/]: {escape(outcome['summary'])}{took}", soft_wrap=True)
        return
    needs = " ".join(milestone.needs)
    raise TitoError(f"Milestone {milestone.year} failed: {outcome['summary']}{took}",
                    f"Test the chapters it needs (tito module test NAME for each of {needs}), fix, then run it again.")
