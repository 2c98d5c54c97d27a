"""The task registry: the one place where a task is chosen by name, alias, checkpoint or data."""

from __future__ import annotations

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


def task_for_data(data: Path) -> Task:
    """The task whose data ``data`` is (a waveform folder, an image source, ...)."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"{data}: no such file or folder; expected waveforms (a folder of CSV + "
                        "HDF5 files) or images (a folder of class folders, an archive or .npz)")
    tasks = list(dict.fromkeys(_TASKS.values()))
    for task in tasks:
        if task.accepts(data):
            return task
    raise DataError(f"{data}: not data of any task ({task_names()})")


def task_for(meta: dict, data: Path, where: str = "--model") -> Task:
    """The task of a model about to be run on ``data``: the one its checkpoint records (the
    data must be of that task), or for a bare checkpoint saved without one, the data's."""
    if meta.get("task") is None:
        return task_for_data(data)
    task = task_of(meta, where)
    if not Path(data).exists():
        raise DataError(f"{data}: no such file or folder (the {task.name} data to run "
                        f"{where.split()[-1]} on)")
    if not task.accepts(Path(data)):
        raise DataError(f"{where} is a {task.name} model, but {data} is not {task.name} data")
    return task
