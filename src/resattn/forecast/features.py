"""Weekly labels and explicit (hand-crafted, seismological) features of an earthquake catalogue.

Convention: week t covers [start_t, start_t + 7 days). Its LABEL is the class of the largest
magnitude inside the week (class 0 = no event or below ``bounds[0]``). Its FEATURES use only
events with time < start_t, so a model fed week t's features forecasts week t.

Explicit features of week t (all float64; K = len(bounds) + 1 magnitude bins tagged ``lt3.5``,
``3.5-4.0``, ..., ``ge5.0``):

* ``count_w{w}_m{tag}``: number of events of each magnitude bin in [start - 7w days, start)
  for w in ``windows_weeks``.
* ``max_mag_w{w}``, ``mean_mag_w{w}`` (w = 4, 52): largest and mean magnitude over the last w
  weeks; 0.0 when the window is empty.
* ``mc``: magnitude of completeness used. ``mc=None`` estimates it for every week by maximum
  curvature (+0.2) from the last ``mc_events`` events before the week (needs 50 of them).
* the "last n" set = the last ``n_events`` events with M >= Mc before the week (fewer if fewer
  exist); ``gr_n`` is its size. From it, when it has at least 10 events:

  - ``gr_b`` Aki-Utsu maximum-likelihood b-value, corrected for the magnitude resolution
    (detected per set: 0.1, 0.01 or continuous, unless ``mag_resolution`` is given);
  - ``gr_a`` = log10(gr_n) + b Mc, so that log10 N(>=M) = a - b M;
  - ``gr_eta`` mean squared deviation of log10 N(>=M_j) from a - b M_j over the bins
    M_j = Mc, Mc + bin_width, ... up to the largest magnitude;
  - ``gr_delta_m`` = largest observed magnitude - a/b (a/b: magnitude expected once);

  and ``mean_mag_last_n`` the mean magnitude of the set (from 1 event), and, from at least 2
  events, ``t_days_last_n`` the days between its first and last event and
  ``log10_sqrt_energy_rate`` = log10(sum of sqrt(E) / max(T, 1 day)), log10 E = 11.8 + 1.5 M
  (ergs), in erg^0.5 per day.
* ``interevent_mean_days`` (mu) and ``interevent_cv`` (c = std / mean) of the times between the
  last ``n_events`` events with M >= bounds[0] (needs 3 such events).
* ``days_since_m{b}``: days from the last event with M >= b to the week start for each bound,
  capped at 3650.

Values that cannot be computed (too few events) are filled with :data:`FILL_VALUES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from resattn.data.catalog import Catalog, magnitude_of_completeness
from resattn.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_BOUNDS",
    "DEFAULT_WINDOWS",
    "FILL_VALUES",
    "aki_b_value",
    "class_names",
    "explicit_features",
    "gutenberg_richter",
    "join_extra",
    "magnitude_class",
    "week_starts",
    "weekly_labels",
]

DEFAULT_BOUNDS = (3.5, 4.0, 4.5, 5.0)
DEFAULT_WINDOWS = (1, 4, 13, 52)
DAYS_CAP = 3650.0
MIN_GR_EVENTS = 10  # fewest events for a b-value
MIN_MC_EVENTS = 50  # fewest events for a maximum-curvature Mc
_TOL = 1e-6  # magnitude comparisons: tolerate float round-off of binned values
_NS_PER_DAY = 86_400 * 10**9
_WEEK_NS = 7 * _NS_PER_DAY

# Fill value of each column family when it cannot be computed.
FILL_VALUES = {
    "max_mag": 0.0,
    "mean_mag": 0.0,
    "mc": 0.0,
    "gr_a": 0.0,
    "gr_b": 1.0,
    "gr_eta": 0.0,
    "gr_delta_m": 0.0,
    "mean_mag_last_n": 0.0,
    "t_days_last_n": DAYS_CAP,
    "log10_sqrt_energy_rate": 0.0,
    "interevent_mean_days": DAYS_CAP,
    "interevent_cv": 1.0,
    "days_since": DAYS_CAP,
}


# ----------------------------------------------------------------------------- classes, weeks


def _check_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    b = tuple(float(x) for x in bounds)
    if not b or not all(math.isfinite(x) for x in b) or any(y <= x for x, y in pairwise(b)):
        raise ConfigError(f"magnitude bounds must be a non-empty strictly increasing sequence of "
                          f"finite numbers, got {list(bounds)}")
    return b


def _fmt(x: float) -> str:
    return f"{x:.1f}" if round(x, 1) == x else f"{x:g}"


def class_names(bounds: Sequence[float] = DEFAULT_BOUNDS) -> list[str]:
    """Readable class names, e.g. ['<3.5', '3.5-4.0', '4.0-4.5', '4.5-5.0', '>=5.0']."""
    b = _check_bounds(bounds)
    return ([f"<{_fmt(b[0])}"] + [f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in pairwise(b)]
            + [f">={_fmt(b[-1])}"])


def _bin_tags(bounds: tuple[float, ...]) -> list[str]:
    """Column-safe bin tags: 'lt3.5', '3.5-4.0', ..., 'ge5.0'."""
    names = class_names(bounds)
    return [f"lt{_fmt(bounds[0])}", *names[1:-1], f"ge{_fmt(bounds[-1])}"]


def magnitude_class(mags: np.ndarray | Sequence[float],
                    bounds: Sequence[float] = DEFAULT_BOUNDS) -> np.ndarray:
    """Class of each magnitude: 0 below bounds[0], k for bounds[k-1] <= M < bounds[k]."""
    b = np.asarray(_check_bounds(bounds))
    return np.searchsorted(b - 1e-9, np.asarray(mags, dtype=np.float64), side="right")


def _naive(ts: str | pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def week_starts(start: str | pd.Timestamp, end: str | pd.Timestamp,
                weekday: int = 0) -> pd.DatetimeIndex:
    """Weekly starts at midnight UTC on ``weekday`` (0 = Monday): the first is the first such
    midnight >= start; every week [s, s + 7 days) ends at or before ``end``."""
    if weekday not in range(7):
        raise ConfigError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {weekday!r}")
    t0, t1 = _naive(start), _naive(end)
    first = t0.normalize()
    if first < t0:
        first += pd.Timedelta(days=1)
    first += pd.Timedelta(days=(weekday - first.weekday()) % 7)
    n = int((t1 - first) // pd.Timedelta(days=7)) if t1 >= first else 0
    idx = pd.date_range(first, periods=max(n, 0), freq="7D", name="week_start")
    return idx.astype("datetime64[ns]")


def _as_starts(starts: Sequence | pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(starts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if idx.hasnans:
        raise ConfigError("week starts contain missing (NaT) values")
    return idx.astype("datetime64[ns]").rename("week_start")


def _events(catalog: Catalog | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ns times, float magnitudes) sorted by time."""
    if isinstance(catalog, Catalog):
        return catalog.times_ns, catalog.magnitudes
    if not isinstance(catalog, pd.DataFrame) or not {"time", "magnitude"} <= set(catalog):
        raise ConfigError("expected a Catalog or a DataFrame with columns 'time' and 'magnitude'")
    cat = Catalog(catalog.assign(**{c: np.nan for c in ("latitude", "longitude", "depth")
                                    if c not in catalog}))
    return cat.times_ns, cat.magnitudes


