"""The admin pages (issue 13) in real headless Chromium against a live server.

One browser, one server. The county admin walks users (creates one), the village import (a
file with bad rows: per-row errors, nothing written; a good one: preview, then confirm),
facilities, settings and the audit log, at 1366 px and at 360 px (no sideways scrolling),
with screenshots in tests/artifacts/. Then the refusals in the browser: a supervisor sees
only the people list (managing is 403), an admin of another county gets 404 for this
county's user, and a POST without the CSRF token is a 400 that changes nothing.
"""

import pytest
from conftest import PASSWORDS
from pwa_helpers import ARTIFACTS, LiveServer, launch_chromium, make_app, needs_chromium
from werkzeug.security import generate_password_hash

from server.storage import connect

pytestmark = needs_chromium

BAD_CSV = (
    "code,name,township,county,county_class\n"
    "450222103001,新塘村,新塘镇,柳城县,2\n"
    "4502221030,短码村,新塘镇,柳城县,2\n"
).encode()
GOOD_CSV = "code,name,township,county,county_class\n450222103001,新塘村,新塘镇,柳城县,2\n".encode()
OTHER_PASSWORD = "Other-county-2026"


@pytest.fixture
def live(tmp_path, demo_db):
    app = make_app(tmp_path, demo_db)
    store = connect(tmp_path / "vc.db")
    store.create_user(
        username="admin2",
        password_hash=generate_password_hash(OTHER_PASSWORD),
        role="admin",
        display_name="邻县管理员",
        at="2026-11-01T00:00:00+08:00",
        scope_county="450223",
    )
    with LiveServer(app) as server:
        yield server, store
    store.close()


def _login(page, base, username, password):
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/desk")


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_admin_pages_and_refusals_in_chromium(live):
    from playwright.sync_api import sync_playwright

    server, store = live
    base = server.url
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            admin = browser.new_page(viewport={"width": 1366, "height": 900})
            _login(admin, base, "admin", PASSWORDS["admin"])
            admin.click("header nav >> text=管理")
            admin.wait_for_url(f"{base}/desk/admin/users")
            form = admin.locator("#create-user")
            form.locator("input[name=username]").fill("zhang")
            form.locator("input[name=display_name]").fill("张三")
            form.locator("input[name=villages][value='450222101001']").check()
            form.locator("input[name=password]").fill("Qingshan-River-92")
            form.locator("button[type=submit]").click()
            admin.wait_for_selector("h1:has-text('张三')")
            assert store.user(username="zhang")["active"]
            zhang = store.user(username="zhang")["id"]

            admin.goto(f"{base}/desk/admin/villages")
            admin.set_input_files(
                "#import input[type=file]",
                {"name": "v.csv", "mimeType": "text/csv", "buffer": BAD_CSV},
            )
            admin.click("#import button[type=submit]")
            admin.wait_for_selector("#preview table.errors")
            assert "未导入任何村" in admin.inner_text("#preview")
            assert store.village("450222103001") is None
            admin.set_input_files(
                "#import input[type=file]",
                {"name": "v.csv", "mimeType": "text/csv", "buffer": GOOD_CSV},
            )
            admin.click("#import button[type=submit]")
            admin.wait_for_selector("#preview h2:has-text('尚未写入')")
            assert store.village("450222103001") is None  # the preview wrote nothing
            admin.click("#preview button[type=submit]")
            admin.wait_for_selector(".flash:has-text('已导入 1 个村')")
            assert store.village("450222103001")["name"] == "新塘村"
            admin.set_input_files(
                "#import input[type=file]",
                {"name": "v.csv", "mimeType": "text/csv", "buffer": BAD_CSV},
            )
            admin.click("#import button[type=submit]")
            admin.wait_for_selector("#preview table.errors")
            pages = {
                "villages": None,  # the preview on screen
                "users": "/desk/admin/users",
                "user": f"/desk/admin/users/{zhang}",
                "facilities": "/desk/admin/facilities?village=450222101001",
                "settings": "/desk/admin/settings",
                "audit": "/desk/admin/audit",
            }
            for name, path in pages.items():
                if path:
                    admin.goto(base + path)
                _shot(admin, f"admin-{name}-1366")
            assert "admin.user.create" in admin.inner_text("table.audit")
            for name, path in pages.items():
                admin.set_viewport_size({"width": 360, "height": 740})
                admin.goto(base + (path or "/desk/admin/villages"))
                assert _fits(admin), f"{name} scrolls sideways at 360 px"
                _shot(admin, f"admin-{name}-360")

            # a POST without the CSRF token, from the admin's own logged-in page
            status = admin.evaluate(
                """(url) => fetch(url, {method: 'POST', body: new URLSearchParams({active: '0'}),
                    headers: {'Content-Type': 'application/x-www-form-urlencoded'}})
                    .then((r) => r.status)""",
                f"/desk/admin/users/{zhang}/active",
            )
            assert status == 400 and store.user(id=zhang)["active"]

            supervisor = browser.new_page(viewport={"width": 360, "height": 740})
            _login(supervisor, base, "supervisor", PASSWORDS["supervisor"])
            supervisor.click("header nav >> text=人员")
            supervisor.wait_for_url(f"{base}/desk/admin/users")
            assert supervisor.locator("#create-user").count() == 0
            assert "inspector2" not in supervisor.inner_text("table")
            _shot(supervisor, "admin-supervisor-people-360")
            assert supervisor.goto(f"{base}/desk/admin/users/{zhang}").status == 403
            assert supervisor.goto(f"{base}/desk/admin/villages").status == 403

            other = browser.new_page(viewport={"width": 1366, "height": 900})
            _login(other, base, "admin2", OTHER_PASSWORD)
            assert other.goto(f"{base}/desk/admin/users/{zhang}").status == 404
            other.goto(f"{base}/desk/admin/users")
            assert "zhang" not in other.inner_text("table")
        finally:
            browser.close()
