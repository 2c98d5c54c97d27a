"""Lazy reader for 3-component seismic traces stored as CSV metadata + HDF5 waveforms.

Two on-disk layouts are understood:

* STEAD: ``<name>.csv`` + ``<name>.hdf5`` (or ``.h5``); dataset ``data/<trace_name>`` of shape
  ``(n_samples, 3)``, channels E, N, Z.
* SeisBench: ``metadata.csv`` + ``waveforms.hdf5`` (also ``metadata_<chunk>.csv`` +
  ``waveforms_<chunk>.hdf5``); traces are ``data/<trace_name>`` or bucket notation
  ``bucket3$17,:3,:6000`` (dataset ``data/bucket3``, row 17). The per-trace dimension order and
  component order are read from the ``data_format`` group when present.

Only metadata is read when a dataset is opened; each waveform is read from HDF5 on demand.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from resattn.errors import ConfigError, DataError

__all__ = ["WaveformDataset"]

_H5_SUFFIXES = (".hdf5", ".h5")
_REQUIRED = ("trace_name", "trace_category")
# Columns whose values are identifiers: read them as text so "0012" or "1234" stay names.
_TEXT_COLUMNS = (
    "trace_name",
    "trace_category",
    "split_group",
    "record_id",
    "network_code",
    "receiver_code",
    "channel_order",
)
_DEFAULT_ORDER = "ENZ"  # STEAD stores E, N, Z
OTHER = -1  # label of a trace that is neither class (an explosion, a reviewed-out window)
REVIEW_NAME = "label_review.csv"  # a folder's label review: trace_name, verdict, evidence
# Verdicts of a label review that take a "noise" window out of training and scoring: a clear
# event, and a burst that may be one (an uncertain label is neither taught nor scored).
DROPPED_VERDICTS = ("event_in_window", "possible_event")
KEPT_VERDICTS = ("zero_gap", "dead_channel")  # noise all the same: hard negatives
_BUCKET = re.compile(r"^(?P<bucket>[^$]+)\$(?P<sel>.+)$")


@dataclass(frozen=True)
class _FileInfo:
    """Per-HDF5-file layout facts gathered once at open time."""

    path: Path
    csv: Path
    component_order: str  # e.g. "ENZ" or "ZNE"
    dimension_order: str | None  # "WC" = (n_samples, 3), "CW" = (3, n_samples), None = by shape


class _H5Files:
    """Lazily opened, per-process cache of read-only HDF5 handles, shared by subsets.

    h5py handles must not cross a fork (DataLoader workers) nor be pickled (spawn), so handles
    are tagged with the pid that opened them and dropped from pickled state.
    """

    def __init__(self, infos: list[_FileInfo]) -> None:
        self.infos = infos
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def get(self, k: int) -> h5py.File:
        if self._pid != os.getpid():
            # Inherited from the parent through fork: never reuse those handles in the child.
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(k)
        if handle is None:
            path = self.infos[k].path
            try:
                handle = h5py.File(path, "r")
            except OSError as exc:
                raise DataError(f"{path} is not a readable HDF5 file ({exc})") from exc
            self._handles[k] = handle
        return handle

    @property
    def n_open(self) -> int:
        return len(self._handles) if self._pid == os.getpid() else 0

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"infos": self.infos}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.infos = state["infos"]
        self._handles = {}
        self._pid = os.getpid()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        meta = pd.read_csv(path, dtype=dict.fromkeys(_TEXT_COLUMNS, str), low_memory=False)
    except Exception as exc:  # any parser/encoding/IO failure is a user-data problem
        raise DataError(f"cannot read metadata CSV {path}: {exc}") from exc
    for col in _REQUIRED:
        if col not in meta.columns:
            raise DataError(
                f"metadata CSV {path} has no column '{col}' (required: {', '.join(_REQUIRED)}; "
                f"found {list(meta.columns)[:12]})"
            )
    return meta


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _inspect_h5(path: Path, csv: Path) -> _FileInfo:
    """Open ``path`` once to check it is HDF5 with a ``data`` group; reads no waveforms."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc})") from exc
    with f:
        if not isinstance(f.get("data"), h5py.Group):
            raise DataError(
                f"HDF5 file {path} has no group 'data' (expected datasets 'data/<trace_name>')"
            )
        order, dims = _DEFAULT_ORDER, None
        fmt = f.get("data_format")
        if isinstance(fmt, h5py.Group):  # SeisBench keeps layout facts here
            if "component_order" in fmt:
                order = _decode(fmt["component_order"][()])
            if "dimension_order" in fmt:
                dims = _decode(fmt["dimension_order"][()]).upper()[-2:]
                dims = dims if dims in ("CW", "WC") else None
    return _FileInfo(path=path, csv=csv, component_order=order, dimension_order=dims)


