"""Hooks into ``fit``, and the trainer's own behaviours written as such hooks.

``fit`` calls every hook of its built-in callbacks first, then of the user's, in order:

    on_fit_start(loop)               once, after a resume has restored ``loop.state``
    on_epoch_start(loop, epoch)      before epoch ``epoch`` (1-based) trains
    on_epoch_end(loop, epoch, row)   after it was validated and the monitored quantity compared
    on_fit_end(loop, result)         once, when the loop ends without an exception

``row`` is the epoch's ``metrics.jsonl`` row (``epoch``, ``train_loss``, ``val_loss``,
``val_accuracy``, ``val_f1``, ``lr``, ``next_lr``, ``dwell``, ``train_seconds``,
``train_samples_per_s``) plus ``improved`` (the epoch is the new best by ``cfg.monitor``).

The built-ins run in the order ``EarlyStopping``, ``LearningRateRule``, ``Logging``,
``Checkpointing``; that order is the resume contract. The learning-rate rule adds ``next_lr``
and ``dwell`` to the row, ``Logging`` writes the row, ``Checkpointing`` then writes ``model.*``
and ``last.*``: a crash between the two leaves a row beyond the checkpoint, which resume drops,
never a checkpoint without its row. A user's ``on_epoch_end`` therefore sees an epoch that is
already saved, and an exception it raises (``optuna.TrialPruned``) leaves a run that resumes
exactly. It should not draw from torch's global RNG: ``last.*`` saved that RNG before it ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from safetensors.torch import load_file

from .checkpoint import MODEL_STEM, load_state, save_model, save_training_state
from .recipes import cosine_lr, scale_lr
from .tracking import RunLog

if TYPE_CHECKING:
    from .trainer import FitLoop, FitResult


class Callback:
    """A hook into ``fit``; subclasses override the hooks they need (each does nothing here).

    ``loop`` (a ``FitLoop``) exposes ``model``, ``optimizer``, ``cfg``, ``run_dir``, ``state``
    (saved in ``last.json``), ``history``, ``precision``, ``val_metrics`` and ``stop``.
    """

    def on_fit_start(self, loop: FitLoop) -> None:
        """Before the first epoch of this call (``loop.state["epoch"]`` epochs are done)."""

    def on_epoch_start(self, loop: FitLoop, epoch: int) -> None:
        """Before epoch ``epoch`` trains."""

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        """After epoch ``epoch``; set ``loop.stop = True`` to end training here."""

    def on_fit_end(self, loop: FitLoop, result: FitResult) -> None:
        """After the last epoch of this call."""


class EarlyStopping(Callback):
    """Stop after ``cfg.patience`` epochs in a row without improvement. The decision is saved
    (``state["stopped_early"]``), so resuming a stopped run trains nothing more."""

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        loop.state["stopped_early"] = loop.state["bad_epochs"] >= loop.cfg.patience
        loop.stop = loop.stop or loop.state["stopped_early"]


class LearningRateRule(Callback):
    """``cfg.schedule``: ``cosine`` sets each group's lr per epoch (``cfg.lr`` x the group's
    ``lr_scale``); ``plateau`` multiplies it by ``plateau_factor`` after ``plateau_patience``
    epochs without improvement. ``cfg.dwell`` (ARN-CNN): after every epoch without improvement,
    back to the best epoch's weights and lr x ``plateau_factor``. Nothing changes on the epoch
    that stops the run. The counter is ``state["plateau_bad"]``, so resume continues it; the
    rule lives in the optimizer's groups, not in a scheduler object."""

    def on_epoch_start(self, loop: FitLoop, epoch: int) -> None:
        if loop.cfg.schedule == "cosine":
            for group in loop.optimizer.param_groups:
                group["lr"] = cosine_lr(loop.cfg.lr * group.get("lr_scale", 1.0), epoch,
                                        loop.cfg.epochs)

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        dwelt = self._apply(loop, row["improved"])
        row.update(next_lr=loop.optimizer.param_groups[0]["lr"], dwell=dwelt)

    @staticmethod
    def _apply(loop: FitLoop, improved: bool) -> bool:
        """Returns True if the weights dwelt (went back to the best epoch's)."""
        cfg, state = loop.cfg, loop.state
        state["plateau_bad"] = 0 if improved else state.get("plateau_bad", 0) + 1
        if improved or state["stopped_early"]:
            return False
        if cfg.dwell:
            best = loop.run_dir / f"{MODEL_STEM}.safetensors"
            if best.exists():
                load_state(loop.model, load_file(best), best)
            scale_lr(loop.optimizer, cfg.plateau_factor)
            state["plateau_bad"] = 0
            return True
        if cfg.schedule == "plateau" and state["plateau_bad"] >= cfg.plateau_patience:
            scale_lr(loop.optimizer, cfg.plateau_factor)
            state["plateau_bad"] = 0
        return False


class Logging(Callback):
    """``metrics.jsonl`` (and TensorBoard when ``cfg.tensorboard`` wants it) through ``RunLog``,
    ``loop.history``, and one line per epoch on ``console`` (None: silent). The log is cut back
    to the resumed epoch at the start; ``close`` ends the TensorBoard writer."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        self._log: RunLog | None = None

    def on_fit_start(self, loop: FitLoop) -> None:
        self._log = RunLog(loop.run_dir, loop.state["epoch"], loop.cfg.tensorboard)

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        entry = {k: v for k, v in row.items() if k != "improved"}
        self._log.append(entry)
        loop.history.append(entry)
        if self.console is not None:
            self.console.print(
                f"epoch {epoch:3d}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}  "
                f"acc {row['val_accuracy']:.3f}  f1 {row['val_f1']:.3f}"
                + ("  *" if row["improved"] else "")
            )

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Checkpointing(Callback):
    """``model.*`` (weights + ``meta``, the epoch, its validation loss and metrics) when the
    epoch improved; ``last.*`` (model, optimizer, RNG, ``loop.state``) after every epoch."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        if row["improved"]:
            save_model(loop.run_dir / MODEL_STEM, loop.model,
                       {**self.meta, "epoch": epoch, "val_loss": row["val_loss"],
                        "val_metrics": loop.val_metrics})
        save_training_state(loop.run_dir, loop.model, loop.optimizer, loop.state)
