"""Storage contract, records aggregate (server/storage/records.py): facilities, monthly tasks,
observations and conflicts. Runs unchanged on SQLite and PostgreSQL (`any_store`)."""

import threading

import pytest

from server.storage import DatabaseBusy, connect

AT = "2026-11-20T02:00:00+00:00"
VILLAGE, OTHER = "450222101001", "450222102001"


def clock(wall_ms: int, counter: int = 1, device: str = "phone-a") -> str:
    """An encoded clock (sync/clock.py's fixed-width text)."""
    return f"{wall_ms:013d}-{counter:04x}-{device}"


def seed(store) -> int:
    """Two villages and a user, as plain rows; returns the user's id."""
    with store.write():
        for code, name in ((VILLAGE, "云屿村"), (OTHER, "石岭村")):
            store.q(
                "INSERT INTO villages (code, name, township, county, county_class)"
                " VALUES (:code, :name, '桐浦乡', '450222', 1)",
                code=code,
                name=name,
            )
        return store.scalar(
            "INSERT INTO users (username, display_name, role, password_hash)"
            " VALUES ('inspector', '李巡检', 'inspector', 'x') RETURNING id"
        )


def facility_row(fid: str, *, village=VILLAGE, kind="toilet", name="户厕 1", **extra) -> dict:
    return {
        "id": fid,
        "village_code": village,
        "kind": kind,
        "name": name,
        "lat": 24.7636,
        "lon": 109.2947,
        "state": {"in_use": {"value": True, "clock": clock(1000)}},
        "content_hash": f"hash-{fid}",
        **extra,
    }


def task_row(tid: str, *, village=VILLAGE, month="2026-11", due_on="2026-11-25", **extra):
    return {
        "id": tid,
        "village_code": village,
        "month": month,
        "template": "party_day",
        "title": {"zh": "主题党日", "en": "Party day"},
        "due_on": due_on,
        **extra,
    }


def changes(store) -> list[tuple]:
    return [tuple(r[1:]) for r in store.changes_after(0, [VILLAGE, OTHER], 0, 100)]


@pytest.fixture
def store(any_store):
    any_store.user_id = seed(any_store)
    return any_store


# -- facilities ----------------------------------------------------------------------------


def test_a_facility_is_stored_whole_and_logged(store):
    with store.write():
        store.insert_facility(
            facility_row("f-1", created_by=store.user_id, created_clock=clock(900)), at=AT
        )
    got = store.facility("f-1")
    assert got == {
        "id": "f-1",
        "village_code": VILLAGE,
        "kind": "toilet",
        "name": "户厕 1",
        "lat": 24.7636,
        "lon": 109.2947,
        "datum": "wgs84",  # a position given without a datum was taken as WGS-84
        "position_source": None,
        "state": {"in_use": {"value": True, "clock": clock(1000)}},
        "created_by": store.user_id,
        "created_clock": clock(900),
        "created_at": AT,
        "content_hash": "hash-f-1",
    }
    assert store.record("facility", "f-1") == got
    assert store.facility("nope") is None
    assert changes(store) == [("facility", "f-1")]


def test_a_facility_id_is_stored_once(store):
    with store.write():
        store.insert_facility(facility_row("f-1"), at=AT)
    with pytest.raises(Exception), store.write():  # noqa: B017 (each driver's IntegrityError)
        store.insert_facility(facility_row("f-1", name="again"), at=AT)
    assert store.facility("f-1")["name"] == "户厕 1"
    assert changes(store) == [("facility", "f-1")]


