"""Image classification datasets read in place: class folders, tar/zip archives, ``.npz``, JAFFE.

Layouts understood by :meth:`ImageDataset.from_path`:

* a folder, ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.tar.bz2`` / ``.tar.xz`` or ``.zip`` archive in
  which every image sits in a class folder, at any depth: the class is the image's parent folder
  name (``MedNIST/CXR/000001.jpeg`` -> ``CXR``). Classes are indexed in Python ``sorted()`` order,
  as in MONAI and torchvision's ``ImageFolder`` (``CXR`` before ``ChestCT``);
* JAFFE file names ``<SUBJ>.<EXPR><n>.<id>.tiff`` (e.g. ``KL.HA2.159.tiff``), in any of the
  above: label from the expression code, subject from the first field (``groups``);
* an ``.npz`` holding ``images`` ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, ``labels``
  ``(N,)`` and optionally ``class_names`` ``(K,)``.

Archives are never unpacked to disk. Members are indexed once at open time and decoded lazily
on each read. An uncompressed ``.tar`` is read by seeking to the member's offset, and a ``.zip``
through its central directory. A compressed tar cannot be seeked into (gzip has no random
access: reaching a member means decompressing everything before it). So it is decompressed once
while indexing, which has to read the whole stream anyway, and the encoded image bytes are kept
in one in-memory buffer: MedNIST's 57 MB ``.tar.gz`` becomes 75 MB of JPEG bytes. Above
``max_memory_mb`` of compressed archive, opening fails and says how to get a seekable ``.tar``.
File handles are opened once per process, so DataLoader workers (fork or spawn) open their own.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import re
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from resattn.data.splits import _check_fractions, grouped_split
from resattn.errors import ConfigError, DataError

__all__ = ["IMAGE_SUFFIXES", "JAFFE_CLASSES", "ImageDataset", "stratified_split"]

IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".pgm",
    ".ppm",
    ".pbm",
    ".webp",
)
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
_DECOMPRESS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\x1f\x8b": gzip.decompress,
    b"BZh": bz2.decompress,
    b"\xfd7zXZ\x00": lzma.decompress,
}


# ---------------------------------------------------------------------------------- stores
class _Store:
    """Images addressed by position: ``names[i]`` is the member path, ``image(i)`` decodes it.

    Subclasses reading from a file keep one handle per process (``_handle()``): a handle
    inherited through fork shares its file offset with the parent, so concurrent seeks in
    DataLoader workers would interleave; handles are also dropped when pickled (spawn).
    """

    def __init__(self, where: str, names: list[str]) -> None:
        self.where = where
        self.names = names
        self._fh: Any = None
        self._pid = os.getpid()

    def describe(self, i: int) -> str:
        return f"{self.where}:{self.names[i]}"

    def read_bytes(self, i: int) -> bytes:
        raise NotImplementedError

    def image(self, i: int) -> Image.Image:
        data = self.read_bytes(i)
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error... on bad data
            raise DataError(
                f"{self.describe(i)}: cannot decode image ({type(exc).__name__}: {exc}); "
                "expected a readable image file"
            ) from exc
        return img

    def _open(self) -> Any:
        raise NotImplementedError

    def _handle(self) -> Any:
        if self._fh is None or self._pid != os.getpid():
            self._fh = self._open()
            self._pid = os.getpid()
        return self._fh

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fh": None}


class _FolderStore(_Store):
    def __init__(self, root: Path, names: list[str]) -> None:
        super().__init__(str(root), names)
        self.root = root

    def describe(self, i: int) -> str:
        return str(self.root / self.names[i])

    def read_bytes(self, i: int) -> bytes:
        try:
            return (self.root / self.names[i]).read_bytes()
        except OSError as exc:
            raise DataError(f"{self.describe(i)}: cannot read image file ({exc})") from exc


class _TarStore(_Store):
    """Uncompressed tar: seek to each member's data offset in the archive file."""

    def __init__(
        self, path: Path, names: list[str], offsets: np.ndarray, sizes: np.ndarray
    ) -> None:
        super().__init__(str(path), names)
        self.path, self.offsets, self.sizes = path, offsets, sizes

    def _open(self) -> Any:
        return self.path.open("rb")

    def read_bytes(self, i: int) -> bytes:
        fh = self._handle()
        fh.seek(int(self.offsets[i]))
        data = fh.read(int(self.sizes[i]))
        if len(data) != self.sizes[i]:
            raise DataError(
                f"{self.describe(i)}: archive is truncated (read {len(data)} of "
                f"{self.sizes[i]} bytes); expected the archive to be unchanged since it was opened"
            )
        return data


