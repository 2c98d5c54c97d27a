"""Shipped pretrained models: ``<name>.safetensors`` + ``<name>.json`` inside the package.

``load_any(source)`` accepts a shipped name (``stead-detector``), a run directory or a
checkpoint file, so every command takes ``--model`` in any of these forms.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from torch import nn

from .engine.checkpoint import load_model, read_card, resolve_stem
from .errors import CheckpointError
from .io import read_json

WEIGHTS = resources.files("resattn") / "weights"


VERSION_MARK = "@"  # "stead-detector@1": major version 1 (1.x), kept loadable


def _major(card: dict) -> str:
    return str(card.get("version", "")).split(".")[0]


def list_pretrained() -> list[str]:
    """Names of the shipped models: each one's latest version by its name, earlier versions
    as ``name@major`` (``stead-detector@1``: version 1.x; a file name without dots, so that
    its stem keeps its suffixes apart)."""
    return sorted(p.name[: -len(".json")] for p in WEIGHTS.iterdir()
                  if p.name.endswith(".json") and not p.name.startswith("."))


def pretrained_path(name: str) -> Path:
    """Stem of a shipped model's files (no suffix); ``name@major`` of the latest version is
    the latest's stem."""
    base, _, version = name.partition(VERSION_MARK)
    if version and not Path(str(WEIGHTS / f"{name}.json")).is_file() \
            and _major(read_json(Path(str(WEIGHTS / f"{base}.json")))) == version:
        return Path(str(WEIGHTS / base))
    return Path(str(WEIGHTS / name))


def _shipped(source: str) -> bool:
    """Whether ``source`` names a shipped model (or a version of one)."""
    if source in list_pretrained():
        return True
    base, _, version = source.partition(VERSION_MARK)
    return bool(version) and base in list_pretrained() and \
        _major(pretrained_card(base)) == version


def pretrained_card(name: str) -> dict:
    return read_json(pretrained_path(name).with_suffix(".json"))


def checkpoint_stem(source: str | Path, what: str = "--model") -> Path:
    """The checkpoint stem of a shipped name, run directory or checkpoint path; ``what``
    names the source in the error (a CLI option or a config field)."""
    if _shipped(str(source)):
        return pretrained_path(str(source))
    if not Path(source).exists() and not Path(f"{source}.json").exists():
        raise CheckpointError(
            f"{what} {source}: neither a shipped model ({', '.join(list_pretrained()) or 'none'})"
            " nor an existing run directory or checkpoint file"
        )
    try:
        return resolve_stem(source)
    except CheckpointError as exc:
        raise CheckpointError(f"{what} {exc}") from None


def load_any(source: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from a shipped name, run directory or checkpoint path."""
    return load_model(checkpoint_stem(source))


def load_card(source: str | Path) -> dict:
    """The metadata (config, contract, task) of a shipped name, run directory or checkpoint,
    without reading its weights."""
    return read_card(checkpoint_stem(source).with_suffix(".json"))
