"""Photo evidence checks: pure functions of plain data.

``check_submission`` looks at the photos of one submission (an inspection of one facility) and
returns flags, each with the figures and threshold that raised it and a message for the
supervisor in Chinese (and English). ``risk_score`` turns flags into 0..100 for the spot-check
sample. Nothing here reads files, the database or the clock.

Rules (thresholds in ``EvidenceSettings``):

- position: EXIF GPS when present (and not the bogus 0,0), the phone's own fix otherwise; the
  flag says which (``source`` "exif" / "phone"). A missing EXIF position alone is no flag
  (Android strips it); only no position at all is (``no_location``).
- datums: positions are compared in WGS-84. The facility's position is stored in WGS-84 with the
  datum it was declared in (``facility_position["datum"]``, media/datum.py); a phone fix may
  say its datum too (default wgs84). "Far" means further than ``far_metres`` (the margin) plus
  the fix's accuracy plus ``register_uncertainty_metres``. A far distance that falls within
  that threshold once one side is read in another datum (the register's numbers as GCJ-02 or
  BD-09 rather than as declared, or the phone's) is ``coordinate_system_mismatch`` (low
  weight) instead of ``far_from_facility``.
- photo time: EXIF ``taken_at`` when present and parseable, the phone's ``captured_at``
  otherwise (``source`` likewise). Naive times are read in the observation's UTC offset; a
  naive observation time is read as China Standard Time (+08:00).
- a figure exactly at its threshold does not raise a flag; distances are compared in whole
  metres (as shown to the supervisor), times to the second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

from .datum import DATUM_LABELS, DATUMS, from_wgs84, to_wgs84

__all__ = [
    "CODES",
    "OTHER_TOWNSHIP",
    "RELATION_SUMMARY",
    "DEFAULT_EDITOR_MARKERS",
    "DEFAULT_WEIGHTS",
    "EvidenceSettings",
    "Flag",
    "PhotoEvidence",
    "check_submission",
    "haversine_m",
    "is_high_risk",
    "near_flag",
    "reuse_flag",
    "risk_score",
]

# Flag codes in output order (within one photo; submission-wide flags come first).
CODES = (
    "large_clock_skew",
    "no_exif",
    "no_location",
    "far_from_facility",
    "coordinate_system_mismatch",
    "taken_long_before",
    "taken_after",
    "reused_photo",
    "near_duplicate",
    "edited_by_software",
)

DEFAULT_WEIGHTS: Mapping[str, int] = MappingProxyType(
    {
        # Measured rates behind each weight: docs/EVIDENCE.md.
        "reused_photo": 50,  # same bytes as another record: strongest sign of faking
        "far_from_facility": 40,
        # Two-stage (hash, then block correlation): 99.7% of planted copies caught, no distinct
        # pair flagged (bench_evidence.py), as trustworthy as a far photo now.
        "near_duplicate": 40,
        "taken_long_before": 30,
        "edited_by_software": 25,
        # No position anywhere: Android strips EXIF GPS from shared photos and phones with
        # location off give none, so alone it is a question, not a sign of fraud.
        "no_location": 10,
        "taken_after": 15,
        "no_exif": 10,
        "large_clock_skew": 10,
        # A register (or phone) position declared in the wrong datum: a data-entry matter for
        # the office, not a sign the inspector was elsewhere.
        "coordinate_system_mismatch": 5,
    }
)

# Substrings (case-insensitive) of an EXIF Software tag that name a photo editor or beauty app.
# Camera firmware versions ("8.3", "00WW_3_380_SP02", "Ver.1.00") are deliberately not here.
DEFAULT_EDITOR_MARKERS: tuple[str, ...] = (
    "photoshop",
    "lightroom",
    "gimp",
    "snapseed",
    "meitu",
    "美图",
    "picsart",
    "醒图",
    "hypic",
    "picasa",
    "vsco",
    "facetune",
    "photoscape",
    "pixelmator",
    "polarr",
    "美颜",
    "黄油相机",
    "天天p图",
)

CHINA_TZ = timezone(timedelta(hours=8))
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


@dataclass(frozen=True)
class EvidenceSettings:
    """Thresholds for the evidence checks. A figure exactly at a threshold is not flagged.

    far_metres: the margin: a photo position further from the facility than this plus the
        phone fix's accuracy plus register_uncertainty_metres -> far_from_facility.
    register_uncertainty_metres: how far a register's position may be from the facility itself
        (picked on a map, typed from a list).
    taken_before_hours: photo taken more than this before the observation -> taken_long_before.
    taken_after_minutes: photo taken more than this after the observation -> taken_after.
    near_duplicate_distance: perceptual-hash distance at or below this -> near_duplicate.
    skew_minutes: device clock off the server's by more than this -> large_clock_skew
        (same default as the server setting SKEW_FLAG_MINUTES).
    weights: risk points per flag code (each code counts once per submission; must be >= 0).
    high_risk_score: a score at or above this is high risk (always spot-checked).
    editor_markers: Software-tag substrings that mean an editor touched the photo.
    """

    far_metres: float = 200
    register_uncertainty_metres: float = 0
    taken_before_hours: float = 48
    taken_after_minutes: float = 30
    near_duplicate_distance: int = 10
    skew_minutes: float = 30
    weights: Mapping[str, int] = field(default_factory=lambda: DEFAULT_WEIGHTS, hash=False)
    high_risk_score: int = 50
    editor_markers: tuple[str, ...] = DEFAULT_EDITOR_MARKERS

    def __post_init__(self) -> None:
        for name in (
            "far_metres",
            "register_uncertainty_metres",
            "taken_before_hours",
            "taken_after_minutes",
            "near_duplicate_distance",
            "skew_minutes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0 (a flag must never lower the score)")
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(
            self, "editor_markers", tuple(m.casefold() for m in self.editor_markers if m)
        )


@dataclass(frozen=True)
class PhotoEvidence:
    """One photo as the server knows it (EXIF read on the server, the rest from the phone)."""

    sha256: str
    exif_present: bool = False
    exif_error: str | None = None
    exif_lat: float | None = None
    exif_lon: float | None = None
    taken_at: str | None = None  # EXIF DateTimeOriginal as ISO, with offset or naive
    software: str | None = None  # EXIF Software tag
    phone_position: Mapping | None = None  # {"lat", "lon", "accuracy", "datum"?} at capture
    captured_at: str | None = None  # phone's time of capture, ISO with offset


@dataclass(frozen=True)
class Flag:
    code: str
    photo: str | None  # sha256, or None for a submission-wide flag
    figures: dict
    message: dict  # {"zh": ..., "en": ...}


# ---------------------------------------------------------------------------------------------
# Helpers


def _latlon(p) -> tuple[float, float]:
    if isinstance(p, Mapping):
        return float(p["lat"]), float(p["lon"])
    lat, lon = p
    return float(lat), float(lon)


def haversine_m(a, b) -> float:
    """Great-circle distance in metres between two points ({"lat","lon"} or (lat, lon))."""
    lat1, lon1 = _latlon(a)
    lat2, lon2 = _latlon(b)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _valid_point(lat, lon) -> tuple[float, float] | None:
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if lat == 0 and lon == 0:  # "null island": an unset GPS field, never a real fix here
        return None
    return lat, lon


def _position(mapping) -> tuple[float, float] | None:
    if not isinstance(mapping, Mapping):
        return None
    return _valid_point(mapping.get("lat"), mapping.get("lon"))


def _parse_time(value: str | None, default_tz: timezone | None) -> datetime | None:
    """ISO 8601 (or EXIF "YYYY:MM:DD HH:MM:SS"); naive times get ``default_tz``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if len(text) >= 19 and text[4] == ":" and text[7] == ":":
        text = f"{text[:4]}-{text[5:7]}-{text[8:]}"  # EXIF date separators
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        if default_tz is None:
            return None
        dt = dt.replace(tzinfo=default_tz)
    return dt


