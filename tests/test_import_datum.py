"""Imports that declare their datum, registration from the phone, and the evidence checks on a
real server: the planted AMap-registered facility of issue 11 end to end.

A register picked on AMap gives GCJ-02 numbers. Imported with `--datum gcj02` it is stored in
WGS-84 and an honest inspection (photos with their true WGS-84 GPS) gets no far flag; imported
as if WGS-84 it gets coordinate_system_mismatch instead; a photo 2 km away is far either way.
"""

from __future__ import annotations

import math

import pytest
from conftest import YUNYU
from test_media_api import TOILET_POS, inspect, noise_photo, retagged

from media.checks import EARTH_RADIUS_M, haversine_m
from media.datum import bd09_to_wgs84, gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02
from server.facilities_csv import parse_facilities_csv
from server.villages_csv import parse_villages_csv

TRUE = TOILET_POS  # where the facility really is (WGS-84); the inside photo is tagged here
AMAP = wgs84_to_gcj02(*TRUE)
HEADER = "村代码,设施类型,名称,细类,纬度,经度"


def north_of(point, metres):
    return (point[0] + math.degrees(metres / EARTH_RADIUS_M), point[1])


def register_file(tmp_path, *rows, header=HEADER):
    path = tmp_path / "register.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8-sig")
    return str(path)


def amap_row(name="韦家户厕"):
    return f"{YUNYU},户厕,{name},household,{AMAP[0]:.7f},{AMAP[1]:.7f}"


def facility_named(store, name):
    return next(f for f in store.facilities(YUNYU) if f["name"] == name)


def flag_codes(store, submission_id):
    return sorted({f["code"] for f in store.flags_of(submission_id)})


# -- parsing (pure) ------------------------------------------------------------------------------


def test_village_datum_column_and_option():
    text = (
        "代码,村名,乡镇,县,县类别,纬度,经度,坐标系\n"
        f"450222101001,云屿村,桐浦乡,柳城县,2,{AMAP[0]},{AMAP[1]},高德\n"
        f"450222101002,东头村,桐浦乡,柳城县,2,{AMAP[0]},{AMAP[1]},\n"
        "450222101003,无位置村,桐浦乡,柳城县,2,,,GCJ-02\n"
    )
    result = parse_villages_csv(text, "bd09")
    assert result.ok and result.undeclared_positions == 0
    amap, option, bare = result.rows
    assert amap["datum"] == "gcj02" and amap["position_source"] == "register_import"
    assert haversine_m((amap["lat"], amap["lon"]), TRUE) < 0.5
    assert option["datum"] == "bd09"  # blank cell: the file's option
    assert (option["lat"], option["lon"]) == bd09_to_wgs84(*AMAP)
    assert (bare["lat"], bare["datum"], bare["position_source"]) == (None, None, None)


def test_an_undeclared_position_is_counted():
    text = (
        "代码,村名,乡镇,县,县类别,纬度,经度\n"
        f"450222101001,云屿村,桐浦乡,柳城县,2,{AMAP[0]},{AMAP[1]}\n"
    )
    assert parse_villages_csv(text).undeclared_positions == 1
    assert parse_villages_csv(text, "wgs84").undeclared_positions == 0


def test_a_bad_datum_is_a_chinese_error_on_its_row():
    text = (
        "代码,村名,乡镇,县,县类别,纬度,经度,坐标系\n"
        f"450222101001,云屿村,桐浦乡,柳城县,2,{AMAP[0]},{AMAP[1]},火星\n"
    )
    (error,) = parse_villages_csv(text).errors
    assert (error["row"], error["column"], error["error"]) == (2, "datum", "bad_datum")
    assert "第2行" in error["message"] and "坐标系“火星”无效" in error["message_zh"]
    assert "GCJ-02" in error["message_zh"]


