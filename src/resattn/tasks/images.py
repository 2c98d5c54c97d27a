"""Image classification (ARN-CNN on MedNIST, seed 004; ResNet-18 facial expressions, seed 002).

``train_image_classifier`` trains on a folder of class folders, a tar/zip archive or an ``.npz``
with a stratified split (or a subject-independent one for JAFFE) and scores the best weights on
the held-out test part. ``evaluate_image_classifier`` scores any model on a data source, the
whole of it or one part of the split the model was trained with (recomputed, then checked).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from ..data import ImageDataset, stratified_split
from ..data.image_transforms import (
    AugmentedSubset,
    ColorJitter,
    Compose,
    RandomAffine,
    RandomErasing,
    RandomHorizontalFlip,
)
from ..engine.checkpoint import load_model
from ..engine.inference import predict_proba
from ..engine.precision import choose_precision
from ..engine.provenance import seed_everything
from ..engine.trainer import LossFn, TrainConfig, fit
from ..errors import ConfigError, DataError
from ..eval.metrics import classification_metrics
from ..eval.uncertainty import expected_calibration_error, predictive_entropy
from ..io import atomic_write_json, atomic_write_text
from ..models import create_model
from ..pretrained import load_any

TASK = "image-classification"
PARTS = ("train", "val", "test")
AUGMENTATIONS = ("none", "light", "faces")
SPLITS = ("class", "subject")  # stratified by class; no subject in two parts


def augmentation(name: str):
    """Named torch augmentation policy: ``none``; ``light`` (flip, +-10 deg, 5 % shift);
    ``faces`` (seed 002 has none stated: flip, +-15 deg, 10 % shift, 0.9-1.1 zoom,
    brightness/contrast 0.2); any of them with ``+erase`` appends random erasing (p 0.5).
    Mixup and CutMix act on batches: ``TrainConfig.mix``."""
    base, _, extra = name.partition("+")
    if extra:
        if extra != "erase":
            raise ConfigError(f"augment modifier must be '+erase', got {name!r}")
        first = augmentation(base)
        return Compose([*([first] if first else []), RandomErasing()])
    if name == "none":
        return None
    if name == "light":
        return Compose([RandomHorizontalFlip(), RandomAffine(10, translate=(0.05, 0.05))])
    if name == "faces":
        return Compose([RandomHorizontalFlip(), RandomAffine(15, translate=(0.1, 0.1),
                                                             scale=(0.9, 1.1)),
                        ColorJitter(brightness=0.2, contrast=0.2)])
    raise ConfigError(f"augment must be one of {list(AUGMENTATIONS)}, got {name!r}")


def preprocessing(size: tuple[int, int], channels: int, class_names: list[str]) -> dict:
    """What a user must do to feed this model: recorded in every checkpoint's JSON."""
    return {
        "input": "image",
        "size": list(size),
        "channels": channels,
        "mode": "L" if channels == 1 else "RGB",
        "resize": "PIL bilinear (antialiased when shrinking) to size (H, W)",
        "normalisation": "pixel / 255 (values in [0, 1])",
        "class_names": class_names,
    }


def _model_size(name: str, options: dict) -> int | None:
    """Input side a model is built for (ARN-CNN's flatten layer), if it has one."""
    from ..models.registry import model_entry

    return options.get("input_size", model_entry(name).defaults.get("input_size"))


def split_parts(dataset: ImageDataset, seed: int, fractions=(0.9, 0.06, 0.04),
                by: str = "class") -> dict[str, np.ndarray]:
    """Positions per part: stratified by class, or with no subject in two parts (JAFFE)."""
    if by not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {by!r}")
    if by == "subject" and dataset.groups is None:
        raise ConfigError(f"{dataset.source}: split 'subject' needs subject ids (JAFFE file "
                          "names); this data has none")
    groups = dataset.groups if by == "subject" else None
    return dict(zip(PARTS, stratified_split(dataset.labels, fractions, seed, groups),
                    strict=True))


def check_channels(net: nn.Module, channels: int, where: str | Path) -> None:
    """A clear error instead of a convolution shape error when the image channels (1 gray,
    3 RGB) differ from what the model takes."""
    expected = int(getattr(net, "config", {}).get("in_chans", channels))
    if expected != channels:
        raise ConfigError(f"{where}: images read with {channels} channel(s), but the model takes "
                          f"{expected} ({'gray' if expected == 1 else 'RGB'}); pass --channels "
                          f"{expected} or a model built for {channels}")


