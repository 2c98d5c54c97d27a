"""Earthquake catalogue readers: real shared files, each format, bad rows, merging, Mc."""

from __future__ import annotations

import csv
import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resattn.data.catalog import (
    CATALOG_COLUMNS,
    BadRow,
    Catalog,
    CatalogWarning,
    magnitude_of_completeness,
    read_catalog,
    read_catalogs,
)
from resattn.errors import ConfigError, DataError

SHARED_CATALOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog"
SCEDC = "scedc_socal_1932_2021_M2.csv.gz"
SOUTH_ASIA = "south_asia_homogenized_1900_2014.csv"
SW_CHINA = "south_asia_subset_SWChina_22-34N_98-107E.csv"
USGS = "usgs_significant_earthquakes_1965_2016.csv"


def shared(name: str) -> Path:
    path = SHARED_CATALOG / name
    if not path.exists():
        pytest.skip(f"{path} is not beside the repository")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def check_layout(cat: Catalog) -> None:
    ev = cat.events
    assert tuple(ev.columns) == CATALOG_COLUMNS
    assert ev.time.dtype == np.dtype("datetime64[ns]")
    assert all(ev[c].dtype == np.float64 for c in CATALOG_COLUMNS[1:])
    assert ev.time.is_monotonic_increasing
    assert list(ev.index) == list(range(len(ev)))


# ----------------------------------------------------------------------------- real files


def test_scedc_real_file():
    cat = read_catalog(shared(SCEDC))
    check_layout(cat)
    assert len(cat) == 129_228 and cat.bad_rows == []
    ev = cat.events
    assert ev.time.iloc[0] == pd.Timestamp("1932-01-02 16:42:43.68")
    assert ev.time.iloc[-1] < pd.Timestamp("2022-01-01")
    assert cat.magnitudes.min() >= 2.0 and cat.magnitudes.max() == pytest.approx(7.5)
    assert ev.latitude.between(32, 37).all() and ev.longitude.between(-122, -114).all()
    assert ev.depth.notna().all()
    # The file lacks the whole of 1992 and 2019 (Landers and Ridgecrest years).
    gaps = cat.gaps(min_days=180)
    assert [(a.year, b.year) for a, b in gaps] == [(1991, 1993), (2018, 2020)]


def test_south_asia_real_files():
    full = read_catalog(shared(SOUTH_ASIA))
    sub = read_catalog(shared(SW_CHINA))
    for cat in (full, sub):
        check_layout(cat)
        assert cat.bad_rows == []
    assert len(full) == 58_256 and len(sub) == 2_019
    assert len(full.region(22, 34, 98, 107)) == 2_019  # the subset is exactly that box
    # First row 1900,2,7,-1.0,-1,-1: unknown hour/minute/second become 0.
    assert full.events.time.iloc[0] == pd.Timestamp("1900-02-07 00:00:00")
    assert sub.events.time.iloc[1] == pd.Timestamp("1904-08-30 11:42:00")
    assert sub.magnitudes.min() >= 3.0


def test_usgs_real_file_keeps_earthquakes_only():
    path = shared(USGS)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    n_quakes = sum(r["Type"] == "Earthquake" for r in rows)
    cat = read_catalog(path)
    check_layout(cat)
    assert len(rows) == 23_412 and n_quakes == 23_232
    assert len(cat) == n_quakes and cat.bad_rows == []
    assert cat.events.time.iloc[0] == pd.Timestamp("1965-01-02 13:44:18")
    assert cat.magnitudes.min() >= 5.5


@pytest.mark.parametrize(("name", "fmt"), [(SW_CHINA, "south_asia"), (USGS, "usgs")])
def test_auto_detection_matches_explicit_format(name, fmt):
    path = shared(name)
    pd.testing.assert_frame_equal(read_catalog(path).events, read_catalog(path, fmt=fmt).events)
    with pytest.raises(DataError, match="has no column"):
        read_catalog(path, fmt="scedc")


# ----------------------------------------------------------------------------- small files


def test_scedc_layout_drops_non_earthquakes(tmp_path):
    path = write(tmp_path / "s.csv", (
        "time,event_type,geo_type,magnitude,mag_type,latitude,longitude,depth_km,quality,evid\n"
        "2001/05/02 10:00:01.50,eq,l,2.5,l,34.0,-117.0,5.0,A,1\n"
        "2001/05/01 10:00:00.00,qb,l,2.1,l,34.0,-117.0,0.0,A,2\n"
        "2001/05/01 09:00:00.00,eq,l,3.5,w,33.0,-116.0,,B,3\n"))
    cat = read_catalog(path)
    assert len(cat) == 2
    assert list(cat.events.time) == [pd.Timestamp("2001-05-01 09:00:00"),
                                     pd.Timestamp("2001-05-02 10:00:01.5")]
    assert cat.magnitudes.tolist() == [3.5, 2.5]
    assert np.isnan(cat.events.depth.iloc[0])


