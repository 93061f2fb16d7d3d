"""Storage contract for the recount (issue 12): which observations count, a record's conflicts
replaced by a recount's, and the outcomes a submission's author pulls. Runs unchanged on
SQLite and PostgreSQL (`any_store`)."""

import pytest
from test_storage_submissions import VILLAGE, clock, insert
from test_storage_submissions import store as _submissions_store  # noqa: F401

AT = "2026-11-20T02:00:00+00:00"


@pytest.fixture
def store(_submissions_store):  # noqa: F811
    s = _submissions_store
    with s.write():
        s.insert_facility(
            {
                "id": "f-1",
                "village_code": VILLAGE,
                "kind": "toilet",
                "name": "户厕",
                "lat": 24.7,
                "lon": 109.3,
                "state": {"toilet_type": {"value": "household", "clock": clock(500), "by": "f-1"}},
            },
            at=AT,
        )
    for sid, wall in (("s-1", 1000), ("s-2", 2000), ("s-3", 3000)):
        insert(s, sid, wall_ms=wall)
    with s.write():
        s.insert_observations(
            [
                {
                    "id": sid,
                    "record_id": "f-1",
                    "clock": clock(wall),
                    "wall_ms": wall,
                    "fields": {"in_use": wall > 1500},
                    "base": {},
                }
                for sid, wall in (("s-1", 1000), ("s-2", 2000), ("s-3", 3000))
            ]
        )
    return s


def conflict(cid, a, b, *, field="in_use", winner=None, resolved_by=None):
    return {
        "id": cid,
        "record_id": "f-1",
        "field": field,
        "a": a,
        "b": b,
        "a_value": False,
        "b_value": True,
        "winner": winner or b,
        "resolved_by": resolved_by,
    }


def test_a_registration_is_the_floor_and_a_rejected_report_does_not_count(store):
    rows = store.observations_of_record("f-1")
    assert [(r["id"], r["counted"]) for r in rows] == [
        ("f-1", True),  # the registration, oldest
        ("s-1", True),
        ("s-2", True),
        ("s-3", True),
    ]
    assert rows[0]["fields"] == {"toilet_type": "household"} and rows[0]["base"] == {}
    # Never a conflict candidate.
    assert [o["id"] for o in store.observations_since(["f-1"], 0)] == ["s-1", "s-2", "s-3"]
    with store.write():
        store.q("UPDATE submissions SET state = 'rejected' WHERE id = 's-2'")
    assert [r["counted"] for r in store.observations_of_record("f-1")] == [True, True, False, True]
    assert [o["id"] for o in store.observations_since(["f-1"], 0)] == ["s-1", "s-3"]


def test_a_recount_replaces_a_records_conflicts_and_says_which_changed(store):
    with store.write():
        store.insert_conflicts(
            [conflict("c-12", "s-1", "s-2"), conflict("c-13", "s-1", "s-3")], at=AT
        )
    assert [c["id"] for c in store.open_conflicts_by_side(["s-1"])] == ["c-12", "c-13"]
    with store.write():
        changed = store.replace_conflicts(
            "f-1",
            [conflict("c-13", "s-1", "s-3", resolved_by="r-1"), conflict("c-23", "s-2", "s-3")],
            at="later",
        )
    assert sorted(c["id"] for c in changed) == ["c-12", "c-13", "c-23"]
    held = {c["id"]: c for c in store.conflicts(record_id="f-1")}
    assert set(held) == {"c-13", "c-23"}
    assert held["c-13"]["resolved_by"] == "r-1" and held["c-13"]["created_at"] == AT
    with store.write():  # the same set again changes nothing; reopening is a change
        assert store.replace_conflicts("f-1", [conflict("c-23", "s-2", "s-3")], at=AT) == [
            held["c-13"]
        ]
        assert store.replace_conflicts("f-1", [conflict("c-23", "s-2", "s-3")], at=AT) == []


def test_outcomes_tell_each_side_and_only_its_author(store):
    with store.write():
        store.insert_conflicts([conflict("c-12", "s-1", "s-2", winner="s-2")], at=AT)
        store.log_outcomes(["s-1", "s-2", "not-a-submission"], at=AT)
    by_id = {o["submission_id"]: o for o in store.outcomes(["s-1", "s-2", "s-3", "nope"])}
    assert by_id == {
        "s-1": {
            "submission_id": "s-1",
            "state": "complete",
            "conflict": True,
            "conflict_fields": ["in_use"],
            "lost_fields": ["in_use"],
        },
        "s-2": {
            "submission_id": "s-2",
            "state": "complete",
            "conflict": True,
            "conflict_fields": ["in_use"],
            "lost_fields": [],
        },
        "s-3": {
            "submission_id": "s-3",
            "state": "complete",
            "conflict": False,
            "conflict_fields": [],
            "lost_fields": [],
        },
    }
    author = store.users["inspector"]
    mine = store.changes_after(0, [VILLAGE], author, 100)
    assert [(r[1], r[2]) for r in mine if r[1] == "outcome"] == [
        ("outcome", "s-1"),
        ("outcome", "s-2"),
    ]
    other = store.changes_after(0, [VILLAGE], store.users["supervisor"], 100)
    assert not [r for r in other if r[1] == "outcome"]
    assert store.outcomes([]) == []
