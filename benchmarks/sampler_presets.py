"""Issue 18, item 3: the unconditional sampler's presets, measured against the data.

For each model and preset (``SAMPLER_PRESETS``: ks2021, representation), ``--n`` samples start at
the data's per-channel mean; printed: the samples' mean and std of pixel values, the median
per-sample maximum, the same for 256 data images, the median number of steps and how many
samples reached sigma_L. One line per (model, preset), all in one run.

    S=../shared/data; OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler_presets.py \\
        --pair src/denoiserlens/assets/fmnist-small=fashion-mnist:test:pad32 \\
        --pair $S/peers/bf_cnn/BSD400_gray/noise_range_0to100/model.pt=$S/test_images/grayscale/Set68:patch32
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.models import load_model
from denoiserlens.sampling import SAMPLER_PRESETS, sample


def data_spec(text: str, channels: int, size: int) -> DataSpec:
    """SOURCE[:pad32|:patch32]: Fashion-MNIST padded to 32, or photos cut into patches."""
    for tag, kw in ((f":pad{size}", {"pad_to": size}), (f":patch{size}", {"patch_size": size})):
        if text.endswith(tag):
            return DataSpec((text[: -len(tag)],), channels=channels, **kw)
    return DataSpec((text,), channels=channels, size=size)


def stats(x: np.ndarray) -> str:
    per_max = x.reshape(len(x), -1).max(1)
    return f"mean {x.mean():.3f}, std {x.std():.3f}, median per-sample max {np.median(per_max):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", required=True, help="MODEL=DATA")
    ap.add_argument("--presets", default="ks2021,representation")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for pair in args.pair:
        model_path, data = pair.split("=", 1)
        model = load_model(model_path)
        images = open_data(data_spec(data, model.image_channels, args.size))
        rows = np.unique(np.linspace(0, len(images) - 1, 256).round().astype(int))
        ref = to_float(np.stack([images[int(r)] for r in rows])).numpy()
        mean = torch.tensor(images.channel_means()).view(-1, 1, 1)
        print(f"{model_path} on {data}: data ({len(rows)} images) {stats(ref)}", flush=True)
        for preset in args.presets.split(","):
            t0 = time.process_time()
            shape = (args.n, model.image_channels, args.size, args.size)
            out = sample(model.denoise, shape, SAMPLER_PRESETS[preset], mean=mean, seed=args.seed)
            cpu = time.process_time() - t0
            print(
                f"  {preset:15s} samples {stats(out.images.numpy())}; median "
                f"{int(out.steps.median())} steps, {int(out.finished.sum())}/{args.n} reached "
                f"sigma_L, {cpu:.0f} CPU s",
                flush=True,
            )


if __name__ == "__main__":
    main()
