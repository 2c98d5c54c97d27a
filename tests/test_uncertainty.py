"""Predictive entropy, MC dropout, expected calibration error and the reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from resattn.eval.uncertainty import (
    calibration_bins,
    expected_calibration_error,
    mc_dropout_predict,
    predictive_entropy,
    reliability_diagram,
)
from resattn.models import create_model


def small_1d(drop_rate: float) -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet18_1d", widths=(8, 16, 32, 64), stem_width=8,
                        drop_rate=drop_rate, head="linear")


# --- entropy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 5, 10])
def test_entropy_uniform_is_ln_k_and_one_hot_is_zero(k):
    uniform = np.full((3, k), 1.0 / k)
    np.testing.assert_allclose(predictive_entropy(uniform), [math.log(k)] * 3, rtol=1e-12)
    one_hot = np.eye(k)
    np.testing.assert_array_equal(predictive_entropy(one_hot), np.zeros(k))  # 0 log 0 = 0


def test_entropy_value_and_tensor_input():
    p = np.array([[0.5, 0.25, 0.25]])
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))  # = 1.5 ln 2
    np.testing.assert_allclose(predictive_entropy(p), [expected])
    out = predictive_entropy(torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]))
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor([expected, 0.0]))


# --- calibration -----------------------------------------------------------------------------

# Five samples, max probability (confidence) and whether the argmax is right:
#   [0.90, 0.10] y=0 -> conf 0.90 right     [0.30, 0.70] y=1 -> conf 0.70 right
#   [0.85, 0.15] y=1 -> conf 0.85 wrong     [0.65, 0.35] y=0 -> conf 0.65 right
#   [0.45, 0.55] y=0 -> conf 0.55 wrong
PROBS = np.array([[0.90, 0.10], [0.85, 0.15], [0.30, 0.70], [0.65, 0.35], [0.45, 0.55]])
LABELS = np.array([0, 1, 1, 0, 0])


def test_ece_hand_computed():
    # 5 bins of width 0.2:
    #   (0.8, 1.0]: 0.90, 0.85 -> acc 1/2, conf 0.875, gap 0.375, weight 2/5
    #   (0.6, 0.8]: 0.70, 0.65 -> acc 1,   conf 0.675, gap 0.325, weight 2/5
    #   (0.4, 0.6]: 0.55       -> acc 0,   conf 0.55,  gap 0.55,  weight 1/5
    # ECE = (2 * 0.375 + 2 * 0.325 + 0.55) / 5 = 1.95 / 5 = 0.39
    assert expected_calibration_error(PROBS, LABELS, n_bins=5) == pytest.approx(0.39)
    # One bin: |accuracy 3/5 - mean confidence 3.65/5| = |0.6 - 0.73| = 0.13
    assert expected_calibration_error(PROBS, LABELS, n_bins=1) == pytest.approx(0.13)
    # Tensors are accepted too.
    assert expected_calibration_error(torch.tensor(PROBS), torch.tensor(LABELS),
                                      n_bins=5) == pytest.approx(0.39)

    bins = calibration_bins(PROBS, LABELS, n_bins=5)
    np.testing.assert_array_equal(bins["count"], [0, 0, 1, 2, 2])
    np.testing.assert_allclose(bins["accuracy"], [0, 0, 0, 1, 0.5])
    np.testing.assert_allclose(bins["confidence"], [0, 0, 0.55, 0.675, 0.875])


def test_ece_edges_and_extremes():
    # A confidence on an edge belongs to the bin below it: 0.6 -> (0.4, 0.6].
    bins = calibration_bins(np.array([[0.6, 0.4]]), np.array([0]), n_bins=5)
    np.testing.assert_array_equal(bins["count"], [0, 0, 1, 0, 0])
    # Confident and right everywhere: perfectly calibrated; confident and wrong: ECE = 1.
    one_hot = np.eye(3)
    assert expected_calibration_error(one_hot, np.arange(3)) == 0.0
    assert expected_calibration_error(one_hot, np.array([1, 2, 0])) == pytest.approx(1.0)
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0)) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error(PROBS, LABELS[:3])


def test_reliability_diagram_png(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([0.5, 0.5, 0.5], size=300)
    labels = rng.integers(0, 3, 300)
    path = reliability_diagram(probs, labels, tmp_path / "sub" / "reliability.png", n_bins=10,
                               title="random")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


# --- MC dropout ------------------------------------------------------------------------------

def test_mc_dropout_without_dropout_has_zero_std():
    model = small_1d(drop_rate=0.0)
    x = torch.randn(4, 3, 128)
    mean, std = mc_dropout_predict(model, x, n_samples=5)
    assert mean.shape == std.shape == (4, 2)
    assert torch.all(std == 0)
    torch.testing.assert_close(mean.sum(1), torch.ones(4))
    # An nn.Dropout with p = 0 is no dropout either.
    model.head[0] = nn.Dropout(0.0)
    assert torch.all(mc_dropout_predict(model, x, n_samples=5)[1] == 0)


def test_mc_dropout_samples_dropout_only_and_restores_modes():
    model = small_1d(drop_rate=0.5)
    x = torch.randn(4, 3, 128)
    with torch.no_grad():
        model.train()
        model(torch.randn(8, 3, 128))  # non-default running statistics
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.random.get_rng_state()

    for training in (True, False):
        model.train(training)
        mean, std = mc_dropout_predict(model, x, n_samples=8, seed=3)
        assert (std > 0).any()
        assert std.shape == (4, 2)
        torch.testing.assert_close(mean.sum(1), torch.ones(4))
        assert all(m.training == training for m in model.modules())
        for k, v in model.state_dict().items():  # BN neither updated nor batch-normalised
            torch.testing.assert_close(v, state[k], msg=k)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # caller's RNG untouched

    # Same seed, same masks; another seed, other masks.
    again = mc_dropout_predict(model, x, n_samples=8, seed=3)
    torch.testing.assert_close(again, (mean, std))
    other = mc_dropout_predict(model, x, n_samples=8, seed=4)
    assert not torch.allclose(other[1], std)

    # Batch norm in eval mode: with dropout disabled by hand, every sample equals the plain
    # eval-mode prediction, which it would not if BN used batch statistics.
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), -1)
    model.head[0].p = 0.0
    mean0, std0 = mc_dropout_predict(model, x, n_samples=3)
    torch.testing.assert_close(mean0, expected)
    assert torch.all(std0 == 0)


def test_mc_dropout_finds_dropout_by_class_name():
    class GaussianDropout(nn.Module):  # not an nn.Dropout subclass, recognised by its name
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:
                return x
            return x * (1 + self.p ** 0.5 * torch.randn_like(x))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), GaussianDropout(0.3),
                          nn.Linear(8, 3))
    running_mean = model[1].running_mean.clone()
    mean, std = mc_dropout_predict(model, torch.randn(5, 4), n_samples=6)
    assert mean.shape == (5, 3) and (std > 0).all()
    assert all(m.training for m in model.modules())  # built in train mode, restored to it
    torch.testing.assert_close(model[1].running_mean, running_mean)
