"""Hyper-parameter search with Optuna: TPE sampling, pruning per epoch, resumable studies that
several machines can share.

The search space sits beside the experiment (a ``search:`` section of its YAML, or a mapping
passed in). Keys are ``TrainConfig`` fields or ``model.<option>`` for an option of the cell's
model; a value is a range or a list of choices::

    search:
      lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # float; ``step: 0.001`` for a grid
      batch_size: {choices: [8, 16]}               # or just [8, 16]
      patience: {low: 2, high: 6}                  # int: TrainConfig says so
      model.drop_rate: {low: 0.0, high: 0.5}       # float: the model's default is a float
      model.attn: {choices: [arn, none]}

The type of a range comes from the ``TrainConfig`` field or from the model option's default
(``type: int|float`` overrides it); ``epochs`` (the pruning budget) and ``seed`` (the same for
every trial, so that trials differ only by their hyper-parameters) cannot be searched.

**Objective.** A trial trains one cell with the experiment's recipe, its data, split and
training seed, plus the sampled values, into ``out/trials/<number>/`` (a normal run directory).
Its value is the validation ``metric`` (default ``val_f1``, the macro F1, maximised;
``val_accuracy`` is maximised too, ``val_loss`` minimised) at the epoch whose weights the run
keeps, the best by the recipe's ``monitor``. The test part is scored as in every run but never
used for the search.

**Pruning.** ``fit`` has no per-epoch hook, but it resumes exactly from ``last.*`` (model,
optimizer, RNG, early-stopping and learning-rate state), so a trial trains in stages: the task
is called with ``epochs=1``, then ``epochs=2, resume`` and so on; after each stage the epoch's
validation metric is reported to the trial and the pruner may stop it there (``median``:
below the median of earlier trials at that epoch, after 5 finished trials and from epoch 2;
``hyperband``: successive halving over 1..epochs; ``none``). Every stage re-indexes the data
and scores the (small) test part, a constant cost per epoch. The one recipe that is not the
same in stages is the ``cosine`` schedule, whose learning rate depends on the total epoch count:
such trials train all epochs in one call and report every epoch afterwards (so that pruning of
later trials can use them), without being pruned themselves.

**Budget, resumption, several workers.** ``n_trials`` is the study's global budget: the number
of COMPLETE plus PRUNED trials. A worker (``run_study`` in a process, on any machine) runs
trials until the study holds that many, so rerunning the same command resumes an interrupted
study, and starting it on several machines with one ``storage`` URL shares the work. The budget
is exact: a trial only trains if fewer than ``n_trials`` trials are finished or were created
before it and are still running or queued (Optuna's ``MaxTrialsCallback`` stops a worker only
after its trial ends, so two workers finishing together would both start one more). A worker
whose remaining budget is taken by other workers' running trials waits for them, so that if
one of those workers dies its trial is still run.

**Interrupted trials.** Storages are SQLAlchemy URLs (default ``sqlite:///<out>/study.db``;
``postgresql+psycopg2://user:pw@host/db`` for several machines) with Optuna's heartbeat: a
running trial records one every ``heartbeat_interval`` seconds; a trial silent for
``grace_period`` seconds (its process was killed or its machine died) is marked FAIL by the
next worker that looks, and queued again with the same hyper-parameters
(``RetryHeartbeatStaleTrialCallback``, at most ``max_retry`` times). Ctrl-C (and SIGTERM, on
the command line) marks the running trial FAIL and queues it the same way at once. The retry
continues from the failed trial's last checkpoint when its run directory is on this machine
and whole (copied into its own ``trials/<number>/``), else it starts over. No trial is lost,
and none is counted twice: the failed attempt stays FAIL, the retry has a new number and
``system_attrs["failed_trial"]``.
(One gap: a worker killed in the milliseconds between creating a trial and its first heartbeat
leaves a RUNNING trial that no heartbeat expires; ``timeout`` bounds the wait for it.)

Samplers are TPE, seeded per trial (``seed`` and the trial number), so that one worker is
reproducible and two workers never draw the same "random" start-up points.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.precision import choose_precision
from ..engine.provenance import seed_everything
from ..engine.tracking import read_log
from ..engine.trainer import TrainConfig
from ..errors import CheckpointError, ConfigError, DataError, ResattnError
from ..io import read_json
from ..reproduce.config import Cell, Experiment, load_experiment
from ..reproduce.runner import recipe_config, train_cell

if TYPE_CHECKING:
    import optuna

METRICS = {"val_f1": "maximize", "val_accuracy": "maximize", "val_loss": "minimize"}
PRUNERS = ("median", "hyperband", "none")
NOT_SEARCHABLE = {
    "epochs": "epochs is the pruning budget; set it in the experiment",
    "seed": "seed is the same for every trial so that trials differ only by their "
            "hyper-parameters; pass seed= to run_study",
}
TASK_OPTIONS = ("in_chans", "num_classes")  # set by the task from the data
RANGE_KEYS = {"low", "high", "log", "step", "type"}
WORKER = f"{socket.gethostname()}:{os.getpid()}"
SETTINGS_ATTR = "resattn"
_TRAIN_FIELDS = {f.name: getattr(f.type, "__name__", str(f.type)) for f in fields(TrainConfig)}


# ---------------------------------------------------------------------------- search space
@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: a float or int range, or a list of choices."""

    name: str  # "lr" or "model.attn"
    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    @property
    def option(self) -> str | None:
        """The model option this sets, or None for a TrainConfig field."""
        return self.name[len("model."):] if self.name.startswith("model.") else None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def as_dict(self) -> dict:
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        spec = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        return {**spec, "step": self.step} if self.step is not None else spec


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    def sample(self, trial: optuna.Trial) -> tuple[dict, dict]:
        """Suggest every parameter: (TrainConfig fields, model options)."""
        train, options = {}, {}
        for p in self.params:
            value = p.suggest(trial)
            if p.option is None:
                train[p.name] = value
            else:
                options[p.option] = value
        return train, options

    def as_dict(self) -> dict:
        return {p.name: p.as_dict() for p in self.params}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_train_value(name: str, value: Any, where: str) -> None:
    """A value of a TrainConfig field passes ``TrainConfig.validate`` on its own."""
    try:
        replace(TrainConfig(), **{name: value}).validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}.{name}: {value!r} is not a valid value ({exc})") from exc


