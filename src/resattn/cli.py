"""The ``resattn`` command line: a thin layer over library calls a Python user can make too.

A user's mistake (bad path, bad file, wrong option) ends in one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import json
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import ConfigError, ResattnError

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


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _parse_options(items: list[str] | None) -> dict:
    """``key=value`` strings -> dict, values parsed as JSON where they parse (numbers, lists)."""
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects key=value, got {item!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Registered model name (see `resattn models list`).")],
    data: Annotated[Path, typer.Option(help="STEAD-layout folder (CSV + HDF5 pairs) or "
                                             "SeisBench folder (metadata.csv + waveforms.hdf5).")],
    out: Annotated[Path, typer.Option(help="Run directory for checkpoints, logs and metrics.")],
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping may end sooner).")]
    = 100,
    window: Annotated[int | None, typer.Option(
        help="Window in samples. Default: 5000 (50 s, the paper) if every trace holds it, else "
             "80 % of the shortest trace.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for split, initialisation and crops.")] = 0,
    batch_size: Annotated[int, typer.Option()] = 64,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-4,
    weight_decay: Annotated[float, typer.Option()] = 1e-3,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 10,
    optimizer: Annotated[str, typer.Option(help="adamw (paper), adam, adamax or sgd.")]
    = "adamw",
    schedule: Annotated[str, typer.Option(help="Learning-rate rule: none, plateau (x0.5 after "
                                               "a flat epoch) or cosine.")] = "none",
    dwell: Annotated[bool, typer.Option(help="On a worse validation loss go back to the best "
                                             "weights and halve the learning rate.")] = False,
    l1: Annotated[float, typer.Option(help="L1 penalty on dense-layer weights.")] = 0.0,
    l2: Annotated[float, typer.Option(help="L2 penalty on dense-layer weights.")] = 0.0,
    preset: Annotated[str | None, typer.Option(
        help="Named recipe (resnetkan1d, arn-mednist); options given explicitly win.")] = None,
    precision: Annotated[Precision, typer.Option(help="auto: bf16 only where this CPU "
                                                      "accelerates it.")] = Precision.auto,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last "
                                              "checkpoint.")] = False,
    pad: Annotated[bool, typer.Option(help="Zero-pad traces shorter than the window (can leak "
                                           "the label; off by default).")] = False,
    split_by: Annotated[str, typer.Option(help="Comma-separated columns that keep rows on one "
                                               "side of the split, e.g. group,station.")]
    = "group",
    init_from: Annotated[str | None, typer.Option(help="Start from trained weights (shipped "
                                                       "name, run dir or checkpoint).")] = None,
    split: Annotated[Path | None, typer.Option(
        help="JSON with trace names per part (train/val/test), e.g. a run's split.json; "
             "replaces the grouped split.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        help="Model option key=value, repeatable (e.g. attn=channel, head=mlp).")] = None,
    bandpass: Annotated[str | None, typer.Option(
        help="Band-pass LOW,HIGH in Hz before windowing (e.g. 1,20); default none, as the "
             "paper.")] = None,
    mix_noise: Annotated[float, typer.Option(
        help="Probability of adding a random noise window to a training item.")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
) -> None:
    """Train a waveform classifier (earthquake vs noise) with a grouped 8:1:1 split."""
    from .engine.checkpoint import read_json
    from .engine.trainer import TrainConfig, preset_config
    from .tasks.waveforms import parse_band, train_waveform_classifier

    recipe = {"epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "patience": patience, "precision": precision.value,
              "seed": seed, "optimizer": optimizer, "schedule": schedule, "dwell": dwell,
              "l1": l1, "l2": l2}
    if preset:  # the preset fills every recipe field the user did not type
        typed = {k: v for k, v in recipe.items()  # (the enum's module differs across typer)
                 if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") != "DEFAULT"}
        cfg = preset_config(preset, **{"epochs": epochs, "seed": seed,
                                       "precision": precision.value, **typed})
    else:
        cfg = TrainConfig(**recipe)
    summary = train_waveform_classifier(
        model, data, out, epochs=epochs, window=window, seed=seed, resume=resume, pad=pad,
        split_by=tuple(s.strip() for s in split_by.split(",") if s.strip()),
        model_options=_parse_options(option), init_from=init_from, config=cfg,
        show_progress=not quiet, band=parse_band(bandpass), mix_noise=mix_noise,
        split=read_json(split) if split else None,
    )
    test = summary["test"]
    console.print(
        f"best epoch {summary['best_epoch']} of {summary['epochs_run']}; test split "
        f"(n={test['n']}): accuracy {test['accuracy']:.4f}, precision {test['precision']:.4f}, "
        f"recall {test['recall']:.4f}, F1 {test['f1']:.4f}. Model: {out}/model.safetensors"
    )


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Shipped model name (e.g. stead-detector), run "
                                            "directory or checkpoint file.")],
    data: Annotated[Path, typer.Option(help="STEAD-layout or SeisBench-layout folder.")],
    format: Annotated[Format, typer.Option(help="json: one JSON object on stdout.")]
    = Format.table,
    window: Annotated[int | None, typer.Option(help="Override the model's window.")] = None,
    batch_size: Annotated[int, typer.Option()] = 64,
    precision: Annotated[Precision, typer.Option()] = Precision.auto,
    pad: Annotated[bool, typer.Option(help="Zero-pad traces shorter than the window.")] = False,
    predictions: Annotated[Path | None, typer.Option(
        help="Also write per-trace earthquake probabilities to this CSV.")] = None,
) -> None:
    """Score a model on every trace of a folder, one deterministic window per trace."""
    from .tasks.waveforms import evaluate_waveform_classifier, write_predictions

    metrics = evaluate_waveform_classifier(model, data, window, precision.value, batch_size, pad)
    if predictions:
        write_predictions(predictions, metrics)
    names, probs = metrics.pop("trace_names"), metrics.pop("probabilities")
    if format is Format.json:
        _print_json(metrics)
        return
    table = Table(title=f"{model} on {data} (n={metrics['n']}, positive class: earthquake)")
    for key in ("accuracy", "precision", "recall", "f1", "kappa", "log_loss"):
        table.add_column(key)
    table.add_row(*(f"{metrics[k]:.4f}" if metrics[k] is not None else "-"
                    for k in ("accuracy", "precision", "recall", "f1", "kappa", "log_loss")))
    Console().print(table)
    cm = metrics["confusion"]
    Console().print(f"confusion [true][pred] (noise, earthquake): {cm}", markup=False)
    del names, probs


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
    in_chans: Annotated[int | None, typer.Option()] = None,
    num_classes: Annotated[int | None, typer.Option()] = None,
    input_size: Annotated[list[int] | None, typer.Option(
        help="Spatial size: samples (1-D) or H W (2-D). Default 5000 or 224 224.")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Model option key=value.")] = None,
    format: Annotated[Format, typer.Option()] = Format.table,
) -> None:
    """Parameters, shapes, multiply-accumulates and a layer table of one model."""
    from .models import create_model, model_entry
    from .models.summary import DEFAULT_INPUT, summarize

    entry = model_entry(name)
    options = _parse_options(option)
    for key, value in (("dims", dims), ("in_chans", in_chans), ("num_classes", num_classes)):
        if value is not None:
            options[key] = value
    model = create_model(name, **options)
    model_dims = getattr(model, "dims", entry.defaults.get("dims", 2))
    native = model.config.get("input_size", entry.defaults.get("input_size"))
    native = (native,) * model_dims if isinstance(native, int) else native
    size = tuple(input_size) if input_size else (native or DEFAULT_INPUT[model_dims])
    if len(size) != model_dims:
        raise ConfigError(f"--input-size needs {model_dims} number(s) for a {model_dims}-D "
                          f"model, got {list(size)}")
    chans = options.get("in_chans", entry.defaults.get("in_chans", 3))
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
    out: Annotated[Path, typer.Option(help="Folder for the demo's run and report.")]
    = Path("resattn-demo"),
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 3,
) -> None:
    """Evaluate the shipped detector on the shipped sample, fine-tune briefly, write a report."""
    from .demo import run_demo

    report = run_demo(out, epochs=epochs)
    console.print(f"report: {report}")


@app.command()
def info() -> None:
    """Machine facts and the precision `auto` chooses here."""
    from .engine.precision import calibrate_bf16, choose_precision
    from .engine.provenance import environment

    _print_json({**environment(), "auto_precision": choose_precision("auto"),
                 "bf16_speedup": round(calibrate_bf16(), 2)})


def main() -> None:
    """Entry point: user mistakes become one ``error:`` line and exit code 2."""
    try:
        app()
    except ResattnError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; `--resume` continues from the last checkpoint")
        sys.exit(130)


if __name__ == "__main__":
    main()
