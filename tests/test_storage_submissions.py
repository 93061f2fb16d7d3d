"""Storage contract, submissions aggregate (server/storage/submissions.py): submissions, the
photos each uses, and reviews. Runs unchanged on SQLite and PostgreSQL (`any_store`)."""

import json

import pytest

RECEIVED = "2026-11-20T02:00:00+00:00"
VILLAGE = "450222101001"


def clock(wall_ms: int, counter: int = 1, device: str = "phone-a") -> str:
    return f"{wall_ms:013d}-{counter:04x}-{device}"


@pytest.fixture
def store(any_store):
    """A village, an inspector and a supervisor, as plain rows."""
    with any_store.write():
        any_store.q(
            "INSERT INTO villages (code, name, township, county, county_class)"
            " VALUES (:code, '云屿村', '桐浦乡', '450222', 1)",
            code=VILLAGE,
        )
        any_store.users = {
            name: any_store.scalar(
                "INSERT INTO users (username, display_name, role, password_hash)"
                " VALUES (:name, :display, :name, 'x') RETURNING id",
                name=name,
                display=display,
            )
            for name, display in (("inspector", "李巡检"), ("supervisor", "王主任"))
        }
    return any_store


def submission_row(store, sid: str, *, record="f-1", wall_ms=1000, **extra) -> dict:
    return {
        "id": sid,
        "form_id": "toilet",
        "form_version": 1,
        "record_id": record,
        "record_type": "facility",
        "village_code": VILLAGE,
        "author_id": store.users["inspector"],
        "device_id": "phone-a",
        "clock": clock(wall_ms),
        "observed_at": "2026-11-20T10:35:00+08:00",
        "received_at": RECEIVED,
        "answers": {"in_use": True, "note": "厕所干净", "hazards": []},
        "content_hash": f"hash-{sid}",
        "state": "complete",
        **extra,
    }


def photo(field: str, sha256: str, **extra) -> dict:
    return {
        "field": field,
        "sha256": sha256,
        "captured_at": "2026-11-20T10:31:05+08:00",
        "position": {"lat": 24.7636, "lon": 109.2947},
        **extra,
    }


def insert(store, sid: str, photos=(), **extra) -> dict:
    row = submission_row(store, sid, **extra)
    with store.write():
        store.insert_submissions([(row, list(photos))])
    return row


# -- submissions ---------------------------------------------------------------------------


def test_a_submission_is_stored_whole(store):
    insert(store, "s-1", skew_ms=-120_000)
    assert store.submission("s-1") == {
        **submission_row(store, "s-1"),
        "skew_ms": -120_000,
        "risk_score": None,
        "completed_at": None,
        "replaces": None,
    }
    insert(store, "s-2", state="received")
    assert store.submission("s-2")["skew_ms"] is None
    assert store.submission("s-2")["state"] == "received"
    assert store.submission("nope") is None


def test_submission_hashes_of_stored_ids_only(store):
    insert(store, "s-1")
    insert(store, "s-2")
    assert store.submission_hashes(i for i in ["s-2", "s-1", "s-3"]) == {
        "s-1": "hash-s-1",
        "s-2": "hash-s-2",
    }
    assert store.submission_hashes([]) == {}


def test_the_photos_of_a_submission_each_once_in_first_use_order(store):
    photos = [
        photo("photo_outside", "b" * 64),
        photo("photo_outside", "a" * 64, position=None),
        photo("photo_inside", "b" * 64),
        photo("photo_inside", "c" * 64),
        photo("photo_inside", "c" * 64),  # the same photo twice in one field: stored once
    ]
    insert(store, "s-1", photos)
    insert(store, "s-2", [photo("photo_outside", "d" * 64)])
    assert store.submission_photo_hashes("s-1") == ["b" * 64, "a" * 64, "c" * 64]
    assert store.submission_photo_hashes("s-2") == ["d" * 64]
    assert store.submission_photo_hashes("none") == []
    stored = store.rows(
        "SELECT field, sha256, captured_at, position FROM submission_media"
        " WHERE submission_id = 's-1' ORDER BY seq"
    )
    assert [(r["field"], r["sha256"][0]) for r in stored] == [
        ("photo_outside", "b"),
        ("photo_outside", "a"),
        ("photo_inside", "b"),
        ("photo_inside", "c"),
    ]
    assert json.loads(stored[0]["position"]) == {
        "lat": 24.7636,
        "lon": 109.2947,
        "datum": "wgs84",  # browser geolocation is WGS-84, and the stored fix says so
        "source": "browser",
    }
    assert stored[1]["position"] is None
    assert stored[0]["captured_at"] == "2026-11-20T10:31:05+08:00"


