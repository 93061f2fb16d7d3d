"""Photo size on the phone (issue 11): client_pwa/js/photo_resize.js in real Chromium.

Real corpus photos go through the module; Pillow and exifread, as the server uses them, read the
result: the long edge is the setting's, the EXIF facts (time, GPS, make, model, software) are the
original's, Orientation is 1 and the pixels are turned the right way, in both TIFF byte orders.
Photos within the edge, and everything the module does not understand, are kept byte for byte.
The pure byte helpers are checked on hand-made TIFF blocks. One browser for the whole module.
"""

import io
import struct

import exifread
import pytest
from conftest import CORPUS, sha
from photo_resize_helpers import b64, resizer_page
from PIL import Image, ImageChops, ImageOps, ImageStat

from media.exif import read_facts

# Over 2560 px with GPS: the iPhone (MM), the Nokia (MM, no thumbnail), the Samsung (MM, grey,
# no DateTimeOriginal). The Canon (II) is the corpus's only Orientation 6 photo, the Nikon (II)
# is within 2560 px.
BIG = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "67-0_length_string.jpg"]
FACT_TAGS = [
    "EXIF DateTimeOriginal",
    "Image DateTime",
    "EXIF OffsetTimeOriginal",
    "GPS GPSLatitude",
    "GPS GPSLatitudeRef",
    "GPS GPSLongitude",
    "GPS GPSLongitudeRef",
    "GPS GPSAltitude",
    "Image Make",
    "Image Model",
    "Image Software",
]


@pytest.fixture(scope="module")
def resizer():
    with resizer_page() as r:
        yield r


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def tags(data: bytes, **kw) -> dict:
    return exifread.process_file(io.BytesIO(data), details=False, **kw)


def tiff_of(data: bytes) -> bytes:
    at = data.index(b"Exif\0\0")
    length = struct.unpack(">H", data[at - 2 : at])[0]
    return data[at + 6 : at - 2 + length]


def with_orientation(data: bytes, value: int) -> bytes:
    """`data` with IFD0's Orientation (a SHORT it already has) set to `value`, bytes patched."""
    start = data.index(b"Exif\0\0") + 6
    tiff = tiff_of(data)
    e = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(e + "I", tiff[4:8])[0]
    for k in range(struct.unpack(e + "H", tiff[ifd0 : ifd0 + 2])[0]):
        at = ifd0 + 2 + 12 * k
        if struct.unpack(e + "H", tiff[at : at + 2])[0] == 0x0112:
            out = bytearray(data)
            out[start + at + 8 : start + at + 10] = struct.pack(e + "H", value)
            return bytes(out)
    raise AssertionError("no Orientation tag")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean[0]


def as_server_sees(data: bytes) -> Image.Image:
    """The picture turned by its EXIF Orientation, as media/images.py makes display versions."""
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


# -- corpus photos over the edge ----------------------------------------------------------------


@pytest.mark.parametrize("name", BIG)
def test_a_large_photo_is_made_smaller_and_keeps_its_exif_facts(resizer, name):
    data = corpus(name)
    out, info = resizer.shrink(data, 2560)
    assert info["resized"] and len(out) < len(data)
    img = Image.open(io.BytesIO(out))
    original = Image.open(io.BytesIO(data))
    assert max(img.size) == 2560
    assert img.size[1] == round(original.size[1] * 2560 / original.size[0])
    # exifread (the server's EXIF reader) reads every fact of the original, unchanged
    before, after = tags(data), tags(out)
    for tag in FACT_TAGS:
        assert str(after.get(tag)) == str(before.get(tag)), tag
    assert read_facts(out) == read_facts(data)
    assert read_facts(out).lat is not None
    assert img.getexif().get(0x0112, 1) == 1
    assert mean_difference(img, original.resize(img.size)) < 6


