"""Batched inference: class probabilities for every item of a dataset."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..layers.state import eval_mode
from .precision import autocast


@torch.no_grad()
def predict_proba(
    model: nn.Module, data: Dataset | DataLoader, precision: str = "fp32", batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, float]:
    """Returns (probs (n, num_classes), labels (n,), mean cross-entropy) in dataset order; the
    model runs in eval mode and keeps its own modes afterwards."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
    probs, labels, loss_sum = [], [], 0.0
    with eval_mode(model):
        for x, y in loader:
            with autocast(precision):
                logits = model(x)
            logits = logits.float()
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            probs.append(torch.softmax(logits, dim=1).numpy())
            labels.append(y.numpy())
    n = sum(len(y) for y in labels)
    return np.concatenate(probs), np.concatenate(labels), loss_sum / max(n, 1)
