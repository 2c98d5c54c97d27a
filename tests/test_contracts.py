"""Typed input contracts: validation, JSON, legacy checkpoints and bit-identical transforms."""

from __future__ import annotations

import io
import json
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from resattn.contracts import (
    ImageContract,
    WaveformContract,
    contract_from_json,
    contract_from_meta,
)
from resattn.data import ImageDataset, WaveformDataset, WaveformWindows
from resattn.demo import sample_path
from resattn.errors import CheckpointError, ConfigError, DataError
from resattn.pretrained import list_pretrained, pretrained_card

MEDNIST = sample_path("mednist") / "MedNIST_sample.tar.gz"
BAND = (1.0, 20.0)


@pytest.fixture(scope="module")
def seismic() -> WaveformDataset:
    return WaveformDataset.from_path(sample_path())


@pytest.fixture(scope="module")
def raw_images() -> dict[str, Image.Image]:
    """The MedNIST sample's images as decoded from the archive, by member name."""
    out = {}
    with tarfile.open(MEDNIST) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".jpeg"):
                img = Image.open(io.BytesIO(tar.extractfile(member).read()))
                img.load()
                out[member.name] = img
    return out


# ---------------------------------------------------------------------------- waveforms
@pytest.mark.parametrize("band", [None, BAND])
def test_waveform_transform_is_bit_identical_to_eval_windows(seismic, band) -> None:
    contract = WaveformContract(window_samples=2000, bandpass_hz=band)
    windows = WaveformWindows(seismic, 2000, train=False, band=band)
    p_picks = seismic.metadata["p_arrival_sample"].to_numpy(dtype=float)
    for i in range(len(seismic)):
        x = seismic.read(i)
        start = contract.eval_start(x.shape[-1], p_picks[i])
        got = contract.transform(x, start, where=f"trace {i}")
        assert got.dtype == torch.float32 and got.shape == (3, 2000)
        assert torch.equal(got, windows[i][0]), i
        if np.isnan(p_picks[i]):  # noise: the default start is the centred window
            assert torch.equal(contract.transform(x), windows[i][0])


def test_band_pass_changes_the_input(seismic) -> None:
    x = seismic.read(0)
    plain = WaveformContract(window_samples=2000).transform(x)
    filtered = WaveformContract(window_samples=2000, bandpass_hz=BAND).transform(x)
    assert not torch.allclose(plain, filtered, atol=1e-2)


def test_windows_half_overlap_and_end_flush(seismic) -> None:
    contract = WaveformContract(window_samples=2000, bandpass_hz=BAND)
    x = seismic.read(0)[:, :5500]
    got, starts = contract.windows(x)
    assert starts.tolist() == [0, 1000, 2000, 3000, 3500]  # the last one flush with the end
    assert got.shape == (5, 3, 2000)
    for k, s in enumerate(starts):
        assert torch.equal(got[k], contract.transform(x, int(s)))
    assert contract.windows(x, stride=2500)[1].tolist() == [0, 2500, 3500]


def test_waveform_input_errors_name_the_source(seismic) -> None:
    contract = WaveformContract(window_samples=2000)
    x = seismic.read(0)
    bad = x.copy()
    bad[1, 10] = np.nan
    cases = [(x[:2], "expected (3, samples)"), (bad, "NaN"), (x[:, :1500], "at least 2000"),
             (x.T, "expected (3, samples)")]
    for arr, expected in cases:
        with pytest.raises(DataError, match=f"rec.mseed: .*{re.escape(expected)}"):
            contract.transform(arr, where="rec.mseed")
    with pytest.raises(DataError, match=r"rec.mseed: .*start in \[0, 4000\]"):
        contract.transform(x, 4500, where="rec.mseed")
    with pytest.raises(DataError, match=r"rec.mseed"):
        contract.windows(x[:, :100], where="rec.mseed")
    with pytest.raises(ConfigError, match=r"stride"):
        contract.windows(x, stride=0)