def _fmt_distance_zh(m: int) -> str:
    return f"{m / 1000:.1f} 公里" if m >= 1000 else f"{m} 米"


def _fmt_distance_en(m: int) -> str:
    return f"{m / 1000:.1f} km" if m >= 1000 else f"{m} m"


def _fmt_hours_zh(h: float) -> str:
    return f"{h / 24:.1f} 天" if h >= 48 else f"{h:.1f} 小时"


def _fmt_hours_en(h: float) -> str:
    return f"{h / 24:.1f} days" if h >= 48 else f"{h:.1f} hours"


_SOURCE_ZH = {"exif": "照片自带 GPS", "phone": "拍照时手机定位"}
_SOURCE_EN = {"exif": "photo GPS", "phone": "phone position at capture"}
_TIME_SOURCE_ZH = {"exif": "照片自带拍摄时间", "phone": "手机记录的拍照时间"}
_TIME_SOURCE_EN = {"exif": "photo EXIF time", "phone": "phone capture time"}


def _num(x: float) -> float | int:
    """Thresholds as given: 200 stays 200, 1.5 stays 1.5."""
    return int(x) if float(x).is_integer() else x


# ---------------------------------------------------------------------------------------------
# Per-photo checks


def _datum(mapping) -> str:
    """The datum a position says it was given in (wgs84 when absent or unknown)."""
    value = mapping.get("datum") if isinstance(mapping, Mapping) else None
    return value if value in DATUMS else "wgs84"


