"""Prediction uncertainty and calibration: entropy, Monte-Carlo dropout, ECE, reliability plot.

Seed 004 reports, per class, the entropy of the softmax probabilities and the standard deviation
of predictions; MC dropout (Gal & Ghahramani 2016) gives that standard deviation a meaning (the
spread over sampled sub-networks), and the expected calibration error (Guo et al. 2017) measures
whether the confidences can be trusted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..layers.state import eval_mode
from ..report import new_figure, save_figure

ArrayLike = np.ndarray | torch.Tensor


def _numpy(a: ArrayLike, dtype=float) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def predictive_entropy(probs: ArrayLike) -> ArrayLike:
    """(n, K) probabilities -> (n,) Shannon entropy in nats (0 log 0 = 0); a tensor in gives a
    tensor out. Uniform over K classes: ln K; one-hot: 0."""
    if isinstance(probs, torch.Tensor):
        return -torch.special.xlogy(probs, probs).sum(-1)
    p = _numpy(probs)
    logp = np.log(np.where(p > 0, p, 1.0))  # p = 0 terms contribute 0, without log(0) warnings
    return -(p * logp).sum(-1)


def _is_dropout(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.dropout._DropoutNd) or "Dropout" in type(m).__name__


def _active_dropout(model: nn.Module) -> list[nn.Module]:
    """Dropout modules that actually drop something (p > 0; p unknown counts as active)."""
    return [m for m in model.modules() if _is_dropout(m) and float(getattr(m, "p", 1.0)) > 0]


def mc_dropout_predict(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...],
                       n_samples: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo dropout: ``n_samples`` forward passes with only dropout sampling.

    x: (B, C, *S), or a tuple of inputs for a two-input model. Returns (mean_probs, std_probs),
    both (B, K): the mean and the population standard deviation of the softmax probabilities
    over the samples. Batch norm stays in eval mode (running statistics neither used from the
    batch nor updated); stochastic depth (drop_path, tied to its block's training flag) is not
    sampled. Every module's mode is restored afterwards, and the global RNG is left untouched.
    Without active dropout all passes are identical, so the model runs once and std is 0.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    inputs = x if isinstance(x, tuple) else (x,)
    dropouts = _active_dropout(model)
    with eval_mode(model), torch.no_grad():
        if not dropouts:
            mean = torch.softmax(model(*inputs).float(), -1)
            return mean, torch.zeros_like(mean)
        for m in dropouts:
            m.train()
        device = inputs[0].device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
                if device.type == "cuda" else []
        # Seeded masks for reproducibility, in a forked RNG so the caller's stream is kept.
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            samples = torch.stack(
                [torch.softmax(model(*inputs).float(), -1) for _ in range(n_samples)]
            )  # (n_samples, B, K)
    return samples.mean(0), samples.std(0, correction=0)


def calibration_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15,
                     ) -> dict[str, np.ndarray]:
    """Equal-width confidence bins over [0, 1] (bin i holds (i/n, (i+1)/n], the first also 0).

    probs: (n, K); labels: (n,). Returns ``edges`` (n_bins + 1,) and per bin ``count``,
    ``accuracy`` and ``confidence`` (mean max-probability; 0 for an empty bin)."""
    p, y = _numpy(probs), _numpy(labels, dtype=int)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (n, K) and labels (n,), got {p.shape} and {y.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" on the inner edges: a confidence equal to an edge goes to the bin below it.
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(idx, minlength=n_bins).astype(float)
    safe = np.maximum(count, 1.0)
    return {
        "edges": edges,
        "count": count.astype(int),
        "accuracy": np.bincount(idx, weights=correct, minlength=n_bins) / safe,
        "confidence": np.bincount(idx, weights=conf, minlength=n_bins) / safe,
    }


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins,
    confidence being the max probability. probs: (n, K); labels: (n,)."""
    bins = calibration_bins(probs, labels, n_bins)
    n = bins["count"].sum()
    if n == 0:
        return 0.0
    gap = np.abs(bins["accuracy"] - bins["confidence"])
    return float((bins["count"] * gap).sum() / n)


def reliability_diagram(probs: ArrayLike, labels: ArrayLike, path: str | Path,
                        n_bins: int = 15, title: str = "") -> Path:
    """PNG: accuracy per confidence bin against the diagonal of perfect calibration (gaps
    shaded), ECE in the title, and the number of samples per bin below."""
    bins = calibration_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    edges, count = bins["edges"], bins["count"]
    left, width = edges[:-1], np.diff(edges)
    filled = count > 0

    fig = new_figure((5.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(left[filled], bins["accuracy"][filled], width=width[filled], align="edge",
            color="tab:blue", edgecolor="black", lw=0.6, label="accuracy")
    # The gap between accuracy and mean confidence, drawn from the bar up/down to confidence.
    gap_lo = np.minimum(bins["accuracy"], bins["confidence"])[filled]
    gap_h = np.abs(bins["accuracy"] - bins["confidence"])[filled]
    top.bar(left[filled], gap_h, bottom=gap_lo, width=width[filled], align="edge",
            color="tab:red", alpha=0.35, edgecolor="tab:red", hatch="//", lw=0.6, label="gap")
    top.plot([0, 1], [0, 1], ls="--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title + ' — ' if title else ''}ECE = {ece:.4f} (n = {int(count.sum())})")
    bottom.bar(left, count, width=width, align="edge", color="gray", edgecolor="black", lw=0.6)
    for x0, w, c in zip(left, width, count, strict=True):
        if c:
            bottom.text(x0 + w / 2, c, str(int(c)), ha="center", va="bottom", fontsize=6)
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("count")
    bottom.set_ylim(0, max(1, int(count.max())) * 1.25)
    return save_figure(fig, Path(path))
