"""Weekly earthquake forecasting from catalogues (seed 003) as a registered task."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..forecast.pipeline import TASK, ForecastConfig, evaluate_forecaster, train_forecaster
from .base import Task, TrainSpec

# Cell options of a forecast experiment: which part of the decoupled model a cell varies.
CELL_OPTIONS = ("features", "classifier")


class WeeklyForecast(Task):
    """Weekly class of the largest magnitude from explicit + implicit catalogue features,
    decoupled two-stage DenseNet training, scored against baselines."""

    name = TASK
    aliases = ("forecast",)
    section = "forecast"
    description = "weekly earthquake forecasting from catalogues (seed 003)"
    options_type = ForecastConfig

    def default_model(self) -> str:
        return "decoupled_densenet1d"

    def train(self, spec: TrainSpec) -> dict:
        """``spec.data``: catalogue file(s); ``spec.options``: a ForecastConfig;
        ``spec.model_options`` may set ``features``/``classifier`` (the cell's variant) and
        ``backbone_from``; the recipe's epochs and the spec's seed win."""
        cfg = spec.options or ForecastConfig()
        cfg = replace(cfg, seed=spec.seed, epochs=spec.recipe.epochs,
                      **dict(spec.model_options or {}))
        data = spec.data if isinstance(spec.data, list | tuple) else [spec.data]
        return train_forecaster([str(d) for d in data], Path(spec.out), cfg)

    def evaluate(self, model: str | Path, data: Any, date_from: str = "", date_to: str = "",
                 extra: str | None = None, on_bad: str = "skip", **_: Any) -> dict:
        return evaluate_forecaster(model, data, date_from, date_to, extra, on_bad)

    def options_like(self, meta: dict, same_split: bool = True,
                     **overrides) -> ForecastConfig:
        known = set(asdict(ForecastConfig()))
        recorded = {k: v for k, v in (meta.get("forecast") or {}).items() if k in known}
        return ForecastConfig(**{**recorded, **overrides})
