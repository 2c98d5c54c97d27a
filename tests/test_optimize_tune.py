"""Hyper-parameter search (issue 8): search-space checks, trials trained in one fit that pruning
can stop, the exact global budget, a study resumed after its worker is killed (SQLite), and
two workers sharing one study on a real PostgreSQL server."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from resattn.cli import app
from resattn.engine.precision import choose_precision
from resattn.engine.provenance import seed_everything
from resattn.errors import ConfigError
from resattn.reproduce.config import Cell, Experiment
from resattn.reproduce.runner import train_cell
from resattn.tune import (
    best_summary,
    make_storage,
    open_study,
    optimize,
    parse_search,
    run_study,
    sigterm_as_interrupt,
)
from resattn.tune.objective import _pairs_intact
from test_image_task import write_squares

TINY = {"input_size": 32, "widths": [8, 8, 8, 16], "out_chans": 8, "fc_dim": 16}
SPACE = {"lr": {"low": 1e-4, "high": 1e-2, "log": True},
         "model.drop_rate": {"low": 0.0, "high": 0.5}}
FRACTIONS = [0.5, 0.25, 0.25]
TIMING = ("train_seconds", "train_samples_per_s")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return write_squares(tmp_path_factory.mktemp("tune") / "squares", per_class=8)


def _experiment(data: Path, epochs: int = 2, recipe: dict | None = None) -> Experiment:
    return Experiment(name="squares", task="image", data=data, epochs=epochs,
                      cells=[Cell("arn", "arn_cnn", dict(TINY))],
                      recipe=recipe or {"batch_size": 8}, image={"fractions": FRACTIONS})


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def _sqlite(path: Path, grace: int = 60):
    return make_storage(f"sqlite:///{path}", heartbeat_interval=1, grace_period=grace)


# ---------------------------------------------------------------------------- search space
@pytest.mark.parametrize(("spec", "message"), [
    ({}, "search: expected a non-empty mapping"),
    ({"lrr": {"low": 1e-4, "high": 1e-2}}, "search: unknown key 'lrr'"),
    ({"epochs": {"low": 1, "high": 5}}, "search.epochs: cannot be searched"),
    ({"seed": [0, 1]}, "search.seed: cannot be searched"),
    ({"lr": 0.001}, "search.lr: expected {low, high"),
    ({"lr": {"low": 1e-2, "high": 1e-4}}, "search.lr: low must be below high"),
    ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "search.lr: a log range needs low > 0"),
    ({"lr": {"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-3}},
     "search.lr: give log or step, not both"),
    ({"lr": {"low": 1e-4, "hi": 1e-2}}, "search.lr: unknown field(s) ['hi']"),
    ({"lr": {"low": "small", "high": 1e-2}}, "search.lr: low and high must be numbers"),
    ({"lr": {"choices": []}}, "search.lr: choices must be a non-empty list"),
    ({"lr": {"choices": [1e-3, 0]}}, "search.lr: 0 is not a valid value (lr must be > 0"),
    ({"lr": {"low": 0.0, "high": 1e-2}}, "search.lr: 0.0 is not a valid value"),
    ({"optimizer": {"choices": ["adamw", "adamz"]}}, "search.optimizer: 'adamz' is not a valid"),
    ({"optimizer": {"low": 1, "high": 2}}, "search.optimizer: takes a str; give choices"),
    ({"batch_size": {"low": 8.5, "high": 16}}, "search.batch_size: is an integer"),
    ({"batch_size": {"low": 8, "high": 16, "step": 0}}, "search.batch_size: step must be a "
     "positive integer"),
    ({"model.atn": ["arn", "none"]}, "search.model.atn: model 'arn_cnn' has no option 'atn'"),
    ({"model.num_classes": [2, 3]}, "search.model.num_classes: num_classes is set by the task"),
    ({"model.attn": {"choices": ["arn", "arn"]}}, "search.model.attn: choices repeat a value"),
    ({"model.attn": {"choices": ["arn"], "low": 1}}, "search.model.attn: choices cannot be "
     "combined with ['low']"),
    ({"model.residual": {"low": 0, "high": 1}}, "search.model.residual: takes a bool"),
])
def test_search_space_errors_name_the_key(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_search(spec, model="arn_cnn")
    assert message in str(err.value)


def test_search_space_types_follow_the_config_and_the_model() -> None:
    space = parse_search({"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                          "batch_size": [8, 16], "patience": {"low": 2, "high": 6},
                          "model.drop_rate": {"low": 0, "high": 1},  # a float option
                          "model.head_hidden": {"low": 16, "high": 64, "step": 16},
                          "model.attn": {"choices": ["arn", "none"]}}, model="arn_cnn")
    kinds = {p.name: p.kind for p in space.params}
    assert kinds == {"lr": "float", "batch_size": "categorical", "patience": "int",
                     "model.drop_rate": "float", "model.head_hidden": "int",
                     "model.attn": "categorical"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        train, options = space.sample(study.ask())
        assert set(train) == {"lr", "batch_size", "patience"}
        assert set(options) == {"drop_rate", "head_hidden", "attn"}
        assert 1e-4 <= train["lr"] <= 1e-2 and train["batch_size"] in (8, 16)
        assert isinstance(train["patience"], int) and 2 <= train["patience"] <= 6
        assert isinstance(options["drop_rate"], float) and 0 <= options["drop_rate"] <= 1
        assert options["head_hidden"] in (16, 32, 48, 64)


def test_config_search_section_is_read(squares: Path, tmp_path: Path) -> None:
    from resattn.reproduce.config import ROOT_KEYS
    from resattn.tune import load_tuning, read_search

    raw = {"name": "sq", "task": "image", "data": str(squares), "epochs": 1,
           "cells": [{"name": "arn", "model": "arn_cnn", "options": TINY}], "search": SPACE}
    (tmp_path / "search.yaml").write_text(yaml.safe_dump({"search": SPACE}))
    assert read_search(tmp_path / "search.yaml") == SPACE
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    assert read_search(tmp_path / "space.yaml") == SPACE
    if "search" not in ROOT_KEYS:
        pytest.skip("reproduce/config.py does not accept a 'search' section yet")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    exp, search = load_tuning(tmp_path / "exp.yaml")
    assert exp.name == "sq" and search == SPACE


# ---------------------------------------------------------------------------- objective
def test_trial_trains_in_stages_exactly_like_one_run(squares: Path, tmp_path: Path) -> None:
    """A trial is one fit whose pruning callback sees every epoch (once each epoch was its
    own resumed call); it must give the very run a plain training gives, with the ARN
    recipe's dwell and plateau state carried over, and every epoch reported to the trial."""
    recipe = {"preset": "arn-mednist", "batch_size": 8}
    exp = _experiment(squares, epochs=3, recipe=recipe)
    study = run_study(exp, {"lr": [3e-3]}, n_trials=1, out=tmp_path / "tune", pruner="none")
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.params == {"lr": 3e-3} and trial.user_attrs["pruning"] == "per epoch"
    staged = _rows(tmp_path / "tune" / "trials" / "0")
    once = Experiment(**{**exp.__dict__, "recipe": {**recipe, "lr": 3e-3}})
    choose_precision("auto")  # as the objective does before building the model
    seed_everything(0)
    summary = train_cell(once, once.cells[0], 0, tmp_path / "once")
    assert staged == _rows(tmp_path / "once")
    assert [r["epoch"] for r in staged] == [1, 2, 3]
    assert trial.intermediate_values == {r["epoch"]: r["val_f1"] for r in staged}
    assert trial.user_attrs["best_epoch"] == summary["best_epoch"]
    assert trial.value == staged[summary["best_epoch"] - 1]["val_f1"]
    summ = best_summary(study)
    assert summ["best_trial"] == 0 and summ["states"] == {"COMPLETE": 1}
    assert summ["best_run_dir"] == str((tmp_path / "tune" / "trials" / "0").resolve())
    # A retry resumes from such a folder only if its checkpoint pairs are whole.
    torn = shutil.copytree(tmp_path / "tune" / "trials" / "0", tmp_path / "torn")
    assert _pairs_intact(torn)
    (torn / "last.safetensors").write_bytes((torn / "model.safetensors").read_bytes())
    assert not _pairs_intact(torn)  # killed between the weights and the JSON of an epoch


