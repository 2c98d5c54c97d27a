"""Earthquake-vs-noise classification of 3-component waveforms (ResNetKAN1D, seed 000).

``train_waveform_classifier`` trains on a STEAD-layout folder with a grouped 8:1:1 split and
scores the best weights on the held-out test part; ``evaluate_waveform_classifier`` scores any
model (shipped, run directory, checkpoint) on a folder, one deterministic window per trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from ..data import WaveformDataset, WaveformWindows, check_windows, grouped_split
from ..engine.checkpoint import load_model
from ..engine.inference import predict_proba
from ..engine.precision import choose_precision
from ..engine.provenance import seed_everything
from ..engine.trainer import LossFn, TrainConfig, fit
from ..errors import ConfigError
from ..eval.metrics import classification_metrics
from ..io import atomic_write_json, atomic_write_text
from ..models import create_model
from ..pretrained import load_any

CLASS_NAMES = ["noise", "earthquake"]
POSITIVE = 1  # metrics report the earthquake class, as in the paper
PAPER_WINDOW = 5000  # 50 s at 100 Hz (ResNetKAN1D Sec. 4.1)
P_OFFSET = 0.25  # deterministic windows put P a quarter into the window


def auto_window(lengths: np.ndarray, preferred: int = PAPER_WINDOW) -> int:
    """The paper's 50 s window if every trace holds it, else 80 % of the shortest trace rounded
    down to whole seconds (so even the shortest traces get random crops, never padding)."""
    shortest = int(lengths.min())
    if shortest >= preferred:
        return preferred
    return max(100, int(0.8 * shortest) // 100 * 100)


def preprocessing(window: int, band: tuple[float, float] | None = None,
                  mix_noise: float = 0.0, sampling_rate: float = 100.0) -> dict:
    """What a user must do to feed this model: recorded in every checkpoint's JSON."""
    return {
        "bandpass_hz": list(band) if band else None,
        "mix_noise": mix_noise,
        "input": "3-component waveform, channel order E,N,Z",
        "sampling_rate_hz": sampling_rate,
        "window_samples": window,
        "window_seconds": window / sampling_rate,
        "normalisation": "per-channel zero mean, unit standard deviation over the window",
        "eval_window": f"P pick at {P_OFFSET:.0%} of the window if known, else centred",
        "train_window": "random crop keeping P within 5-75 % of the window; polarity flip and "
                        "Gaussian noise (std <= 0.1) augmentation",
        "class_names": CLASS_NAMES,
    }


def parse_band(text: str | None) -> tuple[float, float] | None:
    """``"1,20"`` -> (1.0, 20.0); ``None`` or ``"none"`` -> no band-pass."""
    if text is None or text.lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bandpass expects LOW,HIGH in Hz (e.g. 1,20), got {text!r}") from None
    return low, high


def split_indices(dataset: WaveformDataset, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  by: tuple[str, ...] = ("group",)) -> dict[str, np.ndarray]:
    """Grouped split: rows sharing any ``by`` column (e.g. record, station) stay on one side."""
    missing = [c for c in by if c not in dataset.metadata.columns]
    if missing:
        raise ConfigError(f"cannot split by {missing}: columns available are "
                          f"{sorted(dataset.metadata.columns)}")
    train, val, test = grouped_split(dataset.metadata, fractions, seed=seed, by=by)
    return {"train": train, "val": val, "test": test}


def split_from_names(dataset: WaveformDataset, split: dict) -> dict[str, np.ndarray]:
    """Row positions of the trace names listed per part (``split.json`` layout)."""
    names = dataset.metadata["trace_name"].astype(str)
    parts = {}
    for part in ("train", "val", "test"):
        wanted = pd.Index(split.get(part, []), dtype=str)
        unknown = wanted.difference(names)
        if len(unknown):
            raise ConfigError(f"split part {part!r} names {len(unknown)} trace(s) not in the data, "
                              f"e.g. {unknown[0]!r}")
        parts[part] = np.flatnonzero(names.isin(wanted).to_numpy())
    return parts


def _names(dataset: WaveformDataset, idx: np.ndarray) -> list[str]:
    return dataset.metadata["trace_name"].iloc[idx].astype(str).tolist()


