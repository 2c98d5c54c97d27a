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


def list_pretrained() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name[: -len(".json")] for p in WEIGHTS.iterdir()
                  if p.name.endswith(".json") and not p.name.startswith("."))


def pretrained_path(name: str) -> Path:
    """Stem of a shipped model's files (no suffix)."""
    return Path(str(WEIGHTS / name))


def pretrained_card(name: str) -> dict:
    return read_json(pretrained_path(name).with_suffix(".json"))


def checkpoint_stem(source: str | Path, what: str = "--model") -> Path:
    """The checkpoint stem of a shipped name, run directory or checkpoint path; ``what``
    names the source in the error (a CLI option or a config field)."""
    if str(source) in list_pretrained():
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