def _family(datum: str) -> str:
    return "wgs84" if datum in ("wgs84", "cgcs2000") else datum


def _reread(point: tuple[float, float], declared: str) -> list[tuple[str, tuple[float, float]]]:
    """A WGS-84 position converted from `declared`, as it would be had its original numbers
    been in each other datum: [(assumed datum, WGS-84 position)]."""
    raw = from_wgs84(point[0], point[1], declared)
    return [
        (assumed, to_wgs84(raw[0], raw[1], assumed))
        for assumed in ("wgs84", "gcj02", "bd09")
        if assumed != _family(declared)
    ]


def _mismatch(
    point: tuple[float, float],
    point_datum: str,
    facility: tuple[float, float],
    facility_datum: str,
    threshold: float,
) -> dict | None:
    """The closest re-reading of either side that brings the distance within the threshold."""
    found = []
    for assumed, moved in _reread(facility, facility_datum):
        found.append((round(haversine_m(point, moved)), "facility", facility_datum, assumed))
    for assumed, moved in _reread(point, point_datum):
        found.append((round(haversine_m(moved, facility)), "photo", point_datum, assumed))
    distance, side, declared, assumed = min(found)
    if distance > threshold:
        return None
    return {"side": side, "declared": declared, "assumed": assumed, "distance_m": distance}


_SIDE_ZH = {"facility": "设施登记坐标", "photo": "照片位置"}
_SIDE_EN = {"facility": "the facility's registered position", "photo": "the photo position"}