def test_facility_register_parses_kinds_positions_and_errors():
    text = "\n".join(
        [
            "村代码,设施类型,名称,纬度,经度,坐标系",
            f"{YUNYU},公厕,村委公厕,{AMAP[0]},{AMAP[1]},gcj02",
            f"{YUNYU},垃圾收集点,一号垃圾点,,,",
            f"{YUNYU},寺庙,古庙,{AMAP[0]},{AMAP[1]},gcj02",
            f"999999999999,消防,消防栓,{AMAP[0]},{AMAP[1]},百度",
            f"{YUNYU},片区,北片,{AMAP[0]},{AMAP[1]},UTM",
            f"{YUNYU},公厕,村委公厕,{AMAP[0]},{AMAP[1]},gcj02",
        ]
    )
    result = parse_facilities_csv(text, villages={YUNYU})
    assert [(e["row"], e["error"]) for e in result.errors] == [
        (4, "bad_kind"),
        (5, "unknown_village"),
        (6, "bad_datum"),
        (7, "duplicate"),
    ]
    toilet, rubbish = result.rows
    assert toilet["kind"] == "toilet" and toilet["datum"] == "gcj02"
    assert haversine_m((toilet["lat"], toilet["lon"]), TRUE) < 0.5
    assert rubbish["kind"] == "rubbish" and rubbish["lat"] is None and rubbish["datum"] is None
    again = parse_facilities_csv(text, villages={YUNYU}).rows
    assert [r["id"] for r in again] == [toilet["id"], rubbish["id"]]  # stable ids


# -- the commands ------------------------------------------------------------------------------


def test_import_facilities_needs_a_datum_for_positions(runner, store, tmp_path):
    path = register_file(tmp_path, amap_row())
    refused = runner.invoke(args=["import-facilities", path])
    assert refused.exit_code != 0
    assert "没有说明坐标系" in refused.output and "--datum" in refused.output
    assert not [f for f in store.facilities(YUNYU) if f["name"] == "韦家户厕"]
    bad = runner.invoke(args=["import-facilities", path, "--datum", "mars"])
    assert bad.exit_code != 0 and "坐标系“mars”无效" in bad.output


def test_import_facilities_stores_wgs84_with_the_declared_datum(runner, store, tmp_path):
    path = register_file(tmp_path, amap_row())
    done = runner.invoke(args=["import-facilities", path, "--datum", "gcj02"])
    assert done.exit_code == 0, done.output
    assert "已导入 1 个设施" in done.output
    stored = facility_named(store, "韦家户厕")
    assert (stored["datum"], stored["position_source"]) == ("gcj02", "register_import")
    assert haversine_m((stored["lat"], stored["lon"]), TRUE) < 0.5
    assert stored["state"]["toilet_type"]["value"] == "household"
    assert stored["state"]["status"]["value"] == "active"
    again = runner.invoke(args=["import-facilities", path, "--datum", "gcj02"])
    assert "已导入 0 个设施，1 个已存在未改动" in again.output


def test_import_villages_needs_a_datum_for_positions(runner, store, tmp_path):
    path = tmp_path / "v.csv"
    path.write_text(
        f"代码,村名,乡镇,县,县类别,纬度,经度\n450222109001,新村,桐浦乡,柳城县,2,{AMAP[0]},{AMAP[1]}\n",
        encoding="utf-8",
    )
    refused = runner.invoke(args=["import-villages", str(path)])
    assert refused.exit_code != 0 and "没有说明坐标系" in refused.output
    assert store.village("450222109001") is None
    done = runner.invoke(args=["import-villages", str(path), "--datum", "GCJ-02"])
    assert done.exit_code == 0, done.output
    village = store.village("450222109001")
    assert village["datum"] == "gcj02" and village["position_source"] == "register_import"
    assert (village["lat"], village["lon"]) == gcj02_to_wgs84(*AMAP)


# -- registration on the phone -----------------------------------------------------------------


def new_facility(phone, **overrides):
    import uuid

    item = {
        "type": "facility",
        "id": str(uuid.uuid4()),
        "village": YUNYU,
        "kind": "toilet",
        "name": "新登记户厕",
        "lat": TRUE[0],
        "lon": TRUE[1],
        "clock": phone.clock(),
        "fields": {"toilet_type": "household"},
    }
    item.update(overrides)
    return item


