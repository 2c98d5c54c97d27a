"""Grad-CAM and Grad-CAM++ for any resattn ``Classifier``, 1-D signals and 2-D images alike.

The class-activation map is computed on the last feature map (``forward_features``), the
layer the papers visualise (seed 004: "the last Conv2D layer"). No hooks: the feature map is
made a leaf tensor and only ``forward_head`` is differentiated, so the model's parameters never
receive gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers.state import eval_mode
from ..report import new_figure, save_figure

METHODS = ("gradcam", "gradcam++")
_EPS = 1e-7


def _target_index(target: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor,
                  ) -> torch.Tensor:
    """(B,) class indices: the predicted class by default, or one class for all, or one each."""
    if target is None:
        return logits.argmax(1)
    idx = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    if idx.numel() == 1:
        idx = idx.expand(logits.shape[0])
    if idx.numel() != logits.shape[0]:
        raise ValueError(f"target has {idx.numel()} entries for a batch of {logits.shape[0]}")
    if (idx < 0).any() or (idx >= logits.shape[1]).any():
        raise ValueError(f"target class out of range [0, {logits.shape[1]})")
    return idx


def _channel_weights(feats: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """(B, C, *S) activations and gradients -> (B, C) importance of each channel."""
    spatial = tuple(range(2, feats.dim()))
    if method == "gradcam":
        # Selvaraju et al. 2017: global-average-pooled gradients.
        return grads.mean(spatial)
    # Chattopadhay et al. 2018, closed form for alpha assuming the score passes through exp():
    # alpha = g^2 / (2 g^2 + sum_ab A_ab * g^3). The exp(S) factor it introduces is one positive
    # scale per sample, which the per-sample normalisation removes, so the raw score is used.
    g2, g3 = grads.pow(2), grads.pow(3)
    sum_act = feats.sum(spatial, keepdim=True)
    denom = 2 * g2 + sum_act * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (alpha * F.relu(grads)).sum(spatial)


def _normalise(cam: torch.Tensor) -> torch.Tensor:
    """Min-max scale each sample of (B, *S) to [0, 1]; a flat (e.g. all-zero) map becomes 0."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > _EPS, (flat - lo) / span.clamp_min(_EPS), torch.zeros_like(flat))
    return out.reshape(cam.shape)


