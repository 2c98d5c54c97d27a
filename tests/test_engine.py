"""Tests for resattn.engine (checkpoints, fit/resume, precision) and resattn.eval.metrics."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from resattn import create_model
from resattn.engine import (
    TrainConfig,
    choose_precision,
    cpu_info,
    environment,
    fit,
    load_model,
    predict_proba,
    save_model,
)
from resattn.engine.precision import PRECISIONS, calibrate_bf16
from resattn.engine.recipes import OPTIMIZERS, kernel_penalty
from resattn.engine.tracking import scalar_tag, tensorboard_available
from resattn.errors import CheckpointError, ConfigError
from resattn.eval.metrics import classification_metrics, cohen_kappa, confusion_matrix
from resattn.io import atomic_write_bytes, atomic_write_json
from resattn.models import resolve_config

# ------------------------------------------------------------------------------------ helpers


def _signals(n: int, seed: int, length: int = 256) -> TensorDataset:
    """Learnable toy task: class 1 = noise + a sine burst at a random place, class 0 = noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, length, generator=gen) * 0.5
    y = torch.arange(n) % 2
    t = torch.arange(64, dtype=torch.float32)
    burst = 2.0 * torch.sin(2 * math.pi * t / 8)
    for i in range(n):
        if y[i] == 1:
            start = int(torch.randint(0, length - 64, (1,), generator=gen))
            x[i, :, start : start + 64] += burst
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def train_set() -> TensorDataset:
    return _signals(96, seed=0)


@pytest.fixture(scope="module")
def val_set() -> TensorDataset:
    return _signals(32, seed=1)


def _small_resnet(seed: int = 123, **options):
    torch.manual_seed(seed)
    return create_model("resnet18_1d", widths=(8, 16, 32, 64), stem_width=8, **options)


def _cfg(**kwargs) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "seed": 5}
    return TrainConfig(**{**base, **kwargs})


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _leftover_temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def kan_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("resnetkan1d")
    with torch.no_grad():  # non-trivial BN statistics and last-norm weights
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    return torch.randn(2, 3, 1024, generator=torch.Generator().manual_seed(7))


def test_save_load_round_trip_is_exact(tmp_path: Path, kan_model, wave) -> None:
    meta = save_model(tmp_path / "model", kan_model, {"task": "toy", "epoch": 3})
    assert meta["config"] == resolve_config({"model": "resnetkan1d"})
    assert meta["weights"] == "model.safetensors"
    data = (tmp_path / "model.safetensors").read_bytes()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    with torch.no_grad():
        want = kan_model(wave)
    for source in (tmp_path, tmp_path / "model.json", tmp_path / "model.safetensors",
                   str(tmp_path / "model")):
        loaded, loaded_meta = load_model(source)
        assert not loaded.training
        assert loaded_meta["task"] == "toy" and loaded_meta["epoch"] == 3
        with torch.no_grad():
            assert torch.equal(loaded(wave), want)
    for key, value in kan_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_float16_storage_loads_back_close(tmp_path: Path, kan_model, wave) -> None:
    save_model(tmp_path / "full", kan_model)
    save_model(tmp_path / "half", kan_model, dtype=torch.float16)
    full_size = (tmp_path / "full.safetensors").stat().st_size
    half_size = (tmp_path / "half.safetensors").stat().st_size
    assert half_size < 0.6 * full_size
    loaded, _ = load_model(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.stages[0][0].branch[1].num_batches_tracked.dtype == torch.int64
    with torch.no_grad():
        want, got = kan_model(wave), loaded(wave)
    assert not torch.equal(got, want)  # it really was rounded
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_float16_storage_keeps_kan_grid_exact(tmp_path: Path, kan_model) -> None:
    save_model(tmp_path / "half", kan_model, dtype=torch.float16)
    loaded, _ = load_model(tmp_path / "half")
    grids = [(k, v) for k, v in kan_model.state_dict().items() if k.endswith("knots")]
    assert grids
    for key, value in grids:
        assert torch.equal(loaded.state_dict()[key], value), key


def test_tampered_weights_raise_sha256_error(tmp_path: Path, kan_model) -> None:
    save_model(tmp_path / "model", kan_model)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one byte of tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256") as info:
        load_model(tmp_path)
    assert str(path) in str(info.value)


def test_config_weights_mismatch_names_the_file(tmp_path: Path) -> None:
    plain = _small_resnet(attn="none")
    save_model(tmp_path / "model", plain)
    json_path = tmp_path / "model.json"
    meta = json.loads(json_path.read_text())
    meta["config"]["attn"] = "dual"  # the sha256 of the weights is still right
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match model 'resnet18_1d'") as info:
        load_model(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "model.safetensors") in message
    assert "missing" in message and "attn" in message


def test_missing_checkpoint_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no model checkpoint"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no model checkpoint"):
        load_model(tmp_path)  # an empty directory
    (tmp_path / "model.json").write_text(json.dumps({"config": {"model": "cnn1d"}}))
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_model(tmp_path)


