"""Maps (issue 12): the tile settings phones get in /app/config.json, the tile server's origin for
the Content-Security-Policy, and the facility points the desk's maps draw.

Positions are stored in WGS-84; the map's JavaScript (client_pwa/js/map_core.js) converts them to
GCJ-02 itself when MAP_TILE_DATUM says the tiles are GCJ-02. Nothing here fetches tiles: the
browser loads them straight from the tile server the admin configured.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

DATUMS = ("wgs84", "gcj02")


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def client_config(config) -> dict:
    """The map settings as phones and the desk's pages read them."""
    url = str(config.get("MAP_TILE_URL") or "").strip()
    if url and not tile_origin(url):
        url = ""  # not an http(s) template: treat as no tile server rather than break the page
    datum = str(config.get("MAP_TILE_DATUM") or "wgs84").strip().lower()
    return {
        "tile_url": url,
        "subdomains": str(config.get("MAP_TILE_SUBDOMAINS") or "abc"),
        "datum": datum if datum in DATUMS else "wgs84",
        "attribution": str(config.get("MAP_TILE_ATTRIBUTION") or ""),
        "max_zoom": max(1, min(22, _int(config.get("MAP_MAX_ZOOM"), 18))),
        "offline_max_mb": max(0, _int(config.get("MAP_OFFLINE_MAX_MB"), 50)),
    }


def tile_origin(url: str) -> str:
    """The CSP source of a tile URL template: scheme://host[:port], a `{s}` label as `*.`;
    "" for anything that is not a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return ""
    labels = host.split(".")
    if "{" in labels[0] and len(labels) > 2:
        labels[0] = "*"
    host = ".".join(labels)
    if any(c in host for c in "{}; '\"") or "{" in str(port or ""):
        return ""
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def csp_sources(config) -> str:
    """Extra CSP sources for img-src and connect-src: the tile server's origin, or ""."""
    url = str(config.get("MAP_TILE_URL") or "").strip()
    origin = tile_origin(url) if url else ""
    return f" {origin}" if origin else ""


def _valid(lat, lon) -> bool:
    return (
        isinstance(lat, int | float)
        and isinstance(lon, int | float)
        and math.isfinite(lat)
        and math.isfinite(lon)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
        and not (lat == 0 and lon == 0)
    )


def facility_points(facilities: list[dict], *, highlight: str | None = None) -> list[dict]:
    """Facilities with a position as map points (the fields the pin colours and popups use)."""
    out = []
    for f in facilities:
        if not _valid(f.get("lat"), f.get("lon")):
            continue
        fields = {k: v.get("value") for k, v in (f.get("state") or {}).items()}
        point = {
            "id": f["id"],
            "name": f["name"],
            "kind": f["kind"],
            "lat": f["lat"],
            "lon": f["lon"],
            "fields": fields,
        }
        if highlight and f["id"] == highlight:
            point["highlight"] = True
        out.append(point)
    return out


def desk_map(config, facilities: list[dict], *, highlight: str | None = None, extra=()) -> dict:
    """What a desk page's map div carries (as JSON in data-map): settings and points."""
    return {
        "config": client_config(config),
        "points": facility_points(facilities, highlight=highlight) + list(extra),
    }
