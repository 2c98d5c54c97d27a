"""Atomic writes (temporary file + rename) and JSON reading/writing: used by every layer,
depends on nothing but the error types."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ConfigError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and shipped files are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_link(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src`` at once, replacing what ``dst`` was: a hard link
    (no bytes copied; ``src`` is never written in place, only replaced), or an atomic copy on a
    filesystem without hard links."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        os.link(src, tmp)
    except FileNotFoundError:
        raise
    except OSError:  # FAT, some network filesystems: no hard links
        atomic_write_bytes(dst, src.read_bytes())
        return
    try:
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj, default=_json_default))


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (OSError, ValueError, RecursionError) as exc:  # Recursion: nested too deep
        raise CheckpointError(f"{path}: not a readable JSON file ({exc})") from None


_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def folder_name(name: str, where: str) -> str:
    """``name`` if it is one plain folder name (letters, digits, ``.``, ``_``, ``-``; no
    separator, no ``..``), so that ``results/<name>`` never points outside ``results/``."""
    if not isinstance(name, str) or not _FOLDER_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"{where}: expected one plain folder name (letters, digits, '.', '_', "
                          f"'-'; no '/' or '..'), got {name!r}")
    return name


def _probe(folder: Path, what: str, asked: Path) -> None:
    """Create and remove a file in ``folder``: the one test of writability that holds for
    root, read-only mounts and ACLs alike."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".resattn-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        where = "there" if folder == asked else f"in {folder}"
        raise ConfigError(f"{what} {asked}: cannot write {where} ({exc.strerror or exc})") \
            from None


def writable_dir(path: Path, what: str) -> Path:
    """``path`` checked as an output folder before any work: an existing folder we can write
    in, or a new one whose nearest existing parent is a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: expected a folder, but it is a file")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{what} {path}: cannot create a folder under the file {ancestor}")
    _probe(ancestor, what, path)
    return path


def writable_file(path: Path, what: str) -> Path:
    """``path`` checked as an output file: not a folder or device, its folder writable."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what} {path}: expected a regular file to write, but it is a "
                          f"{'folder' if path.is_dir() else 'device or special file'}")
    writable_dir(path.parent, what)
    return path


def check_run_folder(out: Path, task: str) -> None:
    """Refuse to train into a folder that holds another task's model (it would be
    overwritten under the wrong metadata)."""
    card = Path(out) / "model.json"
    meta = read_json(card) if card.is_file() else {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{card}: expected a JSON object (a model's card), got "
                              f"{type(meta).__name__}; cannot tell whose model {out} holds")
    other = meta.get("task")
    if other and other != task:
        raise ConfigError(f"{out} holds a {other} model; a {task} run would overwrite it: "
                          "choose another --out")


def remove_stale_temps(folder: Path, older_than: float = 60.0) -> list[Path]:
    """Remove the hidden ``.<name>.*.tmp`` files a killed atomic write left in ``folder``
    (only those untouched for ``older_than`` seconds: a live writer's file is kept; 0 when
    the caller holds the folder alone, e.g. under a run's lock)."""
    removed = []
    now = time.time()
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if tmp.is_file() and (older_than <= 0 or now - tmp.stat().st_mtime > older_than):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed
