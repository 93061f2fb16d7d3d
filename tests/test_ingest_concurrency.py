"""Decoding is bounded per process: many photos arriving at once wait their turn, none fails."""

import io
import threading
import time

import pytest
from conftest import CORPUS, photo, sha, submission, toilet_answers, upload_photo
from PIL import Image

import server.ingest
from server import ingest_worker

UPLOADS = 6


def camera_photos(n: int) -> list[bytes]:
    """n distinct full-size JPEGs made from a real camera photo (re-encoded at n qualities)."""
    img = Image.open(CORPUS / "HMD_Nokia_8.3_5G.jpg").convert("RGB")
    out = []
    for quality in range(80, 80 + n):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


@pytest.fixture
def decodes(monkeypatch):
    """Counts the decodes running at once around the real decoder (nothing is replaced)."""
    real = server.ingest.process_image
    lock = threading.Lock()
    seen = {"active": 0, "peak": 0, "calls": 0}

    def counted(*args, **kwargs):
        with lock:
            seen["active"] += 1
            seen["calls"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
        try:
            result = real(*args, **kwargs)
            threading.Event().wait(0.05)  # keep each decode open long enough to overlap
            return result
        finally:
            with lock:
                seen["active"] -= 1

    monkeypatch.setattr(server.ingest, "process_image", counted)
    return seen


@pytest.mark.parametrize("limit", [1, 2])
def test_photos_arriving_together_are_decoded_at_most_limit_at_a_time(
    app,
    phone,
    toilets,
    store,
    decodes,
    limit,
):
    app.config["INGEST_CONCURRENCY"] = limit
    photos = camera_photos(UPLOADS)
    items = []
    for i, data in enumerate(photos):
        answers = toilet_answers(photo_outside=[photo(sha(data))], photo_inside=[photo(sha(data))])
        items.append(submission(toilets[i % len(toilets)], phone.clock(), answers=answers))
    assert phone.push(items).status_code == 200
    for data in photos:  # each last chunk answers at once: stored and queued
        answer = upload_photo(app.test_client(), phone.headers, data, drain=False)
        assert answer.status_code == 503 and answer.json["error"]["code"] == "processing"
    workers = ingest_worker.start(app, UPLOADS)  # more workers than the gate lets decode
    try:
        deadline = time.monotonic() + 120
        while len(store.ingest_entries()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        workers.shutdown()
    answers = [phone.client.get(f"/api/v1/media/{sha(d)}", headers=phone.headers) for d in photos]
    assert [a.status_code for a in answers] == [200] * UPLOADS
    assert all(a.json["complete"] for a in answers)
    assert decodes["calls"] == UPLOADS
    assert decodes["peak"] == limit
    for item in items:
        assert store.submission(item["id"])["state"] == "complete"
