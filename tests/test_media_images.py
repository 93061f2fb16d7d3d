"""Photo evidence: EXIF facts, display versions, perceptual hash, near-duplicate index.

Uses the real camera photos in shared/corpus/exif-samples (SOURCE.md is the reference).
"""

from __future__ import annotations

import io
import itertools
import struct
import time
import tracemalloc
import zlib

import exifread
import pytest
from conftest import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageOps, ImageStat

from media.exif import ExifFacts, read_facts
from media.images import (
    ImageRejected,
    make_display_versions,
    phash,
    pixel_size,
    process_image,
    sniff_type,
)
from media.near_dup import NearDuplicateIndex
from media.phash import (
    DEFAULT_MAX_DISTANCE,
    crop_hashes,
    hamming,
    phash_of_image,
)

# From SOURCE.md: (make, model, software, orientation, lat, lon, DateTimeOriginal or None,
# Image DateTime fallback, JPEG frame size)
EXPECTED = {
    "iphone_hdr_NO.jpg": ("Apple", "iPhone 6", "8.3", 1, 40.446972, -3.724753,
                          "2015-04-10T20:12:23", None, (3264, 2448)),
    "iphone_hdr_YES.jpg": ("Apple", "iPhone 6", "8.3", 1, 40.446972, -3.724753,
                           "2015-04-10T20:12:23", None, (3264, 2448)),
    "HMD_Nokia_8.3_5G.jpg": ("HMD Global", "Nokia 8.3 5G", "00WW_3_380_SP02", 1, 60.146706,
                             24.906772, "2022-08-14T14:12:31", None, (4608, 1976)),
    "87_OSError.jpg": ("NIKON CORPORATION", "NIKON D70s", "Ver.1.00", 1, 43.785594, 11.234619,
                       "2005-12-14T14:39:47", None, (1488, 2240)),
    "67-0_length_string.jpg": ("samsung", "SM-G930F", None, 1, 51.025000, 7.591944,
                               None, "2016-09-12T10:05:31", (4032, 2012)),
    "canon_hdr_NO.jpg": ("Canon", "Canon PowerShot SX60 HS", None, 6, None, None,
                         "2015-02-09T22:47:44", None, (2048, 1536)),
}  # fmt: skip

# Photos showing distinct scenes (the grey samsung frame has no content to hash; the iPhone pair
# is one scene).
DISTINCT = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "87_OSError.jpg", "canon_hdr_NO.jpg"]


def _read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def originals() -> dict[str, bytes]:
    return {name: _read(name) for name in EXPECTED}


@pytest.fixture(scope="module")
def processed(originals):
    return {name: process_image(data) for name, data in originals.items()}


@pytest.fixture(scope="module")
def upright() -> dict[str, Image.Image]:
    out = {}
    for name in DISTINCT + ["iphone_hdr_YES.jpg"]:
        with Image.open(CORPUS / name) as im:
            out[name] = ImageOps.exif_transpose(im).convert("RGB")
    return out


# ------------------------------------------------------------------------------------------
# EXIF


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exif_facts_match_source_md(name, originals):
    make, model, software, orientation, lat, lon, original, fallback, _ = EXPECTED[name]
    facts = read_facts(originals[name], default_offset=None)
    assert facts.present and facts.error is None
    assert (facts.make, facts.model, facts.software) == (make, model, software)
    assert facts.orientation == orientation
    if lat is None:
        assert facts.lat is None and facts.lon is None
    else:
        assert facts.lat == pytest.approx(lat, abs=1e-5)
        assert facts.lon == pytest.approx(lon, abs=1e-5)
    if original:
        assert facts.taken_at_source == "DateTimeOriginal"
        expected_time = original + ("+03:00" if name.startswith("HMD") else "")
        assert facts.taken_at == expected_time
    else:
        assert facts.taken_at_source == "DateTime"
        assert facts.taken_at == fallback


