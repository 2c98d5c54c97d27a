"""Throughput of ResNetKAN1D on this CPU: training and inference samples/s, fp32 vs bf16.

    python benchmarks/bench_resnetkan1d.py [--out benchmarks/results/resnetkan1d.json]
                                           [--batches N] [--warmup W] [--threads T]
                                           [--wait-idle SECONDS]

Measures ``create_model("resnetkan1d")`` at batch 64 on 3 x 5000 inputs (the paper's setting):

* train: forward + cross-entropy + backward + AdamW step (lr 1e-4, weight decay 1e-3, Table 1);
* infer: ``model.eval()`` under ``torch.no_grad()``;

each in fp32 and under bf16 autocast. bf16 is measured only where
``torch.backends.cpu.get_cpu_capability()`` starts with AVX512 or AMX; elsewhere it is recorded
as skipped with the reason (bf16 emulation on AVX2 is many times slower than fp32).

Warm-up batches are excluded; each figure is the median over ``--batches`` timed batches. fp32 and
bf16 batches are timed alternately, so both see the same machine load and their ratio is a
side-by-side comparison from the same run.

On a shared machine other processes (even ones in other containers, invisible to ``ps``) steal
the cores and make 2-thread OpenMP kernels several times slower. For every batch the script
therefore records the share of the CPUs other processes used meanwhile (from /proc/stat) and
also reports the median over "quiet" batches (others < 10 %); ``--wait-idle S`` waits up to S
seconds per mode for quiet before timed batches.

The JSON (written atomically) records the CPU, torch version, threads, load average,
``calibrate_bf16()`` and the precision ``choose_precision("auto")`` picks.
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
from resattn.engine.precision import autocast, calibrate_bf16, choose_precision, cpu_info
from resattn.engine.provenance import environment
from resattn.io import atomic_write_json

MODEL = "resnetkan1d"
BF16_CAPABLE = ("AVX512", "AMX")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "resnetkan1d.json"
QUIET = 0.10  # a batch is "quiet" when other processes used < 10 % of the CPUs meanwhile


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


def system_busy_seconds() -> float | None:
    """CPU seconds all processes on this machine have been busy (Linux /proc/stat), including
    processes of other containers sharing the kernel that ``ps`` does not show."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall time of one batch plus how much of the machine OTHER processes used meanwhile."""

    def __enter__(self) -> Timer:
        self.busy0, self.cpu0 = system_busy_seconds(), time.process_time()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall0
        own = time.process_time() - self.cpu0
        busy1 = system_busy_seconds()
        self.others = (
            None if busy1 is None or self.busy0 is None
            else max(busy1 - self.busy0 - own, 0.0) / (self.wall * (os.cpu_count() or 1))
        )


def wait_until_quiet(budget: float, threshold: float) -> float:
    """Sleep (up to ``budget`` s) until other processes use < ``threshold`` of the CPUs over
    one second; returns the seconds waited."""
    waited = 0.0
    while waited < budget:
        with Timer() as t:
            time.sleep(1.0)
        waited += t.wall
        if t.others is None or t.others < threshold:
            break
    return waited


