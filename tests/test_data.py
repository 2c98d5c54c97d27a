"""Tests for resattn.data: reader, windows, splits, and clear errors on bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from resattn.data import (
    WaveformDataset,
    WaveformWindows,
    check_windows,
    crop,
    grouped_split,
    standardize,
    window_start,
)
from resattn.errors import ConfigError, DataError

SEISMIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seismic"


@pytest.fixture(scope="module")
def seismic_dir() -> Path:
    if not (SEISMIC / "eq_60s.csv").is_file():
        pytest.skip(f"real seismic data not found at {SEISMIC}")
    return SEISMIC


@pytest.fixture(scope="module")
def real(seismic_dir: Path) -> WaveformDataset:
    ds = WaveformDataset.from_path(seismic_dir)
    yield ds
    ds.close()


def _write_pair(
    folder: Path,
    stem: str,
    traces: dict[str, np.ndarray],
    categories: dict[str, str] | None = None,
    drop_column: str | None = None,
) -> Path:
    """Small STEAD-style CSV + HDF5 pair; returns the CSV path."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(traces)
    cats = categories or {}
    meta = pd.DataFrame(
        {
            "trace_name": names,
            "trace_category": [cats.get(n, "earthquake_local") for n in names],
            "p_arrival_sample": [100.0] * len(names),
        }
    )
    if drop_column:
        meta = meta.drop(columns=drop_column)
    meta.to_csv(folder / f"{stem}.csv", index=False)
    with h5py.File(folder / f"{stem}.hdf5", "w") as f:
        group = f.create_group("data")
        for name, x in traces.items():
            group.create_dataset(name, data=x)
    return folder / f"{stem}.csv"


# ---------------------------------------------------------------- real data


def test_reader_opens_real_data(real: WaveformDataset) -> None:
    # The label review takes out the 10 noise windows it found an event (or maybe one) in.
    assert len(real) == 317
    counts = np.bincount(real.labels, minlength=2)
    assert counts[1] == 179 and counts[0] == 138
    assert sorted(real.excluded["review"]) == ["event_in_window"] * 5 + ["possible_event"] * 5
    assert set(real.metadata["source"]) == {"STEAD", "PhaseNet", "DeepDenoiser"}
    meta = real.metadata
    for col in ("trace_name", "trace_category", "label", "p_arrival_sample", "group", "station"):
        assert col in meta.columns
    assert "snr_db" in meta.columns  # other CSV columns are kept
    eq = int(np.flatnonzero(real.labels == 1)[0])
    noise = int(np.flatnonzero(real.labels == 0)[0])
    x_eq, x_noise = real.read(eq), real.read(noise)
    assert x_eq.shape == (3, 6000) and x_eq.dtype == np.float32
    assert x_noise.shape == (3, 2500)
    # (3, n) is the transpose of the stored (n, 3) E,N,Z array.
    name = meta["trace_name"].iat[eq]
    with h5py.File(real.files[int(meta["_file"].iat[eq])], "r") as f:
        np.testing.assert_array_equal(x_eq, f["data"][name][()].T)
    assert np.isnan(meta["p_arrival_sample"].to_numpy()[real.labels == 0]).all()
    assert np.isfinite(meta["p_arrival_sample"].to_numpy()[real.labels == 1]).all()
    assert meta["station"].iat[eq].count(".") == 1
    np.testing.assert_array_equal(real.lengths(), np.where(real.labels == 1, 6000, 2500))