def weekly_labels(catalog: Catalog | pd.DataFrame, starts: Sequence | pd.DatetimeIndex,
                  bounds: Sequence[float] = DEFAULT_BOUNDS) -> np.ndarray:
    """int64 class of the largest magnitude in [s, s + 7 days) for each start s (0 if none)."""
    b = _check_bounds(bounds)
    t, m = _events(catalog)
    s = _as_starts(starts).asi8
    i0 = np.searchsorted(t, s, side="left")
    i1 = np.searchsorted(t, s + _WEEK_NS, side="left")
    cls = magnitude_class(m, b)
    out = np.zeros(len(s), dtype=np.int64)
    for k in np.flatnonzero(i1 > i0):
        out[k] = cls[i0[k]:i1[k]].max()
    return out


# ----------------------------------------------------------------------------- Gutenberg-Richter


def aki_b_value(mags: np.ndarray | Sequence[float], mc: float, bin_width: float = 0.1) -> float:
    """Aki-Utsu maximum-likelihood b-value of the magnitudes >= mc:
    b = log10(e) / (mean(M) - (mc - bin_width / 2)), ``bin_width`` being the magnitude
    resolution (0 for continuous magnitudes). NaN with fewer than 10 events."""
    if bin_width < 0:
        raise ConfigError(f"bin_width must be >= 0, got {bin_width}")
    m = np.asarray(mags, dtype=np.float64)
    m = m[m >= mc - _TOL]
    if m.size < MIN_GR_EVENTS:
        return float("nan")
    denom = m.mean() - (mc - bin_width / 2.0)
    return float(np.log10(np.e) / denom) if denom > 0 else float("nan")