def _value_type(name: str, model: str | None, where: str) -> str | None:
    """'int', 'float', 'str', 'bool' or None (unknown) for a TrainConfig field or model
    option; checks that the key names one."""
    option = name[len("model."):] if name.startswith("model.") else None
    if option is None:
        if name in NOT_SEARCHABLE:
            raise ConfigError(f"{where}.{name}: cannot be searched: {NOT_SEARCHABLE[name]}")
        if name not in _TRAIN_FIELDS:
            raise ConfigError(f"{where}: unknown key {name!r}; keys are TrainConfig fields "
                              f"{sorted(set(_TRAIN_FIELDS) - set(NOT_SEARCHABLE))} or "
                              "model.<option> for an option of the model")
        kind = _TRAIN_FIELDS[name].split("|")[0].strip()
        return kind if kind in ("int", "float", "str", "bool") else None
    if not option.isidentifier():
        raise ConfigError(f"{where}.{name}: expected model.<option name>")
    if option in TASK_OPTIONS:
        raise ConfigError(f"{where}.{name}: {option} is set by the task from the data and "
                          "cannot be searched")
    if model is None:
        return None
    from ..models.registry import model_entry

    entry = model_entry(model)
    if option not in entry.options:
        raise ConfigError(f"{where}.{name}: model {model!r} has no option {option!r}; its "
                          f"options: {sorted(entry.options)}")
    default = entry.defaults.get(option)
    if isinstance(default, bool):
        return "bool"
    return {int: "int", float: "float", str: "str"}.get(type(default))


