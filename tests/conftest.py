"""Shared fixtures: the real data beside the repo, the shipped sample, small generated folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_SEISMIC = REPO.parent / "shared" / "data" / "seismic"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors in tests are tiny: threads gain nothing, and on a shared 2-core machine two
    OpenMP threads wait for each other's time slices (the suite ran 20x slower under load).
    The CLI tests run in subprocesses and keep torch's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_seismic() -> Path:
    if not (SHARED_SEISMIC / "eq_60s.csv").exists():
        pytest.skip("shared/data/seismic is not beside the repository")
    return SHARED_SEISMIC


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from resattn.demo import sample_path

    return sample_path()


def write_stead(folder: Path, traces: dict[str, np.ndarray], categories: dict[str, str],
                stem: str = "part", extra: dict | None = None) -> Path:
    """A tiny STEAD-layout pair ``stem.csv`` + ``stem.hdf5`` with the given (n, 3) traces."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"trace_name": k, "trace_category": categories[k],
             "p_arrival_sample": 300.0 if categories[k].startswith("earthquake") else None,
             "split_group": f"g{i}", **(extra or {})} for i, k in enumerate(traces)]
    pd.DataFrame(rows).to_csv(folder / f"{stem}.csv", index=False)
    with h5py.File(folder / f"{stem}.hdf5", "w") as f:
        grp = f.create_group("data")
        for k, v in traces.items():
            grp.create_dataset(k, data=v)
    return folder


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "resattn", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The fuzzing suite's case count (issue 14 asks for it in the report)."""
    from fuzzing import CASES

    if CASES:
        terminalreporter.write_line(f"fuzzing: {sum(CASES.values()):,} generated cases in "
                                    f"{len(CASES)} properties")