def test_pruner_stops_training_after_the_first_epoch(squares: Path, tmp_path: Path) -> None:
    exp = _experiment(squares, epochs=3)
    never_good_enough = optuna.pruners.ThresholdPruner(lower=2.0)  # F1 is at most 1
    study = run_study(exp, SPACE, n_trials=2, out=tmp_path, pruner=never_good_enough)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    for t in study.trials:
        assert list(t.intermediate_values) == [1]
        assert [r["epoch"] for r in _rows(tmp_path / "trials" / str(t.number))] == [1]
    summ = best_summary(study)
    assert summ["states"] == {"PRUNED": 2} and summ["best_value"] is None


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_named_pruners_run_a_study(pruner: str, squares: Path, tmp_path: Path) -> None:
    study = run_study(_experiment(squares, epochs=2), SPACE, n_trials=3, out=tmp_path,
                      pruner=pruner, startup_trials=2)
    assert sum(t.state in FINISHED for t in study.trials) == 3 == len(study.trials)
    assert all(sorted(t.intermediate_values)[0] == 1 for t in study.trials)


def test_storage_url_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a database URL"):
        make_storage("not a url")
    with pytest.raises(ConfigError, match="grace_period longer"):
        make_storage(f"sqlite:///{tmp_path / 'x.db'}", heartbeat_interval=5, grace_period=5)


