"""What every task is: a registered object that builds its data, trains, evaluates, predicts
and describes its input. The CLI, ``reproduce``, ``optimize`` and ``predict`` ask the registry
(``tasks.registry``) for a task, never a task-name string.

A task's own settings (a waveform window, an image size, a forecast's class bounds) are one
typed dataclass, ``Task.options_type``, read from a config section or from command-line
values with :func:`resattn.options.from_mapping`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from ..engine.trainer import LossFn, TrainConfig
from ..errors import ConfigError


@dataclass
class TrainSpec:
    """What to train, on which data, into which folder, with which recipe.

    ``options`` is the task's typed options (``task.options_type``); ``init_from`` a shipped
    name, run directory or checkpoint to fine-tune from; ``resume`` False (refuse an existing
    run), True or ``"auto"`` (continue when the folder holds an interrupted run)."""

    model: str
    data: Any
    out: Path
    recipe: TrainConfig = field(default_factory=TrainConfig)
    options: Any = None
    seed: int = 0
    split_seed: int | None = None
    model_options: dict = field(default_factory=dict)
    init_from: str | None = None
    resume: bool | str = False
    show_progress: bool = True
    loss_fn: LossFn | None = None
    prepare: Callable[[nn.Module], object] | None = None
    callbacks: Sequence = ()


class Task(ABC):
    """One task. ``name`` is what checkpoints record in ``meta["task"]``; ``aliases`` are the
    other spellings accepted in configs (``waveform``, ``image``, ``forecast``)."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    options_type: ClassVar[type]
    section: ClassVar[str] = ""  # key of the task's options in an experiment config
    explains: ClassVar[bool] = False  # has test_items and plot_cam (Grad-CAM figures)

    # What an experiment config (``reproduce``) may name. Defaults: the classification
    # summary, whose ``test`` entry holds the metrics of ``eval.metrics``.
    metric_names: ClassVar[tuple[str, ...]] = (
        "accuracy", "precision", "recall", "f1", "macro_f1", "kappa", "log_loss", "ece",
        "mean_entropy")
    per_class_metrics: ClassVar[tuple[str, ...]] = ("precision", "recall", "f1", "support")
    # Methods scored on the same test items as the trained model (``reference_metrics``).
    reference_names: ClassVar[tuple[str, ...]] = ()
    # Cell options whose value names an earlier cell: the runner passes that cell's run
    # directory of the same seed instead (e.g. a forecast's shared stage-1 backbone).
    cell_links: ClassVar[tuple[str, ...]] = ()
    # Fields of ``options_type`` an experiment sets itself (its epochs, the run's seed).
    set_by_experiment: ClassVar[tuple[str, ...]] = ()
    takes_recipe: ClassVar[bool] = True  # False: the task's section holds its recipe
    multi_source: ClassVar[bool] = False  # True: reads several data paths (each a source)

    def accepts(self, data: Path) -> bool:
        """Whether ``data`` looks like this task's data (used when no task is named)."""
        return False

    @abstractmethod
    def train(self, spec: TrainSpec) -> dict:
        """Train and score the held-out part; returns the summary written to
        ``test_metrics.json`` (its ``test`` entry holds the test metrics)."""

    @abstractmethod
    def evaluate(self, model: str | Path, data: Any, **kw) -> dict:
        """Metrics of a trained model (shipped name, run folder or checkpoint) on ``data``."""

    def model_inputs_of_files(self, net: nn.Module, meta: dict, files: Sequence[str | Path]
                              ) -> tuple[Any, list[int | None]]:
        """A batch of model inputs, one per file, read as the model's contract says, and for
        records scanned in windows the start sample of the window chosen in each."""
        raise ConfigError(f"the {self.name} task has no per-file prediction")

    def plot_cam(self, x: Any, cam: Any, out: Path, title: str) -> None:
        """A Grad-CAM figure of one input."""
        raise ConfigError(f"the {self.name} task has no Grad-CAM figure")

    def write_predictions(self, path: str | Path, metrics: dict) -> None:
        raise ConfigError(f"the {self.name} task writes no per-item predictions")

    def options_like(self, meta: dict, same_split: bool = True, **overrides) -> Any:
        """The task's options a checkpoint was trained with (for retraining like it);
        ``same_split=False``: a fresh split of new data instead of the recorded one."""
        return self.options_type(**overrides)

    def default_model(self) -> str:
        raise ConfigError(f"the {self.name} task has no default model")

    def records_split(self, meta: dict) -> bool:
        """Whether the checkpoint records its training split (so that a part can be scored)."""
        return False

    def eval_items(self, meta: dict, data: Any, part: str = "all") -> Any:
        """The evaluation items of ``data`` as the model in ``meta`` expects them (a torch
        dataset of (input, label)); ``part``: a part of the model's own split, or all."""
        raise ConfigError(f"the {self.name} task has no per-item evaluation data (compress "
                          "and compare take classification models)")

    def input_shape(self, meta: dict) -> tuple[int, ...]:
        """One model input's shape, from the checkpoint's contract."""
        raise ConfigError(f"the {self.name} task has no fixed model input shape")

    def evaluation_title(self, model: str | Path, data: Any, metrics: dict) -> str:
        return f"{model} on {data} (n={metrics.get('n')})"

    def cell_options(self, model: str, options: Mapping, where: str) -> dict:
        """A config cell's ``options`` checked for this task (``where`` names the cell in
        errors, e.g. ``configs/x.yaml: cells[2]``). Default: model options, as given, each
        checked by the model registry (a misspelt or mistyped option is refused here, before
        any cell trains)."""
        from ..models import resolve_config

        try:
            resolve_config({"model": model, **options})
        except ConfigError as exc:
            raise ConfigError(f"{where}.options: {exc}") from None
        return dict(options)

    def cell_metrics(self, summary: dict) -> dict:
        """The trained model's test metrics in one run's summary (``test_metrics.json``)."""
        return summary["test"]

    def reference_metrics(self, summary: dict) -> dict[str, dict]:
        """Metrics of the reference methods (``reference_names``) a run's summary holds."""
        return {}

    def training_dir(self, run: Path) -> Path:
        """The folder of a run's (final) training: its ``metrics.jsonl`` and the checkpoint
        whose ``model.json`` records the environment it was trained in."""
        return Path(run)

    def headline(self, test: dict) -> str:
        """One line of the test metrics, for the command line."""
        return f"test (n={test.get('n')}): accuracy {test['accuracy']:.4f}"

