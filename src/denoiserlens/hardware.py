"""What the machine can do fast: where bf16 autocast pays."""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """True with a CUDA GPU, or a CPU with native bf16 (AVX512-BF16 or AMX: Intel Cooper Lake
    and later, AMD Zen 4). Elsewhere autocast emulates bf16 and is slower than float32
    (BENCHMARKS.md)."""
    if torch.cuda.is_available():
        return True
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)())