class _BlobStore(_Store):
    """Compressed tar: encoded members concatenated in one buffer.

    One ``bytes`` object rather than one per image: after fork, workers only touch the buffer's
    header for reference counts, so its pages stay shared with the parent.
    """

    def __init__(
        self, path: Path, names: list[str], blob: bytes, offsets: np.ndarray, sizes: np.ndarray
    ) -> None:
        super().__init__(str(path), names)
        self.blob, self.offsets, self.sizes = blob, offsets, sizes

    def read_bytes(self, i: int) -> bytes:
        start = int(self.offsets[i])
        return self.blob[start : start + int(self.sizes[i])]


class _ZipStore(_Store):
    def __init__(self, path: Path, names: list[str]) -> None:
        super().__init__(str(path), names)
        self.path = path

    def _open(self) -> Any:
        return zipfile.ZipFile(self.path)

    def read_bytes(self, i: int) -> bytes:
        try:
            return self._handle().read(self.names[i])
        except (zipfile.BadZipFile, zlib.error, KeyError, OSError, EOFError) as exc:
            raise DataError(f"{self.describe(i)}: cannot read zip member ({exc})") from exc


class _ArrayStore(_Store):
    """Decoded ``(N, H, W, C)`` uint8 images from an ``.npz``."""

    def __init__(self, path: Path, images: np.ndarray) -> None:
        super().__init__(str(path), [f"images[{i}]" for i in range(len(images))])
        self.images = images

    def image(self, i: int) -> Image.Image:
        a = self.images[i]
        return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


# ---------------------------------------------------------------------------------- indexing
def _hidden(name: str) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


