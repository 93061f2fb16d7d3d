"""The PWA end to end, in real headless Chromium against a live server (issue 4).

Browser tests are skipped when /usr/bin/chromium is absent; the tests of what the server serves
(shell list, headers, manifest) always run. Screenshots at 360×740 go to tests/artifacts/.
"""

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import CORPUS
from pwa_helpers import (
    LiveServer,
    choose,
    logged_in_phone,
    make_app,
    needs_chromium,
    open_app,
    sha256_file,
    shot,
    wait_service_worker,
    wait_sync_idle,
)

from media.store import LocalMediaStore
from server.storage import connect

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client_pwa"
TOILET_CHEN = "f5b19f71-ec7a-48ad-9b2b-a06b6ae12c97"  # 陈朝光户厕, 云屿村
TOILET_WEI = "953a5154-281f-46f5-94a5-054cda2ec003"  # 韦桂芳户厕, 云屿村
ZONE_YUNYU = "8622b188-02a5-4071-8ecd-92217f372935"  # 云屿村村庄 (tidiness zone)
PHOTO_A = CORPUS / "HMD_Nokia_8.3_5G.jpg"
PHOTO_B = CORPUS / "canon_hdr_NO.jpg"
PHOTO_BIG = CORPUS / "iphone_hdr_YES.jpg"
# Each test uploads photos the (module-wide) server does not hold yet.
PHOTO_BIG2 = CORPUS / "iphone_hdr_NO.jpg"
PHOTO_C = CORPUS / "87_OSError.jpg"
TOILET_QIN = "66c164e7-c859-40d2-a844-c762939ae232"  # 覃德明户厕, 云屿村 (a double-urn toilet)
CHUNK = 512 * 1024  # the phone's upload chunk


# ---- what the server serves (no browser needed) ---------------------------------------------


class ClosingClient:
    """A test client whose responses are read and closed at once (file responses stay open)."""

    def __init__(self, client):
        self.client = client

    def get(self, path):
        response = self.client.get(path)
        response.get_data()
        response.close()
        return response


@pytest.fixture
def pwa_client(tmp_path, demo_db):
    return ClosingClient(make_app(tmp_path, demo_db).test_client())


def test_service_worker_precaches_every_shell_file():
    sw = (CLIENT / "sw.js").read_text(encoding="utf-8")
    listed = set(re.findall(r"^  '(/[^']*)',$", sw, re.M))
    from server.pwa import shell_files

    on_disk = {"/app/" + p.relative_to(CLIENT).as_posix() for p in shell_files()}
    on_disk = {"/" if p == "/app/index.html" else p for p in on_disk}  # the start page
    assert on_disk - listed == set(), "files missing from SHELL in sw.js"
    assert listed - on_disk == set(), "SHELL lists files that do not exist"


def test_service_worker_is_served_for_the_whole_origin_and_never_cached(pwa_client):
    response = pwa_client.get("/app/sw.js")
    assert response.status_code == 200
    assert response.headers["Service-Worker-Allowed"] == "/"
    assert "no-cache" in response.headers["Cache-Control"]
    assert response.mimetype == "text/javascript"
    body = response.get_data(as_text=True)
    assert "__SHELL_VERSION__" not in body
    assert re.search(r"const VERSION = '[0-9a-f]{12}'", body)


def test_shell_files_revalidate_and_the_start_page_is_the_app(pwa_client):
    index = pwa_client.get("/")
    assert index.status_code == 200 and b"/app/js/app.js" in index.data
    assert index.headers["Cache-Control"] == "no-cache"
    script = pwa_client.get("/app/js/app.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert pwa_client.get("/app/../server/pwa.py").status_code == 404
    assert pwa_client.get("/app/nothing.js").status_code == 404


def test_manifest_names_the_app_with_icons_and_standalone_display(pwa_client):
    response = pwa_client.get("/app/manifest.webmanifest")
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.data)
    assert manifest["name"] == "乡村巡检"
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"]
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert pwa_client.get(icon["src"]).mimetype == "image/png"


