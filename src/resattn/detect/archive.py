"""Continuous records as a user has them: files, folders or globs of anything ObsPy reads
(MiniSEED, SAC, SEISAN, GSE2, ...), grouped by station, and read back one time chunk at a
time on a common grid at the model's sampling rate.

A station is network, station, location and the band + instrument code (``HH``, ``BH``, ...):
the components of one sensor. Components are mapped to the model's letters: Z; N or 1 (or 2
when the sensor has 2 and 3 but no 1); E or 2 (or 3). Samples from a gap, or where two
overlapping traces disagree, are masked: they are filled for filtering and no window that
touches them is scored. A missing component is read as a dead (zero) channel and counted.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..data.files import cause
from ..errors import DataError

GLOB_CHARS = set("*?[")
MIN_COMPONENTS = 2  # a station with fewer is skipped (one component says too little)


@dataclass(frozen=True)
class Station:
    """One sensor's records: ``key`` ``NET.STA.LOC.CH`` (CH: band + instrument code), the files
    holding it, its time span (POSIX seconds) and the channel code of each model component
    (None: missing, read as a dead channel)."""

    key: str
    files: tuple[str, ...]
    start: float
    end: float
    channels: dict[str, str | None]
    rates: tuple[float, ...] = ()

    @property
    def missing(self) -> list[str]:
        return [c for c, code in self.channels.items() if code is None]


@dataclass
class Inventory:
    """What :func:`scan_inputs` found: the stations, and what it skipped with the reason."""

    stations: list[Station] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The files named by ``inputs``: files as given, folders walked (hidden files left out),
    globs expanded; sorted, each once. A name that matches nothing is a DataError."""
    files: set[Path] = set()
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.is_file():
            found = [path]
        elif GLOB_CHARS & set(text):
            found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        else:
            raise DataError(f"{text}: no such file or folder; expected waveform files, folders "
                            "or globs of them")
        if not found:
            raise DataError(f"{text}: holds no file; expected waveform files (MiniSEED, SAC, "
                            "...)")
        files.update(found)
    return sorted(files)


def _key(stats) -> str:
    return f"{stats.network}.{stats.station}.{stats.location}.{stats.channel[:-1]}"


def component_map(codes: Iterable[str], components: str = "ENZ") -> dict[str, str | None]:
    """Channel code (last letter of the channel name) of each model component: Z; N or 1 (or
    2 when there is a 2 and a 3 but no 1); E or 2 (or 3). None where the sensor lacks it."""
    have = set(codes)
    numbered = {"N": "1", "E": "2"} if "1" in have or "3" not in have else {"N": "2", "E": "3"}
    out: dict[str, str | None] = {}
    for comp in components:
        options = [comp] + ([numbered[comp]] if comp in numbered else [])
        out[comp] = next((c for c in options if c in have), None)
    return out


def scan_inputs(inputs: Sequence[str | Path], components: str = "ENZ") -> Inventory:
    """Read the headers of every file of ``inputs`` and group their traces by station.

    A file ObsPy cannot read, or that holds no trace, is skipped with its reason; a station
    with fewer than :data:`MIN_COMPONENTS` of the model's components, or whose traces are
    too short or at an invalid rate, is skipped too. No readable waveform at all is a
    DataError naming the inputs."""
    import obspy

    inventory = Inventory()
    spans: dict[str, dict] = {}
    for path in expand_inputs(inputs):
        try:
            stream = obspy.read(str(path), headonly=True)
        except Exception as exc:  # ObsPy raises TypeError/ValueError/OSError by format
            inventory.skipped.append({"what": str(path), "reason": "unreadable",
                                      "detail": cause(exc)})
            continue
        if not len(stream):
            inventory.skipped.append({"what": str(path), "reason": "no trace"})
            continue
        for tr in stream:
            s = tr.stats
            rate = float(s.sampling_rate)
            if not (math.isfinite(rate) and rate > 0) or s.npts < 2:
                inventory.skipped.append({
                    "what": f"{path}: {tr.id}", "reason": "unusable trace",
                    "detail": f"{s.npts} samples at {rate:g} Hz; expected at least 2 samples "
                              "at a positive rate"})
                continue
            entry = spans.setdefault(_key(s), {"files": set(), "codes": set(), "start": math.inf,
                                                "end": -math.inf, "rates": set()})
            entry["files"].add(str(path))
            entry["codes"].add(s.channel[-1:].upper())
            entry["rates"].add(rate)
            entry["start"] = min(entry["start"], float(s.starttime.timestamp))
            entry["end"] = max(entry["end"], float(s.endtime.timestamp) + 1.0 / rate)
    for key, entry in sorted(spans.items()):
        channels = component_map(entry["codes"], components)
        present = sum(code is not None for code in channels.values())
        if present < min(MIN_COMPONENTS, len(components)):
            inventory.skipped.append({
                "what": key, "reason": "too few components",
                "detail": f"channels {sorted(entry['codes'])}; expected at least "
                          f"{MIN_COMPONENTS} of {','.join(components)} (Z/N/E, Z/1/2 or Z/2/3)"})
            continue
        inventory.stations.append(Station(key, tuple(sorted(entry["files"])), entry["start"],
                                          entry["end"], channels, tuple(sorted(entry["rates"]))))
    if not inventory.stations:
        reasons = sorted({s["reason"] for s in inventory.skipped}) or ["nothing found"]
        raise DataError(f"{', '.join(map(str, inputs))}: no station with usable waveforms "
                        f"({'; '.join(reasons)}); expected files ObsPy reads (MiniSEED, SAC, "
                        "...) with at least 2 components of a sensor")
    return inventory


