"""Composable, seeded augmentations of waveform windows ``x`` ``(channels, window)``.

Each augmentation is a callable ``aug(x, rng) -> y``: ``y`` has the shape and dtype of ``x``,
``x`` is never modified in place, and all randomness comes from the ``numpy.random.Generator``
passed in, so a caller that seeds the generator per item (e.g. from seed, epoch, index) gets
reproducible items. Amplitude-dependent parameters (noise level, steps, stuck values) are
relative to each channel's standard deviation, so the transforms work on counts, velocity or
normalised data alike and commute with :class:`Gain`.

They target a detector trained on one source and applied to others: amplitude units differ,
horizontals may be unoriented (ocean-bottom seismometers), a component may be dead, a window
may start or end in a gap followed by a step, and stations filter or record at other rates.
:class:`Compose` applies a selection in the fixed order :data:`ORDER`, each with its own
probability; selecting nothing (the paper's recipe) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from resattn.errors import ConfigError

__all__ = [
    "AUGMENTATIONS", "DEFAULT_PROBABILITIES", "ORDER", "Augmentation", "BandpassRandom",
    "Compose", "DeadChannel", "Gain", "Gap", "Noise", "Polarity", "Resample",
    "RotateHorizontals", "TimeShift", "parse_augmentations",
]


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float],
                 size: Any = None) -> np.ndarray | float:
    """Draw(s) log-uniform between ``bounds`` (both > 0)."""
    lo, hi = bounds
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))


def _std(x: np.ndarray) -> np.ndarray:
    """Per-channel standard deviation ``(channels, 1)`` in float64."""
    return x.std(axis=-1, keepdims=True, dtype=np.float64)


class Augmentation:
    """Base class: ``__call__`` runs :meth:`apply` and restores the input's dtype. One that
    ``protects`` takes ``keep``, samples it must leave as data."""

    protects = False

    def __call__(self, x: np.ndarray, rng: np.random.Generator,
                 keep: tuple[int, int] | None = None) -> np.ndarray:
        x = np.asarray(x)
        y = self.apply(x, rng, keep) if keep is not None and self.protects else \
            self.apply(x, rng)
        if y.shape != x.shape:  # a bug in an augmentation, not a user mistake
            raise AssertionError(f"{type(self).__name__} changed shape {x.shape} -> {y.shape}")
        return y.astype(x.dtype, copy=False)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Gain(Augmentation):
    """Amplitude x log-uniform ``channel`` factor per channel x one log-uniform ``overall``
    factor (units differ between sources: counts, normalised, velocity, acceleration)."""

    def __init__(self, channel: tuple[float, float] = (0.5, 2.0),
                 overall: tuple[float, float] = (1e-2, 1e2)) -> None:
        self.channel, self.overall = tuple(channel), tuple(overall)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = _log_uniform(rng, self.channel, (x.shape[0], 1)) * _log_uniform(rng, self.overall)
        return x * factor


class Polarity(Augmentation):
    """Sign flip of all channels (a sensor sign convention); :class:`Compose` draws whether."""

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return -x


class RotateHorizontals(Augmentation):
    """Rotate the horizontal rows ``horizontals`` (E, N) by a uniform angle, then swap them with
    probability ``swap`` (unoriented or mislabelled 1/2 components); energy is preserved."""

    def __init__(self, horizontals: tuple[int, int] = (0, 1), swap: float = 0.5) -> None:
        self.horizontals, self.swap = tuple(horizontals), float(swap)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(0.0, 2 * np.pi)
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s], [s, c]])
        if rng.random() < self.swap:
            rot = rot[::-1]
        y = x.astype(np.float64)
        rows = list(self.horizontals)
        y[rows] = rot @ y[rows]
        return y


class TimeShift(Augmentation):
    """Circular shift (``np.roll``) by up to ``max_fraction`` of the window, either way.

    Random cropping already places the window; this adds a small jitter without inventing a
    gap (zero fill would) or a mirrored arrival (reflection fill would). The price is one
    discontinuity where the end wraps to the start, small for a <= 10 % shift of noise.
    """

    def __init__(self, max_fraction: float = 0.1) -> None:
        self.max_fraction = float(max_fraction)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        most = int(self.max_fraction * x.shape[-1])
        return np.roll(x, int(rng.integers(-most, most + 1)), axis=-1)


class Gap(Augmentation):
    """A run of exact zeros on all channels, up to ``max_fraction`` of the window, at one of
    ``where`` (start, end, middle); with probability ``step`` the data after the gap (before it,
    for a gap at the end) get a DC offset of ``offset`` channel standard deviations."""

    protects = True

    def __init__(self, max_fraction: float = 0.4, where: tuple[str, ...] = ("start", "end",
                 "middle"), step: float = 0.5, offset: tuple[float, float] = (-5.0, 5.0)) -> None:
        if not where or set(where) - {"start", "end", "middle"}:
            raise ConfigError(f"gap positions are start, end, middle; got {list(where)}")
        self.max_fraction, self.where = float(max_fraction), tuple(where)
        self.step, self.offset = float(step), tuple(offset)

    def apply(self, x: np.ndarray, rng: np.random.Generator,
              keep: tuple[int, int] | None = None) -> np.ndarray:
        """``keep``: samples ``[a, b)`` the gap must not cover (an event's onset: a gap over
        it would teach "flat, then signal" as an earthquake); the gap then lies wholly before
        or after them, or is not made when there is no room."""
        n = x.shape[-1]
        length = int(rng.integers(1, max(1, int(self.max_fraction * n)) + 1))
        where = self.where[int(rng.integers(len(self.where)))]
        start = {"start": 0, "end": n - length}.get(where)
        if start is None:  # middle: at least one sample either side when there is room
            start = int(rng.integers(1, n - length)) if n - length >= 2 else 0
        if keep is not None:
            a, b = max(0, keep[0]), min(n, keep[1])
            room = a if where != "end" else n - b  # before the kept part, or after it
            length = min(length, room)
            if length < 1:
                return x.astype(np.float64)
            start = 0 if where != "end" else n - length
        stop = start + length
        y = x.astype(np.float64)
        if rng.random() < self.step:
            rest = slice(stop, n) if stop < n else slice(0, start)
            y[:, rest] += rng.uniform(*self.offset, size=(x.shape[0], 1)) * _std(x)
        y[:, start:stop] = 0.0
        return y


class DeadChannel(Augmentation):
    """1 to ``max_channels`` components dead: zeros, or with probability ``constant`` stuck at
    their mean (at least one component always stays alive)."""

    def __init__(self, max_channels: int = 2, constant: float = 0.3) -> None:
        self.max_channels, self.constant = int(max_channels), float(constant)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        most = max(1, min(self.max_channels, x.shape[0] - 1))
        dead = rng.choice(x.shape[0], size=int(rng.integers(1, most + 1)), replace=False)
        y = x.copy()
        stuck = rng.random() < self.constant
        y[dead] = x[dead].mean(axis=-1, keepdims=True, dtype=np.float64) if stuck else 0.0
        return y


class BandpassRandom(Augmentation):
    """:func:`resattn.data.transforms.bandpass` (detrend + zero-phase Butterworth) with corners
    uniform in ``low`` and ``high`` Hz, ``high`` capped at 0.45 ``sampling_rate``."""

    def __init__(self, low: tuple[float, float] = (0.5, 2.0),
                 high: tuple[float, float] = (8.0, 30.0), sampling_rate: float = 100.0,
                 order: int = 4) -> None:
        self.low, self.high = tuple(low), tuple(high)
        self.sampling_rate, self.order = float(sampling_rate), int(order)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from resattn.data.transforms import bandpass  # transforms imports this module

        low = rng.uniform(*self.low)
        high = min(rng.uniform(*self.high), 0.45 * self.sampling_rate)
        return bandpass(x, low, high, self.sampling_rate, self.order)


class Resample(Augmentation):
    """As if recorded at another rate: resample by a log-uniform ``factor`` (a ratio with
    denominator <= ``max_denominator``, anti-aliased :func:`scipy.signal.resample_poly`), so the
    content is stretched in time by ``factor``; then a random crop, or reflection padding split
    randomly between the ends, restores the window length."""

    def __init__(self, factor: tuple[float, float] = (0.8, 1.25),
                 max_denominator: int = 20) -> None:
        self.factor, self.max_denominator = tuple(factor), int(max_denominator)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import resample_poly

        ratio = Fraction(float(_log_uniform(rng, self.factor))).limit_denominator(
            self.max_denominator)
        if ratio == 1:
            return x
        # padtype="line": raw counts often carry a large DC offset; zero padding would bend the
        # ends towards zero and fake a step.
        y = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1,
                          padtype="line")
        n, m = x.shape[-1], y.shape[-1]
        if m < n:
            left = int(rng.integers(0, n - m + 1))
            y = np.pad(y, ((0, 0), (left, n - m - left)), mode="reflect")
        start = int(rng.integers(0, y.shape[-1] - n + 1))
        return y[:, start : start + n]


class Noise(Augmentation):
    """Additive Gaussian noise of std U(``sigma``), times each channel's std if ``relative``
    (otherwise absolute, for standardised input)."""

    def __init__(self, sigma: tuple[float, float] = (0.0, 0.1), relative: bool = True) -> None:
        self.sigma, self.relative = tuple(sigma), bool(relative)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.uniform(*self.sigma) * rng.standard_normal(x.shape)
        if self.relative:
            noise = noise * _std(x)
        return x + noise.astype(x.dtype)


AUGMENTATIONS: dict[str, Callable[..., Augmentation]] = {
    "gain": Gain, "polarity": Polarity, "rotate_horizontals": RotateHorizontals,
    "time_shift": TimeShift, "gap": Gap, "dead_channel": DeadChannel,
    "bandpass_random": BandpassRandom, "resample": Resample, "noise": Noise,
}

#: Application order: what the recording chain does first comes first (instrument band and
#: rate, orientation, sign, timing, sensor noise, units), then the artefacts that must stay
#: exact (dead channels, zero gaps) so that nothing later fills them with noise or ringing.
ORDER = ("resample", "bandpass_random", "rotate_horizontals", "polarity", "time_shift",
         "noise", "gain", "dead_channel", "gap")

#: Probability that :class:`Compose` applies each selected augmentation to an item.
DEFAULT_PROBABILITIES: dict[str, float] = {
    "resample": 0.3, "bandpass_random": 0.3, "rotate_horizontals": 0.5, "polarity": 0.5,
    "time_shift": 0.5, "noise": 0.5, "gain": 1.0, "dead_channel": 0.2, "gap": 0.5,
}
assert set(ORDER) == set(AUGMENTATIONS) == set(DEFAULT_PROBABILITIES)


def parse_augmentations(names: Iterable[str] | str) -> tuple[str, ...]:
    """Validated augmentation names, duplicates dropped (a string is split on commas).

    Raises :class:`~resattn.errors.ConfigError` naming the unknown names and the known ones.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown waveform augmentation(s) {unknown}; known: {list(ORDER)}")
    return names


