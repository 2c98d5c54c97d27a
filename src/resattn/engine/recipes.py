"""Pieces of a training recipe chosen by name: optimizer, learning-rate rule, kernel penalty.

The learning-rate rules live in the optimizer's param groups and the trainer's JSON state, not in
scheduler objects, so that ``--resume`` continues a run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "adamax", "sgd")
SCHEDULES = ("none", "plateau", "cosine")
PENALTY_LAYERS = {"dense": (nn.Linear,), "all": (nn.Linear, nn.Conv1d, nn.Conv2d)}


def build_optimizer(params: Iterable[nn.Parameter], name: str, lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (ResNetKAN1D), Adam (seed 003), Adamax (ARN-CNN) or SGD with momentum 0.9."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Multiply every group's learning rate by ``factor``; returns the first group's new lr."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    return optimizer.param_groups[0]["lr"]


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from ``base_lr`` at epoch 1 towards 0 after the last epoch."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


def kernel_penalty(model: nn.Module, l1: float, l2: float, layers: str = "dense") -> torch.Tensor:
    """``l1 * sum|w| + l2 * sum w^2`` over the kernels and biases of the chosen layer types
    (Keras-style kernel/bias regularisers, as ARN-CNN puts on its dense layers)."""
    if layers not in PENALTY_LAYERS:
        raise ConfigError(f"penalty layers must be one of {list(PENALTY_LAYERS)}, got {layers!r}")
    total = torch.zeros(())
    if not (l1 or l2):
        return total
    for module in model.modules():
        if isinstance(module, PENALTY_LAYERS[layers]):
            for p in module.parameters(recurse=False):
                total = total + l1 * p.abs().sum() + l2 * p.square().sum()
    return total


# Named training recipes (``resattn train --preset NAME``): the papers' settings, as fields of
# ``TrainConfig``. Values a paper does not state are marked as our choice.
PRESETS: dict[str, dict] = {
    # ResNetKAN1D Table 1.
    "resnetkan1d": {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-3, "batch_size": 64,
                    "patience": 10},
    # ARN-CNN (seed 004): Adamax lr 0.001 (its Table 1), batch 40, lr x0.5 after one flat epoch,
    # stop after three, "dwell" back to the best weights, dropout 0.45 (in the model), L1 + L2
    # on the dense layers' kernels. The paper gives no strengths. L2 0.016 is the kernel L2 of
    # the Keras template whose "dwell" callback the paper describes; that template's 0.006 L1
    # acts on activations, and on the 0.8 M kernel weights it would outweigh the loss ~50:1
    # at initialisation, so our kernel L1 is 1e-5 (about 0.16 at initialisation).
    "arn-mednist": {"optimizer": "adamax", "lr": 1e-3, "weight_decay": 0.0, "batch_size": 40,
                    "schedule": "plateau", "plateau_factor": 0.5, "plateau_patience": 1,
                    "patience": 3, "dwell": True, "l1": 1e-5, "l2": 0.016,
                    "penalty_layers": "dense", "augment": "none"},
    # ResNet-18 facial expressions (seed 002). The paper states no optimizer, learning rate,
    # epochs or augmentation; ours: Adam 1e-3, weight decay 1e-4, batch 32, cosine annealing,
    # early stopping after 10 flat epochs, and the "faces" augmentation (flip, rotation,
    # shift, zoom, brightness/contrast), which a set of ~100-800 faces per class needs.
    "fer-resnet18": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32,
                     "schedule": "cosine", "patience": 10, "augment": "faces"},
}


# What each ``TrainConfig`` field means: the command line's help is generated from this.
RECIPE_HELP: dict[str, str] = {
    "epochs": "Maximum epochs (early stopping may end sooner).",
    "batch_size": "Items per training batch.",
    "lr": "Learning rate (AdamW 1e-4: ResNetKAN1D Table 1).",
    "weight_decay": "Weight decay of the optimizer.",
    "patience": "Early-stopping patience (epochs without a better monitored value).",
    "precision": "auto: bf16 only where this CPU accelerates it; fp32; bf16.",
    "seed": "Seed for split, initialisation, crops and augmentation.",
    "grad_clip": "Clip the gradient norm to this value (default: no clipping).",
    "num_workers": "DataLoader worker processes.",
    "optimizer": "adamw (paper), adam, adamax or sgd.",
    "schedule": "Learning-rate rule: none, plateau (x factor after flat epochs) or cosine.",
    "plateau_factor": "Learning-rate factor of the plateau and dwell rules.",
    "plateau_patience": "Flat epochs before the plateau rule scales the learning rate.",
    "dwell": "On a worse validation loss go back to the best weights and scale the "
             "learning rate (ARN-CNN).",
    "l1": "L1 penalty on the weights of penalty_layers.",
    "l2": "L2 penalty on the weights of penalty_layers.",
    "penalty_layers": "Layers the L1/L2 penalty acts on: dense or all.",
    "augment": "Image augmentation policy of the recipe (see the image task's --augment).",
    "sampling": "instance (shuffled) or class_balanced training batches.",
    "monitor": "Best epoch and early stopping by val_loss or val_f1 (macro F1).",
    "mix": "Images: mix training batches: none, mixup or cutmix.",
    "mix_alpha": "Beta(alpha, alpha) of the mixing weight.",
    "tensorboard": "TensorBoard event files in OUT/tensorboard: auto (when installed), on, off.",
}
RECIPE_CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "penalty_layers": tuple(PENALTY_LAYERS),
    "mix": ("none", "mixup", "cutmix"), "tensorboard": ("auto", "on", "off"),
    "precision": ("auto", "fp32", "bf16"), "sampling": ("instance", "class_balanced"),
    "monitor": ("val_loss", "val_f1"),
}
