"""The ``denoiserlens`` command: one subcommand per pipeline stage, each a thin layer over a library
function. A user's mistake prints one line on stderr and exits with status 2."""

from __future__ import annotations

import sys
import warnings

import click

from denoiserlens.cli.options import _fail, config_options


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
            _fail(e.format_message() + hint)
        sys.exit(rv if isinstance(rv, int) else 0)


def _warn(message: object) -> None:
    """A warning line; a progress bar on screen is lifted for it and redrawn below."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):
        click.echo(f"denoiserlens: warning: {message}", err=True)


def _warn_line(message, category, filename, lineno, file=None, line=None):
    _warn(message)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def data_options(fn=None, required: bool = True):
    """The options that describe a data set (``data.DataSpec``); the command receives ``data``."""
    from denoiserlens.data import DataSpec

    deco = config_options(DataSpec, into="data", required=None if required else False)
    return deco if fn is None else deco(fn)


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
    warnings.showwarning = _warn_line


# Help of the hand-written options that mean the same in every command (the others carry their
# own, or their config field's).
OPTION_HELP: dict[str, str] = {
    "seed": "Seed of every random draw: the same seed gives the same result.",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N.",
    "out_dir": "Output folder (created).",
    "model_path": "A run directory, a .safetensors file or one of the lab's .pt checkpoints.",
    "store_path": "A representation store (written by `represent`).",
}


def _warn_emulated_bf16(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """--bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) and no GPU: autocast then
    emulates bf16 and is slower than float32 (``hardware.native_bf16``)."""
    if value:
        _warn_if_bf16_emulated("--bf16")
    return value


def _warn_if_bf16_emulated(what: str) -> None:
    from denoiserlens.hardware import native_bf16

    if not native_bf16():
        _warn(
            f"this CPU has no native bf16 (AVX512-BF16 or AMX): {what} is emulated and "
            "slower than float32 here"
        )


def _fill_option_help() -> None:
    """Help from OPTION_HELP for options whose decorator gives none; every --bf16 warns where it
    would be emulated."""
    for command in main.commands.values():
        for p in command.params:
            if isinstance(p, click.Option) and not p.help:
                p.help = OPTION_HELP.get(p.name)
            if "--bf16" in getattr(p, "opts", ()) and p.callback is None:
                p.callback = _warn_emulated_bf16


# the commands, registered with ``main`` as their modules are imported
from denoiserlens.cli import evaluation, geometry, represent, sampling, train  # noqa: E402, F401
from denoiserlens.cli import report as _report  # noqa: E402, F401

_fill_option_help()


if __name__ == "__main__":
    main()
