"""Settings of a stage: fields of a frozen dataclass that carry their own help and command-line
form (``setting``), and the click options made from them (``config_options``).

A stage's config (e.g. ``stages.sampling.SampleConfig``) holds every default once; the command
line's options are generated from its fields, so the CLI's help shows the config's defaults and
the report, calling the same stage with its own config, cannot disagree with the CLI by accident.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Sequence
from typing import Any

import click

from denoiserlens.errors import UserError


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    kind: str | None = None,
    choices: Sequence[str | int] | None = None,
    name: str | None = None,
    off: str | None = None,
    scale: float | None = None,
) -> Any:
    """A dataclass field with its command-line description: ``help``; ``kind`` "count" (an
    integer >= 1), "sigma" (a noise level in [0, 255] units), "positive", "rows" (a comma list
    of integers), "pairs" (A+B,C+D), "path", "int" or "float" (default: from the default's type);
    ``choices`` for a string; ``name`` the option's name where it is not the field's; ``off`` the
    name of a flag's negative form (``--ancestral/--paper-step``); ``scale`` 255 for a noise
    level kept in [0, 1] units but given in [0, 255] units. No default: a required option (a
    tuple of strings: the option may be repeated)."""
    meta = {
        "help": help,
        "kind": kind,
        "choices": choices,
        "name": name,
        "off": off,
        "scale": scale,
    }
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Finite(click.ParamType):
    """A finite float (no NaN, no inf) at or above ``low`` (strictly above if ``open_low``)."""

    name = "number"

    def __init__(self, low: float | None = None, open_low: bool = False) -> None:
        self.low, self.open_low = low, open_low

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value} is not a finite number", param, ctx)
        if self.low is not None and (v < self.low or (self.open_low and v == self.low)):
            sign = ">" if self.open_low else ">="
            self.fail(f"must be {sign} {self.low:g}, got {value}", param, ctx)
        return v


class CommaList(click.ParamType):
    """A comma list parsed item by item, e.g. '3,1,4' -> (3, 1, 4); ``what`` names the form."""

    name = "list"

    def __init__(self, item: Callable[[str], object], what: str) -> None:
        self.item, self.what = item, what

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(self.item(v.strip()) for v in str(value).split(",") if v.strip())
            if out:
                return out
        except ValueError:
            pass
        self.fail(f"takes {self.what}, got {value!r}", param, ctx)


def _pair(text: str) -> tuple[int, int]:
    a, b = text.split("+")  # anything but two parts: ValueError
    return int(a), int(b)


def _sigma(text: str) -> float:
    if not 0 <= (v := float(text)) < math.inf:  # "not" also catches NaN
        raise ValueError(text)
    return v


COUNT = click.IntRange(min=1)  # numbers of images, samples, steps, draws
KINDS = {
    "count": COUNT,
    "sigma": Finite(0.0),  # a noise level in [0, 255] units
    "positive": Finite(0.0, open_low=True),  # rates, times
    "rows": CommaList(int, "comma-separated integers A,B,..."),
    "pairs": CommaList(_pair, "pairs A+B,C+D,..."),
    "sigmas": CommaList(_sigma, "noise levels of 255, finite and >= 0: 15,25,50"),
    "names": CommaList(str, "comma-separated names A,B,..."),
    "path": click.Path(),
    "int": click.INT,
    "float": Finite(),
}


def _shown(default: tuple) -> str:
    """A tuple default as the option's text: 1,2 / 1+2,3+4 / 2.55,25."""

    def item(v) -> str:
        if isinstance(v, tuple):
            return "+".join(map(str, v))
        return v if isinstance(v, str) else f"{v:g}"

    return ",".join(item(v) for v in default)


def _scaled(v: float | tuple, factor: float) -> float | tuple:
    """A noise level (or a tuple of them) from [0, 1] units to [0, 255] units (``factor`` 255,
    rounded for display), or back (``factor`` 1/255: divided by 255, as the configs were
    always given, so that recorded settings compare equal)."""
    if isinstance(v, tuple):
        return tuple(_scaled(x, factor) for x in v)
    return round(v * factor, 6) if factor > 1 else v / round(1 / factor)


def _option(f: dataclasses.Field, hint, dest: str, required: bool | None, base) -> Callable:
    """The click option of one config field, delivered to the command as ``dest``; its default
    is the field's value in ``base`` (a config instance) or else the field's. A field without a
    default is a required option (``required`` overrides); ``scale`` 255: the option is in
    [0, 255] units for a field in [0, 1]."""
    meta = f.metadata
    name = meta.get("name") or f.name.replace("_", "-")
    default = f.default
    if base is not None and getattr(base, f.name) != getattr(type(base)(), f.name):
        default = getattr(base, f.name)  # where base departs from the class's defaults
    default = None if default is dataclasses.MISSING else default
    if meta.get("scale") and default is not None:
        default = _scaled(default, meta["scale"])
    kw: dict = {"help": meta.get("help") or None}
    if hint is bool or typing.get_args(hint) == (bool, type(None)):
        off = meta.get("off") or (f"no-{name}" if default else None)
        decl = f"--{name}/--{off}" if off else f"--{name}"
        kw["show_default"] = off is not None and default is not None
        if off is None:
            kw["is_flag"] = True
        return click.option(decl, dest, default=default, **kw)
    if meta.get("choices"):
        choices = list(meta["choices"])
        kind = click.Choice([str(c) for c in choices])
        if isinstance(choices[0], int):  # --channels 1|3
            kw["callback"] = lambda ctx, param, v: None if v is None else int(v)
            default = None if default is None else str(default)
    elif meta.get("kind"):
        kind = KINDS[meta["kind"]]
    elif typing.get_origin(hint) is tuple:  # a repeated option
        kind, kw["multiple"], default = click.STRING, True, default or ()
    else:
        types = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        kind = {int: click.INT, float: Finite(), str: click.STRING}[types[0]]
    if isinstance(default, tuple) and not kw.get("multiple"):
        default = _shown(default)
    need = f.default is dataclasses.MISSING if required is None else required
    shown = default not in (None, ())
    return click.option(
        f"--{name}", dest, type=kind, default=default, required=need, show_default=shown, **kw
    )


def config_options(
    cls: type,
    into: str = "cfg",
    skip: tuple[str, ...] = (),
    required: bool | None = None,
    base: object | None = None,
) -> Callable:
    """Decorate a command with one option per field of the dataclass ``cls`` (but ``skip``),
    defaults from the instance ``base`` if given. A field holding a config (e.g. Algorithm 2's
    ``guidance``) gets its fields' options, defaults from the value it holds. The command
    receives them as one argument ``into``: ``cls(**values)``, a ValueError of the config raised
    as a UserError."""
    hints = typing.get_type_hints(cls)
    flds = [f for f in dataclasses.fields(cls) if f.name not in skip]
    start = lambda f: getattr(base, f.name) if base is not None else f.default  # noqa: E731
    nested = {f.name for f in flds if dataclasses.is_dataclass(start(f))}
    dest = (lambda n: n) if into == "cfg" else (lambda n: f"{into}__{n}")  # noqa: E731

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kw):
            values = {}
            for f in flds:
                v = kw.pop(f.name if f.name in nested else dest(f.name))
                scale = f.metadata.get("scale")
                values[f.name] = _scaled(v, 1 / scale) if scale and v is not None else v
            try:
                cfg = cls(**values)
            except ValueError as e:
                raise UserError(str(e)) from None
            return fn(*args, **{into: cfg}, **kw)

        for f in reversed(flds):
            if f.name in nested:
                inner = start(f)
                run = config_options(type(inner), into=f.name, base=inner)(run)
            else:
                run = _option(f, hints[f.name], dest(f.name), required, base)(run)
        return run

    return decorate
