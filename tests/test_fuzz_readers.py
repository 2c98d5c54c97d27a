"""Issue 14: property-based fuzzing of every reader a user's file reaches.

Each generated case ends in one clear error naming the file (a ``ResattnError``: the CLI's
exit 2) or in a correct load; never another exception, a hang or a silently wrong result.
Beside the properties, one named regression test per bug the fuzzing found.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzzing import fuzz
from resattn.data import WaveformDataset
from resattn.data.catalog import LAT_RANGE, LON_RANGE, MAG_RANGE, Catalog, read_catalog
from resattn.data.records import read_record
from resattn.errors import DataError, ResattnError

PICKLE_RAN: list[str] = []  # _Trap's unpickling appends here: a reader that unpickles is caught


def _sprung(what: str) -> None:
    PICKLE_RAN.append(what)


class _Trap:
    """An object whose unpickling calls ``_sprung``: saved in object arrays."""

    def __reduce__(self) -> tuple:
        return _sprung, ("unpickled",)


# ------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per generated case (pytest's tmp_path is shared by all of them)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        yield Path(d)


def assert_clear(exc: BaseException, *names: str) -> str:
    """A user error: one line that names one of ``names`` (file names or fields)."""
    assert isinstance(exc, ResattnError), f"{type(exc).__name__}: {exc}"
    text = str(exc).strip()
    assert text and "\n" not in text, f"not one line: {text!r}"
    assert any(n in text for n in names), f"names none of {names}: {text}"
    return text


def outcome(call: Callable[[], Any], *names: str) -> Any:
    """``call()``, or None when it raised a clear ``ResattnError`` naming one of ``names``."""
    try:
        return call()
    except ResattnError as exc:
        assert_clear(exc, *names)
        return None


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` kept, cut short, with bytes overwritten or inserted, emptied or replaced."""
    how = draw(st.sampled_from(["keep", "keep", "cut", "flip", "insert", "empty", "random"]))
    n = len(data)
    if how == "cut":
        return data[: draw(st.integers(0, max(n - 1, 0)))]
    if how == "flip" and n:
        at = draw(st.integers(0, n - 1))
        new = draw(st.binary(min_size=1, max_size=8))
        return data[:at] + new + data[at + len(new):]
    if how == "insert":
        at = draw(st.integers(0, n))
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if how == "empty":
        return b""
    if how == "random":
        return draw(st.binary(max_size=256))
    return data


# ------------------------------------------------------------------------------ 4. records
NUMERIC = ["<f4", ">f8", "<f2", "<i2", ">i4", "<i8", "|u1", "<u2"]
OTHER = ["|b1", "<c8", "<c16", "<U3", "|S2", "<m8[s]", "<M8[D]"]


def _real_record(arr: np.ndarray) -> bool:
    """What read_record must accept: real numbers, (channels, samples), non-empty, finite."""
    return (arr.dtype.kind in "iuf" and arr.ndim == 2 and min(arr.shape) > 0
            and bool(np.isfinite(arr).all()))


record_arrays = hnp.arrays(
    dtype=st.sampled_from(NUMERIC + OTHER).map(np.dtype),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)


def _write_array_file(folder: Path, kind: str, arr: np.ndarray, extra: bool) -> Path:
    if kind == "npy":
        path = folder / "record.npy"
        np.save(path, arr)
    else:
        path = folder / "record.npz"
        members = {"waveform": arr, **({"trap": np.array([_Trap()], dtype=object)}
                                       if extra else {})}
        (np.savez_compressed if kind == "npz-compressed" else np.savez)(path, **members)
    return path


@given(arr=record_arrays, kind=st.sampled_from(["npy", "npz", "npz-compressed"]),
       extra=st.booleans(), data=st.data())
@fuzz(500)
def test_fuzz_record_arrays(arr: np.ndarray, kind: str, extra: bool, data: st.DataObject) -> None:
    with scratch() as folder:
        path = _write_array_file(folder, kind, arr, extra)
        raw = path.read_bytes()
        mutated = data.draw(damaged(raw))
        path.write_bytes(mutated)
        x = outcome(lambda: read_record(path), path.name)
    assert not PICKLE_RAN
    if x is None:
        assert mutated != raw or not _real_record(arr), f"a valid {arr.dtype} {arr.shape} refused"
        return
    assert isinstance(x, np.ndarray) and x.ndim == 2 and min(x.shape) > 0
    assert x.dtype.kind == "f" and np.isfinite(x).all()
    if mutated == raw:
        np.testing.assert_array_equal(x, arr.astype(np.float64))


@given(kind=st.sampled_from(["npy", "npz"]), pickled=st.sampled_from(["trap", "list", "mixed"]))
@fuzz(30)
def test_fuzz_record_object_arrays_are_never_unpickled(kind: str, pickled: str) -> None:
    values = {"trap": [_Trap()], "list": [[1.0, 2.0]], "mixed": [1.0, _Trap()]}[pickled]
    with scratch() as folder:
        path = _write_array_file(folder, kind, np.array(values, dtype=object), extra=False)
        with pytest.raises(DataError) as caught:
            read_record(path)
        assert_clear(caught.value, path.name)
    assert not PICKLE_RAN


CHANNELS = ["HHE", "HHN", "HHZ", "BH1", "BH2", "EHZ", "HHX", ""]


@given(channels=st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4, unique=True),
       rate=st.sampled_from([100.0, 100.0, 50.0, 200.0, 1.0, 0.01, 1e6]),
       lengths=st.lists(st.integers(1, 40), min_size=4, max_size=4),
       dtype=st.sampled_from(["int32", "float32", "float64"]),
       fmt=st.sampled_from(["MSEED", "SAC"]), data=st.data())
@fuzz(150)
def test_fuzz_record_obspy(channels: list[str], rate: float, lengths: list[int], dtype: str,
                           fmt: str, data: st.DataObject) -> None:
    from obspy import Stream, Trace

    channels = channels[:1] if fmt == "SAC" else channels  # SAC holds one trace
    traces = [Trace(np.arange(n, dtype=dtype) - n // 2,
                    header={"station": "STA", "channel": c, "sampling_rate": rate})
              for c, n in zip(channels, lengths, strict=False)]
    with scratch() as folder:
        path = folder / f"record.{fmt.lower()}"
        Stream(traces).write(str(path), format=fmt)
        raw = path.read_bytes()
        mutated = data.draw(damaged(raw))
        path.write_bytes(mutated)
        x = outcome(lambda: read_record(path), path.name)
    if x is None:
        assert mutated != raw or rate not in (100.0, 50.0, 200.0), "a valid record refused"
        return
    assert x.ndim == 2 and min(x.shape) > 0 and x.dtype.kind == "f" and np.isfinite(x).all()
    if mutated == raw and rate == 100.0:
        order = sorted(range(len(traces)), key=lambda k: "ENZ123".find(channels[k][-1:]))
        n = min(len(tr.data) for tr in traces)
        np.testing.assert_array_equal(x, np.stack([traces[k].data[:n] for k in order]))


# ------------------------------------------------------------------------------ 1. waveforms
GOOD_TRACES = ["f32", "f32", "f32", "i16", "f64be", "f16", "first", "square", "one"]
BAD_TRACES = ["missing", "complex", "text", "bool", "1d", "3d", "wide", "empty", "scalar",
              "nan", "inf", "huge", "group", "compound"]
TRACE_NAMES = ["t0", "t1", "t2", "0012", "EV.1 b", "a,b", 'x"y']
# Per optional CSV column: right values and wrong ones (faults); "N" is the true length.
FIELDS = {
    "trace_category": (["noise", "earthquake_local", "earthquake"],
                       ["Noise", "EQ", "", "explosion", "quake"]),
    "p_arrival_sample": (["", 2, 7.5], [-3, 1e12, "abc", "inf", 40]),
    "split_group": (["", "g1", "g2"], []),
    "network_code": (["", "CI", "0"], []),
    "receiver_code": (["", "ABC"], []),
    "channel_order": (["", "ENZ", "E,N,Z", "ZNE", "nez"], ["XYZ", "EN", "EENZ"]),
    "n_samples": (["", "N"], [0, -4, 1e30, "twelve", "N+1"]),
}


