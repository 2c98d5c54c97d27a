"""Model registry: each named model is a short function that fills options and calls a builder.

``create_model(name, **options)`` builds it and records ``model.config = {"model": name,
**options}``, so a checkpoint (that config plus safetensors weights) restores anywhere.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it, which ``dims`` it supports, its documented defaults
    and the option names it accepts."""

    name: str
    fn: Callable[..., nn.Module]
    dims: tuple[int, ...]
    paper: str = ""
    description: str = ""
    defaults: dict = field(default_factory=dict)
    options: frozenset[str] = frozenset()


_REGISTRY: dict[str, ModelEntry] = {}


def _keyword_defaults(fn: Callable) -> dict:
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def register_config(
    name: str,
    builder: Callable[..., nn.Module],
    description: str,
    supports: tuple[int, ...] = (1, 2),
    paper: str = "",
    **defaults,
) -> None:
    """Register ``name`` as ``builder(**defaults, **options)``: a variant is a few options.

    A builder that forwards ``**kwargs`` to another (e.g. a ResNet trunk) names them, with their
    defaults, in a class attribute ``extra_options`` so they are listed and validated too."""
    builder_defaults = {**getattr(builder, "extra_options", {}), **_keyword_defaults(builder)}

    def build(**options) -> nn.Module:
        return builder(**{**defaults, **options})

    _REGISTRY[name] = ModelEntry(
        name, build, tuple(supports), paper, description,
        {**builder_defaults, **defaults}, frozenset(builder_defaults),
    )


def register_model(
    supports: tuple[int, ...] = (1, 2), paper: str = "", description: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn`` under its own name; its keyword defaults are its options and
    its docstring's first line is the description unless one is given."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        defaults = _keyword_defaults(fn)
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[fn.__name__] = ModelEntry(
            fn.__name__, fn, tuple(supports), paper, description or (doc[0] if doc else ""),
            defaults, frozenset(defaults),
        )
        return fn

    return wrap


def model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; an unknown name lists the closest registered names."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}{hint} (`resattn models list` shows all {len(_REGISTRY)})"
        )
    return _REGISTRY[name]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by a shell-style pattern."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name: str, **options) -> nn.Module:
    """Build a registered model. Unknown options raise a ConfigError naming the valid ones."""
    entry = model_entry(name)
    unknown = set(options) - entry.options
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option(s) {sorted(unknown)}; options: {sorted(entry.options)}"
        )
    dims = options.get("dims", entry.defaults.get("dims"))
    if dims is not None and dims not in entry.dims:
        raise ConfigError(f"model {name!r} supports dims {list(entry.dims)}, got {dims}")
    model = entry.fn(**options)
    model.config = {"model": name, **options}
    return model
