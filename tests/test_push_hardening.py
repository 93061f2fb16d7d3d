"""Issue 8, findings 1, 2, 4 and 9: pushes that used to stop sync, write out of scope or 500.

Through the Flask test client on a real SQLite file. Malformed bodies are sent as raw JSON text
(a lone surrogate is the escape "\\ud83d"; nesting 1,000 deep cannot even be made by json.dumps).
"""

import base64
import hashlib
import io
import json
import uuid

from conftest import SHILING, START, YUNYU, photo, submission, toilet_answers, upload_photo
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from server.demo import demo_data
from server.requests import MAX_DEPTH, TOO_DEEP, parse_json
from sync.clock import MAX_COUNTER, MAX_WALL_MS, Clock, decode, encode
from sync.protocol import too_far_ahead

TONGPU = "450222101002"  # 桐浦村: the inspector's and the supervisor's, not the secretary's
START_MS = int(START.timestamp() * 1000)
DAY_MS = 24 * 3600 * 1000
DEEP = "__DEEP__"  # push_text puts 1,000-deep nesting in its place


def deep(levels=1000):
    return "[" * levels + "]" * levels


def push_text(client, phone, items, **extra):
    """Push items given as Python values; DEEP placeholders become 1,000-deep nesting."""
    body = {"device_id": phone.device_id, "device_time_ms": phone.wall_ms, "items": items, **extra}
    text = json.dumps(body).replace(f'"{DEEP}"', deep())
    return client.post(
        "/api/v1/sync/push", data=text, content_type="application/json", headers=phone.headers
    )


def toilets(village):
    facilities = demo_data()["facilities"]
    return [f["id"] for f in facilities if f["village"] == village and f["kind"] == "toilet"][:5]


def new_facility(phone, **overrides):
    return {
        "type": "facility",
        "id": str(uuid.uuid4()),
        "village": YUNYU,
        "kind": "toilet",
        "name": "新登记户厕",
        "lat": 24.7651,
        "lon": 109.3020,
        "clock": phone.clock(),
        "fields": {"toilet_type": "household"},
        **overrides,
    }


def count(store, table):
    return store.scalar(f"SELECT count(*) FROM {table}")


def codes(result):
    return {e["code"] for errs in result.get("errors", {}).values() for e in errs}


# -- finding 1: clocks ---------------------------------------------------------------------


def test_largest_clock_is_restamped_and_sync_keeps_working_for_everybody(
    phone, make_phone, facilities, store
):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    top = encode(Clock(MAX_WALL_MS, MAX_COUNTER, phone.device_id))
    item = submission(toilet, top, answers=toilet_answers(sanitary=False, harmless=None))
    response = phone.push([item])
    assert response.status_code == 200, response.json
    result = response.json["results"][0]
    assert result["status"] == "waiting_for_photos" and result["clock_adjusted"] is True
    stored = decode(result["stored_clock"])
    assert stored.device == phone.device_id and abs(stored.wall_ms - START_MS) < 1000
    # Stored as sent (its identity does not change), ordered at the server's clock.
    assert store.submission(item["id"])["clock"] == top
    assert store.facility(toilet)["state"]["sanitary"]["clock"] == result["stored_clock"]
    assert decode(response.json["clock"]).wall_ms < START_MS + DAY_MS
    # Every other user still pulls and pushes.
    other = make_phone("inspector")
    pulled = other.pull()
    assert pulled.status_code == 200 and decode(pulled.json["clock"]).wall_ms < START_MS + DAY_MS
    later = submission(toilet, other.clock(minutes=1))
    assert other.push([later]).json["results"][0]["status"] == "waiting_for_photos"
    assert store.facility(toilet)["state"]["sanitary"]["value"] is True  # the later real report
    history = [s["id"] for s in store.submissions_of_record(toilet)]
    assert history.index(later["id"]) < history.index(item["id"])  # newest observation first


