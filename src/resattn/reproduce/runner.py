"""Run every cell x seed of an experiment, skipping finished runs and resuming interrupted ones.

Layout of ``out``::

    runs/<cell-slug>/seed<k>/   a normal training run (metrics.jsonl, split.json, model.*,
                                last.* (its resume state), test_metrics.json once finished)
    results.json, report.md, report.html, figures/, timings.json

Several processes (or machines sharing the folder) may run the same experiment at once: each
run is claimed with an exclusive ``runs/<cell>/seed<k>/.lock`` file, so they share the runs
instead of repeating them. The lock is removed however its process ends, except by a kill
(SIGKILL, a crash of the machine); a lock left by a killed process on this host is taken over.
The process that finishes the last run writes the complete report. ``.timings.lock`` is not
such a lock but the file that ``flock`` serialises updates of ``timings.json`` with: the kernel
releases it when its process dies, and it stays (removing it would let two processes lock two
different files of that name).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write_json, read_json, remove_stale_temps
from ..tasks import TrainSpec
from .config import Cell, Experiment, load_experiment

DONE = "test_metrics.json"
LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict | None:
    """Who holds ``lock`` (host, pid), or None when the holder is gone (stale lock)."""
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # unreadable: a holder killed while writing it
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0))):
        return None
    return holder


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _take(lock: Path) -> bool:
    """Create ``lock`` holding this process, or take it over if its holder is dead; False if
    a live process holds it. The lock appears with its content whole (written aside, then
    hard-linked in place, which fails if it exists): a process that finds it never reads a
    half-written holder and takes a live lock for a stale one. The aside file is a hidden
    ``.tmp``: if a kill leaves it, ``io.remove_stale_temps`` removes it."""
    mine = lock.with_name(f"{LOCK}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        mine.write_text(json.dumps(_me()))
        for _ in range(2):
            try:
                os.link(mine, lock)
                return True
            except FileExistsError:
                if _holder(lock) is not None:
                    return False
                lock.unlink(missing_ok=True)  # stale: take it over
        return False
    finally:
        mine.unlink(missing_ok=True)


@contextmanager
def claim(run: Path):
    """Yield True with ``run`` locked for this process, or False if another live process
    holds it. Stale locks (their process died on this host) are taken over. The lock goes
    on every way out of the block, an exception or an interrupt (Ctrl-C, SIGTERM on the
    command line) included; only a kill (SIGKILL) leaves it, stale, for the next run to take.
    A lock is known as this process's by its content, so that one interrupted before or after
    it was taken is released just the same."""
    run.mkdir(parents=True, exist_ok=True)
    lock = run / LOCK
    try:
        yield _take(lock)
    finally:
        with suppress(OSError, ValueError):
            if json.loads(lock.read_text()) == _me():
                lock.unlink()


def run_dir(out: Path, cell: Cell, seed: int) -> Path:
    return out / "runs" / cell.slug / f"seed{seed}"


def cell_spec(exp: Experiment, cell: Cell, seed: int, run: Path,
              callbacks: Sequence = ()) -> TrainSpec:
    """What ``train_cell`` trains: the cell's model and options with the experiment's data,
    task options and recipe. A cell option that links another cell (``Task.cell_links``)
    becomes that cell's run directory of the same seed, beside ``run`` in the layout."""
    task = exp.registered_task
    options = dict(cell.options)
    for link in task.cell_links:
        if link in options:
            options[link] = str(run_dir(Path(run).parents[2], exp.cell(options[link]), seed))
    return TrainSpec(model=cell.model, data=exp.data, out=run,
                     recipe=exp.train_config(seed), options=exp.options,
                     seed=seed, model_options=options, init_from=cell.init,
                     resume="auto", show_progress=False, callbacks=callbacks)


def train_cell(exp: Experiment, cell: Cell, seed: int, run: Path,
               callbacks: Sequence = ()) -> dict:
    """Train one cell with one seed into ``run`` (resuming if it was interrupted), from
    scratch or fine-tuned from the cell's ``init`` weights."""
    return exp.registered_task.train(cell_spec(exp, cell, seed, run, callbacks))


def _waits_for(exp: Experiment, cell: Cell, seed: int, out: Path) -> list[str]:
    """The linked cells whose run of ``seed`` is not finished yet (another process has it)."""
    links = [cell.options[k] for k in exp.registered_task.cell_links if k in cell.options]
    return [name for name in links if not (run_dir(out, exp.cell(name), seed) / DONE).exists()]


def _record_timing(out: Path, key: str, seconds: float) -> None:
    """Add one run's wall time to ``timings.json``, under a file lock: other processes of the
    same experiment add theirs too."""
    path = out / "timings.json"
    with open(out / ".timings.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        timings = read_json(path) if path.exists() else {}
        atomic_write_json(path, {**timings, key: seconds})


def run_experiment(config: str | Path | Experiment, out: str | Path | None = None,
                   quick: bool = False, report: bool = True, log=print) -> dict:
    """Train what is missing, then aggregate and (by default) write the report."""
    exp = config if isinstance(config, Experiment) else load_experiment(config)
    if quick:
        exp = exp.quick_version()
    out = Path(out or Path("results") / (exp.name + ("-quick" if quick else "")))
    for path in exp.data_paths:
        if not path.exists():
            raise DataError(f"{exp.source}: data {path} not found")
    task = exp.registered_task
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "figures"):  # what writes killed with an earlier process left
        remove_stale_temps(folder)
    for cell in exp.trained_cells():
        for seed in range(exp.seeds):
            run = run_dir(out, cell, seed)
            if (run / DONE).exists():
                log(f"{cell.name} seed {seed}: done, skipped")
                continue
            waits = _waits_for(exp, cell, seed, out)
            if waits:  # the linked cell's run is another process's (it precedes this cell)
                log(f"{cell.name} seed {seed}: waits for {waits} in another process, skipped")
                continue
            with claim(run) as mine:
                if not mine:
                    log(f"{cell.name} seed {seed}: running in another process, skipped")
                    continue
                if (run / DONE).exists():  # finished by another process meanwhile
                    continue
                remove_stale_temps(run, older_than=0)  # the lock is ours: no live writer here
                t0 = time.perf_counter()
                summary = train_cell(exp, cell, seed, run)
                seconds = round(time.perf_counter() - t0, 1)
            _record_timing(out, f"{cell.slug}/seed{seed}", seconds)
            first = exp.metrics[0]
            value = task.cell_metrics(summary).get(first)
            log(f"{cell.name} seed {seed}: test {first} "
                + ("–" if value is None else f"{value:.4f}"))
    from .report import aggregate, write_report

    results = aggregate(exp, out, quick)
    if not results["complete"]:
        # Only runs another process holds are missing; whichever process finishes the last
        # one sees them all done (its own finished before it looks) and writes the report.
        log("some runs are still training in another process; it writes results.json and "
            "the report when it finishes the last one")
        return results
    atomic_write_json(out / "results.json", results)
    if report:
        write_report(exp, out, results)
    return results
