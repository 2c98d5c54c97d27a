"""Code that runs a model in eval mode for a moment (inference, Grad-CAM, summaries, MC dropout)
gives every module back its own training flag (``resattn.layers.eval_mode``)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from resattn.engine.inference import predict_proba
from resattn.eval.uncertainty import mc_dropout_predict
from resattn.explain.gradcam import grad_cam
from resattn.models import create_model
from resattn.models.summary import summarize


def _flags(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_users_restore_mixed_flags() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18_1d", widths=(4, 8, 8, 8), stem_width=4, drop_rate=0.3)
    model.train()
    model.stem.eval()  # a frozen stem while the rest trains
    before = _flags(model)
    x = torch.randn(4, 3, 64)
    probs, _, _ = predict_proba(model, TensorDataset(x, torch.tensor([0, 1, 0, 1])))
    assert probs.shape == (4, 2) and _flags(model) == before
    assert grad_cam(model, x).shape == (4, 64) and _flags(model) == before
    assert summarize(model, (3, 64))["output_shape"] == [1, 2] and _flags(model) == before
    mean, std = mc_dropout_predict(model, x, n_samples=3)
    assert mean.shape == std.shape == (4, 2) and float(std.max()) > 0
    assert _flags(model) == before


def test_predict_proba_is_eval_mode_inside() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18_1d", widths=(4, 8, 8, 8), stem_width=4, drop_rate=0.5)
    x = torch.randn(3, 3, 64)
    data = TensorDataset(x, torch.zeros(3, dtype=torch.long))
    model.train()
    first, _, _ = predict_proba(model, data)
    second, _, _ = predict_proba(model, data)
    assert (first == second).all()  # no dropout sampling: eval inside
    assert model.training
