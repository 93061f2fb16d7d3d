"""Storage contract: media, photo holders, evidence flags and risk scores (storage/media.py).

Runs unchanged on SQLite and PostgreSQL (`any_store`). The rows the photo pipeline works on
(villages, users, facilities, submissions and their photos) are written here as plain rows, so
these tests depend on no other aggregate's methods.
"""

import json
import threading

import pytest

from server.storage import connect, dumps

YUNYU, SHILING = "450222101001", "450222102001"
TOWNSHIPS = {YUNYU: "桐浦乡", SHILING: "石岭镇"}
P1, P2, P3 = "1" * 64, "2" * 64, "3" * 64


def add_village(store, code):
    store.q(
        "INSERT INTO villages (code, name, township, county, county_class)"
        " VALUES (:code, :code, :township, '柳城县', 2)",
        code=code,
        township=TOWNSHIPS[code],
    )


def add_user(store, username) -> int:
    return store.scalar(
        "INSERT INTO users (username, role, password_hash) VALUES (:u, 'inspector', 'x')"
        " RETURNING id",
        u=username,
    )


def add_facility(store, fid, village, kind="toilet", state=None, lat=24.76, lon=109.29):
    store.q(
        "INSERT INTO facilities (id, village_code, kind, name, lat, lon, state)"
        " VALUES (:id, :village, :kind, :id, :lat, :lon, :state)",
        id=fid,
        village=village,
        kind=kind,
        lat=lat,
        lon=lon,
        state=dumps({k: {"value": v} for k, v in (state or {}).items()}),
    )


def add_submission(
    store,
    sid,
    *,
    village=YUNYU,
    record="f1",
    author=None,
    state="complete",
    photos=(),
    observed_at="2026-11-20T10:35:00+08:00",
    risk_score=None,
):
    """A submission and its photos: each (field, sha256) in `photos`, in order."""
    store.q(
        "INSERT INTO submissions (id, form_id, form_version, record_id, record_type,"
        " village_code, author_id, clock, observed_at, answers, state, skew_ms, risk_score)"
        " VALUES (:id, 'toilet', 1, :record, 'facility', :village, :author, :clock,"
        " :observed_at, '{}', :state, 0, :risk)",
        id=sid,
        record=record,
        village=village,
        author=author,
        clock=f"1795140000000-0000-{sid}",
        observed_at=observed_at,
        state=state,
        risk=risk_score,
    )
    for field, sha in photos:
        store.q(
            "INSERT INTO submission_media (submission_id, field, sha256, captured_at, position,"
            f" seq) VALUES (:sid, :field, :sha, '2026-11-20T10:31:05+08:00', :position,"
            f" {store.dialect.next_seq('submission_media')})",
            sid=sid,
            field=field,
            sha=sha,
            position=dumps({"lat": 24.7636, "lon": 109.2947}),
        )


def media_row(sha, phash="8000000000000001", crops=("00000000000000ff",)):
    return {
        "sha256": sha,
        "size": 1234,
        "mime": "image/jpeg",
        "width": 4000,
        "height": 3000,
        "exif": {"present": True, "lat": 24.7, "taken_at": "2026-11-20T10:30:00+08:00"},
        "phash": phash,
        "crop_hashes": list(crops),
        "created_at": "2026-11-20T02:31:00.000+00:00",
    }


@pytest.fixture
def pipeline(any_store):
    """Two villages, two authors, a facility in each; the author ids by name."""
    store = any_store
    with store.write():
        for code in (YUNYU, SHILING):
            add_village(store, code)
        users = {name: add_user(store, name) for name in ("wang", "li")}
        add_facility(store, "f1", YUNYU)
        add_facility(store, "f2", SHILING, lat=None, lon=None)
    return store, users


