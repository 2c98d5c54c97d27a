"""Convolution, normalisation and pooling chosen by ``dims`` (1 for signals, 2 for images), and
``conv_norm_act``, the conv -> batch norm -> activation unit every network here is made of."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}
_ADAPTIVE_MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d}


def check_dims(dims: int) -> int:
    """Return ``dims`` if it is 1 or 2, else raise a ConfigError."""
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 (signals) or 2 (images), got {dims!r}")
    return dims


def conv_nd(
    dims: int,
    in_chans: int,
    out_chans: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: int | None = None,
) -> nn.Module:
    """A 1-D or 2-D convolution with 'same'-style padding (``kernel_size // 2``) by default."""
    pad = kernel_size // 2 if padding is None else padding
    return _CONV[check_dims(dims)](
        in_chans, out_chans, kernel_size, stride=stride, padding=pad, groups=groups, bias=bias
    )


def norm_nd(dims: int, channels: int) -> nn.Module:
    """Batch normalisation over (B, C, *spatial)."""
    return _NORM[check_dims(dims)](channels)


def max_pool_nd(dims: int, kernel_size: int = 3, stride: int = 2, padding: int = 1) -> nn.Module:
    return _MAX_POOL[check_dims(dims)](kernel_size, stride=stride, padding=padding)


def avg_pool_nd(dims: int, kernel_size: int = 2, stride: int = 2) -> nn.Module:
    return _AVG_POOL[check_dims(dims)](kernel_size, stride=stride)


def adaptive_avg_pool_nd(dims: int, output_size: int = 1) -> nn.Module:
    return _ADAPTIVE_AVG[check_dims(dims)](output_size)


def adaptive_max_pool_nd(dims: int, output_size: int = 1) -> nn.Module:
    return _ADAPTIVE_MAX[check_dims(dims)](output_size)


_ACTS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU}


def create_act(name: str = "relu") -> nn.Module:
    """Activation by name: relu, swish/silu, gelu."""
    if name not in _ACTS:
        raise ConfigError(f"unknown activation {name!r}; expected one of {sorted(_ACTS)}")
    return _ACTS[name](inplace=True) if name in ("relu", "swish", "silu") else _ACTS[name]()


def conv_norm_act(
    dims: int,
    in_chans: int,
    out_chans: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: int | None = None,
    norm: bool = True,
    act: str | None = "relu",
) -> nn.Sequential:
    """(B, in_chans, *S) -> (B, out_chans, *S'): ``conv_nd`` -> ``norm_nd`` -> ``create_act``
    as an ``nn.Sequential`` with children 0, 1, 2; ``norm=False`` or ``act=None`` leaves that
    step out (conv + act is Keras' ``Conv(activation=...)``; conv + norm a projection
    shortcut). Unpack it (``*conv_norm_act(...)``) into a larger ``nn.Sequential`` to keep that
    one's flat parameter names."""
    layers = [conv_nd(dims, in_chans, out_chans, kernel_size, stride, groups, bias, padding)]
    if norm:
        layers.append(norm_nd(dims, out_chans))
    if act is not None:
        layers.append(create_act(act))
    return nn.Sequential(*layers)
