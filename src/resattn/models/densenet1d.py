"""Weekly earthquake prediction with a 1-D DenseNet (Zhang et al., seed 003).

Two registered networks, trained in two stages (decoupled training, Kang et al.):

* ``densenet1d``, the backbone of Table I. Input (B, n_features, W): W weekly vectors of the
  n_features AETA electromagnetic/acoustic statistics (95 in the paper), convolved along the
  weeks. Conv1D 24 -> BN -> ReLU -> four dense blocks of two dense layers (24 -> 48 channels)
  with three transitions (48 -> 24, average pool 2) between them -> BN ->
  forward_features (B, 48, W // 8) -> global average pool -> dense -> (B, 5).
* ``densenet1d_classifier`` (Fig. 3), trained on the frozen backbone's feature map fused with
  the explicit features (``fuse_features``): dense block -> transition -> three 1-D convs ->
  global average pool -> three fully connected layers, the last a cosine (normalized)
  classifier as the paper prescribes for the class-imbalanced second stage.

Where the paper is silent (choices, all options): growth rate 12 and transition compression 0.5
(the only values that give Table I's 24 -> 48 -> 24 channels with two layers per block); each
dense layer is a single BN -> ReLU -> conv, kernel 3, no bottleneck (``bn_size=0``), as the text
describes it; dropout 0.2 on each dense layer's output (DenseNet's rate without augmentation);
stem conv kernel 3, stride 1 and no pooling (a weekly series is short); no ReLU after the last
BN (Table I lists none). Classifier: convs of 32, 64, 128 channels (conv -> BN -> ReLU), fully
connected widths 64 and 32. Weights start Xavier-uniform with zero biases, as the paper states.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers import conv_norm_act, create_act, norm_nd
from ..layers.dense import DenseBlock, Transition, xavier_init_
from .base import HiddenHeadClassifier, RecordsOptions
from .registry import register_config

AETA_FEATURES = 95  # explicit features per week in the paper's AETA data
BACKBONE_CHANNELS = 48  # Table I: channels of the backbone's last feature map


def fuse_features(implicit: torch.Tensor, explicit: torch.Tensor) -> torch.Tensor:
    """Backbone map (B, C, *L) + explicit features (B, F, *W) -> (B, C + F, *L).

    The explicit series is average-pooled ('area') onto the backbone's grid, so each step of the
    fused sequence carries both the learned and the hand-made features of the same weeks."""
    explicit = F.interpolate(explicit, size=implicit.shape[2:], mode="area")
    return torch.cat([implicit, explicit], dim=1)


class DenseNet1D(HiddenHeadClassifier):
    """DenseNet backbone of Table I; ``dims`` 1 (weekly series) or 2.

    (B, in_chans, W) -> forward_features (B, num_features, W // 2**(len(block_layers) - 1))
    -> global average pool -> head -> (B, num_classes). W must be at least 8 for four blocks.

    Args:
        block_layers: dense layers per block (four blocks of two).
        growth_rate, bn_size, block_dropout: per dense layer (see ``DenseLayer``).
        compression: transition output channels / input channels.
        attn: attention kind applied to each dense block's output (identity by default).
    """

    def __init__(
        self,
        dims: int = 1,
        in_chans: int = AETA_FEATURES,
        num_classes: int = 5,
        stem_width: int = 24,
        block_layers: Sequence[int] = (2, 2, 2, 2),
        growth_rate: int = 12,
        bn_size: int = 0,
        block_dropout: float = 0.2,
        compression: float = 0.5,
        kernel_size: int = 3,
        act: str = "relu",
        attn: str | None = "none",
        head: str = "linear",
        head_hidden: int = 64,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = conv_norm_act(dims, in_chans, stem_width, kernel_size, act=act)
        stages: list[nn.Module] = []
        chans = stem_width
        for i, count in enumerate(block_layers):
            block = DenseBlock(dims, chans, count, growth_rate, bn_size, block_dropout, act,
                               kernel_size, attn)
            stages.append(block)
            chans = block.out_chans
            if i < len(block_layers) - 1:
                out = int(chans * compression)
                stages.append(Transition(dims, chans, out, act))
                chans = out
        self.stages = nn.Sequential(*stages)
        self.norm = norm_nd(dims, chans)
        self.fc = nn.Identity()  # Table I: pooled features go straight to the dense layer
        self.head_hidden_size = chans
        xavier_init_(self)
        self._init_head(dims, chans, num_classes, head, head_hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))


class DenseClassifier(HiddenHeadClassifier):
    """Second-stage classifier of Fig. 3 on fused features.

    (B, in_chans, seq_len) -> dense block -> transition -> three convs -> forward_features
    (B, conv_widths[-1], L') -> global average pool -> fc (two layers) -> (B, fc_dims[-1])
    pre-logits -> head (cosine by default) -> (B, num_classes).

    Args:
        in_chans: fused channels, backbone channels + explicit features (48 + 95).
        seq_len: length of the fused sequence (backbone output, W // 8; 4 for 32 weeks). The
            transition halves it only if it is at least 2, so single-step inputs work too.
        conv_widths: channels of the three 1-D convs. fc_dims: widths of the two hidden fully
            connected layers; the head is the third.
    """

    def __init__(
        self,
        in_chans: int = BACKBONE_CHANNELS + AETA_FEATURES,
        seq_len: int = 4,
        num_classes: int = 5,
        dims: int = 1,
        num_layers: int = 2,
        growth_rate: int = 12,
        bn_size: int = 0,
        block_dropout: float = 0.2,
        compression: float = 0.5,
        conv_widths: Sequence[int] = (32, 64, 128),
        fc_dims: Sequence[int] = (64, 32),
        kernel_size: int = 3,
        act: str = "relu",
        head: str = "normalized",
        head_hidden: int = 64,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        block = DenseBlock(dims, in_chans, num_layers, growth_rate, bn_size, block_dropout, act,
                           kernel_size)
        chans = int(block.out_chans * compression)
        layers: list[nn.Module] = [
            block, Transition(dims, block.out_chans, chans, act, pool=seq_len >= 2)
        ]
        for width in conv_widths:
            layers += conv_norm_act(dims, chans, width, kernel_size, act=act)
            chans = width
        self.features = nn.Sequential(*layers)
        fc: list[nn.Module] = []
        width = chans
        for hidden in fc_dims:
            fc += [nn.Linear(width, hidden), create_act(act)]
            width = hidden
        self.fc = nn.Sequential(*fc)
        self.head_hidden_size = width
        xavier_init_(self)
        self._init_head(dims, chans, num_classes, head, head_hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


_PAPER = "Zhang et al., Weekly earthquake prediction algorithm based on Dense Net (seed 003)"

densenet1d = register_config(
    "densenet1d", DenseNet1D,
    "1-D DenseNet backbone (Table I): 4 dense blocks of 2 layers, 24/48 channels, weekly "
    "feature series (B, 95, W)",
    supports=(1,), paper=_PAPER,
)
densenet1d_classifier = register_config(
    "densenet1d_classifier", DenseClassifier,
    "Decoupled second-stage classifier (Fig. 3): dense block, transition, 3 convs, GAP, "
    "3 fully connected layers (last cosine) on fused backbone + explicit features",
    supports=(1,), paper=_PAPER,
)


FEATURE_INPUTS = ("fused", "implicit", "explicit")
CLASSIFIERS = ("dense", "flatten", "cnn")


def _classifier(kind: str, in_chans: int, seq_len: int, num_classes: int) -> nn.Module:
    """Second-stage classifiers compared in Table III: ``dense`` (Fig. 3, cosine last layer),
    ``flatten`` (flatten -> one linear layer) and ``cnn`` (two conv-BN-ReLU, pool, linear)."""
    if kind == "dense":
        return DenseClassifier(in_chans=in_chans, seq_len=seq_len, num_classes=num_classes)
    if kind == "flatten":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * seq_len, num_classes))
    if kind == "cnn":
        return nn.Sequential(
            *conv_norm_act(1, in_chans, 64, 3), *conv_norm_act(1, 64, 64, 3),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, num_classes),
        )
    raise ConfigError(f"classifier must be one of {list(CLASSIFIERS)}, got {kind!r}")


class DecoupledDenseNet(RecordsOptions):
    """Seed 003's whole predictor, trained in two stages (Kang et al.).

    Stage 1 (``set_stage(1)``): backbone + its one linear layer on (B, in_chans, window), all
    trainable. Stage 2 (``set_stage(2)``, the default and what a checkpoint predicts with): the
    backbone is frozen (no gradients, batch norm and dropout in eval mode), its feature map
    (B, 48, window // 8) is concatenated with the explicit series pooled onto the same grid
    (``features="fused"``; ``implicit`` or ``explicit`` alone for Table II) and classified by
    ``classifier`` (Table III).
    """

    def __init__(self, in_chans: int = AETA_FEATURES, window: int = 32, num_classes: int = 5,
                 features: str = "fused", classifier: str = "dense") -> None:
        super().__init__()
        if features not in FEATURE_INPUTS:
            raise ConfigError(f"features must be one of {list(FEATURE_INPUTS)}, got {features!r}")
        if window < 8:
            raise ConfigError(f"window must be at least 8 weeks (four dense blocks), got {window}")
        self.features, self.num_classes = features, num_classes
        self.backbone = DenseNet1D(in_chans=in_chans, num_classes=num_classes)
        seq_len = max(1, window // 8)
        chans = {"fused": BACKBONE_CHANNELS + in_chans, "implicit": BACKBONE_CHANNELS,
                 "explicit": in_chans}[features]
        self.classifier = _classifier(classifier, chans, seq_len, num_classes)
        self.seq_len = seq_len
        self.set_stage(2)

    def set_stage(self, stage: int) -> None:
        """1: train the backbone with its linear layer; 2: freeze it, train the classifier."""
        if stage not in (1, 2):
            raise ConfigError(f"stage must be 1 or 2, got {stage}")
        self.stage = stage
        for p in self.backbone.parameters():
            p.requires_grad_(stage == 1)
        for p in self.classifier.parameters():
            p.requires_grad_(stage == 2)
        self.train(self.training)

    def train(self, mode: bool = True) -> DecoupledDenseNet:
        super().train(mode)
        if getattr(self, "stage", 1) == 2:
            self.backbone.eval()  # frozen: running statistics and dropout stay fixed
        return self

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: implicit, explicit or both, on the backbone's grid."""
        if self.features == "explicit":
            return F.adaptive_avg_pool1d(x, self.seq_len)
        implicit = self.backbone.forward_features(x)  # (B, 48, window // 8)
        return implicit if self.features == "implicit" else fuse_features(implicit, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage == 1:
            return self.backbone(x)
        return self.classifier(self.fused(x))


decoupled_densenet1d = register_config(
    "decoupled_densenet1d", DecoupledDenseNet,
    "Seed 003 predictor: DenseNet-1D backbone (stage 1) + classifier on [implicit | explicit] "
    "features (stage 2, frozen backbone, class-balanced)",
    supports=(1,), paper=_PAPER,
)
