"""Pieces the data readers share: a library's exception as one line of a message, and numpy
``.npy`` / ``.npz`` files read without ever unpickling, every failure one ``DataError``."""

from __future__ import annotations

import lzma
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from resattn.errors import DataError

__all__ = ["cause", "read_arrays"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive
# What np.load and zipfile raise on damaged bytes: a truncated file (EOFError, ValueError), a
# header declaring more data than memory (MemoryError), a broken archive (BadZipFile, zlib,
# lzma), an encrypted member (RuntimeError), an unknown compression (NotImplementedError) or
# a garbled header, which numpy hands to Python's tokenizer (TokenError, SyntaxError).
_NUMPY_FAILURES = (OSError, EOFError, ValueError, MemoryError, zipfile.BadZipFile, zlib.error,
                   lzma.LZMAError, RuntimeError, NotImplementedError, tokenize.TokenError,
                   SyntaxError)


def cause(exc: BaseException) -> str:
    """``exc`` as ``Type: text`` on one line (library messages may span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_arrays(path: Path,
                pick: Callable[[list[str]], Sequence[str]] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (by member name, in file order) or ``.npy`` (one, ``arr_0``).

    ``pick`` chooses which of the file's array names to read (default: all); it may raise a
    ``DataError`` of its own (a missing field). Object arrays are refused, never unpickled.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({cause(exc)})") from None
    if not head.startswith(_NPY_MAGIC) and not head.startswith(_ZIP_MAGIC):
        raise DataError(f"{path}: not a numpy .npy or .npz file (it starts with {head!r}); "
                        "expected a file written by numpy.save or numpy.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            names = ["arr_0"]
            return {k: loaded for k in (pick(names) if pick else names)}
        with loaded as npz:
            names = list(npz.files)
            arrays = {k: npz[k] for k in (pick(names) if pick else names)}
    except _NUMPY_FAILURES as exc:
        raise DataError(f"{path}: cannot read the numpy arrays ({cause(exc)}); expected plain "
                        "numeric arrays (object arrays are never loaded)") from None
    for k, v in arrays.items():  # NpzFile hands back the raw bytes of a member not in .npy
        if not isinstance(v, np.ndarray):
            raise DataError(f"{path}: member {k!r} is not a numpy array (.npy) but "
                            f"{len(v)} other bytes; expected an archive written by numpy.savez")
    return arrays
