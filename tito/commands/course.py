"""`tito course student-repo|release-solutions`: the repository students get the course from.

Students clone a repository of their own rather than the course's: it holds every
chapter as an exercise after the ones whose solutions are released, and a package
built from exactly those chapters (tito/student_repo.py).
"""

from __future__ import annotations

import click
from rich.markup import escape

from .. import curriculum
from ..ui import console, note
from .module import written_module


@click.group("course")
def group() -> None:
    """Make and update the student repository (the course without the answers)."""


@group.command("student-repo")
@click.argument("directory", metavar="DIR")
@click.option("--solutions-through", "through", required=True, metavar="NN",
              help="The last chapter whose solution students get (e.g. 02); every later chapter is an exercise.")
def student_repo_command(directory: str, through: str) -> None:
    """Write a fresh student repository (its own git history) into DIR, a new or empty folder."""
    from .. import student_repo

    course = curriculum.load()
    module = written_module(course, through)
    made = student_repo.write(course, directory, module)
    console.print(f"[green]✓[/] {escape(str(made.target))} (commit {made.commit}): "
                  f"{len(made.complete)} complete chapter(s) ({made.complete[0]} to {made.complete[-1]}), "
                  f"{len(made.exercises)} exercise(s), {made.package_files} package file(s); "
                  f"no solution line of a later chapter in it.", soft_wrap=True)
    if made.held_back:
        note(f"held back until their chapters' solutions are released (they hold reference code): "
             f"{', '.join(made.held_back)}; students finish those chapters with 'tito module complete NN --skip-test'.")
    console.print(f"Push it where students clone from, e.g. 'cd {escape(str(made.target))} && "
                  "git remote add origin URL && git push -u origin HEAD'.", soft_wrap=True)


@group.command("release-solutions")
@click.argument("directory", metavar="DIR")
@click.option("--through", required=True, metavar="NN", help="The last chapter whose solution to release.")
def release_solutions_command(directory: str, through: str) -> None:
    """Release the complete chapters up to NN into a student repository, as one commit."""
    from .. import student_repo

    course = curriculum.load()
    module = written_module(course, through)
    done = student_repo.release(course, directory, module)
    console.print(f"[green]✓[/] {escape(str(done.target))} (commit {done.commit}): solutions of "
                  f"{', '.join(done.chapters)}. Push it; students commit their work, then 'git pull'.", soft_wrap=True)
