"""Window selection, normalisation and light augmentation for ``(3, n_samples)`` traces."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from resattn.data.augment import ORDER, Compose
from resattn.data.waveforms import WaveformDataset
from resattn.errors import ConfigError, DataError

__all__ = [
    "WaveformWindows", "bandpass", "check_windows", "crop", "fill_gaps", "fill_masked", "gap_mask",
    "prepare_trace", "standardize", "window_start",
]


def standardize(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-channel zero mean, unit std of ``x`` ``(channels, n)``; returns float32, same shape.

    A dead channel (std < ``eps``) becomes zeros instead of NaN/Inf. ``eps`` is absolute:
    :func:`prepare_trace` first scales a trace to a largest value of 1, so that a live trace in
    physical units (m/s, std ~1e-8) is not taken for a dead one.
    """
    x64 = np.asarray(x, dtype=np.float64)  # float64 stats: raw counts can be ~1e6
    centred = x64 - x64.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1, keepdims=True)
    out = np.zeros_like(centred)
    np.divide(centred, std, out=out, where=std >= eps)
    return out.astype(np.float32)


def gap_mask(row: np.ndarray, min_run: int) -> np.ndarray:
    """Boolean mask of the samples of ``row`` ``(n,)`` in a run of at least ``min_run`` equal
    samples (a data gap: zeros, or a value held by the digitiser)."""
    same = np.diff(row) == 0  # sample k+1 equals sample k
    edges = np.flatnonzero(np.diff(np.r_[0, same.astype(np.int8), 0]))
    gap = np.zeros(row.shape, dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start + 1 >= min_run:  # stop - start equal steps: one more sample
            gap[start:stop + 1] = True
    return gap


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def fill_gaps(x: np.ndarray, min_run: int) -> np.ndarray:
    """``x`` ``(channels, n)`` with every gap (see :func:`gap_mask`) filled by the channel's
    own data mirrored at the gap's edge (see :func:`fill_masked`); float64."""
    x = np.asarray(x, dtype=np.float64)
    return fill_masked(x, np.stack([gap_mask(row, min_run) for row in x]) if x.size
                       else np.zeros(x.shape, dtype=bool))


def fill_masked(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` ``(channels, n)`` with the samples where ``mask`` is True replaced by the data
    next to them, mirrored at the edge (reflected again where the stretch is longer), so that
    neither a filter nor a model sees a step, or a flat stretch followed by "an onset", where
    missing data meet real data. A channel with no datum is left as it is; float64 copy."""
    x = np.array(x, dtype=np.float64, copy=True)
    for row, gap in zip(x, np.asarray(mask, dtype=bool), strict=True):
        if not gap.any() or gap.all():
            continue
        live = _runs(~gap)
        for start, stop in _runs(gap):
            length = stop - start
            before = [r for r in live if r[1] <= start]
            if before:  # mirror the data just before the gap
                a, b = before[-1]
                row[start:stop] = np.pad(row[a:b], (0, length), mode="symmetric")[-length:]
            else:  # a leading gap: mirror the data after it
                a, b = next(r for r in live if r[0] >= stop)
                row[start:stop] = np.pad(row[a:b], (length, 0), mode="symmetric")[:length]
    return x


def prepare_trace(x: np.ndarray, band: tuple[float, float] | None, sampling_rate: float,
                  gap_seconds: float | None = None) -> np.ndarray:
    """The whole-trace steps before windowing, for training and inference alike: the trace
    demeaned per channel and scaled to a largest absolute value of 1 (units differ: counts,
    m/s, normalised; every later step is linear or scale-free), gaps filled (``gap_seconds``:
    constant runs at least that long, see :func:`fill_gaps`), then the band-pass (see
    :func:`bandpass`)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True) if x.size else x
    peak = np.abs(x).max() if x.size else 0.0
    if peak > 0:
        x = x / peak
    if gap_seconds is not None:
        x = fill_gaps(x, max(2, round(gap_seconds * sampling_rate)))
    return x if band is None else bandpass(x, *band, sampling_rate)


def bandpass(x: np.ndarray, low: float, high: float, sampling_rate: float = 100.0,
             order: int = 4) -> np.ndarray:
    """Linear detrend, then a zero-phase Butterworth band-pass of ``x`` ``(channels, n)``.

    Seismic detectors usually see filtered traces: the band removes microseism and drift below
    ``low`` Hz and sensor noise above ``high`` Hz, which raw-count inputs otherwise carry.
    """
    from scipy.signal import butter, detrend, sosfiltfilt

    if not 0 < low < high < sampling_rate / 2:
        raise ConfigError(f"band-pass needs 0 < low < high < {sampling_rate / 2} Hz (Nyquist), "
                          f"got {low}-{high} Hz")
    sos = butter(order, [low, high], btype="band", fs=sampling_rate, output="sos")
    return sosfiltfilt(sos, detrend(np.asarray(x, dtype=np.float64), axis=-1), axis=-1)


def _short_trace_error(name: str | None, n_samples: int, window: int) -> DataError:
    trace = f"trace {name!r}" if name is not None else "a trace"
    return DataError(
        f"{trace} has {n_samples} samples, shorter than the window of {window} samples; "
        f"pass --pad (pad=True) to zero-pad short traces (the padding can leak the label when "
        f"one class is shorter) or use a window of at most {n_samples} samples"
    )


def window_start(
    n_samples: int,
    window: int,
    p_sample: float | None,
    rng: np.random.Generator | None = None,
    p_offset: float = 0.25,
    p_range: tuple[float, float] = (0.05, 0.75),
    name: str | None = None,
) -> int:
    """Start index of a ``window``-sample window in a trace of ``n_samples`` samples.

    Deterministic (``rng`` None): P at ``round(p_offset * window)`` inside the window, clipped to
    valid starts; without a P pick, the centred window. Random (``rng`` given): uniform over the
    starts that keep P within ``p_range`` (fractions of the window), falling back to the
    deterministic start if none is valid; without P, uniform over all valid starts.
    ``name`` is only used in the error raised when the trace is shorter than the window.
    """
    if window <= 0:
        raise ConfigError(f"window must be a positive number of samples, got {window}")
    lo_frac, hi_frac = p_range
    if not 0.0 <= lo_frac <= hi_frac <= 1.0:
        raise ConfigError(f"p_range must satisfy 0 <= low <= high <= 1, got {p_range}")
    n_samples, window = int(n_samples), int(window)
    if n_samples < window:
        raise _short_trace_error(name, n_samples, window)
    last = n_samples - window  # largest valid start
    has_p = p_sample is not None and math.isfinite(p_sample)

    if has_p:
        p = round(float(p_sample))
        fixed = min(max(p - round(p_offset * window), 0), last)
        if rng is None:
            return fixed
        # Starts s with p - s in [ceil(lo*window), floor(hi*window)], within [0, last].
        low = max(p - math.floor(hi_frac * window), 0)
        high = min(p - math.ceil(lo_frac * window), last)
        return int(rng.integers(low, high + 1)) if low <= high else fixed
    if rng is None:
        return last // 2
    return int(rng.integers(0, last + 1))


def crop(x: np.ndarray, start: int, window: int) -> np.ndarray:
    """``x[:, start:start + window]`` of ``x`` ``(channels, n)``; ValueError if out of range."""
    if start < 0 or start + window > x.shape[-1]:
        raise ValueError(f"window [{start}, {start + window}) outside a trace of {x.shape[-1]}")
    return x[..., start : start + window]


def check_windows(dataset: WaveformDataset, window: int, pad: bool) -> np.ndarray:
    """Fail fast (before the first epoch) if any trace is shorter than ``window`` and not ``pad``.

    Returns the ``(n_traces,)`` trace lengths, taken from metadata or HDF5 shapes (no reads).
    """
    lengths = dataset.lengths()
    short = np.flatnonzero(lengths < window)
    if len(short) and not pad:
        i = int(short[0])
        name = str(dataset.metadata["trace_name"].iat[i])
        err = _short_trace_error(name, int(lengths[i]), window)
        raise DataError(
            f"{len(short)} of {len(dataset)} traces are shorter than the window; first: {err}"
        )
    return lengths


#: Policies applied after standardising, recorded by existing checkpoints: keep their meaning.
LEGACY_POLICIES = ("superpose", "gain", "channel_dropout")
#: ``policy`` names: the legacy ones, then those of :mod:`resattn.data.augment` applied to the
#: raw crop ("gain" keeps its legacy meaning; the raw-units gain would be undone by standardising).
WAVEFORM_POLICIES = LEGACY_POLICIES + tuple(n for n in ORDER if n not in LEGACY_POLICIES)

# The ``augment`` flag's polarity flip and absolute noise, as before (same random draws).
_LIGHT = Compose(("polarity", "noise"), {"polarity": 0.5, "noise": 1.0},
                 {"noise": {"sigma": (0.0, 0.1), "relative": False}})


class WaveformWindows(Dataset):
    """Torch view of a :class:`WaveformDataset` yielding ``(FloatTensor (3, window), int label)``.

    Each item: read the trace, choose a window (random if ``train``, else P-aligned/centred, see
    :func:`window_start`), crop, standardise per channel. Randomness comes from a generator seeded
    with ``(seed, epoch, index)``, so an epoch is reproducible regardless of worker count or order;
    call :meth:`set_epoch` each epoch (with ``persistent_workers=True`` workers keep the epoch
    they were created with).

    ``pad=True`` zero-pads traces shorter than ``window`` at the end, after standardising.
    Beware: if one class is systematically shorter (here, 25 s noise vs 60 s earthquakes), the
    zero tail itself reveals the label and a model can learn the padding instead of the signal.

    Augmentation (default: on when ``train``), applied after standardising and kept small:
    polarity flip of all channels with probability 0.5 (physically valid: it is a sensor sign
    convention), then additive Gaussian noise with std drawn uniformly from [0, 0.1].

    ``band=(low, high)`` band-passes every trace (Hz) before windowing, after filling its gaps
    if ``gap_seconds`` (see :func:`prepare_trace`). ``mix_noise=p`` (training
    only): with probability p, a random window of a random noise trace, scaled by U(0.3, 1.5),
    is added to the item and the sum re-standardised: earthquakes at lower SNR, labels unchanged.
    ``policy`` (training only) adds any of ``superpose`` (with p 0.25 another earthquake window
    at U(0.3, 1) relative amplitude; the label becomes earthquake), ``gain`` (per-channel
    amplitude x U(0.5, 1.5)) and ``channel_dropout`` (with p 0.2 one component zeroed), all after
    standardising, and any of :data:`resattn.data.augment.ORDER` except ``gain`` (see
    :class:`resattn.data.augment.Compose` for order and probabilities), applied to the raw crop
    before standardising so that gaps and dead channels look as in real data. These draw from
    their own generator (also seeded with seed, epoch, index), so adding them leaves the other
    random choices of an item unchanged. ``polarity`` and ``noise`` there come on top of the
    ``augment`` flag's.
    """

    def __init__(
        self,
        dataset: WaveformDataset,
        window: int,
        train: bool,
        seed: int = 0,
        pad: bool = False,
        augment: bool | None = None,
        band: tuple[float, float] | None = None,
        sampling_rate: float = 100.0,
        mix_noise: float = 0.0,
        policy: Sequence[str] = (),
        gap_seconds: float | None = None,
    ) -> None:
        unknown = set(policy) - set(WAVEFORM_POLICIES)
        if unknown:
            raise ConfigError(f"unknown waveform augmentation(s) {sorted(unknown)}; expected "
                              f"{list(WAVEFORM_POLICIES)}")
        self.policy = tuple(policy) if train else ()
        self.sampling_rate = float(sampling_rate)
        self._raw_augment = Compose(
            [p for p in self.policy if p not in LEGACY_POLICIES],
            options={"bandpass_random": {"sampling_rate": self.sampling_rate}},
        )
        if int(window) <= 0:
            raise ConfigError(f"window must be a positive number of samples, got {window}")
        self.dataset = dataset
        self.window = int(window)
        self.train = bool(train)
        self.seed = int(seed)
        self.pad = bool(pad)
        self.augment = self.train if augment is None else bool(augment)
        self.epoch = 0
        meta = dataset.metadata
        self._names = meta["trace_name"].to_numpy(dtype=object)
        self._p = meta["p_arrival_sample"].to_numpy(dtype=float)
        self._labels = dataset.labels
        self.band, self.gap_seconds = band, gap_seconds
        self.mix_noise = float(mix_noise) if self.train else 0.0
        self._noise_rows = np.flatnonzero(self._labels == 0)
        self._quake_rows = np.flatnonzero(self._labels == 1)

    def _read(self, i: int) -> np.ndarray:
        return prepare_trace(self.dataset.read(i), self.band, self.sampling_rate,
                             self.gap_seconds)

    def _random_noise(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> np.ndarray:
        """A standardised random window of a random noise trace (for SNR augmentation), or of
        a random trace among ``rows``."""
        j = int(rng.choice(self._noise_rows if rows is None else rows))
        x = self._read(j)
        start = int(rng.integers(0, x.shape[-1] - self.window + 1))
        return standardize(crop(x, start, self.window))

    @property
    def labels(self) -> np.ndarray:
        """Each item's label (before ``superpose`` turns one into an earthquake): for
        class-balanced sampling."""
        return self._labels

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream for ``epoch`` (windows and augmentation change per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self._read(i)
        n = x.shape[-1]
        use_rng = self.train or self.augment
        rng = np.random.default_rng([self.seed, self.epoch, int(i)]) if use_rng else None
        if n < self.window:
            if not self.pad:
                raise _short_trace_error(str(self._names[i]), n, self.window)
            # Standardise the real samples only, so zeros do not distort the statistics.
            out = np.zeros((x.shape[0], self.window), dtype=np.float32)
            out[:, :n] = standardize(self._augment_raw(x, i, 0))
        else:
            start = window_start(
                n, self.window, self._p[i], rng if self.train else None, name=str(self._names[i])
            )
            out = standardize(self._augment_raw(crop(x, start, self.window), i, start))
        if self.mix_noise and rng is not None and len(self._noise_rows) and not self.pad and (
            rng.random() < self.mix_noise
        ):
            out = standardize(out + rng.uniform(0.3, 1.5) * self._random_noise(rng))
        if self.augment:
            assert rng is not None
            out = _LIGHT(out, rng)
        label = int(self._labels[i])
        if self.policy and rng is not None:
            out, label = self._apply_policy(out, label, rng)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)), label

    def _augment_raw(self, x: np.ndarray, i: int, start: int) -> np.ndarray:
        """The :mod:`resattn.data.augment` policies on the raw crop (from sample ``start`` of
        trace ``i``), from their own stream; an earthquake's onset is kept (see
        :meth:`_onset`). With ``gap_seconds``, the gaps they make are then filled as
        :func:`prepare_trace` fills real ones."""
        if not self._raw_augment:
            return x
        seq = np.random.SeedSequence([self.seed, self.epoch, int(i)], spawn_key=(1,))
        y = self._raw_augment(x, np.random.default_rng(seq), self._onset(i, start, x.shape[-1]))
        if self.gap_seconds is None:
            return y
        # A gap made here is filled as the contract fills a real one before the model sees it.
        return fill_gaps(y, max(2, round(self.gap_seconds * self.sampling_rate)))

    def _onset(self, i: int, start: int, n: int) -> tuple[int, int] | None:
        """Samples of the crop a gap must leave as data: for an earthquake, from 1 s before its
        P pick to 8 s after it, widened for the stretch (x0.8-1.25) and shift (10 %) that
        ``resample`` and ``time_shift`` may apply first; the whole crop without a P pick.
        None for noise."""
        if self._labels[i] != 1:
            return None
        p = self._p[i] - start
        if not math.isfinite(p):
            return (0, n)
        rate, slack = self.sampling_rate, 0.1 * n
        return (int(0.8 * p - slack - rate), math.ceil(1.25 * p + slack + 8 * rate))

    def _apply_policy(self, out: np.ndarray, label: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """The optional ``policy`` augmentations (training only), in a fixed order."""
        if "superpose" in self.policy and rng.random() < 0.25 and len(self._quake_rows):
            # Another event added at a random relative amplitude: still (or now) an earthquake.
            out = standardize(out + rng.uniform(0.3, 1.0) * self._random_noise(
                rng, self._quake_rows))
            label = 1
        if "gain" in self.policy:  # per-channel amplitude scaling
            out = out * rng.uniform(0.5, 1.5, size=(out.shape[0], 1)).astype(np.float32)
        if "channel_dropout" in self.policy and rng.random() < 0.2:
            out = out.copy()
            out[int(rng.integers(out.shape[0]))] = 0.0  # a dead component
        return out, label
