"""Tests for fit's callbacks (resattn.engine.callbacks), resume="auto" and the monitored
quantity stored in the trainer state, including states written before it was stored."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from resattn import create_model
from resattn.engine.callbacks import Callback
from resattn.engine.trainer import FitLoop, FitResult, TrainConfig, fit
from resattn.errors import CheckpointError, ConfigError


def _signals(n: int, seed: int, length: int = 128) -> TensorDataset:
    """Class 1: noise + a sine burst at a random place; class 0: noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, length, generator=gen) * 0.5
    y = torch.arange(n) % 2
    burst = 2.0 * torch.sin(2 * math.pi * torch.arange(32, dtype=torch.float32) / 8)
    for i in range(n):
        if y[i] == 1:
            start = int(torch.randint(0, length - 32, (1,), generator=gen))
            x[i, :, start : start + 32] += burst
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def train_set() -> TensorDataset:
    return _signals(64, seed=0)


@pytest.fixture(scope="module")
def val_set() -> TensorDataset:
    return _signals(32, seed=1)


def _model(seed: int = 123) -> torch.nn.Module:
    """Dropout and stochastic depth draw from the global RNG: resume must restore it."""
    torch.manual_seed(seed)
    return create_model("resnet18_1d", widths=(8, 8, 16, 16), stem_width=8, drop_rate=0.3,
                        drop_path_rate=0.2)


def _cfg(**kwargs) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "seed": 5,
            "tensorboard": "off"}
    return TrainConfig(**{**base, **kwargs})


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _trainer_state(run: Path) -> dict:
    return json.loads((run / "last.json").read_text())["trainer"]


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for key, value in b.state_dict().items():
        assert torch.equal(a.state_dict()[key], value), key


class Recorder(Callback):
    """Every hook call, with what the run directory held when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.rows: list[dict] = []

    def on_fit_start(self, loop: FitLoop) -> None:
        self.calls.append(("fit_start", loop.state["epoch"]))
        self.start_state = dict(loop.state)

    def on_epoch_start(self, loop: FitLoop, epoch: int) -> None:
        self.calls.append(("epoch_start", epoch))

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        self.calls.append(("epoch_end", epoch))
        self.rows.append(dict(row))
        # Built-ins ran first: the row is logged and last.* holds this very epoch.
        assert _trainer_state(loop.run_dir)["epoch"] == epoch == loop.state["epoch"]
        assert loop.history[-1]["epoch"] == epoch
        assert row["val_f1"] == loop.val_metrics["f1"]

    def on_fit_end(self, loop: FitLoop, result: FitResult) -> None:
        self.calls.append(("fit_end", result.epochs_run))


class Pruned(Exception):
    """Stands for optuna.TrialPruned."""


class RaiseAfter(Callback):
    """A pruning callback: raises at the end of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        if epoch == self.epoch:
            raise Pruned(f"pruned after epoch {epoch}")


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, loop: FitLoop, epoch: int, row: dict) -> None:
        loop.stop = loop.stop or epoch >= self.epoch


def test_a_user_callback_sees_every_hook_and_row(tmp_path: Path, train_set, val_set) -> None:
    recorder = Recorder()
    result = fit(_model(), train_set, val_set, tmp_path, _cfg(epochs=3), show_progress=False,
                 callbacks=[recorder])
    assert recorder.calls == [("fit_start", 0), ("epoch_start", 1), ("epoch_end", 1),
                              ("epoch_start", 2), ("epoch_end", 2), ("epoch_start", 3),
                              ("epoch_end", 3), ("fit_end", 3)]
    logged = _rows(tmp_path)
    assert [{k: v for k, v in r.items() if k != "improved"} for r in recorder.rows] == logged
    assert logged == result.history
    assert all("improved" not in r for r in logged)
    for key in ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "next_lr",
                "dwell"):
        assert all(key in r for r in recorder.rows), key
    improved = [r["epoch"] for r in recorder.rows if r["improved"]]
    assert improved[0] == 1 and improved[-1] == result.best_epoch
    assert json.loads((tmp_path / "model.json").read_text())["epoch"] == result.best_epoch


