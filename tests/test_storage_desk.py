"""Contract of the desk's and the exports' queries (storage/desk.py), on SQLite and PostgreSQL.

The rows they read are written with plain INSERTs, so this suite depends on nothing but the
schema: two villages in two townships, a facility in each, three monthly tasks, five
submissions with photos, flags, a sample, reviews and conflicts.
"""

import json

import pytest

A, B = "450222101001", "450222102001"
S1, S2, S3, S4, S5 = "sub-1", "sub-2", "sub-3", "sub-4", "sub-5"
HELD, MISSING, TASK_PHOTO, UNHELD = "a" * 64, "b" * 64, "c" * 64, "d" * 64


def _insert(store, table: str, **row) -> None:
    store.q(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})",
        **row,
    )


def _with_seq(store, table: str, **row) -> None:
    """An INSERT into a table numbered by `seq` (flags, media, submission_media)."""
    store.q(
        f"INSERT INTO {table} ({', '.join(row)}, seq)"
        f" VALUES ({', '.join(':' + k for k in row)}, {store.dialect.next_seq(table)})",
        **row,
    )


def _user(store, username, display_name) -> int:
    return store.scalar(
        "INSERT INTO users (username, display_name, role, password_hash)"
        " VALUES (:username, :display_name, 'inspector', 'x') RETURNING id",
        username=username,
        display_name=display_name,
    )


def _submission(store, id, record_id, record_type, village, author, **extra) -> None:
    row = {
        "form_id": "toilet",
        "form_version": 1,
        "clock": "0001",
        "answers": json.dumps({"note": id}),
        "state": "complete",
        "observed_at": "2026-11-03T09:00:00+08:00",
        "received_at": "2026-11-03T01:05:00+00:00",
        **extra,
    }
    _insert(
        store,
        "submissions",
        id=id,
        record_id=record_id,
        record_type=record_type,
        village_code=village,
        author_id=author,
        device_id=f"phone-{id}",
        **row,
    )


