"""Earthquake-vs-noise classification of 3-component waveforms (ResNetKAN1D, seed 000).

Training reads a STEAD- or SeisBench-layout folder with a grouped 8:1:1 split (rows sharing a
record or station never straddle two parts) and scores the best weights on the held-out test
part; evaluation scores any model on a folder, one deterministic window per trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..contracts import WaveformContract, contract_from_meta
from ..data import WaveformDataset, WaveformWindows, check_windows
from ..data.records import read_record
from ..data.splits import PARTS, grouped_parts, names_digest, split_from_names
from ..data.transforms import WAVEFORM_POLICIES, window_start
from ..data.waveforms import OTHER
from ..engine.precision import choose_precision
from ..engine.trainer import TrainConfig
from ..errors import ConfigError, DataError
from ..eval.breakdown import breakdown, instrument_kinds, roc_auc, snr_db
from ..eval.metrics import classification_metrics
from ..explain.gradcam import plot_waveform_cam
from ..io import atomic_write_text
from ..layers import eval_mode
from ..options import option
from ..pretrained import load_any
from .classification import ClassificationTask
from .registry import data_paths

CLASS_NAMES = ["noise", "earthquake"]
POSITIVE = 1  # metrics report the earthquake class, as in the paper
PAPER_WINDOW = 5000  # 50 s at 100 Hz (ResNetKAN1D Sec. 4.1)
P_OFFSET = 0.25  # deterministic windows put P a quarter into the window
WAVEFORM_SUFFIXES = (".hdf5", ".h5", ".csv")


@dataclass
class WaveformOptions:
    """Settings of the waveform task (a ``waveform:`` config section, ``train`` options)."""

    window: int | None = option(None, "Window in samples. Default: 5000 (50 s, the paper) if "
                                      "every trace holds it, else 80 % of the shortest trace.")
    pad: bool = option(False, "Zero-pad traces shorter than the window (can leak the label; "
                              "off by default).")
    split_by: tuple[str, ...] = option(("group",), "Columns that keep rows on one side of the "
                                                   "split (default group; e.g. group,station).")
    bandpass: tuple[float, float] | None = option(None, "Band-pass LOW,HIGH in Hz before "
                                                        "windowing (e.g. 1,20); default none.")
    mix_noise: float = option(0.0, "Probability of adding a random noise window to a training "
                                   "item.")
    augment: tuple[str, ...] = option((), "Extra training augmentations: "
                                          + ",".join(WAVEFORM_POLICIES) + ".")
    split: dict | None = option(None, "Trace names per part (train/val/test), e.g. a run's "
                                      "split.json; replaces the grouped split.")
    gap_seconds: float | None = option(
        None, "Runs of one value at least this long (s) are data gaps, filled before the "
              "band-pass (the contract records it; e.g. 1).")
    split_seed: int | Literal["per_seed"] | None = option(
        None, "Seed of the split (default: the run's seed); fix it to vary only "
              "initialisation.")

    def __post_init__(self) -> None:
        self.split_by = tuple(self.split_by)
        self.augment = tuple(a for a in self.augment if a != "none")
        self.bandpass = tuple(self.bandpass) if self.bandpass else None
        if self.gap_seconds is not None and not self.gap_seconds > 0:
            raise ConfigError(f"gap_seconds must be > 0 seconds, got {self.gap_seconds}")
        if self.window is not None and self.window < 1:
            raise ConfigError(f"window must be a positive number of samples, got {self.window}")
        if not 0.0 <= self.mix_noise <= 1.0:
            raise ConfigError(f"mix_noise is a probability in [0, 1], got {self.mix_noise}")
        if not self.split_by or any(not c for c in self.split_by):
            raise ConfigError(f"split_by must name columns (e.g. group,station), got "
                              f"{list(self.split_by)}")
        unknown = set(self.augment) - set(WAVEFORM_POLICIES)
        if unknown:
            raise ConfigError(f"unknown waveform augmentation(s) {sorted(unknown)}; expected "
                              f"{list(WAVEFORM_POLICIES)}")


def auto_window(lengths: np.ndarray, preferred: int = PAPER_WINDOW) -> int:
    """The paper's 50 s window if every trace holds it, else 80 % of the shortest trace rounded
    down to whole seconds (so even the shortest traces get random crops, never padding)."""
    shortest = int(lengths.min())
    if shortest >= preferred:
        return preferred
    return max(100, int(0.8 * shortest) // 100 * 100)


def preprocessing(window: int, band: tuple[float, float] | None = None,
                  mix_noise: float = 0.0, sampling_rate: float = 100.0) -> dict:
    """What a user must do to feed this model, in words: recorded in every checkpoint's JSON."""
    return {
        "bandpass_hz": list(band) if band else None,
        "mix_noise": mix_noise,
        "input": "3-component waveform, channel order E,N,Z",
        "sampling_rate_hz": sampling_rate,
        "window_samples": window,
        "window_seconds": window / sampling_rate,
        "normalisation": "per-channel zero mean, unit standard deviation over the window",
        "eval_window": f"P pick at {P_OFFSET:.0%} of the window if known, else centred",
        "train_window": "random crop keeping P within 5-75 % of the window; polarity flip and "
                        "Gaussian noise (std <= 0.1) augmentation",
        "class_names": CLASS_NAMES,
    }