def test_phone_registration_defaults_to_the_browsers_wgs84(phone, store):
    item = new_facility(phone)
    assert phone.push([item]).json["results"][0]["status"] == "accepted"
    stored = store.facility(item["id"])
    assert (stored["lat"], stored["lon"]) == TRUE
    assert (stored["datum"], stored["position_source"]) == ("wgs84", "browser")


def test_phone_registration_of_a_map_pick_in_gcj02_is_converted(phone, store):
    item = new_facility(phone, lat=AMAP[0], lon=AMAP[1], datum="gcj02", source="map_pick")
    assert phone.push([item]).json["results"][0]["status"] == "accepted"
    stored = store.facility(item["id"])
    assert haversine_m((stored["lat"], stored["lon"]), TRUE) < 0.5
    assert (stored["datum"], stored["position_source"]) == ("gcj02", "map_pick")


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"datum": "GCJ-02"}, "datum"),
        ({"datum": None}, "datum"),
        ({"datum": ["gcj02"]}, "datum"),
        ({"source": "register_import"}, "source"),
        ({"source": "exif"}, "source"),
    ],
)
def test_phone_registration_with_a_bad_datum_or_source_is_invalid(phone, store, bad, field):
    item = new_facility(phone, **bad)
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "invalid"
    assert result["errors"][field][0]["code"] == "choice"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in result["errors"][field][0]["message"]["zh"])
    assert store.facility(item["id"]) is None


def test_a_baidu_map_pick_is_converted(phone, store):
    bd = wgs84_to_bd09(*TRUE)
    item = new_facility(phone, lat=bd[0], lon=bd[1], datum="bd09", source="map_pick")
    assert phone.push([item]).json["results"][0]["status"] == "accepted"
    stored = store.facility(item["id"])
    assert haversine_m((stored["lat"], stored["lon"]), TRUE) < 0.5


# -- the planted AMap facility, end to end -----------------------------------------------------


def imported(runner, store, tmp_path, datum, name):
    path = register_file(tmp_path, amap_row(name))
    done = runner.invoke(args=["import-facilities", path, "--datum", datum])
    assert done.exit_code == 0, done.output
    return facility_named(store, name)["id"]


def test_amap_register_declared_gcj02_honest_photos_get_no_far_flag(runner, store, tmp_path, phone):
    fid = imported(runner, store, tmp_path, "gcj02", "高德登记户厕")
    honest = retagged("iphone_hdr_NO.jpg", lat=north_of(TRUE, 12)[0], lon=TRUE[1])
    item = inspect(phone, fid, honest, noise_photo(11))
    codes = flag_codes(store, item["id"])
    assert "far_from_facility" not in codes and "coordinate_system_mismatch" not in codes


def test_amap_register_wrongly_declared_wgs84_gets_the_mismatch_flag_only(
    runner, store, tmp_path, phone
):
    fid = imported(runner, store, tmp_path, "wgs84", "误报坐标系户厕")
    honest = retagged("iphone_hdr_NO.jpg", lat=north_of(TRUE, 12)[0], lon=TRUE[1])
    item = inspect(phone, fid, honest, noise_photo(12))
    codes = flag_codes(store, item["id"])
    assert "coordinate_system_mismatch" in codes and "far_from_facility" not in codes
    flag = next(f for f in store.flags_of(item["id"]) if f["code"] == "coordinate_system_mismatch")
    assert flag["figures"]["assumed_datum"] == "gcj02"
    assert "坐标系" in flag["message"]["zh"]
    assert store.submission(item["id"])["risk_score"] < 40


def test_a_photo_2_km_from_the_amap_facility_is_still_far(runner, store, tmp_path, phone):
    fid = imported(runner, store, tmp_path, "gcj02", "远处户厕")
    far = north_of(TRUE, 2000)
    item = inspect(
        phone, fid, retagged("iphone_hdr_NO.jpg", lat=far[0], lon=far[1]), noise_photo(13)
    )
    assert "far_from_facility" in flag_codes(store, item["id"])