def _parse_param(name: str, spec: Any, model: str | None, where: str) -> Param:
    value_type = _value_type(name, model, where)
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}.{name}: expected {{low, high[, log, step]}} or "
                          f"{{choices: [...]}}, got {spec!r}")
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise ConfigError(f"{where}.{name}: choices cannot be combined with "
                              f"{sorted(extra)}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.{name}: choices must be a non-empty list, "
                              f"got {choices!r}")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise ConfigError(f"{where}.{name}: choices must be numbers, strings, "
                                  f"booleans or null, got {c!r}")
            if name in _TRAIN_FIELDS:
                _check_train_value(name, c, where)
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}.{name}: choices repeat a value: {choices}")
        return Param(name, "categorical", choices=tuple(choices))
    unknown = set(spec) - RANGE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{name}: unknown field(s) {sorted(unknown)}; a range has "
                          f"{sorted(RANGE_KEYS)}, a list has 'choices'")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}.{name}: a range needs low and high (or give choices)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not (_number(low) and _number(high)):
        raise ConfigError(f"{where}.{name}: low and high must be numbers, got {low!r} and "
                          f"{high!r}")
    kind = spec.get("type", value_type)
    if kind in ("str", "bool"):
        raise ConfigError(f"{where}.{name}: takes a {kind}; give choices instead of a range")
    if kind is None:
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.{name}: type must be int or float, got {kind!r}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}.{name}: is an integer; low and high must be integers, "
                          f"got {low!r} and {high!r}")
    if not low < high:
        raise ConfigError(f"{where}.{name}: low must be below high, got {low!r} and {high!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.{name}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}.{name}: a log range needs low > 0, got {low!r}")
    if step is not None:
        if log:
            raise ConfigError(f"{where}.{name}: give log or step, not both")
        if not _number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            raise ConfigError(f"{where}.{name}: step must be a positive "
                              f"{'integer' if kind == 'int' else 'number'}, got {step!r}")
    if kind == "int":
        low, high, step = int(low), int(high), int(step) if step is not None else None
    else:
        low, high, step = float(low), float(high), float(step) if step is not None else None
    if name in _TRAIN_FIELDS:
        _check_train_value(name, low, where)
        _check_train_value(name, high, where)
    return Param(name, kind, low, high, log, step)


def parse_search(spec: Mapping | SearchSpace | None, model: str | None = None,
                 where: str = "search") -> SearchSpace:
    """Check a search-space mapping (see the module doc); with ``model`` (a registered name)
    ``model.<option>`` keys are checked against its options. Errors name the key."""
    if isinstance(spec, SearchSpace):
        for p in spec.params:
            _value_type(p.name, model, where)
        return spec
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where}: expected a non-empty mapping of hyper-parameter -> "
                          f"{{low, high[, log, step]}} or {{choices: [...]}}, got {spec!r}")
    params = []
    for name, value in spec.items():
        if not isinstance(name, str):
            raise ConfigError(f"{where}: keys must be strings, got {name!r}")
        params.append(_parse_param(name, value, model, where))
    return SearchSpace(tuple(params))


def read_search(path: str | Path) -> dict:
    """A search space from a YAML file: a top-level ``search:`` section or the mapping itself."""
    from ..reproduce.config import read_yaml

    path = Path(path)
    raw = read_yaml(path, "search-space file")
    if isinstance(raw, dict) and set(raw) >= {"search"}:
        raw = raw["search"]
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping (or a 'search:' section)")
    return raw


def load_tuning(path: str | Path) -> tuple[Experiment, dict | None]:
    """An experiment config and its ``search:`` section (None if it has none)."""
    exp = load_experiment(path)
    return exp, exp.search or None