@pytest.mark.parametrize("recipe", [
    {"schedule": "cosine"},
    {"optimizer": "adamax", "schedule": "plateau", "dwell": True, "l2": 1e-3},
], ids=["adamw-cosine", "adamax-plateau-dwell"])
def test_a_raise_after_epoch_two_resumes_to_the_same_weights(tmp_path: Path, train_set,
                                                             val_set, recipe) -> None:
    with pytest.raises(Pruned, match="after epoch 2"):
        fit(_model(), train_set, val_set, tmp_path / "a", _cfg(**recipe), resume="auto",
            show_progress=False, callbacks=[RaiseAfter(2)])
    assert _trainer_state(tmp_path / "a")["epoch"] == 2
    assert [r["epoch"] for r in _rows(tmp_path / "a")] == [1, 2]

    resumed_model = _model(seed=999)  # a fresh process builds a fresh model
    recorder = Recorder()
    resumed = fit(resumed_model, train_set, val_set, tmp_path / "a", _cfg(**recipe),
                  resume="auto", show_progress=False, callbacks=[recorder])
    assert recorder.calls[0] == ("fit_start", 2) and recorder.calls[1] == ("epoch_start", 3)

    straight_model = _model()
    straight = fit(straight_model, train_set, val_set, tmp_path / "b", _cfg(**recipe),
                   resume="auto", show_progress=False)  # no last.json: starts fresh
    _assert_same_weights(resumed_model, straight_model)
    keys = ("epoch", "train_loss", "val_loss", "val_f1", "lr", "next_lr", "dwell")
    assert [{k: r[k] for k in keys} for r in resumed.history] == [
        {k: r[k] for k in keys} for r in straight.history]
    assert (resumed.best_epoch, resumed.best_score, resumed.best_val_loss) == (
        straight.best_epoch, straight.best_score, straight.best_val_loss)


def test_stop_set_by_a_callback_ends_this_call_only(tmp_path: Path, train_set, val_set) -> None:
    result = fit(_model(), train_set, val_set, tmp_path, _cfg(epochs=4, patience=10),
                 show_progress=False, callbacks=[StopAfter(2)])
    assert result.epochs_run == 2 and result.stopped_early
    assert [r["epoch"] for r in _rows(tmp_path)] == [1, 2]
    assert _trainer_state(tmp_path)["stopped_early"] is False  # not early stopping: not saved
    again = fit(_model(), train_set, val_set, tmp_path, _cfg(epochs=4, patience=10),
                resume="auto", show_progress=False)
    assert again.epochs_run == 4 and not again.stopped_early


def test_monitor_val_f1_stores_the_best_f1(tmp_path: Path, train_set, val_set) -> None:
    result = fit(_model(), train_set, val_set, tmp_path, _cfg(epochs=3, monitor="val_f1"),
                 positive=1, show_progress=False)
    rows = _rows(tmp_path)
    best = rows[result.best_epoch - 1]
    assert result.monitor == "val_f1" and result.best_score > 0
    assert result.best_score == best["val_f1"] == max(r["val_f1"] for r in rows)
    ties = [r for r in rows if r["val_f1"] == best["val_f1"]]
    assert best["val_loss"] == min(r["val_loss"] for r in ties)  # ties: the lower loss wins
    assert result.best_val_loss == best["val_loss"]
    state = _trainer_state(tmp_path)
    assert (state["monitor"], state["best_score"], state["best_val_loss"]) == (
        "val_f1", best["val_f1"], best["val_loss"])
    assert json.loads((tmp_path / "model.json").read_text())["val_loss"] == best["val_loss"]

    by_loss = fit(_model(), train_set, val_set, tmp_path / "loss", _cfg(epochs=3),
                  show_progress=False)
    assert by_loss.monitor == "val_loss" and by_loss.best_score == by_loss.best_val_loss
    assert by_loss.best_score == min(r["val_loss"] for r in by_loss.history)
    with pytest.raises(ConfigError, match="monitors 'val_loss'"):
        fit(_model(), train_set, val_set, tmp_path / "loss", _cfg(epochs=4, monitor="val_f1"),
            resume="auto", show_progress=False)


