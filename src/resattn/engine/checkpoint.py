"""Checkpoints as safetensors + a JSON config, written atomically; nothing is ever unpickled.

A model checkpoint is ``<stem>.safetensors`` (weights) beside ``<stem>.json`` (``config`` for
``create_model``, every option resolved, plus metadata and the weights' sha256). Checkpoints
written before configs were resolved hold only the overridden options; they load unchanged.
A training checkpoint (``last.*``) also holds the optimizer's tensors and the trainer's state,
so ``--resume`` continues exactly (also a run started before configs were resolved).

**A pair is committed by its JSON.** Each file is replaced atomically, the weights first and
the JSON, which records the sha256 of the weights it belongs to, last. A process killed between
the two leaves new weights beside the old JSON: a reader finds the digest mismatch and raises a
``CheckpointError`` naming both files, never loads a mix. For ``model.*`` that is the answer (a
resumed run rewrites it: the epoch that wrote it is trained again, ``last.*`` being written
after it). For ``last.*``, ``save_training_state`` keeps the previous whole pair as
``last-prev.*`` (hard links, no copy) until the new JSON is in place, and
``load_training_state`` falls back to it, puts it back as ``last.*`` and warns
(``CheckpointWarning``): the run resumes one epoch earlier and trains that epoch again, to the
same weights. A torn ``last.*`` without a whole ``last-prev.*`` (not a kill during a save:
files copied or edited by hand) is refused. Every checkpoint resattn has written, and the shipped
weights, record the digest; a JSON without one (written by hand) loads unchecked.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_bytes
from safetensors.torch import save as save_tensors_bytes
from torch import nn
from torch.overrides import TorchFunctionMode

from ..data.files import cause
from ..errors import CheckpointError, ConfigError
from ..io import atomic_link, atomic_write_bytes, atomic_write_json, jsonable, read_json
from ..models import config_of, create_model, resolve_config

MODEL_STEM, LAST_STEM = "model", "last"
PREV_STEM = "last-prev"  # the previous whole last.* pair while a new one is written
PAIR = (".safetensors", ".json")  # the order a pair is written in: the JSON commits it
CHECK_VALUES = 2**22  # the largest contract input load_model runs through a model (16 MB)
PRUNED_BUDGET = 2**28  # values a pruned checkpoint's model may have before it is conformed
PRUNED = "pruned"  # model attribute and checkpoint flag: layer widths differ from the config


class CheckpointWarning(UserWarning):
    """A torn training checkpoint was replaced by the previous whole one on resume."""


def _write_pair(stem: Path, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Weights, then the JSON that records their sha256 (the commit: see the module doc)."""
    data = save_tensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    weights = stem.with_suffix(".safetensors")
    meta = {**meta, "weights": weights.name, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_bytes(weights, data)
    atomic_write_json(stem.with_suffix(".json"), meta)
    return meta


CARD_OBJECTS = ("config", "trainer", "optimizer", "contract", "preprocessing", "forecast", "data")


def read_card(path: Path) -> dict:
    """A checkpoint's JSON, checked to be an object whose sections are objects."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object (the model's config and "
                              f"metadata), got {type(meta).__name__}")
    for key in CARD_OBJECTS:
        if key in meta and not isinstance(meta[key], dict):
            raise CheckpointError(f"{path}: field {key!r} must be an object, got "
                                  f"{type(meta[key]).__name__}")
    for key, value in (("config.model", (meta.get("config") or {}).get("model", "")),
                       ("task", meta.get("task", "")), ("weights", meta.get("weights", ""))):
        if value is not None and not isinstance(value, str):
            raise CheckpointError(f"{path}: field {key!r} must be a name (a string), got "
                                  f"{value!r:.60}")
    return meta


def _read_pair(stem: Path) -> tuple[dict[str, torch.Tensor], dict]:
    meta = read_card(stem.with_suffix(".json"))
    weights = stem.with_suffix(".safetensors")
    try:
        data = weights.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: weights file not found (its config is "
                              f"{stem.with_suffix('.json')})") from None
    if meta.get("sha256") and hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{weights}: sha256 does not match the one recorded in "
                              f"{stem.with_suffix('.json')}; the files do not belong together")
    try:
        return load_tensors_bytes(data), meta
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: not a valid safetensors file ({exc})") from None


def conform_to(model: nn.Module, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Give every conv, norm and linear layer the shapes stored in ``tensors`` (a pruned
    checkpoint), so that its weights load into a model built from the original config."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for attr, store in (("_parameters", True), ("_buffers", False)):
            for key, value in list(getattr(module, attr).items()):
                stored = tensors.get(prefix + key)
                if value is None or stored is None or stored.shape == value.shape:
                    continue
                fresh = torch.zeros(stored.shape, dtype=value.dtype)
                getattr(module, attr)[key] = nn.Parameter(fresh) if store else fresh
        w = getattr(module, "weight", None)
        if isinstance(module, nn.modules.conv._ConvNd) and w is not None:
            module.out_channels, module.in_channels = w.shape[0], w.shape[1] * module.groups
        elif isinstance(module, nn.modules.batchnorm._NormBase) and w is not None:
            module.num_features = w.shape[0]
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = w.shape
    setattr(model, PRUNED, True)
    return model


def _config(model: nn.Module, target: Path) -> dict:
    """``config_of(model)``; a model that is not a registered one is a CheckpointError."""
    try:
        return config_of(model)
    except ConfigError as exc:
        raise CheckpointError(f"{target}: the model has no registered config ({exc})") from None


def save_model(stem: Path, model: nn.Module, meta: dict | None = None,
               dtype: torch.dtype | None = None) -> dict:
    """Write ``<stem>.safetensors`` + ``<stem>.json``; ``dtype`` (e.g. float16) shrinks the
    learned parameters only: buffers (batch-norm statistics, the fixed KAN grid) keep their
    precision, since rounding a spline grid moves every basis function. The config is the
    model's resolved one (``models.config_of``: also for a model built from its class)."""
    params = {name for name, _ in model.named_parameters()}
    tensors = {
        k: (v.to(dtype) if dtype is not None and k in params else v)
        for k, v in model.state_dict().items()
    }
    meta = {**(meta or {}), "config": _config(model, Path(stem).with_suffix(".json"))}
    if getattr(model, PRUNED, False):
        meta[PRUNED] = True  # layer widths differ from the config's: see conform_to
    return _write_pair(Path(stem), tensors, meta)


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly, casting to the model's dtypes; a mismatch names what differs."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own.keys() & tensors.keys() if tensors[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}" if missing else "",
                 f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape {wrong[:3]}" if wrong else ""]
        raise CheckpointError(
            f"{source}: weights do not match model {getattr(model, 'config', {}).get('model')!r}"
            f" ({'; '.join(p for p in parts if p)})"
        )
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source}: weights hold NaN or Inf values ({bad[:3]}); the run "
                              "that wrote them diverged: retrain it with a lower learning rate")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})


