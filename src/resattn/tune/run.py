"""Tune one cell of an experiment (``run_study``, behind ``resattn tune``) and read the outcome
of a study (``best_summary``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError, DataError
from ..io import folder_name
from ..reproduce.config import Cell, Experiment
from .objective import direction, make_objective
from .space import SearchSpace, load_tuning, parse_search
from .study import SETTINGS_ATTR, default_storage, open_study, optimize


def _pick_cell(exp: Experiment, cell: str | Cell | None) -> Cell:
    if isinstance(cell, Cell):
        return cell
    if cell is not None:
        return exp.cell(cell)
    if len(exp.cells) > 1:
        raise ConfigError(f"{exp.source}: {len(exp.cells)} cells; choose the one to tune "
                          f"(cell=/--cell): {[c.name for c in exp.cells]}")
    return exp.cells[0]


def run_study(experiment: str | Path | Experiment, search: Mapping | SearchSpace | None = None,
              storage: str | optuna.storages.BaseStorage | None = None,
              study_name: str | None = None, n_trials: int = 20, cell: str | Cell | None = None,
              seed: int = 0, pruner: str | optuna.pruners.BasePruner = "median",
              out: str | Path | None = None, metric: str = "val_f1",
              timeout: float | None = None, heartbeat_interval: int = 30,
              grace_period: int | None = None, max_retry: int | None = 3,
              max_failures: int = 3, startup_trials: int = 10) -> optuna.Study:
    """Tune one cell of an experiment (see the package doc) and return the study.

    ``search``: the space (default: the config's ``search:`` section). ``storage``: a database
    URL (default ``sqlite:///<out>/study.db``). ``study_name``: default
    ``<experiment>-<cell>``. ``n_trials``: the global budget of COMPLETE + PRUNED trials.
    ``out``: trial run directories go to ``out/trials/<number>/`` (default
    ``results/<study name>-tune``; one folder per study). Call again with the same storage
    and name to resume, or on other machines to share the study."""
    if isinstance(experiment, Experiment):
        exp = experiment
    else:
        exp, config_search = load_tuning(experiment)
        search = search if search is not None else config_search
    if search is None:
        search = getattr(exp, "search", None)
    tcell = _pick_cell(exp, cell)
    space = parse_search(search, tcell.model,
                         where=f"{exp.source}: search" if exp.source else "search")
    goal = direction(metric)
    if not exp.data.exists():
        raise DataError(f"{exp.source}: data {exp.data} not found")
    if study_name is not None:
        folder_name(study_name, "--study")
    name = study_name if study_name is not None else f"{exp.name}-{tcell.slug}"
    if out is None:
        folder_name(name, "--study" if study_name is not None else f"{exp.source}: name")
    out = Path(out or Path("results") / f"{name}-tune")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"experiment": exp.name, "cell": tcell.name, "model": tcell.model,
                "options": tcell.options, "metric": metric, "epochs": exp.epochs,
                "recipe": exp.recipe, "seed": seed, "search": space.as_dict()}
    study = open_study(storage if storage is not None else default_storage(out), name, goal,
                       seed=seed, pruner=pruner, epochs=exp.epochs, settings=settings,
                       heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                       max_retry=max_retry, startup_trials=startup_trials)
    objective = make_objective(exp, tcell, space, out / "trials", seed, metric)
    return optimize(study, objective, n_trials, timeout=timeout, max_failures=max_failures,
                    max_retry=max_retry)


def best_summary(study: optuna.Study) -> dict:
    """Best value, parameters and run directory, and the trial counts by state
    (``over_budget``: FAIL trials that were created after the budget was taken, never run)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                and not math.isnan(t.value)]
    best = study.best_trial if complete else None
    settings = study.user_attrs.get(SETTINGS_ATTR) or {}
    return {
        "study": study.study_name,
        "metric": settings.get("metric"),
        "direction": study.direction.name.lower(),
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_trial": best.number if best else None,
        "best_run_dir": best.user_attrs.get("run_dir") if best else None,
        "best_epoch": best.user_attrs.get("best_epoch") if best else None,
        "n_trials": len(trials),
        "states": dict(sorted(Counter(t.state.name for t in trials).items())),
        "over_budget": sum(1 for t in trials if t.user_attrs.get("over_budget")),
        "retried": sum(1 for t in trials if "failed_trial" in t.system_attrs),
    }
