"""Distillation, pruning, transfer learning and the `resattn compress` / `finetune` commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from test_image_task import write_squares


def test_distillation_loss_matches_hand_computation() -> None:
    from resattn.optimize.distill import distillation_loss

    s = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 0])
    temp, alpha = 2.0, 0.25

    def softmax(v):
        e = [math.exp(a) for a in v]
        return [a / sum(e) for a in e]

    kl = 0.0
    for sv, tv in zip(s.tolist(), t.tolist(), strict=True):
        ps, pt = softmax([a / temp for a in sv]), softmax([a / temp for a in tv])
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True))
    kl /= 2
    ce = -(math.log(softmax(s[0].tolist())[0]) + math.log(softmax(s[1].tolist())[0])) / 2
    expected = alpha * temp**2 * kl + (1 - alpha) * ce
    got = distillation_loss(s, t, y, temp, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(s, s, y, temp, 1.0).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(("name", "kw", "shape"), [
    ("arn_cnn", {"in_chans": 1, "num_classes": 6}, (1, 64, 64)),
    ("resnetkan1d", {}, (3, 600)),
])
def test_pruned_model_reloads_with_same_outputs(tmp_path: Path, name, kw, shape) -> None:
    from resattn.engine.checkpoint import load_model, save_model
    from resattn.models import create_model
    from resattn.models.summary import summarize
    from resattn.optimize.prune import prune_step

    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    before = summarize(model, shape)["macs"]
    prune_step(model, shape, 0.4)
    after = summarize(model, shape)["macs"]
    assert after < 0.8 * before
    save_model(tmp_path / "m", model, {"task": "x"})
    assert json.loads((tmp_path / "m.json").read_text())["pruned"] is True
    loaded, _ = load_model(tmp_path / "m")
    x = torch.randn(3, *shape)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert summarize(loaded, shape)["macs"] == after


def test_transfer_freezes_stages_and_scales_learning_rates() -> None:
    from resattn.engine.trainer import param_groups
    from resattn.models import create_model
    from resattn.optimize.finetune import prepare_transfer, stage_groups

    model = create_model("resnet18", in_chans=1, num_classes=7)
    names = [n for n, _ in stage_groups(model)]
    assert "head" not in names and len(names) >= 5
    frozen = prepare_transfer(model, freeze=2, lr_decay=0.5)
    assert frozen == names[:2]
    groups = dict(stage_groups(model))
    assert not any(p.requires_grad for p in groups[names[0]].parameters())
    assert all(p.requires_grad for p in groups[names[-1]].parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    scales = sorted({g["lr_scale"] for g in param_groups(model, 1e-3)}, reverse=True)
    assert scales[0] == 1.0 and scales[-1] == pytest.approx(0.5 ** (len(names) - 2))
    with pytest.raises(Exception, match="freeze must be"):
        prepare_transfer(model, freeze=99)


@pytest.fixture(scope="module")
def squares_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("opt")
    data = write_squares(root / "sq", per_class=12)
    run = root / "arn"
    proc = run_cli("train", "--model", "arn_cnn", "--data", data, "--out", run, "--epochs", "2",
                   "--batch-size", "8", "--fractions", "0.5,0.25,0.25", "--option",
                   "input_size=32", "--quiet", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    return data, run


def test_compress_prune_cli_halves_macs_and_reports(squares_run, tmp_path: Path) -> None:
    data, run = squares_run
    out = tmp_path / "pruned"
    proc = run_cli("compress", "prune", "--model", run, "--data", data, "--out", out,
                   "--target", "0.5", "--steps", "2", "--finetune-epochs", "1")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "compare.json").read_text())
    assert [r["technique"].split()[0] for r in rows] == ["fp32", "pruned"]
    assert rows[1]["macs"] <= 0.55 * rows[0]["macs"]
    for r in rows:
        assert {"params", "macs", "size_bytes", "latency_ms_b1", "latency_ms_b64",
                "throughput", "accuracy"} <= set(r)
    pruned = json.loads((out / "step2" / "model.json").read_text())
    assert pruned["pruned"] is True  # the fine-tuned checkpoint keeps its pruned widths


def test_compress_distill_and_finetune_cli(squares_run, tmp_path: Path) -> None:
    data, run = squares_run
    out = tmp_path / "distill"
    proc = run_cli("compress", "distill", "--teacher", run, "--student", "resnet18",
                   "--option", "widths=[8,8,16,16]", "--option", "stem_width=8",
                   "--data", data, "--out", out, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "compare.json").read_text())
    assert rows[1]["technique"].startswith("distilled") and rows[1]["params"] < rows[0]["params"]
    student = json.loads((out / "student" / "split.json").read_text())
    teacher = json.loads((run / "split.json").read_text())
    assert student["test"] == teacher["test"]  # same split as the teacher

    other = write_squares(tmp_path / "two", per_class=12, seed=3)
    (other / "right").rename(tmp_path / "unused")  # a new task with 2 classes
    ft = tmp_path / "ft"
    proc = run_cli("finetune", "--model", run, "--data", other, "--out", ft, "--epochs", "1",
                   "--freeze", "2", "--lr-decay", "0.5")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((ft / "model.json").read_text())
    assert card["class_names"] == ["left", "middle"] and card["config"]["num_classes"] == 2


@pytest.mark.slow
def test_compress_quantize_shipped_detector(sample_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("compress", "quantize", "--model", "stead-detector", "--data", sample_dir,
                   "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "compare.json").read_text())
    techniques = [r["technique"] for r in rows]
    assert techniques[0].startswith("fp32") and any("int8" in t for t in techniques)
    int8 = next(r for r in rows if "int8" in r["technique"])
    assert int8["size_bytes"] < 0.5 * rows[0]["size_bytes"]
    assert abs(int8["accuracy"] - rows[0]["accuracy"]) <= 0.07  # 32 traces: 2 flips at most
    assert np.isfinite([r["latency_ms_b64"] for r in rows]).all()


def test_random_erasing_and_batch_mixing_are_exact() -> None:
    from resattn.data.image_transforms import RandomErasing, mix_batch

    img = torch.ones(1, 20, 30)
    out = RandomErasing(p=1.0, scale=(0.1, 0.1), ratio=(1.0, 1.0))(img, torch.Generator()
                                                                   .manual_seed(0))
    erased = (out == 0).sum().item()
    assert 0.07 * 600 <= erased <= 0.13 * 600 and (out == 1).sum().item() == 600 - erased
    assert torch.equal(RandomErasing(p=0.0)(img), img)

    x = torch.arange(4 * 1 * 8 * 8, dtype=torch.float32).reshape(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    mixed, partner, lam = mix_batch(x, y, "mixup", 0.4, torch.Generator().manual_seed(1))
    perm = [int((y == p).nonzero()) for p in partner]
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    cut, partner, lam = mix_batch(x, y, "cutmix", 1.0, torch.Generator().manual_seed(2))
    moved = partner != y  # images paired with another one
    assert moved.any()
    own = (cut[moved] == x[moved]).float().mean().item()
    assert lam == pytest.approx(own, abs=1e-6) and 0 < lam < 1


def test_waveform_policies(sample_dir: Path) -> None:
    from resattn.data import WaveformDataset, WaveformWindows
    from resattn.errors import ConfigError

    ds = WaveformDataset.from_path(sample_dir)
    noise = int(np.flatnonzero(ds.labels == 0)[0])
    w = WaveformWindows(ds, 2000, train=True, augment=False,
                        policy=("superpose", "channel_dropout", "gain"))
    labels, dead = [], 0
    for epoch in range(40):
        w.set_epoch(epoch)
        x, y = w[noise]
        labels.append(y)
        dead += int((x.abs().sum(1) == 0).any())
    assert 0 < sum(labels) < 40  # superposed events turn some noise windows into earthquakes
    assert 0 < dead < 40  # some windows lose a component
    plain = WaveformWindows(ds, 2000, train=False, policy=("gain",))
    assert plain.policy == ()  # evaluation windows are never augmented
    with pytest.raises(ConfigError, match="unknown waveform augmentation"):
        WaveformWindows(ds, 2000, train=True, policy=("reverb",))


def test_train_with_cutmix_and_erasing(tmp_path: Path) -> None:
    data = write_squares(tmp_path / "sq", per_class=8)
    proc = run_cli("train", "--model", "arn_cnn", "--data", data, "--out", tmp_path / "r",
                   "--epochs", "1", "--batch-size", "8", "--fractions", "0.5,0.25,0.25",
                   "--option", "input_size=32", "--augment", "light+erase", "--mix", "cutmix",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    assert card["train_config"]["mix"] == "cutmix"
    assert card["preprocessing"]["augment"] == "light+erase"
