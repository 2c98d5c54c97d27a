"""Transfer learning: start from trained weights (a shipped name or a run), a new head for the
new class count, the first stages frozen, and smaller learning rates for earlier stages."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..engine.trainer import TrainConfig
from ..errors import ConfigError
from ..pretrained import load_any
from .retrain import train_like

HEADS = ("head", "fc")  # classifier modules: always trainable, full learning rate


def stage_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's trunk in order, one entry per stage: top-level children, with a
    ``stages``/``features`` container opened one level; the classifier is left out."""
    groups = []
    for name, child in model.named_children():
        if name in HEADS or name == "global_pool":
            continue
        if name in ("stages", "features") and len(list(child.children())) > 1:
            groups += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            groups.append((name, child))
    return groups


def prepare_transfer(model: nn.Module, freeze: int = 0, lr_decay: float = 1.0) -> list[str]:
    """Freeze the first ``freeze`` stage groups (-1: the whole trunk) and give group ``i`` of
    the ``n`` still trainable the learning-rate scale ``lr_decay ** (n - i)`` (the head keeps
    1). Returns the names of the frozen groups."""
    groups = stage_groups(model)
    if freeze < 0:
        freeze = len(groups)
    if freeze > len(groups) or not 0 < lr_decay <= 1:
        raise ConfigError(f"freeze must be -1 or 0..{len(groups)} (stages: "
                          f"{[g for g, _ in groups]}) and lr_decay in (0, 1], got {freeze}, "
                          f"{lr_decay}")
    trainable = groups[freeze:]
    for i, (_, module) in enumerate(groups):
        for p in module.parameters():
            p.requires_grad_(i >= freeze)
            p.lr_scale = lr_decay ** (len(trainable) - (i - freeze)) if i >= freeze else 0.0
    return [g for g, _ in groups[:freeze]]


def finetune(source: str | Path, data: str | Path, out: str | Path, epochs: int = 10,
             freeze: int = 0, lr_decay: float = 1.0, config: TrainConfig | None = None,
             max_per_class: int | None = None) -> dict:
    """Fine-tune ``source`` on ``data`` (same task kind; images may have other classes: the
    head is replaced when the class count differs)."""
    _, meta = load_any(source)
    return train_like(meta, data, out, init_from=source, epochs=epochs, config=config,
                      max_per_class=max_per_class, same_split=False,
                      prepare=lambda m: prepare_transfer(m, freeze, lr_decay))
