"""The ``resattn`` command line: a thin layer over library calls a Python user can make too.

A user's mistake (bad path, bad file, wrong option) ends in one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import cli_train
from .cli_checks import number, out_dir, out_file
from .errors import ConfigError, ResattnError
from .options import parse_key_values

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Attention-enhanced residual networks for seismic waveforms and images.",
)
models_app = typer.Typer(no_args_is_help=True, help="List and inspect registered models.")
app.add_typer(models_app, name="models")
console = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    json = "json"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Part(str, Enum):
    all = "all"
    train = "train"
    val = "val"
    test = "test"


class AutoPart(str, Enum):
    auto = "auto"
    all = "all"
    train = "train"
    val = "val"
    test = "test"


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


app.command(name="train")(cli_train.train)
app.command(name="cv")(cli_train.cv)


BREAKDOWN_COLUMNS = ("n", "accuracy", "precision", "recall", "f1", "roc_auc",
                     "false_alarm_rate")


def breakdown_table(title: str, rows: dict[str, dict]) -> Table:
    """A rich table of per-group detection scores (``eval.breakdown``); "-" where a group
    cannot have the score (no noise windows: no false-alarm rate)."""
    table = Table(title=title)
    table.add_column("group", no_wrap=True)
    for col in BREAKDOWN_COLUMNS:
        table.add_column({"false_alarm_rate": "false alarms", "roc_auc": "ROC-AUC",
                          "accuracy": "acc"}.get(col, col), no_wrap=True)
    for name, row in rows.items():
        table.add_row(name, *(str(row[k]) if k == "n" else
                              "-" if row[k] is None else f"{row[k]:.4f}"
                              for k in BREAKDOWN_COLUMNS))
    return table


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Shipped model name (e.g. stead-detector, "
                                            "mednist-arn), run directory or checkpoint file.")],
    data: Annotated[list[Path], typer.Option(
        help="Waveforms: STEAD- or SeisBench-layout folder; repeat for several sources "
             "(scored together and per source). Images: folder of class folders, archive "
             "or .npz.")],
    format: Annotated[Format, typer.Option(help="json: one JSON object on stdout.")]
    = Format.table,
    window: Annotated[int | None, typer.Option(help="Waveforms: override the model's "
                                                    "window.", min=1)] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    precision: Annotated[Precision, typer.Option()] = Precision.auto,
    pad: Annotated[bool, typer.Option(help="Zero-pad traces shorter than the window.")] = False,
    part: Annotated[Part, typer.Option(
        help="all, or the train/val/test part of the split the model was trained "
             "with (recomputed from its recorded seed and checked).")] = Part.all,
    predictions: Annotated[Path | None, typer.Option(
        help="Also write per-item probabilities to this CSV.", callback=out_file)] = None,
    plots: Annotated[Path | None, typer.Option(
        help="Write a reliability diagram (calibration, ECE) into this folder.",
        callback=out_dir)] = None,
) -> None:
    """Score a model on data: every trace (one deterministic window each) or every image."""
    from .pretrained import load_card
    from .tasks.registry import one_or_many, task_for

    task = task_for(load_card(model), data, f"--model {model}")
    data = one_or_many(data)
    metrics = task.evaluate(model, data, window=window, precision=precision.value,
                            batch_size=batch_size, pad=pad, part=part.value)
    title = task.evaluation_title(model, data, metrics)
    if predictions:
        task.write_predictions(predictions, metrics)
    if plots:
        from .eval.uncertainty import reliability_diagram

        probs = np.asarray(metrics["probabilities"])
        if probs.ndim == 1:  # waveforms store p(earthquake)
            probs = np.stack([1 - probs, probs], 1)
        metrics["reliability_plot"] = str(reliability_diagram(
            probs, metrics["labels"], plots / "reliability.png", title=str(model)))
    for key in ("trace_names", "paths", "probabilities", "labels", "traces"):
        metrics.pop(key, None)
    if format is Format.json:
        _print_json(metrics)
        return
    keys = ("accuracy", "precision", "recall", "f1", "kappa", "log_loss")
    table = Table(title=title)
    for key in keys:
        table.add_column(key)
    table.add_row(*(f"{metrics[k]:.4f}" if metrics[k] is not None else "-" for k in keys))
    Console().print(table)
    per_class = Table(title="per class")
    for col in ("class", "precision", "recall (sensitivity)", "f1", "support"):
        per_class.add_column(col)
    for name, row in metrics["per_class"].items():
        per_class.add_row(name, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")),
                          str(row["support"]))
    Console().print(per_class)
    Console().print(f"confusion [true][pred] ({', '.join(metrics['class_names'])}): "
                    f"{metrics['confusion']}", markup=False)
    for by, rows in (metrics.get("breakdown") or {}).items():
        Console().print(breakdown_table(f"per {by}", rows))
    for reason, row in (metrics.get("other") or {}).items():
        Console().print(f"{reason}: {row['n']} trace(s), not scored above; called earthquake: "
                        f"{row['called_earthquake']:.1%}", markup=False)


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(
        help="Image files (image models) or waveform files (.npy/.npz (channels, samples), or "
             "miniSEED/SAC when ObsPy is installed) for 1-D models.")],
    model: Annotated[str, typer.Option(help="Shipped model name, run directory or "
                                            "checkpoint file.")],
    cam: Annotated[Path | None, typer.Option(help="Write a Grad-CAM PNG per input into this "
                                                  "folder.", callback=out_dir)] = None,
    cam_method: Annotated[str, typer.Option(help="gradcam or gradcam++.")] = "gradcam",
    mc_samples: Annotated[int, typer.Option(help="Monte-Carlo dropout passes for the "
                                                 "uncertainty (std of the probability).",
                                            min=1)] = 20,
    format: Annotated[Format, typer.Option(help="json: one JSON list on stdout.")]
    = Format.table,
) -> None:
    """Class, probability, predictive entropy and MC-dropout std per file, with Grad-CAM."""
    from .tasks.predict import predict_files

    if cam_method not in ("gradcam", "gradcam++"):
        raise ConfigError(f"--cam-method must be gradcam or gradcam++, got {cam_method!r}")
    rows = predict_files(model, files, cam, mc_samples, cam_method)
    if format is Format.json:
        _print_json(rows)
        return
    table = Table(title=f"{model}: {len(rows)} file(s)")
    columns = ["file", "class", "probability", "entropy", "mc_std"] + (["cam"] if cam else [])
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    Console().print(table)


class Runtime(str, Enum):
    auto = "auto"
    torch_fp32 = "torch-fp32"
    torch_bf16 = "torch-bf16"
    onnx_int8 = "onnx-int8"


@app.command()
def detect(
    inputs: Annotated[list[str], typer.Argument(
        help="Waveform files, folders or globs: anything ObsPy reads (MiniSEED, SAC, SEISAN, "
             "GSE2, ...), any sampling rate, Z/N/E, Z/1/2 or Z/2/3 components.")],
    model: Annotated[str, typer.Option(help="Shipped model name, run directory or "
                                            "checkpoint file of a waveform detector.")]
    = "stead-detector",
    out: Annotated[Path, typer.Option(help="Output folder: detections.csv, probabilities/, "
                                           "plots/, summary.json.", callback=out_dir)]
    = Path("detections"),
    threshold: Annotated[float, typer.Option(help="p(earthquake) at or above which a window "
                                                  "fires.",
                                             callback=number(0, 1, low_open=True,
                                                             high_open=True))] = 0.5,
    stride: Annotated[float, typer.Option(help="Seconds between window starts.",
                                          callback=number(0, low_open=True))] = 10.0,
    batch_size: Annotated[int, typer.Option(help="Windows per model call.", min=1)] = 64,
    runtime: Annotated[Runtime, typer.Option(
        help="auto: the fastest runtime this CPU runs whose probabilities agree with fp32 "
             "within --tolerance.")] = Runtime.auto,
    tolerance: Annotated[float, typer.Option(help="Largest |p - p_fp32| a faster runtime may "
                                                  "differ by (auto).",
                                             callback=number(0, 1))] = 0.05,
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core, at "
                                                     "most one per station-day).", min=1)]
    = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address "
                                                       "(tcp://HOST:PORT): run the station-days "
                                                       "on that cluster.")] = None,
    chunk_seconds: Annotated[float, typer.Option(help="Seconds read at a time (memory).",
                                                 callback=number(60))] = 3600.0,
    plots: Annotated[bool, typer.Option(help="One PNG per station.")] = True,
    format: Annotated[Format, typer.Option(help="json: print summary.json.")] = Format.table,
) -> None:
    """Continuous detection over days of records: probability traces, detections, plots."""
    from rich.progress import Progress

    from .detect import DetectOptions
    from .detect import detect as run_detect

    options = DetectOptions(threshold=threshold, stride_s=stride, batch_size=batch_size,
                            runtime=runtime.value, tolerance=tolerance, workers=workers,
                            scheduler=scheduler, chunk_s=chunk_seconds, plots=plots)
    with Progress(console=console, transient=True, disable=format is Format.json) as bar:
        task = bar.add_task("station-days", total=None)
        summary = run_detect(inputs, model, out, options,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total))
    if format is Format.json:
        _print_json(summary)
        return
    rt = summary["runtime"]
    Console().print(
        f"{summary['detections']} detection(s) on {summary['stations']} station(s), "
        f"{summary['station_days']:g} station-days in {summary['seconds']:g} s "
        f"({summary['station_days_per_minute']:g} station-days/min, {rt['chosen']}, "
        f"peak RSS {summary['peak_rss_mb']:g} MB); {summary['windows_not_scored']} of "
        f"{summary['windows']} windows not scored (gaps); skipped: {len(summary['skipped'])}; "
        f"results in {out}")


forecast_app = typer.Typer(no_args_is_help=True,
                           help="Weekly earthquake forecasting from catalogues (seed 003).")
app.add_typer(forecast_app, name="forecast")
CatalogOpt = Annotated[list[Path], typer.Option(
    "--catalog", help="Catalogue file (SCEDC, South Asia, USGS, generic CSV with time, "
    "latitude, longitude, magnitude[, depth], or QuakeML); repeat to concatenate.")]
OnBad = Annotated[str, typer.Option(help="Bad catalogue rows: skip (reported with line "
                                         "numbers) or error.")]


def _parse_bounds(text: str) -> tuple[float, ...]:
    """Comma-separated numbers (their order and range are the config's to check)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bounds expects increasing magnitudes, e.g. 3.5,4,4.5,5; got "
                          f"{text!r}") from None