def test_a_phone_a_year_ahead_loses_to_a_later_real_report(make_phone, facilities, store, clock):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    ahead, honest = make_phone(), make_phone()
    wrong = submission(
        toilet, ahead.clock(minutes=365 * 24 * 60), answers=toilet_answers(in_use=False)
    )
    assert ahead.push([wrong]).json["results"][0]["clock_adjusted"] is True
    clock.advance(hours=1)
    right = submission(toilet, honest.clock(minutes=60), answers=toilet_answers(in_use=True))
    honest.push([right])
    assert store.facility(toilet)["state"]["in_use"]["value"] is True
    # and the server's clock was not dragged a year forward
    assert decode(honest.pull().json["clock"]).wall_ms < START_MS + DAY_MS


def test_clocks_within_the_limit_are_kept_as_sent(phone, facilities, store):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    item = submission(toilet, phone.clock(minutes=23 * 60))
    result = phone.push([item]).json["results"][0]
    assert "clock_adjusted" not in result
    assert store.facility(toilet)["state"]["sanitary"]["clock"] == item["clock"]


def test_a_clock_exactly_at_the_limit_is_kept_one_beyond_is_not():
    assert not too_far_ahead(Clock(START_MS + DAY_MS, 0, "p"), START_MS, DAY_MS)
    assert too_far_ahead(Clock(START_MS + DAY_MS + 1, 0, "p"), START_MS, DAY_MS)


def test_base_clocks_cannot_claim_to_have_seen_the_future(make_phone, facilities, store):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    a, b = make_phone(), make_phone()
    first = submission(toilet, a.clock(minutes=5), answers=toilet_answers(in_use=True))
    a.push([first])
    future = encode(Clock(MAX_WALL_MS, 0, "server"))
    second = submission(
        toilet, b.clock(minutes=6), answers=toilet_answers(in_use=False), base={"in_use": future}
    )
    b.push([second])
    base = store.scalar("SELECT base FROM observations WHERE id = :id", id=second["id"])
    assert json.loads(base)["in_use"] == second["clock"]  # capped at its own clock
    # It had not seen A's report: capped at its own clock it still "saw" it (A is older), but a
    # report made after it is not seen: a later third phone's disagreement is a conflict.
    c = make_phone()
    third = submission(toilet, c.clock(minutes=7), answers=toilet_answers(in_use=True))
    c.push([third])
    conflicts = store.conflicts(record_id=toilet)
    assert any({x["a"], x["b"]} == {second["id"], third["id"]} for x in conflicts)


def test_facility_registered_with_a_far_ahead_clock_is_restamped(phone, store):
    facility = new_facility(phone, clock=phone.clock(minutes=400 * 24 * 60))
    result = phone.push([facility]).json["results"][0]
    assert result["status"] == "accepted" and result["clock_adjusted"] is True
    state = store.facility(facility["id"])["state"]
    assert {v["clock"] for v in state.values()} == {result["stored_clock"]}
    assert decode(result["stored_clock"]).wall_ms < START_MS + DAY_MS


def test_far_ahead_clock_is_flagged_even_without_a_device_time(phone, facilities, client, store):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    data = photo_bytes()
    shot = photo(sha=hashlib.sha256(data).hexdigest())
    answers = toilet_answers(photo_outside=[shot], photo_inside=[shot])
    item = submission(toilet, phone.clock(minutes=30 * 24 * 60), answers=answers)
    body = {"device_id": phone.device_id, "items": [item]}  # no device_time_ms at all
    result = client.post("/api/v1/sync/push", json=body, headers=phone.headers).json
    assert result["results"][0]["clock_adjusted"] is True
    assert store.submission(item["id"])["skew_ms"] >= 29 * DAY_MS
    response = upload_photo(client, phone.headers, data)
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    flags = {f["code"] for f in store.flags_of(item["id"])}
    assert "large_clock_skew" in flags


def photo_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 160, 90)).save(out, "JPEG")
    return out.getvalue()


