"""Images read in place from a folder, tar/zip archive or ``.npz``, never unpacked to disk.

A listing returns an :class:`ImageStore` (images addressed by position: ``names[i]`` is the member
path, ``image(i)`` decodes it) and every folder seen, for the class-folder checks of
:mod:`resattn.data.images`. Members are indexed once at open time and decoded lazily on each
read. An uncompressed ``.tar`` is read by seeking to the member's offset, and a ``.zip`` through
its central directory. A compressed tar cannot be seeked into (gzip has no random access:
reaching a member means decompressing everything before it). So it is decompressed once while
indexing, which has to read the whole stream anyway, and the encoded image bytes are kept in one
in-memory buffer: MedNIST's 57 MB ``.tar.gz`` becomes 75 MB of JPEG bytes. Above
``max_memory_mb`` of compressed archive, opening fails and says how to get a seekable ``.tar``.
File handles are opened once per process, so DataLoader workers (fork or spawn) open their own.
An ``.npz`` holds decoded ``images`` with their ``labels`` (and optionally ``class_names``).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from resattn.data.files import read_arrays
from resattn.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "FolderStore",
    "ImageStore",
    "ancestors",
    "is_hidden",
    "list_images",
    "load_npz",
    "member_path",
]

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
_TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".tbz2", ".txz")
_DECOMPRESS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\x1f\x8b": gzip.decompress,
    b"BZh": bz2.decompress,
    b"\xfd7zXZ\x00": lzma.decompress,
}


# ---------------------------------------------------------------------------------- stores
class ImageStore:
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


class FolderStore(ImageStore):
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


class _TarStore(ImageStore):
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


class _BlobStore(ImageStore):
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


class _ZipStore(ImageStore):
    def __init__(self, path: Path, names: list[str]) -> None:
        super().__init__(str(path), names)
        self.path = path

    def _open(self) -> Any:
        return zipfile.ZipFile(self.path)

    def read_bytes(self, i: int) -> bytes:
        try:
            return self._handle().read(self.names[i])
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, KeyError, OSError, EOFError,
                RuntimeError, NotImplementedError) as exc:  # (encrypted, unknown compression)
            raise DataError(f"{self.describe(i)}: cannot read zip member ({exc})") from exc


class _ArrayStore(ImageStore):
    """Decoded ``(N, H, W, C)`` uint8 images from an ``.npz``."""

    def __init__(self, path: Path, images: np.ndarray) -> None:
        super().__init__(str(path), [f"images[{i}]" for i in range(len(images))])
        self.images = images

    def image(self, i: int) -> Image.Image:
        a = self.images[i]
        return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


# ---------------------------------------------------------------------------------- indexing
def is_hidden(name: str) -> bool:
    """A dot file or folder, or macOS resource fork (``__MACOSX``), anywhere in ``name``."""
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


def _is_image(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES and not is_hidden(name)


def member_path(name: str) -> str:
    """Archive member name as a clean relative POSIX path (``./a//b`` -> ``a/b``)."""
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def ancestors(name: str) -> Iterable[str]:
    """Parent folders of a POSIX path, nearest first (``a/b/c.png`` -> ``a/b``, ``a``)."""
    parent = posixpath.dirname(name)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def _all_dirs(files: Iterable[str], explicit_dirs: Iterable[str]) -> set[str]:
    """Folders named explicitly (archive directory entries) or implied by member paths."""
    dirs = {d for d in explicit_dirs if d}
    for parent in {posixpath.dirname(f) for f in files}:  # dedupe first: many files per folder
        if parent:
            dirs.update((parent, *ancestors(parent)))
    return dirs


def _list_folder(root: Path) -> tuple[ImageStore, set[str]]:
    files, dirs = [], []
    for here, subdirs, names in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        subdirs[:] = [d for d in subdirs if not is_hidden(d)]
        dirs.extend(posixpath.join(rel, d) for d in subdirs)
        files.extend(posixpath.join(rel, n) for n in names)
    images = sorted(f for f in files if _is_image(f))
    return FolderStore(root, images), _all_dirs(files, dirs)


def _list_zip(path: Path) -> tuple[ImageStore, set[str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: cannot read zip archive ({exc}); expected a valid .zip") from exc
    files = [i.filename for i in infos if not i.is_dir()]
    dirs = [member_path(i.filename) for i in infos if i.is_dir()]
    # Keep the raw member names (zip reads need them) sorted by their cleaned form.
    images = sorted((f for f in files if _is_image(member_path(f))), key=member_path)
    _check_zip_members(path, [i for i in infos if _is_image(member_path(i.filename))])
    return _ZipStore(path, images), _all_dirs(map(member_path, files), dirs)


_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
                zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _check_zip_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse at open time the image members no read could decode: encrypted ones, or ones
    compressed by a method Python's zipfile lacks (e.g. 7-Zip's PPMd or Deflate64)."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise DataError(f"{path}:{info.filename}: the member is encrypted; expected an "
                            "archive without a password (re-create it unencrypted)")
        if info.compress_type not in _ZIP_METHODS:
            raise DataError(f"{path}:{info.filename}: compression method {info.compress_type} "
                            f"is not supported; expected one of {sorted(_ZIP_METHODS.values())}"
                            " (re-create the zip with deflate)")


def _list_tar(path: Path, max_memory_mb: float) -> tuple[ImageStore, set[str]]:
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
            end = tf.offset  # where the end-of-archive block must be
        if raw is None:
            with path.open("rb") as fh:
                fh.seek(end)
                marker = fh.read(tarfile.BLOCKSIZE)
        else:
            marker = raw[end : end + tarfile.BLOCKSIZE]
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(
            f"{path}: cannot read tar archive ({type(exc).__name__}: {exc}); "
            "expected a valid .tar, .tar.gz, .tar.bz2 or .tar.xz"
        ) from exc
    # tarfile takes a cut or damaged archive to end at the last whole member: without this
    # check the images (whole classes) after the cut would be silently missing.
    if len(marker) < tarfile.BLOCKSIZE or marker.strip(b"\0"):
        raise DataError(
            f"{path}: tar archive is truncated or damaged after {len(members)} member(s): no "
            f"end-of-archive block at byte {end}; expected a complete archive (download or "
            "copy it again)"
        )
    files = [(member_path(m.name), m) for m in members if m.isfile()]
    dirs = [member_path(m.name) for m in members if m.isdir()]
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
    real = images.dtype.kind in "iuf"  # not complex, text or datetimes
    if real and images.size:
        lo, hi = float(images.min()), float(images.max())
        if np.isfinite([lo, hi]).all() and lo >= 0:
            # Floats up to 1 are taken as [0, 1] intensities; otherwise values must fit 0..255.
            scale = 255.0 if np.issubdtype(images.dtype, np.floating) and hi <= 1.0 else 1.0
            if hi * scale <= 255.0:
                return np.rint(images * scale).astype(np.uint8)
    raise DataError(
        f"{where}: field 'images' has dtype {images.dtype}"
        + (f" and values in [{images.min()}, {images.max()}]" if real and images.size else "")
        + "; expected uint8, integers in 0..255 or floats in [0, 1]"
    )


def _may_be_tar(path: Path) -> bool:
    """``tarfile.is_tarfile``, also True when it fails on a damaged compressed stream (which
    it lets escape as EOFError, zlib.error...): :func:`_list_tar` then says what is wrong."""
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return True


def list_images(path: Path, max_memory_mb: float = 512.0) -> tuple[ImageStore, set[str]]:
    """Index the images of a folder, ``.zip`` or (compressed) ``.tar`` without decoding them.

    Returns the store (``names`` sorted by :func:`member_path`; raw zip member names) and every
    folder seen, implied or explicit, as clean relative paths. ``max_memory_mb``: largest
    compressed tar held in memory.
    """
    if path.is_dir():
        return _list_folder(path)
    if zipfile.is_zipfile(path):
        return _list_zip(path)
    if path.name.lower().endswith(_TAR_SUFFIXES) or _may_be_tar(path):
        return _list_tar(path, max_memory_mb)
    raise DataError(
        f"{path}: unsupported file type; expected a folder, an .npz, "
        "or a .tar/.tar.gz/.tgz/.zip archive"
    )


def load_npz(path: Path) -> tuple[ImageStore, np.ndarray, list[str]]:
    """``(store, labels (N,) int64, class_names)`` from an ``.npz`` of ``images`` ``(N, H, W)``,
    ``(N, H, W, C)`` or ``(N, C, H, W)``, ``labels`` ``(N,)`` (ints or names) and optionally
    ``class_names`` ``(K,)``; images are held decoded as ``(N, H, W, C)`` uint8."""
    where = str(path)

    def fields(names: list[str]) -> list[str]:
        missing = [k for k in ("images", "labels") if k not in names]
        if missing:
            raise DataError(
                f"{where}: missing field(s) {missing}; expected arrays 'images' and "
                f"'labels' (and optionally 'class_names'), found {names}"
            )
        return [k for k in ("images", "labels", "class_names") if k in names]

    arrays = read_arrays(path, fields)
    images, labels, names = arrays["images"], arrays["labels"], arrays.get("class_names")
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

