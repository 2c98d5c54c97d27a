"""Experiment configs: one YAML file per paper table (``configs/*.yaml``).

A config names the task (``waveform``, ``image``, ``forecast`` or a canonical task name), the
data (a path, or for forecasting a list of catalogues), the recipe, the seeds and the cells (a
model with options, optionally fine-tuned from trained weights: ``init``; or a ``reference``
method read from another cell's runs), and carries the paper's published figures per cell so
that the report can set ours beside them. ``quick`` overrides (epochs, seeds,
``max_per_class``, the task's section) make a run that finishes in minutes.

Every section is typed: the task's section is the task's ``options_type``, ``recipe`` holds
``TrainConfig`` fields (and a ``preset``), ``quick`` is :class:`Quick`, ``metrics``,
``per_class`` and ``published`` name what the task's summaries hold. :meth:`Experiment.check`
(called by :func:`load_experiment`) reports the first mistake as one ``ConfigError`` line
naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.trainer import TrainConfig, preset_config
from ..errors import CheckpointError, ConfigError
from ..io import folder_name, read_json
from ..models import model_entry
from ..options import coerce, unknown_keys
from ..tasks import Task, get_task, task_names
from .sections import known_name, parse_quick, recipe_fields, task_options

TASKS = [get_task(name) for name in task_names()]
SECTIONS = tuple(dict.fromkeys(t.section for t in TASKS))  # waveform, image, forecast
ROOT_KEYS = {"name", "paper", "task", "data", "seeds", "epochs", "recipe", "metrics",
             "per_class", "baseline", "cells", "quick", "caveats", "search", *SECTIONS}
CELL_KEYS = {"name", "model", "options", "published", "init", "reference", "of"}


@dataclass
class Cell:
    """One row of a table: ``model`` trained with ``options`` (from ``init``'s weights if
    set), or a ``reference`` method scored in the runs of the cell ``of``."""

    name: str
    model: str
    options: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)
    init: str | None = None  # shipped model name or checkpoint to fine-tune from
    reference: str | None = None  # a task's reference method (Task.reference_names)
    of: str | None = None  # the cell whose runs score that reference

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower() or "cell"


@dataclass
class Experiment:
    name: str
    task: str
    data: Path | list[Path]
    cells: list[Cell]
    paper: str = ""
    seeds: int = 3
    epochs: int = 30
    recipe: dict = field(default_factory=dict)
    waveform: dict = field(default_factory=dict)
    image: dict = field(default_factory=dict)
    forecast: dict = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "f1"])
    per_class: str | None = None  # e.g. "recall": per-class sensitivity in the tables
    baseline: str | None = None
    quick: dict = field(default_factory=dict)
    caveats: str = ""
    search: dict = field(default_factory=dict)  # hyper-parameter space for `resattn tune`
    source: Path | None = None

    # ------------------------------------------------------------------ typed views
    @property
    def where(self) -> str:
        """Error prefix: the config file."""
        return f"{self.source}: " if self.source else ""

    @property
    def registered_task(self) -> Task:
        return get_task(self.task, f"{self.where}task")

    @property
    def options(self) -> Any:
        """The task's section as its ``options_type``."""
        task = self.registered_task
        return task_options(task, getattr(self, task.section), f"{self.where}{task.section}")

    def train_config(self, seed: int) -> TrainConfig:
        """The recipe of one run: a named preset with overrides, or TrainConfig fields, with
        the experiment's epochs and the run's seed."""
        recipe = recipe_fields(self.recipe, f"{self.where}recipe")
        preset = recipe.pop("preset", None)
        fields = {**recipe, "epochs": self.epochs, "seed": seed}
        return preset_config(preset, **fields) if preset else TrainConfig(**fields)

    @property
    def data_paths(self) -> list[Path]:
        return list(self.data) if isinstance(self.data, list | tuple) else [self.data]

    def quick_version(self) -> Experiment:
        """The config with its ``quick`` overrides applied (epochs, seeds, the section)."""
        task = self.registered_task
        q, overrides = parse_quick(self.quick, task, f"{self.where}quick")
        section = {**getattr(self, task.section), **overrides}
        return dataclasses.replace(self, epochs=q.epochs, seeds=q.seeds,
                                   **{task.section: section})

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise ConfigError(f"{self.where}no cell named {name!r}; cells: "
                          f"{[c.name for c in self.cells]}")

    def trained_cells(self) -> list[Cell]:
        """The cells that train (reference cells read another cell's runs)."""
        return [c for c in self.cells if c.reference is None]

    # ------------------------------------------------------------------ checks
    def check(self) -> Experiment:
        """Every section checked against the task; the first mistake is a ConfigError naming
        the file and the key. Returns self."""
        where = self.where
        task = self.registered_task
        for key, hint in (("name", str), ("paper", str), ("seeds", int), ("epochs", int),
                          ("caveats", str), ("per_class", str | None),
                          ("baseline", str | None), ("metrics", list[str])):
            coerce(getattr(self, key), hint, f"{where}{key}")
        folder_name(self.name, f"{where}name")  # results/<name> stays inside results/
        if self.seeds < 1 or self.epochs < 1:
            raise ConfigError(f"{where}seeds and epochs must be >= 1")
        for section in SECTIONS:
            if section != task.section and getattr(self, section):
                raise ConfigError(f"{where}{section}: the {task.name} task reads no {section} "
                                  f"section (its options are {task.section}:)")
        task_options(task, getattr(self, task.section), f"{where}{task.section}")
        if self.recipe and not task.takes_recipe:
            raise ConfigError(f"{where}recipe: the {task.name} task takes its recipe from its "
                              f"{task.section} section; remove recipe")
        try:
            self.train_config(0).validate()
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith(f"{where}recipe") else
                              f"{where}recipe: {text}") from None
        q, _ = parse_quick(self.quick, task, f"{where}quick")
        if q.epochs < 1 or q.seeds < 1:
            raise ConfigError(f"{where}quick: epochs and seeds must be >= 1")
        if not isinstance(self.search, Mapping):
            raise ConfigError(f"{where}search: expected a mapping, got {self.search!r}")
        if not self.metrics:
            raise ConfigError(f"{where}metrics: name at least one metric, e.g. "
                              f"{task.metric_names[0]}")
        for i, name in enumerate(self.metrics):
            known_name(name, task.metric_names, f"{where}metrics[{i}]", f"{task.name} metric")
        if self.per_class is not None:
            known_name(self.per_class, task.per_class_metrics, f"{where}per_class",
                   f"{task.name} per-class metric")
        self._check_cells(task)
        if self.baseline is not None and self.baseline not in [c.name for c in self.cells]:
            raise ConfigError(f"{where}baseline: no cell named {self.baseline!r}; cells: "
                              f"{[c.name for c in self.cells]}")
        return self

    def _check_cells(self, task: Task) -> None:
        if not self.cells:
            raise ConfigError(f"{self.where}cells is empty")
        names = [c.name for c in self.cells]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.where}cell names must be unique, got {names}")
        for i, cell in enumerate(self.cells):
            at = f"{self.where}cells[{i}]"
            for key in cell.published:
                metric, _, cls = str(key).partition("/")
                known = task.per_class_metrics if cls else task.metric_names
                known_name(metric, known, f"{at}.published.{key}", f"{task.name} metric")
                value = coerce(cell.published[key], float, f"{at}.published.{key}")
                if not math.isfinite(value):
                    raise ConfigError(f"{at}.published.{key}: expected a finite number, got "
                                      f"{value}")
            if cell.reference is None:
                try:
                    model_entry(coerce(cell.model, str, f"{at}.model"))
                except ConfigError as exc:
                    raise ConfigError(f"{at}.model: {exc}") from None
                cell.options = task.cell_options(cell.model, cell.options, at)
                for link in task.cell_links:
                    if link in cell.options:
                        self._check_link(i, cell.options[link], f"{at}.options.{link}")
                continue
            known_name(cell.reference, task.reference_names, f"{at}.reference",
                   f"{task.name} reference method")
            source = cell.of or self.baseline
            if source is None:
                raise ConfigError(f"{at}.of: name the cell whose runs score "
                                  f"{cell.reference!r} (there is no baseline cell)")
            self._check_link(None, source, f"{at}.of")

    def _check_link(self, index: int | None, name: Any, where: str) -> None:
        """``name`` must be a trained cell listed before cell ``index`` (None: anywhere)."""
        names = [c.name for c in self.trained_cells()]
        if name not in names:
            raise ConfigError(f"{where}: {name!r} is not a trained cell; cells: {names}")
        if index is not None and [c.name for c in self.cells].index(name) >= index:
            raise ConfigError(f"{where}: cell {name!r} must come before the cell that uses it")


