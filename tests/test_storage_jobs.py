"""Storage contract: job leases and runs, spot-check samples, indicators (storage/jobs.py).

Runs unchanged on SQLite and PostgreSQL (`any_store`); the rows the methods read are written
here as plain rows (see test_storage_media).
"""

import multiprocessing

import pytest
from test_storage_media import SHILING, YUNYU, add_facility, add_submission, add_village

from server.storage import connect, dumps

T0, T5, T10, T11 = (f"2026-12-01T00:{m:02d}:00.000+00:00" for m in (0, 5, 10, 11))
LATER = "2026-12-01T01:00:00.000+00:00"


def test_a_live_lease_is_held_by_one_holder_until_it_expires_or_is_released(any_store):
    store = any_store
    assert store.job_leases() == []
    assert store.take_job_lease("j", "a", now=T0, until=T10)
    assert not store.take_job_lease("j", "b", now=T5, until=LATER)
    assert not store.take_job_lease("j", "a", now=T5, until=LATER)
    assert store.job_leases() == [{"job": "j", "holder": "a", "expires_at": T10, "last_slot": None}]
    assert store.take_job_lease("j", "b", now=T11, until=LATER)  # expired: anyone may take it
    store.release_job_lease("j", "a", now=T11)  # not a's any more: nothing changes
    assert store.job_leases()[0]["holder"] == "b"
    store.release_job_lease("j", "b", now=T11)
    assert store.take_job_lease("j", "c", now=T11, until=LATER)  # free at once
    assert store.take_job_lease("k", "a", now=T0, until=T10)
    assert [(lease["job"], lease["holder"]) for lease in store.job_leases()] == [
        ("j", "c"),
        ("k", "a"),
    ]


def test_a_completed_slot_is_never_run_again(any_store):
    store = any_store
    assert store.take_job_lease("j", "a", now=T0, until=T10, slot="2026-12-01")
    store.release_job_lease("j", "a", now=T0, slot="2026-12-01")
    assert store.job_leases()[0]["last_slot"] == "2026-12-01"
    assert not store.take_job_lease("j", "b", now=T0, until=T10, slot="2026-12-01")
    assert not store.take_job_lease("j", "b", now=T0, until=T10, slot="2026-11-30")
    assert store.take_job_lease("j", "b", now=T0, until=T10, slot="2026-12-02")
    store.release_job_lease("j", "b", now=T0)  # no slot completed: the last one stays
    assert store.job_leases()[0]["last_slot"] == "2026-12-01"
    assert store.take_job_lease("j", "c", now=T0, until=T10)  # without a slot: lease only


def _contend(url, job, holder, now, barrier, results):
    store = connect(url)
    try:
        barrier.wait()
        results.put((holder, store.take_job_lease(job, holder, now=now, until=LATER, slot=now)))
    finally:
        store.close()


@pytest.mark.parametrize("expired", [False, True])
def test_of_several_processes_asking_at_once_exactly_one_takes_the_lease(any_store, expired):
    url = any_store.conn.engine.url.render_as_string(hide_password=False)
    if expired:
        assert any_store.take_job_lease("j0", "old", now=T0, until=T5)
    fork = multiprocessing.get_context("fork")
    for attempt in range(3):
        job = "j0" if expired and attempt == 0 else f"j{attempt}"
        now = f"2026-12-01T00:{10 + attempt:02d}:00.000+00:00"
        holders = [f"p{attempt}-{n}" for n in range(4)]
        barrier, results = fork.Barrier(len(holders)), fork.Queue()
        procs = [
            fork.Process(target=_contend, args=(url, job, h, now, barrier, results))
            for h in holders
        ]
        for p in procs:
            p.start()
        outcome = dict(results.get(timeout=30) for _ in procs)
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        winners = [h for h, took in outcome.items() if took]
        assert len(winners) == 1, outcome
        leases = {lease["job"]: lease["holder"] for lease in any_store.job_leases()}
        assert leases[job] == winners[0]


