"""Make trained models smaller and faster: ONNX/TorchScript export, int8 and bf16, benchmarks."""

from __future__ import annotations

from .benchmark import (
    OrtRunner,
    Runner,
    TorchRunner,
    accuracy,
    format_rows,
    latency_ms,
    measure,
    model_size_bytes,
)
from .export import export_onnx, export_torchscript, load_onnx, verify_onnx
from .quantize import bf16_runner, quantize_onnx_int8

__all__ = [
    "OrtRunner",
    "Runner",
    "TorchRunner",
    "accuracy",
    "bf16_runner",
    "export_onnx",
    "export_torchscript",
    "format_rows",
    "latency_ms",
    "load_onnx",
    "measure",
    "model_size_bytes",
    "quantize_onnx_int8",
    "verify_onnx",
]
