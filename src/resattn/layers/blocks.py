"""Residual blocks shared by every ResNet in resattn, 1-D or 2-D by ``dims``.

A block is ``act(attn(F(x)) + shortcut(x))``: the attention module (identity when ``attn="none"``)
reweights the residual branch before the addition, as in CBAM and ResNetKAN1D Fig. 1.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import create_attn
from .conv import conv_norm_act, create_act


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def shortcut(dims: int, in_chans: int, out_chans: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1x1 convolution + batch norm (ResNet 'B')."""
    if stride == 1 and in_chans == out_chans:
        return nn.Identity()
    return conv_norm_act(dims, in_chans, out_chans, 1, stride=stride, act=None)


class _Residual(nn.Module):
    """Shared forward of the residual blocks; subclasses build ``self.branch``."""

    expansion = 1

    def _finish(self, dims: int, in_chans: int, out_chans: int, stride: int, attn: str | None,
                act: str, drop_path_rate: float) -> None:
        self.attn = create_attn(attn, out_chans, dims)
        self.shortcut = shortcut(dims, in_chans, out_chans, stride)
        self.act = create_act(act)
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = drop_path(self.attn(self.branch(x)), self.drop_path_rate, self.training)
        return self.act(out + self.shortcut(x))

    def last_norm(self) -> nn.Module:
        """The branch's final batch norm (zero-initialised so a block starts as an identity)."""
        return self.branch[-1]


class BasicBlock(_Residual):
    """Two k-wide convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, dims: int, in_chans: int, planes: int, stride: int = 1,
                 attn: str | None = None, act: str = "relu", kernel_size: int = 3,
                 groups: int = 1, base_width: int = 64, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        out_chans = planes * self.expansion
        self.branch = nn.Sequential(
            *conv_norm_act(dims, in_chans, planes, kernel_size, stride=stride, act=act),
            *conv_norm_act(dims, planes, out_chans, kernel_size, act=None),
        )
        self._finish(dims, in_chans, out_chans, stride, attn, act, drop_path_rate)


class Bottleneck(_Residual):
    """1x1 reduce, k-wide (grouped) convolution, 1x1 expand x4 (ResNet-50/101/152, ResNeXt,
    Wide-ResNet through ``groups`` and ``base_width``)."""

    expansion = 4

    def __init__(self, dims: int, in_chans: int, planes: int, stride: int = 1,
                 attn: str | None = None, act: str = "relu", kernel_size: int = 3,
                 groups: int = 1, base_width: int = 64, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_chans = planes * self.expansion
        self.branch = nn.Sequential(
            *conv_norm_act(dims, in_chans, width, 1, act=act),
            *conv_norm_act(dims, width, width, kernel_size, stride=stride, groups=groups,
                           act=act),
            *conv_norm_act(dims, width, out_chans, 1, act=None),
        )
        self._finish(dims, in_chans, out_chans, stride, attn, act, drop_path_rate)
