"""Indicators: the pure counting and judging, and the dashboard page with its scope."""

import re
from datetime import UTC, datetime

import pytest
from conftest import SHILING, YUNYU
from desk_helpers import desk_session

from server import indicators
from server.jobs import JobContext, recompute_indicators

V = [
    {"code": "a1", "name": "甲村", "township": "甲乡", "county": "X县", "county_class": 2,
     "households": 10},
    {"code": "a2", "name": "乙村", "township": "甲乡", "county": "X县", "county_class": 2,
     "households": 5},
    {"code": "b1", "name": "丙村", "township": "乙镇", "county": "X县", "county_class": 2,
     "households": 8},
]  # fmt: skip


def toilet(village, *, sanitary=True, harmless=True, in_use=True, status="active", t="household",
           open_to_public=None):  # fmt: skip
    return {"village_code": village, "kind": "toilet", "type": t, "status": status,
            "sanitary": sanitary, "harmless": harmless, "in_use": in_use,
            "open_to_public": open_to_public}  # fmt: skip


def facility(village, kind, t, **fields):
    return {"village_code": village, "kind": kind, "type": t, "status": "active", **fields}


def test_toilet_rates_count_active_registered_household_toilets():
    rows = [
        *(toilet("a1") for _ in range(48)),
        toilet("a1", harmless=False),
        toilet("a1", in_use=False),  # sanitary but out of use: not counted
        toilet("a1", status="retired", sanitary=False),  # retired: not in the denominator
        toilet("a1", t="committee", open_to_public=True),  # not a household toilet
    ]
    facts = indicators.village_facts(V, rows)["a1"]
    assert (facts["household_toilets"], facts["sanitary"], facts["harmless"]) == (50, 49, 48)
    cells = indicators.evaluate(facts, level="village", county_class=2, tidiness_target=75)
    assert cells["sanitary"]["value"] == pytest.approx(0.98) and cells["sanitary"]["met"]
    assert cells["harmless"]["value"] == pytest.approx(0.96) and cells["harmless"]["met"]
    cells = indicators.evaluate(facts, level="village", county_class=1, tidiness_target=75)
    assert cells["sanitary"]["met"] is False and cells["sanitary"]["target"] == 1.0
    assert cells["harmless"]["met"] is True  # 96% >= 90%


@pytest.mark.parametrize(
    ("klass", "sanitary", "harmless"), [(1, 1.00, 0.90), (2, 0.98, 0.88), (3, 0.96, 0.85)]
)
def test_targets_follow_the_county_class(klass, sanitary, harmless):
    assert indicators.TARGETS[klass] == (sanitary, harmless)
    facts = indicators.village_facts(V, [toilet("a1")] * 3)["a1"]
    cells = indicators.evaluate(facts, level="village", county_class=klass, tidiness_target=75)
    assert cells["sanitary"]["target"] == sanitary and cells["harmless"]["target"] == harmless


def test_no_household_toilets_is_no_data_not_a_failure():
    facts = indicators.village_facts(V, [])["a1"]
    cells = indicators.evaluate(facts, level="village", county_class=2, tidiness_target=75)
    assert cells["sanitary"]["value"] is None and cells["sanitary"]["met"] is None
    assert cells["tidiness"]["met"] is None and cells["tasks"]["met"] is None


def test_committee_toilet_must_be_open_and_in_use():
    rows = [
        toilet("a1", t="committee", open_to_public=True),
        toilet("a2", t="committee", open_to_public=False),
        toilet("b1", t="committee", open_to_public=True, in_use=False),
    ]
    facts = indicators.village_facts(V, rows)
    assert [facts[c]["committee_ok"] for c in ("a1", "a2", "b1")] == [1, 0, 0]
    report = indicators.report(V, facts, visible={"a1", "a2", "b1"}, tidiness_target=75)
    town = {t["name"]: t for t in report["townships"]}["甲乡"]
    assert town["cells"]["committee"]["text"] == "1/2 村" and not town["cells"]["committee"]["met"]


def test_rubbish_villages_run_and_the_township_has_a_running_transfer_station():
    rows = [
        facility("a1", "rubbish", "collection_point", running=True),
        facility("a2", "rubbish", "bin_group", running=True),
        facility("a2", "rubbish", "transfer_station", running=True),
        facility("b1", "rubbish", "collection_point", running=False),
    ]
    facts = indicators.village_facts(V, rows)
    report = indicators.report(V, facts, visible={"a1", "a2", "b1"}, tidiness_target=75)
    towns = {t["name"]: t["cells"]["rubbish"]["met"] for t in report["townships"]}
    assert towns == {"甲乡": True, "乙镇": False}
    assert report["counties"][0]["cells"]["rubbish"]["met"] is False


def test_each_township_needs_a_micro_fire_station_and_a_publicity_point():
    rows = [
        facility("a1", "fire", "micro_station"),
        facility("a2", "fire", "publicity_point"),
        facility("b1", "fire", "micro_station"),
    ]
    report = indicators.report(
        V, indicators.village_facts(V, rows), visible={"a1", "a2", "b1"}, tidiness_target=75
    )
    assert {t["name"]: t["cells"]["fire"]["met"] for t in report["townships"]} == {
        "甲乡": True,
        "乙镇": False,
    }
    county = report["counties"][0]["cells"]["fire"]
    assert county["text"] == "1/2 乡镇" and county["met"] is False
    assert report["villages"][0]["cells"]["fire"]["met"] is None  # judged per township