@pytest.mark.parametrize(
    "name, orientation, order",
    [
        ("canon_hdr_NO.jpg", 6, "II"),  # the camera's own tag
        ("iphone_hdr_NO.jpg", 6, "MM"),  # tags patched in place, to try the other byte order
        ("iphone_hdr_NO.jpg", 8, "MM"),
        ("iphone_hdr_NO.jpg", 3, "MM"),
    ],
)
def test_a_turned_photo_is_drawn_turned_and_tagged_orientation_1(resizer, name, orientation, order):
    data = corpus(name)
    if orientation != 6 or order == "MM":
        data = with_orientation(data, orientation)
    assert tiff_of(data)[:2].decode() == order
    expected = as_server_sees(data)  # what the server shows for the original
    out, info = resizer.shrink(data, 1024)
    assert info["resized"] and info["orientation"] == orientation
    assert tiff_of(out)[:2].decode() == order
    assert tags(out)["Image Orientation"].values == [1]
    assert read_facts(out).orientation == 1
    assert read_facts(out).taken_at == read_facts(data).taken_at
    shown = as_server_sees(out)  # turned once, not twice
    assert max(shown.size) == 1024
    assert (shown.width > shown.height) == (expected.width > expected.height)
    reference = expected.resize(shown.size)
    assert mean_difference(shown, reference) < 6
    assert mean_difference(shown, reference.rotate(180)) > 4 * mean_difference(shown, reference)
    # the EXIF thumbnail (the unturned picture) is gone; the EXIF size is the new one
    assert not any(k.startswith("Thumbnail") for k in tags(out))
    assert "JPEGThumbnail" not in tags(out, extract_thumbnail=True)
    assert tags(out)["EXIF ExifImageWidth"].values == [Image.open(io.BytesIO(out)).size[0]]


def test_the_thumbnail_is_unlinked_where_its_bytes_cannot_be_cut(resizer):
    data = corpus("87_OSError.jpg")  # IFD1 lies before IFD0, the MakerNote after
    out, info = resizer.shrink(data, 1024)
    assert info["thumbnail"] == "unlinked"
    assert not any(k.startswith("Thumbnail") for k in tags(out))
    assert read_facts(out) == read_facts(data)


# -- kept byte for byte --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, edge",
    [("87_OSError.jpg", 2560), ("canon_hdr_NO.jpg", 2560), ("iphone_hdr_NO.jpg", 3264)],
)
def test_a_photo_within_the_edge_is_stored_unchanged(resizer, name, edge):
    data = corpus(name)
    out, info = resizer.shrink(data, edge)
    assert out == data and info["same"] and info["reason"] == "small"


def png(size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (20, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def noise_jpeg(size, quality) -> bytes:
    img = Image.effect_noise(size, 60).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def iphone() -> bytes:
    return corpus("iphone_hdr_NO.jpg")


UNDECODABLE = (
    b"\xff\xd8"
    + b"\xff\xc0\x00\x11\x08\x0b\xb8\x0f\xa0\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"  # 4000x3000
    + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    + bytes(range(256)) * 40
    + b"\xff\xd9"
)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: png((3000, 200)), "not_jpeg"),
        (lambda: b"\x00\x00\x00\x18ftypheic" + bytes(5000), "not_jpeg"),  # HEIC
        (lambda: iphone()[:1_200_000], "truncated"),
        (lambda: UNDECODABLE, "undecodable"),
        (lambda: noise_jpeg((2600, 2600), 2), "not_smaller"),
        (lambda: iphone().replace(b"Exif\0\0MM", b"Exif\0\0XX", 1), "exif_unreadable"),
    ],
)
def test_what_cannot_be_made_smaller_safely_is_kept_as_it_is(resizer, make, reason):
    data = make()
    out, info = resizer.shrink(data, 2560)
    assert info["reason"] == reason
    assert out == data and info["same"]


def test_max_edge_0_keeps_every_photo(resizer):
    data = corpus("HMD_Nokia_8.3_5G.jpg")
    out, info = resizer.shrink(data, 0)
    assert out == data and info["reason"] == "off"


# -- the byte helpers -----------------------------------------------------------------------------


