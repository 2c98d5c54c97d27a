"""Issue 14, kill and resume: a checkpoint's weights and JSON are committed together, locks go on
every way out of a run, and ``reproduce``, ``tune`` and a default-precision ``train`` killed
midway (real processes, real signals) finish with the results of an uninterrupted run."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from conftest import REPO, run_cli
from resattn.engine import fit, load_model, save_model
from resattn.engine.checkpoint import (
    PREV_STEM,
    CheckpointWarning,
    load_training_state,
    pair_intact,
    save_training_state,
)
from resattn.errors import CheckpointError
from resattn.models import create_model
from resattn.reproduce.runner import LOCK
from test_engine import _cfg, _signals, _small_resnet
from test_optimize_tune import _rows, _wait_for

TESTS = Path(__file__).resolve().parent
DONE = "test_metrics.json"
KILLS = 24  # of the many-saves test; half of them aimed between a pair's two writes


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory) -> Path:
    """Every process of this module (the CLI subprocesses inherit it) records its ``auto``
    precision and crash logs in a temporary cache, with one thread, so that reruns compare."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESATTN_CACHE", str(cache))
        mp.setenv("OMP_NUM_THREADS", "1")
        yield cache


def _start(*args: object, log: Path) -> subprocess.Popen:
    """``python -m resattn ARGS`` in the background, its output in ``log``."""
    with log.open("w") as f:
        return subprocess.Popen([sys.executable, "-m", "resattn", *map(str, args)], stdout=f,
                                stderr=subprocess.STDOUT)


def _signal_when(proc: subprocess.Popen, condition: Callable[[], bool], what: str,
                 sig: int = signal.SIGKILL, timeout: float = 240) -> int:
    """Send ``sig`` to ``proc`` as soon as ``condition()`` holds; its exit code. The process
    never outlives the call (killed if the wait fails or it does not end)."""
    try:
        _wait_for(condition, timeout, what, proc)
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _epochs_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def _weights(stem: Path) -> bytes:
    return stem.with_suffix(".safetensors").read_bytes()


# ----------------------------------------------------------------------------- the pair commit
def _two_saves(stem: Path) -> dict[str, bytes]:
    """``stem.*`` written twice with different weights: the old and the new files' bytes."""
    model = create_model("cnn1d", in_chans=3, num_classes=2)
    save_model(stem, model)
    old = {s: stem.with_suffix(s).read_bytes() for s in (".safetensors", ".json")}
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(stem, model)
    new = {s: stem.with_suffix(s).read_bytes() for s in (".safetensors", ".json")}
    return {"old weights": old[".safetensors"], "old json": old[".json"],
            "new weights": new[".safetensors"], "new json": new[".json"]}


@pytest.mark.parametrize("weights, card", [("new weights", "old json"),
                                           ("old weights", "new json")])
def test_a_torn_model_pair_is_refused_naming_both_files(tmp_path: Path, weights: str,
                                                        card: str) -> None:
    """A kill between the two writes leaves the new weights beside the old JSON (the JSON is
    written last); the reverse is what a hand-copied file gives. Both are refused."""
    stem = tmp_path / "model"
    files = _two_saves(stem)
    assert pair_intact(stem) and load_model(tmp_path)
    stem.with_suffix(".safetensors").write_bytes(files[weights])
    stem.with_suffix(".json").write_bytes(files[card])
    assert not pair_intact(stem)
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    message = str(err.value)
    assert "model.safetensors" in message and "model.json" in message and "sha256" in message


def test_a_card_without_a_digest_still_loads_and_the_shipped_cards_have_one(
        tmp_path: Path) -> None:
    stem = tmp_path / "model"
    _two_saves(stem)
    card = json.loads(stem.with_suffix(".json").read_text())
    stem.with_suffix(".json").write_text(json.dumps({k: v for k, v in card.items()
                                                     if k != "sha256"}))
    load_model(tmp_path)  # a card written by hand, without the digest: loads unchecked
    shipped = sorted((REPO / "src" / "resattn" / "weights").glob("*.json"))
    assert len(shipped) >= 3
    for path in shipped:
        assert json.loads(path.read_text())["sha256"], path
        assert pair_intact(path.with_suffix("")), path
        load_model(path)