@pytest.mark.parametrize(("field", "value"), [
    ("window_samples", 0), ("window_samples", 2.5), ("window_samples", float("inf")),
    ("sampling_rate", -1.0), ("sampling_rate", float("nan")),
    ("components", "EEZ"), ("components", ""), ("bandpass_hz", (20.0, 1.0)),
    ("bandpass_hz", (1.0, 60.0)), ("bandpass_hz", "1-20"), ("normalisation", "minmax"),
    ("p_position", 1.5), ("class_names", ("noise",)), ("class_names", ("a", "a")),
])
def test_waveform_contract_rejects_bad_fields(field, value) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        WaveformContract(**{"window_samples": 2000, field: value})


def test_waveform_json_round_trip_and_description() -> None:
    contract = WaveformContract(window_samples=np.int64(3000), sampling_rate=50, components="zne",
                                bandpass_hz=[2, 10], p_position=0.1)
    assert contract.components == "ZNE" and contract.bandpass_hz == (2.0, 10.0)
    assert type(contract.window_samples) is int and type(contract.sampling_rate) is float
    d = json.loads(json.dumps(contract.to_json()))
    assert d["kind"] == "waveform"
    assert WaveformContract.from_json(d) == contract == contract_from_json(d)
    text = contract.describe()
    assert "50 Hz" in text and "3000-sample (60 s)" in text and "2-10 Hz" in text
    assert "\n" not in text
    with pytest.raises(ConfigError, match=r"unknown field.*'window'"):
        WaveformContract.from_json({**d, "window": 10})
    with pytest.raises(ConfigError, match=r"'kind' must be 'waveform'"):
        WaveformContract.from_json({**d, "kind": "image"})


# ---------------------------------------------------------------------------- images
@pytest.mark.parametrize(("size", "channels"), [((32, 32), 1), ((40, 56), 3), ((64, 64), 1)])
def test_image_transform_is_bit_identical_to_the_dataset(raw_images, size, channels) -> None:
    dataset = ImageDataset.from_path(MEDNIST, size=size, channels=channels)
    contract = ImageContract(size=size, mode=dataset.mode, class_names=dataset.class_names)
    assert contract.channels == channels
    for i, name in enumerate(dataset.paths):
        expected = dataset[i][0]
        got = contract.transform(raw_images[name], where=name)
        assert got.dtype == torch.float32 and got.shape == (channels, *size)
        assert torch.equal(got, expected), name
        assert torch.equal(contract.transform(np.asarray(raw_images[name])), expected)


def test_image_transform_of_arrays_matches_an_npz_dataset(raw_images, tmp_path) -> None:
    names = sorted(raw_images)[:12]
    images = np.stack([np.asarray(raw_images[n].convert("RGB")) for n in names])  # (N, H, W, 3)
    np.savez(tmp_path / "rgb.npz", images=images, labels=np.arange(12) % 2,
             class_names=np.array(["a", "b"]))
    dataset = ImageDataset.from_path(tmp_path / "rgb.npz", size=(24, 20), channels=1)
    contract = ImageContract(size=(24, 20), mode="L", class_names=("a", "b"))
    for i in range(len(dataset)):
        assert torch.equal(contract.transform(images[i]), dataset[i][0])
        assert torch.equal(contract.transform(images[i, :, :, :1]),
                           contract.transform(images[i, :, :, 0]))


def test_image_input_and_field_errors() -> None:
    contract = ImageContract(size=(8, 8), mode="RGB", class_names=("a", "b"))
    with pytest.raises(DataError, match=r"x.png: .*expected uint8"):
        contract.transform(np.zeros((8, 8), np.float32), where="x.png")
    with pytest.raises(DataError, match=r"x.png: .*shape \(8, 8, 2\)"):
        contract.transform(np.zeros((8, 8, 2), np.uint8), where="x.png")
    for field, value in [("size", (0, 8)), ("size", 8), ("mode", "CMYK"), ("resize", "nearest"),
                         ("normalisation", "imagenet"), ("class_names", ["a"])]:
        with pytest.raises(ConfigError, match=f"'{field}'"):
            ImageContract(**{"size": (8, 8), "mode": "L", "class_names": ("a", "b"),
                             field: value})