def gutenberg_richter(mags: np.ndarray | Sequence[float], mc: float,
                      bin_width: float = 0.1) -> tuple[float, float]:
    """(a, b) of log10 N(>=M) = a - b M from the n magnitudes >= mc: b by Aki-Utsu
    (:func:`aki_b_value`), a = log10(n) + b mc. (NaN, NaN) with fewer than 10 events."""
    m = np.asarray(mags, dtype=np.float64)
    b = aki_b_value(m, mc, bin_width)
    if not math.isfinite(b):
        return float("nan"), float("nan")
    n = int(np.count_nonzero(m >= mc - _TOL))
    return float(np.log10(n) + b * mc), b


def _resolution(m: np.ndarray) -> float:
    """Magnitude resolution of a set: 0.1, 0.01, or 0 (continuous)."""
    for step in (0.1, 0.01):
        x = m / step
        if np.all(np.abs(x - np.round(x)) < 1e-4):
            return step
    return 0.0


def _gr_set_features(m: np.ndarray, td: np.ndarray, mc: float, bin_width: float,
                     resolution: float | None) -> dict[str, float]:
    """Features of the 'last n' set (magnitudes ``m`` >= mc, times ``td`` in days)."""
    out: dict[str, float] = {"gr_n": float(m.size)}
    if m.size >= 1:
        out["mean_mag_last_n"] = float(m.mean())
    if m.size >= 2:
        span = float(td[-1] - td[0])
        x = 5.9 + 0.75 * m  # log10 sqrt(E), log10 E = 11.8 + 1.5 M
        top = x.max()
        out["t_days_last_n"] = span
        out["log10_sqrt_energy_rate"] = float(top + np.log10(np.sum(10.0 ** (x - top)))
                                              - np.log10(max(span, 1.0)))
    if m.size < MIN_GR_EVENTS:
        return out
    res = _resolution(m) if resolution is None else resolution
    a, b = gutenberg_richter(m, mc, res)
    if not math.isfinite(b):
        return out
    mmax = float(m.max())
    grid = mc + bin_width * np.arange(int(np.floor((mmax - mc) / bin_width + _TOL)) + 1)
    n_ge = (m[None, :] >= grid[:, None] - _TOL).sum(axis=1)
    out.update(gr_a=a, gr_b=b, gr_eta=float(np.mean((np.log10(n_ge) - (a - b * grid)) ** 2)),
               gr_delta_m=mmax - a / b)
    return out


# ----------------------------------------------------------------------------- features


def _weekly_mc(m: np.ndarray, i: np.ndarray, bin_width: float, mc_events: int) -> np.ndarray:
    """Maximum-curvature Mc (+0.2) of the last ``mc_events`` events before each week (NaN with
    fewer than 50 of them)."""
    out = np.full(len(i), np.nan)
    cache: dict[int, float] = {}
    for k, ik in enumerate(i):
        ik = int(ik)
        if ik < MIN_MC_EVENTS:
            continue
        if ik not in cache:
            cache[ik] = magnitude_of_completeness(m[max(0, ik - mc_events):ik], bin_width)
        out[k] = cache[ik]
    return out


