"""`resattn reproduce`: configs, interruption and resume, results.json, and the HTML report as
a browser renders it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, run_cli
from test_cli import _assert_one_line_error
from test_image_task import write_squares


def tiny_config(tmp: Path) -> Path:
    data = write_squares(tmp / "squares", per_class=12)
    cfg = {
        "name": "tiny", "paper": "test", "task": "image", "data": str(data),
        "seeds": 3, "epochs": 5, "recipe": {"batch_size": 8, "patience": 5},
        "image": {"fractions": [0.5, 0.25, 0.25], "split_seed": 0},
        "metrics": ["accuracy", "f1"], "per_class": "recall", "baseline": "arn",
        "cells": [
            {"name": "arn", "model": "arn_cnn", "options": {"input_size": 32}},
            {"name": "tiny resnet", "model": "resnet18",
             "options": {"widths": [8, 8, 16, 16], "stem_width": 8},
             "published": {"accuracy": 0.9, "recall/left": 0.8}},
        ],
        "quick": {"epochs": 2, "seeds": 2},
        "caveats": "generated squares",
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_every_shipped_config_loads() -> None:
    from resattn.reproduce import load_experiment

    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        exp = load_experiment(path)
        assert exp.cells and exp.baseline in [c.name for c in exp.cells]
        assert any(c.published for c in exp.cells) or "seed001" in path.name
        quick = exp.quick_version()
        assert quick.epochs <= 2 and quick.seeds <= 2


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: audio\ndata: .\ncells: [{name: a, model: resnet18}]\n")
    _assert_one_line_error(run_cli("reproduce", bad), "bad.yaml", "task must be one of")
    bad.write_text("name: x\ntask: image\ndata: .\ncells: [{name: a}]\n")
    _assert_one_line_error(run_cli("reproduce", bad), "cells[0] needs a name and a model")


def test_quick_run_killed_midway_resumes_without_retraining(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    out = tmp_path / "out"
    first = out / "runs" / "arn" / "seed0" / "test_metrics.json"
    proc = subprocess.Popen([sys.executable, "-m", "resattn", "reproduce", str(cfg), "--quick",
                             "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert first.exists(), "the first cell never finished"
    finished = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/test_metrics.json")}
    assert len(finished) < 4, "the run finished before it could be interrupted"
    assert not (out / "results.json").exists()

    proc = run_cli("reproduce", cfg, "--quick", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "done, skipped" in proc.stderr
    for path, mtime in finished.items():  # finished cells were not retrained
        assert path.stat().st_mtime_ns == mtime
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["mode"] == "quick"
    assert [c["name"] for c in results["cells"]] == ["arn", "tiny resnet"]
    for cell in results["cells"]:
        assert cell["n_seeds"] == 2
        acc = cell["metrics"]["accuracy"]
        assert len(acc["values"]) == 2 and acc["mean"] == pytest.approx(np.mean(acc["values"]))
        assert "recall/left" in cell["metrics"]
    resnet = results["cells"][1]
    assert resnet["published"]["accuracy"] == 0.9
    vs = resnet["vs_baseline"]["accuracy"]
    assert vs["n"] == 2 and vs["ci95"][0] <= vs["mean_difference"] <= vs["ci95"][1]
    assert (out / "figures" / "ablation.png").stat().st_size > 1000
    for run in out.glob("runs/*/*"):
        assert (run / "metrics.jsonl").read_text().count("\n") >= 1
    md = (out / "report.md").read_text()
    assert "| tiny resnet | 2 |" in md and "0.9000" in md
    left = next(line for line in md.splitlines() if line.startswith("| left |"))
    assert left.endswith("| 0.8000 |")  # the per-class table: tiny resnet's published recall
    assert "| arn (ours) | tiny resnet (ours) | tiny resnet (published) |" in md  # none for arn
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "src='figures" not in html


def test_a_cell_fine_tunes_from_the_weights_its_init_names(tmp_path: Path) -> None:
    from resattn.engine.checkpoint import load_model
    from resattn.reproduce import run_experiment

    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    first = {**cfg, "seeds": 1, "epochs": 2, "baseline": None, "cells": cfg["cells"][1:],
             "recipe": {**cfg["recipe"], "lr": 0.05}}  # moves the weights far from seed 0's
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first))
    run_experiment(tmp_path / "first.yaml", tmp_path / "first", report=False, log=lambda *a: 0)
    start = tmp_path / "first" / "runs" / "tiny-resnet" / "seed0"
    # a learning rate of 1e-9 leaves the weights where they started: at init's, or at random
    second = {**first, "epochs": 1, "recipe": {**cfg["recipe"], "lr": 1e-9}, "cells": [
        {**cfg["cells"][1], "name": "scratch"},
        {**cfg["cells"][1], "name": "tuned", "init": "first/runs/tiny-resnet/seed0"}]}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    results = run_experiment(tmp_path / "second.yaml", tmp_path / "second", report=False,
                             log=lambda *a: 0)
    assert results["cells"][1]["init"] == str(start.resolve())
    weights = {name: load_model(run)[0].state_dict()["stem.0.weight"] for name, run in [
        ("init", start), ("scratch", tmp_path / "second/runs/scratch/seed0"),
        ("tuned", tmp_path / "second/runs/tuned/seed0")]}
    assert torch.allclose(weights["tuned"], weights["init"], atol=1e-6)
    assert (weights["scratch"] - weights["init"]).abs().max() > 1e-2


def test_init_errors_name_the_config_and_the_cell(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: image\ndata: .\n"
                   "cells: [{name: a, model: resnet18, init: nowhere/run}]\n")
    _assert_one_line_error(run_cli("reproduce", bad), "bad.yaml", "cells[0].init",
                           "neither a shipped model")
    (tmp_path / "empty").mkdir()
    bad.write_text(bad.read_text().replace("nowhere/run", "empty"))
    _assert_one_line_error(run_cli("reproduce", bad), "bad.yaml", "cells[0].init",
                           "no model checkpoint here")
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["cells"][1]["init"] = "stead-detector"  # a 1-D ResNetKAN, not the cell's resnet18
    bad.write_text(yaml.safe_dump(cfg))
    _assert_one_line_error(run_cli("reproduce", bad, "--out", tmp_path / "o"), "tiny resnet",
                           "resnetkan1d", "resnet18")


def test_run_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path: Path) -> None:
    from resattn.reproduce.runner import LOCK, claim

    run = tmp_path / "runs" / "a" / "seed0"
    with claim(run) as mine:
        assert mine and (run / LOCK).exists()
        with claim(run) as again:  # held by a live process (this one)
            assert not again
    assert not (run / LOCK).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK).write_text(json.dumps({"host": __import__("socket").gethostname(),
                                        "pid": dead.pid}))
    with claim(run) as mine:  # its process is gone: taken over
        assert mine and json.loads((run / LOCK).read_text())["pid"] != dead.pid


def test_two_processes_share_the_runs_without_repeating_one(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "resattn", "reproduce", str(cfg), "--quick", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    trained = [line for log in logs for line in log.splitlines() if "test accuracy" in line]
    assert len(trained) == 4, logs  # 2 cells x 2 seeds, each trained by exactly one process
    assert sorted(trained) == sorted(set(trained))
    for run in out.glob("runs/*/*"):
        rows = (run / "metrics.jsonl").read_text().splitlines()
        epochs = [json.loads(r)["epoch"] for r in rows]
        assert epochs == [1, 2] and not (run / ".lock").exists()
    assert json.loads((out / "results.json").read_text())["complete"]
    assert len(json.loads((out / "timings.json").read_text())) == 4


def test_paired_test_by_hand() -> None:
    from resattn.reproduce.report import paired_test

    vs = paired_test([0.9, 0.8, 0.85], [0.8, 0.8, 0.8])  # differences 0.1, 0, 0.05
    half = 4.302653 * 0.05 / np.sqrt(3)  # t(0.975, df 2) x sd / sqrt(n)
    assert vs["mean_difference"] == pytest.approx(0.05)
    assert vs["ci95"] == pytest.approx([0.05 - half, 0.05 + half], rel=1e-5)
    assert vs["p_value"] == pytest.approx(0.2254, abs=1e-3)  # t = 1.732, df 2
    assert paired_test([0.9, 0.9], [0.8, 0.8])["p_value"] == 0.0  # constant difference
    assert paired_test([0.9], [0.8]) is None  # one seed: no test


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_html_report_renders_plots_in_headless_chromium(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    out = tmp_path / "out"
    assert run_cli("reproduce", cfg, "--quick", "--out", out).returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,2400",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert img.shape[0] >= 2000
    not_white = (img < 235).any(axis=2)
    colourful = (img.max(axis=2) - img.min(axis=2)) > 60  # bars, heat maps: not just text
    assert not_white.mean() > 0.05, "the page rendered (almost) blank"
    assert colourful.mean() > 0.01, "no coloured plot pixels: the images did not render"