@pytest.mark.parametrize("corruption", ["truncate", "garbage"])
def test_corrupt_safetensors_without_sha_raises(tmp_path: Path, corruption: str) -> None:
    model = create_model("cnn1d")
    save_model(tmp_path / "model", model)
    json_path, path = tmp_path / "model.json", tmp_path / "model.safetensors"
    meta = json.loads(json_path.read_text())
    del meta["sha256"]  # no integrity check to catch it first
    json_path.write_text(json.dumps(meta))
    data = path.read_bytes()
    path.write_bytes(data[:40] if corruption == "truncate" else b"\x07" * 8 + data[8:])
    with pytest.raises(CheckpointError, match="not a valid safetensors file") as info:
        load_model(tmp_path)
    assert str(path) in str(info.value)


def test_unreadable_json_and_missing_model_field(tmp_path: Path) -> None:
    save_model(tmp_path / "model", create_model("cnn1d"))
    json_path = tmp_path / "model.json"
    meta = json.loads(json_path.read_text())
    del meta["config"]["model"]
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"config\.model"):
        load_model(tmp_path)
    json_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable JSON"):
        load_model(tmp_path)


def test_atomic_writes_leave_no_temporary_file(tmp_path: Path, kan_model) -> None:
    save_model(tmp_path / "model", kan_model)
    atomic_write_json(tmp_path / "sub" / "x.json", {"a": (1, 2), "p": tmp_path})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors",
                                                           "sub"]
    assert json.loads((tmp_path / "sub" / "x.json").read_text()) == {"a": [1, 2],
                                                                     "p": str(tmp_path)}
    assert _leftover_temp_files(tmp_path) == []
    # A failed replace (the target is a non-empty directory) cleans its temporary file up.
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert _leftover_temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ------------------------------------------------------------------------------------- fit


def test_fit_learns_and_writes_run_dir(tmp_path: Path, train_set, val_set) -> None:
    model = _small_resnet()
    result = fit(model, train_set, val_set, tmp_path, _cfg(), meta={"task": "toy"},
                 class_names=["noise", "event"], positive=1, show_progress=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    events = ["tensorboard"] if tensorboard_available() else []  # tracking "auto"
    assert names == sorted(["last.json", "last.safetensors", "metrics.jsonl", "model.json",
                            "model.safetensors", *events])
    rows = _rows(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    losses = [r["train_loss"] for r in rows]
    assert losses[-1] < 0.7 * losses[0], losses
    assert rows[-1]["val_accuracy"] >= 0.8
    assert result.epochs_run == 4 and not result.stopped_early and result.precision == "fp32"
    assert [r["train_loss"] for r in result.history] == losses

    best = json.loads((tmp_path / "model.json").read_text())
    assert best["epoch"] == result.best_epoch
    assert best["val_loss"] == pytest.approx(result.best_val_loss)
    assert best["val_loss"] == pytest.approx(min(r["val_loss"] for r in rows))
    assert best["task"] == "toy" and best["class_names"] == ["noise", "event"]
    assert best["config"]["model"] == "resnet18_1d"
    assert best["val_metrics"]["positive_class"] == "event"
    assert best["environment"]["torch"] == torch.__version__
    assert _leftover_temp_files(tmp_path) == []

    # The saved best model reproduces the validation loss recorded for its epoch.
    loaded, _ = load_model(tmp_path)
    _, _, val_loss = predict_proba(loaded, val_set)
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-5)

    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(), show_progress=False)


def test_early_stopping_on_constant_val_loss(tmp_path: Path, train_set, val_set) -> None:
    # No batch norm and a vanishing learning rate: the weights, hence the val loss, stay put.
    torch.manual_seed(0)
    model = create_model("cnn1d", batch_norm=False)
    result = fit(model, train_set, val_set, tmp_path, _cfg(epochs=20, lr=1e-12, patience=2),
                 show_progress=False)
    rows = _rows(tmp_path / "metrics.jsonl")
    assert result.stopped_early
    assert result.epochs_run == 3 and len(rows) == 3  # best at 1, then 2 epochs without gain
    assert result.best_epoch == 1
    assert len({r["val_loss"] for r in rows}) == 1


