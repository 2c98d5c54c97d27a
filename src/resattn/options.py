"""Typed option groups: dataclasses filled from a mapping (a YAML section, parsed CLI values).

``from_mapping(Options, mapping, where)`` checks every key and value against the dataclass's
fields and their type hints; a typo or a wrong type is one ``ConfigError`` line naming ``where``
(e.g. ``configs/x.yaml: waveform.windw``) and what was expected. ``help`` text lives in each
field's ``metadata`` so that documentation and command-line help are generated from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def option(default: Any = None, help: str = "", **kw) -> Any:
    """A dataclass field with its help text (``metadata["help"]``)."""
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` checked against ``annotation`` (int, float, bool, str, tuple/list of those,
    dict, Optional/unions, Literal); ints are accepted for floats, lists for tuples."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_name(annotation)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)}")
            pairs = enumerate(zip(value, args, strict=True))
            items = [coerce(v, a, f"{where}[{i}]") for i, (v, a) in pairs]
        else:
            inner = args[0] if args else Any
            items = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {_name(annotation)}, got {value!r}")
    return value


def unknown_keys(keys, known, where: str) -> None:
    """ConfigError for the first key not in ``known``, with the closest known name."""
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}.{key}: unknown key{hint}; expected one of "
                              f"{sorted(known)}")


def from_mapping(cls: type[T], mapping: Mapping | None, where: str, **fixed) -> T:
    """An instance of the dataclass ``cls`` from ``mapping`` (checked), plus ``fixed``
    values set by the caller (not checked against the mapping)."""
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown_keys(mapping, names, where)
    values = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in mapping.items()}
    return cls(**{**values, **fixed})


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of an option field (``metadata["flag"]`` or its name)."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


def parse_text(text: str, annotation: Any, where: str) -> Any:
    """A command-line string as the value ``annotation`` asks for: numbers, comma-separated
    lists for tuples, ``none`` for None, a JSON file's content for a mapping."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.lower() == "none" and type(None) in args and str not in args:
            return None  # (a string option keeps "none": it may name a policy)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_text(text, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot parse {text!r}")
    if origin in (tuple, list):
        items = [s.strip() for s in text.split(",") if s.strip()]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"{where} expects {len(args)} comma-separated values, got "
                                  f"{text!r}")
            return tuple(parse_text(v, a, where) for v, a in zip(items, args, strict=True))
        inner = args[0] if args else str
        return (tuple if origin is tuple else list)(parse_text(v, inner, where) for v in items)
    if origin is typing.Literal:
        return coerce(text, annotation, where)
    if origin is dict or annotation is dict:
        from .errors import ResattnError
        from .io import read_json

        try:
            return coerce(read_json(text), annotation, f"{where} {text}")
        except ResattnError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    for kind, word in ((int, "an integer"), (float, "a number")):
        if annotation is kind:
            try:
                return kind(text)
            except ValueError:
                raise ConfigError(f"{where} expects {word}, got {text!r}") from None
    return text


def parse_key_values(items: list[str] | None, what: str = "--option") -> dict:
    """``key=value`` strings -> dict, values parsed as JSON where they parse (numbers, lists)."""
    import json

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} expects key=value, got {item!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options