def test_vendored_idb_carries_its_licence():
    assert (CLIENT / "vendor/idb/LICENSE").read_text().startswith("ISC License")


# ---- in the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory, demo_db):
    app = make_app(tmp_path_factory.mktemp("live"), demo_db)
    with LiveServer(app) as server:
        yield server


@contextmanager
def db(live):
    """The live server's database, closed after the block."""
    store = connect(live.app.config["DATABASE_URL"])
    try:
        yield store
    finally:
        store.close()


def stored_photo(live, photo: Path) -> bytes:
    """The bytes the live server holds for a corpus photo."""
    with LocalMediaStore(live.app.config["MEDIA_PATH"]).open(sha256_file(photo)) as f:
        return f.read()


def fill_toilet(page, photos):
    """A household toilet that passes, with one photo outside and one inside."""
    page.wait_for_selector("[data-field=sanitary]")
    choose(page, "toilet_type", "household")
    choose(page, "sanitary", "true")
    choose(page, "harmless", "true")
    choose(page, "construction", "septic3")
    choose(page, "in_use", "true")
    choose(page, "usage_notice", "true")
    choose(page, "phones_posted", "true")
    choose(page, "manure_emptied", "true")
    for field, photo in zip(("photo_outside", "photo_inside"), photos, strict=False):
        page.set_input_files(f"#f-{field}", str(photo))
        page.wait_for_selector(f"[data-field={field}] .photo img", timeout=15000)
    page.wait_for_function(
        "() => document.querySelector('#saved').textContent.includes('已自动保存')"
    )


def entry_state(page, entry_id):
    return page.get_attribute(f"#outbox li[data-id='{entry_id}']", "data-state")


def wait_entry(page, entry_id, state: str, timeout=30000):
    """Until the outbox shows the entry in `state` (synced, rejected …)."""
    page.wait_for_selector(f"#outbox li[data-id='{entry_id}'][data-state={state}]", timeout=timeout)


def submit(page) -> str:
    """Submit the open form; the id of the entry it puts at the top of the outbox."""
    page.click("#submit")
    entry = page.locator("#outbox li").first
    entry.wait_for()
    return entry.get_attribute("data-id")


