"""The fit loop: AdamW (ResNetKAN1D Table 1 defaults), early stopping on validation loss,
bf16 autocast where the CPU accelerates it, a JSONL log, a checkpoint every epoch, resume.

Run directory after ``fit``:
    model.safetensors / model.json   best weights (lowest validation loss) + config + metrics
    last.safetensors / last.json     last epoch: model, optimizer, RNG, trainer state (resume)
    metrics.jsonl                    one JSON object per epoch
    tensorboard/                     the same scalars as TensorBoard events (when installed)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.image_transforms import mix_batch
from ..data.samplers import ClassBalancedSampler
from ..errors import ConfigError
from ..eval.metrics import classification_metrics
from .checkpoint import (
    LAST_STEM,
    MODEL_STEM,
    load_state,
    load_training_state,
    save_model,
    save_training_state,
)
from .inference import predict_proba
from .precision import autocast, choose_precision
from .provenance import environment, seed_everything
from .recipes import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    build_optimizer,
    cosine_lr,
    kernel_penalty,
    scale_lr,
)
from .tracking import TENSORBOARD_MODES, RunLog, wants_tensorboard

SAMPLINGS = ("instance", "class_balanced")
# A training loss other than cross-entropy: (logits, inputs, labels) -> scalar (distillation).
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MONITORS = ("val_loss", "val_f1")


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
    monitor: str = "val_loss"  # or "val_f1": best epoch and early stopping by macro F1
    mix: str = "none"  # images: "mixup" or "cutmix" of each training batch
    mix_alpha: float = 0.4  # Beta(alpha, alpha) of the mixing weight
    tensorboard: str = "auto"  # event files: auto (if installed), on (required) or off

    @classmethod
    def from_record(cls, record: dict | None) -> TrainConfig:
        """The recipe a checkpoint records (its ``train_config``); fields this version does
        not know are ignored."""
        return cls(**{k: v for k, v in (record or {}).items() if k in cls.__dataclass_fields__})

    def validate(self) -> TrainConfig:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ConfigError(f"epochs, batch_size and patience must be >= 1, got {self}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
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
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 1:
            raise ConfigError("plateau_factor must be in (0, 1) and plateau_patience >= 1")
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
    run_dir: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    precision: str
    history: list[dict]


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


def _train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, precision: str, progress: Progress, task,
                 loss_fn: LossFn | None = None, epoch: int = 0) -> float:
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
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        loss_sum += loss.item() * len(y)
        n += len(y)
        progress.update(task, advance=len(y), description=f"loss {loss_sum / n:.4f}")
    return loss_sum / max(n, 1)


def _after_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                 state: dict, improved: bool, run_dir: Path) -> bool:
    """Apply the learning-rate rule after an epoch; returns True if the weights dwelt (went
    back to the best epoch's, ARN-CNN's rule when the validation loss gets worse)."""
    state["plateau_bad"] = 0 if improved else state.get("plateau_bad", 0) + 1
    if improved or state["stopped_early"]:
        return False
    if cfg.dwell:
        best = run_dir / f"{MODEL_STEM}.safetensors"
        if best.exists():
            load_state(model, load_file(best), best)
        scale_lr(optimizer, cfg.plateau_factor)
        state["plateau_bad"] = 0
        return True
    if cfg.schedule == "plateau" and state["plateau_bad"] >= cfg.plateau_patience:
        scale_lr(optimizer, cfg.plateau_factor)
        state["plateau_bad"] = 0
    return False


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    run_dir: str | Path,
    cfg: TrainConfig | None = None,
    resume: bool = False,
    meta: dict | None = None,
    class_names: list[str] | None = None,
    positive: int | None = None,
    show_progress: bool = True,
    loss_fn: LossFn | None = None,
) -> FitResult:
    """Train ``model`` (with a ``config`` from ``create_model``) and checkpoint into ``run_dir``.

    ``meta`` (task, preprocessing, data description) is stored in every model checkpoint.
    ``resume=True`` continues from ``last.*``; without it an existing run is never overwritten.
    ``loss_fn`` replaces the training cross-entropy (validation stays cross-entropy).
    """
    cfg = (cfg or TrainConfig()).validate()
    run_dir = Path(run_dir)
    last_json = run_dir / f"{LAST_STEM}.json"
    if last_json.exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue "
                          "it or choose a new output directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    precision = choose_precision(cfg.precision)
    optimizer = build_optimizer(param_groups(model, cfg.lr), cfg.optimizer, cfg.lr,
                                cfg.weight_decay)
    state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0,
             "plateau_bad": 0, "stopped_early": False}
    if resume and last_json.exists():
        state = load_training_state(run_dir, model, optimizer)
        # A resumed "auto" run keeps the precision it started with (auto may choose otherwise
        # now); an explicit --precision still wins.
        if cfg.precision == "auto":
            precision = state.get("precision", precision)
    state["precision"] = precision
    run_log = RunLog(run_dir, state["epoch"], cfg.tensorboard)
    history = run_log.rows
    meta = {**(meta or {}), "train_config": asdict(cfg), "precision": precision,
            "environment": environment(), "class_names": class_names}

    start_epoch = state["epoch"] + 1
    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn(
        "{task.description}"), TimeRemainingColumn())
    with run_log, Progress(*columns, disable=not show_progress, transient=True) as progress:
        for epoch in range(start_epoch, cfg.epochs + 1):
            if state["stopped_early"]:
                break
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)
            loader = _train_loader(train_set, cfg, epoch)
            if cfg.schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(cfg.lr * group.get("lr_scale", 1.0), epoch,
                                            cfg.epochs)
            lr = optimizer.param_groups[0]["lr"]
            task = progress.add_task("", total=len(train_set), epoch=epoch)
            t0 = time.perf_counter()
            train_loss = _train_epoch(model, loader, optimizer, cfg, precision, progress, task,
                                      loss_fn, epoch)
            train_time = time.perf_counter() - t0
            progress.remove_task(task)
            probs, labels, val_loss = predict_proba(model, val_set, precision, cfg.batch_size)
            val = classification_metrics(labels, probs, class_names, positive)
            # Lower is better for both: the loss, or minus macro F1 (ties: the lower loss).
            key = val_loss if cfg.monitor == "val_loss" else -val["f1"] + 1e-6 * val_loss
            improved = key < state["best_val_loss"]
            state.update(epoch=epoch, bad_epochs=0 if improved else state["bad_epochs"] + 1)
            if improved:
                state.update(best_val_loss=key, best_epoch=epoch)
            state["stopped_early"] = state["bad_epochs"] >= cfg.patience
            dwelt = _after_epoch(model, optimizer, cfg, state, improved, run_dir)
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "val_accuracy": val["accuracy"], "val_f1": val["f1"], "lr": lr,
                   "next_lr": optimizer.param_groups[0]["lr"], "dwell": dwelt,
                   "train_seconds": round(train_time, 3),
                   "train_samples_per_s": round(len(train_set) / max(train_time, 1e-9), 1)}
            # Log first, then checkpoint: a crash in between leaves a row beyond the checkpoint,
            # which resume drops (read_log up to the saved epoch), never a checkpoint without
            # its row.
            run_log.append(row)
            if improved:
                save_model(run_dir / MODEL_STEM, model,
                           {**meta, "epoch": epoch, "val_loss": val_loss, "val_metrics": val})
            save_training_state(run_dir, model, optimizer, state)
            if show_progress:
                progress.console.print(
                    f"epoch {epoch:3d}  train {train_loss:.4f}  val {val_loss:.4f}  "
                    f"acc {val['accuracy']:.3f}  f1 {val['f1']:.3f}" + ("  *" if improved else "")
                )
    return FitResult(run_dir, state["best_epoch"], state["best_val_loss"], state["epoch"],
                     state["stopped_early"], precision, history)
