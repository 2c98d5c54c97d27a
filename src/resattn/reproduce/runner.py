"""Run every cell x seed of an experiment, skipping finished runs and resuming interrupted ones.

Layout of ``out``::

    runs/<cell-slug>/seed<k>/   a normal training run (metrics.jsonl, split.json, model.*,
                                test_metrics.json; last.* while unfinished)
    results.json, report.md, report.html, figures/
"""

from __future__ import annotations

import time
from pathlib import Path

from ..engine.checkpoint import atomic_write_json, read_json
from ..engine.trainer import TrainConfig, preset_config
from ..errors import DataError
from .config import Cell, Experiment, load_experiment

DONE = "test_metrics.json"


def recipe_config(exp: Experiment, seed: int) -> TrainConfig:
    """The config's recipe: a named preset with overrides, or TrainConfig fields."""
    recipe = dict(exp.recipe)
    preset = recipe.pop("preset", None)
    fields = {**recipe, "epochs": exp.epochs, "seed": seed}
    return preset_config(preset, **fields) if preset else TrainConfig(**fields)


def run_dir(out: Path, cell: Cell, seed: int) -> Path:
    return out / "runs" / cell.slug / f"seed{seed}"


def train_cell(exp: Experiment, cell: Cell, seed: int, run: Path) -> dict:
    """Train one cell with one seed into ``run`` (resuming if it was interrupted)."""
    cfg = recipe_config(exp, seed)
    resume = (run / "last.json").exists()
    if exp.task == "waveform":
        from ..tasks.waveforms import train_waveform_classifier

        w = exp.waveform
        band = tuple(w["bandpass"]) if w.get("bandpass") else None
        return train_waveform_classifier(
            cell.model, exp.data, run, epochs=exp.epochs, window=w.get("window"), seed=seed,
            resume=resume, split_by=tuple(w.get("split_by", ("group",))),
            model_options=cell.options, config=cfg, show_progress=False, band=band,
            split_seed=w.get("split_seed"))
    from ..tasks.images import train_image_classifier

    im = exp.image
    split_seed = im.get("split_seed")
    return train_image_classifier(
        cell.model, exp.data, run, epochs=exp.epochs, seed=seed,
        split_seed=seed if split_seed in (None, "per_seed") else int(split_seed),
        fractions=tuple(im.get("fractions", (0.9, 0.06, 0.04))), split=im.get("split", "class"),
        size=im.get("size"), channels=im.get("channels"), model_options=cell.options,
        config=cfg, resume=resume, show_progress=False, max_per_class=im.get("max_per_class"))


def run_experiment(config: str | Path | Experiment, out: str | Path | None = None,
                   quick: bool = False, report: bool = True, log=print) -> dict:
    """Train what is missing, then aggregate and (by default) write the report."""
    exp = config if isinstance(config, Experiment) else load_experiment(config)
    if quick:
        exp = exp.quick_version()
    out = Path(out or Path("results") / (exp.name + ("-quick" if quick else "")))
    if not exp.data.exists():
        raise DataError(f"{exp.source}: data {exp.data} not found")
    out.mkdir(parents=True, exist_ok=True)
    timings = read_json(out / "timings.json") if (out / "timings.json").exists() else {}
    for cell in exp.cells:
        for seed in range(exp.seeds):
            run = run_dir(out, cell, seed)
            if (run / DONE).exists():
                log(f"{cell.name} seed {seed}: done, skipped")
                continue
            t0 = time.perf_counter()
            summary = train_cell(exp, cell, seed, run)
            timings[f"{cell.slug}/seed{seed}"] = round(time.perf_counter() - t0, 1)
            atomic_write_json(out / "timings.json", timings)
            log(f"{cell.name} seed {seed}: test accuracy {summary['test']['accuracy']:.4f}")
    from .report import aggregate, write_report

    results = aggregate(exp, out, quick)
    atomic_write_json(out / "results.json", results)
    if report:
        write_report(exp, out, results)
    return results