def _trace_array(kind: str, n: int, seed: int) -> np.ndarray | None:
    """The dataset written for a trace of ``kind`` (None: a group, or nothing)."""
    x = np.random.default_rng(seed).standard_normal((n, 3))
    arrays = {
        "f32": x.astype("<f4"), "i16": (x * 1000).astype("<i2"), "f64be": x.astype(">f8"),
        "f16": x.astype("<f2"), "first": x.T.copy(), "square": x[:3], "one": x[:1],
        "complex": (x + 1j).astype("<c8"), "bool": x > 0, "1d": x[:, 0], "3d": x[..., None],
        "wide": np.hstack([x, x[:, :1]]), "empty": x[:0], "scalar": np.float32(1.5),
        "nan": np.where(x > 1, np.nan, x), "inf": np.where(x > 1, np.inf, x),
        "huge": x * 1e300, "text": x.astype(str).astype(object),
        "compound": np.zeros(n, dtype=[("e", "<f4"), ("n", "<f4"), ("z", "<f4")]),
    }
    return arrays.get(kind)


def _expected_trace(kind: str, arr: np.ndarray) -> np.ndarray:
    """What ``read`` returns for a valid trace (STEAD order): (3, n) float32."""
    return np.asarray(arr if kind == "first" else arr.T, dtype=np.float32)


def _channel_permutation(order: Any) -> list[int]:
    """Positions of E, N, Z in a ``channel_order`` value (none: the STEAD order)."""
    text = str(order).replace(",", "").upper() if isinstance(order, str) and order else "ENZ"
    return [text.index(c) for c in "ENZ"]


def _write_h5(path: Path, kinds: dict[str, str], n: int, how: str) -> dict[str, np.ndarray]:
    """``data/<name>`` per trace of ``kinds`` (``how="nodata"``: the group is misnamed);
    returns the arrays written."""
    written = {}
    with h5py.File(path, "w") as f:
        group = f.create_group("data" if how != "nodata" else "waveforms")
        for k, (name, kind) in enumerate(kinds.items()):
            arr = _trace_array(kind, n, k)
            if not name:  # an empty trace name has no dataset
                continue
            if kind == "group":
                group.create_group(name)
            elif arr is not None:
                dtype = h5py.string_dtype() if kind == "text" else None
                group.create_dataset(name, data=arr, dtype=dtype)
                written[name] = arr
    return written


# Faults a generated folder may carry (a few per case): a wrong value in a column, a bad
# HDF5 trace, a repeated or empty name, a required column missing, a damaged file.
STEAD_FAULTS = ([(col, v) for col, (_, bad) in FIELDS.items() for v in bad]
                + [("kind", k) for k in BAD_TRACES]
                + [("name", "repeated"), ("name", ""), ("drop", "trace_name"),
                   ("drop", "trace_category"), ("h5", "nodata"), ("h5", "bytes"),
                   ("csv", "damage")])


@st.composite
def stead_folders(draw: st.DrawFn) -> dict:
    """A STEAD pair: right values (chosen by a seeded RNG: few draws, fast) plus up to two
    faults (drawn by hypothesis: shrinkable). ``clean``: no fault that matters (the folder
    must then load and read exactly)."""
    n = draw(st.sampled_from([12, 12, 40, 3]))
    names = draw(st.lists(st.sampled_from(TRACE_NAMES), max_size=4, unique=True))
    columns = ["trace_name", "trace_category",
               *draw(st.lists(st.sampled_from(list(FIELDS)[1:]), unique=True))]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    faults = draw(st.lists(st.tuples(st.sampled_from(STEAD_FAULTS), st.integers(0, 3)),
                           max_size=2))
    kinds = {name: str(rng.choice(GOOD_TRACES)) for name in names}
    rows = [{"trace_name": name, **{col: good[rng.integers(len(good))]
                                    for col, (good, _) in FIELDS.items()}} for name in names]
    case = {"n": n, "h5": "ok", "csv_damage": False}
    clean = bool(names)
    for (what, value), k in faults:
        row = rows[k % len(rows)] if rows else None
        if what in FIELDS and row is not None:
            row[what] = value
            clean &= what not in columns
        elif what == "kind" and row is not None:
            kinds[row["trace_name"]] = value
            clean = False
        elif what == "name" and row is not None:
            rows.append({**row, "trace_name": row["trace_name"] if value else ""})
            clean = False
        elif what == "drop" and value in columns:
            columns.remove(value)
            clean = False
        elif what in ("h5", "csv"):
            case["h5" if what == "h5" else "csv_damage"] = value if what == "h5" else True
            clean = False
    for row in rows:
        length = {"one": 1, "square": 3}.get(kinds.get(row["trace_name"]), n)
        row["n_samples"] = {"N": length, "N+1": length + 1}.get(row["n_samples"],
                                                                row["n_samples"])
        p = row["p_arrival_sample"]
        if "p_arrival_sample" in columns and p != "" and (isinstance(p, str)
                                                          or not 0 <= p < length):
            clean = False
        if "p_arrival_sample" in columns and p == "" and \
                str(row.get("trace_category", "")).startswith("earthquake"):
            clean = False  # an earthquake without its P pick is refused (issue 15)
        if kinds.get(row["trace_name"]) == "first" and n == 3:  # (3, 3) is read as (n, 3)
            clean = False
    return {**case, "rows": rows, "columns": columns, "kinds": kinds, "clean": clean}


@given(case=stead_folders(), data=st.data())
@fuzz(800)
def test_fuzz_stead_folder(case: dict, data: st.DataObject) -> None:
    with scratch() as folder:
        csv, h5 = folder / "part.csv", folder / "part.hdf5"
        pd.DataFrame(case["rows"], columns=case["columns"]).to_csv(csv, index=False)
        if case["csv_damage"]:
            csv.write_bytes(data.draw(damaged(csv.read_bytes())))
        written = _write_h5(h5, case["kinds"], case["n"], case["h5"])
        if case["h5"] == "bytes":
            h5.write_bytes(data.draw(st.binary(max_size=64)))
        files = (csv.name, h5.name, folder.name)
        ds = outcome(lambda: WaveformDataset.from_path(folder), *files)
        event(f"loaded: {ds is not None}, clean: {case['clean']}")
        if ds is None:
            assert not case["clean"], "a valid STEAD folder refused"
            return
        try:
            _check_waveforms(ds, case, written, files)
        finally:
            ds.close()


def _check_waveforms(ds: WaveformDataset, case: dict, written: dict, files: tuple) -> None:
    """Every row kept with its label; each trace reads as finite (3, n) float32 (exactly the
    data written, for a clean case) or is one clear error; ``validate`` reports every problem
    ``read`` and ``lengths`` would meet."""
    if not case["csv_damage"]:  # explosions are their own category, left out (issue 15)
        kept = [r for r in case["rows"] if r["trace_category"] != "explosion"]
        assert len(ds) == len(kept), "rows dropped"
        assert len(ds.excluded) == len(case["rows"]) - len(kept)
        categories = [r["trace_category"] for r in kept]
        assert ds.labels.tolist() == [int(c.startswith("earthquake")) for c in categories]
    names = ds.metadata["trace_name"].astype(str).tolist()
    assert len(set(names)) == len(names), f"duplicate trace names accepted: {names}"
    reads = []
    for i in range(len(ds)):
        x = outcome(lambda i=i: ds.read(i), *files)
        reads.append(x)
        if x is None:
            assert not case["clean"], "a valid trace refused"
            continue
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == 3 and x.shape[1] >= 1
        assert np.isfinite(x).all()
        if case["clean"]:
            order = ds.metadata["channel_order"].iat[i] if "channel_order" in ds.metadata \
                else ""
            expected = _expected_trace(case["kinds"][names[i]], written[names[i]])
            np.testing.assert_array_equal(x[_channel_permutation(order)], expected)
    problems = ds.validate()
    event(f"problems: {min(len(problems), 2)}")
    for text in problems:
        assert "\n" not in text and any(f in text for f in files), text
    if problems:
        assert not case["clean"], problems
        return
    assert all(x is not None for x in reads), "validate() missed an unreadable trace"
    lengths = outcome(ds.lengths, *files)
    assert lengths is not None, "validate() passed but lengths() failed"
    assert lengths.tolist() == [x.shape[1] for x in reads], "lengths() disagree with reads"


