"""The stamped display version (media/stamp.py): its text, its size, its band."""

import io
import os

import pytest
from PIL import Image, ImageStat

from media import stamp
from media.stamp import StampFacts, render, render_jpeg, stamp_lines

FACTS = StampFacts(
    facility="云屿村 3 号户厕",
    village="云屿村（桐浦乡）",
    code="K7QF3M2XPA",
    received_at="2026-11-20T02:31:00+00:00",
    inspector="王建华（驻村工作队）",
    captured_at="2026-11-20T10:31:05+08:00",
    captured_source="phone",
    lat=24.7636,
    lon=109.2947,
    accuracy_m=8.4,
    position_source="phone",
)


def test_the_stamp_says_facility_village_times_in_china_time_position_inspector_and_code():
    assert stamp_lines(FACTS) == [
        "云屿村 3 号户厕 · 云屿村（桐浦乡）",
        "拍摄时间：2026-11-20 10:31:05（北京时间，手机时间）",
        "服务器收到：2026-11-20 10:31:00（北京时间）",
        "位置：24.763600°N 109.294700°E ±8 米（来源：手机定位）",
        "检查人：王建华（驻村工作队）",
        "校验码：K7QF-3M2X-PA　乡村巡检可核验",
    ]


def test_exif_position_and_time_and_missing_ones_are_said_so():
    exif = StampFacts(
        facility="站",
        village="村",
        code="0000000000",
        received_at="2026-11-20T16:00:00Z",  # 00:00 the next day in China
        captured_at="2026-11-20T23:59:00",  # no offset: already China time
        captured_source="exif",
        lat=24.5,
        lon=109.25,
        position_source="exif",
    )
    lines = stamp_lines(exif)
    assert lines[1] == "拍摄时间：2026-11-20 23:59:00（北京时间，照片 EXIF）"
    assert lines[2] == "服务器收到：2026-11-21 00:00:00（北京时间）"
    assert lines[3] == "位置：24.500000°N 109.250000°E 精度未知（来源：照片 EXIF）"
    bare = stamp_lines(StampFacts("站", "村", "0000000000", "2026-11-20T16:00:00Z"))
    assert bare[1] == "拍摄时间：未知"
    assert bare[3].startswith("位置：无")
    assert bare[4] == "检查人：—"


def test_the_cjk_font_is_found():
    if not os.path.exists("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"):
        pytest.skip("fonts-noto-cjk is not installed (.ci/run installs it)")
    path, index = stamp.find_font()
    assert path.endswith("NotoSansCJK-Regular.ttc") and index >= 0


def _photo(width=1280, height=960) -> Image.Image:
    img = Image.new("RGB", (width, height), (200, 210, 220))  # a light photo
    for x in range(0, width, 64):
        img.paste((90, 140, 60), (x, 0, x + 32, height))
    return img


@pytest.mark.parametrize("size", [(1280, 960), (720, 1280), (320, 240)])
def test_the_band_is_added_below_the_photo_which_stays_whole(size):
    original = _photo(*size)
    out, font_ok, band = render(original, stamp_lines(FACTS))
    width, height = size
    assert out.size == (width, height + band)
    assert band > 6 * 12  # six lines of at least 12 px
    assert out.crop((0, 0, width, height)).tobytes() == original.tobytes()  # nothing covered
    region = out.crop((0, height, width, height + band))
    assert ImageStat.Stat(region.convert("L")).mean[0] < 80  # a dark band...
    extrema = region.convert("L").getextrema()
    assert extrema[1] > 200  # ...with light text on it
    assert font_ok == (stamp.find_font() is not None)


def test_long_lines_shrink_the_text_to_fit():
    long = FACTS.__class__(**{**FACTS.__dict__, "facility": "很长的设施名称" * 8})
    size_short = stamp.layout(1280, stamp_lines(FACTS))[0]
    size_long = stamp.layout(1280, stamp_lines(long))[0]
    assert size_long < size_short


def test_a_stamped_jpeg_of_a_display_version():
    buf = io.BytesIO()
    _photo().save(buf, "JPEG", quality=85)
    data, _ = render_jpeg(buf.getvalue(), FACTS)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.width == 1280 and img.height > 960
        assert not img.getexif()  # no metadata
        band = img.crop((0, 960, 1280, img.height)).convert("L")
        assert ImageStat.Stat(band).mean[0] < 80