def test_image_json_round_trip_checks_channels() -> None:
    contract = ImageContract(size=[48, 40], mode="RGB", class_names=["x", "y", "z"])
    d = json.loads(json.dumps(contract.to_json()))
    assert d["kind"] == "image" and d["channels"] == 3 and d["size"] == [48, 40]
    assert ImageContract.from_json(d) == contract == contract_from_json(d)
    assert "48x40" in contract.describe() and "3 classes: x, y, z" in contract.describe()
    with pytest.raises(ConfigError, match=r"'channels' is 1"):
        ImageContract.from_json({**d, "channels": 1})


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name", list_pretrained())
def test_shipped_cards_give_one_contract_from_both_records(name) -> None:
    card = pretrained_card(name)
    new = contract_from_json(card["contract"])
    legacy = contract_from_meta({k: v for k, v in card.items() if k != "contract"})
    assert new == legacy == contract_from_meta(card)
    assert list(new.class_names) == card["class_names"]


def test_shipped_detector_contract_is_what_it_was_trained_with() -> None:
    contract = contract_from_meta(pretrained_card("stead-detector"))
    assert contract == WaveformContract(window_samples=2000, bandpass_hz=(1.0, 20.0))


def test_legacy_records_of_8d8a8ca_checkpoints() -> None:
    """``preprocessing`` dicts as train_waveform/image_classifier wrote them at 8d8a8ca."""
    waveform = {"task": "waveform-classification", "class_names": ["noise", "earthquake"],
                "preprocessing": {
                    "bandpass_hz": None, "mix_noise": 0.3,
                    "input": "3-component waveform, channel order E,N,Z",
                    "sampling_rate_hz": 100.0, "window_samples": 4000, "window_seconds": 40.0,
                    "normalisation": "per-channel zero mean, unit standard deviation over the "
                                     "window",
                    "eval_window": "P pick at 25% of the window if known, else centred",
                    "train_window": "random crop ...", "class_names": ["noise", "earthquake"],
                    "policy": ["gain"]}}
    assert contract_from_meta(waveform) == WaveformContract(window_samples=4000)
    image = {"task": "image-classification", "class_names": ["cat", "dog"],
             "preprocessing": {"input": "image", "size": [32, 24], "channels": 3, "mode": "RGB",
                               "resize": "PIL bilinear (antialiased when shrinking) to size "
                                         "(H, W)",
                               "normalisation": "pixel / 255 (values in [0, 1])",
                               "class_names": ["cat", "dog"], "augment": "light"}}
    assert contract_from_meta(image) == ImageContract(size=(32, 24), mode="RGB",
                                                      class_names=("cat", "dog"))
    # class names may sit only at the top level, or only in the preprocessing dict
    del image["preprocessing"]["class_names"]
    assert contract_from_meta(image).class_names == ("cat", "dog")
    del waveform["class_names"]
    assert contract_from_meta(waveform).class_names == ("noise", "earthquake")


def test_contract_from_meta_errors_name_the_checkpoint() -> None:
    with pytest.raises(CheckpointError, match=r"run/model.json: .*no 'contract'"):
        contract_from_meta({"task": "weekly-forecast"}, where="run/model.json")
    with pytest.raises(CheckpointError, match=r"run/model.json: .*'kind' must be one of"):
        contract_from_meta({"contract": {"kind": "audio"}}, where="run/model.json")
    with pytest.raises(CheckpointError, match=r"m.json: .*'channels' is 3 but 'mode' is 'L'"):
        contract_from_meta({"preprocessing": {"size": [8, 8], "channels": 3, "mode": "L",
                                              "class_names": ["a", "b"]}}, where="m.json")
    with pytest.raises(CheckpointError, match=r"m.json: .*'class_names'"):
        contract_from_meta({"preprocessing": {"size": [8, 8], "channels": 1}}, where="m.json")
