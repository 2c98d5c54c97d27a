"""Seed 003's Tables II-IV on a real catalogue: feature sets, classifier variants and methods
compared, over several seeds, with the paper's numbers beside ours.

    python scripts/forecast_tables.py --name socal \\
        --catalog ../shared/data/catalog/scedc_socal_1932_2021_M2.csv.gz \\
        --start 1985-01-01 --train-end 2011-01-01 --val-end 2016-01-01 --end 2022-01-01
    python scripts/forecast_tables.py --name swchina \\
        --catalog ../shared/data/catalog/south_asia_subset_SWChina_22-34N_98-107E.csv \\
        --region 22 34 98 107 --start 1970-01-01 --train-end 2001-01-01 \\
        --val-end 2007-01-01 --end 2015-01-01

Every variant reuses the main run's stage 1 (the same backbone), as the paper's Table II/III
comparisons fix everything but the part compared. Finished runs are skipped on a rerun.
Writes ``results/forecast/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from resattn.engine.provenance import environment
from resattn.forecast.pipeline import ForecastConfig, train_forecaster
from resattn.io import atomic_write_json, atomic_write_text, read_json
from resattn.report.markdown import markdown_table

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("accuracy", "macro_recall", "macro_f1")
# Seed 003 (theirs): accuracy %, recall %, F1 on AETA precursor data, Sichuan-Yunnan 2017-2022.
PAPER = {
    "table2": {"explicit": (46.95, 55.80, 0.59), "implicit": (84.34, 87.64, 0.86),
               "fused": (95.80, 95.80, 0.95)},
    "table3": {"flatten": (85.91, 92.81, 0.85), "cnn": (83.33, 92.92, 0.83),
               "dense": (95.80, 95.80, 0.95)},
    "table4": {"weighted_tree": (89.96, 89.83, 0.90), "weighted_svm": (75.56, 55.00, 0.70),
               "cnn": (78.85, 31.44, 0.30), "densenet": (76.70, 79.70, 0.83),
               "model": (95.80, 95.80, 0.95)},
}
LABELS = {"explicit": "explicit features only", "implicit": "implicit features only",
          "fused": "fused (proposed)", "flatten": "Flatten classifier", "cnn": "CNN",
          "dense": "Decoupling DenseNet classifier (proposed)", "weighted_tree": "Weighted-DT",
          "weighted_svm": "Weighted-SVM", "densenet": "DenseNet (no decoupling)",
          "model": "Decoupling DenseNet (proposed)", "climatology": "climatology (class "
          "frequencies)", "persistence": "persistence (last week's class)"}


def run_variant(args, cfg: ForecastConfig, seed: int, features: str, classifier: str) -> dict:
    main = Path(args.runs_dir) / args.name / f"seed{seed}" / "fused-dense"
    out = Path(args.runs_dir) / args.name / f"seed{seed}" / f"{features}-{classifier}"
    if (out / "test_metrics.json").exists():
        return read_json(out / "test_metrics.json")
    summary = train_forecaster(args.catalog, out, replace(
        cfg, seed=seed, features=features, classifier=classifier, baselines=out == main,
        backbone_from=None if out == main else str(main)))
    print(f"{args.name} seed {seed} {features}-{classifier}: macro F1 "
          f"{summary['model']['macro_f1']:.3f}", flush=True)
    return summary


def agg(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def cell(m: dict, key: str) -> str:
    scale = 100 if key != "macro_f1" else 1
    digits = 2 if key != "macro_f1" else 3
    return f"{scale * m[key]['mean']:.{digits}f} ± {scale * m[key]['std']:.{digits}f}"


def table(rows: dict[str, dict], paper: dict[str, tuple]) -> str:
    body = []
    for name, m in rows.items():
        theirs = paper.get(name)
        body.append([LABELS.get(name, name), *(cell(m, k) for k in KEYS),
                     *((f"{v}" for v in theirs) if theirs else ("–", "–", "–"))])
    return markdown_table(["method", "accuracy % (ours)", "macro recall % (ours)",
                           "macro F1 (ours)", "Acc % (paper)", "Recall % (paper)",
                           "F1 (paper)"], body)


REFERENCES = ("climatology", "persistence", "weighted_svm", "weighted_tree")


def not_beaten(t4: dict) -> list[str]:
    """The reference forecasts whose mean macro F1 the proposed model does not exceed."""
    ours = t4["model"]["macro_f1"]["mean"]
    return [b for b in REFERENCES if t4[b]["macro_f1"]["mean"] >= ours]


def headline(t4: dict) -> str:
    """Plainly: which reference forecasts the proposed model beats on macro F1, and which not."""
    ours = t4["model"]["macro_f1"]["mean"]
    stronger = not_beaten(t4)
    better = [LABELS[b] for b in stronger]
    worse = [LABELS[b] for b in REFERENCES if b not in stronger]
    if not better:
        return (f"**Headline.** The decoupled fused model (macro F1 {ours:.3f}) beats "
                "climatology, persistence, Weighted-SVM and Weighted-DT on these test weeks.")
    return (f"**Headline.** The decoupled fused model (macro F1 {ours:.3f}) does NOT beat "
            f"{', '.join(better)} on these test weeks" + (
                f"; it beats {', '.join(worse)}" if worse else "") + ". Weekly maxima of a "
            "catalogue carry little signal about next week beyond clustering, which "
            "persistence already captures; the spreads over seeds are as large as the gaps.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--catalog", nargs="+", required=True)
    ap.add_argument("--region", type=float, nargs=4, default=None)
    ap.add_argument("--start", required=True)
    ap.add_argument("--train-end", required=True)
    ap.add_argument("--val-end", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs-dir", default=str(ROOT.parent / "runs" / "forecast"))
    args = ap.parse_args()
    cfg = ForecastConfig(region=tuple(args.region) if args.region else None, start=args.start,
                         end=args.end, train_end=args.train_end, val_end=args.val_end,
                         window=args.window, epochs=args.epochs)
    variants = [("fused", "dense"), ("implicit", "dense"), ("explicit", "dense"),
                ("fused", "flatten"), ("fused", "cnn")]
    runs = {v: [] for v in variants}
    for seed in range(args.seeds):
        for v in variants:  # the main run first: the others copy its stage 1
            runs[v].append(run_variant(args, cfg, seed, *v))
    main_runs = runs[("fused", "dense")]

    def summarise(ms: list[dict]) -> dict:
        return {k: agg([m[k] for m in ms]) for k in KEYS}

    t2 = {f: summarise([r["model"] for r in runs[(f, "dense")]])
          for f in ("explicit", "implicit", "fused")}
    t3 = {c: summarise([r["model"] for r in runs[("fused", c)]])
          for c in ("flatten", "cnn", "dense")}
    t4 = {b: summarise([r["baselines"][b] for r in main_runs])
          for b in ("climatology", "persistence", "weighted_tree", "weighted_svm", "cnn",
                    "densenet")}
    t4["model"] = t2["fused"]
    first = main_runs[0]
    test_counts = np.bincount(first["labels"], minlength=len(first["model"]["per_class"]))
    result = {
        "name": args.name, "catalog": args.catalog, "config": first["config"],
        "mc": first["mc"], "weeks": first["weeks"], "seeds": args.seeds,
        "test_class_counts": dict(zip(first["model"]["per_class"], test_counts.tolist(),
                                      strict=True)),
        "table2": t2, "table3": t3, "table4": t4, "published": PAPER,
        "beats_all_reference_baselines": not not_beaten(t4),
        "environment": environment(),
    }
    weeks = first["weeks"]
    text = "\n\n".join([
        f"# Weekly earthquake forecasting, {args.name} (seed 003 protocol)",
        f"Catalogue(s): {', '.join(Path(c).name for c in args.catalog)}; region "
        f"{first['config']['region'] or 'whole catalogue'}; completeness magnitude (maximum "
        f"curvature) Mc = {first['mc']:.2f}. Label of a week: class of its largest magnitude "
        f"(bounds {first['config']['bounds']}); features from events before the week only. "
        f"Weeks: train {weeks['train'][0]} – {weeks['train'][1]} ({weeks['train'][2]}), "
        f"validation {weeks['val'][0]} – {weeks['val'][1]} ({weeks['val'][2]}), test "
        f"{weeks['test'][0]} – {weeks['test'][1]} ({weeks['test'][2]}). Test class counts: "
        f"{result['test_class_counts']}. Window {args.window} weeks; mean ± std over "
        f"{args.seeds} seeds (ddof 1).",
        "**Data difference.** The paper used AETA electromagnetic and geo-acoustic precursor "
        "statistics (95 per week, not public) for Sichuan–Yunnan, 2017–2022. Ours are "
        "catalogue features only (counts, Gutenberg–Richter a/b, η, ΔM, T, μ, c, energy rate, "
        "days since large events), so the explicit/implicit split means something different "
        "here. The paper's recall equals its accuracy in two of three Table II rows, which a "
        "support-weighted recall always does; we report macro recall and macro F1, where the "
        "majority class cannot hide the rare ones.",
        "## Table II: feature sets (classifier fixed)", table(t2, PAPER["table2"]),
        "## Table III: classifiers on the fused features", table(t3, PAPER["table3"]),
        "## Table IV: methods compared", table(t4, PAPER["table4"]),
        headline(t4),
    ])
    out = ROOT / "results" / "forecast"
    atomic_write_json(out / f"{args.name}.json", result)
    atomic_write_text(out / f"{args.name}.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