def _resolve_data(value: str, source: Path) -> Path:
    """Absolute, or relative to the repository root (the config folder's parent), or to the
    config file itself; the first that exists, else the repository-relative path."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    candidates = [source.parent.parent / p, source.parent / p, Path.cwd() / p]
    return next((c.resolve() for c in candidates if c.exists()), candidates[0].resolve())


def _data(value: Any, source: Path) -> Path | list[Path]:
    """``data:`` a path, or a list of paths (forecasting: catalogues read together)."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [_resolve_data(v, source) for v in value]
    if not isinstance(value, str):
        raise ConfigError(f"{source}: data: expected a path or a list of paths, got {value!r}")
    return _resolve_data(value, source)


def _resolve_init(cell: dict, source: Path, where: str) -> str | None:
    """A cell's ``init``: a shipped model name as is, a checkpoint path relative to the config
    file made absolute; its recorded architecture must be the cell's model."""
    from ..pretrained import checkpoint_stem, list_pretrained

    value = cell.get("init")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {where}: expected a shipped model name or a checkpoint "
                          f"path, got {value!r}")
    shipped = str(value) in list_pretrained()
    path = Path(value) if shipped or Path(value).is_absolute() else source.parent / value
    try:
        meta = read_json(checkpoint_stem(value if shipped else path, where).with_suffix(".json"))
    except CheckpointError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    arch = (meta.get("config") or {}).get("model")
    if arch != cell["model"]:
        raise ConfigError(f"{source}: {where} of cell {cell['name']!r} holds a {arch} model, "
                          f"but the cell's model is {cell['model']}")
    return str(value) if shipped else str(path.resolve())


