"""In real headless Chromium at phone width (360×740): a supervisor settles every conflicting
item of one toilet with one form (issue 12). The page shows the items and their values by
label, one choice per item; one tap on 全部确定 closes every conflict and the record holds the
chosen values. A screenshot goes to tests/artifacts/ (gitignored) for a person to look at.
"""

import shutil

import pytest
from conftest import PASSWORDS, START, YUNYU, FakeClock, toilet_answers
from pwa_helpers import ARTIFACTS, VIEWPORT, LiveServer, launch_chromium, needs_chromium
from test_resolve import make_conflict

from server import create_app
from server.storage import connect

pytestmark = needs_chromium


@pytest.fixture
def live(tmp_path, demo_db, facilities):
    shutil.copy(demo_db, tmp_path / "vc.db")
    app = create_app(
        {
            "DATABASE": str(tmp_path / "vc.db"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "SECRET_KEY": "e2e",
            "CLOCK": FakeClock(START),
        }
    )
    toilet = facilities[(YUNYU, "toilet")]["id"]
    make_conflict(
        app.test_client(),
        toilet,
        "construction",
        toilet_answers(sanitary=True, harmless=True, construction="septic3"),
        toilet_answers(sanitary=False, harmless=None, construction="double_urn"),
    )
    with LiveServer(app) as server:
        yield server.url, tmp_path / "vc.db", toilet


def test_one_tap_settles_every_conflicting_item_in_chromium(live):
    from playwright.sync_api import sync_playwright

    base, db, toilet = live
    store = connect(db)
    try:
        fields = {c["field"] for c in store.open_conflicts_of([toilet])}
    finally:
        store.close()
    assert {"sanitary", "construction"} <= fields
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "supervisor")
            page.fill("input[name=password]", PASSWORDS["supervisor"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/desk")
            page.goto(f"{base}/desk/conflicts")
            page.click(f"a[href='/desk/records/{toilet}/conflicts']")
            page.wait_for_url(f"{base}/desk/records/{toilet}/conflicts")
            groups = page.locator("fieldset[data-field]")
            assert groups.count() == len(fields)
            text = page.inner_text("form.resolve-record")
            assert "是卫生厕所" in text and "三格化粪池" in text and "双瓮漏斗" in text
            assert "septic3" not in text and "double_urn" not in text
            # Keep 三格化粪池 for construction, and the first choice everywhere else.
            page.get_by_label("三格化粪池").check()
            for field in fields - {"construction"}:
                page.locator(f"fieldset[data-field={field}] input[type=radio]").first.check()
            page.screenshot(path=str(ARTIFACTS / "record_conflicts_360.png"), full_page=True)
            page.click("form.resolve-record button[type=submit]")
            page.wait_for_url(f"{base}/desk/conflicts")
            assert f"已处理 {len(fields)} 项不一致的内容" in page.inner_text("body")
            assert "没有待处理的冲突" in page.inner_text("body")
        finally:
            browser.close()
    store = connect(db)
    try:
        assert store.open_conflicts_of([toilet]) == []
        assert store.facility(toilet)["state"]["construction"]["value"] == "septic3"
    finally:
        store.close()
