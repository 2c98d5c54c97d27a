"""Waveform augmentations (resattn.data.augment) alone, composed and inside WaveformWindows."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_stead
from resattn.data import WaveformDataset, WaveformWindows
from resattn.data.augment import (
    AUGMENTATIONS,
    DEFAULT_PROBABILITIES,
    ORDER,
    BandpassRandom,
    Compose,
    DeadChannel,
    Gain,
    Gap,
    Noise,
    Resample,
    RotateHorizontals,
    TimeShift,
    parse_augmentations,
)
from resattn.data.transforms import LEGACY_POLICIES, WAVEFORM_POLICIES
from resattn.errors import ConfigError

NEW = tuple(n for n in WAVEFORM_POLICIES if n not in LEGACY_POLICIES)
N = 400


def _trace(seed: int = 0, n: int = N, dtype: type = np.float32) -> np.ndarray:
    """Raw-count-like (3, n): DC offsets, a 5 Hz arrival at 100 Hz, noise; no zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100.0
    x = 50.0 * rng.standard_normal((3, n)) + np.array([[800.0], [-300.0], [1200.0]])
    x += 400.0 * np.sin(2 * np.pi * 5.0 * t) * (t > t[n // 3])
    return x.astype(dtype)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_shape_dtype_finite_and_input_untouched(name: str, dtype: type) -> None:
    x = _trace(dtype=dtype)
    before = x.copy()
    for seed in range(5):
        y = AUGMENTATIONS[name]()(x, _rng(seed))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert np.isfinite(y).all()
    np.testing.assert_array_equal(x, before)  # never in place (x may be a view of a trace)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_reproducible_from_the_seed(name: str) -> None:
    x = _trace()
    aug = Compose([name])  # default probability: the decision is random too
    outs = [aug(x, _rng(seed)) for seed in range(8)]
    np.testing.assert_array_equal(outs[3], aug(x, _rng(3)))
    assert len({o.tobytes() for o in outs}) > 1  # different seeds, different items


def test_gain_is_per_channel_and_overall() -> None:
    x = _trace()
    factors = []
    for seed in range(20):
        ratio = Gain()(x, _rng(seed)).astype(np.float64) / x
        np.testing.assert_allclose(ratio, ratio[:, :1].repeat(N, 1), rtol=1e-6)  # per channel
        factors.append(ratio[:, 0])
    factors = np.array(factors)
    assert ((factors > 0.5 * 1e-2 * 0.999) & (factors < 2.0 * 1e2 * 1.001)).all()
    assert factors.max() / factors.min() > 100  # the overall factor spans decades
    per_item = factors / factors[:, :1]  # per-channel part: within (0.5/2, 2/0.5)
    assert (per_item != 1.0).any() and (per_item > 0.25 * 0.999).all()


def test_polarity_flips_all_channels_half_the_time() -> None:
    x = _trace()
    aug = Compose(["polarity"])
    flipped = [np.array_equal(aug(x, _rng(s)), -x) for s in range(200)]
    kept = [np.array_equal(aug(x, _rng(s)), x) for s in range(200)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 70 < sum(flipped) < 130


def test_rotate_horizontals_keeps_energy_and_z() -> None:
    x = _trace()
    energy = (x[:2].astype(np.float64) ** 2).sum()
    for seed in range(10):
        y = RotateHorizontals()(x, _rng(seed))
        np.testing.assert_array_equal(y[2], x[2])
        assert (y[:2].astype(np.float64) ** 2).sum() == pytest.approx(energy, rel=1e-5)
        assert not np.allclose(y[:2], x[:2])
    swapped = RotateHorizontals(swap=1.0)(x, _rng(0))
    rotated = RotateHorizontals(swap=0.0)(x, _rng(0))
    np.testing.assert_array_equal(swapped[:2], rotated[1::-1])


def test_time_shift_is_a_small_roll() -> None:
    x = _trace()
    shifts = []
    for seed in range(20):
        y = TimeShift()(x, _rng(seed))
        match = [k for k in range(-N // 10, N // 10 + 1) if np.array_equal(y, np.roll(x, k, -1))]
        assert len(match) == 1
        shifts.append(match[0])
    assert len(set(shifts)) > 5


def _zero_run(y: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index of the samples that are zero on every channel."""
    zero = np.flatnonzero((y == 0).all(axis=0))
    assert len(zero) and np.array_equal(zero, np.arange(zero[0], zero[-1] + 1))  # one run
    return int(zero[0]), int(zero[-1]) + 1


@pytest.mark.parametrize("where", ["start", "end", "middle"])
def test_gap_is_a_run_of_exact_zeros(where: str) -> None:
    x = _trace()
    for seed in range(10):
        y = Gap(where=(where,), step=0.0)(x, _rng(seed))
        start, stop = _zero_run(y)
        assert 1 <= stop - start <= 0.4 * N
        assert (start == 0) == (where == "start") and (stop == N) == (where == "end")
        outside = np.ones(N, bool)
        outside[start:stop] = False
        np.testing.assert_array_equal(y[:, outside], x[:, outside])


def test_gap_then_step() -> None:
    x = _trace()
    y = Gap(where=("start",), step=1.0)(x, _rng(4))
    _, stop = _zero_run(y)
    offset = (y - x.astype(np.float64))[:, stop:]
    np.testing.assert_allclose(offset, offset[:, :1].repeat(N - stop, 1), atol=1e-3)
    assert (np.abs(offset[:, 0]) > 1e-3).all()  # a DC step after the gap, per channel
    y = Gap(where=("end",), step=1.0)(x, _rng(4))
    start, _ = _zero_run(y)
    assert not np.allclose(y[:, :start], x[:, :start])  # before an end gap


def test_dead_channel_zeroes_or_sticks_components() -> None:
    x = _trace()
    counts = set()
    for seed in range(20):
        y = DeadChannel(constant=0.0)(x, _rng(seed))
        dead = (y == 0).all(axis=1)
        assert 1 <= dead.sum() <= 2
        np.testing.assert_array_equal(y[~dead], x[~dead])
        counts.add(int(dead.sum()))
        stuck = DeadChannel(constant=1.0)(x, _rng(seed))
        flat = np.ptp(stuck, axis=1) == 0
        assert 1 <= flat.sum() <= 2
        np.testing.assert_allclose(stuck[flat, 0], x[flat].mean(axis=1), rtol=1e-5)
    assert counts == {1, 2}


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_resample_stretches_and_keeps_length(factor: float) -> None:
    n = 1000
    x = (1000.0 + 100 * np.sin(2 * np.pi * 5.0 * np.arange(n) / 100.0))[None].repeat(3, 0)
    y = Resample(factor=(factor, factor))(x.astype(np.float32), _rng(0))
    assert y.shape == (3, n)
    spectrum = np.abs(np.fft.rfft(y[0] - y[0].mean()))
    peak = np.fft.rfftfreq(n, 0.01)[spectrum.argmax()]
    assert peak == pytest.approx(5.0 / factor, abs=0.15)
    assert y.min() > 850  # reflection, not zero padding, and no edge droop to zero


def test_bandpass_random_uses_the_band() -> None:
    t = np.arange(2000) / 100.0
    low, high = np.sin(2 * np.pi * 0.05 * t), np.sin(2 * np.pi * 45.0 * t)
    inband = np.sin(2 * np.pi * 5.0 * t)
    x = np.stack([1e3 * low + inband, high + inband, inband]).astype(np.float32)
    y = BandpassRandom()(x, _rng(1))
    for row in y[:, 200:-200]:  # away from the filter's edge transients
        assert np.corrcoef(row, inband[200:-200])[0, 1] > 0.99  # only the 5 Hz part is left
    with pytest.raises(ConfigError, match="band-pass"):
        BandpassRandom(low=(30.0, 40.0), high=(35.0, 45.0), sampling_rate=50.0)(x, _rng(1))


def test_noise_is_relative_to_the_channel() -> None:
    x = _trace()
    d = Noise(sigma=(0.1, 0.1))(x, _rng(2)).astype(np.float64) - x
    np.testing.assert_allclose(d.std(axis=1), 0.1 * x.astype(np.float64).std(axis=1), rtol=0.15)
    scaled = Noise()(1000 * x, _rng(2)) / 1000  # commutes with gain
    np.testing.assert_allclose(scaled, Noise()(x, _rng(2)), rtol=1e-4)


def test_compose_order_keeps_gaps_exact() -> None:
    x = _trace()
    probs = dict.fromkeys(ORDER, 1.0)
    for seed in range(5):
        y = Compose(ORDER, probs)(x, _rng(seed))  # noise and filters run before the gap
        start, stop = _zero_run(y)
        assert stop - start >= 1 and y.shape == x.shape and np.isfinite(y).all()
    assert [s[0] for s in Compose(["gap", "noise", "resample"]).steps] == [
        "resample", "noise", "gap"]
    off = Compose(ORDER, dict.fromkeys(ORDER, 0.0))
    np.testing.assert_array_equal(off(x, _rng(0)), x)
    assert DEFAULT_PROBABILITIES["gap"] == 0.5 and DEFAULT_PROBABILITIES["dead_channel"] == 0.2


def test_unknown_names_are_config_errors() -> None:
    assert parse_augmentations("gap, gain,gap") == ("gap", "gain")
    with pytest.raises(ConfigError, match=r"\['reverb'\].*known: \[.*'gap'"):
        parse_augmentations(["gap", "reverb"])
    with pytest.raises(ConfigError, match="reverb"):
        Compose(["gap"], {"reverb": 0.5})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Compose(["gap"], {"gap": 1.5})
    with pytest.raises(ConfigError, match="gap positions"):
        Gap(where=("left",))


# ---- inside WaveformWindows -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> WaveformDataset:
    """4 earthquakes and 4 noise traces of 1000 samples, plus one short noise trace (600)."""
    traces = {f"t{i}": (_trace(i, 1000).T if i != 8 else _trace(i, 600).T) for i in range(9)}
    cats = {k: "earthquake_local" if int(k[1:]) < 4 else "noise" for k in traces}
    return WaveformDataset.from_path(write_stead(tmp_path_factory.mktemp("stead"), traces, cats))


def _items(windows: WaveformWindows, epochs: int = 3) -> list[tuple[np.ndarray, int]]:
    out = []
    for epoch in range(epochs):
        windows.set_epoch(epoch)
        out += [(x.numpy(), y) for x, y in (windows[i] for i in range(len(windows)))]
    return out


@pytest.mark.parametrize("pad", [False, True])
def test_windows_with_every_new_augmentation(tiny: WaveformDataset, pad: bool) -> None:
    assert set(NEW) == set(ORDER) - {"gain"}
    ds = tiny if pad else tiny.subset(np.arange(8))
    w = WaveformWindows(ds, 400 if not pad else 700, train=True, seed=1, pad=pad,
                        augment=False, policy=NEW)
    items = _items(w)
    lengths = np.minimum(ds.lengths(), w.window).tolist() * 3
    assert (600 in lengths) == pad
    for (x, _), n in zip(items, lengths, strict=True):
        assert x.shape == (3, w.window) and x.dtype == np.float32 and np.isfinite(x).all()
        assert (x[:, n:] == 0).all()  # padding after the real samples only
        real = x[:, :n]
        live = real.std(axis=1) > 0.5
        assert live.any()
        np.testing.assert_allclose(real[live].std(axis=1), 1.0, rtol=1e-3)
        np.testing.assert_allclose(real[live].mean(axis=1), 0.0, atol=1e-4)
        assert (real[~live] == 0).all()  # a dead channel standardises to zeros, not NaN
    assert [y for _, y in items] == list(ds.labels) * 3
    again = _items(WaveformWindows(ds, w.window, train=True, seed=1, pad=pad, augment=False,
                                   policy=NEW))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(items, again, strict=True))
    other = _items(WaveformWindows(ds, w.window, train=True, seed=2, pad=pad, augment=False,
                                   policy=NEW))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(items, other, strict=True))


@pytest.mark.parametrize("name", NEW)
def test_each_new_policy_in_windows(tiny: WaveformDataset, name: str) -> None:
    ds = tiny.subset(np.arange(8))
    plain = _items(WaveformWindows(ds, 400, train=True, seed=0, augment=False))
    items = _items(WaveformWindows(ds, 400, train=True, seed=0, augment=False, policy=(name,)))
    assert [y for _, y in items] == [y for _, y in plain] == list(ds.labels) * 3
    assert all(x.shape == (3, 400) and np.isfinite(x).all() for x, _ in items)
    changed = [not np.array_equal(a, b) for (a, _), (b, _) in zip(items, plain, strict=True)]
    assert sum(changed) > 0
    if name == "dead_channel":
        assert any((x == 0).all(axis=1).any() for x, _ in items)
    if name == "gap":  # the zeros standardise to a constant run at an edge or inside
        assert any((np.diff(x, axis=1) == 0).all(axis=0).sum() >= 5 for x, _ in items)
    evaluation = _items(WaveformWindows(ds, 400, train=False, policy=(name,)), epochs=1)
    reference = _items(WaveformWindows(ds, 400, train=False), epochs=1)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(evaluation, reference, strict=True))


def test_new_policies_leave_the_legacy_random_stream_alone(tiny: WaveformDataset) -> None:
    ds = tiny.subset(np.arange(8))
    legacy = _items(WaveformWindows(ds, 400, train=True, seed=0, policy=("superpose",)), 8)
    mixed = _items(WaveformWindows(ds, 400, train=True, seed=0,
                                   policy=("superpose", "dead_channel", "gap")), 8)
    labels = [y for _, y in legacy]
    assert labels == [y for _, y in mixed]
    assert sum(labels) > 4 * 8  # some noise windows became earthquakes (superpose)
    with pytest.raises(ConfigError, match="unknown waveform augmentation"):
        WaveformWindows(ds, 400, train=True, policy=("reverb",))


def test_gap_leaves_the_kept_onset_as_data() -> None:
    from resattn.data.augment import Compose

    rng = np.random.default_rng(0)
    gap = Compose(["gap"], {"gap": 1.0}, {"gap": {"max_fraction": 0.6}})
    for k in range(200):
        x = rng.normal(size=(3, 1000)).astype(np.float32) + 3.0
        keep = (int(rng.integers(0, 600)), 0)
        keep = (keep[0], keep[0] + int(rng.integers(50, 400)))
        y = gap(x, np.random.default_rng(k), keep)
        assert (y[:, keep[0]:keep[1]] != 0).all(), (k, keep)
        assert y.shape == x.shape and y.dtype == x.dtype
    made = sum((gap(x, np.random.default_rng(k)) == 0).any() for k in range(50))
    assert made == 50  # without keep: a gap every time at p 1
