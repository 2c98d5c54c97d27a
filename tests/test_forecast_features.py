"""Weekly labels and explicit features: hand-made catalogues, G-R estimators, no look-ahead."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resattn.data.catalog import Catalog, read_catalog
from resattn.errors import ConfigError, DataError
from resattn.forecast import (
    DEFAULT_BOUNDS,
    FILL_VALUES,
    aki_b_value,
    class_names,
    explicit_features,
    gutenberg_richter,
    join_extra,
    magnitude_class,
    week_starts,
    weekly_labels,
)

SHARED_CATALOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog"
DAY = pd.Timedelta(days=1)


def catalog(times, mags) -> Catalog:
    n = len(mags)
    return Catalog(pd.DataFrame({"time": pd.to_datetime(list(times)), "latitude": np.zeros(n),
                                 "longitude": np.zeros(n), "magnitude": np.asarray(mags, float),
                                 "depth": np.full(n, 10.0)}))


def gr_magnitudes(rng: np.random.Generator, n: int, b: float = 1.0, mc: float = 2.0,
                  step: float = 0.1) -> np.ndarray:
    """G-R magnitudes >= mc binned to ``step`` (continuous ones from mc - step / 2)."""
    m = mc - step / 2 + rng.exponential(1.0 / (b * np.log(10.0)), n)
    return np.round(np.floor(m / step + 0.5) * step, 6)


def synthetic(seed: int = 0, n: int = 6000, years: int = 4) -> Catalog:
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2010-01-01")
    offsets = np.sort(rng.uniform(0, 365.25 * years, n))
    return catalog(t0 + pd.to_timedelta(offsets, unit="D"), gr_magnitudes(rng, n))


# ----------------------------------------------------------------------------- classes, weeks


def test_class_names_and_classes():
    assert class_names() == ["<3.5", "3.5-4.0", "4.0-4.5", "4.5-5.0", ">=5.0"]
    assert class_names((4, 6.25)) == ["<4.0", "4.0-6.25", ">=6.25"]
    assert magnitude_class([3.49, 3.5, 3.99, 4.0, 4.5, 4.99, 5.0, 7.0]).tolist() == [
        0, 1, 1, 2, 3, 3, 4, 4]
    for bad in ((), (4.0, 3.5), (3.5, 3.5), (3.5, float("nan"))):
        with pytest.raises(ConfigError, match="increasing"):
            class_names(bad)


def test_week_starts_alignment():
    w = week_starts("2020-01-01 06:00", "2020-02-01")  # a Wednesday
    assert w[0] == pd.Timestamp("2020-01-06") and w[0].weekday() == 0
    assert list(w) == list(pd.date_range("2020-01-06", "2020-01-20", freq="7D"))
    assert w[-1] + 7 * DAY <= pd.Timestamp("2020-02-01")
    assert week_starts("2020-01-06", "2020-01-13").tolist() == [pd.Timestamp("2020-01-06")]
    assert len(week_starts("2020-01-06", "2020-01-12 23:59")) == 0
    assert week_starts("2020-01-01", "2020-02-01", weekday=2)[0] == pd.Timestamp("2020-01-01")
    assert week_starts("2020-01-01 00:00+01:00", "2020-02-01")[0] == pd.Timestamp("2020-01-06")
    assert w.dtype == np.dtype("datetime64[ns]")
    with pytest.raises(ConfigError, match="weekday"):
        week_starts("2020-01-01", "2020-02-01", weekday=7)


# A hand-made catalogue around two Monday week starts 2020-01-06 and 2020-01-13.
HAND_TIMES = ["2020-01-01 00:00", "2020-01-03 12:00", "2020-01-05 00:00", "2020-01-06 00:00",
              "2020-01-08 00:00"]
HAND_MAGS = [2.0, 3.6, 4.2, 5.1, 3.0]
HAND_STARTS = pd.DatetimeIndex(["2019-12-30", "2020-01-06", "2020-01-13"])


def test_weekly_labels_hand_made():
    cat = catalog(HAND_TIMES, HAND_MAGS)
    assert weekly_labels(cat, HAND_STARTS).tolist() == [2, 4, 0]
    assert weekly_labels(cat, HAND_STARTS).dtype == np.int64
    assert weekly_labels(cat, HAND_STARTS, bounds=(3.0, 5.5)).tolist() == [1, 1, 0]
    # an event at exactly the end of a week belongs to the next week
    edge = catalog(["2020-01-13 00:00"], [6.0])
    assert weekly_labels(edge, HAND_STARTS).tolist() == [0, 0, 4]
    # a plain DataFrame with time and magnitude works too
    df = pd.DataFrame({"time": pd.to_datetime(HAND_TIMES), "magnitude": HAND_MAGS})
    assert weekly_labels(df, HAND_STARTS).tolist() == [2, 4, 0]


# ----------------------------------------------------------------------------- G-R estimators


def test_aki_b_value_binned_synthetic():
    m = gr_magnitudes(np.random.default_rng(42), 20_000, b=1.0, mc=2.0, step=0.1)
    assert m.min() == pytest.approx(2.0)
    b = aki_b_value(m, 2.0, bin_width=0.1)
    assert abs(b - 1.0) < 0.05
    # without the half-bin correction the estimate is biased by > 10 %
    assert aki_b_value(m, 2.0, bin_width=0.0) > 1.1
    a, b2 = gutenberg_richter(m, 2.0, 0.1)
    assert b2 == b and a == pytest.approx(np.log10(m.size) + 2.0 * b)
    # only magnitudes >= mc count
    assert aki_b_value(np.concatenate([m, np.full(5000, 1.0)]), 2.0) == b
    assert np.isnan(aki_b_value(m[:9], 2.0))
    assert all(np.isnan(gutenberg_richter(m[:9], 2.0)))


def test_aki_b_value_other_b():
    m = gr_magnitudes(np.random.default_rng(7), 20_000, b=1.4, mc=3.0, step=0.1)
    assert abs(aki_b_value(m, 3.0, 0.1) - 1.4) < 0.05
    m = gr_magnitudes(np.random.default_rng(8), 20_000, b=0.8, mc=1.5, step=0.01)
    assert abs(aki_b_value(m, 1.5, 0.01) - 0.8) < 0.03


# ----------------------------------------------------------------------------- explicit features


EXPECTED_COLUMNS = (
    [f"count_w{w}_m{tag}" for w in (1, 4, 13, 52)
     for tag in ("lt3.5", "3.5-4.0", "4.0-4.5", "4.5-5.0", "ge5.0")]
    + ["max_mag_w4", "mean_mag_w4", "max_mag_w52", "mean_mag_w52", "mc", "gr_n", "gr_a", "gr_b",
       "gr_eta", "gr_delta_m", "mean_mag_last_n", "t_days_last_n", "log10_sqrt_energy_rate",
       "interevent_mean_days", "interevent_cv", "days_since_m3.5", "days_since_m4.0",
       "days_since_m4.5", "days_since_m5.0"])


def test_explicit_features_hand_made():
    cat = catalog(HAND_TIMES, HAND_MAGS)
    f = explicit_features(cat, HAND_STARTS)
    assert list(f.columns) == EXPECTED_COLUMNS
    assert list(f.index) == list(HAND_STARTS) and f.index.name == "week_start"
    assert (f.dtypes == np.float64).all() and not f.isna().any().any()
    w0, w1, w2 = (f.iloc[k] for k in range(3))
    # week 2019-12-30: nothing before it -> zero counts and fill values
    assert w0.filter(like="count_").sum() == 0
    assert w0["days_since_m3.5"] == 3650 and w0["gr_b"] == FILL_VALUES["gr_b"]
    assert w0["max_mag_w4"] == 0 and w0["interevent_mean_days"] == 3650
    # week 2020-01-06: the three events of the week before, not the M5.1 at its start
    assert [w1[f"count_w1_m{t}"] for t in ("lt3.5", "3.5-4.0", "4.0-4.5", "4.5-5.0", "ge5.0")] \
        == [1, 1, 1, 0, 0]
    assert w1["max_mag_w4"] == 4.2 and w1["mean_mag_w4"] == pytest.approx((2.0 + 3.6 + 4.2) / 3)
    assert w1["days_since_m3.5"] == 1.0 and w1["days_since_m4.0"] == 1.0
    assert w1["days_since_m5.0"] == 3650
    assert w1["mc"] == FILL_VALUES["mc"] and w1["gr_n"] == 0  # < 50 events: no Mc
    # week 2020-01-13
    assert w2["count_w1_mge5.0"] == 1 and w2["count_w1_mlt3.5"] == 1
    assert w2["count_w4_mlt3.5"] == 2 and w2["max_mag_w52"] == 5.1
    assert w2["days_since_m5.0"] == 7.0 and w2["days_since_m3.5"] == 7.0
    # inter-event times of the M >= 3.5 events: 1.5 and 1.0 days
    assert w2["interevent_mean_days"] == pytest.approx(1.25)
    assert w2["interevent_cv"] == pytest.approx(0.25 / 1.25)


def test_explicit_features_last_n_set():
    cat = catalog(HAND_TIMES, HAND_MAGS)
    f = explicit_features(cat, HAND_STARTS[2:], mc=3.0, n_events=2)
    row = f.iloc[0]
    assert row["mc"] == 3.0 and row["gr_n"] == 2  # the M5.1 and the M3.0
    assert row["t_days_last_n"] == pytest.approx(2.0)
    assert row["mean_mag_last_n"] == pytest.approx(4.05)
    energy = 10 ** (5.9 + 0.75 * 5.1) + 10 ** (5.9 + 0.75 * 3.0)
    assert row["log10_sqrt_energy_rate"] == pytest.approx(np.log10(energy / 2.0))
    assert row["gr_b"] == FILL_VALUES["gr_b"]  # 2 events: too few for a b-value


def test_explicit_features_gutenberg_richter_on_synthetic():
    cat = synthetic(seed=3, n=20_000, years=2)
    starts = week_starts("2011-06-01", "2012-01-01")
    f = explicit_features(cat, starts, n_events=5000)
    assert (f.mc == 2.2).all()  # maximum curvature 2.0 + 0.2, from the past events only
    assert (f.gr_n == 5000).all()
    assert (f.gr_b - 1.0).abs().max() < 0.1
    assert f.gr_a.to_numpy() == pytest.approx(np.log10(5000) + f.gr_b * 2.2)
    assert f.gr_eta.max() < 0.05
    assert (f.gr_delta_m.abs() < 1.5).all()
    fixed = explicit_features(cat, starts, n_events=5000, mc=2.0)
    assert (fixed.mc == 2.0).all() and (fixed.gr_b - 1.0).abs().max() < 0.1


def assert_rows_equal(a: pd.DataFrame, b: pd.DataFrame, upto: int) -> None:
    pd.testing.assert_frame_equal(a.iloc[: upto + 1], b.iloc[: upto + 1], check_exact=True)


@pytest.mark.parametrize("mc", [None, 2.0])
def test_no_look_ahead(mc):
    cat = synthetic(seed=5)
    starts = week_starts("2010-01-01", "2014-01-01")
    t = 120
    s = starts[t]
    base = explicit_features(cat, starts, mc=mc)
    ev = cat.events
    future = ev.time >= s
    assert future.sum() > 100 and (~future).sum() > 100

    swarm = s + pd.to_timedelta(np.linspace(0, 6.9, 3000), unit="D")  # would move Mc to 3.2
    added = pd.concat([ev, pd.DataFrame({
        "time": [s, s, s + pd.Timedelta(hours=1), s + 30 * DAY, *swarm],
        "latitude": 0.0, "longitude": 0.0, "magnitude": [7.5, 2.0, 6.0, 5.0] + [3.0] * 3000,
        "depth": 1.0})])
    removed = ev[~future]
    perturbed = ev.assign(magnitude=np.where(future, ev.magnitude + 1.0, ev.magnitude),
                          time=ev.time.where(~future, ev.time + 3 * DAY))
    for events in (added, removed, perturbed):
        other = explicit_features(Catalog(events), starts, mc=mc)
        assert_rows_equal(base, other, upto=t)
        assert not other.iloc[t + 1:].equals(base.iloc[t + 1:])  # the change is visible later

    # changing the last event before the start does change week t
    last = int(np.flatnonzero(~future)[-1])
    changed = ev.copy()
    changed.loc[last, "magnitude"] += 1.5
    other = explicit_features(Catalog(changed), starts, mc=mc)
    assert not np.allclose(other.iloc[t].to_numpy(), base.iloc[t].to_numpy())
    earlier = starts <= ev.time[last]  # weeks starting before (or at) that event: unchanged
    assert earlier.sum() == t
    pd.testing.assert_frame_equal(base[earlier], other[earlier], check_exact=True)


def test_explicit_features_empty_catalogue():
    empty = catalog([], [])
    f = explicit_features(empty, HAND_STARTS)
    assert list(f.columns) == EXPECTED_COLUMNS and not f.isna().any().any()
    assert (f.filter(like="count_") == 0).all().all()
    assert (f.filter(like="days_since") == 3650).all().all()
    assert (f.gr_b == FILL_VALUES["gr_b"]).all() and (f.interevent_cv == 1.0).all()
    assert weekly_labels(empty, HAND_STARTS).tolist() == [0, 0, 0]
    assert explicit_features(empty, HAND_STARTS[:0]).shape == (0, len(EXPECTED_COLUMNS))


def test_explicit_features_options():
    cat = catalog(HAND_TIMES, HAND_MAGS)
    f = explicit_features(cat, HAND_STARTS, bounds=(3.0, 5.0), windows_weeks=(2,))
    assert [c for c in f.columns if c.startswith("count_")] == [
        "count_w2_mlt3.0", "count_w2_m3.0-5.0", "count_w2_mge5.0"]
    assert "days_since_m3.0" in f.columns and "days_since_m3.5" not in f.columns
    with pytest.raises(ConfigError, match="windows_weeks"):
        explicit_features(cat, HAND_STARTS, windows_weeks=(0, 4))
    with pytest.raises(ConfigError, match="n_events"):
        explicit_features(cat, HAND_STARTS, n_events=1)
    with pytest.raises(ConfigError, match="bounds"):
        explicit_features(cat, HAND_STARTS, bounds=(5.0, 4.0))
    with pytest.raises(ConfigError, match="mc"):
        explicit_features(cat, HAND_STARTS, mc=float("nan"))


# ----------------------------------------------------------------------------- extra features


def extra_table() -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.to_datetime(["2020-01-01", "2020-01-05 23:00", "2020-01-06 00:00",
                                "2020-01-12", "2020-01-27 00:00"], format="ISO8601"),
        "power": [1.0, 3.0, 100.0, np.nan, 1000.0],
        "count": [1, 1, 2, 4, 8],
    })


def test_join_extra_uses_only_the_week_before():
    starts = week_starts("2019-12-30", "2020-02-03")
    feats = pd.DataFrame({"x": np.arange(len(starts), dtype=float)}, index=starts)
    out = join_extra(feats, extra_table())
    assert list(out.columns) == ["x", "extra_power", "extra_count"]
    # week of 12-30: nothing before -> 0; 01-06: rows of [12-30, 01-06) -> mean(1, 3);
    # 01-13: rows of [01-06, 01-13) (NaN ignored); later weeks: carried forward, never back
    assert out.extra_power.tolist() == [0.0, 2.0, 100.0, 100.0, 100.0]
    assert out.extra_count.tolist() == [0.0, 1.0, 3.0, 3.0, 3.0]
    assert 1000.0 not in out.extra_power.values  # the row at the last start stays unused
    assert out.x.tolist() == feats.x.tolist()


def test_join_extra_from_csv_and_errors(tmp_path):
    starts = week_starts("2019-12-30", "2020-02-03")
    feats = pd.DataFrame({"x": np.zeros(len(starts))}, index=starts)
    path = tmp_path / "aeta.csv"
    extra_table().to_csv(path, index=False)
    out = join_extra(feats, path)
    assert out.extra_power.tolist() == [0.0, 2.0, 100.0, 100.0, 100.0]

    bad = extra_table().assign(station=["a", "b", "c", "d", "e"])
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"aeta\.csv.*column 'station'.*not numeric"):
        join_extra(feats, path)
    with pytest.raises(DataError, match="no time column 'date'"):
        join_extra(feats, extra_table(), time_column="date")
    with pytest.raises(DataError, match="does not exist"):
        join_extra(feats, tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="ascending"):
        join_extra(feats.iloc[::-1], extra_table())
    with pytest.raises(DataError, match="line 3"):
        join_extra(feats, extra_table().astype({"time": str}).replace(
            {"time": {"2020-01-05 23:00:00": "not a time"}}))


# ----------------------------------------------------------------------------- real catalogue


@pytest.fixture(scope="module")
def scedc() -> Catalog:
    path = SHARED_CATALOG / "scedc_socal_1932_2021_M2.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not beside the repository")
    return read_catalog(path)


def test_scedc_features_fast_and_past_only(scedc):
    starts = week_starts("1932-01-01", "2022-01-01")
    t0 = time.perf_counter()
    f = explicit_features(scedc, starts)
    elapsed = time.perf_counter() - t0
    assert elapsed < 20.0, f"explicit_features took {elapsed:.1f} s"
    assert f.shape == (len(starts), len(EXPECTED_COLUMNS)) and not f.isna().any().any()
    labels = weekly_labels(scedc, starts, DEFAULT_BOUNDS)
    assert np.bincount(labels, minlength=5).min() > 50  # every class occurs
    # recomputing a week from the catalogue cut at its start gives the same row
    for k in (60, 2000, len(starts) - 1):
        cut = scedc.between("1900-01-01", starts[k])
        row = explicit_features(cut, starts[k:k + 1])
        pd.testing.assert_frame_equal(row, f.iloc[k:k + 1], check_exact=True, check_freq=False)
