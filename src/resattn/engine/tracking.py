"""Experiment tracking: one JSON row per epoch in ``metrics.jsonl`` (always), and TensorBoard
event files under ``tensorboard/`` when the ``tensorboard`` package is installed.

``TrainConfig.tensorboard`` chooses: ``auto`` (write events if the package is importable),
``on`` (required: a clear error when it is missing) or ``off``. On resume the log is cut back to
the checkpoint's epoch, and TensorBoard purges the events after it, so neither shows an epoch
twice.
"""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from pathlib import Path

from ..data.files import cause
from ..errors import ConfigError, DataError
from ..io import atomic_write_text

TENSORBOARD_MODES = ("auto", "on", "off")
LOG_NAME = "metrics.jsonl"
EVENTS_DIR = "tensorboard"


class LogWarning(UserWarning):
    """The last line of a ``metrics.jsonl`` log was cut short (a run killed while writing it)
    and is skipped."""


def read_log(path: Path, upto_epoch: int | None = None) -> list[dict]:
    """Rows of a ``metrics.jsonl`` log, optionally only epochs up to ``upto_epoch``.

    Every row is a JSON object whose ``epoch`` (a whole number >= 1) is larger than the row
    before's; anything else is a ``DataError`` naming the file and line. The one exception is a
    last line without its newline that is not such a row: the append a kill cut short, skipped
    with a ``LogWarning`` (a resume drops that epoch anyway: it was not checkpointed)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the run log ({cause(exc)})") from None
    lines = data.splitlines()  # bytes: a kill may cut a character short, on the last line
    rows: list[dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = _log_row(line, rows[-1]["epoch"] if rows else 0)
        except ValueError as exc:
            if number == len(lines) and not data.endswith(b"\n"):
                warnings.warn(f"{path}: line {number}: skipped, cut short ({exc})",
                              LogWarning, stacklevel=2)
                break
            raise DataError(f"{path}: line {number}: {exc}") from None
        rows.append(row)
    return [r for r in rows if upto_epoch is None or r["epoch"] <= upto_epoch]


def _log_row(line: bytes, previous: int) -> dict:
    """One line of the log as its row; a ValueError saying what is wrong otherwise."""
    try:
        row = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # (not UTF-8 is a ValueError; nested too deeply)
        raise ValueError(f"expected one JSON object per line (UTF-8), got {line[:60]!r}") \
            from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    epoch = row.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= previous:
        raise ValueError(f"field 'epoch': expected a whole number > {previous} (the epoch "
                         f"before), got {epoch!r}")
    return row


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
