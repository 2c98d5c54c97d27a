"""`resattn reproduce` on a forecast config (seed 003, Tables II-IV) end to end: the shipped
config's cells on a small generated catalogue, in quick mode, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, run_cli
from test_forecast import synthetic_catalog


def _backbone(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(path).items() if k.startswith("backbone.")}


def test_forecast_config_runs_quick_and_reports_ours_beside_the_published(
        tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "configs" / "seed003_socal.yaml").read_text())
    cfg.update(data=str(synthetic_catalog(tmp_path / "catalog.csv", years=8)),
               forecast={"window": 12}, quick={"epochs": 1, "seeds": 2,
                                               "forecast": {"window": 8}})
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    proc = run_cli("reproduce", tmp_path / "f.yaml", "--quick", "--out", out)
    assert proc.returncode == 0, proc.stderr

    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["mode"] == "quick" and results["seeds"] == 2
    assert results["task_options"]["window"] == 8  # quick's forecast override
    cells = {c["name"]: c for c in results["cells"]}
    assert list(cells) == [c["name"] for c in cfg["cells"]]
    main_name = cfg["baseline"]
    main = next(c for c in cfg["cells"] if c["name"] == main_name)
    slug = "fused-decoupling-densenet-proposed"
    runs = [json.loads((out / "runs" / slug / f"seed{s}" / "test_metrics.json").read_text())
            for s in range(2)]
    assert cells[main_name]["metrics"]["macro_f1"]["values"] == pytest.approx(
        [r["model"]["macro_f1"] for r in runs])
    assert cells[main_name]["published"] == main["published"]
    tree = cells["IV: Weighted-DT"]
    assert tree["reference"] == "weighted_tree" and tree["of"] == main_name
    assert tree["metrics"]["accuracy"]["values"] == pytest.approx(
        [r["baselines"]["weighted_tree"]["accuracy"] for r in runs])
    assert tree["published"]["macro_f1"] == 0.90
    assert "vs_baseline" in tree and tree["vs_baseline"]["macro_f1"]["n"] == 2

    # Variants: only the second stage trained, on the main cell's stage-1 backbone (same seed)
    for seed in range(2):
        variant = out / "runs" / "ii-implicit-features-only" / f"seed{seed}"
        assert not (variant / "stage1").exists() and not (variant / "baselines.npz").exists()
        ours = _backbone(variant / "model.safetensors")
        theirs = _backbone(out / "runs" / slug / f"seed{seed}" / "stage1" / "model.safetensors")
        assert ours.keys() == theirs.keys() and ours
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)

    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| IV: Weighted-DT | 2 |"))
    assert "| 0.9000 |" in row and "| 0.8996 |" in row  # published macro F1 and accuracy
    row = next(line for line in md.splitlines() if line.startswith(f"| {main_name} | 2 |"))
    assert "| 0.9500 |" in row and row.endswith("| baseline |")
    assert "| IV: persistence (last week's class) | 2 |" in md
    assert "trained with resattn None" not in md  # provenance: the runs' stage-2 checkpoints
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert "test macro_f1" in proc.stderr + proc.stdout