SELECTIONS = ["{k},:3,:{n}", "{k}", "{k},:,:", "{k},0:3,0:{n}:1"]
BAD_SELECTIONS = ["x", "9,:3", "{k},:3,:{n},5", "{k},::0", "{k},::-1", "{k},1:2:3:4", "",
                  "{k},:2", "{k},:3,:0", "-9"]


@st.composite
def seisbench_folders(draw: st.DrawFn) -> dict:
    """SeisBench metadata.csv + waveforms.hdf5: bucket rows ``bucket0$k,:3,:n`` of a
    (rows, 3, n) dataset, layout facts in ``data_format``; ``clean`` as for STEAD."""
    n = draw(st.sampled_from([10, 25]))
    rows = draw(st.integers(1, 3))
    order, order_ok = draw(st.sampled_from([("ZNE", True), ("ENZ", True), (None, False),
                                            ("XYZ", False), ("ZN", False)]))
    dims, dims_ok = draw(st.sampled_from([("CW", True), ("NCW", True), (None, True),
                                          ("WC", False), ("garbage", True)]))
    sel_bad = draw(st.lists(st.tuples(st.integers(0, rows - 1),
                                      st.sampled_from(BAD_SELECTIONS)), max_size=1))
    categories = draw(st.lists(st.sampled_from(["noise", "earthquake"]), min_size=rows,
                               max_size=rows))
    names = [f"bucket0${draw(st.sampled_from(SELECTIONS)).format(k=k, n=n)}"
             for k in range(rows)]
    for k, bad in sel_bad:
        names[k] = f"bucket0${bad.format(k=k, n=n)}"
    return {"n": n, "order": order, "dims": dims, "categories": categories, "names": names,
            "clean": order_ok and dims_ok and not sel_bad and len(set(names)) == rows}


@given(case=seisbench_folders())
@fuzz(250)
def test_fuzz_seisbench_folder(case: dict) -> None:
    rows, n = len(case["names"]), case["n"]
    bucket = np.random.default_rng(rows).standard_normal((rows, 3, n)).astype(np.float32)
    with scratch() as folder:
        csv, h5 = folder / "metadata.csv", folder / "waveforms.hdf5"
        pd.DataFrame({"trace_name": case["names"], "trace_category": case["categories"],
                      "trace_p_arrival_sample": 3}).to_csv(csv, index=False)
        with h5py.File(h5, "w") as f:
            f.create_dataset("data/bucket0", data=bucket)
            for key in ("order", "dims"):
                if case[key] is not None:
                    name = "component_order" if key == "order" else "dimension_order"
                    f[f"data_format/{name}"] = case[key]
        files = (csv.name, h5.name)
        ds = outcome(lambda: WaveformDataset.from_path(folder), *files)
        if ds is None:
            assert not case["clean"], "a valid SeisBench folder refused"
            return
        try:
            assert ds.labels.tolist() == [int(c == "earthquake") for c in case["categories"]]
            reads = [outcome(lambda i=i: ds.read(i), *files) for i in range(rows)]
            lengths = outcome(ds.lengths, *files)
            problems = ds.validate()
        finally:
            ds.close()
    for x in reads:
        assert x is None or (x.dtype == np.float32 and x.shape[0] == 3 and x.shape[1] >= 1)
    if case["clean"]:
        assert not problems, problems
        perm = ["ZNE".index(c) if case["order"] == "ZNE" else "ENZ".index(c) for c in "ENZ"]
        for k, x in enumerate(reads):
            np.testing.assert_array_equal(x, bucket[k][perm])
    if not problems:
        assert all(x is not None for x in reads) and lengths is not None
        assert lengths.tolist() == [x.shape[1] for x in reads]


# ------------------------------------------------------------------------------ 2. catalogues
# A time layout and the UTC offset its text carries; the US layout is parsed by the layout
# guessed from its first value, so its days stay <= 12 (never read day-first).
TIME_LAYOUTS = [("%Y-%m-%d %H:%M:%S", 0), ("%Y-%m-%dT%H:%M:%S.%fZ", 0),
                ("%Y-%m-%dT%H:%M:%S+05:00", 5), ("%Y/%m/%d %H:%M:%S", 0), ("%Y-%m-%d", 0),
                ("%m/%d/%Y %H:%M:%S", 0)]
BAD_VALUES = {
    "time": ["notadate", "2005-02-30", "", "now", "today", "12:30", "12:30 2020", "March 2020",
             "1500-01-01", "2300-06-01", "2020-13-01", "-1"],
    "latitude": ["91", "-90.5", "abc", "", "nan", "inf", "1e400"],
    "longitude": ["361", "-180.01", "x", "", "-inf"],
    "magnitude": ["10.5", "-5.5", "big", "", "NaN", "inf"],
}
ALIASES = {"time": ["time", "datetime", "origin_time", "Time"],
           "latitude": ["latitude", "lat", "Latitude"],
           "longitude": ["longitude", "lon", "long", "lng", "LONGITUDE"],
           "magnitude": ["magnitude", "mag", "Mag"], "depth": ["depth", "depth_km"]}


@st.composite
def catalogue_rows(draw: st.DrawFn, max_rows: int = 5) -> list[dict]:
    """Rows of right values (time as a datetime and its text) with up to two faults."""
    rows = []
    for _ in range(draw(st.integers(0, max_rows))):
        when = draw(st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1)))
        layout, offset = draw(st.sampled_from(TIME_LAYOUTS))
        when = when.replace(day=min(when.day, 12)) if layout.startswith("%m") else when
        text = when.strftime(layout)
        exact = datetime.strptime(text.replace("+05:00", ""), layout.replace("+05:00", ""))
        lat, lon, mag = (draw(st.floats(lo, hi).map(lambda v: round(v, 3))) for lo, hi in
                         (LAT_RANGE, LON_RANGE, MAG_RANGE))
        rows.append({"time": text, "latitude": f"{lat}", "longitude": f"{lon}",
                     "magnitude": f"{mag}", "depth": draw(st.sampled_from(["5", "", "oops",
                                                                             "-1.5", "inf"])),
                     "expected": (exact - timedelta(hours=offset), lat, lon, mag), "bad": False})
    for field, k in draw(st.lists(st.tuples(st.sampled_from(list(BAD_VALUES)),
                                            st.integers(0, max_rows - 1)), max_size=2)):
        if rows:
            row = rows[k % len(rows)]
            row[field], row["bad"] = draw(st.sampled_from(BAD_VALUES[field])), True
    return rows


def _write_text(path: Path, text: str, gzipped: bool) -> None:
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if gzipped else text.encode())