def cap_per_class(parts: dict[str, np.ndarray], labels: np.ndarray,
                  n: int) -> dict[str, np.ndarray]:
    """A fixed random ``n`` images per class of the training part and ``max(1, n // 4)`` of
    the others (all of a class if it has fewer)."""
    rng = np.random.default_rng(n)
    out = {}
    for part, idx in parts.items():
        keep = n if part == "train" else max(1, n // 4)
        groups = [idx[labels[idx] == c] for c in np.unique(labels[idx])]
        out[part] = np.sort(np.concatenate([
            rng.choice(g, min(keep, len(g)), replace=False) for g in groups]))
    return out


def names_digest(names: list[str]) -> str:
    """sha256 of sorted member names: identifies a split part independent of file order."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def train_image_classifier(
    model: str,
    data: str | Path,
    out: str | Path,
    epochs: int = 30,
    seed: int = 0,
    split_seed: int | None = None,
    fractions: tuple[float, float, float] = (0.9, 0.06, 0.04),
    split: str = "class",
    size: int | None = None,
    channels: int | None = None,
    augment: str | None = None,
    model_options: dict | None = None,
    init_from: str | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    show_progress: bool = True,
    max_per_class: int | None = None,
    loss_fn: LossFn | None = None,
    prepare: Callable[[nn.Module], object] | None = None,
) -> dict:
    """Train ``model`` (a registered name) on an image source; returns a summary with the
    test-part metrics of the best epoch. ``split_seed`` (default ``seed``) fixes the split while
    ``seed`` varies initialisation and augmentation (repeated runs). ``size`` defaults to the
    model's input size (ARN-CNN: 64) or the images' own; ``channels`` to the images' majority
    mode. ``augment`` defaults to the recipe's (``config.augment``). ``init_from`` starts from
    trained weights; a different class count gets a new head. ``max_per_class`` caps the
    training part at that many images per class and validation/test at a quarter of it (quick
    runs, subsets that fit a CPU)."""
    out = Path(out)
    cfg = replace(config or TrainConfig(), epochs=epochs, seed=seed)  # caller's left as is
    cfg.augment = augment or cfg.augment
    transform = augmentation(cfg.augment)
    cfg.validate()
    options = dict(model_options or {})
    if init_from:
        net, init_meta = load_any(init_from)
        prep = init_meta.get("preprocessing") or {}
        size = size or (prep.get("size") or [None])[0]
        channels = channels or prep.get("channels")
    else:
        size = size or _model_size(model, options)
    dataset = ImageDataset.from_path(data, size=size, channels=channels)
    hw = dataset.size or tuple(dataset.read(0).shape[:2])
    k = len(dataset.class_names)
    if init_from:
        if getattr(net, "num_classes", k) != k and hasattr(net, "reset_classifier"):
            net.reset_classifier(k)
        net.train()
    else:
        seed_everything(seed)  # the initial weights follow the seed
        net = create_model(model, **{"in_chans": dataset.channels, "num_classes": k, **options})
    check_channels(net, dataset.channels, data)
    if prepare is not None:  # e.g. freezing stages for transfer learning
        prepare(net)
    split_seed = seed if split_seed is None else split_seed
    parts = split_parts(dataset, split_seed, fractions, split)
    if max_per_class:
        parts = cap_per_class(parts, dataset.labels, max_per_class)
    if min(len(v) for v in parts.values()) == 0:
        raise ConfigError(f"{data}: {len(dataset)} images are too few to make non-empty "
                          f"train/validation/test parts with fractions {fractions}")
    out.mkdir(parents=True, exist_ok=True)
    names = {p: [dataset.paths[i] for i in idx] for p, idx in parts.items()}
    atomic_write_json(out / "split.json", {"seed": split_seed, "by": split,
                                           "fractions": list(fractions), **names})
    meta = {
        "task": TASK,
        "preprocessing": {**preprocessing(hw, dataset.channels, dataset.class_names),
                          "augment": cfg.augment},
        "data": {"path": str(Path(data).resolve()), "n_images": len(dataset),
                 "class_counts": dataset.class_counts.tolist(),
                 "split": {"seed": split_seed, "by": split, "fractions": list(fractions),
                           "max_per_class": max_per_class,
                           "sizes": {p: len(v) for p, v in parts.items()},
                           "digests": {p: names_digest(v) for p, v in names.items()}}},
    }
    train_set = AugmentedSubset(dataset, parts["train"], transform, seed=seed)
    val_set = AugmentedSubset(dataset, parts["val"])
    result = fit(net, train_set, val_set, out, cfg, resume=resume, meta=meta,
                 class_names=dataset.class_names, show_progress=show_progress, loss_fn=loss_fn)
    best, _ = load_model(out)
    test = score(best, AugmentedSubset(dataset, parts["test"]), result.precision,
                 cfg.batch_size)
    summary = {"model": net.config, "size": list(hw), "best_epoch": result.best_epoch,
               "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
               "best_val_loss": result.best_val_loss, "precision": result.precision,
               "split": split, "split_seed": split_seed, "seed": seed, "test": test}
    atomic_write_json(out / "test_metrics.json", summary)
    return summary


def score(model: nn.Module, data, precision: str = "fp32", batch_size: int = 64) -> dict:
    """Macro metrics, per-class scores, confusion, ECE and mean predictive entropy."""
    probs, labels, _ = predict_proba(model, data, precision, batch_size)
    names = getattr(getattr(data, "dataset", data), "class_names", None)
    metrics = classification_metrics(labels, probs, names)
    metrics["ece"] = expected_calibration_error(probs, labels)
    metrics["mean_entropy"] = float(predictive_entropy(probs).mean()) if len(probs) else 0.0
    if not math.isfinite(metrics["log_loss"]):
        metrics["log_loss"] = None
    metrics["probabilities"] = probs.round(6).tolist()
    metrics["labels"] = labels.tolist()
    return metrics


def open_for_model(data: str | Path, meta: dict) -> ImageDataset:
    """``data`` read as the model in ``meta`` expects (size, channels), with its class names
    checked against the model's."""
    prep = meta.get("preprocessing") or {}
    if meta.get("task") != TASK:
        raise ConfigError(f"the model was trained for {meta.get('task')!r}, not image "
                          "classification; evaluate it on waveform data")
    dataset = ImageDataset.from_path(data, size=tuple(prep["size"]), channels=prep["channels"])
    expected = list(meta.get("class_names") or prep.get("class_names") or [])
    unknown = sorted(set(dataset.class_names) - set(expected))
    if unknown:
        raise DataError(f"{data}: class folder(s) {unknown} are not classes of this model; "
                        f"expected class names among {expected}")
    if dataset.class_names != expected:  # a subset of the classes: relabel to the model's
        dataset.labels = np.array([expected.index(dataset.class_names[v])
                                   for v in dataset.labels], dtype=np.int64)
        dataset.class_names = expected
    return dataset


def part_indices(dataset: ImageDataset, meta: dict, part: str) -> np.ndarray:
    """Positions of the model's training split part ``part`` in ``dataset`` (recomputed from
    the recorded seed and checked against the recorded digest) or all positions for ``all``."""
    if part == "all":
        return np.arange(len(dataset))
    if part not in PARTS:
        raise ConfigError(f"part must be one of {['all', *PARTS]}, got {part!r}")
    split = (meta.get("data") or {}).get("split")
    if not split:
        raise ConfigError("this model records no training split; use --part all")
    parts = split_parts(dataset, split["seed"], tuple(split["fractions"]), split["by"])
    if split.get("max_per_class"):
        parts = cap_per_class(parts, dataset.labels, split["max_per_class"])
    idx = parts[part]
    if names_digest([dataset.paths[i] for i in idx]) != split["digests"][part]:
        raise DataError(f"{dataset.source}: is not the data this model was trained on (its "
                        f"{part} part differs from the recorded one); use --part all")
    return idx


def evaluate_image_classifier(model: str | Path, data: str | Path, part: str = "all",
                              precision: str = "auto", batch_size: int = 64) -> dict:
    """Score a shipped model, run directory or checkpoint on an image source."""
    net, meta = load_any(model)
    dataset = open_for_model(data, meta)
    idx = part_indices(dataset, meta, part)
    metrics = score(net, AugmentedSubset(dataset, idx), choose_precision(precision), batch_size)
    metrics["paths"] = [dataset.paths[i] for i in idx]
    metrics.update(model=str(model), data=str(data), part=part)
    return metrics


def write_predictions(path: str | Path, metrics: dict) -> None:
    """Per-image CSV: path, true class, predicted class, then one probability per class."""
    import csv
    import io

    names = metrics["class_names"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "true", "predicted", *(f"p_{n}" for n in names)])
    for p, y, probs in zip(metrics["paths"], metrics["labels"], metrics["probabilities"],
                           strict=True):
        writer.writerow([p, names[y], names[int(np.argmax(probs))],
                         *(f"{v:.6f}" for v in probs)])
    atomic_write_text(Path(path), buf.getvalue())
