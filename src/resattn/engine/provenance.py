"""What every result records: package versions, git commit, machine, seed."""

from __future__ import annotations

import contextlib
import platform
import random
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .precision import cpu_info


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run repeats."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the git checkout holding ``path`` (default: this package), if any."""
    where = Path(path or Path(__file__).resolve().parent)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                capture_output=True, text=True, timeout=5,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Versions, commit and machine facts to store beside every result."""
    return {
        "resattn": _version("resattn"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        **cpu_info(),
    }