def _h5_partner(csv: Path) -> Path | None:
    stems = [csv.stem]
    if csv.stem.startswith("metadata"):  # SeisBench: metadata[_chunk].csv <-> waveforms[_chunk]
        stems.append("waveforms" + csv.stem[len("metadata") :])
    for stem in stems:
        for suffix in _H5_SUFFIXES:
            candidate = csv.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def _lists_traces(csv: Path) -> bool:
    """Whether a CSV is waveform metadata: a ``trace_name`` column and a ``trace_category``
    one (STEAD) or a SeisBench ``metadata*`` name; other CSVs beside the data, such as a
    label review, are not."""
    try:
        with open(csv, newline="", errors="replace") as f:
            header = f.readline(1 << 16)
    except OSError:
        return False
    columns = {c.strip().strip('"') for c in header.split(",")}
    return "trace_name" in columns and ("trace_category" in columns
                                        or csv.stem.startswith("metadata"))


def _find_pairs(path: Path) -> list[tuple[Path, Path]]:
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if not (path.is_dir() or path.is_file()):
        raise DataError(f"data path {path} is not a regular file or folder (a FIFO or device?)")
    if path.is_dir():
        pairs = []
        for csv in sorted(path.glob("*.csv")):
            if not csv.is_file():  # a folder or a FIFO named like a CSV is not read (no hang)
                continue
            h5 = _h5_partner(csv)
            if h5 is not None:
                pairs.append((csv, h5))
            elif _lists_traces(csv):  # a waveform CSV whose HDF5 is missing: never skip it
                raise DataError(
                    f"metadata CSV {csv} lists traces (a 'trace_name' column) but has no HDF5 "
                    f"partner: expected the file {csv.with_suffix('.hdf5').name} next to it"
                )
        if not pairs:
            raise DataError(
                f"data directory {path} holds no CSV/HDF5 pair: expected '<name>.csv' next to "
                f"'<name>.hdf5' (STEAD) or 'metadata.csv' next to 'waveforms.hdf5' (SeisBench)"
            )
        return pairs
    if path.suffix.lower() in _H5_SUFFIXES:  # accept the HDF5 half of a pair too
        csv = path.with_suffix(".csv")
        if not csv.is_file():
            raise DataError(f"HDF5 file {path} has no metadata partner {csv.name} next to it")
        return [(csv, path)]
    if path.suffix.lower() != ".csv":
        raise DataError(f"data path {path} must be a directory, a .csv or an .hdf5 file")
    h5 = _h5_partner(path)
    if h5 is None:
        raise DataError(
            f"metadata CSV {path} has no HDF5 partner: expected {path.with_suffix('.hdf5').name}"
        )
    return [(path, h5)]


