"""The task registry, the typed options and the one-pipeline contract, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from resattn.errors import ConfigError, DataError
from resattn.options import from_mapping
from resattn.pretrained import load_card
from resattn.tasks import (
    IMAGES,
    WAVEFORMS,
    ImageOptions,
    WaveformOptions,
    get_task,
    task_for_data,
    task_names,
    task_of,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "resattn"
TASK_WORDS = ("waveform", "image", "forecast", "waveform-classification",
              "image-classification", "weekly-forecast")
# A comparison of anything with a task word, or of a checkpoint's task with anything.
WORDS = "|".join(TASK_WORDS)
BRANCH = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({WORDS})["']|["']({WORDS})["']\s*(==|!=)|"""
                    r"""get\(\s*["']task["']\s*\)\s*(==|!=)|\.task\s*(==|!=)""")


def test_no_module_outside_the_registry_branches_on_a_task_name() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "tasks":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCH.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == []


def test_the_detector_of_branches_is_not_blind() -> None:
    for line in ('if meta.get("task") == "image-classification":', 'if exp.task == "image":',
                 'if task in ("waveform", "image"):'):
        assert BRANCH.search(line), line


def test_registry_names_aliases_and_checkpoints() -> None:
    assert task_names() == ["image-classification", "waveform-classification",
                            "weekly-forecast"]
    assert get_task("waveform") is get_task("waveform-classification") is WAVEFORMS
    assert get_task("image") is IMAGES
    assert get_task("forecast").name == "weekly-forecast"
    with pytest.raises(ConfigError, match="unknown task 'audio'"):
        get_task("audio")
    for name, task in (("stead-detector", WAVEFORMS), ("mednist-arn", IMAGES),
                       ("fer-resnet18", IMAGES)):
        assert task_of(load_card(name)) is task


def test_task_chosen_by_data(sample_dir: Path, tmp_path: Path) -> None:
    assert task_for_data(sample_dir) is WAVEFORMS
    assert task_for_data(sample_dir / "sample.csv") is WAVEFORMS
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "x.png")
    assert task_for_data(tmp_path) is IMAGES
    with pytest.raises(DataError, match="no such file"):
        task_for_data(tmp_path / "missing")


def test_typed_options_name_the_key() -> None:
    opts = from_mapping(WaveformOptions, {"window": 2000, "bandpass": [1, 20]}, "x.yaml: waveform")
    assert opts.window == 2000 and opts.bandpass == (1.0, 20.0)
    with pytest.raises(ConfigError, match=r"x.yaml: waveform.windw: unknown key \(did you mean "
                                          r"'window'\?\)"):
        from_mapping(WaveformOptions, {"windw": 2000}, "x.yaml: waveform")
    with pytest.raises(ConfigError, match=r"x.yaml: image.size: expected"):
        from_mapping(ImageOptions, {"size": "big"}, "x.yaml: image")
    with pytest.raises(ConfigError, match="split must be one of"):
        ImageOptions(split="subjects")


def _jaffe_folder(root: Path) -> Path:
    """Seven gray faces named as JAFFE names them (SUBJ.EXPRn.id.tiff): synthetic pixels."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for i, code in enumerate(("AN", "DI", "FE", "HA", "NE", "SA", "SU")):
        for s, subject in enumerate(("KL", "KM")):
            pixels = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"{subject}.{code}1.{10 * i + s}.tiff")
    return root


def test_fer_model_evaluates_jaffe_named_files(tmp_path: Path) -> None:
    """fer-resnet18 knows angry/happy/sad; JAFFE file names say anger/happiness/sadness."""
    data = _jaffe_folder(tmp_path / "jaffe")
    proc = run_cli("evaluate", "--model", "fer-resnet18", "--data", data, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n"] == 14
    assert list(out["per_class"]) == load_card("fer-resnet18")["class_names"]
    assert all(row["support"] == 2 for row in out["per_class"].values())


def test_flag_of_another_task_is_an_error(sample_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("train", "--model", "resnetkan1d", "--data", sample_dir, "--out",
                   tmp_path / "run", "--size", "32", "--quiet")
    assert proc.returncode == 2
    assert "--size applies to image-classification data only" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_checkpoints_store_the_contract(sample_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli("train", "--model", "resnetkan1d", "--data", sample_dir, "--out", run,
                   "--epochs", "1", "--window", "1000", "--bandpass", "1,20", "--batch-size",
                   "16", "--option", "widths=[8,8,8,8]", "--quiet")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["contract"] == {**meta["contract"], "kind": "waveform", "window_samples": 1000,
                                "bandpass_hz": [1.0, 20.0], "components": "ENZ"}
    assert meta["preprocessing"]["window_samples"] == 1000  # the prose record stays
