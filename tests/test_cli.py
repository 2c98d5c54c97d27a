"""The command line end to end: JSON contracts, training + resume, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, write_stead

EVAL_KEYS = {"accuracy", "precision", "recall", "f1", "n", "confusion"}


def _assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def test_evaluate_shipped_detector_json_contract(sample_dir: Path) -> None:
    proc = run_cli("evaluate", "--model", "stead-detector", "--data", sample_dir,
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert set(out) >= EVAL_KEYS
    assert out["n"] == sum(map(sum, out["confusion"])) > 0
    assert 0.0 <= out["accuracy"] <= 1.0
    assert out["accuracy"] >= 0.9  # its own held-out test split (the card states the figures)


def test_models_list_and_show_json() -> None:
    listed = json.loads(run_cli("models", "list", "--format", "json").stdout)
    names = {m["name"] for m in listed["models"]}
    assert {"resnetkan1d", "resnet18_1d", "cnn1d", "alexnet1d", "vgg11_1d",
            "transformer1d"} <= names
    assert {"name": "stead-detector", "model": "resnetkan1d"} in listed["pretrained"]
    shown = json.loads(run_cli("models", "show", "resnetkan1d", "--format", "json").stdout)
    assert shown["params"] == shown["trainable_params"] == 4_229_040
    assert shown["input_shape"] == [1, 3, 5000] and shown["output_shape"] == [1, 2]
    assert shown["macs"] > 1e8
    arn = json.loads(run_cli("models", "show", "arn_cnn", "--format", "json").stdout)
    assert arn["input_shape"] == [1, 1, 64, 64]  # the model's own input size, not 224
    assert arn["trainable_params"] == 1_623_875 and arn["output_shape"] == [1, 6]


def test_unknown_model_suggests_close_names() -> None:
    _assert_one_line_error(run_cli("models", "show", "resnetkan"), "resnetkan1d")


def test_train_lowers_loss_then_resume_and_evaluate(sample_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    small = ["--option", "widths=[16,32,64,128]", "--option", "stem_width=16"]
    proc = run_cli("train", "--model", "resnet18_1d", "--data", sample_dir, "--out", run,
                   "--epochs", "4", "--window", "2000", "--lr", "3e-3", "--batch-size", "8",
                   "--quiet", *small)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    summary = json.loads((run / "test_metrics.json").read_text())
    assert summary["window"] == 2000 and summary["test"]["n"] > 0

    # Rerun without --resume refuses to overwrite; with --resume continues to epoch 6.
    _assert_one_line_error(run_cli("train", "--model", "resnet18_1d", "--data", sample_dir,
                                   "--out", run, "--epochs", "6", *small), "--resume")
    proc = run_cli("train", "--model", "resnet18_1d", "--data", sample_dir, "--out", run,
                   "--epochs", "6", "--window", "2000", "--lr", "3e-3", "--batch-size", "8",
                   "--quiet", "--resume", *small)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]

    # A saved split can be reused exactly.
    again = tmp_path / "again"
    proc = run_cli("train", "--model", "resnet18_1d", "--data", sample_dir, "--out", again,
                   "--epochs", "2", "--window", "2000", "--quiet", "--split", run / "split.json",
                   "--preset", "arn-mednist", "--lr", "5e-4", *small)
    assert proc.returncode == 0, proc.stderr
    recipe = json.loads((again / "model.json").read_text())["train_config"]
    assert recipe["optimizer"] == "adamax" and recipe["batch_size"] == 40 and recipe["dwell"]
    assert recipe["lr"] == 5e-4 and recipe["epochs"] == 2  # typed options win over the preset
    first, second = (json.loads((d / "split.json").read_text()) for d in (run, again))
    assert {k: sorted(first[k]) for k in ("train", "val", "test")} == {
        k: sorted(second[k]) for k in ("train", "val", "test")}

    out = json.loads(run_cli("evaluate", "--model", run, "--data", sample_dir,
                             "--format", "json").stdout)
    split = json.loads((run / "split.json").read_text())
    n_traces = sum(len(split[k]) for k in ("train", "val", "test"))
    assert out["window"] == 2000 and out["n"] == n_traces  # every trace scored once


def _good_traces() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    traces = {f"t{i}": rng.standard_normal((3000, 3)).astype("float32") for i in range(4)}
    cats = {"t0": "earthquake_local", "t1": "earthquake_local", "t2": "noise", "t3": "noise"}
    return traces, cats


def test_error_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", missing),
                           str(missing))


def test_error_csv_without_trace_name(tmp_path: Path) -> None:
    traces, cats = _good_traces()
    folder = write_stead(tmp_path / "d", traces, cats)
    csv = folder / "part.csv"
    text = csv.read_text().replace("trace_name", "name", 1)
    csv.write_text(text)
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", folder),
                           "part.csv", "trace_name")


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((3000, 2), "float32"), "(n_samples, 3)"),
    (np.full((3000, 3), np.nan, "float32"), "NaN"),
])
def test_error_bad_trace(tmp_path: Path, bad: np.ndarray, needle: str) -> None:
    traces, cats = _good_traces()
    traces["t1"] = bad
    folder = write_stead(tmp_path / "d", traces, cats)
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", folder),
                           "t1", needle)


def test_error_corrupt_hdf5(tmp_path: Path) -> None:
    traces, cats = _good_traces()
    folder = write_stead(tmp_path / "d", traces, cats)
    (folder / "part.hdf5").write_bytes(np.random.default_rng(1).bytes(4096))
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", folder),
                           "part.hdf5")


def test_error_trace_shorter_than_window(tmp_path: Path) -> None:
    traces, cats = _good_traces()
    traces["t2"] = traces["t2"][:1000]
    folder = write_stead(tmp_path / "d", traces, cats)
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", folder),
                           "t2", "pad")


def test_error_mismatched_checkpoint(tmp_path: Path, sample_dir: Path) -> None:
    from resattn.engine.checkpoint import save_model
    from resattn.models import create_model

    save_model(tmp_path / "model", create_model("resnet18_1d"))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["config"]["attn"] = "dual"  # config no longer matches the stored weights
    (tmp_path / "model.json").write_text(json.dumps(meta))
    _assert_one_line_error(run_cli("evaluate", "--model", tmp_path, "--data", sample_dir),
                           "model.safetensors")


@pytest.mark.slow
def test_demo_writes_report(tmp_path: Path) -> None:
    proc = run_cli("demo", "--out", tmp_path / "demo", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "stead-detector on the shipped sample (ours, measured now)" in report
    assert "theirs" in report and (tmp_path / "demo" / "examples.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "finetune" / "model.safetensors").exists()
