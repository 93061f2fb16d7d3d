"""Helpers for the browser tests: the PWA and the desk in real headless Chromium, live server.

`LiveServer` serves `create_app(...)` with werkzeug's `make_server` in a thread on a free port;
`launch_chromium` starts Debian's Chromium (tests marked `needs_chromium` skip without it);
`new_phone` is one browser context (its own IndexedDB, service worker and caches) at 360×740.
"""

import hashlib
import io
import json
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from server import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORT = {"width": 360, "height": 740}
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"
)
# 云屿村: where the demo inspector and the first secretary both work.
YUNYU_POSITION = {"latitude": 24.76362, "longitude": 109.29476, "accuracy": 8}


def launch_chromium(playwright):
    """Debian's Chromium, headless, with the flags every browser test uses."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_app(tmp: Path, demo_db: Path):
    """A server on a copy of the demo database, with the PWA served."""
    shutil.copy(demo_db, tmp / "vc.db")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE": str(tmp / "vc.db"),
            "MEDIA_ROOT": str(tmp / "media"),
            "SECRET_KEY": "test",
            # these tests follow originals byte for byte; tests/test_photo_resize*.py downsize
            "PWA_MAX_PHOTO_EDGE": 0,
        }
    )
    return app


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    """The app on 127.0.0.1 on a free port, in a daemon thread, with an ingest worker."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        from server import ingest_worker

        self.workers = ingest_worker.start(self.app, 1)  # photos are processed as `serve` does
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.workers.shutdown()
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()

    def api(self, method: str, path: str, body=None, token=None):
        """Call the API as another client would (a supervisor's laptop): (status, json)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def token(self, username: str, password: str) -> str:
        status, body = self.api(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        assert status == 200, body
        return body["token"]


def new_phone(browser, server: LiveServer, *, position=YUNYU_POSITION):
    """A fresh phone: a browser context at 360×740 in China's time zone, allowed to locate."""
    context = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    context.grant_permissions(["geolocation", "background-sync"], origin=server.url)
    if position:
        context.set_geolocation(position)
    return context


def open_app(context, server: LiveServer, path: str = "/"):
    """A page with the app opened at `path` (a #/route), once app.js has booted."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url + path)
    page.wait_for_selector("html[data-ready='1']", timeout=15000)
    return page


def logged_in_phone(browser, server: LiveServer, username: str, password: str):
    """A fresh phone with the app open and `username` logged in: (context, page)."""
    context = new_phone(browser, server)
    page = open_app(context, server)
    log_in(page, username, password)
    return context, page


def log_in(page, username: str, password: str):
    """Log in through the form and wait for the first sync (the villages list)."""
    page.wait_for_selector("#username")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("main a.row", timeout=20000)
    wait_sync_idle(page)


def wait_service_worker(page):
    """Until the worker is active with its shell cached (after that the app opens offline)."""
    page.wait_for_function(
        """async () => {
            const reg = await navigator.serviceWorker.getRegistration('/');
            if (!reg || !reg.active || reg.active.state !== 'activated') return false;
            const names = await caches.keys();
            return names.some((n) => n.startsWith('villagecheck-shell-'));
        }""",
        timeout=20000,
    )


def wait_sync_idle(page, timeout=30000):
    page.wait_for_function(
        "() => window.villagecheck && !window.villagecheck.sync.progress().running", timeout=timeout
    )


def choose(page, field: str, value: str):
    """Tap a choice of a select_one / yes_no field."""
    page.click(f"[data-field={field}] .choice[data-value='{value}']")


def shot(page, name: str):
    """A 360×740 screenshot in tests/artifacts/ (after two frames, so scrolling has settled)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def jpeg(tmp_path: Path, name: str, colour) -> str:
    """A small JPEG of one colour, written for a file chooser (each photo its own bytes)."""
    from PIL import Image

    path = tmp_path / f"{name}.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return str(path)


def go(page, route: str, selector: str):
    """Open a screen of the app by its hash route and wait for it."""
    page.evaluate(f"() => {{ location.hash = '#{route}'; }}")
    page.wait_for_selector(selector)