def _read_both(path: Path) -> tuple[Catalog | None, Catalog | None, list, str | None]:
    """read_catalog with on_bad skip and error: the catalogues (None: a clear error naming the
    file), the skip's warnings and the error's message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skipped = outcome(lambda: read_catalog(path, on_bad="skip"), path.name)
    try:
        strict, message = read_catalog(path, on_bad="error"), None
    except ResattnError as exc:
        strict, message = None, assert_clear(exc, path.name)
    return skipped, strict, [w for w in caught if "catalogue" in str(w.message)], message


def _check_catalog(cat: Catalog, path: Path) -> None:
    """Times real and sorted, every value in range, depth finite or unknown (NaN)."""
    ev = cat.events
    assert list(ev.columns) == ["time", "latitude", "longitude", "magnitude", "depth"]
    assert not ev.time.isna().any() and ev.time.is_monotonic_increasing
    for col, (lo, hi) in (("latitude", LAT_RANGE), ("longitude", LON_RANGE),
                          ("magnitude", MAG_RANGE)):
        assert ev[col].between(lo, hi).all(), f"{col} out of range: {ev[col].tolist()}"
    assert not np.isinf(ev.depth).any(), f"infinite depth: {ev.depth.tolist()}"
    assert all(src == str(path) and row.line >= 1 and row.reason for src, row in cat.bad_rows)


@given(rows=catalogue_rows(), columns=st.fixed_dictionaries(
    {k: st.sampled_from(v) for k, v in ALIASES.items()}), depth=st.booleans(),
    blanks=st.lists(st.integers(0, 5), max_size=2), gzipped=st.booleans())
@fuzz(450)
def test_fuzz_generic_catalogue(rows: list[dict], columns: dict, depth: bool,
                                blanks: list[int], gzipped: bool) -> None:
    fields = ["time", "latitude", "longitude", "magnitude", *(["depth"] if depth else [])]
    lines = [",".join(columns[f] for f in fields)]
    for k, row in enumerate(rows):
        lines += [""] * blanks.count(k)
        lines.append(",".join(row[f] for f in fields))
    numbers = [n + 1 for n, text in enumerate(lines) if n and text]  # 1-based file lines
    bad_lines = [n for n, row in zip(numbers, rows, strict=True) if row["bad"]]
    with scratch() as folder:
        path = folder / ("events.csv.gz" if gzipped else "events.csv")
        _write_text(path, "\n".join(lines) + "\n", gzipped)
        skipped, strict, warned, message = _read_both(path)
    assert skipped is not None, "a CSV catalogue with the right header refused"
    _check_catalog(skipped, path)
    assert [r.line for _, r in skipped.bad_rows] == bad_lines
    assert len(warned) == (1 if bad_lines else 0)
    good = sorted((r["expected"] for r in rows if not r["bad"]), key=lambda e: e[0])
    assert skipped.events.time.tolist() == [pd.Timestamp(e[0]) for e in good]
    assert skipped.events.magnitude.tolist() == [e[3] for e in good]
    assert skipped.events.latitude.tolist() == [e[1] for e in good]
    if bad_lines:
        assert strict is None and f"line {bad_lines[0]}:" in message, message
    else:
        assert strict is not None and strict.events.equals(skipped.events)


LAYOUT_BAD_TIMES = {  # per layout: time texts that are wrong
    "scedc": ["2005/02/30 10:00:00.00", "notadate", "", "now", "1500/01/01 00:00:00.00"],
    "south_asia": ["2005,2,30,0,0,0", "abc,1,1,0,0,0", "2000,13,1,0,0,0", "2000,1,1,25,0,0",
                   "1500,1,1,0,0,0", "2000.5,1,1,0,0,0", ",,,,,"],
    "usgs": ["02/30/2005,10:00:00", "today,", "13/45/2000,00:00:00", "1500-01-01,00:00:00"],
}


def _layout_line(fmt: str, row: dict, kind: str) -> str:
    """One row of ``row`` (from catalogue_rows) in a real catalogue layout; ``kind`` is the
    event type (only earthquakes are kept)."""
    when = row["expected"][0]
    lat, lon, mag = row["latitude"], row["longitude"], row["magnitude"]
    if fmt == "scedc":
        time = row.get("layout_time", when.strftime("%Y/%m/%d %H:%M:%S.%f")[:-4])
        return f"{time},{kind},l,{mag},l,{lat},{lon},{row['depth']},C,1"
    if fmt == "south_asia":
        time = row.get("layout_time", when.strftime("%Y,%m,%d,%H,%M,%S"))
        return f"{time},{lat},{lon},{row['depth']},{mag},0.04"
    time = row.get("layout_time", when.strftime("%m/%d/%Y,%H:%M:%S"))
    return f"{time},{lat},{lon},{kind},{row['depth']},,,{mag},MW"


HEADERS = {
    "scedc": "time,event_type,geo_type,magnitude,mag_type,latitude,longitude,depth_km,quality,"
             "evid",
    "south_asia": "Year,Month,Day,Hour,Minute,Second,Latitude,Longitude,depth_km,Mw,Mw_std",
    "usgs": "Date,Time,Latitude,Longitude,Type,Depth,Depth Error,Depth Seismic Stations,"
            "Magnitude,Magnitude Type",
}
KEPT_TYPES = {"scedc": ("eq", ["qb", "EQ", "ex"]), "usgs": ("Earthquake", ["Nuclear Explosion",
                                                                           "earthquake"])}


@given(fmt=st.sampled_from(list(HEADERS)), rows=catalogue_rows(), data=st.data(),
       gzipped=st.booleans(), explicit=st.booleans())
@fuzz(250)
def test_fuzz_catalogue_layouts(fmt: str, rows: list[dict], data: st.DataObject,
                                gzipped: bool, explicit: bool) -> None:
    lines, kept, bad_lines = [HEADERS[fmt]], [], []
    for row in rows:
        row["expected"] = (row["expected"][0].replace(microsecond=0)
                           if fmt != "scedc" else row["expected"][0], *row["expected"][1:])
        if fmt == "scedc":
            t = row["expected"][0]
            row["expected"] = (t.replace(microsecond=t.microsecond // 10000 * 10000),
                               *row["expected"][1:])
        if row["time"] in BAD_VALUES["time"] and row["bad"]:  # a time fault: this layout's
            row["layout_time"] = data.draw(st.sampled_from(LAYOUT_BAD_TIMES[fmt]))
        good_type, other_types = KEPT_TYPES.get(fmt, ("", [""]))
        kind = good_type if data.draw(st.integers(0, 5)) else data.draw(
            st.sampled_from(other_types))
        lines.append(_layout_line(fmt, row, kind))
        if kind.lower() == good_type.lower():  # event types are compared case-insensitively
            kept.append(row)
            if row["bad"]:
                bad_lines.append(len(lines))
    with scratch() as folder:
        path = folder / ("cat.csv.gz" if gzipped else "cat.csv")
        _write_text(path, "\n".join(lines) + "\n", gzipped)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat = outcome(lambda: read_catalog(path, fmt=fmt if explicit else "auto"),
                          path.name)
    assert cat is not None, f"a {fmt} catalogue with the right header refused"
    _check_catalog(cat, path)
    assert [r.line for _, r in cat.bad_rows] == bad_lines
    good = sorted((r["expected"] for r in kept if not r["bad"]), key=lambda e: e[0])
    assert cat.events.time.tolist() == [pd.Timestamp(e[0]) for e in good]
    assert cat.events.magnitude.tolist() == [e[3] for e in good]


QUAKEML_EVENT = """<event publicID="smi:local/event/{k}"><type>{kind}</type>
<origin publicID="smi:local/origin/{k}"><time><value>{time}</value></time>
<latitude><value>{lat}</value></latitude><longitude><value>{lon}</value></longitude>
<depth><value>{depth}</value></depth></origin>
<magnitude publicID="smi:local/magnitude/{k}"><mag><value>{mag}</value></mag></magnitude>
</event>"""
QUAKEML = """<?xml version="1.0" encoding="utf-8"?>
<q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2" xmlns="http://quakeml.org/xmlns/bed/1.2">
<eventParameters publicID="smi:local/catalog">{events}</eventParameters></q:quakeml>
"""


def _quakeml(rows: list[dict]) -> str:
    events = "".join(QUAKEML_EVENT.format(
        k=k, kind="earthquake", time=r["expected"][0].isoformat() + "Z" if not r["bad"]
        else r["time"], lat=r["latitude"], lon=r["longitude"], mag=r["magnitude"],
        depth=r["depth"]) for k, r in enumerate(rows))
    return QUAKEML.format(events=events)


@given(fmt=st.sampled_from(["csv", "quakeml", *HEADERS]), rows=catalogue_rows(max_rows=3),
       gzipped=st.booleans(), data=st.data())
@fuzz(250)
def test_fuzz_catalogue_bytes(fmt: str, rows: list[dict], gzipped: bool,
                              data: st.DataObject) -> None:
    if fmt == "quakeml":
        text = _quakeml(rows)
    elif fmt == "csv":
        text = "\n".join(["time,lat,lon,mag,depth", *(",".join(
            r[f] for f in ("time", "latitude", "longitude", "magnitude", "depth"))
            for r in rows)])
    else:
        text = "\n".join([HEADERS[fmt], *(_layout_line(fmt, r, KEPT_TYPES.get(fmt, ("",))[0])
                                          for r in rows)])
    raw = gzip.compress(text.encode(), mtime=0) if gzipped else text.encode()
    suffix = ".xml" if fmt == "quakeml" else ".csv"
    with scratch() as folder:
        path = folder / f"events{suffix}{'.gz' if gzipped else ''}"
        path.write_bytes(data.draw(damaged(raw)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat = outcome(lambda: read_catalog(path, on_bad=data.draw(
                st.sampled_from(["skip", "error"]))), path.name)
    if cat is not None:
        _check_catalog(cat, path)


# ------------------------------------------------------------------------------ 3. images
IMAGE_DTYPES = ["|u1", "|u1", "|u1", "<f4", ">f8", "<i2", "<u2", "|b1"]
IMAGE_SHAPES = [(4, 5), (4, 5, 1), (4, 5, 3), (4, 5, 4), (3, 4, 5), (1, 1)]
# A fault an images .npz may carry: a member's value, or a member missing.
NPZ_FAULTS = ["complex", "text", "datetime", "negative", "above 255", "nan", "no height",
              "ndim 2", "ndim 5", "2 channels", "label -1", "label too big", "float labels",
              "2-D labels", "labels short", "names repeated", "names short", "one class",
              "no images", "no labels", "empty"]


@st.composite
def image_npz(draw: st.DrawFn) -> dict:
    """The members of an images ``.npz``: right ones (images of several dtypes and layouts,
    labels as numbers or names, class_names or not) with at most one fault."""
    n = draw(st.integers(2, 5))
    shape = (n, *draw(st.sampled_from(IMAGE_SHAPES)))
    dtype = np.dtype(draw(st.sampled_from(IMAGE_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    images = rng.uniform(0, 1 if dtype.kind == "f" else 255, shape).astype(dtype)
    k = draw(st.integers(2, 4))
    labels = np.r_[0, 1, rng.integers(0, k, n - 2)].astype(np.int64)
    as_names = draw(st.booleans())
    class_names = [f"c{c}" for c in range(k)] if draw(st.booleans()) else None
    fault = draw(st.sampled_from([None] * len(NPZ_FAULTS) + NPZ_FAULTS))
    images = {"complex": images.astype(np.complex64), "text": images.astype(str),
              "datetime": images.astype("datetime64[s]") if dtype.kind in "iu" else images,
              "negative": images.astype(np.float32) - 2, "above 255": images * 0 + 300.0,
              "nan": images * np.nan, "no height": images[:, :0], "ndim 2": images[:, 0],
              "ndim 5": images[..., None, None], "2 channels": np.stack([images] * 2, -1),
              "empty": images[:0]}.get(fault, images)
    labels = {"label -1": labels - 1, "label too big": labels + k, "one class": labels * 0,
              "float labels": labels + 0.5, "2-D labels": labels[:, None],
              "labels short": labels[:-1], "empty": labels[:0]}.get(fault, labels)
    if fault == "names repeated":  # (a fault seen by the test: members["fault"])
        class_names = ["a"] * k
    elif fault == "names short":
        class_names = ["c0"]
    members = {"images": images, "labels": np.array([f"c{v}" for v in labels])
               if as_names and fault != "float labels" else labels}
    if class_names is not None:
        members["class_names"] = np.array(class_names)
    for gone in ("images", "labels"):
        if fault == f"no {gone}":
            members.pop(gone)
    return {"members": members, "fault": fault}


@given(case=image_npz(), trap=st.booleans(), damage=st.integers(0, 2), data=st.data())
@fuzz(650)
def test_fuzz_image_npz(case: dict, trap: bool, damage: int, data: st.DataObject) -> None:
    from resattn.data.images import ImageDataset

    members = case["members"]
    with scratch() as folder:
        path = folder / "images.npz"
        extra = {"notes": np.array([_Trap()], dtype=object)} if trap else {}
        np.savez(path, **members, **extra)
        raw = path.read_bytes()
        mutated = data.draw(damaged(raw)) if damage == 0 else raw
        path.write_bytes(mutated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = outcome(lambda: ImageDataset.from_path(path), path.name)
        assert not PICKLE_RAN
        event(f"loaded: {ds is not None}")
        if ds is None:
            assert case["fault"] is not None or mutated != raw, "a valid .npz refused"
            return
        images = members["images"]
        assert len(ds) == len(images) == len(ds.labels)
        assert ((ds.labels >= 0) & (ds.labels < len(ds.class_names))).all()
        assert len(set(ds.labels.tolist())) >= 2
        for i in range(len(ds)):
            x = outcome(lambda i=i: ds.read(i), path.name)
            assert x is not None, "an image of a loaded .npz is unreadable"
            assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == ds.channels
            if mutated == raw and images.dtype == np.uint8 and images.ndim == 4 \
                    and images.shape[-1] == ds.channels:
                np.testing.assert_array_equal(x, images[i])


def _image_bytes(kind: str) -> bytes:
    """A tiny encoded image (cached: PIL's encoders cost more than the reading)."""
    if kind not in _IMAGES:
        from PIL import Image

        mode, fmt = kind.split(".")
        pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
        img = Image.fromarray(pixels).convert(mode)
        buf = io.BytesIO()
        img.save(buf, format={"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF",
                              "tif": "TIFF"}[fmt])
        _IMAGES[kind] = buf.getvalue()
    return _IMAGES[kind]


_IMAGES: dict[str, bytes] = {}
GOOD_IMAGES = ["L.png", "RGB.png", "RGB.jpg", "L.jpg", "P.png", "RGBA.png", "RGB.bmp",
               "P.gif", "L.tif"]
BAD_IMAGES = ["random", "empty", "cut", "text"]
CLASS_NAMES = ["CXR", "ChestCT", "a b", "0", "Hand"]
ARCHIVE_FAULTS = ["loose image", "empty class", "one class", "encrypted", "compression 99",
                  "cut archive", "random archive"]


@st.composite
def image_trees(draw: st.DrawFn) -> dict:
    """Members (path -> bytes) of class folders at some depth, hidden files beside them, a
    container (folder, zip, tar, tar.gz) and at most one fault."""
    root = draw(st.sampled_from(["", "MedNIST/", "data/train/"]))
    classes = draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=2, max_size=3, unique=True))
    members, labels = {}, {}
    for c in classes:
        for k in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(GOOD_IMAGES))
            members[f"{root}{c}/{k:03d}.{kind.split('.')[1]}"] = _image_bytes(kind)
            labels[f"{root}{c}/{k:03d}.{kind.split('.')[1]}"] = c
    if draw(st.booleans()):  # hidden files are not images of any class
        members[f"{root}.DS_Store"] = b"\0\1"
        members[f"__MACOSX/{root}{classes[0]}/._000.png"] = b"junk"
    bad = draw(st.sampled_from([None] * 8 + BAD_IMAGES))
    if bad is not None:
        name = next(iter(members))
        members[name] = {"random": draw(st.binary(min_size=1, max_size=64)), "empty": b"",
                         "cut": members[name][: len(members[name]) // 2],
                         "text": b"not an image\n"}[bad]
    fault = draw(st.sampled_from([None] * len(ARCHIVE_FAULTS) + ARCHIVE_FAULTS))
    container = draw(st.sampled_from(["folder", "zip", "zip-deflated", "tar", "tar.gz"]))
    if fault in ("encrypted", "compression 99", "cut archive", "random archive") \
            and container == "folder":
        fault = None
    if fault == "loose image":
        members["stray.png"] = _image_bytes("L.png")
    elif fault == "empty class":
        members[f"{root}Empty/notes.txt"] = b"no images here"
    elif fault == "one class":
        for name in [n for n, c in labels.items() if c != classes[0]]:
            members.pop(name)
            labels.pop(name)
    return {"members": members, "labels": labels, "bad": bad, "fault": fault,
            "container": container, "cut": draw(st.floats(0.05, 0.95)),
            "random": draw(st.binary(max_size=300))}


def _write_container(folder: Path, case: dict) -> Path:
    """The members in the case's container, with its archive fault applied."""
    members, container, fault = case["members"], case["container"], case["fault"]
    if container == "folder":
        root = folder / "images"
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root
    if container.startswith("zip"):
        path = folder / "images.zip"
        method = zipfile.ZIP_DEFLATED if container == "zip-deflated" else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w") as zf:
            for k, (name, data) in enumerate(members.items()):
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if fault == "compression 99" else method
                if k == 0 and fault == "encrypted":
                    info.flag_bits |= 0x1  # says "encrypted"; the data is not
                zf.writestr(info, data)
        raw = bytearray(path.read_bytes())
        if fault == "compression 99":  # first member, local header and central directory
            raw[8:10] = (99).to_bytes(2, "little")
            at = raw.find(b"PK\x01\x02")
            raw[at + 10: at + 12] = (99).to_bytes(2, "little")
    else:
        path = folder / f"images.{container}"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz" if container == "tar.gz" else "w") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        raw = bytearray(buf.getvalue())
    if fault == "cut archive":
        raw = raw[: int(len(raw) * case["cut"])]
    elif fault == "random archive":
        raw = bytearray(case["random"])
    path.write_bytes(bytes(raw))
    return path


@given(case=image_trees(), channels=st.sampled_from([None, 1, 3]),
       size=st.sampled_from([None, 6]))
@fuzz(450)
def test_fuzz_image_folders_and_archives(case: dict, channels: int | None,
                                         size: int | None) -> None:
    from resattn.data.archives import member_path
    from resattn.data.images import ImageDataset

    with scratch() as folder:
        path = _write_container(folder, case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = outcome(lambda: ImageDataset.from_path(path, size=size, channels=channels),
                         path.name)
        event(f"loaded: {ds is not None}")
        if ds is None:
            assert case["fault"] or case["bad"], "a valid image set refused"
            return
        try:
            assert case["fault"] not in ("loose image", "empty class", "one class")
            expected = {n: c for n, c in case["labels"].items() if n in case["members"]}
            assert ds.class_names == sorted(set(expected.values()))
            assert {member_path(p): ds.class_names[y] for p, y in zip(ds.paths, ds.labels,
                                                                      strict=True)} == expected
            for i in range(len(ds)):
                x = outcome(lambda i=i: ds.read(i), path.name)
                assert x is not None or case["bad"] or case["fault"], "a valid image unreadable"
                if x is not None:
                    assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == ds.channels
                    assert size is None or x.shape[:2] == (size, size)
        finally:
            ds.close()


@given(kind=st.sampled_from(GOOD_IMAGES), suffix=st.sampled_from([".png", ".jpg", ".tif"]),
       data=st.data())
@fuzz(250)
def test_fuzz_single_image_files(kind: str, suffix: str, data: st.DataObject) -> None:
    """What ``resattn predict`` reads for an image model: one file, decoded as in training."""
    from resattn.data.images import ImageDataset

    raw = _image_bytes(kind)
    mutated = data.draw(damaged(raw))
    with scratch() as folder:
        path = folder / f"face{suffix}"
        path.write_bytes(mutated)
        ds = outcome(lambda: ImageDataset.from_files([path], size=(8, 8), channels=1),
                     path.name)
        x = None if ds is None else outcome(lambda: ds.read(0), path.name)
        assert outcome(lambda: ImageDataset.from_path(path), path.name) is None
    assert ds is not None, "an existing file refused before decoding"
    if x is None:
        assert mutated != raw, "a valid image refused"
    else:
        assert x.dtype == np.uint8 and x.shape == (8, 8, 1)


# ------------------------------------------------------------------------------ 5. checkpoints
TINY = {"model": "cnn1d", "in_chans": 3, "num_classes": 2, "spec": [[4, 3, 1], "M"],
        "head_hidden": 8}
CONTRACT = {"kind": "waveform", "sampling_rate": 100.0, "components": "ENZ",
            "window_samples": 64, "bandpass_hz": None, "normalisation": "std",
            "p_position": 0.25, "class_names": ["noise", "earthquake"]}
_SAVED: dict[str, Any] = {}


def _saved_checkpoint() -> tuple[dict, bytes]:
    """A tiny real checkpoint (card, weights), saved once by ``save_model``."""
    if not _SAVED:
        import json

        from resattn.engine.checkpoint import save_model
        from resattn.models import create_model

        torch.manual_seed(0)
        model = create_model(TINY["model"], **{k: v for k, v in TINY.items() if k != "model"})
        with scratch() as folder:
            save_model(folder / "model", model, {
                "task": "waveform-classification", "contract": CONTRACT,
                "class_names": CONTRACT["class_names"], "preprocessing": {"window_samples": 64},
                "trainer": {"epoch": 1}, "optimizer": {"param_groups": []},
                "standardizer": {"mean": [0.0], "std": [1.0]}})
            _SAVED["card"] = json.loads((folder / "model.json").read_text())
            _SAVED["weights"] = (folder / "model.safetensors").read_bytes()
    return _SAVED["card"], _SAVED["weights"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats() | st.text(max_size=6)
    | st.sampled_from(["three", "3", "cnn1d", "resnet18_1d", "waveform-classification",
                       "image", "waveform", "ENZ", "", "model.safetensors"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["model", "kind", "in_chans", "window_samples", "x"]), inner,
        max_size=3), max_leaves=6)


def _paths(tree: Any, at: tuple = ()) -> list[tuple]:
    """Every key path into a JSON tree (the root is ``()``)."""
    out = [at]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*at, k))
    elif isinstance(tree, list):
        for k, v in enumerate(tree):
            out += _paths(v, (*at, k))
    return out


