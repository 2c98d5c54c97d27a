"""Attention modules for (B, C, *spatial) feature maps, built by name through ``create_attn``.

Kinds: ``none`` (identity), ``se`` (squeeze-and-excitation), ``channel`` (CBAM channel attention),
``spatial`` (CBAM spatial attention), ``dual`` (channel then spatial, the ResNetKAN1D module),
``arn`` (ARN-CNN's 1x1-conv attention).
Each module returns a tensor of the input's shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .conv import check_dims, conv_nd


def _global_pool(x: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, C, *spatial) -> (B, C), averaging or taking the maximum over every spatial axis."""
    flat = x.flatten(2)
    return flat.mean(-1) if mode == "avg" else flat.amax(-1)


def _broadcast(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, 1, ...) so that it multiplies a (B, C, *spatial) map."""
    return weights.view(*weights.shape, *([1] * (like.dim() - 2)))


def _hidden(channels: int, reduction: int, min_hidden: int = 8) -> int:
    return max(channels // reduction, min_hidden)


class SqueezeExcite(nn.Module):
    """SE block (Hu et al. 2018): sigmoid(W2 ReLU(W1 GAP(x))) scales each channel."""

    def __init__(self, channels: int, reduction: int = 16, dims: int = 2) -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _broadcast(torch.sigmoid(self.fc(_global_pool(x, "avg"))), x)


class ChannelAttention(nn.Module):
    """CBAM channel attention (Eq. 2 of ResNetKAN1D): average- and max-pooled descriptors pass
    through ONE shared MLP, are summed, and a sigmoid gives a weight in (0, 1) per channel."""

    def __init__(self, channels: int, reduction: int = 16, dims: int = 2) -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, C) attention weights in (0, 1)."""
        return torch.sigmoid(self.mlp(_global_pool(x, "avg")) + self.mlp(_global_pool(x, "max")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _broadcast(self.weights(x), x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Eq. 3): channel-wise mean and max maps are concatenated, convolved
    to one map, and a sigmoid gives a weight in (0, 1) per position."""

    def __init__(self, channels: int = 0, kernel_size: int = 7, dims: int = 2) -> None:
        super().__init__()
        self.conv = conv_nd(dims, 2, 1, kernel_size, bias=False)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, 1, *spatial) attention weights in (0, 1)."""
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class DualAttention(nn.Sequential):
    """Channel attention followed by spatial attention (CBAM order, ResNetKAN1D Sec. 3.2)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, dims: int = 2):
        super().__init__(
            ChannelAttention(channels, reduction, dims=dims),
            SpatialAttention(channels, kernel_size, dims=dims),
        )


class ARNAttention(nn.Module):
    """ARN attention module: ``x * sigmoid(conv1x1(relu(conv1x1(x))))``, both convs C -> C with
    bias, so every position and channel gets its own weight in (0, 1). Keeps the input's shape."""

    def __init__(self, channels: int, dims: int = 2) -> None:
        super().__init__()
        self.conv1 = conv_nd(dims, channels, channels, 1, bias=True)
        self.conv2 = conv_nd(dims, channels, channels, 1, bias=True)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, C, *spatial) attention weights in (0, 1)."""
        return torch.sigmoid(self.conv2(torch.relu(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


_ATTN: dict[str, Callable[..., nn.Module]] = {
    "se": SqueezeExcite,
    "channel": ChannelAttention,
    "spatial": SpatialAttention,
    "dual": DualAttention,
    "arn": ARNAttention,
}


def attention_kinds() -> list[str]:
    """Names accepted by ``create_attn``."""
    return ["none", *_ATTN]


def register_attn(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add an attention kind; ``factory(channels, dims=dims)`` must keep the input's shape."""
    _ATTN[name] = factory


def create_attn(kind: str | None, channels: int, dims: int = 2) -> nn.Module:
    """Attention module by name; ``None``/``"none"`` gives an identity so ablations are strings."""
    check_dims(dims)
    if kind in (None, "none"):
        return nn.Identity()
    if kind not in _ATTN:
        raise ConfigError(f"unknown attention {kind!r}; expected one of {attention_kinds()}")
    return _ATTN[kind](channels, dims=dims)