def test_facilities_of_a_village_by_kind_and_name_and_by_ids(store):
    with store.write():
        store.insert_facility(facility_row("f-3", kind="well", name="水井"), at=AT)
        store.insert_facility(facility_row("f-2", name="户厕 2"), at=AT)
        store.insert_facility(facility_row("f-1", name="户厕 1"), at=AT)
        store.insert_facility(facility_row("f-9", village=OTHER), at=AT)
    assert [f["id"] for f in store.facilities(VILLAGE)] == ["f-1", "f-2", "f-3"]
    assert store.facilities(VILLAGE)[0]["state"]["in_use"]["value"] is True
    assert store.facilities("000000000000") == []
    by_ids = store.facilities_by_ids(iter(["f-9", "f-1", "missing"]))
    assert sorted(f["id"] for f in by_ids) == ["f-1", "f-9"]
    assert all(isinstance(f["state"], dict) for f in by_ids)
    assert store.facilities_by_ids([]) == []


def test_facility_hashes_of_stored_ids_only(store):
    with store.write():
        store.insert_facility(facility_row("f-1"), at=AT)
        store.insert_facility(facility_row("f-2", content_hash=None), at=AT)
    assert store.facility_hashes(i for i in ["f-1", "f-2", "f-3"]) == {
        "f-1": "hash-f-1",
        "f-2": "",
    }
    assert store.facility_hashes([]) == {}


# -- tasks ---------------------------------------------------------------------------------


def test_a_task_is_inserted_once(store):
    with store.write():
        assert store.insert_task(task_row("t-1"), at=AT) is True
        assert store.insert_task(task_row("t-1", template="other"), at=AT) is False
    got = store.task("t-1")
    assert got == {
        "id": "t-1",
        "village_code": VILLAGE,
        "month": "2026-11",
        "template": "party_day",
        "title": {"zh": "主题党日", "en": "Party day"},
        "due_on": "2026-11-25",
        "state": {},
        "created_at": AT,
    }
    assert store.record("task", "t-1") == got
    assert store.task("nope") is None
    assert store.record("task", "nope") is None
    assert changes(store) == [("task", "t-1")]


def test_tasks_of_a_village_and_month_and_by_ids(store):
    with store.write():
        store.insert_task(task_row("t-b"), at=AT)
        store.insert_task(task_row("t-a"), at=AT)
        store.insert_task(task_row("t-0", month="2026-10", title=None), at=AT)
        store.insert_task(task_row("t-x", village=OTHER), at=AT)
    assert [t["id"] for t in store.tasks(VILLAGE)] == ["t-0", "t-a", "t-b"]
    assert [t["id"] for t in store.tasks(VILLAGE, "2026-11")] == ["t-a", "t-b"]
    assert store.tasks(VILLAGE, "2026-12") == []
    assert store.task("t-0")["title"] is None
    by_ids = store.tasks_by_ids(["t-x", "t-a", "missing"])
    assert sorted(t["id"] for t in by_ids) == ["t-a", "t-x"]
    assert by_ids[0]["title"] == {"zh": "主题党日", "en": "Party day"}
    assert store.tasks_by_ids([]) == []


def test_set_record_states_replaces_the_states_and_logs_them(store):
    with store.write():
        store.insert_facility(facility_row("f-1"), at=AT)
        store.insert_task(task_row("t-1"), at=AT)
    done = {"status": {"value": "done", "clock": clock(2000)}}
    with store.write():
        store.set_record_states(
            "task", [{"id": "t-1", "state": done, "village_code": VILLAGE}], at=AT
        )
        store.set_record_states(
            "facility", [{"id": "f-1", "state": {}, "village_code": VILLAGE}], at=AT
        )
    assert store.task("t-1")["state"] == done
    assert store.facility("f-1")["state"] == {}
    assert changes(store)[-2:] == [("task", "t-1"), ("facility", "f-1")]


