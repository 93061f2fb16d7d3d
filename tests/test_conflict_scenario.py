"""Two phones offline report the same toilet differently: the server's answer in any order."""

import json

from conftest import START, YUNYU, FakeClock, Phone, app_on, demo_copy, submission, toilet_answers


def fresh_client(tmp_path, demo_db, name):
    folder = tmp_path / name
    return app_on(folder, FakeClock(START), demo_copy(folder, demo_db)).test_client()


def base_of(phone, facility_id):
    record = next(f for f in phone.pull_all()["facilities"] if f["id"] == facility_id)
    return record["clocks"]


def run(client, order, toilet):
    """Phones A and B both pulled, went offline, inspected; they push in `order`."""
    a = Phone(client, "inspector", device_id="phone-a")
    b = Phone(client, "inspector", device_id="phone-b")
    base = base_of(a, toilet)
    assert base_of(b, toilet) == base
    reports = {
        "a": submission(
            toilet,
            a.clock(minutes=5),
            base=base,
            sub_id=_uuid(1),
            answers=toilet_answers(sanitary=True, harmless=False),
        ),
        "b": submission(
            toilet,
            b.clock(minutes=9),
            base=base,
            sub_id=_uuid(2),
            answers=toilet_answers(sanitary=False, harmless=None),
        ),
    }
    phones = {"a": a, "b": b}
    for name in order:
        status = phones[name].push([reports[name]]).json["results"][0]["status"]
        assert status == "waiting_for_photos"
    history = client.get(f"/api/v1/facilities/{toilet}/history", headers=a.headers).json
    return history, reports


def _uuid(n):
    return f"00000000-0000-4000-8000-{n:012d}"


def test_two_offline_reports_give_one_conflict_and_the_same_record_in_either_order(
    tmp_path, demo_db, facilities
):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    ab, reports = run(fresh_client(tmp_path, demo_db, "ab"), "ab", toilet)
    ba, _ = run(fresh_client(tmp_path, demo_db, "ba"), "ba", toilet)
    assert json.dumps(ab["facility"], sort_keys=True) == json.dumps(ba["facility"], sort_keys=True)
    assert ab["conflicts"] == [
        {**c, "created_at": ab["conflicts"][0]["created_at"]} for c in ba["conflicts"]
    ]
    assert len(ab["conflicts"]) == 1
    conflict = ab["conflicts"][0]
    assert conflict["field"] == "sanitary"
    assert {conflict["a_value"], conflict["b_value"]} == {True, False}
    assert conflict["resolved_by"] is None
    # The deterministic winner (B's clock is newer) stands meanwhile.
    assert conflict["winner"] == reports["b"]["id"]
    assert ab["facility"]["fields"]["sanitary"] is False


def test_a_third_newer_observation_that_saw_both_wins_and_resolves(tmp_path, demo_db, facilities):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    client = fresh_client(tmp_path, demo_db, "third")
    run(client, "ab", toilet)
    c = Phone(client, "inspector", device_id="phone-c")
    base = base_of(c, toilet)
    recheck = submission(
        toilet, c.clock(minutes=60), base=base, answers=toilet_answers(sanitary=True, harmless=True)
    )
    assert c.push([recheck]).json["results"][0]["status"] == "waiting_for_photos"
    history = client.get(f"/api/v1/facilities/{toilet}/history", headers=c.headers).json
    assert history["facility"]["fields"]["sanitary"] is True
    assert history["facility"]["fields"]["harmless"] is True
    assert [x["resolved_by"] for x in history["conflicts"]] == [recheck["id"]]
    assert len(history["submissions"]) == 3


def test_reports_days_apart_do_not_conflict(tmp_path, demo_db, facilities):
    toilet = facilities[(YUNYU, "toilet")]["id"]
    client = fresh_client(tmp_path, demo_db, "apart")
    a = Phone(client, "inspector", device_id="phone-a")
    b = Phone(client, "inspector", device_id="phone-b")
    base = base_of(a, toilet)
    first = submission(toilet, a.clock(), base=base, answers=toilet_answers(in_use=True))
    later = submission(
        toilet, b.clock(minutes=60 * 24 * 10), base=base, answers=toilet_answers(in_use=False)
    )
    a.push([first])
    client.application.config["CLOCK"].advance(days=10)  # B reports ten days later
    b.push([later])
    history = client.get(f"/api/v1/facilities/{toilet}/history", headers=a.headers).json
    assert history["conflicts"] == []
    assert history["facility"]["fields"]["in_use"] is False
