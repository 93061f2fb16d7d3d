"""The sync API through the Flask test client on a real SQLite file: pull, push, scope."""

import json
import uuid

from conftest import SHILING, YUNYU, photo, submission, toilet_answers


def first_toilet(facilities, village=YUNYU):
    return facilities[(village, "toilet")]["id"]


# -- pull ----------------------------------------------------------------------------------


def test_first_pull_carries_forms_villages_facilities_and_tasks(phone):
    seen = phone.pull_all()
    assert {f["id"] for f in seen["forms"]} >= {
        "toilet",
        "rubbish",
        "fire",
        "tidiness",
        "monthly_task",
    }
    assert sorted(v["name"] for v in seen["villages"]) == ["下垌村", "云屿村", "桐浦村"]
    assert len(seen["facilities"]) > 40
    assert {f["village"] for f in seen["facilities"]} == {v["code"] for v in seen["villages"]}
    assert {t["template"] for t in seen["tasks"]} >= {"party_day", "dispute_screening"}
    toilet = next(f for f in seen["facilities"] if f["kind"] == "toilet")
    assert set(toilet["fields"]) == set(toilet["clocks"])


def test_pull_never_shows_other_villages(make_phone, facilities):
    seen = make_phone("inspector2").pull_all()
    assert SHILING in {v["code"] for v in seen["villages"]}
    assert YUNYU not in {f["village"] for f in seen["facilities"]}
    assert first_toilet(facilities) not in {f["id"] for f in seen["facilities"]}


def test_pull_pages_add_up_to_one_big_pull(make_phone):
    small, big = make_phone(), make_phone()
    pages = 0
    paged = []
    while True:
        response = small.pull(limit=7)
        paged += response.json["facilities"]
        small.cursor = response.json["cursor"]
        pages += 1
        if not response.json["more"]:
            break
    assert pages > 5
    whole = big.pull_all()["facilities"]
    assert sorted(f["id"] for f in paged) == sorted(f["id"] for f in whole)


def test_replaying_a_pull_page_gives_the_same_page(phone):
    first = phone.pull(limit=20).json
    again = phone.pull(limit=20).json
    assert first == again


def test_pull_after_the_last_cursor_is_empty(phone):
    phone.pull_all()
    response = phone.pull().json
    assert response["facilities"] == [] and response["more"] is False


def test_bad_cursor_is_a_400_with_code(phone):
    for cursor in ("garbage!!", "djE6eDp5", "AAAA"):
        response = phone.pull(since=cursor)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "bad_cursor"


def test_bad_limit_is_a_400(phone):
    assert phone.pull(limit="lots").json["error"]["code"] == "invalid_limit"
    assert phone.pull(limit=0).status_code == 400


def test_a_new_village_assignment_restarts_the_pull(phone, store, app):
    phone.pull_all()
    user = store.user(username="inspector")
    store.assign(user["id"], [SHILING], at="2026-11-21T00:00:00")
    response = phone.pull().json
    assert response["reset"] is True
    assert SHILING in {v["code"] for v in response["villages"]}


def test_pull_gives_the_server_clock_for_the_phone_to_receive(phone):
    clock = phone.pull().json["clock"]
    assert clock.endswith("-server")


# -- push: outcomes per item ---------------------------------------------------------------


def test_push_updates_the_facility_record(phone, facilities):
    toilet = first_toilet(facilities)
    item = submission(toilet, phone.clock(), answers=toilet_answers(sanitary=False, harmless=None))
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos"
    record = next(f for f in phone.pull_all()["facilities"] if f["id"] == toilet)
    assert record["fields"]["sanitary"] is False
    assert record["fields"]["harmless"] is False
    assert record["fields"]["last_inspected"] == "2026-11-20"
    assert record["clocks"]["sanitary"] == item["clock"]


def test_push_lists_the_photos_the_server_lacks(phone, facilities):
    outside, inside = photo(), photo()
    item = submission(
        first_toilet(facilities),
        phone.clock(),
        answers=toilet_answers(photo_outside=[outside], photo_inside=[inside]),
    )
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos"
    assert result["missing"] == sorted([outside["sha256"], inside["sha256"]])


def test_same_submission_twice_is_a_duplicate_and_stored_once(phone, facilities, store):
    item = submission(first_toilet(facilities), phone.clock())
    phone.push([item])
    again = phone.push([item]).json["results"][0]
    assert again["status"] == "duplicate"
    assert again["missing"]
    assert store.scalar("SELECT count(*) FROM submissions WHERE id = :id", id=item["id"]) == 1


