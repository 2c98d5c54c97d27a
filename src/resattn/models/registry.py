"""Model registry: each named model is a short function that fills options and calls a builder.

Every registered function (``create_model(name, **options)``, ``model_entry(name).fn`` or the
module-level function of that name, e.g. ``resnet18_1d(num_classes=3)``) records the model's
*resolved* config, ``model.config = resolve_config({"model": name, **options})``: every option the
registry knows for it, so a checkpoint (that config plus safetensors weights) restores the same
model even after a default changes. A model built from its builder class directly (``ResNet(...)``)
gets its config from ``config_of``, which finds the registered name for that class.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

from ..errors import ConfigError
from ..io import jsonable


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it, which ``dims`` it supports, its documented defaults
    and the option names it accepts. ``builder`` is what ``fn`` calls and ``registered`` the
    options the registration fixes (a variant is a few of them)."""

    name: str
    fn: Callable[..., nn.Module]
    dims: tuple[int, ...]
    paper: str = ""
    description: str = ""
    defaults: dict = field(default_factory=dict)
    options: frozenset[str] = frozenset()
    builder: Callable[..., nn.Module] | None = None
    registered: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def _keyword_defaults(fn: Callable) -> dict:
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def builder_defaults(builder: Callable) -> dict:
    """Options a builder accepts, with defaults: its keyword defaults plus ``extra_options``
    (what a builder forwarding ``**kwargs`` to another, e.g. a ResNet trunk, passes on)."""
    return {**getattr(builder, "extra_options", {}), **_keyword_defaults(builder)}


