"""Knowledge distillation (Hinton et al. 2015): a small student learns from a trained teacher's
softened outputs as well as from the labels."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.trainer import TrainConfig
from ..errors import ConfigError
from ..pretrained import load_any
from .retrain import train_like


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      target: torch.Tensor, temperature: float = 4.0,
                      alpha: float = 0.7) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)``.

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T grows.
    """
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise ConfigError(f"temperature must be > 0 and alpha in [0, 1], got {temperature}, "
                          f"{alpha}")
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(
        teacher_logits / t, dim=1), reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, target)
    return alpha * t * t * soft + (1 - alpha) * hard


class DistillationLoss:
    """The trainer's ``loss_fn``: runs the frozen teacher on each batch."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.7) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(x).float()
        return distillation_loss(logits, teacher_logits, y, self.temperature, self.alpha)


def distill(teacher: str | Path, student: str, data: str | Path, out: str | Path,
            student_options: dict | None = None, temperature: float = 4.0, alpha: float = 0.7,
            epochs: int = 10, config: TrainConfig | None = None,
            max_per_class: int | None = None) -> dict:
    """Train ``student`` (a registered name) on the teacher's task, data split and
    preprocessing, with the distillation loss; returns the task summary (test metrics)."""
    net, meta = load_any(teacher)
    return train_like(meta, data, out, model=student, model_options=student_options, epochs=epochs,
                      config=config, loss_fn=DistillationLoss(net, temperature, alpha),
                      max_per_class=max_per_class)
