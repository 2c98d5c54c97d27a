"""Multi-scale and multi-modal feature fusion on the ResNet trunk (review of ResNet-50
optimisations, seed 001: Sec. II.C FPN-ResNet50, Sec. II.H HFF-SEnet and M-MFFnet).

- ``FPNResNet`` (``fpn_resnet50``): stage outputs C2..C5 -> ``FeaturePyramid`` -> P2..P5, each
  globally average-pooled and concatenated (or summed) for the classifier.
- ``HFFSENet`` (``hff_senet``): the Figure 10 listing. After every stage an HFF module (1x1 conv,
  3x3 conv, sigmoid gate) refines that stage's output *in series*; the listing does not pool or
  concatenate levels, and neither does this model.
- ``MMFFNet`` (``m_mffnet``): the Figure 12 listing. Two inputs, a ResNet trunk each, the last
  maps fused by a 1x1 conv per modality, concatenation and a 1x1 conv; then pool + classifier.

Every trunk is a ``ResNet`` built with ``num_classes=0`` (no classifier), never a copy of its
layers, so ``backbone.stem.*``/``backbone.stages.*`` load from a ResNet checkpoint's
``stem.*``/``stages.*``. The listings' torchvision ImageNet weights are not available here: all
models start from random initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers import conv_nd, norm_nd
from ..layers.fpn import FeaturePyramid
from .base import Classifier
from .registry import register_config
from .resnet import ResNet, resnet

_REVIEW = "ResNet-50 optimisation review (seed 001)"
FPN_FUSIONS = ("concat", "sum")
HFF_GATES = ("pixel", "se")


# --------------------------------------------------------------------------------- the trunk


# ResNet options a fusion model passes through ``**trunk`` to its backbone(s), with their
# defaults: the registry lists and validates them as the model's own options.
TRUNK_OPTIONS = {
    name: default for name, default in resnet.extra_options.items()
    if name not in ("depth", "dims", "in_chans", "num_classes", "head", "head_hidden",
                    "drop_rate")  # set by the fusion model itself
}


def resnet_trunk(depth: int, dims: int, in_chans: int, **options) -> ResNet:
    """A ResNet without classifier (``num_classes=0``); use its ``stem`` and ``stages``."""
    return ResNet(depth=depth, dims=dims, in_chans=in_chans, num_classes=0, **options)


# ------------------------------------------------------------------------------- FPN-ResNet50


class FPNResNet(Classifier):
    """ResNet + Feature Pyramid Network for classification.

    ``forward_features``: (B, C_in, *S) -> (B, num_features, *S/4): the pyramid levels on P2's
    grid (P3..P5 nearest-upsampled), concatenated along channels (``fusion="concat"``,
    num_features = 4 * fpn_channels) or summed (``fusion="sum"``, num_features = fpn_channels).
    Every level is in this map, so Grad-CAM on it sees all scales, and the inherited
    ``forward_head`` (global average pool + head) *is* the fused pooled vector: nearest
    upsampling by an integer factor repeats each value equally often, so the pool equals the
    per-level pools concatenated (or summed) whenever the input size is a multiple of 32. For other
    sizes it repeats some values once more than others, which the pool weights slightly more.
    ``forward_pyramid`` returns [P2, ..., P5] themselves.

    Args:
        fpn_channels: width of every pyramid level (256 in Lin et al.).
        fusion: ``concat`` or ``sum`` of the pooled levels.
        head, head_hidden, drop_rate: the classifier, as ``ResNet``.
        trunk: further ``ResNet`` options for the backbone (attn, act, widths, groups, ...).
    """

    extra_options = TRUNK_OPTIONS

    def __init__(
        self,
        depth: int = 50,
        dims: int = 2,
        in_chans: int = 3,
        num_classes: int = 1000,
        fpn_channels: int = 256,
        fusion: str = "concat",
        head: str = "linear",
        head_hidden: int = 64,
        drop_rate: float = 0.0,
        **trunk,
    ) -> None:
        super().__init__()
        if fusion not in FPN_FUSIONS:
            raise ConfigError(f"fusion must be one of {list(FPN_FUSIONS)}, got {fusion!r}")
        self.fusion = fusion
        self.backbone = resnet_trunk(depth, dims, in_chans, **trunk)
        self.pyramid = FeaturePyramid(self.backbone.stage_channels, fpn_channels, dims)
        levels = len(self.pyramid.in_channels)
        num_features = fpn_channels * levels if fusion == "concat" else fpn_channels
        self._init_head(dims, num_features, num_classes, head, head_hidden, drop_rate)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, *S) -> [P2, P3, P4, P5], each (B, fpn_channels, *S/2^k), k = 2..5."""
        return self.pyramid(self.backbone.forward_stages(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.forward_pyramid(x)
        size = levels[0].shape[2:]
        aligned = [levels[0]] + [F.interpolate(p, size=size, mode="nearest") for p in levels[1:]]
        if self.fusion == "concat":
            return torch.cat(aligned, dim=1)  # (B, levels * fpn_channels, *S/4)
        return sum(aligned[1:], aligned[0])  # (B, fpn_channels, *S/4)


# ---------------------------------------------------------------------------------- HFF-SEnet


class HierarchicalFeatureFusion(nn.Module):
    """The HFF module of Figure 10: 1x1 conv -> 3x3 conv -> multiply by a sigmoid gate.

    (B, in_channels, *S) -> (B, out_channels, *S). The gate is the listing's two 1x1 convs
    (``out // reduction`` hidden, ReLU, sigmoid). With ``squeeze=False`` (the listing) it is
    applied at every position, so each position and channel gets its own weight; the listing has
    no global pooling although the model is called SE. ``squeeze=True`` averages over space
    first: a true squeeze-and-excitation gate, one weight per channel, same parameters. As in the
    listing there is no normalisation, activation or shortcut, so conv1 and conv2 compose to one
    linear 3x3 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2, reduction: int = 4,
                 squeeze: bool = False) -> None:
        super().__init__()
        hidden = max(out_channels // reduction, 1)
        self.squeeze = squeeze
        self.conv1 = conv_nd(dims, in_channels, out_channels, 1, bias=True)
        self.conv2 = conv_nd(dims, out_channels, out_channels, 3, bias=True)
        self.attention = nn.Sequential(
            conv_nd(dims, out_channels, hidden, 1, bias=True),
            nn.ReLU(inplace=True),
            conv_nd(dims, hidden, out_channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Gate of the conv2 output ``x``: (B, C, *S), or (B, C, 1, ...) when squeezing."""
        if self.squeeze:
            x = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        return self.attention(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        return x * self.gate(x)


class HFFSENet(Classifier):
    """HFF-SEnet (Figure 10): stem -> [stage_i -> HFF_i] x 4 -> global average pool -> head.

    ``forward_features``: (B, C_in, *S) -> (B, C5, *S/32), the last HFF module's output (2048
    channels for depth 50, the listing's torchvision ResNet-50). Each HFF keeps its stage's
    channel count (256, 512, 1024, 2048 as in the listing), so the next stage is unchanged.

    Args:
        hff_gate: ``pixel`` (listing: gate per position) or ``se`` (global pooling first).
        hff_reduction: hidden width of the gate is channels // hff_reduction (4 in the listing).
        attn: attention inside every residual block of the trunk (``none`` in the listing).
        head, head_hidden, drop_rate: the classifier; trunk: ``ResNet`` backbone options.
    """

    extra_options = TRUNK_OPTIONS

    def __init__(
        self,
        depth: int = 50,
        dims: int = 2,
        in_chans: int = 3,
        num_classes: int = 1000,
        hff_gate: str = "pixel",
        hff_reduction: int = 4,
        head: str = "linear",
        head_hidden: int = 64,
        drop_rate: float = 0.0,
        **trunk,
    ) -> None:
        super().__init__()
        if hff_gate not in HFF_GATES:
            raise ConfigError(f"hff_gate must be one of {list(HFF_GATES)}, got {hff_gate!r}")
        self.backbone = resnet_trunk(depth, dims, in_chans, **trunk)
        chans = self.backbone.stage_channels
        self.hff = nn.ModuleList(
            HierarchicalFeatureFusion(c, c, dims, hff_reduction, squeeze=hff_gate == "se")
            for c in chans
        )
        self._init_head(dims, chans[-1], num_classes, head, head_hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone.stem(x)
        for stage, hff in zip(self.backbone.stages, self.hff, strict=True):
            x = hff(stage(x))
        return x


# ----------------------------------------------------------------------------------- M-MFFnet


class MultiModalFeatureFusion(nn.Module):
    """The fusion module of Figure 12: a 1x1 conv per modality to ``out_channels``, concatenate,
    a 1x1 conv back to ``out_channels``.

    (B, in_a, *S), (B, in_b, *S) -> (B, out_channels, *S). The listing has no normalisation or
    activation, so the module is linear (and, after average pooling, so is everything up to the
    logits); ``norm_act=True`` adds batch norm + ReLU after the fusion conv.
    """

    def __init__(self, in_a: int, in_b: int, out_channels: int = 256, dims: int = 2,
                 norm_act: bool = False) -> None:
        super().__init__()
        self.conv1 = conv_nd(dims, in_a, out_channels, 1, bias=True)
        self.conv2 = conv_nd(dims, in_b, out_channels, 1, bias=True)
        self.fusion = conv_nd(dims, 2 * out_channels, out_channels, 1, bias=True)
        self.post = (
            nn.Sequential(norm_nd(dims, out_channels), nn.ReLU(inplace=True))
            if norm_act else nn.Identity()
        )

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        if x_a.shape[0] != x_b.shape[0] or x_a.shape[2:] != x_b.shape[2:]:
            raise ValueError(
                "MultiModalFeatureFusion needs maps of the same batch size and spatial size, got "
                f"{tuple(x_a.shape)} and {tuple(x_b.shape)}"
            )
        return self.post(self.fusion(torch.cat([self.conv1(x_a), self.conv2(x_b)], dim=1)))


class MMFFNet(Classifier):
    """M-MFFnet (Figure 12): two inputs, a ResNet trunk each, fused last maps, pool, head.

    A two-input model: ``forward(x_a, x_b)`` and ``forward_features(x_a, x_b)`` take one tensor
    per modality, (B, in_chans_a, *S_a) and (B, in_chans_b, *S_b), and give (B, num_classes) and
    the fused map (B, fusion_channels, *S/32). Both inputs need the same batch size, and sizes
    that give the same final map size. ``forward_head`` and ``reset_classifier`` are the usual
    one-tensor ones (they act on the fused map). Code that calls ``model(x)`` with one tensor
    (trainer, summary, registry-wide tests) must check ``num_inputs`` (2 here) and pass two.

    Args:
        depth, depth_b: trunk depths of modality a and b (``depth_b=None``: same as ``depth``).
        shared_backbone: run both inputs through ONE trunk, as the listing's code does (its one
            ``self.resnet``); needs ``in_chans_a == in_chans_b`` and one depth. The default,
            separate trunks, lets the modalities differ in channels and learn their own filters.
        fusion_channels: width of the fused map (256 in the listing).
        fusion_norm_act: batch norm + ReLU after the fusion conv (the listing has none).
        head, head_hidden, drop_rate: the classifier; trunk: ``ResNet`` options for both trunks.
    """

    extra_options = TRUNK_OPTIONS

    num_inputs = 2

    def __init__(
        self,
        depth: int = 50,
        dims: int = 2,
        in_chans_a: int = 3,
        in_chans_b: int = 3,
        num_classes: int = 1000,
        depth_b: int | None = None,
        shared_backbone: bool = False,
        fusion_channels: int = 256,
        fusion_norm_act: bool = False,
        head: str = "linear",
        head_hidden: int = 64,
        drop_rate: float = 0.0,
        **trunk,
    ) -> None:
        super().__init__()
        depth_b = depth if depth_b is None else depth_b
        if shared_backbone and (in_chans_a != in_chans_b or depth_b != depth):
            raise ConfigError(
                "shared_backbone needs one trunk for both inputs: in_chans_a == in_chans_b and "
                f"depth_b == depth, got in_chans {in_chans_a}/{in_chans_b}, depth {depth}/{depth_b}"
            )
        self.in_chans = (in_chans_a, in_chans_b)
        self.backbone_a = resnet_trunk(depth, dims, in_chans_a, **trunk)
        # Registering one module under two names would save its tensors twice (safetensors
        # refuses shared tensors), so a shared trunk is only ``backbone_a``; backbone_b is None.
        self.backbone_b = None if shared_backbone else resnet_trunk(
            depth_b, dims, in_chans_b, **trunk
        )
        self.mmff = MultiModalFeatureFusion(
            self.backbone_a.stage_channels[-1],
            (self.backbone_b or self.backbone_a).stage_channels[-1],
            fusion_channels, dims, norm_act=fusion_norm_act,
        )
        self._init_head(dims, fusion_channels, num_classes, head, head_hidden, drop_rate)

    @property
    def shared_backbone(self) -> bool:
        return self.backbone_b is None

    def _check_inputs(self, x_a: torch.Tensor, x_b: torch.Tensor) -> None:
        for name, x, chans in (("x_a", x_a, self.in_chans[0]), ("x_b", x_b, self.in_chans[1])):
            if x.dim() != self.dims + 2 or x.shape[1] != chans:
                raise ValueError(
                    f"M-MFFnet {name} must be (B, {chans}, {'L' if self.dims == 1 else 'H, W'}), "
                    f"got {tuple(x.shape)}"
                )
        if x_a.shape[0] != x_b.shape[0]:
            raise ValueError(
                "M-MFFnet needs the same batch size for both inputs (sample i of x_a pairs with "
                f"sample i of x_b), got x_a {x_a.shape[0]} and x_b {x_b.shape[0]}"
            )

    def forward_features(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self._check_inputs(x_a, x_b)
        trunk_b = self.backbone_a if self.backbone_b is None else self.backbone_b
        feat_a = self.backbone_a.forward_features(x_a)  # (B, C5_a, *S_a/32)
        feat_b = trunk_b.forward_features(x_b)  # (B, C5_b, *S_b/32)
        if feat_a.shape[2:] != feat_b.shape[2:]:
            raise ValueError(
                f"M-MFFnet inputs of sizes {tuple(x_a.shape[2:])} and {tuple(x_b.shape[2:])} give "
                f"final maps {tuple(feat_a.shape[2:])} and {tuple(feat_b.shape[2:])}; the fusion "
                "concatenates them, so resize the inputs to give the same map size"
            )
        return self.mmff(feat_a, feat_b)  # (B, fusion_channels, *S/32)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.forward_head(self.forward_features(x_a, x_b))


# ----------------------------------------------------------------------------- registrations

fpn_resnet50 = register_config(
    "fpn_resnet50", FPNResNet,
    "FPN-ResNet50: feature pyramid on the four stages, P2..P5 pooled and concatenated",
    paper=_REVIEW, depth=50,
)
hff_senet = register_config(
    "hff_senet", HFFSENet,
    "HFF-SEnet: ResNet-50 with a 1x1-conv, 3x3-conv, sigmoid-gate HFF module after each stage",
    paper=_REVIEW, depth=50,
)
m_mffnet = register_config(
    "m_mffnet", MMFFNet,
    "M-MFFnet: two inputs, a ResNet-50 trunk each, last maps fused by 1x1 convs; "
    "model(x_a, x_b)",
    paper=_REVIEW, depth=50,
)
