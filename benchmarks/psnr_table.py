"""PSNR/SSIM table on Set12 and Set68 at sigma 15, 25, 50 (of 255): our models vs BM3D vs the lab's
BF-CNN, measured in the same run on the same seeded noise (one draw per image and sigma).

    .venv/bin/python benchmarks/psnr_table.py --model work/runs/gray-photos [--out bench-out]
        [--no-peer] [--no-bm3d]   (quick checks of our models alone)
    .venv/bin/python benchmarks/psnr_table.py --color --model work/runs/color-small-v1
        (Set5 and BSD100 in colour, against the lab's colour BF-CNN and colour BM3D)

Reads the images and the BF-CNN from ../shared/data. BM3D is given the true sigma; the learned
denoisers are blind. Writes OUT/<set>/results.json, table.txt and psnr.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from denoiserlens.data import DataSpec, open_data
from denoiserlens.evaluation import bm3d_method, evaluate, model_method
from denoiserlens.models import load_model
from denoiserlens.stages.evaluation import write_results

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BFCNN = DATA / "peers/bf_cnn/BSD400_gray/noise_range_0to100/model.pt"
BFCNN_COLOR = DATA / "peers/bf_cnn/BSD300_color/noise_range_0to100/model.pt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", default=[], help="Run directory (repeatable).")
    ap.add_argument("--sets", default=None, help="Default: Set12,Set68 (gray), Set5,BSD100.")
    ap.add_argument("--color", action="store_true", help="The colour sets and peer.")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--no-peer", action="store_true", help="Leave out the lab's BF-CNN.")
    ap.add_argument("--limit", type=int, default=None, help="Only the first N images of each set.")
    ap.add_argument("--out", default="bench-out/psnr")
    args = ap.parse_args()
    peer, folder = (BFCNN_COLOR, "color") if args.color else (BFCNN, "grayscale")
    sets = args.sets or ("Set5,BSD100" if args.color else "Set12,Set68")
    if not peer.exists():
        sys.exit(f"{DATA} is absent: this benchmark needs ../shared beside the checkout")
    sigmas = [float(s) / 255 for s in args.sigmas.split(",")]
    methods = {Path(m).name: model_method(load_model(m), pad=True) for m in args.model}
    if not args.no_peer:
        label = "BF-CNN (lab, BSD300 colour)" if args.color else "BF-CNN (lab, BSD400)"
        methods[label] = model_method(load_model(peer))
    if not args.no_bm3d:
        methods["BM3D"] = bm3d_method
    for name in sets.split(","):
        images = open_data(DataSpec((str(DATA / "test_images" / folder / name),)))
        if args.limit:
            images = images.subset(list(range(min(args.limit, len(images)))))
        res = evaluate(
            methods,
            images,
            sigmas,
            seed=0,
            progress=lambda s: print("  " + s, file=sys.stderr, flush=True),
        )
        print(f"\n{name} ({len(images)} images), seed 0")
        print(res.format_table())
        print("seconds: " + ", ".join(f"{m} {t:.0f}" for m, t in res.seconds.items()), flush=True)
        write_results(res, Path(args.out) / name, {"data": name, "seed": 0, "models": args.model})


if __name__ == "__main__":
    main()
