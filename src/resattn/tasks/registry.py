"""The task registry: the one place where a task is chosen by name, alias, checkpoint or data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, DataError
from .base import Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` under its name and aliases."""
    for key in (task.name, *task.aliases):
        if key in _TASKS and _TASKS[key] is not task:
            raise ValueError(f"task name {key!r} registered twice")
        _TASKS[key] = task
    return task


def task_names() -> list[str]:
    """Canonical names of the registered tasks."""
    return sorted({t.name for t in _TASKS.values()})


def get_task(name: str, where: str = "task") -> Task:
    """The task called ``name`` (canonical or alias)."""
    if name not in _TASKS:
        spellings = sorted(_TASKS)
        raise ConfigError(f"{where}: unknown task {name!r}; expected one of {spellings}")
    return _TASKS[name]


def task_of(meta: dict, where: str = "model") -> Task:
    """The task a checkpoint's metadata records."""
    name = meta.get("task")
    if not isinstance(name, str) or name not in _TASKS:
        raise ConfigError(f"{where}: records task {name!r}, which this version does not know; "
                          f"tasks: {task_names()}")
    return _TASKS[name]


def data_paths(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """``data`` as a list of paths (one ``--data`` or several)."""
    return [Path(d) for d in data] if isinstance(data, list | tuple) else [Path(data)]


def one_or_many(data: str | Path | Sequence[str | Path]) -> Path | list[Path]:
    """A single path as itself, several as a list: a run on one folder records what it did
    before several were possible."""
    paths = data_paths(data)
    return paths[0] if len(paths) == 1 else paths


def task_for_data(data: Path | Sequence[Path]) -> Task:
    """The task whose data ``data`` is (a waveform folder, an image source, ...); several
    paths (each a source) must all be data of one task that reads several."""
    found = [_task_of_path(p) for p in data_paths(data)]
    _check_same_task(found, data_paths(data))
    return found[0]


def _task_of_path(data: Path) -> Task:
    if not data.exists():
        raise DataError(f"{data}: no such file or folder; expected waveforms (a folder of CSV + "
                        "HDF5 files) or images (a folder of class folders, an archive or .npz)")
    tasks = list(dict.fromkeys(_TASKS.values()))
    for task in tasks:
        if task.accepts(data):
            return task
    raise DataError(f"{data}: not data of any task ({task_names()})")


def _check_same_task(found: list[Task], paths: list[Path]) -> None:
    if not paths:
        raise ConfigError("no --data given; expected at least one")
    if len({t.name for t in found}) > 1:
        kinds = ", ".join(f"{p} ({t.name})" for p, t in zip(paths, found, strict=True))
        raise DataError(f"--data: every path must hold data of one task, got {kinds}")
    if len(paths) > 1 and not found[0].multi_source:
        raise ConfigError(f"--data given {len(paths)} times, but {found[0].name} reads one "
                          "data path")


def task_for(meta: dict, data: Path | Sequence[Path], where: str = "--model") -> Task:
    """The task of a model about to be run on ``data``: the one its checkpoint records (the
    data must be of that task), or for a bare checkpoint saved without one, the data's."""
    if meta.get("task") is None:
        return task_for_data(data)
    task = task_of(meta, where)
    for path in data_paths(data):
        if not path.exists():
            raise DataError(f"{path}: no such file or folder (the {task.name} data to run "
                            f"{where.split()[-1]} on)")
        if not task.accepts(path):
            raise DataError(f"{where} is a {task.name} model, but {path} is not {task.name} "
                            "data")
    _check_same_task([task] * len(data_paths(data)), data_paths(data))
    return task
