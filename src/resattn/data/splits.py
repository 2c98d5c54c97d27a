"""Train/validation/test splits: grouped (related rows never straddle two parts), stratified by
class, recorded by item names, capped per class. Part positions are sorted int64 arrays."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from resattn.errors import ConfigError

__all__ = [
    "PARTS",
    "cap_per_class",
    "connected_groups",
    "grouped_parts",
    "grouped_split",
    "names_digest",
    "split_from_names",
    "stratified_split",
]

PARTS = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    try:
        frac = np.asarray([float(f) for f in fractions], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"split fractions must be 3 numbers, got {fractions!r}") from exc
    if frac.shape != (3,) or not np.isfinite(frac).all() or (frac < 0).any():
        raise ConfigError(
            f"split fractions must be 3 non-negative numbers (train, val, test), got {fractions!r}"
        )
    if abs(frac.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {fractions!r} (sum {frac.sum():g})")
    return frac


def connected_groups(metadata: pd.DataFrame, by: Sequence[str] = ("group",)) -> np.ndarray:
    """``(n_rows,)`` component id per row: rows sharing a value in any ``by`` column are joined.

    Empty strings and NaN connect nothing. Ids are the smallest row position in the component.
    """
    missing = [c for c in by if c not in metadata.columns]
    if missing:
        raise ConfigError(
            f"cannot split by {missing}: metadata has no such column "
            f"(available: {list(metadata.columns)[:20]})"
        )
    n = len(metadata)
    codes = []
    for col in by:
        values = metadata[col]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        code, _ = pd.factorize(values.where(~empty))  # NaN -> -1
        codes.append(np.asarray(code, dtype=np.int64))

    # Union-find by label propagation: every row takes the smallest label among rows sharing
    # a value, then pointer jumping flattens chains; repeat until nothing changes.
    comp = np.arange(n, dtype=np.int64)
    while True:
        before = comp.copy()
        for code in codes:
            has = code >= 0
            if not has.any():
                continue
            smallest = np.full(code.max() + 1, n, dtype=np.int64)
            np.minimum.at(smallest, code[has], comp[has])
            comp[has] = np.minimum(comp[has], smallest[code[has]])
        while not np.array_equal(nxt := comp[comp], comp):
            comp = nxt
        if np.array_equal(comp, before):
            return comp


def grouped_split(
    metadata: pd.DataFrame,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    by: Sequence[str] = ("group",),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split rows into (train, val, test) sorted int64 row positions, keeping groups together.

    Components (rows linked through any ``by`` column) are shuffled with ``seed`` (components
    above a quarter of the smallest part go first, largest first) and assigned one at a time to
    the part where they most reduce the squared error to the per-label row targets
    (``fraction * rows of that label``), so each part approaches its fraction and receives both
    labels when the data allow. Uses column ``label`` if present.
    """
    frac = _check_fractions(fractions)
    if isinstance(by, str):
        by = (by,)
    n = len(metadata)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()

    comp = connected_groups(metadata, by)
    comp_ids, comp_of_row = np.unique(comp, return_inverse=True)
    if "label" in metadata.columns:
        label_codes, _ = pd.factorize(metadata["label"], sort=True)
        label_codes = np.where(label_codes < 0, 0, label_codes)
    else:
        label_codes = np.zeros(n, dtype=np.int64)
    n_labels = int(label_codes.max()) + 1
    # counts[c, l]: rows of label l in component c.
    counts = np.zeros((len(comp_ids), n_labels), dtype=np.float64)
    np.add.at(counts, (comp_of_row, label_codes), 1.0)

    target = frac[:, None] * counts.sum(axis=0)[None, :]  # (3, n_labels)
    usable = frac > 0
    assigned = np.zeros_like(target)
    part_of_comp = np.empty(len(comp_ids), dtype=np.int64)

    # Seeded random order, except that components larger than a quarter of the smallest part
    # go first, largest first: placed late, they would overshoot whichever part they land in.
    shuffled = np.random.default_rng(seed).permutation(len(comp_ids))
    sizes = counts[shuffled].sum(axis=1)
    big = sizes > 0.25 * frac[usable].min() * n
    key = np.where(big, -sizes, 0.0)
    order = shuffled[np.argsort(key, kind="stable")]

    for c in order:  # loop over components (not samples); the arithmetic is 3 x n_labels
        # Cost = sum over parts and labels of (assigned - target)^2. Adding the component's
        # counts k to part p changes it by sum_l k (2 (a - t) + k); take the part with the
        # smallest change: parts fill towards their per-label targets (so both labels reach
        # val/test) and a component goes where there is room for it. Absolute rather than
        # relative errors, so a small part is not pushed far past its target.
        k = counts[c]
        delta = (k * (2.0 * (assigned - target) + k)).sum(axis=1)
        delta = np.where(usable, delta, math.inf)
        best = int(np.argmin(delta))  # ties -> lowest index (train first)
        part_of_comp[c] = best
        assigned[best] += k

    part_of_row = part_of_comp[comp_of_row]
    train, val, test = (np.flatnonzero(part_of_row == k).astype(np.int64) for k in range(3))
    return train, val, test


