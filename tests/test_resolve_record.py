"""The desk settles every conflicting field of one record with one form (issue 12).

Two phones report one toilet differently on three items; /desk/records/<id>/conflicts lists
each item with its candidate values by their labels (never keys), one radio group per item;
one submit makes one server observation per item in one transaction, closes every conflict,
updates the record, and is refused without CSRF or outside the viewer's villages.
"""

import html
import json
import re

from conftest import YUNYU, toilet_answers
from test_resolve import _uuid, make_conflict
from test_supervisor import add_user, login_page

RADIO = re.compile(r'name="value:(\w+)" value="([^"]*)"')


def _toilet(facilities):
    return facilities[(YUNYU, "toilet")]["id"]


def _three_way(client, toilet):
    return make_conflict(
        client,
        toilet,
        "construction",
        toilet_answers(sanitary=True, harmless=True, construction="septic3", hazards=[]),
        toilet_answers(sanitary=False, harmless=None, construction="double_urn"),
    )


def test_one_form_settles_every_conflicting_field_of_a_record(client, store, facilities):
    toilet = _toilet(facilities)
    (a, b), _ = _three_way(client, toilet)
    open_before = {c["field"] for c in store.open_conflicts_of([toilet])}
    assert {"sanitary", "construction"} <= open_before
    csrf = login_page(client, "supervisor")
    listing = client.get("/desk/conflicts").get_data(as_text=True)
    assert f"/desk/records/{toilet}/conflicts" in listing
    page = client.get(f"/desk/records/{toilet}/conflicts").get_data(as_text=True)
    # Labels, not keys: the form's item labels and choice labels.
    assert "是卫生厕所" in page and "三格化粪池" in page and "双瓮漏斗" in page
    assert ">septic3<" not in page and "double_urn<" not in page
    radios = RADIO.findall(page)
    assert {f for f, _ in radios} == open_before  # one radio group per open field
    # Pick报告一 (phone A's) value everywhere: the first choice is the standing (B's) value.
    by_field = {}
    for field, key in radios:
        by_field.setdefault(field, []).append(html.unescape(key))
    a_values = {
        c["field"]: (c["a_value"] if c["a"] == _uuid(1) else c["b_value"])
        for c in store.open_conflicts_of([toilet])
    }
    data = {
        f"value:{f}": next(k for k in keys if json.loads(k) == a_values[f])
        for f, keys in by_field.items()
    }
    # Without the CSRF token nothing happens.
    refused = client.post(f"/desk/records/{toilet}/conflicts", data=data)
    assert refused.status_code in (400, 403)
    assert {c["field"] for c in store.open_conflicts_of([toilet])} == open_before
    done = client.post(f"/desk/records/{toilet}/conflicts", data={**data, "csrf_token": csrf})
    assert done.status_code == 302, done.get_data(as_text=True)
    assert store.open_conflicts_of([toilet]) == []
    state = store.facility(toilet)["state"]
    for field, value in a_values.items():
        assert state[field]["value"] == value
    resolvers = {
        c["resolved_by"] for c in store.conflicts(record_id=toilet) if c["field"] in a_values
    }
    assert len(resolvers) == len(a_values)  # one server observation per field
    # Phone B pulls A's values, and no conflicts; B's outcome says its values lost no more.
    body = b.pull_all()
    record = next(f for f in body["facilities"] if f["id"] == toilet)
    assert record["fields"]["construction"] == "septic3" and record["conflicts"] == []
    empty = client.get(f"/desk/records/{toilet}/conflicts").get_data(as_text=True)
    assert "没有待处理的冲突" in empty


def test_the_record_form_is_scoped_and_checks_its_choices(client, store, facilities):
    toilet = _toilet(facilities)
    _three_way(client, toilet)
    add_user(store, "far_sup", township="石岭镇")
    csrf = login_page(client, "far_sup", "Pw-12345678")
    assert client.get(f"/desk/records/{toilet}/conflicts").status_code == 404
    assert (
        client.post(f"/desk/records/{toilet}/conflicts", data={"csrf_token": csrf}).status_code
        == 404
    )
    client.get("/logout")
    csrf = login_page(client, "supervisor")
    # A missing field or a value that is no candidate is refused, and nothing is written.
    bad = client.post(
        f"/desk/records/{toilet}/conflicts",
        data={"csrf_token": csrf, "value:sanitary": "true", "value:construction": '"biogas"'},
    )
    assert bad.status_code == 400
    assert "请" in bad.get_data(as_text=True)
    assert store.open_conflicts_of([toilet])
