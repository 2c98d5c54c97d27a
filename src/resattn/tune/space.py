"""The search space: which ``TrainConfig`` fields and model options a study samples, checked
against the config and the model before any trial runs (format: the package doc)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.trainer import TrainConfig
from ..errors import ConfigError
from ..models import model_entry
from ..reproduce.config import Experiment, load_experiment, read_yaml

if TYPE_CHECKING:
    import optuna

NOT_SEARCHABLE = {
    "epochs": "epochs is the pruning budget; set it in the experiment",
    "seed": "seed is the same for every trial so that trials differ only by their "
            "hyper-parameters; pass seed= to run_study",
}
TASK_OPTIONS = ("in_chans", "num_classes")  # set by the task from the data
RANGE_KEYS = {"low", "high", "log", "step", "type"}
_TRAIN_FIELDS = {f.name: getattr(f.type, "__name__", str(f.type)) for f in fields(TrainConfig)}


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
    """The checked parameters of one study, in the order of the YAML."""

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
    """Check a search-space mapping (see the package doc); with ``model`` (a registered name)
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