def _mutate(tree: Any, path: tuple, op: str, value: Any) -> Any:
    """``tree`` with the subtree at ``path`` replaced by ``value``, deleted, or (a dict key)
    renamed with a typo."""
    if not path:
        return value
    import copy

    tree = copy.deepcopy(tree)
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "rename" and isinstance(last, str):
        parent[last[:-1] + "_"] = parent.pop(last)
    else:
        parent[last] = value
    return tree


@given(mutations=st.lists(st.tuples(st.integers(0, 10**6),
                                    st.sampled_from(["replace", "delete", "rename"]),
                                    json_values), min_size=1, max_size=2))
@fuzz(500)
def test_fuzz_checkpoint_card(mutations: list) -> None:
    import json

    from resattn.contracts import contract_from_meta
    from resattn.engine.checkpoint import CHECK_VALUES, load_model
    from resattn.io import check_run_folder
    from resattn.pretrained import load_card
    from resattn.tasks.registry import task_of

    card, weights = _saved_checkpoint()
    for index, op, value in mutations:
        paths = _paths(card)
        card = _mutate(card, paths[index % len(paths)], op, value)
    with scratch() as folder:
        (folder / "model.json").write_text(json.dumps(card))
        (folder / "model.safetensors").write_bytes(weights)
        files = ("model.json", "model.safetensors", folder.name)
        meta = outcome(lambda: load_card(folder), *files)
        contract = None if meta is None else outcome(
            lambda: contract_from_meta(meta, str(folder)), *files)
        if meta is not None:
            outcome(lambda: task_of(meta, str(folder)), *files)
            outcome(lambda: check_run_folder(folder, "waveform-classification"), *files)
        loaded = outcome(lambda: load_model(folder), *files)
    event(f"loaded: {loaded is not None}, contract: {contract is not None}")
    if loaded is None or contract is None:  # without a contract nothing feeds the model
        return  # (predict and evaluate refuse it; see the strict xfail test below)
    model, _ = loaded
    shape = contract.input_shape
    if math.prod(shape) > CHECK_VALUES:  # load_model does not try such inputs either
        return
    with torch.no_grad():
        y = model(torch.zeros(2, *shape))
    assert y.shape == (2, len(contract.class_names)) and torch.isfinite(y).all()