@forecast_app.command("train")
def forecast_train(
    catalog: CatalogOpt,
    out: Annotated[Path, typer.Option(help="Run directory.", callback=out_dir)],
    region: Annotated[tuple[float, float, float, float] | None, typer.Option(
        help="LAT0 LAT1 LON0 LON1 (degrees); default: every event.")] = None,
    bounds: Annotated[str, typer.Option(help="Class bounds of the week's largest "
                                             "magnitude.")] = "3.5,4.0,4.5,5.0",
    start: Annotated[str | None, typer.Option(help="First week (date).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the last week (date).")] = None,
    train_end: Annotated[str | None, typer.Option(help="T1: training weeks end here "
                                                       "(default 70 % of the span).")] = None,
    val_end: Annotated[str | None, typer.Option(help="T2: validation weeks end and test "
                                                     "weeks start here (default 85 %).")] = None,
    window: Annotated[int, typer.Option(help="Weeks of history per prediction.", min=1)] = 32,
    min_magnitude: Annotated[float | None, typer.Option(help="Drop smaller events.",
                                                        callback=number())] = None,
    features: Annotated[str, typer.Option(help="fused, implicit or explicit.")] = "fused",
    classifier: Annotated[str, typer.Option(help="dense (Fig. 3), flatten or cnn.")] = "dense",
    extra: Annotated[Path | None, typer.Option(
        help="CSV of your own per-time-step precursor features (a time column + numbers); "
             "each week gets the mean of the rows in the week before it.")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per stage.", min=1)] = 100,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    baselines: Annotated[bool, typer.Option(help="Also train the CNN and store the matrix "
                                                 "for the weighted SVM/tree.")] = True,
    on_bad: OnBad = "skip",
    format: Annotated[Format, typer.Option(help="json: the test summary on stdout.")]
    = Format.table,
) -> None:
    """Decoupled two-stage DenseNet training on weekly catalogue features, then the test weeks
    scored against climatology, persistence, weighted SVM/tree, CNN and plain DenseNet."""
    from .forecast.pipeline import ForecastConfig, train_forecaster

    cfg = ForecastConfig(region=region, bounds=_parse_bounds(bounds), min_magnitude=min_magnitude,
                         start=start, end=end, train_end=train_end, val_end=val_end,
                         window=window, features=features, classifier=classifier,
                         epochs=epochs, seed=seed, baselines=baselines,
                         extra=str(extra) if extra else None)
    summary = train_forecaster(catalog, out, cfg, on_bad)
    _print_forecast(summary, format, f"{out}: test weeks")


