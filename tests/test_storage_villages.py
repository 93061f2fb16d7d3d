"""Storage contract: villages. Runs unchanged on SQLite and PostgreSQL (`any_store`)."""

import pytest

AT = "2026-11-20T02:00:00.000+00:00"


def village(code, name, township="桐浦乡", county="柳城县", **more) -> dict:
    """A village row as stored: every column (the ones not given are NULL; a position's datum
    is wgs84 unless given)."""
    row = {"code": code, "name": name, "township": township, "county": county} | {
        "county_class": 2,
        "households": None,
        "lat": None,
        "lon": None,
        "datum": None,
        "position_source": None,
        **more,
    }
    if row["lat"] is not None and row["datum"] is None:
        row["datum"] = "wgs84"
    return row


YUNYU = village("450222101001", "云屿村", households=203, lat=24.76521, lon=109.30183)
DONGTOU = village("450222101002", "东头村")
SHILING = village("450222102001", "石岭村", township="石岭镇")
ELSEWHERE = village("450223101001", "外县村", township="别乡", county="别县")


@pytest.fixture
def store(any_store):
    any_store.upsert_villages([YUNYU, DONGTOU, SHILING, ELSEWHERE], at=AT)
    return any_store


def changes(store) -> list[tuple]:
    return [
        tuple(r.values())
        for r in store.rows("SELECT entity, entity_id, village_code, at FROM changes ORDER BY seq")
    ]


def test_a_new_database_is_empty_until_villages_are_loaded(any_store):
    assert any_store.is_empty()
    assert any_store.villages() == []
    any_store.upsert_villages([DONGTOU], at=AT)
    assert not any_store.is_empty()


def test_villages_are_stored_whole_and_each_is_a_change(store):
    assert store.village(YUNYU["code"]) == YUNYU
    assert store.village(DONGTOU["code"]) == DONGTOU | {
        "households": None,
        "lat": None,
        "lon": None,
    }
    assert store.village("000000000000") is None
    assert changes(store) == [
        ("village", v["code"], v["code"], AT) for v in (YUNYU, DONGTOU, SHILING, ELSEWHERE)
    ]


def test_an_upsert_replaces_the_village_and_leaves_out_columns_as_null(store):
    later = "2026-12-01T00:00:00.000+00:00"
    renamed = {k: v for k, v in YUNYU.items() if k not in ("lat", "lon")} | {"name": "云屿新村"}
    new = {k: v for k, v in village("450222101003", "新村").items() if v is not None}
    store.upsert_villages([renamed, new], at=later)
    assert store.village(YUNYU["code"]) == YUNYU | {
        "name": "云屿新村",
        "lat": None,
        "lon": None,
        "datum": None,
    }
    assert store.village("450222101003") == village("450222101003", "新村")
    assert changes(store)[-2:] == [
        ("village", YUNYU["code"], YUNYU["code"], later),
        ("village", "450222101003", "450222101003", later),
    ]


def test_a_row_with_an_unknown_column_writes_nothing(store):
    before = changes(store)
    with pytest.raises(ValueError, match="population"):
        store.upsert_villages(
            [village("450222101009", "新村"), {"code": "x", "population": 9}], at=AT
        )
    assert store.village("450222101009") is None
    assert changes(store) == before


def test_villages_are_listed_by_code_all_or_some(store):
    assert [v["code"] for v in store.villages()] == sorted(
        v["code"] for v in (YUNYU, DONGTOU, SHILING, ELSEWHERE)
    )
    assert store.villages(iter([SHILING["code"], YUNYU["code"], "nope"])) == [YUNYU, SHILING]
    assert store.villages([]) == []


def test_village_codes_by_township_and_county(store):
    assert store.village_codes_where(township="桐浦乡") == [YUNYU["code"], DONGTOU["code"]]
    county = [YUNYU["code"], DONGTOU["code"], SHILING["code"]]
    assert store.village_codes_where(county="柳城县") == county
    assert store.village_codes_where(county="450222") == county  # by code prefix
    assert store.village_codes_where(township="石岭镇", county="450222") == [SHILING["code"]]
    assert store.village_codes_where(township="石岭镇", county="别县") == []
    assert store.village_codes_where() == sorted(county + [ELSEWHERE["code"]])


def test_a_position_keeps_its_datum_and_source(any_store):
    amap = village(
        "450222101005", "高德村", lat=24.7, lon=109.3, datum="gcj02",
        position_source="register_import",
    )  # fmt: skip
    any_store.upsert_villages([amap], at=AT)
    assert any_store.village(amap["code"]) == amap
    bare = {"code": "450222101006", "name": "无源村", "township": "桐浦乡", "county": "柳城县",
            "county_class": 2, "lat": 24.7, "lon": 109.3}  # fmt: skip
    any_store.upsert_villages([bare], at=AT)
    stored = any_store.village(bare["code"])
    assert (stored["datum"], stored["position_source"]) == ("wgs84", None)


@pytest.mark.parametrize(
    "bad", [{"datum": "mars"}, {"datum": "GCJ-02"}, {"position_source": "guess"}]
)
def test_an_unknown_datum_or_source_writes_nothing(any_store, bad):
    with pytest.raises(ValueError):
        any_store.upsert_villages(
            [village("450222101007", "坏村", lat=24.7, lon=109.3, **bad)], at=AT
        )
    assert any_store.village("450222101007") is None