def _state_holder() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A registered model and an AdamW with state (one step on zero gradients)."""
    model = create_model("cnn1d", in_chans=3, num_classes=2)
    optimizer = torch.optim.AdamW(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return model, optimizer


def _fill(model: torch.nn.Module, optimizer: torch.optim.Optimizer, value: float) -> None:
    """Every parameter and optimizer moment set to ``value``: the weights name their epoch."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        for state in optimizer.state.values():
            state["exp_avg"].fill_(value)


def _epoch_of(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """The one value held by every parameter and moment (AssertionError if they are mixed)."""
    values = {float(v) for p in model.parameters() for v in p.detach().unique()}
    values |= {float(v) for s in optimizer.state.values() for v in s["exp_avg"].unique()}
    assert len(values) == 1, f"the checkpoint mixes epochs {sorted(values)}"
    return values.pop()


@pytest.mark.parametrize("torn", ["new weights, old json", "old weights, new json", "no prev"])
def test_a_torn_training_state_falls_back_to_the_previous_pair(tmp_path: Path,
                                                               torn: str) -> None:
    """What a kill between the two writes of ``last.*`` leaves (simulated here, for real
    below): the previous pair ``last-prev.*``, kept until the new JSON is written, is
    resumed from and put back; without it the resume is refused, naming both files."""
    model, optimizer = _state_holder()
    last, prev = tmp_path / "last", tmp_path / PREV_STEM
    _fill(model, optimizer, 1.0)
    save_training_state(tmp_path, model, optimizer, {"epoch": 1})
    old = {s: last.with_suffix(s).read_bytes() for s in (".safetensors", ".json")}
    _fill(model, optimizer, 2.0)
    save_training_state(tmp_path, model, optimizer, {"epoch": 2})
    assert not prev.with_suffix(".json").exists()  # only there while a save is under way
    new = {s: last.with_suffix(s).read_bytes() for s in (".safetensors", ".json")}
    stale_weights = torn.startswith("old")
    last.with_suffix(".safetensors").write_bytes(old[".safetensors"] if stale_weights
                                                 else new[".safetensors"])
    last.with_suffix(".json").write_bytes(new[".json"] if stale_weights else old[".json"])
    if torn != "no prev":
        for suffix, data in old.items():
            prev.with_suffix(suffix).write_bytes(data)
    fresh, fresh_opt = _state_holder()
    if torn == "no prev":
        with pytest.raises(CheckpointError) as err:
            load_training_state(tmp_path, fresh, fresh_opt)
        message = str(err.value)
        assert "last.safetensors" in message and "last.json" in message
        assert "no earlier whole checkpoint last-prev.*" in message
        return
    with pytest.warns(CheckpointWarning, match="resuming from the previous whole checkpoint"):
        state = load_training_state(tmp_path, fresh, fresh_opt)
    assert state == {"epoch": 1} and _epoch_of(fresh, fresh_opt) == 1.0
    assert pair_intact(last) and _weights(last) == old[".safetensors"]  # put back
    assert not prev.with_suffix(".json").exists() and not prev.with_suffix(".safetensors").exists()


def _save_forever(run: Path) -> None:
    """A writer: resume from ``run`` (or start), then save epoch after epoch until killed."""
    torch.set_num_threads(1)
    model, optimizer = _state_holder()
    epoch = 0
    if (run / "last.json").exists():
        epoch = load_training_state(run, model, optimizer)["epoch"]
    while True:
        epoch += 1
        _fill(model, optimizer, float(epoch))
        save_training_state(run, model, optimizer, {"epoch": epoch})


def _version(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is now (inode, mtime): an atomic replace changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def test_sigkill_during_many_saves_never_leaves_a_mixed_pair(tmp_path: Path) -> None:
    """Writers (forked processes) saving a 2.6 MB training state in a loop are killed with
    SIGKILL, at a random moment or as soon as new weights replace the old ones (before their
    JSON can follow), each writer resuming from what the last one left. The real resume
    reader, run on a copy after every kill, never gives back a mix nor less than before, and
    recovers every torn pair from ``last-prev.*``. (Forking is safe: torch runs one thread in
    tests, conftest's ``_one_thread``, so no OpenMP pool is inherited half-locked.)"""
    assert torch.get_num_threads() == 1
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(14)
    run, weights, card = tmp_path / "run", tmp_path / "run" / "last.safetensors", \
        tmp_path / "run" / "last.json"
    run.mkdir()
    seen, torn, recovered = 0.0, 0, 0
    for kill in range(KILLS):
        before = _version(card)
        writer = ctx.Process(target=_save_forever, args=(run,), daemon=True)
        writer.start()
        try:
            deadline = time.monotonic() + 60
            while _version(card) == before:  # the writer resumed and saved once
                assert writer.exitcode is None, f"the writer failed ({writer.exitcode})"
                assert time.monotonic() < deadline, "the writer never saved"
                time.sleep(0.001)
            if kill % 2:
                time.sleep(rng.uniform(0, 0.1))  # about two saves
            else:
                committed = _version(weights)
                while _version(weights) == committed and time.monotonic() < deadline:
                    pass
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(30)
        torn += not pair_intact(run / "last")
        check = shutil.copytree(run, tmp_path / "check")  # the next writer gets it as left
        model, optimizer = _state_holder()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = load_training_state(check, model, optimizer)
        shutil.rmtree(check)
        recovered += any(w.category is CheckpointWarning for w in caught)
        assert _epoch_of(model, optimizer) == state["epoch"] >= seen
        seen = state["epoch"]
    assert recovered == torn  # every torn pair was recovered, and only those
    assert torn >= 3, f"only {torn} of {KILLS} kills landed between a pair's two writes"
    assert seen > KILLS  # each writer saved at least once


def _child_fit(run: str, stem: str, epoch: int) -> None:
    """``_fit(run)`` in a process that SIGKILLs itself when it is about to write the JSON of
    ``stem`` for ``epoch``: the weights of that epoch are in place, their JSON is not."""
    from resattn.engine import checkpoint

    write_json = checkpoint.atomic_write_json

    def dying(path: Path, obj: dict) -> None:
        if Path(path).name == f"{stem}.json" and obj.get("epoch", (obj.get("trainer") or {})
                                                          .get("epoch")) == epoch:
            os.kill(os.getpid(), signal.SIGKILL)
        write_json(path, obj)

    checkpoint.atomic_write_json = dying
    _fit(Path(run))


def _fit(run: Path, resume: bool = False) -> None:
    torch.set_num_threads(1)
    fit(_small_resnet(), _signals(48, seed=0), _signals(16, seed=1), run, _cfg(epochs=4),
        resume=resume, show_progress=False)


@pytest.mark.parametrize("stem", ["last", "model"])
def test_killed_between_weights_and_json_resumes_to_the_same_weights(tmp_path: Path,
                                                                     stem: str) -> None:
    """A real SIGKILL at the worst moment of epoch 2's save (its weights written, not their
    JSON). ``last.*``: the resume falls back to epoch 1's pair; ``model.*``: loading it is
    refused, and the resume (from ``last.*`` of epoch 1) writes it again. Either way the run
    ends with the weights and log of an uninterrupted one."""
    run = tmp_path / "killed"
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_kill_resume as t; "
            f"t._child_fit({str(run)!r}, {stem!r}, 2)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert not pair_intact(run / stem)  # the real torn pair
    if stem == "last":
        assert pair_intact(run / PREV_STEM)
        assert json.loads((run / f"{PREV_STEM}.json").read_text())["trainer"]["epoch"] == 1
    else:
        with pytest.raises(CheckpointError, match="do not belong together"):
            load_model(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(run, resume=True)
    assert any(w.category is CheckpointWarning for w in caught) == (stem == "last")
    _fit(tmp_path / "straight")
    assert _rows(run) == _rows(tmp_path / "straight")
    for name in ("model", "last"):
        assert pair_intact(run / name)
        assert _weights(run / name) == _weights(tmp_path / "straight" / name), name
    assert not list(run.glob(f"{PREV_STEM}.*"))


# ----------------------------------------------------------------------------- reproduce
def _experiment(folder: Path, data: Path, epochs: int = 5, **recipe: object) -> Path:
    """A one-cell waveform experiment on the shipped sample, in fp32 (bit-identical reruns)."""
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "paper": "test", "task": "waveform", "data": str(data), "seeds": 1,
        "epochs": epochs, "recipe": {"batch_size": 8, "precision": "fp32", "patience": 10,
                                     **recipe},
        "waveform": {"window": 2000, "split_seed": 0}, "metrics": ["accuracy", "f1"],
        "baseline": "cnn", "cells": [{"name": "cnn", "model": "cnn1d"}]}))
    return config


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, sample_dir: Path) -> Path:
    return _experiment(tmp_path_factory.mktemp("experiment"), sample_dir)