def _is_image(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES and not _hidden(name)


def _normalize(name: str) -> str:
    """Archive member name as a clean relative POSIX path (``./a//b`` -> ``a/b``)."""
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def _ancestors(name: str) -> Iterable[str]:
    parent = posixpath.dirname(name)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def _check_no_empty_class(where: str, images: list[str], dirs: Iterable[str]) -> None:
    """A folder beside a class folder holding no image at any depth is a class left empty."""
    class_dirs = {posixpath.dirname(n) for n in images}
    nonempty = class_dirs | {a for d in class_dirs for a in _ancestors(d)}
    parents = {posixpath.dirname(d) for d in class_dirs}
    empty = sorted(
        d
        for d in dirs
        if d and not _hidden(d) and d not in nonempty and posixpath.dirname(d) in parents
    )
    if empty:
        raise DataError(
            f"{where}: class folder {empty[0]!r} holds no images"
            + (f" (nor do {len(empty) - 1} more, e.g. {empty[1]!r})" if len(empty) > 1 else "")
            + f"; expected image files ({', '.join(IMAGE_SUFFIXES)}) in every class folder"
        )


def _all_dirs(files: Iterable[str], explicit_dirs: Iterable[str]) -> set[str]:
    """Folders named explicitly (archive directory entries) or implied by member paths."""
    dirs = {d for d in explicit_dirs if d}
    for parent in {posixpath.dirname(f) for f in files}:  # dedupe first: many files per folder
        if parent:
            dirs.update((parent, *_ancestors(parent)))
    return dirs


def _list_folder(root: Path) -> tuple[_Store, set[str]]:
    files, dirs = [], []
    for here, subdirs, names in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        subdirs[:] = [d for d in subdirs if not _hidden(d)]
        dirs.extend(posixpath.join(rel, d) for d in subdirs)
        files.extend(posixpath.join(rel, n) for n in names)
    images = sorted(f for f in files if _is_image(f))
    return _FolderStore(root, images), _all_dirs(files, dirs)


def _list_zip(path: Path) -> tuple[_Store, set[str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: cannot read zip archive ({exc}); expected a valid .zip") from exc
    files = [i.filename for i in infos if not i.is_dir()]
    dirs = [_normalize(i.filename) for i in infos if i.is_dir()]
    # Keep the raw member names (zip reads need them) sorted by their cleaned form.
    images = sorted((f for f in files if _is_image(_normalize(f))), key=_normalize)
    return _ZipStore(path, images), _all_dirs(map(_normalize, files), dirs)


def _list_tar(path: Path, max_memory_mb: float) -> tuple[_Store, set[str]]:
    with path.open("rb") as fh:
        magic = fh.read(6)
    decompress = next((f for m, f in _DECOMPRESS.items() if magic.startswith(m)), None)
    size_mb = path.stat().st_size / 2**20
    if decompress is not None and size_mb > max_memory_mb:
        raise DataError(
            f"{path}: compressed tar of {size_mb:.1f} MB is above max_memory_mb={max_memory_mb:g}; "
            "a compressed tar has no random access, so it is held in memory. Decompress it once "
            f"(e.g. `gunzip -k {path.name}`) and open the .tar, which is read by seeking, "
            "or raise max_memory_mb"
        )
    try:
        raw = decompress(path.read_bytes()) if decompress else None
        source = {"name": path} if raw is None else {"fileobj": io.BytesIO(raw)}
        with tarfile.open(mode="r:", **source) as tf:
            members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(
            f"{path}: cannot read tar archive ({type(exc).__name__}: {exc}); "
            "expected a valid .tar, .tar.gz, .tar.bz2 or .tar.xz"
        ) from exc
    files = [(_normalize(m.name), m) for m in members if m.isfile()]
    dirs = [_normalize(m.name) for m in members if m.isdir()]
    images = sorted((f for f in files if _is_image(f[0])), key=lambda f: f[0])
    names = [n for n, _ in images]
    offsets = np.array([m.offset_data for _, m in images], dtype=np.int64)
    sizes = np.array([m.size for _, m in images], dtype=np.int64)
    all_dirs = _all_dirs((n for n, _ in files), dirs)
    if raw is None:
        return _TarStore(path, names, offsets, sizes), all_dirs
    view = memoryview(raw)
    blob = b"".join(view[o : o + s] for o, s in zip(offsets, sizes, strict=True))
    new_offsets = np.cumsum(sizes) - sizes  # members are packed back to back
    return _BlobStore(path, names, blob, new_offsets, sizes), all_dirs


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


def _as_nhwc_uint8(images: np.ndarray, where: str) -> np.ndarray:
    """``images`` (N,H,W), (N,H,W,C) or (N,C,H,W) with C in 1/3/4 -> (N,H,W,C) uint8."""
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and images.shape[-1] not in (1, 3, 4) and images.shape[1] in (1, 3, 4):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{where}: field 'images' has shape {images.shape}; expected (N, H, W), "
            "(N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4"
        )
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * 255
    if np.issubdtype(images.dtype, np.number) and images.size:
        lo, hi = float(images.min()), float(images.max())
        if np.isfinite([lo, hi]).all() and lo >= 0:
            # Floats up to 1 are taken as [0, 1] intensities; otherwise values must fit 0..255.
            scale = 255.0 if np.issubdtype(images.dtype, np.floating) and hi <= 1.0 else 1.0
            if hi * scale <= 255.0:
                return np.rint(images * scale).astype(np.uint8)
    raise DataError(
        f"{where}: field 'images' has dtype {images.dtype}"
        + (f" and values in [{images.min()}, {images.max()}]" if images.size else "")
        + "; expected uint8, integers in 0..255 or floats in [0, 1]"
    )


def _load_npz(path: Path) -> tuple[_Store, np.ndarray, list[str]]:
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("images", "labels") if k not in npz.files]
            if missing:
                raise DataError(
                    f"{where}: missing field(s) {missing}; expected arrays 'images' and "
                    f"'labels' (and optionally 'class_names'), found {npz.files}"
                )
            images, labels = npz["images"], npz["labels"]
            names = npz["class_names"] if "class_names" in npz.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{where}: cannot read .npz ({exc}); expected a numpy .npz file "
            "of plain arrays (object arrays are not loaded)"
        ) from exc
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{where}: field 'labels' has shape {labels.shape} but 'images' has {len(images)} "
            "images; expected one label per image, shape (N,)"
        )
    images = _as_nhwc_uint8(images, where)
    if names is not None:
        class_names = [str(c) for c in np.ravel(names)]
        if len(set(class_names)) != len(class_names):
            raise DataError(f"{where}: field 'class_names' has repeated names {class_names}")
        if not np.issubdtype(labels.dtype, np.integer):
            index = {c: k for k, c in enumerate(class_names)}
            unknown = sorted({str(v) for v in labels} - set(index))
            if unknown:
                raise DataError(
                    f"{where}: field 'labels' has names {unknown[:5]} that are "
                    f"not in 'class_names' {class_names}"
                )
            labels = np.array([index[str(v)] for v in labels], dtype=np.int64)
    elif np.issubdtype(labels.dtype, np.integer):
        class_names = [str(k) for k in range(int(labels.max()) + 1 if len(labels) else 0)]
    else:  # text labels: classes in sorted order, as for folders
        class_names = sorted({str(v) for v in labels})
        index = {c: k for k, c in enumerate(class_names)}
        labels = np.array([index[str(v)] for v in labels], dtype=np.int64)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: field 'labels' has dtype {labels.dtype}; expected integers")
    bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if len(bad):
        raise DataError(
            f"{where}: field 'labels' holds {labels[bad[0]]} at index {bad[0]}, out of range "
            f"for {len(class_names)} class_names; expected labels in 0..{len(class_names) - 1}"
        )
    return _ArrayStore(path, images), labels.astype(np.int64), class_names


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


