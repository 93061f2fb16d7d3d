"""Issue 14: near-duplicates that are mirrored, turned or carry a watermark band are caught, and
a hash match between different pictures is not flagged once the second stage has looked.

Real corpus photos go through the real upload and ingest path (the `phone` test client); the
near-duplicate flag's figures come from `relation_flags`, as the desk reads them.
"""

import io

import pytest
from conftest import CORPUS, photo_exif, sha
from PIL import Image, ImageDraw, ImageOps
from test_media_api import TOILET_POS, codes, inspect, noise_photo
from test_supervisor import login_page

from media.images import decode_versions, process_image
from media.near_dup import DEFAULT_MIN_SIMILARITY, NearDuplicateIndex
from media.phash import FORMS, apply_form, dihedral_hashes, hamming, photo_hashes
from server.evidence import relation_flags


def _jpeg(img: Image.Image, taken="2026:11:20 10:20:00") -> bytes:
    buf = io.BytesIO()
    exif = photo_exif(taken, lat=TOILET_POS[0], lon=TOILET_POS[1])
    img.convert("RGB").save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def _upright(name: str, size=1024) -> Image.Image:
    img = ImageOps.exif_transpose(Image.open(CORPUS / name)).convert("RGB")
    img.thumbnail((size, size))
    return img


def _band(img: Image.Image) -> Image.Image:
    """A 水印相机 band over the bottom 12%: dark, with white text."""
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out, "RGBA")
    draw.rectangle((0, int(h * 0.88), w, h), fill=(20, 20, 20, 210))
    draw.text((w * 0.03, h * 0.9), "2026-11-20 10:20 N24.76 E109.29 云屿村", fill="white")
    return out


@pytest.mark.parametrize("name", ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "canon_hdr_NO.jpg"])
def test_forms_from_the_coefficients_equal_hashing_each_turned_picture(name):
    _, _, versions = decode_versions(io.BytesIO((CORPUS / name).read_bytes()), {320})
    small = versions[320]
    derived = dihedral_hashes(small)
    assert derived[0] == photo_hashes(small)[0]
    for form in range(len(FORMS)):
        assert derived[form] == photo_hashes(apply_form(small, form))[0], form


def test_mirrored_turned_and_banded_copies_are_flagged_with_both_figures(
    phone, toilets, store, app
):
    img = _upright("HMD_Nokia_8.3_5G.jpg")
    original = _jpeg(img)
    copies = {
        "mirror": _jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "rotate90": _jpeg(img.transpose(Image.Transpose.ROTATE_90)),
        "rotate180": _jpeg(img.transpose(Image.Transpose.ROTATE_180)),
        "band": _jpeg(_band(img)),
    }
    inspect(phone, toilets[0], original, noise_photo(141))
    for n, (kind, data) in enumerate(copies.items(), start=1):
        item = inspect(phone, toilets[n], data, noise_photo(141 + n))
        assert "near_duplicate" in codes(store, item["id"]), kind
        with app.app_context():
            flag = next(
                f for f in relation_flags(store, item["id"]) if f["code"] == "near_duplicate"
            )
        match = next(r for r in flag["relations"] if r["sha256"] == sha(original))
        assert match["distance"] <= flag["threshold"], kind
        assert match["similarity"] >= DEFAULT_MIN_SIMILARITY, kind
    # The desk says, in Chinese, what the score is made of and how alike the photos are.
    desk = app.test_client()
    login_page(desk, "supervisor")
    html = desk.get(f"/desk/submissions/{item['id']}").get_data(as_text=True)
    assert 'id="score-why"' in html
    assert "与其他设施照片相似 +40" in html
    assert "逐块比对相似度" in html


def test_different_parts_of_one_photo_close_in_hash_are_not_flagged(phone, toilets, store):
    """The top-right and bottom-right quarters of one corpus photo are different pictures whose
    hashes are within the threshold (stage one finds them); the second stage rejects them."""
    img = _upright("87_OSError.jpg", size=1600)
    w, h = img.size
    top = _jpeg(img.crop((w // 2, 0, w, h // 2)))
    bottom = _jpeg(img.crop((w // 2, h // 2, w, h)))
    a, b = process_image(top), process_image(bottom)
    index = NearDuplicateIndex()
    index.add("top", a.phash, crops=a.crop_phashes)
    forms = dihedral_hashes(Image.open(io.BytesIO(b.versions[320])))[1:]
    matches = index.query_matches(b.phash, 12, crops=b.crop_phashes, forms=forms)
    assert matches and matches[0].distance <= 12  # stage one alone would flag them
    assert hamming(a.phash, b.phash) > 12  # (only a pairing of regions or forms is close)
    inspect(phone, toilets[0], top, noise_photo(151))
    item = inspect(phone, toilets[1], bottom, noise_photo(152))
    assert "near_duplicate" not in codes(store, item["id"])


def test_photos_stored_with_five_crop_hashes_still_load_and_match():
    """Rows ingested before issue 14 carry five crop hashes; the missing ones are the full
    hash, so they match exactly as before."""
    from server.evidence import _hash_arrays

    full, five = "00000000000000ff", ["0f00000000000000"] * 5
    rows = [(1, "old", full, "[" + ",".join(f'"{h}"' for h in five) + "]"), (2, "none", full, "")]
    keys, fulls, crops = _hash_arrays(rows)
    index = NearDuplicateIndex()
    index.extend(keys, fulls, crops)
    assert crops[0].tolist()[:5] == [int(five[0], 16)] * 5
    assert crops[0].tolist()[5:] == [255] * (crops.shape[1] - 5)
    assert [k for k, _ in index.query(int(five[0], 16), 0)] == ["old"]
    assert sorted(k for k, _ in index.query(255, 0)) == ["none", "old"]
