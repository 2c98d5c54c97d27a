"""Weekly earthquake forecasting from catalogues (seed 003) as a registered task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..forecast.pipeline import TASK, ForecastConfig, evaluate_forecaster, train_forecaster
from ..models.densenet1d import CLASSIFIERS, FEATURE_INPUTS
from ..options import from_mapping, option
from .base import Task, TrainSpec

MODEL = "decoupled_densenet1d"


@dataclass
class ForecastCell:
    """What one cell of a forecast experiment may vary (seed 003, Tables II-III); a field
    left unset keeps the experiment's ``forecast:`` value."""

    features: str | None = option(None, "Inputs of the classifier: " + ", ".join(FEATURE_INPUTS)
                                  + " (Table II).")
    classifier: str | None = option(None, "Second-stage classifier: " + ", ".join(CLASSIFIERS)
                                    + " (Table III).")
    baselines: bool | None = option(None, "Also train and score the reference methods "
                                          "(Table IV); off for variants of a main cell.")
    backbone_from: str | None = option(None, "Name of an earlier cell whose stage-1 backbone "
                                             "(same seed) this cell reuses, so that only the "
                                             "part compared differs.")

    def __post_init__(self) -> None:
        for name, allowed in (("features", FEATURE_INPUTS), ("classifier", CLASSIFIERS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {value!r}")


class WeeklyForecast(Task):
    """Weekly class of the largest magnitude from explicit + implicit catalogue features,
    decoupled two-stage DenseNet training, scored against baselines."""

    name = TASK
    aliases = ("forecast",)
    section = "forecast"
    description = "weekly earthquake forecasting from catalogues (seed 003)"
    options_type = ForecastConfig
    metric_names = ("accuracy", "macro_recall", "macro_f1", "macro_precision", "kappa")
    # pipeline.score_weeks: each scored on the same test weeks as the model
    reference_names = ("climatology", "persistence", "weighted_svm", "weighted_tree", "cnn",
                       "densenet")
    cell_links = ("backbone_from",)
    set_by_experiment = ("epochs", "seed", "backbone_from")
    takes_recipe = False  # forecast.lr, batch_size, patience and recipe train both stages

    def default_model(self) -> str:
        return MODEL

    def cell_options(self, model: str, options: Mapping, where: str) -> dict:
        if model != MODEL:
            raise ConfigError(f"{where}.model: the {TASK} task trains {MODEL}, got {model!r}")
        where = f"{where}.options"
        try:
            cell = from_mapping(ForecastCell, options, where)
        except ConfigError as exc:
            raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}.{exc}") \
                from None
        return {k: v for k, v in asdict(cell).items() if v is not None}

    def forecast_config(self, spec: TrainSpec) -> ForecastConfig:
        """The ForecastConfig a spec trains: ``spec.options`` with the spec's seed, the
        recipe's epochs and the cell's ``model_options`` (features, classifier, baselines,
        backbone_from as a run directory)."""
        if spec.init_from:
            raise ConfigError(f"init: the {TASK} task trains from scratch; reuse another "
                              "cell's backbone with options.backbone_from")
        if spec.callbacks or spec.loss_fn is not None or spec.prepare is not None:
            raise ConfigError(f"the {TASK} task trains its two stages with its own loop; "
                              "callbacks, loss_fn and prepare are not supported")
        cfg = spec.options or ForecastConfig()
        return replace(cfg, seed=spec.seed, epochs=spec.recipe.epochs,
                       **dict(spec.model_options or {}))

    def train(self, spec: TrainSpec) -> dict:
        """``spec.data``: catalogue file(s); summary: ``model`` and ``baselines`` metrics."""
        data = spec.data if isinstance(spec.data, list | tuple) else [spec.data]
        return train_forecaster([str(d) for d in data], Path(spec.out),
                                self.forecast_config(spec))

    def cell_metrics(self, summary: dict) -> dict:
        return summary["model"]

    def reference_metrics(self, summary: dict) -> dict[str, dict]:
        return summary["baselines"]

    def training_dir(self, run: Path) -> Path:
        return Path(run) / "stage2"  # the decoupled model's second stage

    def evaluate(self, model: str | Path, data: Any, date_from: str = "", date_to: str = "",
                 extra: str | None = None, on_bad: str = "skip", **_: Any) -> dict:
        return evaluate_forecaster(model, data, date_from, date_to, extra, on_bad)

    def options_like(self, meta: dict, same_split: bool = True,
                     **overrides) -> ForecastConfig:
        known = set(asdict(ForecastConfig()))
        recorded = {k: v for k, v in (meta.get("forecast") or {}).items() if k in known}
        return ForecastConfig(**{**recorded, **overrides})
