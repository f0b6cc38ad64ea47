"""The `tito` command line.

Each command group lives in tito/commands/ and calls the curriculum, the
exporter and the checkpoint runner; this file only wires the groups together
and turns every TitoError into one red line, a hint and exit status 1.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .commands import checkpoint, course, module, nbgrader, protect, system
from .errors import TitoError
from .ui import show_error


class _Tito(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TitoError as err:
            show_error(err.message, err.hint)
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
system.group.add_command(protect.group)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="tito")
    except TitoError as err:  # raised outside a command; still one line, never a traceback
        show_error(err.message, err.hint)
        sys.exit(1)
