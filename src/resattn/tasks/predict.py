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

import numpy as np
import torch
from torch import nn

from ..data import ImageDataset, standardize
from ..data.transforms import bandpass, crop
from ..errors import DataError
from ..eval.uncertainty import mc_dropout_predict, predictive_entropy
from ..explain.gradcam import grad_cam, overlay_image, plot_waveform_cam
from ..pretrained import load_any
from .images import TASK as IMAGE_TASK

WAVEFORM_FILES = ".npy, .npz, or a format ObsPy reads (miniSEED, SAC, ...) when it is installed"


def _read_array(path: Path) -> np.ndarray:
    """(C, L) float array from .npy / .npz (first array) or an ObsPy-readable file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[z.files[0]]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array ({exc}); expected a (channels, samples) "
                        "numeric array") from exc
    try:
        import obspy
    except ImportError:
        raise DataError(f"{path}: unsupported waveform file; expected {WAVEFORM_FILES}") from None
    try:
        stream = obspy.read(str(path))
    except Exception as exc:  # ObsPy raises TypeError/ValueError/OSError by format
        raise DataError(f"{path}: ObsPy cannot read it ({exc})") from exc
    stream.merge(fill_value=0)
    stream.traces.sort(key=lambda tr: "ENZ123".find(tr.stats.channel[-1:]))
    rates = {tr.stats.sampling_rate for tr in stream}
    if rates != {100.0}:
        stream.resample(100.0)
    n = min(len(tr.data) for tr in stream)
    return np.stack([tr.data[:n] for tr in stream])


def waveform_windows(path: Path, meta: dict, in_chans: int) -> tuple[torch.Tensor, np.ndarray]:
    """A file's windows (half-overlapping, the last one flush with the end), band-passed and
    standardised as the model's training windows: ((n, C, window), start samples)."""
    prep = meta.get("preprocessing") or {}
    x = np.asarray(_read_array(path), dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != in_chans:
        raise DataError(f"{path}: array of shape {x.shape}; expected ({in_chans}, samples), "
                        f"channels in the order {prep.get('input', 'of training')}")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: holds NaN or infinite samples; expected finite values")
    window = int(prep.get("window_samples") or x.shape[1])
    if x.shape[1] < window:
        raise DataError(f"{path}: {x.shape[1]} samples; the model needs at least {window}")
    if prep.get("bandpass_hz"):
        x = bandpass(x, *prep["bandpass_hz"], prep.get("sampling_rate_hz", 100.0))
    starts = np.unique(np.r_[np.arange(0, x.shape[1] - window + 1, max(1, window // 2)),
                             x.shape[1] - window])
    return (torch.stack([torch.from_numpy(standardize(crop(x, s, window))) for s in starts]),
            starts)


def strongest_window(net: nn.Module, windows: torch.Tensor) -> int:
    """Index of the window least like class 0 (the background class, e.g. noise): a detector
    scanning a long record reports where the signal is."""
    with torch.no_grad():
        probs = torch.softmax(net.eval()(windows).float(), dim=1)
    return int(torch.argmax(1 - probs[:, 0]))


def load_inputs(files: Sequence[str | Path], meta: dict, net: nn.Module,
                in_chans: int) -> tuple[torch.Tensor, list[int | None]]:
    """Stack of model inputs, one per file, and for waveforms the start sample of the window
    chosen in each file (the one least like noise)."""
    if not files:
        raise DataError("no input files given")
    if meta.get("task") == IMAGE_TASK:
        prep = meta["preprocessing"]
        images = ImageDataset.from_files(files, tuple(prep["size"]), prep["channels"])
        return torch.stack([images[i][0] for i in range(len(images))]), [None] * len(files)
    chosen, starts = [], []
    for f in files:
        windows, at = waveform_windows(Path(f), meta, in_chans)
        k = strongest_window(net, windows)
        chosen.append(windows[k])
        starts.append(int(at[k]))
    return torch.stack(chosen), starts


def predict_files(model: str | Path, files: Sequence[str | Path], cam_dir: str | Path | None = None,
                  mc_samples: int = 20, cam_method: str = "gradcam", seed: int = 0,
                  batch_size: int = 64) -> list[dict]:
    """One row per file: ``file``, ``class``, ``probability``, ``entropy``, ``mc_std``, ``cam``."""
    net, meta = load_any(model)
    names = list(meta.get("class_names") or (meta.get("preprocessing") or {})
                 .get("class_names") or [])
    in_chans = int(getattr(net, "config", {}).get("in_chans", 1))
    x, starts = load_inputs(files, meta, net, in_chans)
    stems = [Path(f).stem for f in files]
    if len(set(stems)) < len(stems):  # same names in different folders: keep every CAM
        stems = [f"{k:04d}_{s}" for k, s in enumerate(stems)]
    rows = []
    for lo in range(0, len(x), batch_size):
        rows += _predict_batch(net, x[lo:lo + batch_size], files[lo:lo + batch_size],
                               stems[lo:lo + batch_size], names, meta, cam_dir, mc_samples,
                               cam_method, seed)
    for row, start in zip(rows, starts, strict=True):
        if start is not None:
            row["window_start_sample"] = start
    return rows


def _predict_batch(net: nn.Module, x: torch.Tensor, files: Sequence[str | Path],
                   stems: Sequence[str], names: list[str], meta: dict,
                   cam_dir: str | Path | None, mc_samples: int, cam_method: str,
                   seed: int) -> list[dict]:
    net.eval()
    with torch.no_grad():
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
            if meta.get("task") == IMAGE_TASK:
                overlay_image(x[i], cams[i], out, title=title)
            else:
                plot_waveform_cam(x[i], cams[i], out, title=title)
            row["cam"] = str(out)
        rows.append(row)
    return rows