def test_opening_is_lazy(seismic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    original = h5py.Dataset.__getitem__

    def counting(self, *args, **kwargs):
        reads.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    ds = WaveformDataset.from_path(seismic_dir)
    assert reads == []
    assert ds._files.n_open == 0  # no handle kept open until the first read
    ds.read(5)
    assert len(reads) == 1 and ds._files.n_open == 1
    ds.close()
    assert ds._files.n_open == 0


def test_single_csv_subset_and_pickle(seismic_dir: Path) -> None:
    ds = WaveformDataset.from_path(seismic_dir / "noise_25s.csv")
    assert len(ds) == 138 and set(ds.labels) == {0}  # 148 less the 10 the review took out
    sub = ds.subset([3, 7])
    assert len(sub) == 2
    assert list(sub.metadata["trace_name"]) == list(ds.metadata["trace_name"].iloc[[3, 7]])
    ds.read(0)  # open a handle, then make sure it does not travel through pickle
    clone = pickle.loads(pickle.dumps(sub))
    assert clone._files.n_open == 0
    np.testing.assert_array_equal(clone.read(1), ds.read(7))
    ds.close()


def test_grouped_split_keeps_groups_together(real: WaveformDataset) -> None:
    meta = real.metadata
    for by in (("group",), ("group", "station")):
        parts = grouped_split(meta, (0.8, 0.1, 0.1), seed=3, by=by)
        again = grouped_split(meta, (0.8, 0.1, 0.1), seed=3, by=by)
        for a, b in zip(parts, again, strict=True):
            np.testing.assert_array_equal(a, b)
        allrows = np.concatenate(parts)
        assert len(allrows) == len(meta) and len(np.unique(allrows)) == len(meta)
        for col in by:
            sides = [set(meta[col].iloc[p]) - {""} for p in parts]
            assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        for p in parts:
            assert set(real.labels[p]) == {0, 1}  # both labels in every part
        assert abs(len(parts[0]) / len(meta) - 0.8) < 0.08
    other = grouped_split(meta, seed=4)
    assert not np.array_equal(other[1], grouped_split(meta, seed=3)[1])


def test_grouped_split_merges_through_any_column() -> None:
    meta = pd.DataFrame(
        {
            "group": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "station": ["s1", "", "s1", "s2", "s2", np.nan, "", "s3"],
            "label": [1, 0, 0, 1, 0, 1, 0, 1],
        }
    )
    for seed in range(10):
        parts = grouped_split(meta, (0.5, 0.25, 0.25), seed=seed, by=("group", "station"))
        where = np.empty(len(meta), dtype=int)
        for k, p in enumerate(parts):
            where[p] = k
        assert where[0] == where[2] and where[3] == where[4]
    with pytest.raises(ConfigError, match="sum to 1"):
        grouped_split(meta, (0.8, 0.1, 0.2))
    with pytest.raises(ConfigError):
        grouped_split(meta, (1.2, -0.1, -0.1))


# ---------------------------------------------------------------- windows


def test_window_start_deterministic() -> None:
    assert window_start(6000, 2500, 1000.0) == 1000 - 625  # P at 25 % of the window
    assert window_start(6000, 2500, 300.0) == 0  # clipped at the trace start
    assert window_start(6000, 2500, 5900.0) == 3500  # clipped at the trace end
    assert window_start(6000, 2500, None) == 1750  # noise: centred
    assert window_start(6000, 2500, float("nan")) == 1750
    assert window_start(2500, 2500, None) == 0


def test_window_start_random_keeps_p_in_range() -> None:
    rng = np.random.default_rng(0)
    window, p = 2000, 3000.0
    starts = np.array([window_start(6000, window, p, rng) for _ in range(2000)])
    offsets = p - starts
    assert offsets.min() >= 0.05 * window and offsets.max() <= 0.75 * window
    assert len(np.unique(starts)) > 500  # actually random, spread over the allowed range
    noise = np.array([window_start(6000, window, None, rng) for _ in range(500)])
    assert noise.min() >= 0 and noise.max() <= 4000 and noise.std() > 500
    # No start can keep P inside [5 %, 75 %] -> deterministic fallback.
    assert window_start(6000, 2000, 5999.0, rng) == window_start(6000, 2000, 5999.0)
    with pytest.raises(DataError, match="pad=True"):
        window_start(100, 200, None, name="tiny")


def test_standardize_and_crop() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 300.0, size=(3, 1000)).astype(np.float32)
    x[2] = 7.0  # dead channel
    y = standardize(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(y[:2].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y[:2].std(axis=1), 1.0, atol=1e-4)
    assert (y[2] == 0).all()
    assert crop(x, 10, 50).shape == (3, 50)
    with pytest.raises(ValueError):
        crop(x, 990, 50)


def test_waveform_windows_real(real: WaveformDataset) -> None:
    for train in (False, True):
        windows = WaveformWindows(real, 2500, train=train, seed=1, augment=False)
        for i in (0, 200, len(real) - 1):
            x, label = windows[i]
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
            assert x.shape == (3, 2500) and label == int(real.labels[i])
            assert torch.allclose(x.mean(dim=1), torch.zeros(3), atol=1e-4)
            assert torch.allclose(x.std(dim=1, unbiased=False), torch.ones(3), atol=1e-3)
    train = WaveformWindows(real, 2500, train=True, seed=1)
    assert train.augment
    a, _ = train[0]
    np.testing.assert_array_equal(a.numpy(), train[0][0].numpy())  # reproducible
    train.set_epoch(1)
    assert not torch.equal(a, train[0][0])  # a new epoch draws a new window/augmentation
    val = WaveformWindows(real, 2500, train=False)
    assert torch.equal(val[0][0], val[0][0]) and not val.augment


def test_short_trace_without_pad(real: WaveformDataset) -> None:
    noise = int(np.flatnonzero(real.labels == 0)[0])
    name = real.metadata["trace_name"].iat[noise]
    windows = WaveformWindows(real, 6000, train=False)
    with pytest.raises(DataError, match="pad") as info:
        windows[noise]
    assert name in str(info.value) and "2500" in str(info.value)
    with pytest.raises(DataError, match="pad=True"):
        check_windows(real, 6000, pad=False)
    padded = WaveformWindows(real, 6000, train=False, pad=True)[noise][0]
    assert padded.shape == (3, 6000) and (padded[:, 2500:] == 0).all()
    assert check_windows(real, 6000, pad=True).max() == 6000


# ---------------------------------------------------------------- bad input


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        WaveformDataset.from_path(tmp_path / "nope")
    with pytest.raises(DataError, match="no CSV/HDF5 pair"):
        WaveformDataset.from_path(tmp_path)


def test_csv_without_trace_name(tmp_path: Path) -> None:
    csv = _write_pair(
        tmp_path, "x", {"t1": np.zeros((200, 3), np.float32)}, drop_column="trace_name"
    )
    with pytest.raises(DataError, match="trace_name") as info:
        WaveformDataset.from_path(tmp_path)
    assert str(csv) in str(info.value)


def test_wrong_shape_and_nan(tmp_path: Path) -> None:
    good = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    bad = good.copy()
    bad[10, 1] = np.nan
    _write_pair(
        tmp_path,
        "x",
        {"ok": good, "narrow": np.zeros((100, 2), np.float32), "holes": bad},
    )
    ds = WaveformDataset.from_path(tmp_path / "x.csv")
    assert ds.read(0).shape == (3, 200)
    with pytest.raises(DataError, match=r"narrow.*\(100, 2\).*\(n_samples, 3\)"):
        ds.read(1)
    with pytest.raises(DataError, match=r"holes.*NaN or Inf"):
        ds.read(2)
    problems = ds.validate()
    assert len(problems) == 2 and "x.hdf5" in problems[0]
    ds.close()


def test_missing_dataset(tmp_path: Path) -> None:
    _write_pair(tmp_path, "x", {"present": np.zeros((50, 3), np.float32)})
    meta = pd.read_csv(tmp_path / "x.csv")
    meta.loc[1] = ["absent", "noise", np.nan]
    meta.to_csv(tmp_path / "x.csv", index=False)
    ds = WaveformDataset.from_path(tmp_path)
    with pytest.raises(DataError, match=r"x\.hdf5.*absent"):
        ds.read(1)
    ds.close()


def test_corrupt_hdf5(tmp_path: Path) -> None:
    _write_pair(tmp_path, "x", {"t1": np.zeros((50, 3), np.float32)})
    (tmp_path / "x.hdf5").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="is not a readable HDF5 file") as info:
        WaveformDataset.from_path(tmp_path)
    assert "x.hdf5" in str(info.value)