@forecast_app.command("evaluate")
def forecast_evaluate(
    model: Annotated[Path, typer.Option(help="Run directory of `resattn forecast train`.")],
    catalog: CatalogOpt,
    date_from: Annotated[str, typer.Option("--from", help="First week (date).")],
    date_to: Annotated[str, typer.Option("--to", help="End of the last week (date).")],
    extra: Annotated[Path | None, typer.Option(help="Precursor table, if the model used "
                                                    "one.")] = None,
    on_bad: OnBad = "skip",
    format: Annotated[Format, typer.Option(help="json: one JSON object on stdout.")]
    = Format.table,
) -> None:
    """Weekly probabilities and the paper's metrics on [--from, --to), with baselines."""
    from .forecast.pipeline import evaluate_forecaster

    result = evaluate_forecaster(model, catalog, date_from, date_to,
                                 str(extra) if extra else None, on_bad)
    _print_forecast(result, format, f"{model} on {date_from} .. {date_to}")


def _print_forecast(result: dict, format: Format, title: str) -> None:
    if format is Format.json:
        _print_json(result)
        return
    ours = result.get("model", result)
    table = Table(title=f"{title} (n={ours['n_weeks']} weeks)")
    for col in ("method", "accuracy", "macro recall", "macro F1", "kappa"):
        table.add_column(col)
    rows = [("decoupled DenseNet (ours)", ours), *result["baselines"].items()]
    for name, m in rows:
        table.add_row(name, *(f"{m[k]:.4f}" for k in ("accuracy", "macro_recall", "macro_f1",
                                                      "kappa")))
    Console().print(table)


