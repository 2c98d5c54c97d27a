"""Weekly forecasting: class-balanced sampling, the two training stages, the strict time split,
and the `resattn forecast` commands end to end on a small generated catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from test_cli import _assert_one_line_error

SHARED_CATALOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog"
EVAL_KEYS = {"accuracy", "macro_recall", "macro_f1", "n_weeks", "per_class", "baselines"}
BASELINES = {"climatology", "persistence", "weighted_svm", "weighted_tree", "cnn", "densenet"}


def synthetic_catalog(path: Path, years: int = 12, seed: int = 0) -> Path:
    """Gutenberg-Richter magnitudes (b = 1, M >= 2) at ~40 events a week, with clusters, as a
    generic CSV."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2000-01-01")
    n = 40 * 52 * years
    days = np.sort(rng.uniform(0, 365.25 * years, n))
    mags = np.round(2.0 + rng.exponential(1 / np.log(10), n), 1)
    pd.DataFrame({
        "time": (t0 + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%dT%H:%M:%S"),
        "latitude": rng.uniform(33, 35, n), "longitude": rng.uniform(-118, -116, n),
        "magnitude": mags, "depth": rng.uniform(0, 15, n),
    }).to_csv(path, index=False)
    return path


def test_class_balanced_sampler_balances_and_replays() -> None:
    from resattn.data.samplers import ClassBalancedSampler

    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = ClassBalancedSampler(labels, num_samples=3000, seed=1)
    counts = np.bincount(labels[list(sampler)], minlength=3)
    assert counts.sum() == 3000 and np.all(np.abs(counts - 1000) < 100), counts
    assert list(sampler) == list(sampler)  # same epoch, same draw
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_class_balanced_batches_in_the_trainer() -> None:
    from resattn.engine.trainer import TrainConfig, _train_loader
    from resattn.forecast.series import WeekWindows

    labels = np.array([0] * 200 + [1] * 20 + [2] * 4)
    windows = WeekWindows(np.zeros((len(labels), 3), np.float32), labels,
                          np.arange(7, len(labels)), window=8)
    loader = _train_loader(windows, TrainConfig(sampling="class_balanced", batch_size=64), 1)
    ys = torch.cat([y for _, y in loader]).numpy()
    assert len(ys) == len(windows)
    assert np.bincount(ys, minlength=3).min() > len(ys) / 3 * 0.7


def test_stage_two_freezes_backbone_and_its_statistics() -> None:
    from resattn.models import create_model

    model = create_model("decoupled_densenet1d", in_chans=6, window=16, num_classes=3)
    model.set_stage(1)
    assert all(p.requires_grad for p in model.backbone.parameters())
    model.set_stage(2)
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert not model.backbone.training and model.classifier.training
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model(torch.randn(8, 6, 16) * 5 + 3).sum().backward()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched


def test_windows_never_reach_past_the_week() -> None:
    from resattn.forecast.series import WeekWindows

    z = np.arange(40, dtype=np.float32).reshape(20, 2)
    w = WeekWindows(z, np.zeros(20, int), np.array([9]), window=4)
    x, _ = w[0]
    assert x.shape == (2, 4) and x[0, -1] == z[9, 0] and x[0, 0] == z[6, 0]


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fc")
    cat = synthetic_catalog(root / "cat.csv")
    run = root / "run"
    proc = run_cli("forecast", "train", "--catalog", cat, "--out", run, "--window", "16",
                   "--train-end", "2008-01-01", "--val-end", "2010-01-01", "--epochs", "3",
                   "--format", "json", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return cat, run


def test_forecast_train_writes_both_stages_and_baselines(forecast_run) -> None:
    _, run = forecast_run
    for stage in ("stage1", "stage2", "baselines/cnn"):
        rows = (run / stage / "metrics.jsonl").read_text().splitlines()
        assert 1 <= len(rows) <= 3
    card = json.loads((run / "model.json").read_text())
    assert card["task"] == "weekly-forecast" and card["forecast"]["window"] == 16
    weeks = card["data"]["weeks"]
    assert weeks["train"][1] < "2008-01-01" <= weeks["val"][0] < weeks["test"][0]
    assert weeks["test"][0] >= "2010-01-01"
    summary = json.loads((run / "test_metrics.json").read_text())
    assert set(summary["baselines"]) == BASELINES


def test_forecast_evaluate_json_contract_with_two_catalogues(forecast_run,
                                                             tmp_path: Path) -> None:
    cat, run = forecast_run
    df = pd.read_csv(cat)
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    df[df.time < "2010-06-01"].to_csv(old, index=False)
    df[df.time >= "2010-06-01"].to_csv(new, index=False)
    args = ["forecast", "evaluate", "--model", run, "--from", "2010-01-01", "--to",
            "2011-12-31", "--format", "json"]
    split = json.loads(run_cli(*args, "--catalog", old, "--catalog", new).stdout)
    whole = json.loads(run_cli(*args, "--catalog", cat).stdout)
    assert set(split) >= EVAL_KEYS and set(split["baselines"]) == BASELINES
    assert split["n_weeks"] == len(split["week_starts"]) >= 100
    for m in split["baselines"].values():
        assert {"accuracy", "macro_recall", "macro_f1", "n_weeks"} <= set(m)
        assert m["n_weeks"] == split["n_weeks"]
    # Concatenating an archive and recent events gives the same features as one file.
    assert split["probabilities"] == whole["probabilities"]
    assert split["macro_f1"] == whole["macro_f1"]


def test_forecast_errors(forecast_run, tmp_path: Path) -> None:
    cat, run = forecast_run
    _assert_one_line_error(run_cli("forecast", "evaluate", "--model", run, "--catalog",
                                   tmp_path / "none.csv", "--from", "2010-01-01", "--to",
                                   "2011-01-01"), "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,latitude,longitude,magnitude\nnot-a-date,34,-117,3.0\n"
                   "2001-01-01T00:00:00,34,-117,\n")
    _assert_one_line_error(run_cli("forecast", "train", "--catalog", bad, "--out",
                                   tmp_path / "r", "--on-bad", "error"), "bad.csv", "line 2")
    _assert_one_line_error(run_cli("forecast", "train", "--catalog", cat, "--out",
                                   tmp_path / "r2", "--train-end", "2009-01-01", "--val-end",
                                   "2008-01-01"), "--train-end")


def test_forecast_train_never_reuses_or_overwrites_another_run(forecast_run, tmp_path: Path,
                                                               sample_dir: Path) -> None:
    cat, run = forecast_run
    before = (run / "model.safetensors").read_bytes()
    other = synthetic_catalog(tmp_path / "other.csv", seed=5)
    proc = run_cli("forecast", "train", "--catalog", other, "--out", run, "--window", "16",
                   "--train-end", "2008-01-01", "--val-end", "2010-01-01", "--epochs", "3")
    assert proc.returncode == 2, proc.stderr
    assert "holds a forecast run of other settings" in proc.stderr
    assert (run / "model.safetensors").read_bytes() == before
    waveform = tmp_path / "wave"
    assert run_cli("train", "--model", "resnetkan1d", "--data", sample_dir, "--out", waveform,
                   "--epochs", "1", "--quiet", "--option", "widths=[8,8,8,8]").returncode == 0
    proc = run_cli("forecast", "train", "--catalog", cat, "--out", waveform, "--epochs", "1")
    assert proc.returncode == 2
    assert "holds a waveform-classification model; a weekly-forecast run would overwrite" \
        in proc.stderr.replace("\n", "")
    proc = run_cli("train", "--model", "resnetkan1d", "--data", sample_dir, "--out", run,
                   "--epochs", "1", "--quiet")
    assert proc.returncode == 2 and "holds a weekly-forecast model" in proc.stderr


@pytest.mark.parametrize("rows, message", [
    (["2005-03-01T00:00:00,34,-117,4.5,10"], "1 event(s) from 2005-03-01 to 2005-03-01 leave 0"),
    (["2090-03-01T00:00:00,34,-117,4.5,10", "2090-04-01T00:00:00,34,-117,2.5,10"],
     "2 event(s) from 2090-03-01 to 2090-04-01 leave 0"),
])
def test_catalogue_too_short_for_a_forecast(tmp_path: Path, rows: list, message: str) -> None:
    cat = tmp_path / "cat.csv"
    cat.write_text("time,latitude,longitude,magnitude,depth\n" + "\n".join(rows) + "\n")
    proc = run_cli("forecast", "train", "--catalog", cat, "--out", tmp_path / "run")
    assert proc.returncode == 2 and message in proc.stderr.replace("\n", "")
    assert not (tmp_path / "run").exists()


def test_training_weeks_of_one_class_are_refused(tmp_path: Path) -> None:
    cat = synthetic_catalog(tmp_path / "cat.csv", years=2)
    proc = run_cli("forecast", "train", "--catalog", cat, "--out", tmp_path / "run",
                   "--window", "8", "--bounds", "9,9.5", "--epochs", "1")
    assert proc.returncode == 2, proc.stderr
    assert "the training weeks hold only" in proc.stderr
    assert not (tmp_path / "run").exists()
