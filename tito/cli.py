"""The `tito` command line.

Each command group lives in tito/commands/ and calls the curriculum, the
exporter and the checkpoint runner; this file only wires the groups together
and turns every TitoError into one red line, a hint and exit status 1.
"""

from __future__ import annotations

import os
import sys

import click

from . import __version__
from .commands import book, checkpoint, course, milestone, module, nbgrader, protect, system
from .errors import TitoError
from .ui import show_error


def as_tito_error(err: Exception) -> TitoError:
    """Any error as one line and a hint: a missing package, a file tito cannot write, or anything unexpected."""
    if isinstance(err, TitoError):
        return err
    if isinstance(err, ModuleNotFoundError) and err.name:
        top = err.name.split(".")[0]
        return TitoError(f"{top} is not installed, so this command cannot run.",
                         f"Run: pip install {top} (or 'make .venv/.installed' in your checkout), then try again.")
    if isinstance(err, PermissionError):
        where = f" {err.filename}" if err.filename else ""
        return TitoError(f"Permission denied:{where}.", "Make it writable (chmod u+w), then try again.")
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        return TitoError(f"{err.strerror or err}{where}.", "Check the path and the disk, then try again.")
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return TitoError(f"tito stopped on an unexpected {type(err).__name__}" + (f": {first}" if first else "") + ".",
                     "Run it again with TITO_DEBUG=1 to see the traceback, and include 'tito system info' when you report it.")


class _Tito(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as err:  # every error is one line with a hint, never a traceback
            if os.environ.get("TITO_DEBUG") and not isinstance(err, TitoError):
                raise
            error = as_tito_error(err)
            show_error(error.message, error.hint)
            ctx.exit(1)


@click.group(cls=_Tito, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="tito", message="%(prog)s %(version)s")
def cli() -> None:
    """TinyTorch's course tool: work through chapters, run checkpoints, grade with NBGrader.

    Modules can be named 02_tensor, 02, 2 or tensor.
    """


cli.add_command(module.group)
cli.add_command(checkpoint.group)
cli.add_command(system.group)
cli.add_command(nbgrader.group)
cli.add_command(course.group)
cli.add_command(book.group)
cli.add_command(milestone.group)
system.group.add_command(protect.group)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="tito")
    except TitoError as err:  # raised outside a command; still one line, never a traceback
        show_error(err.message, err.hint)
        sys.exit(1)
