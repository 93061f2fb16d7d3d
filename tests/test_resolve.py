"""A supervisor settles a conflict: a new server observation that saw both reports.

Two phones report the same toilet differently while offline (as in test_conflict_scenario);
the supervisor keeps one value or enters another on /desk/conflicts/<id>; the record then
holds that value, the conflict is resolved by the new observation, and phones pull it.
"""

import pytest
from conftest import YUNYU, Phone, submission, toilet_answers
from test_supervisor import add_user, csrf_of, login_page

from server import resolve
from sync.clock import Clock, decode, encode


def _uuid(n):
    return f"00000000-0000-4000-8000-{n:012d}"


def make_conflict(client, toilet, field, a_answers, b_answers, n=1):
    """Phones A and B pulled, went offline and inspected; returns (phones, conflict row)."""
    a = Phone(client, "inspector", device_id=f"phone-a{n}")
    b = Phone(client, "inspector", device_id=f"phone-b{n}")
    base = next(f for f in a.pull_all()["facilities"] if f["id"] == toilet)["clocks"]
    b.pull_all()
    reports = [
        submission(
            toilet, a.clock(minutes=5 + 60 * n), base=base, sub_id=_uuid(n), answers=a_answers
        ),
        submission(
            toilet, b.clock(minutes=9 + 60 * n), base=base, sub_id=_uuid(n + 1), answers=b_answers
        ),
    ]
    for phone, report in zip((a, b), reports, strict=True):
        assert phone.push([report]).json["results"][0]["status"] == "waiting_for_photos"
    history = client.get(f"/api/v1/facilities/{toilet}/history", headers=a.headers).json
    mine = [
        c
        for c in history["conflicts"]
        if {c["a"], c["b"]} == {_uuid(n), _uuid(n + 1)} and c["field"] == field
    ]
    assert len(mine) == 1, history["conflicts"]
    return (a, b), mine[0]


@pytest.fixture
def toilet(facilities):
    return facilities[(YUNYU, "toilet")]["id"]


@pytest.fixture
def sanitary_conflict(client, toilet):
    return make_conflict(
        client,
        toilet,
        "sanitary",
        toilet_answers(sanitary=True, harmless=True),
        toilet_answers(sanitary=False, harmless=None),
    )


@pytest.fixture
def construction_conflict(client, toilet):
    return make_conflict(
        client,
        toilet,
        "construction",
        toilet_answers(construction="septic3"),
        toilet_answers(construction="double_urn"),
        n=11,
    )


def test_conflicts_queue_lists_open_conflicts_with_chinese_labels(client, sanitary_conflict):
    _, conflict = sanitary_conflict
    login_page(client, "supervisor")
    html = client.get("/desk/conflicts").get_data(as_text=True)
    assert f"/desk/conflicts/{conflict['id']}" in html
    assert "陈朝光户厕" in html and "是卫生厕所" in html and "（暂显示）" in html
    page = client.get(f"/desk/conflicts/{conflict['id']}").get_data(as_text=True)
    assert "报告一" in page and "报告二" in page and "phone-a1" in page and "phone-b1" in page
    assert 'class="differs"' in page  # the answers that differ are marked
    assert 'name="seen"' in page


