"""Data: lazy seismic CSV+HDF5 reader, windows, grouped splits; image folders/archives/npz,
torch-only image augmentations, stratified splits."""

from resattn.data.image_transforms import (
    AugmentedSubset,
    ColorJitter,
    Compose,
    RandomAffine,
    RandomHorizontalFlip,
    RandomRotation,
    normalize,
)
from resattn.data.images import JAFFE_CLASSES, ImageDataset, stratified_split
from resattn.data.splits import connected_groups, grouped_split
from resattn.data.transforms import (
    WaveformWindows,
    check_windows,
    crop,
    standardize,
    window_start,
)
from resattn.data.waveforms import WaveformDataset

__all__ = [
    "JAFFE_CLASSES",
    "AugmentedSubset",
    "ColorJitter",
    "Compose",
    "ImageDataset",
    "RandomAffine",
    "RandomHorizontalFlip",
    "RandomRotation",
    "WaveformDataset",
    "WaveformWindows",
    "check_windows",
    "connected_groups",
    "crop",
    "grouped_split",
    "normalize",
    "standardize",
    "stratified_split",
    "window_start",
]
