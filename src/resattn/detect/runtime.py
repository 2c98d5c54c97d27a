"""The runtime a detector runs in, chosen per CPU: int8 ONNX Runtime, bf16 autocast or fp32.

``auto`` measures, on windows of the job's own data, every runtime this CPU can run, keeps
those whose probabilities agree with fp32 within ``tolerance`` (largest absolute difference of
p(earthquake)) and picks the fastest of them. The int8 model is calibrated on those windows
and cached beside the job's output, so every worker (and a Dask cluster) loads the same file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..engine.precision import choose_precision, cpu_info
from ..errors import ConfigError

RUNTIMES = ("auto", "torch-fp32", "torch-bf16", "onnx-int8")
DEFAULT_TOLERANCE = 0.05  # largest |p - p_fp32| a faster runtime may differ by


@dataclass(frozen=True)
class RuntimeSpec:
    """What a worker needs to build the runner: the runtime's name and, for ``onnx-int8``,
    the quantised file (picklable: sent to worker processes and Dask workers)."""

    name: str
    onnx_path: str | None = None


def positive_class(meta: dict) -> int:
    """Index of the earthquake class in the model's outputs (the last one if unnamed)."""
    names = list((meta.get("contract") or {}).get("class_names") or [])
    return names.index("earthquake") if "earthquake" in names else max(len(names) - 1, 1)


class Scorer:
    """p(earthquake) of a batch ``(B, C, L)`` float32 in one runtime."""

    def __init__(self, model: nn.Module, meta: dict, spec: RuntimeSpec) -> None:
        from ..optimize.benchmark import OrtRunner, TorchRunner

        if spec.name not in RUNTIMES[1:]:
            raise ConfigError(f"--runtime must be one of {list(RUNTIMES)}, got {spec.name!r}")
        self.spec, self.index = spec, positive_class(meta)
        if spec.name == "onnx-int8":
            self.runner = OrtRunner(spec.onnx_path)
        else:
            self.runner = TorchRunner(model, "bf16" if spec.name == "torch-bf16" else "fp32")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(np.asarray(self.runner(x), dtype=np.float32))
        return torch.softmax(logits, dim=1)[:, self.index].numpy()


def candidates() -> list[str]:
    """The runtimes worth trying on this CPU: int8 where ONNX Runtime is installed; bf16 where
    ``engine.precision`` measured that the CPU accelerates it; fp32 always."""
    names = []
    try:
        import onnxruntime  # noqa: F401

        names.append("onnx-int8")
    except ImportError:
        pass
    if choose_precision("auto") == "bf16":
        names.append("torch-bf16")
    return [*names, "torch-fp32"]


def int8_file(model: nn.Module, meta: dict, calibration: np.ndarray, folder: Path) -> Path:
    """The model exported to ONNX and quantised to int8 (static, calibrated on
    ``calibration`` windows), in ``folder``; built once per folder."""
    from ..optimize.export import export_onnx
    from ..optimize.quantize import quantize_onnx_int8

    target = folder / "detector-int8.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, calibration.shape[1:], folder / "detector-fp32.onnx")
    batches = [calibration[i:i + 32] for i in range(0, len(calibration), 32)]
    quantize_onnx_int8(fp32, batches, target)
    fp32.unlink()
    return target


def _speed(scorer: Scorer, x: np.ndarray, repeats: int = 3) -> float:
    """Windows per second of ``scorer`` on ``x`` (best of ``repeats`` after one warm-up)."""
    scorer(x[:2])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        scorer(x)
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def choose_runtime(requested: str, model: nn.Module, meta: dict, calibration: np.ndarray,
                   folder: Path, tolerance: float = DEFAULT_TOLERANCE) -> tuple[RuntimeSpec, dict]:
    """The runtime to run (an explicit request wins) and a report of what was measured:
    per runtime its windows/s and largest |p - p_fp32| on ``calibration`` windows."""
    if requested not in RUNTIMES:
        raise ConfigError(f"--runtime must be one of {list(RUNTIMES)}, got {requested!r}")
    if not 0 <= tolerance <= 1:
        raise ConfigError(f"--tolerance is a probability difference in [0, 1], got {tolerance}")
    names = candidates() if requested == "auto" else [requested]
    if "torch-fp32" not in names:
        names.append("torch-fp32")  # the reference the others are compared with
    x = np.ascontiguousarray(calibration, dtype=np.float32)
    specs = {n: RuntimeSpec(n, str(int8_file(model, meta, x, folder)) if n == "onnx-int8"
                            else None) for n in names}
    scorers = {n: Scorer(model, meta, s) for n, s in specs.items()}
    reference = scorers["torch-fp32"](x)
    measured = {}
    for name, scorer in scorers.items():
        diff = float(np.max(np.abs(scorer(x) - reference))) if len(x) else 0.0
        measured[name] = {"max_abs_diff_vs_fp32": round(diff, 6),
                          "agrees": diff <= tolerance,
                          "windows_per_s": round(_speed(scorer, x), 1)}
    if requested == "auto":
        agreeing = [n for n in names if measured[n]["agrees"]]
        chosen = max(agreeing, key=lambda n: measured[n]["windows_per_s"])
    else:
        chosen = requested
    report = {"requested": requested, "chosen": chosen, "tolerance": tolerance,
              "calibration_windows": len(x), "cpu": cpu_info(),
              "measured": measured}
    return specs[chosen], report
