"""End to end in real headless Chromium against a live server.

A supervisor logs in, opens the spot-check queue, opens the flagged submission at its top and
rejects it with a reason; the author's phone, pulling over real HTTP, carries the rejection.
Screenshots of the queue and the submission page at laptop (1280×800) and phone (360×740)
sizes go to tests/artifacts/ (gitignored) for a person to look at.
"""

import json
import shutil
import urllib.request

import pytest
from conftest import PASSWORDS, START, YUNYU, FakeClock, Phone, sha
from pwa_helpers import ARTIFACTS, LiveServer, launch_chromium, needs_chromium
from test_supervisor import inspect_with_photos, jpeg, quick_submission

from server import create_app

TOILET_POS = (24.763623, 109.294765)

pytestmark = needs_chromium


@pytest.fixture
def live(tmp_path, demo_db, facilities):
    """A server on a free port with the demo county, an inspection with a far-away photo,
    and a few ordinary ones; yields (base URL, app, ids)."""
    shutil.copy(demo_db, tmp_path / "vc.db")
    app = create_app(
        {
            "DATABASE": str(tmp_path / "vc.db"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "SECRET_KEY": "e2e",
            "CLOCK": FakeClock(START),
        }
    )
    client = app.test_client()
    phone = Phone(client, "inspector", device_id="phone-e2e")
    toilet = facilities[(YUNYU, "toilet")]["id"]
    other_toilet = facilities[("450222101002", "toilet")]
    other = other_toilet["id"]
    at_other = {"lat": other_toilet["lat"], "lon": other_toilet["lon"]}
    near = jpeg(101, lat=TOILET_POS[0], lon=TOILET_POS[1])
    far = jpeg(102, lat=TOILET_POS[0] + 0.0064, lon=TOILET_POS[1] + 0.002)  # ~740 m away
    ok = [quick_submission(phone, other) for _ in range(2)]
    flagged = inspect_with_photos(phone, toilet, [near, far], construction="double_urn")
    inspect_with_photos(phone, other, [jpeg(103, **at_other), jpeg(104, **at_other)])
    with LiveServer(app) as server:
        yield (
            server.url,
            app,
            {"flagged": flagged["id"], "ok": ok, "token": phone.token, "far": sha(far)},
        )


def http_json(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode())


def login(page, base):
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "supervisor")
    page.fill("input[name=password]", PASSWORDS["supervisor"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/desk")


def test_supervisor_rejects_a_flagged_submission_in_chromium(live):
    from playwright.sync_api import sync_playwright

    base, app, ids = live
    ARTIFACTS.mkdir(exist_ok=True)
    before = http_json(f"{base}/api/v1/sync/pull", ids["token"])
    assert before["reviews"] == []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            # -- laptop: the whole flow -------------------------------------------------------
            laptop = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
            page = laptop.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            login(page, base)
            page.click("text=抽查队列")
            page.wait_for_url(f"{base}/desk/queue")
            rows = page.locator("table.queue tbody tr")
            assert rows.count() == 4
            first = rows.nth(0)
            assert ids["flagged"] in first.locator("a.open").get_attribute("href")
            assert "离设施太远" in first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "queue-laptop.png"), full_page=True)
            first.locator("a.open").click()
            page.wait_for_url(f"{base}/desk/submissions/{ids['flagged']}**")
            assert page.locator("svg.plot").count() == 2
            assert page.locator("td.distance", has_text="米").count() >= 2
            # the display photos load through the session-authenticated route
            thumbs = page.locator("figure.thumb img")
            assert thumbs.count() >= 2
            page.wait_for_function(
                "() => [...document.querySelectorAll('figure.thumb img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(ARTIFACTS / "submission-laptop.png"), full_page=True)
            # rejecting without a reason is stopped by the browser (required field) ...
            page.click("button[value=reject]")
            assert page.url.startswith(f"{base}/desk/submissions/{ids['flagged']}")
            assert page.locator(".flash").count() == 0
            # ... and with one it goes through and returns to the queue
            page.fill("textarea[name=reason]", "照片不是该户厕所，请重新拍摄")
            page.click("button[value=reject]")
            page.wait_for_url(f"{base}/desk/queue**")
            assert "已退回" in page.locator(".flash").inner_text()
            assert page.locator("table.queue tbody tr").count() == 3
            assert errors == []
            laptop.close()

            # -- phone: the same pages at 360 px ------------------------------------------
            mobile = browser.new_context(
                viewport={"width": 360, "height": 740},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            page = mobile.new_page()
            login(page, base)
            page.goto(f"{base}/desk/queue?state=all")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 360, f"page is {overflow} px wide on a 360 px screen"
            page.screenshot(path=str(ARTIFACTS / "queue-phone.png"), full_page=True)
            page.goto(f"{base}/desk/submissions/{ids['flagged']}")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 360, f"page is {overflow} px wide on a 360 px screen"
            page.screenshot(path=str(ARTIFACTS / "submission-phone.png"), full_page=True)
            mobile.close()
        finally:
            browser.close()

    after = http_json(f"{base}/api/v1/sync/pull?since={before['cursor']}", ids["token"])
    assert [
        (r["submission_id"], r["state"], r["decision"], r["reason"]) for r in after["reviews"]
    ] == [(ids["flagged"], "rejected", "reject", "照片不是该户厕所，请重新拍摄")]
    assert after["reviews"][0]["reviewer"] == "覃志强（桐浦乡督查）"