def test_south_asia_unknown_components(tmp_path):
    path = write(tmp_path / "sa.csv", (
        "Year,Month,Day,Hour,Minute,Second,Latitude,Longitude,depth_km,Mw,Mw_std\n"
        "1950,-1,-1,-1.0,-1,-1,30.0,100.0,10.0,6.1,0.1\n"
        "1960,3,4,5.0,6,7,31.0,101.0,,4.2,0.2\n"
        "1961,2,30,0.0,0,0,31.0,101.0,5.0,4.2,0.2\n"))
    with pytest.warns(CatalogWarning, match="line"):
        cat = read_catalog(path)
    assert list(cat.events.time) == [pd.Timestamp("1950-01-01"),
                                     pd.Timestamp("1960-03-04 05:06:07")]
    assert [r.line for _, r in cat.bad_rows] == [4]  # 30 February
    assert "Year,Month,Day" in cat.bad_rows[0][1].reason


def test_usgs_layout_iso_dates_and_types(tmp_path):
    header = ("Date,Time,Latitude,Longitude,Type,Depth,Depth Error,Magnitude,Magnitude Type,ID\n")
    path = write(tmp_path / "u.csv", header + (
        "01/02/1965,13:44:18,19.246,145.616,Earthquake,131.6,,6.0,MW,A\n"
        "1975-02-23T02:58:41.000Z,1975-02-23T02:58:41.000Z,8.017,124.075,Earthquake,623,,5.6,MB,B\n"
        "03/04/1970,01:02:03,37.0,-116.0,Nuclear Explosion,0,,5.8,MB,C\n"))
    cat = read_catalog(path)
    assert list(cat.events.time) == [pd.Timestamp("1965-01-02 13:44:18"),
                                     pd.Timestamp("1975-02-23 02:58:41")]
    assert cat.events.depth.tolist() == [131.6, 623.0]
    # an export without Type keeps every row
    bare = write(tmp_path / "u2.csv", "Date,Time,Latitude,Longitude,Magnitude\n"
                 "03/04/1970,01:02:03,37.0,-116.0,5.8\n")
    assert read_catalog(bare, fmt="usgs").events.time.tolist() == [
        pd.Timestamp("1970-03-04 01:02:03")]


def test_generic_csv_aliases_timezones_and_gzip(tmp_path):
    text = ("Time,LAT,lon,Mag\n"
            "2020-01-02T00:00:00+02:00,10,20,3.0\n"
            "2020-01-01 12:00,11,21,2.5\n")
    plain = write(tmp_path / "g.csv", text)
    packed = tmp_path / "g.dat"  # gzip without a telling suffix
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        cat = read_catalog(path)
        check_layout(cat)
        assert list(cat.events.time) == [pd.Timestamp("2020-01-01 12:00"),
                                         pd.Timestamp("2020-01-01 22:00")]
        assert cat.events.latitude.tolist() == [11.0, 10.0]
        assert cat.events.depth.isna().all()
    assert cat.sources == [str(packed)]


def test_empty_catalogue(tmp_path):
    cat = read_catalog(write(tmp_path / "e.csv", "time,latitude,longitude,magnitude,depth\n"))
    check_layout(cat)
    assert len(cat) == 0 and cat.times_days.shape == (0,)


# ----------------------------------------------------------------------------- bad rows


BAD = ("time,latitude,longitude,magnitude,depth\n"  # line 1
       "2020-01-01 00:00:00,34.0,-117.0,3.1,5\n"  # 2 good
       "\n"  # 3 blank: skipped silently
       "2020-01-02 00:00:00,34.0,-117.0,,5\n"  # 4 missing magnitude
       "yesterday-ish,34.0,-117.0,3.0,5\n"  # 5 unparseable time
       "2020-01-03 00:00:00,95.0,-117.0,3.0,\n"  # 6 latitude out of range
       "2020-01-04 00:00:00,34.0,-117.0,big,x\n"  # 7 non-numeric magnitude
       "2020-01-05 00:00:00,34.0,-117.0,2.0,oops\n")  # 8 good, depth unknown


