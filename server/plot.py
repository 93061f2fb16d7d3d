"""The small position plot on a submission page, as inline SVG text (pure: no I/O).

No map tiles offline: the points are drawn on a local flat projection (metres east and north
of the reference point), which is exact enough for the few hundred metres that matter here. A
scale bar with a round length (1, 2 or 5 × 10ⁿ m) tells the supervisor how far apart they are;
each point is joined to the reference (the facility's registered position) with its distance.

Datums: every stored position is WGS-84 (media/datum.py), and this plot draws on no base layer,
so nothing is converted here. A map that draws these points onto AMap/Tencent tiles (GCJ-02) or
Baidu's (BD-09) must convert each point first with `media.datum.from_wgs84(lat, lon, "gcj02")`,
or they land 300-600 m off; 天地图 (CGCS2000) and OpenStreetMap tiles need no conversion.
"""

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

EARTH_RADIUS_M = 6_371_008.8
STYLES = {
    # kind: (fill, stroke, shape)
    "facility": ("#1f7a4d", "#0f3d26", "square"),
    "exif": ("#b3261e", "#5c130f", "circle"),
    "phone": ("#1565c0", "#0b3260", "diamond"),
}
MIN_SPAN_M = 20.0  # the plot never zooms in closer than this, so one point is not a blur
MIN_LABELLED_LINE_PX = 30  # shorter lines get no distance label (it would cover the markers)