def test_tasks_not_done_due_before_a_day(store):
    def status(value, wall):
        return {"status": {"value": value, "clock": clock(wall)}}

    with store.write():
        store.insert_task(task_row("t-new"), at=AT)
        store.insert_task(task_row("t-busy", state=status("in_progress", 5000)), at=AT)
        store.insert_task(task_row("t-done", state=status("done", 5000)), at=AT)
        store.insert_task(task_row("t-late", state=status("overdue", 5000)), at=AT)
        store.insert_task(task_row("t-later", due_on="2026-11-30"), at=AT)
        store.insert_task(task_row("t-added-late", due_on="2026-11-10"), at=AT)
        store.q("UPDATE tasks SET created_at = NULL WHERE id = 't-new'")
    assert store.tasks_not_done_due_before("2026-11-26") == [
        {
            "id": "t-busy",
            "village_code": VILLAGE,
            "due_on": "2026-11-25",
            "status_clock": clock(5000),
        },
        {"id": "t-new", "village_code": VILLAGE, "due_on": "2026-11-25", "status_clock": None},
    ]
    assert store.tasks_not_done_due_before("2026-11-25") == []


# -- observations --------------------------------------------------------------------------


def observation(oid, wall_ms, *, record="f-1", counter=1, fields=None, base=None) -> dict:
    return {
        "id": oid,
        "record_id": record,
        "clock": clock(wall_ms, counter),
        "wall_ms": wall_ms,
        "fields": fields or {"in_use": True},
        "base": base or {},
    }


def test_observations_of_records_from_a_wall_time_oldest_first(store):
    with store.write():
        store.insert_observations(
            [
                observation("o-3", 3000, base={"in_use": clock(1000)}),
                observation("o-1", 1000, fields={"in_use": False}),
                observation("o-2", 2000, counter=2),
                observation("o-x", 2000, record="f-2"),
                observation("o-0", 999),
            ]
        )
    since = store.observations_since(["f-1"], 1000)
    assert since[:2] == [
        {
            "id": "o-1",
            "record_id": "f-1",
            "clock": clock(1000),
            "fields": {"in_use": False},
            "base": {},
        },
        {
            "id": "o-2",
            "record_id": "f-1",
            "clock": clock(2000, 2),
            "fields": {"in_use": True},
            "base": {},
        },
    ]
    assert [o["id"] for o in since] == ["o-1", "o-2", "o-3"]
    assert since[2]["base"] == {"in_use": clock(1000)}
    assert [o["id"] for o in store.observations_since(["f-1", "f-2"], 2000)] == [
        "o-x",
        "o-2",
        "o-3",
    ]
    assert store.observations_since(["f-1"], 3001) == []
    assert store.observations_since([], 0) == []
    assert store.observation_clocks(["o-1", "o-3", "missing"]) == {
        "o-1": clock(1000),
        "o-3": clock(3000),
    }
    assert store.observation_clocks(set()) == {}


def test_newest_clock_up_to_a_wall_time(store):
    assert store.newest_clock(max_wall_ms=10**13) is None
    with store.write():
        store.insert_observations([observation("o-1", 1000)])
        store.insert_observations([observation("o-2", 2000, counter=5)])
    assert store.newest_clock(max_wall_ms=10**13 - 1) == clock(2000, 5)
    assert store.newest_clock(max_wall_ms=2000) == clock(2000, 5)
    assert store.newest_clock(max_wall_ms=1999) == clock(1000)
    assert store.newest_clock(max_wall_ms=999) is None
    assert store.newest_clock(max_wall_ms=-5) is None


def test_an_observation_holds_its_record_until_the_write_ends(store, engine_url):
    """A second merge of the same record waits for the first (PostgreSQL: the record's lock;
    SQLite: the one write lock) and gives up with DatabaseBusy, having written nothing."""
    other = connect(engine_url, write_wait=0.3)
    try:
        with store.write():
            store.insert_observations([observation("o-1", 1000)])
            with pytest.raises(DatabaseBusy), other.write():
                other.insert_observations([observation("o-2", 2000)])
        assert other.observation_clocks(["o-1", "o-2"]) == {"o-1": clock(1000)}
        with other.write():
            other.insert_observations([observation("o-2", 2000)])
        assert store.newest_clock(max_wall_ms=10**13) == clock(2000)
    finally:
        other.close()


