"""Train and evaluate the weekly forecaster of seed 003 on catalogues (plus optional
user-supplied per-time-step precursor features).

Run directory after ``train_forecaster``:
    model.safetensors / model.json    the decoupled model (stage 2) + everything needed to
                                      rebuild its inputs (region, bounds, window, features,
                                      standardisation, split dates)
    stage1/, stage2/                  the two training runs (logs, checkpoints, resume state)
    baselines/cnn/                    the plain CNN baseline
    baselines.npz                     training matrix for the scikit-learn baselines
    test_metrics.json                 the test weeks: ours and every baseline
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from ..data.catalog import Catalog, magnitude_of_completeness, read_catalogs
from ..engine.checkpoint import load_model, load_state, save_model
from ..engine.inference import predict_proba
from ..engine.trainer import TrainConfig, fit
from ..errors import ConfigError, DataError
from ..eval.metrics import classification_metrics
from ..io import atomic_write_bytes, atomic_write_json, check_run_folder, read_json
from ..models import create_model
from ..models.densenet1d import CLASSIFIERS, FEATURE_INPUTS
from . import baselines as base
from .features import DEFAULT_BOUNDS
from .series import Standardizer, WeeklySeries, WeekWindows, build_series, time_split

TASK = "weekly-forecast"


@dataclass
class ForecastConfig:
    """What to forecast and how to train. Dates are ISO strings; None picks a default."""

    region: tuple[float, float, float, float] | None = None  # lat0, lat1, lon0, lon1
    bounds: tuple[float, ...] = DEFAULT_BOUNDS
    min_magnitude: float | None = None
    start: str | None = None  # first week (default: first event + window weeks)
    end: str | None = None  # end of the last week (default: last event)
    train_end: str | None = None  # T1 (default: 70 % of the span)
    val_end: str | None = None  # T2 (default: 85 % of the span)
    window: int = 32  # weeks of history per item (the backbone's W)
    gap_days: float = 180.0  # longer stretches without events are missing data
    features: str = "fused"
    classifier: str = "dense"
    epochs: int = 100
    patience: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    baselines: bool = True
    extra: str | None = None  # per-time-step precursor table (CSV)
    recipe: dict = field(default_factory=dict)  # TrainConfig overrides for both stages
    backbone_from: str | None = None  # reuse this run's stage-1 backbone (Tables II-III)

    def __post_init__(self) -> None:
        """Every value checked before a catalogue is read or a file written."""
        if self.region is not None:
            lat0, lat1, lon0, lon1 = self.region
            if not (-90 <= lat0 < lat1 <= 90 and -180 <= lon0 < lon1 <= 360):
                raise ConfigError(f"region: expected LAT0 < LAT1 in [-90, 90] and LON0 < LON1 "
                                  f"in [-180, 360] degrees, got {list(self.region)}")
        bounds = tuple(self.bounds)
        if not bounds or not all(MAGNITUDES[0] <= b <= MAGNITUDES[1] for b in bounds) or any(
                b >= c for b, c in pairwise(bounds)):
            raise ConfigError(f"bounds: expected increasing magnitudes in {list(MAGNITUDES)}, "
                              f"e.g. 3.5,4,4.5,5; got {list(bounds)}")
        if self.min_magnitude is not None and not (
                MAGNITUDES[0] <= self.min_magnitude <= MAGNITUDES[1]):
            raise ConfigError(f"min_magnitude: expected a magnitude in {list(MAGNITUDES)}, got "
                              f"{self.min_magnitude}")
        dates = {k: parse_date(getattr(self, k), _flag(k))
                 for k in ("start", "train_end", "val_end", "end") if getattr(self, k) is not None}
        ordered = list(dates.items())
        for (a, ta), (b, tb) in pairwise(ordered):
            if not ta < tb:
                raise ConfigError(f"{_flag(a)} ({ta.date()}) must come before {_flag(b)} "
                                  f"({tb.date()})")
        for name in ("window", "epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not (self.lr > 0 and np.isfinite(self.lr)) or not (
                self.gap_days > 0 and np.isfinite(self.gap_days)):
            raise ConfigError(f"lr and gap_days must be finite numbers > 0, got {self.lr}, "
                              f"{self.gap_days}")
        for name, choices in (("features", FEATURE_INPUTS), ("classifier", CLASSIFIERS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {list(choices)}, got "
                                  f"{getattr(self, name)!r}")


def _flag(name: str) -> str:
    """A config field as the command line spells it (``train_end`` -> ``--train-end``)."""
    return "--" + name.replace("_", "-")


MAGNITUDES = (-2.0, 10.0)  # the plausible range of a magnitude bound or floor
FIRST_DAY, LAST_DAY = pd.Timestamp("1678-01-01"), pd.Timestamp("2261-12-31")  # pandas' range


def parse_date(text: str, where: str) -> pd.Timestamp:
    """An ISO date (or date and time) of the catalogue era, else a ConfigError naming ``where``."""
    try:
        when = pd.Timestamp(str(text).strip())
    except (ValueError, OverflowError, TypeError):
        when = None
    if when is None or pd.isna(when) or not FIRST_DAY <= when <= LAST_DAY:
        raise ConfigError(f"{where}: expected a date such as 2005-02-28 (between "
                          f"{FIRST_DAY.year} and {LAST_DAY.year}), got {text!r}")
    return when.tz_localize(None) if when.tzinfo else when


def load_catalog(paths, region=None, min_magnitude=None, on_bad: str = "skip") -> Catalog:
    """Concatenated catalogues, cut to the region and magnitude floor."""
    catalog = read_catalogs([paths] if isinstance(paths, str | Path) else list(paths),
                            on_bad=on_bad)
    if region is not None:
        catalog = catalog.region(*region)
    if min_magnitude is not None:
        catalog = catalog.above(min_magnitude)
    if len(catalog) == 0:
        raise DataError(f"{', '.join(map(str, catalog.sources))}: no events in the region "
                        f"{region} above magnitude {min_magnitude}")
    return catalog


MIN_WEEKS = 20  # forecast weeks a run needs (70/15/15 % split: at least 3 test weeks)


def _default_dates(catalog: Catalog, cfg: ForecastConfig) -> ForecastConfig:
    t = catalog.events["time"]
    start = pd.Timestamp(cfg.start) if cfg.start else t.iloc[0].normalize() + pd.Timedelta(
        weeks=cfg.window)
    end = pd.Timestamp(cfg.end) if cfg.end else t.iloc[-1].normalize()
    span = end - start
    need = MIN_WEEKS
    if span < pd.Timedelta(weeks=need):
        first, last = t.iloc[0].date(), t.iloc[-1].date()
        raise DataError(
            f"{', '.join(map(str, catalog.sources))}: {len(t)} event(s) from {first} to {last} "
            f"leave {max(span.days // 7, 0)} forecast week(s) from {start.date()} (the first "
            f"event + --window {cfg.window} weeks) to {end.date()}; training, validation and "
            f"test need at least {need}: give a longer catalogue, a smaller --window or "
            "--start/--end")
    t1 = cfg.train_end or str((start + 0.70 * span).date())
    t2 = cfg.val_end or str((start + 0.85 * span).date())
    return replace(cfg, start=str(start.date()), end=str(end.date()), train_end=t1, val_end=t2)


def forecast_metrics(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    """The paper's metrics with macro recall and macro F1 as the headline."""
    m = classification_metrics(labels, probs, names)
    return {"accuracy": m["accuracy"], "macro_recall": m["recall"], "macro_f1": m["f1"],
            "macro_precision": m["precision"], "kappa": m["kappa"], "n_weeks": m["n"],
            "per_class": m["per_class"], "confusion": m["confusion"]}


