"""Weights on disk: our safetensors run directories, and import of the lab's published ``.pt`` files.

A run directory holds ``weights.safetensors`` (tensors only; the architecture is also in its JSON
metadata) and ``config.json`` (architecture, training settings, data fingerprint, package version).
Foreign ``.pt`` files are read with ``torch.load(weights_only=True)``: pickled code is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from denoiserlens.errors import UserError
from denoiserlens.fileio import read_json, write_atomic, write_json
from denoiserlens.models.base import Denoiser
from denoiserlens.models.bfcnn import BFCNN
from denoiserlens.models.norms import BatchScaleNorm
from denoiserlens.models.unet import UNet, UNetConfig

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


def build_model(arch: dict[str, Any], seed: int | None = None) -> Denoiser:
    """Rebuild an untrained model from its ``arch_config()`` dictionary; with ``seed``, its initial
    weights depend on the seed only (the global random state is left as it was)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(arch)
    try:
        arch = dict(arch)
        kind = arch.pop("arch", None)
        if kind == "unet":
            for key in ("channels", "enc_convs", "dec_convs"):
                arch[key] = tuple(arch[key])
            for key in ("up_bias", "out_bias"):  # saved before these existed: no such biases
                arch.setdefault(key, False)
            return UNet(UNetConfig(**arch))
        if kind == "bfcnn":
            return BFCNN(**arch)
        if kind == "tapped":
            raise UserError(
                "a tapped model wraps a network of its own; denoiserlens cannot "
                "rebuild it (build the network, then TappedModel(net, taps))"
            )
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"invalid architecture description: {e}") from None
    raise UserError(f"unknown architecture {kind!r}")


def save_weights(model: Denoiser, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write the model's tensors to a safetensors file, with its architecture as JSON metadata.
    With ``dtype`` (e.g. torch.float16, to halve a bundled model) floating tensors are stored in
    it; loading converts them back to the model's float32."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {"format": "denoiserlens", "arch": json.dumps(model.arch_config())}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def save_model(model: Denoiser, run_dir: str | Path, **config: Any) -> None:
    """A run directory :func:`load_model` reads: weights.safetensors and config.json (the
    architecture under "model", plus ``config``), both written atomically."""
    run_dir = Path(run_dir)
    save_weights(model, run_dir / WEIGHTS)
    write_json(run_dir / CONFIG, {"model": model.arch_config(), **config})


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
            return tensors, (f.metadata() or {})
    except Exception as e:  # safetensors raises several types for a damaged header
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        what = (
            (missing and f"missing {missing[:3]}")
            or (unexpected and f"unexpected {unexpected[:3]}")
            or f"shape mismatch at {wrong[:3]}"
        )
        raise UserError(f"{source}: checkpoint does not fit the architecture ({what})")
    model.load_state_dict(state)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", norm: str | None = None
) -> Denoiser:
    """Load a denoiser, in eval mode, from a run directory, a ``.safetensors`` file or a lab ``.pt``.

    A run directory is rebuilt from its ``config.json`` and ``weights.safetensors`` alone. ``norm``
    is for an authors' UNet ``.pt`` whose file cannot tell layer from instance normalization
    (:func:`import_lab_checkpoint`).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such model file or run directory")
    if path.is_dir():
        if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
            raise UserError(f"{path}: not a run directory (needs {WEIGHTS} and {CONFIG})")
        try:
            arch = read_json(path / CONFIG)["model"]
        except (ValueError, KeyError) as e:
            raise UserError(f"{path / CONFIG}: unreadable model configuration ({e})") from None
        state, _ = _read_safetensors(path / WEIGHTS)
        model, source = build_model(arch), path / WEIGHTS
    elif path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
        if "arch" not in meta:
            raise UserError(f"{path}: safetensors file without denoiserlens architecture metadata")
        model, source = build_model(json.loads(meta["arch"])), path
    elif path.suffix in (".pt", ".pth"):
        return import_lab_checkpoint(path, norm).to(device).eval()
    else:
        raise UserError(f"{path}: expected a run directory, .safetensors or .pt file")
    _load_state(model, state, source)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# The lab's published checkpoints
# ---------------------------------------------------------------------------------------------


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pt`` state dict safely: ``weights_only=True`` refuses pickled code."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path}: refused: not a plain tensor state dict (weights_only load failed: {first})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: not a state dict of tensors")
    # DataParallel / DDP saves prefix every key with "module."
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


def import_lab_checkpoint(path: str | Path, norm: str | None = None) -> Denoiser:
    """Build our model from a lab ``.pt`` state dict: a BF-CNN or an authors' ``UNet_flex``.

    The authors' layer and instance normalizations store the same tensors (one gain per channel),
    so for a UNet whose normalizations hold only gains, ``norm`` ("layer" or "instance") must say
    which it was; a batch normalization (gains and ``running_sd``) is recognized from the file.
    """
    state = read_torch_state_dict(path)
    if any(k.startswith("conv_layers.") for k in state):
        convs = sorted(int(k.split(".")[1]) for k in state if k.startswith("conv_layers."))
        first = state["conv_layers.0.weight"]
        model = BFCNN(image_channels=first.shape[1], num_layers=len(convs), width=first.shape[0])
        try:
            model.load_lab_state_dict(state)
        except (KeyError, RuntimeError) as e:
            raise UserError(f"{path}: not a BF-CNN state dict we can read ({e})") from None
        return model
    if any(k.startswith("encoder.") for k in state):
        try:
            return _import_lab_unet(state, Path(path), norm)
        except (ValueError, KeyError, IndexError, RuntimeError) as e:
            raise UserError(f"{path}: not a lab UNet state dict we can read ({e})") from None
    raise UserError(f"{path}: unrecognised checkpoint layout (neither BF-CNN nor the lab's UNet)")


def _lab_groups(state: dict[str, torch.Tensor], prefix: str) -> list[dict[str, str]]:
    """The layers under ``prefix`` (a Sequential), in order, as {param name: full key}."""
    groups: dict[int, dict[str, str]] = {}
    for k in state:
        if k.startswith(prefix + "."):
            idx, name = k[len(prefix) + 1 :].split(".", 1)
            groups.setdefault(int(idx), {})[name] = k
    return [groups[i] for i in sorted(groups)]


_CONV_KEYS = ({"weight"}, {"weight", "bias"})
_NORM_KEYS = ({"gammas"}, {"gammas", "running_sd"})


def _lab_norm_kind(groups: list[dict[str, str]], norm: str | None, path: Path) -> str:
    """ "batch" where the gains come with running_sd; else the caller's ``norm`` (layer/instance)."""
    if not groups:
        return "none"
    kinds = {"batch" if "running_sd" in g else "gains" for g in groups}
    if kinds == {"batch"}:
        if norm not in (None, "batch"):
            raise UserError(f"{path}: its normalizations are batch norms (running_sd), not {norm}")
        return "batch"
    if kinds != {"gains"}:
        raise UserError(f"{path}: normalization layers of mixed kinds (some hold running_sd)")
    if norm not in ("layer", "instance"):
        raise UserError(
            f"{path}: its normalizations hold only gains, as both the authors' layer norm and "
            "instance norm do: say which (`denoiserlens convert --checkpoint FILE --norm "
            "layer|instance --out DIR`)"
        )
    return norm


