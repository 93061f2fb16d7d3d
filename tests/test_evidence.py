"""Photo evidence checks (media/checks.py)."""

from __future__ import annotations

import dataclasses
import math

import exifread
import pytest
from conftest import CORPUS
from hypothesis import given
from hypothesis import strategies as st

from media.checks import (
    CODES,
    DEFAULT_WEIGHTS,
    EARTH_RADIUS_M,
    EvidenceSettings,
    Flag,
    PhotoEvidence,
    check_submission,
    haversine_m,
    is_high_risk,
    risk_score,
)

# 云屿村, Guangxi: the facility (a public toilet by the village committee).
FACILITY = {"lat": 24.33, "lon": 109.42}
OBSERVED = "2026-11-20T10:30:00+08:00"
SHA_A = "a" * 64
SHA_B = "b" * 64
SETTINGS = EvidenceSettings()


def north_of(point: dict, metres: float) -> dict:
    """A point ``metres`` due north (exact for haversine on one meridian)."""
    return {"lat": point["lat"] + math.degrees(metres / EARTH_RADIUS_M), "lon": point["lon"]}


def clean_photo(**changes) -> PhotoEvidence:
    near = north_of(FACILITY, 35)
    base = PhotoEvidence(
        sha256=SHA_A,
        exif_present=True,
        exif_error=None,
        exif_lat=near["lat"],
        exif_lon=near["lon"],
        taken_at="2026-11-20T10:27:41",  # naive, as most phone cameras write it
        software="8.3",
        phone_position={"lat": 24.3302, "lon": 109.4201, "accuracy": 12.0},
        captured_at="2026-11-20T10:27:42+08:00",
    )
    return dataclasses.replace(base, **changes)


def run(photos=None, **kw) -> list[Flag]:
    args = {
        "photos": [clean_photo()] if photos is None else photos,
        "facility_position": FACILITY,
        "observed_at": OBSERVED,
        "device_skew_ms": 4_000,
        "same_bytes_elsewhere": {},
        "near_duplicates": {},
        "settings": SETTINGS,
    }
    args.update(kw)
    return check_submission(**args)


def codes(flags: list[Flag]) -> list[str]:
    return [f.code for f in flags]


def only(flags: list[Flag], code: str) -> Flag:
    found = [f for f in flags if f.code == code]
    assert len(found) == 1, codes(flags)
    return found[0]


# ---------------------------------------------------------------------------------------------


def test_clean_submission_raises_nothing():
    flags = run(
        near_duplicates={SHA_A: [{"sha256": SHA_B, "facility_id": "f-2", "distance": 24}]},
        same_bytes_elsewhere={SHA_B: [{"submission_id": "s-9", "facility_id": "f-2"}]},
    )
    assert flags == []
    assert risk_score(flags, SETTINGS) == 0
    assert not is_high_risk(flags, SETTINGS)


def test_haversine():
    assert haversine_m(FACILITY, FACILITY) == 0
    one_degree = haversine_m((24.0, 109.42), (25.0, 109.42))
    assert one_degree == pytest.approx(111_195, abs=5)
    a, b = FACILITY, {"lat": 24.35, "lon": 109.45}
    assert haversine_m(a, b) == pytest.approx(haversine_m(b, a))
    assert haversine_m(FACILITY, north_of(FACILITY, 200)) == pytest.approx(200, abs=1e-6)


# -- location ----------------------------------------------------------------------------------


def test_far_from_facility_by_exif():
    far = north_of(FACILITY, 2013)
    f = only(run([clean_photo(exif_lat=far["lat"], exif_lon=far["lon"])]), "far_from_facility")
    assert f.photo == SHA_A
    assert f.figures["distance_m"] == 2013
    assert f.figures["threshold_m"] == 200
    assert f.figures["source"] == "exif"
    assert "照片拍摄地点距设施 2.0 公里" in f.message["zh"]
    assert "照片自带 GPS" in f.message["zh"]
    assert "2.0 km" in f.message["en"]


def test_far_boundary_exactly_at_threshold():
    at = north_of(FACILITY, 200)
    assert run([clean_photo(exif_lat=at["lat"], exif_lon=at["lon"])]) == []
    past = north_of(FACILITY, 201)
    f = only(run([clean_photo(exif_lat=past["lat"], exif_lon=past["lon"])]), "far_from_facility")
    assert f.figures["distance_m"] == 201
    assert "201 米" in f.message["zh"]