def _cell(c: Any, i: int, path: Path) -> Cell:
    at = f"{path}: cells[{i}]"
    if isinstance(c, dict) and "reference" in c:
        unknown_keys(c, ["name", "reference", "of", "published"], at)
        if "name" not in c:
            raise ConfigError(f"{at} needs a name")
        return Cell(str(c["name"]), str(c["reference"]),
                    published=_mapping(c.get("published"), f"{at}.published"),
                    reference=c["reference"], of=c.get("of"))
    if isinstance(c, dict):
        unknown_keys(c, sorted(CELL_KEYS), at)
    if not isinstance(c, dict) or "name" not in c or "model" not in c:
        raise ConfigError(f"{path}: cells[{i}] needs a name and a model")
    return Cell(str(c["name"]), c["model"], _mapping(c.get("options"), f"{at}.options"),
                _mapping(c.get("published"), f"{at}.published"),
                _resolve_init(c, path, f"cells[{i}].init"))


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)


MAX_YAML_VALUES = 100_000  # values in one config, aliases expanded ("billion laughs")


def read_yaml(path: str | Path, what: str = "config file"):
    """The parsed YAML of ``path`` (safe: plain values only); a missing file, text that is not
    UTF-8 or YAML, a key given twice in one mapping (the later would silently win), or aliases
    that loop or expand past ``MAX_YAML_VALUES`` values are a ConfigError naming it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such {what}")
    try:
        raw = yaml.load(path.read_bytes().decode("utf-8"), Loader=_unique_key_loader())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (UTF-8): {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    _count_values(raw, path)
    return raw


def _count_values(raw: Any, path: Path) -> None:
    """A ConfigError if ``raw`` holds itself (a looping alias) or more than MAX_YAML_VALUES
    values once its aliases are expanded."""
    count, stack = 0, [(raw, ())]
    while stack:
        value, parents = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise ConfigError(f"{path}: more than {MAX_YAML_VALUES} values (aliases expanding "
                              "without end?); expected a config of plain values")
        if isinstance(value, dict | list):
            if id(value) in parents:
                raise ConfigError(f"{path}: an alias refers to a mapping or list that holds "
                                  "it (a loop); expected plain values")
            inner = value.values() if isinstance(value, dict) else value
            stack.extend((v, (*parents, id(value))) for v in inner)


def _unique_mapping(loader: Any, node: Any, deep: bool = False) -> dict:
    """A YAML mapping whose own keys are distinct (``<<`` merges may be overridden)."""
    import yaml

    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep)


@functools.cache
def _unique_key_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """``yaml.SafeLoader`` refusing a key given twice in one mapping."""

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
    return Loader


def load_experiment(path: str | Path) -> Experiment:
    """Parse and check a config; errors name the file and the field."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(raw) - ROOT_KEYS, key=str)  # YAML keys may be numbers: 1:, on:
    if unknown:
        first = unknown[0]
        close = difflib.get_close_matches(str(first), sorted(ROOT_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown field(s) {unknown}{hint}; expected "
                          f"{sorted(ROOT_KEYS)}")
    for key in ("name", "task", "data", "cells"):
        if key not in raw:
            raise ConfigError(f"{path}: missing field {key!r}")
    try:
        get_task(str(raw["task"]))
    except ConfigError:
        spellings = sorted(n for t in TASKS for n in (t.name, *t.aliases))
        raise ConfigError(f"{path}: task must be one of {spellings}, got {raw['task']!r}") \
            from None
    if not isinstance(raw["cells"], list):
        raise ConfigError(f"{path}: cells: expected a list of cells, got {raw['cells']!r}")
    cells = [_cell(c, i, path) for i, c in enumerate(raw["cells"])]
    sections = {k: _mapping(raw.get(k), f"{path}: {k}") for k in
                ("recipe", "quick", "search", *SECTIONS) if k in raw}
    exp = Experiment(**{**{k: v for k, v in raw.items() if k not in ("cells", "data")},
                        **sections, "cells": cells, "data": _data(raw["data"], path),
                        "source": path})
    return exp.check()

