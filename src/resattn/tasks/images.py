"""Image classification (ARN-CNN on MedNIST, seed 004; ResNet-18 facial expressions, seed 002).

Training reads a folder of class folders, a tar/zip archive or an ``.npz`` with a stratified
split (or a subject-independent one for JAFFE) and scores the best weights on the held-out test
part; evaluation scores any model on a data source, the whole of it or one part of the split
the model was trained with (recomputed, then checked).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..contracts import ImageContract, contract_from_meta
from ..data import ImageDataset
from ..data.image_transforms import (
    AugmentedSubset,
    ColorJitter,
    Compose,
    RandomAffine,
    RandomErasing,
    RandomHorizontalFlip,
)
from ..data.labels import align_classes
from ..data.splits import PARTS, cap_per_class, names_digest, stratified_split
from ..engine.precision import choose_precision
from ..engine.trainer import TrainConfig
from ..errors import ConfigError, DataError
from ..eval.metrics import classification_metrics
from ..eval.uncertainty import expected_calibration_error, predictive_entropy
from ..explain.gradcam import overlay_image
from ..io import atomic_write_text
from ..models.registry import model_entry
from ..options import option
from ..pretrained import load_any
from .classification import ClassificationTask
from .waveforms import WAVEFORMS as WAVEFORM_TASK

AUGMENTATIONS = ("none", "light", "faces")
SPLITS = ("class", "subject")  # stratified by class; no subject in two parts


@dataclass
class ImageOptions:
    """Settings of the image task (an ``image:`` config section, ``train`` options)."""

    fractions: tuple[float, float, float] = option((0.9, 0.06, 0.04), "Train,val,test "
                                                   "fractions (default 0.9,0.06,0.04, seed 004).")
    split: str = option("class", "class (stratified, default) or subject (JAFFE: no subject "
                                 "in two parts).", flag="split-by")
    size: int | None = option(None, "Resize to SIZE x SIZE (default: the model's input size, "
                                    "else the images' own).")
    channels: int | None = option(None, "1 (gray) or 3 (RGB); default the images' majority "
                                        "mode.")
    augment: str | None = option(None, "none, light or faces, optionally +erase (default: the "
                                       "recipe's, else none).")
    max_per_class: int | None = option(None, "Cap the training part at N images per class and "
                                             "validation/test at a quarter of it.")
    split_seed: int | Literal["per_seed"] | None = option(
        None, "Seed of the split (default: the run's seed); fix it to vary only "
              "initialisation.")

    def __post_init__(self) -> None:
        self.fractions = tuple(self.fractions)
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        for name in ("size", "channels", "max_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")


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
    """What a user must do to feed this model, in words: recorded in every checkpoint's JSON."""
    return {
        "input": "image",
        "size": list(size),
        "channels": channels,
        "mode": "L" if channels == 1 else "RGB",
        "resize": "PIL bilinear (antialiased when shrinking) to size (H, W)",
        "normalisation": "pixel / 255 (values in [0, 1])",
        "class_names": class_names,
    }


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


def open_for_model(data: str | Path, meta: dict) -> ImageDataset:
    """``data`` read as the model's contract says (size, mode), its classes matched to the
    model's through canonical names (JAFFE's ``anger`` is FER2013's ``angry``) and relabelled
    to the model's class order."""
    contract = contract_from_meta(meta)
    dataset = ImageDataset.from_path(data, size=contract.size, channels=contract.channels)
    expected = list(contract.class_names)
    if dataset.class_names != expected:  # a subset, or synonyms: relabel to the model's
        mapping = np.asarray(align_classes(dataset.class_names, expected, str(data)),
                             dtype=np.int64)
        dataset.labels = mapping[dataset.labels]
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


def _model_size(name: str, options: dict) -> int | None:
    """Input side a model is built for (ARN-CNN's flatten layer), if it has one."""
    return options.get("input_size", model_entry(name).defaults.get("input_size"))


