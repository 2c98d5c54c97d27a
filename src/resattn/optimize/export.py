"""Export a classifier to ONNX (fp32) or TorchScript and check the export against PyTorch.

What works with torch 2.13 (probed on ResNetKAN1D (B, 3, 2000), ResNet18-1D and ARN-CNN
(B, 1, 64, 64)):

* ``exporter="torchscript"`` (``torch.onnx.export(..., dynamo=False)``, the default here):
  exports all three with a dynamic batch and, for 1-D models, a dynamic length; ONNX Runtime
  matches PyTorch to ~1e-7. torch marks it deprecated (a DeprecationWarning, silenced here).
* ``exporter="dynamo"`` (torch.export-based): a dynamic batch works, but a dynamic length does not
  as is: torch's ``F.max_pool1d`` adds the shape guard ``(L - 1) // 2 + 1 == 1000`` (ResNet stem),
  so ``torch.export`` raises "Constraints violated (length)" and the ONNX exporter silently fixes
  the length at the traced value. Exporting a copy whose ``nn.MaxPool1d`` layers run as an
  equivalent ``(1, k)`` 2-D pool removes the guard; that is what this path does. It emits opset
  18 at least (it has no opset-17 implementations; down-conversion fails for ResNet18-1D) and is
  ~10x slower to export.
* The KAN head (B-spline bases by Cox-de Boor: comparisons, casts, sub/div/mul) exports as plain
  ONNX ops (GreaterOrEqual, Less, And, Cast, Sub, Div, Mul, MatMul) with both exporters; no
  rewrite is needed.
* ARN-CNN's spatial size is fixed by its flatten + dense head (and a ``min(shape) >= 2`` branch),
  so 2-D models get a dynamic batch only unless ``dynamic_length=True`` is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..io import atomic_write_bytes
from ..layers.state import eval_mode

EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME, OUTPUT_NAME = "input", "logits"
_TRACE_BATCH = 2  # trace with batch 2: a batch of 1 invites size-1 special cases


def _model_name(model: nn.Module) -> str:
    return (getattr(model, "config", None) or {}).get("model", type(model).__name__)


def sample_shape(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """One sample's shape (C, *spatial) from ``input_shape`` given with or without the batch
    dimension; the rank is checked against ``model.dims`` (a model without ``dims`` takes
    ``input_shape`` as one sample)."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ConfigError(f"input shape {shape}: expected positive sizes (C, *spatial)")
    if getattr(model, "num_inputs", 1) > 1:
        raise ConfigError(f"model {_model_name(model)!r} takes several inputs; only single-input "
                          "models can be exported and benchmarked")
    dims = getattr(model, "dims", None)
    if dims is None or len(shape) == dims + 1:
        return shape
    if len(shape) == dims + 2:
        return shape[1:]
    spatial = ("L",) if dims == 1 else ("H", "W") if dims == 2 else tuple(f"S{i}" for i in
                                                                          range(dims))
    form = ", ".join(("C", *spatial))
    raise ConfigError(f"input shape {shape}: model {_model_name(model)!r} is {dims}-D and takes "
                      f"({form}) or (B, {form}), got rank {len(shape)}")


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence torch's deprecation notices and the tracer's shape-branch warnings (the KAN
    width check, ARN-CNN's pool branch); ``verify_onnx`` is the real check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _example(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A random example batch; a shape that does not fit the model gives a ConfigError."""
    sample = sample_shape(model, input_shape)
    x = torch.randn(_TRACE_BATCH, *sample, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"input shape {sample} does not fit model {_model_name(model)!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    return x


def write_artifact(path: Path, data: bytes, what: str) -> Path:
    path = Path(path)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the {what} ({exc})") from None
    return path


def _dynamic_axes(rank: int, dynamic_spatial: bool) -> dict[int, str]:
    axes = {0: "batch"}
    if dynamic_spatial:
        names = ["length"] if rank == 3 else [f"spatial{i}" for i in range(rank - 2)]
        axes.update({2 + i: name for i, name in enumerate(names)})
    return axes


class _MaxPool1dAs2d(nn.Module):
    """``nn.MaxPool1d`` computed as a (1, k) ``MaxPool2d``: same values, but without the shape
    guard that pins the length in ``torch.export``."""

    def __init__(self, pool: nn.MaxPool1d) -> None:
        super().__init__()
        k, s, p, d = (v if isinstance(v, int) else v[0] for v in
                      (pool.kernel_size, pool.stride, pool.padding, pool.dilation))
        self.pool = nn.MaxPool2d((1, k), (1, s), (0, p), (1, d), ceil_mode=pool.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.unsqueeze(2)).squeeze(2)


def _export_friendly(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.MaxPool1d`` replaced by ``_MaxPool1dAs2d``."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool1d) and not child.return_indices:
                setattr(module, name, _MaxPool1dAs2d(child))
    return model


def _onnx_torchscript(model: nn.Module, x: torch.Tensor, axes: dict[int, str],
                      opset: int) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model, (x,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
        do_constant_folding=True, dynamo=False,
    )
    return buf.getvalue()


def _onnx_dynamo(model: nn.Module, x: torch.Tensor, axes: dict[int, str], opset: int) -> bytes:
    dims = {i: torch.export.Dim(name, max=2**20) if i == 0 else
            torch.export.Dim(name, min=16, max=2**20) for i, name in axes.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        program = torch.onnx.export(
            _export_friendly(model), (x,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=(dims,), opset_version=max(opset, 18), dynamo=True, verbose=False,
        )
    return program.model_proto.SerializeToString()


def export_onnx(model: nn.Module, input_shape: Sequence[int], path: str | Path,
                dynamic_length: bool | None = None, opset: int = 17,
                exporter: str = "torchscript") -> Path:
    """Write ``model`` (fp32, eval mode) as ONNX to ``path`` atomically and return the path.

    ``input_shape`` is (C, *spatial) or (B, C, *spatial); input ``input``, output ``logits``.
    The batch axis is always dynamic; ``dynamic_length`` (default: True for 1-D inputs (B, C, L),
    False otherwise) makes the spatial axes dynamic too.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {list(EXPORTERS)}, got {exporter!r}")
    x = _example(model, input_shape)
    dynamic = x.dim() == 3 if dynamic_length is None else dynamic_length
    axes = _dynamic_axes(x.dim(), dynamic)
    build = _onnx_torchscript if exporter == "torchscript" else _onnx_dynamo
    with _quiet_export(), eval_mode(model), torch.no_grad():
        data = build(model, x, axes, opset)
    onnx.checker.check_model(onnx.load_from_string(data))
    return write_artifact(Path(path), data, "ONNX file")


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """The ONNX graph at ``path``; a missing or invalid file gives a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ONNX file not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a bad file
        raise DataError(f"{path}: not a valid ONNX file ({exc})") from None


def ort_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with ``threads`` intra-op threads (default: torch's)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ONNX file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, ...
        raise DataError(f"{path}: ONNX Runtime cannot load it ({exc})") from None


def run_session(session: ort.InferenceSession, x: np.ndarray, source: str = "ONNX model"
                ) -> np.ndarray:
    """Logits of ``session`` for the batch ``x``; a wrong rank or size gives a DataError."""
    x = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    inp = session.get_inputs()[0]
    if x.ndim != len(inp.shape):
        raise DataError(f"{source}: input {inp.name!r} has rank {len(inp.shape)} "
                        f"{tuple(inp.shape)}, got an array of shape {x.shape}")
    try:
        return session.run(None, {inp.name: x})[0]
    except Exception as exc:  # onnxruntime's InvalidArgument, RuntimeException
        raise DataError(f"{source}: input of shape {x.shape} rejected "
                        f"({str(exc).splitlines()[0]})") from None


def verify_onnx(model: nn.Module, path: str | Path, x: np.ndarray | torch.Tensor) -> float:
    """Max absolute difference between PyTorch (fp32, eval) and ONNX Runtime logits on ``x``."""
    x = np.ascontiguousarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x,
                             dtype=np.float32)
    got = run_session(ort_session(path), x, source=str(path))
    with torch.no_grad(), eval_mode(model):
        ref = model(torch.from_numpy(x)).float().numpy()
    if got.shape != ref.shape:
        raise DataError(f"{path}: output shape {got.shape} differs from PyTorch's {ref.shape}")
    return float(np.max(np.abs(got - ref)))


def export_torchscript(model: nn.Module, input_shape: Sequence[int], path: str | Path) -> Path:
    """Write ``torch.jit.trace(model)`` (fp32, eval mode) to ``path`` atomically.

    Tracing works for all resattn models (dynamic batch and length: traced shape branches are
    the KAN's width check and ARN-CNN's fixed-size pool branch). ``torch.jit.script`` fails
    ("Unknown type annotation: 'int'" for ResNetKAN1D, "'nn.Module'" for ARN-CNN) and all of
    ``torch.jit`` is deprecated in torch 2.13. Its successor ``torch.export`` works with a
    dynamic batch for all three models; a dynamic length needs the MaxPool1d rewrite above
    (``_export_friendly``); ARN-CNN's spatial size cannot be dynamic (shape branch, flatten).
    """
    x = _example(model, input_shape)
    buf = io.BytesIO()
    with _quiet_export(), eval_mode(model), torch.no_grad():
        traced = torch.jit.trace(model, (x,))
        torch.jit.save(traced, buf)
    return write_artifact(Path(path), buf.getvalue(), "TorchScript file")