def _write_old_format_state(run: Path, monitor: str) -> dict:
    """The trainer state as the code before ``monitor``/``best_score`` wrote it (8d8a8ca):
    ``best_val_loss`` held the minimised key, minus the F1 (plus 1e-6 x loss) for val_f1."""
    path = run / "last.json"
    meta = json.loads(path.read_text())
    new = meta["trainer"]
    best = _rows(run)[new["best_epoch"] - 1]
    key = best["val_loss"] if monitor == "val_loss" else -best["val_f1"] + 1e-6 * best["val_loss"]
    meta["trainer"] = {"epoch": new["epoch"], "best_val_loss": key,
                       "best_epoch": new["best_epoch"], "bad_epochs": new["bad_epochs"],
                       "plateau_bad": new["plateau_bad"], "stopped_early": new["stopped_early"],
                       "precision": new["precision"]}
    path.write_text(json.dumps(meta, indent=2))  # the sha256 covers the weights file only
    return best


@pytest.mark.parametrize("monitor", ["val_loss", "val_f1"])
def test_an_old_format_state_resumes_exactly(tmp_path: Path, train_set, val_set,
                                             monitor: str) -> None:
    cfg = _cfg(monitor=monitor, schedule="plateau")
    with pytest.raises(Pruned):
        fit(_model(), train_set, val_set, tmp_path / "a", cfg, show_progress=False,
            callbacks=[RaiseAfter(2)])
    best = _write_old_format_state(tmp_path / "a", monitor)
    assert "monitor" not in _trainer_state(tmp_path / "a")

    resumed_model = _model(seed=999)
    recorder = Recorder()
    resumed = fit(resumed_model, train_set, val_set, tmp_path / "a", cfg, resume=True,
                  show_progress=False, callbacks=[recorder])
    assert recorder.calls[0] == ("fit_start", 2)
    converted = recorder.start_state
    assert (converted["monitor"], converted["best_score"], converted["best_val_loss"]) == (
        monitor, best[monitor], best["val_loss"])
    straight_model = _model()
    straight = fit(straight_model, train_set, val_set, tmp_path / "b", cfg, show_progress=False)
    _assert_same_weights(resumed_model, straight_model)
    assert (resumed.best_epoch, resumed.best_score, resumed.best_val_loss) == (
        straight.best_epoch, straight.best_score, straight.best_val_loss)
    state = _trainer_state(tmp_path / "a")  # rewritten in this version's format
    assert state["monitor"] == monitor and state["best_score"] == straight.best_score


def test_an_old_val_f1_state_without_its_log_row_is_a_checkpoint_error(
        tmp_path: Path, train_set, val_set) -> None:
    cfg = _cfg(epochs=2, monitor="val_f1")
    fit(_model(), train_set, val_set, tmp_path, cfg, show_progress=False)
    _write_old_format_state(tmp_path, "val_f1")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl") as info:
        fit(_model(), train_set, val_set, tmp_path, _cfg(epochs=3, monitor="val_f1"),
            resume="auto", show_progress=False)
    assert str(tmp_path / "last.json") in str(info.value)


def test_resume_and_callbacks_are_validated(tmp_path: Path, train_set, val_set) -> None:
    for bad in ("yes", 1, "Auto", None):
        with pytest.raises(ConfigError, match="resume must be one of"):
            fit(_model(), train_set, val_set, tmp_path / "x", _cfg(epochs=1), resume=bad,
                show_progress=False)
    with pytest.raises(ConfigError, match="Callback"):
        fit(_model(), train_set, val_set, tmp_path / "x", _cfg(epochs=1), show_progress=False,
            callbacks=[lambda loop: None])
    assert not (tmp_path / "x").exists()
    fit(_model(), train_set, val_set, tmp_path / "y", _cfg(epochs=1), show_progress=False)
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(_model(), train_set, val_set, tmp_path / "y", _cfg(epochs=1), resume=False,
            show_progress=False)
    before = (tmp_path / "y" / "last.safetensors").read_bytes()
    done = fit(_model(), train_set, val_set, tmp_path / "y", _cfg(epochs=1), resume="auto",
               show_progress=False)
    assert done.epochs_run == 1 and (tmp_path / "y" / "last.safetensors").read_bytes() == before
