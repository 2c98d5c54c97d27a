"""Grouped k-fold cross-validation of the stead-detector recipe (scripts/build_stead_detector.py)
on every shared source: the figure for unseen stations of the sources it is trained on.

Folds are connected components of (record group, station), so no record and no station is in two
folds. Fold i is the test part, fold i+1 the validation part, the others train. Every trace is
scored once, by the model that never saw its station (or, for sources without station codes,
its record); out-of-fold metrics overall and per source, with the reviewed labels.

    python scripts/cv_stead_detector.py --out runs/cv --folds 5
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from build_stead_detector import OPTIONS, RECIPE, SOURCES, VERSION

from resattn.data import WaveformDataset, connected_groups
from resattn.eval.breakdown import breakdown
from resattn.eval.metrics import classification_metrics
from resattn.io import atomic_write_json, read_json
from resattn.tasks import WAVEFORMS, TrainSpec
from resattn.tasks.waveforms import CLASS_NAMES, POSITIVE

ROOT = Path(__file__).resolve().parents[1]


def grouped_folds(comp: np.ndarray, labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id per row: components (largest first, then seeded order) go to the fold that most
    needs their majority label, so folds get similar sizes and class mixes."""
    ids, inv = np.unique(comp, return_inverse=True)
    counts = np.zeros((len(ids), 2))
    np.add.at(counts, (inv, labels), 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    load = np.zeros((k, 2))
    fold_of = np.empty(len(ids), dtype=int)
    for c in order:
        f = int(np.argmin(((load + counts[c]) ** 2).sum(1)))
        fold_of[c] = f
        load[f] += counts[c]
    return fold_of[inv]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", action="append", type=Path, help="repeatable; default: the "
                    "three shared folders")
    ap.add_argument("--out", default=str(ROOT / "runs" / "cv"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=RECIPE.epochs)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    data = args.data or SOURCES
    dataset = WaveformDataset.from_path(data)
    names = dataset.metadata["trace_name"].astype(str).to_numpy()
    fold = grouped_folds(connected_groups(dataset.metadata, ("group", "station")),
                         dataset.labels, args.folds, args.seed)
    probs = np.full((len(dataset), 2), np.nan)
    for i in range(args.folds):
        run = out / f"fold{i}"
        split = {"test": names[fold == i].tolist(),
                 "val": names[fold == (i + 1) % args.folds].tolist(),
                 "train": names[(fold != i) & (fold != (i + 1) % args.folds)].tolist()}
        if not (run / "test_metrics.json").exists():
            WAVEFORMS.train(TrainSpec(
                "resnetkan1d", data, run, replace(RECIPE, epochs=args.epochs),
                replace(OPTIONS, split=split), seed=args.seed, resume="auto",
                show_progress=False))
        test = read_json(run / "test_metrics.json")["test"]
        p = np.asarray(test["probabilities"])
        probs[fold == i] = np.stack([1 - p, p], axis=1)
        print(f"fold {i}: n={test['n']} accuracy {test['accuracy']:.4f} f1 {test['f1']:.4f}",
              flush=True)
    metrics = classification_metrics(dataset.labels, probs, CLASS_NAMES, POSITIVE)
    per_fold = [read_json(out / f"fold{i}" / "test_metrics.json")["test"]["accuracy"]
                for i in range(args.folds)]
    wrong = names[(probs[:, 1] >= 0.5) != dataset.labels].tolist()
    per_source = breakdown(dataset.labels, probs[:, 1], dataset.metadata)["source"]
    summary = {"recipe": f"stead-detector {VERSION}", "data": [str(d) for d in data],
               "folds": args.folds, "out_of_fold": metrics, "per_source": per_source,
               "fold_accuracy": per_fold,
               "fold_accuracy_mean": float(np.mean(per_fold)),
               "fold_accuracy_std": float(np.std(per_fold, ddof=1)), "misclassified": wrong}
    atomic_write_json(out / "cv_summary.json", summary)
    print({k: metrics[k] for k in ("n", "accuracy", "precision", "recall", "f1", "confusion")})
    for source, row in per_source.items():
        print(source, {k: row[k] for k in ("n", "accuracy", "recall", "false_alarm_rate", "f1")})
    print("misclassified:", wrong)


if __name__ == "__main__":
    main()