def test_merges_of_one_record_run_one_after_another(store, engine_url):
    """Two writers each read the record's state after inserting an observation of it and then
    add to it: the record ends with both additions, never just the later writer's."""
    with store.write():
        store.insert_facility(facility_row("f-1", state={}), at=AT)
    started = threading.Event()

    def merge(target, oid, wall_ms, pause):
        with target.write():
            target.insert_observations([observation(oid, wall_ms)])
            state = target.facility("f-1")["state"]
            started.set()
            pause()
            target.set_record_states(
                "facility",
                [{"id": "f-1", "state": {**state, oid: wall_ms}, "village_code": VILLAGE}],
                at=AT,
            )

    other = connect(engine_url)
    try:
        release = threading.Event()
        first = threading.Thread(target=merge, args=(store, "o-1", 1000, release.wait))
        first.start()
        started.wait(5)
        second = threading.Thread(target=merge, args=(other, "o-2", 2000, lambda: None))
        second.start()
        second.join(0.2)
        release.set()
        first.join(5)
        second.join(5)
    finally:
        other.close()
    assert store.facility("f-1")["state"] == {"o-1": 1000, "o-2": 2000}


# -- conflicts -----------------------------------------------------------------------------


def conflict_row(cid, *, record="f-1", field="in_use", **extra) -> dict:
    return {
        "id": cid,
        "record_id": record,
        "field": field,
        "a": "o-1",
        "b": "o-2",
        "a_value": True,
        "b_value": {"nested": ["值", 1]},
        "winner": "o-2",
        **extra,
    }


def test_a_conflict_is_inserted_once_and_resolved_once(store):
    with store.write():
        store.insert_conflicts([conflict_row("c-1")], at=AT)
        store.insert_conflicts(
            [conflict_row("c-1", winner="o-1"), conflict_row("c-2", resolved_by="o-0")], at=AT
        )
    (open_,) = store.open_conflicts_of(["f-1"])
    assert open_ == {
        "id": "c-1",
        "record_id": "f-1",
        "field": "in_use",
        "a": "o-1",
        "b": "o-2",
        "a_value": True,
        "b_value": {"nested": ["值", 1]},
        "winner": "o-2",
        "resolved_by": None,
        "created_at": AT,
    }
    with store.write():
        store.resolve_conflicts({"c-1": "o-3"})
        store.resolve_conflicts({"c-1": "o-4"})  # already resolved: stays with o-3
    assert store.open_conflicts_of(["f-1"]) == []
    assert store.open_conflicts_of([]) == []
    assert {c["id"]: c["resolved_by"] for c in store.conflicts(record_id="f-1")} == {
        "c-1": "o-3",
        "c-2": "o-0",
    }


def test_conflicts_of_a_record_or_all_in_id_order(store):
    with store.write():
        store.insert_conflicts(
            [
                conflict_row("c-b"),
                conflict_row("c-a", record="f-2"),
                conflict_row("c-c", field="sanitary"),
            ],
            at=AT,
        )
    assert [c["id"] for c in store.conflicts()] == ["c-a", "c-b", "c-c"]
    assert [c["id"] for c in store.conflicts(record_id="f-1")] == ["c-b", "c-c"]
    assert [c["id"] for c in store.open_conflicts_of(["f-2"])] == ["c-a"]
    assert [c["id"] for c in store.open_conflicts_of(["f-2", "f-1"])] == ["c-a", "c-b", "c-c"]
    assert store.conflicts(record_id="none") == []
    assert store.conflicts()[0]["a_value"] is True


def test_a_facility_keeps_its_datum_and_source_and_refuses_unknown_ones(store):
    with store.write():
        store.insert_facility(
            facility_row("f-1", datum="gcj02", position_source="register_import"), at=AT
        )
    got = store.facility("f-1")
    assert (got["datum"], got["position_source"]) == ("gcj02", "register_import")
    for bad in ({"datum": "gcj-02"}, {"position_source": "amap"}):
        with pytest.raises(ValueError), store.write():
            store.insert_facility(facility_row("f-2", **bad), at=AT)
    assert store.facility("f-2") is None
