"""Train a model on the task, preprocessing and split another model was trained with: the
common step of distillation (student), pruning (fine-tuning) and transfer learning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from ..engine.trainer import LossFn, TrainConfig
from ..errors import ConfigError


def train_like(meta: dict, data: str | Path, out: str | Path, *, model: str | None = None,
               init_from: str | Path | None = None, options: dict | None = None,
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
    seed = cfg.seed
    resume = (Path(out) / "last.json").exists()
    task = meta.get("task")
    if task == "waveform-classification":
        from ..tasks.waveforms import band_of, train_waveform_classifier

        prep, d = meta.get("preprocessing") or {}, meta.get("data") or {}
        return train_waveform_classifier(
            model or "resnetkan1d", data, out, epochs=epochs, window=prep.get("window_samples"),
            seed=seed, resume=resume, split_by=tuple(d.get("split_by") or ("group",)),
            model_options=options, init_from=str(init_from) if init_from else None,
            config=cfg, show_progress=show_progress, band=band_of(prep), loss_fn=loss_fn,
            prepare=prepare)
    if task == "image-classification":
        from ..tasks.images import train_image_classifier

        prep, split = meta.get("preprocessing") or {}, (meta.get("data") or {}).get("split", {})
        if not same_split:
            split = {"seed": seed, "fractions": (0.8, 0.1, 0.1), "by": "class"}
        return train_image_classifier(
            model or "arn_cnn", data, out, epochs=epochs, seed=seed,
            split_seed=split.get("seed"), fractions=tuple(split.get("fractions",
                                                                    (0.9, 0.06, 0.04))),
            split=split.get("by", "class"), size=(prep.get("size") or [None])[0],
            channels=prep.get("channels"), model_options=options,
            init_from=str(init_from) if init_from else None, config=cfg, resume=resume,
            show_progress=show_progress, loss_fn=loss_fn,
            max_per_class=max_per_class or split.get("max_per_class"), prepare=prepare)
    raise ConfigError(f"cannot retrain a model of task {task!r}; supported: "
                      "waveform-classification, image-classification")