def parse_band(text: str | None) -> tuple[float, float] | None:
    """``"1,20"`` -> (1.0, 20.0); ``None`` or ``"none"`` -> no band-pass."""
    if text is None or text.lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bandpass expects LOW,HIGH in Hz (e.g. 1,20), got {text!r}") from None
    return low, high


def _names(dataset: WaveformDataset, idx: np.ndarray) -> list[str]:
    return dataset.metadata["trace_name"].iloc[idx].astype(str).tolist()


def eval_windows(dataset: WaveformDataset, contract: WaveformContract, window: int | None = None,
                 pad: bool = False) -> WaveformWindows:
    """Deterministic windows of ``dataset`` preprocessed as ``contract`` says (``window``
    overrides its length)."""
    window = window or contract.window_samples
    check_windows(dataset, window, pad)
    return WaveformWindows(dataset, window, train=False, pad=pad, band=contract.bandpass_hz,
                           sampling_rate=contract.sampling_rate,
                           gap_seconds=contract.gap_seconds)


def score(model: nn.Module, windows: WaveformWindows, precision: str = "fp32",
          batch_size: int = 64) -> dict:
    """Metrics of ``model`` on deterministic windows (earthquake = positive class)."""
    return WAVEFORMS.score(model, windows, precision, batch_size)


def part_positions(dataset: WaveformDataset, meta: dict, part: str, where: Any) -> np.ndarray:
    """Row positions of the model's training split part ``part`` in ``dataset``: the grouped
    split recomputed from the recorded seed and columns, checked against the recorded digest."""
    if part not in PARTS:
        raise ConfigError(f"part must be one of {['all', *PARTS]}, got {part!r}")
    split = (meta.get("data") or {}).get("split") or {}
    if not split.get("digests"):
        raise ConfigError("this model records no training split; use --part all")
    if split.get("given"):
        raise ConfigError("this model was trained on a split given by trace names (--split); "
                          "select those traces yourself and use --part all")
    whole = dataset if split.get("reviewed") else WaveformDataset.from_path(
        dataset_paths(dataset), keep_other=True)  # older runs split before the review
    idx = grouped_parts(whole.metadata, split["seed"], by=split["by"])[part]
    if names_digest(_names(whole, idx)) != split["digests"][part]:
        raise DataError(f"{where}: is not the data this model was trained on (its {part} part "
                        "differs from the recorded one); use --part all")
    wanted = set(_names(whole, idx))  # (without the windows the review took out)
    return np.flatnonzero(dataset.metadata["trace_name"].astype(str).isin(wanted).to_numpy())


def dataset_paths(dataset: WaveformDataset) -> list[Path]:
    """The metadata CSVs ``dataset`` was read from."""
    return [info.csv for info in dataset._files.infos]


def _recorded_path(data: Any) -> str | list[str]:
    paths = data_paths(data)
    resolved = [str(p.resolve()) for p in paths]
    return resolved[0] if len(resolved) == 1 else resolved


def _source_counts(dataset: WaveformDataset) -> dict[str, dict[str, int]]:
    """Traces per source and category, as trained on."""
    meta = dataset.metadata
    return {str(src): {str(k): int(v) for k, v in g["category"].value_counts().items()}
            for src, g in meta.groupby("source")}