def test_same_id_with_different_content_is_refused_not_overwritten(phone, facilities, store):
    item = submission(first_toilet(facilities), phone.clock())
    phone.push([item])
    changed = {**item, "answers": toilet_answers(in_use=False)}
    result = phone.push([changed]).json["results"][0]
    assert result["status"] == "refused"
    assert result["errors"]["id"][0]["code"] == "id_reused"
    assert store.submission(item["id"])["answers"]["in_use"] is True


def test_invalid_answers_get_per_field_errors_in_chinese(phone, facilities):
    answers = toilet_answers(sanitary=None, construction="golden", photo_inside=[])
    result = phone.push(
        [submission(first_toilet(facilities), phone.clock(), answers=answers)]
    ).json["results"][0]
    assert result["status"] == "invalid"
    assert result["errors"]["sanitary"][0]["code"] == "required"
    assert result["errors"]["construction"][0]["code"] == "choice"
    assert "photo_inside" in result["errors"]
    assert all(e["message"]["zh"] for errs in result["errors"].values() for e in errs)


def test_one_bad_item_never_loses_the_good_ones(phone, facilities, store):
    good1 = submission(first_toilet(facilities), phone.clock())
    bad = submission(first_toilet(facilities), phone.clock(), answers={"sanitary": "maybe"})
    good2 = submission(facilities[(YUNYU, "toilet")]["id"], phone.clock())
    results = phone.push([good1, bad, good2, "not an object"]).json["results"]
    assert [r["status"] for r in results] == [
        "waiting_for_photos",
        "invalid",
        "waiting_for_photos",
        "invalid",
    ]
    assert store.submission(good1["id"]) and store.submission(good2["id"])
    assert store.submission(bad["id"]) is None


def test_unknown_form_or_version_is_invalid(phone, facilities):
    results = phone.push(
        [
            submission(first_toilet(facilities), phone.clock(), form="nonsense"),
            submission(first_toilet(facilities), phone.clock(), version=99),
        ]
    ).json["results"]
    assert [r["errors"]["form"][0]["code"] for r in results] == ["unknown_form"] * 2


def test_facility_of_another_village_is_refused_and_nothing_written(phone, facilities, store):
    item = submission(first_toilet(facilities, SHILING), phone.clock())
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "invalid"
    assert result["errors"]["record"][0]["code"] == "village_forbidden"
    assert store.submission(item["id"]) is None


def test_form_for_the_wrong_kind_of_facility_is_invalid(phone, facilities):
    rubbish = facilities[(YUNYU, "rubbish")]["id"]
    result = phone.push([submission(rubbish, phone.clock())]).json["results"][0]
    assert result["errors"]["record"][0]["code"] == "wrong_kind"


def test_unknown_facility_is_invalid(phone):
    result = phone.push([submission(str(uuid.uuid4()), phone.clock())]).json["results"][0]
    assert result["errors"]["record"][0]["code"] == "unknown_record"


def test_answers_hidden_by_relevance_are_dropped_and_reported(phone, facilities, store):
    answers = toilet_answers(sanitary=False, harmless=True)
    item = submission(first_toilet(facilities), phone.clock(), answers=answers)
    result = phone.push([item]).json["results"][0]
    assert result["dropped"] == ["harmless"]
    assert "harmless" not in store.submission(item["id"])["answers"]


def test_bad_clock_and_time_are_field_errors(phone, facilities):
    item = submission(first_toilet(facilities), "yesterday", observed_at="2026-11-20 10:00")
    result = phone.push([item]).json["results"][0]
    assert set(result["errors"]) == {"clock", "observed_at"}


def test_non_uuid_ids_and_repeated_ids_in_a_batch_are_invalid(phone, facilities):
    item = submission(first_toilet(facilities), phone.clock())
    results = phone.push([{**item, "id": "../../etc"}, item, item]).json["results"]
    assert results[0]["errors"]["id"][0]["code"] == "type"
    assert results[1]["status"] == "waiting_for_photos"
    assert results[2]["errors"]["id"][0]["code"] == "duplicate_in_batch"


# -- push: facilities made on the phone ----------------------------------------------------


def new_facility(phone, **overrides):
    item = {
        "type": "facility",
        "id": str(uuid.uuid4()),
        "village": YUNYU,
        "kind": "toilet",
        "name": "新登记户厕（韦家）",
        "lat": 24.7651,
        "lon": 109.3020,
        "clock": phone.clock(),
        "fields": {"toilet_type": "household"},
    }
    item.update(overrides)
    return item