def test_a_submission_without_photos(store):
    insert(store, "s-1", [])
    assert store.submission_photo_hashes("s-1") == []


def test_the_history_of_a_record_newest_observation_first(store):
    insert(store, "s-old", wall_ms=1000)
    insert(store, "s-new", wall_ms=3000)
    insert(store, "s-restamped", wall_ms=9_000_000)  # observed at 2000 after re-stamping
    insert(store, "s-other", record="f-2", wall_ms=5000)
    with store.write():
        store.insert_observations(
            [
                {
                    "id": "s-restamped",
                    "record_id": "f-1",
                    "clock": clock(2000),
                    "wall_ms": 2000,
                    "fields": {"in_use": True},
                    "base": {},
                }
            ]
        )
    history = store.submissions_of_record("f-1")
    assert [s["id"] for s in history] == ["s-new", "s-restamped", "s-old"]
    assert history[0] == {
        "id": "s-new",
        "form_id": "toilet",
        "form_version": 1,
        "author_id": store.users["inspector"],
        "device_id": "phone-a",
        "clock": clock(3000),
        "observed_at": "2026-11-20T10:35:00+08:00",
        "received_at": RECEIVED,
        "state": "complete",
        "answers": {"in_use": True, "note": "厕所干净", "hazards": []},
    }
    assert store.submissions_of_record("f-9") == []


# -- reviews -------------------------------------------------------------------------------


def review(store, sid, decision, state, reason=None, at=RECEIVED):
    store.add_review(
        submission_id=sid,
        decision=decision,
        state=state,
        reason=reason,
        reviewer_id=store.users["supervisor"],
        author_id=store.users["inspector"],
        at=at,
    )


def test_a_review_sets_the_state_and_reaches_the_author_and_the_audit_log(store):
    insert(store, "s-1")
    review(store, "s-1", "reject", "rejected", "照片模糊")
    assert store.submission("s-1")["state"] == "rejected"
    inspector, supervisor = store.users["inspector"], store.users["supervisor"]
    assert [tuple(c[1:]) for c in store.changes_after(0, [VILLAGE], inspector, 10)] == [
        ("review", "s-1")
    ]
    assert store.changes_after(0, [VILLAGE], supervisor, 10) == []
    (entry,) = store.audit_entries(entity_id="s-1")
    assert (entry["action"], entry["user_id"], entry["entity"]) == (
        "review.reject",
        supervisor,
        "submission",
    )
    assert entry["detail"] == '{"reason":"照片模糊"}'


def test_a_review_of_an_unknown_submission_writes_nothing(store):
    with pytest.raises(Exception):  # noqa: B017 (each driver's IntegrityError)
        review(store, "nope", "approve", "approved")
    assert store.audit_entries() == []
    assert store.last_seq() == 0


def test_latest_reviews_the_newest_of_each_with_the_reviewers_name(store):
    insert(store, "s-1")
    insert(store, "s-2")
    insert(store, "s-3")
    review(store, "s-1", "reject", "rejected", "照片模糊")
    review(store, "s-1", "approve", "approved", at="2026-11-21T02:00:00+00:00")
    review(store, "s-2", "reinspect", "reinspect", "请复查")
    assert store.latest_reviews(iter(["s-2", "s-1", "s-3", "nope"])) == [
        {
            "submission_id": "s-1",
            "state": "approved",
            "decision": "approve",
            "reason": None,
            "at": "2026-11-21T02:00:00+00:00",
            "reviewer": "王主任",
        },
        {
            "submission_id": "s-2",
            "state": "reinspect",
            "decision": "reinspect",
            "reason": "请复查",
            "at": RECEIVED,
            "reviewer": "王主任",
        },
    ]
    assert store.latest_reviews([]) == []
