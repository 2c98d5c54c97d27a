"""Typed experiment configs: every section checked on load with one error line naming the file
and the key, task names and aliases, and the same runs (TrainSpec) the configs gave before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli
from resattn.errors import ConfigError
from test_cli import _assert_one_line_error

IMAGE = {"name": "x", "task": "image", "data": ".",
         "cells": [{"name": "a", "model": "resnet18"}]}
WAVEFORM = {**IMAGE, "task": "waveform", "cells": [{"name": "a", "model": "resnet18_1d"}]}
MAIN = "fused"
FORECAST = {"name": "f", "task": "forecast", "data": ".", "baseline": MAIN,
            "metrics": ["macro_f1"],
            "cells": [{"name": MAIN, "model": "decoupled_densenet1d"},
                      {"name": "implicit", "model": "decoupled_densenet1d",
                       "options": {"features": "implicit", "backbone_from": MAIN}},
                      {"name": "tree", "reference": "weighted_tree"}]}


def _load(tmp_path: Path, cfg: dict):
    from resattn.reproduce import load_experiment

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_experiment(path)


def _with(base: dict, **changes) -> dict:
    return {**base, **changes}


def _cell(base: dict, i: int, **changes) -> dict:
    cells = [dict(c) for c in base["cells"]]
    cells[i] = {**cells[i], **changes}
    return {**base, "cells": cells}


CASES = [
    (_with(WAVEFORM, waveform={"windw": 2000}),
     "bad.yaml: waveform.windw: unknown key (did you mean 'window'?)"),
    (_with(WAVEFORM, waveform={"window": "long"}), "bad.yaml: waveform.window: expected"),
    (_with(IMAGE, image={"size": [48]}), "bad.yaml: image.size: expected"),
    (_with(IMAGE, image={"split": "random"}), "bad.yaml: image: split must be one of"),
    (_with(IMAGE, waveform={"window": 100}),
     "bad.yaml: waveform: the image-classification task reads no waveform section"),
    (_with(IMAGE, quick={"epoch": 1}), "bad.yaml: quick.epoch: unknown key (did you mean "
                                       "'epochs'?)"),
    (_with(IMAGE, quick={"seeds": "two"}), "bad.yaml: quick.seeds: expected an integer"),
    (_with(IMAGE, quick={"image": {"sizee": 3}}), "bad.yaml: quick.image.sizee: unknown key"),
    (_with(WAVEFORM, quick={"max_per_class": 5}),
     "bad.yaml: quick.max_per_class: the waveform-classification task has no max_per_class"),
    (_with(IMAGE, recipe={"optimiser": "adam"}),
     "bad.yaml: recipe.optimiser: unknown key (did you mean 'optimizer'?)"),
    (_with(IMAGE, recipe={"lr": "fast"}), "bad.yaml: recipe.lr: expected a number"),
    (_with(IMAGE, recipe={"epochs": 3}), "bad.yaml: recipe.epochs: set by the experiment's "
                                         "epochs"),
    (_with(IMAGE, recipe={"preset": "resnetkan"}),
     "bad.yaml: recipe.preset: unknown preset 'resnetkan' (did you mean 'resnetkan1d'?)"),
    (_with(IMAGE, recipe={"optimizer": "adamz"}), "bad.yaml: recipe: optimizer must be one of"),
    (_with(IMAGE, metrics=["acuracy"]), "bad.yaml: metrics[0]: unknown image-classification "
                                        "metric 'acuracy' (did you mean 'accuracy'?)"),
    (_with(IMAGE, metrics=["accuracy", "macro_recall"]),
     "bad.yaml: metrics[1]: unknown image-classification metric 'macro_recall'"),
    (_with(IMAGE, metrics="accuracy"), "bad.yaml: metrics: expected a list"),
    (_with(IMAGE, per_class="recal"), "bad.yaml: per_class: unknown image-classification "
                                      "per-class metric 'recal' (did you mean 'recall'?)"),
    (_cell(IMAGE, 0, published={"recal/left": 0.8}), "bad.yaml: cells[0].published.recal/left"),
    (_with(IMAGE, seeds="3"), "bad.yaml: seeds: expected an integer"),
    (_with(IMAGE, seed=3), "bad.yaml: unknown field(s) ['seed'] (did you mean 'seeds'?)"),
    (_with(IMAGE, task="audio"), "bad.yaml: task must be one of"),
    (_with(FORECAST, metrics=["macro_f2"]), "bad.yaml: metrics[0]: unknown weekly-forecast "
                                            "metric 'macro_f2' (did you mean 'macro_f1'?)"),
    (_with(FORECAST, forecast={"windw": 8}), "bad.yaml: forecast.windw: unknown key (did you "
                                             "mean 'window'?)"),
    (_with(FORECAST, forecast={"epochs": 5}), "bad.yaml: forecast.epochs: set by the "
                                              "experiment's epochs"),
    (_with(FORECAST, recipe={"lr": 0.1}), "bad.yaml: recipe: the weekly-forecast task takes its "
                                          "recipe from its forecast section"),
    (_with(FORECAST, quick={"forecast": {"window": "8"}}),
     "bad.yaml: quick.forecast.window: expected an integer"),
    (_cell(FORECAST, 1, options={"features": "both"}),
     "bad.yaml: cells[1].options.features: expected one of ['fused', 'implicit', 'explicit']"),
    (_cell(FORECAST, 1, options={"attn": "se"}), "bad.yaml: cells[1].options.attn: unknown key"),
    (_cell(FORECAST, 1, model="resnet18_1d"), "bad.yaml: cells[1].model: the weekly-forecast "
                                              "task trains decoupled_densenet1d"),
    (_cell(FORECAST, 1, options={"backbone_from": "nope"}),
     "bad.yaml: cells[1].options.backbone_from: 'nope' is not a trained cell"),
    (_cell(FORECAST, 0, options={"backbone_from": "implicit"}),
     "bad.yaml: cells[0].options.backbone_from: cell 'implicit' must come before"),
    (_cell(FORECAST, 2, reference="weighted_forest"),
     "bad.yaml: cells[2].reference: unknown weekly-forecast reference method 'weighted_forest' "
     "(did you mean 'weighted_tree'?)"),
    (_cell(FORECAST, 2, model="cnn1d"), "bad.yaml: cells[2].model: unknown key"),
    (_cell(FORECAST, 2, of="tree"), "bad.yaml: cells[2].of: 'tree' is not a trained cell"),
    (_with(FORECAST, data=[".", 3]), "bad.yaml: data: expected a path or a list of paths"),
    (_cell(IMAGE, 0, published={"accuracy": "high"}),
     "bad.yaml: cells[0].published.accuracy: expected a number, got 'high'"),
    (_cell(IMAGE, 0, model="resnet81"), "bad.yaml: cells[0].model: unknown model 'resnet81'"),
    (_cell(IMAGE, 0, modle="resnet18"), "bad.yaml: cells[0].modle: unknown key (did you mean "
                                        "'model'?)"),
    (_with(IMAGE, baseline="b"), "bad.yaml: baseline: no cell named 'b'"),
    (_with(WAVEFORM, waveform={"split_by": "group"}),
     "bad.yaml: waveform.split_by: expected a list, got 'group'"),
    (_with(WAVEFORM, waveform={"bandpass": "1-20"}), "bad.yaml: waveform.bandpass: expected"),
    (_with(IMAGE, epochs=None), "bad.yaml: epochs: expected an integer, got None"),
    (_with(IMAGE, recipe=["lr", 0.1]), "bad.yaml: recipe: expected a mapping"),
]


@pytest.mark.parametrize(("cfg", "message"), CASES, ids=[m.split(": ", 1)[1][:40]
                                                         for _, m in CASES])
def test_each_section_error_is_one_line_naming_file_and_key(tmp_path: Path, cfg: dict,
                                                           message: str) -> None:
    from resattn.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        _load(tmp_path, cfg)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(str(tmp_path / "bad.yaml")), text
    assert message in text, text


def test_the_command_line_prints_a_section_typo_as_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with(WAVEFORM, waveform={"windw": 2000})))
    _assert_one_line_error(run_cli("reproduce", bad), "bad.yaml", "waveform.windw",
                           "did you mean 'window'?")


def test_task_names_and_aliases_give_the_same_runs(tmp_path: Path) -> None:
    from resattn.reproduce.runner import cell_spec

    cfg = _with(IMAGE, image={"size": 32}, recipe={"preset": "arn-mednist", "lr": 1})
    alias = _load(tmp_path, cfg)
    canonical = _load(tmp_path, _with(cfg, task="image-classification"))
    assert alias.registered_task is canonical.registered_task
    run = tmp_path / "runs" / "a" / "seed1"
    one, two = (cell_spec(e, e.cells[0], 1, run) for e in (alias, canonical))
    assert one == two and one.recipe.lr == 1.0 and one.recipe.optimizer == "adamax"
    assert one.options.size == 32


def test_forecast_sections_are_typed_and_quick_overrides_them(tmp_path: Path) -> None:
    from resattn.forecast.pipeline import ForecastConfig

    (tmp_path / "a.csv").write_text("")
    # YAML reads an unquoted date as a date; the section gets the ISO string
    text = yaml.safe_dump(_with(FORECAST, data=["a.csv", "a.csv"],
                                quick={"epochs": 2, "forecast": {"window": 8}}))
    text += "forecast: {start: 2005-01-01, region: [30, 35, -120, -115]}\n"
    (tmp_path / "f.yaml").write_text(text)
    from resattn.reproduce import load_experiment

    exp = load_experiment(tmp_path / "f.yaml")
    assert exp.data == [(tmp_path / "a.csv").resolve()] * 2
    assert exp.options == ForecastConfig(start="2005-01-01", region=(30.0, 35.0, -120.0, -115.0))
    quick = exp.quick_version()
    assert (quick.epochs, quick.seeds, quick.options.window) == (2, 1, 8)
    assert quick.options.start == "2005-01-01"
    assert exp.cells[1].options == {"features": "implicit", "backbone_from": MAIN}
    assert (exp.cells[2].reference, exp.cells[2].of) == ("weighted_tree", None)


def _old_spec(path: Path, cell: dict, seed: int):
    """The run the config gave before its sections were typed: the recipe's TrainConfig and
    the task section through the task's options type, by hand from the raw YAML."""
    from resattn.engine.trainer import TrainConfig, preset_config
    from resattn.options import from_mapping
    from resattn.tasks import get_task

    raw = yaml.safe_load(path.read_text())
    task = get_task(raw["task"])
    recipe = dict(raw.get("recipe") or {})
    preset = recipe.pop("preset", None)
    fields = {**recipe, "epochs": raw["epochs"], "seed": seed}
    cfg = preset_config(preset, **fields) if preset else TrainConfig(**fields)
    return cfg, from_mapping(task.options_type, raw.get(task.section), "x"), dict(
        cell.get("options") or {})