def test_a_database_poisoned_by_old_code_works_again(phone, facilities, store):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    with store.write():  # what the old code stored for a push stamped at the top of the range
        store.insert_observations(
            [
                {
                    "id": str(uuid.uuid4()),
                    "record_id": toilet,
                    "clock": encode(Clock(MAX_WALL_MS, MAX_COUNTER, "phone-evil")),
                    "wall_ms": MAX_WALL_MS,
                    "fields": {"notes": "x"},
                    "base": {},
                }
            ]
        )
    pulled = phone.pull()
    assert pulled.status_code == 200
    assert decode(pulled.json["clock"]).wall_ms < START_MS + DAY_MS
    item = submission(toilet, phone.clock())
    response = phone.push([item])
    assert response.status_code == 200
    assert store.submission(item["id"]) is not None


# -- finding 2: scope against what is stored -------------------------------------------------


def steal(phone, target_id, village=YUNYU, *, retire=False, facility_first=True):
    """A "new facility" in one's own village reusing `target_id`, then a report on that id."""
    fake = new_facility(phone, id=target_id, village=village)
    if retire:
        answers = {"status": "retired", "reason": "demolished", "photo": [photo()]}
        report = submission(target_id, phone.clock(), form="facility_status", answers=answers)
    else:
        report = submission(target_id, phone.clock(), answers=toilet_answers(in_use=False))
    items = [fake, report] if facility_first else [report, fake]
    return items, report


def assert_untouched(store, target_id, before, report):
    assert store.facility(target_id)["state"] == before
    assert store.submission(report["id"]) is None
    assert count_obs(store, report["id"]) == 0


def steal_is_refused(phone, store, target_id, **steal_options):
    """Push a steal of `target_id`: the fake facility is refused, the report invalid, and
    nothing is written."""
    before = store.facility(target_id)["state"]
    items, report = steal(phone, target_id, **steal_options)
    results = phone.push(items).json["results"]
    assert [r["status"] for r in results] == ["refused", "invalid"]
    assert_untouched(store, target_id, before, report)


def count_obs(store, obs_id):
    return store.scalar("SELECT count(*) FROM observations WHERE id = :id", id=obs_id)


def test_reused_id_of_another_townships_facility_cannot_be_inspected(phone, store):
    target = toilets(SHILING)[0]
    before = store.facility(target)["state"]
    for facility_first in (True, False):
        items, report = steal(phone, target, facility_first=facility_first)
        results = phone.push(items).json["results"]
        by_type = {r["type"]: r for r in results}
        assert by_type["facility"]["status"] == "refused"
        assert codes(by_type["facility"]) == {"id_reused"}
        assert by_type["submission"]["status"] == "invalid"
        assert codes(by_type["submission"]) == {"record_refused"}
        assert_untouched(store, target, before, report)


def test_reused_id_cannot_retire_another_townships_facility(make_phone, store):
    supervisor = make_phone("supervisor")  # 桐浦乡; the target is in 石岭镇
    target = toilets(SHILING)[0]
    steal_is_refused(supervisor, store, target, retire=True)
    assert store.facility(target)["state"]["status"]["value"] == "active"


def test_reused_id_of_a_village_of_the_same_township_cannot_be_inspected(make_phone, store):
    secretary = make_phone("secretary")  # 云屿村 only; the target is in 桐浦村, same township
    steal_is_refused(secretary, store, toilets(TONGPU)[0])


def test_reused_id_in_ones_own_village_is_refused_and_its_report_not_merged(phone, store):
    target = toilets(YUNYU)[0]  # in scope, but the phone's "new facility" is a different one
    steal_is_refused(phone, store, target)


def test_report_on_a_facility_invalid_in_the_same_batch_is_refused(phone, store):
    fake = new_facility(phone, name="")
    report = submission(fake["id"], phone.clock())
    results = phone.push([report, fake]).json["results"]
    assert codes(results[0]) == {"record_refused"} and results[1]["status"] == "invalid"


def test_scope_is_checked_against_the_stored_record(phone, store):
    target = toilets(SHILING)[0]
    report = submission(target, phone.clock())
    result = phone.push([report]).json["results"][0]
    assert codes(result) == {"village_forbidden"}


# -- finding 4: one bad item never fails the batch -----------------------------------------


def good_items(phone, n=20):
    targets = toilets(YUNYU) + toilets(TONGPU)
    return [submission(targets[i % len(targets)], phone.clock()) for i in range(n)]


