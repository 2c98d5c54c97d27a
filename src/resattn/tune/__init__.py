"""Hyper-parameter search with Optuna: TPE sampling, pruning per epoch, resumable studies that
several machines can share. ``resattn tune CONFIG`` on the command line, ``run_study`` in Python.

Modules by job: ``space`` (the search space), ``sampler`` (seeded TPE, pruners), ``study``
(storage, the exact budget, stale and interrupted trials), ``objective`` (one trial: one ``fit``
with a pruning callback), ``run`` (``run_study``, ``best_summary``).

**Search space.** It sits beside the experiment (a ``search:`` section of its YAML, a YAML file,
or a mapping passed in). Keys are ``TrainConfig`` fields or ``model.<option>`` for an option of
the cell's model; a value is a range or a list of choices::

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

**Pruning.** A trial is one ``fit`` (``objective.train_with_pruning``) with an
``OptunaPruning`` callback: after every epoch (and its checkpoint) the epoch's validation metric
is reported and the pruner may stop the trial (``median``: below the median of earlier trials at
that epoch, after 5 finished trials and from epoch 2; ``hyperband``: successive halving over
1..epochs; ``none``). The data are indexed and the test part scored once per trial, and every
learning-rate rule (``cosine`` included) is pruned like the others.

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
next worker that looks, and queued again with the same hyper-parameters (at most ``max_retry``
times). Ctrl-C (and SIGTERM, within ``sigterm_as_interrupt`` as on the command line) marks the
running trial FAIL and queues it the same way at once. The retry continues from the failed
trial's last checkpoint when its run directory is on this machine and whole (copied into its
own ``trials/<number>/``), else it starts over. No trial is lost, and none is counted twice: the
failed attempt stays FAIL, the retry has a new number and ``system_attrs["failed_trial"]``.
(One gap: a worker killed in the milliseconds between creating a trial and its first heartbeat
leaves a RUNNING trial that no heartbeat expires; ``timeout`` bounds the wait for it.)

Samplers are TPE, seeded per trial (``seed`` and the trial number), so that one worker is
reproducible and two workers never draw the same "random" start-up points.
"""

from __future__ import annotations

from .objective import METRICS, OptunaPruning, make_objective, train_with_pruning
from .run import best_summary, run_study
from .sampler import PRUNERS, make_pruner, make_sampler
from .space import Param, SearchSpace, load_tuning, parse_search, read_search
from .study import (
    OverBudget,
    default_storage,
    make_storage,
    open_study,
    optimize,
    sigterm_as_interrupt,
)

__all__ = [
    "METRICS",
    "PRUNERS",
    "OptunaPruning",
    "OverBudget",
    "Param",
    "SearchSpace",
    "best_summary",
    "default_storage",
    "load_tuning",
    "make_objective",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "open_study",
    "optimize",
    "parse_search",
    "read_search",
    "run_study",
    "sigterm_as_interrupt",
    "train_with_pruning",
]
