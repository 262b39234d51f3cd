"""Issue 18, item 6: our phi and Algorithm 1 against the authors' own code, same weights, same
images, in one run.

``--authors-code PATH`` is a checkout of ``Zahra-Kadkhodaie/texture_model`` that you fetch
yourself (nothing of it is part of denoiserlens). Their ``UNet_flex`` is built from ``PATH/code/
network.py`` with our model's architecture, our weights are copied into it (their layout), and
the two forward passes are checked to agree. Then, timed in CPU seconds:

- phi of ``--images`` images at sigma ``--sigma`` with ``--n-noise`` draws: theirs
  (``phi_c_noise_averaged``: a whole forward pass of every noisy copy, all block means stored)
  against ours (``denoiserlens.represent.phi``: encoder and middle block only), float32, with and
  without channels_last, with bf16, and under ``torch.compile`` (timed once compiled; the first,
  compiling call is printed beside);
- Algorithm 1 for ``--samples`` samples of one target on ``--levels`` noise levels linspace(1,
  0.03) with ``--max-iter`` Adam iterations (lr 0.01, 1% stop) per level: theirs
  (``self_conditional_sampling``: the target tiled to the samples, phi targets for every level up
  front, matching through the whole network, x <- f(x_t)) against ours (``reconstruct`` with
  ``--matcher adam`` and their score step, ``ancestral=False``), and the final phi relative error
  of each, measured with one function at the last level.

Their ``algorithm_inv_prob`` imports ``dataloader_func``, which needs torchvision; only its
``rescale_image_range`` name is imported and none of the functions timed here use it, so a stand-in
module is put in ``sys.modules`` for that import.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vs_authors.py --authors-code /path/to/texture_model \\
        --model src/denoiserlens/assets/fmnist-small
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.models import load_model
from denoiserlens.represent import phi
from denoiserlens.sampling.reconstruct import (
    GuidanceConfig,
    ImageTargets,
    middle_means,
    reconstruct,
)


def authors_modules(path: Path):
    """Their network and algorithm modules, imported from the checkout."""
    sys.path.insert(0, str(path / "code"))
    stand_in = types.ModuleType("dataloader_func")
    stand_in.rescale_image_range = None  # imported by name only
    sys.modules.setdefault("dataloader_func", stand_in)
    import algorithm_inv_prob
    import network

    return network, algorithm_inv_prob


def authors_unet(network, ours):
    """Their UNet_flex with our model's architecture and weights (biases they have and we do not
    are zero)."""
    cfg = ours.config
    args = argparse.Namespace(
        num_kernels=list(cfg.channels),
        num_enc_conv=list(cfg.enc_convs),
        num_mid_conv=cfg.mid_convs,
        num_dec_conv=list(cfg.dec_convs),
        kernel_size=cfg.kernel_size,
        padding=cfg.kernel_size // 2,
        bias=cfg.bias,
        num_channels=cfg.image_channels,
        NormType={"layer": "LayerNorm", "instance": "InstanceNorm", "batch": "BatchNorm"}[cfg.norm],
        upsample_with_bias=cfg.up_bias,
    )
    theirs = network.UNet_flex(args)
    blocks = {f"E{b + 1}": theirs.encoder[str(b)] for b in range(cfg.levels)}
    blocks["M"] = theirs.mid
    blocks.update({f"D{b + 1}": theirs.decoder[str(b)] for b in range(cfg.levels)})
    with torch.no_grad():
        for p in theirs.parameters():
            p.zero_()
        for name, module in blocks.items():
            ours_c = [m for m in ours.blocks[name].modules() if isinstance(m, nn.Conv2d)]
            their_c = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
            for a, b in zip(ours_c, their_c, strict=True):
                b.weight.copy_(a.weight)
                if a.bias is not None:
                    b.bias.copy_(a.bias)
            ours_n = [m for m in ours.blocks[name].modules() if hasattr(m, "gain")]
            their_n = [m for m in module.modules() if hasattr(m, "gammas")]
            for a, b in zip(ours_n, their_n, strict=True):
                b.gammas.copy_(a.gain)
        for b in range(cfg.levels):
            theirs.upsample[str(b)].weight.copy_(ours.up[f"D{b + 1}"].weight)
            if ours.up[f"D{b + 1}"].bias is not None:
                theirs.upsample[str(b)].bias.copy_(ours.up[f"D{b + 1}"].bias)
    return theirs.eval()


def cpu_time(fn):
    t0 = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # their functions print every level
        out = fn()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors-code", type=Path, required=True)
    ap.add_argument("--model", default="src/denoiserlens/assets/fmnist-small")
    ap.add_argument("--data", default="fashion-mnist:test")
    ap.add_argument("--pad-to", type=int, default=32)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--n-noise", type=int, default=20)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--rec-noise", type=int, default=10, help="n_noise of Algorithm 1's targets")
    ap.add_argument(
        "--our-matcher",
        default=None,
        metavar="ITER:LR",
        help="Also time ours with this many Adam iterations at this rate (bf16 matching), e.g. 6:0.05",
    )
    ap.add_argument(
        "--our-target-noise",
        type=int,
        default=None,
        help="With --our-matcher: also time ours with targets' phi averaged over this many draws",
    )
    ap.add_argument("--parts", default="phi,alg1")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    network, alg = authors_modules(args.authors_code)
    ours = load_model(args.model)
    theirs = authors_unet(network, ours)
    for p in theirs.parameters():
        p.requires_grad_(False)
    spec = DataSpec(
        (args.data,), channels=ours.image_channels, pad_to=args.pad_to, limit=args.images
    )
    images = open_data(spec)
    x = to_float(np.stack([images[i] for i in range(len(images))]))
    with torch.no_grad():
        gap = (theirs(x[:4]) - ours(x[:4])).abs().max().item()
    print(
        f"model {args.model}: their UNet_flex with our weights, max |forward difference| "
        f"{gap:.2e} on 4 images {tuple(x.shape[1:])}",
        flush=True,
    )
    assert gap < 1e-4, "their forward pass does not reproduce ours: the export is wrong"

    if "phi" in args.parts:
        sig = torch.full((len(x), 1, 1, 1), args.sigma)
        t_theirs, p_theirs = cpu_time(
            lambda: alg.phi_c_noise_averaged(theirs, x, sig, args.n_noise)
        )
        mid = len(p_theirs) // 2
        t_ours, p_ours = cpu_time(lambda: phi(ours, x, args.sigma, args.n_noise, seed=args.seed))
        ours.to(memory_format=torch.channels_last)
        t_cl, _ = cpu_time(
            lambda: phi(ours, x, args.sigma, args.n_noise, seed=args.seed, channels_last=True)
        )
        t_bf, p_bf = cpu_time(
            lambda: phi(
                ours, x, args.sigma, args.n_noise, seed=args.seed, channels_last=True, bf16=True
            )
        )
        compiled = {}  # torch.compile of our blocks: the first call compiles, the second is timed
        for name, fast in (("float32", False), ("bf16 + channels_last", True)):
            opts = {"bf16": fast, "channels_last": fast, "compile": True}
            run = functools.partial(phi, ours, x, args.sigma, args.n_noise, args.seed, **opts)
            t_first, _ = cpu_time(run)
            t_warm, p_c = cpu_time(run)
            compiled[name] = (t_first, t_warm, p_c)
        ours.to(memory_format=torch.contiguous_format)
        for name, (t_first, t_warm, p_c) in compiled.items():
            cos_c = torch.nn.functional.cosine_similarity(p_c, p_ours).median().item()
            print(
                f"phi, ours compiled, {name}: {t_warm:.2f} CPU s ({t_theirs / t_warm:.1f}x "
                f"theirs) once compiled; the first call, compiling, {t_first:.1f} CPU s; median "
                f"cosine to ours in float32 eager (same draws) {cos_c:.6f}",
                flush=True,
            )
        cos_bf = torch.nn.functional.cosine_similarity(p_bf, p_ours).median().item()
        print(
            f"phi, ours with bf16 autocast + channels_last: {t_bf:.1f} CPU s "
            f"({t_theirs / t_bf:.1f}x theirs); median cosine to ours in float32 (same draws) "
            f"{cos_bf:.4f}",
            flush=True,
        )
        cos = torch.nn.functional.cosine_similarity(p_theirs[mid], p_ours).median().item()
        print(
            f"phi of {len(x)} images, sigma {args.sigma:g}, {args.n_noise} draws: theirs "
            f"{t_theirs:.1f} CPU s, ours {t_ours:.1f} ({t_theirs / t_ours:.1f}x), ours + "
            f"channels_last {t_cl:.1f} ({t_theirs / t_cl:.1f}x); median cosine of the two "
            f"estimates {cos:.4f} (different noise draws)",
            flush=True,
        )

    if "alg1" in args.parts:
        xc = x[:1]
        sigmas = torch.linspace(1, 0.03, args.levels)
        mean = float(np.mean(images.channel_means()))
        torch.manual_seed(args.seed)
        start = torch.full((args.samples, *xc.shape[1:]), mean)
        t_theirs, out = cpu_time(
            lambda: alg.self_conditional_sampling(
                theirs,
                start,
                xc,
                sigmas,
                max_iter=args.max_iter,
                seed=args.seed,
                n_noise=args.rec_noise,
                lr=0.01,
                return_lists=False,
            )
        )
        guide = GuidanceConfig(max_iter=args.max_iter, tol=0.01, matcher="adam")
        phi_fn = middle_means(ours)
        t_ours, rec = cpu_time(
            lambda: reconstruct(
                phi_fn,
                ours.denoise,
                ImageTargets(phi_fn, xc, args.rec_noise, args.seed),
                args.samples,
                sigmas,
                guidance=guide,
                n_noise=args.rec_noise,
                mean=mean,
                seed=args.seed,
                ancestral=False,
                record_noise=False,
            )
        )

        def ours_with(guide: GuidanceConfig, target_noise: int = args.rec_noise):
            return lambda: reconstruct(
                phi_fn,
                ours.denoise,
                ImageTargets(phi_fn, xc, target_noise, args.seed),
                args.samples,
                sigmas,
                guidance=guide,
                n_noise=args.rec_noise,
                mean=mean,
                seed=args.seed,
                ancestral=False,
                record_noise=False,
            )

        guide_bf = GuidanceConfig(max_iter=args.max_iter, tol=0.01, matcher="adam", bf16=True)
        t_bf, rec_bf = cpu_time(ours_with(guide_bf))
        rows = [("theirs", t_theirs, out), ("ours", t_ours, rec.images)]
        rows.append(("ours, bf16 matching", t_bf, rec_bf.images))
        if args.our_matcher:
            iters, lr = args.our_matcher.split(":")
            tuned = GuidanceConfig(
                max_iter=int(iters), tol=0.01, matcher="adam", lr=float(lr), bf16=True
            )
            t_tuned, rec_tuned = cpu_time(ours_with(tuned))
            rows.append(
                (f"ours, bf16, {iters} Adam iterations at lr {lr}", t_tuned, rec_tuned.images)
            )
            if args.our_target_noise:
                n_t = args.our_target_noise
                for name, guide in (
                    (f"{iters} at lr {lr}", tuned),
                    (f"{args.max_iter} at lr 0.01", guide_bf),
                ):
                    t_n, rec_n = cpu_time(ours_with(guide, n_t))
                    rows.append((f"ours, bf16, {name}, targets of {n_t} draws", t_n, rec_n.images))
        last = float(sigmas[-1])
        target = phi(ours, xc, last, 50, seed=args.seed + 1)  # one yardstick for both
        for name, t, imgs in rows:
            got = phi(ours, imgs.float(), last, 50, seed=args.seed + 2)
            rel = ((got - target).norm(dim=1) / target.norm()).median().item()
            ratio = "" if name == "theirs" else f" ({t_theirs / t:.1f}x theirs)"
            print(
                f"Algorithm 1, {args.samples} samples of one target, {args.levels} levels, "
                f"{args.max_iter} Adam iterations per level (theirs): {name} {t:.1f} CPU s{ratio}, final "
                f"phi relative error (median, sigma {last:g}) {rel:.3f}, sample mean "
                f"{imgs.mean().item():.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
