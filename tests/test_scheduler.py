"""Job leases, the run log, the schema upgrade they need, and the APScheduler wiring."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from server import create_app, scheduler, storage
from server.jobs import JOBS, JobSpec
from server.storage import SCHEMA_VERSION, connect

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
CONFIG = {"JOB_LEASE_SECONDS": 600, "TIMEZONE": "Asia/Shanghai"}


def iso(t):
    return t.isoformat(timespec="milliseconds")


@pytest.fixture
def db(tmp_path):
    s = connect(tmp_path / "jobs.db")
    s.migrate()
    yield s
    s.close()


def test_a_version_1_database_is_upgraded_in_place_without_losing_data(tmp_path):
    path = tmp_path / "old.db"
    old = connect(path)
    with old.write():
        db = old.legacy_sqlite()
        db["meta"].create({"key": str, "value": str}, pk="key")
        storage.MIGRATIONS[1](db)
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        # As schema-1 code wrote it (today's upsert writes schema 7's position columns).
        db["villages"].insert(
            {
                "code": "450222101001",
                "name": "云屿村",
                "township": "桐浦乡",
                "county": "柳城县",
                "county_class": 2,
            }
        )
        # As schema-1 code wrote it (today's create_user also appends to the audit chain).
        db["users"].insert(
            {
                "username": "w",
                "password_hash": "x",
                "role": "inspector",
                "display_name": "W",
                "created_at": "2026-11-01",
            }
        )
    assert old.schema_version() == 1
    old.close()

    store = connect(path)
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version() == SCHEMA_VERSION
    assert store.village("450222101001")["name"] == "云屿村"
    assert store.user(username="w")["role"] == "inspector"
    assert {
        "job_leases",
        "job_runs",
        "samples",
        "sample_members",
        "indicator_snapshots",
        "desk_sessions",
        "photo_holders",
    } <= store.table_names()
    assert store.migrate() == SCHEMA_VERSION  # running it again changes nothing
    store.close()


def test_a_live_lease_is_refused_to_another_holder_until_it_expires(db):
    until = iso(T0 + timedelta(minutes=10))
    assert db.take_job_lease("j", "a", now=iso(T0), until=until)
    assert not db.take_job_lease("j", "b", now=iso(T0 + timedelta(minutes=5)), until=until)
    assert not db.take_job_lease("j", "a", now=iso(T0 + timedelta(minutes=5)), until=until)
    later = T0 + timedelta(minutes=11)
    assert db.take_job_lease("j", "b", now=iso(later), until=iso(later + timedelta(minutes=10)))
    assert db.job_leases()[0]["holder"] == "b"


def test_a_released_lease_is_free_at_once_but_a_finished_slot_never_runs_again(db):
    until = iso(T0 + timedelta(minutes=10))
    assert db.take_job_lease("j", "a", now=iso(T0), until=until, slot="2026-12-01")
    db.release_job_lease("j", "a", now=iso(T0), slot="2026-12-01")
    assert not db.take_job_lease("j", "b", now=iso(T0), until=until, slot="2026-12-01")
    assert db.take_job_lease("j", "b", now=iso(T0), until=until, slot="2026-12-02")
    db.release_job_lease("j", "b", now=iso(T0))
    assert db.take_job_lease("j", "c", now=iso(T0), until=until)  # a CLI run names no slot


def counting_job(calls, delay=0.0):
    def run(ctx):
        calls.append(ctx.now)
        time.sleep(delay)
        return {"n": len(calls)}

    return {"count": JobSpec("count", run, {"minute": 0}, "%Y-%m-%dT%H", "test")}


def test_two_runners_racing_for_one_job_run_it_once(tmp_path):
    path = tmp_path / "race.db"
    connect(path).migrate()
    calls, outcomes = [], []
    jobs = counting_job(calls, delay=0.3)
    barrier = threading.Barrier(2)

    def runner(holder):
        store = connect(path)
        barrier.wait()
        outcomes.append(
            scheduler.run_job(
                store,
                "count",
                clock=lambda: T0,
                config=CONFIG,
                holder=holder,
                slot="2026-12-01T08",
                jobs=jobs,
            )
        )
        store.close()

    threads = [threading.Thread(target=runner, args=(h,)) for h in ("proc-a", "proc-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(o.ran for o in outcomes) == [False, True]
    # A third runner firing late for the same slot does not run it either.
    store = connect(path)
    late = scheduler.run_job(
        store,
        "count",
        clock=lambda: T0 + timedelta(seconds=5),
        config=CONFIG,
        holder="proc-c",
        slot="2026-12-01T08",
        jobs=jobs,
    )
    assert not late.ran and len(calls) == 1
    assert len(store.job_runs("count")) == 1
    store.close()


def test_runs_are_logged_with_their_summary(db):
    calls = []
    jobs = counting_job(calls)
    times = iter([T0, T0 + timedelta(seconds=2)])
    outcome = scheduler.run_job(
        db, "count", clock=lambda: next(times), config=CONFIG, holder="h", jobs=jobs
    )
    assert outcome.ran and outcome.error is None
    (run,) = db.job_runs()
    assert run["job"] == "count" and run["holder"] == "h" and run["ok"] == 1
    assert run["started_at"] == iso(T0) and run["finished_at"] == iso(T0 + timedelta(seconds=2))
    assert run["summary"] == {"n": 1}


def test_a_failing_job_is_logged_and_its_slot_can_be_retried(db):
    def boom(ctx):
        raise RuntimeError("disk full")

    jobs = {"boom": JobSpec("boom", boom, {"minute": 0}, "%Y-%m-%d", "test")}
    kwargs = dict(clock=lambda: T0, config=CONFIG, slot="2026-12-01", jobs=jobs)
    outcome = scheduler.run_job(db, "boom", holder="a", **kwargs)
    assert outcome.ran and "disk full" in outcome.error
    (run,) = db.job_runs()
    assert run["ok"] == 0 and "RuntimeError" in run["error"]
    assert scheduler.run_job(db, "boom", holder="b", **kwargs).ran  # the slot was not used up


def test_slots_are_local_dates_in_the_deployment_time_zone():
    evening_utc = datetime(2026, 11, 30, 16, 5, tzinfo=UTC)  # 00:05 on Dec 1 in Beijing
    assert scheduler.slot_of("generate-tasks", evening_utc, "Asia/Shanghai") == "2026-12-01"
    assert scheduler.slot_of("recompute-indicators", evening_utc, "Asia/Shanghai") == (
        "2026-12-01T00"
    )


def test_the_scheduler_is_off_in_tests_and_starts_every_job_when_enabled(tmp_path):
    off = create_app({"TESTING": True, "DATABASE": str(tmp_path / "a.db"), "SECRET_KEY": "x"})
    assert scheduler.EXTENSION not in off.extensions
    on = create_app(
        {
            "TESTING": True,
            "DATABASE": str(tmp_path / "b.db"),
            "SECRET_KEY": "x",
            "SCHEDULER_ENABLED": True,
        }
    )
    sched = on.extensions[scheduler.EXTENSION]
    try:
        assert sched.running
        once = {f"{name}@start" for name, spec in JOBS.items() if spec.at_start}
        assert set(JOBS) <= {job.id for job in sched.get_jobs()} <= set(JOBS) | once
        assert scheduler.start(on) is sched  # once per app
        trigger = sched.get_job("generate-tasks").trigger
        first = trigger.get_next_fire_time(None, datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
        assert first.isoformat() == "2026-12-01T00:05:00+08:00"
    finally:
        sched.shutdown(wait=False)


def test_a_scheduled_run_uses_the_app_clock_and_the_lease(app, clock, store):
    clock.now = datetime(2026, 11, 30, 16, 5, tzinfo=UTC)
    scheduler._scheduled(app, "generate-tasks", "sched-1")
    scheduler._scheduled(app, "generate-tasks", "sched-2")  # same slot: skipped
    runs = store.job_runs("generate-tasks")
    assert len(runs) == 1 and runs[0]["slot"] == "2026-12-01"
    assert runs[0]["summary"]["month"] == "2026-12" and runs[0]["summary"]["created"] == 40
