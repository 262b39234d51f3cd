"""``denoiserlens report``: every analysis on one model and data set, as a static web page.

The sections run in the paper's order; each one's result is saved in ``OUT/sections/<name>.json``
with a key of what it depends on (model weights, data fingerprint, the settings it reads), so a
rerun of an interrupted report, or one with other settings, recomputes only the sections whose
inputs changed. The representation store lives in a folder named by its own key; a store made
with other settings is replaced, not resumed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import denoiserlens
from denoiserlens.data import DataSpec, open_data
from denoiserlens.errors import UserError
from denoiserlens.fileio import read_json, write_json
from denoiserlens.models import load_model
from denoiserlens.report.config import SECTIONS, ReportConfig
from denoiserlens.report.pages import explorer_data, write_explorer, write_index
from denoiserlens.report.sections import NEEDS_STORE, SECTION_FUNCTIONS, Context, Section
from denoiserlens.represent.store import weights_hash

# rough relative costs, for the time-left estimate
WEIGHTS = {
    "denoising": 2,
    "representation": 10,
    "neighbours": 1,
    "clusters": 2,
    "probe": 3,
    "samples": 2,
    "reconstructions": 4,
    "distance": 6,
    "jacobian": 3,
    "explorer": 1,
}


def section_key(name: str, model_hash: str, fingerprint: str, cfg: ReportConfig) -> str:
    """What section ``name``'s results depend on, hashed: the model's weights, the data, and
    the settings the section reads."""
    blob = json.dumps(
        [name, model_hash, fingerprint, cfg.settings_of(name)], sort_keys=True, default=str
    )
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def run_report(
    model_path: str | Path,
    spec: DataSpec,
    out_dir: str | Path,
    cfg: ReportConfig,
    device: str | torch.device = "cpu",
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Compute every section not in ``cfg.skip`` (reusing finished ones) and write index.html,
    explorer.html and metrics.json into ``out_dir``; returns the metrics.

    ``progress(stage, fraction_done)`` is called before each section."""
    out = Path(out_dir)
    device = torch.device(device)
    model = load_model(model_path, device).eval()
    spec = DataSpec(**{**spec.to_dict(), "limit": cfg.images})
    images = open_data(spec)
    if images.fixed_size is None:
        raise UserError(
            f"{images.source}: the report needs images of one size (use --size or --patch-size)"
        )
    if images.channels != model.image_channels:
        raise UserError(
            f"the data has {images.channels} channels, the model takes "
            f"{model.image_channels}; set --channels"
        )
    cfg.check_rows(len(images))
    h, w = images.fixed_size
    if h % model.size_multiple or w % model.size_multiple:
        raise UserError(
            f"images of {h}x{w} are not divisible by {model.size_multiple} (use --pad-to or --size)"
        )
    model_hash = weights_hash(model)
    store_key = section_key("representation", model_hash, images.fingerprint, cfg)
    ctx = Context(model, str(model_path), images, spec, cfg, out, device, store_key)
    todo = [s for s in SECTIONS if s not in cfg.skip]
    total = sum(WEIGHTS[s] for s in todo)
    done_weight = 0.0
    results: list[dict[str, Any]] = []
    t0 = time.time()
    for name in todo:
        if progress is not None:
            progress(name, done_weight / total)
        if name == "explorer":
            results.append(_explorer(ctx, results).to_dict())
        else:
            results.append(_section(ctx, name, model_hash, images.fingerprint, results))
        done_weight += WEIGHTS[name]
    for name in cfg.skip:
        results.append(Section(name, name, skipped="skipped by the settings").to_dict())
    order = {s: i for i, s in enumerate(SECTIONS)}
    results.sort(key=lambda s: order[s["name"]])
    provenance = {
        "model": str(model_path),
        "data": images.source,
        "images": len(images),
        "data fingerprint": images.fingerprint,
        "model weights": model_hash,
        "denoiserlens": denoiserlens.__version__,
    }
    page_sections = [s for s in results if s["name"] != "explorer"]
    write_index(out, "denoiserlens report", provenance, page_sections)
    sections = {s["name"]: {"skipped": s["skipped"], **s["numbers"]} for s in results}
    metrics = {
        "provenance": provenance,
        "config": cfg.to_dict(),
        "seconds": time.time() - t0,
        "sections": sections,
    }
    write_json(out / "metrics.json", metrics)
    if progress is not None:
        progress("done", 1.0)
    return metrics


def _section(ctx: Context, name: str, model_hash: str, fingerprint: str, results) -> dict:
    path = ctx.out / "sections" / f"{name}.json"
    key = section_key(name, model_hash, fingerprint, ctx.cfg)
    if path.exists():
        saved = read_json(path)
        if saved.get("key") == key:
            return saved["section"]
    if name in NEEDS_STORE and not _has_store(results):
        sec = Section(name, name, skipped="needs the representation section").to_dict()
    else:
        sec = SECTION_FUNCTIONS[name](ctx).to_dict()
    write_json(path, {"key": key, "section": sec})
    return sec


def _has_store(results) -> bool:
    return any(s["name"] == "representation" and not s["skipped"] for s in results)


def _explorer(ctx: Context, results) -> Section:
    from denoiserlens.represent import Store

    sec = Section("explorer", "Explorer")
    if not _has_store(results):
        sec.skipped = "needs the representation section"
        return sec
    store = Store(ctx.store)
    n = min(ctx.cfg.explorer_images, len(ctx.images))
    phi = np.asarray(store.phi(ctx.cfg.sigma / 255)[:n], np.float32)
    assignment = None  # only from a clusters section of this run's settings
    if any(s["name"] == "clusters" and not s["skipped"] for s in results):
        assignment = np.load(ctx.out / "clusters" / "assignments.npy")
    data = explorer_data(ctx.images, store.names, store.labels, phi, assignment)
    write_explorer(ctx.out, ctx.images, data)
    sec.numbers = {"images": n}
    return sec