def test_a_photo_is_missing_until_its_media_row_is_in(pipeline):
    store, users = pipeline
    with store.write():
        add_submission(store, "s1", author=users["wang"], state="received", photos=[("a", P1)])
    assert store.missing_media([P2, P1, P1]) == [P1, P2]
    assert store.missing_media([]) == []
    assert store.photos_without_media() == [P1]
    assert store.received_with_all_photos() == []
    assert store.media(P1) is None
    store.insert_media(media_row(P1))
    store.insert_media({**media_row(P1), "size": 1})  # again: the first row stays
    assert store.missing_media([P1, P2]) == [P2]
    assert store.photos_without_media() == []
    assert store.received_with_all_photos() == ["s1"]
    row = store.media(P1)
    assert row == {**media_row(P1), "exif": media_row(P1)["exif"]}
    assert row["crop_hashes"] == ["00000000000000ff"]


def test_the_near_duplicate_index_reads_photos_in_insertion_order_after_a_seq(pipeline):
    store, _ = pipeline
    store.insert_media(media_row(P3, phash="0000000000000003"))
    store.insert_media(media_row(P1, phash=None))  # no perceptual hash: not indexed
    store.insert_media(media_row(P2, phash="0000000000000002", crops=()))
    rows = store.media_hashes_after(0)
    assert [(sha, phash) for _, sha, phash, _ in rows] == [
        (P3, "0000000000000003"),
        (P2, "0000000000000002"),
    ]
    assert json.loads(rows[0][3]) == ["00000000000000ff"] and json.loads(rows[1][3]) == []
    first_seq, last_seq = rows[0][0], rows[1][0]
    assert first_seq < last_seq
    assert [sha for _, sha, _, _ in store.media_hashes_after(first_seq)] == [P2]
    assert store.media_hashes_after(last_seq) == []


def test_a_photo_is_readable_where_a_submission_by_one_who_holds_it_uses_it(pipeline):
    store, users = pipeline
    wang, li = users["wang"], users["li"]
    with store.write():
        add_submission(store, "s1", author=wang, photos=[("a", P1)])
        add_submission(store, "s2", village=SHILING, record="f2", author=li, photos=[("a", P1)])
    assert store.photo_in_villages(P1, [SHILING])
    assert not store.photo_in_villages(P2, [YUNYU, SHILING])
    assert not store.photo_in_villages(P1, [])
    assert store.readable_photos([P1, P2], [YUNYU, SHILING]) == set()
    store.record_uploader(P1, wang, at="2026-11-20T02:31:00Z")
    store.record_uploader(P1, wang, at="2026-11-20T02:32:00Z")  # once is enough
    assert store.photos_held_by(wang, [P1, P2]) == {P1}
    assert store.photos_held_by(li, [P1]) == set()
    assert store.photos_held_by(wang, []) == set()
    assert store.readable_photos([P1, P2], [YUNYU, SHILING]) == {P1}
    assert store.photo_readable(P1, [YUNYU])
    assert not store.photo_readable(P1, [SHILING])  # li used it but never held it
    store.record_holder(P1, li, source="scope", at="2026-11-20T02:33:00Z")
    assert store.photo_readable(P1, [SHILING])


def test_an_unheld_processed_photo_is_credited_to_the_authors_using_it(pipeline):
    store, users = pipeline
    wang, li = users["wang"], users["li"]
    with store.write():
        add_submission(store, "s1", author=wang, photos=[("a", P1), ("b", P1)])
        add_submission(store, "s2", author=wang, photos=[("a", P1)])
        add_submission(store, "s3", village=SHILING, author=li, photos=[("a", P1)])
        add_submission(store, "s4", author=None, photos=[("a", P1)])
        add_submission(store, "s5", author=wang, photos=[("a", P2)])
    store.credit_unheld_photo(P1, at="2026-11-20T03:00:00Z")
    assert store.photos_held_by(wang, [P1, P2]) == {P1}
    assert store.photos_held_by(li, [P1]) == {P1}
    store.record_holder(P2, li, source="upload", at="2026-11-20T03:00:00Z")
    store.credit_unheld_photo(P2, at="2026-11-20T03:01:00Z")  # held already: nobody else
    assert store.photos_held_by(wang, [P2]) == set()