def test_facility_registered_on_the_phone_can_be_inspected_in_the_same_batch(phone, store):
    facility = new_facility(phone)
    inspection = submission(facility["id"], phone.clock())
    results = phone.push([inspection, facility]).json["results"]
    assert [r["status"] for r in results] == ["waiting_for_photos", "accepted"]
    record = store.facility(facility["id"])
    assert record["name"] == "新登记户厕（韦家）"
    assert record["state"]["sanitary"]["value"] is True
    assert record["state"]["status"]["value"] == "active"


def test_facility_pushed_twice_is_a_duplicate(phone):
    facility = new_facility(phone)
    phone.push([facility])
    assert phone.push([facility]).json["results"][0]["status"] == "duplicate"
    moved = {**facility, "lat": 24.0}
    assert phone.push([moved]).json["results"][0]["status"] == "refused"


def test_facility_in_another_village_or_without_position_is_invalid(phone, store):
    elsewhere = new_facility(phone, village=SHILING)
    nowhere = new_facility(phone, lat=None)
    unknown_kind = new_facility(phone, kind="temple")
    results = phone.push([elsewhere, nowhere, unknown_kind]).json["results"]
    assert results[0]["errors"]["village"][0]["code"] == "village_forbidden"
    assert "position" in results[1]["errors"]
    assert "kind" in results[2]["errors"]
    assert store.facility(elsewhere["id"]) is None


# -- push: envelope errors -----------------------------------------------------------------


def test_batch_over_the_limit_is_refused_whole(phone, facilities, store):
    items = [submission(first_toilet(facilities), phone.clock()) for _ in range(201)]
    response = phone.push(items)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "batch_too_large"
    assert store.scalar("SELECT count(*) FROM submissions") == 0