def _excluded_counts(dataset: WaveformDataset) -> dict[str, int]:
    """Traces the reader left out, per reason (category or review verdict)."""
    ex = dataset.excluded
    reason = ex["review"].where(ex["review"] != "", ex["category"])
    return {str(k): int(v) for k, v in reason.value_counts().items()}


def _trace_facts(windows: WaveformWindows) -> list[dict]:
    """Per trace of deterministic ``windows``: name, source, SNR, instrument kind, review
    verdict and the window scored (its first sample and length)."""
    rows = windows.dataset.metadata
    lengths = windows.dataset.lengths()
    starts = [0 if n < windows.window else
              window_start(int(n), windows.window, p, None, name=str(name))
              for n, p, name in zip(lengths, rows["p_arrival_sample"], rows["trace_name"],
                                    strict=True)]
    snr = snr_db(rows)
    return [{"trace_name": str(name), "source": str(src),
             "snr_db": None if not np.isfinite(v) else round(float(v), 2),
             "instrument": str(kind), "review": str(rev), "window_start": int(start),
             "window_samples": windows.window}
            for name, src, v, kind, rev, start in zip(
                rows["trace_name"], rows["source"], snr, instrument_kinds(rows),
                rows["review"], starts, strict=True)]


def strongest_window(net: nn.Module, windows: torch.Tensor) -> int:
    """Index of the window least like class 0 (the background class, e.g. noise): a detector
    scanning a long record reports where the signal is."""
    with torch.no_grad(), eval_mode(net):
        probs = torch.softmax(net(windows).float(), dim=1)
    return int(torch.argmax(1 - probs[:, 0]))