@app.command()
def reproduce(
    config: Annotated[Path, typer.Argument(help="Experiment config, e.g. "
                                                "configs/seed000_table2.yaml.")],
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default results/<experiment>[-quick]).", callback=out_dir)] = None,
    quick: Annotated[bool, typer.Option(help="The config's quick overrides: few epochs, "
                                             "seeds and images; minutes, for CI.")] = False,
) -> None:
    """Train every cell x seed of a paper's table (finished runs are skipped, interrupted ones
    resumed) and write results.json, report.md and a self-contained report.html. Start it in
    several processes to share the runs: each run is locked by the process training it."""
    from .reproduce import run_experiment

    results = run_experiment(config, out, quick, log=console.print)
    where = out or Path("results") / (results["experiment"] + ("-quick" if quick else ""))
    console.print(f"{len(results['cells'])} cells, complete: {results['complete']}"
                  + (f"; report: {where}/report.html" if results["complete"] else ""))


compress_app = typer.Typer(no_args_is_help=True, help="Make a trained model smaller and faster "
                           "(seed 001's review): distill, prune, quantize, export.")
app.add_typer(compress_app, name="compress")
ModelOpt = Annotated[str, typer.Option(help="Shipped model name, run directory or checkpoint.")]
DataOpt = Annotated[Path, typer.Option(help="Evaluation / training data of the model's task.")]
OutOpt = Annotated[Path, typer.Option(help="Output folder.", callback=out_dir)]
PartOpt = Annotated[AutoPart, typer.Option(
    help="Part to score: train, val or test of the split the model was trained with "
         "(recomputed and checked), all, or auto (test when the model records its split, "
         "else all).")]


