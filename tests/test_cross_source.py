"""Several sources: the multi-source reader, the label review, explosions, per-source scores,
leave-one-source-out (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, write_stead
from resattn.data.waveforms import OTHER, WaveformDataset
from resattn.errors import DataError
from resattn.eval.breakdown import breakdown, detection_scores, instrument_kinds, roc_auc, snr_db
from resattn.tasks.crossval import fold_names

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = [SHARED / "seismic", SHARED / "seismic_more" / "obstransformer",
           SHARED / "seismic_more" / "ceb_socal"]
needs_shared = pytest.mark.skipif(not all(p.is_dir() for p in SOURCES),
                                  reason="../shared/data seismic sources not present")


def _source(folder: Path, n: int, seed: int, noise: bool = True, stem: str = "part",
            extra: dict | None = None) -> Path:
    """A tiny STEAD-layout source: ``n`` earthquakes (a burst after sample 300) and ``n``
    noise traces (or none), 600 x 3 samples each."""
    rng = np.random.default_rng(seed)
    traces, categories = {}, {}
    for k in range(n):
        quake = rng.normal(size=(600, 3)).astype(np.float32)
        quake[300:400] *= 20
        traces[f"{folder.name}_eq{k}"], categories[f"{folder.name}_eq{k}"] = quake, \
            "earthquake_local"
        if noise:
            name = f"{folder.name}_no{k}"
            traces[name] = rng.normal(size=(600, 3)).astype(np.float32)
            categories[name] = "noise"
    return write_stead(folder, traces, categories, stem=stem, extra=extra)


# ---------------------------------------------------------------- the reader
@needs_shared
def test_multi_source_reader_on_the_shared_sources() -> None:
    ds = WaveformDataset.from_path(SOURCES)
    meta = ds.metadata
    counts = meta.groupby(["source", "category"]).size().to_dict()
    assert counts == {("CEB", "earthquake"): 100, ("DeepDenoiser", "earthquake"): 70,
                      ("DeepDenoiser", "noise"): 66, ("PhaseNet", "earthquake"): 78,
                      ("PhaseNet", "noise"): 72, ("STEAD", "earthquake"): 31,
                      ("obstransformer", "earthquake"): 37, ("obstransformer", "noise"): 28}
    assert set(ds.labels) == {0, 1}  # blasts and reviewed-out windows are left out
    assert ds.excluded.groupby("category").size().to_dict() == {"explosion": 100,
                                                                  "noise": 10}
    review = set(meta.loc[meta["review"] != "", "review"])
    assert review == {"zero_gap", "dead_channel"}  # hard negatives stay noise
    assert (meta.loc[meta["review"] != "", "label"] == 0).all()
    whole = WaveformDataset.from_path(SOURCES, keep_other=True)
    assert len(whole) == len(ds) + 110 and (whole.labels == OTHER).sum() == 110


def test_sources_from_column_origin_or_folder(tmp_path: Path) -> None:
    _source(tmp_path / "alpha", 2, 0, extra={"source": "net-A"})
    _source(tmp_path / "beta", 2, 1, extra={"data_source": "records via someone/Repo (x)"})
    _source(tmp_path / "gamma", 2, 2)
    ds = WaveformDataset.from_path([tmp_path / "alpha", tmp_path / "beta", tmp_path / "gamma"])
    assert ds.metadata.groupby("source").size().to_dict() == {"Repo": 4, "gamma": 4,
                                                               "net-A": 4}


def test_label_review_applied_and_checked(tmp_path: Path) -> None:
    folder = _source(tmp_path / "src", 3, 0)
    review = folder / "label_review.csv"
    review.write_text("trace_name,verdict,evidence\nsrc_no0,event_in_window,arrival\n"
                      "src_no1,zero_gap,zeros then a step\nsrc_no2,possible_event,burst\n")
    ds = WaveformDataset.from_path(folder)
    names = set(ds.metadata["trace_name"])
    assert "src_no0" not in names and "src_no2" not in names and "src_no1" in names
    assert ds.metadata.set_index("trace_name").loc["src_no1", "review"] == "zero_gap"
    assert sorted(ds.excluded["trace_name"]) == ["src_no0", "src_no2"]
    review.write_text("trace_name,verdict\nsrc_no0,maybe\n")
    with pytest.raises(DataError, match=r"label_review.csv: field 'verdict' has value 'maybe'"):
        WaveformDataset.from_path(folder)
    review.write_text("name,verdict\nsrc_no0,zero_gap\n")
    with pytest.raises(DataError, match=r"label_review.csv: no column\(s\) \['trace_name'\]"):
        WaveformDataset.from_path(folder)


def test_explosions_are_their_own_category(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    traces = {f"t{k}": rng.normal(size=(600, 3)).astype(np.float32) for k in range(3)}
    write_stead(tmp_path, traces, {"t0": "earthquake_local", "t1": "noise", "t2": "explosion"})
    ds = WaveformDataset.from_path(tmp_path)
    assert list(ds.metadata["trace_name"]) == ["t0", "t1"]
    assert list(ds.excluded["category"]) == ["explosion"]
    only = tmp_path / "blasts"
    write_stead(only, {"b": traces["t2"]}, {"b": "explosion"})
    with pytest.raises(DataError, match="holds no earthquake or noise trace"):
        WaveformDataset.from_path(only)


def test_earthquake_without_p_pick_is_one_clear_error(tmp_path: Path) -> None:
    folder = _source(tmp_path / "src", 2, 0)
    csv = folder / "part.csv"
    table = pd.read_csv(csv)
    table.loc[table["trace_name"] == "src_eq1", "p_arrival_sample"] = None
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"part.csv: field 'p_arrival_sample' is empty for "
                                        r"earthquake trace 'src_eq1'"):
        WaveformDataset.from_path(folder)


# ---------------------------------------------------------------- scores
def test_roc_auc_is_the_pairwise_ranking_probability() -> None:
    rng = np.random.default_rng(3)
    y, s = rng.integers(0, 2, 200), rng.random(200).round(1)  # many ties
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0)
             for a in s[y == 1] for b in s[y == 0]]
    assert roc_auc(y, s) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.ones(4), s[:4]) is None


def test_detection_scores_and_breakdown() -> None:
    y = np.array([1, 1, 1, 0, 0, 1])
    p = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.8])
    s = detection_scores(y, p)
    assert (s["missed"], s["false_alarms"], s["n_events"], s["n_noise"]) == (1, 1, 4, 2)
    assert s["recall"] == 0.75 and s["false_alarm_rate"] == 0.5 and s["precision"] == 0.75
    meta = pd.DataFrame({"source": ["a", "a", "b", "a", "a", "b"],
                         "snr_db": ["[5 5 5]", "25", "40", None, None, "[12 14 16]"],
                         "receiver_type": ["HH", "HN", "XX", "HH", "HH", None]})
    assert np.allclose(snr_db(meta), [5, 25, 40, np.nan, np.nan, 14], equal_nan=True)
    assert list(instrument_kinds(meta)) == ["velocity", "acceleration", "unknown",
                                            "velocity", "velocity", "unknown"]
    table = breakdown(y, p, meta)
    assert table["source"]["b"]["false_alarm_rate"] is None  # no noise windows there
    assert table["source"]["a"]["n"] == 4 and table["source"]["a"]["recall"] == 0.5
    assert list(table["snr"]) == ["<10 dB", "10-20 dB", "20-30 dB", ">=30 dB"]
    assert sum(r["n"] for r in table["snr"].values()) == 4  # events only


# ---------------------------------------------------------------- leave-one-source-out
def test_fold_never_puts_a_source_on_both_sides(tmp_path: Path) -> None:
    folders = [_source(tmp_path / name, 6, k) for k, name in enumerate(("a", "b", "c"))]
    ds = WaveformDataset.from_path(folders)
    for held in ("a", "b", "c"):
        names = fold_names(ds, held, "source", seed=0, split_by=("group",))
        source = ds.metadata.set_index("trace_name")["source"]
        assert set(source[names["test"]]) == {held}
        assert len(names["test"]) == 12
        assert held not in set(source[names["train"] + names["val"]])
        assert not set(names["train"]) & set(names["val"])
        assert len(names["train"]) + len(names["val"]) == 24


@pytest.mark.slow
def test_cv_command_end_to_end(tmp_path: Path) -> None:
    folders = [_source(tmp_path / name, 6, k) for k, name in enumerate(("a", "b", "c"))]
    out = tmp_path / "cv"
    args = ["cv", "--model", "cnn1d", "--option", "dims=1", "--out", out, "--epochs", "1",
            "--window", "400", "--quiet", "--precision", "fp32"]
    for folder in folders:
        args += ["--data", folder]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    loso = json.loads((out / "loso.json").read_text())
    assert sorted(loso["folds"]) == ["a", "b", "c"]
    for held, fold in loso["folds"].items():
        split = json.loads((out / f"holdout-{held}" / "split.json").read_text())
        test = {n.split("_")[0] for n in split["test"]}
        trained = {n.split("_")[0] for n in split["train"] + split["val"]}
        assert test == {held} and held not in trained
        assert fold["model"]["n"] == 12 and 0 <= fold["model"]["recall"] <= 1
    assert "| a | model | 12 |" in (out / "loso.md").read_text()
    again = run_cli(*args)  # a rerun resumes: every fold is done, nothing retrained
    assert again.returncode == 0, again.stderr


def test_evaluate_several_sources_writes_per_trace_facts(tmp_path: Path) -> None:
    folders = [_source(tmp_path / name, 3, k) for k, name in enumerate(("a", "b"))]
    predictions = tmp_path / "p.csv"
    result = run_cli("evaluate", "--model", "stead-detector", "--data", folders[0], "--data",
                     folders[1], "--window", "400", "--precision", "fp32", "--format", "json",
                     "--predictions", predictions)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics["breakdown"]["source"]) == {"a", "b"}
    assert metrics["n"] == 12
    table = pd.read_csv(predictions)
    assert list(table.columns[:5]) == ["trace_name", "source", "label", "predicted",
                                       "p_earthquake"]
    assert set(table["source"]) == {"a", "b"} and (table["window_samples"] == 400).all()
    assert table.loc[table["label"] == "earthquake", "window_start"].eq(200).all()  # P at 1/4


def test_data_of_two_tasks_is_refused(tmp_path: Path) -> None:
    waves = _source(tmp_path / "w", 2, 0)
    images = tmp_path / "img" / "cat"
    images.mkdir(parents=True)
    from PIL import Image

    Image.new("L", (8, 8)).save(images / "x.png")
    result = run_cli("evaluate", "--model", "stead-detector", "--data", waves, "--data",
                     tmp_path / "img")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "img" in result.stderr


# ---------------------------------------------------------------- input robustness
def test_gaps_are_filled_before_the_filter() -> None:
    from resattn.data.transforms import fill_gaps, prepare_trace

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3000)) + 40.0
    x[:, :900] = 0.0  # a leading gap, then a step of 40 into real noise
    x[1, 2000:2400] = 7.0  # a value held by the digitiser on one channel
    filled = fill_gaps(x, 100)
    # the data next to a gap, mirrored at its edge: no step, and no flat stretch either
    assert np.array_equal(filled[:, :900], x[:, 900:1800][:, ::-1])
    assert np.array_equal(filled[1, 2000:2400], x[1, 1600:2000][::-1])
    assert np.array_equal(filled[:, 900:2000], x[:, 900:2000])  # the data is untouched
    long_gap = x.copy()
    long_gap[:, :2500] = 0.0  # longer than the data after it: mirrored back and forth
    assert np.allclose(fill_gaps(long_gap, 100)[:, :2500].std(axis=1), x[:, 2500:].std(axis=1),
                       rtol=0.3)
    short = x.copy()
    short[0, 1500:1550] = 3.0  # a run shorter than min_run is data
    assert (fill_gaps(short, 100)[0, 1500:1550] == 3.0).all()
    dead = np.zeros((3, 500))
    assert (fill_gaps(dead, 100) == 0).all()  # one run: a dead channel, left as it is
    # the step the filter would ring on is gone: the gap's edge is as quiet as the noise
    ringing = np.abs(prepare_trace(x, (1.0, 20.0), 100.0, None)[:, 850:950]).max()
    quiet = np.abs(prepare_trace(x, (1.0, 20.0), 100.0, 1.0)[:, 850:950]).max()
    assert quiet < 0.2 * ringing


def test_amplitude_units_do_not_change_the_input() -> None:
    from resattn.contracts import WaveformContract

    rng = np.random.default_rng(1)
    counts = rng.normal(size=(3, 3000)) * 500 + 1200
    contract = WaveformContract(window_samples=2000, bandpass_hz=(1.0, 20.0), gap_seconds=1.0)
    a = contract.transform(counts, 500)
    for scale in (1e-9, 1e-3, 1e4):  # m/s, normalised, large counts
        b = contract.transform(counts * scale, 500)
        assert float((a - b).abs().max()) < 1e-4, scale
        assert float(b.std()) > 0.5  # never taken for a dead channel


def test_a_shipped_model_loads_by_its_major_version() -> None:
    from resattn.pretrained import list_pretrained, load_card

    latest = load_card("stead-detector")
    major = str(latest["version"]).split(".")[0]
    assert load_card(f"stead-detector@{major}") == latest
    assert f"stead-detector@{int(major) + 5}" not in list_pretrained()
    from resattn.errors import CheckpointError

    with pytest.raises(CheckpointError, match="neither a shipped model"):
        load_card(f"stead-detector@{int(major) + 5}")
