"""A continuous record made of real traces: noise windows joined end to end (cross-faded, each
scaled to unit standard deviation), real earthquake records inserted at known times. For
tests, benchmarks and the demo: ``continuous_record`` returns the samples and the P times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FADE_S = 3.0  # cross-fade at every join, so no join is a step
BAND = (1.0, 20.0)  # Hz: where the amplitudes of joined pieces are matched


def _unit(x: np.ndarray, ref: slice | None = None, rate: float = 100.0) -> np.ndarray:
    """``x`` (C, n) demeaned, each channel divided by the std of its band-passed samples over
    ``ref`` (default all): pieces of different stations then join at one level in the band
    a detector sees, not at one level of microseism."""
    from ..data.transforms import bandpass

    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    band = bandpass(x, *BAND, rate)
    std = band[:, ref if ref is not None else slice(None)].std(axis=1, keepdims=True)
    return x / np.where(std > 0, std, 1.0)


def _fade(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))


def noise_background(noise: Sequence[np.ndarray], n_samples: int, rate: float,
                     rng: np.random.Generator) -> np.ndarray:
    """``(C, n_samples)`` of the ``noise`` windows (each ``(C, m)``) in a random order,
    repeated as needed, each at unit std, cross-faded over :data:`FADE_S`."""
    fade = round(FADE_S * rate)
    ramp = _fade(fade)
    out = np.zeros((noise[0].shape[0], n_samples))
    pos = 0
    while pos < n_samples:
        piece = _unit(noise[int(rng.integers(len(noise)))], rate=rate)
        piece = piece * (1 if rng.random() < 0.5 else -1)
        f = min(fade, pos, piece.shape[1] // 2)  # the overlap with what is there already
        m = min(piece.shape[1], n_samples - pos + f)
        start = pos - f
        out[:, start:start + f] = (out[:, start:start + f] * ramp[::-1][:f]
                                   + piece[:, :f] * ramp[:f])
        out[:, start + f:start + m] = piece[:, f:m]
        pos = start + m
    return out


def insert_event(background: np.ndarray, event: np.ndarray, at: int, p_sample: int,
                 rate: float) -> None:
    """Put ``event`` ``(C, m)`` (scaled to unit std of its pre-P noise) into ``background`` at
    sample ``at``, cross-faded in and out, in place."""
    pre = slice(0, max(int(p_sample) - round(0.5 * rate), round(rate)))
    x = _unit(event, pre, rate)
    m = min(x.shape[1], background.shape[1] - at)
    fade = round(FADE_S * rate)
    w = np.ones(m)
    if m >= 2 * fade:
        w[:fade], w[m - fade:] = _fade(fade), _fade(fade)[::-1]
    seg = background[:, at:at + m]
    background[:, at:at + m] = seg * (1 - w) + x[:, :m] * w


def continuous_record(noise: Sequence[np.ndarray], events: Sequence[np.ndarray],
                      p_samples: Sequence[int], hours: float, rate: float = 100.0,
                      seed: int = 0, first_s: float = 300.0,
                      spacing_s: float | None = None) -> tuple[np.ndarray, list[float]]:
    """``(C, hours * 3600 * rate)`` of real noise with the ``events`` inserted (in order,
    evenly spaced from ``first_s`` unless ``spacing_s``), and each event's P time in seconds
    from the record's start."""
    rng = np.random.default_rng(seed)
    n = round(hours * 3600 * rate)
    record = noise_background(noise, n, rate, rng)
    total = hours * 3600 - first_s - 120.0
    step = spacing_s or total / max(len(events), 1)
    p_times = []
    for i, (ev, p) in enumerate(zip(events, p_samples, strict=True)):
        at = round((first_s + i * step) * rate)
        if at + ev.shape[1] > n:
            break
        insert_event(record, ev, at, int(p), rate)
        p_times.append(at / rate + float(p) / rate)
    return record, p_times