TRAINER_STATE = {"epoch": 1, "monitor": "val_loss", "best_score": 0.5, "best_val_loss": 0.5,
                 "best_epoch": 1, "bad_epochs": 0, "plateau_bad": 0, "stopped_early": False}


def _tiny_training() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The TINY model and an AdamW that has taken one step (so it holds state tensors)."""
    from resattn.models import create_model

    torch.manual_seed(0)
    model = create_model(TINY["model"], **{k: v for k, v in TINY.items() if k != "model"})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 64)).sum().backward()
    optimizer.step()
    return model, optimizer


def _saved_training_state() -> tuple[dict, bytes]:
    """A tiny real ``last.*`` pair (card, weights), saved once by ``save_training_state``."""
    if "last" not in _SAVED:
        import json

        from resattn.engine.checkpoint import save_training_state

        with scratch() as folder:
            save_training_state(folder, *_tiny_training(), TRAINER_STATE)
            _SAVED["last"] = (json.loads((folder / "last.json").read_text()),
                              (folder / "last.safetensors").read_bytes())
    return _SAVED["last"]


def _with_header(raw: bytes, edit: Callable[[Any], Any]) -> bytes:
    """Safetensors bytes whose JSON header is ``edit(header)`` (its length prefix rewritten)."""
    import json

    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(edit(json.loads(raw[8:8 + n]))).encode()
    return len(header).to_bytes(8, "little") + header + raw[8 + n:]


header_values = json_values | st.sampled_from(
    ["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", "F8_E5M2", "Q4", "rng.torch",
     [0, 10**12], [8, 4], [-1], [2**63], [10**6, 10**6], []])


edits = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["replace", "delete", "rename"]),
                          header_values), min_size=1, max_size=2)


@given(which=st.sampled_from(["model", "last"]), digest=st.booleans(), prev=st.booleans(),
       fault=st.sampled_from([None, "header", "bytes", "card", "card", "header+bytes"]),
       header=edits, card_edit=edits, data=st.data())
@fuzz(350)
def test_fuzz_checkpoint_weights(which: str, digest: bool, prev: bool, fault: str | None,
                                 header: list, card_edit: list, data: st.DataObject) -> None:
    """Damaged safetensors bytes (the header's JSON edited, bytes cut or overwritten) or a
    damaged card, with or without the weights' digest, for a model and a training checkpoint
    (beside the previous whole one, ``last-prev.*``, or not)."""
    import json

    from resattn.engine.checkpoint import CheckpointWarning, load_model, load_training_state

    card, weights = _saved_checkpoint() if which == "model" else _saved_training_state()
    recorded, mutated, original = card["sha256"], weights, card
    for index, op, value in header if "header" in str(fault) else []:
        mutated = _with_header(mutated, lambda h, i=index, o=op, v=value: _mutate(
            h, _paths(h)[i % len(_paths(h))], o, v))
    if "bytes" in str(fault):
        mutated = data.draw(damaged(mutated))
    for index, op, value in card_edit if fault == "card" else []:
        card = _mutate(card, _paths(card)[index % len(_paths(card))], op, value)
    if not digest and isinstance(card, dict):
        card = {k: v for k, v in card.items() if k != "sha256"}
    stem = "model" if which == "model" else "last"
    with scratch() as folder:
        (folder / f"{stem}.json").write_text(json.dumps(card))
        (folder / f"{stem}.safetensors").write_bytes(mutated)
        if which == "last" and prev:
            (folder / "last-prev.json").write_text(json.dumps(original))
            (folder / "last-prev.safetensors").write_bytes(weights)
        files = (f"{stem}.json", f"{stem}.safetensors", folder.name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if which == "model":
                loaded = outcome(lambda: load_model(folder), *files)
                model = None if loaded is None else loaded[0]
            else:
                model, optimizer = _tiny_training()
                state = outcome(lambda: load_training_state(folder, model, optimizer), *files)
                model = None if state is None else model
        fell_back = [w for w in caught if issubclass(w.category, CheckpointWarning)]
        if fell_back:  # the previous whole pair is back in place, last-prev.* gone
            assert which == "last" and prev and model is not None
            assert (folder / "last.safetensors").read_bytes() == weights
            assert not (folder / "last-prev.json").exists()
    event(f"{which} {fault} loaded: {model is not None}, fell back: {bool(fell_back)}")
    if model is None:
        assert fault is not None or not digest, "a whole checkpoint refused"
        return
    if isinstance(card, dict) and card.get("sha256") == recorded and not fell_back:
        assert mutated == weights, "weights that differ from the recorded sha256 loaded"
    with torch.no_grad():
        y = model(torch.zeros(2, 3, 64))
    assert y.shape == (2, 2) and torch.isfinite(y).all()
    if which == "last":
        assert isinstance(state, dict)
        optimizer.zero_grad()
        model(torch.randn(2, 3, 64)).sum().backward()
        optimizer.step()  # the restored optimizer state works
        assert all(torch.isfinite(p).all() for p in model.parameters())


# ------------------------------------------------------------------------------ 6. configs
CONFIG_BASES = ("seed000_table2", "seed003_socal", "seed004_mednist", "seed002_fer")
_CONFIGS: dict[str, dict] = {}
config_values = json_values | st.sampled_from(
    [0, 1, -1, 2.5, "3", True, None, [], {}, "resnet18_1d", "cnn1d", "accuracy", "macro_f1",
     [1, 20], [0.9, 0.06, 0.04], "group", ["group"], "class", "../x", "adamw", "nan", 1e309])


def _config_base(name: str) -> dict:
    """A shipped experiment config, parsed once."""
    if name not in _CONFIGS:
        import yaml

        from conftest import REPO

        _CONFIGS[name] = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    return _CONFIGS[name]


def _typo_left(tree: Any, at: tuple) -> bool:
    """Whether the key a "rename" mutation made at ``at`` (``key`` -> ``key[:-1] + "_"``) is
    still in ``tree`` (a later mutation may have removed it or its parent)."""
    node = tree
    for k in at[:-1]:
        if not isinstance(node, dict | list) or (isinstance(node, dict) and k not in node) \
                or (isinstance(node, list) and not (isinstance(k, int) and k < len(node))):
            return False
        node = node[k]
    return isinstance(node, dict) and f"{at[-1][:-1]}_" in node


def _apply(tree: Any, mutations: list,
           unchecked: Callable[[tuple], bool] = lambda at: False) -> tuple[Any, list[tuple]]:
    """``tree`` with ``mutations`` (index, op, value) applied; the paths of the typos made
    (renamed keys), except those the reader cannot check (``unchecked``)."""
    typos = []
    for index, op, value in mutations:
        paths = _paths(tree)
        at = paths[index % len(paths)]
        if op == "rename" and at and isinstance(at[-1], str) and not unchecked(at):
            typos.append(at)
        tree = _mutate(tree, at, op, value)
    return tree, typos


def _unchecked_in_config(at: tuple) -> bool:
    """Keys load_experiment cannot check: the search space (``resattn tune`` checks it
    against the cell's model) and the class of a per-class published figure ("recall/anger":
    the classes are the data's)."""
    return at[0] == "search" or (len(at) > 2 and at[-2] == "published" and "/" in at[-1])


@given(base=st.sampled_from(CONFIG_BASES),
       mutations=st.lists(st.tuples(st.integers(0, 10**6),
                                    st.sampled_from(["replace", "delete", "rename"]),
                                    config_values), min_size=1, max_size=2))
@fuzz(350)
def test_fuzz_experiment_config(base: str, mutations: list) -> None:
    """A shipped config with keys misspelt, deleted or given values of any type: refused with
    the file named, or loaded with every section typed (never a typo or a wrong type kept)."""
    import yaml

    from resattn.models import list_models
    from resattn.reproduce import load_experiment

    raw, typos = _apply(_config_base(base), mutations, _unchecked_in_config)
    with scratch() as folder:
        path = folder / "configs" / "bad.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
        exp = outcome(lambda: load_experiment(path), path.name)
        event(f"loaded: {exp is not None}")
        if exp is None:
            return
        assert not [t for t in typos if _typo_left(raw, t)], f"a misspelt key accepted: {typos}"
        for key, kind in (("seeds", int), ("epochs", int), ("name", str), ("paper", str)):
            value = getattr(exp, key)
            assert isinstance(value, kind) and not isinstance(value, bool), (key, value)
        assert exp.seeds >= 1 and exp.epochs >= 1
        assert exp.metrics and all(isinstance(m, str) for m in exp.metrics)
        task = exp.registered_task
        for cell in exp.cells:
            assert isinstance(cell.name, str) and isinstance(cell.options, dict)
            assert cell.model in list_models() if cell.reference is None \
                else cell.reference in task.reference_names
            assert all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in cell.published.values()), cell.published
        for version in (exp, exp.quick_version()):
            assert version.options is not None
            version.train_config(0).validate()


SEARCH = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "batch_size": {"choices": [16, 32]},
          "weight_decay": {"low": 0.0, "high": 0.01, "step": 0.001},
          "model.drop_rate": {"low": 0.0, "high": 0.5}, "optimizer": ["adamw", "sgd"]}
