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
@click.option("--timeout", type=click.IntRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="Per-cell limit; a cell that runs longer is stopped and scores nothing.")
@click.option("--budget", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Time one submission may run in all; cells after it are not run "
                   "(default: five cell limits).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Submissions graded at the same time.")
@_course_option
def autograde_command(name: str, student: str | None, timeout: int, budget: float | None, jobs: int,
                      course_path: str | None) -> None:
    """Run the tests of every submission (hidden ones restored), each in its own throwaway copy of the
    course folder, and record the scores; the gradebook is backed up first."""
    tools = _nbgrader()
    from .. import autograde as grading

    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    grading.check_course(folder, module.folder)
    submitted = grading.submissions(folder, module.folder)
    if student is not None:
        if student not in submitted:
            others = f" Submissions there: {', '.join(submitted)}." if submitted else ""
            raise TitoError(f"{student} has no submission of {module.folder} in {folder / 'submitted'}.{others}",
                            f"Collect it first ('tito nbgrader collect {module.folder}'), or copy it into "
                            f"submitted/{student}/{module.folder}/.")
        submitted = [student]
    if not submitted:
        raise TitoError(
            f"No submission of {module.folder} in {folder / 'submitted'}.",
            f"Collect them first ('tito nbgrader collect {module.folder}'), or copy each into "
            f"submitted/<student>/{module.folder}/.",
        )
    budget = budget or grading.BUDGET_CELLS * timeout
    backup = grading.backup_gradebook(folder)
    console.print(f"Gradebook backed up to {escape(str(backup))}.", soft_wrap=True)
    console.print(f"Grading {len(submitted)} submission(s) of {module.folder}, each in a throwaway copy "
                  f"(cells stop after {timeout} s, a submission after {budget:g} s).", soft_wrap=True)

    def report(outcome):
        mark = "[green]✓[/]" if outcome.graded else "[red]✗[/]"
        console.print(f"  {mark} {escape(outcome.student)} ({outcome.seconds:.0f} s)")

    outcomes = grading.autograde(course.root, folder, module.folder, submitted, timeout, budget, jobs, report)
    failed = [o for o in outcomes if not o.graded]
    scores = {s.student: s for s in tools.scores(folder, module.folder)}
    table = Table(title=f"{module.folder}: autograded scores", title_justify="left")
    for column in ("Student", "Score", "Out of", "Note"):
        table.add_column(column)
    for outcome in sorted(outcomes, key=lambda o: o.student):
        score = scores.get(outcome.student)
        if outcome.graded and score:
            table.add_row(escape(outcome.student), f"{score.score:g}", f"{score.max_score:g}",
                          escape("; ".join(outcome.notes)))
        else:
            kept = f" (the gradebook keeps its earlier score, {score.score:g})" if score else ""
            table.add_row(escape(outcome.student), "-", f"{score.max_score:g}" if score else "-",
                          escape(f"not graded{kept}"))
    console.print(table)
    metadata = tools.check_metadata(module.dev_file(course.root), course.root)
    if metadata.answer_points:
        keys = tools.answer_key_path(folder, module)
        where = escape(str(keys)) if keys.is_file() else escape(str(folder / "source" / module.folder / tools.notebook_name(module)))
        console.print(f"Each submission also has {metadata.answer_points:g} point(s) of written answers "
                      f"({len(metadata.answer_cells)} answer cell(s)) to grade by hand in nbgrader's formgrader; "
                      f"the answer keys and rubrics are in {where}.", soft_wrap=True)
    if failed:
        console.print(f"[red]Not graded ({len(failed)}):[/]")
        for outcome in failed:
            console.print(f"  [red]✗[/] {escape(outcome.student)}: {escape(outcome.problem)}", soft_wrap=True)
        raise TitoError(f"{len(failed)} of {len(outcomes)} submission(s) of {module.folder} could not be graded; "
                        "the others' scores are recorded.",
                        f"Fix what each line above says, then grade just that student: "
                        f"'tito nbgrader autograde {module.folder} --student ID'.")


@group.command("feedback")
@click.argument("name")
@_course_option
@_exchange_option
@click.option("--release", "release_it", is_flag=True, help="Also put the feedback into the exchange for students to fetch.")
def feedback_command(name: str, course_path: str | None, exchange: str | None, release_it: bool) -> None:
    """Write an HTML feedback report for every autograded submission (and optionally release it);
    a submission that was not graded is skipped and named."""
    tools = _nbgrader()
    from .. import autograde as grading

    course = curriculum.load()
    module = written_module(course, name)
    folder = tools.course_dir(course.root, course_path)
    grading.check_course(folder, module.folder)
    in_gradebook = grading.graded_students(folder, module.folder)
    autograded = {p.parent.name for p in (folder / "autograded").glob(f"*/{module.folder}") if any(p.glob("*.ipynb"))}
    skipped = {s: "not autograded yet (or its grading failed)" for s in grading.submissions(folder, module.folder)
               if s not in autograded}
    skipped |= {s: "autograded, but the gradebook has no scores for it (autograde it again)"
                for s in autograded - in_gradebook}
    ready = sorted(autograded & in_gradebook)
    if not ready:
        raise TitoError(f"No autograded submission of {module.folder} to write feedback for.",
                        f"Run 'tito nbgrader autograde {module.folder}' first.")
    exclude = [f"--CourseDirectory.student_id_exclude={','.join(sorted(skipped))}"] if skipped else []
    try:
        tools.run(course.root, folder, "generate_feedback", module.folder, "--force", *exclude)
    except TitoError:
        # One report that nbgrader cannot write must not cost the others theirs: one student at a time.
        for student in ready:
            try:
                tools.run(course.root, folder, "generate_feedback", module.folder, "--force", "--student", student)
            except TitoError as err:
                skipped[student] = err.message
    written = [s for s in ready if s not in skipped]
    console.print(f"[green]✓[/] {len(written)} feedback report(s) in {escape(str(folder / 'feedback'))}: "
                  f"{escape(', '.join(written)) or 'none'}.", soft_wrap=True)
    for student, why in sorted(skipped.items()):
        note(f"no feedback for {student}: {why}")
    if release_it and written:
        tools.run(course.root, folder, "release_feedback", module.folder, *tools.exchange_args(exchange), *exclude)
        console.print(f"[green]✓[/] Feedback released; students fetch it with "
                      f"'nbgrader fetch_feedback {module.folder} --course {tools.course_id(folder)}'.", soft_wrap=True)
    failed = [s for s in ready if s in skipped]
    if failed:
        raise TitoError(f"Feedback could not be written for {', '.join(failed)}.",
                        f"Run it for one student to see nbgrader's whole log: cd {folder} && "
                        f"nbgrader generate_feedback {module.folder} --student {failed[0]}")
