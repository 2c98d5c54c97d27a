"""Earthquake catalogue readers: one table of (time, latitude, longitude, magnitude, depth).

Formats understood by :func:`read_catalog` (``fmt="auto"`` picks one from the header):

* ``scedc``: SCEDC-style CSV ``time`` (``YYYY/MM/DD HH:MM:SS.ss``), ``event_type``, ``geo_type``,
  ``magnitude``, ``mag_type``, ``latitude``, ``longitude``, ``depth_km``, ``quality``, ``evid``;
  only ``event_type == "eq"`` rows are kept (quarry blasts etc. are dropped, not "bad").
* ``south_asia``: ``Year, Month, Day, Hour, Minute, Second`` (-1 = unknown: 1 for month/day,
  0 for hour/minute/second), ``Latitude``, ``Longitude``, ``depth_km``, ``Mw``, ``Mw_std``.
* ``usgs``: USGS/NEIC "significant earthquakes" CSV ``Date`` (``MM/DD/YYYY``, or an ISO
  timestamp, which needs no ``Time``), ``Time`` (a row without its time of day is bad),
  ``Latitude``, ``Longitude``, ``Type``, ``Depth``, ``Magnitude``, ...; only
  ``Type == "Earthquake"`` rows are kept (all rows if there is no ``Type`` column).
* ``csv``: any CSV with ``time``, ``latitude``/``lat``, ``longitude``/``lon``,
  ``magnitude``/``mag`` and optionally ``depth``/``depth_km`` (names case-insensitive); times
  in ISO 8601 or the layout of the first row with a real time, time-zone-aware ones converted
  to UTC.
* ``quakeml``: QuakeML read through ObsPy; preferred origin and magnitude (else the first).

CSV files may be gzip-compressed. Rows with an unparseable time (or one without its 4-digit
year, such as "now", or outside 1678..2261), a missing or non-numeric
magnitude/latitude/longitude, or values out of range are "bad": skipped and recorded (with their
1-based line number, header = line 1) or raised as :class:`~resattn.errors.DataError`.
Line numbers assume one record per line (no quoted multi-line fields).
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from resattn.data.files import cause
from resattn.errors import ConfigError, DataError

__all__ = [
    "CATALOG_COLUMNS",
    "FORMATS",
    "BadRow",
    "Catalog",
    "CatalogWarning",
    "magnitude_of_completeness",
    "read_catalog",
    "read_catalogs",
]

CATALOG_COLUMNS = ("time", "latitude", "longitude", "magnitude", "depth")
FORMATS = ("auto", "scedc", "south_asia", "usgs", "csv", "quakeml")
ON_BAD = ("skip", "error")
MAG_RANGE = (-5.0, 10.0)
LAT_RANGE = (-90.0, 90.0)
LON_RANGE = (-180.0, 360.0)
_NS_PER_DAY = 86_400 * 10**9
_TIME_RANGE = (pd.Timestamp("1678-01-01"), pd.Timestamp("2262-01-01"))  # datetime64[ns] span
_XML_SUFFIXES = (".xml", ".quakeml", ".qml")
_N_LINES_SHOWN = 5
_CLOCK = r"\d[T ]\d{1,2}:\d{2}"  # a time of day after a date: "2005-01-02T10:00", "... 9:05"
_N_GUESSES = 1000  # values tried for a time layout when neither the format nor ISO 8601 fits

# Required columns per CSV format (lower case); the generic format lists accepted aliases.
_SCEDC = ("time", "event_type", "magnitude", "latitude", "longitude")
_SOUTH_ASIA = ("year", "month", "day", "hour", "minute", "second", "latitude", "longitude", "mw")
_USGS = ("date", "time", "latitude", "longitude", "magnitude")  # + optional type, depth
_GENERIC = {
    "time": ("time", "datetime", "origin_time", "origintime"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "long", "lng"),
    "magnitude": ("magnitude", "mag"),
    "depth": ("depth", "depth_km"),
}
# QuakeML event types kept (None = not given).
_QUAKEML_KEEP = (None, "earthquake", "induced or triggered event", "not reported")


class CatalogWarning(UserWarning):
    """Bad rows were skipped while reading a catalogue."""


@dataclass
class BadRow:
    """A skipped row: 1-based line number in its file (header = line 1; for QuakeML the event
    number) and why it is bad."""

    line: int
    reason: str


class Catalog:
    """Events sorted by time: ``events`` has exactly :data:`CATALOG_COLUMNS`, ``time`` as naive
    UTC ``datetime64[ns]``, floats elsewhere (``depth`` in km, NaN when unknown: missing, not a
    number or infinite in the file)."""

    def __init__(self, events: pd.DataFrame, sources: Iterable[str] = (),
                 bad_rows: Iterable[tuple[str, BadRow]] = ()) -> None:
        missing = [c for c in CATALOG_COLUMNS if c not in events.columns]
        if missing:
            raise DataError(f"catalogue table has no column(s) {missing} "
                            f"(expected {list(CATALOG_COLUMNS)})")
        ev = pd.DataFrame({"time": _naive_utc(events["time"])})
        for col in CATALOG_COLUMNS[1:]:
            ev[col] = pd.to_numeric(events[col], errors="coerce").astype(np.float64).to_numpy()
        for col in ("time", "magnitude"):
            n_missing = int(ev[col].isna().sum())
            if n_missing:
                raise DataError(f"catalogue table has {n_missing} event(s) without a {col} "
                                "(read files with read_catalog, which sets bad rows aside)")
        self.events = ev.sort_values("time", kind="mergesort").reset_index(drop=True)
        self.sources: list[str] = list(sources)
        self.bad_rows: list[tuple[str, BadRow]] = list(bad_rows)

    def _subset(self, mask: np.ndarray | pd.Series) -> Catalog:
        return Catalog(self.events[np.asarray(mask, dtype=bool)], self.sources, self.bad_rows)

    def region(self, lat0: float, lat1: float, lon0: float, lon1: float) -> Catalog:
        """Events inside the box lat0 <= lat <= lat1, lon0 <= lon <= lon1 (the catalogue's own
        longitude convention)."""
        if not lat0 < lat1:
            raise ConfigError(f"region: lat0 ({lat0}) must be smaller than lat1 ({lat1})")
        if not lon0 < lon1:
            raise ConfigError(f"region: lon0 ({lon0}) must be smaller than lon1 ({lon1})")
        ev = self.events
        return self._subset(ev.latitude.between(lat0, lat1) & ev.longitude.between(lon0, lon1))

    def above(self, m_min: float) -> Catalog:
        """Events with magnitude >= m_min (1e-9 tolerance for float round-off)."""
        return self._subset(self.events.magnitude.to_numpy() >= m_min - 1e-9)

    def between(self, start: str | pd.Timestamp, end: str | pd.Timestamp) -> Catalog:
        """Events with start <= time < end (naive times are UTC)."""
        t0, t1 = _timestamp(start), _timestamp(end)
        times = self.events.time
        return self._subset((times >= t0) & (times < t1))

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        if not len(self):
            return f"Catalog(0 events, sources={self.sources})"
        t = self.events.time
        return (f"Catalog({len(self)} events, {t.iloc[0]} .. {t.iloc[-1]}, "
                f"M {self.magnitudes.min():.1f}-{self.magnitudes.max():.1f}, "
                f"{len(self.bad_rows)} bad rows, sources={self.sources})")

    def gaps(self, min_days: float = 90.0) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """(last event before, first event after) of every stretch longer than ``min_days``
        without any event, e.g. years missing from a catalogue: weeks inside such a gap hold
        no information, not "no earthquake"."""
        t = self.events.time
        days = t.diff().dt.total_seconds().to_numpy() / 86_400.0
        return [(t.iloc[k - 1], t.iloc[k]) for k in np.flatnonzero(days > min_days)]

    @property
    def times_ns(self) -> np.ndarray:
        """int64 nanoseconds since 1970-01-01 (exact; sorted)."""
        return self.events.time.to_numpy().astype("datetime64[ns]").astype(np.int64)

    @property
    def times_days(self) -> np.ndarray:
        """float64 days since 1970-01-01 (sorted, for searchsorted and time differences)."""
        return self.times_ns / _NS_PER_DAY

    @property
    def magnitudes(self) -> np.ndarray:
        return self.events.magnitude.to_numpy(dtype=np.float64)


# ----------------------------------------------------------------------------- helpers


def _naive_utc(values: pd.Series | pd.DatetimeIndex | Sequence) -> pd.Series:
    """Datetimes as naive UTC datetime64[ns] (aware values are converted to UTC first)."""
    s = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, utc=True)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[ns]").reset_index(drop=True)


def _timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _head(path: Path, n: int = 512) -> bytes:
    """The first ``n`` bytes of the (decompressed) file; a broken gzip stream is a DataError."""
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read(n)
        with open(path, "rb") as f:
            return f.read(n)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"cannot read catalogue {path}: {cause(exc)} (a damaged or truncated "
                        "gzip file?)") from None


def _looks_like_xml(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if any(s in _XML_SUFFIXES for s in suffixes):
        return True
    head = _head(path).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<?xml") or b"<q:quakeml" in head or b"<quakeml" in head


def _read_header(path: Path) -> list[str]:
    compression = "gzip" if _is_gzip(path) else None
    try:
        cols = pd.read_csv(path, nrows=0, compression=compression).columns
    except Exception as exc:  # any parser/encoding/IO failure is a user-data problem
        raise DataError(f"cannot read the header of catalogue {path}: {exc}") from exc
    return [str(c) for c in cols]


def _column_map(columns: Sequence[str]) -> dict[str, str]:
    """lower-cased, stripped name -> name as written in the file (first wins)."""
    out: dict[str, str] = {}
    for c in columns:
        out.setdefault(c.strip().lower(), c)
    return out


def _generic_columns(cmap: dict[str, str]) -> dict[str, str] | None:
    """Standard name -> file column for the generic format, or None if a required one lacks."""
    found: dict[str, str] = {}
    for std, aliases in _GENERIC.items():
        for alias in aliases:
            if alias in cmap:
                found[std] = cmap[alias]
                break
    return found if all(k in found for k in CATALOG_COLUMNS[:4]) else None


def _expected_text() -> str:
    return ("scedc: " + ", ".join(_SCEDC) + "; south_asia: " + ", ".join(_SOUTH_ASIA)
            + "; usgs: " + ", ".join(_USGS) + "; csv: time, latitude|lat, longitude|lon, "
            "magnitude|mag[, depth|depth_km]")


def _detect(path: Path) -> str:
    if _looks_like_xml(path):
        return "quakeml"
    cmap = _column_map(_read_header(path))
    if all(c in cmap for c in _SOUTH_ASIA):
        return "south_asia"
    if all(c in cmap for c in _USGS):
        return "usgs"
    if all(c in cmap for c in _SCEDC) and ("evid" in cmap or "geo_type" in cmap):
        return "scedc"
    if _generic_columns(cmap) is not None:
        return "csv"
    raise DataError(f"cannot tell the format of catalogue {path}: its header "
                    f"{list(cmap.values())[:12]} matches none of the expected layouts "
                    f"({_expected_text()})")


def _read_table(path: Path, fmt: str, required: Sequence[str],
                optional: Sequence[str] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """Text table of the ``required`` and present ``optional`` (lower-case) columns, renamed to
    lower case (absent optional ones are all NaN), with the 1-based file line number of each
    row; blank lines are dropped."""
    cmap = _column_map(_read_header(path))
    missing = [c for c in required if c not in cmap]
    if missing:
        raise DataError(f"catalogue {path} (format {fmt}) has no column(s) {missing}; "
                        f"expected {list(required)}, found {list(cmap.values())[:12]}")
    names = {c: cmap[c] for c in (*required, *optional) if c in cmap}
    table, lines = _read_columns(path, names)
    for c in optional:
        if c not in table:
            table[c] = np.nan
    return table, lines


def _read_columns(path: Path, names: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray]:
    compression = "gzip" if _is_gzip(path) else None
    try:
        raw = pd.read_csv(path, usecols=list(names.values()), dtype=str, compression=compression,
                          skip_blank_lines=False, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise DataError(f"cannot read catalogue {path}: {exc}") from exc
    table = pd.DataFrame({std: raw[col].str.strip() for std, col in names.items()})
    table = table.replace("", np.nan)
    lines = np.arange(len(table), dtype=np.int64) + 2
    keep = table.notna().any(axis=1).to_numpy()  # blank lines keep their line number
    return table[keep].reset_index(drop=True), lines[keep]


def _parse_times(raw: pd.Series, fmt: str | None) -> pd.Series:
    """Naive UTC ``datetime64[ns]`` times: each value in layout ``fmt``, else ISO 8601, else the
    layout guessed from the first value left that is a real time in one; NaT (a bad row) if none
    fits or the value is not a real date (see :func:`_real_times`).

    Every pass uses one explicit layout: pandas' per-value inference (``format="mixed"``, or
    no format when the first value has no recognisable layout) completes a partial value from
    the current date, so that "12:30 2020" read on 2 December is 2 December 2020."""
    t = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    for layout in (fmt, "ISO8601", ""):
        todo = (t.isna() & raw.notna()).to_numpy()
        if layout is None or not todo.any():
            continue
        text = raw[todo]
        with warnings.catch_warnings():  # the guess warns when it reads the day first
            warnings.simplefilter("ignore", UserWarning)
            layout = layout or _guess_layout(text)
            if layout is None:
                break
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format=layout)
        t[todo] = _real_times(parsed.dt.tz_localize(None), text)
    return t


def _guess_layout(text: pd.Series) -> str | None:
    """The layout of the first of ``text``'s values (up to ``_N_GUESSES``) that has one and is
    a real time in it: a bad first row ("1500-01-01") does not pick the layout of the rest."""
    for value in map(str, text.unique()[:_N_GUESSES]):
        layout = guess_datetime_format(value)
        if layout is None:
            continue
        one = pd.Series([value])
        parsed = pd.to_datetime(one, errors="coerce", utc=True, format=layout)
        if _real_times(parsed.dt.tz_localize(None), one).notna().all():
            return layout
    return None


def _real_times(t: pd.Series, raw: pd.Series | None = None) -> pd.Series:
    """Naive UTC times as ``datetime64[ns]``, NaT where a value is outside 1678..2261 (what
    nanosecond timestamps hold) or, given its ``raw`` text, where that text does not hold the
    year (within 1: a UTC offset may cross New Year): "now" and "today" parse to the clock."""
    ok = ((t >= _TIME_RANGE[0]) & (t < _TIME_RANGE[1])).to_numpy(copy=True)
    if raw is not None and ok.any():
        text = raw.to_numpy(dtype=str)[ok]
        years = t.dt.year.to_numpy()[ok].astype(np.int64)
        written = np.zeros(len(text), dtype=bool)
        for d in (0, -1, 1):
            written |= np.char.find(text, np.char.zfill((years + d).astype(str), 4)) >= 0
        ok[np.flatnonzero(ok)[~written]] = False
    return t.where(ok).astype("datetime64[ns]")


def _numeric(raw: pd.Series) -> pd.Series:
    return pd.to_numeric(raw, errors="coerce").astype(np.float64)


@dataclass
class _Parsed:
    """Standard columns plus, per field, the raw text shown in error messages."""

    time: pd.Series
    latitude: pd.Series
    longitude: pd.Series
    magnitude: pd.Series
    depth: pd.Series
    raw: dict[str, pd.Series]  # standard field -> raw text
    labels: dict[str, str]  # standard field -> column name(s) as in the file
    unit: str = "line"  # what BadRow.line counts: file lines, or events in QuakeML


def _parse_scedc(path: Path) -> tuple[_Parsed, np.ndarray]:
    table, lines = _read_table(path, "scedc", _SCEDC, ("depth_km",))
    keep = table.event_type.str.lower().eq("eq").to_numpy()
    table, lines = table[keep].reset_index(drop=True), lines[keep]
    parsed = _Parsed(
        time=_parse_times(table.time, "%Y/%m/%d %H:%M:%S.%f"),
        latitude=_numeric(table.latitude), longitude=_numeric(table.longitude),
        magnitude=_numeric(table.magnitude), depth=_numeric(table.depth_km),
        raw={k: table[k] for k in ("time", "latitude", "longitude", "magnitude")},
        labels={"time": "time", "latitude": "latitude", "longitude": "longitude",
                "magnitude": "magnitude"})
    return parsed, lines


def _parse_south_asia(path: Path) -> tuple[_Parsed, np.ndarray]:
    table, lines = _read_table(path, "south_asia", _SOUTH_ASIA, ("depth_km",))
    parts = {k: _numeric(table[k]) for k in ("year", "month", "day", "hour", "minute", "second")}
    for k, unknown in (("month", 1), ("day", 1), ("hour", 0), ("minute", 0), ("second", 0)):
        parts[k] = parts[k].where(parts[k] != -1, unknown)
    ok = pd.Series(True, index=table.index)
    for k, lo, hi in (("year", 1, 9999), ("month", 1, 12), ("day", 1, 31), ("hour", 0, 23),
                      ("minute", 0, 59), ("second", 0, 60.999)):
        ok &= parts[k].between(lo, hi)
    ok &= (parts["year"] % 1 == 0) & (parts["month"] % 1 == 0) & (parts["day"] % 1 == 0)
    date = pd.to_datetime(pd.DataFrame({k: parts[k].where(ok, 1).astype(np.int64)
                                        for k in ("year", "month", "day")}), errors="coerce")
    seconds = parts["hour"] * 3600 + parts["minute"] * 60 + parts["second"]
    time = _real_times((date + pd.to_timedelta(seconds.where(ok, 0), unit="s")).where(ok))
    raw_time = table.year.fillna("?")
    for k in ("month", "day", "hour", "minute", "second"):
        raw_time = raw_time + "," + table[k].fillna("?")
    parsed = _Parsed(
        time=time,
        latitude=_numeric(table.latitude), longitude=_numeric(table.longitude),
        magnitude=_numeric(table.mw), depth=_numeric(table.depth_km),
        raw={"time": raw_time, "latitude": table.latitude, "longitude": table.longitude,
             "magnitude": table.mw},
        labels={"time": "Year,Month,Day,Hour,Minute,Second", "latitude": "Latitude",
                "longitude": "Longitude", "magnitude": "Mw"})
    return parsed, lines


def _parse_usgs(path: Path) -> tuple[_Parsed, np.ndarray]:
    table, lines = _read_table(path, "usgs", _USGS, ("type", "depth"))
    if table.type.notna().any():  # a Type column: keep the earthquakes only
        keep = table.type.str.lower().eq("earthquake").to_numpy()
        table, lines = table[keep].reset_index(drop=True), lines[keep]
    # The time of day is in Time, or (in a few rows of some copies) Date holds a timestamp;
    # a row with neither has no time (never midnight of its date).
    in_date = table.date.str.contains(_CLOCK, na=False)
    stamp = table.date.where(in_date, table.date + " " + table.time)
    parsed = _Parsed(
        time=_parse_times(stamp, "%m/%d/%Y %H:%M:%S"),
        latitude=_numeric(table.latitude), longitude=_numeric(table.longitude),
        magnitude=_numeric(table.magnitude), depth=_numeric(table.depth),
        raw={"time": table.date.fillna("?") + "," + table.time.fillna("?"),
             "latitude": table.latitude, "longitude": table.longitude,
             "magnitude": table.magnitude},
        labels={"time": "Date,Time", "latitude": "Latitude", "longitude": "Longitude",
                "magnitude": "Magnitude"})
    return parsed, lines


def _parse_csv(path: Path) -> tuple[_Parsed, np.ndarray]:
    names = _generic_columns(_column_map(_read_header(path)))
    if names is None:
        raise DataError(f"catalogue {path} (format csv) lacks required columns; expected time, "
                        "latitude (or lat), longitude (or lon), magnitude (or mag) and optional "
                        f"depth (or depth_km), found {_read_header(path)[:12]}")
    table, lines = _read_columns(path, names)
    depth = _numeric(table.depth) if "depth" in table else pd.Series(np.nan, index=table.index,
                                                                      dtype=np.float64)
    parsed = _Parsed(
        time=_parse_times(table.time, None),
        latitude=_numeric(table.latitude), longitude=_numeric(table.longitude),
        magnitude=_numeric(table.magnitude), depth=depth,
        raw={k: table[k] for k in ("time", "latitude", "longitude", "magnitude")},
        labels={k: names[k] for k in ("time", "latitude", "longitude", "magnitude")})
    return parsed, lines


def _parse_quakeml(path: Path) -> tuple[_Parsed, np.ndarray]:
    """The "line" of a QuakeML row is its 1-based event number in the file."""
    try:
        from obspy import read_events
    except ImportError as exc:
        raise DataError(f"reading QuakeML catalogue {path} needs ObsPy "
                        "(pip install obspy)") from exc
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                events = read_events(io.BytesIO(f.read()), format="QUAKEML")
        else:
            events = read_events(str(path), format="QUAKEML")
    except Exception as exc:
        raise DataError(f"cannot read QuakeML catalogue {path}: {exc}") from exc
    rows, numbers = [], []
    for k, event in enumerate(events, start=1):
        etype = None if event.event_type is None else str(event.event_type).lower()
        if etype not in _QUAKEML_KEEP:
            continue
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        mag = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
        values = {
            "time": None if origin is None else origin.time,
            "latitude": None if origin is None else origin.latitude,
            "longitude": None if origin is None else origin.longitude,
            "magnitude": None if mag is None else mag.mag,
            "depth": None if origin is None or origin.depth is None else origin.depth / 1000.0,
        }
        rows.append({c: None if v is None else str(v) for c, v in values.items()})
        numbers.append(k)
    table = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS), dtype=object)
    parsed = _Parsed(
        time=_parse_times(table.time, "ISO8601"),
        latitude=_numeric(table.latitude), longitude=_numeric(table.longitude),
        magnitude=_numeric(table.magnitude), depth=_numeric(table.depth),
        raw={c: table[c] for c in CATALOG_COLUMNS[:4]},
        labels={"time": "origin time", "latitude": "origin latitude",
                "longitude": "origin longitude", "magnitude": "magnitude"},
        unit="event")
    return parsed, np.asarray(numbers, dtype=np.int64)


_PARSERS = {
    "scedc": _parse_scedc,
    "south_asia": _parse_south_asia,
    "usgs": _parse_usgs,
    "csv": _parse_csv,
    "quakeml": _parse_quakeml,
}

# (field, test-name) in the order a row is checked; the first failure is its reason.
_EXPECTED = {
    "time": "a date/time from 1678 to 2261 with its 4-digit year",
    "magnitude": f"a number in [{MAG_RANGE[0]:g}, {MAG_RANGE[1]:g}]",
    "latitude": f"a number in [{LAT_RANGE[0]:g}, {LAT_RANGE[1]:g}]",
    "longitude": f"a number in [{LON_RANGE[0]:g}, {LON_RANGE[1]:g}]",
}


def _bad_masks(p: _Parsed) -> dict[str, np.ndarray]:
    def out_of(values: pd.Series, lo: float, hi: float) -> np.ndarray:
        v = values.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return ~((v >= lo) & (v <= hi))  # NaN fails too

    return {"time": p.time.isna().to_numpy(),
            "magnitude": out_of(p.magnitude, *MAG_RANGE),
            "latitude": out_of(p.latitude, *LAT_RANGE),
            "longitude": out_of(p.longitude, *LON_RANGE)}


def _reason(p: _Parsed, field: str, i: int) -> str:
    value = p.raw[field].iloc[i]
    found = "nothing (missing)" if value is None or pd.isna(value) else repr(str(value))
    return f"field {p.labels[field]}: expected {_EXPECTED[field]}, found {found}"


def read_catalog(path: str | Path, fmt: str = "auto", on_bad: str = "skip") -> Catalog:
    """Read one catalogue file (see the module docstring for ``fmt``).

    ``on_bad="skip"`` drops bad rows, records them in ``Catalog.bad_rows`` and warns once
    (:class:`CatalogWarning`); ``on_bad="error"`` raises :class:`DataError` at the first one.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown catalogue format {fmt!r}; expected one of {list(FORMATS)}")
    if on_bad not in ON_BAD:
        raise ConfigError(f"on_bad must be one of {list(ON_BAD)}, got {on_bad!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalogue file {path} does not exist (expected a CSV with columns "
                        f"{_expected_text()}, or QuakeML)")
    if fmt == "auto":
        fmt = _detect(path)
    parsed, lines = _PARSERS[fmt](path)
    masks = _bad_masks(parsed)
    bad = np.zeros(len(lines), dtype=bool)
    for m in masks.values():
        bad |= m
    bad_rows: list[tuple[str, BadRow]] = []
    if bad.any():
        for i in np.flatnonzero(bad):
            field = next(f for f, m in masks.items() if m[i])
            row = BadRow(int(lines[i]), _reason(parsed, field, int(i)))
            if on_bad == "error":
                raise DataError(f"catalogue {path}, {parsed.unit} {row.line}: {row.reason}")
            bad_rows.append((str(path), row))
        shown = ", ".join(str(r.line) for _, r in bad_rows[:_N_LINES_SHOWN])
        more = ", ..." if len(bad_rows) > _N_LINES_SHOWN else ""
        warnings.warn(f"catalogue {path}: skipped {len(bad_rows)} bad row(s) at {parsed.unit}(s) "
                      f"{shown}{more} (first: {bad_rows[0][1].reason}); see Catalog.bad_rows",
                      CatalogWarning, stacklevel=2)
    good = ~bad
    depth = parsed.depth[good].to_numpy(dtype=np.float64)
    events = pd.DataFrame({
        "time": parsed.time[good].to_numpy(),
        "latitude": parsed.latitude[good].to_numpy(),
        "longitude": parsed.longitude[good].to_numpy(),
        "magnitude": parsed.magnitude[good].to_numpy(),
        "depth": np.where(np.isfinite(depth), depth, np.nan),  # "inf" is as unknown as "oops"
    })
    return Catalog(events, [str(path)], bad_rows)


