"""Checks shared by the contract dataclasses: each error names the field and the expectation."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not float(value).is_integer() or value <= 0:
        raise ConfigError(f"contract field {name!r} must be a positive whole number, got "
                          f"{value!r}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"contract field {name!r} must be a positive finite number, got "
                          f"{value!r}")
    return float(value)


def one_of(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"contract field {name!r} must be one of {list(allowed)}, got "
                          f"{value!r}")
    return value


def class_names(value: Any) -> tuple[str, ...]:
    """At least two distinct non-empty names (a list or tuple), as a tuple."""
    names = (value,) if isinstance(value, str) else \
        tuple(value) if isinstance(value, list | tuple) else (value,)
    if len(names) < 2 or not all(isinstance(n, str) and n for n in names) \
            or len(set(names)) != len(names):
        raise ConfigError(f"contract field 'class_names' must hold at least 2 distinct "
                          f"non-empty names, got {list(names)}")
    return names


def from_json(cls: type, kind: str, d: dict, derived: tuple[str, ...] = ()) -> Any:
    """``cls(**fields)`` from a ``to_json`` dict whose ``kind`` is ``kind``; ``derived`` keys
    (written for readers, recomputed from the fields) are checked after construction."""
    if not isinstance(d, dict) or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise ConfigError(f"contract 'kind' must be {kind!r}, got {got!r}")
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    unknown = sorted(set(d) - names - set(derived) - {"kind"})
    if unknown:
        raise ConfigError(f"{kind} contract has unknown field(s) {unknown}; expected "
                          f"{sorted(names)}")
    missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{kind} contract has no field(s) {missing}; expected "
                          f"{sorted(names)}")
    contract = cls(**{k: v for k, v in d.items() if k in names})
    for key in derived:
        if key in d and d[key] != getattr(contract, key):
            raise ConfigError(f"{kind} contract field {key!r} is {d[key]!r}, but the other "
                              f"fields imply {getattr(contract, key)!r}")
    return contract


def names_text(names: Sequence[str], shown: int = 8) -> str:
    """``"7 classes: a, b, ..."``: at most ``shown`` names, for one-line descriptions."""
    more = ", ..." if len(names) > shown else ""
    return f"{len(names)} classes: {', '.join(names[:shown])}{more}"