class ImageClassification(ClassificationTask):
    """Image classes from class folders, archives, ``.npz`` or JAFFE file names."""

    name = "image-classification"
    aliases = ("image",)
    section = "image"
    description = "image classification: MedNIST (seed 004), facial expressions (seed 002)"
    options_type = ImageOptions

    def accepts(self, data: Path) -> bool:
        return Path(data).exists() and not WAVEFORM_TASK.accepts(data)

    def default_model(self) -> str:
        return "arn_cnn"

    def evaluation_title(self, model, data, metrics):
        return f"{model} on {data}, part {metrics['part']} (n={metrics['n']}, macro averages)"

    def headline(self, test: dict) -> str:
        return (f"test split (n={test['n']}): accuracy {test['accuracy']:.4f}, macro F1 "
                f"{test['f1']:.4f}, kappa {test['kappa']:.4f}")

    def recipe(self, spec):
        opts = spec.options or ImageOptions()
        cfg = replace(spec.recipe or TrainConfig(), seed=spec.seed)
        cfg.augment = opts.augment or cfg.augment
        augmentation(cfg.augment)  # a bad policy fails before anything is read
        return cfg.validate()

    def resolve(self, spec, init_meta):
        opts = spec.options or ImageOptions()
        if init_meta is not None:  # fine-tuning keeps the contract of the weights
            contract = contract_from_meta(init_meta, str(spec.init_from))
            return replace(opts, size=opts.size or contract.size[0],
                           channels=opts.channels or contract.channels)
        return replace(opts, size=opts.size or _model_size(spec.model, spec.model_options or {}))

    def options_like(self, meta: dict, same_split: bool = True, **overrides) -> ImageOptions:
        contract = contract_from_meta(meta)
        split = (meta.get("data") or {}).get("split", {})
        if not same_split:  # new data: a fresh stratified 80/10/10 split
            split = {"fractions": (0.8, 0.1, 0.1), "by": "class"}
        return ImageOptions(**{
            "split_seed": split.get("seed"),
            "fractions": tuple(split.get("fractions", (0.9, 0.06, 0.04))),
            "split": split.get("by", "class"), "size": contract.size[0],
            "channels": contract.channels, "max_per_class": split.get("max_per_class"),
            **overrides})

    def open(self, data, options):
        return ImageDataset.from_path(data, size=options.size, channels=options.channels)

    def model_inputs(self, dataset):
        return {"in_chans": dataset.channels, "num_classes": len(dataset.class_names)}

    def check_model(self, net, dataset, where):
        check_channels(net, dataset.channels, where)
        super().check_model(net, dataset, where)

    def split(self, dataset, options, seed):
        parts = split_parts(dataset, seed, options.fractions, options.split)
        if options.max_per_class:
            parts = cap_per_class(parts, dataset.labels, options.max_per_class)
        return parts

    def too_few(self, data, dataset, options):
        return (f"{data}: {len(dataset)} images are too few to make non-empty "
                f"train/validation/test parts with fractions {options.fractions}")

    def split_record(self, dataset, parts, options, seed):
        return {"seed": seed, "by": options.split, "fractions": list(options.fractions),
                **self._names(dataset, parts)}

    @staticmethod
    def _names(dataset, parts):
        return {p: [dataset.paths[i] for i in idx] for p, idx in parts.items()}

    def meta(self, dataset, parts, options, seed, cfg, data):
        hw = dataset.size or tuple(dataset.read(0).shape[:2])
        names = self._names(dataset, parts)
        contract = ImageContract(size=tuple(hw), mode="L" if dataset.channels == 1 else "RGB",
                                 class_names=tuple(dataset.class_names))
        return {
            "task": self.name,
            "contract": contract.to_json(),
            "preprocessing": {**preprocessing(hw, dataset.channels, dataset.class_names),
                              "augment": cfg.augment},
            "data": {"path": str(Path(data).resolve()), "n_images": len(dataset),
                     "class_counts": dataset.class_counts.tolist(),
                     "split": {"seed": seed, "by": options.split,
                               "fractions": list(options.fractions),
                               "max_per_class": options.max_per_class,
                               "sizes": {p: len(v) for p, v in parts.items()},
                               "digests": {p: names_digest(v) for p, v in names.items()}}},
        }

    def datasets(self, dataset, parts, options, seed, cfg):
        self._hw = dataset.size or tuple(dataset.read(0).shape[:2])
        return (AugmentedSubset(dataset, parts["train"], augmentation(cfg.augment), seed=seed),
                AugmentedSubset(dataset, parts["val"]), AugmentedSubset(dataset, parts["test"]))

    def summary(self, options, seed, split_seed):
        return {"size": list(self._hw)}

    def summary_tail(self, options, seed, split_seed):
        return {"split": options.split, "split_seed": split_seed, "seed": seed}

    def score(self, model, data, precision="fp32", batch_size=64):
        """Macro metrics, per-class scores, confusion, ECE and mean predictive entropy."""
        probs, labels = self.predictions(model, data, precision, batch_size)
        names = getattr(getattr(data, "dataset", data), "class_names", None)
        metrics = classification_metrics(labels, probs, names)
        metrics["ece"] = expected_calibration_error(probs, labels)
        metrics["mean_entropy"] = float(predictive_entropy(probs).mean()) if len(probs) else 0.0
        if not math.isfinite(metrics["log_loss"]):
            metrics["log_loss"] = None
        metrics["probabilities"] = probs.round(6).tolist()
        metrics["labels"] = labels.tolist()
        return metrics

    def eval_items(self, meta, data, part="all"):
        dataset = open_for_model(data, meta)
        return AugmentedSubset(dataset, part_indices(dataset, meta, part))

    def test_items(self, meta, data, split):
        return self.eval_items(meta, data, "test")

    def input_shape(self, meta):
        contract = contract_from_meta(meta)
        return (contract.channels, *contract.size)

    def evaluate(self, model, data, part: str = "all", window: int | None = None,
                 precision: str = "auto", batch_size: int = 64, pad: bool = False) -> dict:
        """Score a shipped model, run directory or checkpoint on an image source."""
        if window is not None or pad:
            raise ConfigError(f"--window and --pad apply to waveform models; {model} is an "
                              "image model")
        net, meta = load_any(model)
        items = self.eval_items(meta, data, part)
        metrics = self.score(net, items, choose_precision(precision), batch_size)
        metrics["paths"] = [items.dataset.paths[i] for i in items.indices]
        metrics.update(model=str(model), data=str(data), part=part)
        return metrics

    def model_inputs_of_files(self, net, meta, files):
        contract = contract_from_meta(meta)
        images = ImageDataset.from_files(files, contract.size, contract.channels)
        return torch.stack([images[i][0] for i in range(len(images))]), [None] * len(files)

    def plot_cam(self, x, cam, out, title):
        overlay_image(x, cam, out, title=title)

    def write_predictions(self, path, metrics):
        """Per-image CSV: path, true class, predicted class, then one probability per class."""
        names = metrics["class_names"]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "true", "predicted", *(f"p_{n}" for n in names)])
        for p, y, probs in zip(metrics["paths"], metrics["labels"], metrics["probabilities"],
                               strict=True):
            writer.writerow([p, names[y], names[int(np.argmax(probs))],
                             *(f"{v:.6f}" for v in probs)])
        atomic_write_text(Path(path), buf.getvalue())


IMAGES = ImageClassification()
