"""Probabilities of the three shipped models on shipped / shared samples, as JSON.

Run before and after a refactor on the same machine and compare (``--compare OLD.json``): the
figures must be bit-identical. Reads ``../shared/data/fer`` for the facial-expression model
(no face image ships with the package).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FER = ROOT.parent / "shared" / "data" / "fer" / "fer2013_subset_shared.tar.gz"


def _digest(values) -> str:
    return hashlib.sha256(np.asarray(values, dtype=np.float64).tobytes()).hexdigest()


def snapshot() -> dict:
    from resattn.demo import sample_path
    from resattn.tasks import IMAGES, WAVEFORMS

    runs = {
        "stead-detector": WAVEFORMS.evaluate("stead-detector", sample_path("seismic"),
                                                       precision="fp32"),
        "mednist-arn": IMAGES.evaluate(
            "mednist-arn", sample_path("mednist") / "MedNIST_sample.tar.gz", precision="fp32"),
    }
    if FER.exists():
        runs["fer-resnet18"] = IMAGES.evaluate("fer-resnet18", FER, precision="fp32")
    return {name: {"n": m["n"], "accuracy": m["accuracy"],
                   "sha256": _digest(m["probabilities"]),
                   "first": np.asarray(m["probabilities"]).ravel()[:8].tolist()}
            for name, m in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--compare", type=Path, help="earlier output: exit 1 unless identical")
    args = ap.parse_args()
    now = snapshot()
    text = json.dumps(now, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    if args.compare:
        old = json.loads(args.compare.read_text())
        same = {k: old.get(k, {}).get("sha256") == v["sha256"] for k, v in now.items()}
        print(json.dumps({"identical": same}))
        return 0 if all(same.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