def _recording(name: str, build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``build`` that also sets ``model.config`` to the resolved config of ``name``."""

    @functools.wraps(build)
    def fn(**options) -> nn.Module:
        if "model" in options:
            raise ConfigError(f"model {name!r}: 'model' is the config's name field, not an option")
        config = resolve_config({"model": name, **options})
        model = build(**options)
        model.config = config
        return model

    return fn


def register_config(
    name: str,
    builder: Callable[..., nn.Module],
    description: str,
    supports: tuple[int, ...] = (1, 2),
    paper: str = "",
    **defaults,
) -> Callable[..., nn.Module]:
    """Register ``name`` as ``builder(**defaults, **options)``: a variant is a few options.
    Returns the registered function (keyword options only; it records ``model.config``).

    A builder that forwards ``**kwargs`` to another (e.g. a ResNet trunk) names them, with their
    defaults, in a class attribute ``extra_options`` so they are listed and validated too."""
    known = builder_defaults(builder)

    def build(**options) -> nn.Module:
        return builder(**{**defaults, **options})

    build.__name__ = build.__qualname__ = name
    build.__doc__ = description
    fn = _recording(name, build)
    _REGISTRY[name] = ModelEntry(
        name, fn, tuple(supports), paper, description, {**known, **defaults}, frozenset(known),
        builder, dict(defaults),
    )
    return fn


def register_model(
    supports: tuple[int, ...] = (1, 2), paper: str = "", description: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn`` under its own name; its keyword defaults are its options and
    its docstring's first line is the description unless one is given. The decorated function
    records ``model.config`` however it is called."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        defaults = _keyword_defaults(fn)
        doc = (fn.__doc__ or "").strip().splitlines()
        recording = _recording(fn.__name__, fn)
        _REGISTRY[fn.__name__] = ModelEntry(
            fn.__name__, recording, tuple(supports), paper,
            description or (doc[0] if doc else ""), defaults, frozenset(defaults), fn,
        )
        return recording

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


# Ranges of the options several models share (the builders check their own choices).
AT_LEAST_ONE = frozenset({
    "in_chans", "in_chans_a", "in_chans_b", "base_width", "groups", "growth_rate", "kernel_size",
    "stem_kernel", "stem_width", "fc_dim", "head_hidden", "fpn_channels", "fusion_channels",
    "hff_reduction", "d_model", "num_heads", "num_layers", "patch", "seq_len", "window",
    "input_size", "out_chans", "depth", "width_per_group", "depth_b"})
PROBABILITIES = frozenset({"drop_rate", "drop_path_rate", "block_dropout", "dropout"})
POSITIVE = frozenset({"width", "mlp_ratio", "compression"})


def _check_value(model: str, key: str, value: object, default: object) -> None:
    """A ConfigError unless ``value`` has the kind of ``default`` and the range of ``key``."""
    where = f"model {model!r} option {key}"
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or isinstance(value, float)
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool) and not is_int:
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(default, float) and not (is_number and math.isfinite(value)):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if value is None:
        return
    if key == "num_classes" and not (is_int and value >= 2):
        raise ConfigError(f"{where}: a classifier needs an integer >= 2, got {value!r}")
    if key in AT_LEAST_ONE and not (is_int and value >= 1):
        raise ConfigError(f"{where}: expected an integer >= 1, got {value!r}")
    if key in PROBABILITIES and not (is_number and 0 <= value < 1):
        raise ConfigError(f"{where}: expected a probability in [0, 1), got {value!r}")
    if key in POSITIVE and not (is_number and math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: expected a finite number > 0, got {value!r}")


def resolve_config(config: Mapping) -> dict:
    """``{"model": name, **options}`` -> the same config with every option the registry knows
    for ``name`` (registered defaults, builder defaults, then ``options``), as JSON reads it
    back (tuples become lists). A partial config and its resolved form build the same model,
    so ``resolve_config`` of both compare equal. Unknown options or dims, and values of the wrong
kind (that of the default) or range (``AT_LEAST_ONE``, ``PROBABILITIES``, ...), raise a
ConfigError."""
    if "model" not in config:
        raise ConfigError(f"model config {dict(config)} has no field 'model'")
    entry = model_entry(config["model"])
    options = {k: v for k, v in config.items() if k != "model"}
    unknown = set(options) - entry.options
    if unknown:
        raise ConfigError(f"model {entry.name!r} has no option(s) {sorted(unknown)}; "
                          f"options: {sorted(entry.options)}")
    dims = options.get("dims", entry.defaults.get("dims"))
    if dims is not None and dims not in entry.dims:
        raise ConfigError(f"model {entry.name!r} supports dims {list(entry.dims)}, got {dims}")
    for key, value in options.items():
        _check_value(entry.name, key, value, entry.defaults.get(key))
    return jsonable({"model": entry.name, **entry.defaults, **options})


def create_model(name: str | None = None, /, **options) -> nn.Module:
    """Build a registered model, ``create_model(name, **options)`` or from a config,
    ``create_model(**config)`` (the name in ``config["model"]``); ``model.config`` is its
    resolved config (``resolve_config``). Unknown options raise a ConfigError naming the valid
    ones."""
    if name is None:
        if "model" not in options:
            raise ConfigError("create_model needs a model name (or a config with 'model')")
        name = options.pop("model")
    return model_entry(name).fn(**options)


def _builds(entry: ModelEntry, cls: type) -> bool:
    return entry.builder is cls or cls in getattr(entry.builder, "builds", ())


def config_of(model: nn.Module) -> dict:
    """The resolved config of ``model``: its ``config`` if a registered function built it, else
    one derived from the options its builder class recorded (``init_options``, see
    ``models.base.RecordsOptions``) under the registered name that fits them best. A model that
    is neither raises a ConfigError naming what is missing."""
    config = getattr(model, "config", None)
    if config is not None:
        return resolve_config(config)
    cls = type(model)
    options = getattr(model, "init_options", None)
    if options is None:
        raise ConfigError(f"{cls.__name__} has no 'config' (set by create_model or a registered "
                          "function) and records no builder options; build it with "
                          "create_model(name, ...) to save it")
    candidates = [e for e in _REGISTRY.values() if _builds(e, cls)
                  and options.get("dims", e.defaults.get("dims")) in (*e.dims, None)]
    if not candidates:
        raise ConfigError(f"{cls.__name__} with dims {options.get('dims')} is not the builder of "
                          "any registered model; register it (register_config) or build a "
                          "registered model with create_model(name, ...)")
    # Every option is given, so any candidate rebuilds the model; prefer the name whose own
    # registered options it keeps (ResNet(depth=50, act="swish") -> swish_resnet50).
    own = jsonable(options)

    def rank(e: ModelEntry) -> tuple[bool, int, str]:
        kept = [own.get(k) == v for k, v in jsonable(e.registered).items()]
        return not all(kept), -sum(kept), e.name

    best = min(candidates, key=rank)
    return resolve_config({"model": best.name, **builder_defaults(best.builder), **options})
