"""Experiment tracking: one JSON row per epoch in ``metrics.jsonl`` (always), and TensorBoard
event files under ``tensorboard/`` when the ``tensorboard`` package is installed.

``TrainConfig.tensorboard`` chooses: ``auto`` (write events if the package is importable),
``on`` (required: a clear error when it is missing) or ``off``. On resume the log is cut back to
the checkpoint's epoch, and TensorBoard purges the events after it, so neither shows an epoch
twice.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_text

TENSORBOARD_MODES = ("auto", "on", "off")
LOG_NAME = "metrics.jsonl"
EVENTS_DIR = "tensorboard"


def read_log(path: Path, upto_epoch: int | None = None) -> list[dict]:
    """Rows of a ``metrics.jsonl`` log, optionally only epochs up to ``upto_epoch``."""
    if not Path(path).exists():
        return []
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if upto_epoch is None or r["epoch"] <= upto_epoch]


def tensorboard_available() -> bool:
    return find_spec("tensorboard") is not None


def wants_tensorboard(mode: str) -> bool:
    """Whether to write event files for ``mode``; ``on`` without the package is an error."""
    if mode not in TENSORBOARD_MODES:
        raise ConfigError(f"tensorboard must be one of {list(TENSORBOARD_MODES)}, got {mode!r}")
    if mode == "on" and not tensorboard_available():
        raise ConfigError("tensorboard is 'on' but the tensorboard package is not installed: "
                          "pip install tensorboard (or set tensorboard to auto/off)")
    return mode == "on" or (mode == "auto" and tensorboard_available())


def scalar_tag(key: str) -> str:
    """``train_loss`` -> ``train/loss``, ``val_f1`` -> ``val/f1``; other keys unchanged."""
    for prefix in ("train_", "val_"):
        if key.startswith(prefix):
            return prefix[:-1] + "/" + key[len(prefix):]
    return key


class RunLog:
    """The per-epoch log of one run: JSONL rows, mirrored to TensorBoard when wanted. Opening
    it cuts the file back to ``upto_epoch`` (the epoch a resume continues after)."""

    def __init__(self, run_dir: Path, upto_epoch: int, tensorboard: str = "auto") -> None:
        self.path = Path(run_dir) / LOG_NAME
        rows = read_log(self.path, upto_epoch)
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self._writer = None
        if wants_tensorboard(tensorboard):
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / EVENTS_DIR),
                                         purge_step=upto_epoch + 1)

    def append(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and not isinstance(
                        value, bool):
                    self._writer.add_scalar(scalar_tag(key), value, row["epoch"])
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
