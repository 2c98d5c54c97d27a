"""Tests for resattn.layers: KAN B-splines against an independent Cox-de Boor evaluation,
attention modules, residual blocks and classifier heads."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resattn.errors import ConfigError
from resattn.layers import (
    HEAD_KINDS,
    KAN,
    BasicBlock,
    Bottleneck,
    ChannelAttention,
    DualAttention,
    KANLinear,
    SpatialAttention,
    SqueezeExcite,
    attention_kinds,
    bspline_basis,
    conv_norm_act,
    create_attn,
    create_head,
    eval_mode,
    uniform_knots,
)

# ResNetKAN1D Table 1: grid size 5, order 3, grid range [-1, 1] -> h = 0.4, knots extended by
# ``order`` intervals on each side: -1 - 3h ... 1 + 3h.
GRID, ORDER, H = 5, 3, 0.4
REF_KNOTS = [-1.0 + (j - ORDER) * H for j in range(GRID + 2 * ORDER + 1)]
N_BASIS = GRID + ORDER


def cox_de_boor(i: int, p: int, t: float, knots: list[float]) -> float:
    """Textbook B-spline N_{i,p}(t): half-open indicator at p = 0, recursion with 0/0 := 0."""
    if p == 0:
        return 1.0 if knots[i] <= t < knots[i + 1] else 0.0
    left_den = knots[i + p] - knots[i]
    right_den = knots[i + p + 1] - knots[i + 1]
    left = 0.0 if left_den == 0 else (t - knots[i]) / left_den * cox_de_boor(i, p - 1, t, knots)
    right = (
        0.0
        if right_den == 0
        else (knots[i + p + 1] - t) / right_den * cox_de_boor(i + 1, p - 1, t, knots)
    )
    return left + right


def reference_bases(x: torch.Tensor, knots: list[float], order: int) -> torch.Tensor:
    """(B, F) -> (B, F, len(knots) - 1 - order) by scalar loops (float64)."""
    n = len(knots) - 1 - order
    out = torch.zeros(*x.shape, n, dtype=torch.float64)
    for b in range(x.shape[0]):
        for f in range(x.shape[1]):
            t = float(x[b, f])
            for i in range(n):
                out[b, f, i] = cox_de_boor(i, order, t, knots)
    return out


def test_cox_de_boor_reference_itself() -> None:
    # Guard the reference: a uniform cubic B-spline at a knot has the values 1/6, 4/6, 1/6.
    values = [cox_de_boor(i, 3, REF_KNOTS[5], REF_KNOTS) for i in range(N_BASIS)]
    assert values[2] == pytest.approx(1 / 6)
    assert values[3] == pytest.approx(4 / 6)
    assert values[4] == pytest.approx(1 / 6)
    assert sum(values) == pytest.approx(1.0)


def test_default_knots_span_extended_grid() -> None:
    layer = KANLinear(4, 2)
    assert layer.grid_size == GRID and layer.order == ORDER and layer.n_basis == N_BASIS
    assert layer.knots.shape == (4, len(REF_KNOTS))
    expected = torch.tensor(REF_KNOTS, dtype=torch.float32)
    for row in layer.knots:
        torch.testing.assert_close(row, expected, rtol=0, atol=1e-6)
    assert float(layer.knots[0, 0]) == pytest.approx(-1 - 3 * H)
    assert float(layer.knots[0, -1]) == pytest.approx(1 + 3 * H)
    torch.testing.assert_close(uniform_knots(GRID, ORDER, (-1, 1)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_bspline_basis_matches_cox_de_boor(order: int) -> None:
    gen = torch.Generator().manual_seed(order)
    inside = torch.rand(16, 3, generator=gen) * 2 - 1  # [-1, 1)
    # Slightly outside [-1, 1] (still inside the extended grid) and beyond the extended grid.
    outside = torch.tensor([[-1.05, 1.05, -1.3], [1.3, -2.0, 2.1], [-2.5, 2.5, 1.0]])
    x = torch.cat([inside, outside])
    knots = uniform_knots(GRID, order, (-1, 1))
    got = bspline_basis(x, knots.expand(3, -1), order)
    want = reference_bases(x, knots.double().tolist(), order)
    assert got.shape == (x.shape[0], 3, GRID + order)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6)


def test_bspline_partition_of_unity_and_zero_outside() -> None:
    x = torch.cat([torch.linspace(-1, 1, 201), torch.rand(200) * 2 - 1]).unsqueeze(1)
    knots = uniform_knots(GRID, ORDER, (-1, 1)).unsqueeze(0)
    bases = bspline_basis(x, knots, ORDER)
    torch.testing.assert_close(bases.sum(-1), torch.ones(x.shape[0], 1), rtol=0, atol=1e-5)
    assert (bases >= 0).all()
    # Outside the extended grid every basis vanishes.
    far = torch.tensor([[-2.3], [2.3], [10.0], [-10.0]])
    assert bspline_basis(far, knots, ORDER).abs().max() == 0
    # Local support: a cubic has at most order + 1 non-zero bases at any point.
    assert int((bases > 0).sum(-1).max()) <= ORDER + 1


def test_kanlinear_equals_loop_reference() -> None:
    torch.manual_seed(0)
    layer = KANLinear(3, 2)
    with torch.no_grad():  # make the spline branch as large as the base branch
        layer.spline_weight.normal_()
    x = torch.cat([torch.rand(5, 3) * 2 - 1, torch.tensor([[-1.2, 1.2, 3.0]])])
    got = layer(x)

    xd = x.double()
    wb, ws = layer.base_weight.detach().double(), layer.spline_weight.detach().double()
    want = F.silu(xd) @ wb.T
    for b in range(x.shape[0]):
        for o in range(2):
            total = 0.0
            for f in range(3):
                for i in range(N_BASIS):
                    total += float(ws[o, f, i]) * cox_de_boor(i, ORDER, float(xd[b, f]), REF_KNOTS)
            want[b, o] += total
    assert got.dtype == torch.float32 and got.shape == (6, 2)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    # The spline term really contributes (the test would not notice it missing otherwise).
    assert (want - F.silu(xd) @ wb.T).abs().max() > 0.1


def test_kanlinear_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="expects 3 features"):
        KANLinear(3, 2)(torch.zeros(2, 4))


def test_kanlinear_under_bf16_autocast_returns_float32() -> None:
    torch.manual_seed(1)
    layer = KANLinear(8, 4)
    x = torch.rand(5, 8) * 2 - 1
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out_bf16_in = layer(x.bfloat16())
    assert out.dtype == torch.float32 and out_bf16_in.dtype == torch.float32
    torch.testing.assert_close(out, ref)  # autocast is switched off inside the layer
    torch.testing.assert_close(out_bf16_in, layer(x.bfloat16().float()))


def test_kanlinear_gradients_reach_both_weights() -> None:
    torch.manual_seed(2)
    layer = KANLinear(4, 3)
    x = (torch.rand(6, 4) * 2 - 1).requires_grad_()
    layer(x).square().sum().backward()
    assert layer.base_weight.grad is not None and layer.base_weight.grad.abs().sum() > 0
    assert layer.spline_weight.grad is not None and layer.spline_weight.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert "knots" not in dict(layer.named_parameters())  # the grid is a fixed buffer


def test_kan_stack_widths() -> None:
    kan = KAN([6, 5, 2])
    assert [m.in_features for m in kan] == [6, 5]
    assert [m.out_features for m in kan] == [5, 2]
    assert kan(torch.randn(3, 6)).shape == (3, 2)


# --------------------------------------------------------------------------------- attention


def _feature_map(dims: int, batch: int = 2, channels: int = 32) -> torch.Tensor:
    torch.manual_seed(dims)
    spatial = (40,) if dims == 1 else (9, 11)
    return torch.randn(batch, channels, *spatial)


def test_attention_kinds_listed() -> None:
    assert set(attention_kinds()) >= {"none", "se", "channel", "spatial", "dual"}


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("kind", attention_kinds())
def test_create_attn_keeps_shape(kind: str, dims: int) -> None:
    x = _feature_map(dims)
    module = create_attn(kind, 32, dims)
    out = module(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dims", [1, 2])
def test_none_attention_is_identity(dims: int) -> None:
    x = _feature_map(dims)
    for kind in ("none", None):
        module = create_attn(kind, 32, dims)
        assert sum(p.numel() for p in module.parameters()) == 0
        assert torch.equal(module(x), x)


@pytest.mark.parametrize("dims", [1, 2])
def test_attention_module_types(dims: int) -> None:
    assert isinstance(create_attn("se", 32, dims), SqueezeExcite)
    assert isinstance(create_attn("channel", 32, dims), ChannelAttention)
    assert isinstance(create_attn("spatial", 32, dims), SpatialAttention)
    dual = create_attn("dual", 32, dims)
    assert isinstance(dual, DualAttention)
    assert isinstance(dual[0], ChannelAttention) and isinstance(dual[1], SpatialAttention)
    conv = dual[1].conv
    assert conv.in_channels == 2 and conv.out_channels == 1 and conv.kernel_size[0] == 7
    assert isinstance(conv, nn.Conv1d if dims == 1 else nn.Conv2d)


@pytest.mark.parametrize("dims", [1, 2])
def test_channel_attention_weights(dims: int) -> None:
    x = _feature_map(dims)
    module = ChannelAttention(32, dims=dims)
    w = module.weights(x)
    assert w.shape == (2, 32)
    assert (w > 0).all() and (w < 1).all()
    torch.testing.assert_close(module(x), x * w.view(2, 32, *([1] * dims)))


@pytest.mark.parametrize("dims", [1, 2])
def test_spatial_attention_weights(dims: int) -> None:
    x = _feature_map(dims)
    module = SpatialAttention(32, dims=dims)
    w = module.weights(x)
    assert w.shape == (2, 1, *x.shape[2:])
    assert (w > 0).all() and (w < 1).all()
    torch.testing.assert_close(module(x), x * w)


def test_channel_attention_has_one_shared_mlp() -> None:
    channels, reduction = 64, 16
    hidden = max(channels // reduction, 8)
    module = ChannelAttention(channels, reduction, dims=1)
    # ONE MLP C -> hidden -> C (no biases) serves both descriptors: 2 * C * hidden parameters.
    # Two separate MLPs would double this, an MLP on the concatenation [avg; max] would be
    # 2C * hidden + hidden * C.
    assert sum(p.numel() for p in module.parameters()) == 2 * channels * hidden


def test_channel_attention_by_hand() -> None:
    """Tiny module, fixed weights: sigmoid(W2 relu(W1 avg) + W2 relu(W1 max))."""
    module = ChannelAttention(2, reduction=1, dims=1)  # hidden = max(2, 8) = 8
    w1 = torch.linspace(-1, 1, 16).reshape(8, 2)
    w2 = torch.linspace(1, -0.5, 16).reshape(2, 8)
    with torch.no_grad():
        module.mlp[0].weight.copy_(w1)
        module.mlp[2].weight.copy_(w2)
    x = torch.tensor([[[1.0, 3.0, -2.0], [0.5, -1.0, 4.0]]])  # (1, C=2, L=3)
    avg = torch.tensor([2.0 / 3.0, 3.5 / 3.0])
    mx = torch.tensor([3.0, 4.0])
    logits = w2 @ torch.relu(w1 @ avg) + w2 @ torch.relu(w1 @ mx)
    expected = torch.sigmoid(logits)
    torch.testing.assert_close(module.weights(x)[0], expected)
    torch.testing.assert_close(module(x)[0], x[0] * expected[:, None])


def test_spatial_attention_by_hand() -> None:
    """kernel 1 convolution: sigmoid(a * mean_c + b * max_c) per position."""
    module = SpatialAttention(kernel_size=1, dims=1)
    with torch.no_grad():
        module.conv.weight.copy_(torch.tensor([[[0.5], [-2.0]]]))
    x = torch.tensor([[[1.0, 3.0, -2.0], [0.5, -1.0, 4.0]]])
    mean = x.mean(1)
    mx = x.amax(1)
    expected = torch.sigmoid(0.5 * mean - 2.0 * mx)
    torch.testing.assert_close(module.weights(x)[0, 0], expected[0])


def test_unknown_attention_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown attention 'cbam'"):
        create_attn("cbam", 16, 1)
    with pytest.raises(ConfigError, match="dims"):
        create_attn("dual", 16, 3)


# ------------------------------------------------------------------------------ blocks/heads


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("attn", ["none", "dual"])
def test_basic_block_stride2(dims: int, attn: str) -> None:
    spatial = (32,) if dims == 1 else (16, 16)
    block = BasicBlock(dims, 16, 32, stride=2, attn=attn)
    out = block(torch.randn(2, 16, *spatial))
    assert out.shape == (2, 32, *(s // 2 for s in spatial))
    assert (out >= 0).all()  # ends in ReLU
    assert not isinstance(block.shortcut, nn.Identity)  # projection shortcut


@pytest.mark.parametrize("dims", [1, 2])
def test_bottleneck_stride2_and_grouped(dims: int) -> None:
    spatial = (32,) if dims == 1 else (16, 16)
    block = Bottleneck(dims, 16, 8, stride=2, attn="channel")
    out = block(torch.randn(2, 16, *spatial))
    assert out.shape == (2, 8 * Bottleneck.expansion, *(s // 2 for s in spatial))
    grouped = Bottleneck(dims, 32, 8, stride=2, groups=4, base_width=8)
    assert grouped.branch[3].groups == 4
    assert grouped.branch[3].in_channels == int(8 * 8 / 64) * 4
    assert grouped(torch.randn(2, 32, *spatial)).shape == (2, 32, *(s // 2 for s in spatial))


def test_identity_shortcut_when_shapes_match() -> None:
    block = BasicBlock(1, 16, 16, stride=1)
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(2, 16, 20)
    with torch.no_grad():
        block.last_norm().weight.zero_()
        block.last_norm().bias.zero_()
    # A zeroed last norm makes the block relu(shortcut(x)).
    torch.testing.assert_close(block(x), torch.relu(x))


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_create_head_output_shape(kind: str) -> None:
    torch.manual_seed(0)
    head = create_head(kind, 20, 3, hidden=16)
    out = head(torch.randn(4, 20))
    assert out.shape == (4, 3)
    assert torch.isfinite(out).all()
    assert isinstance(create_head(kind, 20, 0), nn.Identity)


def test_kan_head_has_kan_layers() -> None:
    head = create_head("kan", 20, 3, hidden=16)
    layers = [m for m in head.modules() if isinstance(m, KANLinear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(20, 16), (16, 3)]


def test_normalized_head_is_bounded_by_scale() -> None:
    head = create_head("normalized", 20, 3)
    out = head(torch.randn(8, 20) * 100)
    assert out.abs().max() <= 16.0 + 1e-4


def test_unknown_head_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown head 'softmax'"):
        create_head("softmax", 20, 3)


def test_reference_is_not_trivially_satisfied() -> None:
    # Sanity check on the recursion's 0/0 := 0 convention with repeated knots (clamped spline):
    # with knots [0, 0, 0, 1, 1, 1] (order 2) the bases are Bernstein polynomials.
    knots = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    t = 0.3
    got = [cox_de_boor(i, 2, t, knots) for i in range(3)]
    want = [(1 - t) ** 2, 2 * t * (1 - t), t**2]
    assert got == pytest.approx(want)
    assert math.isclose(sum(got), 1.0)


# ------------------------------------------------------------------------------- conv_norm_act


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_norm_act_is_conv_then_norm_then_act(dims: int) -> None:
    unit = conv_norm_act(dims, 3, 8, 5, stride=2, act="swish")
    conv, norm, act = unit
    assert isinstance(conv, (nn.Conv1d, nn.Conv2d)[dims - 1]) and conv.bias is None
    assert conv.kernel_size == (5,) * dims and conv.stride == (2,) * dims
    assert conv.padding == (2,) * dims  # 'same'-style by default
    assert isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d)[dims - 1])
    assert isinstance(act, nn.SiLU)
    assert [k for k, _ in unit.state_dict().items()][:3] == ["0.weight", "1.weight", "1.bias"]
    x = torch.randn(2, 3, *(16,) * dims)
    unit.eval()
    with torch.no_grad():
        torch.testing.assert_close(unit(x), F.silu(norm(conv(x))))
        assert unit(x).shape == (2, 8, *(8,) * dims)


def test_conv_norm_act_leaves_steps_out() -> None:
    keras = conv_norm_act(2, 1, 4, 3, bias=True, padding=0, norm=False, act="gelu")
    assert [type(m) for m in keras] == [nn.Conv2d, nn.GELU]
    assert keras[0].bias is not None and keras[0].padding == (0, 0)
    projection = conv_norm_act(1, 4, 8, 1, stride=2, act=None)
    assert [type(m) for m in projection] == [nn.Conv1d, nn.BatchNorm1d]
    # Unpacked into a larger Sequential, the children keep flat names.
    flat = nn.Sequential(*conv_norm_act(1, 2, 3), *conv_norm_act(1, 3, 3, act=None))
    assert sorted({k.split(".")[0] for k in flat.state_dict()}) == ["0", "1", "3", "4"]
    with pytest.raises(ConfigError, match="dims"):
        conv_norm_act(3, 1, 1)
    with pytest.raises(ConfigError, match="activation"):
        conv_norm_act(1, 1, 1, act="tanh")


# ----------------------------------------------------------------------------------- eval_mode


def test_eval_mode_restores_every_module_flag() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    model.train()
    model[2].eval()  # mixed flags, as a frozen part of a model in training
    before = [m.training for m in model.modules()]
    with eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
        model[1].train()  # a block may switch some modules (MC dropout does)
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before