# ---------------------------------------------------------------------------- sampler, pruner
def _tpe_sampler_class():
    import optuna

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        """TPE whose random state is seeded from ``seed`` and the trial number: one worker is
        reproducible; workers sharing a study do not draw the same start-up points (one TPE
        seeded alike in every process would)."""

        def __init__(self, seed: int = 0, n_startup_trials: int = 10) -> None:
            self.seed, self.n_startup_trials = seed, n_startup_trials
            self._per_trial: dict[int, optuna.samplers.TPESampler] = {}

        def _tpe(self, trial) -> optuna.samplers.TPESampler:
            if trial.number not in self._per_trial:
                # Hashed: Mersenne Twisters seeded 0, 1, 2... start with similar numbers.
                seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
                self._per_trial[trial.number] = optuna.samplers.TPESampler(
                    seed=seed, n_startup_trials=self.n_startup_trials)
            return self._per_trial[trial.number]

        def infer_relative_search_space(self, study, trial):
            return self._tpe(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._tpe(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._tpe(trial).sample_independent(study, trial, param_name,
                                                       param_distribution)

        def before_trial(self, study, trial) -> None:
            self._tpe(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            self._tpe(trial).after_trial(study, trial, state, values)
            self._per_trial.pop(trial.number, None)

        def reseed_rng(self) -> None:
            for tpe in self._per_trial.values():
                tpe.reseed_rng()

    return TrialSeededTPE


def make_sampler(seed: int = 0, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """TPE seeded per trial (see the module doc)."""
    return _tpe_sampler_class()(seed, n_startup_trials)


def make_pruner(pruner: str | optuna.pruners.BasePruner, epochs: int) -> optuna.pruners.BasePruner:
    """``median``, ``hyperband`` (resources 1..epochs), ``none``, or a pruner instance."""
    import optuna

    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1),
                                              reduction_factor=3)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")


# ---------------------------------------------------------------------------- storage, study
def _retry_callback(max_retry: int | None):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def default_storage(out: str | Path) -> str:
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def make_storage(url: str, heartbeat_interval: int = 30, grace_period: int | None = None,
                 max_retry: int | None = 3) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats and the retry of stale trials. SQLite files get a
    generous lock timeout (several local workers), other databases a pre-ping (a database that
    restarted or dropped an idle connection is reconnected)."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"storage {url!r} is not a database URL (e.g. sqlite:///study.db, "
                          "postgresql+psycopg2://user:password@host/db)") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    if heartbeat_interval < 1 or (grace_period is not None and grace_period <= heartbeat_interval):
        raise ConfigError("heartbeat_interval must be >= 1 s and grace_period longer than it, "
                          f"got {heartbeat_interval} and {grace_period}")
    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=_retry_callback(max_retry))
            except ImportError as exc:
                raise ConfigError(f"storage {parsed.render_as_string(hide_password=True)}: "
                                  f"its database driver is not installed ({exc}); for "
                                  "PostgreSQL: pip install psycopg2-binary") from exc
            except SQLAlchemyError as exc:
                # Workers starting together on a new database race to create the tables.
                if attempt == 4:
                    raise ConfigError(f"storage {parsed.render_as_string(hide_password=True)}: "
                                      f"cannot open the database ({exc})") from exc
                time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def open_study(storage: str | optuna.storages.BaseStorage, study_name: str,
               direction: str = "maximize", *, seed: int = 0,
               pruner: str | optuna.pruners.BasePruner = "median", epochs: int = 1,
               settings: dict | None = None, heartbeat_interval: int = 30,
               grace_period: int | None = None, max_retry: int | None = 3,
               startup_trials: int = 10) -> optuna.Study:
    """Create the study or load it (``load_if_exists``; several workers may race to create it).
    ``settings`` (JSON) are stored with a new study and must match on later opens, so that a
    study is never continued with another search space, metric or cell by mistake."""
    import optuna

    if isinstance(storage, str):
        storage = make_storage(storage, heartbeat_interval, grace_period, max_retry)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                sampler=make_sampler(seed, startup_trials),
                                pruner=make_pruner(pruner, epochs), load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {study_name!r} exists and is to "
                          f"{study.direction.name.lower()}, not {direction}")
    if settings is not None:
        settings = json.loads(json.dumps(settings))
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            study.set_user_attr(SETTINGS_ATTR, settings)
        elif stored != settings:
            diff = sorted(k for k in set(stored) | set(settings)
                          if stored.get(k) != settings.get(k))
            raise ConfigError(f"study {study_name!r} exists with other settings ({', '.join(diff)}"
                              f": stored {[stored.get(k) for k in diff]}, now "
                              f"{[settings.get(k) for k in diff]}); continue it with the same "
                              "settings or choose another study name")
    return study