def grad_cam(model: nn.Module, x: torch.Tensor,
             target: int | Sequence[int] | torch.Tensor | None = None,
             method: str = "gradcam") -> torch.Tensor:
    """Class-activation maps of ``target`` (default: the predicted class) for a batch.

    x: (B, C, L) or (B, C, H, W). Returns (B, L) or (B, H, W) in [0, 1], upsampled to the
    input's size (linear / bilinear). ``method``: ``gradcam`` or ``gradcam++``. The model is run
    in eval mode (batch norm on running statistics) and every module's training flag restored.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    if getattr(model, "num_inputs", 1) != 1:
        raise ValueError(
            f"grad_cam supports single-input models; {type(model).__name__} takes "
            f"{model.num_inputs} inputs"
        )
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ValueError("grad_cam needs a Classifier with forward_features and forward_head")
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be (B, C, L) or (B, C, H, W), got shape {tuple(x.shape)}")

    with eval_mode(model):
        with torch.no_grad():
            feats = model.forward_features(x)
        if feats.dim() != x.dim():
            raise ValueError(
                f"feature map {tuple(feats.shape)} has no spatial axes matching input "
                f"{tuple(x.shape)}"
            )
        # A leaf cut off from the trunk: gradients stop here and never reach the parameters.
        feats = feats.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model.forward_head(feats)
            idx = _target_index(target, logits)
            # Samples are independent in eval mode, so d(sum of scores)/dA_i = dscore_i/dA_i.
            score = logits.gather(1, idx[:, None]).sum()
            (grads,) = torch.autograd.grad(score, feats)

    feats = feats.detach()
    weights = _channel_weights(feats, grads, method)  # (B, C)
    shape = weights.shape + (1,) * (feats.dim() - 2)
    cam = F.relu((weights.reshape(shape) * feats).sum(1))  # (B, *S')
    mode = "linear" if x.dim() == 3 else "bilinear"
    cam = F.interpolate(cam[:, None], size=tuple(x.shape[2:]), mode=mode, align_corners=False)
    return _normalise(cam[:, 0])


def _numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().float().numpy()
    return np.asarray(a, dtype=float)


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def overlay_image(image: np.ndarray | torch.Tensor, cam: np.ndarray | torch.Tensor,
                  path: str | Path, alpha: float = 0.45, title: str = "") -> Path:
    """PNG of ``image`` ((C, H, W) or (H, W); gray from the first channel, RGB if C == 3)
    under the (H, W) ``cam`` as a semi-transparent jet heat map."""
    img, heat = _numpy(image), _numpy(cam)
    if img.ndim == 3:
        img = np.transpose(img[:3], (1, 2, 0)) if img.shape[0] == 3 else img[0]
    if img.ndim != 2 and not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"image must be (C, H, W) or (H, W), got shape {np.shape(image)}")
    if heat.ndim != 2:
        raise ValueError(f"cam must be (H, W), got shape {heat.shape}")
    img = _unit(img)  # scaled jointly for RGB so colours keep their balance
    h, w = img.shape[:2]
    extent = (0, w, h, 0)  # a CAM of another size is stretched over the image

    fig = new_figure((4.2, 4.2))
    ax = fig.add_subplot()
    ax.imshow(img, cmap=None if img.ndim == 3 else "gray", extent=extent, interpolation="nearest")
    shown = ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0, extent=extent,
                      interpolation="bilinear")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="Grad-CAM")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return save_figure(fig, Path(path))


def plot_waveform_cam(signal: np.ndarray | torch.Tensor, cam: np.ndarray | torch.Tensor,
                      path: str | Path, channel_names: str | Sequence[str] = "ENZ",
                      title: str = "") -> Path:
    """PNG of a (C, L) signal, one panel per channel over the (L,) CAM as shaded background,
    and the CAM itself as a filled curve in a bottom panel."""
    sig, heat = _numpy(signal), _numpy(cam)
    if sig.ndim == 1:
        sig = sig[None]
    if sig.ndim != 2 or heat.ndim != 1 or heat.shape[0] != sig.shape[1]:
        raise ValueError(f"signal must be (C, L) and cam (L,), got {sig.shape} and {heat.shape}")
    n_ch, length = sig.shape
    names = [channel_names[i] if i < len(channel_names) else f"ch{i}" for i in range(n_ch)]
    t = np.arange(length)

    fig = new_figure((9.0, 1.3 * n_ch + 1.3))
    axes = fig.subplots(n_ch + 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [1.0] * n_ch + [0.7]})
    for ax, trace, name in zip(axes[:-1], sig, names, strict=True):
        lo, hi = float(trace.min()), float(trace.max())
        pad = 0.05 * (hi - lo) or 1.0
        # The CAM as a colour strip behind the trace: where the model looked, along time.
        ax.imshow(heat[None], cmap="jet", alpha=0.35, aspect="auto", vmin=0.0, vmax=1.0,
                  extent=(0, length - 1, lo - pad, hi + pad), interpolation="bilinear")
        ax.plot(t, trace, color="black", lw=0.7)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(name)
    axes[-1].fill_between(t, heat, color="tab:red", alpha=0.5, lw=0)
    axes[-1].plot(t, heat, color="tab:red", lw=0.8)
    axes[-1].set_ylim(0, 1.05)
    axes[-1].set_ylabel("CAM")
    axes[-1].set_xlabel("sample")
    axes[-1].set_xlim(0, length - 1)
    if title:
        axes[0].set_title(title)
    return save_figure(fig, Path(path))