def test_exif_file_object_and_offsets(originals):
    with open(CORPUS / "iphone_hdr_NO.jpg", "rb") as f:
        facts = read_facts(f, default_offset="+08:00")
    assert facts.taken_at == "2015-04-10T20:12:23+08:00"
    # OffsetTimeOriginal in the photo wins over the device's offset
    nokia = read_facts(originals["HMD_Nokia_8.3_5G.jpg"], default_offset="+08:00")
    assert nokia.taken_at == "2022-08-14T14:12:31+03:00"
    samsung = read_facts(originals["67-0_length_string.jpg"], default_offset="+08:00")
    assert (samsung.taken_at, samsung.taken_at_source) == ("2016-09-12T10:05:31+08:00", "DateTime")


def test_exif_altitude_and_to_dict(originals):
    facts = read_facts(originals["iphone_hdr_NO.jpg"], default_offset=None)
    assert facts.altitude == pytest.approx(105532 / 165)
    d = facts.to_dict()
    assert d["lat"] == facts.lat and d["taken_at_source"] == "DateTimeOriginal"
    import json

    json.dumps(d)


def _exif_jpeg(exif: Image.Exif) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_gps_edge_cases_south_west_below_sea_zero_denominator():
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "S", 2: (IFDRational(29, 1), IFDRational(30, 1), IFDRational(2911, 100)),
                3: "W", 4: (IFDRational(109, 1), IFDRational(0, 1), IFDRational(0, 1)),
                5: b"\x01", 6: IFDRational(12, 1)})  # fmt: skip
    facts = read_facts(_exif_jpeg(exif), default_offset=None)
    assert facts.lat == pytest.approx(-(29 + 30 / 60 + 29.11 / 3600))
    assert facts.lon == pytest.approx(-109.0)
    assert facts.altitude == pytest.approx(-12.0)

    # zero denominator -> absent, not a crash; out of range -> absent
    raw = _exif_jpeg(exif)
    exif2 = Image.Exif()
    gps2 = exif2.get_ifd(0x8825)
    r = IFDRational
    gps2.update(
        {1: "N", 2: (r(29, 1), r(30, 1), r(5, 1)), 3: "E", 4: (r(200, 1), r(0, 1), r(0, 1))}
    )
    out_of_range = read_facts(_exif_jpeg(exif2), default_offset=None)
    assert out_of_range.lat is None and out_of_range.lon is None and out_of_range.error is None
    # Patch the last rational's denominator (2911/100 -> 2911/0) in place.
    needle = struct.pack(">II", 2911, 100)
    little = struct.pack("<II", 2911, 100)
    assert needle in raw or little in raw
    patched = raw.replace(needle, struct.pack(">II", 2911, 0)).replace(
        little, struct.pack("<II", 2911, 0)
    )
    zero = read_facts(patched, default_offset=None)
    assert zero.present and zero.lat is None and zero.lon is None


def test_no_exif_and_corrupt_exif_are_recorded(originals):
    plain = _jpeg(Image.new("RGB", (32, 32), "blue"))
    facts = read_facts(plain, default_offset="+08:00")
    assert facts == ExifFacts(present=False)

    # Mangle the APP1/Exif block of a real photo: keep the marker, scramble the TIFF header/IFDs.
    data = bytearray(originals["iphone_hdr_NO.jpg"])
    start = data.index(b"Exif\x00\x00") + 6
    for i in range(start, start + 400):
        data[i] = (data[i] * 7 + 13) & 0xFF
    corrupt = read_facts(bytes(data), default_offset=None)
    assert corrupt.present and corrupt.error
    assert corrupt.lat is None and corrupt.taken_at is None
    # An APP1 with a lying length and a truncated TIFF header
    bad = b"\xff\xd8\xff\xe1\xff\xf0Exif\x00\x00II*\x00\xff\xff\xff\x7f"
    facts = read_facts(bad, default_offset=None)
    assert facts.present and facts.error
    assert facts.lat is None and facts.taken_at is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_read_facts_never_raises_on_random_bytes(data):
    facts = read_facts(data, default_offset="+08:00")
    assert isinstance(facts, ExifFacts)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"\xff\xd8\xff\xe1\x01\x00Exif\x00\x00", b"II*\x00", b"MM\x00*"]),
       st.binary(max_size=1024))  # fmt: skip