def test_bad_json_is_a_400_not_a_500(client, phone):
    response = client.post(
        "/api/v1/sync/push",
        data="{not json",
        content_type="application/json",
        headers=phone.headers,
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_json"
    response = client.post(
        "/api/v1/sync/push", data="[1, 2]", content_type="application/json", headers=phone.headers
    )
    assert response.json["error"]["code"] == "bad_json"


def test_form_encoded_body_is_a_415(client, phone):
    response = client.post("/api/v1/sync/push", data={"a": "b"}, headers=phone.headers)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "json_required"


def test_oversized_body_is_a_413(client, phone):
    body = json.dumps({"device_id": "x", "items": [], "pad": "x" * (9 * 1024 * 1024)})
    response = client.post(
        "/api/v1/sync/push", data=body, content_type="application/json", headers=phone.headers
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_missing_items_or_device_is_a_400(phone, client):
    response = client.post(
        "/api/v1/sync/push", json={"device_id": phone.device_id}, headers=phone.headers
    )
    assert response.status_code == 400
    response = client.post("/api/v1/sync/push", json={"items": []}, headers=phone.headers)
    assert response.json["error"]["code"] == "invalid_device_id"


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# -- clocks, skew, history -----------------------------------------------------------------


def test_device_skew_is_recorded_at_push_time(phone, facilities, store):
    phone.wall_ms -= 2 * 3600 * 1000
    item = submission(first_toilet(facilities), phone.clock())
    response = phone.push([item]).json
    assert response["skew_ms"] == -2 * 3600 * 1000
    assert store.device(phone.device_id)["skew_ms"] == -2 * 3600 * 1000
    assert store.submission(item["id"])["skew_ms"] == -2 * 3600 * 1000


def test_late_older_inspection_keeps_record_but_joins_history(make_phone, facilities, client):
    early, late = make_phone(), make_phone()
    toilet = first_toilet(facilities)
    old = submission(toilet, early.clock(minutes=0), answers=toilet_answers(in_use=False))
    new = submission(toilet, late.clock(minutes=60), answers=toilet_answers(in_use=True))
    late.push([new])
    early.push([old])
    history = client.get(f"/api/v1/facilities/{toilet}/history", headers=late.headers).json
    assert history["facility"]["fields"]["in_use"] is True
    assert [s["id"] for s in history["submissions"]] == [new["id"], old["id"]]


def test_history_of_another_villages_facility_looks_unknown(phone, facilities, client):
    toilet = first_toilet(facilities, SHILING)
    response = client.get(f"/api/v1/facilities/{toilet}/history", headers=phone.headers)
    unknown = client.get("/api/v1/facilities/no-such-id/history", headers=phone.headers)
    assert response.status_code == unknown.status_code == 404
    assert response.json == unknown.json
    assert SHILING not in response.get_data(as_text=True)


def test_secretary_reports_a_monthly_task(make_phone, store):
    secretary = make_phone("secretary")
    tasks = secretary.pull_all()["tasks"]
    task = next(t for t in tasks if t["template"] == "party_day")
    answers = {
        "task_kind": "party_day",
        "status": "done",
        "completed_on": "2026-11-18",
        "party_topic": "学习乡村振兴政策",
        "party_attendance": 23,
        "evidence_photos": [photo()],
    }
    item = submission(task["id"], secretary.clock(), form="monthly_task", answers=answers)
    result = secretary.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos", result
    fields = store.task(task["id"])["state"]
    assert fields["status"]["value"] == "done"
    assert fields["completed_on"]["value"] == "2026-11-18"
    pulled = next(t for t in secretary.pull_all()["tasks"] if t["id"] == task["id"])
    assert pulled["fields"]["status"] == "done"


# -- supervisors' reviews reach the author's phone -----------------------------------------


def review(client, who, submission_id, **body):
    return client.post(
        f"/api/v1/submissions/{submission_id}/review", json=body, headers=who.headers
    )


def test_rejection_reaches_the_authors_phone_through_pull(make_phone, facilities, client, store):
    author, other = make_phone("inspector"), make_phone("secretary")
    author.pull_all()
    other.pull_all()
    item = submission(first_toilet(facilities), author.clock())
    author.push([item])
    supervisor = make_phone("supervisor")
    response = review(
        client, supervisor, item["id"], decision="reject", reason="照片不是该户厕所，请重新拍摄"
    )
    assert response.status_code == 200
    reviews = author.pull().json["reviews"]
    assert reviews == [
        {
            "submission_id": item["id"],
            "state": "rejected",
            "decision": "reject",
            "reason": "照片不是该户厕所，请重新拍摄",
            "at": reviews[0]["at"],
            "reviewer": "覃志强（桐浦乡督查）",
        }
    ]
    assert other.pull().json["reviews"] == []
    assert store.submission(item["id"])["state"] == "rejected"
    assert "review.reject" in [e["action"] for e in store.audit_entries(entity_id=item["id"])]


def test_rejecting_needs_a_reason(make_phone, facilities, client, phone):
    item = submission(first_toilet(facilities), phone.clock())
    phone.push([item])
    response = review(client, make_phone("supervisor"), item["id"], decision="reinspect")
    assert response.status_code == 400
    assert response.json["error"]["message"] == "退回或要求复查时必须填写原因"


def test_inspectors_cannot_review(facilities, client, phone):
    item = submission(first_toilet(facilities), phone.clock())
    phone.push([item])
    response = review(client, phone, item["id"], decision="approve")
    assert response.status_code == 403
    assert response.json["error"]["code"] == "role_forbidden"


def test_supervisor_of_another_township_cannot_see_the_submission(
    make_phone, facilities, client, store
):
    author = make_phone("inspector2")
    item = submission(first_toilet(facilities, SHILING), author.clock())
    author.push([item])
    response = review(client, make_phone("supervisor"), item["id"], decision="approve")
    assert response.status_code == 404
    assert store.submission(item["id"])["state"] == "received"


# -- retiring a facility -------------------------------------------------------------------


def retire(phone, facility_id, minutes=0):
    answers = {"status": "retired", "reason": "demolished", "photo": [photo()]}
    return submission(
        facility_id, phone.clock(minutes=minutes), form="facility_status", answers=answers
    )


def test_a_facility_is_retired_by_an_observation_never_deleted(phone, facilities, store):
    toilet = first_toilet(facilities)
    item = retire(phone, toilet)
    assert phone.push([item]).json["results"][0]["status"] == "waiting_for_photos"
    record = next(f for f in phone.pull_all()["facilities"] if f["id"] == toilet)
    assert record["fields"]["status"] == "retired"
    assert store.facility(toilet) is not None


def test_an_older_inspection_arriving_late_does_not_revive_a_retired_facility(
    make_phone, facilities, store
):
    toilet = first_toilet(facilities)
    late, retirer = make_phone(), make_phone()
    older = submission(toilet, late.clock(minutes=-60))
    retirer.push([retire(retirer, toilet)])
    late.push([older])
    state = store.facility(toilet)["state"]
    assert state["status"]["value"] == "retired"
    assert len(store.submissions_of_record(toilet)) == 2


def test_the_retire_form_works_on_any_kind_of_facility(phone, facilities, store):
    rubbish = facilities[(YUNYU, "rubbish")]["id"]
    assert phone.push([retire(phone, rubbish)]).json["results"][0]["status"] != "invalid"
    assert store.facility(rubbish)["state"]["status"]["value"] == "retired"
