"""One trial: a cell of the experiment trained with the sampled values in its own run directory,
its validation metric reported per epoch so that the pruner can stop it (see the package doc)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna

from ..engine.precision import choose_precision
from ..engine.provenance import seed_everything
from ..engine.tracking import read_log
from ..errors import CheckpointError, ConfigError, DataError
from ..io import read_json
from ..reproduce.config import Cell, Experiment
from ..reproduce.runner import recipe_config, train_cell
from .space import SearchSpace

METRICS = {"val_f1": "maximize", "val_accuracy": "maximize", "val_loss": "minimize"}
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def direction(metric: str) -> str:
    """``maximize`` or ``minimize`` for a metric of ``METRICS``; ConfigError otherwise."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return METRICS[metric]


# ---------------------------------------------------------------------------- run directories
def _checkpoint_state(run: Path) -> dict:
    last = run / "last.json"
    return read_json(last).get("trainer", {}) if last.exists() else {}


def _pairs_intact(run: Path) -> bool:
    """``last.*`` exists and it and ``model.*`` (if any) are whole pairs: a process killed
    between writing a pair's weights and its JSON leaves weights that the JSON's sha256 does
    not match, and resuming from them fails."""
    if not (run / "last.json").exists():
        return False
    for stem in ("last", "model"):
        meta, weights = run / f"{stem}.json", run / f"{stem}.safetensors"
        if not meta.exists() and stem == "model":
            continue
        try:
            expected = read_json(meta).get("sha256")
            if expected and hashlib.sha256(weights.read_bytes()).hexdigest() != expected:
                return False
        except (OSError, CheckpointError):
            return False
    return True


def _adopt_retry(frozen: optuna.trial.FrozenTrial, trials_dir: Path, run: Path) -> int | None:
    """A retried trial continues from the latest checkpoint of the trials it retries, if one is
    on this machine and whole: copied into its own run directory. Returns that trial's
    number (None: it starts over)."""
    if run.exists():
        return None
    for number in reversed(frozen.system_attrs.get("retry_history", [])):
        old = trials_dir / str(number)
        if _pairs_intact(old):
            shutil.copytree(old, run)
            return number
    return None


# ---------------------------------------------------------------------------- training
def _report_rows(trial: optuna.Trial, run: Path, metric: str, after: int, upto: int) -> None:
    for row in read_log(run / "metrics.jsonl", upto):
        if row["epoch"] > after:
            trial.report(float(row[metric]), row["epoch"])


def _train(exp: Experiment, cell: Cell, seed: int, run: Path) -> dict:
    # The tasks build the model before ``fit`` seeds the RNGs, and the first ``auto``
    # precision choice in a process calibrates bf16 (reseeding torch) inside ``fit``: both done
    # here first, every trial of one architecture starts from the same weights and draws,
    # whatever ran before in this process.
    choose_precision("auto")
    seed_everything(seed)
    return train_cell(exp, cell, seed, run)


def _row(run: Path, epoch: int) -> dict | None:
    return next((r for r in read_log(run / "metrics.jsonl", epoch) if r["epoch"] == epoch), None)


def train_in_stages(trial: optuna.Trial, exp: Experiment, cell: Cell, seed: int, run: Path,
                    metric: str) -> dict:
    """Train ``cell`` of ``exp`` into ``run`` one epoch per call, reporting each epoch's
    ``metric`` to ``trial`` and raising ``optuna.TrialPruned`` when the pruner says so; returns
    the run's summary (``train_cell``'s, with ``best_epoch``, ``epochs_run``).

    ``fit`` has no per-epoch hook, but resumes exactly from ``last.*``: so the task is called
    with ``epochs=1``, then ``epochs=2`` (resuming), and so on. A run directory that already
    holds epochs (a retry that adopted a checkpoint) has them reported first and continues
    after them. The ``cosine`` schedule depends on the total epoch count, so such a trial
    trains all epochs in one call and reports them afterwards, unpruned. This function is the
    one place to replace by a single ``fit`` with a pruning callback."""
    staged = recipe_config(exp, seed).validate().schedule != "cosine"
    trial.set_user_attr("pruning", "per epoch" if staged else
                        "none (cosine schedule: trained in one call)")
    state = _checkpoint_state(run)
    done, stopped = state.get("epoch", 0), state.get("stopped_early", False)
    _report_rows(trial, run, metric, 0, done)
    if staged and done and trial.should_prune():
        raise optuna.TrialPruned(f"pruned after epoch {done} (resumed)")
    summary = None
    if staged:
        for epoch in range(done + 1, exp.epochs + 1):
            if stopped:
                break
            summary = _train(replace(exp, epochs=epoch), cell, seed, run)
            row = _row(run, epoch)
            if row is None:
                break
            trial.report(float(row[metric]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}: {metric} "
                                         f"{row[metric]:.4f}")
            done, stopped = epoch, summary["stopped_early"]
    elif done < exp.epochs and not stopped:
        summary = _train(exp, cell, seed, run)
        _report_rows(trial, run, metric, done, None)
    if summary is None:  # nothing left to train: the checkpoint's summary
        summary = _train(replace(exp, epochs=max(done, 1)), cell, seed, run)
    return summary


# ---------------------------------------------------------------------------- objective
def make_objective(exp: Experiment, cell: Cell, space: SearchSpace, trials_dir: str | Path,
                   seed: int = 0, metric: str = "val_f1") -> Callable[[optuna.Trial], float]:
    """The objective of ``run_study``: a trial samples ``space``, trains ``cell`` into
    ``trials_dir/<number>/`` (continuing a retried trial's checkpoint when it is here and
    whole) and returns ``metric`` at the epoch whose weights the run keeps."""
    direction(metric)
    trials_dir = Path(trials_dir)

    def objective(trial: optuna.Trial) -> float:
        frozen = next(t for t in trial.study.get_trials(deepcopy=False)
                      if t.number == trial.number)
        train_fields, options = space.sample(trial)
        run = trials_dir / str(trial.number)
        trial.set_user_attr("run_dir", str(run.resolve()))
        trial.set_user_attr("worker", WORKER)
        adopted = _adopt_retry(frozen, trials_dir, run)
        if adopted is None and run.exists():
            raise ConfigError(f"{run} already exists: it belongs to another study (a trial "
                              "number runs once); give each study its own output folder")
        trial.set_user_attr("resumed_from", adopted)
        texp = replace(exp, recipe={**exp.recipe, **train_fields})
        tcell = replace(cell, options={**cell.options, **options})
        summary = train_in_stages(trial, texp, tcell, seed, run, metric)
        best = _row(run, summary["best_epoch"])
        if best is None:
            raise DataError(f"{run}: no log row for the best epoch {summary['best_epoch']}")
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("epochs_run", summary["epochs_run"])
        return float(best[metric])

    return objective