def test_keeping_bs_value_is_a_server_observation_that_resolves_the_conflict(
    client, store, toilet, sanitary_conflict
):
    (a, _), conflict = sanitary_conflict
    b_side = "b" if conflict["b"] == _uuid(2) else "a"  # B's report, whichever id sorts first
    csrf = login_page(client, "supervisor")
    response = client.post(
        f"/desk/conflicts/{conflict['id']}/resolve", data={"choice": b_side, "csrf_token": csrf}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    row = store.desk_conflict(conflict["id"])
    resolver = row["resolved_by"]
    assert resolver and resolver not in (_uuid(1), _uuid(2))
    obs = store.observations_since([toilet], 0)
    new = next(o for o in obs if o["id"] == resolver)
    clocks = store.observation_clocks([_uuid(1), _uuid(2)])
    assert new["fields"] == {"sanitary": False}
    assert decode(new["clock"]).device == "server"
    assert new["base"]["sanitary"] >= max(clocks.values())
    assert new["clock"] > max(clocks.values())
    entry = store.facility(toilet)["state"]["sanitary"]
    assert entry == {"value": False, "clock": new["clock"], "by": resolver}
    audit = [e for e in store.audit_entries(entity_id=conflict["id"])]
    assert audit[0]["action"] == "conflict.resolve"
    # A phone pulling gets the new value and its clock.
    record = next(f for f in a.pull_all()["facilities"] if f["id"] == toilet)
    assert record["fields"]["sanitary"] is False
    assert record["clocks"]["sanitary"] == new["clock"]
    # The conflict leaves the open list; the page says who settled it.
    assert conflict["id"] not in client.get("/desk/conflicts").get_data(as_text=True)
    page = client.get(f"/desk/conflicts/{conflict['id']}").get_data(as_text=True)
    assert "已处理" in page and "覃志强" in page and "确定正确的值" not in page


def test_keeping_as_value_overrides_the_clock_winner(client, store, toilet, sanitary_conflict):
    (a, _), conflict = sanitary_conflict
    assert store.facility(toilet)["state"]["sanitary"]["value"] is False  # B is newer
    a_side = "a" if conflict["a"] == _uuid(1) else "b"
    csrf = login_page(client, "supervisor")
    client.post(
        f"/desk/conflicts/{conflict['id']}/resolve", data={"choice": a_side, "csrf_token": csrf}
    )
    assert store.facility(toilet)["state"]["sanitary"]["value"] is True
    record = next(f for f in a.pull_all()["facilities"] if f["id"] == toilet)
    assert record["fields"]["sanitary"] is True


def test_entering_a_third_value(client, store, toilet, construction_conflict):
    (a, b), conflict = construction_conflict
    csrf = login_page(client, "supervisor")
    response = client.post(
        f"/desk/conflicts/{conflict['id']}/resolve",
        data={"choice": "other", "value": "biogas", "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert store.facility(toilet)["state"]["construction"]["value"] == "biogas"
    assert store.desk_conflict(conflict["id"])["resolved_by"]
    for phone in (a, b):
        record = next(f for f in phone.pull_all()["facilities"] if f["id"] == toilet)
        assert record["fields"]["construction"] == "biogas"


@pytest.mark.parametrize(
    "which, value, message",
    [
        ("construction_conflict", "palace", "请从可选项中选择"),
        ("construction_conflict", "", "请从可选项中选择"),
        ("sanitary_conflict", "maybe", "请选择“是”或“否”"),
        ("sanitary_conflict", None, "请选择保留哪一个值"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_and_nothing_changes(
    request, client, store, toilet, which, value, message
):
    _, conflict = request.getfixturevalue(which)
    before = store.facility(toilet)["state"]
    count = len(store.observations_since([toilet], 0))
    csrf = login_page(client, "supervisor")
    data = {"csrf_token": csrf}
    if value is not None:
        data.update(choice="other", value=value)
    response = client.post(f"/desk/conflicts/{conflict['id']}/resolve", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert store.desk_conflict(conflict["id"])["resolved_by"] is None
    assert store.facility(toilet)["state"] == before
    assert len(store.observations_since([toilet], 0)) == count


def test_without_csrf_or_from_another_township_nothing_changes(
    client, store, toilet, sanitary_conflict
):
    _, conflict = sanitary_conflict
    before = store.facility(toilet)["state"]
    login_page(client, "supervisor")
    response = client.post(f"/desk/conflicts/{conflict['id']}/resolve", data={"choice": "a"})
    assert response.status_code == 400
    client.post("/logout", data={"csrf_token": csrf_of(client)})
    add_user(store, "shiling")
    csrf = login_page(client, "shiling", "Pw-12345678")
    assert client.get(f"/desk/conflicts/{conflict['id']}").status_code == 404
    assert conflict["id"] not in client.get("/desk/conflicts?show=all").get_data(as_text=True)
    response = client.post(
        f"/desk/conflicts/{conflict['id']}/resolve", data={"choice": "a", "csrf_token": csrf}
    )
    assert response.status_code == 404
    assert store.desk_conflict(conflict["id"])["resolved_by"] is None
    assert store.facility(toilet)["state"] == before


def test_a_resolved_conflict_cannot_be_resolved_again(client, store, toilet, sanitary_conflict):
    _, conflict = sanitary_conflict
    csrf = login_page(client, "supervisor")
    url = f"/desk/conflicts/{conflict['id']}/resolve"
    assert client.post(url, data={"choice": "a", "csrf_token": csrf}).status_code == 302
    count = len(store.observations_since([toilet], 0))
    again = client.post(url, data={"choice": "b", "csrf_token": csrf})
    assert again.status_code == 400 and "已经处理过了" in again.get_data(as_text=True)
    assert len(store.observations_since([toilet], 0)) == count


def test_a_report_newer_than_the_page_is_not_silently_overruled(
    client, store, toilet, sanitary_conflict
):
    """The resolution saw what the page showed; a report that arrived later and saw neither
    side conflicts with the resolution instead of being overwritten unseen."""
    _, conflict = sanitary_conflict
    csrf = login_page(client, "supervisor")
    page = client.get(f"/desk/conflicts/{conflict['id']}").get_data(as_text=True)
    seen = page.split('name="seen" value="')[1].split('"')[0]
    c = Phone(client, "inspector", device_id="phone-c")
    late = submission(toilet, c.clock(minutes=200), answers=toilet_answers(sanitary=True))
    assert c.push([late]).status_code == 200  # pushed while the page was open
    response = client.post(
        f"/desk/conflicts/{conflict['id']}/resolve",
        data={"choice": "other", "value": "false", "seen": seen, "csrf_token": csrf},
    )
    assert response.status_code == 302
    resolver = store.desk_conflict(conflict["id"])["resolved_by"]
    assert resolver
    open_pairs = [
        {x["a"], x["b"]}
        for x in store.conflicts(record_id=toilet)
        if not x["resolved_by"] and x["field"] == "sanitary"
    ]
    assert {resolver, late["id"]} in open_pairs
    assert store.facility(toilet)["state"]["sanitary"]["value"] is False  # newest clock stands
    # The new conflict's page shows the server's side as the earlier resolution.
    new = next(
        x for x in store.conflicts(record_id=toilet) if {x["a"], x["b"]} == {resolver, late["id"]}
    )
    page = client.get(f"/desk/conflicts/{new['id']}")
    assert page.status_code == 200
    assert "服务器记录的一次处理结果" in page.get_data(as_text=True)


# -- pure parts ------------------------------------------------------------------------------


TOILET = {
    "fields": [
        {"name": "sanitary", "type": "yes_no", "label": {"zh": "是卫生厕所", "en": "x"}},
        {"name": "harmless", "type": "yes_no", "label": {"zh": "是无害化卫生厕所", "en": "x"}},
        {
            "name": "construction",
            "type": "select_one",
            "label": {"zh": "改厕类型", "en": "x"},
            "choices": [
                {"value": "septic3", "label": {"zh": "三格化粪池式", "en": "x"}},
                {"value": "biogas", "label": {"zh": "三联通沼气池式", "en": "x"}},
            ],
        },
        {
            "name": "hazards",
            "type": "select_many",
            "label": {"zh": "隐患", "en": "x"},
            "choices": [
                {"value": "leaking", "label": {"zh": "渗漏", "en": "x"}},
                {"value": "cover_missing", "label": {"zh": "盖板缺失", "en": "x"}},
            ],
        },
        {"name": "count", "type": "integer", "label": {"zh": "数量", "en": "x"}},
        {"name": "score", "type": "decimal", "label": {"zh": "得分", "en": "x"}},
    ],
    "updates": {
        "sanitary": "${sanitary}",
        "harmless": "if(${sanitary}, ${harmless}, false())",
        "construction": "${construction}",
        "hazards": "${hazards}",
        "extinguisher_count": "${count}",
        "score": "${score}",
        "last_inspected": "${observed_on}",
    },
}


def test_field_spec_reads_the_type_from_the_form():
    spec = resolve.field_spec(TOILET, "sanitary")
    assert spec["type"] == "bool" and spec["label"] == "是卫生厕所"
    assert resolve.field_spec(TOILET, "harmless")["type"] == "bool"
    construction = resolve.field_spec(TOILET, "construction")
    assert construction["type"] == "choice"
    assert ("biogas", "三联通沼气池式") in construction["choices"]
    assert resolve.field_spec(TOILET, "hazards")["type"] == "multi"
    assert resolve.field_spec(TOILET, "extinguisher_count")["type"] == "integer"
    assert resolve.field_spec(TOILET, "score")["type"] == "number"
    assert resolve.field_spec(TOILET, "last_inspected")["type"] == "date"
    status = resolve.field_spec(None, "status", record_type="task")
    assert status["type"] == "choice" and ("overdue", "逾期") in status["choices"]
    assert resolve.field_spec(None, "mystery", [3, 4])["type"] == "integer"


@pytest.mark.parametrize(
    "field, raw, value",
    [
        ("sanitary", "true", True),
        ("sanitary", "false", False),
        ("sanitary", "否", False),
        ("construction", "biogas", "biogas"),
        ("hazards", ["cover_missing", "leaking", "leaking"], ["leaking", "cover_missing"]),
        ("hazards", [], []),
        ("extinguisher_count", "6", 6),
        ("extinguisher_count", "6.0", 6),
        ("score", "92.5", 92.5),
        ("score", "90", 90),
        ("last_inspected", "2026-11-20", "2026-11-20"),
    ],
)
def test_parse_value_accepts_values_of_the_fields_type(field, raw, value):
    parsed = resolve.parse_value(resolve.field_spec(TOILET, field), raw)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    "field, raw",
    [
        ("sanitary", ""),
        ("sanitary", "1.5"),
        ("construction", "palace"),
        ("hazards", ["flood"]),
        ("extinguisher_count", "six"),
        ("extinguisher_count", "6.5"),
        ("extinguisher_count", "nan"),
        ("score", "inf"),
        ("last_inspected", "2026-02-30"),
        ("last_inspected", "20.11.2026"),
    ],
)
def test_parse_value_refuses_values_of_another_type(field, raw):
    with pytest.raises(resolve.ResolveError):
        resolve.parse_value(resolve.field_spec(TOILET, field), raw)


def test_display_value_in_chinese():
    spec = resolve.field_spec(TOILET, "hazards")
    assert resolve.display_value(spec, ["leaking", "cover_missing"]) == "渗漏、盖板缺失"
    assert resolve.display_value(spec, []) == "（无）"
    assert resolve.display_value(resolve.field_spec(TOILET, "sanitary"), True) == "是"
    assert resolve.display_value(spec, None) == "—"


def test_resolution_observation_has_seen_both_sides():
    a = encode(Clock(1_000, 0, "phone-a"))
    b = encode(Clock(2_000, 3, "phone-b"))
    seen = encode(Clock(1_500, 0, "phone-c"))
    server = Clock(5_000, 0, "server")
    conflict = {"a": "x", "b": "y", "record_id": "r", "field": "sanitary"}
    obs = resolve.resolution_observation(
        conflict, True, clocks={"x": a, "y": b}, server_clock=server, seen=seen
    )
    assert obs.fields == {"sanitary": True} and obs.clock == server
    assert obs.base == {"sanitary": decode(b)}
    later_seen = encode(Clock(3_000, 0, "phone-c"))
    obs = resolve.resolution_observation(
        conflict, True, clocks={"x": a, "y": b}, server_clock=server, seen=later_seen
    )
    assert obs.base == {"sanitary": decode(later_seen)}
    with pytest.raises(resolve.ResolveError):
        resolve.resolution_observation(
            conflict,
            True,
            clocks={"x": a, "y": b},
            server_clock=Clock(1_000, 0, "server"),
            seen=None,
        )
