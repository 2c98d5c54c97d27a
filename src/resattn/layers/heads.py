"""Classifier heads on pooled features (B, F) -> (B, num_classes), built by name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .kan import KAN


class CosineLinear(nn.Module):
    """Normalized (cosine) classifier: scale * cos(feature, class weight)."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 16.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))


HEAD_KINDS = ("linear", "mlp", "kan", "normalized")


def create_head(
    kind: str, in_features: int, num_classes: int, hidden: int = 64, drop_rate: float = 0.0
) -> nn.Module:
    """``linear`` | ``mlp`` (Linear-ReLU-Dropout-Linear) | ``kan`` (two KANLinear layers through
    ``hidden``) | ``normalized`` (cosine classifier). ``num_classes=0`` gives an identity."""
    if kind not in HEAD_KINDS:
        raise ConfigError(f"unknown head {kind!r}; expected one of {list(HEAD_KINDS)}")
    if num_classes <= 0:
        return nn.Identity()
    drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
    if kind == "linear":
        return nn.Sequential(drop, nn.Linear(in_features, num_classes))
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), drop,
            nn.Linear(hidden, num_classes),
        )
    if kind == "kan":
        return nn.Sequential(drop, KAN([in_features, hidden, num_classes]))
    return nn.Sequential(drop, CosineLinear(in_features, num_classes))