def test_cosine_trials_train_in_one_fit_and_are_pruned_per_epoch(squares: Path,
                                                                  tmp_path: Path) -> None:
    # Issue 13: pruning inside one fit; cosine trials (once trained unpruned in one call,
    # since staged training broke their schedule) are now pruned per epoch like the others.
    exp = _experiment(squares, epochs=2, recipe={"batch_size": 8, "schedule": "cosine"})
    study = run_study(exp, SPACE, n_trials=1, out=tmp_path / "a", pruner="none")
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs["pruning"] == "per epoch"
    assert sorted(trial.intermediate_values) == [1, 2]
    lrs = [r["lr"] for r in _rows(tmp_path / "a" / "trials" / "0")]
    assert lrs[1] == pytest.approx(0.5 * trial.params["lr"])  # cosine over 2 epochs, not 1
    pruned = run_study(exp, SPACE, n_trials=1, out=tmp_path / "b",
                       pruner=optuna.pruners.ThresholdPruner(lower=2.0)).trials[0]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert sorted(pruned.intermediate_values) == [1]
    assert [r["epoch"] for r in _rows(tmp_path / "b" / "trials" / "0")] == [1]


def test_study_refuses_other_settings_and_a_foreign_trial_folder(squares: Path,
                                                                tmp_path: Path) -> None:
    exp = _experiment(squares, epochs=1)
    run_study(exp, SPACE, n_trials=1, out=tmp_path, pruner="none")
    with pytest.raises(ConfigError, match=r"exists with other settings.*search"):
        run_study(exp, {"lr": [1e-3]}, n_trials=2, out=tmp_path, pruner="none")
    with pytest.raises(ConfigError, match="to maximize, not minimize"):
        run_study(exp, SPACE, n_trials=2, out=tmp_path, metric="val_loss")
    # Another study writing into the same folder would meet trials/0 of the first one.
    with pytest.raises(ConfigError, match=r"trials/0 already exists"):
        run_study(exp, SPACE, n_trials=1, out=tmp_path, pruner="none", study_name="other",
                  max_failures=1)


