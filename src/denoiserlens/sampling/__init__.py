"""Sampling from a blind denoiser (paper section 3, Appendix C): one loop (``loop.py``), its
adaptive schedule (``unconditional.py``), guidance and Algorithm 1 (``reconstruct.py``), Eq. 4
(``distance.py``)."""

from denoiserlens.sampling.gaussian import GaussianPrior
from denoiserlens.sampling.loop import Samples, effective_sigma, run_chain
from denoiserlens.sampling.unconditional import SAMPLER_PRESETS, SamplerConfig, sample

__all__ = [
    "SAMPLER_PRESETS",
    "GaussianPrior",
    "Samples",
    "SamplerConfig",
    "effective_sigma",
    "run_chain",
    "sample",
]
