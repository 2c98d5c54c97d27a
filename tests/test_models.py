"""Tests for resattn.models: the ResNetKAN1D shape trace, every registered model, reference
parameter counts, the Table 3 ablations and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from resattn import create_model, list_models
from resattn.errors import ConfigError
from resattn.layers import BasicBlock, Bottleneck, ChannelAttention, DualAttention, KANLinear
from resattn.models import ABLATIONS, ResNet, model_entry, resolve_config


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def resnetkan1d() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnetkan1d").eval()


def test_resnetkan1d_shape_trace(resnetkan1d: nn.Module) -> None:
    model = resnetkan1d
    x = torch.randn(2, 3, 5000)
    with torch.no_grad():
        stem_conv = model.stem[0](x)
        assert stem_conv.shape == (2, 64, 2500)
        h = model.stem(x)
        assert h.shape == (2, 64, 1250)
        channels = []
        for stage in model.stages:
            h = stage(h)
            channels.append(h.shape[1])
        assert channels == [64, 128, 256, 512]
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 157)
        torch.testing.assert_close(feats, h)
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, 512)
        torch.testing.assert_close(pooled, feats.mean(-1))
        logits = model(x)
        assert logits.shape == (2, 2)
        torch.testing.assert_close(logits, model.head(pooled))
    assert model.num_features == 512 and model.num_classes == 2 and model.dims == 1


def test_resnetkan1d_structure(resnetkan1d: nn.Module) -> None:
    blocks = [m for m in resnetkan1d.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == 8  # ResNet-18: 2 + 2 + 2 + 2
    assert all(isinstance(b, BasicBlock) for b in blocks)
    assert all(isinstance(b.attn, DualAttention) for b in blocks)
    kan = [m for m in resnetkan1d.head.modules() if isinstance(m, KANLinear)]
    assert len(kan) == 2
    assert kan[0].in_features == 512 and kan[-1].out_features == 2
    # Table 1 hyper-parameters of the KAN head.
    assert all(m.grid_size == 5 and m.order == 3 for m in kan)
    assert float(kan[0].knots.min()) == pytest.approx(-2.2)
    assert float(kan[0].knots.max()) == pytest.approx(2.2)
    assert isinstance(resnetkan1d.stem[0], nn.Conv1d)
    assert resnetkan1d.stem[0].kernel_size == (7,) and resnetkan1d.stem[0].stride == (2,)
    assert resnetkan1d.config == resolve_config({"model": "resnetkan1d"})


# ---------------------------------------------------------------------- every registered model

# Two-stage composites (backbone + classifier) have their own tests (test_forecast.py).
COMPOSITES = {"decoupled_densenet1d"}


def _model_cases() -> list:
    cases = []
    for name in sorted(set(list_models()) - COMPOSITES):
        for dims in model_entry(name).dims:
            cases.append(pytest.param(name, dims, id=f"{name}-{dims}d"))
    return cases


def test_registry_is_populated() -> None:
    names = list_models()
    expected = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet18_1d",
                "resnetkan1d", "cnn1d", "alexnet1d", "vgg11_1d", "transformer1d"}
    assert expected <= set(names)
    assert names == sorted(names)
    assert list_models("resnet1*") == ["resnet101", "resnet152", "resnet18", "resnet18_1d"]


@pytest.mark.parametrize(("name", "dims"), _model_cases())
def test_every_model_forward_backward_head(name: str, dims: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, dims=dims, num_classes=3)
    assert model.config == resolve_config({"model": name, "dims": dims, "num_classes": 3})
    chans = getattr(model, "in_chans", model_entry(name).defaults.get("in_chans", 3))
    size = (1024,) if dims == 1 else (64, 64)
    # One tensor per input (M-MFFnet has two, with in_chans per modality).
    inputs = tuple(torch.randn(2, c, *size) for c in (chans if isinstance(chans, tuple)
                                                        else (chans,)))

    # Every model, deep ones included, must train: forward, backward, finite gradients.
    model.train()
    out = model(*inputs)
    assert out.shape == (2, 3)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


    model.eval()
    with torch.no_grad():
        logits = model(*inputs)
        assert logits.shape == (2, 3) and torch.isfinite(logits).all()
        feats = model.forward_features(*inputs)
        assert feats.dim() == 2 + dims and feats.shape[:2] == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), logits)
        hidden = getattr(model, "head_hidden_size", model.num_features)
        assert model.forward_head(feats, pre_logits=True).shape == (2, hidden)

        model.reset_classifier(5)
        model.eval()
        assert model(*inputs).shape == (2, 5)
        assert model.num_classes == 5 and model.config["num_classes"] == 5
        torch.testing.assert_close(model.forward_features(*inputs), feats)  # trunk untouched


def test_reset_classifier_can_change_head_kind() -> None:
    model = create_model("resnet18_1d", widths=(8, 16, 32, 64), stem_width=8)
    model.reset_classifier(4, head="kan")
    assert any(isinstance(m, KANLinear) for m in model.head.modules())
    assert model.config["head"] == "kan"
    assert model(torch.randn(2, 3, 256)).shape == (2, 4)
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 256)).shape == (2, 64)


# ----------------------------------------------------------------- reference parameter counts


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("resnet18", {}, 11_689_512),
        ("resnet34", {}, 21_797_672),
        ("resnet50", {}, 25_557_032),
        ("resnet101", {}, 44_549_160),
        ("resnet152", {}, 60_192_808),
        ("resnet50", {"groups": 32, "base_width": 4}, 25_028_904),  # ResNeXt-50 32x4d
        ("resnet50", {"base_width": 128}, 68_883_240),  # Wide-ResNet-50-2
        ("resnext50_32x4d", {}, 25_028_904),
        ("resnet50", {"groups": 32, "width_per_group": 4}, 25_028_904),  # torchvision's names
        ("resnet50", {"width": 2}, 68_883_240),
        ("wide_resnet50_2", {}, 68_883_240),
        ("swish_resnet50", {}, 25_557_032),  # activation has no parameters
        ("deep_resnet50", {}, 44_549_160),
    ],
)
def test_reference_parameter_counts(name: str, options: dict, expected: int) -> None:
    # torchvision's counts (2-D, 3 input channels, 1000 classes). Built on the meta device: the
    # count depends only on the architecture, and no memory is filled.
    with torch.device("meta"):
        model = create_model(name, **options)
    assert model.dims == 2 and model.num_classes == 1000
    assert _n_params(model) == expected


def test_one_dimensional_resnet18_is_smaller() -> None:
    with torch.device("meta"):
        one_d = create_model("resnet18", dims=1)
    assert isinstance(one_d.stem[0], nn.Conv1d)
    # Every k x k kernel becomes k-wide: far fewer parameters than the 2-D network.
    assert 3_000_000 < _n_params(one_d) < 11_689_512


# ------------------------------------------------------------------------- Table 3 ablations


def test_table3_ablations_are_options_of_one_class() -> None:
    assert len(ABLATIONS) == 8
    assert {"attn": "dual", "head": "kan"} in ABLATIONS.values()
    assert {"attn": "none", "head": "mlp"} in ABLATIONS.values()
    classes = set()
    attn_types = {"none": nn.Identity, "channel": ChannelAttention, "dual": DualAttention}
    for label, options in ABLATIONS.items():
        model = create_model("resnet18_1d", **options)
        classes.add(type(model))
        assert model.config == resolve_config({"model": "resnet18_1d", **options}), label
        blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
        assert len(blocks) == 8, label
        kind = options["attn"]
        if kind in attn_types:
            assert all(type(b.attn) is attn_types[kind] for b in blocks), label
        has_kan = any(isinstance(m, KANLinear) for m in model.head.modules())
        assert has_kan == (options["head"] == "kan"), label
        assert model(torch.randn(1, 3, 512)).shape == (1, 2), label
    assert classes == {ResNet}


def test_full_ablation_equals_resnetkan1d() -> None:
    torch.manual_seed(3)
    full = create_model("resnet18_1d", **ABLATIONS["dual attention + KAN (full)"])
    torch.manual_seed(3)
    flagship = create_model("resnetkan1d")
    assert full.state_dict().keys() == flagship.state_dict().keys()
    for key, value in full.state_dict().items():
        assert torch.equal(value, flagship.state_dict()[key]), key


# ------------------------------------------------------------------------------------ errors


def test_unknown_model_suggests_close_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet18_1'") as info:
        create_model("resnet18_1")
    assert "resnet18_1d" in str(info.value)
    with pytest.raises(ConfigError, match="resnetkan1d"):
        model_entry("resnetkan")


def test_unknown_option_is_config_error() -> None:
    with pytest.raises(ConfigError, match="no option") as info:
        create_model("resnetkan1d", attention="dual")
    assert "attn" in str(info.value)  # the valid options are listed
    with pytest.raises(ConfigError):
        create_model("cnn1d", depth=18)


@pytest.mark.parametrize("name", ["resnetkan1d", "resnet18_1d", "transformer1d"])
def test_unsupported_dims_is_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="supports dims"):
        create_model(name, dims=2)


def test_invalid_option_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="depth"):
        create_model("resnet18", depth=20)
    with pytest.raises(ConfigError, match="dims"):
        create_model("resnet18", dims=3)
    with pytest.raises(ConfigError, match="attention"):
        create_model("resnet18_1d", attn="cbam")
    with pytest.raises(ConfigError, match="head"):
        create_model("resnet18_1d", head="svm")


def test_se_resnet50_matches_reference_within_half_percent() -> None:
    with torch.device("meta"):
        model = create_model("se_resnet50")
    assert abs(_n_params(model) - 28.09e6) / 28.09e6 < 0.005


def test_distilled_student_is_smaller_resnet50() -> None:
    with torch.device("meta"):
        student, teacher = create_model("distilled_resnet50"), create_model("resnet50")
    assert _n_params(student) < 0.3 * _n_params(teacher)
    assert student.config["model"] == "distilled_resnet50"


@pytest.mark.parametrize("dims", [1, 2])
def test_every_attention_kind_in_every_block_type(dims: int) -> None:
    from resattn.layers import BasicBlock, Bottleneck, DenseBlock, attention_kinds

    size = (32,) if dims == 1 else (8, 8)
    for kind in attention_kinds():
        for block in (BasicBlock, Bottleneck):
            layer = block(dims, 16, 8, stride=2, attn=kind)
            out = layer(torch.randn(2, 16, *size))
            assert out.shape == (2, 8 * block.expansion, *(s // 2 for s in size)), (kind, block)
        dense = DenseBlock(dims, 16, num_layers=2, growth_rate=4, attn=kind)
        assert dense(torch.randn(2, 16, *size)).shape == (2, 24, *size), kind


def test_models_list_json_names_description_and_seed() -> None:
    from conftest import run_cli

    listed = json.loads(run_cli("models", "list", "--format", "json").stdout)["models"]
    assert {m["name"] for m in listed} == set(list_models())
    for m in listed:
        assert m["description"] and m["seeds"], m


def test_fpn_is_an_option_of_the_resnet_builder() -> None:
    from resattn.models import FPNResNet

    with torch.device("meta"):
        as_option, registered = create_model("resnet50", fpn=True), create_model("fpn_resnet50")
    assert isinstance(as_option, FPNResNet)
    assert _n_params(as_option) == _n_params(registered)
    small = create_model("resnet18", fpn=True, dims=1, num_classes=4, widths=(8, 16, 32, 64),
                         stem_width=8, width_per_group=64)
    assert small(torch.randn(2, 3, 256)).shape == (2, 4)