def resolve_stem(source: str | Path) -> Path:
    """A run directory, ``x.json`` or ``x.safetensors`` -> the common stem path."""
    path = Path(source)
    if path.is_dir():
        path = path / MODEL_STEM
    elif path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    if not path.with_suffix(".json").exists():
        raise CheckpointError(f"{source}: no model checkpoint here (expected {path}.json "
                              f"and {path}.safetensors)")
    return path


def load_model(source: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model from its checkpoint; returns (model in eval mode, its metadata)."""
    stem = resolve_stem(source)
    tensors, meta = _read_pair(stem)
    config = dict(meta.get("config") or {})
    if "model" not in config:
        raise CheckpointError(f"{stem}.json: field 'config.model' is missing")
    stored = sum(t.numel() for t in tensors.values())  # a pruned model is built whole first
    budget = PRUNED_BUDGET if meta.get(PRUNED) else 4 * stored + 2**24
    with _AllocationBudget(budget, f"{stem}.json: field 'config'"):
        model = _build(config, tensors, meta, stem)
    load_state(model, tensors, stem.with_suffix(".safetensors"))
    _check_runs(model, meta, stem)
    return model.eval(), meta


_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn)


class _AllocationBudget(TorchFunctionMode):
    """Refuses, before it allocates, a tensor factory (``torch.empty``, ``zeros``, ...) call
    that would take the values made so far past ``limit``: a damaged card's ``in_chans:
    100000000`` would take gigabytes before its shapes could be compared with the weights."""

    def __init__(self, limit: int, where: str) -> None:
        super().__init__()
        self.left, self.where = limit, where

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            size = kwargs.get("size", args[0] if func is torch.full or len(args) == 1 else args)
            dims = size if isinstance(size, tuple | list | torch.Size) else (size,)
            if all(isinstance(d, int) and d >= 0 for d in dims):
                self.left -= math.prod(dims)
                if self.left < 0:
                    raise CheckpointError(f"{self.where}: builds a model far larger than its "
                                          "weights (a damaged size?); expected the config of "
                                          "the weights beside it")
        return func(*args, **kwargs)


def _build(config: dict, tensors: dict[str, torch.Tensor], meta: dict, stem: Path) -> nn.Module:
    """The model of a checkpoint's ``config`` (conformed to pruned ``tensors``); a config
    that does not build is the file's fault: a CheckpointError naming it."""
    try:
        model = create_model(str(config["model"]),
                             **{k: v for k, v in config.items() if k != "model"})
    except (ConfigError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{stem}.json: field 'config' does not build a model: "
                              f"{cause(exc)}") from None
    return conform_to(model, tensors) if meta.get(PRUNED) else model


def _check_runs(model: nn.Module, meta: dict, stem: Path) -> None:
    """One zero input of the recorded contract's shape through ``model``: a config that builds
    but cannot take its own input (a damaged card) is refused here, naming the file. An input
    of more than ``CHECK_VALUES`` values is not tried (its activations could fill the memory:
    a damaged ``window_samples`` of 10**9); using the model meets it."""
    from ..contracts import contract_from_meta
    from ..models.summary import check_input

    if meta.get("contract") is None:
        return
    contract = contract_from_meta(meta, f"{stem}.json")
    shape, names = contract.input_shape, len(contract.class_names)
    outputs = (meta.get("config") or {}).get("num_classes")
    if math.prod(shape) <= CHECK_VALUES:
        try:
            y = check_input(model, shape)
        except ConfigError as exc:
            raise CheckpointError(f"{stem}.json: the model its config builds cannot take the "
                                  f"contract's input {list(shape)}: {exc}") from None
        outputs = (y[0] if isinstance(y, tuple) else y).shape[-1]
    if outputs is not None and outputs != names:
        raise CheckpointError(f"{stem}.json: field 'contract.class_names' names {names} "
                              f"classes, but the model has {outputs} outputs")


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def pair_intact(stem: Path) -> bool:
    """Whether ``<stem>.json`` and ``<stem>.safetensors`` are one whole pair: both readable,
    the weights those whose sha256 the JSON records."""
    try:
        _read_pair(Path(stem))
    except CheckpointError:
        return False
    return True


def _link_pair(source: Path, target: Path) -> None:
    """``target.*`` become the files of ``source.*`` (hard links), the weights first."""
    for suffix in PAIR:
        atomic_link(source.with_suffix(suffix), target.with_suffix(suffix))


def _drop_pair(stem: Path) -> None:
    for suffix in reversed(PAIR):
        stem.with_suffix(suffix).unlink(missing_ok=True)


def save_training_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        trainer_state: dict) -> None:
    """``last.safetensors`` + ``last.json``: everything needed to resume after this epoch.
    The pair they replace stays whole as ``last-prev.*`` until the new JSON is written."""
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    stem, prev = Path(run_dir) / LAST_STEM, Path(run_dir) / PREV_STEM
    if all(stem.with_suffix(suffix).exists() for suffix in PAIR):
        _link_pair(stem, prev)
    _write_pair(stem, tensors, {"config": _config(model, stem.with_suffix(".json")),
                                "optimizer": opt_meta, "trainer": trainer_state})
    _drop_pair(prev)