def _compare(model: str, data: Path, out: Path, part: AutoPart, extra: list[tuple[str, str]],
             techniques: tuple[str, ...] = ("fp32",)) -> list[dict]:
    """Rows of the original (as ``techniques``) and of each (technique, run) in ``extra``,
    printed as a table and written to ``out/compare.json``."""
    from .extras import require
    from .io import atomic_write_json

    require("optimize", "resattn compress", ("onnx", "onnxruntime"))
    from .optimize.benchmark import format_rows
    from .optimize.compare import eval_batches, model_row, original_rows
    from .pretrained import load_any

    net, meta = load_any(model)
    batches = eval_batches(meta, data, part.value)
    name = Path(model).name if Path(model).exists() else model
    rows = original_rows(name, net, meta, batches, out, techniques)
    rows += [model_row(name, technique, run, batches) for technique, run in extra]
    atomic_write_json(out / "compare.json", rows)
    Console().print(format_rows(rows), markup=False)
    return rows


@compress_app.command("export")
def compress_export(model: ModelOpt, out: OutOpt, data: DataOpt, part: PartOpt = AutoPart.auto,
                    torchscript: Annotated[bool, typer.Option(
                        help="Also write a TorchScript (traced) file.")] = False) -> None:
    """ONNX (dynamic batch; dynamic length for 1-D models), verified against PyTorch."""
    from .extras import require

    require("optimize", "resattn compress export", ("onnx", "onnxruntime"))
    from .optimize.compare import onnx_check
    from .optimize.export import export_torchscript
    from .optimize.prune import input_shape_of
    from .pretrained import load_any

    net, meta = load_any(model)
    diff = onnx_check(net, meta, out)
    console.print(f"ONNX vs PyTorch: max |difference| {diff:.2e}")
    if torchscript:
        export_torchscript(net, input_shape_of(meta), out / "model.torchscript.pt")
    _compare(model, data, out, part, [], ("fp32", "onnx"))


@compress_app.command("quantize")
def compress_quantize(model: ModelOpt, out: OutOpt, data: DataOpt,
                      part: PartOpt = AutoPart.auto) -> None:
    """int8 static post-training quantisation (ONNX Runtime, calibrated on the data) and bf16
    autocast, beside the fp32 original."""
    _compare(model, data, out, part, [], ("fp32", "bf16", "int8"))


@compress_app.command("prune")
def compress_prune(model: ModelOpt, out: OutOpt, data: DataOpt,
                   target: Annotated[float, typer.Option(
                       help="Fraction of multiply-accumulates to remove.",
                       callback=number(0, 1, low_open=True, high_open=True))] = 0.5,
                   steps: Annotated[int, typer.Option(help="Prune/fine-tune rounds.",
                                                      min=1)] = 3,
                   finetune_epochs: Annotated[int, typer.Option(min=0)] = 2,
                   part: PartOpt = AutoPart.auto) -> None:
    """Dependency-aware channel pruning, iterative with fine-tuning on the model's task."""
    from .extras import require

    require("optimize", "resattn compress prune")
    from .optimize.prune import prune

    result = prune(model, data, out, target, steps, finetune_epochs)
    _compare(model, data, out, part, [(f"pruned {target:.0%} MACs target", result["model"])])


