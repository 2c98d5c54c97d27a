"""Data: lazy seismic CSV+HDF5 reader, windows; image folders/archives/npz (read in place),
torch-only image augmentations; grouped, stratified and recorded splits."""

from resattn.data.image_transforms import (
    AugmentedSubset,
    ColorJitter,
    Compose,
    RandomAffine,
    RandomHorizontalFlip,
    RandomRotation,
    normalize,
)
from resattn.data.images import JAFFE_CLASSES, ImageDataset
from resattn.data.splits import (
    PARTS,
    cap_per_class,
    connected_groups,
    grouped_parts,
    grouped_split,
    names_digest,
    split_from_names,
    stratified_split,
)
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
    "PARTS",
    "AugmentedSubset",
    "ColorJitter",
    "Compose",
    "ImageDataset",
    "RandomAffine",
    "RandomHorizontalFlip",
    "RandomRotation",
    "WaveformDataset",
    "WaveformWindows",
    "cap_per_class",
    "check_windows",
    "connected_groups",
    "crop",
    "grouped_parts",
    "grouped_split",
    "names_digest",
    "normalize",
    "split_from_names",
    "standardize",
    "stratified_split",
    "window_start",
]