def test_uses_of_photos_elsewhere_count_only_judged_submissions(pipeline):
    store, users = pipeline
    with store.write():
        add_submission(store, "s1", author=users["wang"], photos=[("a", P1), ("b", P2)])
        add_submission(store, "s2", author=users["wang"], photos=[("a", P1)])  # same record
        add_submission(store, "s3", village=SHILING, record="f2", photos=[("a", P1)])
        add_submission(store, "s4", state="received", photos=[("a", P2)])
    assert store.submissions_using([P1]) == [
        {"sha256": P1, "submission_id": sid, "record_id": rec, "state": "complete"}
        for sid, rec in (("s1", "f1"), ("s2", "f1"), ("s3", "f2"))
    ]
    assert [u["submission_id"] for u in store.submissions_using([P2])] == ["s1", "s4"]
    assert store.submissions_using([]) == []
    assert store.uses_elsewhere([P1, P2, P3], submission_id="s1") == {P1}
    assert store.uses_elsewhere([P1], submission_id="s1", record_id="f1") == {P1}
    assert store.uses_elsewhere([P1], submission_id="s3", record_id="f2") == {P1}
    assert store.uses_elsewhere([P2], submission_id="s4") == {P2}
    assert store.uses_elsewhere([], submission_id="s1") == set()
    assert store.judged_uses([P1], submission_id="s1") == [
        {
            "sha256": P1,
            "submission_id": "s2",
            "record_id": "f1",
            "village_code": YUNYU,
            "township": "桐浦乡",
        },
        {
            "sha256": P1,
            "submission_id": "s3",
            "record_id": "f2",
            "village_code": SHILING,
            "township": "石岭镇",
        },
    ]
    other_record = store.judged_uses([P1, P2], submission_id="s1", record_id="f1")
    assert [u["submission_id"] for u in other_record] == ["s3"]


def test_relation_flags_are_added_once_to_the_uses_that_lack_them(pipeline):
    store, _ = pipeline
    with store.write():
        add_submission(store, "s1", photos=[("a", P1)])
        add_submission(store, "s2", photos=[("a", P1), ("b", P1)])
        add_submission(store, "s3", village=SHILING, record="f2", photos=[("a", P1)])
        add_submission(store, "s4", state="received", photos=[("a", P1)])
    code = "reused_photo"
    assert store.unflagged_uses([P1], code, submission_id="s3") == [("s1", P1), ("s2", P1)]
    assert store.unflagged_uses([P1], code, submission_id="s1", record_id="f1") == [("s3", P1)]
    assert store.unflagged_uses([], code, submission_id="s1") == []
    flag = {"code": code, "photo": P1, "figures": {}, "message": {"zh": "复用", "en": "reused"}}
    with store.write():
        store.add_flags([{**flag, "submission_id": "s1"}, {**flag, "submission_id": "s2"}])
        store.add_flags([])
    assert store.unflagged_uses([P1], code, submission_id="s3") == []
    assert store.unflagged_uses([P1], "near_duplicate", submission_id="s3") == [
        ("s1", P1),
        ("s2", P1),
    ]
    assert store.flag_codes(["s1", "s2", "s3"]) == {"s1": {code}, "s2": {code}}
    assert store.flag_codes([]) == {}
    assert store.flags_of("s1") == [{k: v for k, v in flag.items()}]
    with store.write():
        store.set_risk_scores({"s1": 50, "s2": 70})
        store.set_risk_scores({})
    scores = dict(store.q("SELECT id, risk_score FROM submissions WHERE id IN ('s1', 's2')").all())
    assert scores == {"s1": 50, "s2": 70}