def test_the_run_log_keeps_each_run_newest_first(any_store):
    store = any_store
    first = store.start_job_run("j", "a", slot="2026-12-01", at=T0)
    second = store.start_job_run("k", "a", slot=None, at=T5)
    third = store.start_job_run("j", "b", slot="2026-12-02", at=T10)
    assert first < second < third
    store.finish_job_run(first, ok=True, summary={"n": 3, "名": "云屿"}, error=None, at=T5)
    store.finish_job_run(second, ok=False, summary=None, error="boom", at=T11)
    runs = store.job_runs()
    assert [r["id"] for r in runs] == [third, second, first]
    assert runs[2] == {
        "id": first,
        "job": "j",
        "holder": "a",
        "slot": "2026-12-01",
        "started_at": T0,
        "finished_at": T5,
        "ok": 1,
        "summary": {"n": 3, "名": "云屿"},
        "error": None,
    }
    assert (runs[1]["ok"], runs[1]["summary"], runs[1]["error"]) == (0, None, "boom")
    assert (runs[0]["finished_at"], runs[0]["ok"]) == (None, None)
    assert [r["id"] for r in store.job_runs("j")] == [third, first]
    assert [r["id"] for r in store.job_runs(limit=1)] == [third]
    assert store.job_runs("none") == []


@pytest.fixture
def submissions(any_store):
    store = any_store
    with store.write():
        add_village(store, YUNYU)
        add_village(store, SHILING)
        for sid, village, score, state, observed in [
            ("s1", YUNYU, 80, "complete", "2026-11-20T10:00:00+08:00"),
            ("s2", YUNYU, None, "complete", "2026-11-19T10:00:00+08:00"),
            ("s3", SHILING, 10, "complete", "2026-11-18T10:00:00+08:00"),
            ("s4", YUNYU, 90, "received", "2026-11-20T11:00:00+08:00"),
            ("s5", YUNYU, 10, "complete", "2026-10-31T23:59:00+08:00"),
        ]:
            add_submission(
                store, sid, village=village, state=state, risk_score=score, observed_at=observed
            )
    return store


def _members(picks):
    villages = {"s1": YUNYU, "s2": YUNYU, "s3": SHILING, "s5": YUNYU}
    scores = {"s1": 80, "s2": None, "s3": 10, "s5": 10}
    return [
        {
            "id": sid,
            "village_code": villages[sid],
            "risk_score": scores[sid],
            "picked": picked,
            "reason": reason,
        }
        for sid, picked, reason in picks
    ]


def test_a_sample_is_stored_with_its_seed_rule_and_every_candidate(submissions):
    store = submissions
    assert [r["id"] for r in store.sample_pool()] == ["s1", "s2", "s3", "s5"]
    assert store.sample_pool()[0] == {"id": "s1", "village_code": YUNYU, "risk_score": 80}
    members = _members(
        [
            ("s3", True, "random"),
            ("s1", True, "high_risk"),
            ("s2", True, "random"),
            ("s5", False, None),
        ]
    )
    seed = 2**62 - 1
    rule = {"share": 0.25, "threshold": 50}
    sample_id = store.save_sample(drawn_at=T0, seed=seed, rule=rule, members=members)
    assert store.sample_pool() == []  # each submission is considered by one draw only
    sample = store.sample(sample_id)
    assert sample == {
        "id": sample_id,
        "drawn_at": T0,
        "seed": seed,
        "rule": rule,
        "pool_size": 4,
        "picked_count": 3,
        "members": [
            {**m, "picked": int(m["picked"])} for m in sorted(members, key=lambda m: m["id"])
        ],
    }
    assert store.audit_entries(entity_id=str(sample_id))[0]["action"] == "sample.draw"
    assert store.sample(sample_id + 1) is None
    later = store.save_sample(drawn_at=T5, seed=1, rule=rule, members=[])
    assert [s["id"] for s in store.samples()] == [later, sample_id]
    assert store.samples(limit=1)[0] == {
        "id": later,
        "drawn_at": T5,
        "seed": 1,
        "rule": rule,
        "pool_size": 0,
        "picked_count": 0,
    }
    assert store.sample(later)["members"] == []
    # picked and still complete, riskiest first; no score last
    queue = store.sample_queue([YUNYU, SHILING])
    assert [(q["submission_id"], q["risk_score"]) for q in queue] == [
        ("s1", 80),
        ("s3", 10),
        ("s2", None),
    ]
    assert queue[0] == {
        "submission_id": "s1",
        "sample_id": sample_id,
        "reason": "high_risk",
        "risk_score": 80,
        "village_code": YUNYU,
        "form_id": "toilet",
        "observed_at": "2026-11-20T10:00:00+08:00",
    }
    assert [q["submission_id"] for q in store.sample_queue([SHILING])] == ["s3"]
    assert [q["submission_id"] for q in store.sample_queue([YUNYU], limit=1)] == ["s1"]
    assert store.sample_queue([]) == []
    store.q("UPDATE submissions SET state = 'approved' WHERE id = 's1'")
    assert [q["submission_id"] for q in store.sample_queue([YUNYU])] == ["s2"]