def test_exif_position_preferred_over_phone():
    far = north_of(FACILITY, 900)
    # EXIF near, phone far: EXIF wins, no flag
    assert run([clean_photo(phone_position={**far, "accuracy": 10.0})]) == []
    # EXIF far, phone near: EXIF wins, flagged with source exif
    flags = run([clean_photo(exif_lat=far["lat"], exif_lon=far["lon"])])
    assert only(flags, "far_from_facility").figures["source"] == "exif"


def test_phone_position_used_when_exif_has_no_gps():
    far = north_of(FACILITY, 500)
    photo = clean_photo(exif_lat=None, exif_lon=None, phone_position={**far, "accuracy": 15.0})
    f = only(run([photo]), "far_from_facility")
    assert f.figures["source"] == "phone"
    assert f.figures["distance_m"] == 500
    assert f.figures["accuracy_m"] == 15.0
    assert "拍照时手机定位" in f.message["zh"] and "精度约 15 米" in f.message["zh"]
    near = north_of(FACILITY, 40)
    assert run([clean_photo(exif_lat=None, exif_lon=None, phone_position=near)]) == []


def test_null_island_exif_gps_is_ignored():
    photo = clean_photo(exif_lat=0.0, exif_lon=0.0)
    assert run([photo]) == []  # falls back to the phone's (near) position


def test_no_location():
    photo = clean_photo(exif_lat=None, exif_lon=None, phone_position=None)
    f = only(run([photo]), "no_location")
    assert f.photo == SHA_A
    assert "没有位置信息" in f.message["zh"]
    assert "far_from_facility" not in codes(run([photo]))


def test_unknown_facility_position_gives_no_distance_flag():
    far = north_of(FACILITY, 5000)
    assert (
        run([clean_photo(exif_lat=far["lat"], exif_lon=far["lon"])], facility_position=None) == []
    )


# -- time --------------------------------------------------------------------------------------


def test_taken_long_before():
    f = only(run([clean_photo(taken_at="2026-11-17T10:30:00+08:00")]), "taken_long_before")
    assert f.figures["hours_before"] == 72.0
    assert f.figures["threshold_hours"] == 48
    assert f.figures["source"] == "exif"
    assert "照片拍摄于检查前 3.0 天" in f.message["zh"]


def test_taken_long_before_boundary():
    assert run([clean_photo(taken_at="2026-11-18T10:30:00+08:00")]) == []  # exactly 48 h
    flags = run([clean_photo(taken_at="2026-11-18T10:29:59+08:00")])
    assert codes(flags) == ["taken_long_before"]


def test_naive_exif_time_read_in_observation_offset():
    # 48 h + 1 s before in +08:00; read as UTC it would be only 40 h before.
    assert codes(run([clean_photo(taken_at="2026-11-18T10:29:59")])) == ["taken_long_before"]
    assert codes(run([clean_photo(taken_at="2026:11:18 10:29:59")])) == ["taken_long_before"]
    assert run([clean_photo(taken_at="2026-11-18T10:30:00")]) == []
    # an observation recorded in another offset changes how the naive time is read
    utc_obs = "2026-11-20T02:30:00+00:00"  # the same instant as OBSERVED
    assert run([clean_photo(taken_at="2026-11-18T02:30:00")], observed_at=utc_obs) == []
    assert codes(run([clean_photo(taken_at="2026-11-18T02:29:59")], observed_at=utc_obs)) == [
        "taken_long_before"
    ]


def test_explicit_offsets_are_respected():
    # 2026-11-18T02:29:59Z is 10:29:59 +08:00, i.e. 48 h + 1 s before
    assert codes(run([clean_photo(taken_at="2026-11-18T02:29:59Z")])) == ["taken_long_before"]


def test_taken_after_boundary():
    assert run([clean_photo(taken_at="2026-11-20T11:00:00")]) == []  # exactly 30 min after
    f = only(run([clean_photo(taken_at="2026-11-20T11:01:00")]), "taken_after")
    assert f.figures["minutes_after"] == 31.0
    assert f.figures["threshold_minutes"] == 30
    assert "晚 31 分钟" in f.message["zh"]


