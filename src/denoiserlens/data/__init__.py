"""Data: sources (folders, arrays, IDX, synthetic), transforms, splits, loaders."""

from denoiserlens.data.imageset import ImageSet
from denoiserlens.data.loader import UInt8Images, collate_to_float, to_float
from denoiserlens.data.open import DataSpec, concat, open_data, read_source, split_indices
from denoiserlens.data.sources import fashion_mnist, load_arrays, load_folder, load_idx, read_image
from denoiserlens.data.synthetic import c_alpha, disks
from denoiserlens.data.transforms import (
    center_crop_resize,
    convert_channels,
    extract_patches,
    pad_to_multiple,
)

__all__ = [
    "DataSpec",
    "ImageSet",
    "UInt8Images",
    "c_alpha",
    "center_crop_resize",
    "collate_to_float",
    "concat",
    "convert_channels",
    "disks",
    "extract_patches",
    "fashion_mnist",
    "load_arrays",
    "load_folder",
    "load_idx",
    "open_data",
    "pad_to_multiple",
    "read_image",
    "read_source",
    "split_indices",
    "to_float",
]
