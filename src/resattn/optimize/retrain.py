"""Train a model on the task, preprocessing and split another model was trained with: the
common step of distillation (student), pruning (fine-tuning) and transfer learning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import nn

from ..engine.trainer import LossFn, TrainConfig
from ..errors import ConfigError
from ..pretrained import load_card
from ..tasks import TrainSpec, task_of


def train_like(meta: dict, data: str | Path, out: str | Path, *, model: str | None = None,
               init_from: str | Path | None = None, model_options: dict | None = None,
               epochs: int = 5, config: TrainConfig | None = None,
               loss_fn: LossFn | None = None, show_progress: bool = False,
               max_per_class: int | None = None, same_split: bool = True,
               prepare: Callable[[nn.Module], object] | None = None) -> dict:
    """Train ``model`` (a registered name) or continue from ``init_from`` with the reference
    model's task settings from its checkpoint ``meta`` (window and band-pass, or image size,
    channels and split seed; ``same_split=False`` for new data: a fresh 80/10/10 split);
    ``prepare(model)`` runs before training (freezing, per-stage learning rates). Returns the
    task's summary with ``test`` metrics."""
    if (model is None) == (init_from is None):
        raise ConfigError("give exactly one of model (a registered name) or init_from")
    cfg = config or TrainConfig.from_record(meta.get("train_config"))
    task = task_of(meta, "the reference model")
    options = task.options_like(meta, same_split,
                                **({"max_per_class": max_per_class} if max_per_class else {}))
    if model is None:  # the weights fix the architecture
        model = (load_card(init_from).get("config") or {}).get("model") or task.default_model()
    return task.train(TrainSpec(
        model=model, data=data, out=Path(out),
        recipe=replace(cfg, epochs=epochs), options=options, seed=cfg.seed,
        model_options=dict(model_options or {}), init_from=str(init_from) if init_from else None,
        resume="auto", show_progress=show_progress, loss_fn=loss_fn, prepare=prepare))
