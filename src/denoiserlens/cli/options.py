"""What every command is made of besides its config's generated options
(``settings.config_options``): the options every command spells the same, and one way to print
a result, a warning or an error."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click

from denoiserlens.errors import UserError
from denoiserlens.settings import KINDS, config_options


def fail(message: str) -> None:
    """One error line on stderr (progress bars it cut short wiped first), exit status 2."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.leave = False
        bar.close()
    click.echo(f"denoiserlens: error: {message}", err=True)
    sys.exit(2)


def warn(message: object) -> None:
    """A warning line; a progress bar on screen is lifted for it and redrawn below."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):
        click.echo(f"denoiserlens: warning: {message}", err=True)


def warn_if_bf16_emulated(what: str) -> None:
    """bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) and no GPU: autocast emulates it,
    slower than float32 (``hardware.native_bf16``), and the user is told so."""
    from denoiserlens.hardware import native_bf16

    if not native_bf16():
        warn(
            f"this CPU has no native bf16 (AVX512-BF16 or AMX): {what} is emulated and "
            "slower than float32 here"
        )


def warn_emulated_bf16(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """The callback of every --bf16 option."""
    if value:
        warn_if_bf16_emulated("--bf16")
    return value


def user_errors(fn: Callable) -> Callable:
    """Turn UserError (and an unreadable or unwritable path) into one stderr line, status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            fail(str(e))
        except OSError as e:
            fail(f"{e.filename or ''}: {e.strerror or e}")

    return wrapper


def data(fn: Callable | None = None, required: bool = True) -> Callable:
    """The options that describe a data set (``data.DataSpec``); the command receives ``data``."""
    from denoiserlens.data import DataSpec

    deco = config_options(DataSpec, into="data", required=None if required else False)
    return deco if fn is None else deco(fn)


def path(name: str, help: str, dest: str | None = None, **kw) -> Callable:
    """A path option, required unless it has a ``default`` or ``required=False``."""
    if "default" in kw:
        kw.setdefault("show_default", True)
    kw.setdefault("required", "default" not in kw)
    dest = dest or name.lstrip("-").replace("-", "_")
    return click.option(name, dest, type=click.Path(path_type=Path), help=help, **kw)


def value(name: str, help: str, kind: str, default: object = None) -> Callable:
    """An option of one of ``KINDS`` (e.g. "count", "positive")."""
    shown = default is not None
    return click.option(name, type=KINDS[kind], default=default, show_default=shown, help=help)


def flag(name: str, help: str) -> Callable:
    return click.option(name, is_flag=True, help=help)


def to_stderr(message: str) -> None:
    """A stage's progress lines, on stderr (stdout holds the results)."""
    click.echo(message, err=True)


def _pick_device(ctx: click.Context, param: click.Parameter, name: str):
    from denoiserlens.hardware import pick_device

    try:
        return pick_device(name)
    except RuntimeError as e:  # not a device torch knows
        raise click.BadParameter(str(e).split("\n")[0], ctx, param) from None


MODEL_HELP = "A run directory, a .safetensors file or one of the lab's .pt checkpoints."
MODEL = path("--model", MODEL_HELP, "model_path")
MODELS = path(
    "--model", f"{MODEL_HELP} Repeat to compare.", "model_paths", multiple=True, required=False
)
OUT_HELP = "Output folder (created)."
OUT = path("--out", OUT_HELP, "out_dir")
STORE = path("--store", "A representation store (written by `represent`).", "store_path")
DEVICE = click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=_pick_device,
    help="auto (CUDA when present; under torchrun this rank's GPU), cpu, cuda or cuda:N.",
)


def report(result, out_dir: Path, model: str = "") -> None:
    """Save a stage's result into ``out_dir``; print its summary and the files written."""
    written = result.save(out_dir, model)
    click.echo("\n".join([*result.summary(), f"{', '.join(written)} in {out_dir}"]))


class ProgressBar:
    """A tqdm bar made at its first update: a bar of data preparation before it, or a check that
    fails first, stays alone on its line (``fail`` wipes a bar that an error cut short)."""

    def __init__(self, total: int | None, unit: str) -> None:
        self.total, self.unit, self.bar = total, unit, None

    def update(self, k: int = 1, total: int | None = None) -> None:
        from tqdm import tqdm

        self.bar = self.bar or tqdm(total=self.total, unit=self.unit, dynamic_ncols=True)
        self.bar.total = self.bar.total if total is None else total
        self.bar.update(k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
