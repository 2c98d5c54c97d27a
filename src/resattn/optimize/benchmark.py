"""Before/after comparison of a model and its optimised forms: size, MACs, latency, accuracy.

A *runner* maps a float32 batch (B, C, *spatial) to logits (B, num_classes); ``TorchRunner``
runs the PyTorch model (fp32 or bf16 autocast), ``OrtRunner`` an ONNX file (fp32 or int8).
``measure`` gives one table row per (model, technique); every row names the CPU and the
thread count, since a latency means nothing without them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import save as save_tensors_bytes
from torch import nn

from ..engine.precision import autocast, cpu_info
from ..errors import ConfigError, DataError
from ..models.summary import summarize
from .export import ort_session, run_session, sample_shape

RUNNER_PRECISIONS = ("fp32", "bf16")
BIG_BATCH = 64
COLUMNS = (
    ("model", "model"), ("technique", "technique"), ("params", "params"), ("macs", "MACs"),
    ("size_bytes", "size"), ("latency_ms_b1", "latency b1 (ms)"),
    ("latency_ms_b64", f"latency b{BIG_BATCH} (ms)"), ("throughput", "throughput (samples/s)"),
    ("accuracy", "accuracy"), ("threads", "threads"),
)


@runtime_checkable
class Runner(Protocol):
    """Anything that maps a float32 batch to a (B, num_classes) logits array."""

    threads: int

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def _as_float32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class TorchRunner:
    """The PyTorch model, fp32 or under bf16 autocast (``engine.precision``); puts the model in
    eval mode once here, so that toggling modes is not timed with every call."""

    def __init__(self, model: nn.Module, precision: str = "fp32") -> None:
        if precision not in RUNNER_PRECISIONS:
            raise ConfigError(f"precision must be one of {list(RUNNER_PRECISIONS)}, "
                              f"got {precision!r}")
        self.model, self.precision = model.eval(), precision
        self.dims = getattr(model, "dims", None)

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _as_float32(x)
        if self.dims is not None and x.ndim != self.dims + 2:
            raise DataError(f"a {self.dims}-D model takes batches of rank {self.dims + 2} "
                            f"(B, C, *spatial), got an array of shape {x.shape}")
        with torch.inference_mode(), autocast(self.precision):
            return self.model(torch.from_numpy(x)).float().numpy()


class OrtRunner:
    """An ONNX file in ONNX Runtime (CPU provider, ``threads`` intra-op threads, default
    ``torch.get_num_threads()``)."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None) -> None:
        self.path = Path(onnx_path)
        self.threads = int(threads or torch.get_num_threads())
        self.session = ort_session(self.path, self.threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return run_session(self.session, _as_float32(x), source=str(self.path))


def latency_ms(runner: Runner, x: np.ndarray, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall time of ``runner(x)`` in milliseconds after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    x = _as_float32(x)
    for _ in range(warmup):
        runner(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def accuracy(runner: Runner, data: Iterable[tuple[Any, Any]]) -> float:
    """Fraction of samples whose argmax logit equals the label, over (x, y) batches."""
    correct = total = 0
    for x, y in data:
        logits = runner(_as_float32(x))
        labels = np.asarray(y.cpu().numpy() if torch.is_tensor(y) else y).reshape(-1)
        if logits.ndim != 2 or len(logits) != len(labels):
            raise DataError(f"a batch of {len(labels)} labels gave logits of shape "
                            f"{logits.shape}; expected ({len(labels)}, num_classes)")
        correct += int((logits.argmax(axis=1) == labels).sum())
        total += len(labels)
    if total == 0:
        raise DataError("the evaluation data yielded no samples")
    return correct / total


def model_size_bytes(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of the model's safetensors file (as ``checkpoint.save_model`` writes it, learned
    parameters cast to ``dtype`` if given, buffers kept), without the JSON config."""
    params = {name for name, _ in model.named_parameters()}
    tensors = {k: (v.to(dtype) if dtype is not None and k in params else v)
               .detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return len(save_tensors_bytes(tensors))


def _random_batch(batch: int, sample: Sequence[int]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, *sample), dtype=np.float32)


def measure(name: str, technique: str, runner: Runner, model_for_counts: nn.Module | None,
            input_shape: Sequence[int], size_bytes: int | None,
            data: Iterable[tuple[Any, Any]] | None = None, warmup: int = 3,
            repeats: int = 20) -> dict:
    """One comparison row for ``runner``: params and MACs (per sample) of ``model_for_counts``
    (None: not counted), ``size_bytes`` as given, median latency at batch 1 and 64 on random
    inputs of ``input_shape`` ((C, *spatial) or with a batch dim), throughput at batch 64,
    accuracy on ``data`` (None without data), the CPU model and the runner's threads."""
    if model_for_counts is not None:
        sample = sample_shape(model_for_counts, input_shape)
        counts = summarize(model_for_counts, sample)
        params, macs = int(counts["params"]), int(counts["macs"])
    else:
        sample, params, macs = tuple(int(s) for s in input_shape), None, None
    lat_1 = latency_ms(runner, _random_batch(1, sample), warmup, repeats)
    lat_big = latency_ms(runner, _random_batch(BIG_BATCH, sample), warmup, repeats)
    return {
        "model": name, "technique": technique, "params": params, "macs": macs,
        "size_bytes": None if size_bytes is None else int(size_bytes),
        "latency_ms_b1": lat_1, "latency_ms_b64": lat_big,
        "throughput": BIG_BATCH / (lat_big / 1000.0),
        "accuracy": None if data is None else accuracy(runner, data),
        "cpu": cpu_info()["cpu_model"], "threads": int(runner.threads),
    }


def _human(value: float, units: Sequence[str], base: float) -> str:
    for unit in units[:-1]:
        if abs(value) < base:
            return f"{value:.3g}{unit}"
        value /= base
    return f"{value:.3g}{units[-1]}"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in ("params", "macs"):
        return _human(float(value), ("", "K", "M", "G", "T"), 1000.0)
    if key == "size_bytes":
        return _human(float(value), (" B", " KiB", " MiB", " GiB"), 1024.0)
    if key in ("latency_ms_b1", "latency_ms_b64"):
        return f"{value:.2f}"
    if key == "throughput":
        return f"{value:.1f}"
    if key == "accuracy":
        return f"{value:.4f}"
    return str(value)


def format_rows(rows: Sequence[dict]) -> str:
    """A Markdown table of ``measure`` rows, with the CPU(s) named below it."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "|".join("---" if key in ("model", "technique") else "---:"
                            for key, _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(key, row.get(key)) for key, _ in COLUMNS) + " |"
              for row in rows]
    cpus = sorted({str(row.get("cpu")) for row in rows if row.get("cpu")})
    if cpus:
        lines += ["", f"CPU: {'; '.join(cpus)}. Latency: median wall time; MACs per sample."]
    return "\n".join(lines)
