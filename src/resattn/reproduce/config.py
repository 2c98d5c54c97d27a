"""Experiment configs: one YAML file per paper table (``configs/*.yaml``).

A config names the task (``waveform`` or ``image``), the data, the recipe, the seeds and the
cells (a model with options, optionally fine-tuned from trained weights: ``init``), and carries
the paper's published figures per cell so that the report can set ours beside them. ``quick``
overrides (epochs, seeds, ``max_per_class``) make a run that finishes in minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..io import read_json

TASKS = ("waveform", "image")
ROOT_KEYS = {"name", "paper", "task", "data", "seeds", "epochs", "recipe", "waveform", "image",
             "metrics", "per_class", "baseline", "cells", "quick", "caveats", "search"}


@dataclass
class Cell:
    name: str
    model: str
    options: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)
    init: str | None = None  # shipped model name or checkpoint to fine-tune from

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower() or "cell"


@dataclass
class Experiment:
    name: str
    task: str
    data: Path
    cells: list[Cell]
    paper: str = ""
    seeds: int = 3
    epochs: int = 30
    recipe: dict = field(default_factory=dict)
    waveform: dict = field(default_factory=dict)
    image: dict = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "f1"])
    per_class: str | None = None  # e.g. "recall": per-class sensitivity in the tables
    baseline: str | None = None
    quick: dict = field(default_factory=dict)
    caveats: str = ""
    search: dict = field(default_factory=dict)  # hyper-parameter space for `resattn tune`
    source: Path | None = None

    def quick_version(self) -> Experiment:
        """The config with its ``quick`` overrides applied (epochs, seeds, max_per_class)."""
        q = self.quick
        image = {**self.image, **({"max_per_class": q["max_per_class"]}
                                  if "max_per_class" in q else {})}
        return Experiment(**{**self.__dict__, "epochs": q.get("epochs", 1),
                             "seeds": q.get("seeds", 1), "image": image})

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise ConfigError(f"{self.source}: no cell named {name!r}; cells: "
                          f"{[c.name for c in self.cells]}")


def _resolve_data(value: str, source: Path) -> Path:
    """Absolute, or relative to the repository root (the config folder's parent), or to the
    config file itself; the first that exists, else the repository-relative path."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    candidates = [source.parent.parent / p, source.parent / p, Path.cwd() / p]
    return next((c.resolve() for c in candidates if c.exists()), candidates[0].resolve())


def _resolve_init(cell: dict, source: Path, where: str) -> str | None:
    """A cell's ``init``: a shipped model name as is, a checkpoint path relative to the config
    file made absolute; its recorded architecture must be the cell's model."""
    from ..pretrained import checkpoint_stem, list_pretrained

    value = cell.get("init")
    if value is None:
        return None
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


def read_yaml(path: str | Path, what: str = "config file"):
    """The parsed YAML of ``path``; a missing file or bad YAML is a ConfigError naming it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such {what}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc


def load_experiment(path: str | Path) -> Experiment:
    """Parse and check a config; errors name the file and the field."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - ROOT_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)}; expected "
                          f"{sorted(ROOT_KEYS)}")
    for key in ("name", "task", "data", "cells"):
        if key not in raw:
            raise ConfigError(f"{path}: missing field {key!r}")
    if raw["task"] not in TASKS:
        raise ConfigError(f"{path}: task must be one of {list(TASKS)}, got {raw['task']!r}")
    cells = []
    for i, c in enumerate(raw["cells"] or []):
        if not isinstance(c, dict) or "name" not in c or "model" not in c:
            raise ConfigError(f"{path}: cells[{i}] needs a name and a model")
        extra = set(c) - {"name", "model", "options", "published", "init"}
        if extra:
            raise ConfigError(f"{path}: cells[{i}] has unknown field(s) {sorted(extra)}")
        cells.append(Cell(str(c["name"]), c["model"], dict(c.get("options") or {}),
                          dict(c.get("published") or {}),
                          _resolve_init(c, path, f"cells[{i}].init")))
    if not cells:
        raise ConfigError(f"{path}: cells is empty")
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: cell names must be unique, got {names}")
    exp = Experiment(**{**{k: v for k, v in raw.items() if k not in ("cells", "data")},
                        "cells": cells, "data": _resolve_data(str(raw["data"]), path),
                        "source": path})
    if exp.baseline is not None:
        exp.cell(exp.baseline)
    if exp.seeds < 1 or exp.epochs < 1:
        raise ConfigError(f"{path}: seeds and epochs must be >= 1")
    return exp