@pytest.fixture
def desk(any_store):
    store = any_store
    with store.write():
        for code, name, township in ((A, "云屿村", "桐浦乡"), (B, "石岭村", "石岭镇")):
            _insert(
                store,
                "villages",
                code=code,
                name=name,
                township=township,
                county="临川县",
                county_class=2,
            )
        ids = {
            "wang": _user(store, "wang", "王巡检"),
            "li": _user(store, "li", "李督导"),
            "zhao": _user(store, "zhao", None),
        }
        for fid, village, kind, name, lat in (
            ("fac-a", A, "toilet", "一号户厕", 24.5),
            ("fac-a2", A, "rubbish", "村口收集点", None),
            ("fac-b", B, "toilet", "石岭公厕", 24.9),
        ):
            _insert(
                store,
                "facilities",
                id=fid,
                village_code=village,
                kind=kind,
                name=name,
                lat=lat,
                lon=None if lat is None else 110.2,
                state=json.dumps({"in_use": {"value": True, "clock": "0001"}}),
            )
        for tid, village, month, due, title in (
            ("task-1", A, "2026-11", "2026-11-20", "清扫村道"),
            ("task-2", A, "2026-11", "2026-11-05", "改厕回访"),
            ("task-3", B, "2026-11", "2026-11-10", "消防检查"),
            ("task-4", A, "2026-10", "2026-10-10", "上月任务"),
            ("task-5", A, "2026-11", None, "随时可做"),
        ):
            _insert(
                store,
                "tasks",
                id=tid,
                village_code=village,
                month=month,
                template="t",
                title=json.dumps({"zh": title}),
                due_on=due,
                state=json.dumps({"status": {"value": "done", "clock": "0001"}}),
            )
        wang, li = ids["wang"], ids["li"]
        _submission(store, S1, "fac-a", "facility", A, wang, risk_score=80)
        _submission(
            store,
            S2,
            "fac-a",
            "facility",
            A,
            wang,
            state="received",
            observed_at="2026-10-30T10:00:00+08:00",
            received_at="2026-11-02T00:00:00+00:00",
        )
        _submission(
            store, S3, "task-1", "task", A, wang, form_id="monthly_task", risk_score=10, clock="2"
        )
        _submission(store, S4, "fac-b", "facility", B, li, state="approved", risk_score=90)
        _submission(
            store,
            S5,
            "task-1",
            "task",
            A,
            wang,
            form_id="monthly_task",
            clock="3",
            observed_at="2026-11-04T09:00:00+08:00",
        )
        for code in ("gps_far", "exif_missing", "gps_far"):
            _with_seq(store, "flags", submission_id=S1, code=code, message=code)
        _with_seq(store, "flags", submission_id=S4, code="reused_photo", message="x")
        sample = store.scalar(
            "INSERT INTO samples (drawn_at, seed, rule) VALUES ('2026-11-04', 7, 'r') RETURNING id"
        )
        _insert(store, "sample_members", sample_id=sample, submission_id=S1, picked=1)
        _insert(store, "sample_members", sample_id=sample, submission_id=S2, picked=0)
        for sha, mime in ((HELD, "image/jpeg"), (TASK_PHOTO, "image/png"), (UNHELD, "image/jpeg")):
            _with_seq(
                store,
                "media",
                sha256=sha,
                size=1234,
                mime=mime,
                width=640,
                height=480,
                exif=json.dumps({"make": "Huawei"}),
            )
        _insert(store, "photo_holders", sha256=HELD, user_id=wang, source="push", at="x")
        _insert(store, "photo_holders", sha256=TASK_PHOTO, user_id=wang, source="push", at="x")
        _insert(store, "photo_holders", sha256=UNHELD, user_id=li, source="push", at="x")
        position = json.dumps({"lat": 24.5, "lon": 110.2, "accuracy": 8})
        for sub, field, sha in (
            (S1, "photo_front", HELD),
            (S1, "photo_front", MISSING),
            (S1, "photo_inside", UNHELD),
            (S3, "photo", TASK_PHOTO),
            (S5, "photo", HELD),
            (S2, "photo_front", HELD),
        ):
            _with_seq(
                store,
                "submission_media",
                submission_id=sub,
                field=field,
                sha256=sha,
                captured_at="2026-11-03T08:55:00+08:00",
                position=position if sha == HELD else None,
            )
        for decision, at in (("approved", "2026-11-04T01:00:00"), ("rejected", "2026-11-05")):
            _insert(
                store,
                "reviews",
                submission_id=S1,
                decision=decision,
                reason=None if decision == "approved" else "照片模糊",
                reviewer_id=li,
                at=at,
            )
        for cid, record, created, resolved in (
            ("c-1", "fac-a", "2026-11-03T02:00:00", None),
            ("c-2", "task-1", "2026-11-04T02:00:00", S3),
            ("c-3", "fac-b", "2026-11-05T02:00:00", None),
        ):
            _insert(
                store,
                "conflicts",
                id=cid,
                record_id=record,
                field="in_use",
                a=S1,
                b=S2,
                a_value=json.dumps(True),
                b_value=json.dumps({"value": False}),
                winner=S1,
                resolved_by=resolved,
                created_at=created,
            )
    store.ids = ids
    return store


def _ids(rows) -> list[str]:
    return [r["id"] for r in rows]


# -- the queue ---------------------------------------------------------------------------------


def test_queue_is_riskiest_first_then_newest(desk):
    rows, total = desk.desk_queue([A, B])
    assert total == 5
    # risk 90, 80, 10, then the unscored ones, newest received first
    assert _ids(rows) == [S4, S1, S3, S5, S2]
    first = rows[1]
    assert first == {
        "id": S1,
        "form_id": "toilet",
        "form_version": 1,
        "record_id": "fac-a",
        "record_type": "facility",
        "village_code": A,
        "village_name": "云屿村",
        "township": "桐浦乡",
        "author_id": desk.ids["wang"],
        "author": "王巡检",
        "observed_at": "2026-11-03T09:00:00+08:00",
        "received_at": "2026-11-03T01:05:00+00:00",
        "state": "complete",
        "risk_score": 80,
        "record_name": "一号户厕",
        "flag_codes": ["exif_missing", "gps_far"],
        "sampled": True,
    }
    assert type(first["risk_score"]) is int and type(first["form_version"]) is int
    by_id = {r["id"]: r for r in rows}
    assert by_id[S3]["record_name"] == "清扫村道"
    assert by_id[S2]["flag_codes"] == [] and by_id[S2]["sampled"] is False
    assert by_id[S4]["flag_codes"] == ["reused_photo"]


