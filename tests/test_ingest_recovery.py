"""A server killed between receiving a photo and processing it: nothing stays stuck.

Each test leaves the photo store and database as a kill at one point of the ingest would
(the real store's own steps, stopped early), then checks what the phone and the desk see.
"""

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import photo, sha, submission, toilet_answers
from test_media_api import corpus, noise_photo, upload

from media.images import process_image
from media.phash import to_hex
from server import ingest_worker, scheduler
from server.context import media_store
from server.ingest import DISPLAY_SIZES
from server.jobs import JOBS
from server.scheduler import run_job


def push_two(phone, facility_id, outside: bytes, inside: bytes) -> dict:
    answers = toilet_answers(photo_outside=[photo(sha(outside))], photo_inside=[photo(sha(inside))])
    item = submission(facility_id, phone.clock(), answers=answers)
    result = phone.push([item]).json["results"][0]
    assert sorted(result["missing"]) == sorted([sha(outside), sha(inside)])
    return item


def killed_after_file_in_place(app, data: bytes, *, versions: bool = False) -> str:
    """The photo file is in the store (upload complete, hash checked), but no media row:
    the server died before processing it, or (versions=True) after writing its versions."""
    with app.app_context():
        media = media_store()
        result = media.append_chunk(sha(data), 0, data, len(data))
        assert type(result).__name__ == "Completed"
        if versions:
            for size, jpeg in process_image(data, DISPLAY_SIZES).versions.items():
                media.put_derived(sha(data), f"{size}.jpg", jpeg)
    return sha(data)


def status(client, phone, digest):
    return client.get(f"/api/v1/media/{digest}", headers=phone.headers)


def processing(answer) -> bool:
    return answer.status_code == 503 and answer.json["error"]["code"] == "processing"


def display(client, phone, digest, size=320):
    return client.get(f"/api/v1/media/{digest}/display/{size}", headers=phone.headers)


@pytest.fixture
def half_done(app, phone, toilets, client):
    """An inspection whose first photo was processed and whose second is held, unprocessed."""
    outside, inside = corpus("iphone_hdr_NO.jpg"), noise_photo(7)
    item = push_two(phone, toilets[0], outside, inside)
    assert upload(client, phone, outside).json["complete"] is True
    killed_after_file_in_place(app, inside)
    return item, sha(inside)


def test_asking_about_a_held_photo_queues_it_and_the_worker_completes_the_inspection(
    half_done, app, phone, client, store
):
    item, digest = half_done
    assert store.submission(item["id"])["state"] == "received"
    assert processing(status(client, phone, digest))
    assert store.ingest_entry(digest)["state"] == "queued"
    assert store.submission(item["id"])["state"] == "received"
    assert ingest_worker.drain(app) == [digest]
    answer = status(client, phone, digest)
    assert answer.status_code == 200
    assert answer.json["complete"] is True
    assert store.media(digest) is not None
    assert display(client, phone, digest).status_code == 200
    assert store.submission(item["id"])["state"] == "complete"
    assert store.submission(item["id"])["risk_score"] is not None


def test_sending_a_held_photo_again_processes_it(half_done, phone, client, store):
    item, digest = half_done
    data = noise_photo(7)
    answer = upload(client, phone, data)
    assert answer.status_code == 200 and answer.json["complete"] is True
    assert answer.json["offset"] == len(data)
    assert store.media(digest)["size"] == len(data)
    assert store.submission(item["id"])["state"] == "complete"


def test_the_push_still_lists_a_held_but_unprocessed_photo_as_missing(half_done, phone, toilets):
    _, digest = half_done
    again = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
    result = phone.push([submission(toilets[1], phone.clock(), answers=again)]).json
    assert result["results"][0]["missing"] == [digest]