# ---------------------------------------------------------------------------- budget
def _value_of_x(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def test_budget_waits_for_running_trials_and_never_overshoots(tmp_path: Path) -> None:
    """A trial RUNNING elsewhere holds a slot of the budget: the worker waits for it instead
    of starting one more; a queued trial created after the budget was taken is not run; once
    the running trial fails, the worker takes over its slot."""
    storage = _sqlite(tmp_path / "study.db")
    study = open_study(storage, "budget", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elsewhere = study.ask()  # another worker's trial (no heartbeat: never goes stale)
    study.enqueue_trial({"x": 0.5})  # queued after it
    calls = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        return _value_of_x(trial)

    optimize(study, objective, n_trials=1, timeout=2)
    states = {t.number: t.state for t in study.trials}
    assert calls == [] and states[0] == optuna.trial.TrialState.RUNNING
    assert states[1] == optuna.trial.TrialState.FAIL and study.trials[1].user_attrs[
        "over_budget"] is True
    study.tell(elsewhere, state=optuna.trial.TrialState.FAIL)  # the other worker failed
    optimize(study, objective, n_trials=1)
    assert calls == [2] and study.trials[2].state == optuna.trial.TrialState.COMPLETE
    summ = best_summary(study)
    assert summ["states"] == {"COMPLETE": 1, "FAIL": 2} and summ["over_budget"] == 1


def test_interrupted_trial_is_queued_again_with_its_parameters(tmp_path: Path) -> None:
    storage = _sqlite(tmp_path / "study.db")
    study = open_study(storage, "ctrl-c", seed=0)

    def interrupted(trial: optuna.Trial) -> float:
        _value_of_x(trial)
        if trial.number == 1:
            raise KeyboardInterrupt
        return 0.0

    with pytest.raises(KeyboardInterrupt):
        optimize(study, interrupted, n_trials=3)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert trials[2].system_attrs["failed_trial"] == 1
    optimize(open_study(_sqlite(tmp_path / "study.db"), "ctrl-c", seed=0), _value_of_x, 3)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params  # the retry ran the interrupted parameters
    assert len({t.params["x"] for t in trials}) == 3


@pytest.mark.parametrize("while_", ["training", "after training"])
def test_trial_failed_by_another_worker_does_not_stop_this_one(while_: str,
                                                              tmp_path: Path) -> None:
    study = open_study(_sqlite(tmp_path / "study.db"), "late", seed=0)

    def late_heartbeat(trial: optuna.Trial) -> float:
        fail = trial.number == 0  # what another worker's fail_stale_trials does meanwhile
        if fail and while_ == "training":  # the next report (here: suggest) raises
            study._storage.set_trial_state_values(trial._trial_id,
                                                  optuna.trial.TrialState.FAIL)
        value = _value_of_x(trial)
        if fail and while_ == "after training":  # telling the result raises
            study._storage.set_trial_state_values(trial._trial_id,
                                                  optuna.trial.TrialState.FAIL)
        return value

    optimize(study, late_heartbeat, n_trials=2)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE", "COMPLETE"]


def test_repeated_failures_stop_the_worker(tmp_path: Path) -> None:
    study = open_study(_sqlite(tmp_path / "study.db"), "broken", seed=0)

    def broken(trial: optuna.Trial) -> float:
        raise ConfigError("bad setup")

    with pytest.raises(ConfigError, match="bad setup"):
        optimize(study, broken, n_trials=5, max_failures=2)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def _resattn(*args: str) -> subprocess.CompletedProcess:
    """``python -m resattn ARGS``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "resattn", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_command_line_errors_are_one_line(squares: Path, tmp_path: Path) -> None:
    config, _ = _write_config(tmp_path, squares, epochs=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"search": {"lrr": [1e-3]}}))
    proc = _resattn("tune", str(config), "--search", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "unknown key 'lrr'" in err and "\n" not in err
    proc = _resattn("tune", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2
    assert "no such config file" in proc.stderr


def test_sigterm_is_an_interrupt_within_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before  # else SIGTERM would end pytest
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before


def test_tune_command_passes_its_options_to_the_study(squares: Path, tmp_path: Path) -> None:
    """--search, --quick, --metric, --seed and --timeout reach the study: with --timeout 0 it
    is created with those settings and no trial starts."""
    config, search = _write_config(tmp_path, squares, epochs=3)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, [
        "tune", str(config), "--search", str(search), "--out", str(out), "--study", "opts",
        "--metric", "val_loss", "--seed", "3", "--timeout", "0", "--quick", "--pruner", "none",
        "--max-failures", "1", "--startup-trials", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["study"] == "opts" and summary["metric"] == "val_loss"
    assert summary["direction"] == "minimize" and summary["n_trials"] == 0
    stored = optuna.load_study(study_name="opts", storage=f"sqlite:///{out / 'study.db'}")
    settings = stored.user_attrs["resattn"]
    assert settings["seed"] == 3 and settings["epochs"] == 1  # the quick version of 3 epochs
    assert settings["search"] == parse_search(SPACE, "arn_cnn").as_dict()
    assert not (out / "trials").exists()


def test_tune_command_heartbeat_options_reach_the_storage(squares: Path,
                                                          tmp_path: Path) -> None:
    """A trial whose worker died (its heartbeat older than --grace) is failed by the next
    command; --max-retry 0 leaves it failed, the default queues it again."""
    config, search = _write_config(tmp_path, squares, epochs=1)
    out = tmp_path / "o"
    runner = CliRunner()
    args = ["tune", str(config), "--search", str(search), "--out", str(out), "--study", "hb",
            "--timeout", "0", "--heartbeat", "1", "--grace", "2"]
    bad = runner.invoke(app, [*args, "--heartbeat", "5", "--grace", "5"])
    assert isinstance(bad.exception, ConfigError)
    assert "grace_period longer" in str(bad.exception)
    assert runner.invoke(app, args).exit_code == 0  # creates the study
    study = open_study(_sqlite(out / "study.db"), "hb")
    for extra, states in ((["--max-retry", "0"], ["FAIL"]), ([], ["FAIL", "FAIL", "WAITING"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dead = study.ask()
        study._storage.record_heartbeat(dead._trial_id)
        time.sleep(3.2)  # silent for longer than --grace (SQLite's clock counts whole seconds)
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        assert [t.state.name for t in study.trials] == states
    assert study.trials[2].system_attrs["failed_trial"] == 1


# ---------------------------------------------------------------------------- processes
def _write_config(tmp_path: Path, data: Path, epochs: int) -> tuple[Path, Path]:
    config = tmp_path / "squares.yaml"
    config.write_text(yaml.safe_dump({
        "name": "squares", "task": "image", "data": str(data), "epochs": epochs,
        "recipe": {"batch_size": 8}, "image": {"fractions": FRACTIONS},
        "cells": [{"name": "arn", "model": "arn_cnn", "options": TINY}]}))
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"search": SPACE}))
    return config, search


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sqlite_study_resumes_after_its_worker_is_killed(squares: Path, tmp_path: Path) -> None:
    config, search = _write_config(tmp_path, squares, epochs=8)
    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "resattn", "tune", str(config), "--search", str(search),
           "--out", str(out), "--study", "sq", "--trials", "4", "--pruner", "none",
           "--heartbeat", "1", "--grace", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:  # trial 0 done, trial 1 has checkpointed its first epoch (of 8): kill -9
        _wait_for(lambda: (out / "trials" / "1" / "last.json").exists(), 240, "trial 1", first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    storage = f"sqlite:///{out / 'study.db'}"
    before = optuna.load_study(study_name="sq", storage=storage).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="sq", storage=storage).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4  # the global budget
    assert trials[0].value == before[0].value and trials[0].params == before[0].params
    assert trials[1].state.name == "FAIL"  # the killed trial: failed by its stale heartbeat
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1  # ...and run again exactly once, with its parameters
    retry = retries[0]
    assert retry.state.name == "COMPLETE" and retry.params == before[1].params
    assert retry.user_attrs["resumed_from"] == 1
    # It continued from trial 1's checkpoint: epoch 1 was copied, not trained again.
    killed_log = (out / "trials" / "1" / "metrics.jsonl").read_text().splitlines()
    retry_log = (out / "trials" / str(retry.number) / "metrics.jsonl").read_text().splitlines()
    assert retry_log[0] == killed_log[0] and len(retry_log) == 8
    assert json.loads(again.stdout)["states"] == {"COMPLETE": 4, "FAIL": 1}


@pytest.mark.slow
def test_command_stopped_by_sigterm_queues_its_trial(squares: Path, tmp_path: Path) -> None:
    """SIGTERM (a scheduler's preemption) stops ``resattn tune`` as Ctrl-C does: exit code
    130, the running trial FAIL and queued again with its parameters."""
    config, search = _write_config(tmp_path, squares, epochs=8)
    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "resattn", "tune", str(config), "--search", str(search),
           "--out", str(out), "--study", "sq", "--trials", "2", "--pruner", "none"]
    log = tmp_path / "worker.log"
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=f,
                                stderr=f)
    try:  # trial 0 has checkpointed its first epoch (of 8)
        _wait_for(lambda: (out / "trials" / "0" / "last.json").exists(), 240, "trial 0", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 130, log.read_text()[-3000:]
    assert "interrupted: the running trial is queued again" in log.read_text()
    trials = optuna.load_study(study_name="sq", storage=f"sqlite:///{out / 'study.db'}").trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params


# ---------------------------------------------------------------------------- PostgreSQL
def _pg_bindir() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).resolve().parent / "pg_ctl").exists():
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url(tmp_path: Path):
    """A throw-away PostgreSQL server (initdb, pg_ctl) listening on a unix socket only; yields
    the SQLAlchemy URL of a new database. initdb refuses to run as root: as root the server
    runs as the ``postgres`` user (runuser), in a folder of its own under /tmp since pytest's
    tmp_path is private to root."""
    pytest.importorskip("psycopg2", reason="PostgreSQL driver missing: pip install "
                        "psycopg2-binary")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install "
                    "postgresql")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing")
        prefix = ["runuser", "-u", "postgres", "--"]
        base = Path(tempfile.mkdtemp(prefix="resattn-pg-"))
        shutil.chown(base, "postgres")
    else:
        base = tmp_path / "pg"
        base.mkdir()
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{args[0]} failed: {proc.stderr or proc.stdout}")

    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
            "-t", "60", "-o", f"-k {base} -c listen_addresses='' -p {port} -c fsync=off",
            "start")
        started = True
        import psycopg2

        conn = psycopg2.connect(host=str(base), port=port, user="postgres", dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql+psycopg2://postgres@/optuna?host={base}&port={port}"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


WORKER = """\
import sys, time
from pathlib import Path
import resattn.tune  # imported before the barrier, as the command's import would be
from resattn.cli import main
ready, go, *argv = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():  # both workers start their first trial together
    time.sleep(0.02)
sys.argv = ["resattn", "tune", *argv]
main()
"""


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(postgres_url: str, squares: Path,
                                              tmp_path: Path) -> None:
    budget = 6
    config, search = _write_config(tmp_path, squares, epochs=2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers, logs = [], [tmp_path / f"worker{k}.log" for k in range(2)]
    for k in range(2):
        with logs[k].open("w") as log:
            workers.append(subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / f"ready{k}"), str(go),
                 str(config), "--search", str(search), "--storage", postgres_url, "--study",
                 "shared", "--trials", str(budget), "--out", str(tmp_path / f"machine{k}"),
                 "--heartbeat", "1", "--grace", "10"], env=env, stdout=log, stderr=log))
    try:
        for k, w in enumerate(workers):
            _wait_for(lambda k=k: (tmp_path / f"ready{k}").exists(), 120, f"worker {k}", w)
        go.touch()
        for w in workers:
            w.wait(timeout=300)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, log in zip(workers, logs, strict=True):
        assert w.returncode == 0, log.read_text()[-3000:]
    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == budget  # the global budget, exactly
    assert all(t.state in FINISHED or t.user_attrs.get("over_budget") for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == budget
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both took part
    # Each trial trained once, on one machine: its run folder exists in one place only.
    folders = [{p.name for p in (tmp_path / f"machine{k}" / "trials").iterdir()}
               for k in range(2)]
    assert not folders[0] & folders[1]
    assert folders[0] | folders[1] == {str(t.number) for t in finished}
    for t in finished:
        assert len(_rows(Path(t.user_attrs["run_dir"]))) == len(t.intermediate_values)