def _import_lab_unet(state: dict[str, torch.Tensor], path: Path, norm: str | None) -> UNet:
    """The authors' UNet_flex layout (texture_model/code/network.py): Sequentials ``encoder.{b}``,
    ``mid`` (``mid_block`` in older saves), ``upsample.{b}`` and ``decoder.{b}``, each a list of
    conv (weight, bias), normalization (gammas[, running_sd]) and ReLU layers; biases on the convs,
    on D1's last conv and on the up-convolutions above D1 where the file has them. Every key must
    be consumed."""
    levels = len({k.split(".")[1] for k in state if k.startswith("encoder.")})
    mid = "mid_block" if any(k.startswith("mid_block.") for k in state) else "mid"
    blocks = {f"E{b + 1}": f"encoder.{b}" for b in range(levels)}
    blocks["M"] = mid
    blocks.update({f"D{b + 1}": f"decoder.{b}" for b in range(levels)})
    layers = {name: _lab_groups(state, prefix) for name, prefix in blocks.items()}
    convs = {n: [g for g in gs if set(g) in _CONV_KEYS] for n, gs in layers.items()}
    norms = {n: [g for g in gs if set(g) in _NORM_KEYS] for n, gs in layers.items()}
    for name, gs in layers.items():
        odd = [g for g in gs if g not in convs[name] and g not in norms[name]]
        if odd:
            raise UserError(f"{path}: unknown layer in block {name}: {sorted(odd[0].values())}")
    last = convs["D1"][-1]
    inner = [g for gs in convs.values() for g in gs if g is not last]
    biased = {"bias" in g for g in inner}
    if len(biased) != 1:
        raise UserError(f"{path}: some convolutions have biases and others not")
    up_bias = any(f"upsample.{b}.bias" in state for b in range(1, levels))
    w = lambda g: state[g["weight"]]  # noqa: E731
    cfg = UNetConfig(
        image_channels=w(convs["E1"][0]).shape[1],
        channels=tuple(w(convs[f"E{b + 1}"][-1]).shape[0] for b in range(levels))
        + (w(convs["M"][-1]).shape[0],),
        enc_convs=tuple(len(convs[f"E{b + 1}"]) for b in range(levels)),
        mid_convs=len(convs["M"]),
        dec_convs=tuple(len(convs[f"D{b + 1}"]) for b in range(levels)),
        bias=biased.pop(),
        norm=_lab_norm_kind([g for gs in norms.values() for g in gs], norm, path),
        up_bias=up_bias,
        out_bias="bias" in last,
    )
    model = UNet(cfg)
    used: set[str] = set()

    def take(param: torch.Tensor, key: str) -> None:
        if param.shape != state[key].shape:
            got, want = tuple(state[key].shape), tuple(param.shape)
            raise UserError(f"{path}: {key} has shape {got}, expected {want}")
        param.copy_(state[key])
        used.add(key)

    with torch.no_grad():
        for name in blocks:
            ours_c = [m for m in model.blocks[name].modules() if isinstance(m, nn.Conv2d)]
            ours_n = [m for m in model.blocks[name].modules() if hasattr(m, "gain")]
            if len(ours_c) != len(convs[name]) or len(ours_n) != len(norms[name]):
                raise UserError(f"{path}: block {name} does not fit the UNet layout")
            for m, g in zip(ours_c, convs[name], strict=True):
                take(m.weight, g["weight"])
                if m.bias is not None:
                    take(m.bias, g["bias"])
            for m, g in zip(ours_n, norms[name], strict=True):
                take(m.gain, g["gammas"])
                if isinstance(m, BatchScaleNorm):
                    take(m.running_sd, g["running_sd"])
        for b in range(levels):
            up = model.up[f"D{b + 1}"]
            take(up.weight, f"upsample.{b}.weight")
            if up.bias is not None:
                take(up.bias, f"upsample.{b}.bias")
    left = sorted(set(state) - used)
    if left:
        raise UserError(f"{path}: {len(left)} key(s) of the checkpoint not used, e.g. {left[:3]}")
    return model