@compress_app.command("distill")
def compress_distill(teacher: ModelOpt, student: Annotated[str, typer.Option(
                         help="Registered model name of the student.")],
                     out: OutOpt, data: DataOpt,
                     option: Annotated[list[str] | None, typer.Option(
                         help="Student option key=value, repeatable.")] = None,
                     temperature: Annotated[float, typer.Option(
                         callback=number(0, low_open=True))] = 4.0,
                     alpha: Annotated[float, typer.Option(
                         help="Weight of the soft (teacher) term.",
                         callback=number(0, 1))] = 0.7,
                     epochs: Annotated[int, typer.Option(min=1)] = 10,
                     part: PartOpt = AutoPart.auto) -> None:
    """Train a student on the teacher's task, split and preprocessing, from its soft outputs."""
    from .models import model_entry
    from .optimize.distill import distill

    try:
        model_entry(student)
    except ConfigError as exc:
        raise ConfigError(f"--student: {exc}") from None
    distill(teacher, student, data, out / "student", parse_key_values(option), temperature,
            alpha, epochs)
    _compare(teacher, data, out, part, [(f"distilled student ({student})", out / "student")])


@app.command()
def finetune(model: ModelOpt, data: DataOpt, out: OutOpt,
             freeze: Annotated[int, typer.Option(
                 help="Freeze the first N stages (-1: the whole trunk).", min=-1)] = 0,
             lr_decay: Annotated[float, typer.Option(
                 help="Learning-rate factor per stage from the head down (1: same lr).",
                 callback=number(0, low_open=True))] = 1.0,
             epochs: Annotated[int, typer.Option(min=1)] = 10,
             lr: Annotated[float | None, typer.Option(
                 help="Base learning rate.", callback=number(0, low_open=True))] = None,
             part: PartOpt = AutoPart.auto) -> None:
    """Transfer learning from trained weights onto new data (a new head if the classes
    differ), then the before/after table on the new data's test part."""
    from dataclasses import replace

    from .engine.trainer import TrainConfig
    from .optimize.finetune import finetune as run
    from .pretrained import load_any

    _, meta = load_any(model)
    cfg = TrainConfig.from_record(meta.get("train_config"))
    summary = run(model, data, out, epochs, freeze, lr_decay,
                  replace(cfg, lr=lr) if lr is not None else cfg)
    test = summary["test"]
    console.print(f"fine-tuned: test accuracy {test['accuracy']:.4f}, macro F1 {test['f1']:.4f} "
                  f"(n={test['n']}); model: {out}")
    _compare(str(out), data, out, part, [])


@app.command()
def tune(config: Annotated[Path, typer.Argument(help="Experiment config; its search: section is "
                                                     "the space.")],
         search: Annotated[Path | None, typer.Option(
             help="YAML with the search space (instead of the config's).")] = None,
         cell: Annotated[str | None, typer.Option(
             help="Config cell to tune (required if the config has several).")] = None,
         storage: Annotated[str | None, typer.Option(
             help="Optuna storage URL (default sqlite:///<out>/study.db; PostgreSQL URLs let "
                  "several machines share one study).")] = None,
         study: Annotated[str | None, typer.Option(
             help="Study name (default <experiment>-<cell>).")] = None,
         trials: Annotated[int, typer.Option(
             help="Global budget of COMPLETE + PRUNED trials.", min=1)] = 20,
         pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
         metric: Annotated[str, typer.Option(
             help="val_f1, val_accuracy (maximised) or val_loss (minimised).")] = "val_f1",
         seed: Annotated[int, typer.Option(min=0)] = 0,
         out: Annotated[Path | None, typer.Option(
             help="Folder of trials/<number>/ (default results/<study>-tune).",
             callback=out_dir)] = None,
         timeout: Annotated[float | None, typer.Option(
             help="Start no trial after this many seconds.", callback=number(0))] = None,
         quick: Annotated[bool, typer.Option(help="The config's quick overrides.")] = False,
         heartbeat: Annotated[int, typer.Option(help="Heartbeat interval, s.", min=1)] = 30,
         grace: Annotated[int | None, typer.Option(
             help="A trial silent this long (s) is retried (default 2 x heartbeat).",
             min=1)] = None,
         max_retry: Annotated[int, typer.Option(
             help="Times a killed or interrupted trial is queued again.", min=0)] = 3,
         max_failures: Annotated[int, typer.Option(
             help="Failed trials in a row that stop this worker.", min=1)] = 3,
         startup_trials: Annotated[int, typer.Option(
             help="Random trials before TPE models the results.", min=0)] = 10) -> None:
    """Hyper-parameter search with Optuna (TPE, pruning of bad trials): rerun to resume, start on
    several machines with one --storage URL to share the study."""
    from .extras import require

    require("optimize", "resattn tune", ("optuna",))
    from .tune import best_summary, load_tuning, read_search, run_study, sigterm_as_interrupt

    exp, space = load_tuning(config)
    if search is not None:
        space = read_search(search)
    if quick:
        exp = exp.quick_version()
    try:
        with sigterm_as_interrupt():
            result = run_study(exp, space, storage=storage, study_name=study, n_trials=trials,
                               cell=cell, seed=seed, pruner=pruner, out=out, metric=metric,
                               timeout=timeout, heartbeat_interval=heartbeat,
                               grace_period=grace, max_retry=max_retry,
                               max_failures=max_failures, startup_trials=startup_trials)
    except KeyboardInterrupt:
        console.print("interrupted: the running trial is queued again; rerun the same command "
                      "to resume")
        _reported.add("interrupt")
        raise typer.Exit(130) from None
    _print_json(best_summary(result))


