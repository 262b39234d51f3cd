"""The training state for exact resume: model and Adam tensors in one safetensors file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from denoiserlens.fileio import write_atomic

TRAIN_STATE = "train_state.safetensors"


def save_train_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict[str, Any]
) -> None:
    """One atomic file: model tensors (``model.*``), optimizer tensors (``opt.*``) and, in the JSON
    metadata, the optimizer's scalars and ``info`` (step, epoch...). No pickle anywhere."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = v
    meta = {
        "param_groups": json.dumps(opt["param_groups"]),
        "scalars": json.dumps(scalars),
        "info": json.dumps(info),
    }
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_train_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore what :func:`save_train_state` wrote; returns its ``info``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
        model_state = {k[6:]: f.get_tensor(k) for k in keys if k.startswith("model.")}
        state: dict[int, dict[str, Any]] = {}
        for k in keys:
            if k.startswith("opt."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = f.get_tensor(k)
    for idx, sc in json.loads(meta["scalars"]).items():
        state.setdefault(int(idx), {}).update(sc)
    model.load_state_dict(model_state)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return json.loads(meta["info"])


def train_state_step(path: str | Path) -> int:
    """The step a training state was saved at, read from its metadata (no tensors loaded)."""
    with safe_open(str(path), framework="pt") as f:
        return int(json.loads(f.metadata()["info"])["step"])