@pytest.mark.parametrize("recipe", [
    {},
    {"optimizer": "adamax", "schedule": "plateau", "dwell": True, "l1": 1e-4, "l2": 1e-3},
], ids=["adamw", "adamax-plateau-dwell-l1l2"])
def test_resume_equals_uninterrupted_run(tmp_path: Path, train_set, val_set, recipe) -> None:
    # Dropout and stochastic depth draw from the global RNG, so resume must restore it too.
    noisy = {"drop_rate": 0.3, "drop_path_rate": 0.2}
    first = fit(_small_resnet(**noisy), train_set, val_set, tmp_path / "a",
                _cfg(epochs=2, **recipe), show_progress=False)
    assert first.epochs_run == 2
    # A fresh process would build a fresh model (different init): resume must overwrite it.
    resumed_model = _small_resnet(seed=999, **noisy)
    resumed = fit(resumed_model, train_set, val_set, tmp_path / "a", _cfg(epochs=4, **recipe),
                  resume=True, show_progress=False)
    rows = _rows(tmp_path / "a" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.epochs_run == 4

    straight_model = _small_resnet(**noisy)
    straight = fit(straight_model, train_set, val_set, tmp_path / "b",
                   _cfg(epochs=4, **recipe), show_progress=False)
    keys = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "next_lr", "dwell")
    assert [{k: r[k] for k in keys} for r in rows] == [
        {k: r[k] for k in keys} for r in straight.history
    ]
    # Bit-for-bit: model, optimizer and RNG state are restored, shuffling is seeded per epoch.
    for key, value in straight_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key
    assert resumed.best_epoch == straight.best_epoch


def test_resume_refuses_a_different_model(tmp_path: Path, train_set, val_set) -> None:
    fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=1), show_progress=False)
    with pytest.raises(CheckpointError, match="does not match the model being trained"):
        fit(_small_resnet(attn="dual"), train_set, val_set, tmp_path, _cfg(epochs=2),
            resume=True, show_progress=False)


def test_resume_of_finished_run_trains_nothing(tmp_path: Path, train_set, val_set) -> None:
    fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=2), show_progress=False)
    before = (tmp_path / "last.safetensors").read_bytes()
    again = fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=2), resume=True,
                show_progress=False)
    assert again.epochs_run == 2 and len(_rows(tmp_path / "metrics.jsonl")) == 2
    assert (tmp_path / "last.safetensors").read_bytes() == before


def _event_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_mirror_the_jsonl_log_across_resume(tmp_path: Path, train_set,
                                                               val_set) -> None:
    pytest.importorskip("tensorboard")  # a test extra: installed in CI
    fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=2, tensorboard="on"),
        show_progress=False)
    fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=3, tensorboard="on"),
        resume=True, show_progress=False)
    rows = _rows(tmp_path / "metrics.jsonl")
    scalars = _event_scalars(tmp_path)
    assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(scalars)
    for key in ("train_loss", "val_loss", "val_f1"):
        events = scalars[scalar_tag(key)]
        assert [step for step, _ in events] == [1, 2, 3]  # each epoch once, resume included
        assert [v for _, v in events] == pytest.approx([r[key] for r in rows], rel=1e-6)


def test_tensorboard_off_and_bad_mode(tmp_path: Path, train_set, val_set) -> None:
    fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(epochs=1, tensorboard="off"),
        show_progress=False)
    assert not (tmp_path / "tensorboard").exists()
    assert len(_rows(tmp_path / "metrics.jsonl")) == 1
    with pytest.raises(ConfigError, match="tensorboard must be one of"):
        TrainConfig(tensorboard="yes").validate()
    assert scalar_tag("train_samples_per_s") == "train/samples_per_s"
    assert scalar_tag("lr") == "lr"


def test_fit_in_bf16_runs(tmp_path: Path, train_set, val_set) -> None:
    result = fit(_small_resnet(head="kan"), train_set, val_set, tmp_path,
                 _cfg(epochs=1, precision="bf16"), show_progress=False)
    assert result.precision == "bf16"
    assert math.isfinite(result.history[0]["train_loss"])
    assert json.loads((tmp_path / "model.json").read_text())["precision"] == "bf16"