class Compose:
    """Apply the augmentations ``names`` in the fixed order :data:`ORDER`, each with probability
    ``probabilities[name]`` (default :data:`DEFAULT_PROBABILITIES`); ``options[name]`` are
    keyword arguments of its factory in :data:`AUGMENTATIONS` (keys may name unselected
    augmentations). A probability of 1 (or 0) draws no random number for the decision."""

    def __init__(self, names: Iterable[str] | str,
                 probabilities: Mapping[str, float] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.names = parse_augmentations(names)
        probabilities, options = dict(probabilities or {}), dict(options or {})
        parse_augmentations(probabilities)
        parse_augmentations(options)
        bad = {k: p for k, p in probabilities.items() if not 0.0 <= p <= 1.0}
        if bad:
            raise ConfigError(f"augmentation probabilities must be in [0, 1], got {bad}")
        probs = {**DEFAULT_PROBABILITIES, **probabilities}
        self.steps: tuple[tuple[str, float, Augmentation], ...] = tuple(
            (name, float(probs[name]), AUGMENTATIONS[name](**options.get(name, {})))
            for name in ORDER if name in self.names
        )

    def __call__(self, x: np.ndarray, rng: np.random.Generator,
                 keep: tuple[int, int] | None = None) -> np.ndarray:
        """``x`` augmented; ``keep`` (samples ``[a, b)``) goes to the augmentations that
        protect it (``gap``)."""
        for _, p, aug in self.steps:
            if p >= 1.0 or (p > 0.0 and rng.random() < p):
                x = aug(x, rng, keep)
        return x

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(f"{a!r} p={p}" for _, p, a in self.steps) + ")"
