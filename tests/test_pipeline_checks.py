"""The one pipeline refuses what it would otherwise do silently wrong: rewriting an existing
run's split, resuming on a different split, ignoring --model or --option beside --init-from,
and options out of range; evaluation scores the split part asked for."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from resattn.engine.trainer import TrainConfig
from resattn.errors import ConfigError, DataError
from resattn.options import parse_text
from resattn.pretrained import load_card
from resattn.tasks import WAVEFORMS, ImageOptions, TrainSpec, WaveformOptions

SMALL = {"widths": [8, 8, 8, 8]}


def spec(sample_dir: Path, out: Path, **kw) -> TrainSpec:
    base = dict(model="resnetkan1d", data=sample_dir, out=out,
                recipe=TrainConfig(epochs=1, batch_size=16),
                options=WaveformOptions(window=1000), model_options=dict(SMALL),
                show_progress=False)
    return TrainSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(sample_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    WAVEFORMS.train(spec(sample_dir, out))
    return out


def test_existing_run_is_refused_before_its_split_is_touched(sample_dir: Path,
                                                             trained: Path) -> None:
    before = (trained / "split.json").read_bytes()
    other = spec(sample_dir, trained, options=WaveformOptions(window=1000, split_seed=7))
    with pytest.raises(ConfigError, match="already holds a training run"):
        WAVEFORMS.train(other)
    assert (trained / "split.json").read_bytes() == before


def test_resume_on_another_split_is_refused(sample_dir: Path, trained: Path) -> None:
    other = spec(sample_dir, trained, resume=True,
                 options=WaveformOptions(window=1000, split_seed=7))
    with pytest.raises(ConfigError, match="split differently"):
        WAVEFORMS.train(other)


def test_bad_bandpass_fails_before_anything_is_written(sample_dir: Path, tmp_path: Path) -> None:
    bad = spec(sample_dir, tmp_path / "run", options=WaveformOptions(window=1000,
                                                                     bandpass=(1.0, 80.0)))
    with pytest.raises(ConfigError, match="bandpass_hz"):
        WAVEFORMS.train(bad)
    assert not (tmp_path / "run").exists()


def test_init_from_fixes_the_architecture(sample_dir: Path, trained: Path,
                                          tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds a resnetkan1d model, but --model is cnn1d"):
        WAVEFORMS.train(spec(sample_dir, tmp_path / "a", model="cnn1d", init_from=str(trained),
                             model_options={}))
    with pytest.raises(ConfigError, match="model options come from the weights"):
        WAVEFORMS.train(spec(sample_dir, tmp_path / "b", init_from=str(trained),
                             model_options={"widths": [16, 16, 16, 16]}))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_waveform_evaluate_scores_the_part_asked_for(sample_dir: Path, trained: Path) -> None:
    split = json.loads((trained / "split.json").read_text())
    test = WAVEFORMS.evaluate(trained, sample_dir, part="test", precision="fp32")
    assert sorted(test["trace_names"]) == sorted(split["test"])
    every = WAVEFORMS.evaluate(trained, sample_dir, precision="fp32")
    assert every["n"] > test["n"]
    meta = json.loads((trained / "model.json").read_text())
    assert meta["data"]["split"]["seed"] == 0
    assert WAVEFORMS.options_like(meta).split_seed == 0
    with pytest.raises(ConfigError, match="part must be one of"):
        WAVEFORMS.evaluate(trained, sample_dir, part="holdout")


def test_part_of_other_data_is_refused(trained: Path, shared_seismic: Path) -> None:
    with pytest.raises(DataError, match="is not the data this model was trained on"):
        WAVEFORMS.evaluate(trained, shared_seismic, part="test", precision="fp32")


def test_shipped_detector_records_no_split(sample_dir: Path) -> None:
    card = load_card("stead-detector")
    assert not WAVEFORMS.records_split(card)
    with pytest.raises(ConfigError, match="records no training split"):
        WAVEFORMS.eval_items(card, sample_dir, "test")


@pytest.mark.parametrize("kw, message", [
    ({"window": 0}, "window must be a positive"),
    ({"mix_noise": 2.0}, "mix_noise is a probability"),
    ({"split_by": ("",)}, "split_by must name columns"),
])
def test_waveform_options_out_of_range(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WaveformOptions(**kw)


@pytest.mark.parametrize("kw, message", [
    ({"size": -10}, "size must be a positive"),
    ({"channels": 2}, "channels must be 1"),
])
def test_image_options_out_of_range(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ImageOptions(**kw)


def test_augment_none_is_the_policy_none() -> None:
    assert parse_text("none", str | None, "--augment") == "none"
    assert parse_text("none", tuple[float, float] | None, "--bandpass") is None
    opts = replace(ImageOptions(), augment="none")
    assert opts.augment == "none"


def test_split_file_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_text(str(path), dict | None, "--split")


def test_fine_tuning_never_writes_over_its_source(sample_dir: Path, trained: Path) -> None:
    before = (trained / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="would be overwritten"):
        WAVEFORMS.train(spec(sample_dir, trained, init_from=str(trained), model_options={},
                             resume=True))
    assert (trained / "model.safetensors").read_bytes() == before


def test_prune_of_a_plain_mlp_head_model(sample_dir: Path, tmp_path: Path) -> None:
    """cnn1d's MLP head is traced and pruned with the body (a stand-in head lost its input
    width); the pruned, fine-tuned model runs and has fewer operations."""
    from resattn.optimize.prune import prune

    run = tmp_path / "cnn"
    WAVEFORMS.train(spec(sample_dir, run, model="cnn1d", model_options={}))
    result = prune(run, sample_dir, tmp_path / "pruned", target=0.5, steps=1,
                   finetune_epochs=1)
    assert result["steps"][-1]["macs"] < 0.7 * result["base_macs"]
