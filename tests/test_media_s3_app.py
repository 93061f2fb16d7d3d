"""The server on the S3-compatible photo store (MEDIA_STORE=s3), against moto's S3 server run in
this process on loopback (an emulator; tests/s3_helpers.py): photos uploaded through the API
are held and readable; while the store is unreachable uploads answer 503 `store_unavailable`
with Retry-After, nothing is marked complete, and the phone's retry completes once it is back."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import photo, sha, submission, toilet_answers
from s3_helpers import ThreadedMoto, client_for, new_bucket, s3_settings
from test_media_api import corpus, inspect

from media.s3_store import S3MediaStore
from server import ingest_worker
from server.context import media_store_for
from server.jobs import JobContext, clean_partials

CHUNK = 512 * 1024  # as the PWA sends them


@pytest.fixture(scope="module")
def moto():
    server = ThreadedMoto()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(app, moto):
    """The app's photos in a fresh bucket on the moto server; returns a way to list its keys."""
    name = new_bucket(moto.url)
    app.config.update(s3_settings(moto.url, name))
    client = client_for(moto.url)

    def keys() -> list[str]:
        page = client.list_objects_v2(Bucket=name)
        return sorted(item["Key"] for item in page.get("Contents", ()))

    return keys


def patch(client, phone, digest, data, offset):
    return client.patch(
        f"/api/v1/media/{digest}",
        data=data[offset : offset + CHUNK],
        headers={
            **phone.headers,
            "Upload-Offset": str(offset),
            "Upload-Length": str(len(data)),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def waiting_submission(phone, facility_id, data: bytes) -> str:
    digest = sha(data)
    answers = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
    item = submission(facility_id, phone.clock(), answers=answers)
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos", result
    return item["id"]


def assert_store_unavailable(response):
    assert response.status_code == 503, response.data
    assert response.json["error"]["code"] == "store_unavailable"
    assert response.headers["Retry-After"].isdigit()


def test_photo_uploaded_on_s3_is_held_and_readable(
    app, bucket, phone, make_phone, toilets, client, store
):
    data = corpus("canon_hdr_NO.jpg")
    digest = sha(data)
    item = inspect(phone, toilets[0], data)
    assert store.submission(item["id"])["state"] == "complete"
    assert store.media(digest)["size"] == len(data)
    status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
    assert status["complete"] is True and status["offset"] == len(data)
    for size in (1280, 320):
        response = client.get(f"/api/v1/media/{digest}/display/{size}", headers=phone.headers)
        assert response.status_code == 200 and response.data[:2] == b"\xff\xd8"
    supervisor = make_phone("supervisor")
    response = client.get(f"/api/v1/media/{digest}/original", headers=supervisor.headers)
    assert response.status_code == 200 and response.data == data
    folder = f"vc/derived/{digest[:2]}/{digest}"
    assert f"vc/objects/{digest[:2]}/{digest[2:4]}/{digest}" in bucket()
    assert {f"{folder}/1280.jpg", f"{folder}/320.jpg"} <= set(bucket())
    assert not [k for k in bucket() if "/partials/" in k]
    media_root = Path(app.config["MEDIA_PATH"])
    assert not media_root.exists() or not [p for p in media_root.rglob("*") if p.is_file()]


def test_unreachable_store_answers_503_and_the_retry_completes(
    app, bucket, moto, phone, toilets, client, store
):
    data = corpus("HMD_Nokia_8.3_5G.jpg")  # 2.2 MB: five chunks
    digest = sha(data)
    submission_id = waiting_submission(phone, toilets[1], data)
    waiting = store.submission(submission_id)["state"]
    assert waiting != "complete"

    moto.stop()  # the first chunk
    try:
        assert_store_unavailable(patch(client, phone, digest, data, 0))
        assert_store_unavailable(client.get(f"/api/v1/media/{digest}", headers=phone.headers))
    finally:
        moto.start()
    offset = 0
    while offset + CHUNK < len(data):  # every chunk but the last
        response = patch(client, phone, digest, data, offset)
        assert response.status_code == 200, response.json
        offset = response.json["offset"]
        assert response.json["complete"] is False

    moto.stop()  # the last chunk: nothing may count as held
    try:
        assert_store_unavailable(patch(client, phone, digest, data, offset))
    finally:
        moto.start()
    assert store.media(digest) is None
    assert store.submission(submission_id)["state"] == waiting
    assert not [k for k in bucket() if "/objects/" in k]
    status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
    assert status == {"sha256": digest, "complete": False, "offset": offset, "length": len(data)}

    response = patch(client, phone, digest, data, offset)  # the phone's retry
    assert response.status_code == 503 and response.json["error"]["code"] == "processing"
    assert ingest_worker.drain(app) == [digest]
    status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
    assert status["complete"] is True
    assert store.submission(submission_id)["state"] == "complete"
    assert store.media(digest)["size"] == len(data)
    assert not [k for k in bucket() if "/partials/" in k]


def test_a_store_outage_during_background_ingest_postpones_the_photo_without_failing_it(
    app, bucket, moto, phone, toilets, client, store, clock
):
    """The store drops while the photo waits in the ingest queue: the worker's attempts are
    postponed, never counted against INGEST_MAX_ATTEMPTS, and nothing is marked complete;
    once the store is back the photo is processed."""
    data = corpus("canon_hdr_NO.jpg")
    digest = sha(data)
    submission_id = waiting_submission(phone, toilets[1], data)
    waiting = store.submission(submission_id)["state"]
    response = client.patch(
        f"/api/v1/media/{digest}",
        data=data,
        headers={**phone.headers, "Upload-Offset": "0", "Upload-Length": str(len(data))},
    )
    assert response.status_code == 503 and response.json["error"]["code"] == "processing"
    moto.stop()
    try:
        for _ in range(app.config["INGEST_MAX_ATTEMPTS"] + 2):
            assert ingest_worker.drain(app) == [digest]
            clock.advance(hours=1)  # past the retry wait
    finally:
        moto.start()
    entry = store.ingest_entry(digest)
    assert entry["state"] == "queued" and "StoreUnavailable" in entry["last_error"]
    assert store.media(digest) is None
    assert store.submission(submission_id)["state"] == waiting != "complete"
    assert ingest_worker.drain(app) == [digest]
    assert client.get(f"/api/v1/media/{digest}", headers=phone.headers).json["complete"] is True
    assert store.submission(submission_id)["state"] == "complete"


def test_settings_choose_the_store_and_the_jobs_use_it(app, bucket, phone, toilets, client):
    """MEDIA_STORE picks the store for requests and for jobs alike (clean-partials here); the
    S3 client is made once per process and settings."""
    first, second = media_store_for(app.config), media_store_for(app.config)
    assert isinstance(first, S3MediaStore) and first.client is second.client
    assert first.prefix == "vc/"
    with pytest.raises(ValueError):
        media_store_for({**app.config, "MEDIA_STORE": "ftp"})

    data = corpus("canon_hdr_NO.jpg")
    digest = sha(data)
    waiting_submission(phone, toilets[1], data)
    assert patch(client, phone, digest, data, 0).json["offset"] == CHUNK
    assert clean_partials(JobContext(None, datetime.now(UTC), app.config)) == {
        "removed": 0,
        "sha256": [],
    }
    later = datetime.now(UTC) + timedelta(days=8)
    assert clean_partials(JobContext(None, later, app.config)) == {
        "removed": 1,
        "sha256": [digest],
    }
    assert not [k for k in bucket() if "/partials/" in k]
    status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
    assert status["offset"] == 0 and status["length"] is None