search_values = json_values | st.sampled_from(
    [0, 1, -1, 0.5, 1e-3, "3", True, None, [], {}, [16, 32], [16, 16], ["adamw"], "adamw",
     {"low": 1, "high": 2}, {"choices": [1]}, {"low": 0.1, "high": 0.2, "log": True}, 1e309])


@given(wrapped=st.booleans(),
       mutations=st.lists(st.tuples(st.integers(0, 10**6),
                                    st.sampled_from(["replace", "delete", "rename"]),
                                    search_values), max_size=2))
@fuzz(350)
def test_fuzz_search_file(wrapped: bool, mutations: list) -> None:
    """A search-space file (``tune --search``) with keys misspelt, deleted or given values of
    any type: refused with the file named, or every key of it a parameter of the space, with
    the range or choices the file gives (never a key ignored)."""
    import yaml

    from resattn.tune.space import parse_search, read_search

    raw, typos = _apply({"search": SEARCH} if wrapped else SEARCH, mutations)
    with scratch() as folder:
        path = folder / "space.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
        space = outcome(lambda: parse_search(read_search(path), "cnn1d",
                                             where=f"{path}: search"), path.name)
    event(f"loaded: {space is not None}")
    if space is None:
        return
    assert not [t for t in typos if _typo_left(raw, t)], f"a misspelt key accepted: {typos}"
    spec = raw["search"] if isinstance(raw, dict) and "search" in raw else raw
    assert [p.name for p in space.params] == list(spec)
    for p in space.params:
        given_ = {"choices": spec[p.name]} if isinstance(spec[p.name], list) else spec[p.name]
        if p.kind == "categorical":
            assert list(p.choices) == given_["choices"]
        else:
            assert (p.low, p.high) == (given_["low"], given_["high"])
            assert p.log == given_.get("log", False) and p.step == given_.get("step")