def explicit_features(catalog: Catalog | pd.DataFrame, starts: Sequence | pd.DatetimeIndex,
                      bounds: Sequence[float] = DEFAULT_BOUNDS,
                      windows_weeks: Sequence[int] = DEFAULT_WINDOWS, n_events: int = 50,
                      mc: float | None = None, bin_width: float = 0.1, mc_events: int = 1000,
                      mag_resolution: float | None = None) -> pd.DataFrame:
    """One row of explicit features per week start (index ``week_start``), computed only from
    events strictly before the start; see the module docstring for the columns."""
    b = _check_bounds(bounds)
    windows = tuple(int(w) for w in windows_weeks)
    if not windows or any(w < 1 for w in windows) or len(set(windows)) != len(windows):
        raise ConfigError(f"windows_weeks must be distinct positive integers, got {windows_weeks}")
    if int(n_events) < 2:
        raise ConfigError(f"n_events must be >= 2, got {n_events}")
    if not bin_width > 0:
        raise ConfigError(f"bin_width must be positive, got {bin_width}")
    if int(mc_events) < MIN_MC_EVENTS:
        raise ConfigError(f"mc_events must be >= {MIN_MC_EVENTS}, got {mc_events}")
    if mc is not None and not math.isfinite(float(mc)):
        raise ConfigError(f"mc must be a finite magnitude or None, got {mc}")
    n_events = int(n_events)
    idx = _as_starts(starts)
    s_ns = idx.asi8
    s_days = s_ns / _NS_PER_DAY
    t_ns, m = _events(catalog)
    td = t_ns / _NS_PER_DAY
    i = np.searchsorted(t_ns, s_ns, side="left")  # events [0, i) are strictly before the start
    cols: dict[str, np.ndarray] = {}

    # counts per magnitude bin over trailing windows (vectorised with cumulative sums)
    cls = magnitude_class(m, b)
    cum = [np.concatenate([[0], np.cumsum(cls == k)]) for k in range(len(b) + 1)]
    tags = _bin_tags(b)
    for w in windows:
        j = np.searchsorted(t_ns, s_ns - w * _WEEK_NS, side="left")
        for k, tag in enumerate(tags):
            cols[f"count_w{w}_m{tag}"] = (cum[k][i] - cum[k][j]).astype(np.float64)

    # max and mean magnitude over the last 4 and 52 weeks
    cum_m = np.concatenate([[0.0], np.cumsum(m)])
    for w in (4, 52):
        j = np.searchsorted(t_ns, s_ns - w * _WEEK_NS, side="left")
        n = i - j
        mx = np.full(len(idx), FILL_VALUES["max_mag"])
        for k in np.flatnonzero(n > 0):
            mx[k] = m[j[k]:i[k]].max()
        cols[f"max_mag_w{w}"] = mx
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[f"mean_mag_w{w}"] = np.where(n > 0, (cum_m[i] - cum_m[j]) / np.maximum(n, 1),
                                              FILL_VALUES["mean_mag"])

    # magnitude of completeness and the Gutenberg-Richter / "last n events" set
    if mc is None:
        mcs = _weekly_mc(m, i, bin_width, int(mc_events))
    else:
        mcs = np.full(len(idx), float(mc))
    gr_names = ("gr_n", "gr_a", "gr_b", "gr_eta", "gr_delta_m", "mean_mag_last_n",
                "t_days_last_n", "log10_sqrt_energy_rate")
    gr = {name: np.full(len(idx), np.nan) for name in gr_names}
    gr["gr_n"][:] = 0.0
    above_cache: dict[float, np.ndarray] = {}
    for k in range(len(idx)):
        if not math.isfinite(mcs[k]):
            continue
        key = round(float(mcs[k]), 9)
        if key not in above_cache:
            above_cache[key] = np.flatnonzero(m >= key - _TOL)
        above = above_cache[key]
        n_above = int(np.searchsorted(above, i[k], side="left"))
        sel = above[max(0, n_above - n_events):n_above]
        for name, value in _gr_set_features(m[sel], td[sel], key, bin_width,
                                            mag_resolution).items():
            gr[name][k] = value
    cols["mc"] = mcs
    cols.update(gr)

    # inter-event times of the last n events >= bounds[0]
    mu = np.full(len(idx), np.nan)
    cv = np.full(len(idx), np.nan)
    big = np.flatnonzero(m >= b[0] - 1e-9)
    n_big = np.searchsorted(big, i, side="left")
    for k in np.flatnonzero(n_big >= 3):
        dt = np.diff(td[big[max(0, n_big[k] - n_events):n_big[k]]])
        mu[k] = dt.mean()
        cv[k] = dt.std() / mu[k] if mu[k] > 0 else 0.0
    cols["interevent_mean_days"] = mu
    cols["interevent_cv"] = cv

    # days since the last event above each bound
    for bound in b:
        above = np.flatnonzero(m >= bound - 1e-9)
        n_above = np.searchsorted(above, i, side="left")
        last = td[above[np.maximum(n_above - 1, 0)]] if above.size else np.zeros(len(idx))
        days = np.where(n_above > 0, s_days - last, DAYS_CAP)
        cols[f"days_since_m{_fmt(bound)}"] = np.minimum(days, DAYS_CAP)

    out = pd.DataFrame(cols, index=idx).astype(np.float64)
    for col in out.columns:
        family = next((f for f in FILL_VALUES if col.startswith(f)), None)
        if family is not None:
            out[col] = out[col].fillna(FILL_VALUES[family])
    return out