def _prepare(meta: pd.DataFrame, csv: Path, file_index: int) -> pd.DataFrame:
    """Add the derived columns (label, p_arrival_sample, group, station, _file) to one CSV."""
    meta = meta.copy()
    names = meta["trace_name"]
    if names.isna().any():
        row = int(np.flatnonzero(names.isna().to_numpy())[0])
        raise DataError(f"metadata CSV {csv}: field 'trace_name' is empty in data row {row + 1}")

    category = meta["trace_category"].astype(object)
    is_eq = category.str.startswith("earthquake").fillna(False).astype(bool)
    is_noise = (category == "noise").fillna(False).astype(bool)
    is_blast = (category == "explosion").fillna(False).astype(bool)
    bad = ~(is_eq | is_noise | is_blast)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"metadata CSV {csv}: field 'trace_category' has value {category.iloc[row]!r} "
            f"(trace {names.iloc[row]!r}); expected 'noise', 'explosion' or a value starting "
            "with 'earthquake'"
        )
    meta["category"] = np.select([is_eq, is_noise], ["earthquake", "noise"], "explosion")
    meta["label"] = np.select([is_eq, is_noise], [1, 0], OTHER).astype(np.int64)

    # SeisBench names the P pick 'trace_p_arrival_sample'; STEAD 'p_arrival_sample'.
    p_col = next(
        (c for c in ("p_arrival_sample", "trace_p_arrival_sample") if c in meta.columns), None
    )
    if p_col is None:
        meta["p_arrival_sample"] = np.nan
    else:
        raw = meta[p_col]
        p = pd.to_numeric(raw, errors="coerce")
        bad = p.isna() & raw.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"metadata CSV {csv}: field '{p_col}' has non-numeric value {raw.iloc[row]!r} "
                f"(trace {names.iloc[row]!r}); expected a sample index or empty"
            )
        meta["p_arrival_sample"] = p.astype(float)
        no_p = is_eq.to_numpy() & meta["p_arrival_sample"].isna().to_numpy()
        if no_p.any():  # an earthquake window is placed by its P pick: never guess it
            row = int(np.flatnonzero(no_p)[0])
            raise DataError(
                f"metadata CSV {csv}: field '{p_col}' is empty for earthquake trace "
                f"{names.iloc[row]!r} (data row {row + 1}); expected its P-arrival sample"
            )

    group = names.astype(object)
    for col in ("record_id", "split_group"):  # later columns take priority where present
        if col in meta.columns:
            group = meta[col].astype(object).where(meta[col].notna(), group)
    meta["group"] = group.astype(str)

    if "network_code" in meta.columns and "receiver_code" in meta.columns:
        net, rec = meta["network_code"].astype(object), meta["receiver_code"].astype(object)
        both = net.notna() & rec.notna()
        meta["station"] = (net.astype(str) + "." + rec.astype(str)).where(both, "").astype(str)
    else:
        meta["station"] = ""
    meta["source"] = _sources(meta, csv)
    meta["_file"] = file_index
    return meta


_ORIGIN_NAME = re.compile(r"^([A-Z][A-Za-z0-9]*) \(")  # "STEAD (via ...)", "CEB (...)"
_ORIGIN_REPO = re.compile(r"\bvia [\w.-]+/([\w.-]+)")  # "... via AI4EPS/PhaseNet ..."


def _sources(meta: pd.DataFrame, csv: Path) -> pd.Series:
    """Each row's source (the unit of leave-one-source-out): a ``source`` column where the CSV
    has one; else the origin its ``data_source`` text names ("STEAD (via ...)" -> STEAD,
    "... via AI4EPS/PhaseNet ..." -> PhaseNet); else the name of the CSV's folder."""
    folder = pd.Series(csv.resolve().parent.name, index=meta.index, dtype=object)
    if "source" in meta.columns:
        given = meta["source"].astype(object)
        return given.where(given.notna() & (given.astype(str).str.strip() != ""), folder) \
            .astype(str)
    if "data_source" not in meta.columns:
        return folder.astype(str)
    text = meta["data_source"].fillna("").astype(str)
    named = text.str.extract(_ORIGIN_NAME, expand=False)
    repo = text.str.extract(_ORIGIN_REPO, expand=False)
    return named.fillna(repo).fillna(folder).astype(str)