def bad_items(phone):
    """(item, field with the error, code): every kind that used to answer 500."""
    target = toilets(YUNYU)[0]
    nested = submission(target, phone.clock(), answers=DEEP)
    return [
        (new_facility(phone, name="韦家户厕\ud83d"), "name", "bad_text"),
        (
            submission(target, phone.clock(), answers=toilet_answers(notes="好\ud83d")),
            "answers",
            "bad_text",
        ),
        ({**submission(target, phone.clock()), "id": "\ud83d"}, "id", "type"),
        ({**submission(target, phone.clock()), "id": 12345}, "id", "type"),
        ({**submission(target, phone.clock()), "id": {"a": 1}}, "id", "type"),
        ({**submission(target, phone.clock()), "id": "a" * 100_000}, "id", "type"),
        ({**submission(target, phone.clock()), "id": str(uuid.uuid4()) + "\n"}, "id", "type"),
        (new_facility(phone, village=[YUNYU]), "village", "village_forbidden"),
        (new_facility(phone, village={"code": YUNYU}), "village", "village_forbidden"),
        (new_facility(phone, kind={}), "kind", "choice"),
        (new_facility(phone, kind=["toilet"]), "kind", "choice"),
        (submission({"id": target}, phone.clock()), "record", "unknown_record"),
        (submission([target], phone.clock()), "record", "unknown_record"),
        (submission(target, phone.clock(), version=2**64), "version", "bad_number"),
        (submission(target, phone.clock(), version=2**40), "form", "unknown_form"),
        (nested, "answers", "too_deep"),
        (new_facility(phone, lat=10**400), "lat", "bad_number"),
        ({"type": "facility", "id": str(uuid.uuid4()), "名\udc00": 1}, "value", "bad_text"),
        (new_facility(phone, fields={"toilet_type": {"x": [1] * 1000}}), "fields", "type"),
    ]


def test_each_malformed_item_is_invalid_and_the_twenty_good_ones_are_stored(
    phone, facilities, store, client
):
    for bad, field, code in bad_items(phone):
        good = good_items(phone)
        before = count(store, "submissions")
        response = push_text(client, phone, good[:10] + [bad] + good[10:])
        assert response.status_code == 200, (field, code, response.get_data(as_text=True)[:300])
        results = response.json["results"]
        assert results[10]["status"] == "invalid", (field, code)
        assert results[10]["errors"][field][0]["code"] == code
        assert [r["status"] for r in results[:10] + results[11:]] == ["waiting_for_photos"] * 20
        assert count(store, "submissions") == before + 20
        assert all(store.submission(g["id"]) for g in good)


def test_nesting_deeper_than_the_limit_but_parseable_is_refused_per_item(phone, client, store):
    target = toilets(YUNYU)[0]
    item = submission(target, phone.clock(), answers={"notes": "__NEST__"})
    good = submission(target, phone.clock())
    text = json.dumps({"device_id": phone.device_id, "items": [item, good]}).replace(
        '"__NEST__"', deep(MAX_DEPTH + 5)
    )
    response = client.post(
        "/api/v1/sync/push", data=text, content_type="application/json", headers=phone.headers
    )
    assert [r["status"] for r in response.json["results"]] == ["invalid", "waiting_for_photos"]
    assert codes(response.json["results"][0]) == {"too_deep"}


def test_bodies_that_are_not_json_are_400_and_store_nothing(phone, client, store):
    before = count(store, "submissions")
    item = json.dumps(submission(toilets(YUNYU)[0], phone.clock()))
    for text in (
        '{"device_id": "p", "items": [' + item + "], " + deep(100_000),
        deep(5000),
        '{"device_id": "p", "items": [' + item + '], "x": NaN}',
        '{"items": [' + item + "]",
    ):
        response = client.post(
            "/api/v1/sync/push", data=text, content_type="application/json", headers=phone.headers
        )
        assert response.status_code == 400, text[:80]
        assert response.json["error"]["code"] == "bad_json"
    assert count(store, "submissions") == before


