"""Measures of the representation: sparsity, stability, selectivity (paper section 2)."""

from denoiserlens.analysis.selectivity import (
    channel_participation,
    most_selective_channels,
    selectivity_summary,
    specialized_channels,
    top_images,
)
from denoiserlens.analysis.sparsity import block_sparsity, participation_ratio
from denoiserlens.analysis.stability import cosine_similarity, stability_curves

__all__ = [
    "block_sparsity",
    "channel_participation",
    "cosine_similarity",
    "most_selective_channels",
    "participation_ratio",
    "selectivity_summary",
    "specialized_channels",
    "stability_curves",
    "top_images",
]
