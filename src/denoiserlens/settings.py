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
    default: Any,
    help: str = "",
    *,
    kind: str | None = None,
    choices: Sequence[str] | None = None,
    name: str | None = None,
    off: str | None = None,
) -> Any:
    """A dataclass field with its command-line description: ``help``; ``kind`` "count" (an
    integer >= 1), "sigma" (a noise level in [0, 255] units), "positive", "rows" (a comma list
    of integers), "pairs" (A+B,C+D), "path", "int" or "float" (default: from the default's type);
    ``choices`` for a string; ``name`` the option's name where it is not the field's; ``off`` the
    name of a flag's negative form (``--ancestral/--paper-step``)."""
    meta = {"help": help, "kind": kind, "choices": choices, "name": name, "off": off}
    return dataclasses.field(default=default, metadata=meta)
