"""The typed sections of an experiment config that are not the config's own fields: the
task's section (its ``options_type``), ``recipe`` (``TrainConfig`` fields and a ``preset``) and
``quick`` (:class:`Quick`). Each parser names ``where`` (``configs/x.yaml: recipe``) and the
key in its one-line ``ConfigError``."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine.recipes import PRESETS
from ..engine.trainer import TrainConfig
from ..errors import ConfigError
from ..options import coerce, from_mapping, option, type_hints, unknown_keys
from ..tasks import Task

SET_BY_EXPERIMENT = {"epochs": "the experiment's epochs", "seed": "the run's seed (seeds)"}


@dataclass
class Quick:
    """``quick:``: what ``--quick`` changes so that a run finishes in minutes. The task's
    section name (e.g. ``forecast:``) may hold overrides of that section too."""

    epochs: int = option(1, "Epochs of every run.")
    seeds: int = option(1, "Seeds per cell.")
    max_per_class: int | None = option(None, "Image tasks: the image section's max_per_class.")


def known_name(name: Any, known: tuple[str, ...], where: str, what: str) -> None:
    """ConfigError unless ``name`` is one of ``known`` (with the closest, if any)."""
    if name not in known:
        close = difflib.get_close_matches(str(name), list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown {what} {name!r}{hint}; expected one of "
                          f"{list(known)}")


def task_options(task: Task, mapping: Any, where: str) -> Any:
    """A task section as the task's options; the fields the experiment sets are refused."""
    mapping = {} if mapping is None else mapping
    if isinstance(mapping, Mapping):
        for key in task.set_by_experiment:
            if key in mapping:
                why = SET_BY_EXPERIMENT.get(key, "each cell's options")
                raise ConfigError(f"{where}.{key}: set by {why}, not here")
    try:
        return from_mapping(task.options_type, _iso_dates(mapping), where)
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") \
            from None


def _iso_dates(value: Any) -> Any:
    """YAML reads an unquoted 2008-01-01 as a date: give it back as the ISO string."""
    if isinstance(value, Mapping):
        return {k: _iso_dates(v) for k, v in value.items()}
    return value.isoformat() if isinstance(value, datetime.date) else value


def recipe_fields(recipe: Any, where: str) -> dict:
    """``recipe:`` checked: TrainConfig fields (not epochs or seed) and a ``preset`` name."""
    if not isinstance(recipe, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {recipe!r}")
    for key in SET_BY_EXPERIMENT:
        if key in recipe:
            raise ConfigError(f"{where}.{key}: set by {SET_BY_EXPERIMENT[key]}, not here")
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in SET_BY_EXPERIMENT]
    unknown_keys(recipe, [*names, "preset"], where)
    hints = type_hints(TrainConfig)
    out = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in recipe.items() if k != "preset"}
    if "preset" in recipe:
        known_name(recipe["preset"], tuple(sorted(PRESETS)), f"{where}.preset", "preset")
        out["preset"] = recipe["preset"]
    return out


def parse_quick(quick: Any, task: Task, where: str) -> tuple[Quick, dict]:
    """``quick:`` as :class:`Quick` and the overrides of the task's section it holds (checked
    against the merged section)."""
    if not isinstance(quick, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {quick!r}")
    quick = dict(quick)
    overrides = _iso_dates(quick.pop(task.section, None) or {})
    unknown_keys(quick, [f.name for f in dataclasses.fields(Quick)] + [task.section], where)
    q = from_mapping(Quick, quick, where)
    if q.max_per_class is not None:
        if "max_per_class" not in {f.name for f in dataclasses.fields(task.options_type)}:
            raise ConfigError(f"{where}.max_per_class: the {task.name} task has no "
                              "max_per_class option")
        overrides = {**overrides, "max_per_class": q.max_per_class}
    task_options(task, overrides, f"{where}.{task.section}")
    return q, overrides
