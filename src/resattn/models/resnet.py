"""ONE ResNet builder for 1-D signals and 2-D images; every named ResNet is a set of options.

Layout (He et al. 2016): stem conv (k=7, stride 2) -> BN -> act -> max-pool (3, stride 2) ->
four stages of residual blocks (stride 1, 2, 2, 2) -> global average pool -> head.
For ResNetKAN1D on (B, 3, 5000): stem -> (B, 64, 2500), pool -> (B, 64, 1250), stages ->
(B, 512, 157), pool -> (B, 512), KAN head -> (B, 2).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import BasicBlock, Bottleneck, conv_norm_act, max_pool_nd
from .base import Classifier
from .registry import register_config

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class ResNet(Classifier):
    """Residual network; ``dims`` 1 or 2, depth 18..152, attention in every block, any head.

    Args:
        depth: 18/34 (basic blocks) or 50/101/152 (bottlenecks).
        attn: attention kind in every residual block (``none``, ``se``, ``channel``, ``spatial``,
            ``dual``).
        head: ``linear``, ``mlp``, ``kan`` or ``normalized``; ``head_hidden`` is the hidden width
            of ``mlp``/``kan``.
        groups, base_width: grouped bottlenecks (ResNeXt 32x4d: 32, 4; Wide-ResNet-50-2: 1, 128).
            ``width_per_group`` is torchvision's name for ``base_width``; ``width`` multiplies it
            (Wide-ResNet-50-2: ``width=2``).
        act: ``relu`` or ``swish``. drop_rate: dropout before the classifier. drop_path_rate:
            stochastic depth, rising linearly to this value over the blocks.
    """

    def __init__(
        self,
        depth: int = 18,
        dims: int = 2,
        in_chans: int = 3,
        num_classes: int = 1000,
        attn: str | None = "none",
        head: str = "linear",
        head_hidden: int = 64,
        act: str = "relu",
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        stem_kernel: int = 7,
        kernel_size: int = 3,
        groups: int = 1,
        base_width: int = 64,
        width_per_group: int | None = None,
        width: float = 1.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ConfigError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        base_width = int((width_per_group or base_width) * width)
        block_name, layers = DEPTHS[depth]
        block = BLOCKS[block_name]
        self.stem = nn.Sequential(
            *conv_norm_act(dims, in_chans, stem_width, stem_kernel, stride=2, act=act),
            max_pool_nd(dims, 3, stride=2, padding=1),
        )
        n_blocks, done = sum(layers), 0
        stages, chans = [], stem_width
        self.stage_channels: list[int] = []  # output channels of each stage, finest first
        for i, (width, count) in enumerate(zip(widths, layers, strict=True)):
            blocks = []
            for j in range(count):
                blocks.append(block(
                    dims, chans, width, stride=2 if (i > 0 and j == 0) else 1, attn=attn,
                    act=act, kernel_size=kernel_size, groups=groups, base_width=base_width,
                    drop_path_rate=drop_path_rate * done / max(n_blocks - 1, 1),
                ))
                chans, done = width * block.expansion, done + 1
            stages.append(nn.Sequential(*blocks))
            self.stage_channels.append(chans)
        self.stages = nn.Sequential(*stages)
        self._init_weights(zero_init_last)
        self._init_head(dims, chans, num_classes, head, head_hidden, drop_rate)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, *S) -> every stage's output, finest first (strides 4, 8, 16, 32)."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def resnet(fpn: bool = False, fpn_channels: int = 256, fpn_fusion: str = "concat",
           **options) -> Classifier:
    """ResNet from options; ``fpn=True`` adds the feature pyramid over stages 2-5 (the
    FPN-ResNet of seed 001, ``models/fusion.py``) on the same trunk."""
    if fpn:
        from .fusion import FPNResNet  # fusion builds on this module

        return FPNResNet(fpn_channels=fpn_channels, fusion=fpn_fusion, **options)
    return ResNet(**options)


resnet.extra_options = {
    name: p.default for name, p in inspect.signature(ResNet).parameters.items()
    if p.default is not inspect.Parameter.empty
}
resnet.builds = (ResNet,)  # a ResNet built from its class is saved under a resnet* name

_REF = ("He et al. 2016 (ResNet); the backbone of seeds 000 (1-D ResNet-18), 001 (ResNet-50) "
        "and 002 (ResNet-18, facial expressions)")
_KAN1D = "Di 2025, ResNetKAN1D (seed 000)"

for _depth in DEPTHS:
    register_config(f"resnet{_depth}", resnet, f"ResNet-{_depth}; options choose dims, "
                    "attention, head and fpn", paper=_REF, depth=_depth)

_REVIEW = "ResNet-50 optimisation review (seed 001)"
for _name, _description, _options in [
    ("se_resnet50", "SE-ResNet50: squeeze-and-excitation in every bottleneck", {"attn": "se"}),
    ("resnext50_32x4d", "ResNeXt50 32x4d: grouped bottlenecks (32 groups of width 4)",
     {"groups": 32, "base_width": 4}),
    ("wide_resnet50_2", "Wide-ResNet50-2: bottlenecks twice as wide", {"base_width": 128}),
    ("swish_resnet50", "Swish-ResNet50: SiLU (swish) instead of ReLU everywhere",
     {"act": "swish"}),
    ("dropout_resnet50", "Dropout-ResNet50: dropout 0.5 before the classifier and stochastic "
     "depth 0.05 over the residual blocks", {"drop_rate": 0.5, "drop_path_rate": 0.05}),
    ("deep_resnet50", "Deep-ResNet50: ResNet-50 extended in depth to 101 layers "
     "(same as resnet101)", {"depth": 101}),
    ("distilled_resnet50", "Distilled-ResNet50 student: ResNet-50 layout at half width "
     "(about a quarter of the parameters), to train from a resnet50 teacher",
     {"widths": (32, 64, 128, 256), "stem_width": 32}),
]:
    register_config(_name, resnet, _description, paper=_REVIEW, **{"depth": 50, **_options})

resnet18_1d = register_config(
    "resnet18_1d", ResNet,
    "1-D ResNet-18 with an MLP head for 3-component waveforms: the Table 2 baseline and the base "
    "of every Table 3 ablation (set attn and head)",
    supports=(1,), paper=_KAN1D, depth=18, dims=1, in_chans=3, num_classes=2, head="mlp",
)
resnetkan1d = register_config(
    "resnetkan1d", ResNet,
    "ResNetKAN1D: 1-D ResNet-18 with dual (channel + spatial) attention in every block and a "
    "B-spline KAN head",
    supports=(1,), paper=_KAN1D, depth=18, dims=1, in_chans=3, num_classes=2, attn="dual",
    head="kan",
)

# Table 3 of ResNetKAN1D: each ablation is options of resnet18_1d, never a new class.
ABLATIONS: dict[str, dict[str, str]] = {
    "baseline (ResNet18 + MLP)": {"attn": "none", "head": "mlp"},
    "+ channel attention": {"attn": "channel", "head": "mlp"},
    "+ spatial attention": {"attn": "spatial", "head": "mlp"},
    "dual attention only": {"attn": "dual", "head": "mlp"},
    "dual attention + KAN (full)": {"attn": "dual", "head": "kan"},
    "KAN only": {"attn": "none", "head": "kan"},
    "remove CA from full": {"attn": "spatial", "head": "kan"},
    "remove SA from full": {"attn": "channel", "head": "kan"},
}
