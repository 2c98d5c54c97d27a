"""Build the shipped `stead-detector` (version 2.0): choose the recipe by leave-one-source-out
over every source, train it on every source, store float16 weights + model card in the package,
and ship the held-out test traces of the openly licensed source as the sample.

    python scripts/build_stead_detector.py --run runs/stead-detector-2

Steps (each resumable: re-running continues where it stopped):
1. leave-one-source-out (`resattn.tasks.crossval`), with the previous version
   (`stead-detector@1`) scored on the same held-out traces;
2. the final model on every source, grouped 8:1:1 split by record group AND station;
3. the card: the leave-one-source-out table first, then unseen stations (the test split, per
   source), the label review's hard negatives, quarry blasts, and the errors with Grad-CAM plots
   (written to results/stead-detector/, not for the CEB source, whose licence is not stated).
Version 1.0 stays loadable as `stead-detector@1`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from resattn.contracts import contract_from_meta
from resattn.data import WaveformDataset
from resattn.engine.checkpoint import load_model, save_model
from resattn.engine.trainer import TrainConfig
from resattn.explain.gradcam import grad_cam, plot_waveform_cam
from resattn.io import atomic_write_json, atomic_write_text, read_json
from resattn.report import markdown_table
from resattn.tasks import WAVEFORMS, TrainSpec, WaveformOptions
from resattn.tasks.crossval import SCORES, leave_one_source_out
from resattn.tasks.waveforms import eval_windows

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "resattn"
NAME = "stead-detector"
PAPER = {"accuracy": 0.961, "precision": 0.95, "recall": 0.96, "f1": 0.955}


def write_sample(dataset: WaveformDataset, rows: np.ndarray, folder: Path) -> None:
    """Copy the given traces (unchanged, with attributes) into sample.csv + sample.hdf5."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_cols = [c for c in pd.read_csv(dataset.files[0].with_suffix(".csv"), nrows=0).columns]
    meta = dataset.metadata.iloc[rows]
    tmp = folder / ".sample.hdf5.tmp"
    with h5py.File(tmp, "w") as out:
        group = out.create_group("data")
        for i in rows:
            name = str(dataset.metadata["trace_name"].iat[i])
            src_file = dataset.files[int(dataset.metadata["_file"].iat[i])]
            with h5py.File(src_file, "r") as src:
                ds = src["data"][name]
                dst = group.create_dataset(name, data=ds[()], compression="gzip",
                                           compression_opts=6, shuffle=True)
                for k, v in ds.attrs.items():
                    dst.attrs[k] = v
    tmp.replace(folder / "sample.hdf5")
    atomic_write_text(folder / "sample.csv", meta[csv_cols].to_csv(index=False))


SHARED = ROOT.parent / "shared" / "data"
SOURCES = [SHARED / "seismic", SHARED / "seismic_more" / "obstransformer",
           SHARED / "seismic_more" / "ceb_socal"]
OPEN_SOURCES = ("STEAD", "PhaseNet", "DeepDenoiser", "obstransformer")  # licences allow plots
SAMPLE_SOURCES = ("STEAD", "PhaseNet", "DeepDenoiser")  # shipped in the package (CC BY / MIT)
PREVIOUS = f"{NAME}@1"
VERSION = "2.0"
# The recipe: ResNetKAN1D Table 1 (AdamW 1e-4, wd 1e-3, batch 64) with the robustness
# augmentations of resattn.data.augment, real-noise superposition, class-balanced batches and
# gap filling in the contract.
RECIPE = TrainConfig(epochs=60, lr=3e-4, patience=10, sampling="class_balanced")
OPTIONS = WaveformOptions(
    window=2000, split_by=("group", "station"), bandpass=(1.0, 20.0), gap_seconds=1.0,
    mix_noise=0.3, augment=("gain", "rotate_horizontals", "time_shift", "resample",
                            "bandpass_random", "dead_channel", "gap"))


