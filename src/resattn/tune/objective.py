"""One trial: a cell of the experiment trained with the sampled values in its own run directory,
its validation metric reported per epoch so that the pruner can stop it (see the package doc)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna

from ..engine.callbacks import Callback
from ..engine.checkpoint import LAST_STEM, MODEL_STEM, PREV_STEM, pair_intact
from ..engine.precision import choose_precision
from ..engine.provenance import seed_everything
from ..engine.tracking import read_log
from ..engine.trainer import FitLoop
from ..errors import ConfigError, DataError
from ..reproduce.config import Cell, Experiment
from ..reproduce.runner import train_cell
from .space import SearchSpace

METRICS = {"val_f1": "maximize", "val_accuracy": "maximize", "val_loss": "minimize"}
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def direction(metric: str) -> str:
    """``maximize`` or ``minimize`` for a metric of ``METRICS``; ConfigError otherwise."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return METRICS[metric]


# ---------------------------------------------------------------------------- run directories
def _pairs_intact(run: Path) -> bool:
    """``run`` holds a training checkpoint a resume can use (``last.*`` whole, or torn by a
    kill with the previous pair ``last-prev.*`` whole) and its ``model.*``, if any, is whole."""
    if not (run / f"{LAST_STEM}.json").exists():
        return False
    if not (pair_intact(run / LAST_STEM) or pair_intact(run / PREV_STEM)):
        return False
    return not (run / f"{MODEL_STEM}.json").exists() or pair_intact(run / MODEL_STEM)


def _adopt_retry(frozen: optuna.trial.FrozenTrial, trials_dir: Path, run: Path) -> int | None:
    """A retried trial continues from the latest checkpoint of the trials it retries, if one is
    on this machine and whole: copied into its own run directory. Returns that trial's
    number (None: it starts over)."""
    if run.exists():
        return None
    for number in reversed(frozen.system_attrs.get("retry_history", [])):
        old = trials_dir / str(number)
        if _pairs_intact(old):  # not the temporary files of writes its kill cut short
            shutil.copytree(old, run, ignore=shutil.ignore_patterns(".*.tmp"))
            return number
    return None


# ---------------------------------------------------------------------------- training
class OptunaPruning(Callback):
    """Report each epoch's ``metric`` to ``trial`` and stop the run with
    ``optuna.TrialPruned`` when the pruner says so. It runs after the epoch's checkpoint is
    written, so a pruned (or killed) trial's run directory resumes exactly."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_fit_start(self, loop: FitLoop) -> None:
        done = loop.state.get("epoch", 0)  # a retry that adopted a checkpoint: report those
        for row in read_log(loop.run_dir / "metrics.jsonl", done):
            self.trial.report(float(row[self.metric]), row["epoch"])
        if done and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {done} (resumed)")

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        self.trial.report(float(row[self.metric]), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.metric} "
                                     f"{row[self.metric]:.4f}")


def _row(run: Path, epoch: int) -> dict | None:
    return next((r for r in read_log(run / "metrics.jsonl", epoch) if r["epoch"] == epoch), None)


def train_with_pruning(trial: optuna.Trial, exp: Experiment, cell: Cell, seed: int, run: Path,
                       metric: str) -> dict:
    """Train ``cell`` of ``exp`` into ``run`` in one ``fit`` whose ``OptunaPruning`` callback
    reports every epoch's ``metric`` and may stop it; returns ``train_cell``'s summary."""
    trial.set_user_attr("pruning", "per epoch")
    # The tasks build the model before ``fit`` seeds the RNGs, and the first ``auto``
    # precision choice in a process calibrates bf16 (reseeding torch) inside ``fit``: both done
    # here first, every trial of one architecture starts from the same weights and draws,
    # whatever ran before in this process.
    choose_precision("auto")
    seed_everything(seed)
    return train_cell(exp, cell, seed, run, callbacks=[OptunaPruning(trial, metric)])


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
        summary = train_with_pruning(trial, texp, tcell, seed, run, metric)
        best = _row(run, summary["best_epoch"])
        if best is None:
            raise DataError(f"{run}: no log row for the best epoch {summary['best_epoch']}")
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("epochs_run", summary["epochs_run"])
        return float(best[metric])

    return objective