def _read_resume_pair(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``last.*``; if a kill tore it, the previous whole pair ``last-prev.*``, put back in its
    place (see the module doc)."""
    stem, prev = Path(run_dir) / LAST_STEM, Path(run_dir) / PREV_STEM
    try:
        return _read_pair(stem)
    except CheckpointError as exc:
        torn = exc
    try:
        tensors, meta = _read_pair(prev)
    except CheckpointError:
        raise CheckpointError(
            f"{torn}; there is no earlier whole checkpoint {prev.name}.* beside it (a run killed "
            "while saving leaves one) to go back to, so the run cannot be resumed: train it "
            "again into a new folder") from None
    _link_pair(prev, stem)
    _drop_pair(prev)
    epoch = (meta.get("trainer") or {}).get("epoch")
    warnings.warn(f"{stem}.*: {torn}; resuming from the previous whole checkpoint (epoch "
                  f"{epoch}), put back as {stem.name}.*", CheckpointWarning, stacklevel=3)
    return tensors, meta


def load_training_state(run_dir: Path, model: nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG from ``last.*`` (or, if a kill tore it, from the
    previous whole pair); returns the trainer's state.

    The checkpoint's config and the model's are compared resolved, so a run written with a
    partial config (before configs were resolved) resumes with the same model."""
    stem = Path(run_dir) / LAST_STEM
    tensors, meta = _read_resume_pair(Path(run_dir))
    current = _config(model, stem.with_suffix(".json"))
    try:
        stored = resolve_config(meta.get("config") or {})
    except ConfigError as exc:
        raise CheckpointError(f"{stem}.json: field 'config' is not a model config: {exc}") from None
    if stored != current:
        differ = sorted(k for k in stored.keys() | current.keys()
                        if stored.get(k) != current.get(k))
        raise CheckpointError(f"{stem}.json: checkpoint config {meta.get('config')} does not "
                              f"match the model being trained {current} (differ: {differ})")
    model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state(model, model_tensors, stem.with_suffix(".safetensors"))
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict(_optimizer_state(optimizer, optim, meta.get("optimizer"), stem))
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.ndim != 1:
        raise CheckpointError(f"{stem}.safetensors: tensor 'rng.torch': expected the RNG state "
                              f"(1-D uint8), got {None if rng is None else rng.dtype}")
    try:
        torch.set_rng_state(rng)
    except RuntimeError as exc:
        raise CheckpointError(f"{stem}.safetensors: tensor 'rng.torch' is not an RNG state "
                              f"({cause(exc)})") from None
    return meta.get("trainer")


def _optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                     meta: object, stem: Path) -> dict:
    """The stored optimizer state, checked to be one ``optimizer`` can take and step with:
    its parameter groups as the optimizer's own (same keys, values of the same kind), per
    parameter the same state keys, tensors of the parameter's shape or scalars."""
    where = f"{stem}.json: field 'optimizer'"
    if not (isinstance(meta, dict) and isinstance(meta.get("param_groups"), list)
            and isinstance(meta.get("scalars"), dict)):
        raise CheckpointError(f"{where}: expected an object with 'param_groups' (a list) and "
                              f"'scalars' (an object), got {meta!r:.80}")
    own = jsonable(optimizer.state_dict()["param_groups"])
    if len(meta["param_groups"]) != len(own):
        raise CheckpointError(f"{where}.param_groups: expected {len(own)} group(s) (the "
                              f"optimizer's), got {len(meta['param_groups'])}")
    for i, (saved, mine) in enumerate(zip(meta["param_groups"], own, strict=True)):
        _same_kind(saved, mine, f"{where}.param_groups[{i}]")
        if saved["params"] != mine["params"]:  # the state's keys: else it is silently dropped
            raise CheckpointError(f"{where}.param_groups[{i}].params: expected the parameter "
                                  f"indices {mine['params'][:8]}..., got {saved['params'][:8]}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    bad = [k for k, v in meta["scalars"].items() if not isinstance(v, int | float | None)]
    if bad:
        raise CheckpointError(f"{where}.scalars.{bad[0]}: expected a number or null, got "
                              f"{meta['scalars'][bad[0]]!r}")
    try:
        state = _unflatten_optimizer(tensors, meta)["state"]
    except ValueError as exc:  # a name without its parameter index
        raise CheckpointError(f"{where}: a state name is not '<index>.<key>' ({exc})") from None
    keys = {frozenset(v) for v in state.values()}
    if len(keys) > 1 or not set(state) <= set(range(len(params))):
        raise CheckpointError(f"{where}: the per-parameter state does not fit the optimizer "
                              f"(parameters {sorted(state)[:5]} of {len(params)}, keys "
                              f"{sorted(map(sorted, keys))[:2]})")
    for idx, per_param in state.items():
        for key, value in per_param.items():
            if torch.is_tensor(value) and value.ndim and value.shape != params[idx].shape:
                raise CheckpointError(f"{stem}.safetensors: tensor 'optim.{idx}.{key}': shape "
                                      f"{tuple(value.shape)}, expected its parameter's "
                                      f"{tuple(params[idx].shape)}")
    return {"state": state, "param_groups": meta["param_groups"]}


def _same_kind(saved: object, mine: object, where: str) -> None:
    """A CheckpointError unless ``saved`` has the structure and kinds of ``mine`` (JSON:
    numbers are ints or finite floats, lists of the same length, objects of the same keys)."""
    def kind(v: object) -> str:
        number = isinstance(v, int | float) and not isinstance(v, bool)
        return "number" if number else type(v).__name__

    if kind(saved) != kind(mine) or (kind(saved) == "number" and not math.isfinite(saved)):
        raise CheckpointError(f"{where}: expected a {kind(mine)} like {mine!r}, got {saved!r}")
    if isinstance(mine, dict):
        if set(saved) != set(mine):
            raise CheckpointError(f"{where}: expected the keys {sorted(mine)}, got "
                                  f"{sorted(map(str, saved))}")
        for key in mine:
            _same_kind(saved[key], mine[key], f"{where}.{key}")
    elif isinstance(mine, list):
        if len(saved) != len(mine):
            raise CheckpointError(f"{where}: expected {len(mine)} values, got {len(saved)}")
        for k, (a, b) in enumerate(zip(saved, mine, strict=True)):
            _same_kind(a, b, f"{where}[{k}]")