def spec(data: list[Path], out: Path, args: argparse.Namespace) -> TrainSpec:
    return TrainSpec("resnetkan1d", data, out,
                     replace(RECIPE, epochs=args.epochs, precision=args.precision), OPTIONS,
                     seed=args.seed, resume="auto")


def loso_section(loso: dict) -> str:
    """The leave-one-source-out table: ours beside the previous version, per held-out source."""
    rows = []
    for source, fold in loso["folds"].items():
        for name, label in (("model", f"{NAME} {VERSION} recipe (held out)"),
                            (PREVIOUS, f"{PREVIOUS} as shipped")):
            r = fold[name]
            blasts = r["other"].get("explosion")
            rows.append([source, label, *(r.get(k) for k in SCORES),
                         None if blasts is None else blasts["called_earthquake"]])
    return markdown_table(["held-out source", "model", *SCORES, "blasts called earthquake"],
                          rows)


def score_part(model, meta, dataset: WaveformDataset, names: list[str]) -> dict:
    """The shipped model's metrics (with breakdown) on the traces ``names`` of ``dataset``."""
    idx = np.flatnonzero(dataset.metadata["trace_name"].astype(str).isin(names).to_numpy())
    windows = eval_windows(dataset.subset(idx), contract_from_meta(meta))
    return WAVEFORMS.score_traces(model, meta, windows, precision="fp32")


def review_section(model, meta, data: list[Path]) -> tuple[str, dict]:
    """p(earthquake) on the label review's hard negatives (zero gaps, dead channels)."""
    dataset = WaveformDataset.from_path(data)
    rows = dataset.metadata["review"].isin(["zero_gap", "dead_channel"]).to_numpy()
    windows = eval_windows(dataset.subset(np.flatnonzero(rows)), contract_from_meta(meta))
    m = WAVEFORMS.score_traces(model, meta, windows, precision="fp32")
    table = [[t["trace_name"], t["review"], p] for t, p in
             zip(m["traces"], m["probabilities"], strict=True)]
    called = sum(p >= 0.5 for p in m["probabilities"])
    return (f"{called} of {len(table)} called earthquake.\n\n"
            + markdown_table(["trace", "review", "p(earthquake)"], table)), \
        {"called_earthquake": int(called), "n": len(table)}