def read_catalogs(paths: Iterable[str | Path], fmt: str = "auto",
                  on_bad: str = "skip") -> Catalog:
    """Read several files (e.g. an archive plus recent events) into one catalogue sorted by
    time, dropping exact duplicates (same time, latitude, longitude and magnitude; the copy
    from the earlier file is kept)."""
    paths = list(paths)
    if not paths:
        raise ConfigError("read_catalogs: no catalogue files given")
    parts = [read_catalog(p, fmt=fmt, on_bad=on_bad) for p in paths]
    events = pd.concat([c.events for c in parts], ignore_index=True)
    events = events.drop_duplicates(subset=["time", "latitude", "longitude", "magnitude"])
    return Catalog(events, [s for c in parts for s in c.sources],
                   [b for c in parts for b in c.bad_rows])


def magnitude_of_completeness(mags: Sequence[float] | np.ndarray, bin_width: float = 0.1,
                              correction: float = 0.2) -> float:
    """Maximum-curvature Mc: centre of the most populated magnitude bin (bins centred on
    multiples of ``bin_width``; ties go to the smaller magnitude) plus ``correction``
    (Wiemer & Wyss 2000; Woessner & Wiemer 2005). NaN for no finite magnitude."""
    if not bin_width > 0:
        raise ConfigError(f"bin_width must be positive, got {bin_width}")
    m = np.asarray(mags, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size == 0:
        return float("nan")
    idx = np.floor(m / bin_width + 0.5 + 1e-9).astype(np.int64)
    lo = idx.min()
    mode = lo + int(np.argmax(np.bincount(idx - lo)))
    return round(mode * bin_width + correction, 10)
