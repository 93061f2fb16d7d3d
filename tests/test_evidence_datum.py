"""Evidence checks that know about datums (media/checks.py with media/datum.py): pure tests.

The planted case of issue 11: a facility whose register position was picked on AMap (GCJ-02),
inspected by an honest inspector whose photos carry WGS-84 positions, must not be flagged far;
it gets coordinate_system_mismatch only when the register's datum was wrongly declared wgs84;
a photo 2 km away is still far_from_facility whatever the register says.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from media.checks import (
    DEFAULT_WEIGHTS,
    EARTH_RADIUS_M,
    EvidenceSettings,
    PhotoEvidence,
    check_submission,
    haversine_m,
    is_high_risk,
    risk_score,
)
from media.datum import gcj02_to_wgs84, to_wgs84, wgs84_to_bd09, wgs84_to_gcj02

# Where the facility really is (WGS-84): 云屿村, Guangxi, where GCJ-02 is about 550 m off.
TRUE = (24.33, 109.42)
AMAP = wgs84_to_gcj02(*TRUE)  # what an AMap pick gives for it
BAIDU = wgs84_to_bd09(*TRUE)
OBSERVED = "2026-11-20T10:30:00+08:00"


def north_of(point, metres):
    return (point[0] + math.degrees(metres / EARTH_RADIUS_M), point[1])


def register(numbers, declared):
    """A facility position as stored: converted to WGS-84 from the declared datum."""
    lat, lon = to_wgs84(*numbers, declared)
    return {"lat": lat, "lon": lon, "datum": declared}


def photo(at=None, *, exif=True, phone=None, sha="a" * 64):
    at = at or north_of(TRUE, 20)
    return PhotoEvidence(
        sha256=sha,
        exif_present=True,
        exif_lat=at[0] if exif else None,
        exif_lon=at[1] if exif else None,
        taken_at="2026-11-20T10:27:41",
        software="8.3",
        phone_position=phone,
        captured_at="2026-11-20T10:27:42+08:00",
    )


def run(photos, facility, settings=None):
    return check_submission(
        photos=photos,
        facility_position=facility,
        observed_at=OBSERVED,
        device_skew_ms=0,
        same_bytes_elsewhere={},
        near_duplicates={},
        settings=settings or EvidenceSettings(),
    )


def codes(flags):
    return [f.code for f in flags]


def test_the_offset_here_is_the_hundreds_of_metres_of_the_issue():
    assert 300 < haversine_m(TRUE, AMAP) < 700
    assert 300 < haversine_m(TRUE, BAIDU) < 1500


# -- the planted AMap facility ------------------------------------------------------------------


def honest_photos():
    near = north_of(TRUE, 25)
    return [
        photo(north_of(TRUE, 15), sha="a" * 64),  # EXIF GPS
        photo(exif=False, phone={"lat": near[0], "lon": near[1], "accuracy": 12}, sha="b" * 64),
    ]


@pytest.mark.parametrize("numbers,declared", [(AMAP, "gcj02"), (BAIDU, "bd09"), (TRUE, "wgs84")])
def test_register_declared_in_its_datum_honest_photos_get_no_flag(numbers, declared):
    assert run(honest_photos(), register(numbers, declared)) == []


def test_amap_register_declared_wgs84_gets_the_mismatch_flag_not_far():
    flags = run(honest_photos(), register(AMAP, "wgs84"))
    assert codes(flags) == ["coordinate_system_mismatch"] * 2
    f = flags[0]
    assert f.figures["side"] == "facility"
    assert f.figures["declared_datum"] == "wgs84"
    assert f.figures["assumed_datum"] == "gcj02"
    assert f.figures["distance_m"] > 400
    assert f.figures["distance_if_assumed_m"] == 15
    assert "GCJ-02" in f.message["zh"] and "坐标系" in f.message["zh"]
    assert f"{f.figures['distance_m']} 米" in f.message["zh"] and "15 米" in f.message["zh"]
    assert "gcj02" in f.message["en"]
    # Low weight: the office fixes a register; nobody is suspected.
    assert risk_score(flags) == DEFAULT_WEIGHTS["coordinate_system_mismatch"]
    assert 0 < risk_score(flags) < DEFAULT_WEIGHTS["far_from_facility"]
    assert not is_high_risk(flags)


def test_baidu_register_declared_wgs84_is_read_as_bd09():
    flags = run([photo()], register(BAIDU, "wgs84"))
    assert codes(flags) == ["coordinate_system_mismatch"]
    assert flags[0].figures["assumed_datum"] == "bd09"


def test_register_declared_gcj02_that_was_really_wgs84():
    flags = run([photo()], register(TRUE, "gcj02"))  # 天地图 numbers declared as AMap's
    assert codes(flags) == ["coordinate_system_mismatch"]
    assert flags[0].figures["declared_datum"] == "gcj02"
    assert flags[0].figures["assumed_datum"] == "wgs84"


def test_a_phone_that_reports_gcj02_as_wgs84_is_the_photo_side():
    gcj = AMAP  # e.g. an in-app web view handing out GCJ-02
    p = photo(exif=False, phone={"lat": gcj[0], "lon": gcj[1], "accuracy": 10})
    flags = run([p], register(TRUE, "wgs84"))
    assert codes(flags) == ["coordinate_system_mismatch"]
    assert flags[0].figures["side"] == "photo"
    assert flags[0].figures["assumed_datum"] == "gcj02"


def test_a_phone_position_declared_gcj02_is_converted_before_comparing():
    p = photo(exif=False, phone={"lat": AMAP[0], "lon": AMAP[1], "accuracy": 10, "datum": "gcj02"})
    assert run([p], register(TRUE, "wgs84")) == []


@pytest.mark.parametrize("numbers,declared", [(AMAP, "gcj02"), (AMAP, "wgs84"), (BAIDU, "bd09")])
def test_a_photo_2_km_away_is_still_far(numbers, declared):
    far = north_of(TRUE, 2000)
    flags = run([photo(far)], register(numbers, declared))
    assert codes(flags) == ["far_from_facility"]
    assert flags[0].figures["facility_datum"] == declared
    assert is_high_risk(flags + flags, EvidenceSettings(high_risk_score=40))


def test_exif_zero_zero_counts_as_absent():
    p = photo((0.0, 0.0))  # no phone position either
    assert codes(run([p], register(AMAP, "gcj02"))) == ["no_location"]
    near = north_of(TRUE, 30)
    p = photo((0.0, 0.0), phone={"lat": near[0], "lon": near[1], "accuracy": 20})
    assert run([p], register(AMAP, "gcj02")) == []


def test_a_missing_exif_position_alone_adds_no_risk():
    near = north_of(TRUE, 30)
    p = photo(exif=False, phone={"lat": near[0], "lon": near[1], "accuracy": 20})
    flags = run([p], register(AMAP, "gcj02"))
    assert flags == []
    assert risk_score(flags) == 0


# -- the threshold: margin + accuracy + register uncertainty, boundaries -----------------------

UNCERTAIN = EvidenceSettings(far_metres=200, register_uncertainty_metres=30)


def test_threshold_is_margin_plus_accuracy_plus_register_uncertainty():
    facility = register(TRUE, "wgs84")
    at = north_of(TRUE, 245)  # 200 + 15 + 30
    ok = photo(exif=False, phone={"lat": at[0], "lon": at[1], "accuracy": 15})
    assert run([ok], facility, UNCERTAIN) == []
    past = north_of(TRUE, 246)
    bad = photo(exif=False, phone={"lat": past[0], "lon": past[1], "accuracy": 15})
    f = run([bad], facility, UNCERTAIN)[0]
    assert f.code == "far_from_facility"
    assert f.figures["threshold_m"] == 245
    assert f.figures["margin_m"] == 200 and f.figures["register_uncertainty_m"] == 30
    assert "允许范围 245 米" in f.message["zh"]


def test_exif_positions_have_no_accuracy_term():
    facility = register(TRUE, "wgs84")
    assert run([photo(north_of(TRUE, 230))], facility, UNCERTAIN) == []
    assert codes(run([photo(north_of(TRUE, 231))], facility, UNCERTAIN)) == ["far_from_facility"]


@pytest.mark.parametrize("accuracy", [-50, math.nan, math.inf, "12", None])
def test_a_nonsense_accuracy_does_not_widen_the_threshold(accuracy):
    past = north_of(TRUE, 201)
    p = photo(exif=False, phone={"lat": past[0], "lon": past[1], "accuracy": accuracy})
    f = run([p], register(TRUE, "wgs84"))[0]
    assert f.code == "far_from_facility" and f.figures["threshold_m"] == 200


def test_mismatch_boundary_is_the_same_threshold():
    """Declared wgs84, really GCJ-02: the photo within the threshold of the re-read position is
    a mismatch; one metre further is far."""
    facility = register(AMAP, "wgs84")
    assert gcj02_to_wgs84(*AMAP) == pytest.approx(TRUE, abs=1e-8)
    at = run([photo(north_of(TRUE, 200))], facility)
    assert codes(at) == ["coordinate_system_mismatch"]
    assert at[0].figures["distance_if_assumed_m"] == 200
    past = run([photo(north_of(TRUE, 201))], facility)
    assert codes(past) == ["far_from_facility"]


def test_unknown_facility_datum_is_read_as_wgs84():
    facility = {**register(TRUE, "wgs84"), "datum": "mars"}
    assert run([photo()], facility) == []
    assert codes(run([photo(north_of(TRUE, 2000))], facility)) == ["far_from_facility"]


def test_register_uncertainty_must_not_be_negative():
    with pytest.raises(ValueError):
        EvidenceSettings(register_uncertainty_metres=-1)


def test_weights_mismatch_is_low():
    assert DEFAULT_WEIGHTS["coordinate_system_mismatch"] <= 10
    s = dataclasses.replace(EvidenceSettings())
    assert s.weights["coordinate_system_mismatch"] < s.high_risk_score