def measure(kind: str, precisions: list[str], x: torch.Tensor, y: torch.Tensor, warmup: int,
            batches: int, wait_idle: float = 0.0, quiet: float = QUIET) -> dict[str, dict]:
    """Warm every precision up, then time them alternately, batch by batch."""
    runners = [Runner(kind, p, x, y) for p in precisions]
    for runner in runners:
        for _ in range(warmup):
            runner.step()
    records: dict[str, list[tuple[float, float | None]]] = {p: [] for p in precisions}
    waited = 0.0
    for _ in range(batches):
        for runner in runners:
            if wait_idle > waited:
                waited += wait_until_quiet(wait_idle - waited, quiet)
            with Timer() as t:
                runner.step()
            records[runner.precision].append((t.wall, t.others))
    batch = x.shape[0]
    out = {}
    for precision, rows in records.items():
        times = [w for w, _ in rows]
        calm = [w for w, o in rows if o is not None and o < quiet]
        median = statistics.median(times)
        out[precision] = {
            "samples_per_s": round(batch / median, 2),
            "median_batch_seconds": round(median, 4),
            "min_batch_seconds": round(min(times), 4),
            "max_batch_seconds": round(max(times), 4),
            "batch_seconds": [round(w, 4) for w in times],
            # Share of all CPUs used by OTHER processes during each batch (contention).
            "other_processes_cpu_share": [None if o is None else round(o, 3) for _, o in rows],
            "quiet_batches": len(calm),
            "samples_per_s_quiet": round(batch / statistics.median(calm), 2) if calm else None,
            "seconds_waited_for_quiet": round(waited, 1),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--batches", type=int, default=5, help="timed batches per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per mode")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--length", type=int, default=5000, help="samples per channel")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="per mode, wait up to this long in total for other processes to "
                        "go quiet before timed batches (shared machines); default 0")
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
    # The calibration is a few milliseconds of work: contention skews it most of all.
    if args.wait_idle and not skip:
        wait_until_quiet(min(args.wait_idle, 60.0), QUIET)
    with Timer() as calib_timer:
        calibration = calibrate_bf16() if not skip else None
        auto = choose_precision("auto")  # reuses the cached calibration

    results: dict[str, dict] = {}
    for kind in ("train", "infer"):
        measured = measure(kind, precisions, x, y, args.warmup, args.batches, args.wait_idle)
        for precision in ("fp32", "bf16"):
            results[f"{kind}_{precision}"] = measured.get(
                precision, {"skipped": True, "reason": skip}
            )

    ratios = {}
    for kind in ("train", "infer"):
        fp32, bf16 = results[f"{kind}_fp32"], results[f"{kind}_bf16"]
        for suffix, key in (("", "samples_per_s"), ("_quiet", "samples_per_s_quiet")):
            ok = not bf16.get("skipped") and fp32.get(key) and bf16.get(key)
            ratios[f"{kind}_bf16_over_fp32{suffix}"] = (
                round(bf16[key] / fp32[key], 3) if ok else None
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
        "quiet_threshold_other_cpu_share": QUIET,
        "cpu": {**cpu_info(), "flags": cpu_flags()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "calibrate_bf16_speedup": None if calibration is None else round(calibration, 3),
        "calibration_other_processes_cpu_share": (
            None if calib_timer.others is None else round(calib_timer.others, 3)
        ),
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
    print(f"{'mode':<14}{'fp32 samples/s':>16}{'bf16 samples/s':>16}{'bf16/fp32':>11}"
          f"{'quiet fp32/bf16':>17}")

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for kind in ("train", "infer"):
        fp32, bf16 = report["results"][f"{kind}_fp32"], report["results"][f"{kind}_bf16"]
        for label, key, suffix in (("median", "samples_per_s", ""),
                                   ("quiet median", "samples_per_s_quiet", "_quiet")):
            bf16_text = "skipped" if bf16.get("skipped") else fmt(bf16.get(key), ".1f")
            ratio = fmt(report["ratios"][f"{kind}_bf16_over_fp32{suffix}"], ".2f")
            count = "/".join(
                str(r["quiet_batches"]) for r in (fp32, bf16) if not r.get("skipped")
            ) + f" of {len(fp32['batch_seconds'])}" if suffix else ""
            print(f"{kind + ' ' + label:<14}{fmt(fp32.get(key), '.1f'):>16}{bf16_text:>16}"
                  f"{ratio:>11}{count:>17}")
    calib = report["calibrate_bf16_speedup"]
    print(f"calibrate_bf16() speed-up: {'-' if calib is None else f'{calib:.2f}x'}; "
          f"choose_precision('auto') -> {report['choose_precision_auto']}; "
          f"load average {report['load_average_before'][0]} -> "
          f"{report['load_average_after'][0]}")


if __name__ == "__main__":
    main()