@pytest.fixture(scope="module")
def uninterrupted(experiment: Path) -> Path:
    """The experiment run once, never interrupted."""
    out = experiment.parent / "uninterrupted"
    proc = run_cli("reproduce", experiment, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def _same_results(out: Path, reference: Path) -> None:
    """Every number of ``out`` as in ``reference``: results, logs, test metrics, weights."""
    def cells(folder: Path) -> list[dict]:
        return json.loads((folder / "results.json").read_text())["cells"]

    assert cells(out) == cells(reference)
    runs = sorted(p.relative_to(reference) for p in reference.glob("runs/*/*"))
    assert runs == sorted(p.relative_to(out) for p in out.glob("runs/*/*")) and runs
    for run in runs:
        assert _rows(out / run) == _rows(reference / run)
        assert json.loads((out / run / DONE).read_text())["test"] == \
            json.loads((reference / run / DONE).read_text())["test"]
        assert _weights(out / run / "model") == _weights(reference / run / "model")


@pytest.mark.slow
def test_reproduce_killed_mid_run_takes_over_its_lock_and_ends_as_uninterrupted(
        experiment: Path, uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = out / "runs" / "cnn" / "seed0"
    proc = _start("reproduce", experiment, "--out", out, log=tmp_path / "killed.log")
    rc = _signal_when(proc, lambda: _epochs_logged(run) >= 1 and (run / "last.json").exists(),
                      "the first epoch's checkpoint")
    assert rc == -signal.SIGKILL
    assert not (run / DONE).exists(), "the run finished before it was killed"
    assert json.loads((run / LOCK).read_text())["pid"] == proc.pid  # stale, left by the kill
    # What a kill in the middle of a write leaves: a fresh one in the run (its lock makes it
    # dead for sure) and an old one beside the results (another process's would be young).
    (run / ".last.safetensors.k1ll3d.tmp").write_bytes(b"half")
    (out / ".results.json.k1ll3d.tmp").write_bytes(b"half")
    os.utime(out / ".results.json.k1ll3d.tmp", (time.time() - 3600,) * 2)

    again = run_cli("reproduce", experiment, "--out", out)
    assert again.returncode == 0, again.stderr
    assert "cnn seed 0: test accuracy" in again.stderr  # trained on, not skipped as held
    assert not (run / LOCK).exists() and _temps(out) == []
    assert json.loads((run / "last.json").read_text())["trainer"]["epoch"] == 5
    _same_results(out, uninterrupted)


def test_reproduce_stopped_by_sigterm_removes_its_lock(experiment: Path,
                                                       tmp_path: Path) -> None:
    """SIGTERM (the CLI makes it a KeyboardInterrupt) in the middle of a run: exit code 130,
    no lock, no temporary file, and a whole checkpoint to resume from."""
    out = tmp_path / "out"
    run = out / "runs" / "cnn" / "seed0"
    log = tmp_path / "stopped.log"
    proc = _start("reproduce", experiment, "--out", out, log=log)
    rc = _signal_when(proc, lambda: (run / "last.json").exists(), "the first checkpoint",
                      signal.SIGTERM)
    assert rc == 130, log.read_text()[-3000:]
    assert "interrupted" in log.read_text() and "Traceback" not in log.read_text()
    assert not (run / DONE).exists(), "the run finished before it was stopped"
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(LOCK)) == []
    assert _temps(out) == [] and pair_intact(run / "last")


def test_an_error_inside_a_run_removes_its_lock(tmp_path: Path, sample_dir: Path) -> None:
    """A run whose training fails (it diverges in its first epoch) ends the command with
    that error and leaves no lock."""
    config = _experiment(tmp_path, sample_dir, epochs=2, lr=1e12)
    proc = run_cli("reproduce", config, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "training diverged in epoch 1" in proc.stderr, proc.stderr
    run = tmp_path / "out" / "runs" / "cnn" / "seed0"
    assert (run / "split.json").exists()  # the run was claimed and its training started
    assert not (run / LOCK).exists() and _temps(run) == []


# ----------------------------------------------------------------------------- tune
def _tune(experiment: Path, out: Path, search: Path) -> list[object]:
    return ["tune", experiment, "--search", search, "--out", out, "--study", "kill",
            "--trials", "2", "--pruner", "none", "--heartbeat", "1", "--grace", "2"]


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="kill", storage=f"sqlite:///{out / 'study.db'}").trials


@pytest.mark.slow
def test_tune_killed_mid_trial_retries_it_and_ends_as_uninterrupted(tmp_path: Path,
                                                                    sample_dir: Path) -> None:
    """``resattn tune`` (SQLite) killed in the middle of its second trial, then rerun: the
    killed trial is failed by its stale heartbeat and retried once from its checkpoint, the
    budget of 2 is met exactly, and every value is the one of an uninterrupted study."""
    experiment = _experiment(tmp_path, sample_dir, epochs=3)
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"search": {"lr": {"low": 1e-4, "high": 1e-2,
                                                        "log": True}}}))
    straight = tmp_path / "straight"
    proc = run_cli(*_tune(experiment, straight, search))
    assert proc.returncode == 0, proc.stderr
    reference = _trials(straight)

    out = tmp_path / "killed"
    trial1 = out / "trials" / "1"
    first = _start(*_tune(experiment, out, search), log=tmp_path / "killed.log")
    rc = _signal_when(first, lambda: _epochs_logged(trial1) >= 1
                      and (trial1 / "last.json").exists(), "trial 1's first checkpoint")
    assert rc == -signal.SIGKILL
    killed = _trials(out)
    assert [t.state.name for t in killed] == ["COMPLETE", "RUNNING"]
    killed_rows = _rows(trial1)
    assert 1 <= len(killed_rows) < 3  # killed in the middle of the trial

    again = run_cli(*_tune(experiment, out, search))
    assert again.returncode == 0, again.stderr
    trials = _trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.user_attrs["resumed_from"] == 1
    assert json.loads(again.stdout)["states"] == {"COMPLETE": 2, "FAIL": 1}  # 2 = the budget
    # The trials of an uninterrupted study, value for value: the retry continued the killed
    # trial's epochs (copied, not trained again) to the very value trial 1 has there.
    assert [(t.params, t.value) for t in (trials[0], retry)] == \
        [(t.params, t.value) for t in reference]
    retry_rows = _rows(out / "trials" / "2")
    assert retry_rows[:len(killed_rows)] == killed_rows
    assert retry_rows == _rows(straight / "trials" / "1")
    assert _temps(out / "trials" / "2") == []