# ----------------------------------------------------------------------------- extra precursors


def _read_extra(table: str | Path | pd.DataFrame, time_column: str) -> tuple[pd.DataFrame, str]:
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True), "<DataFrame>"
    path = Path(table)
    if not path.is_file():
        raise DataError(f"precursor table {path} does not exist (expected a CSV with a "
                        f"'{time_column}' column and numeric feature columns)")
    try:
        return pd.read_csv(path), str(path)
    except Exception as exc:
        raise DataError(f"cannot read precursor table {path}: {exc}") from exc


def join_extra(features: pd.DataFrame, table: str | Path | pd.DataFrame,
               time_column: str = "time") -> pd.DataFrame:
    """Append per-time-step precursor features as ``extra_<name>`` columns: for each week
    start s (the index of ``features``, ascending), the mean of the table's rows with time in
    [s - 7 days, s); weeks without rows take the last earlier week's value (never a later one),
    then 0."""
    if not isinstance(features.index, pd.DatetimeIndex):
        raise ConfigError("join_extra: features must be indexed by week start (DatetimeIndex)")
    starts = _as_starts(features.index)
    if not starts.is_monotonic_increasing:
        raise ConfigError("join_extra: the week starts of features must be in ascending order")
    df, name = _read_extra(table, time_column)
    if time_column not in df.columns:
        raise DataError(f"precursor table {name} has no time column '{time_column}' "
                        f"(found {list(df.columns)[:12]})")
    times = pd.to_datetime(df[time_column], errors="coerce", utc=True, format="mixed")
    if times.isna().any():
        k = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(f"precursor table {name}, line {k + 2}, column '{time_column}': "
                        f"expected a date/time, found {df[time_column].iloc[k]!r}")
    values = df.drop(columns=[time_column])
    if values.shape[1] == 0:
        raise DataError(f"precursor table {name} has no feature columns besides "
                        f"'{time_column}'")
    for col in values.columns:
        if not (pd.api.types.is_numeric_dtype(values[col])
                or pd.api.types.is_bool_dtype(values[col])):
            bad = values[col][pd.to_numeric(values[col], errors="coerce").isna()
                              & values[col].notna()]
            example = f", e.g. {bad.iloc[0]!r}" if len(bad) else ""
            raise DataError(f"precursor table {name}: column '{col}' is not numeric{example} "
                            "(expected numbers in every column except the time)")
    names = [f"extra_{c}" for c in values.columns]
    clash = [c for c in names if c in features.columns]
    if clash:
        raise ConfigError(f"join_extra: features already have column(s) {clash}")
    order = np.argsort(times.dt.tz_localize(None).astype("datetime64[ns]").to_numpy(),
                       kind="stable")
    t_ns = (times.dt.tz_localize(None).astype("datetime64[ns]").to_numpy()[order]
            .astype(np.int64))
    v = values.to_numpy(dtype=np.float64)[order]
    s_ns = starts.asi8
    i1 = np.searchsorted(t_ns, s_ns, side="left")
    i0 = np.searchsorted(t_ns, s_ns - _WEEK_NS, side="left")
    agg = np.full((len(starts), v.shape[1]), np.nan)
    for k in np.flatnonzero(i1 > i0):
        block = v[i0[k]:i1[k]]
        ok = ~np.isnan(block)
        cnt = ok.sum(axis=0)
        total = np.where(ok, block, 0.0).sum(axis=0)
        agg[k] = np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)
    extra = pd.DataFrame(agg, index=features.index, columns=names).ffill().fillna(0.0)
    return pd.concat([features, extra], axis=1)