# ---------------------------------------------------------------------------- budget loop
class OverBudget(Exception):
    """Raised in a trial created after the budget was taken (several workers asked at once);
    the trial is marked FAIL with ``user_attrs["over_budget"]`` and never trains."""


def _states():
    from optuna.trial import TrialState

    return TrialState


def _heartbeat(study: optuna.Study) -> int | None:
    storage = study._storage
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get else None


def _fail_stale(study: optuna.Study) -> None:
    import optuna

    if _heartbeat(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _requeue(study: optuna.Study, number: int | None, max_retry: int | None) -> None:
    """Queue an interrupted (FAIL) trial again, as the heartbeat does for a killed one."""
    if number is None:
        return
    for t in study.get_trials(deepcopy=False):
        if (t.number == number and t.state == _states().FAIL
                and not t.user_attrs.get("over_budget")):
            _retry_callback(max_retry)(study, copy.deepcopy(t))


def _failed_elsewhere(study: optuna.Study, number: int | None) -> bool:
    return number is not None and any(
        t.number == number and t.state == _states().FAIL
        and not t.user_attrs.get("over_budget") for t in study.get_trials(deepcopy=False))


def _logger():
    import optuna

    return optuna.logging.get_logger("optuna")


def optimize(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
             *, timeout: float | None = None, max_failures: int = 3,
             max_retry: int | None = 3) -> optuna.Study:
    """Run ``objective`` in trials until ``study`` holds ``n_trials`` COMPLETE or PRUNED
    trials (all workers together; see the module doc), or ``timeout`` seconds pass. A trial
    that raises is marked FAIL and another one runs; ``max_failures`` failures in a row
    re-raise the last error (a broken setup stops instead of failing every trial)."""
    import optuna

    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    states = _states()
    current: dict[str, Any] = {"number": None, "error": None}

    def guarded(trial: optuna.Trial) -> float:
        current["number"], current["error"] = trial.number, None
        ahead = [t.number for t in study.get_trials(deepcopy=False) if t.number != trial.number
                 and (t.state in (states.COMPLETE, states.PRUNED)
                      or (t.state in (states.RUNNING, states.WAITING)
                          and t.number < trial.number))]
        if len(ahead) >= n_trials:
            trial.set_user_attr("over_budget", True)
            raise OverBudget(f"trial {trial.number}: the budget of {n_trials} trials is taken "
                             f"by trials {sorted(ahead)}; not run")
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            current["error"] = exc
            raise

    failures, start = 0, time.monotonic()
    poll = min(_heartbeat(study) or 1, 5)
    while True:
        _fail_stale(study)
        count = Counter(t.state for t in study.get_trials(deepcopy=False))
        if count[states.COMPLETE] + count[states.PRUNED] >= n_trials:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        claimed = sum(count[s] for s in (states.COMPLETE, states.PRUNED, states.RUNNING,
                                         states.WAITING))
        if claimed >= n_trials and not count[states.WAITING]:
            if not _heartbeat(study):
                break  # without heartbeats a dead worker cannot be told from a slow one
            time.sleep(poll)  # the rest is running elsewhere; take over if a worker dies
            continue
        current["number"] = None
        try:
            study.optimize(guarded, n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            _requeue(study, current["number"], max_retry)
            raise
        except (ValueError, AssertionError):
            # Optuna cannot tell a trial that another worker failed meanwhile, having found its
            # heartbeat late (a stalled machine or database); its retry is queued, so go on.
            if not _failed_elsewhere(study, current["number"]):
                raise
            _logger().warning(f"trial {current['number']} was failed by another worker (late "
                              "heartbeat); its result is dropped and the trial is retried")
            continue
        if current["error"] is None:
            failures = 0
        else:
            failures += 1
            if failures >= max_failures:
                raise current["error"]
    return study


# ---------------------------------------------------------------------------- objective
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


def make_objective(exp: Experiment, cell: Cell, space: SearchSpace, trials_dir: str | Path,
                   seed: int = 0, metric: str = "val_f1") -> Callable[[optuna.Trial], float]:
    """The training objective of ``run_study`` (see the module doc)."""
    import optuna

    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}")
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
        staged = recipe_config(texp, seed).validate().schedule != "cosine"
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
                summary = _train(replace(texp, epochs=epoch), tcell, seed, run)
                row = _row(run, epoch)
                if row is None:
                    break
                trial.report(float(row[metric]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}: {metric} "
                                             f"{row[metric]:.4f}")
                done, stopped = epoch, summary["stopped_early"]
        elif done < exp.epochs and not stopped:
            summary = _train(texp, tcell, seed, run)
            _report_rows(trial, run, metric, done, None)
        if summary is None:  # nothing left to train: the checkpoint's summary
            summary = _train(replace(texp, epochs=max(done, 1)), tcell, seed, run)
        best = _row(run, summary["best_epoch"])
        if best is None:
            raise DataError(f"{run}: no log row for the best epoch {summary['best_epoch']}")
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("epochs_run", summary["epochs_run"])
        return float(best[metric])

    return objective


# ---------------------------------------------------------------------------- public entry
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
    """Tune one cell of an experiment (see the module doc) and return the study.

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
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if not exp.data.exists():
        raise DataError(f"{exp.source}: data {exp.data} not found")
    name = study_name or f"{exp.name}-{tcell.slug}"
    out = Path(out or Path("results") / f"{name}-tune")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"experiment": exp.name, "cell": tcell.name, "model": tcell.model,
                "options": tcell.options, "metric": metric, "epochs": exp.epochs,
                "recipe": exp.recipe, "seed": seed, "search": space.as_dict()}
    study = open_study(storage if storage is not None else default_storage(out), name,
                       METRICS[metric], seed=seed, pruner=pruner, epochs=exp.epochs,
                       settings=settings, heartbeat_interval=heartbeat_interval,
                       grace_period=grace_period, max_retry=max_retry,
                       startup_trials=startup_trials)
    objective = make_objective(exp, tcell, space, out / "trials", seed, metric)
    return optimize(study, objective, n_trials, timeout=timeout, max_failures=max_failures,
                    max_retry=max_retry)


def best_summary(study: optuna.Study) -> dict:
    """Best value, parameters and run directory, and the trial counts by state
    (``over_budget``: FAIL trials that were created after the budget was taken, never run)."""
    states = _states()
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE and t.value is not None
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


# ---------------------------------------------------------------------------- command line
def _interrupt(signum, frame):  # SIGTERM (a scheduler's preemption) behaves like Ctrl-C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m resattn.optimize.tune CONFIG [--storage URL --study NAME ...]``."""
    p = argparse.ArgumentParser(prog="python -m resattn.optimize.tune",
                                description="Tune one cell of an experiment with Optuna; rerun "
                                "to resume, start on several machines with one --storage URL "
                                "to share the study.")
    p.add_argument("config", help="experiment YAML (its search: section is the space)")
    p.add_argument("--search", help="YAML with the search space (instead of the config's)")
    p.add_argument("--cell", help="cell to tune (required if the config has several)")
    p.add_argument("--storage", help="database URL (default sqlite:///<out>/study.db)")
    p.add_argument("--study", help="study name (default <experiment>-<cell>)")
    p.add_argument("--trials", type=int, default=20,
                   help="global budget of COMPLETE + PRUNED trials (default 20)")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--metric", choices=sorted(METRICS), default="val_f1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder of trials/<number>/ (default results/<study>-tune)")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.add_argument("--quick", action="store_true", help="the config's quick overrides")
    p.add_argument("--heartbeat", type=int, default=30, help="heartbeat interval, s")
    p.add_argument("--grace", type=int, help="a trial silent this long (s) is retried "
                   "(default 2 x heartbeat)")
    args = p.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        exp, search = load_tuning(args.config)
        if args.search:
            search = read_search(args.search)
        if args.quick:
            exp = exp.quick_version()
        study = run_study(exp, search, args.storage, args.study, args.trials, args.cell,
                          args.seed, args.pruner, args.out, args.metric, args.timeout,
                          args.heartbeat, args.grace)
    except ResattnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running trial is queued again; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(json.dumps(best_summary(study), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