# -- finding 9: every JSON endpoint, query strings, review fields -----------------------------


def test_deep_nesting_and_lone_surrogates_are_400_on_other_endpoints(client, phone):
    for body, code in (
        ('{"username": ' + deep() + "}", "too_deep"),
        ('{"username": "inspector\\ud83d", "password": "x"}', "bad_text"),
        ('{"username": "inspector", "password": 1' + "0" * 40 + "}", "bad_number"),
    ):
        response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
        assert response.status_code == 400 and response.json["error"]["code"] == code


def test_review_fields_of_any_type_are_a_400(make_phone, client, facilities):
    author = make_phone()
    item = submission(toilets(YUNYU)[0], author.clock())
    author.push([item])
    supervisor = make_phone("supervisor")
    url = f"/api/v1/submissions/{item['id']}/review"
    for body in (
        {"decision": ["approve"]},
        {"decision": {"a": 1}},
        {"decision": 5},
        {"decision": "reject", "reason": 5},
        {"decision": "reject", "reason": ["照片不清楚"]},
        {"decision": "approve", "reason": {"x": 1}},
    ):
        response = client.post(url, json=body, headers=supervisor.headers)
        assert response.status_code == 400, body
        assert response.json["error"]["code"] == "invalid_review"
    text = '{"decision": "reject", "reason": "照片\\ud83d"}'
    response = client.post(
        url, data=text, content_type="application/json", headers=supervisor.headers
    )
    assert response.json["error"]["code"] == "bad_text"
    assert (
        client.get(f"/api/v1/submissions/{item['id']}", headers=supervisor.headers).json[
            "submission"
        ]["state"]
        == "received"
    )


def test_pull_cursor_and_limit_beyond_64_bits_are_400(phone):
    cursor = phone.pull().json["cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    _, _, scope = raw.split(":")
    for seq in (str(2**64), "9" * 5000, "²", "١٢"):
        forged = base64.urlsafe_b64encode(f"v1:{seq}:{scope}".encode()).decode().rstrip("=")
        response = phone.pull(since=forged)
        assert response.status_code == 400 and response.json["error"]["code"] == "bad_cursor"
    for limit in (2**64, "9" * 5000, "²"):
        assert phone.pull(limit=limit).json["error"]["code"] == "invalid_limit"


def test_query_strings_with_broken_utf8_are_400(phone, client):
    response = client.get("/api/v1/sync/pull?since=%ED%A0%BD", headers=phone.headers)
    assert response.status_code == 400


def test_envelope_clock_with_a_lone_surrogate_does_not_fail_the_push(phone, client, store):
    item = submission(toilets(YUNYU)[0], phone.clock())
    response = push_text(client, phone, [item], clock="0000000000001-0000-\ud83d")
    assert response.status_code == 200
    assert store.submission(item["id"]) is not None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), inner, max_size=4)
    ),
    max_leaves=20,
)


