"""Choose the training/inference precision from what this CPU actually accelerates.

bf16 autocast is several times faster than fp32 on CPUs with native bf16 (AMX, AVX512-BF16) and
5-100x SLOWER on AVX2-only CPUs, so ``auto`` checks the capability and then times a short
calibration (one conv forward + backward in each precision) before picking bf16. The choice is
made once per machine and recorded (``auto_decision``): re-timing at every start could flip it
near the threshold, giving the same command different weights.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..io import remove_stale_temps

PRECISIONS = ("auto", "fp32", "bf16")
_BF16_CAPABLE = ("AVX512", "AMX")  # prefixes of torch.backends.cpu.get_cpu_capability()
_MIN_SPEEDUP = 1.3


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_info() -> dict:
    """Facts that every speed figure must name."""
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _time_step(dtype: torch.dtype | None, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds of one forward + backward of a small residual-branch-like
    stack (two 128-channel convs with BN, batch 32 x 512 samples): big enough that kernel time,
    not dispatch overhead, decides (a single tiny conv shows no bf16 gain where a whole
    ResNetKAN1D trains 1.8x faster)."""
    with torch.random.fork_rng():  # the caller's random stream is left untouched
        torch.manual_seed(0)
        block = torch.nn.Sequential(
            torch.nn.Conv1d(128, 128, 3, padding=1), torch.nn.BatchNorm1d(128),
            torch.nn.ReLU(), torch.nn.Conv1d(128, 128, 3, padding=1),
        )
        x = torch.randn(32, 128, 512, requires_grad=True)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run warms up kernels
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            block(x).float().square().mean().backward()
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=1)
def calibrate_bf16() -> float:
    """Measured speed-up of bf16 autocast over fp32 for a conv step on this CPU (cached)."""
    return _time_step(None) / _time_step(torch.bfloat16)


def machine_key() -> str:
    """What the ``auto`` decision depends on: CPU model, capability, threads, torch version."""
    info = cpu_info()
    return (f"{info['cpu_model']}|{info['cpu_capability']}|threads={info['torch_threads']}|"
            f"torch={torch.__version__}")


def decision_file() -> Path:
    """Where ``auto`` records its decision for this machine (``RESATTN_CACHE`` overrides
    ``~/.cache/resattn``)."""
    root = os.environ.get("RESATTN_CACHE") or Path.home() / ".cache" / "resattn"
    return Path(root) / "precision.json"


def _decide() -> dict:
    capability = torch.backends.cpu.get_cpu_capability()
    if not capability.startswith(_BF16_CAPABLE):
        return {"precision": "fp32", "bf16_speedup": None,
                "reason": f"CPU capability {capability} has no native bf16 (needs AVX512 or "
                          "AMX): bf16 would be slower"}
    speedup = round(calibrate_bf16(), 3)
    chosen = "bf16" if speedup >= _MIN_SPEEDUP else "fp32"
    return {"precision": chosen, "bf16_speedup": speedup,
            "reason": f"measured bf16 speed-up {speedup:.2f}x "
                      f"{'>=' if chosen == 'bf16' else '<'} {_MIN_SPEEDUP}x threshold"}


def _recorded(path: Path, key: str) -> dict | None:
    """The decision recorded in ``path`` for machine ``key``; None if absent, unreadable or
    another machine's."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        record = json.loads(path.read_text())
        if record.get("machine") == key and record.get("precision") in ("fp32", "bf16"):
            return record
    return None


def _publish(path: Path, record: dict) -> dict:
    """Record ``record`` in ``path`` and return the decision that holds: one another process
    recorded while this one measured wins (two first runs started together must not train
    with two answers); a foreign or broken record is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)  # a record whose writer was killed
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1))
        for _ in range(2):
            theirs = _recorded(path, record["machine"])
            if theirs is not None:
                return theirs
            if path.exists():  # foreign or broken
                os.replace(tmp, path)
                return record
            try:
                os.link(tmp, path)  # fails if another process recorded one meanwhile
                return record
            except FileExistsError:
                continue
        return record
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def auto_decision() -> dict:
    """The precision ``auto`` picks on this machine and why, decided once and recorded in
    :func:`decision_file` so that every later process (and a resumed run) picks the same;
    delete the file to measure again. An unreadable or foreign record is measured anew."""
    path, key = decision_file(), machine_key()
    record = _recorded(path, key)
    if record is not None:
        return {**record, "recorded": str(path)}
    record = {"machine": key, **_decide()}
    with contextlib.suppress(OSError):  # a read-only home still gets a (per-process) choice
        return {**_publish(path, record), "recorded": str(path)}
    return {**record, "recorded": None}


def choose_precision(requested: str = "auto") -> str:
    """``fp32`` or ``bf16``: an explicit request wins; ``auto`` picks bf16 only where the CPU
    advertises AVX512/AMX and a calibration shows a real speed-up, decided once per machine
    (:func:`auto_decision`) so that the same command gives the same weights."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested
    return auto_decision()["precision"]


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """Context for the forward pass in the chosen precision (``fp32`` = no autocast)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
