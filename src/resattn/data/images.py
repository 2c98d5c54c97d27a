"""Labelled image datasets: class folders or JAFFE file names, in a folder, archive or ``.npz``.

Layouts understood by :meth:`ImageDataset.from_path` (storage: :mod:`resattn.data.archives`):

* a folder, ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.tar.bz2`` / ``.tar.xz`` or ``.zip`` archive in
  which every image sits in a class folder, at any depth: the class is the image's parent folder
  name (``MedNIST/CXR/000001.jpeg`` -> ``CXR``). Classes are indexed in Python ``sorted()`` order,
  as in MONAI and torchvision's ``ImageFolder`` (``CXR`` before ``ChestCT``);
* JAFFE file names ``<SUBJ>.<EXPR><n>.<id>.tiff`` (e.g. ``KL.HA2.159.tiff``), in any of the
  above: label from the expression code, subject from the first field (``groups``);
* an ``.npz`` holding ``images`` ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, ``labels``
  ``(N,)`` and optionally ``class_names`` ``(K,)``.

Archives are never unpacked to disk; images are decoded lazily on each read.
"""

from __future__ import annotations

import posixpath
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from resattn.data.archives import (
    IMAGE_SUFFIXES,
    FolderStore,
    ImageStore,
    ancestors,
    is_hidden,
    list_images,
    load_npz,
    member_path,
)
from resattn.errors import ConfigError, DataError

__all__ = ["JAFFE_CLASSES", "ImageDataset"]

# JAFFE expression codes -> class names; the names' sorted order equals the codes' order.
_JAFFE_CODES = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
}
JAFFE_CLASSES = tuple(sorted(_JAFFE_CODES.values()))
_JAFFE_NAME = re.compile(r"^(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})\d*\.\d+\.[A-Za-z]+$")
_LAYOUTS = ("auto", "folders", "jaffe")
_GRAY_MODES = ("1", "L", "LA", "I", "F")
_N_PROBE = 64  # images decoded at open time to pick the majority colour mode


# ---------------------------------------------------------------------------------- labels
def _check_no_empty_class(where: str, images: list[str], dirs: Iterable[str]) -> None:
    """A folder beside a class folder holding no image at any depth is a class left empty."""
    class_dirs = {posixpath.dirname(n) for n in images}
    nonempty = class_dirs | {a for d in class_dirs for a in ancestors(d)}
    parents = {posixpath.dirname(d) for d in class_dirs}
    empty = sorted(
        d
        for d in dirs
        if d and not is_hidden(d) and d not in nonempty and posixpath.dirname(d) in parents
    )
    if empty:
        raise DataError(
            f"{where}: class folder {empty[0]!r} holds no images"
            + (f" (nor do {len(empty) - 1} more, e.g. {empty[1]!r})" if len(empty) > 1 else "")
            + f"; expected image files ({', '.join(IMAGE_SUFFIXES)}) in every class folder"
        )


def _jaffe_match(base: str) -> re.Match[str] | None:
    m = _JAFFE_NAME.match(base)
    return m if m is not None and m["code"] in _JAFFE_CODES else None


