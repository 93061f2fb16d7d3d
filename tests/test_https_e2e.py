"""The PWA over HTTPS on a name that is not localhost, under gunicorn (issue 10).

`villagecheck serve --workers 2 --certfile --keyfile` runs as a real subprocess with a
self-signed certificate the test makes for villagecheck.test. Headless Chromium maps that name
to 127.0.0.1 (--host-resolver-rules) and trusts exactly that certificate's key
(--ignore-certificate-errors-spki-list), so the origin is a secure context as a phone would see
it. The test proves the service worker installs and controls the page, a position is obtained,
and the app opens again offline from the service worker's cache.
"""

from types import SimpleNamespace

import pytest
from live_serve import Serve
from pwa_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    log_in,
    new_phone,
    open_app,
    shot,
    wait_service_worker,
)
from tls_helpers import self_signed

HOST = "villagecheck.test"
# Somewhere in 桐浦乡, not the position other browser tests use.
POSITION = {"latitude": 24.74051, "longitude": 109.30772, "accuracy": 6}


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("https")
    cert, key, spki = self_signed(folder, HOST)
    args = ("--demo", "--workers", "2", "--certfile", str(cert), "--keyfile", str(key))
    with Serve(folder, *args) as live:
        yield SimpleNamespace(live=live, url=f"https://{HOST}:{live.port}", spki=spki)


@pytest.fixture(scope="module")
def browser(https_server):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    args = [
        *CHROMIUM_ARGS,
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={https_server.spki}",
    ]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        yield b
        b.close()


def test_the_pwa_installs_locates_and_reopens_offline_over_https(browser, https_server):
    assert len(https_server.live.workers()) == 2
    context = new_phone(browser, https_server, position=POSITION)
    try:
        page = open_app(context, https_server)
        where = page.evaluate("() => [location.protocol, location.host, window.isSecureContext]")
        assert where == ["https:", f"{HOST}:{https_server.live.port}", True]
        log_in(page, "inspector", "Field-Team1-2026")
        wait_service_worker(page)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10000)
        scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
        assert scope == https_server.url + "/"

        # A position: the registration screen asks for it and shows it.
        page.click("main a.row:has-text('云屿村')")
        page.click(".actions a.btn.primary")
        page.click("button.choice[data-kind=zone]")
        page.wait_for_selector("text=纬度 24.740510，经度 109.307720", timeout=15000)
        shot(page, "https-position")

        # Offline: the reload is answered by the service worker, the data by IndexedDB.
        context.set_offline(True)
        page.reload()
        page.wait_for_selector("html[data-ready='1']", timeout=15000)
        page.wait_for_selector("button.choice[data-kind=zone]")  # the same screen again
        page.goto(https_server.url + "/")  # and the app's start page
        page.wait_for_selector("html[data-ready='1']", timeout=15000)
        page.wait_for_selector("main a.row:has-text('云屿村')", timeout=15000)
        assert page.evaluate("() => navigator.serviceWorker.controller !== null")
        assert page.evaluate("() => navigator.onLine") is False
        shot(page, "https-offline")
        assert page.errors == []
    finally:
        context.close()