def _check_location(
    photo: PhotoEvidence,
    facility: tuple[float, float] | None,
    facility_datum: str,
    s: EvidenceSettings,
) -> list[Flag]:
    point = _valid_point(photo.exif_lat, photo.exif_lon)
    source = "exif"
    point_datum = "wgs84"  # EXIF GPS is WGS-84 by the EXIF standard
    accuracy = None
    if point is None:
        point = _position(photo.phone_position)
        source = "phone"
        if point is not None:
            point_datum = _datum(photo.phone_position)
            point = to_wgs84(point[0], point[1], point_datum)
            acc = photo.phone_position.get("accuracy")  # type: ignore[union-attr]
            if isinstance(acc, int | float) and math.isfinite(acc) and acc >= 0:
                accuracy = round(float(acc), 1)
    if point is None:
        return [
            Flag(
                "no_location",
                photo.sha256,
                {"exif_gps": False, "phone_position": False},
                {
                    "zh": "照片没有位置信息（照片不带 GPS，拍照时手机也没有定位）",
                    "en": "No location: the photo has no GPS and the phone recorded no position",
                },
            )
        ]
    if facility is None:
        return []
    distance = round(haversine_m(point, facility))
    threshold = s.far_metres + (accuracy or 0) + s.register_uncertainty_metres
    if distance <= threshold:
        return []
    figures: dict = {
        "distance_m": distance,
        "threshold_m": _num(round(threshold, 1)),
        "margin_m": _num(s.far_metres),
        "register_uncertainty_m": _num(s.register_uncertainty_metres),
        "source": source,
        "photo_position": {"lat": point[0], "lon": point[1]},
        "facility_position": {"lat": facility[0], "lon": facility[1]},
        "facility_datum": facility_datum,
    }
    if source == "phone":
        figures["photo_datum"] = point_datum
    zh_acc = en_acc = ""
    if source == "phone":
        figures["accuracy_m"] = accuracy
        if accuracy is not None:
            zh_acc = f"，定位精度约 {round(accuracy)} 米"
            en_acc = f", accuracy about {round(accuracy)} m"
    allowed = _num(round(threshold, 1))
    mismatch = _mismatch(point, point_datum, facility, facility_datum, threshold)
    if mismatch is not None:
        figures.update(
            side=mismatch["side"],
            declared_datum=mismatch["declared"],
            assumed_datum=mismatch["assumed"],
            distance_if_assumed_m=mismatch["distance_m"],
        )
        side = mismatch["side"]
        return [
            Flag(
                "coordinate_system_mismatch",
                photo.sha256,
                figures,
                {
                    "zh": f"照片拍摄地点距设施 {_fmt_distance_zh(distance)}，"
                    f"超出允许范围 {allowed} 米"
                    f"（依据{_SOURCE_ZH[source]}{zh_acc}）；但若把{_SIDE_ZH[side]}按"
                    f"{DATUM_LABELS[mismatch['assumed']]}理解（现登记为"
                    f"{DATUM_LABELS[mismatch['declared']]}），距离只有 "
                    f"{_fmt_distance_zh(mismatch['distance_m'])}。多半是坐标系填错，"
                    "不是人不在现场；请核对该坐标的来源"
                    "（高德、腾讯地图为 GCJ-02，百度地图为 BD-09）",
                    "en": f"Photo taken {_fmt_distance_en(distance)} from the facility, beyond the "
                    f"allowed {allowed} m ({_SOURCE_EN[source]}{en_acc}); but read as "
                    f"{mismatch['assumed']} instead of {mismatch['declared']}, {_SIDE_EN[side]} is "
                    f"only {_fmt_distance_en(mismatch['distance_m'])} away: most likely a "
                    "coordinate-system mix-up, not an absent inspector",
                },
            )
        ]
    return [
        Flag(
            "far_from_facility",
            photo.sha256,
            figures,
            {
                "zh": f"照片拍摄地点距设施 {_fmt_distance_zh(distance)}"
                f"（依据{_SOURCE_ZH[source]}{zh_acc}；允许范围 {allowed} 米）",
                "en": f"Photo taken {_fmt_distance_en(distance)} from the facility "
                f"({_SOURCE_EN[source]}{en_acc}; allowed {allowed} m)",
            },
        )
    ]