def test_phone_capture_time_used_without_exif_time():
    photo = clean_photo(taken_at=None, captured_at="2026-11-15T09:00:00+08:00")
    f = only(run([photo]), "taken_long_before")
    assert f.figures["source"] == "phone"
    # EXIF time preferred when both exist
    photo = clean_photo(captured_at="2026-11-15T09:00:00+08:00")
    assert run([photo]) == []


def test_unparseable_times_raise_no_time_flag():
    assert run([clean_photo(taken_at="garbage", captured_at=None)]) == []
    with pytest.raises(ValueError):
        run(observed_at="yesterday")


# -- reuse and near duplicates ----------------------------------------------------------------


def test_reused_photo():
    uses = [
        {"submission_id": "s-77", "facility_id": "toilet-yy-014"},
        {"submission_id": "s-12", "facility_id": "toilet-yy-009"},
    ]
    f = only(run(same_bytes_elsewhere={SHA_A: uses}), "reused_photo")
    assert f.figures["count"] == 2
    assert f.figures["facility_ids"] == ["toilet-yy-009", "toilet-yy-014"]
    assert "另外 2 条记录" in f.message["zh"]
    assert run(same_bytes_elsewhere={SHA_A: []}) == []


def test_reused_in_another_submission_of_same_facility():
    uses = [{"submission_id": "s-3", "facility_id": "toilet-yy-001"}]
    assert codes(run(same_bytes_elsewhere={SHA_A: uses})) == ["reused_photo"]


def test_near_duplicate_boundary():
    at = [{"sha256": SHA_B, "facility_id": "toilet-yy-020", "distance": 10}]
    f = only(run(near_duplicates={SHA_A: at}), "near_duplicate")
    assert f.figures["min_distance"] == 10
    assert f.figures["threshold"] == 10
    assert f.figures["facility_ids"] == ["toilet-yy-020"]
    assert "toilet-yy-020" in f.message["zh"]
    over = [{"sha256": SHA_B, "facility_id": "toilet-yy-020", "distance": 11}]
    assert run(near_duplicates={SHA_A: over}) == []
    itself = [{"sha256": SHA_A, "facility_id": "toilet-yy-020", "distance": 0}]
    assert run(near_duplicates={SHA_A: itself}) == []


# -- software and EXIF -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "software",
    [
        "Adobe Photoshop 25.0 (Windows)",
        "Adobe Photoshop Lightroom Classic 13.0 (Macintosh)",
        "GIMP 2.10.34",
        "Snapseed 2.0",
        "美图秀秀",
        "MeituXiuXiu 9.9.5",
        "PicsArt",
        "醒图",
        "Picasa",
    ],
)
def test_edited_by_software(software):
    f = only(run([clean_photo(software=software)]), "edited_by_software")
    assert f.figures["software"] == software
    assert "修图软件" in f.message["zh"]


@pytest.mark.parametrize(
    "software", ["8.3", "00WW_3_380_SP02", "Ver.1.00", "HDR+ 1.0.199571065zd", "", None]
)
def test_camera_firmware_is_not_an_edit(software):
    assert run([clean_photo(software=software)]) == []


def test_real_corpus_software_tags_are_not_edits():
    seen = []
    for path in sorted(CORPUS.glob("*.jpg")):
        with path.open("rb") as fh:
            tags = exifread.process_file(fh, details=False)
        if "Image Software" in tags:
            software = str(tags["Image Software"])
            seen.append(software)
            assert run([clean_photo(software=software)]) == [], software
    assert "00WW_3_380_SP02" in seen and "8.3" in seen


def test_no_exif():
    photo = clean_photo(
        exif_present=False, exif_error="no EXIF segment", exif_lat=None, exif_lon=None,
        taken_at=None, software=None,
    )  # fmt: skip
    f = only(run([photo]), "no_exif")
    assert f.figures["exif_error"] == "no EXIF segment"
    assert "EXIF" in f.message["zh"]
    assert codes(run([photo])) == ["no_exif"]  # phone position and time still cover it


# -- clock skew --------------------------------------------------------------------------------


def test_large_clock_skew_boundary_and_sign():
    assert run(device_skew_ms=30 * 60_000) == []
    assert run(device_skew_ms=-30 * 60_000) == []
    assert run(device_skew_ms=None) == []
    ahead = only(run(device_skew_ms=30 * 60_000 + 1), "large_clock_skew")
    assert ahead.photo is None
    assert ahead.figures["threshold_minutes"] == 30
    assert "快" in ahead.message["zh"]
    behind = only(run(device_skew_ms=-2 * 3_600_000), "large_clock_skew")
    assert behind.figures["skew_minutes"] == -120.0
    assert "慢 120 分钟" in behind.message["zh"]