@models_app.command("list")
def models_list(
    format: Annotated[Format, typer.Option()] = Format.table,
    pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. 'resnet*'.")]
    = None,
) -> None:
    """Registered models and shipped pretrained models."""
    from .models import list_models, model_entry
    from .pretrained import list_pretrained, pretrained_card

    rows = [{"name": n, "dims": list(model_entry(n).dims), "paper": model_entry(n).paper,
             "seeds": sorted(set(re.findall(r"\b00[0-4]\b", model_entry(n).paper))),
             "description": model_entry(n).description} for n in list_models(pattern)]
    shipped = [{"name": n, "model": pretrained_card(n)["config"]["model"]}
               for n in list_pretrained()]
    if format is Format.json:
        _print_json({"models": rows, "pretrained": shipped})
        return
    table = Table("name", "dims", "description")
    for r in rows:
        table.add_row(r["name"], ",".join(map(str, r["dims"])), r["description"])
    Console().print(table)
    for s in shipped:
        Console().print(f"pretrained: {s['name']} ({s['model']})")


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    dims: Annotated[int | None, typer.Option(help="1 (signals) or 2 (images).")] = None,
    in_chans: Annotated[int | None, typer.Option(min=1)] = None,
    num_classes: Annotated[int | None, typer.Option(min=2)] = None,
    input_size: Annotated[list[int] | None, typer.Option(
        help="Spatial size: samples (1-D) or H W (2-D). Default 5000 or 224 224.",
        min=1)] = None,
    option: Annotated[list[str] | None, typer.Option(help="Model option key=value.")] = None,
    format: Annotated[Format, typer.Option()] = Format.table,
) -> None:
    """Parameters, shapes, multiply-accumulates and a layer table of one model."""
    from .models import create_model, model_entry
    from .models.summary import DEFAULT_INPUT, input_dims, summarize

    entry = model_entry(name)
    options = parse_key_values(option)
    for key, value in (("dims", dims), ("in_chans", in_chans), ("num_classes", num_classes)):
        if value is not None:
            options[key] = value
    model = create_model(name, **options)
    model_dims = input_dims(model)
    native = model.config.get("input_size", entry.defaults.get("input_size"))
    native = (native,) * model_dims if isinstance(native, int) else native
    size = tuple(input_size) if input_size else (native or DEFAULT_INPUT[model_dims])
    if len(size) != model_dims:
        raise ConfigError(f"--input-size needs {model_dims} number(s) for a {model_dims}-D "
                          f"model, got {list(size)}")
    chans = options.get("in_chans", model.config.get("in_chans", 3))
    summary = summarize(model, (chans, *size))
    summary.update(name=name, config=model.config, description=entry.description,
                   paper=entry.paper)
    if format is Format.json:
        summary.pop("layers")
        _print_json(summary)
        return
    table = Table("layer", "type", "output shape", "params", "MACs",
                  title=f"{name}: {entry.description}")
    for r in summary["layers"]:
        table.add_row(r["layer"], r["type"], str(r["output_shape"]), f"{r['params']:,}",
                      f"{r['macs']:,}")
    Console().print(table)
    Console().print(f"params {summary['params']:,} (trainable {summary['trainable_params']:,}); "
                    f"input {summary['input_shape']} -> output {summary['output_shape']}; "
                    f"{summary['macs'] / 1e6:,.1f} M multiply-accumulates per sample")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's run and report.",
                                      callback=out_dir)] = Path("resattn-demo"),
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.", min=0)] = 3,
) -> None:
    """Evaluate the shipped detector on the shipped sample, fine-tune briefly, write a report."""
    from .demo import run_demo

    report = run_demo(out, epochs=epochs)
    console.print(f"report: {report}", markup=False)


