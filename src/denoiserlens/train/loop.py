"""Training a blind denoiser (Eq. 1, Appendix A.3): MSE of the clean estimate, sigma drawn per image.

Exact resume: the data order of epoch e is a permutation seeded by (seed, e) (DistributedSampler),
and the noise of step t on rank r is drawn from a generator seeded by (seed, r, t), so a run stopped
at any checkpoint and resumed gives the same weights as one that never stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

import denoiserlens
from denoiserlens.data import DataSpec, ImageSet, UInt8Images, collate_to_float, open_data
from denoiserlens.data.open import recorded_spec, split_indices
from denoiserlens.errors import UserError
from denoiserlens.evaluation.metrics import psnr
from denoiserlens.fileio import LOCK, TMP_SUFFIX, folder_lock, read_json, write_atomic, write_json
from denoiserlens.models import Denoiser, build_model, load_model, save_weights
from denoiserlens.models.checkpoint import CONFIG, WEIGHTS
from denoiserlens.settings import setting
from denoiserlens.train.noise import add_noise, random_dihedral, sample_sigma
from denoiserlens.train.state import TRAIN_STATE, load_train_state, save_train_state

LOG = "log.jsonl"
# training settings a resumed run may change: none of them changes the weights it computes
FREE_ON_RESUME = (
    "steps",
    "epochs",
    "checkpoint_every",
    "eval_every",
    "eval_images",
    "eval_sigmas",
    "num_workers",
)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (saved in config.json). Noise levels in [0, 1] pixel units."""

    steps: int = setting(
        10000, "Optimizer steps in all (a resumed run may extend them).", kind="count"
    )
    batch_size: int = setting(64, "Per process.", kind="count")
    lr: float = setting(1e-3, "Adam learning rate.", kind="positive")
    lr_halve_every: int | None = setting(  # None: constant (the paper: every 100 epochs)
        None, "Halve the learning rate every N steps.", kind="count"
    )
    sigma_dist: str = setting(
        "sqrt",
        "sqrt: density proportional to 1/sqrt(sigma).",
        choices=("sqrt", "uniform", "log-uniform"),
    )
    sigma_min: float = setting(0.0, "Lowest training noise level, of 255.", kind="sigma", scale=255)
    sigma_max: float = setting(
        1.0, "Highest training noise level, of 255.", kind="sigma", scale=255
    )
    bf16: bool = setting(False, "bf16 autocast (weights and loss stay float32).")
    channels_last: bool = setting(
        False, "channels_last memory format (pays off together with --bf16 on CPUs)."
    )
    augment: bool = setting(False, "Random flips and quarter turns of each training image.")
    seed: int = setting(0, "Seed of the weights, the split, the batches and the noise.", kind="int")
    test_fraction: float = setting(
        0.05, "Held-out fraction of the images (deterministic split).", kind="float"
    )
    eval_every: int = setting(500, "Steps between evaluations on the held-out split.", kind="count")
    eval_images: int = 256
    eval_sigmas: tuple[float, ...] = (15 / 255, 25 / 255, 50 / 255)
    checkpoint_every: int = setting(
        1000, "Steps between checkpoints (written atomically).", kind="count"
    )
    num_workers: int = setting(0, "DataLoader workers.", name="workers", kind="int")
    init_from: str | None = setting(
        None,
        "Fine-tune: start from this model's weights (run dir or .safetensors; same architecture).",
        kind="path",
    )
    # the schedule in epochs, as the paper gives it (1000 epochs, lr halved every 100): steps and
    # lr_halve_every follow from the training images once they are known (:meth:`resolved`),
    # and every epoch ends with a checkpoint
    epochs: int | None = setting(
        None,
        "The schedule in passes over the training images instead of --steps (the paper: 1000); "
        "each epoch ends with a checkpoint.",
        kind="count",
    )
    lr_halve_every_epochs: int | None = setting(
        None,
        "Halve the learning rate every N epochs (with --epochs; the paper: 100).",
        kind="count",
    )
    global_batch: int | None = setting(  # across processes: batch_size = global_batch / world
        None,
        "Batch across all processes, split evenly (the paper: 1024); replaces --batch-size.",
        kind="count",
    )
    compile: bool = setting(
        False, "torch.compile the network (a warm-up of minutes first; pays on long runs)."
    )
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("lr_halve_every", "epochs", "lr_halve_every_epochs", "global_batch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.lr_halve_every_epochs is not None and self.epochs is None:
            raise ValueError("lr_halve_every_epochs needs the schedule in epochs (epochs)")
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 <= sigma_min <= sigma_max")
        if self.sigma_dist == "log-uniform" and self.sigma_min <= 0:
            raise ValueError("log-uniform noise levels need sigma_min > 0")

    def steps_per_epoch(self, train_images: int, world: int) -> int:
        """Optimizer steps in one pass over the training images: each of the ``world`` processes
        takes its shard (``train_images // world``, DistributedSampler's drop_last) in batches."""
        return (train_images // world) // self.batch_size

    def resolved(self, train_images: int, world: int) -> TrainConfig:
        """The per-process batch size from ``global_batch``, and the steps and the halving
        interval from ``epochs`` and ``lr_halve_every_epochs``, for ``train_images`` on ``world``
        processes (the paper: global batch 1024, 1000 epochs, lr halved every 100)."""
        cfg = self
        if self.global_batch is not None:
            if self.global_batch % world:
                raise UserError(
                    f"global batch {self.global_batch} is not divisible by the {world} processes"
                )
            cfg = replace(cfg, batch_size=self.global_batch // world)
        per_epoch = cfg.steps_per_epoch(train_images, world)
        if per_epoch == 0:
            raise UserError(
                f"batch size {cfg.batch_size} exceeds the {train_images // world} "
                "training images per process"
            )
        if self.epochs is not None:
            halve = self.lr_halve_every_epochs
            every = cfg.lr_halve_every if halve is None else halve * per_epoch
            cfg = replace(cfg, steps=self.epochs * per_epoch, lr_halve_every=every)
        return cfg

    def lr_at(self, step: int) -> float:
        """The paper's schedule: the learning rate halves every ``lr_halve_every`` steps."""
        if not self.lr_halve_every:
            return self.lr
        return self.lr * 0.5 ** (step // self.lr_halve_every)


def _step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63))
    return g


@torch.no_grad()
def evaluate_psnr(
    model: Denoiser, images: torch.Tensor, sigmas: tuple[float, ...], seed: int, batch: int = 64
) -> dict[str, float]:
    """Mean PSNR of x_hat(x + sigma z) over ``images`` at each sigma; noise seeded by ``seed``."""
    was_training = model.training
    model.eval()
    out = {}
    device = next(model.parameters()).device
    for k, sigma in enumerate(sigmas):
        g = torch.Generator(device=device).manual_seed(seed + k)
        vals = []
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device)
            vals.append(psnr(model(add_noise(x, sigma, g)).clamp(0, 1), x))
        out[f"{sigma * 255:g}"] = float(torch.cat(vals).mean())
    model.train(was_training)
    return out


def _prepare_run(run_dir: Path, config: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """Check the run directory (read only); return the config.json to write, if any.

    A new run refuses an existing directory; a resumed one requires the same configuration except
    ``FREE_ON_RESUME``: the number of steps (a resumed run can be extended) and the bookkeeping
    that does not change the weights (checkpoint and evaluation intervals, loader workers). A run
    killed before its first checkpoint (config.json but no train state) resumes from step 0; one
    killed before it wrote config.json (its folder holds only the lock) starts; a folder that does
    not exist is refused before this (:func:`folder_lock`).
    """
    cfg_path = run_dir / CONFIG
    if not resume:
        if cfg_path.exists() or (run_dir / WEIGHTS).exists():
            raise UserError(f"{run_dir}: run directory exists; use --resume or another --run-dir")
        return config
    if not cfg_path.exists():
        left = [p.name for p in run_dir.iterdir()] if run_dir.is_dir() else None
        if left is not None and all(n == LOCK or n.endswith(TMP_SUFFIX) for n in left):
            return config  # killed before it wrote its config: nothing done, start it
        raise UserError(f"{run_dir}: nothing to resume (no {CONFIG})")
    old = read_json(cfg_path)  # without a TRAIN_STATE: killed before its first checkpoint
    new = json.loads(json.dumps(config))
    defaults = json.loads(json.dumps(asdict(TrainConfig())))  # settings added since the run
    old_train = {k: v for k, v in {**defaults, **old["train"]}.items() if k not in FREE_ON_RESUME}
    new_train = {k: v for k, v in new["train"].items() if k not in FREE_ON_RESUME}
    # runs from before the data mean or a data setting was recorded resume without it
    old_data, new_data = (
        {k: v for k, v in recorded_spec(d).items() if k != "channel_means"}
        for d in (old["data"], new["data"])
    )
    for key, a, b in (
        ("model", old["model"], new["model"]),
        ("train", old_train, new_train),
        ("data", old_data, new_data),
        ("number of processes", old.get("world_size", 1), new["world_size"]),
    ):
        if a != b:
            raise UserError(f"{run_dir}: --resume with a different {key} configuration")
    return {**old, "train": new["train"]} if old["train"] != new["train"] else None


def _kept_on_resume(line: str, resume_step: int) -> bool:
    """Whether a log line survives a resume from ``resume_step``: not past the checkpoint, not a
    final line (written again by the run that finishes), not cut short by a kill."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return record.get("step", 0) <= resume_step and not record.get("final", False)


class _Log:
    """JSON lines in the run directory. On resume, lines past the checkpoint are dropped, and so is
    a final line (a run killed after writing it, or a finished run resumed, writes it again)."""

    def __init__(self, path: Path, enabled: bool, resume_step: int) -> None:
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            lines = path.read_text().splitlines()
            keep = [ln for ln in lines if _kept_on_resume(ln, resume_step)]
            write_atomic(path, lambda tmp: tmp.write_text("".join(k + "\n" for k in keep)))

    def write(self, **record: Any) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(
    model_arch: dict[str, Any],
    data: DataSpec | ImageSet,
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    device: str | torch.device = "cpu",
    max_minutes: float | None = None,
    progress: bool = True,
    data_spec: DataSpec | None = None,
) -> dict[str, Any]:
    """Train a denoiser into ``run_dir``; returns the final evaluation and step.

    ``data`` is a specification (read here) or images already read (``data_spec`` then says how
    they were read, for config.json).

    Under torchrun (``torch.distributed`` initialised) every process trains on its shard of each
    epoch with DistributedDataParallel; rank 0 writes the files.
    """
    run_dir = Path(run_dir)
    rank, world = _dist_info()
    model, train_set, test_set, config, cfg = _setup(model_arch, data, cfg, data_spec, world)
    missing = f"{run_dir}: nothing to resume (no {CONFIG})" if resume else None
    with folder_lock(run_dir, holder=rank == 0, missing=missing):  # one writer at a time
        return _train_in(
            run_dir,
            model,
            train_set,
            test_set,
            config,
            cfg,
            resume,
            torch.device(device),
            max_minutes,
            progress,
            rank,
            world,
        )


def _train_in(
    run_dir: Path,
    model: Denoiser,
    train_set,
    test_set,
    config: dict,
    cfg: TrainConfig,
    resume: bool,
    device: torch.device,
    max_minutes: float | None,
    progress: bool,
    rank: int,
    world: int,
) -> dict[str, Any]:
    """The training loop of :func:`train`, in a run directory this process has locked."""
    to_write = _prepare_run(run_dir, config, resume)  # every rank checks before anyone writes
    if world > 1:
        dist.barrier()
    if rank == 0 and to_write is not None:
        write_json(run_dir / CONFIG, to_write)

    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = 0
    if resume and (run_dir / TRAIN_STATE).exists():  # else killed before its first checkpoint
        step = load_train_state(run_dir / TRAIN_STATE, model, optimizer)["step"]
    net = DistributedDataParallel(model) if world > 1 else model
    if cfg.compile:  # the DDP wrapper compiled, as torch.compile's DDP notes advise
        net = torch.compile(net)

    sampler = DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    steps_per_epoch = cfg.steps_per_epoch(len(train_set), world)  # >= 1: cfg.resolved checked
    test_x = torch.from_numpy(test_set.as_array()).float() / 255 if len(test_set) else None
    log = _Log(run_dir / LOG, rank == 0, step)
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        disable=rank != 0 or not progress,
        unit="step",
        dynamic_ncols=True,
    )
    t0, seen = time.time(), 0
    result: dict[str, Any] = {}
    stop = False
    while step < cfg.steps and not stop:
        epoch, skip = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip * cfg.batch_size :]
        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=indices,
            drop_last=True,
            num_workers=cfg.num_workers,
            collate_fn=collate_to_float,
        )
        for x in loader:
            loss, batch_psnr = _train_step(net, optimizer, x, cfg, rank, step, device)
            step += 1
            seen += len(x) * world
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.2e}", psnr=f"{batch_psnr:.2f}dB")
            if step % 50 == 0 or step == cfg.steps:
                log.write(
                    step=step,
                    epoch=epoch,
                    loss=loss,
                    psnr=batch_psnr,
                    lr=cfg.lr_at(step - 1),
                    images_per_s=seen / (time.time() - t0),
                )
            if (
                test_x is not None
                and rank == 0
                and (step % cfg.eval_every == 0 or step == cfg.steps)
            ):
                result = evaluate_psnr(model, test_x, cfg.eval_sigmas, cfg.seed)
                log.write(step=step, eval_psnr=result)
                bar.write(
                    f"step {step}: test PSNR "
                    + ", ".join(f"sigma {k}: {v:.2f} dB" for k, v in result.items())
                )
            out_of_time = _agree(
                max_minutes is not None and time.time() - t0 > 60 * max_minutes, world, device
            )
            end_of_epoch = cfg.epochs is not None and step % steps_per_epoch == 0
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time or end_of_epoch:
                _checkpoint(run_dir, model, optimizer, step, rank)
            if step >= cfg.steps or out_of_time:
                stop = True
                break
    bar.close()
    if not result and test_x is not None and rank == 0 and step >= cfg.steps:
        result = evaluate_psnr(model, test_x, cfg.eval_sigmas, cfg.seed)  # a finished run resumed
    identical = _ranks_identical(model) if world > 1 else None
    log.write(step=step, final=True, eval_psnr=result, ddp_weights_identical=identical)
    return {
        "step": step,
        "eval_psnr": result,
        "finished": step >= cfg.steps,
        "ddp_weights_identical": identical,
    }


def check_training_images(images: ImageSet, model: Denoiser) -> None:
    """Refuse images ``model`` cannot be trained on (mixed sizes, other channels, a size not a
    multiple of its downsampling), before anything is written."""
    if images.fixed_size is None:
        raise UserError(f"{images.source}: training images must share one size (use patches)")
    if images.channels != model.image_channels:
        raise UserError(
            f"the data has {images.channels} channels, the model takes "
            f"{model.image_channels}; set --channels"
        )
    h, w = images.fixed_size
    if h % model.size_multiple or w % model.size_multiple:
        raise UserError(f"training images {h}x{w} are not divisible by {model.size_multiple}")


def _setup(model_arch: dict, data, cfg: TrainConfig, data_spec, world: int):
    """Read the data, build the seeded model, split the data, and describe the run."""
    images = data if isinstance(data, ImageSet) else open_data(data)
    model = build_model(model_arch, seed=cfg.seed)  # the initial weights depend on the seed only
    if cfg.init_from is not None:
        _init_from(model, cfg.init_from)
    check_training_images(images, model)
    train_idx, test_idx = split_indices(len(images), cfg.test_fraction, cfg.seed)
    cfg = cfg.resolved(len(train_idx), world)  # checked before anything is written
    train_set = UInt8Images(images, train_idx)  # a view: a memmap stays on disk
    test_set = images.subset(test_idx[: cfg.eval_images])
    spec = data if isinstance(data, DataSpec) else data_spec
    data_desc = spec.to_dict() if spec is not None else {"source": images.source}
    config = {
        "model": model.arch_config(),
        "train": asdict(cfg),
        "data": {
            **data_desc,
            "fingerprint": images.fingerprint,
            "count": len(images),
            "train_count": len(train_idx),
            "test_count": len(test_idx),
            "channel_means": images.channel_means(index=train_idx),
        },
        "world_size": world,
        "version": denoiserlens.__version__,
    }
    return model, train_set, test_set, config, cfg


def _init_from(model: Denoiser, path: str) -> None:
    """Fine-tuning: copy the weights of ``path``, which must have the same architecture."""
    source = load_model(path)
    if source.arch_config() != model.arch_config():
        raise UserError(f"{path}: --init-from needs the same architecture as the run")
    model.load_state_dict(source.state_dict())


def _train_step(net, optimizer, x, cfg: TrainConfig, rank: int, step: int, device):
    x = x.to(device, non_blocking=True)
    g = _step_generator(cfg.seed, rank, step, device)
    if cfg.augment:
        x = random_dihedral(x, g)
    sigma = sample_sigma(len(x), cfg.sigma_dist, cfg.sigma_min, cfg.sigma_max, g, device)
    y = add_noise(x, sigma, g)
    if cfg.channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr_at(step)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        x_hat = net(y)
    loss = F.mse_loss(x_hat.float(), x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = float(loss.detach())
    return value, -10 * math.log10(max(value, 1e-12))


def _checkpoint(run_dir: Path, model: Denoiser, optimizer, step: int, rank: int) -> None:
    if rank != 0:
        return
    save_train_state(run_dir / TRAIN_STATE, model, optimizer, {"step": step})
    save_weights(model, run_dir / WEIGHTS)


def _agree(flag: bool, world: int, device) -> bool:
    """True on every rank if it is true on any (so that all ranks stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _ranks_identical(model: Denoiser) -> bool:
    """Parameters and buffers equal on every rank? Buffers (running statistics) follow rank 0, as
    DistributedDataParallel broadcasts them before each forward pass."""
    for buf in model.buffers():
        dist.broadcast(buf, 0)
    flat = torch.cat([p.detach().flatten().double() for p in model.state_dict().values()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def init_distributed() -> torch.device:
    """Initialise torch.distributed under torchrun; return this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def recalibrate_norms(
    model: Denoiser,
    images: ImageSet,
    cfg: TrainConfig,
    batches: int = 100,
    seed: int = 0,
) -> int:
    """Re-estimate the running statistics of the model's batch normalizations as the exact average
    over ``batches`` noisy training batches (momentum 1/i at batch i), instead of the short
    exponential average training leaves (momentum 0.1: about the last 10 batches). Noise is drawn
    as in training (``cfg``'s sigma distribution), on the run's training split only (``cfg``'s
    test fraction and seed). Returns the number of layers recalibrated."""
    from denoiserlens.models.norms import BatchScaleNorm

    norms = [m for m in model.modules() if isinstance(m, BatchScaleNorm)]
    if not norms:
        return 0
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_rows = split_indices(len(images), cfg.test_fraction, cfg.seed)[0]  # not the test split
    saved = [n.momentum for n in norms]
    model.train()
    try:
        with torch.no_grad():
            for i in range(1, batches + 1):
                for n in norms:
                    n.momentum = 1.0 / i
                size = min(cfg.batch_size, len(train_rows))
                rows = np.sort(rng.choice(train_rows, size, replace=False))
                x = torch.from_numpy(np.stack([images[int(r)] for r in rows])).float() / 255
                x = x.to(device)
                sigma = sample_sigma(
                    len(x), cfg.sigma_dist, cfg.sigma_min, cfg.sigma_max, g, device
                )
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                    model(add_noise(x, sigma, g))
    finally:
        for n, m in zip(norms, saved, strict=True):
            n.momentum = m
        model.eval()
    return len(norms)
