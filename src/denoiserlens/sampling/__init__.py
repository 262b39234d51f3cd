"""Sampling from a blind denoiser (paper section 3, Appendix C)."""

from denoiserlens.sampling.gaussian import GaussianPrior
from denoiserlens.sampling.unconditional import (
    SAMPLER_PRESETS,
    SamplerConfig,
    Samples,
    effective_sigma,
    sample,
)

__all__ = [
    "SAMPLER_PRESETS",
    "GaussianPrior",
    "Samples",
    "SamplerConfig",
    "effective_sigma",
    "sample",
]