def resample(data: np.ndarray, rate: float, target: float) -> np.ndarray:
    """``data`` at ``rate`` Hz resampled to ``target`` Hz with an anti-aliasing polyphase FIR
    filter (scipy's ``resample_poly``)."""
    if rate == target:
        return data
    from scipy.signal import resample_poly

    ratio = Fraction(target / rate).limit_denominator(1000)
    return resample_poly(data, ratio.numerator, ratio.denominator)


@dataclass
class Chunk:
    """Samples ``x`` ``(C, n)`` float64 on the grid ``start + k / rate``; ``mask`` (C, n) True
    where there is no datum (gap) or overlapping traces disagree (``conflict``)."""

    start: float
    rate: float
    x: np.ndarray
    mask: np.ndarray
    conflict: np.ndarray


def read_chunk(station: Station, start: float, end: float, rate: float) -> Chunk:
    """The station's samples from ``start`` to ``end`` (POSIX seconds) at ``rate`` Hz, in the
    order of ``station.channels``. Each trace is resampled on its own (anti-aliased), then
    put on the grid at its nearest sample; identical overlaps merge, differing ones are masked.
    A missing component is zeros, not masked (a dead channel)."""
    import obspy

    n = max(0, round((end - start) * rate))
    comps = list(station.channels)
    x = np.zeros((len(comps), n))
    have = np.zeros((len(comps), n), dtype=bool)
    conflict = np.zeros((len(comps), n), dtype=bool)
    margin = 1.0  # s: a trace may start between grid samples
    t0, t1 = obspy.UTCDateTime(start - margin), obspy.UTCDateTime(end + margin)
    for path in station.files:
        try:
            stream = obspy.read(path, starttime=t0, endtime=t1)
        except Exception as exc:  # a file that changed or broke since it was scanned
            raise DataError(f"{path}: ObsPy cannot read it ({cause(exc)})") from None
        for tr in stream:
            if _key(tr.stats) != station.key:
                continue
            code = tr.stats.channel[-1:].upper()
            rows = [i for i, c in enumerate(comps) if station.channels[c] == code]
            if not rows or tr.stats.npts < 2:
                continue
            data = np.ma.getdata(tr.data).astype(np.float64)
            valid = ~np.ma.getmaskarray(tr.data) & np.isfinite(data)
            data = resample(np.where(valid, data, 0.0), float(tr.stats.sampling_rate), rate)
            if not valid.all():  # a masked or non-finite sample masks its resampled span
                idx = np.flatnonzero(~valid) * (len(data) / len(valid))
                bad = np.zeros(len(data), dtype=bool)
                bad[np.clip(idx.astype(int), 0, len(data) - 1)] = True
                valid_r = ~np.convolve(bad, np.ones(3, dtype=bool), mode="same")
            else:
                valid_r = np.ones(len(data), dtype=bool)
            k0 = round((float(tr.stats.starttime.timestamp) - start) * rate)
            lo, hi = max(0, k0), min(n, k0 + len(data))
            if lo >= hi:
                continue
            seg, ok = data[lo - k0:hi - k0], valid_r[lo - k0:hi - k0]
            for r in rows:
                old = have[r, lo:hi] & ok
                scale = max(np.abs(seg).max(), 1e-12)
                conflict[r, lo:hi] |= old & ~np.isclose(x[r, lo:hi], seg, rtol=1e-6,
                                                         atol=1e-6 * scale)
                x[r, lo:hi] = np.where(have[r, lo:hi], x[r, lo:hi], np.where(ok, seg, 0.0))
                have[r, lo:hi] |= ok
    missing = [i for i, c in enumerate(comps) if station.channels[c] is None]
    have[missing] = True  # a dead channel: zeros, not a gap
    return Chunk(start, rate, x, ~have | conflict, conflict)