# -- order, score, settings -------------------------------------------------------------------


def planted_everything():
    far = north_of(FACILITY, 3000)
    bad = clean_photo(
        exif_lat=far["lat"], exif_lon=far["lon"], taken_at="2026-10-01T08:00:00",
        software="Adobe Photoshop 25.0",
    )  # fmt: skip
    blank = clean_photo(
        sha256=SHA_B, exif_present=False, exif_lat=None, exif_lon=None, taken_at=None,
        software=None, phone_position=None, captured_at="2026-11-20T12:00:00+08:00",
    )  # fmt: skip
    return run(
        [bad, blank, bad],
        device_skew_ms=-3_600_000,
        same_bytes_elsewhere={SHA_A: [{"submission_id": "s-2", "facility_id": "f-9"}]},
        near_duplicates={SHA_B: [{"sha256": "c" * 64, "facility_id": "f-4", "distance": 3}]},
    )


def test_every_flag_can_be_raised_and_order_is_deterministic():
    flags = planted_everything()
    assert [(f.code, f.photo) for f in flags] == [
        ("large_clock_skew", None),
        ("far_from_facility", SHA_A),
        ("taken_long_before", SHA_A),
        ("reused_photo", SHA_A),
        ("edited_by_software", SHA_A),
        ("no_exif", SHA_B),
        ("no_location", SHA_B),
        ("taken_after", SHA_B),
        ("near_duplicate", SHA_B),
    ]
    # A far photo is either far_from_facility or, when a datum re-reading explains the
    # distance, coordinate_system_mismatch (tests/test_evidence_datum.py): never both.
    assert set(codes(flags)) == set(CODES) - {"coordinate_system_mismatch"}
    assert planted_everything() == flags
    assert risk_score(flags, SETTINGS) == 100
    assert is_high_risk(flags, SETTINGS)


def test_every_message_has_chinese_and_english():
    for f in planted_everything():
        assert set(f.message) == {"zh", "en"}
        assert any("\u4e00" <= ch <= "\u9fff" for ch in f.message["zh"]), f.message


def test_settings_change_thresholds():
    far = north_of(FACILITY, 150)
    photo = clean_photo(exif_lat=far["lat"], exif_lon=far["lon"])
    assert run([photo]) == []
    strict = EvidenceSettings(far_metres=100)
    f = only(run([photo], settings=strict), "far_from_facility")
    assert f.figures["threshold_m"] == 100
    assert run([photo], settings=None) == []  # defaults when not given


def test_settings_reject_negative_weights_and_thresholds():
    with pytest.raises(ValueError):
        EvidenceSettings(weights={"no_exif": -5})
    with pytest.raises(ValueError):
        EvidenceSettings(far_metres=-1)
    assert set(DEFAULT_WEIGHTS) == set(CODES)
    assert hash(EvidenceSettings()) == hash(EvidenceSettings())


def _flag(code: str) -> Flag:
    return Flag(code, None, {}, {"zh": "", "en": ""})


flag_lists = st.lists(st.sampled_from([*CODES, "unknown_code"]).map(_flag), max_size=20)
weight_maps = st.dictionaries(st.sampled_from(CODES), st.integers(0, 80))


@given(flags=flag_lists, extra=st.sampled_from([*CODES, "unknown_code"]), weights=weight_maps)
def test_adding_a_flag_never_lowers_the_score(flags, extra, weights):
    for s in (SETTINGS, EvidenceSettings(weights=weights)):
        before = risk_score(flags, s)
        after = risk_score([*flags, _flag(extra)], s)
        assert 0 <= before <= after <= 100


def test_score_is_capped_and_counts_each_code_once():
    assert risk_score([_flag(c) for c in CODES], SETTINGS) == 100
    one = risk_score([_flag("far_from_facility")], SETTINGS)
    assert one == DEFAULT_WEIGHTS["far_from_facility"]
    assert risk_score([_flag("far_from_facility")] * 3, SETTINGS) == one
    assert risk_score([], SETTINGS) == 0