def tiff_block(order: str, *, orientation=6, px=(4000, 3000), make_after=False) -> bytes:
    """A small TIFF block: IFD0 (Orientation, Exif pointer, Make), an Exif IFD (PixelX as LONG,
    PixelY as SHORT), IFD1 pointing at a thumbnail that ends the block, then zero padding."""
    e = "<" if order == "II" else ">"

    def entry(tag, kind, count, value: bytes) -> bytes:
        return struct.pack(e + "HHI", tag, kind, count) + value.ljust(4, b"\0")

    thumb = b"\xff\xd8" + b"thumbnail" * 10 + b"\xff\xd9"
    make = entry(0x010F, 2, 4, b"Cam\0")
    if make_after:  # an 8-byte Make stored after the thumbnail: nothing may be cut
        make = entry(0x010F, 2, 8, struct.pack(e + "I", 110 + len(thumb)))
    ifd0 = (
        struct.pack(e + "H", 3)
        + entry(0x0112, 3, 1, struct.pack(e + "H", orientation))
        + entry(0x8769, 4, 1, struct.pack(e + "I", 50))
        + make
        + struct.pack(e + "I", 80)
    )
    exif = (
        struct.pack(e + "H", 2)
        + entry(0xA002, 4, 1, struct.pack(e + "I", px[0]))
        + entry(0xA003, 3, 1, struct.pack(e + "H", px[1]))
        + struct.pack(e + "I", 0)
    )
    ifd1 = (
        struct.pack(e + "H", 2)
        + entry(0x0201, 4, 1, struct.pack(e + "I", 110))
        + entry(0x0202, 4, 1, struct.pack(e + "I", len(thumb)))
        + struct.pack(e + "I", 0)
    )
    head = (b"II*\0" if order == "II" else b"MM\0*") + struct.pack(e + "I", 8)
    block = head + ifd0 + exif + ifd1 + thumb
    assert (len(head + ifd0), len(head + ifd0 + exif)) == (50, 80)
    return block + (b"Camera1\0" if make_after else b"") + bytes(6)


@pytest.mark.parametrize("order", ["II", "MM"])
def test_patch_exif_sets_orientation_1_the_new_size_and_cuts_the_thumbnail(resizer, order):
    e = "<" if order == "II" else ">"
    block = tiff_block(order)
    out = resizer.call("pr.patchExif(bytes[0], { width: 2560, height: 1920 })", block)
    assert out["orientation"] == 6 and out["thumbnail"] == "cut"
    expected = tiff_block(order, orientation=1, px=(2560, 1920))[:80]
    expected = expected[:46] + struct.pack(e + "I", 0) + expected[50:]  # IFD0's next link
    assert out["tiff"] == expected
    assert resizer.call("pr.exifOrientation(bytes[0])", block) == 6
    assert resizer.call("pr.exifOrientation(bytes[0])", out["tiff"]) == 1
    assert resizer.call("pr.patchExif(bytes[0], {}).tiff", block) != block  # a copy
    assert resizer.call("pr.exifOrientation(bytes[0])", block) == 6  # the input is untouched


@pytest.mark.parametrize("order", ["II", "MM"])
def test_patch_exif_only_unlinks_a_thumbnail_with_data_after_it(resizer, order):
    block = tiff_block(order, make_after=True)
    out = resizer.call("pr.patchExif(bytes[0], { width: 2560, height: 1920 })", block)
    assert out["thumbnail"] == "unlinked" and len(out["tiff"]) == len(block)
    wrapped = b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(out["tiff"]) + 8) + b"Exif\0\0"
    read = tags(wrapped + out["tiff"] + b"\xff\xd9")
    assert str(read["Image Make"]) == "Camera1"
    assert not any(k.startswith("Thumbnail") for k in read)


def test_patch_exif_refuses_a_block_it_cannot_walk(resizer):
    block = tiff_block("II")
    broken = block[:8] + struct.pack("<H", 400) + block[10:]  # 400 entries: past the end
    assert resizer.call("pr.patchExif(bytes[0], {})", broken) is None
    assert resizer.call("pr.exifOrientation(bytes[0])", broken) is None
    assert resizer.call("pr.patchExif(bytes[0], {})", b"XX*\0" + block[4:]) is None


