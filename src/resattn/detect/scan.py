"""Scan one station over one span of time: windows every ``stride`` seconds through the model's
contract, scored in a runtime, in chunks so that memory stays bounded on day-long records.

A task is a plain, picklable value (:class:`ScanTask`) and :func:`scan_task` a plain function,
so the same job runs in this process, in worker processes or on a Dask cluster and gives the
same numbers. Windows are placed on a grid anchored at the station's first sample, so how
the time is cut into tasks never moves a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..contracts import WaveformContract, contract_from_meta
from ..data.transforms import crop, fill_masked, prepare_trace, standardize
from .archive import Chunk, Station, read_chunk
from .runtime import RuntimeSpec, Scorer

FILTER_PAD_S = 10.0  # s of data read either side of a chunk, so filter edges fall outside it


@dataclass(frozen=True)
class ScanConfig:
    """How to scan: the model (shipped name, run folder or checkpoint), its runtime, the
    window stride (s), the batch size, the chunk length (s) and torch threads per worker."""

    model: str
    runtime: RuntimeSpec
    stride_s: float = 10.0
    batch_size: int = 64
    chunk_s: float = 3600.0
    threads: int | None = None


@dataclass(frozen=True)
class ScanTask:
    """Windows of ``station`` whose start lies in ``[start, end)`` (POSIX seconds)."""

    station: Station
    start: float
    end: float


@dataclass
class ScanResult:
    """Window starts (POSIX s) and p(earthquake) (NaN: the window touches a gap or a
    conflicting overlap), seconds of data masked per reason, and a per-second envelope of
    the filtered data for plots (``(C, m)`` largest absolute value, at ``envelope_start``)."""

    key: str
    starts: np.ndarray
    probs: np.ndarray
    masked_s: dict[str, float] = field(default_factory=dict)
    envelope_start: float = 0.0
    envelope: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


_MODELS: dict[tuple[str, RuntimeSpec], tuple[Scorer, WaveformContract]] = {}


def _scorer(cfg: ScanConfig) -> tuple[Scorer, WaveformContract]:
    """The model and its contract, loaded once per process."""
    from ..pretrained import load_any

    key = (cfg.model, cfg.runtime)
    if key not in _MODELS:
        model, meta = load_any(cfg.model)
        _MODELS[key] = (Scorer(model, meta, cfg.runtime), contract_from_meta(meta))
    return _MODELS[key]


def window_starts(station: Station, contract: WaveformContract, stride_s: float,
                  start: float, end: float) -> np.ndarray:
    """Starts (POSIX s) of the grid windows of ``station`` that begin in ``[start, end)`` and
    end within the station's data."""
    window_s = contract.window_samples / contract.sampling_rate
    last = station.end - window_s
    k0 = max(0, math.ceil((start - station.start) / stride_s - 1e-9))
    k1 = math.floor((min(end, last + stride_s * 1e-6) - station.start) / stride_s + 1e-9)
    ks = np.arange(k0, k1 + 1)
    starts = station.start + ks * stride_s
    return starts[(starts >= start) & (starts < end) & (starts <= last + 1e-6)]


def prepared(chunk: Chunk, contract: WaveformContract) -> np.ndarray:
    """The chunk as the contract prepares a whole trace: masked samples filled by mirrored
    data (see :func:`~resattn.data.transforms.fill_masked`), demeaned, scaled, band-passed."""
    x = fill_masked(chunk.x, chunk.mask)
    return prepare_trace(x, contract.bandpass_hz, contract.sampling_rate, contract.gap_seconds)