def test_inspections_are_counted_by_the_month_observed(submissions):
    store = submissions
    assert store.inspections_by_village("2026-11") == {YUNYU: 3, SHILING: 1}
    assert store.inspections_by_village("2026-10") == {YUNYU: 1}
    assert store.inspections_by_village("2026-09") == {}


def test_indicator_rows_read_the_fields_of_each_record(any_store):
    store = any_store
    with store.write():
        add_village(store, YUNYU)
        add_village(store, SHILING)
        add_facility(
            store,
            "t1",
            YUNYU,
            state={
                "status": "active",
                "toilet_type": "household",
                "sanitary": True,
                "harmless": False,
            },
        )
        add_facility(store, "r1", YUNYU, "rubbish", state={"rubbish_type": "point", "running": 1})
        add_facility(store, "z1", SHILING, "zone", state={"zone_type": "street", "score": 85.5})
        add_facility(store, "f1", SHILING, "fire", state={"status": "retired"})
        store.many(
            "INSERT INTO tasks (id, village_code, month, template, due_on, state)"
            " VALUES (:id, :village, :month, 'party_day', :due, :state)",
            [
                {"id": tid, "village": v, "month": m, "due": due, "state": dumps(state)}
                for tid, v, m, due, state in [
                    ("k1", YUNYU, "2026-11", "2026-11-25", {"status": {"value": "done"}}),
                    ("k2", YUNYU, "2026-11", "2026-11-25", {"status": {"value": "done"}}),
                    ("k3", YUNYU, "2026-11", "2026-11-30", {}),
                    ("k4", SHILING, "2026-11", None, {"status": {"value": "overdue"}}),
                    ("k5", SHILING, "2026-10", None, {}),
                ]
            ],
        )
    rows = {r["village_code"] + "/" + r["kind"]: r for r in store.indicator_facility_rows()}
    assert len(rows) == 4
    toilet = rows[f"{YUNYU}/toilet"]
    assert (toilet["status"], toilet["type"]) == ("active", "household")
    # a boolean reads as 1/0 on SQLite and True/False on PostgreSQL: equal either way
    assert toilet["sanitary"] == 1 and toilet["harmless"] == 0 and toilet["in_use"] is None
    assert set(toilet) == {
        "village_code",
        "kind",
        "status",
        "type",
        "sanitary",
        "harmless",
        "in_use",
        "open_to_public",
        "running",
        "equipment_ok",
        "score",
    }
    assert rows[f"{YUNYU}/rubbish"]["type"] == "point" and rows[f"{YUNYU}/rubbish"]["running"] == 1
    assert rows[f"{SHILING}/zone"]["score"] == 85.5 and rows[f"{SHILING}/zone"]["status"] is None
    assert (rows[f"{SHILING}/fire"]["status"], rows[f"{SHILING}/fire"]["type"]) == ("retired", None)
    assert [r["kind"] for r in store.indicator_facility_rows([SHILING])] in (
        ["zone", "fire"],
        ["fire", "zone"],
    )
    assert store.indicator_facility_rows([]) == []
    tasks = sorted(
        store.indicator_task_rows("2026-11"), key=lambda r: r["village_code"] + r["status"]
    )
    assert tasks == [
        {"village_code": YUNYU, "status": "done", "due_on": "2026-11-25", "n": 2},
        {"village_code": YUNYU, "status": "not_started", "due_on": "2026-11-30", "n": 1},
        {"village_code": SHILING, "status": "overdue", "due_on": None, "n": 1},
    ]
    assert store.indicator_task_rows("2026-10", [YUNYU]) == []
    assert store.indicator_task_rows("2026-10", [SHILING])[0]["status"] == "not_started"
    assert store.indicator_task_rows("2026-11", []) == []


def test_an_indicator_snapshot_is_replaced_by_the_next_of_its_month(any_store):
    store = any_store
    assert store.indicator_snapshot("2026-11") is None
    store.save_indicator_snapshot("2026-11", {"facts": {YUNYU: {"sanitary": 3}}}, at=T0)
    store.save_indicator_snapshot("2026-10", {"facts": {}}, at=T0)
    store.save_indicator_snapshot("2026-11", {"facts": {YUNYU: {"sanitary": 4}}}, at=T5)
    assert store.indicator_snapshot("2026-11") == {
        "month": "2026-11",
        "computed_at": T5,
        "data": {"facts": {YUNYU: {"sanitary": 4}}},
    }
    assert store.indicator_snapshot("2026-10")["data"] == {"facts": {}}