def test_queue_ties_break_by_received_then_id(desk):
    rows, _ = desk.desk_queue([A], states=["complete", "received"])
    # S2 and S5 both unscored; S5 received 2026-11-03T01:05, S2 on 2026-11-02
    assert _ids(rows) == [S1, S3, S5, S2]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"township": "桐浦乡"}, {S1, S2, S3, S5}),
        ({"village": B}, {S4}),
        ({"form": "monthly_task"}, {S3, S5}),
        ({"flag": "gps_far"}, {S1}),
        ({"states": ["received", "approved"]}, {S2, S4}),
        ({"states": []}, set()),
        ({"sampled": True}, {S1}),
        ({"township": "桐浦乡", "form": "toilet", "states": ["complete"]}, {S1}),
    ],
)
def test_queue_filters(desk, filters, expected):
    rows, total = desk.desk_queue([A, B], **filters)
    assert set(_ids(rows)) == expected and total == len(expected)


def test_queue_pages_and_scope(desk):
    rows, total = desk.desk_queue([A, B], limit=2, offset=1)
    assert _ids(rows) == [S1, S3] and total == 5
    assert desk.desk_queue([A, B], limit=0) == ([], 5)
    assert desk.desk_queue([B])[1] == 1
    assert desk.desk_queue([]) == ([], 0)
    assert desk.desk_queue(iter([B]), village=A) == ([], 0)


# -- one submission ----------------------------------------------------------------------------


def test_photos_of_submissions_in_order_with_what_is_held(desk):
    photos = desk.desk_photos([S3, S1])
    assert [(p["submission_id"], p["field"], p["sha256"]) for p in photos] == [
        (S1, "photo_front", HELD),
        (S1, "photo_front", MISSING),
        (S1, "photo_inside", UNHELD),
        (S3, "photo", TASK_PHOTO),
    ]
    held, missing = photos[0], photos[1]
    assert held == {
        "submission_id": S1,
        "field": "photo_front",
        "sha256": HELD,
        "captured_at": "2026-11-03T08:55:00+08:00",
        "position": {"lat": 24.5, "lon": 110.2, "accuracy": 8},
        "held": True,
        "mime": "image/jpeg",
        "width": 640,
        "height": 480,
        "size": 1234,
        "exif": {"make": "Huawei"},
    }
    assert missing["held"] is False and missing["exif"] is None and missing["position"] is None
    assert missing["mime"] is None and missing["size"] is None
    assert desk.desk_photos([]) == [] and desk.desk_photos(["nope"]) == []


def test_reviews_oldest_first_with_reviewer(desk):
    reviews = desk.desk_reviews(S1)
    assert [(r["decision"], r["reason"], r["reviewer"]) for r in reviews] == [
        ("approved", None, "李督导"),
        ("rejected", "照片模糊", "李督导"),
    ]
    assert reviews[0]["reviewer_id"] == desk.ids["li"] and reviews[0]["at"]
    assert reviews[0]["id"] < reviews[1]["id"]
    assert desk.desk_reviews(S2) == []


def test_user_names_fall_back_to_username(desk):
    ids = desk.ids
    assert desk.desk_user_names([ids["wang"], ids["zhao"], None, ids["wang"]]) == {
        ids["wang"]: "王巡检",
        ids["zhao"]: "zhao",
    }
    assert desk.desk_user_names([]) == {} and desk.desk_user_names([None]) == {}


# -- conflicts ---------------------------------------------------------------------------------


