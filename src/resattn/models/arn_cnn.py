"""ARN-CNN: attention-based residual-connection CNN (Kavousinejad 2024, seed 004), 1-D or 2-D.

The layer table of the paper's Figure 2 (MedNIST, (B, 1, 64, 64), 6 classes), with the modules
that realise each row (shapes NCHW, batch B):

====================  ===================  ==============================================
table rows            module               output
====================  ===================  ==============================================
conv2d, max_pool      features.stem        3x3 valid conv 32 + ReLU (B, 32, 62, 62);
                                           2x2 max pool (B, 32, 31, 31)
conv2d_1..4, mult.    features.attn1       two ARN attentions (B, 32, 31, 31)
conv2d_5..9, add,     features.res         residual block: [3x3 conv + ReLU, BN] x 2,
activation, max_pool                       ARN attention, + 1x1 shortcut conv (32 -> 64),
                                           ReLU, 2x2 max pool (B, 64, 15, 15)
conv2d_10             features.conv2       3x3 valid conv 64 + ReLU (B, 64, 13, 13)
conv2d_11,12, mult.   features.attn2       one ARN attention (B, 64, 13, 13)
conv2d_13, max_pool   features.conv3       3x3 valid conv 256 + ReLU (B, 256, 11, 11);
                                           2x2 max pool (B, 256, 5, 5)
conv2d_14..21, mult.  features.attn3       four ARN attentions (B, 256, 5, 5)
conv2d_22             features.conv_out    1x1 conv 125 + ReLU (B, 125, 5, 5)
flatten, dense        global_pool, fc      (B, 3125) -> dense 256 + GELU (B, 256)
dropout, dense_1      head                 dropout 0.45 -> linear (B, 6); the softmax is
                                           left to the loss (cross-entropy on logits)
====================  ===================  ==============================================

Trainable parameters: 1,623,875. Keras reports 1,624,131 because it also counts the two batch
norms' moving mean and variance (2 x 2 x 64 = 256), which are buffers here.

Where the table is silent: the residual block's convolutions are conv -> ReLU -> BN (Keras
``Conv2D(activation="relu")`` then ``BatchNormalization``: the table has no separate activation
row, and Fig. 4 says ReLU for every Conv2d); the shortcut 1x1 conv is linear; weights start
Xavier-uniform with zero biases (the Keras default); batch norms keep PyTorch's eps/momentum.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import (
    adaptive_avg_pool_nd,
    conv_nd,
    conv_norm_act,
    create_act,
    create_attn,
    max_pool_nd,
    norm_nd,
)
from ..layers.dense import xavier_init_
from .base import HiddenHeadClassifier
from .registry import register_config


def conv_act(dims: int, in_chans: int, out_chans: int, kernel_size: int, act: str = "relu",
             padding: int | None = 0) -> nn.Sequential:
    """Keras ``Conv(activation=act)``: ``conv_norm_act`` with a biased conv, no norm
    (``padding=0`` is Keras 'valid'); children 0 (conv) and 1 (act)."""
    return conv_norm_act(dims, in_chans, out_chans, kernel_size, bias=True, padding=padding,
                         norm=False, act=act)


class ARNResidualBlock(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *S // 2): ``pool(act(attn(F(x)) + shortcut(x)))``.

    ``F`` is two 'same' convolutions, each followed by act then batch norm; the shortcut is a
    1x1 conv when channels change (else identity). ``residual=False`` drops the shortcut (the
    paper's "residual block = 0" ablation). The 2x2 max pool runs only while every spatial side
    is at least 2, as the paper states.
    """

    def __init__(self, dims: int, in_chans: int, out_chans: int, kernel_size: int = 3,
                 attn: str | None = "arn", act: str = "relu", residual: bool = True) -> None:
        super().__init__()
        same = kernel_size // 2
        self.branch = nn.Sequential(
            *conv_act(dims, in_chans, out_chans, kernel_size, act, padding=same),
            norm_nd(dims, out_chans),
            *conv_act(dims, out_chans, out_chans, kernel_size, act, padding=same),
            norm_nd(dims, out_chans),
        )
        self.attn = create_attn(attn, out_chans, dims)
        self.shortcut = None if not residual else (
            nn.Identity() if in_chans == out_chans
            else conv_nd(dims, in_chans, out_chans, 1, bias=True)
        )
        self.act = create_act(act)
        self.pool = max_pool_nd(dims, 2, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attn(self.branch(x))
        if self.shortcut is not None:  # after the branch, so hooks fire in the table's order
            out = out + self.shortcut(x)
        out = self.act(out)
        return self.pool(out) if min(out.shape[2:]) >= 2 else out


def arn_feature_size(input_size: int) -> int:
    """Side of the last feature map for an input side (64 -> 5): valid 3-conv, pool, block
    pool, two valid 3-convs, pool."""
    return ((input_size - 2) // 2 // 2 - 4) // 2


class ARNCNN(HiddenHeadClassifier):
    """ARN-CNN (Figure 2 of seed 004); ``dims`` 1 or 2.

    (B, in_chans, S, S) -> forward_features (B, 125, s, s), s = ``arn_feature_size(S)`` (5 for
    64) -> flatten -> dense ``fc_dim`` + GELU -> dropout -> head -> (B, num_classes).

    Args:
        input_size: side (2-D) or length (1-D) the flatten layer is sized for. The feature map
            is average-pooled to that grid before flattening: an exact identity at
            ``input_size`` (the paper's network), and it lets other sizes run too.
        widths: channels of the stem conv, the residual block, the second and the third conv
            (32, 64, 64, 256 in the paper); ``out_chans`` of the last 1x1 conv (125).
        attn: attention kind at every attention site (``arn``; ``none`` removes them).
        residual: keep the residual block's shortcut. ``head``: kind of the last layer.
    """

    def __init__(
        self,
        dims: int = 2,
        in_chans: int = 1,
        num_classes: int = 6,
        input_size: int = 64,
        widths: Sequence[int] = (32, 64, 64, 256),
        out_chans: int = 125,
        fc_dim: int = 256,
        attn: str | None = "arn",
        residual: bool = True,
        act: str = "relu",
        fc_act: str = "gelu",
        head: str = "linear",
        head_hidden: int = 64,
        drop_rate: float = 0.45,
    ) -> None:
        super().__init__()
        grid = arn_feature_size(input_size)
        if grid < 1:
            raise ConfigError(f"ARN-CNN input_size must be at least 26, got {input_size}")
        c_stem, c_res, c_mid, c_top = widths

        def attns(chans: int, count: int) -> nn.Sequential:
            return nn.Sequential(*(create_attn(attn, chans, dims) for _ in range(count)))

        self.features = nn.Sequential(OrderedDict(
            stem=nn.Sequential(*conv_act(dims, in_chans, c_stem, 3, act),
                               max_pool_nd(dims, 2, stride=2, padding=0)),
            attn1=attns(c_stem, 2),
            res=ARNResidualBlock(dims, c_stem, c_res, 3, attn, act, residual),
            conv2=conv_act(dims, c_res, c_mid, 3, act),
            attn2=attns(c_mid, 1),
            conv3=nn.Sequential(*conv_act(dims, c_mid, c_top, 3, act),
                                max_pool_nd(dims, 2, stride=2, padding=0)),
            attn3=attns(c_top, 4),
            conv_out=conv_act(dims, c_top, out_chans, 1, act),
        ))
        self.fc = nn.Sequential(nn.Linear(out_chans * grid**dims, fc_dim), create_act(fc_act))
        self.head_hidden_size = fc_dim
        xavier_init_(self)
        self._init_head(dims, out_chans, num_classes, head, head_hidden, drop_rate)
        # The paper flattens the whole map: pool to the table's grid, not to one value.
        self.global_pool = adaptive_avg_pool_nd(dims, grid)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


_PAPER = ("Kavousinejad 2024, An attention-based residual connection CNN for classification "
          "tasks in computer vision (seed 004)")

arn_cnn = register_config(
    "arn_cnn", ARNCNN,
    "ARN-CNN: conv + 1x1-conv attention + one residual block, flatten-GELU-dropout head "
    "(MedNIST 1x64x64, 6 classes)",
    paper=_PAPER,
)

# Table 6 of seed 004: the ablations are options of arn_cnn, never new classes.
ARN_ABLATIONS: dict[str, dict] = {
    "CNN (attention 0, residual block 1)": {"attn": "none"},
    "CNN (attention 1, residual block 0)": {"residual": False},
    "ARN-CNN (attention 1, residual block 1)": {},
}