def _stage_config(cfg: ForecastConfig, **kw) -> TrainConfig:
    """Adam 1e-3, cosine annealing, fp32 (tiny tensors gain nothing from bf16)."""
    return TrainConfig(**{"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
                          "weight_decay": 0.0, "patience": cfg.patience, "precision": "fp32",
                          "seed": cfg.seed, "optimizer": "adam", "schedule": "cosine",
                          **cfg.recipe, **kw})


def _fit_stage(model, data: dict, run: Path, tc: TrainConfig, names: list[str],
               meta: dict) -> None:
    """Train into ``run`` (resuming if it holds a run) and load the best weights back."""
    fit(model, data["train"], data["val"], run, tc, resume=(run / "last.json").exists(),
        meta=meta, class_names=names, show_progress=False)
    path = run / "model.safetensors"
    load_state(model, load_file(path), path)


def check_classes_present(series: WeeklySeries, parts: dict[str, np.ndarray]) -> None:
    """Training weeks of a single class (a catalogue with one event, or one whose events all
    fall in a few weeks) make every score trivially perfect: refuse them."""
    counts = np.bincount(series.labels[parts["train"]], minlength=len(series.class_names))
    if (counts > 0).sum() < 2:
        present = {n: int(c) for n, c in zip(series.class_names, counts, strict=True) if c}
        raise DataError(f"the training weeks hold only {present} (classes by largest "
                        f"magnitude {series.class_names}); a forecast needs weeks of at least "
                        "two classes: give a longer catalogue, other --bounds or dates")


