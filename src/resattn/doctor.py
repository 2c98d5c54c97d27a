"""``resattn doctor``: what this machine and installation can do, in one report.

Versions, the CPU's vector and matrix features (AVX2, AVX-512, AVX-512 bf16, VNNI, AMX), the
threads torch uses, the precision ``auto`` picks and why, ONNX Runtime's providers, where the
shared data is, and which optional extras are installed (with the ``pip install`` that adds
what is missing).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from pathlib import Path

import torch

from .engine.precision import auto_decision
from .engine.provenance import environment
from .extras import EXTRAS, missing

# /proc/cpuinfo flag -> what a user reads
CPU_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX-512 bf16",
             "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_bf16": "AMX bf16",
             "amx_int8": "AMX int8"}
DATA_FOLDERS = ("seismic", "seismic_more", "catalog", "mednist", "fer")


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` the CPU advertises (all False where it cannot be read)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {label: flag in flags for flag, label in CPU_FLAGS.items()}


def extras() -> dict[str, dict]:
    """Per extra: installed or not, the modules missing, and how to install it."""
    report = {}
    for extra in EXTRAS:
        absent = missing(extra)
        report[extra] = {"installed": not absent, "missing": absent,
                         **({"install": f"pip install 'resattn[{extra}]'"} if absent else {})}
    return report


def onnx_providers() -> list[str] | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def data_paths(start: Path | None = None) -> dict[str, str | None]:
    """The shared data folders found beside the working directory or the package checkout."""
    here = [Path.cwd(), Path(__file__).resolve().parents[2]] if start is None else [start]
    found: dict[str, str | None] = dict.fromkeys(DATA_FOLDERS)
    for root in here:
        shared = root.parent / "shared" / "data"
        for name in DATA_FOLDERS:
            if found[name] is None and (shared / name).is_dir():
                found[name] = str((shared / name).resolve())
    return found


def report() -> dict:
    """Everything ``resattn doctor`` prints."""
    versions = environment()
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["typer"] = importlib.metadata.version("typer")
    return {
        "versions": versions,
        "cpu": {"features": cpu_flags(),
                "torch_interop_threads": torch.get_num_interop_threads()},
        "precision_auto": auto_decision(),
        "onnxruntime_providers": onnx_providers(),
        "data": data_paths(),
        "extras": extras(),
    }
