"""Tests for ARN-CNN (seed 004, Figure 2) and the 1-D DenseNet backbone and classifier
(seed 003, Table I and Fig. 3)."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import pytest
import torch
from torch import nn

from resattn import create_model
from resattn.layers import ARNAttention, BasicBlock, CosineLinear, create_attn
from resattn.layers.dense import DenseBlock, DenseLayer, Transition
from resattn.models import resolve_config

# Figure 2 of seed 004, every Conv2D row in order: (output channels, side, parameters).
ARN_CONV_TABLE = [
    (32, 62, 320),  # conv2d
    (32, 31, 1056), (32, 31, 1056), (32, 31, 1056), (32, 31, 1056),  # conv2d_1..4
    (64, 31, 18496), (64, 31, 36928),  # conv2d_5, conv2d_6
    (64, 31, 4160), (64, 31, 4160),  # conv2d_7, conv2d_8
    (64, 31, 2112),  # conv2d_9 (shortcut)
    (64, 13, 36928), (64, 13, 4160), (64, 13, 4160),  # conv2d_10..12
    (256, 11, 147712),  # conv2d_13
    *[(256, 5, 65792)] * 8,  # conv2d_14..21
    (125, 5, 32125),  # conv2d_22
]
ARN_DENSE_TABLE = [(256, 800256), (6, 1542)]  # dense, dense_1


@pytest.fixture(scope="module")
def arn_mod() -> ModuleType:
    """resattn.models.arn_cnn, imported (which registers arn_cnn and the "arn" attention) when
    the tests run, not at collection: other files parametrise over the registry then."""
    return importlib.import_module("resattn.models.arn_cnn")


@pytest.fixture(scope="module")
def dense_mod() -> ModuleType:
    """resattn.models.densenet1d (registers densenet1d and densenet1d_classifier)."""
    return importlib.import_module("resattn.models.densenet1d")


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def arn(arn_mod: ModuleType) -> nn.Module:
    torch.manual_seed(0)
    return create_model("arn_cnn").eval()


# ------------------------------------------------------------------------------------ ARN-CNN


def test_arn_cnn_parameter_count(arn: nn.Module) -> None:
    assert _trainable(arn) == 1_623_875
    # The paper's 1,624,131 adds the two batch norms' moving mean and variance (buffers here).
    stats = sum(b.numel() for name, b in arn.named_buffers() if "running" in name)
    assert stats == 2 * 2 * 64
    assert _trainable(arn) + stats == 1_624_131
    assert arn.config == resolve_config({"model": "arn_cnn"})
    assert (arn.num_classes, arn.num_features, arn.head_hidden_size) == (6, 125, 256)


def test_arn_cnn_layer_table(arn: nn.Module) -> None:
    """Every conv and dense layer fires in the table's order with its shape and parameters."""
    seen: list[tuple[tuple[int, ...], int]] = []
    hooks = [
        m.register_forward_hook(
            lambda mod, _i, out: seen.append((tuple(out.shape), sum(
                p.numel() for p in mod.parameters())))
        )
        for m in arn.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            logits = arn(torch.randn(2, 1, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    expected = [((2, c, s, s), n) for c, s, n in ARN_CONV_TABLE]
    expected += [((2, f), n) for f, n in ARN_DENSE_TABLE]
    assert seen == expected
    assert logits.shape == (2, 6)


def test_arn_cnn_stage_shapes_and_head(arn: nn.Module, arn_mod: ModuleType) -> None:
    shapes: dict[str, tuple[int, ...]] = {}
    stages = dict(arn.features.named_children())
    watched = {**stages, "res.branch": arn.features.res.branch, "stem.conv": stages["stem"][0],
               "conv3.conv": stages["conv3"][0]}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=k: shapes.__setitem__(
        key, tuple(out.shape[1:]))) for k, m in watched.items()]
    x = torch.randn(2, 1, 64, 64)
    try:
        with torch.no_grad():
            feats = arn.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    assert shapes == {
        "stem.conv": (32, 62, 62), "stem": (32, 31, 31), "attn1": (32, 31, 31),
        "res.branch": (64, 31, 31), "res": (64, 15, 15), "conv2": (64, 13, 13),
        "attn2": (64, 13, 13), "conv3.conv": (256, 11, 11), "conv3": (256, 5, 5),
        "attn3": (256, 5, 5), "conv_out": (125, 5, 5),
    }
    assert feats.shape == (2, 125, 5, 5) and (feats >= 0).all()  # ReLU output, for Grad-CAM
    with torch.no_grad():
        pre = arn.forward_head(feats, pre_logits=True)
        # Flatten, not global pooling: the pooling to the 5x5 grid is an exact identity.
        torch.testing.assert_close(pre, arn.fc(feats.flatten(1)), rtol=0, atol=0)
        assert pre.shape == (2, 256)
        torch.testing.assert_close(arn.forward_head(feats), arn.head(pre))
    attns = [m for m in arn.modules() if isinstance(m, ARNAttention)]
    assert len(attns) == 8  # 2 + 1 (residual block) + 1 + 4
    drop = [m for m in arn.head.modules() if isinstance(m, nn.Dropout)]
    assert len(drop) == 1 and drop[0].p == pytest.approx(0.45)
    assert isinstance(arn.fc[1], nn.GELU)


def test_arn_cnn_reset_classifier_keeps_dense_256(arn_mod: ModuleType) -> None:
    torch.manual_seed(1)
    model = create_model("arn_cnn", dims=1).eval()
    x = torch.randn(2, 1, 64)
    with torch.no_grad():
        feats, pre = model.forward_features(x), model.forward_head(model.forward_features(x), True)
        assert feats.shape == (2, 125, 5)
        fc_weight = model.fc[0].weight.clone()
        model.reset_classifier(3, head="normalized")
        model.eval()
        assert model(x).shape == (2, 3)
        assert torch.equal(model.fc[0].weight, fc_weight)  # only dense_1 is replaced
        assert any(isinstance(m, CosineLinear) for m in model.head.modules())
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre)


