"""A waveform record from a file a user hands over: ``.npy``/``.npz`` arrays or anything ObsPy
reads (miniSEED, SAC, ...), as a ``(channels, samples)`` array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

WAVEFORM_FILES = ".npy, .npz, or a format ObsPy reads (miniSEED, SAC, ...) when it is installed"


def read_record(path: Path) -> np.ndarray:
    """(C, L) float array from .npy / .npz (first array) or an ObsPy-readable file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[z.files[0]]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array ({exc}); expected a (channels, samples) "
                        "numeric array") from exc
    try:
        import obspy
    except ImportError:
        raise DataError(f"{path}: unsupported waveform file; expected {WAVEFORM_FILES}") from None
    try:
        stream = obspy.read(str(path))
    except Exception as exc:  # ObsPy raises TypeError/ValueError/OSError by format
        raise DataError(f"{path}: ObsPy cannot read it ({exc})") from exc
    stream.merge(fill_value=0)
    stream.traces.sort(key=lambda tr: "ENZ123".find(tr.stats.channel[-1:]))
    rates = {tr.stats.sampling_rate for tr in stream}
    if rates != {100.0}:
        stream.resample(100.0)
    n = min(len(tr.data) for tr in stream)
    return np.stack([tr.data[:n] for tr in stream])
