"""End-to-end tasks: a data source, a model and the engine wired together (the CLI calls these)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

WAVEFORM_SUFFIXES = (".hdf5", ".h5", ".csv")


def is_waveform_source(path: str | Path) -> bool:
    """True for STEAD/SeisBench waveform data (a folder with HDF5 files, or one of its CSV/HDF5
    files); False for image data (class folders, archives, ``.npz``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected waveforms (a folder of CSV + "
                        "HDF5 files) or images (a folder of class folders, an archive or .npz)")
    if path.is_file():
        return path.suffix.lower() in WAVEFORM_SUFFIXES
    return any(p.suffix.lower() in (".hdf5", ".h5") for p in path.iterdir())
