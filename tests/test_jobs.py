"""The scheduled jobs, each run with a fixed clock: tasks, overdue, sample, indicators, partials."""

import math
import os
import uuid
from datetime import UTC, datetime, timedelta

from conftest import SHILING, YUNYU, submission
from hypothesis import given, settings
from hypothesis import strategies as st

from media.store import LocalMediaStore
from server import sampling
from server.jobs import JobContext, clean_partials, draw_sample, generate_tasks, mark_overdue
from server.jobs import recompute_indicators as recompute
from sync.clock import Clock, encode

CONFIG = {
    "TIMEZONE": "Asia/Shanghai",
    "CONFLICT_WINDOW_HOURS": 72,
    "CLOCK_AHEAD_MAX_HOURS": 24,
    "SAMPLE_SHARE": 0.25,
    "HIGH_RISK_SCORE": 50,
    "PARTIAL_UPLOAD_MAX_AGE_DAYS": 7,
    "MAX_PHOTO_BYTES": 20 * 1024 * 1024,
}
NOV30_2300_BJ = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
DEC01_0015_BJ = datetime(2026, 11, 30, 16, 15, tzinfo=UTC)


def ctx(store, now, **kw):
    return JobContext(store, now, CONFIG, **kw)


# -- monthly tasks ------------------------------------------------------------------------------


def test_month_rollover_creates_december_tasks_on_the_1st_beijing_time(store):
    assert generate_tasks(ctx(store, NOV30_2300_BJ)) == {
        "month": "2026-11",
        "villages": 5,
        "created": 0,  # the demo already has November's
    }
    result = generate_tasks(ctx(store, DEC01_0015_BJ))
    assert result == {"month": "2026-12", "villages": 5, "created": 40}
    tasks = store.tasks(YUNYU, "2026-12")
    assert len(tasks) == 8
    assert {t["due_on"] for t in tasks} == {"2026-12-15", "2026-12-31"}
    assert tasks[0]["state"] == {}


def test_generating_again_creates_nothing_and_a_new_village_gets_its_tasks(store):
    generate_tasks(ctx(store, DEC01_0015_BJ))
    seq = store.last_seq()
    assert generate_tasks(ctx(store, DEC01_0015_BJ + timedelta(days=1)))["created"] == 0
    assert store.last_seq() == seq  # nothing new for phones to pull either
    store.upsert_villages(
        [
            {
                "code": "450222101009",
                "name": "新村",
                "township": "桐浦乡",
                "county": "柳城县",
                "county_class": 2,
                "households": 80,
            }
        ],
        at="2026-12-10T00:00:00.000+00:00",
    )
    result = generate_tasks(ctx(store, datetime(2026, 12, 20, tzinfo=UTC)))
    assert result["created"] == 8
    assert len(store.tasks("450222101009", "2026-12")) == 8
    # Its task due on Dec 15, made on Dec 20, is not overdue the next night; the others' are.
    mark_overdue(ctx(store, datetime(2026, 12, 21, tzinfo=UTC)))
    older = store.task(task_id("dispute_screening", month="2026-12"))
    assert older["state"]["status"]["value"] == "overdue"
    late = store.task(task_id("dispute_screening", village="450222101009", month="2026-12"))
    assert "status" not in late["state"]


def test_the_month_can_be_given(store):
    assert generate_tasks(ctx(store, NOV30_2300_BJ, month="2027-01"))["created"] == 40


# -- overdue ----------------------------------------------------------------------------------


def task_id(kind="three_meetings", village=YUNYU, month="2026-11", n=1):
    return f"task-{village}-{month}-{kind}-{n}"


def done_item(phone, record, clock, completed_on="2026-11-25", status="done"):
    answers = {"task_kind": "three_meetings", "status": status}
    if status == "done":
        answers.update(completed_on=completed_on, meetings_held=["members_meeting"])
    return submission(
        record,
        clock,
        form="monthly_task",
        answers=answers,
        observed_at="2026-11-25T10:00:00+08:00",
    )


def test_tasks_past_due_and_not_done_become_overdue(store, make_phone):
    generate_tasks(ctx(store, DEC01_0015_BJ))
    phone = make_phone("secretary")
    done = done_item(phone, task_id(month="2026-12"), phone.clock(), completed_on="2026-12-09")
    done["observed_at"] = "2026-12-10T10:00:00+08:00"
    assert phone.push([done]).json["results"][0]["status"] == "accepted"

    def status(kind, month="2026-12"):
        return store.task(task_id(kind, month=month))["state"].get("status", {}).get("value")

    # Dec 16: only the first dispute screening (due the 15th) is overdue.
    mark_overdue(ctx(store, datetime(2026, 12, 16, 2, 0, tzinfo=UTC)))
    assert status("dispute_screening") == "overdue"
    assert status("party_day") is None
    # Jan 1, 00:15 in Beijing: every December task not done.
    result = mark_overdue(ctx(store, datetime(2026, 12, 31, 16, 15, tzinfo=UTC)))
    assert result["today"] == "2027-01-01"
    assert status("party_day") == "overdue" and status("three_meetings") == "done"
    clock = store.task(task_id("party_day", month="2026-12"))["state"]["status"]["clock"]
    assert clock.endswith("-server")
    assert mark_overdue(ctx(store, datetime(2027, 1, 1, 2, 0, tzinfo=UTC)))["marked"] == 0
    # The demo's November tasks were made on Nov 20: the one due Nov 15 is not held against it.
    assert status("dispute_screening", "2026-11") is None
    assert status("party_day", "2026-11") == "overdue"


