"""The stamped display version of an evidence photo, in the style of a 水印相机 but checkable.

Pure functions of facts and image bytes (Pillow ImageDraw): no Flask, no SQL. A dark band is
added below the photo (the photo itself is not covered: every pixel of the evidence stays
visible) with the facility and village, the capture time and the time the server received it
(both in China time, UTC+8), the position with its accuracy and its source (the photo's EXIF
GPS or the phone's own fix), the inspector, and the server's verification code
(media/stamp_code.py), which anyone holding the picture can have checked at /desk/verify.

`stamp_lines` composes the text (tested directly); `render` draws it. Text is drawn with Noto
Sans CJK (Debian's fonts-noto-cjk, which .ci/run installs). Without it the text falls back to
Pillow's built-in font, in which Chinese shows as boxes: `render` says so (`font_ok` False) and
logs it, and the server does not keep such a picture.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import Image, ImageDraw, ImageFont

from .images import encode_jpeg
from .stamp_code import display

log = logging.getLogger("villagecheck.stamp")

CHINA = timezone(timedelta(hours=8))
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian, Ubuntu
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora, Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
)
BAND_COLOUR = (24, 26, 30)
TEXT_COLOUR = (245, 245, 245)
ACCENT_COLOUR = (255, 196, 0)  # the title and the code, as watermark cameras do
SOURCE_NAMES = {"exif": "照片 EXIF", "phone": "手机定位"}
TIME_SOURCE_NAMES = {"phone": "手机时间", "exif": "照片 EXIF"}


@dataclass(frozen=True)
class StampFacts:
    facility: str
    village: str
    code: str  # canonical, as stored
    received_at: str  # ISO 8601, server time
    inspector: str = ""
    captured_at: str | None = None  # ISO 8601
    captured_source: str | None = None  # "phone" | "exif"
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    position_source: str | None = None  # "exif" | "phone"


def china_time(value: str | None) -> str | None:
    """An ISO time as "2026-11-20 10:35:12" in China time (a time without offset is taken to
    be China time already, as the desk does); None if it cannot be read."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CHINA)
    return parsed.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _coordinate(value: float, positive: str, negative: str) -> str:
    return f"{abs(value):.6f}°{positive if value >= 0 else negative}"


def position_text(facts: StampFacts) -> str:
    if facts.lat is None or facts.lon is None:
        return "无（照片不带 GPS，拍照时手机也没有定位）"
    text = f"{_coordinate(facts.lat, 'N', 'S')} {_coordinate(facts.lon, 'E', 'W')}"
    if isinstance(facts.accuracy_m, int | float) and math.isfinite(facts.accuracy_m):
        text += f" ±{round(facts.accuracy_m)} 米"
    else:
        text += " 精度未知"
    source = SOURCE_NAMES.get(facts.position_source or "")
    return f"{text}（来源：{source}）" if source else text


def stamp_lines(facts: StampFacts) -> list[str]:
    """The text of the stamp, one line each; the first is the title, the last the code."""
    captured = china_time(facts.captured_at)
    if captured:
        source = TIME_SOURCE_NAMES.get(facts.captured_source or "")
        captured += f"（北京时间，{source}）" if source else "（北京时间）"
    received = china_time(facts.received_at) or facts.received_at
    return [
        f"{facts.facility} · {facts.village}",
        f"拍摄时间：{captured or '未知'}",
        f"服务器收到：{received}（北京时间）",
        f"位置：{position_text(facts)}",
        f"检查人：{facts.inspector or '—'}",
        f"校验码：{display(facts.code)}　乡村巡检可核验",
    ]


def find_font() -> tuple[str, int] | None:
    """(path, face index) of Noto Sans CJK SC, or None when the fonts are not installed."""
    paths = [p for p in FONT_CANDIDATES if _exists(p)]
    if not paths and shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", "Noto Sans CJK SC"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if "CJK" in found and _exists(found):
            paths.append(found)
    for path in paths:
        for index in range(10):
            try:
                family = ImageFont.truetype(path, 12, index=index).getname()[0]
            except OSError:
                break
            if "CJK SC" in family:
                return path, index
        return path, 0
    return None


def _exists(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _font_file() -> tuple[str, int] | None:
    found = find_font()
    if found is None:
        log.warning(
            "fonts-noto-cjk is not installed: stamped photos would show Chinese as boxes"
            " (apt-get install fonts-noto-cjk)"
        )
    return found


@functools.lru_cache(maxsize=16)
def _font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    found = _font_file()
    if found is None:
        return ImageFont.load_default(size), False
    return ImageFont.truetype(found[0], size, index=found[1]), True


def layout(width: int, lines: list[str]) -> tuple[int, int, int]:
    """(font size, line height, band height) so the longest line fits the width."""
    size = max(12, width // 42)
    margin = max(8, width // 40)
    while size > 12:
        font, _ = _font(size)
        title, _ = _font(round(size * 1.2))
        widest = max([title.getlength(lines[0])] + [font.getlength(line) for line in lines[1:]])
        if widest <= width - 2 * margin - size // 2:
            break
        size -= 1
    line_height = round(size * 1.45)
    band = 2 * margin + round(size * 1.2 * 1.45) + line_height * (len(lines) - 1)
    return size, line_height, band


def render(image: Image.Image, lines: list[str]) -> tuple[Image.Image, bool, int]:
    """(the photo with the stamp band added below it, whether the CJK font was used, the band's
    height in pixels)."""
    image = image.convert("RGB")
    width, height = image.size
    size, line_height, band = layout(width, lines)
    margin = max(8, width // 40)
    out = Image.new("RGB", (width, height + band), BAND_COLOUR)
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    font, font_ok = _font(size)
    title, _ = _font(round(size * 1.2))
    bar = max(3, size // 5)
    draw.rectangle(
        [margin, height + margin, margin + bar - 1, height + band - margin], fill=ACCENT_COLOUR
    )
    x = margin + bar + size // 2
    y = height + margin
    for number, line in enumerate(lines):
        first, last = number == 0, number == len(lines) - 1
        draw.text(
            (x, y),
            line,
            font=title if first else font,
            fill=ACCENT_COLOUR if first or last else TEXT_COLOUR,
        )
        y += round(size * 1.2 * 1.45) if first else line_height
    return out, font_ok, band


def render_jpeg(display_jpeg: bytes, facts: StampFacts) -> tuple[bytes, bool]:
    """The stamped JPEG of a display version (already oriented, no metadata), and whether it
    was drawn with the CJK font."""
    with Image.open(io.BytesIO(display_jpeg)) as source:
        stamped, font_ok, _ = render(source, stamp_lines(facts))
    return encode_jpeg(stamped, 85), font_ok
