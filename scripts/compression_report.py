"""The review's optimisations (seed 001) applied to the two shipped models, measured in one run
on the same data: ``results/compression.md`` and ``results/compression.json``.

    python scripts/compression_report.py --train     # distil and prune (resumable)
    python scripts/compression_report.py --measure   # every row, on a quiet machine

Evaluation data: the stead-detector's held-out test traces (the shipped sample, 32 traces of
unseen stations) and mednist-arn's held-out test part (2,214 images). Students and pruned
models are trained on the same training parts as the originals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from resattn.demo import sample_path
from resattn.engine.provenance import environment
from resattn.engine.trainer import TrainConfig
from resattn.io import atomic_write_json, atomic_write_text
from resattn.optimize.benchmark import format_rows
from resattn.optimize.compare import eval_batches, model_row, original_rows
from resattn.optimize.distill import distill
from resattn.optimize.prune import prune
from resattn.pretrained import load_any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MODELS = {
    "stead-detector": {
        "train_data": SHARED / "seismic", "eval_data": sample_path("seismic"), "part": "all",
        "student": "resnet18_1d",
        "student_options": {"widths": [32, 64, 128, 256], "attn": "none", "head": "linear"},
        "distill_epochs": 40, "prune_epochs": 8, "max_per_class": None,
        "recipe": TrainConfig(lr=1e-3, patience=10, seed=0),
    },
    "mednist-arn": {
        "train_data": SHARED / "mednist" / "MedNIST_shared.tar.gz",
        "eval_data": SHARED / "mednist" / "MedNIST_shared.tar.gz", "part": "test",
        "student": "resnet18",
        "student_options": {"widths": [16, 32, 64, 128], "stem_width": 16},
        "distill_epochs": 4, "prune_epochs": 1, "max_per_class": 1500,
        "recipe": TrainConfig(optimizer="adamax", lr=1e-3, weight_decay=0.0, batch_size=40,
                              patience=3, seed=0),
    },
}
TARGETS = ("int8 or bf16 >= 2x faster than fp32 eager at <= 0.5 point accuracy loss; pruned: "
           ">= 50 % fewer MACs at <= 1 point loss; distilled student >= 3x faster than its "
           "teacher within 1 point")


def runs(name: str) -> dict[str, Path]:
    base = ROOT.parent / "runs" / "compression" / name
    return {"distilled": base / "distill", "pruned": base / "prune"}


def train(name: str) -> None:
    m, where = MODELS[name], runs(name)
    if not (where["distilled"] / "test_metrics.json").exists():
        distill(name, m["student"], m["train_data"], where["distilled"], m["student_options"],
                epochs=m["distill_epochs"], config=m["recipe"],
                max_per_class=m["max_per_class"])
    prune(name, m["train_data"], where["pruned"], target=0.55, steps=2,
          finetune_epochs=m["prune_epochs"], max_per_class=m["max_per_class"])  # own recipe


def checks(rows: list[dict]) -> list[str]:
    """The issue's targets, met or missed and by how much, per model."""
    out = []
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for name, rs in by_model.items():
        base = rs[0]
        acc0, t0 = base["accuracy"], base["latency_ms_b64"]
        for r in rs[1:]:
            speed = t0 / r["latency_ms_b64"]
            loss = 100 * (acc0 - r["accuracy"])
            macs = 1 - r["macs"] / base["macs"] if r["macs"] and base["macs"] else 0.0
            t = r["technique"]
            if t.startswith(("int8", "bf16")):
                ok = speed >= 2 and loss <= 0.5
                out.append(f"{name} {t}: {speed:.2f}x faster at batch 64, accuracy change "
                           f"{-loss:+.2f} points: target (>= 2x, <= 0.5 pt) "
                           f"{'met' if ok else 'MISSED'}")
            elif t.startswith("pruned"):
                ok = macs >= 0.5 and loss <= 1
                out.append(f"{name} {t}: {100 * macs:.1f} % fewer MACs, accuracy change "
                           f"{-loss:+.2f} points, {speed:.2f}x faster: target (>= 50 % MACs, "
                           f"<= 1 pt) {'met' if ok else 'MISSED'}")
            elif t.startswith("distilled"):
                ok = speed >= 3 and loss <= 1
                out.append(f"{name} {t}: {speed:.2f}x faster than the teacher, accuracy change "
                           f"{-loss:+.2f} points: target (>= 3x, <= 1 pt) "
                           f"{'met' if ok else 'MISSED'}")
    return out


def measure() -> None:
    rows = []
    scratch = ROOT.parent / "runs" / "compression" / "onnx"
    for name, m in MODELS.items():
        model, meta = load_any(name)
        batches = eval_batches(meta, m["eval_data"], m["part"])
        rows += original_rows(name, model, meta, batches, scratch, ("fp32", "bf16", "onnx",
                                                                    "int8"))
        where = runs(name)
        rows.append(model_row(name, "pruned (2 steps + fine-tuning)",
                              where["pruned"] / "step2", batches))
        rows.append(model_row(name, f"distilled student ({m['student']}, "
                                    f"{m['student_options']})", where["distilled"], batches))
        print(format_rows(rows[-6:]), flush=True)
    env = environment()
    result = {"rows": rows, "targets": TARGETS, "checks": checks(rows), "environment": env,
              "evaluation_data": {n: f"{m['eval_data'].name} ({m['part']})"
                                  for n, m in MODELS.items()}}
    atomic_write_json(ROOT / "results" / "compression.json", result)
    text = "\n\n".join([
        "# Compression of the shipped models (seed 001's optimisations)",
        f"Measured in one run on {env['cpu_model']} ({rows[0]['threads']} threads), "
        f"torch {env['torch']}, commit {env['git_commit']}. Latency is the median of 20 "
        "runs on random inputs; throughput at batch 64; accuracy on the held-out data "
        "(stead-detector: its 32 test traces of unseen stations, so one trace is 3.1 points; "
        "mednist-arn: its 2,214-image test part). Sizes are the files on disk (safetensors "
        "or ONNX).",
        format_rows(rows),
        "## Targets", f"Targets: {TARGETS}.",
        "\n".join(f"- {c}" for c in result["checks"]),
        "Reproduce: `python scripts/compression_report.py --train` then `--measure`; each "
        "technique is also a command (`resattn compress quantize|prune|distill|export`).",
    ])
    atomic_write_text(ROOT / "results" / "compression.md", text + "\n")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--only", choices=sorted(MODELS), default=None)
    args = ap.parse_args()
    for name in [args.only] if args.only else MODELS:
        if args.train:
            train(name)
    if args.measure:
        measure()


if __name__ == "__main__":
    main()
