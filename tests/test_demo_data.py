"""The demo county (server/demo/county.json) is coherent and follows docs/CONTRACTS.md."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "server" / "demo" / "county.json"
CONTRACTS = ROOT / "docs" / "CONTRACTS.md"

ROLES = ("inspector", "secretary", "supervisor", "admin")
MAX_DISTANCE_M = 1500


@pytest.fixture(scope="module")
def demo() -> dict:
    return json.loads(DEMO.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def villages(demo) -> dict[str, dict]:
    return {v["code"]: v for v in demo["villages"]}


def contract_fields() -> dict[str, dict[str, list[str] | None]]:
    """kind -> {field: enum values or None}, read from the table in docs/CONTRACTS.md."""
    kinds: dict[str, dict[str, list[str] | None]] = {}
    for line in CONTRACTS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        fields: dict[str, list[str] | None] = {}
        for name, paren in re.findall(r"`(\w+)`\s*(?:\(([^)]*)\))?", cells[2]):
            values = [v.strip() for v in paren.split("/")] if " / " in paren else None
            fields[name] = values
        fields["status"] = ["active", "retired"]
        kinds[cells[0].strip("`")] = fields
    return kinds


CONTRACT = contract_fields()
TYPE_FIELD = {
    "toilet": "toilet_type",
    "rubbish": "rubbish_type",
    "fire": "fire_type",
    "zone": "zone_type",
}
BOOL_FIELDS = {
    "sanitary", "harmless", "in_use", "open_to_public", "running", "overflow", "sorted",
    "equipment_ok", "access_clear",
}  # fmt: skip
DATE_FIELDS = {"last_inspected", "last_cleared", "next_expiry"}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371000 * math.asin(math.sqrt(a))


def test_contract_table_was_read():
    assert set(CONTRACT) == {"toilet", "rubbish", "fire", "zone"}
    assert CONTRACT["toilet"]["construction"] == [
        "septic3", "double_urn", "sewer", "urine_diversion", "biogas", "other",
    ]  # fmt: skip
    assert "last_inspected" in CONTRACT["rubbish"]


def test_county(demo):
    county = demo["county"]
    assert re.fullmatch(r"[0-9]{6}", county["code"])
    assert county["name"].endswith("县")
    assert county["county_class"] == 2


def test_villages(demo, villages):
    county = demo["county"]
    assert len(villages) == len(demo["villages"]), "duplicate village code"
    for v in demo["villages"]:
        assert re.fullmatch(r"[0-9]{12}", v["code"])
        assert v["code"].startswith(county["code"])
        assert v["county"] == county["name"]
        assert v["county_class"] == county["county_class"]
        assert v["name"].endswith("村")
        assert v["township"].endswith(("乡", "镇"))
        assert isinstance(v["households"], int) and v["households"] > 0
        assert 20 < v["lat"] < 27 and 104 < v["lon"] < 113, "not in Guangxi"
    names = [v["name"] for v in demo["villages"]]
    assert len(set(names)) == len(names)


def test_yunyu_village_from_seed_001(demo):
    yunyu = [v for v in demo["villages"] if v["name"] == "云屿村"]
    assert len(yunyu) == 1
    assert yunyu[0]["township"] == "桐浦乡"
    assert 180 <= yunyu[0]["households"] <= 220


def test_townships(demo):
    by_township = Counter(v["township"] for v in demo["villages"])
    assert by_township["桐浦乡"] >= 3
    assert len(by_township) >= 2, "a second township lets scoping by township be shown"


def test_users(demo, villages):
    users = demo["users"]
    usernames = [u["username"] for u in users]
    assert len(set(usernames)) == len(usernames)
    roles = Counter(u["role"] for u in users)
    assert set(roles) == set(ROLES)
    for u in users:
        assert u["display_name"]
        assert len(u["password"]) >= 10 and u["password"].lower() not in {"password", u["username"]}
        if u["role"] in ("inspector", "secretary"):
            assert u["villages"], u["username"]
            assert len(set(u["villages"])) == len(u["villages"])
            for code in u["villages"]:
                assert code in villages, (u["username"], code)
    for u in users:
        if u["role"] == "secretary":
            assert len(u["villages"]) == 1, "a first secretary is posted to one village"


def test_user_scopes(demo):
    townships = {v["township"] for v in demo["villages"]}
    for u in demo["users"]:
        if u["role"] == "supervisor":
            assert u["scope"]["township"] in townships
        if u["role"] == "admin":
            assert u["scope"]["county"] == demo["county"]["code"]


def test_inspectors_have_disjoint_villages(demo):
    inspectors = [set(u["villages"]) for u in demo["users"] if u["role"] == "inspector"]
    assert len(inspectors) >= 2, "a second inspector makes scoping testable"
    assert not inspectors[0] & inspectors[1]


def test_facility_ids_are_unique_uuid4(demo):
    ids = [f["id"] for f in demo["facilities"]]
    assert len(set(ids)) == len(ids)
    for fid in ids:
        parsed = uuid.UUID(fid)
        assert parsed.version == 4 and str(parsed) == fid


def test_facility_count(demo):
    assert 60 <= len(demo["facilities"]) <= 120


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_facility_fields_follow_contract(demo, villages, kind):
    facilities = [f for f in demo["facilities"] if f["kind"] == kind]
    assert facilities, f"no {kind} facility"
    spec = CONTRACT[kind]
    for f in facilities:
        assert set(f) == {"id", "village", "kind", "name", "lat", "lon", "fields"}
        assert f["village"] in villages
        assert f["name"]
        fields = f["fields"]
        expected = set(spec)
        if kind == "toilet" and fields["toilet_type"] == "household":
            expected.discard("open_to_public")  # public toilets only
        assert set(fields) == expected, f["name"]
        for name, value in fields.items():
            if spec[name] is not None:
                assert value in spec[name], (f["name"], name, value)
            if name in BOOL_FIELDS:
                assert isinstance(value, bool), (f["name"], name)
            if name in DATE_FIELDS and value is not None:
                assert dt.date.fromisoformat(value).year in (2026, 2027), (f["name"], name)
        assert fields["last_inspected"] is not None


def test_field_values_are_well_typed(demo):
    for f in demo["facilities"]:
        fields = f["fields"]
        if f["kind"] == "toilet":
            assert isinstance(fields["hazards"], list)
            assert all(isinstance(h, str) for h in fields["hazards"])
            if not fields["sanitary"]:
                assert not fields["harmless"], "harmless is asked only when sanitary"
        if f["kind"] == "fire":
            assert (
                isinstance(fields["extinguisher_count"], int) and fields["extinguisher_count"] >= 0
            )
            if fields["extinguisher_count"]:
                assert fields["next_expiry"] is not None
        if f["kind"] == "zone":
            assert 0 <= fields["score"] <= 100
            assert fields["grade"]
            assert all(isinstance(i, str) for i in fields["failed_items"])
            assert (fields["score"] == 100) == (not fields["failed_items"])


def test_facilities_are_near_their_village(demo, villages):
    for f in demo["facilities"]:
        v = villages[f["village"]]
        d = distance_m(v["lat"], v["lon"], f["lat"], f["lon"])
        assert d <= MAX_DISTANCE_M, (f["name"], round(d))


def test_facility_names_unique_per_village(demo):
    names = Counter((f["village"], f["name"]) for f in demo["facilities"])
    assert [k for k, n in names.items() if n > 1] == []


def active(demo, kind, type_value=None):
    out = [f for f in demo["facilities"] if f["kind"] == kind and f["fields"]["status"] == "active"]
    if type_value is not None:
        out = [f for f in out if f["fields"][TYPE_FIELD[kind]] == type_value]
    return out


def test_every_type_of_every_kind_appears(demo):
    for kind, type_field in TYPE_FIELD.items():
        present = {f["fields"][type_field] for f in demo["facilities"] if f["kind"] == kind}
        assert present == set(CONTRACT[kind][type_field]), kind


def test_household_toilet_coverage_looks_real(demo, villages):
    household = active(demo, "toilet", "household")
    per_village = Counter(f["village"] for f in household)
    assert set(per_village) == set(villages)
    assert min(per_village.values()) >= 5
    sanitary = sum(f["fields"]["sanitary"] for f in household) / len(household)
    harmless = sum(f["fields"]["harmless"] for f in household) / len(household)
    assert 0.90 <= sanitary <= 0.99
    assert 0.80 <= harmless < sanitary


def test_each_village_has_a_committee_public_toilet(demo, villages):
    committee = Counter(f["village"] for f in active(demo, "toilet", "committee"))
    assert set(committee) == set(villages)
    assert set(committee.values()) == {1}


def test_each_township_has_transfer_station_and_fire_points(demo, villages):
    townships = {v["township"] for v in villages.values()}
    for type_value, kind in (
        ("transfer_station", "rubbish"),
        ("micro_station", "fire"),
        ("publicity_point", "fire"),
    ):
        found = Counter(villages[f["village"]]["township"] for f in active(demo, kind, type_value))
        assert set(found) == townships, type_value
        assert set(found.values()) == {1}, type_value


def test_some_records_are_retired(demo):
    retired = [f for f in demo["facilities"] if f["fields"]["status"] == "retired"]
    assert 1 <= len(retired) <= 5


def form_definition(name: str) -> dict:
    path = ROOT / "forms" / "definitions" / name
    return json.loads(path.read_text(encoding="utf-8"))


def test_hazards_are_choices_of_the_toilet_form(demo):
    form = form_definition("toilet.v1.json")
    [hazards] = [f for f in form["fields"] if f["name"] == "hazards"]
    choices = {c["value"] for c in hazards["choices"]}
    used = {h for f in demo["facilities"] if f["kind"] == "toilet" for h in f["fields"]["hazards"]}
    assert used and used <= choices


def test_zone_records_match_the_tidiness_form(demo):
    form = form_definition("tidiness.v1.json")
    [failed] = [f for f in form["fields"] if f["name"] == "failed_items"]
    items = set(failed["names_where"]["fields"])
    zones = [f["fields"] for f in demo["facilities"] if f["kind"] == "zone"]
    assert {i for z in zones for i in z["failed_items"]} <= items
    # same thresholds as the form's grade calculation
    for z in zones:
        s = z["score"]
        assert z["grade"] == ("优" if s >= 90 else "良" if s >= 75 else "中" if s >= 60 else "差")
