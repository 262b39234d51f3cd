"""Denoisers: the paper's UNet, the lab's BF-CNN, any network tapped by hooks, presets and
checkpoints."""

from denoiserlens.models.base import BlockIO, Denoiser
from denoiserlens.models.bfcnn import BFCNN
from denoiserlens.models.checkpoint import (
    build_model,
    import_lab_checkpoint,
    load_model,
    save_model,
    save_weights,
)
from denoiserlens.models.presets import PRESETS, ArchChoice, preset_config
from denoiserlens.models.tapped import TappedModel, at_noise_level
from denoiserlens.models.unet import UNet, UNetConfig, receptive_field

__all__ = [
    "BFCNN",
    "PRESETS",
    "BlockIO",
    "TappedModel",
    "Denoiser",
    "UNet",
    "UNetConfig",
    "at_noise_level",
    "build_model",
    "import_lab_checkpoint",
    "load_model",
    "preset_config",
    "ArchChoice",
    "receptive_field",
    "save_model",
    "save_weights",
]
