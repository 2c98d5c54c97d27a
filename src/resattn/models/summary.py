"""Model summaries: parameter counts, input/output shapes, multiply-accumulates, a layer table."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import KANLinear, eval_mode

DEFAULT_INPUT = {1: (5000,), 2: (224, 224)}


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a leaf layer, per batch (estimate for attention)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        kernel = module.weight[0].numel()  # in_chans/groups * prod(kernel)
        return output.numel() * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, KANLinear):  # base branch + spline branch
        return output.numel() * module.in_features * (1 + module.n_basis)
    if isinstance(module, nn.MultiheadAttention):
        x = inputs[0]
        length, dim = x.shape[-2], x.shape[-1]
        return x.shape[0] * (4 * length * dim * dim + 2 * length * length * dim)
    return 0


def _is_leaf(m: nn.Module) -> bool:
    return isinstance(m, (KANLinear, nn.MultiheadAttention)) or not any(m.children())


def check_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """The output of one zero sample of ``input_shape`` (C, *spatial), in eval mode; a
    ConfigError naming the model and the shape when it cannot take it (too short, ...)."""
    # A two-input model (M-MFFnet: num_inputs 2, in_chans per modality) gets one tensor each.
    chans = model.in_chans if getattr(model, "num_inputs", 1) > 1 else (input_shape[0],)
    inputs = [torch.zeros(1, c, *input_shape[1:]) for c in chans]
    try:
        with torch.no_grad(), eval_mode(model):
            return model(*inputs)
    except (RuntimeError, TypeError, ValueError) as exc:  # too short, too few channels, ...
        name = (getattr(model, "config", None) or {}).get("model", type(model).__name__)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{name} cannot take an input of shape {list(input_shape)} "
                          f"(channels, size): {first}") from None


def summarize(model: nn.Module, input_shape: Sequence[int]) -> dict:
    """Run one sample of ``input_shape`` (C, *spatial) through ``model`` (in eval mode) and
    return params, trainable params, shapes, MACs per sample and a per-layer table."""
    rows: list[dict] = []
    hooks = []

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output) -> None:
            out = output[0] if isinstance(output, tuple) else output
            rows.append({
                "layer": name, "type": type(module).__name__, "output_shape": list(out.shape),
                "params": sum(p.numel() for p in module.parameters(recurse=False)) if not
                isinstance(module, (KANLinear, nn.MultiheadAttention))
                else sum(p.numel() for p in module.parameters()),
                "macs": _macs(module, inputs, out),
            })
        return record

    skip: set[str] = set()
    for name, module in model.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if _is_leaf(module) and name:
            hooks.append(module.register_forward_hook(hook(name)))
            if any(module.children()):
                skip.add(name)
    try:
        out = check_input(model, input_shape)
    finally:
        for h in hooks:
            h.remove()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "input_shape": [1, *input_shape],
        "output_shape": list(out.shape),
        "macs": int(sum(r["macs"] for r in rows)),
        "layers": rows,
    }


def input_dims(model: nn.Module) -> int:
    """1 (signals) or 2 (images): the model's ``dims``, else that of its first convolution."""
    dims = getattr(model, "dims", None) or (getattr(model, "config", None) or {}).get("dims")
    if dims:
        return int(dims)
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            return 1 if isinstance(module, nn.Conv1d) else 2
    return 2
