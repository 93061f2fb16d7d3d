"""The evidence checks on photos the phone made smaller (issue 11).

Each planted photo is a full-size corpus picture (over 2560 px) with the EXIF a fraud needs; the
real client_pwa/js/photo_resize.js in Chromium makes it smaller, as a phone does before storing
it, and the smaller bytes go through the server's upload and ingest (the `phone` test client, as
tests/test_media_api.py's planted-fraud tests do). The same flags must come out as for the
originals: time and place still come from the copied EXIF, the software tag still shows an
editor, and a near-duplicate is still found between a downsized photo and another facility's
original, downsized crop, or recompressed copy.
"""

import io

import pytest
from conftest import CORPUS, photo_exif, sha
from photo_resize_helpers import resizer_page
from PIL import Image, ImageChops, ImageStat
from test_media_api import TOILET_POS, codes, inspect, noise_photo

EDGE = 2560


@pytest.fixture(scope="module")
def resizer():
    with resizer_page() as r:
        yield r


def planted(
    name: str,
    *,
    lat=TOILET_POS[0],
    lon=TOILET_POS[1],
    taken="2026:11:20 10:20:00",
    software=None,
    crop=None,
) -> bytes:
    """A corpus photo at full size (re-encoded by Pillow, over 2560 px) with planted EXIF."""
    img = Image.open(CORPUS / name).convert("RGB")
    if crop:
        w, h = img.size
        img = img.crop((int(w * crop), 0, w, h))
    exif = photo_exif(taken, lat=lat, lon=lon)
    if software:
        exif[0x0131] = software
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif)
    assert max(img.size) > EDGE
    return buf.getvalue()


def smaller(resizer, data: bytes, edge: int = EDGE) -> bytes:
    """What the phone stores and uploads for `data`."""
    out, info = resizer.shrink(data, edge)
    assert info["resized"], info
    assert len(out) < len(data)
    return out


def flag(store, item, code) -> dict:
    found = [f for f in store.flags_of(item["id"]) if f["code"] == code]
    assert len(found) == 1, codes(store, item["id"])
    return found[0]


def test_a_clean_downsized_photo_raises_nothing_and_keeps_its_facts(resizer, phone, toilets, store):
    original = planted("iphone_hdr_NO.jpg")
    data = smaller(resizer, original)
    item = inspect(phone, toilets[0], data, noise_photo(71))
    assert codes(store, item["id"]) == []
    assert store.submission(item["id"])["risk_score"] == 0
    facts = store.media(sha(data))["exif"]
    assert facts["lat"] == pytest.approx(TOILET_POS[0], abs=1e-6)
    assert facts["lon"] == pytest.approx(TOILET_POS[1], abs=1e-6)
    assert facts["taken_at"] == "2026-11-20T10:20:00+08:00"
    assert (facts["make"], facts["model"]) == ("Xiaomi", "Redmi Note 12")


@pytest.mark.parametrize("fraud", ["original_elsewhere", "cropped", "recompressed"])
def test_a_downsized_copy_of_another_facilitys_photo_is_a_near_duplicate(
    resizer, phone, toilets, store, fraud
):
    original = planted("HMD_Nokia_8.3_5G.jpg")
    first = smaller(resizer, original)
    if fraud == "original_elsewhere":  # the first photo came from a phone that kept originals
        first, copy = original, first
    elif fraud == "cropped":  # a crop of the same picture, downsized by the phone
        copy = smaller(resizer, planted("HMD_Nokia_8.3_5G.jpg", crop=0.1))
    else:  # the downsized photo saved again at a lower quality
        buf = io.BytesIO()
        Image.open(io.BytesIO(first)).save(buf, "JPEG", quality=60)
        copy = buf.getvalue()
    assert sha(copy) != sha(first)
    inspect(phone, toilets[0], first, noise_photo(81))
    item = inspect(phone, toilets[1], copy, noise_photo(82))
    found = {f["code"] for f in store.flags_of(item["id"])}
    assert "near_duplicate" in found
    assert "reused_photo" not in found


def test_a_downsized_photo_taken_ten_days_before_is_flagged(resizer, phone, toilets, store):
    old = smaller(resizer, planted("iphone_hdr_YES.jpg", taken="2026:11:10 10:20:00"))
    item = inspect(phone, toilets[2], old, noise_photo(91))
    assert flag(store, item, "taken_long_before")["figures"]["hours_before"] == pytest.approx(
        240.2, abs=0.1
    )


def test_a_downsized_photo_two_km_away_is_flagged_by_its_exif(resizer, phone, toilets, store):
    far = smaller(resizer, planted("iphone_hdr_NO.jpg", lat=TOILET_POS[0] + 0.018))
    item = inspect(phone, toilets[0], far, noise_photo(92))
    figures = flag(store, item, "far_from_facility")["figures"]
    assert 1900 <= figures["distance_m"] <= 2100
    assert figures["source"] == "exif"


def test_a_downsized_edited_photo_still_names_its_editor(resizer, phone, toilets, store):
    edited = smaller(resizer, planted("67-0_length_string.jpg", software="Adobe Photoshop 25.0"))
    item = inspect(phone, toilets[1], edited, noise_photo(93))
    assert flag(store, item, "edited_by_software")["figures"]["software"] == "Adobe Photoshop 25.0"


def test_a_downsized_turned_photo_is_shown_upright_once(resizer, phone, toilets, client):
    original = (CORPUS / "canon_hdr_NO.jpg").read_bytes()  # Orientation 6, 2048x1536
    data = smaller(resizer, original, 1600)
    inspect(phone, toilets[0], original, noise_photo(94))
    inspect(phone, toilets[1], data, noise_photo(95))

    def display(digest):
        response = client.get(f"/api/v1/media/{digest}/display/1280", headers=phone.headers)
        assert response.status_code == 200
        return Image.open(io.BytesIO(response.data)).convert("L")

    mine, theirs = display(sha(data)), display(sha(original))
    assert mine.size == theirs.size and mine.height > mine.width
    assert ImageStat.Stat(ImageChops.difference(mine, theirs)).mean[0] < 6


def test_a_small_photo_reaches_the_server_unchanged(resizer, phone, toilets, store):
    data = (CORPUS / "87_OSError.jpg").read_bytes()  # 1488x2240: within the edge
    kept, info = resizer.shrink(data, EDGE)
    assert kept == data and info["reason"] == "small"
    inspect(phone, toilets[2], kept, noise_photo(96))
    assert store.media(sha(data))["size"] == len(data)
