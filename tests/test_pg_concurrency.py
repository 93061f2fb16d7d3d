"""Several server processes merge conflicting reports of one toilet at the same moment on
PostgreSQL: the record and its conflicts must equal what one process pushing them one after
another gives, whatever the timing (issue 9)."""

import json
import multiprocessing
import random

import pytest
from conftest import START, YUNYU, FakeClock, Phone, app_on, submission, toilet_answers
from engines import NO_POSTGRES, create_database, drop_database, postgres_server

from server.demo import demo_data
from server.storage import connect
from sync.clock import Clock, encode

pytestmark = pytest.mark.skipif(not postgres_server(), reason=NO_POSTGRES)

DEVICES = 4
REPORTS = 6  # per device, pushed in two batches so the processes interleave
T0 = int(START.timestamp() * 1000)


def photo(rng) -> dict:
    return {"sha256": rng.randbytes(32).hex(), "captured_at": None, "position": None}


def reports(toilet: str) -> dict[str, list[dict]]:
    """Each phone's reports, made once so every run pushes exactly the same bytes: offline
    phones (no base) disagreeing about the same fields within the conflict window."""
    rng = random.Random(9)
    out = {}
    for d in range(DEVICES):
        device = f"phone-{d}"
        out[device] = [
            submission(
                toilet,
                encode(Clock(T0 + rng.randrange(0, 3_600_000), n, device)),
                sub_id=f"00000000-0000-4000-8000-{d:04d}{n:08d}",
                answers=toilet_answers(
                    sanitary=rng.random() < 0.5,
                    in_use=rng.random() < 0.5,
                    photo_outside=[photo(rng)],
                    photo_inside=[photo(rng)],
                ),
            )
            for n in range(REPORTS)
        ]
    return out


def push_all(url: str, folder, device: str, items: list[dict], delays=(0.0, 0.0), barrier=None):
    """One server process: its own app on `url`, one phone pushing `items` in two batches."""
    import time

    client = app_on(folder, FakeClock(), url).test_client()
    phone = Phone(client, "inspector", device_id=device)
    if barrier is not None:
        barrier.wait(30)
    half = len(items) // 2
    for delay, batch in zip(delays, (items[:half], items[half:]), strict=True):
        time.sleep(delay)
        response = phone.push(batch)
        assert response.status_code == 200, response.json
        statuses = {r["status"] for r in response.json["results"]}
        assert statuses == {"waiting_for_photos"}, response.json


def outcome(url: str, toilet: str) -> dict:
    store = connect(url)
    try:
        facility = store.facility(toilet)
        conflicts = store.rows(
            "SELECT field, a, b, a_value, b_value, winner, resolved_by FROM conflicts"
            " WHERE record_id = :toilet ORDER BY id",
            toilet=toilet,
        )
        counts = {
            table: store.scalar(f"SELECT count(*) FROM {table}")
            for table in ("submissions", "observations", "conflicts")
        }
    finally:
        store.close()
    return {
        "state": json.dumps(facility["state"], sort_keys=True),
        "conflicts": conflicts,
        "counts": counts,
    }


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    from conftest import demo_database

    url = create_database()
    demo_database(url)
    yield url
    drop_database(url)


def test_concurrent_pushes_from_several_processes_merge_as_a_serial_run(tmp_path, demo_template):
    from sqlalchemy.engine import make_url

    template = make_url(demo_template).database
    toilet = next(
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == YUNYU and f["kind"] == "toilet"
    )
    batches = reports(toilet)

    serial_url = create_database(template=template)
    try:
        for device, items in batches.items():
            push_all(serial_url, tmp_path / "serial", device, items)
        expected = outcome(serial_url, toilet)
    finally:
        drop_database(serial_url)
    assert expected["counts"]["submissions"] == DEVICES * REPORTS
    assert expected["conflicts"], "the reports must disagree, or the test proves nothing"

    spawn = multiprocessing.get_context("spawn")
    for run in range(3):
        rng = random.Random(run)
        url = create_database(template=template)
        try:
            barrier = spawn.Barrier(DEVICES)
            workers = [
                spawn.Process(
                    target=push_all,
                    args=(url, tmp_path / f"run{run}-{n}", device, items),
                    kwargs={
                        "delays": (rng.random() * 0.05 * run, rng.random() * 0.05 * run),
                        "barrier": barrier,
                    },
                )
                for n, (device, items) in enumerate(batches.items())
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
                assert w.exitcode == 0, f"run {run}: a pushing process failed"
            assert outcome(url, toilet) == expected, f"run {run} differs from the serial run"
        finally:
            drop_database(url)
