"""Detection scores broken down by what a trace's metadata says about it: its source, the SNR
of its event, the kind of instrument that recorded it.

A seismologist judges a detector on their own network, so every table here is per group:
``n``, accuracy, precision, recall, F1, ROC-AUC and the false-alarm rate (the share of noise
windows called earthquakes). A score a group cannot have (recall without earthquakes, ROC-AUC
without both classes) is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

SNR_BINS = (-np.inf, 10.0, 20.0, 30.0, np.inf)  # dB; noise windows have no SNR
SNR_LABELS = ("<10 dB", "10-20 dB", "20-30 dB", ">=30 dB")
# SEED band + instrument codes (a channel's first two letters) by the kind of sensor, as the
# data's documentation lists them (STEAD's HL channels are accelerometers).
VELOCITY, ACCELERATION = "velocity", "acceleration"
_INSTRUMENT = {**dict.fromkeys(("HH", "BH", "EH", "SH", "DP", "EL", "EP", "HP"), VELOCITY),
               **dict.fromkeys(("HN", "HL", "BN", "EN", "HG", "LN"), ACCELERATION)}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (the chance a random positive outscores a random negative,
    ties counted half); None without both classes."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_scores(labels: np.ndarray, p_event: np.ndarray, threshold: float = 0.5) -> dict:
    """``n``, accuracy, precision, recall, F1, ROC-AUC, false-alarm rate and the counts of a
    binary detector (label 1 = event) whose event probabilities are ``p_event``."""
    y = np.asarray(labels).astype(bool)
    called = np.asarray(p_event, dtype=np.float64) >= threshold
    tp, fp = int((y & called).sum()), int((~y & called).sum())
    fn, tn = int((y & ~called).sum()), int((~y & ~called).sum())

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else
          (0.0 if tp + fp + fn else None))
    return {"n": len(y), "n_events": tp + fn, "n_noise": tn + fp,
            "accuracy": ratio(tp + tn, len(y)), "precision": precision, "recall": recall,
            "f1": f1 if tp + fn else None, "roc_auc": roc_auc(y, p_event),
            "false_alarm_rate": ratio(fp, tn + fp), "missed": fn, "false_alarms": fp}


def snr_db(meta: pd.DataFrame) -> np.ndarray:
    """Each trace's SNR in dB, the mean over its channels: ``snr_db`` as a number or a
    STEAD-style "[E N Z]" text, else ``snr_db_mean``; NaN where unknown."""
    out = np.full(len(meta), np.nan)
    for column in ("snr_db_mean", "snr_db"):  # the later one wins where it is known
        if column not in meta.columns:
            continue
        text = meta[column].astype(str).str.strip("[] ").str.split()
        values = text.map(lambda parts: _mean_number(parts)).to_numpy(dtype=np.float64)
        out = np.where(np.isfinite(values), values, out)
    return out


def _mean_number(parts: Sequence[str] | float) -> float:
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        return np.nan
    finite = [v for v in numbers if np.isfinite(v)]
    return float(np.mean(finite)) if finite else np.nan


def snr_bins(meta: pd.DataFrame) -> np.ndarray:
    """Each trace's SNR bin (``SNR_LABELS``), or "unknown"."""
    snr = snr_db(meta)
    index = np.digitize(snr, SNR_BINS[1:-1])
    return np.where(np.isfinite(snr), np.asarray(SNR_LABELS, dtype=object)[index], "unknown")


def instrument_kinds(meta: pd.DataFrame) -> np.ndarray:
    """velocity or acceleration from ``receiver_type`` (the SEED band + instrument code,
    e.g. HH, HN; see ``_INSTRUMENT``), else "unknown"."""
    if "receiver_type" not in meta.columns:
        return np.full(len(meta), "unknown", dtype=object)
    code = meta["receiver_type"].fillna("").astype(str).str.strip().str.upper()
    return code.map(_INSTRUMENT).fillna("unknown").to_numpy(dtype=object)


def breakdown(labels: np.ndarray, p_event: np.ndarray, meta: pd.DataFrame,
              threshold: float = 0.5) -> dict[str, dict[str, dict]]:
    """Detection scores per source, per SNR bin (events; noise windows have none) and per
    instrument kind, as ``{"source": {name: scores}, "snr": {...}, "instrument": {...}}``."""
    labels, p_event = np.asarray(labels), np.asarray(p_event, dtype=np.float64)
    groups = {"source": meta["source"].astype(str).to_numpy() if "source" in meta.columns
              else np.full(len(meta), "all", dtype=object),
              "snr": snr_bins(meta), "instrument": instrument_kinds(meta)}
    table = {}
    for by, values in groups.items():
        rows = {}
        order = {label: k for k, label in enumerate(SNR_LABELS)}  # bins low to high
        for name in sorted(set(values), key=lambda v: (order.get(v, len(order)), str(v))):
            keep = values == name
            if by == "snr":  # an SNR is an event's: score recall on the events of the bin
                keep &= labels == 1
            if keep.any():
                rows[str(name)] = detection_scores(labels[keep], p_event[keep], threshold)
        table[by] = rows
    return table
