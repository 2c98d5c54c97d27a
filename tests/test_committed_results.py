"""The committed reproduction reports under ``results/``: their numbers must be the ones the run
logs beside them hold, in the ``results.json`` contract, and each report must show them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from resattn.reproduce import load_experiment
from resattn.reproduce.config import Cell

REPORTS = sorted(p.parent for p in (REPO / "results").glob("*/results.json"))
CONFIGS = {load_experiment(p).name: p for p in (REPO / "configs").glob("*.yaml")}


def test_the_papers_reports_are_committed() -> None:
    names = {p.name for p in REPORTS}
    assert {"seed000-table2", "seed000-table3", "seed004-mednist"} <= names, names


@pytest.mark.parametrize("folder", REPORTS, ids=[p.name for p in REPORTS])
def test_report_numbers_come_from_the_committed_run_logs(folder: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    assert results["mode"] == "full" and results["complete"]
    exp = load_experiment(CONFIGS[results["experiment"]])  # the config it was run from
    assert [c["name"] for c in results["cells"]] == [c.name for c in exp.cells]
    assert results["seeds"] == exp.seeds and results["epochs"] == exp.epochs
    md = (folder / "report.md").read_text()
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64," in html
    for cell in results["cells"]:
        assert cell["n_seeds"] == exp.seeds
        assert cell["published"] == exp.cell(cell["name"]).published
        runs = folder / "runs" / Cell(cell["name"], cell["model"]).slug
        summaries = [json.loads((runs / f"seed{s}" / "test_metrics.json").read_text())
                     for s in range(exp.seeds)]
        for s, summary in enumerate(summaries):  # every seed's epoch log is committed too
            rows = (runs / f"seed{s}" / "metrics.jsonl").read_text().splitlines()
            assert len(rows) == summary["epochs_run"] == cell["epochs_run"][s]
        for key in results["metrics"]:
            values = [t["test"][key] for t in summaries]
            m = cell["metrics"][key]
            assert m["values"] == pytest.approx(values)
            assert m["mean"] == pytest.approx(np.mean(values))
            assert m["std"] == pytest.approx(np.std(values, ddof=1) if len(values) > 1 else 0)
        first = results["metrics"][0]
        mean, std = cell["metrics"][first]["mean"], cell["metrics"][first]["std"]
        shown = f"{mean:.4f}" if exp.seeds == 1 else f"{mean:.4f} ± {std:.4f}"
        assert f"| {cell['name']} | {exp.seeds} | {shown} |" in md


@pytest.mark.parametrize("folder", REPORTS, ids=[p.name for p in REPORTS])
def test_reports_name_the_machine_and_code_that_trained_the_runs(folder: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    envs = [json.loads(p.read_text())["environment"] for p in folder.glob("runs/*/*/model.json")]
    assert envs
    assert set(results["environment"]["cpu_model"].split(" / ")) == {e["cpu_model"] for e in envs}
    assert f"on {results['environment']['cpu_model']} (timings.json)" in (
        folder / "report.md").read_text()


def test_a_clone_regenerates_a_report_from_the_committed_logs(tmp_path: Path,
                                                             shared_seismic: Path) -> None:
    """No weights are committed: aggregation, tables and plots come from the logs alone and
    the Grad-CAM figures drawn when the weights existed are kept."""
    from resattn.reproduce import run_experiment

    folder = REPO / "results" / "seed000-table2"
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.safetensors", "last.json"))
    exp = load_experiment(CONFIGS["seed000-table2"])
    regenerated = run_experiment(exp, copy, log=lambda *a: 0)
    committed = json.loads((folder / "results.json").read_text())
    for ours, theirs in zip(regenerated["cells"], committed["cells"], strict=True):
        assert ours["metrics"] == theirs["metrics"]  # JSON floats round-trip exactly
        assert ours.get("vs_baseline") == theirs.get("vs_baseline")
    assert regenerated["environment"] == committed["environment"]
    assert len(list((copy / "figures").glob("gradcam_*.png"))) == 3
    assert (copy / "report.md").read_text().count("Grad-CAM example") == 3


@pytest.mark.slow
@pytest.mark.parametrize("folder", REPORTS, ids=[p.name for p in REPORTS])
def test_every_committed_report_regenerates_identically(folder: Path, tmp_path: Path) -> None:
    """From its committed logs alone, every report comes back line for line, but for the
    line naming the commit that wrote it."""
    from resattn.reproduce import run_experiment

    results = json.loads((folder / "results.json").read_text())
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.safetensors", "last.json"))
    exp = load_experiment(CONFIGS[results["experiment"]])
    if not exp.data_paths or not all(Path(p).exists() for p in exp.data_paths):
        pytest.skip(f"{exp.data} not here (../shared/data)")
    regenerated = run_experiment(exp, copy, log=lambda *a: 0)
    assert regenerated["cells"] == results["cells"]

    def lines(path: Path) -> list[str]:
        return [ln for ln in path.read_text().splitlines() if not ln.startswith("Environment:")]

    assert lines(copy / "report.md") == lines(folder / "report.md")