@pytest.mark.parametrize("name", ["seed000_table2", "seed000_table3", "seed001_resnet50",
                                  "seed002_fer", "seed002_fer2013", "seed004_mednist"])
def test_classification_configs_give_the_runs_they_gave_before(tmp_path: Path,
                                                              name: str) -> None:
    from resattn.reproduce import load_experiment
    from resattn.reproduce.runner import cell_spec, run_dir

    path = REPO / "configs" / f"{name}.yaml"
    exp = load_experiment(path)
    raw_cells = yaml.safe_load(path.read_text())["cells"]
    for cell, raw in zip(exp.cells, raw_cells, strict=True):
        for seed in (0, 2):
            spec = cell_spec(exp, cell, seed, run_dir(tmp_path, cell, seed))
            recipe, options, model_options = _old_spec(path, raw, seed)
            assert spec.recipe == recipe and spec.options == options
            assert spec.model == raw["model"] and spec.model_options == model_options
            assert spec.seed == seed and spec.data == exp.data


@pytest.mark.parametrize("name", ["socal", "swchina"])
def test_forecast_configs_train_what_the_committed_tables_trained(tmp_path: Path,
                                                                 name: str) -> None:
    """The proposed cell's ForecastConfig is the one results/forecast/<name>.json records
    (written by the script the configs replace); variants reuse its backbone."""
    from dataclasses import asdict

    from resattn.reproduce import load_experiment
    from resattn.reproduce.runner import cell_spec, run_dir

    exp = load_experiment(REPO / "configs" / f"seed003_{name}.yaml")
    committed = json.loads((REPO / "results" / "forecast" / f"{name}.json").read_text())
    task = exp.registered_task
    main = exp.cell(exp.baseline)
    cfg = asdict(task.forecast_config(cell_spec(exp, main, 0, run_dir(tmp_path, main, 0))))
    assert json.loads(json.dumps(cfg)) == {**committed["config"], "backbone_from": None}
    assert exp.seeds == committed["seeds"]
    assert [Path(p).name for p in committed["catalog"]] == [p.name for p in exp.data_paths]
    variant = exp.cells[1]
    spec = cell_spec(exp, variant, 2, run_dir(tmp_path, variant, 2))
    vcfg = task.forecast_config(spec)
    assert vcfg.backbone_from == str(run_dir(tmp_path, main, 2)) and not vcfg.baselines
    assert vcfg.seed == 2 and vcfg.features == "explicit"
    published = {c.name: c.published for c in exp.cells}
    paper = {"accuracy": 0.958, "macro_recall": 0.958, "macro_f1": 0.95}
    assert published[main.name] == paper
    quick = exp.quick_version()
    assert quick.seeds == 1 and quick.epochs <= 2 and quick.options.start > exp.options.start


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "/abs"])
def test_name_must_stay_inside_results(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"bad\.yaml: name: expected one plain folder name"):
        _load(tmp_path, _with(IMAGE, name=name))