def _check_time(photo: PhotoEvidence, observed: datetime, s: EvidenceSettings) -> list[Flag]:
    tz = observed.tzinfo
    taken = _parse_time(photo.taken_at, tz)  # type: ignore[arg-type]
    source = "exif"
    if taken is None:
        taken = _parse_time(photo.captured_at, tz)  # type: ignore[arg-type]
        source = "phone"
    if taken is None:
        return []
    delta = observed - taken  # positive: photo before the observation
    common = {
        "source": source,
        "taken_at": taken.isoformat(),
        "observed_at": observed.isoformat(),
    }
    if delta > timedelta(hours=s.taken_before_hours):
        hours = delta.total_seconds() / 3600
        return [
            Flag(
                "taken_long_before",
                photo.sha256,
                {
                    "hours_before": round(hours, 1),
                    "threshold_hours": _num(s.taken_before_hours),
                    **common,
                },
                {
                    "zh": f"照片拍摄于检查前 {_fmt_hours_zh(hours)}"
                    f"（依据{_TIME_SOURCE_ZH[source]}；允许 {_num(s.taken_before_hours)} 小时内）",
                    "en": f"Photo taken {_fmt_hours_en(hours)} before the inspection "
                    f"({_TIME_SOURCE_EN[source]}; allowed {_num(s.taken_before_hours)} h)",
                },
            )
        ]
    if -delta > timedelta(minutes=s.taken_after_minutes):
        minutes = -delta.total_seconds() / 60
        return [
            Flag(
                "taken_after",
                photo.sha256,
                {
                    "minutes_after": round(minutes, 1),
                    "threshold_minutes": _num(s.taken_after_minutes),
                    **common,
                },
                {
                    "zh": f"照片拍摄时间比检查记录晚 {round(minutes)} 分钟"
                    f"（依据{_TIME_SOURCE_ZH[source]}；允许 {_num(s.taken_after_minutes)} 分钟）",
                    "en": f"Photo taken {round(minutes)} minutes after the inspection time "
                    f"({_TIME_SOURCE_EN[source]}; allowed {_num(s.taken_after_minutes)} min)",
                },
            )
        ]
    return []


OTHER_TOWNSHIP = {"zh": "另一乡镇的记录", "en": "a record of another township"}

# What a reuse or near-duplicate flag says before its figures are counted (they change as
# other submissions arrive, so the server counts them when the flag is read).
RELATION_SUMMARY: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "reused_photo": {
            "zh": "同一张照片（内容完全相同）还用在其他记录中",
            "en": "The identical photo is also used in other records",
        },
        "near_duplicate": {
            "zh": "照片与其他设施的照片几乎相同",
            "en": "Photo nearly identical to a photo of another facility",
        },
    }
)


def _hidden_note(hidden: int, visible: Sequence[str]) -> tuple[str, str]:
    """The "(facilities: ...)" note, with records the viewer may not see only counted."""
    zh = "、".join(visible)
    en = ", ".join(visible)
    if hidden:
        zh += f"{'；' if zh else ''}{OTHER_TOWNSHIP['zh']} {hidden} 条"
        en += f"{'; ' if en else ''}{hidden} {OTHER_TOWNSHIP['en']}{'s' if hidden > 1 else ''}"
    return zh, en


def reuse_flag(sha256: str | None, uses: Sequence[Mapping]) -> Flag | None:
    """reused_photo for a photo with these OTHER uses ({"submission_id", "facility_id"}, or
    {"other_township": True} for a use the viewer may not see), or None when there are none."""
    if not uses:
        return None
    hidden = sum(1 for u in uses if u.get("other_township"))
    other = sorted(
        (
            {"submission_id": u.get("submission_id"), "facility_id": u.get("facility_id")}
            for u in uses
            if not u.get("other_township")
        ),
        key=lambda u: (str(u["facility_id"]), str(u["submission_id"])),
    )
    facilities = sorted({str(u["facility_id"]) for u in other if u["facility_id"] is not None})
    figures: dict = {"count": len(uses), "other_uses": other, "facility_ids": facilities}
    if hidden:
        figures["other_township_uses"] = hidden
    zh, en = _hidden_note(hidden, facilities)
    fac_zh = f"（{'设施：' if facilities else ''}{zh}）" if zh else ""
    fac_en = f" ({'facilities: ' if facilities else ''}{en})" if en else ""
    return Flag(
        "reused_photo",
        sha256,
        figures,
        {
            "zh": f"同一张照片（内容完全相同）还用在另外 {len(uses)} 条记录中{fac_zh}",
            "en": f"The identical photo is also used in {len(uses)} other record(s){fac_en}",
        },
    )