@needs_chromium
def test_offline_inspection_with_photos_reaches_the_server(browser, live):
    """(a) Log in, go offline, reload, inspect with two photos, reopen, submit, go online."""
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    shot(page, "a1-villages")
    wait_service_worker(page)
    assert page.evaluate("() => window.villagecheck.store.blobsStore()") is True

    context.set_offline(True)
    page.reload()
    page.wait_for_selector("html[data-ready='1']", timeout=15000)
    page.wait_for_selector("main a.row:has-text('云屿村')")
    page.click("main a.row:has-text('云屿村')")
    page.fill("input.search", "陈朝光")
    page.click(f"a.row[data-id='{TOILET_CHEN}']")
    page.wait_for_selector("text=当前记录")
    shot(page, "a2-facility-offline")
    page.click(".actions a.btn.primary")
    fill_toilet(page, [PHOTO_A, PHOTO_B])
    page.locator("[data-field=photo_inside]").scroll_into_view_if_needed()
    shot(page, "a3-form-photos")
    draft_id = page.evaluate("() => location.hash.split('/').pop()")

    # Close the page and open the app again, still offline: the draft is intact.
    page.close()
    page = open_app(context, live, "/#/drafts")
    page.click(f"#drafts a.row[data-id='{draft_id}']")
    page.wait_for_selector("[data-field=photo_inside] .photo img")
    assert page.locator("[data-field=photo_outside] .photo").count() == 1
    assert page.locator("[data-field=photo_inside] .photo").count() == 1
    assert page.locator("[data-field=sanitary] .choice.on").get_attribute("data-value") == "true"
    draft = page.evaluate(f"() => window.villagecheck.store.draft('{draft_id}')")
    assert draft["answers"]["photo_outside"][0]["sha256"] == sha256_file(PHOTO_A)
    position = draft["answers"]["photo_outside"][0]["position"]
    assert position == {"lat": 24.76362, "lon": 109.29476, "accuracy": 8}
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", draft["answers"]["photo_inside"][0]["captured_at"]
    )

    page.click("#submit")
    page.wait_for_selector(f"#outbox li[data-id='{draft_id}']")
    assert entry_state(page, draft_id) == "queued"
    assert "待同步" in page.inner_text(f"#outbox li[data-id='{draft_id}']")
    tags = page.evaluate(
        "async () => { const r = await navigator.serviceWorker.ready;"
        " return 'sync' in r ? r.sync.getTags() : null; }"
    )
    assert tags is None or "villagecheck-sync" in tags  # Background Sync asked for where it exists
    shot(page, "a4-outbox-offline")

    context.set_offline(False)
    wait_entry(page, draft_id, "synced")
    assert "已同步" in page.inner_text(f"#outbox li[data-id='{draft_id}']")
    shot(page, "a5-outbox-synced")
    page.goto(f"{live.url}/#/facility/{TOILET_CHEN}")
    wait_sync_idle(page)
    page.wait_for_selector("li:has-text('厕所检查') .badge[data-state=synced]")
    shot(page, "a6-facility-history")

    with db(live) as store:
        row = store.submission(draft_id)
        assert row is not None and row["record_id"] == TOILET_CHEN
        assert row["state"] != "received"  # every photo is in
        for photo in (PHOTO_A, PHOTO_B):
            assert store.media(sha256_file(photo))["size"] == photo.stat().st_size
            assert stored_photo(live, photo) == photo.read_bytes()
        record = store.facility(TOILET_CHEN)
        assert record["state"]["last_inspected"]["value"] == row["observed_at"][:10]
        assert record["state"]["sanitary"]["clock"] == row["clock"]
    assert page.errors == []
    context.close()


@needs_chromium
def test_photo_upload_resumes_after_the_connection_drops(browser, live):
    """(b) The second chunk's connection is cut; sync asks the server and resumes there."""
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    patches = []

    def cut_second_chunk(route):
        request = route.request
        if request.method == "PATCH":
            patches.append(int(request.headers["upload-offset"]))
            if len(patches) == 2:
                return route.abort("connectionreset")
        return route.continue_()

    page.route("**/api/v1/media/*", cut_second_chunk)
    page.goto(f"{live.url}/#/new/facility/{TOILET_WEI}")
    fill_toilet(page, [PHOTO_BIG, PHOTO_A])
    wait_entry(page, submit(page), "synced", timeout=60000)

    assert patches[:3] == [0, CHUNK, CHUNK], "the cut chunk is sent again from the server's offset"
    assert stored_photo(live, PHOTO_BIG) == PHOTO_BIG.read_bytes()
    context.close()


@needs_chromium
def test_a_stale_offset_is_corrected_by_the_servers_409(browser, live):
    """After a cut, the phone is told a wrong offset; the server's 409 puts it right."""
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    patches = []
    statuses = []

    def cut_then_lie(route):
        request = route.request
        if request.method == "PATCH":
            patches.append(int(request.headers["upload-offset"]))
            if len(patches) == 2:
                return route.abort("connectionreset")
        elif request.method == "GET" and len(patches) == 2:
            statuses.append("stale")  # as if an old answer came back: "nothing held yet"
            sha = request.url.rsplit("/", 1)[1]
            body = {"sha256": sha, "complete": False, "offset": 0, "length": None}
            return route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
        return route.continue_()

    page.route("**/api/v1/media/*", cut_then_lie)
    page.goto(f"{live.url}/#/new/facility/{TOILET_QIN}")
    fill_toilet(page, [PHOTO_BIG2, PHOTO_C])
    page.click("#submit")
    page.wait_for_selector("#sync-progress .progress", timeout=10000)
    shot(page, "b2-upload-progress")
    page.wait_for_selector("#outbox li[data-state=synced]", timeout=60000)
    assert statuses == ["stale"]
    assert patches[:4] == [0, CHUNK, 0, CHUNK], "0 is refused (409); the phone goes on from there"
    assert stored_photo(live, PHOTO_BIG2) == PHOTO_BIG2.read_bytes()
    context.close()


@needs_chromium
def test_failed_tidiness_item_without_photo_cannot_be_submitted(browser, live):
    """(c) A failed checklist item needs a photo: the reason is shown in Chinese."""
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    page.goto(f"{live.url}/#/new/facility/{ZONE_YUNYU}")
    page.wait_for_selector("[data-field=household_rubbish]")
    items = [
        "household_rubbish", "waterways", "farm_waste", "no_clutter", "no_posters",
        "no_illegal_building", "no_sewage", "livestock_penned", "no_black_water",
        "main_street", "doorstep_duties",
    ]  # fmt: skip
    for item in items:
        choose(page, item, "fail" if item == "no_clutter" else "pass")
    assert page.is_visible("[data-field=no_clutter_photo]")
    assert not page.is_visible("[data-field=waterways_photo]")
    assert page.inner_text("[data-field=score] .value") == "91"
    assert page.inner_text("[data-field=grade] .value") == "优"
    page.click("#submit")
    error = page.locator("[data-field=no_clutter_photo] .errors")
    error.wait_for()
    assert error.inner_text() == "请拍照，至少 1 张"
    assert "还有 1 处需要修改" in page.inner_text("#toast")
    shot(page, "c-tidiness-error")
    assert page.evaluate("() => window.villagecheck.store.outbox()") == []
    context.close()


@needs_chromium
def test_supervisor_rejection_reaches_the_phone(browser, live):
    """(d) A secretary's monthly task is rejected through the API; the phone shows why."""
    context, page = logged_in_phone(browser, live, "secretary", "Village-Sec-2026")
    page.click(".tabs a[data-tab=tasks]")
    task = page.locator("main a.row:has-text('三会一课')").first
    task.wait_for()
    task_id = task.get_attribute("data-id")
    shot(page, "d1-tasks")
    task.click()
    preset = page.locator("[data-field=task_kind] .readonly[data-value=three_meetings]")
    preset.wait_for()
    assert preset.inner_text() == "三会一课"
    assert page.locator("[data-field=task_kind] input").count() == 0  # preset, not editable
    choose(page, "status", "in_progress")
    shot(page, "d2-task-form")
    sub_id = submit(page)
    wait_entry(page, sub_id, "synced")

    token = live.token("supervisor", "Desk-Super-2026")
    reason = "会议记录照片缺失，请补充"
    status, body = live.api(
        "POST",
        f"/api/v1/submissions/{sub_id}/review",
        {"decision": "reject", "reason": reason},
        token,
    )
    assert status == 200, body

    page.click("#sync-now")
    wait_entry(page, sub_id, "rejected")
    text = page.inner_text(f"#outbox li[data-id='{sub_id}']")
    assert "被退回" in text and reason in text
    shot(page, "d3-rejected")
    page.click(".tabs a[data-tab=settings]")
    page.wait_for_selector("text=本机已用空间")
    shot(page, "d4-settings")
    wait_sync_idle(page)
    with db(live) as store:  # the rejected report no longer counts: the task is as generated
        assert "status" not in store.task(task_id)["state"]
    context.close()


@needs_chromium
def test_expired_login_keeps_the_outbox(browser, live):
    """A 401 asks the user to log in again; what waits in the outbox stays and is sent after."""
    context, page = logged_in_phone(browser, live, "secretary", "Village-Sec-2026")
    token = page.evaluate("async () => (await window.villagecheck.store.getMeta('session')).token")
    status, _ = live.api("POST", "/api/v1/auth/logout", {}, token)
    assert status == 200
    page.click(".tabs a[data-tab=tasks]")
    page.locator("main a.row:has-text('主题党日')").first.click()
    choose(page, "status", "not_started")
    page.click("#submit")
    page.wait_for_selector("#username", timeout=30000)
    assert "登录已失效" in page.inner_text("main")
    outbox = page.evaluate("() => window.villagecheck.store.outbox()")
    assert [e["state"] for e in outbox] == ["queued"]
    page.fill("#password", "Village-Sec-2026")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("main a.row", timeout=20000)
    wait_sync_idle(page)
    deadline = time.time() + 20
    while time.time() < deadline:
        outbox = page.evaluate("() => window.villagecheck.store.outbox()")
        if outbox[0]["state"] == "synced":
            break
        time.sleep(0.2)
    assert outbox[0]["state"] == "synced"
    context.close()


@needs_chromium
def test_registered_facility_and_its_first_inspection_sync_in_english(browser, live):
    """A zone registered on the phone with its position, inspected at once (all items pass)."""
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    page.click("#lang")
    page.wait_for_selector("text=My villages")
    page.click("main a.row:has-text('云屿村')")
    page.click(".actions a.btn.primary")
    page.click("button.choice[data-kind=zone]")
    page.click("button.choice[data-value=hamlet]")
    page.fill("#facility-name", "新屯")
    page.wait_for_selector("text=lat 24.763620")
    shot(page, "e1-register-en")
    page.click("#save-facility")
    page.wait_for_selector("[data-field=household_rubbish]")
    assert page.locator("[data-field=zone_type] .choice.on").get_attribute("data-value") == "hamlet"
    for field in page.eval_on_selector_all(
        ".field.t-select_one[data-field]", "els => els.map((e) => e.dataset.field)"
    ):
        if field != "zone_type":
            choose(page, field, "pass")
    assert page.inner_text("[data-field=score] .value") == "100"
    page.click("#submit")
    page.wait_for_selector("#outbox li[data-state=synced] >> nth=1", timeout=30000)
    assert page.locator("#outbox li[data-state=synced]").count() == 2
    shot(page, "e2-outbox-en")
    with db(live) as store:
        rows = store.rows("SELECT * FROM facilities WHERE name = :name", name="新屯")
        assert len(rows) == 1 and rows[0]["kind"] == "zone"
        assert (rows[0]["lat"], rows[0]["lon"]) == (24.76362, 109.29476)
        facility = store.facility(rows[0]["id"])
        assert facility["state"]["score"]["value"] == 100
        assert facility["state"]["grade"]["value"] == "优"
    context.close()


@needs_chromium
def test_new_version_is_offered_and_taken_on_request(browser, live, monkeypatch):
    """A changed shell makes a new worker wait; 立即更新 activates it and drops the old cache."""
    from server import pwa

    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    wait_service_worker(page)
    old = page.evaluate("() => caches.keys()")
    monkeypatch.setattr(pwa, "shell_version", lambda: "0000feedbeef")
    page.evaluate("async () => (await navigator.serviceWorker.getRegistration('/')).update()")
    banner = page.locator("#banner")
    banner.wait_for(timeout=20000)
    assert "新版本已准备好" in banner.inner_text()
    shot(page, "f-update-ready")
    with page.expect_navigation(timeout=20000):
        banner.locator("button").click()
    page.wait_for_selector("html[data-ready='1']")
    page.wait_for_function(
        "async () => (await caches.keys()).includes('villagecheck-shell-0000feedbeef')"
    )
    names = page.evaluate("() => caches.keys()")
    assert names == ["villagecheck-shell-0000feedbeef"], (old, names)
    context.close()
