"""Background ingest: the last chunk answers at once, workers process the photo; a worker killed
mid-ingest (a real process, SIGKILL) loses nothing; failures end failed after the retry limit;
a photo ingested by another process is in this one's near-duplicate index at once."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import photo, sha, submission, toilet_answers, upload_photo
from desk_helpers import desk_session
from test_media_api import noise_photo

from media.phash import from_hex
from server import ingest_worker
from server.context import media_store
from server.evidence import HashCache

ROOT = Path(__file__).resolve().parents[1]


def push(phone, facility_id, *photos: bytes) -> dict:
    outside, inside = (photos + photos)[:2]
    answers = toilet_answers(photo_outside=[photo(sha(outside))], photo_inside=[photo(sha(inside))])
    item = submission(facility_id, phone.clock(), answers=answers)
    assert phone.push([item]).status_code == 200
    return item


def status(client, phone, digest):
    return client.get(f"/api/v1/media/{digest}", headers=phone.headers)


def is_processing(answer) -> bool:
    return answer.status_code == 503 and answer.json["error"]["code"] == "processing"


def worker_process(app, *, slow: bool = False, args=("--threads", "1")) -> subprocess.Popen:
    """`villagecheck worker` on the app's database and photo store; `slow`: each decode first
    sleeps a minute (so it can be killed in the middle)."""
    code = "from server.cli import main\n"
    if slow:
        code = (
            textwrap.dedent(
                """
            import time
            import server.ingest
            real = server.ingest.process_image
            def slow(*a, **k):
                print("decoding", flush=True)
                time.sleep(60)
                return real(*a, **k)
            server.ingest.process_image = slow
            """
            )
            + code
        )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "VILLAGECHECK_DATABASE_URL": app.config["DATABASE_URL"],
        "VILLAGECHECK_MEDIA_ROOT": app.config["MEDIA_PATH"],
        "VILLAGECHECK_SECRET_KEY": "test",
    }
    return subprocess.Popen(
        [sys.executable, "-c", code + "main()", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_last_chunk_answers_processing_at_once_and_a_worker_completes_the_photo(
    app, phone, toilets, client, store
):
    data = noise_photo(101)
    item = push(phone, toilets[0], data)
    answer = upload_photo(client, phone.headers, data, drain=False)
    assert is_processing(answer)  # stored and queued, not processed yet
    assert answer.json["error"]["retry_after"] > 0
    with app.app_context():
        assert media_store().has(sha(data))
    assert store.media(sha(data)) is None
    assert store.ingest_entry(sha(data))["state"] == "queued"
    assert is_processing(status(client, phone, sha(data)))  # asking again: still processing
    assert store.submission(item["id"])["state"] == "received"
    assert ingest_worker.drain(app) == [sha(data)]
    done = status(client, phone, sha(data))
    assert done.status_code == 200 and done.json["complete"] is True
    assert store.submission(item["id"])["state"] == "complete"
    assert store.ingest_entry(sha(data)) is None


def test_a_photo_that_keeps_failing_ends_failed_and_the_phone_is_told(
    app, phone, toilets, client, store, clock, runner
):
    data = noise_photo(102)
    item = push(phone, toilets[0], data)
    digest = sha(data)
    blocker = Path(app.config["MEDIA_PATH"]) / "derived" / digest[:2]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the versions' folder should be")
    assert is_processing(upload_photo(client, phone.headers, data, drain=False))
    for attempt in range(1, app.config["INGEST_MAX_ATTEMPTS"] + 1):
        assert ingest_worker.drain(app) == [digest], attempt
        assert store.ingest_entry(digest)["attempts"] == attempt
        clock.advance(seconds=app.config["INGEST_RETRY_SECONDS"] * 2 ** (attempt - 1))
    assert ingest_worker.drain(app) == []  # not retried forever
    assert store.ingest_entry(digest)["state"] == "failed"
    answer = status(client, phone, digest)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "processing_failed"
    with app.app_context():
        assert media_store().has(digest)  # still held: nothing lost
    desk = app.test_client()
    desk_session(desk, store, "admin")
    page = desk.get(f"/desk/submissions/{item['id']}").get_data(as_text=True)
    assert "照片已收到，但处理失败（已试 5 次）" in page
    listed = runner.invoke(args=["worker", "--failed"])
    assert digest in listed.output and "NotADirectoryError" in listed.output
    blocker.unlink()
    assert "1" in runner.invoke(args=["worker", "--retry-failed"]).output
    assert ingest_worker.drain(app) == [digest]
    assert status(client, phone, digest).json["complete"] is True


def test_a_worker_killed_mid_ingest_leaves_the_photo_held_and_another_completes_it(
    app, phone, toilets, client, store
):
    data = noise_photo(103)
    item = push(phone, toilets[0], data)
    digest = sha(data)
    assert is_processing(upload_photo(client, phone.headers, data, drain=False))
    worker = worker_process(app, slow=True)
    try:
        for line in worker.stdout:
            if "decoding" in line:
                break
        else:
            pytest.fail("the worker never started decoding")
        entry = store.ingest_entry(digest)
        assert entry["claimed_by"].startswith("ingest:") and entry["attempts"] == 1
        os.kill(worker.pid, signal.SIGKILL)  # in the middle of the ingest
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
    with app.app_context():
        assert media_store().has(digest)  # not lost
    assert store.media(digest) is None  # not half-held: no row without its versions
    assert is_processing(status(client, phone, digest))
    workers = ingest_worker.start(app, 1)  # a restarted server: frees the dead claim at once
    try:
        deadline = time.monotonic() + 30
        while store.media(digest) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        workers.shutdown()
    assert status(client, phone, digest).json["complete"] is True
    assert store.submission(item["id"])["state"] == "complete"
    assert store.ingest_entry(digest) is None


def test_a_claim_of_a_worker_on_another_host_is_taken_over_once_it_expires(
    app, phone, toilets, client, store, clock
):
    data = noise_photo(104)
    push(phone, toilets[0], data)
    digest = sha(data)
    assert is_processing(upload_photo(client, phone.headers, data, drain=False))
    with app.app_context():
        now = clock()
        claim = store.claim_ingest(
            "ingest:elsewhere:1:dead:0",
            now=now.isoformat(timespec="milliseconds"),
            until=(now.replace(minute=now.minute + 5)).isoformat(timespec="milliseconds"),
            max_attempts=5,
        )
    assert claim["sha256"] == digest
    assert ingest_worker.drain(app) == []  # still claimed
    clock.advance(minutes=5)
    assert ingest_worker.drain(app) == [digest]
    assert status(client, phone, digest).json["complete"] is True


def test_a_photo_ingested_by_another_process_is_in_this_ones_index_within_a_second(
    app, phone, toilets, client, store
):
    first, second = noise_photo(105), noise_photo(106)
    push(phone, toilets[0], first, second)
    upload_photo(client, phone.headers, first)  # ingested here: this process's index is built
    url = app.config["DATABASE_URL"]
    before = len(HashCache.index(store, url))
    assert is_processing(upload_photo(client, phone.headers, second, drain=False))
    other = worker_process(app, args=("--once",))
    out, _ = other.communicate(timeout=120)
    assert other.returncode == 0 and "1" in out, out
    ingested = time.monotonic()
    row = store.media(sha(second))
    index = HashCache.index(store, url)
    found = index.query(from_hex(row["phash"]), 0)
    elapsed = time.monotonic() - ingested
    assert len(index) == before + 1
    assert (sha(second), 0) in found
    assert elapsed < 1.0


def test_ingest_threads_run_at_a_lower_cpu_priority_than_requests():
    """On a busy machine a phone's push is served before photos are processed."""
    seen = {}

    def thread():
        ingest_worker._yield_cpu_to_requests()
        seen["ingest"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    assert seen["ingest"] == ingest_worker.INGEST_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # only that thread
