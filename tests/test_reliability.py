"""Issue 14 groundwork: ``auto`` precision decided once per machine, the last-resort handler
for bugs, ``resattn doctor``, and valid inputs that used to crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli, write_stead
from resattn.data import WaveformDataset
from resattn.engine import precision
from resattn.engine.checkpoint import load_model, save_model
from resattn.engine.trainer import TrainConfig, fit
from resattn.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from resattn.models import create_model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("RESATTN_CACHE", str(tmp_path))
    precision.auto_decision.cache_clear()
    yield tmp_path
    precision.auto_decision.cache_clear()


def test_auto_precision_is_decided_once_and_reused(cache: Path, monkeypatch) -> None:
    first = precision.auto_decision()
    record = json.loads((cache / "precision.json").read_text())
    assert record["precision"] == first["precision"] and record["reason"]
    assert record["machine"] == precision.machine_key()
    # A later process reads the record instead of timing again: force the other answer in
    # the record and the next decision follows it (no re-timing can flip it).
    other = "fp32" if first["precision"] == "bf16" else "bf16"
    (cache / "precision.json").write_text(json.dumps({**record, "precision": other}))
    precision.auto_decision.cache_clear()
    monkeypatch.setattr(precision, "_decide", lambda: pytest.fail("re-timed"))
    assert precision.choose_precision("auto") == other


def test_a_foreign_or_broken_record_is_measured_again(cache: Path) -> None:
    (cache / "precision.json").write_text("{not json")
    assert precision.auto_decision()["precision"] in ("fp32", "bf16")
    assert json.loads((cache / "precision.json").read_text())["machine"] == \
        precision.machine_key()
    precision.auto_decision.cache_clear()
    (cache / "precision.json").write_text(json.dumps({"machine": "another CPU",
                                                      "precision": "bf16"}))
    assert precision.auto_decision()["machine"] == precision.machine_key()


def test_unexpected_exception_is_one_line_and_a_log(tmp_path: Path) -> None:
    code = ("import sys\nfrom resattn import cli\n"
            "@cli.app.command('boom')\ndef boom() -> None:\n    raise RuntimeError('kaboom')\n"
            "sys.argv = ['resattn', 'boom']\ncli.main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "RESATTN_CACHE": str(tmp_path)}, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "internal error in `resattn boom`" in proc.stderr and "kaboom" in proc.stderr
    logs = list((tmp_path / "logs").glob("resattn-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in proc.stderr.replace("\n", "")
    assert "Traceback" in logs[0].read_text() and "kaboom" in logs[0].read_text()


def test_doctor_names_features_precision_and_extras(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "resattn", "doctor"], capture_output=True,
                          text=True, env={**os.environ, "RESATTN_CACHE": str(tmp_path)},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["cpu"]["features"]) >= {"AVX-512", "AVX-512 bf16", "AVX-512 VNNI",
                                              "AMX bf16"}
    assert report["precision_auto"]["precision"] in ("fp32", "bf16")
    assert report["precision_auto"]["reason"]
    assert report["precision_auto"]["recorded"] == str(tmp_path / "precision.json")
    assert report["extras"]["optimize"]["installed"]  # the test extras include it
    assert report["versions"]["torch"].startswith("2.")


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    from resattn.doctor import cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    flags = cpu_flags(info)
    assert flags["AVX2"] and flags["AVX-512"] and flags["AVX-512 VNNI"]
    assert not flags["AMX bf16"] and not flags["AVX-512 bf16"]
    assert not any(cpu_flags(tmp_path / "missing").values())


def test_models_show_decoupled_densenet_with_defaults() -> None:
    proc = run_cli("models", "show", "decoupled_densenet1d", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["input_shape"][1] == 95 and len(summary["input_shape"]) == 3


def _traces(n: int, length: int = 2000) -> dict:
    rng = np.random.default_rng(0)
    return {f"t{i}": rng.standard_normal((length, 3)).astype(np.float32) for i in range(n)}


def test_csv_without_its_hdf5_is_an_error_not_a_skipped_class(tmp_path: Path) -> None:
    eq = _traces(6)
    write_stead(tmp_path, eq, dict.fromkeys(eq, "earthquake_local"), stem="eq")
    noise = {f"n{k}": v for k, v in _traces(6).items()}
    write_stead(tmp_path, noise, dict.fromkeys(noise, "noise"), stem="noise")
    (tmp_path / "noise.hdf5").unlink()
    with pytest.raises(DataError, match=r"noise\.csv lists traces .* no HDF5 partner"):
        WaveformDataset.from_path(tmp_path)
    (tmp_path / "noise.hdf5").mkdir()  # a folder named like the partner
    with pytest.raises(DataError, match="no HDF5 partner"):
        WaveformDataset.from_path(tmp_path)


def test_other_csvs_beside_the_data_are_not_metadata(tmp_path: Path) -> None:
    eq = _traces(4)
    write_stead(tmp_path, eq, dict.fromkeys(eq, "earthquake_local"), stem="eq")
    (tmp_path / "label_review.csv").write_text("trace_name,verdict\nt0,event_in_window\n")
    assert len(WaveformDataset.from_path(tmp_path)) == 4


def test_header_only_csv_is_an_error(tmp_path: Path) -> None:
    eq = _traces(4)
    write_stead(tmp_path, eq, dict.fromkeys(eq, "earthquake_local"), stem="eq")
    write_stead(tmp_path, {}, {}, stem="noise")
    (tmp_path / "noise.csv").write_text("trace_name,trace_category,p_arrival_sample\n")
    with pytest.raises(DataError, match=r"noise\.csv holds a header but no trace rows"):
        WaveformDataset.from_path(tmp_path)


def test_training_on_one_class_is_refused(tmp_path: Path) -> None:
    eq = _traces(12)
    write_stead(tmp_path / "data", eq, dict.fromkeys(eq, "earthquake_local"), stem="eq")
    proc = run_cli("train", "--model", "resnetkan1d", "--data", tmp_path / "data", "--out",
                   tmp_path / "run", "--epochs", "1", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "holds only the class(es) ['earthquake']" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_fifo_named_like_metadata_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "eq.csv")
    proc = run_cli("evaluate", "--model", "stead-detector", "--data", tmp_path / "eq.csv",
                   timeout=120)
    assert proc.returncode == 2 and "eq.csv" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(DataError, match="not a regular file"):
        WaveformDataset.from_path(tmp_path / "eq.csv")
    eq = _traces(4)
    write_stead(tmp_path / "d", eq, dict.fromkeys(eq, "earthquake_local"), stem="eq")
    os.mkfifo(tmp_path / "d" / "more.csv")
    assert len(WaveformDataset.from_path(tmp_path / "d")) == 4


def _tiny_sets(n: int = 32):
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 256, generator=g)
    y = torch.arange(n) % 2
    return TensorDataset(x, y), TensorDataset(x[:8], y[:8])


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    train_set, val_set = _tiny_sets()
    model = create_model("cnn1d", in_chans=3, num_classes=2)
    calls = {"n": 0}

    def loss_fn(logits, x, y):  # finite for the first epoch (4 batches), then NaN
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(logits, y)
        return loss if calls["n"] <= 4 else loss * float("nan")

    cfg = TrainConfig(epochs=3, batch_size=8, precision="fp32", lr=1e-3)
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 2.*epoch 1 is kept.*--lr"):
        fit(model, train_set, val_set, tmp_path / "run", cfg, loss_fn=loss_fn,
            show_progress=False)
    state = json.loads((tmp_path / "run" / "last.json").read_text())
    assert state["trainer"]["epoch"] == 1
    net, _ = load_model(tmp_path / "run")  # the kept weights are finite and load
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_nan_weights_are_refused_on_load(tmp_path: Path) -> None:
    model = create_model("cnn1d", in_chans=3, num_classes=2)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_model(tmp_path / "model", model)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        load_model(tmp_path / "model")


@pytest.mark.parametrize("field, value", [("lr", float("inf")), ("lr", 0.0),
                                          ("weight_decay", float("nan")), ("batch_size", 0),
                                          ("seed", -1), ("l1", -1.0), ("grad_clip", 0.0)])
def test_recipe_values_out_of_range(field: str, value) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value}).validate()


def _run_without(module: str, *args: str) -> subprocess.CompletedProcess:
    """The real command line in a process where ``module`` cannot be imported."""
    code = (f"import sys\nsys.modules[{module!r}] = None\nfrom resattn import cli\n"
            f"sys.argv = ['resattn', *{list(map(str, args))!r}]\ncli.main()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("module, args, what", [
    ("optuna", ("tune", "configs/seed004.yaml"), "resattn tune"),
    ("torch_pruning", ("compress", "prune", "--model", "stead-detector", "--out", "x",
                       "--data", "."), "resattn compress prune"),
    ("onnxruntime", ("compress", "quantize", "--model", "stead-detector", "--out", "x",
                     "--data", "."), "resattn compress"),
])
def test_missing_extra_names_the_install(module: str, args: tuple, what: str) -> None:
    proc = _run_without(module, *args)
    assert proc.returncode == 2, proc.stderr
    assert f"{what} needs the optional package(s) ['{module}']" in proc.stderr
    assert "pip install 'resattn[optimize]'" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("train", "--model", "resnetkan1d", "--data", "{sample}", "--out", "{file}"),
     "--out {file}: expected a folder, but it is a file"),
    (("train", "--model", "resnetkan1d", "--data", "{sample}", "--out", "{file}/run"),
     "--out {file}/run: cannot create a folder under the file {file}"),
    (("evaluate", "--model", "stead-detector", "--data", "{sample}", "--predictions", "{tmp}"),
     "--predictions {tmp}: expected a regular file to write, but it is a folder"),
    (("evaluate", "--model", "stead-detector", "--data", "{sample}", "--predictions",
      "/dev/null"), "--predictions /dev/null: expected a regular file"),
    (("evaluate", "--model", "stead-detector", "--data", "{sample}", "--plots", "{file}"),
     "--plots {file}: expected a folder"),
    (("compress", "quantize", "--model", "stead-detector", "--data", "{sample}", "--out",
      "/proc/resattn"), "--out /proc/resattn: cannot write in /proc"),
    (("forecast", "train", "--catalog", "{sample}", "--out", "{file}"),
     "--out {file}: expected a folder"),
])
def test_unwritable_outputs_fail_before_any_work(tmp_path: Path, sample_dir: Path, args,
                                                 message: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    fill = {"sample": sample_dir, "file": file, "tmp": tmp_path}
    proc = run_cli(*(a.format(**fill) for a in args))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert message.format(**fill) in proc.stderr.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written


MEDNIST_SAMPLE = Path(__file__).resolve().parents[1] / "src/resattn/sample/mednist/" \
    "MedNIST_sample.tar.gz"


@pytest.mark.parametrize("model, data, options, message", [
    ("arn_cnn", "seismic", (), "needs a 1-D (signals) model, but arn_cnn is 2-D"),
    ("resnet18_1d", "mednist", (), "needs a 2-D (images) model, but resnet18_1d is 1-D"),
    ("resnetkan1d", "seismic", ("--option", "num_classes=7"),
     "the data has 2 classes, but the model is built with num_classes=7"),
    ("resnetkan1d", "seismic", ("--option", "in_chans=1"),
     "the data has 3 channels, but the model is built with in_chans=1"),
])
def test_model_that_cannot_take_the_data(tmp_path: Path, sample_dir: Path, model: str,
                                         data: str, options: tuple, message: str) -> None:
    path = sample_dir if data == "seismic" else MEDNIST_SAMPLE
    proc = run_cli("train", "--model", model, "--data", path, "--out", tmp_path / "run",
                   "--epochs", "1", "--quiet", *options)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.replace("\n", "") and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_resume_removes_what_a_killed_write_left(tmp_path: Path) -> None:
    train_set, val_set = _tiny_sets()
    cfg = TrainConfig(epochs=1, batch_size=8, precision="fp32")
    run = tmp_path / "run"
    fit(create_model("cnn1d", in_chans=3, num_classes=2), train_set, val_set, run, cfg,
        show_progress=False)
    stale, live = run / ".last.safetensors.abc123.tmp", run / ".model.json.def456.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fit(create_model("cnn1d", in_chans=3, num_classes=2), train_set, val_set, run,
        TrainConfig(epochs=2, batch_size=8, precision="fp32"), resume=True,
        show_progress=False)
    assert not stale.exists() and live.exists()


def test_sigterm_ends_a_command_like_ctrl_c(tmp_path: Path, sample_dir: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "resattn", "train", "--model", "resnetkan1d",
                             "--data", str(sample_dir), "--out", str(run), "--epochs", "200",
                             "--patience", "200", "--precision", "fp32", "--quiet", "--option",
                             "widths=[8,8,8,8]"], stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 300
    while not (run / "last.json").exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(15)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command" in err and "Traceback" not in err
    assert not list(run.glob(".*.tmp"))


def test_complex_samples_are_refused_not_cast(tmp_path: Path) -> None:
    traces = {"c0": (_traces(1)["t0"] + 1j).astype(np.complex64)}
    write_stead(tmp_path, traces, {"c0": "noise"}, stem="noise")
    with pytest.raises(DataError, match="holds complex64 samples; expected real numbers"):
        WaveformDataset.from_path(tmp_path).read(0)


@pytest.mark.parametrize("damage, message", [
    (lambda meta: [meta], "expected a JSON object"),
    (lambda meta: None, "expected a JSON object"),
    (lambda meta: "model", "expected a JSON object"),
    (lambda meta: {**meta, "config": "resnetkan1d"}, "field 'config' must be an object"),
    (lambda meta: {**meta, "contract": None}, "field 'contract' must be an object"),
    (lambda meta: {**meta, "data": [1]}, "field 'data' must be an object"),
])
def test_checkpoint_json_of_the_wrong_structure(tmp_path: Path, damage, message: str,
                                                sample_dir: Path) -> None:
    model = create_model("cnn1d", in_chans=3, num_classes=2)
    save_model(tmp_path / "model", model, {"task": "waveform-classification"})
    card = tmp_path / "model.json"
    card.write_text(json.dumps(damage(json.loads(card.read_text()))))
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)
    proc = run_cli("evaluate", "--model", tmp_path, "--data", sample_dir)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