def _label_files(
    where: str, names: list[str], layout: str
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(labels, class_names, groups)`` from member paths: class folders or JAFFE names."""
    matches = [_jaffe_match(posixpath.basename(n)) for n in names]
    if layout == "jaffe" or (layout == "auto" and all(matches)):
        labels, groups = [], []
        for name, m in zip(names, matches, strict=True):
            if m is None:
                raise DataError(
                    f"{where}:{name}: file name does not follow JAFFE naming; expected "
                    f"<SUBJECT>.<EXPRESSION><n>.<id>.tiff with EXPRESSION in "
                    f"{'/'.join(_JAFFE_CODES)}, e.g. KL.HA2.159.tiff"
                )
            labels.append(JAFFE_CLASSES.index(_JAFFE_CODES[m["code"]]))
            groups.append(m["subject"])
        return np.array(labels, dtype=np.int64), list(JAFFE_CLASSES), np.array(groups)
    parents = [posixpath.basename(posixpath.dirname(n)) for n in names]
    loose = [n for n, p in zip(names, parents, strict=True) if not p]
    if loose:
        raise DataError(
            f"{where}: image {loose[0]!r} is not inside a class folder; expected "
            "<class>/<image> (class folders may sit at any depth)"
        )
    class_names = sorted(set(parents))
    index = {c: k for k, c in enumerate(class_names)}
    return np.array([index[p] for p in parents], dtype=np.int64), class_names, None


# ---------------------------------------------------------------------------------- dataset
def _channels_of(img: Image.Image) -> int:
    """1 for gray modes and palettes of grays (JAFFE stores some TIFFs so), else 3."""
    if img.mode in _GRAY_MODES or img.mode.startswith("I;"):
        return 1
    if img.mode in ("P", "PA"):
        pal = np.asarray(img.getpalette() or [0, 0, 0], dtype=np.uint8).reshape(-1, 3)
        return 1 if (pal == pal[:, :1]).all() else 3
    return 3


def _check_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in hw):
        raise ConfigError(f"size must be a positive int or (height, width), got {size!r}")
    return int(hw[0]), int(hw[1])


def fit_image(img: Image.Image, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """``img`` in colour ``mode`` ("L" / "RGB"), resized (PIL bilinear) to ``size`` (H, W) if
    given: uint8 ``(H, W, C)``. The one way every reader and contract fits an image."""
    if img.mode != mode:
        img = img.convert(mode)
    if size is not None and img.size != (size[1], size[0]):  # PIL sizes are (W, H)
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def unit_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` -> float32 ``(C, H, W)`` in [0, 1] (pixel / 255)."""
    return torch.tensor(arr.transpose(2, 0, 1), dtype=torch.float32).div_(255.0)


class ImageDataset(Dataset):
    """Labelled images as a torch Dataset of ``(FloatTensor (C, H, W) in [0, 1], int label)``.

    Open with :meth:`from_path`. ``class_names[k]`` names label ``k``; ``labels`` ``(N,)``
    int64; ``groups`` ``(N,)`` subject ids (JAFFE) or None; ``paths`` member names.
    ``read(i)`` gives the uint8 ``(H, W, C)`` array after colour conversion and resizing.
    """

    def __init__(
        self,
        store: ImageStore,
        labels: np.ndarray,
        class_names: Sequence[str],
        *,
        groups: np.ndarray | None = None,
        size: int | Sequence[int] | None = None,
        channels: int | None = None,
    ) -> None:
        if channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 (gray), 3 (RGB) or None, got {channels!r}")
        self._store = store
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.groups = groups
        self.size = _check_size(size)
        self.channels = channels if channels is not None else self._majority_channels()
        self.mode = "L" if self.channels == 1 else "RGB"

    def _majority_channels(self) -> int:
        """Majority colour mode over up to ``_N_PROBE`` evenly spaced images.

        Decoding every image at open time would cost seconds on MedNIST; a spread sample
        finds the mode of any set that is not a near-even mix. Ties go to RGB (keeps colour).
        """
        n = len(self)
        picks = np.unique(np.linspace(0, n - 1, min(n, _N_PROBE)).round().astype(int))
        votes, sizes = [], set()
        for i in picks:
            img = self._store.image(int(i))
            votes.append(_channels_of(img))
            sizes.add(img.size)
        if self.size is None and len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            warnings.warn(
                f"{self._store.where}: images have different sizes (e.g. {a} and {b} as W x H); "
                "pass size= so that they can be batched",
                stacklevel=4,  # the from_path caller
            )
        return 1 if 2 * votes.count(1) > len(votes) else 3

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(
        cls,
        path: str | Path,
        size: int | Sequence[int] | None = None,
        channels: int | None = None,
        *,
        layout: str = "auto",
        max_memory_mb: float = 512.0,
    ) -> ImageDataset:
        """Index a folder, tar/zip archive or ``.npz`` (see module doc); decodes only a sample.

        ``size``: int or ``(H, W)`` to resize to (PIL bilinear, antialiased when shrinking).
        ``channels``: 1 converts to gray (L), 3 to RGB, None keeps the majority mode.
        ``layout``: ``"auto"`` (JAFFE if every file name follows JAFFE naming, else class
        folders), ``"folders"`` or ``"jaffe"``. ``max_memory_mb``: largest compressed tar held
        in memory.
        """
        if layout not in _LAYOUTS:
            raise ConfigError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
        path = Path(path)
        if not path.exists():
            raise DataError(
                f"{path}: no such file or folder; expected a folder of class folders, an .npz, "
                "or a .tar/.tar.gz/.tgz/.zip archive"
            )
        if path.suffix.lower() == ".npz":
            store, labels, class_names = load_npz(path)
            groups = None
        else:
            store, dirs = list_images(path, max_memory_mb)
            if not store.names:
                raise DataError(
                    f"{path}: no images found; expected class folders holding image files "
                    f"({', '.join(IMAGE_SUFFIXES)})"
                )
            clean = [member_path(n) for n in store.names]
            _check_no_empty_class(str(path), clean, dirs)
            labels, class_names, groups = _label_files(str(path), clean, layout)
        present = [class_names[k] for k in np.unique(labels)]
        if len(present) < 2:
            raise DataError(
                f"{path}: found {len(labels)} images in {len(present)} class(es) {present}; "
                "expected at least 2 classes (one folder per class)"
            )
        return cls(store, labels, class_names, groups=groups, size=size, channels=channels)

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | Path],
        size: int | Sequence[int] | None,
        channels: int,
        class_names: Sequence[str] = ("?",),
    ) -> ImageDataset:
        """Unlabelled image files (label 0) decoded and resized exactly as a training set is:
        for predicting with a model trained on ``size`` x ``channels`` images."""
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: no such image file")
        names = [str(Path(p).resolve()) for p in paths]
        return cls(FolderStore(Path("/"), names), np.zeros(len(names), np.int64), class_names,
                   size=size, channels=channels)

    # ------------------------------------------------------------------ access
    @property
    def paths(self) -> list[str]:
        """Member names: relative to the folder, inside the archive, or ``images[i]`` (npz)."""
        return self._store.names

    @property
    def source(self) -> str:
        """The folder, archive or ``.npz`` the images come from."""
        return self._store.where

    @property
    def class_counts(self) -> np.ndarray:
        """``(n_classes,)`` images per class."""
        return np.bincount(self.labels, minlength=len(self.class_names))

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, i: int) -> np.ndarray:
        """Decode image ``i``: uint8 ``(H, W, C)`` with ``C = channels``, resized to ``size``."""
        return fit_image(self._store.image(int(i)), self.mode, self.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(FloatTensor (C, H, W) in [0, 1], label)``."""
        return unit_tensor(self.read(i)), int(self.labels[i])

    def close(self) -> None:
        """Close this process's archive handle (it re-opens on the next read)."""
        self._store.close()

    def __repr__(self) -> str:
        return (
            f"ImageDataset({len(self)} images, {len(self.class_names)} classes, "
            f"mode {self.mode}, size {self.size}, from {self.source})"
        )

