"""``represent``, ``analyze``, ``neighbours``, ``cluster`` and ``probe`` (paper section 2)."""

from __future__ import annotations

import click

from denoiserlens.cli import command
from denoiserlens.cli import options as o
from denoiserlens.errors import UserError
from denoiserlens.models import load_model
from denoiserlens.represent import RepresentConfig
from denoiserlens.settings import config_options
from denoiserlens.stages import analysis, semantics
from denoiserlens.stages.represent import run_represent, store_summary
from denoiserlens.train import init_distributed

STORE_OUT = o.path("--out", "The store (created).", "out_dir")
RESUME = o.flag("--resume", "Finish an interrupted store.")
RANDOM = o.flag("--random-weights", "The control: fresh weights, seeded by --seed.")
REPRESENT = config_options(RepresentConfig)


@command(o.MODEL, o.data, STORE_OUT, REPRESENT, RESUME, RANDOM, o.DEVICE)
def represent(model_path, data, out_dir, cfg: RepresentConfig, resume, random_weights, device):
    """phi (section 2.3) and block summaries a_bar_j of a data set, streamed to a store.

    phi(x, sigma) is the mean over --n-noise draws of the spatial means of the middle block's
    output channels for x + sigma z. Resumable; under torchrun the ranks share the work.
    """
    init_distributed()  # under torchrun, always
    bar = o.ProgressBar(None, "chunk")
    progress = lambda i, n: bar.update(1, n)  # noqa: E731
    store = run_represent(model_path, data, out_dir, cfg, resume, random_weights, device, progress)
    bar.close()
    click.echo(store_summary(store, out_dir))


FIG13 = o.path("--model", "The store's model: adds Figure 13.", "model_path", required=False)


@command(o.STORE, o.OUT, config_options(analysis.AnalyzeConfig), FIG13, o.DEVICE)
def analyze(store_path, out_dir, cfg: analysis.AnalyzeConfig, model_path, device) -> None:
    """Sparsity (Figure 1), stability (Figure 2), channel selectivity (Figures 3, 4) of a store,
    union of subspaces for two labelled groups (Figure 5), and with --model the statistics of the
    channels' activation maps (Figure 13)."""
    model = None if model_path is None else load_model(model_path, device)
    lines = analysis.analysis_summary(analysis.analyze_store(store_path, out_dir, cfg, model))
    click.echo("\n".join([*lines, f"figures and metrics.json in {out_dir}"]))


@command(o.STORE, o.OUT, config_options(semantics.NeighboursConfig))
def neighbours(store_path, out_dir, cfg: semantics.NeighboursConfig) -> None:
    """Nearest images by cosine similarity in phi and, side by side, in pixels (Figures 5, 14)."""
    lines = semantics.neighbours_summary(semantics.neighbours_figure(store_path, out_dir, cfg))
    click.echo("\n".join([*lines, f"fig14_neighbours.png and neighbours.json in {out_dir}"]))


CLUSTER = config_options(semantics.ClusterConfig, skip=("show", "members", "tsne_clusters"))


@command(o.STORE, o.OUT, CLUSTER)
def cluster(store_path, out_dir, cfg: semantics.ClusterConfig) -> None:
    """K-means on phi (Figure 6): assignments, centroids, separation of cluster pairs (and class
    pairs), members and t-SNE of a few clusters, NMI/ARI/purity against labels if any."""
    try:
        lines = semantics.cluster_summary(semantics.cluster_store(store_path, out_dir, cfg))
    except ValueError as e:  # a single label class: the data cannot answer
        raise UserError(str(e)) from None
    files = "clusters.json, assignments.npy, centroids.npy and figures"
    click.echo("\n".join([*lines, f"{files} in {out_dir}"]))


STORES = click.option(
    "--store", "stores", multiple=True, required=True, help="NAME=STORE or STORE; repeat."
)


@command(STORES, o.OUT, config_options(semantics.ProbeConfig))
def probe(stores: tuple[str, ...], out_dir, cfg: semantics.ProbeConfig) -> None:
    """Label accuracy of phi (every store, every sigma) and of pixels: kNN vote and linear probe
    on one seeded split of the rows, e.g. --store trained=S1 --store random=S2 (same images).
    Needs labels."""
    named = {}
    for i, entry in enumerate(stores):
        name, _, path = entry.partition("=") if "=" in entry else ("", "", entry)
        named[name or f"store{i}"] = path
    try:
        lines = semantics.probe_summary(semantics.probe_stores(named, out_dir, cfg))
    except ValueError as e:  # more neighbours than references, one class only
        raise UserError(str(e)) from None
    click.echo("\n".join([*lines, f"probe.json in {out_dir}"]))