def test_arn_cnn_table6_ablations_change_the_network(arn_mod: ModuleType) -> None:
    counts = {}
    for label, options in arn_mod.ARN_ABLATIONS.items():
        model = create_model("arn_cnn", input_size=32, **options)
        counts[label] = _trainable(model)
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 6), label
    no_attn, no_res, full = counts.values()
    assert full - no_attn == 4 * 1056 + 4 * 4160 + 8 * 65792  # the 8 attention modules' convs
    assert full - no_res == 2112  # the 1x1 shortcut conv


def test_arn_attention_weights_and_shape(arn_mod: ModuleType) -> None:
    torch.manual_seed(2)
    for dims, shape in ((2, (2, 16, 9, 7)), (1, (2, 16, 33))):
        attn = create_attn("arn", 16, dims=dims)
        assert isinstance(attn, ARNAttention)
        x = torch.randn(shape)
        with torch.no_grad():
            weights = attn.weights(x)
            out = attn(x)
        assert weights.shape == x.shape and out.shape == x.shape
        assert (weights > 0).all() and (weights < 1).all()
        torch.testing.assert_close(out, x * weights)
        assert weights.std() > 0  # not a constant gate


def test_arn_attention_in_resnet18(arn_mod: ModuleType) -> None:
    torch.manual_seed(3)
    model = create_model("resnet18", attn="arn", num_classes=3)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8 and all(isinstance(b.attn, ARNAttention) for b in blocks)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------------- DenseNet


def test_dense_layers_concatenate_and_downsample() -> None:
    torch.manual_seed(4)
    x = torch.randn(2, 24, 16)
    block = DenseBlock(1, 24, num_layers=2, growth_rate=12, drop_rate=0.2).eval()
    out = block(x)
    assert out.shape == (2, 48, 16) and block.out_chans == 48
    assert torch.equal(out[:, :24], x)  # the input is passed on unchanged
    assert Transition(1, 48, 24)(out).shape == (2, 24, 8)
    bottleneck = DenseLayer(2, 24, 12, bn_size=4)
    assert bottleneck(torch.randn(2, 24, 5, 5)).shape == (2, 12, 5, 5)
    assert sum(isinstance(m, nn.Conv2d) for m in bottleneck.modules()) == 2


def test_densenet1d_table1_forward_backward(dense_mod: ModuleType) -> None:
    torch.manual_seed(5)
    model = create_model("densenet1d", in_chans=10)
    assert model.config == resolve_config({"model": "densenet1d", "in_chans": 10})
    channels: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: channels.append(out.shape[1]))
             for m in (model.stem, *model.stages, model.norm)]
    x = torch.randn(4, 10, 16)  # 4 samples, 10 features, 16 weeks
    logits = model(x)
    for h in hooks:
        h.remove()
    assert channels == [24, 48, 24, 48, 24, 48, 24, 48, 48]  # Table I
    assert logits.shape == (4, 5)
    assert model.forward_features(x).shape == (4, 48, 2)  # 16 weeks halved three times
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_densenet1d_xavier_zero_bias_init(dense_mod: ModuleType) -> None:
    torch.manual_seed(6)
    model = create_model("densenet1d", in_chans=10)
    linear = model.head[-1]
    assert isinstance(linear, nn.Linear) and linear.weight.shape == (5, 48)
    bound = math.sqrt(6 / (48 + 5))  # Xavier-uniform; PyTorch's default bound is 1/sqrt(48)
    assert torch.equal(linear.bias, torch.zeros(5))
    assert linear.weight.abs().max() <= bound
    assert linear.weight.abs().max() > 0.9 * bound > 1 / math.sqrt(48)
    conv = model.stem[0]
    conv_bound = math.sqrt(6 / (10 * 3 + 24 * 3))
    assert 0.9 * conv_bound < conv.weight.abs().max() <= conv_bound
    model.reset_classifier(2)  # a new classifier starts the same way
    assert torch.equal(model.head[-1].bias, torch.zeros(2))


def test_dense_classifier_normalized_logits_are_bounded(dense_mod: ModuleType) -> None:
    torch.manual_seed(7)
    backbone = create_model("densenet1d", in_chans=6).eval()
    weekly = torch.randn(4, 6, 16)
    with torch.no_grad():
        fused = dense_mod.fuse_features(backbone.forward_features(weekly), weekly)
    assert fused.shape == (4, 48 + 6, 2)
    torch.testing.assert_close(fused[:, 48:], weekly.view(4, 6, 2, 8).mean(-1))

    model = create_model("densenet1d_classifier", in_chans=54, seq_len=2, head="normalized")
    model.eval()  # one deterministic pass for logits and pre-logits
    cosine = model.head[-1]
    assert isinstance(cosine, CosineLinear)
    fc = [m for m in (*model.fc, cosine) if isinstance(m, (nn.Linear, CosineLinear))]
    assert len(fc) == 3  # three fully connected layers, the last one cosine
    logits = model(fused * 100)  # large inputs: a linear layer would give large logits
    assert logits.shape == (4, 5)
    assert (logits.abs() <= cosine.scale + 1e-4).all()
    pre = model.forward_head(model.forward_features(fused * 100), pre_logits=True)
    expected = cosine.scale * nn.functional.cosine_similarity(
        pre.unsqueeze(1), cosine.weight.unsqueeze(0), dim=-1)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    logits.sum().backward()
    assert cosine.weight.grad is not None and torch.isfinite(cosine.weight.grad).all()
