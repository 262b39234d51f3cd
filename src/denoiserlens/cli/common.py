"""Options that every command spells the same, and the one way a stage's result is reported."""

from __future__ import annotations

from pathlib import Path

import click

MODEL = click.option("--model", "model_path", type=click.Path(path_type=Path), required=True)
OUT = click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
DEVICE = click.option("--device", default="auto", show_default=True)


def report(result, out_dir: Path, model: str = "") -> None:
    """Save a stage's result into ``out_dir``; print its summary and the files written."""
    written = result.save(out_dir, model)
    for line in result.summary():
        click.echo(line)
    click.echo(f"{', '.join(written)} in {out_dir}")


class ProgressBar:
    """A tqdm bar drawn from its first update on: checks that fail before any work leave only
    their error line (a bar an error cuts short is wiped by that line)."""

    def __init__(self, total: int | None, unit: str) -> None:
        self.total, self.unit, self.bar = total, unit, None

    def update(self, k: int = 1, total: int | None = None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=self.unit, dynamic_ncols=True)
        if total is not None:
            self.bar.total = total
        self.bar.update(k)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if self.bar is not None and kind is None:
            self.bar.close()
