"""A weekly series ready for learning: explicit features, labels, a strict time split, the
standardisation fitted on the training weeks only, and windows of the last W weeks.

Week t covers [start_t, start_t + 7 days). Its label is the class of the largest magnitude in
it; its features use only events before start_t. The item for week t is the (F, W) window of
the standardised feature rows of weeks t - W + 1 .. t, so it too sees nothing at or after
start_t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..data.catalog import Catalog
from ..errors import ConfigError, DataError
from .features import class_names, explicit_features, join_extra, week_starts, weekly_labels


@dataclass
class Standardizer:
    """Signed log1p (tames counts and energies) then z-score with training-week statistics;
    values clipped to +-10 and NaN set to 0 (the training mean)."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def squash(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.sign(x) * np.log1p(np.abs(x))

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        z = cls.squash(x)
        mean, std = np.nanmean(z, 0), np.nanstd(z, 0)
        return cls(np.nan_to_num(mean), np.where(np.nan_to_num(std) > 1e-8, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (self.squash(x) - self.mean) / self.std
        return np.clip(np.nan_to_num(z), -10, 10).astype(np.float32)

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Standardizer:
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]))


@dataclass
class WeeklySeries:
    """Explicit features (T, F), labels (T,) and week starts of one region."""

    starts: pd.DatetimeIndex
    features: pd.DataFrame
    labels: np.ndarray
    bounds: tuple[float, ...]
    names: list[str] = field(default_factory=list)
    usable: np.ndarray | None = None  # False: label or feature window overlaps a data gap

    @property
    def class_names(self) -> list[str]:
        return class_names(self.bounds)

    def positions(self, start: str | pd.Timestamp | None, end: str | pd.Timestamp | None,
                  window: int) -> np.ndarray:
        """Weeks lying wholly in [start, end) with a full window of history before them."""
        s = self.starts
        ok = np.arange(len(s)) >= window - 1
        if self.usable is not None:
            ok &= self.usable
        if start is not None:
            ok &= s >= pd.Timestamp(start)
        if end is not None:
            ok &= s + pd.Timedelta(days=7) <= pd.Timestamp(end)
        return np.flatnonzero(ok)


def usable_weeks(catalog: Catalog, starts: pd.DatetimeIndex, gap_days: float = 180.0,
                 lookback_weeks: int = 52) -> np.ndarray:
    """False for weeks whose label week or feature look-back (``lookback_weeks``, the longest
    feature window) overlaps a stretch of more than ``gap_days`` without any event: missing
    data (SCEDC lacks 1992 and 2019), not quiet weeks. Weeks before the catalogue's first
    event or ending after its last are missing data too: the catalogue does not cover them."""
    times = catalog.events["time"]
    first, last = times.iloc[0].normalize(), times.iloc[-1].normalize() + pd.Timedelta(days=1)
    ok = np.asarray((starts >= first) & (starts + pd.Timedelta(days=7) <= last), dtype=bool)
    for a, b in catalog.gaps(gap_days):
        lo = starts - pd.Timedelta(weeks=lookback_weeks)
        hi = starts + pd.Timedelta(days=7)
        ok &= ~((lo < b) & (hi > a))
    return ok


def build_series(catalog: Catalog, start: str | pd.Timestamp, end: str | pd.Timestamp,
                 bounds: tuple[float, ...], extra: str | pd.DataFrame | None = None,
                 mc: float | None = None, gap_days: float = 180.0) -> WeeklySeries:
    """Weekly explicit features and next-week labels of ``catalog`` for weeks in [start, end);
    weeks touching a data gap are marked unusable."""
    starts = week_starts(pd.Timestamp(start), pd.Timestamp(end))
    if len(starts) == 0:
        raise ConfigError(f"no whole week between {start} and {end}")
    feats = explicit_features(catalog, starts, bounds, mc=mc)
    if extra is not None:
        feats = join_extra(feats, extra)
    labels = weekly_labels(catalog, starts, bounds)
    return WeeklySeries(starts, feats, labels, tuple(bounds), list(feats.columns),
                        usable_weeks(catalog, starts, gap_days))


def time_split(series: WeeklySeries, train_end: str, val_end: str,
               window: int) -> dict[str, np.ndarray]:
    """Train before T1 = ``train_end``, validate T1-T2, test after T2 = ``val_end``."""
    t1, t2 = pd.Timestamp(train_end), pd.Timestamp(val_end)
    if not t1 < t2:
        raise ConfigError(f"--train-end ({t1.date()}) must come before --val-end ({t2.date()})")
    parts = {"train": series.positions(None, t1, window),
             "val": series.positions(t1, t2, window),
             "test": series.positions(t2, None, window)}
    empty = [p for p, v in parts.items() if len(v) == 0]
    if empty:
        usable = int(series.usable.sum()) if series.usable is not None else len(series.starts)
        raise DataError(f"the {'/'.join(empty)} period holds no whole week with {window} weeks "
                        f"of history before it (weeks {series.starts[0].date()} to "
                        f"{series.starts[-1].date()}, T1 {t1.date()}, T2 {t2.date()}; "
                        f"{usable} of {len(series.starts)} weeks have data: weeks before the "
                        "first event, after the last or in a long gap without events are "
                        "missing data)")
    return parts


class WeekWindows(Dataset):
    """Item k: (FloatTensor (F, window) of the standardised rows up to week ``positions[k]``,
    that week's label)."""

    def __init__(self, z: np.ndarray, labels: np.ndarray, positions: np.ndarray,
                 window: int) -> None:
        if np.any(positions < window - 1):
            raise ConfigError(f"every week needs {window - 1} weeks of history before it")
        self.z = torch.from_numpy(np.ascontiguousarray(z.T))  # (F, T)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.window = int(window)
        self._labels = np.asarray(labels, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self._labels[self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        t = int(self.positions[k])
        return self.z[:, t - self.window + 1: t + 1], int(self._labels[t])