def test_jpeg_info_and_with_exif(resizer):
    data = corpus("canon_hdr_NO.jpg")
    info = resizer.call("pr.jpegInfo(bytes[0])", data)
    assert (info["width"], info["height"]) == Image.open(io.BytesIO(data)).size
    start = data.index(b"Exif\0\0") - 4
    assert (info["exif"]["start"], info["exif"]["end"]) == (start, start + 2 + 16807 + 8)
    assert resizer.call("pr.jpegComplete(bytes[0])", data) is True
    assert resizer.call("pr.jpegComplete(bytes[0])", data[:-2]) is False
    # a Pillow JPEG (SOI, APP0 JFIF, …) gets the block right after its APP0
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, "JPEG")
    plain = buf.getvalue()
    block = tiff_block("MM", orientation=1)
    out = resizer.call("pr.withExif(bytes[0], bytes[1])", plain, block)
    app0_end = 4 + struct.unpack(">H", plain[4:6])[0]
    assert out[:app0_end] == plain[:app0_end]
    segment = b"\xff\xe1" + struct.pack(">H", len(block) + 8) + b"Exif\0\0"
    assert out[app0_end : app0_end + 10] == segment
    assert out[app0_end + 10 + len(block) :] == plain[app0_end:]
    assert Image.open(io.BytesIO(out)).getexif()[0x010F] == "Cam"
    # a JPEG that has an Exif block already gets ours instead, never two
    again = resizer.call("pr.withExif(bytes[0], bytes[1])", out, tiff_block("II", orientation=1))
    assert again.count(b"Exif\0\0") == 1 and tiff_of(again)[:2] == b"II"
    assert resizer.call("pr.jpegInfo(bytes[0])", b"not a jpeg") is None


# -- the PWA keeps what the server asked for -------------------------------------------------


def test_the_phone_stores_the_downsized_photo_at_the_servers_edge(resizer):
    data = corpus("HMD_Nokia_8.3_5G.jpg")
    script = """async (data) => {
        const store = await import('/app/js/store.js');
        const bytes = [Uint8Array.from(atob(data), (c) => c.charCodeAt(0))];
        const out = {};
        for (const edge of [1024, 0, null]) {
          if (edge === null) await store.delMeta('pwa_config');
          else await store.setMeta('pwa_config', { service_worker: true, max_photo_edge: edge });
          const file = new File([bytes[0]], 'p.jpg', { type: 'image/jpeg' });
          const answer = await store.addPhoto(file, { capturedAt: '2026-11-20T10:31:05+08:00' });
          const info = await store.photoInfo(answer.sha256);
          const kept = new Uint8Array(await (await store.photoBlob(answer.sha256)).arrayBuffer());
          out[String(edge)] = { sha: answer.sha256, size: info.size, original: info.original_size,
                                head: Array.from(kept.subarray(0, 2)) };
        }
        return out;
    }"""
    out = resizer.page.evaluate(script, b64(data))
    small, _ = resizer.shrink(data, 1024)
    assert out["1024"]["sha"] == sha(small) and out["1024"]["size"] == len(small) < len(data)
    assert out["1024"]["original"] == len(data)
    assert out["0"]["sha"] == sha(data) and out["0"]["size"] == len(data)
    default, _ = resizer.shrink(data, 2560)  # before the server's config is read: the default
    assert out["null"]["sha"] == sha(default)


def test_the_app_config_carries_the_setting(app, client):
    assert client.get("/app/config.json").json["max_photo_edge"] == 2560
    app.config["PWA_MAX_PHOTO_EDGE"] = 1600
    assert client.get("/app/config.json").json["max_photo_edge"] == 1600
    app.config["PWA_MAX_PHOTO_EDGE"] = 0
    assert client.get("/app/config.json").json["max_photo_edge"] == 0
