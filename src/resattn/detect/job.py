"""``resattn detect``: continuous detection over days of records, many stations at once.

The job: find the stations of the inputs (:mod:`.archive`), choose the runtime on windows of
the data (:mod:`.runtime`), cut every station into station-days, scan them (:mod:`.scan`) in
this process, in worker processes, or on a Dask cluster (``scheduler``), then trigger, time
each detection's onset and write ``detections.csv``, ``probabilities/<station>.mseed``,
``plots/<station>.png`` and ``summary.json`` (all atomically).
"""

from __future__ import annotations

import io
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..contracts import WaveformContract, contract_from_meta
from ..errors import ConfigError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .archive import Inventory, Station, read_chunk, scan_inputs
from .runtime import DEFAULT_TOLERANCE, choose_runtime
from .scan import (
    FILTER_PAD_S,
    ScanConfig,
    ScanResult,
    ScanTask,
    onset,
    prepared,
    scan_task,
    trigger,
    window_starts,
    windows_of,
)

DAY = 86_400.0
CALIBRATION_WINDOWS = 128


@dataclass(frozen=True)
class DetectOptions:
    """What ``resattn detect`` takes besides its inputs, model and output folder."""

    threshold: float = 0.5
    stride_s: float = 10.0
    batch_size: int = 64
    runtime: str = "auto"
    tolerance: float = DEFAULT_TOLERANCE
    workers: int | None = None
    scheduler: str | None = None
    chunk_s: float = 3600.0
    plots: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ConfigError(f"--threshold is a probability in (0, 1), got {self.threshold}")
        if not (math.isfinite(self.stride_s) and self.stride_s > 0):
            raise ConfigError(f"--stride must be a positive number of seconds, got "
                              f"{self.stride_s}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if not (math.isfinite(self.chunk_s) and self.chunk_s >= 60):
            raise ConfigError(f"--chunk-seconds must be at least 60, got {self.chunk_s}")


def station_days(inventory: Inventory) -> list[ScanTask]:
    """Every station cut at UTC midnights: one task per station-day."""
    tasks = []
    for st in inventory.stations:
        day = math.floor(st.start / DAY) * DAY
        while day < st.end:
            tasks.append(ScanTask(st, max(st.start, day), min(st.end, day + DAY)))
            day += DAY
    return tasks


def calibration_windows(inventory: Inventory, contract: WaveformContract, stride_s: float,
                        n: int = CALIBRATION_WINDOWS) -> np.ndarray:
    """Up to ``n`` clean windows from the start of the first stations: what ``auto`` measures
    the runtimes on and the int8 model is calibrated with."""
    found: list[np.ndarray] = []
    window_s = contract.window_samples / contract.sampling_rate
    for st in inventory.stations:
        span = min(st.end, st.start + max(n * stride_s, 2 * window_s) + window_s)
        starts = window_starts(st, contract, stride_s, st.start, span)
        if not len(starts):
            continue
        chunk = read_chunk(st, st.start - FILTER_PAD_S, span + FILTER_PAD_S,
                           contract.sampling_rate)
        x, clean = windows_of(chunk, prepared(chunk, contract), starts, contract)
        found.extend(x[clean])
        if len(found) >= n:
            break
    if not found:  # every window touches a gap: calibrate on noise of the right shape
        rng = np.random.default_rng(0)
        found = list(rng.standard_normal((8, *contract.input_shape)).astype(np.float32))
    return np.stack(found[:n])


def _run(tasks: list[ScanTask], cfg: ScanConfig, workers: int, scheduler: str | None,
         progress: Callable[[int, int], None] | None) -> list[ScanResult]:
    """Every task's result, in task order: on a Dask cluster, in ``workers`` processes, or
    here."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(tasks))

    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="20s") as client:
            futures = client.map(scan_task, tasks, cfg=cfg, pure=False)
            for _ in as_completed(futures):
                tick()
            return client.gather(futures)
    if workers <= 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            results.append(scan_task(task, cfg))
            tick()
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(scan_task, task, cfg) for task in tasks]
        results = []
        for f in futures:
            results.append(f.result())
            tick()
        return results


def _merge(results: list[ScanResult]) -> dict[str, ScanResult]:
    """The station-days of each station joined in time order."""
    by: dict[str, list[ScanResult]] = {}
    for r in results:
        by.setdefault(r.key, []).append(r)
    merged = {}
    for key, parts in by.items():
        parts.sort(key=lambda r: r.envelope_start)
        env_start = parts[0].envelope_start
        length = max(int(r.envelope_start - env_start) + r.envelope.shape[1] for r in parts)
        env = np.zeros((parts[0].envelope.shape[0], length))
        for r in parts:
            a = int(r.envelope_start - env_start)
            env[:, a:a + r.envelope.shape[1]] = np.maximum(env[:, a:a + r.envelope.shape[1]],
                                                          r.envelope)
        masked = {k: sum(r.masked_s.get(k, 0.0) for r in parts) for k in parts[0].masked_s}
        merged[key] = ScanResult(key, np.concatenate([r.starts for r in parts]),
                                 np.concatenate([r.probs for r in parts]), masked, env_start,
                                 env)
    return merged


def iso(t: float) -> str:
    """POSIX seconds as UTC ISO-8601 with milliseconds."""
    from obspy import UTCDateTime

    return UTCDateTime(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace("000Z", "Z")


def detections(station: Station, result: ScanResult, contract: WaveformContract,
               threshold: float) -> list[dict]:
    """Runs of windows at or above ``threshold``: start, end, peak window, and the onset."""
    window_s = contract.window_samples / contract.sampling_rate
    rows = []
    # runs less than a window apart (the next starts within a window of the last one's end)
    # are one event: its S and coda fire again after a dip
    for i, j, k in trigger(result.starts, result.probs, threshold, merge_s=2 * window_s):
        start, end = float(result.starts[i]), float(result.starts[j]) + window_s
        t_on = onset(station, contract, start, end)
        rows.append({"station": station.key, "start": iso(start), "end": iso(end),
                     "peak_time": iso(float(result.starts[k]) + contract.p_position * window_s),
                     "peak_probability": round(float(result.probs[k]), 4),
                     "onset": "" if t_on is None else iso(t_on),
                     "_onset_s": t_on, "_start_s": start, "_end_s": end})
    return rows


CSV_COLUMNS = ("station", "start", "end", "peak_time", "peak_probability", "onset")


def _csv(rows: Sequence[dict]) -> str:
    lines = [",".join(CSV_COLUMNS)]
    lines += [",".join(str(r[c]) for c in CSV_COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def probability_trace(result: ScanResult, stride_s: float, contract: WaveformContract):
    """p(earthquake) as an ObsPy stream: one sample per window at its centre, 1/stride Hz,
    split where windows were not scored (gaps)."""
    from obspy import Stream, Trace, UTCDateTime

    net, sta, loc, band = result.key.split(".")
    stream = Stream()
    if not len(result.starts):
        return stream
    data = np.ma.masked_invalid(result.probs.astype(np.float32))
    centre = float(result.starts[0]) + contract.window_samples / contract.sampling_rate / 2
    tr = Trace(data, header={"network": net, "station": sta, "location": loc,
                             "channel": f"{band[:1] or 'X'}PE"[:3],
                             "sampling_rate": 1.0 / stride_s, "starttime": UTCDateTime(centre)})
    return Stream([tr]).split()


def _mseed_bytes(stream) -> bytes:
    buf = io.BytesIO()
    if len(stream):
        stream.write(buf, format="MSEED", encoding="FLOAT32")
    return buf.getvalue()


def plot_station(result: ScanResult, rows: list[dict], threshold: float, path: Path,
                 components: str) -> None:
    """Waveform envelopes, p(earthquake) and detections of one station, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = (np.arange(result.envelope.shape[1]) / 3600.0)
    fig, axes = plt.subplots(len(components) + 1, 1, figsize=(12, 7), sharex=True)
    for ax, comp, env in zip(axes, components, result.envelope, strict=False):
        scale = np.percentile(env, 99.5) or 1.0
        ax.fill_between(hours, -env / scale, env / scale, color="0.3", lw=0)
        ax.set_ylabel(comp)
        ax.set_ylim(-1.5, 1.5)
    t = (result.starts - result.envelope_start) / 3600.0
    axes[-1].plot(t, result.probs, color="tab:blue", lw=0.8)
    axes[-1].axhline(threshold, color="tab:red", lw=0.6, ls="--")
    axes[-1].set_ylim(0, 1)
    axes[-1].set_ylabel("p(earthquake)")
    axes[-1].set_xlabel(f"hours after {iso(result.envelope_start)}")
    for r in rows:
        for ax in axes:
            ax.axvspan((r["_start_s"] - result.envelope_start) / 3600.0,
                       (r["_end_s"] - result.envelope_start) / 3600.0, color="tab:orange",
                       alpha=0.3, lw=0)
    fig.suptitle(f"{result.key}: {len(rows)} detection(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024.0, 1)  # Linux: kilobytes


def detect(inputs: Sequence[str | Path], model: str, out: str | Path,
           options: DetectOptions | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Run continuous detection; returns the summary written to ``out/summary.json``."""
    from ..engine.provenance import environment
    from ..pretrained import load_any

    t_begin = time.perf_counter()
    options = options or DetectOptions()
    out = Path(out)
    net, meta = load_any(model)
    contract = contract_from_meta(meta)
    if not isinstance(contract, WaveformContract):
        raise ConfigError(f"--model {model}: a {type(contract).__name__} model; detect takes "
                          "waveform models")
    inventory = scan_inputs(inputs, contract.components)
    calibration = calibration_windows(inventory, contract, options.stride_s)
    spec, runtime = choose_runtime(options.runtime, net, meta, calibration, out / "runtime",
                                   options.tolerance)
    tasks = station_days(inventory)
    cpus = os.cpu_count() or 1
    workers = min(options.workers or cpus, len(tasks), cpus) if not options.scheduler else 1
    cfg = ScanConfig(str(model), spec, options.stride_s, options.batch_size, options.chunk_s,
                     threads=max(1, cpus // workers) if workers > 1 else None)
    merged = _merge(_run(tasks, cfg, workers, options.scheduler, progress))
    stations = {st.key: st for st in inventory.stations}
    all_rows: list[dict] = []
    window_s = contract.window_samples / contract.sampling_rate
    for key, result in sorted(merged.items()):
        rows = detections(stations[key], result, contract, options.threshold)
        all_rows.extend(rows)
        atomic_write_bytes(out / "probabilities" / f"{key}.mseed",
                           _mseed_bytes(probability_trace(result, options.stride_s, contract)))
        if options.plots:
            plot_station(result, rows, options.threshold, out / "plots" / f"{key}.png",
                         "".join(stations[key].channels))
    atomic_write_text(out / "detections.csv", _csv(all_rows))
    seconds = sum(st.end - st.start for st in inventory.stations)
    wall = time.perf_counter() - t_begin
    skipped = list(inventory.skipped)
    skipped += [{"what": st.key, "reason": "missing component", "detail":
                 f"{','.join(st.missing)} read as a dead (zero) channel"}
                for st in inventory.stations if st.missing]
    masked = {k: round(sum(r.masked_s.get(k, 0.0) for r in merged.values()), 2)
              for k in ("gap", "conflicting overlap")}
    windows = sum(len(r.probs) for r in merged.values())
    unscored = sum(int(np.isnan(r.probs).sum()) for r in merged.values())
    summary = {
        "model": str(model), "model_version": meta.get("version"),
        "stations": len(inventory.stations), "station_days": round(seconds / DAY, 4),
        "data_seconds": round(seconds, 1), "seconds": round(wall, 2),
        "station_days_per_minute": round(seconds / DAY / (wall / 60.0), 3) if wall else None,
        "peak_rss_mb": _peak_rss_mb(), "detections": len(all_rows),
        "windows": windows, "windows_not_scored": unscored, "window_s": window_s,
        "masked_seconds": masked, "skipped": skipped,
        "threshold": options.threshold, "stride_s": options.stride_s,
        "batch_size": options.batch_size, "workers": workers,
        "scheduler": options.scheduler, "runtime": runtime,
        "contract": contract.to_json(), "environment": environment(),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary
