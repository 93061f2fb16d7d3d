"""Printing and the desk's layout, in real headless Chromium against a live server (one browser,
one server for the module).

- The monthly township report (督查月报) and a submission page render to PDF with `page.pdf`:
  the PDF has pages, the expected Chinese text (extracted with pypdf) and the photos, and none
  of the navigation or buttons.
- At 1366×768 the indicators table is not clipped: it fits its box.
- At 360×740 every desk nav link and the 退出 button is at least 44 px tall.

Screenshots and the PDFs go to tests/artifacts/ for a person to look at.
"""

import io
import shutil
import unicodedata

import pytest
from conftest import PASSWORDS, START, FakeClock, Phone
from pwa_helpers import ARTIFACTS, LiveServer, launch_chromium, needs_chromium
from test_reports import report_world

from server import create_app

pytestmark = needs_chromium
pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def desk(tmp_path_factory, demo_db):
    """(base URL, ids, a logged-in supervisor's page) for the whole module."""
    from playwright.sync_api import sync_playwright

    from server.demo import demo_data
    from server.storage import connect

    tmp = tmp_path_factory.mktemp("print")
    shutil.copy(demo_db, tmp / "vc.db")
    app = create_app(
        {
            "DATABASE": str(tmp / "vc.db"),
            "MEDIA_ROOT": str(tmp / "media"),
            "SECRET_KEY": "print",
            "CLOCK": FakeClock(START),
        }
    )
    client = app.test_client()
    phone = Phone(client, "inspector", device_id="phone-print")
    facilities = {}
    for f in demo_data()["facilities"]:
        facilities.setdefault((f["village"], f["kind"]), f)
    store = connect(str(tmp / "vc.db"))
    ids = report_world(client, store, phone, facilities)
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(app) as server, sync_playwright() as p:
        from server import ingest_worker

        ingest_worker.drain(app)
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{server.url}/login")
        page.fill("input[name=username]", "supervisor")
        page.fill("input[name=password]", PASSWORDS["supervisor"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/desk")
        try:
            yield server.url, ids, page
        finally:
            browser.close()


def pdf_of(page, url: str, name: str) -> "pypdf.PdfReader":
    page.goto(url, wait_until="load")
    page.wait_for_function("() => [...document.images].every((i) => i.complete)")
    data = page.pdf(format="A4", print_background=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(data)
    page.emulate_media(media="print")  # what the PDF shows, as a picture to look at
    page.screenshot(path=str(ARTIFACTS / f"{name}-print.png"), full_page=True)
    page.emulate_media(media="null")  # back to no emulation: page.pdf prints as print
    return pypdf.PdfReader(io.BytesIO(data))


def text_and_images(reader) -> tuple[str, int]:
    """The PDF's text, NFKC-normalised (the CJK font maps some glyphs to Kangxi radicals,
    ⽉ for 月), and its number of images."""
    text = unicodedata.normalize("NFKC", "\n".join(p.extract_text() or "" for p in reader.pages))
    images = sum(len(p.images) for p in reader.pages)
    return text, images


def test_the_monthly_report_prints_with_chinese_text_and_photos(desk):
    base, ids, page = desk
    reader = pdf_of(page, f"{base}/desk/reports/monthly?township=桐浦乡&month=2026-11", "report")
    page.screenshot(path=str(ARTIFACTS / "report-1366.png"), full_page=True)
    text, images = text_and_images(reader)
    assert len(reader.pages) >= 1
    squeezed = "".join(text.split())
    for expected in ("桐浦乡督查月报", "指标完成情况", "卫生厕所普及率", "正常使用：否",
                     "照片看不清厕所内部", "云屿村"):  # fmt: skip
        assert unicodedata.normalize("NFKC", expected) in squeezed, expected
    assert images >= 1  # the problem's photo
    assert "抽查队列" not in squeezed and "另存为PDF" not in squeezed  # no nav, no buttons


def test_a_submission_page_prints_without_nav_or_buttons(desk):
    base, ids, page = desk
    reader = pdf_of(page, f"{base}/desk/submissions/{ids['bad']}", "submission")
    text, images = text_and_images(reader)
    squeezed = "".join(text.split())
    assert len(reader.pages) >= 1 and images >= 1
    assert "证据问题" in squeezed and "云屿村" in squeezed
    assert "抽查队列" not in squeezed and "退出" not in squeezed and "通过" not in squeezed


def test_indicators_fit_at_1366_and_desk_tap_targets_at_360(desk):
    base, ids, page = desk
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base}/desk/indicators?month=2026-11")
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('.table-wrap')].map((w) => {
             const t = w.querySelector('table').getBoundingClientRect();
             return {scroll: w.scrollWidth, client: w.clientWidth, right: t.right};
           })"""
    )
    assert overflow and all(o["scroll"] <= o["client"] + 1 for o in overflow), overflow
    assert all(o["right"] <= 1366 for o in overflow), overflow
    page.screenshot(path=str(ARTIFACTS / "indicators-1366.png"), full_page=True)

    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{base}/desk")
    heights = page.evaluate(
        """() => [...document.querySelectorAll('header.top nav a, header.top .who button')]
             .map((e) => [e.textContent.trim(), e.getBoundingClientRect().height])"""
    )
    assert len(heights) >= 6 and "督查月报" in [h[0] for h in heights]
    assert all(h >= 44 for _, h in heights), heights
    page.screenshot(path=str(ARTIFACTS / "desk-nav-360.png"), full_page=True)