def test_train_config_validation(tmp_path: Path, train_set, val_set) -> None:
    for bad in ({"epochs": 0}, {"patience": 0}, {"lr": 0.0}, {"batch_size": 0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate()
    with pytest.raises(ConfigError, match="precision"):
        fit(_small_resnet(), train_set, val_set, tmp_path, _cfg(precision="fp16"),
            show_progress=False)


def test_predict_proba(train_set) -> None:
    model = _small_resnet().eval()
    probs, labels, loss = predict_proba(model, train_set, batch_size=40)
    assert probs.shape == (96, 2) and labels.shape == (96,)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, train_set.tensors[1].numpy())
    assert loss == pytest.approx(float(-np.log(probs[np.arange(96), labels]).mean()), rel=1e-4)


# ------------------------------------------------------------------------------- precision


def test_choose_precision() -> None:
    assert choose_precision("fp32") == "fp32"
    assert choose_precision("bf16") == "bf16"
    assert choose_precision("auto") in ("fp32", "bf16")
    assert choose_precision() in ("fp32", "bf16")
    assert set(PRECISIONS) == {"auto", "fp32", "bf16"}
    for bad in ("fp16", "BF16", "", "float32"):
        with pytest.raises(ConfigError, match="precision must be one of"):
            choose_precision(bad)


def test_auto_precision_follows_capability_and_calibration() -> None:
    capability = torch.backends.cpu.get_cpu_capability()
    choice = choose_precision("auto")
    if not capability.startswith(("AVX512", "AMX")):
        assert choice == "fp32"
    else:
        assert choice == ("bf16" if calibrate_bf16() >= 1.3 else "fp32")
        assert calibrate_bf16() > 0


def test_cpu_info_and_environment() -> None:
    info = cpu_info()
    assert isinstance(info["cpu_model"], str) and info["cpu_model"].strip()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch_threads"] == torch.get_num_threads() >= 1
    env = environment()
    assert env["torch"] == torch.__version__ and env["cpu_model"] == info["cpu_model"]


# --------------------------------------------------------------------------------- metrics


def _probs_for(pred: list[int], num_classes: int = 2, p: float = 0.8) -> np.ndarray:
    probs = np.full((len(pred), num_classes), (1 - p) / (num_classes - 1))
    probs[np.arange(len(pred)), pred] = p
    return probs


def test_classification_metrics_by_hand() -> None:
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    # Confusion [true][pred]: true 0 -> 4 right, 2 called 1; true 1 -> 1 called 0, 3 right.
    m = classification_metrics(np.array(y_true), _probs_for(y_pred), ["noise", "event"], 1)
    assert m["confusion"] == [[4, 2], [1, 3]]
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    # kappa = (p_o - p_e) / (1 - p_e), p_o = 0.7, p_e = (6 * 5 + 4 * 5) / 100 = 0.5
    assert m["kappa"] == pytest.approx(0.4)
    f1_noise = 2 * 0.8 * (4 / 6) / (0.8 + 4 / 6)
    assert m["macro_f1"] == pytest.approx((f1_noise + m["f1"]) / 2)
    assert m["log_loss"] == pytest.approx((7 * -math.log(0.8) + 3 * -math.log(0.2)) / 10)
    assert m["positive_class"] == "event"
    assert m["per_class"]["noise"] == pytest.approx(
        {"precision": 0.8, "recall": 4 / 6, "f1": f1_noise, "support": 6})
    assert m["per_class"]["event"]["support"] == 4

    macro = classification_metrics(np.array(y_true), _probs_for(y_pred))
    assert macro["positive_class"] is None and macro["class_names"] == ["0", "1"]
    assert macro["precision"] == pytest.approx((0.8 + 0.6) / 2)
    assert macro["recall"] == pytest.approx((4 / 6 + 0.75) / 2)


def test_confusion_layout_is_true_by_predicted() -> None:
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([1, 1, 2, 2]), 3)
    assert cm.tolist() == [[0, 2, 0], [0, 0, 1], [0, 0, 1]]
    m = classification_metrics(np.array([0, 0, 1, 2]), _probs_for([1, 1, 2, 2], 3))
    assert m["confusion"] == cm.tolist()
    assert m["accuracy"] == pytest.approx(0.25)


