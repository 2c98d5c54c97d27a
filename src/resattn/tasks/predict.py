"""Per-file prediction with uncertainty and Grad-CAM, for image and waveform models.

``predict_files(model, files)`` reads each file the way the model was trained (images: mode and
size; waveforms: band-pass, window, standardisation; a record longer than the window is scanned
with half-overlapping windows and the one least like noise is reported, with its start sample),
and returns one row per file: predicted
class, its probability, the predictive entropy, the standard deviation of that probability over
Monte-Carlo dropout samples and, with ``cam_dir``, the path of a Grad-CAM PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..contracts import contract_from_meta
from ..errors import DataError
from ..eval.uncertainty import mc_dropout_predict, predictive_entropy
from ..explain.gradcam import grad_cam
from ..layers import eval_mode
from ..pretrained import load_any
from .base import Task
from .registry import task_of


def predict_files(model: str | Path, files: Sequence[str | Path], cam_dir: str | Path | None = None,
                  mc_samples: int = 20, cam_method: str = "gradcam", seed: int = 0,
                  batch_size: int = 64) -> list[dict]:
    """One row per file: ``file``, ``class``, ``probability``, ``entropy``, ``mc_std``, ``cam``."""
    net, meta = load_any(model)
    if not files:
        raise DataError("no input files given")
    task = task_of(meta, f"--model {model}")
    names = list(contract_from_meta(meta, f"--model {model}").class_names)
    x, starts = task.model_inputs_of_files(net, meta, files)
    stems = [Path(f).stem for f in files]
    if len(set(stems)) < len(stems):  # same names in different folders: keep every CAM
        stems = [f"{k:04d}_{s}" for k, s in enumerate(stems)]
    rows = []
    for lo in range(0, len(x), batch_size):
        rows += _predict_batch(net, x[lo:lo + batch_size], files[lo:lo + batch_size],
                               stems[lo:lo + batch_size], names, task, cam_dir, mc_samples,
                               cam_method, seed)
    for row, start in zip(rows, starts, strict=True):
        if start is not None:
            row["window_start_sample"] = start
    return rows


def _predict_batch(net: nn.Module, x: torch.Tensor, files: Sequence[str | Path],
                   stems: Sequence[str], names: list[str], task: Task,
                   cam_dir: str | Path | None, mc_samples: int, cam_method: str,
                   seed: int) -> list[dict]:
    with torch.no_grad(), eval_mode(net):
        probs = torch.softmax(net(x).float(), dim=1)
    _, mc_std = mc_dropout_predict(net, x, n_samples=mc_samples, seed=seed)
    top = probs.argmax(1)
    entropy = predictive_entropy(probs)
    cams = grad_cam(net, x, top, method=cam_method) if cam_dir else None
    rows = []
    for i, f in enumerate(files):
        k = int(top[i])
        label = names[k] if k < len(names) else str(k)
        row = {"file": str(f), "class": label, "probability": round(float(probs[i, k]), 6),
               "entropy": round(float(entropy[i]), 6), "mc_std": round(float(mc_std[i, k]), 6),
               "probabilities": {names[j] if j < len(names) else str(j): round(float(p), 6)
                                 for j, p in enumerate(probs[i].tolist())}}
        if cams is not None:
            out = Path(cam_dir) / f"{stems[i]}.cam.png"
            title = f"{Path(f).name}: {label} ({row['probability']:.3f})"
            task.plot_cam(x[i], cams[i], out, title)
            row["cam"] = str(out)
        rows.append(row)
    return rows