def test_conflicts_newest_first_in_scope(desk):
    rows, total = desk.desk_conflicts([A])
    assert _ids(rows) == ["c-1"] and total == 1
    rows, total = desk.desk_conflicts([A, B], open_only=False)
    assert _ids(rows) == ["c-3", "c-2", "c-1"] and total == 3
    c1 = rows[2]
    assert c1["a_value"] is True and c1["b_value"] == {"value": False}
    assert (c1["village_code"], c1["village_name"], c1["township"]) == (A, "云屿村", "桐浦乡")
    assert (c1["record_type"], c1["record_name"], c1["kind"]) == ("facility", "一号户厕", "toilet")
    assert (c1["field"], c1["a"], c1["b"], c1["winner"]) == ("in_use", S1, S2, S1)
    rows, total = desk.desk_conflicts([A, B], open_only=False, limit=1, offset=1)
    assert _ids(rows) == ["c-2"] and total == 3
    assert desk.desk_conflicts([A, B], limit=0) == ([], 2)
    assert desk.desk_conflicts([]) == ([], 0)


def test_one_conflict(desk):
    c2 = desk.desk_conflict("c-2")
    assert c2["record_type"] == "task" and c2["record_name"] == "清扫村道"
    assert c2["kind"] is None and c2["resolved_by"] == S3 and c2["village_code"] == A
    assert desk.desk_conflict("c-3")["village_name"] == "石岭村"
    assert desk.desk_conflict("nope") is None


# -- monthly tasks -----------------------------------------------------------------------------


def test_tasks_of_a_month_by_township_and_village(desk):
    tasks = desk.desk_tasks([A, B], "2026-11")
    # 桐浦乡 (U+6850) sorts before 石岭镇 (U+77F3): code point order on both engines; a task
    # without a due date comes first on both
    assert _ids(tasks) == ["task-5", "task-2", "task-1", "task-3"]
    assert tasks[0]["due_on"] is None
    task = tasks[2]
    assert task["title"] == {"zh": "清扫村道"} and task["state"]["status"]["value"] == "done"
    assert (task["village_name"], task["township"], task["due_on"]) == (
        "云屿村",
        "桐浦乡",
        "2026-11-20",
    )
    assert _ids(desk.desk_tasks([A], "2026-10")) == ["task-4"]
    assert desk.desk_tasks([], "2026-11") == []


def test_task_evidence_newest_submission_first(desk):
    items = desk.desk_task_evidence(["task-1", "task-2"])
    assert items == [
        {
            "task_id": "task-1",
            "submission_id": S5,
            "state": "complete",
            "observed_at": "2026-11-04T09:00:00+08:00",
            "field": "photo",
            "sha256": HELD,
        },
        {
            "task_id": "task-1",
            "submission_id": S3,
            "state": "complete",
            "observed_at": "2026-11-03T09:00:00+08:00",
            "field": "photo",
            "sha256": TASK_PHOTO,
        },
    ]
    assert desk.desk_task_evidence([]) == [] and desk.desk_task_evidence(["fac-a"]) == []


# -- exports -----------------------------------------------------------------------------------


@pytest.fixture(params=["own transaction", "in reading()"])
def export(request, desk):
    """Run an export generator on its own, or inside the caller's read transaction as the
    export views do."""

    def run(rows):
        if request.param == "own transaction":
            return list(rows)
        with desk.reading():
            return list(rows)

    return run


def test_export_submissions(desk, export):
    rows = export(desk.iter_export_submissions("toilet", [A, B], batch=1))
    assert _ids(rows) == [S2, S1, S4]
    s1 = rows[1]
    assert s1 == {
        "id": S1,
        "form_version": 1,
        "village_code": A,
        "village_name": "云屿村",
        "township": "桐浦乡",
        "record_id": "fac-a",
        "record_name": "一号户厕",
        "observed_at": "2026-11-03T09:00:00+08:00",
        "received_at": "2026-11-03T01:05:00+00:00",
        "author": "王巡检",
        "device_id": f"phone-{S1}",
        "state": "complete",
        "risk_score": 80,
        "answers": json.dumps({"note": S1}),
    }
    assert _ids(export(desk.iter_export_submissions("toilet", [A, B], month="2026-11"))) == [
        S1,
        S4,
    ]
    tasks = export(desk.iter_export_submissions("monthly_task", iter([A])))
    assert _ids(tasks) == [S3, S5] and tasks[0]["record_name"] == "清扫村道"
    assert export(desk.iter_export_submissions("toilet", [])) == []


