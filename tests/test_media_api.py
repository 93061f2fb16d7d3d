"""The photo pipeline through the API: resumable upload, EXIF facts, display versions, flags."""

import io
import random
from datetime import datetime
from pathlib import Path

import exifread
import pytest
from conftest import (
    CORPUS,
    SHILING,
    photo,
    photo_exif,
    sha,
    submission,
    toilet_answers,
    upload_photo,
)
from PIL import Image

TOILET_POS = (24.763623, 109.294765)  # the first household toilet of 云屿村 in the demo


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def retagged(
    name: str, *, lat=None, lon=None, taken="2026:11:20 10:20:00", size=1024, quality=90, crop=None
) -> bytes:
    """A corpus photo re-encoded small, with the GPS position and time a test needs."""
    img = Image.open(CORPUS / name)
    img.thumbnail((size, size))
    if crop:
        w, h = img.size
        img = img.crop((int(w * crop), 0, w, h))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, exif=photo_exif(taken, lat=lat, lon=lon))
    return buf.getvalue()


def noise_photo(seed: int) -> bytes:
    """A distinct photo with no near-duplicate anywhere (random blocks)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (64, 48))
    img.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64 * 48)])
    img = img.resize((640, 480), Image.Resampling.NEAREST)
    exif = photo_exif("2026:11:20 10:25:00", lat=TOILET_POS[0], lon=TOILET_POS[1], camera=None)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def upload(client, phone, data: bytes, *, chunk=256 * 1024, digest=None):
    return upload_photo(client, phone.headers, data, chunk=chunk, digest=digest)


def inspect(
    phone,
    facility_id,
    outside: bytes,
    inside: bytes | None = None,
    observed_at="2026-11-20T10:35:00+08:00",
):
    """Push a toilet inspection with these photos and upload them; returns the submission."""
    inside = inside or noise_photo(random.randrange(10**9))
    answers = toilet_answers(photo_outside=[photo(sha(outside))], photo_inside=[photo(sha(inside))])
    item = submission(facility_id, phone.clock(), answers=answers, observed_at=observed_at)
    result = phone.push([item]).json["results"][0]
    assert result["status"] in ("waiting_for_photos", "accepted"), result
    for data in (outside, inside):
        if sha(data) in result.get("missing", []):
            response = upload(phone.client, phone, data)
            assert response.status_code == 200, response.json
    return item


def codes(store, submission_id):
    return sorted({f["code"] for f in store.flags_of(submission_id)})


# -- upload and ingest ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, lat, lon",
    [
        ("iphone_hdr_NO.jpg", 40.446972, -3.724753),
        ("HMD_Nokia_8.3_5G.jpg", 60.146706, 24.906772),
        ("87_OSError.jpg", 43.785594, 11.234619),
        ("canon_hdr_NO.jpg", None, None),
    ],
)
def test_corpus_photo_uploads_and_its_exif_facts_are_recorded(
    phone, toilets, store, name, lat, lon, client
):
    data = corpus(name)
    item = inspect(phone, toilets[0], data)
    media = store.media(sha(data))
    assert media["size"] == len(data)
    if lat is None:
        assert media["exif"]["lat"] is None
    else:
        assert media["exif"]["lat"] == pytest.approx(lat, abs=1e-5)
        assert media["exif"]["lon"] == pytest.approx(lon, abs=1e-5)
    assert store.submission(item["id"])["state"] == "complete"


def test_display_versions_keep_portrait_and_carry_no_gps(phone, toilets, client):
    data = corpus("canon_hdr_NO.jpg")  # orientation 6: portrait once transposed
    inspect(phone, toilets[0], data)
    for size in (1280, 320):
        response = client.get(f"/api/v1/media/{sha(data)}/display/{size}", headers=phone.headers)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        img = Image.open(io.BytesIO(response.data))
        assert img.height == size and img.width < img.height
        tags = exifread.process_file(io.BytesIO(response.data), details=False)
        assert not [t for t in tags if t.startswith("GPS")]
        assert not img.getexif()
        again = client.get(
            f"/api/v1/media/{sha(data)}/display/{size}",
            headers={**phone.headers, "If-None-Match": response.headers["ETag"]},
        )
        assert again.status_code == 304


def test_original_is_for_supervisors_only(make_phone, phone, toilets, client):
    data = corpus("HMD_Nokia_8.3_5G.jpg")
    inspect(phone, toilets[0], data)
    assert (
        client.get(f"/api/v1/media/{sha(data)}/original", headers=phone.headers).status_code == 403
    )
    supervisor = make_phone("supervisor")
    response = client.get(f"/api/v1/media/{sha(data)}/original", headers=supervisor.headers)
    assert response.status_code == 200 and response.data == data


def test_upload_interrupted_at_random_offsets_resumes_byte_identical(phone, toilets, client, app):
    data = corpus("iphone_hdr_YES.jpg")
    digest = sha(data)
    answers = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
    phone.push([submission(toilets[1], phone.clock(), answers=answers)])
    rng = random.Random(3)
    offset = 0
    while True:
        size = rng.randrange(1, 400_000)
        stale = rng.random() < 0.3 and offset > 0
        sent_at = rng.randrange(0, offset) if stale else offset
        response = client.patch(
            f"/api/v1/media/{digest}",
            data=data[sent_at : sent_at + size],
            headers={
                **phone.headers,
                "Upload-Offset": str(sent_at),
                "Upload-Length": str(len(data)),
            },
        )
        if stale:
            assert response.status_code == 409
            assert response.json["error"]["code"] == "offset_mismatch"
            assert response.json["error"]["offset"] == offset
            status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
            assert status["offset"] == offset and not status["complete"]
            continue
        if response.status_code == 503:  # the last chunk: stored and queued for processing
            assert response.json["error"]["code"] == "processing"
            break
        assert response.status_code == 200, response.json
        offset = response.json["offset"]
    stored = Path(app.config["MEDIA_PATH"]) / "objects" / digest[:2] / digest[2:4] / digest
    assert sha(stored.read_bytes()) == digest


def test_corrupted_chunk_fails_the_hash_and_nothing_is_stored(phone, toilets, client, app, store):
    data = corpus("canon_hdr_NO.jpg")
    digest = sha(data)
    answers = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
    phone.push([submission(toilets[1], phone.clock(), answers=answers)])
    corrupted = bytearray(data)
    corrupted[500_000] ^= 0xFF
    response = upload(client, phone, bytes(corrupted), digest=digest)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "hash_mismatch"
    media_root = Path(app.config["MEDIA_PATH"])
    assert [p for p in media_root.rglob("*") if p.is_file()] == []
    assert store.media(digest) is None
    status = client.get(f"/api/v1/media/{digest}", headers=phone.headers).json
    assert status == {"sha256": digest, "complete": False, "offset": 0, "length": None}


def test_a_photo_already_held_costs_nothing(phone, toilets, client):
    data = corpus("HMD_Nokia_8.3_5G.jpg")
    inspect(phone, toilets[0], data)
    inside = noise_photo(3)
    answers = toilet_answers(photo_outside=[photo(sha(data))], photo_inside=[photo(sha(inside))])
    result = phone.push([submission(toilets[1], phone.clock(), answers=answers)]).json
    assert result["results"][0]["missing"] == [sha(inside)]
    response = client.patch(
        f"/api/v1/media/{sha(data)}",
        data=b"",
        headers={**phone.headers, "Upload-Offset": "0", "Upload-Length": str(len(data))},
    )
    assert response.json["complete"] is True


# -- bad input -----------------------------------------------------------------------------


def push_for(phone, facility_id, data: bytes):
    digest = sha(data)
    answers = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
    phone.push([submission(facility_id, phone.clock(), answers=answers)])
    return digest


def no_files(app) -> bool:
    root = Path(app.config["MEDIA_PATH"])
    return not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_text_file_named_jpg_is_415_and_leaves_nothing(phone, toilets, client, app):
    data = "这不是照片 not a photo\n".encode() * 100
    push_for(phone, toilets[0], data)
    response = upload(client, phone, data)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_type"
    assert no_files(app)


def test_truncated_jpeg_is_refused_and_leaves_nothing(phone, toilets, client, app, store):
    data = corpus("87_OSError.jpg")[:300_000]
    digest = push_for(phone, toilets[0], data)
    response = upload(client, phone, data)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "corrupt"
    assert no_files(app) and store.media(digest) is None


def test_decompression_bomb_is_refused_quickly(phone, toilets, client, app):
    buf = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buf, "PNG")
    data = buf.getvalue()
    push_for(phone, toilets[0], data)
    started = datetime.now()
    response = upload(client, phone, data)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "too_many_pixels"
    assert (datetime.now() - started).total_seconds() < 5
    assert no_files(app)


@pytest.mark.parametrize("bad", ["ABC", "g" * 64, "A" * 64, "0" * 63])
def test_hash_that_is_not_hex_is_a_400(phone, client, bad):
    response = client.get(f"/api/v1/media/{bad}", headers=phone.headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_hash"


def test_path_like_hash_never_reaches_the_disk(phone, client, app):
    for bad in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2e%2e"):
        response = client.patch(
            f"/api/v1/media/{bad}",
            data=b"x",
            headers={**phone.headers, "Upload-Offset": "0", "Upload-Length": "1"},
        )
        assert response.status_code in (400, 404)
        assert response.json["error"]["code"] in ("bad_hash", "not_found")
    assert no_files(app)


def test_upload_for_another_village_is_403(make_phone, facilities, client, app):
    other = make_phone("inspector2")
    data = noise_photo(1)
    push_for(other, facilities[(SHILING, "toilet")]["id"], data)
    mine = make_phone("inspector")
    response = upload(client, mine, data)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "media_forbidden"
    assert no_files(app)


def test_declared_length_over_the_limit_is_413(phone, toilets, client):
    digest = push_for(phone, toilets[0], b"\xff\xd8\xff" + b"0" * 100)
    response = client.patch(
        f"/api/v1/media/{digest}",
        data=b"\xff\xd8\xff",
        headers={**phone.headers, "Upload-Offset": "0", "Upload-Length": str(21 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_missing_upload_headers_are_a_400(phone, toilets, client):
    digest = push_for(phone, toilets[0], noise_photo(5))
    response = client.patch(f"/api/v1/media/{digest}", data=b"x", headers=phone.headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_header"


# -- planted fraud -------------------------------------------------------------------------


def test_clean_inspection_has_no_flags(phone, toilets, store):
    outside = retagged("iphone_hdr_NO.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1])
    item = inspect(phone, toilets[0], outside, noise_photo(11))
    assert codes(store, item["id"]) == []
    assert store.submission(item["id"])["risk_score"] == 0


def test_exact_reuse_for_another_facility_flags_both(phone, toilets, store):
    outside = retagged("iphone_hdr_NO.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1])
    first = inspect(phone, toilets[0], outside, noise_photo(12))
    second = inspect(phone, toilets[1], outside, noise_photo(13))
    assert "reused_photo" in codes(store, second["id"])
    assert "reused_photo" in codes(store, first["id"])
    assert store.submission(second["id"])["risk_score"] >= 50


@pytest.mark.parametrize("fraud", ["recompressed", "cropped"])
def test_recompressed_or_cropped_copy_is_a_near_duplicate(phone, toilets, store, fraud):
    kwargs = dict(lat=TOILET_POS[0], lon=TOILET_POS[1])
    original = retagged("HMD_Nokia_8.3_5G.jpg", **kwargs)
    copy = (
        retagged("HMD_Nokia_8.3_5G.jpg", size=512, quality=60, **kwargs)
        if fraud == "recompressed"
        else retagged("HMD_Nokia_8.3_5G.jpg", crop=0.1, **kwargs)
    )
    assert sha(copy) != sha(original)
    inspect(phone, toilets[0], original, noise_photo(21))
    item = inspect(phone, toilets[1], copy, noise_photo(22))
    flags = {f["code"]: f for f in store.flags_of(item["id"])}
    assert "near_duplicate" in flags
    assert "reused_photo" not in flags


def test_photo_taken_ten_days_before_the_inspection_is_flagged(phone, toilets, store):
    old = retagged(
        "87_OSError.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1], taken="2026:11:10 10:20:00"
    )
    item = inspect(phone, toilets[2], old, noise_photo(31))
    flag = next(f for f in store.flags_of(item["id"]) if f["code"] == "taken_long_before")
    assert flag["figures"]["hours_before"] == pytest.approx(240.2, abs=0.1)


def test_photo_two_km_from_the_facility_is_flagged(phone, toilets, store):
    far = retagged("canon_hdr_NO.jpg", lat=TOILET_POS[0] + 0.018, lon=TOILET_POS[1])
    item = inspect(phone, toilets[0], far, noise_photo(41))
    flag = next(f for f in store.flags_of(item["id"]) if f["code"] == "far_from_facility")
    assert 1900 <= flag["figures"]["distance_m"] <= 2100
    assert flag["figures"]["source"] == "exif"


def test_distinct_corpus_photos_raise_no_duplicate_flags(phone, toilets, store):
    names = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "87_OSError.jpg", "canon_hdr_NO.jpg"]
    items = [
        inspect(
            phone,
            toilets[i],
            retagged(n, lat=TOILET_POS[0], lon=TOILET_POS[1]),
            noise_photo(50 + i),
        )
        for i, n in enumerate(names)
    ]
    for item in items:
        assert not {"near_duplicate", "reused_photo"} & set(codes(store, item["id"]))


def test_photos_pushed_after_upload_are_judged_at_push(phone, toilets, store):
    outside = retagged("iphone_hdr_NO.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1])
    inside = noise_photo(61)
    inspect(phone, toilets[0], outside, inside)
    again = inspect(phone, toilets[1], outside, inside)
    assert store.submission(again["id"])["state"] == "complete"
    assert "reused_photo" in codes(store, again["id"])


def test_flags_are_shown_to_supervisors_not_to_the_author(make_phone, phone, toilets, client):
    outside = retagged("iphone_hdr_NO.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1])
    inspect(phone, toilets[0], outside, noise_photo(71))
    second = inspect(phone, toilets[1], outside, noise_photo(72))
    mine = client.get(f"/api/v1/submissions/{second['id']}", headers=phone.headers).json
    assert "flags" not in mine and "risk_score" not in mine["submission"]
    supervisor = make_phone("supervisor")
    theirs = client.get(f"/api/v1/submissions/{second['id']}", headers=supervisor.headers).json
    assert "reused_photo" in [f["code"] for f in theirs["flags"]]
    assert theirs["submission"]["risk_score"] >= 50
