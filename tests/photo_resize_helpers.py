"""client_pwa/js/photo_resize.js in one headless Chromium page, for the photo-size tests.

The page's origin is http://localhost, whose requests Playwright answers from client_pwa/ (no
server, no service worker), so the module runs exactly as the PWA loads it. Bytes cross the
boundary as base64.
"""

import base64
import mimetypes
from contextlib import contextmanager
from pathlib import Path

import pytest
from pwa_helpers import CHROMIUM, launch_chromium

CLIENT = Path(__file__).resolve().parent.parent / "client_pwa"
ORIGIN = "http://localhost"  # a secure context (crypto.subtle); never reached: routed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Resizer:
    def __init__(self, page):
        self.page = page

    def shrink(self, data: bytes, max_edge: int = 2560) -> tuple[bytes, dict]:
        """shrinkPhoto(File of `data`, max_edge): the kept bytes and what it reported."""
        out = self.page.evaluate(
            """async ([data, maxEdge]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const file = new File([bytes], 'photo.jpg', { type: 'image/jpeg' });
                const { blob, ...info } = await window.pr.shrinkPhoto(file, maxEdge);
                const kept = new Uint8Array(await blob.arrayBuffer());
                let s = '';
                for (let i = 0; i < kept.length; i += 0x8000) {
                  s += String.fromCharCode(...kept.subarray(i, i + 0x8000));
                }
                return { ...info, data: btoa(s), same: blob === file };
            }""",
            [b64(data), max_edge],
        )
        return base64.b64decode(out.pop("data")), out

    def call(self, expression: str, *blobs: bytes):
        """Evaluate `expression` with `pr` (the module) and `bytes` (the blobs as Uint8Arrays);
        Uint8Array results come back as bytes."""
        out = self.page.evaluate(
            """async ([expression, blobs]) => {
                const bytes = blobs.map((b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
                const fn = new Function('pr', 'bytes', `return (${expression});`);
                const value = await fn(window.pr, bytes);
                const enc = (v) => {
                  if (v instanceof Uint8Array) return { $bytes: btoa(String.fromCharCode(...v)) };
                  if (v && typeof v === 'object' && !Array.isArray(v)) {
                    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, enc(x)]));
                  }
                  return v === undefined ? null : v;
                };
                return enc(value);
            }""",
            [expression, [b64(b) for b in blobs]],
        )

        def dec(v):
            if isinstance(v, dict) and "$bytes" in v:
                return base64.b64decode(v["$bytes"])
            if isinstance(v, dict):
                return {k: dec(x) for k, x in v.items()}
            return v

        return dec(out)


def _serve(route):
    path = route.request.url[len(ORIGIN) :].split("?")[0]
    if path in ("", "/"):
        return route.fulfill(status=200, content_type="text/html", body="<!doctype html>")
    file = (CLIENT / path.removeprefix("/app/")).resolve()
    if not path.startswith("/app/") or CLIENT not in file.parents or not file.is_file():
        return route.fulfill(status=404, body="")
    kind = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file.name)[0]
    kind = kind or "application/octet-stream"
    return route.fulfill(status=200, content_type=kind, body=file.read_bytes())


@contextmanager
def resizer_page():
    """One browser, one page with the module loaded as `window.pr`."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.route(f"{ORIGIN}/**", _serve)
            page.goto(f"{ORIGIN}/")
            page.evaluate("async () => { window.pr = await import('/app/js/photo_resize.js'); }")
            yield Resizer(page)
        finally:
            browser.close()
