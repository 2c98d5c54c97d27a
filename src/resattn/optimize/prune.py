"""Structured (channel) pruning with Torch-Pruning: dependency-aware, so channels tied by
residual additions, attention gates and concatenations are removed together; iterative, with
fine-tuning after each step. A pruned model saves and loads like any other: its checkpoint is
marked ``pruned``, and ``engine.checkpoint.conform_to`` gives the model built from its config
the stored layer widths.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..engine.checkpoint import PRUNED, save_model
from ..engine.trainer import TrainConfig
from ..errors import ConfigError
from ..layers.kan import KANLinear
from ..layers.state import eval_mode
from ..models.summary import summarize
from ..pretrained import load_any
from ..tasks import task_of
from .retrain import train_like


@contextmanager
def _plain_head(model: nn.Module):
    """Tracing the B-spline (KAN) head stalls Torch-Pruning's graph builder; the classifier is
    never pruned anyway, so a linear stand-in of the same width takes its place meanwhile."""
    head = getattr(model, "head", None)
    width = getattr(model, "pre_logits_features", None)
    if head is None or width is None or not any(isinstance(m, KANLinear)
                                                for m in head.modules()):
        yield None  # a plain head is traced (and its input width pruned) with the rest
        return
    stand_in = nn.Linear(width, getattr(model, "num_classes", 2))
    model.head = stand_in
    try:
        yield stand_in
    finally:
        model.head = head


def last_linear(model: nn.Module) -> nn.Module | None:
    """The layer producing the logits (its outputs, the classes, are never pruned)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def prune_step(model: nn.Module, input_shape: Sequence[int], ratio: float) -> nn.Module:
    """Remove ``ratio`` of the prunable channels of every layer group (L2-magnitude
    importance), in place; the classifier and the channels feeding it are kept."""
    import torch_pruning as tp

    if not 0 < ratio < 1:
        raise ConfigError(f"pruning ratio must be in (0, 1), got {ratio}")
    example = torch.randn(1, *input_shape)
    with eval_mode(model), _plain_head(model) as stand_in:
        ignored = [m for m in (stand_in, getattr(model, "fc", None), last_linear(model))
                   if isinstance(m, nn.Module)]
        pruner = tp.pruner.MetaPruner(model, example,
                                      importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
    setattr(model, PRUNED, True)
    return model


def ratio_for(model: nn.Module, shape: Sequence[int], goal_macs: float,
              iterations: int = 7) -> float:
    """The pruning ratio that brings ``model`` closest to ``goal_macs`` (bisection on copies:
    how MACs fall with the ratio depends on which channels are tied together)."""
    lo, hi = 0.0, 0.95
    for _ in range(iterations):
        mid = (lo + hi) / 2
        macs = summarize(prune_step(copy.deepcopy(model), shape, mid), shape)["macs"]
        lo, hi = (mid, hi) if macs > goal_macs else (lo, mid)
    return max(hi, 0.01)


def input_shape_of(meta: dict) -> tuple[int, ...]:
    """One sample's shape, as the checkpoint's task and contract say."""
    return task_of(meta).input_shape(meta)


def prune(source: str | Path, data: str | Path, out: str | Path, target: float = 0.5,
          steps: int = 3, finetune_epochs: int = 2, config: TrainConfig | None = None,
          max_per_class: int | None = None) -> dict:
    """Iteratively prune ``source`` until its multiply-accumulates fall by ``target`` (a
    fraction), fine-tuning on the original task after each of ``steps`` steps."""
    if not 0 < target < 1 or steps < 1:
        raise ConfigError(f"target must be in (0, 1) and steps >= 1, got {target}, {steps}")
    out = Path(out)
    model, meta = load_any(source)
    shape = input_shape_of(meta)
    base_macs = summarize(model, shape)["macs"]
    history, current = [], str(source)
    for step in range(1, steps + 1):
        run = out / f"step{step}"
        if not (run / "test_metrics.json").exists():
            model, meta = load_any(current)
            # Each step aims at (1 - target) ** (step / steps) of the original MACs.
            goal = (1 - target) ** (step / steps) * base_macs
            prune_step(model, shape, ratio_for(model, shape, goal))
            save_model(run / "pruned", model, {**meta, PRUNED: True})
            train_like(meta, data, run, init_from=run / "pruned", epochs=finetune_epochs,
                       config=config, max_per_class=max_per_class)
        current = str(run)
        pruned, _ = load_any(current)
        history.append({"step": step, "macs": summarize(pruned, shape)["macs"],
                        "params": sum(p.numel() for p in pruned.parameters())})
    return {"base_macs": base_macs, "steps": history, "model": current}