def test_kappa_edge_cases() -> None:
    assert cohen_kappa(np.array([[5, 0], [0, 5]])) == pytest.approx(1.0)
    assert cohen_kappa(np.zeros((2, 2), dtype=int)) == 0.0
    # Always predicting one class agrees only by chance: kappa 0.
    assert cohen_kappa(np.array([[6, 0], [4, 0]])) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------ recipes


def _plain_cnn(seed: int = 7):
    """No batch norm: with a vanishing learning rate the validation loss stays exactly flat."""
    torch.manual_seed(seed)
    return create_model("cnn1d", batch_norm=False, drop_rate=0.0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains(tmp_path: Path, train_set, val_set, name: str) -> None:
    result = fit(_plain_cnn(), train_set, val_set, tmp_path, _cfg(epochs=1, optimizer=name),
                 show_progress=False)
    assert result.epochs_run == 1 and math.isfinite(result.history[0]["train_loss"])


def test_unknown_optimizer_and_schedule_are_config_errors(tmp_path, train_set, val_set) -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        fit(_plain_cnn(), train_set, val_set, tmp_path / "a", _cfg(optimizer="lion"),
            show_progress=False)
    with pytest.raises(ConfigError, match="schedule"):
        _cfg(schedule="step").validate()


def test_plateau_halves_lr_after_each_flat_epoch(tmp_path: Path, train_set, val_set) -> None:
    cfg = _cfg(epochs=4, lr=1e-12, patience=10, schedule="plateau", plateau_patience=1)
    result = fit(_plain_cnn(), train_set, val_set, tmp_path, cfg, show_progress=False)
    lrs = [r["lr"] for r in result.history]
    assert lrs == pytest.approx([1e-12, 1e-12, 0.5e-12, 0.25e-12])
    assert result.history[-1]["next_lr"] == pytest.approx(0.125e-12)


def test_cosine_schedule_anneals(tmp_path: Path, train_set, val_set) -> None:
    result = fit(_plain_cnn(), train_set, val_set, tmp_path, _cfg(epochs=4, schedule="cosine"),
                 show_progress=False)
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == pytest.approx(3e-3) and lrs == sorted(lrs, reverse=True) and lrs[-1] > 0


def test_dwell_goes_back_to_best_weights_and_lowers_lr(tmp_path: Path, train_set) -> None:
    # Validating on the training signals with flipped labels: the better the model learns,
    # the worse the validation loss, so every epoch after the first must dwell.
    x, y = train_set.tensors
    flipped = TensorDataset(x, 1 - y)
    model = _small_resnet()
    result = fit(model, train_set, flipped, tmp_path, _cfg(epochs=3, lr=1e-2, dwell=True,
                                                           patience=10), show_progress=False)
    rows = result.history
    assert result.best_epoch == 1 and [r["dwell"] for r in rows] == [False, True, True]
    assert [r["lr"] for r in rows] == pytest.approx([1e-2, 1e-2, 5e-3])  # used in the epoch
    assert [r["next_lr"] for r in rows] == pytest.approx([1e-2, 5e-3, 2.5e-3])
    best, _ = load_model(tmp_path)  # after a dwell the weights are the best epoch's again
    for key, value in best.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_kernel_penalty_by_hand() -> None:
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.fill_(3.0)
        model[0].bias.fill_(3.0)
        model[1].weight.copy_(torch.tensor([[1.0, -2.0]]))
        model[1].bias.fill_(0.5)
    # dense only: l1 * (1 + 2 + 0.5) + l2 * (1 + 4 + 0.25)
    assert kernel_penalty(model, 0.1, 0.01).item() == pytest.approx(0.35 + 0.0525)
    # all layers add the conv's weight and bias: l1 * 6 + l2 * 18
    assert kernel_penalty(model, 0.1, 0.01, "all").item() == pytest.approx(0.35 + 0.0525 + 0.6
                                                                          + 0.18)
    assert kernel_penalty(model, 0.0, 0.0).item() == 0.0


def test_presets_fill_the_recipe_and_unknown_preset_is_config_error() -> None:
    from resattn.engine.trainer import preset_config

    arn = preset_config("arn-mednist", epochs=7)
    assert (arn.optimizer, arn.batch_size, arn.schedule, arn.patience, arn.dwell) == (
        "adamax", 40, "plateau", 3, True)
    assert arn.epochs == 7 and arn.validate() is arn
    assert preset_config("resnetkan1d") == TrainConfig()  # Table 1 is the default recipe
    with pytest.raises(ConfigError, match="preset"):
        preset_config("imagenet")
