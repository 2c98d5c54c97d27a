"""A study in a database that several workers share: storage with heartbeats, the exact global
budget of trials, and trials that were killed or interrupted queued again (see the package doc)."""

from __future__ import annotations

import copy
import json
import random
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import ConfigError
from .sampler import make_pruner, make_sampler

SETTINGS_ATTR = "resattn"  # the study's user attribute holding the settings it was created with
_LOG = optuna.logging.get_logger("optuna")


# ---------------------------------------------------------------------------- storage, study
def _retry_callback(max_retry: int | None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def default_storage(out: str | Path) -> str:
    """``sqlite:///<out>/study.db``, absolute."""
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def make_storage(url: str, heartbeat_interval: int = 30, grace_period: int | None = None,
                 max_retry: int | None = 3) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats and the retry of stale trials. SQLite files get a
    generous lock timeout (several local workers), other databases a pre-ping (a database that
    restarted or dropped an idle connection is reconnected)."""
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
    chosen = make_pruner(pruner, epochs)  # a misspelt name fails before a database is made
    if isinstance(storage, str):
        storage = make_storage(storage, heartbeat_interval, grace_period, max_retry)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                sampler=make_sampler(seed, startup_trials), pruner=chosen,
                                load_if_exists=True)
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


def _heartbeat(study: optuna.Study) -> int | None:
    storage = study._storage
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get else None


def _fail_stale(study: optuna.Study) -> None:
    if _heartbeat(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _requeue(study: optuna.Study, number: int | None, max_retry: int | None) -> None:
    """Queue an interrupted (FAIL) trial again, as the heartbeat does for a killed one."""
    if number is None:
        return
    for t in study.get_trials(deepcopy=False):
        if (t.number == number and t.state == TrialState.FAIL
                and not t.user_attrs.get("over_budget")):
            _retry_callback(max_retry)(study, copy.deepcopy(t))


def _failed_elsewhere(study: optuna.Study, number: int | None) -> bool:
    return number is not None and any(
        t.number == number and t.state == TrialState.FAIL
        and not t.user_attrs.get("over_budget") for t in study.get_trials(deepcopy=False))


def optimize(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
             *, timeout: float | None = None, max_failures: int = 3,
             max_retry: int | None = 3) -> optuna.Study:
    """Run ``objective`` in trials until ``study`` holds ``n_trials`` COMPLETE or PRUNED
    trials (all workers together; see the package doc), or ``timeout`` seconds pass. A trial
    that raises is marked FAIL and another one runs; ``max_failures`` failures in a row
    re-raise the last error (a broken setup stops instead of failing every trial)."""
    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    current: dict[str, Any] = {"number": None, "error": None}

    def guarded(trial: optuna.Trial) -> float:
        current["number"], current["error"] = trial.number, None
        ahead = [t.number for t in study.get_trials(deepcopy=False) if t.number != trial.number
                 and (t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                      or (t.state in (TrialState.RUNNING, TrialState.WAITING)
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
        if count[TrialState.COMPLETE] + count[TrialState.PRUNED] >= n_trials:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        claimed = sum(count[s] for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.RUNNING, TrialState.WAITING))
        if claimed >= n_trials and not count[TrialState.WAITING]:
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
            _LOG.warning(f"trial {current['number']} was failed by another worker (late "
                         "heartbeat); its result is dropped and the trial is retried")
            continue
        if current["error"] is None:
            failures = 0
        else:
            failures += 1
            if failures >= max_failures:
                raise current["error"]
    return study


# ---------------------------------------------------------------------------- interrupts
def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (a scheduler's preemption) raises ``KeyboardInterrupt`` as
    Ctrl-C does, so that ``optimize`` queues the running trial again. Signal handlers can only
    be set in the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
