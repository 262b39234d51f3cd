"""Sampling from a blind denoiser (paper section 3, Appendix C)."""

from denoiserlens.sampling.gaussian import GaussianPrior
from denoiserlens.sampling.unconditional import SamplerConfig, Samples, effective_sigma, sample

__all__ = ["GaussianPrior", "Samples", "SamplerConfig", "effective_sigma", "sample"]