class ImageDataset(Dataset):
    """Labelled images as a torch Dataset of ``(FloatTensor (C, H, W) in [0, 1], int label)``.

    Open with :meth:`from_path`. ``class_names[k]`` names label ``k``; ``labels`` ``(N,)``
    int64; ``groups`` ``(N,)`` subject ids (JAFFE) or None; ``paths`` member names.
    ``read(i)`` gives the uint8 ``(H, W, C)`` array after colour conversion and resizing.
    """

    def __init__(
        self,
        store: _Store,
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
            store, labels, class_names = _load_npz(path)
            groups = None
        else:
            if path.is_dir():
                store, dirs = _list_folder(path)
            elif zipfile.is_zipfile(path):
                store, dirs = _list_zip(path)
            elif path.name.lower().endswith(
                (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".tbz2", ".txz")
            ) or tarfile.is_tarfile(path):
                store, dirs = _list_tar(path, max_memory_mb)
            else:
                raise DataError(
                    f"{path}: unsupported file type; expected a folder, an .npz, "
                    "or a .tar/.tar.gz/.tgz/.zip archive"
                )
            if not store.names:
                raise DataError(
                    f"{path}: no images found; expected class folders holding image files "
                    f"({', '.join(IMAGE_SUFFIXES)})"
                )
            clean = [_normalize(n) for n in store.names]
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
        return cls(_FolderStore(Path("/"), names), np.zeros(len(names), np.int64), class_names,
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
        img = self._store.image(int(i))
        if img.mode != self.mode:
            img = img.convert(self.mode)
        if self.size is not None and img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(FloatTensor (C, H, W) in [0, 1], label)``."""
        x = torch.tensor(self.read(i).transpose(2, 0, 1), dtype=torch.float32).div_(255.0)
        return x, int(self.labels[i])

    def close(self) -> None:
        """Close this process's archive handle (it re-opens on the next read)."""
        self._store.close()

    def __repr__(self) -> str:
        return (
            f"ImageDataset({len(self)} images, {len(self.class_names)} classes, "
            f"mode {self.mode}, size {self.size}, from {self.source})"
        )


# ---------------------------------------------------------------------------------- splits
def _largest_remainder(n: int, frac: np.ndarray) -> np.ndarray:
    """Integer part sizes summing to ``n``, each within 1 of ``n * frac``."""
    exact = n * frac
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def stratified_split(
    labels: Sequence[Any] | np.ndarray,
    fractions: Sequence[float] = (0.9, 0.06, 0.04),
    seed: int = 123,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split positions into (train, val, test) sorted int64 arrays, stratified by class.

    Without ``groups``: each class is shuffled with ``seed`` and cut by largest remainder, so
    every part holds within 1 image of ``fraction * class size`` (the MedNIST protocol is
    90/6/4 with seed 123; for repeated runs pass ``seed=run``). With ``groups`` (e.g. JAFFE
    subjects) the split is group-independent via :func:`grouped_split`: no group appears in two
    parts, class balance is approximate, and a part may be empty if groups are few and large.
    """
    frac = _check_fractions(fractions)
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ConfigError(f"labels must be 1-D (one per image), got shape {y.shape}")
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != y.shape:
            raise ConfigError(f"groups has shape {g.shape}; expected {y.shape}, like labels")
        meta = pd.DataFrame({"group": g.astype(str), "label": y})
        return grouped_split(meta, frac, seed=seed, by=("group",))
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):  # sorted class order: the same seed gives the same split
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.cumsum(_largest_remainder(len(idx), frac))[:-1]
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    train, val, test = (
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts
    )
    return train, val, test