def grouped_parts(
    metadata: pd.DataFrame,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    by: Sequence[str] = ("group",),
) -> dict[str, np.ndarray]:
    """:func:`grouped_split` as ``{part: row positions}`` over :data:`PARTS`: rows sharing any
    ``by`` column (e.g. record, station) stay on one side."""
    if isinstance(by, str):
        by = (by,)
    missing = [c for c in by if c not in metadata.columns]
    if missing:
        raise ConfigError(f"cannot split by {missing}: columns available are "
                          f"{sorted(metadata.columns)}")
    return dict(zip(PARTS, grouped_split(metadata, fractions, seed=seed, by=by), strict=True))


def _largest_remainder(n: int, frac: np.ndarray) -> np.ndarray:
    """Integer part sizes summing to ``n``, each within 1 of ``n * frac``."""
    exact = n * frac
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def stratified_split(
    labels: Sequence[Any] | np.ndarray,
    fractions: Sequence[float] = (0.9, 0.06, 0.04),
    seed: int = 123,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split positions into (train, val, test) sorted int64 arrays, stratified by class.

    Without ``groups``: each class is shuffled with ``seed`` and cut by largest remainder, so
    every part holds within 1 image of ``fraction * class size`` (the MedNIST protocol is
    90/6/4 with seed 123; for repeated runs pass ``seed=run``). With ``groups`` (e.g. JAFFE
    subjects) the split is group-independent via :func:`grouped_split`: no group appears in two
    parts, class balance is approximate, and a part may be empty if groups are few and large.
    """
    frac = _check_fractions(fractions)
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ConfigError(f"labels must be 1-D (one per image), got shape {y.shape}")
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != y.shape:
            raise ConfigError(f"groups has shape {g.shape}; expected {y.shape}, like labels")
        meta = pd.DataFrame({"group": g.astype(str), "label": y})
        return grouped_split(meta, frac, seed=seed, by=("group",))
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):  # sorted class order: the same seed gives the same split
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.cumsum(_largest_remainder(len(idx), frac))[:-1]
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    train, val, test = (
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts
    )
    return train, val, test


def cap_per_class(parts: Mapping[str, np.ndarray], labels: np.ndarray,
                  n: int) -> dict[str, np.ndarray]:
    """A fixed random ``n`` positions per class of the ``train`` part and ``max(1, n // 4)`` of
    the others (all of a class if it has fewer); an empty part stays empty. The draw is seeded
    with ``n``, so a recorded cap reproduces its parts."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(n)
    out = {}
    for part, idx in parts.items():
        keep = n if part == "train" else max(1, n // 4)
        groups = [idx[labels[idx] == c] for c in np.unique(labels[idx])]
        out[part] = np.sort(np.concatenate([
            rng.choice(g, min(keep, len(g)), replace=False) for g in groups])) if groups else idx
    return out


def names_digest(names: Sequence[str]) -> str:
    """sha256 of sorted item names: identifies a split part independent of item order."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def split_from_names(
    names: Sequence[str], split: Mapping[str, Sequence[str]], ignore: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Positions in ``names`` of the names listed per part (``split.json`` layout: ``{"train":
    [...], "val": [...], "test": [...]}``; a part not listed is empty). Names in ``ignore``
    (traces the reader left out, e.g. by a label review) may be listed without being there."""
    names = pd.Series(list(names), dtype=object).astype(str)
    parts = {}
    for part in PARTS:
        wanted = pd.Index(split.get(part, []), dtype=str)
        unknown = wanted.difference(names).difference(pd.Index(list(ignore), dtype=str))
        if len(unknown):
            raise ConfigError(f"split part {part!r} names {len(unknown)} trace(s) not in the data, "
                              f"e.g. {unknown[0]!r}")
        parts[part] = np.flatnonzero(names.isin(wanted).to_numpy())
    return parts