def test_evidence_inputs_gather_a_submission_its_record_and_its_photos(pipeline):
    store, users = pipeline
    with store.write():
        add_submission(store, "s1", author=users["wang"], photos=[("b", P2), ("a", P1), ("a", P3)])
        add_submission(store, "s2", village=SHILING, record="f2", photos=[])
        add_submission(store, "s3", record="no-such-record", photos=[])
    store.insert_media(media_row(P1))
    inputs = store.evidence_inputs("s1")
    photos = inputs.pop("photos")
    assert inputs == {
        "id": "s1",
        "record_id": "f1",
        "record_type": "facility",
        "observed_at": "2026-11-20T10:35:00+08:00",
        "skew_ms": 0,
        "state": "complete",
        "author_id": users["wang"],
        "lat": 24.76,
        "lon": 109.29,
        "datum": None,  # the facility row of this test is written without one
    }
    assert [(p["field"], p["sha256"]) for p in photos] == [("a", P1), ("a", P3), ("b", P2)]
    assert photos[0] == {
        "field": "a",
        "sha256": P1,
        "captured_at": "2026-11-20T10:31:05+08:00",
        "position": {"lat": 24.7636, "lon": 109.2947},
        "exif": media_row(P1)["exif"],
        "phash": "8000000000000001",
        "crop_hashes": ["00000000000000ff"],
    }
    assert photos[1]["exif"] is None and photos[1]["phash"] is None  # not processed yet
    assert store.evidence_inputs("s2")["photos"] == []
    assert store.evidence_inputs("s2")["lat"] is None
    assert store.evidence_inputs("s3")["lat"] is None  # a record not (yet) known
    assert store.evidence_inputs("nope") is None


def test_set_evidence_replaces_the_flags_in_the_order_given(pipeline):
    store, _ = pipeline
    with store.write():
        add_submission(store, "s1", state="received", photos=[("a", P1)])
    flags = [
        {"code": code, "photo": photo, "figures": {"n": n}, "message": {"en": code}}
        for n, (code, photo) in enumerate(
            [("no_exif", P1), ("far_from_record", P1), ("clock_skew", None), ("no_exif", P2)]
        )
    ]
    store.set_evidence("s1", flags=flags[:2], risk_score=10, state=None, at="t0")
    row = store.row("SELECT state, risk_score, completed_at FROM submissions WHERE id = 's1'")
    assert row == {"state": "received", "risk_score": 10, "completed_at": None}
    store.set_evidence("s1", flags=flags[2:] + flags[:1], risk_score=40, state="complete", at="t1")
    assert store.flags_of("s1") == flags[2:] + flags[:1]
    row = store.row("SELECT state, risk_score, completed_at FROM submissions WHERE id = 's1'")
    assert row == {"state": "complete", "risk_score": 40, "completed_at": "t1"}
    store.set_evidence("s1", flags=[], risk_score=0, state=None, at="t2")
    assert store.flags_of("s1") == [] and store.flag_codes(["s1"]) == {}
    assert store.flags_of("nope") == []


def test_a_photo_committed_late_is_never_skipped_by_the_near_duplicate_index(any_store):
    """A second writer's photo waits for the first's commit, so no reader sees a later `seq`
    before an earlier one (each server process tops its index up after the last seq seen)."""
    url = any_store.conn.engine.url.render_as_string(hide_password=False)
    second, reader = connect(url), connect(url)
    done = threading.Event()

    def insert_second():
        second.insert_media(media_row(P2, phash="0000000000000002"))
        done.set()

    try:
        with any_store.write():
            any_store.insert_media(media_row(P1, phash="0000000000000001"))
            thread = threading.Thread(target=insert_second)
            thread.start()
            assert not done.wait(0.5)  # waits for the first photo's commit
            assert reader.media_hashes_after(0) == []
        thread.join(timeout=10)
        assert done.is_set()
        seen = reader.media_hashes_after(0)
        assert [sha for _, sha, _, _ in seen] == [P1, P2] and seen[0][0] < seen[1][0]
    finally:
        second.close()
        reader.close()
