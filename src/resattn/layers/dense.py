"""DenseNet building blocks (Huang et al. 2017), 1-D or 2-D by ``dims``.

A dense layer is BN -> act -> conv (optionally preceded by a 1x1 bottleneck, DenseNet-B) and
adds ``growth_rate`` channels; a dense block concatenates every layer's output onto its input, so
a block of L layers maps C channels to C + L * growth_rate. A transition (BN -> act -> 1x1 conv
-> 2-wide average pool) shrinks channels and halves the length between blocks.

Convolutions carry no bias: each one feeds a batch norm (directly, or after concatenation and
pooling), which removes any per-channel offset anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import create_attn
from .conv import avg_pool_nd, conv_nd, create_act, norm_nd


def xavier_init_(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every conv and linear layer in ``module``
    (the Keras default, i.e. what the TensorFlow papers trained from); batch norms keep
    weight 1, bias 0. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class DenseLayer(nn.Module):
    """(B, C_in, *spatial) -> (B, growth_rate, *spatial): the new features of one dense layer.

    Args:
        bn_size: bottleneck factor; ``bn_size > 0`` inserts BN -> act -> 1x1 conv to
            ``bn_size * growth_rate`` channels first (DenseNet-B), 0 gives the single
            BN -> act -> conv layer that seed 003 describes.
        drop_rate: dropout on the new features (DenseNet places it after each convolution).
    """

    def __init__(self, dims: int, in_chans: int, growth_rate: int, bn_size: int = 0,
                 drop_rate: float = 0.0, act: str = "relu", kernel_size: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = in_chans
        if bn_size > 0:
            width = bn_size * growth_rate
            layers += [norm_nd(dims, chans), create_act(act), conv_nd(dims, chans, width, 1)]
            chans = width
        layers += [norm_nd(dims, chans), create_act(act),
                   conv_nd(dims, chans, growth_rate, kernel_size)]
        if drop_rate > 0:
            layers.append(nn.Dropout(drop_rate))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DenseBlock(nn.Module):
    """(B, C, *spatial) -> (B, C + num_layers * growth_rate, *spatial).

    Layer i sees the concatenation of the block input and the i earlier layers' outputs; the
    block returns all of them concatenated (input channels first, unchanged). ``attn`` (any
    ``create_attn`` kind, identity by default) reweights that concatenation.
    """

    def __init__(self, dims: int, in_chans: int, num_layers: int = 2, growth_rate: int = 12,
                 bn_size: int = 0, drop_rate: float = 0.0, act: str = "relu",
                 kernel_size: int = 3, attn: str | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(dims, in_chans + i * growth_rate, growth_rate, bn_size, drop_rate, act,
                       kernel_size)
            for i in range(num_layers)
        )
        self.out_chans = in_chans + num_layers * growth_rate
        self.attn = create_attn(attn, self.out_chans, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.attn(torch.cat(features, dim=1))


class Transition(nn.Sequential):
    """(B, C_in, L) -> (B, C_out, L // 2): BN -> act -> 1x1 conv -> average pool (2, stride 2).

    ``pool=False`` keeps the length (for inputs already as short as one step).
    """

    def __init__(self, dims: int, in_chans: int, out_chans: int, act: str = "relu",
                 pool: bool = True) -> None:
        super().__init__(
            norm_nd(dims, in_chans),
            create_act(act),
            conv_nd(dims, in_chans, out_chans, 1),
            avg_pool_nd(dims, 2, stride=2) if pool else nn.Identity(),
        )