def test_read_facts_never_raises_on_exif_like_garbage(prefix, tail):
    assert isinstance(read_facts(prefix + tail, default_offset=None), ExifFacts)


# ------------------------------------------------------------------------------------------
# display versions


def test_sniff_type():
    assert sniff_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert sniff_type(b"\x89PNG\r\n\x1a\n\x00\x00") == "image/png"
    assert sniff_type(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_type(b"GIF89a") is None
    assert sniff_type(b"") is None
    assert sniff_type(b"hello, this is text") is None


def _assert_no_metadata(data: bytes) -> None:
    assert exifread.process_file(io.BytesIO(data), details=False) == {}
    with Image.open(io.BytesIO(data)) as im:
        assert not im.getexif()
        assert {"exif", "icc_profile", "xmp", "comment", "XML:com.adobe.xmp"}.isdisjoint(im.info)
    assert b"Exif\x00\x00" not in data and b"http://ns.adobe.com/xap" not in data
    assert b"ICC_PROFILE" not in data


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_display_versions_sizes_orientation_and_stripping(name, originals, processed):
    frame = EXPECTED[name][-1]
    orientation = EXPECTED[name][3]
    w, h = (frame[1], frame[0]) if orientation in (5, 6, 7, 8) else frame
    result = processed[name]
    assert (result.width, result.height) == (w, h)
    assert pixel_size(originals[name]) == (w, h)
    assert set(result.versions) == {1280, 320}
    for size, data in result.versions.items():
        assert sniff_type(data) == "image/jpeg"
        with Image.open(io.BytesIO(data)) as im:
            assert max(im.size) == min(size, max(w, h))
            assert (im.width >= im.height) == (w >= h)  # orientation kept
            assert im.width / im.height == pytest.approx(w / h, rel=0.01)
        _assert_no_metadata(data)


def test_canon_orientation_6_comes_out_portrait(originals):
    versions = make_display_versions(originals["canon_hdr_NO.jpg"])
    for data in versions.values():
        with Image.open(io.BytesIO(data)) as im:
            assert im.height > im.width
    with Image.open(io.BytesIO(versions[1280])) as im:
        assert im.size == (960, 1280)


def test_display_versions_never_upscale_and_accept_path(tmp_path):
    small = tmp_path / "small.jpg"
    Image.new("RGB", (200, 100), "green").save(small, "JPEG")
    versions = make_display_versions(str(small), sizes=(1280, 320))
    for data in versions.values():
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (200, 100)


def test_png_and_webp_inputs():
    rgba = Image.new("RGBA", (2000, 1000), (255, 0, 0, 128))
    for fmt, mime in (("PNG", "image/png"), ("WEBP", "image/webp")):
        buf = io.BytesIO()
        rgba.save(buf, fmt)
        data = buf.getvalue()
        assert sniff_type(data) == mime
        versions = make_display_versions(data)
        with Image.open(io.BytesIO(versions[1280])) as im:
            assert im.size == (1280, 640) and im.mode == "RGB"
        with Image.open(io.BytesIO(versions[320])) as im:
            assert im.size == (320, 160)


# ------------------------------------------------------------------------------------------
# rejection


def _bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A ~12 kB 1-bit PNG declaring width x height, built row by row (no big buffers)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bomb_jpeg(width: int = 10_000, height: int = 10_000) -> bytes:
    """A small real JPEG whose SOF0 frame header is patched to declare width x height."""
    data = bytearray(_jpeg(Image.new("RGB", (64, 48), "white")))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize("bomb", [_bomb_png, _bomb_jpeg], ids=["png", "jpeg"])
def test_decompression_bomb_rejected_quickly_and_small(bomb):
    data = bomb()
    assert len(data) < 100_000
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(ImageRejected) as info:
            make_display_versions(data)
        with pytest.raises(ImageRejected):
            process_image(data)
        with pytest.raises(ImageRejected):
            pixel_size(data)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert info.value.code == "too_many_pixels"
    assert time.perf_counter() - t < 1.0
    assert peak < 5_000_000


def test_pixel_limit_is_configurable(originals):
    with pytest.raises(ImageRejected) as info:
        make_display_versions(originals["canon_hdr_NO.jpg"], max_pixels=1_000_000)
    assert info.value.code == "too_many_pixels"
    # a limit above Pillow's own MAX_IMAGE_PIXELS is honoured without warnings
    assert make_display_versions(_bomb_png(100, 100), max_pixels=10**9)


def test_text_file_named_jpg_is_unsupported(tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("这不是照片 / not a photo\n", encoding="utf-8")
    with pytest.raises(ImageRejected) as info:
        make_display_versions(str(fake))
    assert info.value.code == "unsupported_type"
    with pytest.raises(ImageRejected) as info:
        make_display_versions(b"GIF89a\x01\x00\x01\x00")
    assert info.value.code == "unsupported_type"


def test_truncated_and_corrupt_jpeg(originals):
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = originals["iphone_hdr_NO.jpg"]
    for cut in (len(data) // 2, 4000, 300):
        with pytest.raises(ImageRejected) as info:
            make_display_versions(data[:cut])
        assert info.value.code == "corrupt", cut
    with pytest.raises(ImageRejected) as info:
        make_display_versions(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    assert info.value.code == "corrupt"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ------------------------------------------------------------------------------------------
# perceptual hash and near duplicates


def _hashes(data: bytes) -> tuple[int, tuple[int, ...]]:
    p = process_image(data)
    return p.phash, p.crop_phashes


def _near(a: tuple[int, tuple[int, ...]], b: tuple[int, tuple[int, ...]]) -> int:
    """Distance as NearDuplicateIndex computes it (full vs full/crops, crops vs full)."""
    (ha, ca), (hb, cb) = a, b
    return min([hamming(ha, hb)] + [hamming(ha, c) for c in cb] + [hamming(c, hb) for c in ca])


def _frauds(img: Image.Image) -> dict[str, bytes]:
    w, h = img.size
    return {
        "q60_half": _jpeg(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 60),
        "crop10_centre": _jpeg(img.crop((w // 20, h // 20, w - w // 20, h - h // 20))),
        "crop10_left": _jpeg(img.crop((w // 10, 0, w, h))),
        "crop10_bottom": _jpeg(img.crop((0, 0, w, h - h // 10))),
        "crop10_uneven": _jpeg(img.crop((w * 7 // 100, 0, w - w * 3 // 100, h))),
        "crop10_q60_half": _jpeg(
            img.crop((w // 20, h // 20, w - w // 20, h - h // 20)).resize(
                (w * 9 // 20, h * 9 // 20)
            ),
            60,
        ),
    }


@pytest.mark.parametrize("name", DISTINCT)
def test_planted_fraud_is_within_threshold(name, originals, upright, processed):
    original = (processed[name].phash, processed[name].crop_phashes)
    for kind, data in _frauds(upright[name]).items():
        fraud = _hashes(data)
        d = _near(fraud, original)
        assert d <= DEFAULT_MAX_DISTANCE - 2, (kind, d)  # margin of 2 bits
        assert _near(original, fraud) == d  # symmetric
        if kind == "q60_half":
            assert hamming(fraud[0], original[0]) <= 4


def test_iphone_hdr_pair_is_near_duplicate(processed):
    a, b = processed["iphone_hdr_NO.jpg"], processed["iphone_hdr_YES.jpg"]
    assert hamming(a.phash, b.phash) <= 6
    index = NearDuplicateIndex()
    index.add("NO", a.phash, crops=a.crop_phashes)
    assert [k for k, _ in index.query(b.phash, crops=b.crop_phashes)] == ["NO"]


def test_distinct_photos_and_regions_are_beyond_threshold(upright):
    """Distinct corpus photos, and their quadrants (distinct content), stay far apart."""
    samples = {}
    for name in DISTINCT:
        img = upright[name]
        w, h = img.size
        samples[(name, "full")] = img
        for i, j in itertools.product(range(2), range(2)):
            samples[(name, f"q{i}{j}")] = img.crop(
                (i * w // 2, j * h // 2, (i + 1) * w // 2, (j + 1) * h // 2)
            )
    hashes = {k: _hashes(_jpeg(im)) for k, im in samples.items()}
    closest = min(
        _near(hashes[x], hashes[y]) for x, y in itertools.permutations(samples, 2) if x[0] != y[0]
    )
    assert closest > DEFAULT_MAX_DISTANCE + 4, closest  # margin of 4 bits
    full = [k for k in samples if k[1] == "full"]
    assert min(_near(hashes[x], hashes[y]) for x, y in itertools.permutations(full, 2)) > 16


def test_phash_standalone_equals_pipeline(originals, processed):
    for name in ("iphone_hdr_NO.jpg", "canon_hdr_NO.jpg"):
        assert phash(originals[name]) == processed[name].phash
        assert phash(io.BytesIO(originals[name])) == processed[name].phash


def test_phash_matches_imagehash_algorithm(processed):
    import imagehash

    from media.images import decode_versions

    for name in DISTINCT:
        _, _, images = decode_versions(_read(name))
        small = images[320]
        assert phash_of_image(small) == int(str(imagehash.phash(small)), 16)
        assert crop_hashes(small) == list(processed[name].crop_phashes)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=60), st.integers(0, 2**64 - 1),
       st.integers(0, 16))  # fmt: skip
def test_index_query_equals_brute_force(stored, query, max_distance):
    # plant a few near neighbours so the query finds something
    stored = stored + [query ^ (1 << b) for b in range(0, 64, 9)] + [query ^ ((1 << 13) - 1)]
    index = NearDuplicateIndex(capacity=4)
    for i, h in enumerate(stored):
        index.add(i, h)
    expected = sorted(
        ((hamming(h, query), i) for i, h in enumerate(stored) if hamming(h, query) <= max_distance)
    )
    assert index.query(query, max_distance) == [(i, d) for d, i in expected]


_hash = st.integers(0, 2**64 - 1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(_hash, st.lists(_hash, min_size=5, max_size=5)), min_size=1, max_size=20),
    _hash,
    st.lists(_hash, min_size=5, max_size=5),
    st.integers(0, 64),
)
def test_index_with_crops_equals_the_pairwise_distance(stored, h, crops, max_distance):
    index = NearDuplicateIndex(capacity=2)
    for i, (full, its_crops) in enumerate(stored):
        index.add(i, full, crops=its_crops)
    expected = sorted(
        (d, i)
        for i, (full, its_crops) in enumerate(stored)
        if (d := _near((h, tuple(crops)), (full, tuple(its_crops)))) <= max_distance
    )
    assert index.query(h, max_distance, crops=crops) == [(i, d) for d, i in expected]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_turns_the_pixels_upright(orientation):
    """Every orientation gives the picture exif_transpose gives (a red corner block and a blue
    bar tell every turn and flip apart), for both versions."""
    img = Image.new("RGB", (800, 400), "white")
    img.paste((255, 0, 0), (0, 0, 200, 100))
    img.paste((0, 0, 255), (600, 0, 800, 400))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as stored:
        upright = ImageOps.exif_transpose(stored).convert("RGB")
    for size, data in make_display_versions(buf.getvalue(), sizes=(640, 160)).items():
        with Image.open(io.BytesIO(data)) as version:
            assert version.size == _fit_longest(upright.size, size)
            expected = upright.resize(version.size, Image.Resampling.BOX)
            diff = ImageChops.difference(version.convert("RGB"), expected)
            assert max(ImageStat.Stat(diff).mean) < 8, (orientation, size)


def _fit_longest(size, longest):
    w, h = size
    return (longest, round(h * longest / w)) if w >= h else (round(w * longest / h), longest)
