"""Baselines of ResNetKAN1D Table 2: 1D-CNN, AlexNet-1D, VGG11-1D (one plain-CNN builder with
three layer specs) and a Transformer encoder. The paper gives no layer details for them; the specs
below follow the classic networks, shrunk in the fully connected part (global pooling + MLP head)
so that all models share the same head interface and fit 3 x 5000 waveforms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..layers import conv_norm_act, max_pool_nd
from .base import Classifier
from .registry import register_config

# A layer spec is (out_channels, kernel, stride) for a conv, or "M" for a max-pool (3, stride 2).
ConvSpec = Sequence["tuple[int, int, int] | str"]

CNN1D: ConvSpec = [(32, 7, 1), "M", (64, 7, 1), "M", (128, 5, 1), "M", (256, 3, 1), "M"]
ALEXNET: ConvSpec = [(64, 11, 4), "M", (192, 5, 1), "M", (384, 3, 1), (256, 3, 1), (256, 3, 1), "M"]
VGG11: ConvSpec = [(64, 3, 1), "M", (128, 3, 1), "M", (256, 3, 1), (256, 3, 1), "M",
                   (512, 3, 1), (512, 3, 1), "M", (512, 3, 1), (512, 3, 1), "M"]


class ConvNet(Classifier):
    """Plain convolutional network from a layer spec: conv -> (BN) -> act, "M" = max-pool."""

    def __init__(self, spec: ConvSpec = CNN1D, dims: int = 1, in_chans: int = 3,
                 num_classes: int = 2, head: str = "mlp", head_hidden: int = 256,
                 drop_rate: float = 0.5, act: str = "relu", batch_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = in_chans
        for item in spec:
            if item == "M":
                layers.append(max_pool_nd(dims, 3, stride=2, padding=1))
                continue
            out, kernel, stride = item
            layers += conv_norm_act(dims, chans, out, kernel, stride=stride,
                                    bias=not batch_norm, norm=batch_norm, act=act)
            chans = out
        self.features = nn.Sequential(*layers)
        self._init_head(dims, chans, num_classes, head, head_hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """(length, dim) fixed sine/cosine position codes (Vaswani et al. 2017); any length works."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device).float() * (-math.log(1e4) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return codes


class Transformer1D(Classifier):
    """Transformer encoder over strided-conv patches of a signal.

    (B, C, T) -> patches (B, d_model, T / patch) -> encoder -> (B, d_model, T / patch) features.
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 2, d_model: int = 128,
                 depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0, patch: int = 25,
                 dropout: float = 0.1, head: str = "mlp", head_hidden: int = 64,
                 drop_rate: float = 0.0, dims: int = 1) -> None:
        super().__init__()
        self.patch_embed = conv_norm_act(1, in_chans, d_model, patch, stride=patch, padding=0,
                                         bias=True, norm=False, act="gelu")
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, int(d_model * mlp_ratio), dropout, batch_first=True,
            norm_first=True, activation="gelu",
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self._init_head(1, d_model, num_classes, head, head_hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).transpose(1, 2)  # (B, L, d_model)
        tokens = tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2], x.device)
        return self.norm(self.encoder(tokens)).transpose(1, 2)  # (B, d_model, L)


_KAN1D = "Di 2025, ResNetKAN1D (seed 000), Table 2 baseline"
cnn1d = register_config("cnn1d", ConvNet, "1D-CNN baseline: four conv-BN-ReLU-pool stages",
                        paper=_KAN1D, spec=CNN1D)
alexnet1d = register_config("alexnet1d", ConvNet,
                            "AlexNet-1D baseline (five convs, 11-wide strided stem)",
                            paper=_KAN1D, spec=ALEXNET, batch_norm=False)
vgg11_1d = register_config("vgg11_1d", ConvNet,
                           "VGG11-1D baseline (configuration A, with batch norm)",
                           paper=_KAN1D, spec=VGG11)
transformer1d = register_config("transformer1d", Transformer1D,
                                "Transformer-encoder baseline on conv patches",
                                supports=(1,), paper=_KAN1D)