def error_plots(model, meta, dataset: WaveformDataset, errors: list[dict],
                folder: Path) -> list[str]:
    """A Grad-CAM plot per misclassified trace of an openly licensed source."""
    contract = contract_from_meta(meta)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    names = dataset.metadata["trace_name"].astype(str).to_numpy()
    for e in errors:
        if e["source"] not in OPEN_SOURCES:
            continue
        i = int(np.flatnonzero(names == e["trace_name"])[0])
        x = contract.transform(dataset.read(i), e["window_start"], e["trace_name"])[None]
        cam = grad_cam(model, x, target=1)[0]
        path = folder / f"{e['trace_name']}.png"
        plot_waveform_cam(x[0], cam, path, title=f"{e['trace_name']} ({e['source']}): true "
                          f"{'earthquake' if e['label'] else 'noise'}, p(earthquake) "
                          f"{e['p_earthquake']:.3f}")
        written.append(str(path.relative_to(ROOT)))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", action="append", type=Path, help="repeatable; default: "
                    "the three shared folders")
    ap.add_argument("--run", default=str(ROOT / "runs" / "stead-detector-2"))
    ap.add_argument("--epochs", type=int, default=RECIPE.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--skip-loso", action="store_true", help="cite an existing loso.json")
    args = ap.parse_args()
    data = args.data or SOURCES
    run = Path(args.run)
    loso_dir = run / "loso"
    if args.skip_loso:
        loso = read_json(loso_dir / "loso.json")
    else:
        loso = leave_one_source_out(spec(data, loso_dir, args), references=(PREVIOUS,))
    summary = WAVEFORMS.train(spec(data, run / "final", args))
    model, meta = load_model(run / "final")
    stem = PKG / "weights" / NAME
    card = {
        "name": NAME, "version": VERSION, "previous_versions": [PREVIOUS],
        "description": "Earthquake-vs-noise detector for 3-component 100 Hz waveforms "
                       "(ResNetKAN1D, dual attention + KAN head), trained across sources.",
        "task": meta["task"], "preprocessing": meta["preprocessing"],
        "contract": meta["contract"], "class_names": meta["class_names"],
        # the split's digests name the training folders' traces: a user's data has none of
        # them, so the card records what was trained on, not a split to score a part of
        "data": {k: v for k, v in meta["data"].items() if k != "split"},
        "train_config": meta["train_config"], "best_epoch": meta["epoch"],
        "environment": meta["environment"], "license": "MIT (weights); training data: "
        "sample/seismic/README.md (STEAD CC BY 4.0; NCEDC records via PhaseNet/DeepDenoiser, "
        "MIT), OBSTransformer (MIT), CEB (no licence stated: research use)",
        "paper_reference": {"source": "Di 2025, ResNetKAN1D, Table 2 (theirs: full STEAD)",
                            **PAPER},
        "leave_one_source_out": {s: {k: f["model"].get(k) for k in SCORES}
                                 for s, f in loso["folds"].items()},
    }
    save_model(stem, model, card, dtype=torch.float16)
    shipped, _ = load_model(stem)  # measure exactly what ships
    dataset = WaveformDataset.from_path(data)
    split = read_json(run / "final" / "split.json")
    parts = {k: score_part(shipped, meta, dataset, split[k]) for k in ("val", "test")}
    review_text, review = review_section(shipped, meta, data)
    keys = ("n", "accuracy", "precision", "recall", "f1", "roc_auc")
    for part, m in parts.items():
        card[f"{part}_metrics"] = {k: m[k] for k in (*keys, "confusion")}
        card[f"{part}_metrics"]["per_source"] = {
            s: {k: r[k] for k in ("n", "accuracy", "recall", "false_alarm_rate", "f1")}
            for s, r in m["breakdown"]["source"].items()}
    card["review_hard_negatives"] = review
    save_model(stem, shipped, card, dtype=torch.float16)
    test_rows = np.flatnonzero(dataset.metadata["trace_name"].astype(str).isin(split["test"])
                               & dataset.metadata["source"].isin(SAMPLE_SOURCES))
    write_sample(dataset, test_rows, PKG / "sample" / "seismic")
    errors = [e for fold in loso["folds"].values() for e in fold["model"]["errors"]]
    whole = WaveformDataset.from_path(data, keep_other=True)
    plots = error_plots(shipped, meta, whole, [
        t | {"p_earthquake": p, "label": int(y)} for t, p, y in zip(
            parts["test"]["traces"], parts["test"]["probabilities"], parts["test"]["labels"],
            strict=True) if (p >= 0.5) != bool(y)], ROOT / "results" / NAME / "errors")
    atomic_write_json(ROOT / "results" / NAME / "loso.json", loso)
    test_table = markdown_table(["test split source", "n", "accuracy", "recall",
                                 "false alarm rate", "f1"],
                                [[s, *r.values()] for s, r in
                                 card["test_metrics"]["per_source"].items()])
    overall = markdown_table(["evaluation", *keys], [
        ["grouped test split, every source (ours)", *(parts["test"][k] for k in keys)],
        ["grouped validation split, every source (ours)", *(parts["val"][k] for k in keys)],
        ["paper Table 2 (theirs, full STEAD)", None, *(PAPER[k] for k in keys[1:5]), None]])
    blasts = [f"{s}: {f['model']['other']['explosion']['called_earthquake']:.1%} of "
              f"{f['model']['other']['explosion']['n']}" for s, f in loso["folds"].items()
              if "explosion" in f["model"]["other"]]
    atomic_write_text(stem.with_suffix(".md"), MODEL_CARD.format(
        version=VERSION, previous=PREVIOUS, loso=loso_section(loso), overall=overall,
        test_table=test_table, review=review_text, window=summary["window"],
        n=meta["data"]["n_traces"], sizes=meta["data"]["split_sizes"], epoch=meta["epoch"],
        cpu=meta["environment"]["cpu_model"], precision=meta["precision"],
        sources=meta["data"]["sources"], excluded=meta["data"]["excluded"],
        blasts="; ".join(blasts) or "no blasts held out",
        loso_errors="\n".join(
            f"- {e['source']}: `{e['trace_name']}` (true {'earthquake' if e['label'] else 'noise'}"
            f", p(earthquake) = {e['p_earthquake']:.3f})" for e in errors) or "- none",
        plots="\n".join(f"- `{p}`" for p in plots) or "- none",
        augment=", ".join(OPTIONS.augment)))
    print(loso_section(loso))
    print(overall)


MODEL_CARD = """# Model card: stead-detector {version}

**What**: ResNetKAN1D (1-D ResNet-18, dual channel + spatial attention in every residual block,
B-spline KAN head: grid 5, order 3, range [-1, 1]) classifying a {window}-sample (20 s at 100 Hz)
3-component window as earthquake (1) or noise (0). Weights stored as float16 (upcast on load).
The previous version stays loadable as `{previous}` (`--model {previous}`).

## Across sources first: leave-one-source-out

A seismologist judges a detector on their own network. Each row below is a model of this
recipe trained on every source but one and scored on that one, beside `{previous}` as shipped
on the same traces (`{previous}` was trained on STEAD, PhaseNet and DeepDenoiser traces, so on
those three its rows are not held out). Recall = share of earthquakes detected; false alarm
rate = share of noise windows called earthquakes ("-": the source has no noise windows).

{loso}

Quarry blasts (CEB) are neither class: the detector is not trained on them, and what it calls
them is reported (held out: {blasts}). A blast is a seismic event, so a detector that fires on
it is not wrong as a trigger; telling blasts from earthquakes is a separate task.

Misclassified held-out traces:
{loso_errors}

## Unseen stations of the training sources

The final model is trained on every source, split 8:1:1 by record group AND station (no
station or record on two sides): {sizes} of {n} traces ({sources}); left out by the reader:
{excluded} (the label review's `event_in_window` and `possible_event` windows are never
trained or scored as noise; blasts are their own category).

{overall}

{test_table}

Errors of the test split, with Grad-CAM plots (open-licence sources only):
{plots}

## Hard negatives of the label review (zero gaps, dead channels: noise)

{review}

## Recipe

AdamW lr 3e-4, weight decay 1e-3, batch 64, class-balanced batches, early stopping patience 10
on validation loss; best epoch {epoch}; trained in {precision} on {cpu}. Augmentations
(training only, `resattn.data.augment`): {augment}, and real-noise superposition (p 0.3) with
the polarity flip and small Gaussian noise of the base recipe.

**Input contract**: channels E, N, Z; 100 Hz; each trace demeaned and scaled to a peak of 1
(amplitude units do not matter), runs of one value lasting 1 s or more (data gaps) filled
with the channel's own data mirrored at the gap's edge (no step for the filter to ring on, no
flat stretch that then "starts"), linearly detrended and
band-passed 1-20 Hz (4th-order zero-phase Butterworth), then each channel standardised over
the window; the evaluation window puts the P pick at 25 % of the window if known, else
centred. `resattn evaluate --model stead-detector --data DIR [--data DIR2 ...]` does all of
this and reports per source, SNR bin and instrument kind.

**Limitations**: a few hundred training traces with high SNR; noise windows are pre-event noise
of the same records; horizontals of the OBS source are unoriented; CEB windows all put P at
5 s. Not an early-warning product.

**Citation**: Di, S. (2025) ResNetKAN1D: Attention-Enhanced Hybrid Architecture for Seismic Signal
Classification in STEAD. Data: Mousavi et al. (2019) STEAD; Zhu & Beroza (2019) PhaseNet; Zhu et
al. (2019) DeepDenoiser; NCEDC (2014), doi:10.7932/NCEDC; Niksejel & Zhang (2024)
OBSTransformer; Zhu (2022) CEB, SCEDC (2013) doi:10.7909/C3WD3xH1.
"""

if __name__ == "__main__":
    main()
