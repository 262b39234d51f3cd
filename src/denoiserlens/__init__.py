"""denoiserlens: blind UNet denoisers and the sparse semantic representations inside them.

Implements Kadkhodaie, Mallat & Simoncelli, *Unconditional CNN denoisers contain sparse semantic
representations of images*, and the denoiser-geometry tools of the companion work on
geometry-adaptive harmonic representations.
"""

__version__ = "0.1.0"

from denoiserlens.errors import UserError  # noqa: E402
from denoiserlens.models import Denoiser, load_model  # noqa: E402

__all__ = ["Denoiser", "UserError", "__version__", "load_model"]
