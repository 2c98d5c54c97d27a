"""A model's config records every resolved option (issue 13, item 7): it rebuilds the same model,
old partial configs still load and resume, and models built without ``create_model`` save too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from resattn.engine.checkpoint import (
    load_model,
    load_training_state,
    save_model,
    save_training_state,
)
from resattn.errors import CheckpointError, ConfigError
from resattn.models import (
    ARNCNN,
    Classifier,
    ResNet,
    config_of,
    create_model,
    list_models,
    model_entry,
    resolve_config,
)
from resattn.models.arn_cnn import arn_cnn
from resattn.models.densenet1d import DecoupledDenseNet
from resattn.models.resnet import resnet18_1d

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "resattn" / "weights"
SMALL_RESNET = {"widths": (8, 16, 32, 64), "stem_width": 8}


def _meta_state(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list_models())
def test_config_holds_every_option_and_rebuilds_the_same_tree(name: str) -> None:
    entry = model_entry(name)
    with torch.device("meta"):
        model = create_model(name)
        config = model.config
        assert set(config) == {"model", *entry.options}
        assert json.loads(json.dumps(config)) == config  # JSON-able as it stands
        rebuilt = create_model(**config)
    assert rebuilt.config == config
    assert list(_meta_state(rebuilt).items()) == list(_meta_state(model).items())


def test_default_change_does_not_change_a_resolved_config() -> None:
    config = create_model("resnet18_1d", **SMALL_RESNET).config
    assert config["head"] == "mlp" and config["widths"] == [8, 16, 32, 64]
    assert config["drop_path_rate"] == 0.0 and config["zero_init_last"] is True
    # A partial config and its resolved form are one config.
    assert resolve_config({"model": "resnet18_1d", **SMALL_RESNET}) == config
    assert resolve_config(config) == config


SMALL_CASES = [
    ("resnet18_1d", SMALL_RESNET),
    ("resnetkan1d", SMALL_RESNET),
    ("resnet18", {"dims": 2, "in_chans": 1, "num_classes": 4, "fpn": True, "fpn_channels": 8,
                  **SMALL_RESNET}),
    ("hff_senet", {"depth": 18, "dims": 1, **SMALL_RESNET}),
    ("m_mffnet", {"depth": 18, "dims": 1, "fusion_channels": 8, "fusion_norm_act": True,
                  **SMALL_RESNET}),
    ("arn_cnn", {"dims": 1, "widths": (4, 8, 8, 16), "out_chans": 6, "fc_dim": 8}),
    ("cnn1d", {}),
    ("transformer1d", {"d_model": 16, "depth": 1, "num_heads": 2}),
    ("densenet1d", {"in_chans": 6}),
    ("densenet1d_classifier", {"in_chans": 10}),
    ("decoupled_densenet1d", {"in_chans": 6, "window": 16}),
]


def _inputs(model: nn.Module, name: str) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    dims = getattr(model, "dims", 1)
    size = {"densenet1d_classifier": (4,), "decoupled_densenet1d": (16,)}.get(
        name, (64,) if dims == 1 else (64, 64))
    chans = getattr(model, "in_chans", model.config.get("in_chans", 3))
    chans = chans if isinstance(chans, tuple) else (chans,)
    return tuple(torch.randn(2, c, *size, generator=gen) for c in chans)


@pytest.mark.parametrize(("name", "options"), SMALL_CASES, ids=[c[0] for c in SMALL_CASES])
def test_resolved_config_rebuilds_identical_outputs(name: str, options: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **options).eval()
    rebuilt = create_model(**json.loads(json.dumps(model.config))).eval()
    assert _meta_state(rebuilt) == _meta_state(model)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = _inputs(model, name)
    with torch.no_grad():
        assert torch.equal(rebuilt(*x), model(*x))


@pytest.mark.parametrize("card", ["mednist-arn", "stead-detector"])
def test_shipped_partial_configs_load_and_resolve(card: str) -> None:
    stored = json.loads((WEIGHTS / f"{card}.json").read_text())["config"]
    assert set(stored) < set(resolve_config(stored))  # written before configs were resolved
    model, meta = load_model(WEIGHTS / card)
    assert meta["config"] == stored
    assert model.config == resolve_config(stored)


def test_resume_from_a_partial_old_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18_1d", **SMALL_RESNET)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 64)).sum().backward()
    optimizer.step()
    save_training_state(tmp_path, model, optimizer, {"epoch": 1})
    last = tmp_path / "last.json"
    meta = json.loads(last.read_text())
    assert meta["config"] == model.config  # written resolved
    # What the code before resolved configs wrote: only the overridden options.
    meta["config"] = {"model": "resnet18_1d", "widths": [8, 16, 32, 64], "stem_width": 8}
    last.write_text(json.dumps(meta))
    torch.manual_seed(1)
    fresh = create_model("resnet18_1d", **SMALL_RESNET)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    assert load_training_state(tmp_path, fresh, fresh_opt) == {"epoch": 1}
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key

    other = create_model("resnet18_1d", attn="dual", **SMALL_RESNET)
    with pytest.raises(CheckpointError, match=r"does not match .*differ: \['attn'\]"):
        load_training_state(tmp_path, other, torch.optim.Adam(other.parameters()))


def _round_trip(tmp_path: Path, model: nn.Module, *x: torch.Tensor) -> nn.Module:
    model.eval()
    save_model(tmp_path / "model", model)
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(*x), model(*x))
    return loaded


def test_registered_function_called_directly_saves(tmp_path: Path) -> None:
    model = resnet18_1d(num_classes=3, **SMALL_RESNET)
    assert model.config == resolve_config({"model": "resnet18_1d", "num_classes": 3,
                                           **SMALL_RESNET})
    loaded = _round_trip(tmp_path, model, torch.randn(2, 3, 64))
    assert loaded.config == model.config
    assert arn_cnn(dims=1).config["model"] == "arn_cnn"
    with pytest.raises(ConfigError, match="no option"):
        resnet18_1d(colour="blue")


@pytest.mark.parametrize(("cls", "options", "name", "shape"), [
    (ResNet, {"depth": 18, "dims": 1, "num_classes": 3, **SMALL_RESNET}, "resnet18", (3, 64)),
    (ResNet, {"depth": 18, "dims": 1, "num_classes": 2, "attn": "dual", "head": "kan",
              **SMALL_RESNET}, "resnetkan1d", (3, 64)),
    (ResNet, {"depth": 50, "dims": 1, "act": "swish", **SMALL_RESNET}, "swish_resnet50",
     (3, 64)),
    (ARNCNN, {"dims": 1, "widths": (4, 8, 8, 16), "out_chans": 6}, "arn_cnn", (1, 64)),
    (DecoupledDenseNet, {"in_chans": 6, "window": 16}, "decoupled_densenet1d", (6, 16)),
])
def test_builder_class_called_directly_saves(tmp_path: Path, cls: type, options: dict,
                                             name: str, shape: tuple) -> None:
    torch.manual_seed(0)
    model = cls(**options)
    assert getattr(model, "config", None) is None
    assert config_of(model)["model"] == name
    loaded = _round_trip(tmp_path, model, torch.randn(2, *shape))
    assert loaded.config == config_of(model)


def test_reset_classifier_on_a_class_built_model_is_saved(tmp_path: Path) -> None:
    model = ResNet(depth=18, dims=1, num_classes=3, **SMALL_RESNET)
    model.reset_classifier(5, head="mlp")
    loaded = _round_trip(tmp_path, model, torch.randn(2, 3, 64))
    assert loaded.num_classes == 5 and loaded.config["head"] == "mlp"


def test_unregistered_models_give_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError,
                       match=r"model\.json: the model has no registered config \(Linear has no"):
        save_model(tmp_path / "model", nn.Linear(2, 2))

    class Tiny(Classifier):
        def __init__(self, num_classes: int = 2) -> None:
            super().__init__()
            self._init_head(1, 4, num_classes)

    with pytest.raises(CheckpointError, match=r"Tiny .*not the builder of any registered model"):
        save_model(tmp_path / "model", Tiny())
    assert not (tmp_path / "model.json").exists()
