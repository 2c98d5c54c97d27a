"""Before/after rows for the ``resattn compress`` commands: the original model and each
optimised version measured in one run on the same data (params, MACs, size on disk, latency at
batch 1 and 64, throughput, accuracy), for the report ``results/compression.{md,json}``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..pretrained import load_any
from ..tasks import task_of
from .benchmark import OrtRunner, TorchRunner, measure, model_size_bytes
from .export import export_onnx, verify_onnx
from .prune import input_shape_of
from .quantize import quantize_onnx_int8


def eval_batches(meta: dict, data: str | Path, part: str = "auto",
                 batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """The evaluation items of ``data`` as the model in ``meta`` expects them: the items of
    its split part ``part`` ("all" for every item; "auto": test when the model records its
    split, else all)."""
    task = task_of(meta)
    if part == "auto":
        part = "test" if task.records_split(meta) else "all"
    items = task.eval_items(meta, data, part)
    return [(x.numpy(), y.numpy()) for x, y in DataLoader(items, batch_size=batch_size)]


def calibration(batches: Iterable[tuple[np.ndarray, np.ndarray]], n: int = 8) -> list:
    return [x for x, _ in list(batches)[:n]]


def original_rows(name: str, model: nn.Module, meta: dict, batches: list, out: Path,
                  techniques: Iterable[str] = ("fp32", "bf16", "int8")) -> list[dict]:
    """Rows of the model as trained (fp32 eager), under bf16 autocast, and int8 through ONNX
    Runtime (static quantisation calibrated on a few of the evaluation batches)."""
    shape = input_shape_of(meta)
    size = model_size_bytes(model)
    rows = []
    for technique in techniques:
        if technique in ("fp32", "bf16"):
            runner = TorchRunner(model, technique)
            rows.append(measure(name, f"{technique} (PyTorch eager)", runner, model, shape,
                                size if technique == "fp32" else
                                model_size_bytes(model, torch.bfloat16), batches))
        elif technique in ("onnx", "int8"):
            onnx = export_onnx(model, shape, out / f"{name}.onnx")
            if technique == "onnx":
                rows.append(measure(name, "fp32 (ONNX Runtime)", OrtRunner(onnx), model, shape,
                                    onnx.stat().st_size, batches))
                continue
            q = quantize_onnx_int8(onnx, calibration(batches), out / f"{name}.int8.onnx")
            rows.append(measure(name, "int8 static (ONNX Runtime)", OrtRunner(q), model,
                                shape, q.stat().st_size, batches))
    return rows


def model_row(name: str, technique: str, source: str | Path, batches: list) -> dict:
    """One fp32-eager row of a trained model (a pruned or distilled result)."""
    model, meta = load_any(source)
    return measure(name, technique, TorchRunner(model), model, input_shape_of(meta),
                   model_size_bytes(model), batches)


def onnx_check(model: nn.Module, meta: dict, out: Path) -> float:
    """Max |ONNX Runtime - PyTorch| on a random batch of 4."""
    path = export_onnx(model, input_shape_of(meta), out / "check.onnx")
    x = torch.randn(4, *input_shape_of(meta))
    return verify_onnx(model, path, x)