def test_bad_rows_skipped_with_line_numbers(tmp_path):
    path = write(tmp_path / "bad.csv", BAD)
    with pytest.warns(CatalogWarning) as record:
        cat = read_catalog(path, on_bad="skip")
    assert len(record) == 1
    message = str(record[0].message)
    assert str(path) in message and "4 bad row" in message and "4, 5, 6, 7" in message
    assert [r.line for _, r in cat.bad_rows] == [4, 5, 6, 7]
    assert all(f == str(path) and isinstance(r, BadRow) for f, r in cat.bad_rows)
    reasons = [r.reason for _, r in cat.bad_rows]
    assert "magnitude" in reasons[0] and "missing" in reasons[0]
    assert "time" in reasons[1] and "yesterday-ish" in reasons[1]
    assert "latitude" in reasons[2] and "95.0" in reasons[2]
    assert "'big'" in reasons[3]
    assert len(cat) == 2 and np.isnan(cat.events.depth.iloc[1])


def test_bad_rows_raise_with_on_bad_error(tmp_path):
    path = write(tmp_path / "bad.csv", BAD)
    with pytest.raises(DataError, match=r"line 4: field magnitude") as info:
        read_catalog(path, on_bad="error")
    assert str(path) in str(info.value)
    # the first bad row of a file with only a bad time
    path2 = write(tmp_path / "bad2.csv", BAD.replace(",,5\n", ",3.0,5\n"))
    with pytest.raises(DataError, match=r"line 5: field time.*'yesterday-ish'"):
        read_catalog(path2, on_bad="error")
    clean = write(tmp_path / "ok.csv", BAD.splitlines()[0] + "\n" + BAD.splitlines()[1] + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_catalog(clean, on_bad="error")) == 1


def test_bad_options_and_missing_inputs(tmp_path):
    good = write(tmp_path / "ok.csv", "time,lat,lon,mag\n2020-01-01,1,2,3\n")
    with pytest.raises(ConfigError, match="on_bad"):
        read_catalog(good, on_bad="ignore")
    with pytest.raises(ConfigError, match="format"):
        read_catalog(good, fmt="isc")
    with pytest.raises(DataError, match=r"nope\.csv does not exist"):
        read_catalog(tmp_path / "nope.csv")
    no_mag = write(tmp_path / "nomag.csv", "time,latitude,longitude\n2020-01-01,1,2\n")
    with pytest.raises(DataError, match=r"nomag\.csv.*magnitude"):
        read_catalog(no_mag)
    with pytest.raises(DataError, match=r"nomag\.csv \(format csv\).*magnitude"):
        read_catalog(no_mag, fmt="csv")
    with pytest.raises(DataError, match=r"format south_asia.*'mw'"):
        read_catalog(good, fmt="south_asia")


# ----------------------------------------------------------------------------- QuakeML


def test_quakeml_through_obspy(tmp_path):
    ev_mod = pytest.importorskip("obspy.core.event")
    from obspy import UTCDateTime

    cat = ev_mod.Catalog()
    for k in range(3):
        decoy = ev_mod.Origin(time=UTCDateTime(2019, 1, 1), latitude=0.0, longitude=0.0)
        origin = ev_mod.Origin(time=UTCDateTime(2020, 1, 3 - k, 12, 0, 0.25),
                               latitude=34.0 + k, longitude=-117.0, depth=8000.0)
        mags = [ev_mod.Magnitude(mag=3.0 + k), ev_mod.Magnitude(mag=9.0)]
        event = ev_mod.Event(event_type="earthquake", origins=[decoy, origin], magnitudes=mags)
        event.preferred_origin_id = origin.resource_id  # magnitude: no preference -> first
        cat.append(event)
    blast = ev_mod.Origin(time=UTCDateTime(2020, 2, 1), latitude=1.0, longitude=1.0)
    cat.append(ev_mod.Event(event_type="quarry blast", origins=[blast],
                            magnitudes=[ev_mod.Magnitude(mag=2.0)]))
    no_mag = ev_mod.Origin(time=UTCDateTime(2020, 2, 2), latitude=1.0, longitude=1.0)
    cat.append(ev_mod.Event(event_type="earthquake", origins=[no_mag]))
    path = tmp_path / "events.xml"
    cat.write(str(path), format="QUAKEML")

    with pytest.warns(CatalogWarning, match="event"):
        out = read_catalog(path)
    check_layout(out)
    assert out.magnitudes.tolist() == [5.0, 4.0, 3.0]
    assert out.events.latitude.tolist() == [36.0, 35.0, 34.0]
    assert out.events.depth.tolist() == [8.0, 8.0, 8.0]
    assert out.events.time.iloc[0] == pd.Timestamp("2020-01-01 12:00:00.25")
    assert [r.line for _, r in out.bad_rows] == [5]
    # detected from the content too, whatever the suffix
    renamed = tmp_path / "events.txt"
    renamed.write_bytes(path.read_bytes())
    with pytest.warns(CatalogWarning):
        pd.testing.assert_frame_equal(read_catalog(renamed).events, out.events)
    with pytest.raises(DataError, match=r"event 5: field magnitude"):
        read_catalog(path, on_bad="error")


