"""``report``: every analysis on one model and data set, as one static web page."""

from __future__ import annotations

from pathlib import Path

import click

from denoiserlens.cli import command
from denoiserlens.cli import options as o
from denoiserlens.errors import UserError
from denoiserlens.report import bundled_defaults, load_config, run_report
from denoiserlens.settings import KINDS

MODEL = o.path(
    "--model",
    "Run directory (default: the bundled Fashion-MNIST model).",
    "model_path",
    required=False,
)
OUT = o.path("--out", o.OUT_HELP, "out_dir", default=Path("report"))
CONFIG = o.path("--config", "Settings (TOML).", "config_path", required=False)
IMAGES = click.option("--images", "n_images", type=KINDS["count"], help="Rows of the data used.")
SKIP = click.option("--skip", help="Comma list of sections not to compute.")


@command(MODEL, o.data(required=False), OUT, CONFIG, IMAGES, SKIP, o.DEVICE)
def report(model_path, data, out_dir, config_path, n_images, skip, device) -> None:
    """Every analysis on one model and data set, as a static web page (index.html with the
    paper's figures in its order, explorer.html, metrics.json). With no --model and --data, the
    bundled model and images (offline). An interrupted report reruns only what it had not
    finished. Sections: denoising, representation, neighbours, clusters, probe, samples,
    reconstructions, distance, jacobian, explorer. --config: a TOML file of
    denoiserlens.report.config.ReportConfig's settings."""
    if (model_path is None) != (not data.sources):
        raise UserError("give both --model and --data, or neither (the bundled defaults)")
    if model_path is None:
        model_path, data = bundled_defaults()
    if not Path(model_path).exists():
        raise UserError(f"{model_path}: no such model")
    sections = None if skip is None else tuple(s for s in skip.split(",") if s)
    cfg = load_config(config_path, images=n_images, skip=sections)
    if cfg.bf16:
        o.warn_if_bf16_emulated("bf16 (report setting)")
    bar = o.ProgressBar(100, "%")

    def progress(stage: str, done: float) -> None:
        bar.update(0)
        bar.bar.set_description(stage)
        bar.update(round(100 * done) - bar.bar.n)

    metrics = run_report(model_path, data, out_dir, cfg, device, progress)
    bar.close()
    omitted = sum(1 for s in metrics["sections"].values() if s["skipped"])
    shown = len(metrics["sections"]) - omitted
    files = "explorer.html, metrics.json"
    click.echo(f"report: {out_dir}/index.html ({shown} sections, {omitted} omitted; {files})")