def test_the_job_processes_held_photos_and_judges_what_they_complete(
    app,
    phone,
    toilets,
    client,
    store,
    runner,
):
    first, second = corpus("HMD_Nokia_8.3_5G.jpg"), noise_photo(8)
    third = noise_photo(9)
    a = push_two(phone, toilets[0], first, second)
    b = push_two(phone, toilets[1], third, noise_photo(10))  # its second photo never came
    killed_after_file_in_place(app, first)
    killed_after_file_in_place(app, second, versions=True)
    killed_after_file_in_place(app, third)
    result = runner.invoke(args=["run-job", "reprocess-held"])
    assert result.exit_code == 0, result.output
    assert '"queued":3' in result.output
    assert sorted(ingest_worker.drain(app)) == sorted(map(sha, (first, second, third)))
    for digest in (sha(first), sha(second), sha(third)):
        assert store.media(digest) is not None
        assert display(client, phone, digest, 1280).status_code == 200
    assert store.submission(a["id"])["state"] == "complete"
    assert store.submission(b["id"])["state"] == "received"
    again = runner.invoke(args=["run-job", "reprocess-held"])
    assert '"queued":0' in again.output


def test_a_held_photo_that_cannot_be_read_is_dropped_and_the_phone_told_why(
    app,
    phone,
    toilets,
    client,
    store,
    runner,
):
    broken = corpus("87_OSError.jpg")[:300_000]
    push_two(phone, toilets[0], broken, noise_photo(12))
    digest = killed_after_file_in_place(app, broken)
    result = runner.invoke(args=["run-job", "reprocess-held"])
    assert '"queued":1' in result.output
    assert ingest_worker.drain(app) == [digest]
    assert store.media(digest) is None
    with app.app_context():
        assert not media_store().has(digest)
    answer = status(client, phone, digest)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "corrupt"
    again = upload(client, phone, broken)  # the phone may send it again (once, by its rules)
    assert again.status_code == 422 and again.json["error"]["code"] == "corrupt"


def test_the_scheduler_queues_held_photos_as_soon_as_it_starts(half_done, app, store):
    item, digest = half_done
    workers = ingest_worker.start(app, 1)
    sched = scheduler.start(app)
    try:
        deadline = time.monotonic() + 20
        while store.media(digest) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sched.shutdown(wait=True)
        workers.shutdown()
    assert store.media(digest) is not None
    assert store.submission(item["id"])["state"] == "complete"
    assert JOBS["reprocess-held"].at_start