def test_a_later_done_from_the_secretary_wins_over_overdue(store, make_phone, clock):
    mark_overdue(ctx(store, DEC01_0015_BJ))
    record = task_id()
    overdue = store.task(record)["state"]["status"]
    phone = make_phone("secretary")
    # The phone has received the server's clock (pull/push answers), so its clock is newer.
    server_wall = int(overdue["clock"][:13])
    phone.wall_ms = server_wall + 60_000
    clock.now = DEC01_0015_BJ + timedelta(hours=2)
    item = done_item(phone, record, phone.clock())
    item["base"] = {"status": overdue["clock"]}
    assert phone.push([item]).json["results"][0]["status"] == "accepted"
    assert store.task(record)["state"]["status"]["value"] == "done"
    assert store.conflicts(record_id=record) == []
    # and the secretary's phones see the change on their next pull
    tasks = {t["id"]: t for t in phone.pull_all()["tasks"]}
    assert tasks[record]["fields"]["status"] == "done"


def test_a_done_made_before_the_mark_but_synced_after_is_a_conflict_for_a_supervisor(
    store, make_phone, clock
):
    mark_overdue(ctx(store, DEC01_0015_BJ))
    record = task_id()
    phone = make_phone("secretary")
    clock.now = DEC01_0015_BJ + timedelta(hours=2)  # it syncs after the mark, not in the past
    phone.wall_ms = int(datetime(2026, 11, 29, 2, 0, tzinfo=UTC).timestamp() * 1000)
    assert phone.push([done_item(phone, record, phone.clock())]).json["results"][0]["status"] in (
        "accepted",
        "waiting_for_photos",
    )
    assert store.task(record)["state"]["status"]["value"] == "overdue"  # the newer clock stands
    (conflict,) = store.conflicts(record_id=record)
    assert conflict["field"] == "status" and {conflict["a_value"], conflict["b_value"]} == {
        "done",
        "overdue",
    }


# -- spot-check sample ------------------------------------------------------------------------


def add_submissions(store, village, scores, *, state="complete"):
    """Submissions written straight into storage, with their risk scores."""
    facility = store.facilities(village)[0]
    ids = []
    with store.write():
        for n, score in enumerate(scores):
            sub_id = str(uuid.uuid4())
            clock = encode(Clock(1_763_000_000_000 + n, 0, "bench"))
            store.insert_submissions(
                [
                    (
                        {
                            "id": sub_id,
                            "form_id": "toilet",
                            "form_version": 1,
                            "record_id": facility["id"],
                            "record_type": "facility",
                            "village_code": village,
                            "author_id": 1,
                            "device_id": "bench",
                            "clock": clock,
                            "observed_at": "2026-11-20T10:00:00+08:00",
                            "received_at": "2026-11-20T02:00:00.000+00:00",
                            "answers": {},
                            "content_hash": sub_id,
                            "state": state,
                        },
                        [],
                    )
                ]
            )
            store.set_risk_scores({sub_id: score})
            ids.append(sub_id)
    return ids


def test_the_sample_has_every_high_risk_submission_and_a_share_of_the_rest(store):
    risky = add_submissions(store, YUNYU, [80, 50]) + add_submissions(store, SHILING, [99])
    low_yunyu = add_submissions(store, YUNYU, [0] * 10 + [None] * 2)
    low_shiling = add_submissions(store, SHILING, [10, 20, 30])
    add_submissions(store, YUNYU, [90], state="received")  # photos missing: not yet
    result = draw_sample(ctx(store, DEC01_0015_BJ, seed=42))
    assert result["pool"] == 3 + 12 + 3 and result["high_risk"] == 3
    assert result["picked"] == 3 + math.ceil(0.25 * 12) + math.ceil(0.25 * 3)
    sample = store.sample(result["sample_id"])
    assert sample["seed"] == 42
    assert sample["rule"]["share"] == 0.25 and sample["rule"]["threshold"] == 50
    picked = {m["id"]: m for m in sample["members"] if m["picked"]}
    assert set(risky) <= set(picked)
    assert sum(1 for i in low_yunyu if i in picked) == 3
    assert sum(1 for i in low_shiling if i in picked) == 1
    assert all(picked[i]["reason"] == "high_risk" for i in risky)
    # Audit: the stored candidates and seed give the same draw again.
    again = sampling.draw_sample(sample["members"], sample["seed"], 0.25, 50)
    assert sampling.picked_ids(again) == sorted(picked)
    assert store.audit_entries(entity_id=str(result["sample_id"]))[0]["action"] == "sample.draw"