def _apply_review(meta: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """``meta`` with column ``review``: the verdict of the ``label_review.csv`` beside ``csv``
    on each noise window ("" if none); a window the review finds an event in gets label
    ``OTHER`` (never taught or scored as noise)."""
    meta["review"] = ""
    review = csv.with_name(REVIEW_NAME)
    if not review.is_file():
        return meta
    try:
        table = pd.read_csv(review, dtype=str)
    except Exception as exc:  # a user file: any parse failure is one message
        raise DataError(f"label review {review}: cannot read it as CSV ({exc})") from None
    missing = [c for c in ("trace_name", "verdict") if c not in table.columns]
    if missing:
        raise DataError(f"label review {review}: no column(s) {missing}; expected trace_name, "
                        f"verdict (and evidence), found {list(table.columns)[:8]}")
    verdicts = table["verdict"].fillna("").str.strip()
    unknown = ~verdicts.isin(DROPPED_VERDICTS + KEPT_VERDICTS)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(f"label review {review}: field 'verdict' has value "
                        f"{verdicts.iloc[row]!r} in data row {row + 1}; expected one of "
                        f"{list(DROPPED_VERDICTS + KEPT_VERDICTS)}")
    verdict = dict(zip(table["trace_name"].astype(str), verdicts, strict=True))
    noise = meta["category"].to_numpy() == "noise"
    meta.loc[noise, "review"] = meta.loc[noise, "trace_name"].map(verdict).fillna("")
    dropped = noise & meta["review"].isin(DROPPED_VERDICTS).to_numpy()
    meta.loc[dropped, "label"] = OTHER
    return meta


def _check_unique(meta: pd.DataFrame, csvs: list[Path]) -> None:
    """One row per trace: a repeated name would read one waveform twice (under two labels,
    perhaps) and put it on both sides of a split recorded by name."""
    names = meta["trace_name"]
    repeated = names.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    name = names.iloc[int(np.flatnonzero(repeated)[0])]
    rows = meta.groupby("_file").cumcount().to_numpy() + 1  # data row within its CSV
    (a, b) = np.flatnonzero((names == name).to_numpy())[:2]
    files = meta["_file"].to_numpy()
    second = f"data row {rows[b]}" + ("" if files[a] == files[b] else f" of {csvs[files[b]]}")
    raise DataError(f"metadata CSV {csvs[files[a]]}: field 'trace_name': expected unique "
                    f"trace names, got {name!r} in data row {rows[a]} and {second}")


def _parse_selection(spec: str) -> tuple[int | slice, ...]:
    """``"17,:3,:6000"`` -> ``(17, slice(None, 3), slice(None, 6000))``; ValueError if malformed
    (or a step below 1)."""
    parts: list[int | slice] = []
    for part in spec.split(","):
        part = part.strip()
        if ":" in part:
            bounds = [int(b) if b.strip() else None for b in part.split(":")]
            if len(bounds) > 3 or (len(bounds) == 3 and bounds[2] is not None and bounds[2] < 1):
                raise ValueError(part)  # HDF5 selections step forwards only
            parts.append(slice(*bounds))
        else:
            parts.append(int(part))
    return tuple(parts)


def _selection_shape(shape: tuple[int, ...], sel: tuple[int | slice, ...]) -> tuple[int, ...]:
    """Shape of ``dataset[sel]`` computed without reading any data."""
    out = [
        len(range(*s.indices(dim)))
        for s, dim in zip(sel, shape, strict=False)
        if isinstance(s, slice)
    ]
    return (*out, *shape[len(sel) :])


def _channels_first(shape: tuple[int, ...], dims: str | None) -> bool | None:
    """True if a trace of ``shape`` is (3, n), False if (n, 3), None if neither fits."""
    if len(shape) != 2:
        return None
    if dims == "CW" and shape[0] == 3:
        return True
    if dims == "WC" and shape[1] == 3:
        return False
    if shape[1] == 3:  # STEAD convention wins when ambiguous, e.g. (3, 3)
        return False
    if shape[0] == 3:
        return True
    return None


class WaveformDataset:
    """A lazily read collection of 3-component traces (CSV metadata + HDF5 waveforms).

    ``metadata`` has one row per trace with every CSV column plus ``label`` (1 earthquake,
    0 noise, ``OTHER`` neither), ``category`` (earthquake, noise, explosion), ``source``,
    ``review`` (a label review's verdict or ""), ``p_arrival_sample`` (float, NaN if unknown),
    ``group`` (split group), ``station`` (``network.receiver`` or ``""``) and ``_file`` (index
    of the trace's HDF5 file).
    ``read(i)`` returns one trace as a ``(3, n_samples)`` float32 array in ``components`` order.
    """

    def __init__(
        self, metadata: pd.DataFrame, files: _H5Files, components: str = _DEFAULT_ORDER
    ) -> None:
        self.metadata = metadata.reset_index(drop=True)
        self.components = components
        # Rows the reader left out (neither class): trace_name, category, source, review.
        self.excluded = pd.DataFrame(columns=["trace_name", "category", "source", "review"])
        self._files = files
        # Plain arrays: per-item lookups in a DataFrame are slow in a training loop.
        self._names = self.metadata["trace_name"].to_numpy(dtype=object)
        self._file_idx = self.metadata["_file"].to_numpy(dtype=np.int64)
        self._orders = (
            self.metadata["channel_order"].to_numpy(dtype=object)
            if "channel_order" in self.metadata.columns
            else None
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(cls, path: str | Path | Sequence[str | Path],
                  components: str = _DEFAULT_ORDER, keep_other: bool = False) -> WaveformDataset:
        """Open STEAD/SeisBench directories or single CSVs (each with its same-stem HDF5
        partner): one path, or several (each a source, or holding several: see ``source``).

        Reads and validates metadata only; no waveform is read. A folder's ``label_review.csv``
        is applied (column ``review``): noise windows it finds an event in
        (``DROPPED_VERDICTS``) are neither class. Traces that are neither class (those, and
        ``explosion`` traces) are left out into ``excluded`` unless ``keep_other`` (then their
        ``label`` is ``OTHER``: for scoring what a model says about them).
        """
        comps = str(components).upper()
        if len(comps) != 3 or len(set(comps)) != 3:
            raise ConfigError(f"components must be 3 distinct channel letters, got {components!r}")
        paths = [path] if isinstance(path, str | Path) else list(path)
        if not paths:
            raise ConfigError("no data path given; expected at least one folder or CSV")
        pairs = [pair for p in paths for pair in _find_pairs(Path(p))]
        infos, parts = [], []
        for k, (csv, h5) in enumerate(pairs):
            meta = _read_csv(csv)  # CSV problems are reported before HDF5 problems
            if len(meta) == 0:  # skipping it would silently drop a class
                raise DataError(f"metadata CSV {csv} holds a header but no trace rows")
            infos.append(_inspect_h5(h5, csv))
            parts.append(_apply_review(_prepare(meta, csv, k), csv))
        metadata = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if len(metadata) == 0:
            raise DataError(f"data path {path} holds no traces (all metadata CSVs are empty)")
        _check_unique(metadata, [info.csv for info in infos])
        other = (metadata["label"] == OTHER).to_numpy()
        excluded = metadata[other].reset_index(drop=True)
        if not keep_other:
            metadata = metadata[~other]
            if len(metadata) == 0:
                raise DataError(f"data path {path} holds no earthquake or noise trace (only "
                                f"{sorted(set(excluded['category']))})")
        dataset = cls(metadata, _H5Files(infos), comps)
        dataset.excluded = excluded[["trace_name", "category", "source", "review"]]
        return dataset

    def subset(self, indices: Sequence[int] | np.ndarray) -> WaveformDataset:
        """A view on the rows ``indices`` (positions); shares the HDF5 files and handle cache."""
        idx = np.asarray(indices, dtype=np.int64)
        view = WaveformDataset(self.metadata.iloc[idx], self._files, self.components)
        view.excluded = self.excluded
        return view

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def labels(self) -> np.ndarray:
        """``(n_traces,)`` int64 labels: 1 earthquake, 0 noise."""
        return self.metadata["label"].to_numpy(dtype=np.int64)

    @property
    def files(self) -> list[Path]:
        """HDF5 paths; ``metadata._file`` indexes this list."""
        return [info.path for info in self._files.infos]

    def _locate(self, i: int) -> tuple[h5py.Dataset, tuple[int | slice, ...] | None]:
        info = self._files.infos[self._file_idx[i]]
        name = str(self._names[i])
        group = self._files.get(int(self._file_idx[i]))["data"]
        match = _BUCKET.match(name)
        key, sel = (match["bucket"], match["sel"]) if match else (name, None)
        ds = group.get(key)
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"HDF5 file {info.path} has no dataset 'data/{key}' (trace {name!r})")
        if sel is None:
            return ds, None
        try:
            return ds, _parse_selection(sel)
        except ValueError as exc:
            raise DataError(
                f"trace {name!r} in {info.csv}: bad bucket selection {sel!r} "
                "(expected e.g. 'bucket3$17,:3,:6000')"
            ) from exc

    def _trace_shape(self, i: int) -> tuple[int, ...]:
        ds, sel = self._locate(i)
        return ds.shape if sel is None else _selection_shape(ds.shape, sel)

    def _permutation(self, i: int) -> np.ndarray | None:
        info = self._files.infos[self._file_idx[i]]
        order = info.component_order
        if self._orders is not None and isinstance(self._orders[i], str):
            order = self._orders[i]
        order = order.replace(",", "").replace(" ", "").upper()
        if order == self.components:
            return None
        if sorted(order) != sorted(self.components):
            raise DataError(
                f"trace {self._names[i]!r} in {info.path} has components {order!r}, "
                f"which cannot be reordered to {self.components!r}; pass components={order!r}"
            )
        return np.array([order.index(c) for c in self.components])

    def read(self, i: int) -> np.ndarray:
        """Read trace ``i`` from HDF5: ``(3, n_samples)`` float32, channels in ``components``."""
        info = self._files.infos[self._file_idx[i]]
        name = str(self._names[i])
        ds, sel = self._locate(i)
        try:
            raw = ds[()] if sel is None else ds[sel]
        except (ValueError, TypeError, IndexError, OSError) as exc:
            raise DataError(
                f"cannot read trace {name!r} from HDF5 file {info.path}: {exc}"
            ) from exc
        raw = np.asarray(raw)
        if raw.dtype.kind not in "iuf":  # complex, text, compound: casting would be wrong
            raise DataError(f"trace {name!r} in HDF5 file {info.path} holds {raw.dtype} "
                            "samples; expected real numbers (integer or float)")
        first = _channels_first(raw.shape, info.dimension_order)
        if first is None or 0 in raw.shape:
            raise DataError(
                f"trace {name!r} in HDF5 file {info.path} has shape {raw.shape}, "
                "expected (n_samples, 3) with n_samples >= 1"
            )
        x = np.asarray(raw if first else raw.T, dtype=np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"trace {name!r} in HDF5 file {info.path} contains NaN or Inf values")
        perm = self._permutation(i)
        if perm is not None:
            x = x[perm]
        return np.ascontiguousarray(x)

    def _declared_lengths(self) -> np.ndarray:
        """``(n_traces,)`` samples per trace as the metadata declares them (``n_samples``, STEAD;
        ``trace_npts``, SeisBench; the former wins), NaN where absent or not a count >= 1."""
        n = np.full(len(self), np.nan)
        for col in ("trace_npts", "n_samples"):  # later column takes priority
            if col in self.metadata.columns:
                values = pd.to_numeric(self.metadata[col], errors="coerce").to_numpy(float)
                with np.errstate(invalid="ignore"):
                    count = (values >= 1) & (values < 2.0**53) & (values % 1 == 0)
                n = np.where(count, values, n)
        return n

    def lengths(self) -> np.ndarray:
        """``(n_traces,)`` int64 samples per trace without reading waveforms.

        Uses the ``n_samples`` (STEAD) or ``trace_npts`` (SeisBench) column where it holds a
        count, else the HDF5 dataset shape; :meth:`validate` checks that the two agree.
        """
        n = self._declared_lengths()
        for i in np.flatnonzero(~np.isfinite(n)):  # only rows the metadata cannot answer
            shape = self._trace_shape(int(i))
            info = self._files.infos[self._file_idx[i]]
            first = _channels_first(shape, info.dimension_order)
            if first is None:
                raise DataError(
                    f"trace {self._names[i]!r} in HDF5 file {info.path} has shape {shape}, "
                    "expected (n_samples, 3)"
                )
            n[i] = shape[1] if first else shape[0]
        return n.astype(np.int64)

    def validate(self) -> list[str]:
        """Read every trace once; return one message per problem found (empty list if clean):
        an unreadable trace, a P pick outside it, a declared length it does not have."""
        problems: list[str] = []
        p = self.metadata["p_arrival_sample"].to_numpy(float)
        declared = self._declared_lengths()
        for i in range(len(self)):
            try:
                x = self.read(i)
            except DataError as exc:
                problems.append(str(exc))
                continue
            info = self._files.infos[self._file_idx[i]]
            if np.isfinite(p[i]) and not 0 <= p[i] < x.shape[1]:
                problems.append(
                    f"trace {self._names[i]!r} in {info.csv}: p_arrival_sample {p[i]:g} lies "
                    f"outside the trace of {x.shape[1]} samples"
                )
            if np.isfinite(declared[i]) and declared[i] != x.shape[1]:
                problems.append(
                    f"trace {self._names[i]!r} in {info.csv}: field 'n_samples' (or "
                    f"'trace_npts') declares {declared[i]:.0f} samples, but {info.path} holds "
                    f"{x.shape[1]}"
                )
        return problems

    def close(self) -> None:
        """Close the cached HDF5 handles (shared with subsets; they re-open lazily on read)."""
        self._files.close()

    def __getstate__(self) -> dict[str, Any]:
        # _H5Files drops its handles when pickled, so DataLoader workers re-open their own.
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=2) if len(self) else [0, 0]
        return (
            f"WaveformDataset({len(self)} traces: {counts[1]} earthquake, {counts[0]} noise; "
            f"{len(self._files.infos)} HDF5 file(s))"
        )