@pytest.mark.parametrize(
    "offset, length",
    [
        ("²", "100"),
        ("0", "²"),
        ("0", "9" * 5000),
        ("9" * 5000, "100"),
        ("³", "100"),
        ("0", "1²"),
        ("-1", "100"),
        ("0", " 100"),
        ("0", "1e3"),
        ("0", "9" * 16),
    ],
)
def test_upload_headers_that_are_not_small_ascii_numbers_are_a_400(
    phone,
    toilets,
    client,
    store,
    offset,
    length,
):
    data = noise_photo(13)
    digest = sha(data)
    push_two(phone, toilets[0], data, noise_photo(14))
    response = client.patch(
        f"/api/v1/media/{digest}",
        data=data[:100],
        headers={
            **phone.headers,
            "Upload-Offset": offset,
            "Upload-Length": length,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_header"
    assert status(client, phone, digest).json["offset"] == 0


def test_a_reprocess_run_killed_midway_blocks_the_next_only_one_cycle(app, store):
    """A kill during the job leaves its lease taken; the run 10 minutes later still happens."""

    def killed(ctx):
        raise SystemExit("killed")  # escapes run_job as a kill would: the lease stays taken

    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    dying = {"reprocess-held": dataclasses.replace(JOBS["reprocess-held"], run=killed)}
    with app.app_context(), pytest.raises(SystemExit):
        run_job(
            store, "reprocess-held", clock=lambda: t0, config=app.config, holder="a", jobs=dying
        )
    later = t0 + timedelta(minutes=11)
    with app.app_context():
        outcome = run_job(
            store, "reprocess-held", clock=lambda: later, config=app.config, holder="b"
        )
    assert outcome.ran and outcome.error is None


def test_a_held_photo_that_fails_for_another_reason_stays_held_and_answers_503(
    half_done, app, phone, client, store, clock
):
    item, digest = half_done
    blocker = Path(app.config["MEDIA_PATH"]) / "derived" / digest[:2]
    blocker.write_text("a file where the versions' folder should be")  # disk trouble
    assert processing(status(client, phone, digest))
    assert ingest_worker.drain(app) == [digest]  # tried once, failed
    assert processing(status(client, phone, digest))
    entry = store.ingest_entry(digest)
    assert entry["state"] == "queued" and entry["attempts"] == 1 and entry["last_error"]
    with app.app_context():
        assert media_store().has(digest)  # kept: the phone need not send it again
    assert store.media(digest) is None
    blocker.unlink()
    assert ingest_worker.drain(app) == []  # not before its retry time
    clock.advance(seconds=app.config["INGEST_RETRY_SECONDS"])
    assert ingest_worker.drain(app) == [digest]
    assert status(client, phone, digest).json["complete"] is True
    assert store.ingest_entry(digest) is None
    assert store.submission(item["id"])["state"] == "complete"


def test_the_job_judges_a_submission_left_received_with_all_its_photos_in(
    app, phone, toilets, store, runner
):
    """A media row committed without its submission advanced (were judging ever split off)."""
    outside, inside = noise_photo(15), noise_photo(16)
    item = push_two(phone, toilets[0], outside, inside)
    for data in (outside, inside):
        killed_after_file_in_place(app, data, versions=True)
        processed = process_image(data, DISPLAY_SIZES)
        with store.write():
            store.insert_media(
                {
                    "sha256": sha(data),
                    "size": len(data),
                    "mime": processed.mime,
                    "width": processed.width,
                    "height": processed.height,
                    "exif": {},
                    "phash": to_hex(processed.phash),
                    "crop_hashes": [],
                    "created_at": "2026-11-20T02:00:00.000+00:00",
                }
            )
    assert store.submission(item["id"])["state"] == "received"
    result = runner.invoke(args=["run-job", "reprocess-held"])
    assert '"judged":1' in result.output, result.output
    assert store.submission(item["id"])["state"] == "complete"
    assert store.submission(item["id"])["risk_score"] is not None


@pytest.mark.parametrize("ask", ["status", "resend last chunk"])
def test_a_partial_holding_every_byte_is_checked_and_processed_when_the_phone_comes_back(
    app, phone, toilets, client, store, ask
):
    """Killed after the last chunk was written but before it was checked and moved in place."""
    outside, inside = noise_photo(17), noise_photo(18)
    item = push_two(phone, toilets[0], outside, inside)
    assert upload(client, phone, outside).json["complete"] is True
    partials = Path(app.config["MEDIA_PATH"]) / "partials"
    digest = sha(inside)
    (partials / f"{digest}.part").write_bytes(inside)
    (partials / f"{digest}.json").write_text(json.dumps({"sha256": digest, "length": len(inside)}))
    if ask == "status":
        answer = status(client, phone, digest)
    else:
        start = len(inside) - 1000
        answer = client.patch(
            f"/api/v1/media/{digest}",
            data=inside[start:],
            headers={
                **phone.headers,
                "Upload-Offset": str(start),
                "Upload-Length": str(len(inside)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
    assert processing(answer)
    assert ingest_worker.drain(app) == [digest]
    answer = status(client, phone, digest)
    assert answer.status_code == 200
    assert answer.json == {
        "sha256": digest,
        "complete": True,
        "offset": len(inside),
        "length": len(inside),
    }
    assert store.submission(item["id"])["state"] == "complete"
    assert not list(partials.glob(f"{digest}.*"))