def test_export_facilities(desk, export):
    rows = export(desk.iter_export_facilities([A, B], batch=2))
    assert _ids(rows) == ["fac-a2", "fac-a", "fac-b"]
    assert rows[1] == {
        "id": "fac-a",
        "village_code": A,
        "village_name": "云屿村",
        "township": "桐浦乡",
        "kind": "toilet",
        "name": "一号户厕",
        "lat": 24.5,
        "lon": 110.2,
        "state": json.dumps({"in_use": {"value": True, "clock": "0001"}}),
    }
    assert rows[0]["lat"] is None
    assert _ids(export(desk.iter_export_facilities([A, B], kind="toilet"))) == ["fac-a", "fac-b"]
    assert export(desk.iter_export_facilities([B], kind="rubbish")) == []
    assert export(desk.iter_export_facilities([])) == []


def test_export_village_photos_only_what_the_village_may_read(desk, export):
    rows = export(desk.iter_village_photos(A, batch=1))
    # UNHELD is held on the server but only by an author outside the village: left out
    assert [(r["submission_id"], r["field"], r["sha256"]) for r in rows] == [
        (S2, "photo_front", HELD),
        (S1, "photo_front", HELD),
        (S1, "photo_front", MISSING),
        (S3, "photo", TASK_PHOTO),
        (S5, "photo", HELD),
    ]
    s1 = rows[1]
    assert s1 == {
        "sha256": HELD,
        "field": "photo_front",
        "captured_at": "2026-11-03T08:55:00+08:00",
        "position": json.dumps({"lat": 24.5, "lon": 110.2, "accuracy": 8}),
        "submission_id": S1,
        "form_id": "toilet",
        "form_version": 1,
        "observed_at": "2026-11-03T09:00:00+08:00",
        "record_id": "fac-a",
        "record_name": "一号户厕",
        "author": "王巡检",
        "mime": "image/jpeg",
        "size": 1234,
    }
    assert rows[2]["mime"] is None and rows[3]["record_name"] == "清扫村道"
    october = export(desk.iter_village_photos(A, month="2026-10"))
    assert [r["submission_id"] for r in october] == [S2]
    assert export(desk.iter_village_photos(B)) == []


def test_an_abandoned_export_ends_only_its_own_transaction(desk):
    rows = desk.iter_export_facilities([A, B], batch=1)
    assert next(rows)["id"] == "fac-a2" and desk.in_transaction()
    rows.close()
    assert not desk.in_transaction()
    with desk.reading():
        rows = desk.iter_village_photos(A, batch=1)
        assert next(rows)["submission_id"] == S2
        rows.close()
        assert desk.in_transaction()
        assert desk.desk_conflict("c-1")["id"] == "c-1"


def test_form_versions_with_when_published_and_submissions_in_scope(desk):
    with desk.write():
        for form_id, version in (("toilet", 2), ("toilet", 1), ("monthly_task", 1)):
            definition = {"id": form_id, "version": version, "fields": []}
            desk.publish_form(definition, f"sha-{form_id}-{version}", at=f"2026-11-0{version}")

    def seen(villages):
        return [
            (r["form_id"], r["version"], r["published_at"], r["submissions"], r["definition"]["id"])
            for r in desk.desk_form_versions(villages)
        ]

    assert seen([A]) == [
        ("monthly_task", 1, "2026-11-01", 2, "monthly_task"),
        ("toilet", 1, "2026-11-01", 2, "toilet"),
        ("toilet", 2, "2026-11-02", 0, "toilet"),
    ]
    assert [r[3] for r in seen([A, B])] == [2, 3, 0]
    assert [r[3] for r in seen([])] == [0, 0, 0]
