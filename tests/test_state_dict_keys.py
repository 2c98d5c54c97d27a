"""Every registered model keeps the state-dict keys and shapes it had at commit 8d8a8ca, so the
shipped weights and every checkpoint written since still load strictly.

``tests/data/state_dict_keys.json`` was generated from the code of 8d8a8ca (``python
tests/test_state_dict_keys.py`` writes it). Regenerate it only when a model is added on purpose,
never to make a refactor pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from resattn.models import create_model, list_models, model_entry

REFERENCE = Path(__file__).parent / "data" / "state_dict_keys.json"

# Options that change the module tree, checked besides every model's defaults.
VARIANTS: dict[str, list[dict]] = {
    "resnet18": [{"attn": "dual", "head": "kan"}, {"attn": "se", "head": "mlp"},
                 {"fpn": True}, {"head": "normalized"}],
    "resnet50": [{"attn": "channel"}, {"attn": "spatial"}],
    "arn_cnn": [{"residual": False}, {"attn": "none"}],
    "cnn1d": [{"batch_norm": False}],
    "alexnet1d": [{"batch_norm": True}],
    "densenet1d": [{"bn_size": 4, "attn": "se"}, {"block_dropout": 0.0}],
    "densenet1d_classifier": [{"seq_len": 1}],
    "decoupled_densenet1d": [{"classifier": "cnn"}, {"classifier": "flatten"},
                             {"features": "implicit"}],
    "m_mffnet": [{"fusion_norm_act": True}, {"shared_backbone": True}],
    "hff_senet": [{"hff_gate": "se"}],
}


def cases() -> list[tuple[str, dict]]:
    """(model name, options): every registered model in every dims it supports, plus VARIANTS."""
    out: list[tuple[str, dict]] = []
    for name in list_models():
        entry = model_entry(name)
        if "dims" not in entry.options:
            out.append((name, {}))
            continue
        out += [(name, {"dims": dims}) for dims in entry.dims]
    for name, variants in VARIANTS.items():
        out += [(name, options) for options in variants]
    return out


def case_id(name: str, options: dict) -> str:
    return name + "".join(f",{k}={v}" for k, v in sorted(options.items()))


def keys_digest(name: str, options: dict) -> dict:
    """Number of state-dict entries, their total size and the sha256 of 'key shape' lines."""
    with torch.device("meta"):  # keys and shapes only: no memory is filled
        state = create_model(name, **options).state_dict()
    lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in state.items())
    return {"n_keys": len(state), "numel": sum(v.numel() for v in state.values()),
            "sha256": hashlib.sha256(lines.encode()).hexdigest()}


def test_reference_covers_every_registered_model() -> None:
    reference = json.loads(REFERENCE.read_text())
    pinned = {key.split(",")[0] for key in reference}
    assert set(list_models()) <= pinned, "a new model: regenerate the reference on purpose"


@pytest.mark.parametrize(("name", "options"), [pytest.param(n, o, id=case_id(n, o))
                                               for n, o in cases()])
def test_state_dict_keys_and_shapes_unchanged(name: str, options: dict) -> None:
    reference = json.loads(REFERENCE.read_text())
    assert keys_digest(name, options) == reference[case_id(name, options)]


if __name__ == "__main__":
    REFERENCE.write_text(json.dumps({case_id(n, o): keys_digest(n, o) for n, o in cases()},
                                    indent=1, sort_keys=True) + "\n")
