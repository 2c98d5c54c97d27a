"""``resattn train``: its options are generated from the training spec, not retyped.

The recipe's options come from ``TrainConfig``'s fields (help in ``engine.recipes.RECIPE_HELP``);
each task's options from its options dataclass (``WaveformOptions``, ``ImageOptions``), so a
new recipe field or task option appears on the command line by itself. A flag that the task
chosen by ``--data`` does not have is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_checks import out_dir
from .engine.recipes import RECIPE_CHOICES, RECIPE_HELP
from .engine.trainer import TrainConfig, preset_config
from .errors import ConfigError
from .options import flag_of, parse_key_values, parse_text, type_hints
from .tasks import IMAGES, WAVEFORMS, Task, TrainSpec, task_for_data
from .tasks.registry import one_or_many

TRAINABLE = (WAVEFORMS, IMAGES)  # the classification tasks `train` serves (forecast: its own)
TASK_RECIPE = {"augment"}  # recipe fields a task option sets (images' augment policy)


def _recipe_parameters() -> list[inspect.Parameter]:
    hints = type_hints(TrainConfig)
    params = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in TASK_RECIPE:
            continue
        kind, default = hints[f.name], f.default
        if f.name in RECIPE_CHOICES:  # a closed set: the CLI lists and checks the choices
            kind = Enum(f.name, {v: v for v in RECIPE_CHOICES[f.name]}, type=str)
            default = kind(default)
        params.append(inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
            annotation=Annotated[kind, typer.Option(help=RECIPE_HELP.get(f.name, ""),
                                                    rich_help_panel="Recipe")]))
    return params


def _task_flags() -> dict[str, list[tuple[Task, dataclasses.Field]]]:
    """CLI parameter name -> the (task, field) pairs it sets."""
    flags: dict[str, list] = {}
    for task in TRAINABLE:
        for f in dataclasses.fields(task.options_type):
            flags.setdefault(flag_of(f).replace("-", "_"), []).append((task, f))
    return flags


def _task_parameters() -> list[inspect.Parameter]:
    params = []
    for name, pairs in _task_flags().items():
        kinds = {type_hints(t.options_type)[f.name] for t, f in pairs}
        help_text = " ".join(f"{t.section.capitalize()}s: {f.metadata.get('help', '')}"
                             for t, f in pairs)
        if kinds == {bool}:
            annotation, default = bool, False
        else:
            annotation, default = str | None, None
        params.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default,
            annotation=Annotated[annotation, typer.Option(help=help_text,
                                                          rich_help_panel="Task")]))
    return params


FIXED = [
    ("model", str, ..., "Registered model name (see `resattn models list`)."),
    ("data", list[Path], ..., "Waveforms: STEAD-layout folder (CSV + HDF5 pairs) or SeisBench "
                              "folder (metadata.csv + waveforms.hdf5); repeat for several "
                              "sources. Images: folder of class folders, .tar(.gz)/.zip "
                              "archive or .npz."),
    ("out", Path, ..., "Run directory for checkpoints, logs and metrics."),
    ("preset", str | None, None, "Named recipe (resnetkan1d, arn-mednist, fer-resnet18); "
                                 "options given explicitly win."),
    ("resume", bool, False, "Continue the run in --out from its last checkpoint."),
    ("init_from", str | None, None, "Start from trained weights (shipped name, run dir or "
                                    "checkpoint)."),
    ("option", list[str] | None, None, "Model option key=value, repeatable (e.g. attn=channel, "
                                       "head=mlp)."),
    ("quiet", bool, False, "No progress output."),
]


def _fixed_parameters() -> list[inspect.Parameter]:
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=Annotated[kind, typer.Option(
                                  help=text, **({"callback": out_dir} if name == "out" else {}))])
            for name, kind, default, text in FIXED]


def _given(ctx: typer.Context, name: str) -> bool:
    # (the enum's module differs across typer versions: compare by name)
    return getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"


def recipe_from(ctx: typer.Context, values: dict) -> TrainConfig:
    """The recipe: a preset filling every field the user did not type, else the fields."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in TASK_RECIPE]
    recipe = {k: getattr(values[k], "value", values[k]) for k in names}
    if values["preset"] is not None:
        typed = {k: v for k, v in recipe.items() if _given(ctx, k)}
        return preset_config(values["preset"], **{"epochs": recipe["epochs"],
                                                  "seed": recipe["seed"],
                                                  "precision": recipe["precision"], **typed})
    return TrainConfig(**recipe)