def depth(value) -> int:
    """Nesting of objects and arrays: 0 for a scalar, 1 for [] or {}."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=60, deadline=None)
@example(value=[[[]]], levels=61, ascii_only=False)  # depth 65: just too deep
@given(json_values, st.integers(0, 1500), st.booleans())
def test_parse_json_gives_json_loads_values_and_marks_only_what_is_too_deep(
    value, levels, ascii_only
):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert parse_json(text.encode()) == (value, set())
    wrapped = '{"s": "[[{\\"", "v": ' + "[" * levels + text + "]" * levels + "}"
    parsed, found = parse_json(wrapped.encode())
    assert parsed["s"] == '[[{"'  # brackets in strings do not count
    if 1 + levels + depth(value) <= MAX_DEPTH:  # the object, the wrappers and the value fit
        inner = parsed["v"]
        for _ in range(levels):
            inner = inner[0]
        assert inner == value and not found
        return
    assert found == {"too_deep"}
    if levels >= MAX_DEPTH:  # the wrappers alone are too deep
        inner = parsed["v"]
        for _ in range(MAX_DEPTH - 1):  # parsed["v"] is at depth 2
            inner = inner[0]
        assert inner is TOO_DEEP


# -- property: any mix of good and malformed items stores exactly the good ones --------------

MALFORMED = [  # each makes one bad item, except the last: a stolen id and its report
    lambda phone, target: new_facility(phone, name="户厕\udc00"),
    lambda phone, target: submission(target, phone.clock(), answers={"notes": "\ud83d"}),
    lambda phone, target: {**submission(target, phone.clock()), "id": 7},
    lambda phone, target: {**submission(target, phone.clock()), "id": [str(uuid.uuid4())]},
    lambda phone, target: {**submission(target, phone.clock()), "id": "x" * 5000},
    lambda phone, target: new_facility(phone, village=[YUNYU]),
    lambda phone, target: new_facility(phone, kind={"toilet": 1}),
    lambda phone, target: submission({"id": target}, phone.clock()),
    lambda phone, target: submission(target, phone.clock(), version=2**64),
    lambda phone, target: submission(target, phone.clock(), version=True),
    lambda phone, target: submission(target, phone.clock(), answers=DEEP),
    lambda phone, target: submission(target, phone.clock(), answers={"sanitary": "maybe"}),
    lambda phone, target: submission(toilets(SHILING)[0], phone.clock()),
    lambda phone, target: submission(target, "9999999999999-ffff-\ud83d"),
    lambda phone, target: {**submission(target, phone.clock()), "base": [1]},
    lambda phone, target: new_facility(phone, lat=10**30),
    lambda phone, target: "not an object",
    lambda phone, target: None,
    lambda phone, target: {"type": "nonsense", "id": str(uuid.uuid4())},
    lambda phone, target: {"type": "submission", "id": str(uuid.uuid4())},
    lambda phone, target: steal(phone, toilets(SHILING)[1])[0],
]


def good_pair(phone, minutes_ahead):
    """A facility registered on the phone and its first inspection (maybe far ahead)."""
    facility = new_facility(phone)
    clock = phone.clock(minutes=minutes_ahead)
    report = submission(facility["id"], clock, answers=toilet_answers(in_use=minutes_ahead > 0))
    phone.clock(minutes=-minutes_ahead)
    return [facility, report]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("good"), st.sampled_from([0, 0, 60, 90 * 24 * 60])),
            st.tuples(st.just("bad"), st.integers(0, len(MALFORMED) - 1)),
        ),
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_any_mix_of_good_and_malformed_items_stores_exactly_the_good_ones(
    phone, client, store, plan, rnd
):
    target = toilets(YUNYU)[1]
    snapshot = dict(store.q("SELECT id, state FROM facilities").all())
    n_submissions = count(store, "submissions")
    items, good, bad = [], [], []
    for kind, arg in plan:
        if kind == "good":
            pair = good_pair(phone, arg)
            good.append(pair)
            items += pair
        else:
            made = MALFORMED[arg](phone, target)
            made = made if arg == len(MALFORMED) - 1 else [made]
            bad += made
            items += made
    rnd.shuffle(items)
    response = push_text(client, phone, items)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    results = response.json["results"]
    assert len(results) == len(items)
    for item, result in zip(items, results, strict=True):
        if any(item is x for pair in good for x in pair):
            assert result["status"] in ("accepted", "waiting_for_photos"), result
        else:
            assert result["status"] in ("invalid", "refused"), (item, result)
            assert codes(result), result
    # The database holds exactly the good ones.
    assert count(store, "submissions") == n_submissions + len(good)
    for facility, report in good:
        record = store.facility(facility["id"])
        assert record["village_code"] == YUNYU
        assert record["state"]["in_use"]["value"] == report["answers"]["in_use"]
        assert store.submission(report["id"])["record_id"] == facility["id"]
        assert count_obs(store, report["id"]) == 1
    after = dict(store.q("SELECT id, state FROM facilities").all())
    new = {f["id"] for f, _ in good}
    assert set(after) == set(snapshot) | new
    assert {k: v for k, v in after.items() if k not in new} == snapshot
    for item in bad:
        if (
            isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and item["type"] == "submission"
        ):
            assert store.submission(item["id"]) is None
