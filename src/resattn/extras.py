"""Optional extras: which modules each provides, and one clear error when one is missing."""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

# extra -> modules it provides (``pip install 'resattn[extra]'``)
EXTRAS = {"optimize": ("onnx", "onnxruntime", "optuna", "torch_pruning"),
          "seismo": ("obspy",), "postgres": ("psycopg2",), "tensorboard": ("tensorboard",)}


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules`` of it) that are not installed."""
    return [m for m in (modules or EXTRAS[extra]) if importlib.util.find_spec(m) is None]


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """A ConfigError naming the command and the install line if ``what`` lacks its extra."""
    absent = missing(extra, modules)
    if absent:
        raise ConfigError(f"{what} needs the optional package(s) {absent}: pip install "
                          f"'resattn[{extra}]'")