def options_from(ctx: typer.Context, task: Task, values: dict) -> Any:
    """The task's options from the flags given; a flag of another task is an error."""
    chosen = {}
    for name, pairs in _task_flags().items():
        if not _given(ctx, name):
            continue
        mine = [f for t, f in pairs if t is task]
        if not mine:
            others = ", ".join(t.name for t, _ in pairs)
            raise ConfigError(f"--{name.replace('_', '-')} applies to {others} data only; "
                              f"--data holds {task.name} data")
        f = mine[0]
        kind = type_hints(task.options_type)[f.name]
        value = values[name]
        chosen[f.name] = value if kind is bool else parse_text(
            value, kind, f"--{name.replace('_', '-')}")
    return task.options_type(**chosen)


def spec_from(ctx: typer.Context, task: Task, values: dict) -> TrainSpec:
    """The TrainSpec the command line's values describe."""
    return TrainSpec(model=values["model"], data=one_or_many(values["data"]), out=values["out"],
                     recipe=recipe_from(ctx, values), options=options_from(ctx, task, values),
                     seed=values["seed"],
                     model_options=parse_key_values(values["option"], "--option"),
                     init_from=values["init_from"], resume=values["resume"],
                     show_progress=not values["quiet"])


def cv(ctx: typer.Context, **values) -> None:
    """Leave-one-source-out: for each source in --data (a `source` column, the origin its
    data_source names, or its folder), train on all the others and score it; writes
    OUT/loso.json and OUT/loso.md, one resumable run folder per held-out source."""
    from .cli import breakdown_table, console
    from .tasks.crossval import SCORES, leave_one_source_out

    task = task_for_data(values["data"])
    if task is not WAVEFORMS:
        given = ", ".join(map(str, values["data"]))
        raise ConfigError(f"cv holds out waveform sources; --data {given} holds {task.name} "
                          "data")
    result = leave_one_source_out(spec_from(ctx, task, values), by=values["by"],
                                  references=tuple(values["reference"] or ()))
    for name in ("model", *result["references"]):
        rows = {value: fold[name] for value, fold in result["folds"].items()}
        console.print(breakdown_table(f"held-out {values['by']}: {name}", rows))
    console.print(f"{len(SCORES)} scores per fold in {values['out']}/loso.md", markup=False)


def train(ctx: typer.Context, **values) -> None:
    """Train a classifier: waveforms (earthquake vs noise, grouped 8:1:1 split) or images
    (class folders or archive, stratified split), the task chosen from what --data holds."""
    from .cli import console

    task = task_for_data(values["data"])
    summary = task.train(spec_from(ctx, task, values))
    console.print(f"best epoch {summary['best_epoch']} of {summary['epochs_run']}; "
                  f"{task.headline(summary['test'])}. Model: {values['out']}/model.safetensors",
                  markup=False)


CV_PARAMETERS = [
    inspect.Parameter("by", inspect.Parameter.KEYWORD_ONLY, default="source", annotation=Annotated[
        str, typer.Option(help="Metadata column whose values are held out one at a time.")]),
    inspect.Parameter("reference", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[list[str] | None, typer.Option(
                          help="A model scored as it is on each held-out part, beside the "
                               "trained one (e.g. stead-detector); repeatable.")]),
]
cv.__signature__ = inspect.Signature([
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    *_fixed_parameters(), *CV_PARAMETERS, *_recipe_parameters(), *_task_parameters()])
cv.__annotations__ = {p.name: p.annotation for p in cv.__signature__.parameters.values()}

train.__signature__ = inspect.Signature([
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    *_fixed_parameters(), *_recipe_parameters(), *_task_parameters()])
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}
