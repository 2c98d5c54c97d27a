"""Seismic waveform data: lazy CSV+HDF5 reader, windowing/normalisation, grouped splits."""

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
    "WaveformDataset",
    "WaveformWindows",
    "check_windows",
    "connected_groups",
    "crop",
    "grouped_split",
    "standardize",
    "window_start",
]