# ----------------------------------------------------------------------------- Catalog


def make_catalog() -> Catalog:
    return Catalog(pd.DataFrame({
        "time": pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-02", "2020-01-04"]),
        "latitude": [30.0, 31.0, 32.0, 33.0], "longitude": [100.0, 101.0, 102.0, 103.0],
        "magnitude": [3.0, 4.0, 5.0, 2.3], "depth": [1.0, np.nan, 3.0, 4.0]}))


def test_catalog_selections():
    cat = make_catalog()
    check_layout(cat)
    assert cat.magnitudes.tolist() == [4.0, 5.0, 3.0, 2.3]
    assert cat.times_days[0] == pd.Timestamp("2020-01-01").value / 86_400e9
    assert np.all(np.diff(cat.times_days) == 1.0)
    assert cat.region(31, 32, 101, 102).magnitudes.tolist() == [4.0, 5.0]  # inclusive
    assert cat.above(2.1 + 0.2).magnitudes.tolist() == [4.0, 5.0, 3.0, 2.3]  # float round-off
    assert cat.above(3.0).magnitudes.tolist() == [4.0, 5.0, 3.0]
    assert cat.between("2020-01-02", "2020-01-04").magnitudes.tolist() == [5.0, 3.0]
    with pytest.raises(ConfigError, match="lat0"):
        cat.region(32, 31, 100, 101)
    with pytest.raises(ConfigError, match="lon0"):
        cat.region(30, 31, 101, 101)
    assert cat.gaps(min_days=0.5)[0][0] == pd.Timestamp("2020-01-01")
    assert cat.gaps(min_days=2) == []
    holes = make_catalog().events.assign(magnitude=[1.0, np.nan, 2.0, 3.0])
    with pytest.raises(DataError, match=r"1 event.*without a magnitude"):
        Catalog(holes)


def test_read_catalogs_concatenates_and_deduplicates(tmp_path):
    a = write(tmp_path / "archive.csv", ("time,latitude,longitude,magnitude\n"
                                         "2020-01-01,1,1,3.0\n"
                                         "2020-01-03,1,1,3.5\n"))
    b = write(tmp_path / "recent.csv", ("time,latitude,longitude,magnitude,depth\n"
                                        "2020-01-03,1,1,3.5,7\n"  # duplicate of archive
                                        "2020-01-02,1,1,4.0,2\n"
                                        "2020-01-03,1,1,3.6,2\n"  # same time, other magnitude
                                        "bad,1,1,4.0,2\n"))
    with pytest.warns(CatalogWarning):
        cat = read_catalogs([a, b])
    check_layout(cat)
    assert cat.magnitudes.tolist() == [3.0, 4.0, 3.5, 3.6]
    assert np.isnan(cat.events.depth.iloc[2])  # the archive copy is kept
    assert cat.sources == [str(a), str(b)]
    assert [(f, r.line) for f, r in cat.bad_rows] == [(str(b), 5)]
    with pytest.raises(ConfigError):
        read_catalogs([])


# ----------------------------------------------------------------------------- Mc


def test_magnitude_of_completeness_maximum_curvature():
    rng = np.random.default_rng(1)
    m = 0.5 + rng.exponential(1.0 / np.log(10.0), 200_000)  # G-R b = 1 from M 0.5
    detected = rng.random(m.size) < np.exp(-10.0 * np.clip(1.95 - m, 0.0, None))
    m = np.round(m[detected], 2)
    assert magnitude_of_completeness(m) == pytest.approx(2.2)
    assert magnitude_of_completeness(m, correction=0.0) == pytest.approx(2.0)


def test_magnitude_of_completeness_bins_are_centred():
    mags = [1.0] * 3 + [1.54] * 4 + [1.56] * 2 + [1.64] * 3 + [2.0] * 1
    assert magnitude_of_completeness(mags, correction=0.0) == pytest.approx(1.6)  # 1.56+1.64
    assert magnitude_of_completeness(mags) == pytest.approx(1.8)
    assert magnitude_of_completeness(mags, bin_width=0.5, correction=0.0) == pytest.approx(1.5)
    assert np.isnan(magnitude_of_completeness([]))
    with pytest.raises(ConfigError):
        magnitude_of_completeness(mags, bin_width=0)
