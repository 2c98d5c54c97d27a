"""What a waveform model takes: sampling rate, component order, window, filter, normalisation.

``WaveformContract.transform`` and ``windows`` are the one place that turns a raw trace into
model input; they reuse :mod:`resattn.data.transforms`, so a contract's evaluation window is
bit-identical to ``WaveformWindows(dataset, window, train=False, band=...)``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from ..data.transforms import crop, prepare_trace, standardize, window_start
from ..errors import ConfigError, DataError
from . import _fields

WAVEFORM_NORMALISATIONS = ("std",)  # per-channel zero mean, unit std over the window


@dataclass(frozen=True, kw_only=True)
class WaveformContract:
    """Input of a waveform model: ``(C, window_samples)`` float32 with ``C = len(components)``.

    ``sampling_rate`` Hz of the input (traces must already be at this rate); ``components`` the
    channel order (``"ENZ"``); ``bandpass_hz`` a ``(low, high)`` zero-phase Butterworth band
    applied to the whole trace before windowing, or None; ``normalisation`` ``"std"`` (per
    channel over the window, see :func:`~resattn.data.transforms.standardize`);
    ``p_position`` where the P pick sits in an evaluation window (fraction of it; a window
    without P is centred); ``class_names`` one per model output; ``gap_seconds``: runs of one
    value at least this long are data gaps, filled with the channel's own data mirrored at the
    gap's edge before the band-pass, so that neither the filter nor the model sees a step or a
    flat stretch (None: not looked for, as in contracts before it). Every
    trace is demeaned and scaled to a peak of 1 first (see
    :func:`~resattn.data.transforms.prepare_trace`): amplitude units never matter.
    """

    window_samples: int
    sampling_rate: float = 100.0
    components: str = "ENZ"
    bandpass_hz: tuple[float, float] | None = None
    normalisation: str = "std"
    p_position: float = 0.25
    class_names: tuple[str, ...] = ("noise", "earthquake")
    gap_seconds: float | None = None

    def __post_init__(self) -> None:
        rate = _fields.positive_float("sampling_rate", self.sampling_rate)
        comps = self.components.upper() if isinstance(self.components, str) else None
        if not comps or len(set(comps)) != len(comps):
            raise ConfigError(f"contract field 'components' must be distinct channel letters "
                              f"such as 'ENZ', got {self.components!r}")
        band = self.bandpass_hz
        if band is not None:
            try:
                low, high = (float(v) for v in band)
            except (TypeError, ValueError):
                raise ConfigError(f"contract field 'bandpass_hz' must be (low, high) in Hz or "
                                  f"None, got {band!r}") from None
            if not 0 < low < high < rate / 2:
                raise ConfigError(f"contract field 'bandpass_hz' must satisfy 0 < low < high < "
                                  f"{rate / 2} Hz (Nyquist), got {band!r}")
            band = (low, high)
        p = self.p_position
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"contract field 'p_position' must be a fraction of the window in "
                              f"[0, 1], got {p!r}")
        _fields.one_of("normalisation", self.normalisation, WAVEFORM_NORMALISATIONS)
        gap = self.gap_seconds
        if gap is not None:
            gap = _fields.positive_float("gap_seconds", gap)
        for name, value in (
            ("window_samples", _fields.positive_int("window_samples", self.window_samples)),
            ("sampling_rate", rate), ("components", comps), ("bandpass_hz", band),
            ("p_position", float(p)), ("class_names", _fields.class_names(self.class_names)),
            ("gap_seconds", gap),
        ):
            object.__setattr__(self, name, value)  # frozen: normalise types once, here

    @property
    def channels(self) -> int:
        """Input channels of the model: one per component."""
        return len(self.components)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One model input's shape (channels, *size)."""
        return (self.channels, self.window_samples)

    # ------------------------------------------------------------------ JSON and text
    def to_json(self) -> dict:
        return {"kind": "waveform", "sampling_rate": self.sampling_rate,
                "components": self.components, "window_samples": self.window_samples,
                "bandpass_hz": list(self.bandpass_hz) if self.bandpass_hz else None,
                "normalisation": self.normalisation, "p_position": self.p_position,
                "class_names": list(self.class_names),
                **({} if self.gap_seconds is None else {"gap_seconds": self.gap_seconds})}

    @classmethod
    def from_json(cls, d: dict) -> WaveformContract:
        return _fields.from_json(cls, "waveform", d)

    def describe(self) -> str:
        """One line for model cards and ``--help``."""
        band = (f"band-pass {self.bandpass_hz[0]:g}-{self.bandpass_hz[1]:g} Hz"
                if self.bandpass_hz else "no band-pass")
        return (f"{self.channels}-component waveform ({','.join(self.components)}) at "
                f"{self.sampling_rate:g} Hz, {self.window_samples}-sample "
                f"({self.window_samples / self.sampling_rate:g} s) window, {band}"
                f"{'' if self.gap_seconds is None else f', gaps >= {self.gap_seconds:g} s filled'}"
                ", per-channel "
                f"zero mean and unit std; P at {self.p_position:.0%} of the window, noise "
                f"centred; {_fields.names_text(self.class_names)}")

    # ------------------------------------------------------------------ raw trace -> input
    def eval_start(self, n_samples: int, p_sample: float | None, where: str = "input") -> int:
        """Start of the evaluation window in a trace of ``n_samples``: P at ``p_position``
        (clipped to the trace), or centred without a (finite) P pick."""
        return window_start(n_samples, self.window_samples, p_sample, None,
                            p_offset=self.p_position, name=where)

    def transform(self, x: np.ndarray, start: int | None = None,
                  where: str = "input") -> torch.Tensor:
        """``x`` ``(C, L)`` at ``sampling_rate`` in ``components`` order -> model input
        ``(C, window_samples)`` float32: band-pass the whole trace, crop at ``start`` (default:
        centred), standardise."""
        x = self._filtered(x, where)
        if start is None:
            start = self.eval_start(x.shape[-1], None, where)
        try:
            window = crop(x, int(start), self.window_samples)
        except ValueError as exc:
            raise DataError(f"{where}: {exc}; expected a start in "
                            f"[0, {x.shape[-1] - self.window_samples}]") from None
        return torch.from_numpy(standardize(window))

    def windows(self, x: np.ndarray, stride: int | None = None,
                where: str = "input") -> tuple[torch.Tensor, np.ndarray]:
        """Scan a long record ``x`` ``(C, L)``: ``((n, C, window_samples), (n,) starts)``,
        windows every ``stride`` samples (default half a window), the last flush with the end."""
        step = max(1, self.window_samples // 2) if stride is None else stride
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step <= 0:
            raise ConfigError(f"stride must be a positive number of samples, got {stride!r}")
        x = self._filtered(x, where)
        last = x.shape[-1] - self.window_samples
        starts = np.unique(np.r_[np.arange(0, last + 1, step), last])
        return (torch.stack([torch.from_numpy(standardize(crop(x, s, self.window_samples)))
                             for s in starts]), starts)

    def _filtered(self, x: np.ndarray, where: str) -> np.ndarray:
        """``x`` checked (shape, finite, long enough), band-passed if the contract says so."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise DataError(f"{where}: array of shape {x.shape}; expected ({self.channels}, "
                            f"samples), channels in the order {','.join(self.components)}")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{where}: holds NaN, infinite or non-numeric samples; expected "
                            "finite numbers")
        if x.shape[1] < self.window_samples:
            raise DataError(f"{where}: {x.shape[1]} samples; the model needs at least "
                            f"{self.window_samples} ({self.window_samples / self.sampling_rate:g}"
                            f" s at {self.sampling_rate:g} Hz)")
        return prepare_trace(x, self.bandpass_hz, self.sampling_rate, self.gap_seconds)
