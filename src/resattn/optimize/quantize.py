"""Post-training quantisation: static int8 ONNX through ONNX Runtime, and bf16 autocast.

``quantize_onnx_int8`` takes the fp32 ONNX file of ``export_onnx`` and writes a QDQ model:

* weights int8, symmetric, per output channel; activations uint8, asymmetric, ranges from the
  calibration batches (MinMax). uint8 activations matter: with int8 ones ONNX Runtime (1.32,
  x86) turned only 9 of ResNet18-1D's 20 convolutions into integer ``QLinearConv`` and ran the
  other 11 in float on dequantised tensors (whichever ops were quantised); with uint8 all 20
  (and the residual adds) run as integer kernels, likewise all 28 of ResNetKAN1D and all 23 of
  ARN-CNN. (On x86 CPUs without VNNI, u8 x s8 products can saturate; ORT suggests
  ``reduce_range`` there. The argmax agreement is checked in the tests.)
* quantised ops: ``Conv``, ``MatMul``, ``Gemm`` (the weights, ~all MACs) and ``Relu``, ``Add``,
  ``MaxPool``, ``AveragePool``, ``GlobalAveragePool`` so that consecutive layers stay in int8
  instead of being dequantised in between.
* kept fp32: the attention gates' ``Sigmoid`` and ``Mul`` (a gate in [0, 1] scales the whole
  feature map; in a probe on ResNet18-1D with dual attention, quantising them raised the max
  logit error from 0.24 to 0.28 and turned no further layer into an integer kernel), batch norms
  the exporter could not fold (ARN-CNN's norm after a ReLU), any ``Gemm`` with a computed bias
  (see ``excluded_nodes``) and the whole classifier head (top-level module ``head``). For the KAN
  head that matters: its B-spline bases compare the input with fixed knots (a step at each
  knot) and divide by knot spacings, so 8-bit inputs would move samples across knots; the head
  is 0.09 % of ResNetKAN1D's MACs, so fp32 there costs next to nothing.
"""

from __future__ import annotations

import ast
import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from torch import nn

from ..errors import DataError
from .benchmark import TorchRunner
from .export import load_onnx, write_artifact

QUANT_OPS = ("Conv", "MatMul", "Gemm", "Relu", "Add", "MaxPool", "AveragePool",
             "GlobalAveragePool")
FP32_MODULES = ("head",)


class _BatchReader(CalibrationDataReader):
    """Feeds the calibration batches to ONNX Runtime, checking each one's rank."""

    def __init__(self, input_name: str, rank: int, batches: Iterable[np.ndarray]) -> None:
        self.input_name, self.rank = input_name, rank
        self._batches: Iterator[np.ndarray] = iter(batches)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        x = np.ascontiguousarray(np.asarray(batch), dtype=np.float32)
        if x.ndim != self.rank:
            raise DataError(f"calibration batch {self.count}: expected rank {self.rank} "
                            f"(B, C, *spatial) for input {self.input_name!r}, got {x.shape}")
        self.count += 1
        return {self.input_name: x}


def _scopes(node: onnx.NodeProto) -> list[str]:
    """The module path of a node: from its name (TorchScript exporter: ``/head/head.1/MatMul``)
    or its ``pkg.torch.onnx.name_scopes`` metadata (dynamo exporter)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            with contextlib.suppress(ValueError, SyntaxError):
                return [s for s in ast.literal_eval(prop.value) if s][:-1]
    return [s for s in node.name.split("/") if s][:-1] if node.name.startswith("/") else []


def module_nodes(model: onnx.ModelProto, modules: Sequence[str]) -> set[str]:
    """Names of the nodes computed inside the top-level submodules ``modules``."""
    return {n.name for n in model.graph.node if (_scopes(n) or [""])[0] in modules}


def excluded_nodes(prepared: onnx.ModelProto, fp32_nodes: set[str]) -> list[str]:
    """Nodes of ``prepared`` to keep in fp32: those in ``fp32_nodes`` (or fused from one, which
    the optimiser names ``<node>/<Fusion>``) and any ``Gemm`` whose bias is computed, not a
    weight (the optimiser fuses the channel attention's ``mlp(avg) + mlp(max)`` that way; ONNX
    Runtime cannot quantise such a bias and asks for the node to be excluded)."""
    weights = {init.name for init in prepared.graph.initializer}
    exclude = []
    for node in prepared.graph.node:
        origin = node.name.rsplit("/", 1)[0] if "Fusion" in node.name else node.name
        dynamic_bias = (node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]
                        and node.input[2] not in weights)
        if node.name in fp32_nodes or origin in fp32_nodes or dynamic_bias:
            exclude.append(node.name)
    return exclude


def _preprocess(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (ONNX shape inference + graph optimisation:
    folds constants such as the KAN's weight reshapes); the input as is if it fails.

    ORT's symbolic shape inference is skipped: all it added was fusing MatMul + Add into Gemm in
    the attention MLPs (a computed bias, which ORT cannot quantise) and the KAN head (kept fp32);
    and where it gives up
    (the dynamo exporter's graphs) it dumps ``sym_shape_infer_temp.onnx`` plus a weights file
    into the current directory."""
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception:  # onnxruntime raises bare Exceptions here
        return src
    return dst


def quantize_onnx_int8(onnx_path: str | Path, calibration: Iterable[np.ndarray],
                       out_path: str | Path, per_channel: bool = True,
                       fp32_modules: Sequence[str] = FP32_MODULES,
                       op_types: Sequence[str] = QUANT_OPS) -> Path:
    """Static post-training int8 (QDQ) of the fp32 ONNX file ``onnx_path``, calibrated on the
    float32 batches (B, C, *spatial) of ``calibration``; written atomically to ``out_path``.

    The top-level submodules ``fp32_modules`` (the classifier head) stay fp32 (module notes).
    """
    src = Path(onnx_path)
    original = load_onnx(src)
    fp32_nodes = module_nodes(original, fp32_modules)
    inp = original.graph.input[0]
    reader = _BatchReader(inp.name, len(inp.type.tensor_type.shape.dim), calibration)
    with tempfile.TemporaryDirectory(prefix="resattn-int8-") as tmp:
        prepared = _preprocess(src, Path(tmp) / "prepared.onnx")
        exclude = excluded_nodes(onnx.load(str(prepared)), fp32_nodes)
        target = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(prepared), str(target), reader, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types), per_channel=per_channel,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        except DataError:
            raise
        except Exception:  # ORT fails on empty calibration with an opaque error
            if reader.count == 0:
                raise DataError(f"{src}: no calibration batches were given") from None
            raise
        if reader.count == 0:
            raise DataError(f"{src}: no calibration batches were given")
        data = target.read_bytes()
    return write_artifact(Path(out_path), data, "int8 ONNX file")


def bf16_runner(model: nn.Module) -> TorchRunner:
    """The PyTorch model under ``torch.autocast("cpu", dtype=torch.bfloat16)``: convolutions and
    matmuls in bf16, the KAN head in fp32 (it disables autocast). Weights stay fp32 in memory;
    ``benchmark.model_size_bytes(model, torch.bfloat16)`` is the size of a bf16 checkpoint.
    bf16 pays off only on CPUs with native bf16 (see ``engine.precision.choose_precision``)."""
    return TorchRunner(model, precision="bf16")
