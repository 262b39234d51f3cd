"""The report's static pages: index.html (sections in the paper's order) and explorer.html (click
an image: its neighbours in phi and in pixels, its selective channels with their top images, its
cluster). Static files only: the explorer's data is explorer.json, also wrapped as
explorer-data.js so that the page works when opened from disk (browsers refuse fetch() there).

Every string that comes from the data (file names, labels) is escaped in HTML, and the explorer's
script writes text with textContent only, never as markup.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from denoiserlens.fileio import write_atomic, write_json

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
section p { line-height: 1.45; } .skipped { color: #666; font-style: italic; }
figure { display: inline-block; margin: 0.5em; } figure img { max-width: 100%; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; }
.grid img, .row img { width: 48px; height: 48px; image-rendering: pixelated; margin: 1px;
  cursor: pointer; border: 2px solid transparent; }
.grid img.selected { border-color: #d33; } .row { margin: 4px 0; } .label { font-size: 0.85em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _numbers_table(numbers: dict[str, Any]) -> str:
    rows = [r for r in numbers.get("table", []) if isinstance(r, dict)]
    if not rows:
        return ""
    keys = list(rows[0])
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(round(r[k], 3) if isinstance(r[k], float) else r[k])}</td>" for k in keys
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_index(out: Path, title: str, provenance: dict[str, Any], sections: list[dict]) -> None:
    """index.html: one <section> per report section, figures and one paragraph each."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
        "<p>" + "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in provenance.items()) + "</p>",
        "<p><a id='explorer-link' href='explorer.html'>Open the explorer</a>: click any "
        "image to see its neighbours, channels and cluster.</p>",
    ]
    for s in sections:
        parts.append(f"<section id='{_e(s['name'])}'><h2>{_e(s['title'])}</h2>")
        if s.get("skipped"):
            parts.append(f"<p class='skipped'>Omitted: {_e(s['skipped'])}.</p></section>")
            continue
        parts.append(f"<p>{_e(s['text'])}</p>")
        parts.append(_numbers_table(s.get("numbers", {})))
        for fig in s.get("figures", []):
            parts.append(
                f"<figure><img src='{_e(fig)}' alt='{_e(Path(fig).stem)}'>"
                f"<figcaption>{_e(Path(fig).stem)}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    write_atomic(out / "index.html", lambda tmp: tmp.write_text("\n".join(parts)))


EXPLORER_JS = """
const D = window.EXPLORER;
function img(row) {
  const el = document.createElement('img');
  el.src = 'explorer/' + row + '.png';
  el.alt = D.images[row].name;      // an attribute set as text: never parsed as markup
  el.title = D.images[row].name;
  el.dataset.row = row;
  el.addEventListener('click', () => show(row));
  return el;
}
function line(parent, text) {
  const p = document.createElement('div');
  p.className = 'label';
  p.textContent = text;
  parent.appendChild(p);
  return p;
}
function strip(parent, id, title, rows) {
  const box = document.createElement('div');
  box.className = 'row';
  box.id = id;
  line(box, title);
  rows.forEach(r => box.appendChild(img(r)));
  parent.appendChild(box);
}
function show(row) {
  document.querySelectorAll('#grid img').forEach(e => e.classList.toggle('selected',
    Number(e.dataset.row) === row));
  const d = D.images[row], panel = document.getElementById('panel');
  panel.replaceChildren();
  line(panel, 'image ' + row + ': ' + d.name + (d.label === null ? '' : ' (label ' + d.label + ')')
       + (d.cluster === null ? '' : ', cluster ' + d.cluster));
  strip(panel, 'phi-neighbours', 'nearest in phi', d.phi);
  strip(panel, 'pixel-neighbours', 'nearest in pixels', d.pixels);
  d.channels.forEach(c => strip(panel, 'channel-' + c.channel, 'selective channel ' + c.channel
    + ' (PR ' + c.pr.toFixed(2) + '): its top images', c.top));
  if (d.cluster !== null) strip(panel, 'cluster-members', 'members of cluster ' + d.cluster,
    D.clusters[d.cluster] || []);
}
const grid = document.getElementById('grid');
D.images.forEach((_, row) => grid.appendChild(img(row)));
"""


def explorer_data(
    images, names: list[str], labels, phi: np.ndarray, assignment, k: int = 8, n_channels: int = 3
) -> dict[str, Any]:
    """The explorer's data for the first ``len(phi)`` images: neighbours in phi and in pixels,
    the most specialized channels of each image with their top images, and clusters."""
    from denoiserlens.analysis.neighbours import nearest_neighbours
    from denoiserlens.analysis.selectivity import (
        channel_participation,
        specialized_channels,
        top_images,
    )

    n = len(phi)
    rows = np.arange(n)
    pix = np.stack([images[i] for i in range(n)]).reshape(n, -1).astype(np.float32)
    k = min(k, n - 1)
    phi_nn, _ = nearest_neighbours(phi, phi, k, exclude=rows)
    pix_nn, _ = nearest_neighbours(pix, pix, k, exclude=rows)
    pr = channel_participation(phi)
    items = []
    for i in range(n):
        chans = specialized_channels(phi, i, n=n_channels)
        items.append(
            {
                "name": names[i],
                "label": None if labels is None else int(labels[i]),
                "cluster": None if assignment is None else int(assignment[i]),
                "phi": phi_nn[i].tolist(),
                "pixels": pix_nn[i].tolist(),
                "channels": [
                    {
                        "channel": int(c),
                        "pr": float(pr[c]),
                        "top": top_images(phi, int(c), 6).tolist(),
                    }
                    for c in chans
                ],
            }
        )
    clusters = {}
    if assignment is not None:
        for c in np.unique(assignment[:n]):
            clusters[int(c)] = np.flatnonzero(assignment[:n] == c)[:12].tolist()
    return {"images": items, "clusters": clusters}


def write_explorer(out: Path, images, data: dict[str, Any]) -> None:
    """explorer.html, explorer.json, explorer-data.js and explorer/<row>.png."""
    from PIL import Image

    for i in range(len(data["images"])):
        a = np.asarray(images[i])
        pil = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        write_atomic(out / "explorer" / f"{i}.png", lambda tmp, p=pil: p.save(tmp, format="PNG"))
    write_json(out / "explorer.json", data)
    # JSON inside a script: escape '<' so that no name can close the <script> element
    blob = json.dumps(data).replace("<", "\\u003c")
    write_atomic(out / "explorer-data.js", lambda tmp: tmp.write_text(f"window.EXPLORER = {blob};"))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>denoiserlens explorer</title>"
        f"<style>{STYLE}</style></head><body><h1>Explorer</h1><p><a href='index.html'>back "
        "to the report</a>. Click an image.</p><div id='panel'></div><h2>Images</h2>"
        "<div id='grid' class='grid'></div><script src='explorer-data.js'></script>"
        f"<script>{EXPLORER_JS}</script></body></html>"
    )
    write_atomic(out / "explorer.html", lambda tmp: tmp.write_text(page))
