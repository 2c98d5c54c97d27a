"""Image classification end to end through the CLI: train, evaluate (JSON contract, split
parts), predict (uncertainty, Grad-CAM), the shipped image models, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from test_cli import _assert_one_line_error

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MEDNIST = SHARED / "mednist" / "MedNIST_shared.tar.gz"
FER2013 = SHARED / "fer" / "fer2013_subset_shared.tar.gz"
CONTRACT = {"accuracy", "precision", "recall", "f1", "kappa", "log_loss", "n", "per_class",
            "confusion"}
CLASSES = ("left", "middle", "right")


def _square_image(k: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """Noise with one bright 8x8 square whose column (left / middle / right) is the class."""
    img = rng.integers(0, 60, (size, size)).astype(np.uint8)
    col = [2, 12, 22][k]
    row = int(rng.integers(2, size - 10))
    img[row:row + 8, col:col + 8] = 250
    return Image.fromarray(img, mode="L")


def write_squares(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _square_image(k, rng).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return write_squares(tmp_path_factory.mktemp("img") / "squares")


@pytest.fixture(scope="module")
def trained(squares: Path, tmp_path_factory) -> Path:
    """ARN-CNN (input 32) trained 3 epochs on the squares through the CLI."""
    run = tmp_path_factory.mktemp("run") / "arn"
    proc = run_cli("train", "--model", "arn_cnn", "--data", squares, "--out", run,
                   "--preset", "arn-mednist", "--epochs", "3", "--batch-size", "8",
                   "--fractions", "0.5,0.25,0.25", "--option", "input_size=32", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return run


def test_train_writes_run_with_split_and_test_metrics(trained: Path) -> None:
    split = json.loads((trained / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (18, 9, 9)
    assert not set(split["train"]) & set(split["test"])
    card = json.loads((trained / "model.json").read_text())
    assert card["task"] == "image-classification"
    assert card["preprocessing"]["size"] == [32, 32] and card["preprocessing"]["channels"] == 1
    assert card["class_names"] == list(CLASSES)
    assert card["train_config"]["optimizer"] == "adamax"  # the preset reached the trainer
    rows = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    test = json.loads((trained / "test_metrics.json").read_text())["test"]
    assert test["n"] == 9 and set(test["per_class"]) == set(CLASSES)


def test_evaluate_json_contract_and_test_part_matches_training(trained: Path,
                                                               squares: Path) -> None:
    proc = run_cli("evaluate", "--model", trained, "--data", squares, "--format", "json",
                   "--part", "test", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= CONTRACT
    assert out["n"] == 9 == sum(map(sum, out["confusion"]))
    assert set(out["per_class"]) == set(CLASSES)
    assert all(0 <= out[k] <= 1 for k in ("accuracy", "precision", "recall", "f1"))
    test = json.loads((trained / "test_metrics.json").read_text())["test"]
    if test["n"] == out["n"] and json.loads((trained / "model.json").read_text())[
            "precision"] == "fp32":
        assert out["accuracy"] == pytest.approx(test["accuracy"])
    all_ = json.loads(run_cli("evaluate", "--model", trained, "--data", squares,
                              "--format", "json").stdout)
    assert all_["n"] == 36


def test_evaluate_writes_per_image_predictions(trained: Path, squares: Path,
                                               tmp_path: Path) -> None:
    csv = tmp_path / "pred.csv"
    proc = run_cli("evaluate", "--model", trained, "--data", squares, "--part", "val",
                   "--predictions", csv, "--plots", tmp_path / "plots", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 0 <= out["ece"] <= 1 and Path(out["reliability_plot"]).read_bytes()[:4] == b"\x89PNG"
    lines = csv.read_text().splitlines()
    assert lines[0] == "path,true,predicted,p_left,p_middle,p_right"
    assert len(lines) == 1 + 9


def test_predict_rows_uncertainty_and_cam(trained: Path, squares: Path, tmp_path: Path) -> None:
    files = sorted(squares.glob("*/000.png"))
    proc = run_cli("predict", *files, "--model", trained, "--cam", tmp_path / "cam",
                   "--mc-samples", "8", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [Path(r["file"]).name for r in rows] == ["000.png"] * 3
    for r in rows:
        assert r["class"] in CLASSES
        assert r["probability"] == pytest.approx(max(r["probabilities"].values()))
        assert 0 <= r["entropy"] <= np.log(3) + 1e-6
        assert r["mc_std"] > 0  # ARN-CNN has dropout 0.45: the samples differ
        png = Path(r["cam"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len({r["cam"] for r in rows}) == 3  # same names in 3 folders: no CAM overwritten
    assert len(list((tmp_path / "cam").glob("*.png"))) == 3


def test_predict_mc_std_is_zero_without_dropout(squares: Path, tmp_path: Path) -> None:
    run = tmp_path / "r18"
    proc = run_cli("train", "--model", "resnet18", "--data", squares, "--out", run,
                   "--epochs", "1", "--batch-size", "8", "--fractions", "0.5,0.25,0.25",
                   "--option", "widths=[8,8,16,16]", "--option", "stem_width=8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(run_cli("predict", squares / "left" / "001.png", "--model", run,
                              "--format", "json").stdout)
    assert rows[0]["mc_std"] == 0.0


def test_predict_waveform_file_with_shipped_detector(sample_dir: Path, tmp_path: Path) -> None:
    from resattn.data import WaveformDataset

    ds = WaveformDataset.from_path(sample_dir)
    i = int(np.flatnonzero(ds.labels == 1)[0])
    np.save(tmp_path / "trace.npy", ds.read(i))
    proc = run_cli("predict", tmp_path / "trace.npy", "--model", "stead-detector",
                   "--cam", tmp_path / "cam", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert row["class"] == "earthquake" and row["probability"] > 0.5
    p_pick = ds.metadata["p_arrival_sample"].iat[i]  # the scan found the window with the P wave
    assert row["window_start_sample"] <= p_pick < row["window_start_sample"] + 2000
    assert Path(row["cam"]).exists()
    np.save(tmp_path / "bad.npy", np.zeros((2, 6000)))
    _assert_one_line_error(run_cli("predict", tmp_path / "bad.npy", "--model",
                                   "stead-detector"), "bad.npy", "(3, samples)")


def test_errors_unreadable_image_and_missing_file(trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _assert_one_line_error(run_cli("predict", bad, "--model", trained), "broken.png",
                           "cannot decode image")
    _assert_one_line_error(run_cli("predict", tmp_path / "nope.png", "--model", trained),
                           "nope.png", "no such image file")


def test_error_class_names_not_of_the_model(trained: Path, squares: Path,
                                            tmp_path: Path) -> None:
    other = write_squares(tmp_path / "other", per_class=2)
    (other / "right").rename(other / "zebra")
    _assert_one_line_error(run_cli("evaluate", "--model", trained, "--data", other),
                           "zebra", "expected class names")
    # A subset of the model's classes is fine: labels follow the model's class order.
    (other / "zebra").rename(tmp_path / "gone")
    out = json.loads(run_cli("evaluate", "--model", trained, "--data", other,
                             "--format", "json").stdout)
    assert out["n"] == 4 and set(out["per_class"]) == set(CLASSES)


def test_error_other_data_for_split_part(trained: Path, tmp_path: Path) -> None:
    other = write_squares(tmp_path / "other", per_class=12, seed=5)
    (other / "left" / "000.png").unlink()
    _assert_one_line_error(run_cli("evaluate", "--model", trained, "--data", other,
                                   "--part", "test"), "not the data this model was trained on")


def test_error_wrong_channel_count_and_empty_class(trained: Path, squares: Path,
                                                  tmp_path: Path) -> None:
    _assert_one_line_error(run_cli("train", "--model", "arn_cnn", "--data", squares, "--out",
                                   tmp_path / "rgb", "--init-from", trained, "--channels", "3",
                                   "--epochs", "1"),
                           "3 channel(s)", "the model takes 1")
    empty = write_squares(tmp_path / "e", per_class=2)
    (empty / "void").mkdir()
    _assert_one_line_error(run_cli("train", "--model", "arn_cnn", "--data", empty, "--out",
                                   tmp_path / "x"), "void", "holds no images")


def test_error_waveform_model_on_images(squares: Path) -> None:
    _assert_one_line_error(run_cli("evaluate", "--model", "stead-detector", "--data", squares),
                           "waveform")


def test_shipped_mednist_model_on_its_unseen_sample(tmp_path: Path) -> None:
    from resattn.demo import sample_path

    data = sample_path("mednist") / "MedNIST_sample.tar.gz"
    out = json.loads(run_cli("evaluate", "--model", "mednist-arn", "--data", data,
                             "--format", "json").stdout)
    assert out["n"] == 60 and out["accuracy"] >= 59 / 60
    files = [tmp_path / "hand.png"]
    from resattn.data import ImageDataset

    ds = ImageDataset.from_path(data)
    Image.fromarray(ds.read(int(np.flatnonzero(ds.labels == 4)[0]))[:, :, 0]).save(files[0])
    row = json.loads(run_cli("predict", *files, "--model", "mednist-arn", "--format",
                             "json").stdout)[0]
    assert row["class"] == "Hand"


@pytest.mark.slow
@pytest.mark.skipif(not MEDNIST.exists(), reason="shared MedNIST not beside the repository")
def test_shipped_mednist_model_on_its_test_part() -> None:
    out = json.loads(run_cli("evaluate", "--model", "mednist-arn", "--data", MEDNIST,
                             "--part", "test", "--format", "json").stdout)
    assert out["n"] == 2214 and out["accuracy"] >= 0.999


@pytest.mark.slow
@pytest.mark.skipif(not FER2013.exists(), reason="shared FER2013 subset not beside the repo")
def test_shipped_fer_model_on_its_test_part() -> None:
    out = json.loads(run_cli("evaluate", "--model", "fer-resnet18", "--data", FER2013,
                             "--part", "test", "--format", "json").stdout)
    assert out["n"] > 500 and out["accuracy"] > 0.4  # 7 classes: chance is 0.15
