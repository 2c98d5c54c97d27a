"""Fuzzing every command's options (issue 14): each bad value of one option, the others valid,
is refused with exit 2 and a message naming the option, before any work is done; random mixes
of good and bad values end in success or such a refusal, never in a bug, a hang or a traceback.

The commands run in this process (``fuzzing.invoke``: ``resattn.cli.main``, as a user meets
it), on the shipped samples and on small generated files.
"""

from __future__ import annotations

import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import assert_no_bug, assert_refused, fuzz, invoke
from resattn.demo import sample_path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "seed000_table2.yaml"
WAVES = sample_path("seismic")
IMAGES = sample_path("mednist") / "MedNIST_sample.tar.gz"

# -- bad values, by kind ------------------------------------------------------------------------
NOT_A_NUMBER = st.sampled_from(["x", "one", "1e", "1,2", "--", "0x", "1 2", "", " ", "½", "1..2",
                                "[1]", "{}", "None", "true"])
NOT_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"])
WORDS = st.text(string.ascii_letters + string.digits + "_-+.", min_size=1, max_size=12)


def ints_below(limit: int) -> st.SearchStrategy[str]:
    """Integers < ``limit`` (as text), and text that is not an integer."""
    fractions = st.floats(-1e12, 1e12).filter(lambda v: v != int(v))  # "2.0" is an integer
    return st.one_of(st.integers(max_value=limit - 1).map(str), NOT_A_NUMBER,
                     fractions.map(repr))


def floats_outside(lo: float | None, hi: float | None, closed: bool = True
                   ) -> st.SearchStrategy[str]:
    """Numbers outside [lo, hi] ((lo, hi) with ``closed=False``), non-finite numbers, text."""
    parts = [NOT_FINITE, NOT_A_NUMBER]
    if lo is not None:
        parts.append(st.floats(max_value=lo, exclude_max=closed, allow_nan=False,
                               allow_infinity=False).map(repr))
    if hi is not None:
        parts.append(st.floats(min_value=hi, exclude_min=closed, allow_nan=False,
                               allow_infinity=False).map(repr))
    return st.one_of(*parts)


