"""Serves the progressive web app (client_pwa/): the shell at `/`, its files under `/app/`.

The app is static ES modules with no build step. Two things need the server's help:

- The service worker lives at /app/sw.js but must control the start page `/`, so it is served
  with `Service-Worker-Allowed: /` and registered with scope `/`.
- The browser installs a new worker only when sw.js changes byte for byte, so `/app/sw.js` is
  served with its `__SHELL_VERSION__` placeholder replaced by a digest of every shell file:
  changing any file ships a new version (new cache name) without anyone bumping a number.

Every response revalidates (`no-cache` + ETag): the worker's versioned cache is what keeps the
app working offline, and the HTTP cache must never hold a stale sw.js (browsers cap its
max-age at 24 hours anyway, but a day-old shell after a fix is a day too long).

Real phones (issue 11): `/app/config.json` tells the app the server's switches (the service
worker on or off, the GPS accuracy a form waits for). It is read from the network on every
online load, never from a cache, so `PWA_SERVICE_WORKER = false` reaches every phone the next
time it opens the app online: the page unregisters the worker and deletes its caches. Browsers
also re-fetch /app/sw.js on their own; while the switch is off that is a worker that removes
itself, for phones whose page never gets to run.
"""

import hashlib
import mimetypes
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, request

from . import maps

ROOT = Path(__file__).resolve().parent.parent / "client_pwa"
SHELL_SUFFIXES = (".html", ".js", ".css", ".webmanifest", ".png", ".json")

bp = Blueprint("pwa", __name__)

_version_cache: dict = {}


def shell_files(root: Path = ROOT) -> list[Path]:
    """The files the app shell is made of (what the service worker may precache)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in SHELL_SUFFIXES and p.name != "sw.js"
    )


def shell_version(root: Path = ROOT) -> str:
    """A short digest of every shell file's path and bytes; cached until a file changes."""
    files = shell_files(root)
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    if _version_cache.get("key") != key:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.relative_to(root).as_posix().encode() + b"\0")
            digest.update(p.read_bytes() + b"\0")
        _version_cache.update(key=key, version=digest.hexdigest()[:12])
    return _version_cache["version"]


def _no_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-cache"
    return response


def _shell_response(path: Path, mimetype: str | None = None) -> Response:
    """A shell file, read whole (the largest is Leaflet's 450 kB module) with an ETag and a
    304 for a fresh copy: no file handle outlives the request, even when a browser drops a
    service worker's precache fetch half-way."""
    response = Response(path.read_bytes(), mimetype=mimetype or mimetypes.guess_type(path.name)[0])
    response.add_etag()
    return _no_cache(response.make_conditional(request))


@bp.get("/")
def index():
    """The app's start page (the manifest's start_url)."""
    return _shell_response(ROOT / "index.html", "text/html")


@bp.get("/app/")
def app_root():
    return redirect("/", code=302)


#: Served as /app/sw.js while PWA_SERVICE_WORKER is off: a worker that deletes the app's caches
#: and unregisters itself (a browser checking for an update installs it at once).
REMOVE_WORKER = """// PWA_SERVICE_WORKER is off: remove the app's caches and this worker.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    const ours = names.filter((n) => n.startsWith('villagecheck-shell-'));
    await Promise.all(ours.map((n) => caches.delete(n)));
    await self.registration.unregister();
  })());
});
"""

_OFF = {"off", "false", "0", "no", ""}


def service_worker_enabled(config=None) -> bool:
    """PWA_SERVICE_WORKER as a flag: False, 0, or the strings off/false/0/no turn it off."""
    value = (config if config is not None else current_app.config).get("PWA_SERVICE_WORKER", True)
    if isinstance(value, str):
        return value.strip().lower() not in _OFF
    return bool(value)


def client_config() -> dict:
    """What the app needs from the server before it registers its worker or opens a form."""
    config = current_app.config
    return {
        "service_worker": service_worker_enabled(config),
        "gps_good_metres": int(config.get("PWA_GPS_GOOD_METRES", 50)),
        "max_photo_edge": max(0, int(config.get("PWA_MAX_PHOTO_EDGE") or 0)),
        "map": maps.client_config(config),  # the map's tiles (issue 12)
    }


@bp.get("/app/sw.js")
def service_worker():
    """The worker, stamped with the shell version, allowed to control the whole origin."""
    if service_worker_enabled():
        text = (ROOT / "sw.js").read_text(encoding="utf-8")
        body = text.replace("__SHELL_VERSION__", shell_version())
    else:
        body = REMOVE_WORKER
    response = Response(body, mimetype="text/javascript")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return response


@bp.get("/app/<path:filename>")
def static_file(filename: str):
    """A shell file (scripts, styles, icons, the manifest, vendored libraries), or the app's
    settings from the server at config.json (answered here, not by a route of its own, so the
    public surface stays /app/<path>)."""
    if filename == "config.json":
        response = jsonify(client_config())
        response.headers["Cache-Control"] = "no-store"
        return response
    path = (ROOT / filename).resolve()
    if ROOT not in path.parents or not path.is_file() or path.name.startswith("."):
        abort(404)
    mimetype = None
    if path.suffix == ".webmanifest":
        mimetype = "application/manifest+json"
    elif path.suffix == ".js":
        mimetype = "text/javascript"
    return _shell_response(path, mimetype)