# ------------------------------------------------------------------------------ 7. run logs
LOG_FAULTS = ["torn", "no newline", "garbage", "array", "repeat", "blank", "epoch text",
              "nested", "binary", "epoch 0"]


def _log_lines(n: int, faults: list[tuple[str, int]], cut: float) -> tuple[list, bool]:
    """Lines of a metrics.jsonl (text, row or None when it is not one) and whether the file
    ends with a newline: ``n`` epochs with ``faults`` (fault, position) applied."""
    import json

    lines: list[tuple[str, dict | None]] = []
    for epoch in range(1, n + 1):
        row = {"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 0.5 + epoch / 10,
               "val_f1": epoch / (n + 1), "lr": 1e-3}
        lines.append((json.dumps(row), row))
    newline = True
    for fault, k in faults:
        at = k % (len(lines) + 1)
        if fault == "torn" and lines and newline:
            text = lines[-1][0]
            lines[-1] = (text[: max(1, min(len(text) - 1, int(len(text) * cut)))], None)
            newline = False
        elif fault == "no newline":
            newline = False
        elif fault == "repeat" and lines and lines[at - 1][1] is not None:
            lines.insert(at, lines[at - 1])
        elif fault == "blank":
            lines.insert(at, (" " * k, None))
        elif fault in ("garbage", "array", "epoch text", "nested", "binary", "epoch 0"):
            lines.insert(at, ({"garbage": "{oops", "array": "[1, 2]", "nested": "[" * 3000,
                               "epoch text": '{"epoch": "3"}', "binary": "\udcff\udcfe",
                               "epoch 0": '{"epoch": 0}'}[fault], None))
    return lines, newline


def _expected_log(lines: list, newline: bool) -> tuple[list[dict], int | None, bool]:
    """What read_log must give: the rows, the 1-based line of the first error (None: none)
    and whether the last line is skipped (cut short)."""
    rows: list[dict] = []
    for number, (text, row) in enumerate(lines, start=1):
        if not text.strip():
            continue
        if row is not None and row["epoch"] > (rows[-1]["epoch"] if rows else 0):
            rows.append(row)
        elif number == len(lines) and not newline:
            return rows, None, True
        else:
            return rows, number, False
    return rows, None, False


@given(n=st.integers(0, 5), faults=st.lists(st.tuples(st.sampled_from(LOG_FAULTS),
                                                      st.integers(0, 6)), max_size=2),
       cut=st.floats(0, 1), upto=st.integers(0, 6))
@fuzz(350)
def test_fuzz_metrics_log(n: int, faults: list, cut: float, upto: int) -> None:
    """A run's metrics.jsonl, whole or damaged (a torn last append, a garbage line, a repeated
    or non-increasing epoch, binary bytes): read_log gives exactly its rows (the torn last
    line skipped with a warning) or one DataError naming the file and the line; resuming
    (RunLog) cuts it back to the checkpoint's epoch, or refuses and leaves it untouched."""
    from resattn.engine.tracking import LOG_NAME, LogWarning, RunLog, read_log

    lines, newline = _log_lines(n, faults, cut)
    rows, bad_line, skipped = _expected_log(lines, newline)
    text = "\n".join(t for t, _ in lines) + ("\n" if newline and lines else "")
    with scratch() as folder:
        path = folder / LOG_NAME
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        for call in (lambda: read_log(path, upto), lambda: RunLog(folder, upto, "off").close()):
            before = path.read_bytes()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    got = call()
                except DataError as exc:
                    assert_clear(exc, path.name)
                    assert bad_line is not None and f"line {bad_line}:" in str(exc), str(exc)
                    assert path.read_bytes() == before, "a refused log was rewritten"
                    continue
            assert bad_line is None, f"line {bad_line} accepted: {lines[bad_line - 1][0]!r}"
            assert len([w for w in caught if issubclass(w.category, LogWarning)]) == skipped
            kept = [r for r in rows if r["epoch"] <= upto]
            if got is not None:
                assert got == kept
            else:  # RunLog rewrote the file: exactly the kept rows, one per line
                assert read_log(path) == kept and path.read_text().endswith("\n" if kept else "")


RESUME_VALUES = json_values | st.sampled_from([-1, 0, 2, 10**9, 0.5, "val_f1", "bf16", "fp64",
                                               float("inf"), float("nan"), True, None])


def _trained_run() -> dict[str, bytes]:
    """The files of a one-epoch run of the TINY model (trained once)."""
    if "run" not in _SAVED:
        from resattn.engine import fit

        model, _ = _tiny_training()
        with scratch() as folder:
            fit(model, _toy_set(), _toy_set(), folder, _toy_recipe(1), show_progress=False)
            _SAVED["run"] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return _SAVED["run"]


def _toy_set() -> torch.utils.data.TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(8, 3, 64, generator=gen),
                                          torch.arange(8) % 2)


def _toy_recipe(epochs: int) -> Any:
    from resattn.engine import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=4, precision="fp32", tensorboard="off")


@given(mutations=st.lists(st.tuples(st.integers(0, 10**6),
                                    st.sampled_from(["replace", "delete", "rename"]),
                                    RESUME_VALUES), min_size=1, max_size=2),
       log=st.sampled_from([None, None, "torn", "garbage", "gone"]))
@fuzz(80)
def test_fuzz_resume_state(mutations: list, log: str | None) -> None:
    """``fit(resume=True)`` on a run whose last.json trainer state is damaged (fields deleted,
    misspelt, of any type) and whose metrics.jsonl may be torn, damaged or gone: one error
    naming the file, or a run that continues from its epoch with a log of one row per epoch."""
    import json

    from resattn.engine import fit
    from resattn.engine.tracking import read_log

    files = dict(_trained_run())
    card = json.loads(files["last.json"])
    state, _ = _apply(card["trainer"], mutations)
    files["last.json"] = json.dumps({**card, "trainer": state}).encode()
    text = files["metrics.jsonl"]
    files["metrics.jsonl"] = {None: text, "torn": text + b'{"epoch": 2, "tra',
                              "garbage": b"oops\n" + text, "gone": None}[log]
    with scratch() as folder:
        for name, data in files.items():
            if data is not None:
                (folder / name).write_bytes(data)
        model, _ = _tiny_training()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = outcome(lambda: fit(model, _toy_set(), _toy_set(), folder, _toy_recipe(3),
                                         resume=True, show_progress=False),
                             "last.json", "metrics.jsonl")
            rows = outcome(lambda: read_log(folder / "metrics.jsonl"), "metrics.jsonl")
    event(f"resumed: {result is not None}")
    if result is None:
        assert state != card["trainer"] or log == "garbage", "a whole run not resumed"
        return
    epochs = [r["epoch"] for r in result.history]
    assert epochs == sorted(set(epochs)) and rows is not None
    assert [r["epoch"] for r in rows] == epochs
    assert result.best_epoch <= max(result.epochs_run, 0)