def check_same_run(out: Path, record: dict) -> None:
    """A forecast run resumes its stages from ``out``: refuse when ``out`` holds another
    task's model or a run of other options or data (its stage weights would be reused under
    the new metadata); else record what this run is (``run.json``)."""
    check_run_folder(out, TASK)
    path = out / "run.json"
    record = json.loads(json.dumps(record))
    if path.is_file():
        old = read_json(path)
        if old != record:
            changed = sorted(k for k in {**old.get("forecast", {}), **record["forecast"]}
                             if old.get("forecast", {}).get(k) != record["forecast"].get(k))
            what = ", ".join(changed) if changed else "the catalogue data"
            raise ConfigError(f"{out} holds a forecast run of other settings ({what} differ); "
                              "its stage weights would be reused: choose another --out")
    elif (out / "stage1").exists() or (out / "stage2").exists():
        raise ConfigError(f"{out} holds forecast stages of an unrecorded run; choose another "
                          "--out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def train_forecaster(catalogs, out: str | Path, cfg: ForecastConfig | None = None,
                     on_bad: str = "skip") -> dict:
    """Decoupled two-stage training (seed 003) on weekly series of the catalogue(s); scores
    the test weeks against every baseline and returns that summary."""
    cfg = cfg or ForecastConfig()
    out = Path(out)
    catalog = load_catalog(catalogs, cfg.region, cfg.min_magnitude, on_bad)
    cfg = _default_dates(catalog, cfg)
    mc = magnitude_of_completeness(catalog.magnitudes)  # reported; features use per-week Mc
    series = build_series(catalog, pd.Timestamp(cfg.start) - pd.Timedelta(weeks=cfg.window - 1),
                          cfg.end, cfg.bounds, cfg.extra, gap_days=cfg.gap_days)
    parts = time_split(series, cfg.train_end, cfg.val_end, cfg.window)
    check_classes_present(series, parts)
    scaler = Standardizer.fit(series.features.to_numpy()[parts["train"]])
    z = scaler(series.features.to_numpy())
    data = {p: WeekWindows(z, series.labels, idx, cfg.window) for p, idx in parts.items()}
    names, k = series.class_names, len(series.bounds) + 1
    meta = {
        "task": TASK, "forecast": {**asdict(cfg), "mc": mc, "feature_names": series.names,
                                   "standardizer": scaler.to_json(),
                                   "train_class_counts": np.bincount(
                                       series.labels[parts["train"]], minlength=k).tolist()},
        "data": {"catalogs": list(map(str, catalog.sources)), "n_events": len(catalog),
                 "weeks": {p: [str(series.starts[v[0]].date()), str(series.starts[v[-1]].date()),
                               len(v)] for p, v in parts.items()},
                 "bad_rows": len(catalog.bad_rows),
                 "gaps": [[str(a), str(b)] for a, b in catalog.gaps(cfg.gap_days)],
                 "weeks_dropped_for_gaps": int((~series.usable).sum())},
    }
    check_same_run(out, {"forecast": asdict(cfg), "data": meta["data"]})
    torch.manual_seed(cfg.seed)
    model = create_model("decoupled_densenet1d", in_chans=z.shape[1], window=cfg.window,
                         num_classes=k, features=cfg.features, classifier=cfg.classifier)
    if cfg.backbone_from:  # the same backbone as another run: only the classifier differs
        path = Path(cfg.backbone_from) / "stage1" / "model.safetensors"
        if not path.exists():
            raise ConfigError(f"backbone_from: {path} not found (train that run first)")
        model.backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in
                                        load_file(path).items() if k.startswith("backbone.")})
    else:
        model.set_stage(1)  # backbone + one linear layer, instance sampling, loss-based stop
        _fit_stage(model, data, out / "stage1", _stage_config(cfg), names, meta)
    model.set_stage(2)  # frozen backbone, fused classifier, class-balanced sampling
    _fit_stage(model, data, out / "stage2",
               _stage_config(cfg, sampling="class_balanced", monitor="val_f1"), names, meta)
    save_model(out / "model", model, meta)
    if cfg.baselines:
        cnn = create_model("cnn1d", in_chans=z.shape[1], num_classes=k)
        fit(cnn, data["train"], data["val"], out / "baselines" / "cnn", _stage_config(cfg),
            resume=(out / "baselines" / "cnn" / "last.json").exists(), meta=meta,
            class_names=names, show_progress=False)
        _save_arrays(out / "baselines.npz", x=z[parts["train"]], y=series.labels[parts["train"]])
    summary = {"config": asdict(cfg), "mc": mc, "weeks": meta["data"]["weeks"],
               **score_weeks(out, series, z, parts["test"], meta)}
    atomic_write_json(out / "test_metrics.json", summary)
    return summary