@app.command()
def info() -> None:
    """Machine facts and the precision `auto` chooses here, with the reason."""
    from .engine.precision import auto_decision
    from .engine.provenance import environment

    decision = auto_decision()
    _print_json({**environment(), "auto_precision": decision["precision"],
                 "bf16_speedup": decision["bf16_speedup"], "auto_reason": decision["reason"],
                 "auto_recorded_in": decision["recorded"]})


@app.command()
def doctor() -> None:
    """Versions, CPU features (AVX-512, bf16, VNNI, AMX), threads, the precision `auto`
    picks and why, data paths and which extras are installed."""
    from .doctor import report

    _print_json(report())


def _command_name(argv: list[str]) -> str:
    words = [a for a in argv[1:] if not a.startswith("-")][:2]
    return "resattn " + " ".join(words) if words else "resattn"


def _report_bug(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected exception to a log file; its path, or None."""
    import os
    import tempfile
    import time
    import traceback

    root = Path(os.environ.get("RESATTN_CACHE") or Path.home() / ".cache" / "resattn") / "logs"
    text = (f"command: {' '.join(sys.argv)}\ntime: {time.strftime('%Y-%m-%dT%H:%M:%S')}\n\n"
            + "".join(traceback.format_exception(exc)))
    for folder in (root, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"resattn-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(text)
            return path
        except OSError:
            continue
    return None


INTERRUPTED = ("interrupted; rerun the same command (`train`: with --resume) to continue "
               "from the last checkpoint")
_reported: set[str] = set()  # what a command already told the user (its own interrupt line)


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a scheduler's stop, `kill`) ends a command as Ctrl-C does: every ``finally``
    runs, so locks are released and partial files removed; checkpoints already written stay."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


@functools.cache
def _command():
    """The click command of ``app``, built once per process (typer rebuilds it per call)."""
    return typer.main.get_command(app)


def main() -> None:
    """Entry point: user mistakes become one ``error:`` line and exit code 2; anything else is
    a bug: one line naming the command and the log file holding the traceback, exit code 1."""
    _sigterm_as_interrupt()
    try:
        _command()(prog_name="resattn")
    except ResattnError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                      soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        sys.exit(130)
    except SystemExit as exc:  # typer turns an interrupt into exit code 130, silently
        if exc.code == 130 and "interrupt" not in _reported:
            console.print(INTERRUPTED)
        raise
    except Exception as exc:  # the last resort: no raw traceback for a user
        log = _report_bug(exc)
        where = f"the traceback is in {log}" if log else "the traceback could not be saved"
        console.print(f"[bold red]internal error[/] in `{_command_name(sys.argv)}` (a bug in "
                      f"resattn, not in your input): {type(exc).__name__}: {escape(str(exc))}; "
                      f"{escape(where)}. "
                      "Please report it with that file.", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