def windows_of(chunk: Chunk, x: np.ndarray, starts: np.ndarray,
               contract: WaveformContract) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs ``(n, C, L)`` float32 of the windows at ``starts`` of a prepared
    chunk, and whether each is clean (touches no masked sample)."""
    n = contract.window_samples
    idx = np.round((starts - chunk.start) * chunk.rate).astype(int)
    clean = np.array([not chunk.mask[:, i:i + n].any() for i in idx], dtype=bool)
    out = np.zeros((len(idx), x.shape[0], n), dtype=np.float32)
    for j, i in enumerate(idx):
        if clean[j]:
            out[j] = standardize(crop(x, int(i), n))
    return out, clean


def scan_task(task: ScanTask, cfg: ScanConfig) -> ScanResult:
    """p(earthquake) of every grid window of ``task``, chunk by chunk."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    scorer, contract = _scorer(cfg)
    rate = contract.sampling_rate
    window_s = contract.window_samples / rate
    station = task.station
    starts = window_starts(station, contract, cfg.stride_s, task.start, task.end)
    probs = np.full(len(starts), np.nan)
    masked = {"gap": 0.0, "conflicting overlap": 0.0}
    env_start = math.floor(task.start)
    env = np.zeros((len(station.channels), max(0, math.ceil(task.end - env_start))))
    for c0 in np.arange(task.start, task.end, cfg.chunk_s):
        c1 = min(c0 + cfg.chunk_s, task.end)
        sel = (starts >= c0) & (starts < c1)
        lo = c0 - FILTER_PAD_S
        chunk = read_chunk(station, lo, min(c1, station.end) + window_s + FILTER_PAD_S, rate)
        x = prepared(chunk, contract)
        inner = slice(round(FILTER_PAD_S * rate), round((FILTER_PAD_S + c1 - c0) * rate))
        gap = chunk.mask[:, inner] & ~chunk.conflict[:, inner]
        masked["gap"] += float(gap.any(axis=0).sum()) / rate
        masked["conflicting overlap"] += float(chunk.conflict[:, inner].any(axis=0).sum()) / rate
        _envelope(env, env_start, x, chunk, c0, c1)
        if not sel.any():
            continue
        windows, clean = windows_of(chunk, x, starts[sel], contract)
        p = np.full(len(windows), np.nan)
        good = np.flatnonzero(clean)
        for b in range(0, len(good), cfg.batch_size):
            rows = good[b:b + cfg.batch_size]
            p[rows] = scorer(windows[rows])
        probs[sel] = p
    return ScanResult(station.key, starts, probs, masked, env_start, env)


def _envelope(env: np.ndarray, env_start: float, x: np.ndarray, chunk: Chunk, c0: float,
              c1: float) -> None:
    """Per-second largest |sample| of the prepared data in ``[c0, c1)`` into ``env``."""
    rate = chunk.rate
    for second in range(math.floor(c0 - env_start), math.ceil(c1 - env_start)):
        if not 0 <= second < env.shape[1]:
            continue
        a = round((env_start + second - chunk.start) * rate)
        seg = np.where(chunk.mask[:, a:a + round(rate)], 0.0, x[:, a:a + round(rate)])
        if seg.size:
            env[:, second] = np.abs(seg).max(axis=1)


def trigger(starts: np.ndarray, probs: np.ndarray, threshold: float,
            merge_s: float = 0.0) -> list[tuple[int, int, int]]:
    """Runs of windows with p >= ``threshold`` (a NaN window ends a run), runs whose starts
    lie at most ``merge_s`` apart joined (one event's coda fires again after a dip): the
    first, last and highest window of each."""
    above = np.flatnonzero(np.nan_to_num(probs, nan=-1.0) >= threshold)
    runs: list[list[int]] = []
    for i in above:
        if runs and (i == runs[-1][1] + 1 or (starts[i] - starts[runs[-1][1]] <= merge_s
                                               and not np.isnan(probs[runs[-1][1]:i]).any())):
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(a, b, a + int(np.argmax(np.nan_to_num(probs[a:b + 1], nan=-1.0))))
            for a, b in runs]


def onset(station: Station, contract: WaveformContract, start: float, end: float) -> float | None:
    """The detection's onset: the first time in ``[start, end]`` where a classic STA/LTA
    (0.5 s / 5 s, averaged over the live components) of the prepared data reaches half-way
    from 1 to its peak in the span; None when the span touches a gap."""
    from obspy.signal.trigger import recursive_sta_lta

    rate = contract.sampling_rate
    history = 10.0
    chunk = read_chunk(station, start - history - FILTER_PAD_S, end + FILTER_PAD_S, rate)
    a, b = round((history + FILTER_PAD_S) * rate), round((end - start + history +
                                                        FILTER_PAD_S) * rate)
    if chunk.mask[:, a - round(history * rate):b].any():
        return None
    x = prepared(chunk, contract)
    ratio = sum(recursive_sta_lta(np.ascontiguousarray(row), round(0.5 * rate), round(5 * rate))
                for row in x if row.any())
    if not isinstance(ratio, np.ndarray):
        return None
    # the onset: where the ratio first climbs half-way from its background to its peak
    span = ratio[a:b] / max(1, sum(row.any() for row in x))
    peak = int(np.argmax(span))
    level = 1.0 + 0.5 * (span[peak] - 1.0)
    first = int(np.flatnonzero(span[:peak + 1] >= level)[0])
    return chunk.start + (a + first) / rate
