"""No page can be framed (clickjacking approve/reject), and the CSP breaks neither the desk
nor the app: every desk page and app screen is opened in Chromium and must report no CSP
violation."""

import re

import pytest
from conftest import PASSWORDS
from pwa_helpers import (
    LiveServer,
    launch_chromium,
    logged_in_phone,
    make_app,
    needs_chromium,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Collects violations before any page script runs (init scripts are not subject to the CSP).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.mark.parametrize("path", ["/", "/login", "/desk", "/api/v1/auth/me", "/app/js/app.js"])
def test_every_response_forbids_framing(client, path):
    with client.get(path) as response:
        headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_the_desk_pages_have_no_inline_scripts_or_styles(client):
    """What the CSP would block: <script> without src, <style>, style= and on*= attributes."""
    token = CSRF.search(client.get("/login").text).group(1)
    client.post(
        "/login",
        data={"username": "admin", "password": PASSWORDS["admin"], "csrf_token": token},
    )
    for path in (
        "/login",
        "/desk",
        "/desk/queue?state=all",
        "/desk/conflicts",
        "/desk/tasks",
        "/desk/indicators",
        "/desk/exports",
    ):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html, path
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), path


def _violations(page) -> list[str]:
    return page.evaluate("window.__csp || []")


@needs_chromium
def test_desk_and_app_run_under_the_csp_in_chromium(tmp_path, demo_db):
    from playwright.sync_api import sync_playwright

    app = make_app(tmp_path, demo_db)
    with LiveServer(app) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            desk = browser.new_context(viewport={"width": 1280, "height": 800})
            desk.add_init_script(WATCH_CSP)
            page = desk.new_page()
            page.goto(f"{server.url}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORDS["admin"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{server.url}/desk")
            seen = {}
            for path in ("/desk", "/desk/queue", "/desk/tasks", "/desk/indicators"):
                page.goto(server.url + path)
                page.wait_for_load_state("load")
                seen[path] = _violations(page)
                # The stylesheet applied: CSS is from a file, not inline.
                assert page.evaluate("document.styleSheets.length") >= 1, path
            assert seen == {path: [] for path in seen}

            context, phone = logged_in_phone(browser, server, "inspector", PASSWORDS["inspector"])
            context.add_init_script(WATCH_CSP)
            screens = {}
            for route in ("/villages", "/drafts", "/outbox", "/tasks", "/settings"):
                phone.goto(f"{server.url}/#{route}")
                phone.reload()
                phone.wait_for_selector("html[data-ready='1']", timeout=15000)
                screens[route] = _violations(phone)
            assert screens == {route: [] for route in screens}
            assert phone.errors == []
        finally:
            browser.close()
