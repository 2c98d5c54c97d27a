"""Tests for the fusion models of seed 001 (FPN-ResNet50, HFF-SEnet, M-MFFnet) and the
FeaturePyramid layer, in 1-D and 2-D, on narrow trunks so the whole file runs in seconds."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from resattn.errors import ConfigError
from resattn.layers.fpn import FeaturePyramid
from resattn.models import resolve_config

# ResNet-50 layout (bottlenecks, 3-4-6-3) at 1/8 width: stage channels 32, 64, 128, 256.
SMALL = {"widths": (8, 16, 32, 64), "stem_width": 8}
SMALL_STAGES = [32, 64, 128, 256]
NAMES = ["fpn_resnet50", "hff_senet", "m_mffnet"]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input(dims: int, chans: int = 3, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, chans, 1024) if dims == 1 else torch.randn(batch, chans, 64, 64)


def _inputs(model: nn.Module, dims: int) -> tuple[torch.Tensor, ...]:
    if getattr(model, "num_inputs", 1) == 2:
        return tuple(_input(dims, c) for c in model.in_chans)
    return (_input(dims),)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one thread avoids OpenMP threads waiting on each
    other (as in test_models)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fusion():
    """The module, imported when the first test runs rather than at collection: importing it
    registers the models, and test_models builds its registry-wide cases at collection time."""
    return importlib.import_module("resattn.models.fusion")


@pytest.fixture(scope="module")
def create(fusion):
    from resattn.models import create_model

    return create_model


# ------------------------------------------------------------------------------ FeaturePyramid


@pytest.mark.parametrize(
    ("dims", "sizes"),
    [(1, [256, 128, 64, 32]), (2, [16, 8, 4, 2]), (1, [250, 125, 63, 32])],  # last: odd sizes
)
def test_feature_pyramid_levels(dims: int, sizes: list[int]) -> None:
    torch.manual_seed(0)
    fpn = FeaturePyramid(SMALL_STAGES, out_channels=12, dims=dims)
    feats = [torch.randn(2, c, *([s] * dims), requires_grad=True)
             for c, s in zip(SMALL_STAGES, sizes, strict=True)]
    levels = fpn(feats)
    assert len(levels) == 4
    for p, s in zip(levels, sizes, strict=True):
        assert p.shape == (2, 12, *([s] * dims))
    # The coarsest level sees only C5; the finest one receives C5 through the top-down path.
    torch.testing.assert_close(levels[-1], fpn.smooth[-1](fpn.lateral[-1](feats[-1])))
    (grad_c5,) = torch.autograd.grad(levels[0].sum(), feats[-1])
    assert grad_c5.abs().sum() > 0
    (grad_c2,) = torch.autograd.grad(levels[-1].sum(), feats[0], allow_unused=True)
    assert grad_c2 is None  # and nothing flows bottom-up inside the pyramid


def test_feature_pyramid_rejects_wrong_levels() -> None:
    fpn = FeaturePyramid([4, 8], out_channels=4, dims=1)
    with pytest.raises(ValueError, match="expects 2 levels"):
        fpn([torch.randn(1, 4, 8)])
    with pytest.raises(ValueError, match="channels"):
        fpn([torch.randn(1, 4, 8), torch.randn(1, 4, 4)])


# -------------------------------------------------------------------- every model, 1-D and 2-D


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_features_head(create, name: str, dims: int) -> None:
    torch.manual_seed(0)
    model = create(name, dims=dims, num_classes=3, **SMALL)
    assert model.config == resolve_config({"model": name, "dims": dims, "num_classes": 3, **SMALL})
    inputs = _inputs(model, dims)

    model.train()
    out = model(*inputs)
    assert out.shape == (2, 3)
    out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, missing
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert all(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("head."))

    model.eval()
    with torch.no_grad():
        logits = model(*inputs)
        feats = model.forward_features(*inputs)
        # FPN: P2's grid (stride 4); the others: the last stage's (stride 32).
        stride = 4 if name == "fpn_resnet50" else 32
        spatial = (1024 // stride,) if dims == 1 else (64 // stride,) * 2
        assert feats.shape == (2, model.num_features, *spatial)
        torch.testing.assert_close(model.forward_head(feats), logits)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)

        model.reset_classifier(5)
        model.eval()
        assert model(*inputs).shape == (2, 5)
        assert model.num_classes == 5 and model.config["num_classes"] == 5
        torch.testing.assert_close(model.forward_features(*inputs), feats)  # trunk untouched


@pytest.mark.parametrize("name", NAMES)
def test_trunk_is_a_resnet_and_loads_its_weights(create, name: str) -> None:
    from resattn.models import ResNet

    model = create(name, num_classes=3, **SMALL)
    resnet = create("resnet50", num_classes=3, **SMALL)
    trunk = model.backbone if hasattr(model, "backbone") else model.backbone_a
    assert type(trunk) is ResNet and trunk.num_classes == 0
    result = trunk.load_state_dict(resnet.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == ["head.1.bias", "head.1.weight"]


# ----------------------------------------------------------------------------------- FPN-ResNet


@pytest.mark.parametrize("fusion_kind", ["concat", "sum"])
def test_fpn_pooled_vector_fuses_the_pooled_levels(create, fusion_kind: str) -> None:
    torch.manual_seed(0)
    model = create("fpn_resnet50", num_classes=3, fusion=fusion_kind, fpn_channels=16,
                   **SMALL).eval()
    x = _input(2)
    with torch.no_grad():
        levels = model.forward_pyramid(x)
        assert [p.shape[-1] for p in levels] == [16, 8, 4, 2]
        assert all(p.shape[1] == 16 for p in levels)
        pooled = [p.mean((2, 3)) for p in levels]
        expected = torch.cat(pooled, 1) if fusion_kind == "concat" else sum(pooled)
        assert model.num_features == (64 if fusion_kind == "concat" else 16)
        torch.testing.assert_close(model.forward_head(model.forward_features(x), True), expected)


# ------------------------------------------------------------------------------------ HFF-SEnet


def test_hff_modules_follow_the_stages(create) -> None:
    model = create("hff_senet", num_classes=3, **SMALL)
    assert [m.conv1.in_channels for m in model.hff] == SMALL_STAGES
    assert [m.conv2.out_channels for m in model.hff] == SMALL_STAGES
    assert [m.attention[0].out_channels for m in model.hff] == [c // 4 for c in SMALL_STAGES]
    assert model.num_features == SMALL_STAGES[-1]


@pytest.mark.parametrize("dims", [1, 2])
def test_hff_gate_per_position_or_squeezed(fusion, dims: int) -> None:
    torch.manual_seed(0)
    pixel = fusion.HierarchicalFeatureFusion(16, 16, dims=dims)
    squeezed = fusion.HierarchicalFeatureFusion(16, 16, dims=dims, squeeze=True)
    assert _n_params(pixel) == _n_params(squeezed)
    squeezed.load_state_dict(pixel.state_dict())
    x = torch.randn(2, 16, *([8] * dims))
    with torch.no_grad():
        g_pixel, g_se = pixel.gate(x), squeezed.gate(x)
        assert g_pixel.shape == x.shape
        assert g_se.shape == (2, 16, *([1] * dims))  # one weight per channel: a true SE gate
        assert g_pixel.flatten(2).std(-1).min() > 0  # the listing's gate varies over positions
        assert squeezed(x).shape == pixel(x).shape == x.shape


# ------------------------------------------------------------------------------------- M-MFFnet


def test_mmff_modalities_may_differ(create) -> None:
    torch.manual_seed(0)
    model = create("m_mffnet", dims=1, in_chans_a=1, in_chans_b=2, depth_b=18, num_classes=3,
                   fusion_channels=16, fusion_norm_act=True, **SMALL).eval()
    assert model.mmff.conv1.in_channels == 256 and model.mmff.conv2.in_channels == 64
    x_a, x_b = torch.randn(2, 1, 1024), torch.randn(2, 2, 1024)
    with torch.no_grad():
        assert model.forward_features(x_a, x_b).shape == (2, 16, 32)
        assert model(x_a, x_b).shape == (2, 3)


def test_mmff_rejects_mismatched_inputs(create) -> None:
    model = create("m_mffnet", dims=2, num_classes=3, **SMALL).eval()
    with pytest.raises(ValueError, match=r"same batch size.*x_a 2 and x_b 3"):
        model(_input(2, batch=2), _input(2, batch=3))
    with pytest.raises(ValueError, match=r"x_b must be \(B, 3, H, W\)"):
        model(_input(2), _input(2, chans=1))
    with pytest.raises(ValueError, match="final maps"):
        model(_input(2), torch.randn(2, 3, 128, 128))
    with pytest.raises(TypeError):
        model(_input(2))  # a two-input model: one tensor is not enough


def test_mmff_shared_backbone(create) -> None:
    separate = create("m_mffnet", num_classes=3, **SMALL)
    shared = create("m_mffnet", num_classes=3, shared_backbone=True, **SMALL)
    assert shared.shared_backbone and not separate.shared_backbone
    trunk = _n_params(separate.backbone_b)
    assert _n_params(shared) == _n_params(separate) - trunk
    assert not any(k.startswith("backbone_b.") for k in shared.state_dict())
    x = _input(2)
    shared.eval()
    with torch.no_grad():
        # Both inputs go through the one trunk (backbone_a).
        a, b = shared.backbone_a.forward_features(x), shared.backbone_a.forward_features(x)
        torch.testing.assert_close(shared.forward_features(x, x), shared.mmff(a, b))
    with pytest.raises(ConfigError, match="shared_backbone"):
        create("m_mffnet", shared_backbone=True, in_chans_a=3, in_chans_b=1, **SMALL)


# ----------------------------------------------------------------- registry, options, counts


def test_registered_with_paper(fusion) -> None:
    from resattn.models import list_models, model_entry

    assert set(NAMES) <= set(list_models())
    for name in NAMES:
        entry = model_entry(name)
        assert entry.paper.endswith("(seed 001)") and entry.description
        assert entry.dims == (1, 2) and entry.defaults["depth"] == 50


def test_invalid_options_are_config_errors(create) -> None:
    with pytest.raises(ConfigError, match="fusion"):
        create("fpn_resnet50", fusion="max")
    with pytest.raises(ConfigError, match="hff_gate"):
        create("hff_senet", hff_gate="cbam")
    with pytest.raises(ConfigError, match="depth"):
        create("m_mffnet", depth_b=20, **SMALL)


def test_parameter_counts_2d_imagenet(create) -> None:
    # 2-D, 3 input channels, 1000 classes; on the meta device (no memory is filled).
    with torch.device("meta"):
        models = {name: create(name) for name in NAMES}
    trunk = 25_557_032 - (2048 * 1000 + 1000)  # torchvision ResNet-50 without its fc
    stages = [256, 512, 1024, 2048]
    fpn = sum(c * 256 + 256 for c in stages) + 4 * (256 * 256 * 9 + 256)
    hff = sum(c * c + c + 9 * c * c + c + 2 * c * (c // 4) + c // 4 + c for c in stages)
    mmff = 2 * (2048 * 256 + 256) + 512 * 256 + 256
    assert _n_params(models["fpn_resnet50"]) == trunk + fpn + 1024 * 1000 + 1000 == 27_877_416
    assert _n_params(models["hff_senet"]) == trunk + hff + 2048 * 1000 + 1000 == 84_060_392
    assert _n_params(models["m_mffnet"]) == 2 * trunk + mmff + 256 * 1000 + 1000 == 48_453_480