@dataclass(frozen=True)
class Point:
    kind: str  # "facility" (the reference), "exif" or "phone"
    lat: float
    lon: float
    label: str = ""
    accuracy_m: float | None = None  # drawn as a faint circle around the point


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between (lat, lon) points."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def valid(lat, lon) -> bool:
    """A usable position: finite, in range, and not the (0, 0) of an unset GPS field."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return False
    return (
        math.isfinite(lat)
        and math.isfinite(lon)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
        and not (lat == 0 and lon == 0)
    )


def nice_length(target_m: float) -> float:
    """The largest 1, 2 or 5 × 10ⁿ metres not above `target_m` (at least 1 m)."""
    if target_m < 1:
        return 1.0
    exponent = math.floor(math.log10(target_m))
    best = 1.0
    for step in (1, 2, 5, 10):
        value = step * 10**exponent
        if value <= target_m:
            best = float(value)
    return best


def format_m(metres: float) -> str:
    """ "35 米", "1.2 公里" — as the supervisor reads distances elsewhere on the page."""
    if metres >= 1000:
        return f"{metres / 1000:.1f} 公里".replace(".0 公里", " 公里")
    return f"{round(metres)} 米"


def _project(point: Point, origin: Point) -> tuple[float, float]:
    """Metres east and north of `origin` (equirectangular around it)."""
    k = math.pi / 180 * EARTH_RADIUS_M
    east = (point.lon - origin.lon) * k * math.cos(math.radians(origin.lat))
    north = (point.lat - origin.lat) * k
    return east, north


def _marker(kind: str, x: float, y: float) -> str:
    fill, stroke, shape = STYLES.get(kind, ("#555", "#222", "circle"))
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"'
    if shape == "square":
        return (
            f'<rect x="{x - 7:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="none"'
            f' stroke="{fill}" stroke-width="3"/>'
        )
    if shape == "diamond":
        pts = f"{x:.1f},{y - 7:.1f} {x + 7:.1f},{y:.1f} {x:.1f},{y + 7:.1f} {x - 7:.1f},{y:.1f}"
        return f'<polygon points="{pts}" {paint}/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" {paint}/>'


def position_plot(
    points: list[Point], *, width: int = 320, height: int = 220, title: str = "位置示意图"
) -> str:
    """SVG text of the points around the first "facility" point (or the first point).

    Invalid positions are left out. With no usable point the SVG says so.
    """
    usable = [p for p in points if valid(p.lat, p.lon)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#fbfbf8"'
        ' stroke="#d9d9d9"/>'
    )
    if not usable:
        return (
            head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13"'
            ' fill="#666">没有可用的位置信息</text></svg>'
        )
    origin = next((p for p in usable if p.kind == "facility"), usable[0])
    xy = [_project(p, origin) for p in usable]
    margin, top, bottom = 28, 24, 34  # the scale bar lives in the bottom band
    inner_w, inner_h = width - 2 * margin, height - top - bottom
    span_x = max(abs(e) for e, _ in xy) * 2
    span_y = max(abs(n) for _, n in xy) * 2
    span = max(span_x / inner_w, span_y / inner_h, MIN_SPAN_M / min(inner_w, inner_h))
    scale = 1 / span  # px per metre
    cx, cy = width / 2, top + inner_h / 2

    def to_px(e: float, n: float) -> tuple[float, float]:
        return cx + e * scale, cy - n * scale

    parts = [head]
    ox, oy = to_px(0, 0)
    for p, (e, n) in zip(usable, xy, strict=True):
        if p.accuracy_m and p.accuracy_m > 0:
            fill, _, _ = STYLES.get(p.kind, ("#555", "", ""))
            x, y = to_px(e, n)
            r = min(p.accuracy_m * scale, width)
            parts.append(
                f'<circle class="accuracy" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}"'
                f' fill-opacity="0.12" stroke="{fill}" stroke-opacity="0.4"'
                ' stroke-dasharray="3 2"/>'
            )
    for p, (e, n) in zip(usable, xy, strict=True):
        if p is origin:
            continue
        x, y = to_px(e, n)
        if math.hypot(x - ox, y - oy) < MIN_LABELLED_LINE_PX:
            continue  # too close to draw a line and its label apart; the table has the figure
        metres = distance_m((origin.lat, origin.lon), (p.lat, p.lon))
        parts.append(
            f'<line x1="{ox:.1f}" y1="{oy:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#888"'
            ' stroke-width="1" stroke-dasharray="4 3"/>'
        )
        mx, my = (ox + x) / 2, (oy + y) / 2
        parts.append(
            f'<text class="distance" x="{mx:.1f}" y="{my - 4:.1f}" text-anchor="middle"'
            f' font-size="11" fill="#333" paint-order="stroke" stroke="#fbfbf8"'
            f' stroke-width="3">{escape(format_m(metres))}</text>'
        )
    # The reference is drawn last, as an open square, so points on top of it stay visible.
    placed: list[tuple[float, float]] = []
    for p, (e, n) in sorted(zip(usable, xy, strict=True), key=lambda item: item[0] is origin):
        x, y = to_px(e, n)
        parts.append(f'<g class="point {escape(p.kind)}">{_marker(p.kind, x, y)}')
        if p.label:
            anchor, dx = ("end", -10) if x > width * 0.6 else ("start", 10)
            ly = y + 4
            while any(abs(lx - x) < 40 and abs(py - ly) < 13 for lx, py in placed):
                ly += 13  # points on top of each other: stack their labels
            placed.append((x, ly))
            parts.append(
                f'<text x="{x + dx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" font-size="11"'
                f' fill="#1b1b1b" paint-order="stroke" stroke="#fbfbf8" stroke-width="3">'
                f"{escape(p.label)}</text>"
            )
        parts.append("</g>")
    bar_m = nice_length(inner_w * 0.4 / scale)
    bar_px = bar_m * scale
    bx, by = margin, height - 14
    parts.append(
        f'<g class="scale"><path d="M{bx:.1f},{by - 5:.1f} V{by:.1f} H{bx + bar_px:.1f}'
        f' V{by - 5:.1f}" fill="none" stroke="#1b1b1b" stroke-width="1.5"/>'
        f'<text x="{bx + bar_px + 6:.1f}" y="{by:.1f}" font-size="11" fill="#1b1b1b">'
        f"{escape(format_m(bar_m))}</text></g>"
    )
    nx, ny = width - 16, 20
    parts.append(
        f'<g class="north"><path d="M{nx},{ny - 10} L{nx + 5},{ny + 2} L{nx},{ny - 1}'
        f' L{nx - 5},{ny + 2} Z" fill="#1b1b1b"/>'
        f'<text x="{nx}" y="{ny + 14}" text-anchor="middle" font-size="10">北</text></g>'
    )
    parts.append("</svg>")
    return "".join(parts)