# ----------------------------------------------------------------------------- precision
@pytest.mark.slow
def test_auto_precision_run_killed_before_its_first_checkpoint_resumes_the_same(
        tmp_path: Path, sample_dir: Path, monkeypatch) -> None:
    """The default precision (``auto``) is decided once per machine, by the first process,
    and recorded: a run killed before its first checkpoint (so nothing records what it chose)
    resumes in that precision, to the weights of an uninterrupted run."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESATTN_CACHE", str(cache))  # this machine has decided nothing yet
    record = cache / "precision.json"

    def train(out: Path, *extra: str) -> list[object]:
        return ["train", "--model", "resnetkan1d", "--data", sample_dir, "--out", out,
                "--epochs", "2", "--quiet", *extra]

    run = tmp_path / "killed"
    proc = _start(*train(run), log=tmp_path / "killed.log")
    assert _signal_when(proc, record.exists, "the precision decision") == -signal.SIGKILL
    assert not (run / "last.json").exists(), "killed after its first checkpoint"
    decided = json.loads(record.read_text())
    assert decided["precision"] in ("fp32", "bf16")
    stamp = (record.read_bytes(), record.stat().st_mtime_ns)

    resumed = run_cli(*train(run, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    straight = run_cli(*train(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    assert (record.read_bytes(), record.stat().st_mtime_ns) == stamp  # decided once
    for folder in (run, tmp_path / "straight"):
        assert json.loads((folder / "model.json").read_text())["precision"] == \
            decided["precision"]
    assert _rows(run) == _rows(tmp_path / "straight")
    assert _weights(run / "model") == _weights(tmp_path / "straight" / "model")


def test_a_decision_recorded_while_this_process_measured_wins(tmp_path: Path,
                                                              monkeypatch) -> None:
    """Two first runs started together both measure; the one that records first decides for
    both (else each would train in its own precision, and a resume in the other's)."""
    from resattn.engine import precision

    monkeypatch.setenv("RESATTN_CACHE", str(tmp_path))
    record = tmp_path / "precision.json"
    theirs = {"machine": precision.machine_key(), "precision": "bf16", "bf16_speedup": 1.5,
              "reason": "the other process"}

    def measured_meanwhile() -> dict:
        record.write_text(json.dumps(theirs))  # the other process records first
        return {"precision": "fp32", "bf16_speedup": 1.2, "reason": "this process"}

    (tmp_path / ".precision.json.999.tmp").write_text("{")  # a killed writer's, old
    os.utime(tmp_path / ".precision.json.999.tmp", (time.time() - 3600,) * 2)
    monkeypatch.setattr(precision, "_decide", measured_meanwhile)
    precision.auto_decision.cache_clear()
    try:
        assert precision.auto_decision()["reason"] == "the other process"
        assert json.loads(record.read_text()) == theirs and _temps(tmp_path) == []
    finally:
        precision.auto_decision.cache_clear()


def test_a_retried_trial_copies_no_temporary_file(tmp_path: Path) -> None:
    """What a killed trial's writes left (young: its heartbeat just expired) is not copied
    into the retry's folder, where no later resume would remove it."""
    from resattn.tune.objective import _adopt_retry

    killed = tmp_path / "trials" / "1"
    _fit(killed)
    (killed / ".last.safetensors.k1ll3d.tmp").write_bytes(b"half")
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING,
                                       system_attrs={"retry_history": [1]})
    assert _adopt_retry(frozen, tmp_path / "trials", tmp_path / "trials" / "2") == 1
    assert _temps(tmp_path / "trials" / "2") == [] and _temps(killed)
    shutil.rmtree(killed)
