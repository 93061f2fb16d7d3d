"""EXIF facts of an evidence photo (exifread). Never raises on any input.

Pure function of bytes or a binary file object: no Flask, no SQL. Only the EXIF block is read
(exifread seeks to the APP1/TIFF header and the IFDs it points at; MakerNotes and thumbnails are
skipped with ``details=False, extract_thumbnail=False``).
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, BinaryIO

import exifread

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class ExifFacts:
    present: bool = False  # any EXIF at all
    error: str | None = None  # EXIF was there but could not be (fully) parsed
    lat: float | None = None
    lon: float | None = None
    altitude: float | None = None  # metres; negative below sea level
    taken_at: str | None = None  # ISO 8601, with offset when known
    taken_at_source: str | None = None  # "DateTimeOriginal" | "DateTime" | None
    make: str | None = None
    model: str | None = None
    software: str | None = None
    orientation: int | None = None  # 1..8

    @property
    def has_gps(self) -> bool:
        return self.lat is not None and self.lon is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_facts(data: bytes | BinaryIO, *, default_offset: str | None = None) -> ExifFacts:
    """EXIF facts of a JPEG (or TIFF/PNG/WebP/HEIC that exifread understands).

    ``default_offset`` ("+08:00") is the submitting device's UTC offset, used for the capture time
    when the photo has no OffsetTimeOriginal / OffsetTime.
    """
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            fh: BinaryIO = io.BytesIO(bytes(data))
        else:
            fh = data
        tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
    except Exception as exc:  # exifread on hostile input: struct/index/value/recursion errors
        return ExifFacts(present=True, error=f"{type(exc).__name__}: {exc}"[:300])
    if not tags:
        if _has_exif_marker(fh):
            return ExifFacts(present=True, error="EXIF block present but unreadable")
        return ExifFacts()
    try:
        return _facts(tags, _norm_offset(default_offset))
    except Exception as exc:  # defensive: a tag of an unexpected shape
        return ExifFacts(present=True, error=f"{type(exc).__name__}: {exc}"[:300])


def _has_exif_marker(fh: BinaryIO) -> bool:
    """A JPEG APP1 "Exif" segment among the first 64 kB (exifread found nothing usable in it)."""
    try:
        fh.seek(0)
        head = fh.read(65536)
    except Exception:
        return False
    if not isinstance(head, bytes) or not head.startswith(b"\xff\xd8"):
        return False
    at = head.find(b"\xff\xe1")
    while at != -1:
        if head[at + 4 : at + 10] == b"Exif\x00\x00":
            return True
        at = head.find(b"\xff\xe1", at + 2)
    return False


def _facts(tags: dict[str, Any], default_offset: str | None) -> ExifFacts:
    lat = _coord(tags, "GPS GPSLatitude", "GPS GPSLatitudeRef", "NS", 90.0)
    lon = _coord(tags, "GPS GPSLongitude", "GPS GPSLongitudeRef", "EW", 180.0)
    if lat is None or lon is None:
        lat = lon = None
    taken_at, source = None, None
    original = _datetime(tags, "EXIF DateTimeOriginal")
    if original is not None:
        offset = _norm_offset(_text(tags, "EXIF OffsetTimeOriginal"))
        taken_at, source = _iso(original, offset or default_offset), "DateTimeOriginal"
    else:
        modified = _datetime(tags, "Image DateTime")
        if modified is not None:
            offset = _norm_offset(_text(tags, "EXIF OffsetTime"))
            taken_at, source = _iso(modified, offset or default_offset), "DateTime"
    orientation = _int(tags, "Image Orientation")
    return ExifFacts(
        present=True,
        lat=lat,
        lon=lon,
        altitude=_altitude(tags),
        taken_at=taken_at,
        taken_at_source=source,
        make=_text(tags, "Image Make"),
        model=_text(tags, "Image Model"),
        software=_text(tags, "Image Software"),
        orientation=orientation if orientation is not None and 1 <= orientation <= 8 else None,
    )


def _values(tags: dict[str, Any], name: str) -> list[Any] | None:
    tag = tags.get(name)
    if tag is None:
        return None
    values = getattr(tag, "values", None)
    if isinstance(values, (list, tuple)):
        return list(values)
    if values is None:
        return None
    return [values]


def _text(tags: dict[str, Any], name: str) -> str | None:
    tag = tags.get(name)
    if tag is None:
        return None
    values = getattr(tag, "values", None)
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    if not isinstance(values, str):
        return None
    text = values.replace("\x00", "").strip()
    return text[:200] or None


def _number(value: Any) -> float | None:
    """A finite float from an int / exifread Ratio; None for zero denominators or junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    num = getattr(value, "numerator", None)
    den = getattr(value, "denominator", None)
    if isinstance(num, int) and isinstance(den, int):
        # exifread keeps n/0 as a Ratio whose denominator is 0
        if den == 0:
            return None
        return num / den
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return value
    return None


def _ref(tags: dict[str, Any], name: str) -> str | None:
    text = _text(tags, name)
    return text[:1].upper() if text else None


def _coord(tags: dict[str, Any], name: str, ref_name: str, refs: str, limit: float) -> float | None:
    values = _values(tags, name)
    if not values or len(values) > 3:
        return None
    parts = [_number(v) for v in values]
    if any(p is None or p < 0 for p in parts):
        return None
    parts += [0.0] * (3 - len(parts))
    degrees = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
    if degrees > limit:
        return None
    ref = _ref(tags, ref_name)
    if ref == refs[1]:
        degrees = -degrees
    elif ref not in (refs[0], None):
        return None  # a reference we do not understand: do not guess the hemisphere
    return degrees


def _altitude(tags: dict[str, Any]) -> float | None:
    values = _values(tags, "GPS GPSAltitude")
    if not values:
        return None
    alt = _number(values[0])
    if alt is None or not -20000.0 <= alt <= 100000.0:
        return None
    ref = _values(tags, "GPS GPSAltitudeRef")
    if ref and ref[0] in (1, b"\x01", "1"):
        alt = -abs(alt)
    return alt


def _int(tags: dict[str, Any], name: str) -> int | None:
    values = _values(tags, name)
    if not values or not isinstance(values[0], int) or isinstance(values[0], bool):
        return None
    return values[0]


def _datetime(tags: dict[str, Any], name: str) -> datetime | None:
    text = _text(tags, name)
    if not text:
        return None
    # "YYYY:MM:DD HH:MM:SS"; some writers use "-" or "T"; blanks/zeros mean unknown.
    text = text[:19]
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y:%m:%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _norm_offset(offset: str | None) -> str | None:
    """ "+08:00" / "+0800" / "-03:30" -> "+HH:MM"; anything else -> None."""
    if not offset:
        return None
    m = _OFFSET_RE.match(offset.strip())
    if not m:
        return None
    sign, hh, mm = m.groups()
    if int(hh) > 14 or int(mm) >= 60:
        return None
    return f"{sign}{hh}:{mm}"


def _iso(moment: datetime, offset: str | None) -> str:
    naive = moment.isoformat(timespec="seconds")
    return naive + offset if offset else naive
