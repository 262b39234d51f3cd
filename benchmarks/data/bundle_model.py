"""Copy a trained run into the package as a bundled model: float16 weights (half the size; the
loader converts them back to float32), config.json, the training log and the command.

    .venv/bin/python benchmarks/data/bundle_model.py work/runs/fmnist-small \\
        src/denoiserlens/assets/fmnist-small [work/train_fmnist.sh]

The script is copied only when given (the gray-photos asset keeps its own).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from denoiserlens.models import load_model
from denoiserlens.models.checkpoint import save_weights


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(run)
    save_weights(model, out / "weights.safetensors", dtype=torch.float16)
    shutil.copy(run / "config.json", out / "config.json")
    shutil.copy(run / "log.jsonl", out / "train_log.jsonl")
    for script in map(Path, sys.argv[3:]):
        shutil.copy(script, out / script.name)
    half = load_model(out)
    y = torch.rand(4, model.image_channels, 32, 32, generator=torch.Generator().manual_seed(0))
    diff = float((half.denoise(y) - model.denoise(y)).abs().max())
    size = (out / "weights.safetensors").stat().st_size / 2**20
    print(f"{out}: {size:.1f} MiB of weights; max |float16 - float32| output difference {diff:.2e}")


if __name__ == "__main__":
    main()
