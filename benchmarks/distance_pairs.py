"""Issue 19, item 4: Eq. 4 over >= 45 pairs with the tilted conditional estimator, B/A with its
spread, at the tilt width read off Algorithm 1's samples and at wider ones.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distance_pairs.py \
        --model src/denoiserlens/assets/fmnist-small --out work/distance-pairs.json

Ten random Fashion-MNIST test images (45 pairs; the rows drawn with --seed, never chosen by
looking), ``--n-samples`` reconstructions of each (Algorithm 1, 41 ancestral levels from 255 to
2.55 of 255, Adam matching), then Eq. 4 on a log grid from --sigma-min to --sigma-max (of 255;
by default the model's training range) with the asymptotic tails beyond it.
"""

import argparse
import itertools
import time

import numpy as np
import torch

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.fileio import write_json
from denoiserlens.models import load_model
from denoiserlens.sampling import distance
from denoiserlens.sampling.distance import distance_study, fixed_noise_phi, tilted_distance_study
from denoiserlens.sampling.reconstruct import (
    GuidanceConfig,
    ImageTargets,
    middle_means,
    reconstruct,
)

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", default="fashion-mnist:test")
ap.add_argument("--images", type=int, default=10)
ap.add_argument("--n-samples", type=int, default=2)
ap.add_argument("--grid", type=int, default=10)
ap.add_argument("--sigma-min", type=float, default=0.255)
ap.add_argument("--sigma-max", type=float, default=255.0)
ap.add_argument("--phi-sigma", type=float, default=25.0)
ap.add_argument("--draws", type=int, default=4, help="phi's fixed noise draws")
ap.add_argument("--tau-factors", default="1,3,10,30")
ap.add_argument(
    "--prior-data",
    default="fashion-mnist:train",
    help="mean and covariance above the grid; '' for none",
)
ap.add_argument("--estimator", choices=["tilted", "matching"], default="tilted")
ap.add_argument("--mc-first-draw", type=int, default=None, help="Eq. 4's Monte Carlo noise stream")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", required=True)
args = ap.parse_args()
if args.mc_first_draw is not None:  # another stream of Eq. 4's noisy draws, for its spread
    distance.MC_FIRST_DRAW = args.mc_first_draw

t0 = time.perf_counter()
model = load_model(args.model).eval()
data = open_data(DataSpec((args.data,), pad_to=32))
rows = sorted(np.random.default_rng(args.seed).choice(len(data), args.images, replace=False))
x = to_float(data.subset([int(r) for r in rows]).as_array())
phi_fn = middle_means(model)
targets = ImageTargets(phi_fn, x, args.draws, args.seed, [int(r) for r in rows])
rec = reconstruct(
    phi_fn,
    model.denoise,
    targets,
    args.n_samples,
    torch.logspace(0, -2, 41),
    None,
    GuidanceConfig(),
    args.draws,
    float(x.mean()),
    args.seed,
    ancestral=True,
)
t_rec = time.perf_counter() - t0
grid = torch.logspace(np.log10(args.sigma_min / 255), np.log10(args.sigma_max / 255), args.grid)
pairs = list(itertools.combinations(range(len(x)), 2))
if args.estimator == "matching":  # Algorithm 2's step as the conditional denoiser, same samples
    study = distance_study(
        phi_fn,
        model.denoise,
        x,
        pairs,
        grid,
        rec.images,
        args.n_samples,
        GuidanceConfig(max_iter=10),
        args.draws,
        args.phi_sigma / 255,
        args.seed,
        [int(r) for r in rows],
    )
    write_json(args.out, {**study, "rows": [int(r) for r in rows], "model": args.model})
    c, f = study["constants"], np.array(study["integrands"])
    share = np.median(0.5 * f[:, 0] * np.diff(np.log(study["sigmas"]))[0] / np.array(study["d_sq"]))
    print(
        f"matching, {len(pairs)} pairs: B/A {c['B_over_A']:.2f} (95th/5th pct "
        f"{c['B_over_A_5_95']:.2f}), Pearson r {c['pearson']:.3f}; the lowest level's "
        f"half-interval carries {share:.0%} of d^2 (median); {time.perf_counter() - t0:.0f} s"
    )
    for r in study["by_lower_limit"]:
        print(
            f"  from sigma {r['sigma_min'] * 255:.3g}: B/A {r['B_over_A']:.2f}, r {r['pearson']:.3f}"
        )
    raise SystemExit(0)
phi = fixed_noise_phi(phi_fn, x.shape[1:], args.phi_sigma / 255, args.draws, args.seed)
with torch.no_grad():
    phis, sample_phis = phi(x).double(), phi(rec.images).double()
gap = sample_phis.view(len(x), args.n_samples, -1) - phis[:, None]
tau0 = float(gap.pow(2).mean().sqrt())
taus = [tau0 * float(f) for f in args.tau_factors.split(",")]
prior = None
if args.prior_data:
    train = to_float(open_data(DataSpec((args.prior_data,), pad_to=32)).as_array()).double()
    flat = train.flatten(1)
    prior = (train.mean(0).float(), torch.cov(flat.T))
    del train, flat
study = tilted_distance_study(
    lambda y, _s: model(y),
    phi,
    phis,
    rec.images,
    args.n_samples,
    grid,
    taus,
    args.seed,
    pairs,
    sample_phis,
    prior,
)
study.update(
    rows=[int(r) for r in rows],
    model=args.model,
    n_samples=args.n_samples,
    seconds={"reconstruct": t_rec, "total": time.perf_counter() - t0},
)
write_json(args.out, study)

cos = torch.nn.functional.cosine_similarity(
    sample_phis.view(len(x), args.n_samples, -1), phis[:, None], dim=-1
)
print(
    f"{len(pairs)} pairs, {args.n_samples} samples each; Algorithm 1's phi match: median cosine "
    f"{float(cos.median()):.4f}; tau0 = rms(phi(sample) - phi(target)) = {tau0:.3g}"
)
print(
    f"grid {args.sigma_min:g}..{args.sigma_max:g} of 255, {args.grid} levels; "
    f"{t_rec:.0f} s reconstructing, {study['seconds']['total']:.0f} s in all"
)
print(
    "| tau / tau0 | B/A | bootstrap median [5%, 95%] | 95th/5th pct | Pearson r | "
    "tail share | Gaussian share, match | end slopes | d^2 / closed form (median) |"
)
print("|---|---|---|---|---|---|---|---|---|")
for f, r in zip(args.tau_factors.split(","), study["by_tau"], strict=True):
    c, s = r["constants"], r["constants"]["spread"]
    ratio = np.median(np.array(r["d_sq"]) / np.array(r["d_sq_closed_form"]))
    print(
        f"| {f} | {c['B_over_A']:.2f} | {s['bootstrap_median']:.2f} [{s['bootstrap_5']:.2f}, "
        f"{s['bootstrap_95']:.2f}] | {c['B_over_A_5_95']:.2f} | {c['pearson']:.3f} | "
        f"{r['tail_share']:.3f} | {r.get('gaussian_share', float('nan')):.3f}, "
        f"{r.get('gaussian_match', float('nan')):.2f} | {r['end_slopes'][0]:.2f}, {r['end_slopes'][1]:.2f} | "
        f"{ratio:.2f} |"
    )
