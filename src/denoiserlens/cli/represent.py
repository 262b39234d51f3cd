"""``represent``, ``analyze``, ``neighbours``, ``cluster`` and ``probe`` (paper section 2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from denoiserlens.cli import _device, data_options, main
from denoiserlens.cli.common import DEVICE, MODEL, OUT, ProgressBar
from denoiserlens.cli.options import config_options, user_errors
from denoiserlens.data import DataSpec, open_data
from denoiserlens.errors import UserError
from denoiserlens.models import build_model, load_model
from denoiserlens.represent import RepresentConfig
from denoiserlens.represent import represent as run_represent
from denoiserlens.represent.store import parse_blocks
from denoiserlens.stages.analysis import AnalyzeConfig, analysis_summary, analyze_store
from denoiserlens.stages.semantics import (
    ClusterConfig,
    NeighboursConfig,
    ProbeConfig,
    cluster_store,
    cluster_summary,
    neighbours_figure,
    probe_stores,
    probe_summary,
)
from denoiserlens.train import init_distributed

STORE = click.option("--store", "store_path", type=click.Path(path_type=Path), required=True)


@main.command()
@MODEL
@data_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="The store.")
@config_options(RepresentConfig)
@click.option("--resume", is_flag=True, help="Finish an interrupted store.")
@click.option(
    "--random-weights", is_flag=True, help="The control: fresh weights, seeded by --seed."
)
@DEVICE
@user_errors
def represent(
    model_path, data: DataSpec, out_dir, cfg: RepresentConfig, resume, random_weights, device
):
    """phi (section 2.3) and block summaries a_bar_j of a data set, streamed to a store.

    phi(x, sigma) is the mean over --n-noise draws of the spatial means of the middle block's
    output channels for x + sigma z. Resumable; under torchrun the ranks share the work.
    """
    dev = init_distributed()  # under torchrun, always
    dev = dev if device == "auto" else _device(device)
    model = load_model(model_path, device=str(dev))
    if random_weights:
        model = build_model(model.arch_config(), seed=cfg.seed).to(dev)
        model_path = f"{model_path} (random weights, seed {cfg.seed})"
    cfg = dataclasses.replace(cfg, blocks=parse_blocks(",".join(cfg.blocks), model))
    with ProgressBar(None, "chunk") as bar:
        progress = lambda i, n: bar.update(1, n)  # noqa: E731
        store = run_represent(
            model, open_data(data), out_dir, cfg, resume, str(model_path), progress, data.to_dict()
        )
    arrays = ", ".join(f"{k} {tuple(v)}" for k, v in store.meta["arrays"].items())
    click.echo(
        f"{out_dir}: {len(store.names)} images x {len(cfg.sigmas)} sigma(s); arrays {arrays}"
    )


@main.command()
@STORE
@OUT
@config_options(AnalyzeConfig)
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="Adds Figure 13.")
@DEVICE
@user_errors
def analyze(store_path: Path, out_dir: Path, cfg: AnalyzeConfig, model_path, device: str) -> None:
    """Sparsity (Figure 1), stability (Figure 2), channel selectivity (Figures 3, 4) of a store,
    union of subspaces for two labelled groups (Figure 5), and with --model the statistics of the
    channels' activation maps (Figure 13)."""
    model = None if model_path is None else load_model(model_path, device=_device(device))
    lines = analysis_summary(analyze_store(store_path, out_dir, cfg, model))
    click.echo("\n".join([*lines, f"figures and metrics.json in {out_dir}"]))


@main.command()
@STORE
@OUT
@config_options(NeighboursConfig)
@user_errors
def neighbours(store_path: Path, out_dir: Path, cfg: NeighboursConfig) -> None:
    """Nearest images by cosine similarity in phi and, side by side, in pixels (Figures 5, 14)."""
    for q in neighbours_figure(store_path, out_dir, cfg)["queries"]:
        line = f"row {q['row']} ({q['name']}): phi {q['phi']}, pixels {q['pixels']}"
        if "label" in q:
            line += (
                f"; same label: phi {q['same_label_phi']:.0%}, pixels {q['same_label_pixels']:.0%}"
            )
        click.echo(line)
    click.echo(f"fig14_neighbours.png and neighbours.json in {out_dir}")


@main.command()
@STORE
@OUT
@config_options(ClusterConfig, skip=("show", "members", "tsne_clusters"))
@user_errors
def cluster(store_path: Path, out_dir: Path, cfg: ClusterConfig) -> None:
    """K-means on phi (Figure 6): assignments, centroids, separation of cluster pairs (and class
    pairs), members and t-SNE of a few clusters, NMI/ARI/purity against labels if any."""
    try:
        lines = cluster_summary(cluster_store(store_path, out_dir, cfg))
    except ValueError as e:  # a single label class: the data cannot answer
        raise UserError(str(e)) from None
    click.echo("\n".join(lines))
    click.echo(f"clusters.json, assignments.npy, centroids.npy and figures in {out_dir}")


@main.command()
@click.option(
    "--store", "stores", multiple=True, required=True, help="NAME=STORE or STORE; repeat."
)
@OUT
@config_options(ProbeConfig)
@user_errors
def probe(stores: tuple[str, ...], out_dir: Path, cfg: ProbeConfig) -> None:
    """Label accuracy of phi (every store, every sigma) and of pixels: kNN vote and linear probe
    on one seeded split of the rows, e.g. --store trained=S1 --store random=S2 (same images).
    Needs labels."""
    named = {}
    for i, entry in enumerate(stores):
        name, _, path = entry.partition("=") if "=" in entry else ("", "", entry)
        named[name or f"store{i}"] = path
    try:
        lines = probe_summary(probe_stores(named, out_dir, cfg))
    except ValueError as e:  # more neighbours than references, one class only
        raise UserError(str(e)) from None
    click.echo("\n".join([*lines, f"probe.json in {out_dir}"]))