def train_waveform_classifier(
    model: str,
    data: str | Path,
    out: str | Path,
    epochs: int = 100,
    window: int | None = None,
    seed: int = 0,
    resume: bool = False,
    pad: bool = False,
    split_by: tuple[str, ...] = ("group",),
    model_options: dict | None = None,
    init_from: str | None = None,
    config: TrainConfig | None = None,
    show_progress: bool = True,
    band: tuple[float, float] | None = None,
    mix_noise: float = 0.0,
    split_seed: int | None = None,
    split: dict | None = None,
    loss_fn: LossFn | None = None,
    prepare: Callable[[nn.Module], object] | None = None,
    policy: tuple[str, ...] = (),
) -> dict:
    """Train ``model`` (a registered name) on a STEAD-layout folder; returns a summary dict
    with the test-split metrics of the best epoch. ``init_from`` (shipped name, run dir or
    checkpoint) starts from trained weights (fine-tuning) instead of a random initialisation,
    with their window and band-pass unless given. ``band`` = (low, high) Hz band-pass;
    ``mix_noise`` = probability of the noise-mixing augmentation (see ``WaveformWindows``).
    ``split_seed`` (default: ``seed``) fixes the split while ``seed`` varies initialisation.
    ``split`` = trace names per part (``{"train": [...], "val": [...], "test": [...]}``, the
    layout of ``split.json``) replaces the grouped split. ``policy``: extra training
    augmentations (``superpose``, ``gain``, ``channel_dropout``; see ``WaveformWindows``)."""
    out = Path(out)
    if config is not None:
        config.validate()  # a bad option fails before anything is read or written
    dataset = WaveformDataset.from_path(data)
    if init_from:  # fine-tuning keeps the preprocessing the weights were trained with
        net, init_meta = load_any(init_from)
        net.train()
        prep = init_meta.get("preprocessing") or {}
        window = window or prep.get("window_samples")
        band = band or band_of(prep)
    else:
        seed_everything(seed)  # the initial weights follow the seed
        net = create_model(model, **{"in_chans": 3, "num_classes": 2, **(model_options or {})})
    if prepare is not None:  # e.g. freezing stages for transfer learning
        prepare(net)
    window = window or auto_window(dataset.lengths())
    check_windows(dataset, window, pad)
    split_seed = seed if split_seed is None else split_seed
    parts = (split_from_names(dataset, split) if split is not None
             else split_indices(dataset, split_seed, by=split_by))
    if min(len(v) for v in parts.values()) == 0:
        raise ConfigError(f"{data}: too few record groups ({len(dataset)} traces) to make "
                          "non-empty train/validation/test parts")
    cfg = replace(config or TrainConfig(), epochs=epochs, seed=seed)  # caller's left as is
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "split.json", {
        "seed": split_seed, "by": list(split_by),
        **{k: _names(dataset, v) for k, v in parts.items()},
    })
    meta = {
        "task": "waveform-classification",
        "preprocessing": {**preprocessing(window, band, mix_noise), "policy": list(policy)},
        "data": {"path": str(Path(data).resolve()), "n_traces": len(dataset),
                 "split_sizes": {k: len(v) for k, v in parts.items()}, "split_by": split_by},
    }
    train_set = WaveformWindows(dataset.subset(parts["train"]), window, train=True, seed=seed,
                                pad=pad, band=band, mix_noise=mix_noise, policy=policy)
    val_set = eval_windows(dataset.subset(parts["val"]), meta, window, pad)
    result = fit(net, train_set, val_set, out, cfg, resume=resume, meta=meta,
                 class_names=CLASS_NAMES, positive=POSITIVE, show_progress=show_progress,
                 loss_fn=loss_fn)
    best, _ = load_model(out)
    test_set = eval_windows(dataset.subset(parts["test"]), meta, window, pad)
    test = score(best, test_set, result.precision, cfg.batch_size)
    summary = {"model": net.config, "window": window, "best_epoch": result.best_epoch,
               "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
               "best_val_loss": result.best_val_loss, "precision": result.precision,
               "test": test}
    atomic_write_json(out / "test_metrics.json", summary)
    return summary


def band_of(prep: dict) -> tuple[float, float] | None:
    """The band-pass recorded in a checkpoint's ``preprocessing``, if any."""
    return tuple(prep["bandpass_hz"]) if prep.get("bandpass_hz") else None


def eval_windows(dataset: WaveformDataset, meta: dict, window: int | None = None,
                 pad: bool = False) -> WaveformWindows:
    """Deterministic windows of ``dataset`` preprocessed as the model in ``meta`` expects."""
    prep = meta.get("preprocessing") or {}
    window = window or prep.get("window_samples") or PAPER_WINDOW
    check_windows(dataset, window, pad)
    return WaveformWindows(dataset, window, train=False, pad=pad, band=band_of(prep))


def score(model: nn.Module, windows: WaveformWindows, precision: str = "fp32",
          batch_size: int = 64) -> dict:
    """Metrics of ``model`` on deterministic windows (earthquake = positive class)."""
    probs, labels, _ = predict_proba(model, windows, precision, batch_size)
    metrics = classification_metrics(labels, probs, CLASS_NAMES, POSITIVE)
    metrics["probabilities"] = probs[:, POSITIVE].round(6).tolist()
    metrics["labels"] = labels.tolist()
    return metrics


def evaluate_waveform_classifier(
    model: str | Path,
    data: str | Path,
    window: int | None = None,
    precision: str = "auto",
    batch_size: int = 64,
    pad: bool = False,
) -> dict:
    """Score a shipped model, run directory or checkpoint on every trace of a STEAD folder."""
    net, meta = load_any(model)
    dataset = WaveformDataset.from_path(data)
    windows = eval_windows(dataset, meta, window, pad)
    window = windows.window
    metrics = score(net, windows, choose_precision(precision), batch_size)
    metrics["trace_names"] = dataset.metadata["trace_name"].astype(str).tolist()
    metrics.update(model=str(model), data=str(data), window=window)
    if not math.isfinite(metrics["log_loss"]):
        metrics["log_loss"] = None
    return metrics


def write_predictions(path: str | Path, metrics: dict) -> None:
    """Per-trace CSV: trace_name, earthquake probability, predicted class."""
    lines = ["trace_name,p_earthquake,predicted"]
    for name, p in zip(metrics["trace_names"], metrics["probabilities"], strict=True):
        lines.append(f"{name},{p:.6f},{CLASS_NAMES[int(p >= 0.5)]}")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
