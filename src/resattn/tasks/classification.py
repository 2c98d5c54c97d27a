"""One classification pipeline for every classification task (waveforms, images).

``ClassificationTask.train(spec)`` runs the same steps for every task: check the recipe, open
the data as the model (or the weights fine-tuned from) expects, build or load the network,
split, record the split and the model's contract, fit, and score the best weights on the
held-out test part. What differs between tasks (reader, contract, split, datasets, metrics) is
supplied by the subclass through a few small methods.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..engine.checkpoint import LAST_STEM, MODEL_STEM, load_model
from ..engine.inference import predict_proba
from ..engine.provenance import seed_everything
from ..engine.trainer import TrainConfig, fit, refuse_existing_run
from ..errors import ConfigError
from ..io import atomic_write_json, check_run_folder, read_json
from ..models import create_model
from ..models.summary import check_input, input_dims
from ..pretrained import checkpoint_stem, load_any
from .base import Task, TrainSpec


class ClassificationTask(Task):
    """The shared pipeline; subclasses say how their data is read, split and scored."""

    positive: int | None = None  # metrics' positive class (binary tasks), else macro
    dims = 2  # 1: the task's inputs are signals, 2: images
    explains = True

    # ------------------------------------------------------------------ what a task supplies
    def resolve(self, spec: TrainSpec, init_meta: dict | None) -> Any:
        """The task options, completed from the weights fine-tuned from (``init_meta``)."""
        return spec.options or self.options_type()

    def open(self, data: Any, options: Any) -> Any:
        """The dataset (lazy) read as ``options`` say."""
        raise NotImplementedError

    def finish_options(self, dataset: Any, options: Any) -> Any:
        """Options that need the data (a default window), checked against it."""
        return options

    def model_inputs(self, dataset: Any) -> dict:
        """``in_chans`` and ``num_classes`` a new model is built with."""
        raise NotImplementedError

    def item_shape(self, dataset: Any, options: Any) -> tuple[int, ...] | None:
        """One training item's shape when the options fix it (checked against the model
        before anything is written), else None."""
        return None

    def split(self, dataset: Any, options: Any, seed: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def split_record(self, dataset: Any, parts: dict, options: Any, seed: int) -> dict:
        """``split.json``: the seed, the rule and the member names of every part."""
        raise NotImplementedError

    def meta(self, dataset: Any, parts: dict, options: Any, seed: int, cfg: TrainConfig,
             data: Any) -> dict:
        """What every checkpoint of the run records: task, contract, data description."""
        raise NotImplementedError

    def datasets(self, dataset: Any, parts: dict, options: Any, seed: int,
                 cfg: TrainConfig) -> tuple[Any, Any, Any]:
        """(training, validation, test) torch datasets."""
        raise NotImplementedError

    def summary(self, options: Any, seed: int, split_seed: int) -> dict:
        """Task-specific entries of ``test_metrics.json``."""
        return {}

    def too_few(self, data: Any, dataset: Any, options: Any) -> str:
        return f"{data}: {len(dataset)} items are too few to make non-empty train/val/test parts"

    def score(self, model: nn.Module, data: Any, precision: str = "fp32",
              batch_size: int = 64) -> dict:
        raise NotImplementedError

    def records_split(self, meta: dict) -> bool:
        """Whether the checkpoint records its training split (so that a part can be scored)."""
        return bool(((meta.get("data") or {}).get("split") or {}).get("digests"))

    def test_items(self, meta: dict, data: Any, split: dict) -> Any:
        """The evaluation items of a run's test part (its ``split.json``), as its model
        expects them."""
        raise NotImplementedError

    def predictions(self, model: nn.Module, data: Any, precision: str,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        probs, labels, _ = predict_proba(model, data, precision, batch_size)
        return probs, labels

    # ------------------------------------------------------------------ the pipeline
    def recipe(self, spec: TrainSpec) -> TrainConfig:
        """The spec's recipe with its seed; the caller's object is left as is."""
        cfg = replace(spec.recipe or TrainConfig(), seed=spec.seed)
        return cfg.validate()  # a bad option fails before anything is read or written

    def train(self, spec: TrainSpec) -> dict:
        out = Path(spec.out)
        cfg = self.recipe(spec)
        check_run_folder(out, self.name)
        refuse_existing_run(out, spec.resume)  # before split.json is rewritten
        init_meta = None
        if spec.init_from is not None:
            net, init_meta = load_any(spec.init_from)
            check_init(net, spec)
        options = self.resolve(spec, init_meta)
        dataset = self.open(spec.data, options)
        check_classes(dataset, self.class_names(dataset), spec.data)
        inputs = self.model_inputs(dataset)
        if spec.init_from is not None:
            if getattr(net, "num_classes", inputs["num_classes"]) != inputs["num_classes"] \
                    and hasattr(net, "reset_classifier"):
                net.reset_classifier(inputs["num_classes"])  # new classes: a new head
            net.train()
        else:
            seed_everything(spec.seed)  # the initial weights follow the seed
            net = create_model(spec.model, **{**inputs, **(spec.model_options or {})})
        self.check_model(net, dataset, spec.data)
        if spec.prepare is not None:  # e.g. freezing stages for transfer learning
            spec.prepare(net)
        options = self.finish_options(dataset, options)
        shape = self.item_shape(dataset, options)
        if shape is not None:
            try:
                check_input(net, shape)
            except ConfigError as exc:
                raise ConfigError(f"{spec.data}: {exc}") from None
        split_seed = spec.seed if options.split_seed in (None, "per_seed") else \
            int(options.split_seed)
        parts = self.split(dataset, options, split_seed)
        if min(len(v) for v in parts.values()) == 0:
            raise ConfigError(self.too_few(spec.data, dataset, options))
        record = self.split_record(dataset, parts, options, split_seed)
        check_same_split(out, record)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "split.json", record)
        meta = self.meta(dataset, parts, options, split_seed, cfg, spec.data)
        train_set, val_set, test_set = self.datasets(dataset, parts, options, spec.seed, cfg)
        result = fit(net, train_set, val_set, out, cfg, resume=spec.resume, meta=meta,
                     class_names=self.class_names(dataset), positive=self.positive,
                     show_progress=spec.show_progress, loss_fn=spec.loss_fn,
                     callbacks=spec.callbacks)
        best, _ = load_model(out)
        test = self.score(best, test_set, result.precision, cfg.batch_size)
        summary = {"model": net.config, **self.summary(options, spec.seed, split_seed),
                   "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_early": result.stopped_early,
                   "best_val_loss": result.best_val_loss, "monitor": result.monitor,
                   "best_score": result.best_score, "precision": result.precision,
                   **self.summary_tail(options, spec.seed, split_seed), "test": test}
        atomic_write_json(out / "test_metrics.json", summary)
        return summary

    def summary_tail(self, options: Any, seed: int, split_seed: int) -> dict:
        return {}

    def class_names(self, dataset: Any) -> list[str]:
        return list(dataset.class_names)

    def check_model(self, net: nn.Module, dataset: Any, where: Any) -> None:
        """A clear error, before anything is written, when the model cannot take this data:
        signals for an image model (or the reverse), other channels, other classes."""
        name = (getattr(net, "config", None) or {}).get("model", type(net).__name__)
        have = input_dims(net)
        if have != self.dims:
            kind = {1: "1-D (signals)", 2: "2-D (images)"}
            raise ConfigError(f"{where}: {self.name} data needs a {kind[self.dims]} model, but "
                              f"{name} is {kind.get(have, have)}; pick one from `resattn "
                              "models list`")
        config, inputs = getattr(net, "config", None) or {}, self.model_inputs(dataset)
        for key in ("in_chans", "num_classes"):
            if key in config and config[key] != inputs[key]:
                raise ConfigError(f"{where}: the data has {inputs[key]} "
                                  f"{'channels' if key == 'in_chans' else 'classes'}, but the "
                                  f"model is built with {key}={config[key]}; drop --option "
                                  f"{key} (it is set from the data)")


def check_init(net: nn.Module, spec: TrainSpec) -> None:
    """Fine-tuning takes the architecture of its weights: a different ``--model`` or model
    options would be silently ignored, so they are an error; and it never writes over the
    weights it starts from."""
    source = checkpoint_stem(spec.init_from, "--init-from").resolve()
    out = Path(spec.out).resolve()
    if source in (out / MODEL_STEM, out / LAST_STEM):  # the files a run writes
        raise ConfigError(f"--out {spec.out} is the folder of the weights fine-tuned from "
                          f"({spec.init_from}); they would be overwritten: choose another --out")
    have = (getattr(net, "config", None) or {}).get("model")
    if spec.model and have and spec.model != have:
        raise ConfigError(f"--init-from {spec.init_from} holds a {have} model, but --model is "
                          f"{spec.model}; pass --model {have} (the weights fix the architecture)")
    config = json.loads(json.dumps(getattr(net, "config", None) or {}))
    differ = sorted(k for k, v in (spec.model_options or {}).items()
                    if json.loads(json.dumps(v)) != config.get(k))
    if differ:
        raise ConfigError(f"--option {differ}: model options come from the weights of "
                          f"--init-from {spec.init_from} (they hold "
                          f"{ {k: config.get(k) for k in differ} }); drop them")


def check_same_split(out: Path, record: dict) -> None:
    """A run resumed with options that split the data differently would train on another
    split than its first epochs did: refuse it."""
    path = out / "split.json"
    if not (out / "last.json").exists() or not path.exists():
        return
    old = read_json(path)
    if old != json.loads(json.dumps(record)):
        changed = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        raise ConfigError(f"{path}: the run being resumed was split differently "
                          f"({', '.join(changed)} changed); resume with the options it started "
                          "with or choose another --out")


def check_classes(dataset: Any, names: list[str], where: Any) -> None:
    """Training data must hold at least two classes: with one, every metric is trivially 1."""
    counts = np.bincount(np.asarray(dataset.labels, dtype=np.int64), minlength=len(names))
    present = [n for n, c in zip(names, counts, strict=False) if c > 0]
    if len(present) < 2:
        raise ConfigError(f"{where}: the training data holds only the class(es) {present} "
                          f"(counts {dict(zip(names, counts.tolist(), strict=False))}); a "
                          "classifier needs examples of at least two classes")