def test_a_submission_is_considered_by_one_draw_only(store):
    add_submissions(store, YUNYU, [0] * 4)
    first = draw_sample(ctx(store, DEC01_0015_BJ, seed=1))
    assert first["pool"] == 4
    assert draw_sample(ctx(store, DEC01_0015_BJ, seed=2)) == {"pool": 0, "picked": 0}
    new = add_submissions(store, YUNYU, [70])
    second = draw_sample(ctx(store, DEC01_0015_BJ))
    assert second["pool"] == 1 and second["picked"] == 1
    assert isinstance(second["seed"], int)
    queue = store.sample_queue([YUNYU])
    assert new[0] in {q["submission_id"] for q in queue}
    assert store.sample_queue([SHILING]) == []


pools = st.lists(
    st.tuples(
        st.sampled_from(["v1", "v2", "v3"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
    ),
    max_size=60,
).map(
    lambda rows: [
        {"id": f"s{i:03d}", "village_code": v, "risk_score": r} for i, (v, r) in enumerate(rows)
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    pool=pools,
    seed=st.integers(min_value=0, max_value=2**62),
    share=st.floats(min_value=0, max_value=1),
    threshold=st.integers(min_value=0, max_value=100),
    order=st.randoms(use_true_random=False),
)
def test_the_same_seed_gives_the_same_sample_and_high_risk_is_always_in(
    pool, seed, share, threshold, order
):
    first = sampling.draw_sample(pool, seed, share, threshold)
    shuffled = list(pool)
    order.shuffle(shuffled)
    assert sampling.draw_sample(shuffled, seed, share, threshold) == first
    by_id = {m["id"]: m for m in first}
    for sub in pool:
        if (sub["risk_score"] or 0) >= threshold:
            assert by_id[sub["id"]]["picked"] and by_id[sub["id"]]["reason"] == "high_risk"
    for village in ("v1", "v2", "v3"):
        low = [m for m in first if m["village_code"] == village and m["reason"] != "high_risk"]
        assert sum(m["picked"] for m in low) == math.ceil(share * len(low))


# -- indicators and partial uploads -------------------------------------------------------------


def test_recomputing_indicators_stores_a_snapshot_of_the_month(store):
    result = recompute(ctx(store, DEC01_0015_BJ))
    assert result == {"month": "2026-12", "villages": 5}
    result = recompute(ctx(store, DEC01_0015_BJ, month="2026-11"))
    snapshot = store.indicator_snapshot("2026-11")
    facts = snapshot["data"]["facts"][YUNYU]
    assert snapshot["computed_at"] == DEC01_0015_BJ.isoformat(timespec="milliseconds")
    assert facts["tasks"] == 8 and facts["tasks_overdue"] == 8  # past month, nothing done
    assert facts["household_toilets"] > 0 and facts["villages"] == 1


def test_abandoned_partial_uploads_are_removed_after_the_age_setting(tmp_path):
    media = LocalMediaStore(tmp_path / "media")
    old, fresh = "a" * 64, "b" * 64
    media.append_chunk(old, 0, b"\xff\xd8\xff" + b"x" * 10, 100)
    media.append_chunk(fresh, 0, b"\xff\xd8\xff" + b"y" * 10, 100)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    eight_days_ago = (now - timedelta(days=8)).timestamp()
    for name in (f"{old}.part", f"{old}.json"):
        os.utime(tmp_path / "media" / "partials" / name, (eight_days_ago, eight_days_ago))
    os.utime(tmp_path / "media" / "partials" / f"{fresh}.part", (now.timestamp(),) * 2)
    os.utime(tmp_path / "media" / "partials" / f"{fresh}.json", (now.timestamp(),) * 2)
    result = clean_partials(JobContext(None, now, CONFIG, media=media))
    assert result == {"removed": 1, "sha256": [old]}
    assert media.partial_offset(old) is None and media.partial_offset(fresh) == 13


def test_every_job_runs_from_the_cli(runner, store, clock):
    clock.now = DEC01_0015_BJ
    for name in ("generate-tasks", "mark-overdue", "recompute-indicators", "clean-partials"):
        result = runner.invoke(args=["run-job", name])
        assert result.exit_code == 0, result.output
        assert f"{name} 完成" in result.output
    result = runner.invoke(args=["run-job", "draw-sample", "--seed", "7"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["run-job", "generate-tasks", "--month", "2027-01"])
    assert '"created":40' in result.output
    assert runner.invoke(args=["run-job", "generate-tasks", "--month", "2027-13"]).exit_code != 0
    assert runner.invoke(args=["run-job", "no-such-job"]).exit_code != 0
    result = runner.invoke(args=["job-runs"])
    assert result.exit_code == 0 and "generate-tasks" in result.output and "成功" in result.output
    assert len(store.job_runs()) == 6


def test_a_cli_run_is_refused_while_another_runner_holds_the_lease(runner, store, clock):
    until = (clock.now + timedelta(minutes=30)).isoformat(timespec="milliseconds")
    assert store.take_job_lease(
        "generate-tasks", "elsewhere", now=clock.now.isoformat(timespec="milliseconds"), until=until
    )
    result = runner.invoke(args=["run-job", "generate-tasks"])
    assert result.exit_code != 0 and "另一个进程" in result.output
