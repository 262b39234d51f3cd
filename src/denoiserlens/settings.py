"""Settings of a stage: fields of a frozen dataclass that carry their own help.

A stage's config (e.g. ``stages.sampling.SampleConfig``) holds every default once; the command
line's options are generated from its fields (``cli.options.config_options``), so the CLI's help
shows the config's defaults and the report, calling the same stage with its own config, cannot
disagree with the CLI by accident.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


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
