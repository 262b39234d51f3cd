"""The representation phi, block summaries, and representation stores (paper section 2)."""

from denoiserlens.represent.store import RepresentConfig, Store, represent, weights_hash
from denoiserlens.represent.summaries import (
    draw_noise,
    noise_averaged_maps,
    noise_averaged_means,
    noisy_copies,
    phi,
)

__all__ = [
    "RepresentConfig",
    "Store",
    "draw_noise",
    "noise_averaged_maps",
    "noise_averaged_means",
    "noisy_copies",
    "phi",
    "represent",
    "weights_hash",
]