def test_hdf5_without_data_group(tmp_path: Path) -> None:
    _write_pair(tmp_path, "x", {"t1": np.zeros((50, 3), np.float32)})
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f.create_dataset("t1", data=np.zeros((50, 3), np.float32))
    with pytest.raises(DataError, match="no group 'data'"):
        WaveformDataset.from_path(tmp_path)


def test_unknown_trace_category(tmp_path: Path) -> None:
    csv = _write_pair(
        tmp_path, "x", {"t1": np.zeros((50, 3), np.float32)}, categories={"t1": "landslide"}
    )
    with pytest.raises(DataError, match=r"trace_category.*landslide.*expected 'noise', "
                                        r"'explosion'") as info:
        WaveformDataset.from_path(tmp_path)
    assert str(csv) in str(info.value)


def test_seisbench_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bucket = rng.normal(size=(4, 3, 300)).astype(np.float32)  # (traces, channels Z,N,E, samples)
    single = rng.normal(size=(3, 250)).astype(np.float32)
    with h5py.File(tmp_path / "waveforms.hdf5", "w") as f:
        f.create_dataset("data/bucket0", data=bucket)
        f.create_dataset("data/solo", data=single)
        f.create_dataset("data_format/component_order", data="ZNE")
        f.create_dataset("data_format/dimension_order", data="CW")
    pd.DataFrame(
        {
            "trace_name": ["bucket0$2,:3,:300", "solo"],
            "trace_category": ["earthquake_local", "noise"],
            "trace_p_arrival_sample": [50, None],
        }
    ).to_csv(tmp_path / "metadata.csv", index=False)
    ds = WaveformDataset.from_path(tmp_path)
    assert list(ds.labels) == [1, 0]
    np.testing.assert_array_equal(ds.read(0), bucket[2, ::-1])  # reordered ZNE -> ENZ
    np.testing.assert_array_equal(ds.read(1), single[::-1])
    np.testing.assert_array_equal(ds.lengths(), [300, 250])
    assert ds.metadata["p_arrival_sample"].iat[0] == 50
    ds.close()


def test_dataloader_workers_after_fork(real: WaveformDataset) -> None:
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork start method unavailable")
    from torch.utils.data import DataLoader

    sub = real.subset(np.arange(0, 327, 41))
    sub.read(0)  # the parent holds an open handle; workers must not reuse it
    windows = WaveformWindows(sub, 2500, train=True, seed=5)
    serial = torch.cat([x for x, _ in DataLoader(windows, batch_size=4)])
    loader = DataLoader(windows, batch_size=4, num_workers=2, multiprocessing_context="fork")
    parallel = torch.cat([x for x, _ in loader])
    assert torch.equal(serial, parallel)  # same windows whichever process reads them
