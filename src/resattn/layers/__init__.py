"""Building blocks with no task knowledge: conv/norm/pool by ``dims``, attention, KAN, blocks,
and ``eval_mode`` (a module's train/eval flags, switched for a block and restored)."""

from .attention import (
    ARNAttention,
    ChannelAttention,
    DualAttention,
    SpatialAttention,
    SqueezeExcite,
    attention_kinds,
    create_attn,
    register_attn,
)
from .blocks import BasicBlock, Bottleneck, drop_path
from .conv import (
    adaptive_avg_pool_nd,
    adaptive_max_pool_nd,
    avg_pool_nd,
    check_dims,
    conv_nd,
    conv_norm_act,
    create_act,
    max_pool_nd,
    norm_nd,
)
from .dense import DenseBlock, DenseLayer, Transition, xavier_init_
from .fpn import FeaturePyramid
from .heads import HEAD_KINDS, CosineLinear, create_head
from .kan import KAN, KANLinear, bspline_basis, uniform_knots
from .state import eval_mode

__all__ = [
    "HEAD_KINDS",
    "KAN",
    "ARNAttention",
    "BasicBlock",
    "Bottleneck",
    "ChannelAttention",
    "CosineLinear",
    "DenseBlock",
    "DenseLayer",
    "DualAttention",
    "FeaturePyramid",
    "KANLinear",
    "SpatialAttention",
    "SqueezeExcite",
    "Transition",
    "adaptive_avg_pool_nd",
    "adaptive_max_pool_nd",
    "attention_kinds",
    "avg_pool_nd",
    "bspline_basis",
    "check_dims",
    "conv_nd",
    "conv_norm_act",
    "create_act",
    "create_attn",
    "create_head",
    "drop_path",
    "eval_mode",
    "max_pool_nd",
    "norm_nd",
    "register_attn",
    "uniform_knots",
    "xavier_init_",
]