def not_one_of(choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(WORDS, NOT_A_NUMBER).filter(lambda v: v not in choices)


@dataclass(frozen=True)
class Case:
    """One option of one command: its bad values and the word the refusal must name."""

    option: str
    bad: st.SearchStrategy[str]
    names: str = ""  # the word the message must hold (default: the option, or --option's key)


# -- the commands -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    """Small inputs the commands need: a waveform record, a catalogue, a search space."""
    root = Path(tempfile.mkdtemp(prefix="resattn-fuzz-"))
    rng = np.random.default_rng(0)
    np.save(root / "trace.npy", rng.standard_normal((3, 6000)).astype("float32"))
    days = np.sort(rng.uniform(0, 8 * 365, 3000))
    pd.DataFrame({"time": pd.Timestamp("2000-01-01") + pd.to_timedelta(days, "D"),
                  "latitude": rng.uniform(32, 36, days.size),
                  "longitude": rng.uniform(-120, -115, days.size),
                  "magnitude": np.round(rng.exponential(0.5, days.size) + 2.5, 1)}
                 ).to_csv(root / "catalog.csv", index=False)
    (root / "search.yaml").write_text("lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    (root / "a_file").write_text("not a folder\n")
    return {"root": root, "trace": root / "trace.npy", "catalog": root / "catalog.csv",
            "search": root / "search.yaml", "file": root / "a_file"}


COUNT = ints_below(1)  # a positive count: 0, negatives and text are bad
NON_NEGATIVE = ints_below(0)
PRECISIONS = ("auto", "fp32", "bf16")
FORMATS = ("table", "json")
BAD_DATES = st.sampled_from(["notadate", "2005-02-30", "2005-13-01", "20050", "", "-1",
                             "2005/02/31", "yesterday", "1e9", "NaT"])

RECIPE = [
    Case("epochs", COUNT), Case("batch-size", COUNT), Case("patience", COUNT),
    Case("plateau-patience", COUNT), Case("seed", NON_NEGATIVE), Case("num-workers", NON_NEGATIVE),
    Case("lr", floats_outside(0.0, None, closed=False)),
    Case("weight-decay", floats_outside(0.0, None)), Case("l1", floats_outside(0.0, None)),
    Case("l2", floats_outside(0.0, None)), Case("mix-alpha", floats_outside(0.0, None)),
    Case("grad-clip", floats_outside(0.0, None, closed=False)),
    Case("plateau-factor", floats_outside(0.0, 1.0, closed=False)),
    *(Case(name, not_one_of(choices)) for name, choices in (
        ("optimizer", ("adam", "adamw", "sgd")), ("schedule", ("none", "plateau", "cosine")),
        ("penalty-layers", ("dense", "all", "head")), ("mix", ("none", "mixup", "cutmix")),
        ("tensorboard", ("auto", "on", "off")), ("precision", PRECISIONS),
        ("sampling", ("instance", "class_balanced")), ("monitor", ("val_loss", "val_f1")))),
    Case("preset", not_one_of(("resnetkan1d", "arn-mednist", "fer-resnet18"))),
]
WAVEFORM_TASK = [
    Case("window", ints_below(1).filter(lambda v: v.lower() != "none")),  # none: the default
    Case("mix-noise", floats_outside(0.0, 1.0)),
    Case("split-by", st.sampled_from([",", " , ", ",,", ""])),
    Case("bandpass", st.one_of(
        st.sampled_from(["1", "1,2,3", "x,y", "20,1", "1,1", "-1,20", "0,20", "1,50", "1,80",
                         "nan,20", "1,inf", ""]),
        st.tuples(st.floats(-100, 200), st.floats(-100, 200)).filter(
            lambda b: not 0 < b[0] < b[1] < 50).map(lambda b: f"{b[0]!r},{b[1]!r}"))),
    Case("augment", WORDS.filter(lambda v: v not in ("none",))),
    Case("split", st.sampled_from(["/nonexistent/split.json", "[]"])),
    Case("split-seed", NOT_A_NUMBER.filter(lambda v: v.strip() and v.lower() != "none")),
    *(Case(flag, st.just("3"), "image") for flag in ("size", "channels", "max-per-class")),
]
MODEL_OPTIONS = st.sampled_from([
    "drop_rate=2", "drop_rate=-0.5", "drop_rate=nan", "groups=0", "num_classes=7",
    "num_classes=0", "dims=2", "in_chans=0", "in_chans=x", "in_chans=-3", "widht=3", "attn=nope",
    "head=nope", "=3", "noequals", "layers=[0,0,0,0]", "base_width=0"])


def train_args(files: dict, out: Path) -> list[str]:
    return ["train", "--model=cnn1d", f"--data={WAVES}", f"--out={out}", "--epochs=1", "--quiet"]


COMMANDS: dict[str, tuple] = {
    # name: (base arguments(files, out) -> list, cases)
    "train": (train_args, [*RECIPE, *WAVEFORM_TASK,
                           Case("option", MODEL_OPTIONS),
                           Case("model", not_one_of(("cnn1d",)), "model"),
                           Case("data", st.sampled_from(["/nonexistent", "/dev/null",
                                                         "/proc/self"]), "{value}")]),
    "cv": (lambda f, out: ["cv", "--model=cnn1d", f"--data={WAVES}", f"--out={out}",
                           "--epochs=1", "--quiet"],
           [*RECIPE, *WAVEFORM_TASK,
            Case("by", st.sampled_from(["nope", "", " ", "label_x"]), "--by"),
            Case("reference", not_one_of(("stead-detector",)), "--reference"),
            Case("data", st.sampled_from(["/nonexistent", "/dev/null", "/proc/self"]),
                 "{value}")]),
    "evaluate": (lambda f, out: ["evaluate", "--model=stead-detector", f"--data={WAVES}",
                                 "--format=json"],
                 [Case("batch-size", COUNT), Case("window", ints_below(1)),
                  Case("precision", not_one_of(PRECISIONS)),
                  Case("format", not_one_of(FORMATS)),
                  Case("part", not_one_of(("all", "train", "val", "test"))),
                  Case("model", not_one_of(("stead-detector",)), "model"),
                  Case("data", st.sampled_from(["/nonexistent", "/dev/null"]), "{value}")]),
    "predict": (lambda f, out: ["predict", str(f["trace"]), "--model=stead-detector",
                                "--mc-samples=2", "--format=json"],
                [Case("mc-samples", COUNT), Case("cam-method", not_one_of(("gradcam",
                                                                          "gradcam++"))),
                 Case("format", not_one_of(FORMATS)),
                 Case("model", not_one_of(("stead-detector",)), "model")]),
    "models show": (lambda f, out: ["models", "show", "cnn1d", "--format=json"],
                    [Case("dims", st.one_of(st.integers().filter(lambda d: d not in (1, 2))
                                            .map(str), NOT_A_NUMBER)),
                     Case("in-chans", ints_below(1)), Case("num-classes", ints_below(1)),
                     Case("input-size", ints_below(1)),
                     Case("option", MODEL_OPTIONS.filter(lambda o: "num_classes=7" not in o
                                                         and "dims=2" not in o))]),
    "forecast train": (lambda f, out: ["forecast", "train", f"--catalog={f['catalog']}",
                                       f"--out={out}", "--epochs=1", "--no-baselines"],
                       [Case("bounds", st.sampled_from(["", "x", "4,3", "3,3", "3,,4", "nan,4",
                                                        "3,inf", "4;5", "-20,3", "3,40"])),
                        Case("start", BAD_DATES), Case("end", BAD_DATES),
                        Case("train-end", BAD_DATES), Case("val-end", BAD_DATES),
                        Case("window", COUNT), Case("epochs", COUNT), Case("seed", NON_NEGATIVE),
                        Case("min-magnitude", floats_outside(-5.0, 10.0)),
                        Case("features", not_one_of(("fused", "implicit", "explicit"))),
                        Case("classifier", not_one_of(("dense", "flatten", "cnn"))),
                        Case("on-bad", not_one_of(("skip", "error"))),
                        Case("extra", st.sampled_from(["/nonexistent.csv", "/dev/null"]),
                             "{value}")]),
    "finetune": (lambda f, out: ["finetune", "--model=stead-detector", f"--data={WAVES}",
                                 f"--out={out}", "--epochs=1"],
                 [Case("epochs", COUNT), Case("freeze", ints_below(-1)),
                  Case("lr", floats_outside(0.0, None, closed=False)),
                  Case("lr-decay", floats_outside(0.0, None, closed=False)),
                  Case("part", not_one_of(("auto", "all", "train", "val", "test")))]),
    "compress prune": (lambda f, out: ["compress", "prune", "--model=stead-detector",
                                       f"--data={WAVES}", f"--out={out}"],
                       [Case("target", floats_outside(0.0, 1.0, closed=False)),
                        Case("steps", COUNT), Case("finetune-epochs", NON_NEGATIVE),
                        Case("part", not_one_of(("auto", "all", "train", "val", "test")))]),
    "compress distill": (lambda f, out: ["compress", "distill", "--teacher=stead-detector",
                                         "--student=cnn1d", f"--data={WAVES}", f"--out={out}"],
                         [Case("temperature", floats_outside(0.0, None, closed=False)),
                          Case("alpha", floats_outside(0.0, 1.0)), Case("epochs", COUNT),
                          Case("student", not_one_of(("cnn1d",)), "student"),
                          Case("option", MODEL_OPTIONS)]),
    "tune": (lambda f, out: ["tune", str(CONFIG), f"--search={f['search']}",
                             f"--out={out}", "--quick", "--cell=1D-CNN"],
             [Case("trials", COUNT), Case("seed", NON_NEGATIVE),
              Case("pruner", not_one_of(("median", "hyperband", "none"))),
              Case("metric", not_one_of(("val_f1", "val_accuracy", "val_loss"))),
              Case("timeout", floats_outside(0.0, None)),
              Case("heartbeat", COUNT), Case("grace", COUNT), Case("max-retry", NON_NEGATIVE),
              Case("max-failures", COUNT), Case("startup-trials", NON_NEGATIVE),
              Case("study", st.sampled_from(["../x", "a/b", "", ".", ".."]), "study"),
              Case("cell", WORDS, "cell")]),
    "demo": (lambda f, out: ["demo", f"--out={out}"], [Case("epochs", NON_NEGATIVE)]),
}
CASES = [(command, case) for command, (_, cases) in COMMANDS.items() for case in cases]


def required_word(case: Case, value: str) -> str:
    """What the refusal must name: the case's word, an ``--option``'s key, or the option."""
    if case.names:
        return case.names.format(value=value)
    if case.option == "option":
        key, sep, _ = value.partition("=")
        if key == "dims":  # the data's and the model's kinds are named
            return "is 2-D"
        return key if sep and key else "key=value"
    return case.option


@given(st.sampled_from(CASES).flatmap(lambda c: st.tuples(st.just(c), c[1].bad)))
@fuzz(4500)
def test_one_bad_option_is_refused_by_name_before_any_work(files, pair) -> None:
    (command, case), value = pair
    base, _ = COMMANDS[command]
    with tempfile.TemporaryDirectory(dir=files["root"]) as tmp:
        out = Path(tmp) / "out"
        args = [a for a in base(files, out) if not a.startswith(f"--{case.option}=")]
        message = assert_refused(invoke(*args, f"--{case.option}={value}"))
        word = required_word(case, value)
        assert word.lower().replace("_", "-") in message.lower().replace("_", "-"), \
            f"{[*args, f'--{case.option}={value}']}: {word!r} not named in: {message}"
        written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
        assert not written, f"{args} wrote {written} before refusing: {message}"


# -- random mixes: any values, the contract is "success or a clear refusal" ---------------------
SHOW_VALUES = st.one_of(st.integers(-3, 300).map(str), NOT_A_NUMBER, NOT_FINITE)
SHOW_OPTIONS = st.one_of(
    st.tuples(st.sampled_from(["drop_rate", "groups", "num_classes", "in_chans", "attn", "head",
                               "base_width", "width", "dims", "depth", "kernel_size"]),
              st.one_of(st.integers(-2, 80).map(str), st.floats(-1, 3).map(repr), NOT_A_NUMBER,
                        st.sampled_from(["se", "cbam", "none", "kan", "mlp", "true"])))
    .map(lambda kv: f"--option={kv[0]}={kv[1]}"),
    st.tuples(st.sampled_from(["dims", "in-chans", "num-classes", "input-size", "format"]),
              SHOW_VALUES).map(lambda kv: f"--{kv[0]}={kv[1]}"))


@given(st.sampled_from(["cnn1d", "resnet18_1d", "resnetkan1d", "densenet1d", "arn_cnn",
                        "alexnet1d", "decoupled_densenet1d", "nope"]),
       st.lists(SHOW_OPTIONS, max_size=4))
@fuzz(1000)
def test_models_show_with_any_options_succeeds_or_refuses(name: str, options: list[str]) -> None:
    code = assert_no_bug(invoke("models", "show", name, "--format=json", *options))
    if name == "nope":
        assert code == 2


# -- named regressions (issue 14's groups 1, 6 and 7 as found by the properties above) -----------
@pytest.mark.parametrize("args, words", [
    (["evaluate", "--model=stead-detector", f"--data={WAVES}", "--batch-size=0"],
     ["--batch-size"]),
    (["evaluate", "--model=stead-detector", f"--data={WAVES}", "--window=0"], ["--window"]),
    (["evaluate", "--model=stead-detector", f"--data={WAVES}", "--part=tset"], ["--part"]),
    (["models", "show", "cnn1d", "--in-chans=0"], ["--in-chans"]),
    (["models", "show", "cnn1d", "--option=in_chans=0"], ["in_chans", ">= 1"]),
    (["models", "show", "cnn1d", "--option=drop_rate=2"], ["drop_rate", "probability"]),
    (["models", "show", "resnet18_1d", "--option=groups=0"], ["groups"]),
    (["models", "show", "transformer1d", "--input-size=10"], ["cannot take an input of shape"]),
    (["train", "--model=cnn1d", f"--data={WAVES}", "--out={out}", "--preset="], ["preset"]),
    (["train", "--model=cnn1d", f"--data={WAVES}", "--out={out}", "--batch-size=0"],
     ["batch_size must be >= 1"]),
    (["train", "--model=cnn1d", f"--data={WAVES}", "--out={out}", "--split=[]"], ["--split"]),
    (["train", "--model=transformer1d", f"--data={WAVES}", "--out={out}", "--window=10"],
     ["transformer1d cannot take an input of shape [3, 10]"]),
    (["finetune", "--model=stead-detector", f"--data={WAVES}", "--out={out}", "--lr=0"],
     ["--lr"]),
    (["compress", "distill", "--teacher=stead-detector", "--student=cnn", f"--data={WAVES}",
      "--out={out}"], ["--student", "unknown model"]),
    (["compress", "prune", "--model=stead-detector", f"--data={WAVES}", "--out={out}",
      "--target=1"], ["--target"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--start=2005-02-30"],
     ["--start", "2005-02-30"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--end=notadate"], ["--end"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--start="], ["--start"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--bounds=3,40"],
     ["bounds", "magnitudes"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--train-end=2005-01-01",
      "--val-end=2004-01-01"], ["--train-end", "--val-end"]),
    (["forecast", "train", "--catalog={catalog}", "--out={out}", "--region", "10", "5", "0",
      "1"], ["region"]),
    (["forecast", "evaluate", "--model={out}", "--catalog={catalog}", "--from=2005-13-01",
      "--to=2006-01-01"], ["--from"]),
    (["tune", str(CONFIG), "--search={search}", "--out={out}", "--cell=1D-CNN", "--study="],
     ["--study"]),
    (["tune", str(CONFIG), "--search={search}", "--out={out}", "--cell=1D-CNN", "--trials=0"],
     ["--trials"]),
])
def test_named_bad_options(files, tmp_path: Path, args: list[str], words: list[str]) -> None:
    filled = [a.format(out=tmp_path / "out", catalog=files["catalog"], search=files["search"])
              for a in args]
    message = assert_refused(invoke(*filled), *words)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), message


@pytest.mark.parametrize("times, dates", [
    (["2090-01-01", "2090-03-01", "2090-06-01"], ("2000-01-01", "2095-01-01")),  # only in 2090
    (["2001-01-01"], ("1990-01-01", "2010-01-01")),  # one event
])
def test_weeks_the_catalogue_does_not_cover_are_missing_data(tmp_path: Path, times, dates):
    """Weeks before the first event and after the last are not quiet weeks: a forecast on
    them would score 'no earthquake' as perfect. They are refused as missing data."""
    pd.DataFrame({"time": times, "latitude": 34.0, "longitude": -117.0,
                  "magnitude": np.linspace(3, 5, len(times))}).to_csv(tmp_path / "c.csv",
                                                                      index=False)
    assert_refused(invoke("forecast", "train", f"--catalog={tmp_path / 'c.csv'}",
                          f"--out={tmp_path / 'out'}", f"--start={dates[0]}", f"--end={dates[1]}",
                          "--epochs=1", "--no-baselines"), "missing data")
    assert not (tmp_path / "out" / "model.safetensors").exists()