def test_tidiness_is_the_average_of_the_zones_scores():
    rows = [
        facility("a1", "zone", "village", score=90),
        facility("a1", "zone", "hamlet", score=70),
        facility("a2", "zone", "street", score=50),
        facility("a2", "zone", "market"),  # not inspected yet
    ]
    facts = indicators.village_facts(V, rows)
    cells = indicators.evaluate(facts["a1"], level="village", county_class=2, tidiness_target=75)
    assert cells["tidiness"]["value"] == 80 and cells["tidiness"]["met"]
    report = indicators.report(V, facts, visible={"a1", "a2"}, tidiness_target=75)
    town = report["townships"][0]["cells"]["tidiness"]
    assert town["value"] == pytest.approx(70) and town["met"] is False


def test_task_completion_counts_overdue_and_undone_past_due():
    rows = [
        {"village_code": "a1", "status": "done", "due_on": "2026-11-30", "n": 5},
        {"village_code": "a1", "status": "overdue", "due_on": "2026-11-15", "n": 1},
        {"village_code": "a1", "status": "not_started", "due_on": "2026-11-30", "n": 2},
        {"village_code": "a2", "status": "in_progress", "due_on": "2026-11-15", "n": 1},
    ]
    facts = indicators.village_facts(V, [], rows, today="2026-11-20")
    assert (facts["a1"]["tasks"], facts["a1"]["tasks_done"], facts["a1"]["tasks_overdue"]) == (
        8,
        5,
        1,
    )
    assert facts["a2"]["tasks_overdue"] == 1  # not marked yet, but past due
    cells = indicators.evaluate(facts["a1"], level="village", county_class=2, tidiness_target=75)
    assert cells["tasks"]["value"] == pytest.approx(5 / 8) and cells["tasks"]["met"] is False


def test_a_viewer_sees_only_their_villages_and_no_county_total():
    facts = indicators.village_facts(V, [toilet("a1"), toilet("b1", sanitary=False)])
    report = indicators.report(V, facts, visible={"a1"}, tidiness_target=75)
    assert [v["code"] for v in report["villages"]] == ["a1"]
    assert [t["name"] for t in report["townships"]] == ["甲乡"]
    assert report["townships"][0]["partial"] is True
    assert report["townships"][0]["facts"]["household_toilets"] == 1
    assert report["counties"] == []


# -- the page -------------------------------------------------------------------------------------


def login(client, store, username):
    desk_session(client, store, username)


def village_names(html):
    return set(re.findall(r'<th scope="row">([^<（]+?村)', html))


def test_the_dashboard_shows_a_supervisor_only_their_township(client, store):
    login(client, store, "supervisor")
    response = client.get("/desk/indicators")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert village_names(html) == {"云屿村", "桐浦村", "下垌村"}
    assert "石岭村" not in html and "石岭镇" not in html
    assert "全县" not in html.split("<h2>厕所普及率")[0]
    assert "<svg" in html and "达标" in html
    assert "台账登记的户厕" in html  # the denominator is explained on the page
    assert "立即重新计算" not in html  # admins only


def test_the_dashboard_shows_an_admin_the_county(client, store):
    login(client, store, "admin")
    html = client.get("/desk/indicators?month=2026-11").get_data(as_text=True)
    assert len(village_names(html)) == 5
    assert "<h2>全县</h2>" in html and "柳城县" in html
    assert "尚无 2026-11 的指标快照" in html  # computed live


def test_the_dashboard_reads_the_snapshot_when_there_is_one(client, store, app):
    when = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
    recompute_indicators(JobContext(store, when, app.config, month="2026-11"))
    login(client, store, "admin")
    html = client.get("/desk/indicators?month=2026-11").get_data(as_text=True)
    assert "数据计算于 2026-11-20T01:30:00.000+00:00" in html


def test_the_numbers_on_the_page_are_the_viewers_villages(client, store):
    login(client, store, "supervisor")
    html = client.get("/desk/indicators").get_data(as_text=True)
    toilets = sum(
        1
        for v in (YUNYU, "450222101002", "450222101003")
        for f in store.facilities(v)
        if f["kind"] == "toilet"
        and f["state"]["toilet_type"]["value"] == "household"
        and f["state"]["status"]["value"] == "active"  # the demo has a retired one
    )
    assert f"/{toilets} 户厕" in html
    assert SHILING not in html


def test_inspectors_get_403_and_strangers_go_to_login(client, store):
    assert client.get("/desk/indicators").status_code == 302
    login(client, store, "inspector")
    assert client.get("/desk/indicators").status_code == 403


def test_a_bad_month_is_400(client, store):
    login(client, store, "admin")
    assert client.get("/desk/indicators?month=2026-13").status_code == 400


def test_recompute_needs_an_admin_and_the_csrf_token(client, store):
    login(client, store, "admin")
    assert client.post("/desk/indicators/recompute", data={"month": "2026-11"}).status_code == 400
    assert store.indicator_snapshot("2026-11") is None
    response = client.post(
        "/desk/indicators/recompute", data={"month": "2026-11", "csrf_token": "token"}
    )
    assert response.status_code == 302 and "month=2026-11" in response.location
    assert store.indicator_snapshot("2026-11") is not None
    assert store.job_runs("recompute-indicators")[0]["holder"].startswith("web:admin:")
    login(client, store, "supervisor")
    response = client.post(
        "/desk/indicators/recompute", data={"month": "2026-11", "csrf_token": "token"}
    )
    assert response.status_code == 403
