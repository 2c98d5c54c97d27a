"""Feature Pyramid Network (Lin et al. 2017, "Feature pyramid networks for object detection"),
1-D or 2-D by ``dims``.

The bottom-up pathway is the backbone itself (its stage outputs C2..C5); this module adds the
lateral 1x1 connections, the top-down pathway (nearest upsampling + addition) and the 3x3
smoothing convolutions. Detection-only extras (P6 by max-pooling P5) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .conv import check_dims, conv_nd


class FeaturePyramid(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling + add, 3x3 smoothing.

    Input: backbone maps finest first, ``[C2, ..., C5]`` with ``C_i`` of shape
    (B, in_channels[i], *spatial_i). Output: ``[P2, ..., P5]``, ``P_i`` of shape
    (B, out_channels, *spatial_i): every level keeps its input's resolution. Any number of levels
    (>= 1) works; ResNets give four.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, dims: int = 2) -> None:
        super().__init__()
        check_dims(dims)
        if len(in_channels) == 0:
            raise ValueError("FeaturePyramid needs at least one input level")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        # Biases as in the paper: there is no normalisation after these convolutions.
        self.lateral = nn.ModuleList(
            conv_nd(dims, c, out_channels, 1, bias=True) for c in self.in_channels
        )
        self.smooth = nn.ModuleList(
            conv_nd(dims, out_channels, out_channels, 3, bias=True) for _ in self.in_channels
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"FeaturePyramid expects {len(self.in_channels)} levels, got {len(features)}"
            )
        got = tuple(f.shape[1] for f in features)
        if got != self.in_channels:
            raise ValueError(f"FeaturePyramid expects channels {self.in_channels}, got {got}")
        # Top-down: start at the coarsest level, upsample to the next finer lateral's own size
        # (not a fixed x2, so odd sizes such as 7 -> 4 from a stride-2 conv still line up).
        merged = self.lateral[-1](features[-1])
        outs = [self.smooth[-1](merged)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.lateral[i](features[i])
            merged = lateral + F.interpolate(merged, size=lateral.shape[2:], mode="nearest")
            outs.append(self.smooth[i](merged))  # the 3x3 conv reduces upsampling aliasing
        return outs[::-1]