def near_flag(sha256: str | None, matches: Sequence[Mapping], threshold: int) -> Flag | None:
    """near_duplicate for a photo with these matches ({"sha256", "facility_id", "distance"},
    or {"other_township": True, "distance"} for one the viewer may not see); matches above the
    threshold or of identical bytes (reused_photo's business) are ignored."""
    close = sorted(
        (
            {
                "sha256": None if m.get("other_township") else m.get("sha256"),
                "facility_id": None if m.get("other_township") else m.get("facility_id"),
                "distance": m["distance"],
                **({"similarity": m["similarity"]} if m.get("similarity") is not None else {}),
                **({"other_township": True} if m.get("other_township") else {}),
            }
            for m in matches
            if m.get("distance") is not None
            and m["distance"] <= threshold
            and (m.get("other_township") or m.get("sha256") != sha256)
        ),
        key=lambda m: (m["distance"], str(m["sha256"]), str(m["facility_id"])),
    )
    if not close:
        return None
    best = close[0]
    hidden = sum(1 for m in close if m.get("other_township"))
    facilities = sorted({str(m["facility_id"]) for m in close if m["facility_id"] is not None})
    zh, en = _hidden_note(hidden, facilities)
    figures = {
        "min_distance": best["distance"],
        "threshold": threshold,
        "matches": close,
        "facility_ids": facilities,
    }
    zh_sim = en_sim = ""
    if best.get("similarity") is not None:  # the second-stage check (media.near_dup)
        figures["similarity"] = best["similarity"]
        zh_sim = f"；逐块比对相似度 {best['similarity']:.2f}，1 为完全一致"
        en_sim = f"; block similarity {best['similarity']:.2f} of 1"
    return Flag(
        "near_duplicate",
        sha256,
        figures,
        {
            "zh": f"照片与其他设施（{zh or '未知'}）的照片几乎相同"
            f"（差异值 {best['distance']}，{threshold} 及以下视为相同{zh_sim}）",
            "en": f"Photo nearly identical to a photo of another facility "
            f"({en or 'unknown'}; distance {best['distance']}, threshold {threshold}{en_sim})",
        },
    )


def _check_reuse(photo: PhotoEvidence, uses: Sequence[Mapping]) -> list[Flag]:
    flag = reuse_flag(photo.sha256, uses)
    return [flag] if flag else []


def _check_near(
    photo: PhotoEvidence, matches: Sequence[Mapping], s: EvidenceSettings
) -> list[Flag]:
    flag = near_flag(photo.sha256, matches, s.near_duplicate_distance)
    return [flag] if flag else []


def _check_software(photo: PhotoEvidence, s: EvidenceSettings) -> list[Flag]:
    if not isinstance(photo.software, str) or not photo.software.strip():
        return []
    folded = photo.software.casefold()
    hit = next((m for m in s.editor_markers if m in folded), None)
    if hit is None:
        return []
    software = photo.software.strip()
    return [
        Flag(
            "edited_by_software",
            photo.sha256,
            {"software": software, "matched": hit},
            {
                "zh": f"照片经过修图软件处理（{software}）",
                "en": f"Photo was processed by editing software ({software})",
            },
        )
    ]


