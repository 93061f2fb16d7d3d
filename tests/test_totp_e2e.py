"""Issue 13 in real headless Chromium: an admin whose role must use two-factor login is sent
from the password to the enrolment page, which draws the QR code inline (SVG, allowed by the
Content-Security-Policy) beside the secret; a code computed by pyotp from that secret at the
fixed clock enrols, and the ten recovery codes are shown."""

import shutil

import pyotp
from conftest import PASSWORDS, START, FakeClock
from pwa_helpers import ARTIFACTS, LiveServer, launch_chromium, needs_chromium

from server import create_app

pytestmark = needs_chromium


def test_an_admin_enrols_with_the_qr_page_in_chromium(tmp_path, demo_db):
    from playwright.sync_api import sync_playwright

    shutil.copy(demo_db, tmp_path / "vc.db")
    clock = FakeClock(START)
    app = create_app(
        {
            "DATABASE": str(tmp_path / "vc.db"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "SECRET_KEY": "totp-e2e",
            "CLOCK": clock,
            "TOTP_REQUIRED_ROLES": "admin",
        }
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(app) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server.url}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORDS["admin"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{server.url}/desk/totp")
            qr = page.locator("#totp-qr svg")
            box = qr.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100  # drawn, not blocked
            secret = page.inner_text("#totp-secret").strip()
            page.screenshot(path=str(ARTIFACTS / "totp-enrol.png"))
            page.fill("#code", pyotp.TOTP(secret).at(clock.now))
            page.click("text=启用两步验证")  # (the header's 退出 is a submit button too)
            page.wait_for_selector("#recovery-codes")
            assert page.locator("#recovery-codes li").count() == 10
            page.click("text=继续")
            page.wait_for_url(f"{server.url}/desk")
            assert errors == []
        finally:
            browser.close()
