"""`tito nbgrader annotate|generate|release|collect|autograde|feedback`: the course with NBGrader.

Each step runs nbgrader's own command in the course folder (default `course/`,
git-ignored); book/instructor-guide.md shows the same steps with nbgrader's
commands, for a course run on JupyterHub or from an LMS.
"""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .. import curriculum
from ..errors import TitoError
from ..ui import console, note
from .module import written_module

_course_option = click.option(
    "--course", "course_path", metavar="DIR", help="The instructor's course folder (default: course/ in the checkout)."
)
_exchange_option = click.option(
    "--exchange", metavar="DIR",
    help="nbgrader's exchange folder shared with the students (default: nbgrader's setting, /srv/nbgrader/exchange).",
)


def _nbgrader():
    """tito/nbgrader.py, which needs nbgrader (the project's dev extra)."""
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise TitoError("nbgrader is not installed.", "Run: pip install -e \".[dev]\" (or pip install 'nbgrader>=0.9').") from None
    from .. import nbgrader as course_tools

    return course_tools


@click.group("nbgrader")
def group() -> None:
    """Release chapters to students and grade their work with NBGrader."""


@group.command("annotate")
@click.argument("name")
@click.option("--points", default=1, show_default=True, help="Points for each test cell that has none yet.")
@click.option("--solution", "solutions", multiple=True, metavar="FUNCTION",
              help="Mark this function's body (after its docstring) as a solution region; repeat it. "
                   "Methods are named Class.method.")
def annotate_command(name: str, points: int, solutions: tuple[str, ...]) -> None:
    """Add NBGrader metadata to a chapter's cell headers (the mechanical part of preparing it)."""
    from ..annotate import AnnotateError, annotate

    course = curriculum.load()
    module = written_module(course, name)
    try:
        result = annotate(module.dev_file(course.root), points, list(solutions))
    except AnnotateError as err:
        raise TitoError(f"{module.folder}: {err}; nothing was changed.", "Check the names with the chapter open.") from None
    chapter = module.dev_file(course.root).relative_to(course.root).as_posix()
    if not result.changed:
        console.print(f"[green]✓[/] {chapter} already carries NBGrader metadata on every cell that needs it.", soft_wrap=True)
    else:
        console.print(f"[green]✓[/] {chapter}: {result.describe()}.", soft_wrap=True)
    if result.exported_without_regions:
        note(f"{len(result.exported_without_regions)} exported cell(s) mark no solution region, so students get them "
             f"complete: {', '.join(result.exported_without_regions)}. Wrap the code to write in "
             "### BEGIN SOLUTION / ### END SOLUTION, then run this again.")


@group.command("generate")
@click.argument("name", required=False)
@click.option("--all", "generate_all", is_flag=True, help="Every written module that carries NBGrader metadata.")
@_course_option
def generate_command(name: str | None, generate_all: bool, course_path: str | None) -> None:
    """Build the course folder's source and student release of a chapter (solutions stubbed, hidden tests removed)."""
    if bool(name) == generate_all:
        raise TitoError("Name one module or pass --all.", "For example: 'tito nbgrader generate 02_tensor'.")
    tools = _nbgrader()
    course = curriculum.load()
    folder = tools.course_dir(course.root, course_path)
    if generate_all:
        modules = [m for m in course.written_modules() if tools.has_metadata(m.dev_file(course.root))]
        skipped = [m.folder for m in course.written_modules() if m not in modules]
        if skipped:
            note(f"no NBGrader metadata yet, so not generated: {', '.join(skipped)}")
        if not modules:
            raise TitoError("No written module carries NBGrader metadata yet.", "book/instructor-guide.md shows how to add it.")
    else:
        modules = [written_module(course, name)]
    if tools.prepare_course(folder):
        console.print(f"Created {folder / tools.CONFIG_FILE}.")
    for module in modules:
        done = tools.generate(course.root, folder, module)
        meta = done.metadata
        console.print(
            f"[green]✓[/] {module.folder} → {escape(str(done.release.relative_to(folder.parent)))}: "
            f"{meta.regions} solution region(s) stubbed, {len(meta.graded_cells)} graded test cell(s) "
            f"worth {meta.points:g} point(s), {meta.hidden_regions} hidden test region(s) removed",
            soft_wrap=True,
        )