class WaveformClassification(ClassificationTask):
    """Earthquake vs noise on 3-component windows (STEAD / SeisBench layout)."""

    name = "waveform-classification"
    aliases = ("waveform",)
    section = "waveform"
    description = "earthquake vs noise, 3-component waveforms (seed 000)"
    options_type = WaveformOptions
    positive = POSITIVE
    dims = 1
    multi_source = True

    def accepts(self, data: Path) -> bool:
        data = Path(data)
        if data.is_file():
            return data.suffix.lower() in WAVEFORM_SUFFIXES
        return data.is_dir() and any(p.suffix.lower() in (".hdf5", ".h5")
                                     for p in data.iterdir())

    def default_model(self) -> str:
        return "resnetkan1d"

    def evaluation_title(self, model, data, metrics):
        return f"{model} on {data} (n={metrics['n']}, positive class: earthquake)"

    def headline(self, test: dict) -> str:
        return (f"test split (n={test['n']}): accuracy {test['accuracy']:.4f}, precision "
                f"{test['precision']:.4f}, recall {test['recall']:.4f}, F1 {test['f1']:.4f}")

    def resolve(self, spec, init_meta):
        opts = spec.options or WaveformOptions()
        if init_meta is not None:  # fine-tuning keeps the contract of the weights
            contract = contract_from_meta(init_meta, str(spec.init_from))
            opts = replace(opts, window=opts.window or contract.window_samples,
                           bandpass=opts.bandpass or contract.bandpass_hz,
                           gap_seconds=opts.gap_seconds or contract.gap_seconds)
        return opts

    def options_like(self, meta: dict, same_split: bool = True,
                     **overrides) -> WaveformOptions:
        contract, d = contract_from_meta(meta), meta.get("data") or {}
        seed = (d.get("split") or {}).get("seed") if same_split else None
        return WaveformOptions(**{"window": contract.window_samples,
                                  "split_by": tuple(d.get("split_by") or ("group",)),
                                  "bandpass": contract.bandpass_hz, "split_seed": seed,
                                  "gap_seconds": contract.gap_seconds,
                                  **overrides})

    def open(self, data, options):
        return WaveformDataset.from_path(data)

    def model_inputs(self, dataset):
        return {"in_chans": 3, "num_classes": 2}

    def item_shape(self, dataset, options):
        return (self.model_inputs(dataset)["in_chans"], options.window)

    def finish_options(self, dataset, options):
        window = options.window or auto_window(dataset.lengths())
        check_windows(dataset, window, options.pad)
        options = replace(options, window=window)
        self.contract(options)  # a bad band-pass fails before anything is written
        return options

    def split(self, dataset, options, seed):
        if options.split is not None:
            return split_from_names(dataset.metadata["trace_name"], options.split,
                                    ignore=dataset.excluded["trace_name"])
        return grouped_parts(dataset.metadata, seed, by=options.split_by)

    def too_few(self, data, dataset, options):
        return (f"{data}: too few record groups ({len(dataset)} traces) to make non-empty "
                "train/validation/test parts")

    def split_record(self, dataset, parts, options, seed):
        return {"seed": seed, "by": list(options.split_by),
                **{k: _names(dataset, v) for k, v in parts.items()}}

    def contract(self, options: WaveformOptions) -> WaveformContract:
        return WaveformContract(window_samples=options.window, bandpass_hz=options.bandpass,
                                p_position=P_OFFSET, class_names=tuple(CLASS_NAMES),
                                gap_seconds=options.gap_seconds)

    def meta(self, dataset, parts, options, seed, cfg, data):
        return {
            "task": self.name,
            "contract": self.contract(options).to_json(),
            "preprocessing": {**preprocessing(options.window, options.bandpass,
                                              options.mix_noise),
                              "policy": list(options.augment)},
            "data": {"path": _recorded_path(data), "n_traces": len(dataset),
                     "sources": _source_counts(dataset),
                     "excluded": _excluded_counts(dataset),
                     "split_sizes": {k: len(v) for k, v in parts.items()},
                     "split_by": options.split_by,
                     "split": {"seed": None if options.split is not None else seed,
                               "by": list(options.split_by),
                               "given": options.split is not None,
                               "reviewed": True,  # made after the label review's drops
                               "digests": {k: names_digest(_names(dataset, v))
                                           for k, v in parts.items()}}},
        }

    def datasets(self, dataset, parts, options, seed, cfg: TrainConfig):
        contract, pad = self.contract(options), options.pad
        train = WaveformWindows(dataset.subset(parts["train"]), options.window, train=True,
                                seed=seed, pad=pad, band=options.bandpass,
                                mix_noise=options.mix_noise, policy=options.augment,
                                gap_seconds=options.gap_seconds)
        return (train, eval_windows(dataset.subset(parts["val"]), contract, pad=pad),
                eval_windows(dataset.subset(parts["test"]), contract, pad=pad))

    def summary(self, options, seed, split_seed):
        return {"window": options.window}

    def class_names(self, dataset):
        return CLASS_NAMES

    def score(self, model, data, precision="fp32", batch_size=64):
        probs, labels = self.predictions(model, data, precision, batch_size)
        metrics = classification_metrics(labels, probs, CLASS_NAMES, POSITIVE)
        metrics["probabilities"] = probs[:, POSITIVE].round(6).tolist()
        metrics["labels"] = labels.tolist()
        return metrics

    def eval_items(self, meta, data, part="all", window=None, pad=False):
        dataset = WaveformDataset.from_path(data)
        if part != "all":
            dataset = dataset.subset(part_positions(dataset, meta, part, data))
        return eval_windows(dataset, contract_from_meta(meta), window, pad)

    def test_items(self, meta, data, split):
        dataset = WaveformDataset.from_path(data)
        test = split_from_names(dataset.metadata["trace_name"], split,
                                ignore=dataset.excluded["trace_name"])["test"]
        return eval_windows(dataset.subset(test), contract_from_meta(meta))

    def input_shape(self, meta):
        contract = contract_from_meta(meta)
        return (contract.channels, contract.window_samples)

    def evaluate(self, model, data, part: str = "all", window: int | None = None,
                 precision: str = "auto", batch_size: int = 64, pad: bool = False) -> dict:
        """Score a shipped model, run directory or checkpoint on every trace of a folder, or
        on one part of the split it was trained with (``part``)."""
        net, meta = load_any(model)
        if part == "all":  # one read: the traces scored and those that are neither class
            whole = WaveformDataset.from_path(data, keep_other=True)
            neither = whole.labels == OTHER
            windows = eval_windows(whole.subset(np.flatnonzero(~neither)),
                                   contract_from_meta(meta), window, pad)
            other = whole.subset(np.flatnonzero(neither))
        else:
            windows, other = self.eval_items(meta, data, part, window=window, pad=pad), None
        metrics = self.score_traces(net, meta, windows, other, precision, batch_size)
        metrics.update(model=str(model), data=_recorded_path(data), part=part)
        return metrics

    def score_traces(self, net: nn.Module, meta: dict, windows: WaveformWindows,
                     other: WaveformDataset | None = None, precision: str = "auto",
                     batch_size: int = 64) -> dict:
        """Metrics of ``net`` on deterministic ``windows``, with the per-trace facts
        (``traces``), ROC-AUC, the ``breakdown`` per source, SNR bin and instrument, and
        (``other``: traces that are neither class) what it calls those."""
        metrics = self.score(net, windows, choose_precision(precision), batch_size)
        rows = windows.dataset.metadata
        metrics["trace_names"] = rows["trace_name"].astype(str).tolist()
        metrics["traces"] = _trace_facts(windows)
        metrics["breakdown"] = breakdown(metrics["labels"], metrics["probabilities"], rows)
        metrics["roc_auc"] = roc_auc(metrics["labels"], metrics["probabilities"])
        metrics["other"] = {} if other is None else self._score_other(
            net, meta, other, windows.window, windows.pad, precision, batch_size)
        metrics["window"] = windows.window
        if not math.isfinite(metrics["log_loss"]):
            metrics["log_loss"] = None
        return metrics

    def _score_other(self, net, meta, other, window, pad, precision, batch_size) -> dict:
        """What the model says about the traces that are neither class (explosions; windows
        a label review took out), per category or verdict: n and the share called
        earthquake."""
        if not len(other):
            return {}
        other.metadata["label"] = 0  # (a placeholder the scoring loop needs; not a class)
        windows = eval_windows(other, contract_from_meta(meta), window, pad)
        probs, _ = self.predictions(net, windows, choose_precision(precision), batch_size)
        rows = other.metadata
        reason = rows["review"].where(rows["review"] != "", rows["category"]).to_numpy()
        called = probs[:, POSITIVE] >= 0.5
        return {str(r): {"n": int((reason == r).sum()),
                         "called_earthquake": float(called[reason == r].mean()),
                         "traces": [{"trace_name": n, "source": src,
                                     "p_earthquake": round(float(p), 6)}
                                    for n, src, p in zip(rows["trace_name"][reason == r],
                                                         rows["source"][reason == r],
                                                         probs[reason == r, POSITIVE],
                                                         strict=True)]}
                for r in sorted(set(reason))}

    def model_inputs_of_files(self, net, meta, files):
        """One window per file: the one least like noise when a record holds several
        (half-overlapping scan), with its start sample."""
        contract = contract_from_meta(meta)
        chosen, starts = [], []
        for f in files:
            record = np.asarray(read_record(Path(f)), dtype=np.float64)
            windows, at = contract.windows(record, where=str(f))
            k = strongest_window(net, windows)
            chosen.append(windows[k])
            starts.append(int(at[k]))
        return torch.stack(chosen), starts

    def plot_cam(self, x, cam, out, title):
        plot_waveform_cam(x, cam, out, title=title)

    def write_predictions(self, path, metrics):
        """Per-trace CSV: trace_name, source, true and predicted class, earthquake
        probability, SNR (dB, events), instrument kind, review verdict and the window used
        (first sample and length), so that errors can be studied."""
        columns = ["trace_name", "source", "label", "predicted", "p_earthquake", "snr_db",
                   "instrument", "review", "window_start", "window_samples"]
        facts = metrics.get("traces") or [{"trace_name": n} for n in metrics["trace_names"]]
        table = pd.DataFrame(facts).reindex(columns=columns)
        table["label"] = [CLASS_NAMES[int(y)] for y in metrics["labels"]]
        table["p_earthquake"] = np.round(metrics["probabilities"], 6)
        table["predicted"] = [CLASS_NAMES[int(p >= 0.5)] for p in metrics["probabilities"]]
        atomic_write_text(Path(path), table.to_csv(index=False, float_format="%.6g"))


WAVEFORMS = WaveformClassification()