def _check_exif(photo: PhotoEvidence) -> list[Flag]:
    if photo.exif_present:
        return []
    return [
        Flag(
            "no_exif",
            photo.sha256,
            {"exif_error": photo.exif_error},
            {
                "zh": "照片没有拍摄信息（EXIF），可能是截图、转发或处理过的图片",
                "en": "Photo has no EXIF data (maybe a screenshot, forwarded or processed image)",
            },
        )
    ]


# ---------------------------------------------------------------------------------------------
# Submission


def check_submission(
    *,
    photos: Sequence[PhotoEvidence],
    facility_position: Mapping | None,
    observed_at: str,
    device_skew_ms: int | None,
    same_bytes_elsewhere: Mapping[str, Sequence[Mapping]],
    near_duplicates: Mapping[str, Sequence[Mapping]],
    settings: EvidenceSettings | None = None,
) -> list[Flag]:
    """All evidence flags for one submission, in a deterministic order.

    ``facility_position``: {"lat", "lon"} in WGS-84, with "datum" the register declared (default
    wgs84); see the module docstring.

    Order: submission-wide flags first, then each photo in the order given (a photo attached
    twice is checked once), within a photo in ``CODES`` order.
    ``same_bytes_elsewhere``: sha256 -> OTHER uses of the same bytes ({"submission_id",
    "facility_id"}); ``near_duplicates``: sha256 -> other facilities' photos ({"sha256",
    "facility_id", "distance"}), entries above the threshold are ignored.
    ``device_skew_ms``: device clock minus server clock (sync.clock.skew_ms).
    """
    s = settings or EvidenceSettings()
    observed = _parse_time(observed_at, CHINA_TZ)
    if observed is None:
        raise ValueError(f"observed_at is not an ISO time: {observed_at!r}")
    facility = _position(facility_position)
    facility_datum = _datum(facility_position)
    flags: list[Flag] = []

    if device_skew_ms is not None and abs(device_skew_ms) > s.skew_minutes * 60_000:
        minutes = abs(device_skew_ms) / 60_000
        ahead = device_skew_ms > 0
        flags.append(
            Flag(
                "large_clock_skew",
                None,
                {
                    "skew_ms": device_skew_ms,
                    "skew_minutes": round(device_skew_ms / 60_000, 1),
                    "threshold_minutes": _num(s.skew_minutes),
                },
                {
                    "zh": f"手机时间比服务器{'快' if ahead else '慢'} {minutes:.0f} 分钟"
                    f"（允许 {_num(s.skew_minutes)} 分钟），照片和记录时间可能不准",
                    "en": f"Device clock {minutes:.0f} minutes {'ahead of' if ahead else 'behind'}"
                    f" the server (allowed {_num(s.skew_minutes)} min); times may be wrong",
                },
            )
        )

    seen: set[str] = set()
    for photo in photos:
        if photo.sha256 in seen:
            continue
        seen.add(photo.sha256)
        found = [
            *_check_exif(photo),
            *_check_location(photo, facility, facility_datum, s),
            *_check_time(photo, observed, s),
            *_check_reuse(photo, same_bytes_elsewhere.get(photo.sha256, ())),
            *_check_near(photo, near_duplicates.get(photo.sha256, ()), s),
            *_check_software(photo, s),
        ]
        found.sort(key=lambda f: CODES.index(f.code))
        flags.extend(found)
    return flags


def risk_score(flags: Iterable[Flag], settings: EvidenceSettings | None = None) -> int:
    """0..100: the weights of the distinct flag codes present, summed and capped at 100.

    Each code counts once (three far photos are one kind of doubt); weights are >= 0, so adding
    a flag never lowers the score. Unknown codes weigh 0.
    """
    s = settings or EvidenceSettings()
    codes = {f.code for f in flags}
    return min(100, sum(s.weights.get(c, 0) for c in codes))


def is_high_risk(flags: Iterable[Flag], settings: EvidenceSettings | None = None) -> bool:
    s = settings or EvidenceSettings()
    return risk_score(flags, s) >= s.high_risk_score