def _save_arrays(path: Path, **arrays: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def score_weeks(run: Path, series: WeeklySeries, z: np.ndarray, idx: np.ndarray,
                meta: dict) -> dict:
    """Metrics of the run's model and of every baseline on the weeks ``idx``."""
    f = meta["forecast"]
    names, k, window = series.class_names, len(series.bounds) + 1, f["window"]
    weeks = WeekWindows(z, series.labels, idx, window)
    y = series.labels[idx]
    model, _ = load_model(run)
    probs, _, _ = predict_proba(model, weeks, "fp32", 256)
    result = {"model": forecast_metrics(y, probs, names), "baselines": {},
              "week_starts": [str(d.date()) for d in series.starts[idx]],
              "probabilities": probs.round(6).tolist(), "labels": y.tolist()}
    train_counts = np.asarray(f["train_class_counts"])
    bl = result["baselines"]
    bl["climatology"] = forecast_metrics(
        y, np.tile(train_counts / train_counts.sum(), (len(y), 1)), names)
    bl["persistence"] = forecast_metrics(y, base.persistence(series.labels[idx - 1], k), names)
    npz = run / "baselines.npz"
    if npz.exists():
        with np.load(npz, allow_pickle=False) as d:
            x_train, y_train = d["x"], d["y"]
        bl["weighted_svm"] = forecast_metrics(y, base.weighted_svm(x_train, y_train, z[idx], k),
                                              names)
        bl["weighted_tree"] = forecast_metrics(
            y, base.weighted_tree(x_train, y_train, z[idx], k, f["seed"]), names)
    for name, path in (("cnn", run / "baselines" / "cnn"), ("densenet", run / "stage1")):
        if (path / "model.json").exists():
            net, _ = load_model(path)
            if hasattr(net, "set_stage"):
                net.set_stage(1)  # DenseNet without decoupling: backbone + its linear layer
            p, _, _ = predict_proba(net, weeks, "fp32", 256)
            bl[name] = forecast_metrics(y, p, names)
    return result


def evaluate_forecaster(run: str | Path, catalogs, date_from: str, date_to: str,
                        extra: str | None = None, on_bad: str = "skip") -> dict:
    """Score a trained run on the whole weeks in [date_from, date_to) of the given catalogues
    (concatenated; each week's features use every event before it)."""
    run = Path(run)
    t0, t_end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    if not t0 < t_end:
        raise ConfigError(f"--from ({t0.date()}) must come before --to ({t_end.date()})")
    _, meta = load_model(run)
    if "forecast" not in meta:
        raise ConfigError(f"{run}: not a weekly-forecast run (its model.json has no "
                          "'forecast' section)")
    f = meta["forecast"]
    catalog = load_catalog(catalogs, f["region"], f["min_magnitude"], on_bad)
    series = build_series(catalog, t0 - pd.Timedelta(weeks=f["window"]), t_end,
                          tuple(f["bounds"]), extra or f["extra"],
                          gap_days=f.get("gap_days", 180.0))
    if series.names != f["feature_names"]:
        raise DataError(f"the features built now ({len(series.names)}) differ from the "
                        f"model's ({len(f['feature_names'])}); pass the same --extra table")
    idx = series.positions(t0, t_end, f["window"])
    if len(idx) == 0:
        raise DataError(f"no whole week between {date_from} and {date_to}")
    z = Standardizer.from_json(f["standardizer"])(series.features.to_numpy())
    result = score_weeks(run, series, z, idx, meta)
    return {**result.pop("model"), **result, "from": date_from, "to": date_to,
            "region": f["region"], "class_names": series.class_names}
