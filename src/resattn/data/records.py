"""A waveform record from a file a user hands over: ``.npy``/``.npz`` arrays or anything ObsPy
reads (miniSEED, SAC, ...), as a ``(channels, samples)`` array of finite real samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import cause, read_arrays

WAVEFORM_FILES = ".npy, .npz, or a format ObsPy reads (miniSEED, SAC, ...) when it is installed"
SAMPLING_RATE = 100.0  # Hz: ObsPy records are resampled to it
MAX_SAMPLES = int(SAMPLING_RATE * 86_400 * 7)  # per channel: a week at 100 Hz


def read_record(path: Path) -> np.ndarray:
    """``(C, L)`` float64 array from .npy / .npz (first array) or an ObsPy-readable file.

    A file that holds no such array (text, complex or object samples, another shape, no sample,
    NaN or Inf) is a ``DataError`` naming it; object arrays are never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such waveform file; expected {WAVEFORM_FILES}")
    if path.suffix.lower() in (".npy", ".npz"):
        arrays = read_arrays(path, lambda names: names[:1])
        if not arrays:
            raise DataError(f"{path}: holds no array; expected a (channels, samples) array")
        x = next(iter(arrays.values()))
    else:
        x = _read_obspy(path)
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: samples of type {x.dtype}; expected real numbers (integers "
                        "or floats)")
    if x.ndim != 2 or 0 in x.shape:
        raise DataError(f"{path}: array of shape {x.shape}; expected (channels, samples) with "
                        "at least one of each")
    x = x.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DataError(f"{path}: {bad} samples are NaN or infinite; expected finite numbers")
    return x


def _read_obspy(path: Path) -> np.ndarray:
    """The traces of an ObsPy-readable file, merged, in E, N, Z (1, 2, 3) order, at 100 Hz."""
    try:
        import obspy
    except ImportError:
        raise DataError(f"{path}: unsupported waveform file; expected {WAVEFORM_FILES}") from None
    try:
        stream = obspy.read(str(path))
        stream.merge(fill_value=0)
    except Exception as exc:  # ObsPy raises TypeError/ValueError/OSError/Exception by format
        raise DataError(f"{path}: ObsPy cannot read it ({cause(exc)})") from None
    if not len(stream):
        raise DataError(f"{path}: holds no trace; expected {WAVEFORM_FILES}")
    for tr in stream:
        rate, n = float(tr.stats.sampling_rate), len(tr.data)
        if not (math.isfinite(rate) and rate > 0):
            raise DataError(f"{path}: trace {tr.id}: sampling rate {rate:g} Hz; expected a "
                            "positive number")
        if n * SAMPLING_RATE / rate > MAX_SAMPLES:
            raise DataError(f"{path}: trace {tr.id}: {n} samples at {rate:g} Hz would be more "
                            f"than {MAX_SAMPLES} at {SAMPLING_RATE:g} Hz (a week)")
        if tr.data.dtype.kind not in "iuf":
            raise DataError(f"{path}: trace {tr.id}: samples of type {tr.data.dtype}; expected "
                            "real numbers")
    stream.traces.sort(key=lambda tr: "ENZ123".find(tr.stats.channel[-1:]))
    if {tr.stats.sampling_rate for tr in stream} != {SAMPLING_RATE}:
        try:
            stream.resample(SAMPLING_RATE)
        except Exception as exc:  # ObsPy's FFT resampling of a degenerate trace
            raise DataError(f"{path}: cannot resample to {SAMPLING_RATE:g} Hz "
                            f"({cause(exc)})") from None
    n = min(len(tr.data) for tr in stream)
    return np.stack([tr.data[:n] for tr in stream])
