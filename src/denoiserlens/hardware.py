"""What the machine can do fast: where bf16 autocast pays."""

from __future__ import annotations

import os

import torch


def native_bf16() -> bool:
    """True with a CUDA GPU, or a CPU with native bf16 (AVX512-BF16 or AMX: Intel Cooper Lake
    and later, AMD Zen 4). Elsewhere autocast emulates bf16 and is slower than float32
    (BENCHMARKS.md)."""
    if torch.cuda.is_available():
        return True
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)())


def pick_device(name: str = "auto") -> torch.device:
    """The device, chosen once at the edge: ``auto`` is CUDA when present (under torchrun this
    rank's GPU, ``LOCAL_RANK``), else the CPU; any other name as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
