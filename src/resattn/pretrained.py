"""Shipped pretrained models: ``<name>.safetensors`` + ``<name>.json`` inside the package.

``load_any(source)`` accepts a shipped name (``stead-detector``), a run directory or a
checkpoint file, so every command takes ``--model`` in any of these forms.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from torch import nn

from .engine.checkpoint import load_model, read_json
from .errors import CheckpointError

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


def load_any(source: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from a shipped name, run directory or checkpoint path."""
    if str(source) in list_pretrained():
        return load_model(pretrained_path(str(source)))
    if not Path(source).exists() and not Path(f"{source}.json").exists():
        raise CheckpointError(
            f"--model {source}: neither a shipped model ({', '.join(list_pretrained()) or 'none'})"
            " nor an existing run directory or checkpoint file"
        )
    return load_model(source)
