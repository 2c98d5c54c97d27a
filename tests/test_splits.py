"""Tests for resattn.data.splits helpers brought from the task modules: grouped parts, parts
from recorded names, per-class caps and name digests.

The expected parts were produced at commit 8d8a8ca by the task versions
(``tasks.waveforms.split_indices`` / ``split_from_names``, ``tasks.images.cap_per_class`` /
``names_digest``). Committed results were split with them, so these values must not change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import resattn.data
from resattn.data import WaveformDataset
from resattn.data.splits import (
    PARTS,
    cap_per_class,
    grouped_parts,
    names_digest,
    split_from_names,
    stratified_split,
)
from resattn.errors import ConfigError

SAMPLE = Path(resattn.data.__file__).resolve().parents[1] / "sample" / "seismic"

# grouped_parts(sample metadata, seed, (0.8, 0.1, 0.1), by) as split_indices gave them.
EXPECTED = {
    (0, ("group",)): {
        "train": [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 16, 17, 18, 19, 20, 21, 22, 23, 25,
                  26, 27, 28, 30],
        "val": [13, 15, 29, 31],
        "test": [8, 24],
    },
    (0, ("group", "station")): {
        "train": [0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 27,
                  28, 29, 30, 31],
        "val": [8, 10, 24, 26],
        "test": [9, 25],
    },
    (1, ("group",)): {
        "train": [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18, 19, 20, 21, 23, 24, 25,
                  26, 28, 29, 30],
        "val": [11, 15, 27, 31],
        "test": [6, 22],
    },
    (1, ("group", "station")): {
        "train": [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 26, 27,
                  28, 29, 30, 31],
        "val": [7, 9, 23, 25],
        "test": [8, 24],
    },
}


@pytest.fixture(scope="module")
def sample() -> WaveformDataset:
    ds = WaveformDataset.from_path(SAMPLE)
    yield ds
    ds.close()


def _names(ds: WaveformDataset) -> list[str]:
    return ds.metadata["trace_name"].astype(str).tolist()


def _generated() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """200 labels in 4 classes and their stratified 70/20/10 parts (seed 5)."""
    labels = np.random.default_rng(7).integers(0, 4, 200)
    return labels, dict(zip(PARTS, stratified_split(labels, (0.7, 0.2, 0.1), seed=5), strict=True))


def test_parts_constant_and_package_exports() -> None:
    assert PARTS == ("train", "val", "test")
    for name in ("PARTS", "cap_per_class", "grouped_parts", "names_digest", "split_from_names",
                 "stratified_split", "grouped_split", "connected_groups", "ImageDataset",
                 "JAFFE_CLASSES", "WaveformDataset"):
        assert name in resattn.data.__all__ and hasattr(resattn.data, name), name


@pytest.mark.parametrize(("seed", "by"), list(EXPECTED))
def test_grouped_parts_reproduce_the_task_split_on_the_sample(
    sample: WaveformDataset, seed: int, by: tuple[str, ...]
) -> None:
    parts = grouped_parts(sample.metadata, seed, (0.8, 0.1, 0.1), by)
    assert tuple(parts) == PARTS
    assert {k: v.tolist() for k, v in parts.items()} == EXPECTED[seed, by]
    assert all(v.dtype == np.int64 for v in parts.values())
    for col in by:  # no value of a split column on two sides
        seen = [set(sample.metadata[col].iloc[v]) for v in parts.values()]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert grouped_parts(sample.metadata, seed, by=by)["val"].tolist() == EXPECTED[seed, by]["val"]


def test_grouped_parts_errors_name_the_missing_column(sample: WaveformDataset) -> None:
    with pytest.raises(ConfigError, match=r"cannot split by \['nope'\]: columns available .*"
                                          r"'receiver_code'"):
        grouped_parts(sample.metadata, 0, by=("group", "nope"))
    with pytest.raises(ConfigError, match=r"cannot split by \['nope'\]"):  # a bare string
        grouped_parts(sample.metadata, 0, by="nope")
    with pytest.raises(ConfigError, match="sum to 1"):
        grouped_parts(sample.metadata, 0, (0.8, 0.1, 0.2))


def test_split_from_names_inverts_a_recorded_split(sample: WaveformDataset) -> None:
    names = _names(sample)
    parts = grouped_parts(sample.metadata, 0)
    recorded = {k: [names[i] for i in v][::-1] for k, v in parts.items()}  # order is irrelevant
    back = split_from_names(names, recorded)
    assert tuple(back) == PARTS
    assert all(np.array_equal(back[k], parts[k]) for k in PARTS)
    picked = split_from_names(np.array(names), {"train": names[:3], "val": names[10:12],
                                                "test": [names[31]]})
    assert {k: v.tolist() for k, v in picked.items()} == {
        "train": [0, 1, 2], "val": [10, 11], "test": [31]}
    assert split_from_names(pd.Series(names), {"val": [names[5]]})["train"].size == 0


def test_split_from_names_error_names_the_part_and_an_unknown_name(
    sample: WaveformDataset,
) -> None:
    names = _names(sample)
    with pytest.raises(ConfigError, match=r"split part 'val' names 2 trace\(s\) not in the data, "
                                          r"e\.g\. 'missing_a'"):
        split_from_names(names, {"train": names[:2], "val": ["missing_b", names[3], "missing_a"]})


def test_cap_per_class_reproduces_the_task_draw_on_generated_labels() -> None:
    labels, parts = _generated()
    capped = cap_per_class(parts, labels, 3)
    assert {k: v.tolist() for k, v in capped.items()} == {
        "train": [17, 43, 63, 88, 97, 122, 123, 144, 145, 153, 159, 168],
        "val": [38, 67, 113, 124],
        "test": [73, 77, 103, 164],
    }
    for part, keep in (("train", 3), ("val", 1), ("test", 1)):
        assert set(capped[part]) <= set(parts[part])
        assert np.bincount(labels[capped[part]], minlength=4).tolist() == [keep] * 4
    big = cap_per_class(parts, labels, 1000)  # fewer than the cap: all of every class
    assert all(np.array_equal(big[k], parts[k]) for k in PARTS)
    again = cap_per_class(parts, labels, 3)
    assert all(np.array_equal(again[k], capped[k]) for k in PARTS)


def test_cap_per_class_keeps_an_empty_part_empty() -> None:
    labels, parts = _generated()
    parts["test"] = parts["test"][:0]
    capped = cap_per_class(parts, labels, 3)
    assert capped["test"].size == 0 and capped["train"].size == 12


def test_names_digest_is_order_free_sha256_of_sorted_names() -> None:
    assert names_digest(["b/2.png", "a/1.png"]) == (
        "4cd3e42f19fb65b39e0262254ad910e11cb97da63c54296ce4a6c9dc4a8c3610")
    assert names_digest(["a/1.png", "b/2.png"]) == names_digest(("b/2.png", "a/1.png"))
    assert names_digest(["a/1.png"]) != names_digest(["a/1.png", "b/2.png"])
    assert names_digest([]) == hashlib.sha256(b"").hexdigest()
