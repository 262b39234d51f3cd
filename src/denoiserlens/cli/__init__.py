"""The ``denoiserlens`` command: one subcommand per pipeline stage, each parse -> config ->
call -> print over a library function (``denoiserlens.stages``). A user's mistake prints one
line on stderr and exits with status 2."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import click

from denoiserlens.cli.options import fail, user_errors, warn, warn_emulated_bf16


class OneLineGroup(click.Group):
    """click's usage errors (a non-number, an unknown option) as one line and status 2, like
    every other user error, instead of a usage block."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Abort:  # Ctrl-C: not a user's mistake, the shell's status
            click.echo("Aborted!", err=True)
            sys.exit(130)
        except click.ClickException as e:
            hint = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            fail(e.format_message() + hint)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="denoiserlens")
def main() -> None:
    """denoiserlens: train blind UNet denoisers and open them up.

    Kadkhodaie, Mallat & Simoncelli, "Unconditional CNN denoisers contain sparse semantic
    representations of images". Images are in [0, 1]; noise levels on the command line are given
    in [0, 255] units.
    """
    warnings.showwarning = lambda message, *args, **kwargs: warn(message)


def command(*options: Callable) -> Callable:
    """Register a subcommand of ``main`` with ``options`` (listed as they read in its help): its
    user errors (a config's too) are one line and status 2, and --bf16 warns where bf16 would be
    emulated."""

    def register(fn: Callable) -> click.Command:
        for option in reversed(options):
            fn = option(fn)
        cmd = main.command()(user_errors(fn))
        for p in cmd.params:
            if "--bf16" in p.opts:
                p.callback = warn_emulated_bf16
        return cmd

    return register


# the commands, registered with ``main`` as their modules are imported
from denoiserlens.cli import models, represent, sampling  # noqa: E402, F401
from denoiserlens.cli import report as _report  # noqa: E402, F401

if __name__ == "__main__":
    main()
