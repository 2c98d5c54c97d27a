"""The fit loop: AdamW (ResNetKAN1D Table 1 defaults), bf16 autocast where the CPU accelerates
it, and callbacks (``engine.callbacks``) for early stopping, learning-rate rules, logging and
checkpointing, built in, plus any the caller adds; a run resumes exactly.

Run directory after ``fit``:
    model.safetensors / model.json   best weights (by ``cfg.monitor``) + config + metrics
    last.safetensors / last.json     last epoch: model, optimizer, RNG, trainer state (resume)
    metrics.jsonl                    one JSON object per epoch
    tensorboard/                     the same scalars as TensorBoard events (when installed)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.image_transforms import mix_batch
from ..data.samplers import ClassBalancedSampler
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..eval.metrics import classification_metrics
from ..io import remove_stale_temps
from ..options import coerce, type_hints
from .callbacks import Callback, Checkpointing, EarlyStopping, LearningRateRule, Logging
from .checkpoint import LAST_STEM, load_training_state
from .inference import predict_proba
from .precision import PRECISIONS, autocast, choose_precision
from .provenance import environment, seed_everything
from .recipes import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    build_optimizer,
    kernel_penalty,
)
from .tracking import LOG_NAME, TENSORBOARD_MODES, read_log, wants_tensorboard

SAMPLINGS = ("instance", "class_balanced")
# A training loss other than cross-entropy: (logits, inputs, labels) -> scalar (distillation).
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MONITORS = ("val_loss", "val_f1")  # lower is better for the loss, higher for the F1
RESUMES = (False, True, "auto")


@dataclass
class TrainConfig:
    """Training recipe; defaults are ResNetKAN1D Table 1."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-3
    patience: int = 10
    precision: str = "auto"
    seed: int = 0
    grad_clip: float | None = None
    num_workers: int = 0
    optimizer: str = "adamw"
    schedule: str = "none"  # "plateau": lr x factor after `plateau_patience` bad epochs
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    dwell: bool = False  # on a worse val loss: back to the best weights, lr x plateau_factor
    l1: float = 0.0
    l2: float = 0.0
    penalty_layers: str = "dense"
    augment: str = "none"  # image tasks: a policy of tasks.images.augmentation
    sampling: str = "instance"  # or "class_balanced" (needs train_set.labels)
    monitor: str = "val_loss"  # or "val_f1" (macro F1; the positive class's with `positive`)
    mix: str = "none"  # images: "mixup" or "cutmix" of each training batch
    mix_alpha: float = 0.4  # Beta(alpha, alpha) of the mixing weight
    tensorboard: str = "auto"  # event files: auto (if installed), on (required) or off

    @classmethod
    def from_record(cls, record: dict | None) -> TrainConfig:
        """The recipe a checkpoint records (its ``train_config``); fields this version does
        not know are ignored."""
        return cls(**{k: v for k, v in (record or {}).items() if k in cls.__dataclass_fields__})

    def validate(self) -> TrainConfig:
        """``self`` if every field has its type and range; else a ConfigError naming it."""
        hints = type_hints(TrainConfig)
        for f in fields(self):  # a wrong type first: the range checks below compare numbers
            coerce(getattr(self, f.name), hints[f.name], f.name)
        for name in ("epochs", "batch_size", "patience", "plateau_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be > 0 and finite, got {self.lr}")
        for name in ("weight_decay", "l1", "l2", "mix_alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip)
                                               and self.grad_clip > 0):
            raise ConfigError(f"grad_clip must be a finite number > 0, got {self.grad_clip}")
        for name in ("seed", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.mix not in ("none", "mixup", "cutmix") or self.mix_alpha < 0:
            raise ConfigError(f"mix must be none, mixup or cutmix with mix_alpha >= 0, got "
                              f"{self.mix!r}, {self.mix_alpha}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"monitor must be one of {list(MONITORS)}, got {self.monitor!r}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.tensorboard not in TENSORBOARD_MODES:
            raise ConfigError(f"tensorboard must be one of {list(TENSORBOARD_MODES)}, got "
                              f"{self.tensorboard!r}")
        wants_tensorboard(self.tensorboard)  # "on" without the package fails here, not later
        return self


def preset_config(name: str, **overrides) -> TrainConfig:
    """``TrainConfig`` of a named recipe (``engine.recipes.PRESETS``), with overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})


@dataclass
class FitResult:
    """``best_score``: the best epoch's ``monitor`` value (its loss or its F1);
    ``best_val_loss``: that epoch's validation loss, whatever the monitor."""

    run_dir: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    precision: str
    history: list[dict]
    monitor: str
    best_score: float


@dataclass
class FitLoop:
    """What ``fit``'s callbacks see and may change. ``state`` is the trainer state saved in
    ``last.json`` (JSON values only; keys: epoch, monitor, best_score, best_val_loss,
    best_epoch, bad_epochs, plateau_bad, stopped_early, precision); ``history`` the
    metrics.jsonl rows so far; ``val_metrics`` the last validation's
    ``classification_metrics``. Setting ``stop`` ends training after the current epoch (for
    this call only: unlike early stopping it is not saved, so a resume trains on)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    run_dir: Path
    state: dict
    history: list[dict]
    precision: str
    val_metrics: dict = field(default_factory=dict)
    stop: bool = False


def param_groups(model: nn.Module, lr: float) -> list[dict]:
    """Trainable parameters grouped by their ``lr_scale`` attribute (default 1; set by
    transfer learning for per-stage learning rates); frozen ones are left out."""
    groups: dict[float, list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(float(getattr(p, "lr_scale", 1.0)), []).append(p)
    if not groups:
        raise ConfigError("the model has no trainable parameters (everything is frozen)")
    return [{"params": ps, "lr": lr * scale, "lr_scale": scale}
            for scale, ps in sorted(groups.items(), reverse=True)]


def _train_loader(train_set: Dataset, cfg: TrainConfig, epoch: int) -> DataLoader:
    """Shuffled instances, or class-balanced draws; both replay exactly per (seed, epoch)."""
    if cfg.sampling == "class_balanced":
        labels = getattr(train_set, "labels", None)
        if labels is None:
            raise ConfigError("class_balanced sampling needs a training set with .labels")
        sampler = ClassBalancedSampler(labels, seed=cfg.seed)
        sampler.set_epoch(epoch)
        return DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler,
                          num_workers=cfg.num_workers)
    return DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=False,
                      num_workers=cfg.num_workers,
                      generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))


def diverged_message(cfg: TrainConfig, precision: str, epoch: int, loss: float) -> str:
    """What to change when the loss is no longer finite, and what was kept."""
    kept = (f"the checkpoint of epoch {epoch - 1} is kept (last.*, model.*)" if epoch > 1
            else "no checkpoint was written")
    hints = [f"a lower --lr (now {cfg.lr:g})"]
    if not cfg.grad_clip:
        hints.append("--grad-clip 1.0")
    if precision == "bf16":
        hints.append("--precision fp32")
    return (f"training diverged in epoch {epoch}: the loss is {loss}; {kept}. Try "
            + ", ".join(hints))


def _train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, precision: str, progress: Progress, task,
                 loss_fn: LossFn | None = None, epoch: int = 0) -> float:
    """One pass over ``loader``; returns the mean training loss per sample."""
    model.train()
    loss_sum, n = 0.0, 0
    mixer = torch.Generator().manual_seed(cfg.seed * 7_919 + epoch)
    for x, y in loader:
        lam, partner = 1.0, y
        if cfg.mix != "none":
            x, partner, lam = mix_batch(x, y, cfg.mix, cfg.mix_alpha, mixer)
        with autocast(precision):
            logits = model(x)
        if loss_fn is not None:
            loss = loss_fn(logits.float(), x, y)
        else:
            ce = nn.functional.cross_entropy
            loss = lam * ce(logits.float(), y) + (1 - lam) * ce(logits.float(), partner)
        if cfg.l1 or cfg.l2:
            loss = loss + kernel_penalty(model, cfg.l1, cfg.l2, cfg.penalty_layers)
        if not torch.isfinite(loss):  # before the step: the weights stay the last good ones
            raise TrainingDiverged(diverged_message(cfg, precision, epoch, loss.item()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        loss_sum += loss.item() * len(y)
        n += len(y)
        progress.update(task, advance=len(y), description=f"loss {loss_sum / n:.4f}")
    return loss_sum / max(n, 1)


def _fresh_state(monitor: str) -> dict:
    return {"epoch": 0, "monitor": monitor,
            "best_score": math.inf if monitor == "val_loss" else -math.inf,
            "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "plateau_bad": 0,
            "stopped_early": False}


def _upgrade_state(state: dict, monitor: str, run_dir: Path) -> dict:
    """The trainer state of ``run_dir/last.json`` as this version keeps it.

    Before ``monitor`` and ``best_score`` were stored, ``best_val_loss`` held the key the run
    minimised: the loss, or ``-f1 + 1e-6 * loss`` under ``val_f1``, whose two parts the best
    epoch's metrics.jsonl row gives back exactly. Such a state is taken to monitor ``monitor``.
    """
    source = run_dir / f"{LAST_STEM}.json"
    if not isinstance(state, dict) or not ({"monitor", "best_val_loss"} & set(state)):
        raise CheckpointError(f"{source}: field 'trainer': expected the trainer's state (an "
                              f"object with 'monitor' or 'best_val_loss'), got {state!r:.80}")
    if "monitor" in state:
        if state["monitor"] != monitor:
            raise ConfigError(f"{source}: the run monitors {state['monitor']!r} but the "
                              f"config asks for {monitor!r}; resume it with the same monitor")
        return _checked_state(state, source)
    key = state.pop("best_val_loss")
    state = _checked_state({**_fresh_state(monitor), **state}, source)
    if not _is_number(key):
        raise CheckpointError(f"{source}: field 'trainer.best_val_loss': expected a number, "
                              f"got {key!r}")
    if monitor == "val_loss":
        return {**state, "best_score": key, "best_val_loss": key}
    if state["best_epoch"] == 0:
        return state
    log = run_dir / LOG_NAME
    row = next((r for r in read_log(log, state["best_epoch"])
                if r["epoch"] == state["best_epoch"]), None)
    if row is None or not all(_is_number(row.get(k)) for k in ("val_f1", "val_loss")):
        raise CheckpointError(f"{source}: this older trainer state monitors val_f1 and needs "
                              f"the row (val_f1, val_loss) of its best epoch "
                              f"{state['best_epoch']} in {log}, which is missing")
    return {**state, "best_score": row["val_f1"], "best_val_loss": row["val_loss"]}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _checked_state(state: dict, source: Path) -> dict:
    """``state`` if each field of a fresh trainer state has its kind (counts whole numbers
    >= 0, the best epoch not after the last, scores numbers, not NaN; a known precision)."""
    counts = ("epoch", "best_epoch", "bad_epochs", "plateau_bad")
    problem = next((k for k in counts if isinstance(state.get(k), bool)
                    or not isinstance(state.get(k), int) or state[k] < 0), None)
    problem = problem or next((k for k in ("best_score", "best_val_loss")
                               if not _is_number(state.get(k))), None)
    if problem is None and not isinstance(state.get("stopped_early"), bool):
        problem = "stopped_early"
    if problem is None and state.get("precision", "fp32") not in PRECISIONS:
        problem = "precision"
    if problem is None and state["best_epoch"] > state["epoch"]:
        problem = "best_epoch"
    if problem is not None:
        raise CheckpointError(f"{source}: field 'trainer.{problem}': expected "
                              f"{_STATE_KINDS.get(problem, 'a whole number >= 0')}, got "
                              f"{state.get(problem)!r}")
    return state


_STATE_KINDS = {"best_score": "a number", "best_val_loss": "a number",
                "stopped_early": "true or false", "precision": f"one of {list(PRECISIONS)}",
                "best_epoch": "an epoch up to 'epoch'"}


def _record(state: dict, epoch: int, val_loss: float, score: float) -> bool:
    """Count ``epoch`` into ``state`` with its validation loss and monitored ``score``;
    returns whether it is the new best (val_f1: a higher F1, ties broken by the lower loss)."""
    best = state["best_score"]
    if state["monitor"] == "val_loss":
        improved = score < best
    else:
        improved = score > best or (score == best and val_loss < state["best_val_loss"])
    state.update(epoch=epoch, bad_epochs=0 if improved else state["bad_epochs"] + 1)
    if improved:
        state.update(best_score=score, best_val_loss=val_loss, best_epoch=epoch)
    return improved


def _run_epoch(loop: FitLoop, epoch: int, train_set: Dataset, val_set: Dataset,
               progress: Progress, loss_fn: LossFn | None, class_names: list[str] | None,
               positive: int | None) -> dict:
    """Train and validate one epoch, count it into ``loop.state``; returns its row."""
    if hasattr(train_set, "set_epoch"):
        train_set.set_epoch(epoch)
    loader = _train_loader(train_set, loop.cfg, epoch)
    lr = loop.optimizer.param_groups[0]["lr"]
    task = progress.add_task("", total=len(train_set), epoch=epoch)
    t0 = time.perf_counter()
    train_loss = _train_epoch(loop.model, loader, loop.optimizer, loop.cfg, loop.precision,
                              progress, task, loss_fn, epoch)
    train_time = time.perf_counter() - t0
    progress.remove_task(task)
    probs, labels, val_loss = predict_proba(loop.model, val_set, loop.precision,
                                            loop.cfg.batch_size)
    val = loop.val_metrics = classification_metrics(labels, probs, class_names, positive)
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
           "val_accuracy": val["accuracy"], "val_f1": val["f1"], "lr": lr,
           "train_seconds": round(train_time, 3),
           "train_samples_per_s": round(len(train_set) / max(train_time, 1e-9), 1)}
    row["improved"] = _record(loop.state, epoch, val_loss, row[loop.cfg.monitor])
    return row


def refuse_existing_run(run_dir: Path, resume: bool | str) -> None:
    """A folder holding a training run is continued only when asked (``resume``)."""
    if (Path(run_dir) / f"{LAST_STEM}.json").exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue "
                          "it or choose a new output directory")


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    run_dir: str | Path,
    cfg: TrainConfig | None = None,
    resume: bool | str = False,
    meta: dict | None = None,
    class_names: list[str] | None = None,
    positive: int | None = None,
    show_progress: bool = True,
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``model`` (with a ``config`` from ``create_model``) and checkpoint into ``run_dir``.

    ``meta`` (task, preprocessing, data description) is stored in every model checkpoint.
    ``resume``: ``True`` or ``"auto"`` continue from ``last.*`` when it exists and start fresh
    otherwise; ``False`` never overwrites an existing run. ``loss_fn`` replaces the training
    cross-entropy (validation stays cross-entropy). ``callbacks`` run after the built-in ones
    at every hook (see ``engine.callbacks``).
    """
    cfg = (cfg or TrainConfig()).validate()
    if not (isinstance(resume, bool) or resume == "auto"):
        raise ConfigError(f"resume must be one of {list(RESUMES)}, got {resume!r}")
    strays = [c for c in callbacks if not isinstance(c, Callback)]
    if strays:
        raise ConfigError(f"callbacks must be resattn.engine.callbacks.Callback instances, "
                          f"got {strays}")
    run_dir = Path(run_dir)
    last_json = run_dir / f"{LAST_STEM}.json"
    refuse_existing_run(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(run_dir)  # what a write killed with the last run left behind
    seed_everything(cfg.seed)
    precision = choose_precision(cfg.precision)
    optimizer = build_optimizer(param_groups(model, cfg.lr), cfg.optimizer, cfg.lr,
                                cfg.weight_decay)
    state = _fresh_state(cfg.monitor)
    if resume and last_json.exists():
        state = _upgrade_state(load_training_state(run_dir, model, optimizer), cfg.monitor,
                               run_dir)
        # A resumed "auto" run keeps the precision it started with (auto may choose otherwise
        # now); an explicit --precision still wins.
        if cfg.precision == "auto":
            precision = state.get("precision", precision)
    state["precision"] = precision
    meta = {**(meta or {}), "train_config": asdict(cfg), "precision": precision,
            "environment": environment(), "class_names": class_names}
    loop = FitLoop(model, optimizer, cfg, run_dir, state,
                   read_log(run_dir / LOG_NAME, state["epoch"]), precision,
                   stop=state["stopped_early"])

    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn(
        "{task.description}"), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        logging = Logging(progress.console if show_progress else None)  # closed on any exit
        hooks = [EarlyStopping(), LearningRateRule(), logging, Checkpointing(meta), *callbacks]
        try:
            for hook in hooks:
                hook.on_fit_start(loop)
            for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
                if loop.stop:
                    break
                for hook in hooks:
                    hook.on_epoch_start(loop, epoch)
                row = _run_epoch(loop, epoch, train_set, val_set, progress, loss_fn,
                                 class_names, positive)
                for hook in hooks:
                    hook.on_epoch_end(loop, epoch, row)
            result = FitResult(run_dir, state["best_epoch"], state["best_val_loss"],
                               state["epoch"], loop.stop, precision, loop.history,
                               state["monitor"], state["best_score"])
            for hook in hooks:
                hook.on_fit_end(loop, result)
        finally:
            logging.close()
    return result
