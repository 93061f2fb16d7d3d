"""Geodetic datums of the positions we store, and conversions between them. Pure functions.

What a position's numbers mean depends on where they came from:

- ``wgs84``: GPS, phones' browser geolocation, photos' EXIF GPS. What we store.
- ``cgcs2000``: 天地图 and official surveys. Within centimetres of WGS-84, so for our purposes it
  *is* WGS-84 (no conversion; the datum is still recorded).
- ``gcj02``: the obfuscated "Mars" coordinates every map published in China must use (AMap/高德,
  Tencent/腾讯, Google's China tiles). 300-600 m off WGS-84, in a direction that varies.
- ``bd09``: Baidu's own offset on top of GCJ-02.

Positions are stored in WGS-84 with the datum they were declared in (``to_wgs84``); a map that
draws onto a GCJ-02 base layer converts back (``from_wgs84``).

GCJ-02 has no closed-form inverse: ``gcj02_to_wgs84`` iterates the forward transform until it
reproduces the given point to about 1e-9 degrees (millimetres), far inside the 0.5 m required.
Outside China's bounding box (``out_of_china``) GCJ-02 is WGS-84 unchanged, as every published
implementation does; the box's edges count as inside. Within an offset's width (about 1 km) of
the box's edges the forward transform is not one-to-one, so no inverse can undo it there; the
edges lie well outside China's land (72.0 E vs the westmost 73.5 E, 137.8 E vs 134.8 E, 0.83 N
vs 3.9 N, 55.8 N vs 53.6 N), so no real position is affected.

The formulas are the published GCJ-02 and BD-09 ones (Krasovsky ellipsoid constants); this is
our own code, tested against published implementations' test vectors in tests/test_datum.py.
"""

from __future__ import annotations

import math

__all__ = [
    "DATUMS",
    "DATUM_ALIASES",
    "DATUM_LABELS",
    "SOURCES",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "normalise_datum",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

#: The datums a stored position may have been declared in.
DATUMS = ("wgs84", "cgcs2000", "gcj02", "bd09")
#: Where a stored position came from.
SOURCES = ("browser", "exif", "map_pick", "register_import")

DATUM_LABELS = {
    "wgs84": "WGS-84（GPS、手机定位）",
    "cgcs2000": "CGCS2000（天地图）",
    "gcj02": "GCJ-02（高德、腾讯地图）",
    "bd09": "BD-09（百度地图）",
}

#: Spellings accepted in imports (compared after NFKC, lower case, no spaces/-/_).
DATUM_ALIASES: dict[str, str] = {
    "wgs84": "wgs84",
    "wgs": "wgs84",
    "gps": "wgs84",
    "epsg4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "cgcs": "cgcs2000",
    "天地图": "cgcs2000",
    "国家2000": "cgcs2000",
    "2000国家大地坐标系": "cgcs2000",
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "火星坐标": "gcj02",
    "火星坐标系": "gcj02",
    "国测局坐标": "gcj02",
    "高德": "gcj02",
    "高德地图": "gcj02",
    "腾讯": "gcj02",
    "腾讯地图": "gcj02",
    "amap": "gcj02",
    "bd09": "bd09",
    "bd09ll": "bd09",
    "百度": "bd09",
    "百度地图": "bd09",
    "百度坐标": "bd09",
    "baidu": "bd09",
}

# Krasovsky 1940 ellipsoid, as the GCJ-02 formulas use it.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

# China's bounding box for the out-of-China rule (edges inside).
LON_MIN, LON_MAX = 72.004, 137.8347
LAT_MIN, LAT_MAX = 0.8293, 55.8271


def normalise_datum(value) -> str | None:
    """The datum a user's spelling names ("GCJ-02", "高德", "WGS 84"), or None if unknown."""
    import unicodedata

    if not isinstance(value, str):
        return None
    key = unicodedata.normalize("NFKC", value).strip().lower()
    for ch in " -_\u3000":
        key = key.replace(ch, "")
    return DATUM_ALIASES.get(key)


def out_of_china(lat: float, lon: float) -> bool:
    """True outside China's bounding box, where GCJ-02 and BD-09's GCJ step are the identity."""
    return not (LON_MIN <= lon <= LON_MAX and LAT_MIN <= lat <= LAT_MAX)


def _offset(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 minus WGS-84 (degrees of latitude, longitude) at a WGS-84 point, no box test."""
    x, y = lon - 105.0, lat - 35.0
    wave = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    d_lat += wave
    d_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    d_lat += (
        (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    d_lon += wave
    d_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    d_lon += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad) ** 2
    root = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * root) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / root * math.cos(rad) * math.pi)
    return d_lat, d_lon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in WGS-84 -> GCJ-02 (unchanged outside China)."""
    if out_of_china(lat, lon):
        return lat, lon
    d_lat, d_lon = _offset(lat, lon)
    return lat + d_lat, lon + d_lon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in GCJ-02 -> WGS-84, iterated until the forward transform gives the point
    back to 1e-9 degrees (at most 30 rounds; each gains about two digits). Unchanged outside
    China (the box test is on the given point, as published implementations do)."""
    if out_of_china(lat, lon):
        return lat, lon
    w_lat, w_lon = lat, lon
    for _ in range(30):
        d_lat, d_lon = _offset(w_lat, w_lon)
        e_lat, e_lon = w_lat + d_lat - lat, w_lon + d_lon - lon
        if abs(e_lat) < 1e-9 and abs(e_lon) < 1e-9:
            break
        w_lat, w_lon = w_lat - e_lat, w_lon - e_lon
    return w_lat, w_lon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in GCJ-02 -> BD-09."""
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in BD-09 -> GCJ-02 (Baidu's published inverse; centimetres)."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.sin(theta), z * math.cos(theta)


def bd09_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 -> GCJ-02 -> WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


def wgs84_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 -> GCJ-02 -> BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))


def to_wgs84(lat: float, lon: float, datum: str) -> tuple[float, float]:
    """A position declared in `datum` (one of DATUMS) as WGS-84."""
    if datum in ("wgs84", "cgcs2000"):
        return float(lat), float(lon)
    if datum == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if datum == "bd09":
        return bd09_to_wgs84(lat, lon)
    raise ValueError(f"unknown datum {datum!r}")


def from_wgs84(lat: float, lon: float, datum: str) -> tuple[float, float]:
    """A WGS-84 position in `datum`, e.g. to draw it on an AMap (GCJ-02) or Baidu base layer."""
    if datum in ("wgs84", "cgcs2000"):
        return float(lat), float(lon)
    if datum == "gcj02":
        return wgs84_to_gcj02(lat, lon)
    if datum == "bd09":
        return wgs84_to_bd09(lat, lon)
    raise ValueError(f"unknown datum {datum!r}")
