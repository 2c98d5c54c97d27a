"""Throughput of ResNetKAN1D on this CPU: training and inference samples/s, fp32 vs bf16.

    python benchmarks/bench_resnetkan1d.py [--out benchmarks/results/resnetkan1d.json]
                                           [--batches N] [--warmup W] [--threads T]

Measures ``create_model("resnetkan1d")`` at batch 64 on 3 x 5000 inputs (the paper's setting):

* train: forward + cross-entropy + backward + AdamW step (lr 1e-4, weight decay 1e-3, Table 1);
* infer: ``model.eval()`` under ``torch.no_grad()``;

each in fp32 and under bf16 autocast. bf16 is measured only where
``torch.backends.cpu.get_cpu_capability()`` starts with AVX512 or AMX; elsewhere it is recorded
as skipped with the reason (bf16 emulation on AVX2 is many times slower than fp32).

Warm-up batches are excluded; each figure is the median over ``--batches`` timed batches. fp32 and
bf16 batches are timed alternately, so both see the same machine load and their ratio is a
side-by-side comparison from the same run. The JSON (written atomically) records the CPU, torch
version, threads, load average and CPU utilisation of the process, ``calibrate_bf16()`` and the
precision ``choose_precision("auto")`` picks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from resattn import create_model
from resattn.engine.checkpoint import atomic_write_json
from resattn.engine.precision import autocast, calibrate_bf16, choose_precision, cpu_info
from resattn.engine.provenance import environment

MODEL = "resnetkan1d"
BF16_CAPABLE = ("AVX512", "AMX")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "resnetkan1d.json"


def cpu_flags() -> list[str]:
    """The bf16/AMX/AVX512 flags the kernel reports (Linux), to explain the bf16 figures."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(x for x in flags if x.startswith(("avx512", "amx")))
    except OSError:
        pass
    return []


def bf16_skip_reason() -> str | None:
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith(BF16_CAPABLE):
        return None
    return (f"cpu capability {capability!r} has no native bf16 (needs AVX512* or AMX*); "
            "bf16 autocast would be emulated and far slower than fp32")


class Runner:
    """One model (+ optimizer for training) in one precision; ``step()`` runs one batch."""

    def __init__(self, kind: str, precision: str, x: torch.Tensor, y: torch.Tensor) -> None:
        torch.manual_seed(0)
        self.kind, self.precision, self.x, self.y = kind, precision, x, y
        self.model = create_model(MODEL)
        if kind == "train":
            self.model.train()
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4,
                                               weight_decay=1e-3)
        else:
            self.model.eval()
        self.times: list[float] = []

    def step(self) -> float:
        start = time.perf_counter()
        if self.kind == "train":
            with autocast(self.precision):
                logits = self.model(self.x)
            loss = nn.functional.cross_entropy(logits.float(), self.y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        else:
            with torch.no_grad(), autocast(self.precision):
                self.model(self.x)
        return time.perf_counter() - start


def measure(kind: str, precisions: list[str], x: torch.Tensor, y: torch.Tensor, warmup: int,
            batches: int) -> dict[str, dict]:
    """Warm every precision up, then time them alternately, batch by batch."""
    runners = [Runner(kind, p, x, y) for p in precisions]
    for runner in runners:
        for _ in range(warmup):
            runner.step()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        for runner in runners:
            runner.times.append(runner.step())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    batch = x.shape[0]
    out = {}
    for runner in runners:
        median = statistics.median(runner.times)
        out[runner.precision] = {
            "samples_per_s": round(batch / median, 2),
            "median_batch_seconds": round(median, 4),
            "min_batch_seconds": round(min(runner.times), 4),
            "max_batch_seconds": round(max(runner.times), 4),
            "batch_seconds": [round(t, 4) for t in runner.times],
        }
    # CPU seconds used / (wall seconds x threads): well below 1 means other processes competed.
    utilisation = cpu / max(wall * torch.get_num_threads(), 1e-9)
    for result in out.values():
        result["cpu_utilisation"] = round(utilisation, 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--batches", type=int, default=5, help="timed batches per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per mode")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--length", type=int, default=5000, help="samples per channel")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.warmup < 0:
        parser.error("--batches must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.length, generator=gen)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)

    skip = bf16_skip_reason()
    precisions = ["fp32"] if skip else ["fp32", "bf16"]
    calibration = calibrate_bf16() if not skip else None
    auto = choose_precision("auto")

    results: dict[str, dict] = {}
    for kind in ("train", "infer"):
        measured = measure(kind, precisions, x, y, args.warmup, args.batches)
        for precision in ("fp32", "bf16"):
            results[f"{kind}_{precision}"] = measured.get(
                precision, {"skipped": True, "reason": skip}
            )

    ratios = {}
    for kind in ("train", "infer"):
        fp32, bf16 = results[f"{kind}_fp32"], results[f"{kind}_bf16"]
        ratios[f"{kind}_bf16_over_fp32"] = (
            None if bf16.get("skipped")
            else round(bf16["samples_per_s"] / fp32["samples_per_s"], 3)
        )

    report = {
        "benchmark": "resnetkan1d throughput",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": MODEL,
        "input": [args.batch_size, 3, args.length],
        "batch_size": args.batch_size,
        "warmup_batches": args.warmup,
        "timed_batches": args.batches,
        "statistic": "median over timed batches; fp32 and bf16 batches timed alternately",
        "cpu": {**cpu_info(), "flags": cpu_flags()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "calibrate_bf16_speedup": None if calibration is None else round(calibration, 3),
        "choose_precision_auto": auto,
        "results": results,
        "ratios": ratios,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "total_seconds": round(time.perf_counter() - started, 1),
        "environment": environment(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else
                                                      sys.argv[1:])]),
    }
    atomic_write_json(args.out, report)
    print_table(report)
    print(f"\nwritten to {args.out}")
    return report


def print_table(report: dict) -> None:
    cpu = report["cpu"]
    print(f"{report['model']} {tuple(report['input'])}  |  {cpu['cpu_model']} "
          f"({cpu['cpu_capability']}, {report['threads']} threads)  |  torch {report['torch']}")
    print(f"{'mode':<8}{'fp32 samples/s':>16}{'bf16 samples/s':>16}{'bf16/fp32':>11}")
    for kind in ("train", "infer"):
        fp32, bf16 = report["results"][f"{kind}_fp32"], report["results"][f"{kind}_bf16"]
        bf16_text = "skipped" if bf16.get("skipped") else f"{bf16['samples_per_s']:.1f}"
        ratio = report["ratios"][f"{kind}_bf16_over_fp32"]
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        print(f"{kind:<8}{fp32['samples_per_s']:>16.1f}{bf16_text:>16}{ratio_text:>11}")
    calib = report["calibrate_bf16_speedup"]
    print(f"calibrate_bf16() speed-up: {'-' if calib is None else f'{calib:.2f}x'}; "
          f"choose_precision('auto') -> {report['choose_precision_auto']}; "
          f"load average {report['load_average_before'][0]} -> "
          f"{report['load_average_after'][0]}")


if __name__ == "__main__":
    main()
