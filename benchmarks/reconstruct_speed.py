"""Issue 5: time to reconstruct 8 samples of one target with the paper's settings (schedule
linspace(1, 0.03, 100), n_noise 10, guidance max_iter 100, stop at 1% of the initial loss), our
path vs the authors' way in the same run, and unconditional sampling cost.

- ours: the guidance back-propagates through the encoder and middle block only, each sample
  stops on its own, and a step that raised a sample's loss is undone and its step size halved
  (``denoiserlens.sampling.reconstruct``);
- naive: the loss is computed after a full forward pass of the whole network (decoder included),
  plain gradient descent with a fixed step, and every sample keeps stepping until all have
  converged.

On 2 CPU cores the full 100-step schedule takes long; ``--steps-run`` times the first steps of it
for both paths (the same steps, the same noise) and extrapolates per step.

    .venv/bin/python benchmarks/reconstruct_speed.py --model work/runs/fmnist-small \\
        --data fashion-mnist:test --pad-to 32 [--preset paper --size 64]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.models import build_model, load_model, preset_config
from denoiserlens.sampling import SamplerConfig, sample
from denoiserlens.sampling.reconstruct import GuidanceConfig, middle_means, reconstruct


def naive_guidance(model):
    """The authors' way: the loss after a whole-network forward pass (decoder computed too), and
    every sample steps until all have converged. Same signature as ``guidance_step``."""
    block, last = model.middle_block, model.block_names[-1]

    def guide(phi_fn, x, target, cfg: GuidanceConfig):
        x = x.detach().clone()
        first = None
        loss = None
        for _ in range(cfg.max_iter):
            xi = x.requires_grad_(True)
            with torch.enable_grad():
                out = model.blocks_until(xi, last)[block].output.float().mean(dim=(2, 3))
                loss = (out - target).pow(2).sum(1)
                if first is None:
                    first = loss.detach()
                if bool((loss.detach() <= cfg.tol * first).all()):
                    break
                grad = torch.autograd.grad(loss.sum(), xi)[0]
            x = (xi - cfg.lr * grad).detach()
        return x.detach(), {"initial_loss": first, "final_loss": loss.detach()}

    return guide


def run(
    model,
    xc,
    n,
    sigmas,
    guide,
    n_noise,
    steps_run,
    naive: bool,
    seed=0,
    bf16=False,
    channels_last=False,
):
    """Wall and CPU seconds per schedule step, and the final phi cosine of ``n`` samples, over
    the first ``steps_run`` levels of ``sigmas`` (ancestral score step, no Figure-20 bookkeeping).
    With ``channels_last`` the model and the matching inputs are in that memory format."""
    g = torch.Generator().manual_seed(seed)
    kw = {"guide_fn": naive_guidance(model)} if naive else {}
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    t0, c0 = time.perf_counter(), time.process_time()
    r = reconstruct(middle_means(model, bf16, channels_last), model.denoise, xc, n,
                    sigmas[:steps_run], guidance=guide, n_noise=n_noise, mean=float(xc.mean()),
                    generator=g, final_phi_sigma=float(sigmas[steps_run - 1]), ancestral=True,
                    record_noise=False, **kw)  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall / steps_run, cpu / steps_run, float(r.cosine.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="Run directory (default: random weights).")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--data", default="fashion-mnist:test")
    ap.add_argument("--pad-to", type=int, default=32)
    ap.add_argument("--steps-run", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.model:
        model = load_model(args.model)
        name = args.model
    else:
        model = build_model(preset_config(args.preset).to_dict(), seed=0).eval()
        name = f"{args.preset} (random weights)"
    spec = DataSpec((args.data,), channels=model.image_channels,
                    pad_to=args.pad_to if args.size == args.pad_to else None,
                    size=None if args.size == args.pad_to else args.size, limit=1)  # fmt: skip
    xc = to_float(open_data(spec)[0])[None]
    sigmas = torch.linspace(1, 0.03, 100)
    guide = GuidanceConfig(lr=args.lr, max_iter=100, tol=0.01)
    print(f"model {name}, target {tuple(xc.shape)}, 8 samples, steps 1-{args.steps_run} of 100")
    rows = {"ours": [], "ours-bf16": [], "ours-bf16-cl": [], "naive": []}
    for _ in range(args.repeats):
        for tag in rows:
            rows[tag].append(run(model, xc, 8, sigmas, guide, 10, args.steps_run, tag == "naive",
                                 bf16="bf16" in tag, channels_last=tag.endswith("cl")))  # fmt: skip
    med = {tag: np.median(np.array(r), axis=0) for tag, r in rows.items()}
    for tag, (wall, cpu, cos) in med.items():
        print(f"{tag:12s} {wall:8.2f} s per step ({wall * 100 / 60:6.1f} min for 100 steps), "
              f"CPU {cpu:8.2f} s per step, final phi cosine {cos:.4f}")  # fmt: skip
    for tag in ("ours", "ours-bf16", "ours-bf16-cl"):
        print(
            f"speed-up of {tag}: {med['naive'][0] / med[tag][0]:.1f}x wall, "
            f"{med['naive'][1] / med[tag][1]:.1f}x CPU time (median of {args.repeats})"
        )
    # unconditional sampling: steps and seconds per sample
    t0 = time.perf_counter()
    out = sample(model.denoise, (8, *xc.shape[1:]), SamplerConfig(sigma_0=1.0, sigma_L=0.01),
                 mean=float(xc.mean()), seed=0)  # fmt: skip
    sec = time.perf_counter() - t0
    print(
        f"unconditional: 8 samples, median {int(out.steps.median())} steps, "
        f"{sec / 8:.2f} s per sample (batch of 8)"
    )


if __name__ == "__main__":
    main()
