"""Leave-one-source-out: train on every source but one, score the one left out, for each.

A seismologist judges a detector on their own network: the figure that matters is the one on
a source the model has never seen. ``leave_one_source_out`` runs one training per source
(``<out>/holdout-<source>``, each resumable), scores the held-out source with the breakdown
of :mod:`resattn.eval.breakdown`, scores reference models (e.g. the shipped detector) on the
same traces, and writes ``<out>/loso.json`` and ``<out>/loso.md``. A source never appears on
both sides: its traces are the test part, the others' the train and validation parts.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..contracts import contract_from_meta
from ..data.splits import grouped_parts
from ..data.waveforms import OTHER, WaveformDataset
from ..engine.checkpoint import MODEL_STEM, load_model
from ..errors import ConfigError
from ..eval.breakdown import detection_scores
from ..io import atomic_write_json, atomic_write_text, read_json
from ..pretrained import checkpoint_stem, load_any
from .base import TrainSpec
from .registry import data_paths
from .waveforms import WAVEFORMS, WaveformOptions, eval_windows

VAL_FRACTION = 0.15  # of the training sources' traces, by group, for early stopping
SCORES = ("n", "recall", "false_alarm_rate", "precision", "f1", "accuracy", "roc_auc")


def fold_names(dataset: WaveformDataset, held_out: str, by: str, seed: int,
               split_by: tuple[str, ...]) -> dict[str, list[str]]:
    """Trace names per part for holding out ``held_out``: test = its traces, train and val =
    the other sources' traces split by ``split_by`` groups (``VAL_FRACTION`` to val)."""
    meta = dataset.metadata
    if by not in meta.columns:
        raise ConfigError(f"cannot hold out by {by!r}: the data has no such column; expected "
                          f"one of {sorted(c for c in meta.columns if not c.startswith('_'))}")
    test = meta[by].astype(str).to_numpy() == held_out
    rest = meta[~test].reset_index(drop=True)
    parts = grouped_parts(rest, seed, fractions=(1 - VAL_FRACTION, VAL_FRACTION, 0.0),
                          by=split_by)
    names = rest["trace_name"].astype(str).to_numpy()
    return {"train": names[parts["train"]].tolist(), "val": names[parts["val"]].tolist(),
            "test": meta["trace_name"][test].astype(str).tolist()}


def _folder(source: str) -> str:
    return "holdout-" + re.sub(r"[^A-Za-z0-9._-]+", "_", source)


def leave_one_source_out(spec: TrainSpec, by: str = "source",
                         references: tuple[str, ...] = ()) -> dict:
    """Train ``spec`` once per value of column ``by`` with that value's traces held out, and
    score each held-out part (and ``references``, models scored as they are on the same
    traces). ``spec.out`` holds one run folder per fold and the table; a rerun resumes."""
    out = Path(spec.out)
    WAVEFORMS.recipe(spec)  # a bad recipe (a negative seed) fails before any data is read
    options = spec.options or WaveformOptions()
    if options.split is not None:
        raise ConfigError("--split: leave-one-out makes its own splits (one per held-out "
                          f"{by}); expected no --split")
    refs = {ref: load_model(checkpoint_stem(ref, "--reference")) for ref in references}
    dataset = WaveformDataset.from_path(spec.data, keep_other=True)
    labelled = dataset.subset(np.flatnonzero(dataset.labels != OTHER))
    values = sorted(set(labelled.metadata[by].astype(str))) if by in labelled.metadata else []
    if len(values) < 2:
        raise ConfigError(f"--by {by!r}: leave-one-out needs a metadata column with at least "
                          f"2 values, got {values[:5] if values else 'no such column'}")
    table: dict[str, dict] = {}
    for value in values:
        names = fold_names(labelled, value, by, spec.seed, options.split_by)
        if not names["train"] or not names["val"]:
            raise ConfigError(f"holding out {by}={value!r} leaves too few training groups")
        fold = out / _folder(value)
        if not (fold / "test_metrics.json").is_file():
            WAVEFORMS.train(replace(spec, out=fold, resume="auto",
                                    options=replace(options, split=names)))
        table[value] = {"model": _score_fold(fold, dataset, by, value, spec)}
        for ref, (net, meta) in refs.items():
            table[value][ref] = _score(net, meta, dataset, by, value, spec)
        table[value]["train_sources"] = [v for v in values if v != value]
    result = {"by": by, "data": [str(p) for p in data_paths(spec.data)], "model": spec.model,
              "references": list(references), "folds": table}
    atomic_write_json(out / "loso.json", result)
    atomic_write_text(out / "loso.md", loso_markdown(result))
    return result


def _score_fold(fold: Path, dataset: WaveformDataset, by: str, value: str,
                spec: TrainSpec) -> dict:
    scored = fold / "loso_scores.json"
    if scored.is_file():
        return read_json(scored)
    net, meta = load_any(fold / f"{MODEL_STEM}.safetensors")
    scores = _score(net, meta, dataset, by, value, spec)
    atomic_write_json(scored, scores)
    return scores


def _score(net, meta: dict, dataset: WaveformDataset, by: str, value: str,
           spec: TrainSpec) -> dict:
    """The model's scores on the held-out traces of ``by == value`` (and what it calls the
    traces there that are neither class)."""
    rows = dataset.metadata[by].astype(str).to_numpy() == value
    labels = dataset.labels
    held = dataset.subset(np.flatnonzero(rows & (labels != OTHER)))
    other = dataset.subset(np.flatnonzero(rows & (labels == OTHER)))
    windows = eval_windows(held, contract_from_meta(meta))
    metrics = WAVEFORMS.score_traces(net, meta, windows, other,
                                     precision=spec.recipe.precision)
    scores = detection_scores(metrics["labels"], metrics["probabilities"])
    return {**scores, "breakdown": metrics["breakdown"], "other": {
        k: {"n": v["n"], "called_earthquake": v["called_earthquake"]}
        for k, v in metrics["other"].items()},
        "errors": [t | {"p_earthquake": round(float(p), 6), "label": int(y)}
                   for t, p, y in zip(metrics["traces"], metrics["probabilities"],
                                      metrics["labels"], strict=True)
                   if (p >= 0.5) != bool(y)]}


def loso_markdown(result: dict) -> str:
    """The leave-one-out table: per held-out value, the trained model's scores beside each
    reference model's on the same traces."""
    models = ["model", *result["references"]]
    head = ["held out", "model", *SCORES, "explosions called earthquake"]
    lines = [f"# Leave-one-{result['by']}-out: {result['model']}", "",
             "Each row: trained on every other " + result["by"] + ", scored on this one. "
             "Reference models are scored as shipped on the same traces (a reference may have "
             "been trained on that " + result["by"] + ": then its row is not held out).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for value, fold in result["folds"].items():
        for name in models:
            row = fold[name]
            blasts = row["other"].get("explosion")
            cells = [value, name, *(_cell(row.get(k)) for k in SCORES),
                     "-" if blasts is None else f"{blasts['called_earthquake']:.1%} of "
                                                f"{blasts['n']}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"