@group.command("release")
@click.argument("name")
@_course_option
@_exchange_option
@click.option("--force", is_flag=True, help="Release again over an earlier release.")
def release_command(name: str, course_path: str | None, exchange: str | None, force: bool) -> None:
    """Put a generated release into nbgrader's exchange, where students fetch it."""
    tools = _nbgrader()
    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    release = folder / "release" / module.folder
    if not release.is_dir():
        raise TitoError(f"{module.folder} has no release in {folder} yet.", f"Run 'tito nbgrader generate {module.folder}' first.")
    tools.run(course.root, folder, "release_assignment", module.folder, *tools.exchange_args(exchange), *(["--force"] if force else []))
    console.print(f"[green]✓[/] {module.folder} released; students fetch it with "
                  f"'nbgrader fetch_assignment {module.folder} --course {tools.course_id(folder)}'.", soft_wrap=True)


@group.command("collect")
@click.argument("name")
@_course_option
@_exchange_option
def collect_command(name: str, course_path: str | None, exchange: str | None) -> None:
    """Copy the students' submissions from the exchange into the course folder's submitted/."""
    tools = _nbgrader()
    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    tools.run(course.root, folder, "collect", module.folder, "--update", *tools.exchange_args(exchange))
    submitted = sorted(p.parent.name for p in (folder / "submitted").glob(f"*/{module.folder}"))
    console.print(f"[green]✓[/] {len(submitted)} submission(s) of {module.folder} in {folder / 'submitted'}: "
                  f"{', '.join(submitted) or 'none'}", soft_wrap=True)


@group.command("autograde")
@click.argument("name")
@click.option("--student", metavar="ID", help="Grade one student's submission (default: every submission).")
@_course_option
def autograde_command(name: str, student: str | None, course_path: str | None) -> None:
    """Run the tests of every submission (hidden ones restored) and record the scores."""
    tools = _nbgrader()
    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    if not any((folder / "submitted").glob(f"{student or '*'}/{module.folder}")):
        raise TitoError(
            f"No submission of {module.folder} in {folder / 'submitted'}" + (f" from {student}." if student else "."),
            f"Collect them first ('tito nbgrader collect {module.folder}'), or copy each into "
            f"submitted/<student>/{module.folder}/.",
        )
    tools.run(course.root, folder, "autograde", module.folder, "--force", *(["--student", student] if student else []))
    table = Table(title=f"{module.folder}: autograded scores", title_justify="left")
    for column in ("Student", "Score", "Out of"):
        table.add_column(column)
    for score in tools.scores(folder, module.folder):
        if student is None or score.student == student:
            table.add_row(escape(score.student), f"{score.score:g}", f"{score.max_score:g}")
    console.print(table)


@group.command("feedback")
@click.argument("name")
@_course_option
@_exchange_option
@click.option("--release", "release_it", is_flag=True, help="Also put the feedback into the exchange for students to fetch.")
def feedback_command(name: str, course_path: str | None, exchange: str | None, release_it: bool) -> None:
    """Write an HTML feedback report for every autograded submission (and optionally release it)."""
    tools = _nbgrader()
    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    tools.run(course.root, folder, "generate_feedback", module.folder, "--force")
    reports = sorted(folder.glob(f"feedback/*/{module.folder}/*.html"))
    console.print(f"[green]✓[/] {len(reports)} feedback report(s) in {folder / 'feedback'}.")
    if release_it:
        tools.run(course.root, folder, "release_feedback", module.folder, *tools.exchange_args(exchange))
        console.print(f"[green]✓[/] Feedback released; students fetch it with "
                      f"'nbgrader fetch_feedback {module.folder} --course {tools.course_id(folder)}'.", soft_wrap=True)
