"""The PWA on real phones (issue 11), in headless Chromium against a live server.

Real phones are not headless Chromium: in-app web views (WeChat, QQ …), browsers without a
service worker, poor or refused locations, a server that must switch the worker off. Each test
emulates one of those. One browser and one live server for the module; phones (contexts) are
made per test or shared by a fixture, and every wait is on a condition, never a fixed sleep.
"""

import io
import json
import random
import time

import pytest
from pwa_helpers import (
    CHROMIUM,
    YUNYU_POSITION,
    LiveServer,
    choose,
    log_in,
    make_app,
    new_phone,
    open_app,
    shot,
    wait_service_worker,
    wait_sync_idle,
)

from media.store import LocalMediaStore
from server.storage import connect

TOILET_CHEN = "f5b19f71-ec7a-48ad-9b2b-a06b6ae12c97"  # 陈朝光户厕, 云屿村
TOILET_WEI = "953a5154-281f-46f5-94a5-054cda2ec003"  # 韦桂芳户厕, 云屿村
TOILET_QIN = "66c164e7-c859-40d2-a844-c762939ae232"  # 覃德明户厕, 云屿村
INSPECTOR = ("inspector", "Field-Team1-2026")

# -- user agents (real strings, shortened where the tail does not matter) --
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 12; V2055A) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.6099.144 Mobile Safari/537.36"
)
WECHAT = (
    "Mozilla/5.0 (Linux; Android 12; V2055A Build/SP1A.210812.003; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/111.0.5563.116 Mobile Safari/537.36 XWEB/1110017"
    " MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64"
    " Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
IN_APP = {
    WECHAT: "微信",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2f) NetType/4G Language/zh_CN": "微信",
    "Mozilla/5.0 (Linux; Android 12; wv) AppleWebKit/537.36 Chrome/109.0 Mobile Safari/537.36"
    " wxwork/4.1.16 MicroMessenger/7.0.1 NetType/WIFI Language/zh": "企业微信",
    "Mozilla/5.0 (Linux; Android 11; M2012K11AC Build/RKQ1.200826.002; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/89.0.4389.72 MQQBrowser/6.2 TBS/046011 Mobile"
    " Safari/537.36 V1_AND_SQ_8.8.68_2538_YYB_D A_8086800 QQ/8.8.68.7265 NetType/WIFI": "QQ",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 Weibo (iPhone13,2__weibo__13.8.1__iphone__os16.6)": "微博",
    "Mozilla/5.0 (Linux; U; Android 12; zh-CN; V2055A Build/SP1A) AppleWebKit/537.36 (KHTML,"
    " like Gecko) Version/4.0 Chrome/69.0 Mobile Safari/537.36 AliApp(DingTalk/7.0.40)"
    " com.alibaba.android.rimet/30 Channel/700159 language/zh-CN": "钉钉",
    "Mozilla/5.0 (Linux; U; Android 12; zh-CN; V2055A Build/SP1A) AppleWebKit/537.36 (KHTML,"
    " like Gecko) Version/4.0 Chrome/69.0 UWS/3.22 Mobile Safari/537.36 UCBS/3.22"
    " AlipayClient/10.5.36.8000 Language/zh-Hans": "支付宝",
    "Mozilla/5.0 (Linux; Android 12; V2055A Build/SP1A; wv) AppleWebKit/537.36 (KHTML, like"
    " Gecko) Version/4.0 Chrome/104.0 Mobile Safari/537.36 JsSdk/2 NewsArticle/9.4.4"
    " NetType/wifi": "今日头条",
    "Mozilla/5.0 (Linux; Android 12; V2055A; wv) AppleWebKit/537.36 Chrome/104.0 Mobile"
    " Safari/537.36 aweme_270000 JsSdk/1.0 NetType/WIFI": "抖音",
    "Mozilla/5.0 (Linux; Android 12; V2055A; wv) AppleWebKit/537.36 Chrome/104.0 Mobile"
    " Safari/537.36 SomeOtherApp/1.0": "应用内浏览器",
}
BROWSERS = [
    ANDROID_CHROME,
    # The QQ browser (MQQBrowser) is a browser, not the QQ app's web view.
    "Mozilla/5.0 (Linux; U; Android 12; zh-cn; V2055A Build/SP1A) AppleWebKit/537.36 (KHTML,"
    " like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/14.2 Mobile Safari/537.36"
    " COVC/046601",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/94.0.4606.71 Safari/537.36 Core/1.94.202.400 QQBrowser/11.9.5355.400",
    "Mozilla/5.0 (Linux; Android 12; NOH-AN00; HMSCore 6.11) AppleWebKit/537.36 (KHTML, like"
    " Gecko) Chrome/99.0.4844.88 HuaweiBrowser/14.0.1.300 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 12; zh-cn; M2012K11AC Build/SKQ1) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.127 Mobile Safari/537.36"
    " XiaoMi/MiuiBrowser/17.7.90607",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
]


# ---- what the server serves (no browser) ------------------------------------------------------


@pytest.fixture
def pwa_app(tmp_path, demo_db):
    return make_app(tmp_path, demo_db)


def test_config_json_carries_the_switches_and_is_never_cached(pwa_app):
    client = pwa_app.test_client()
    response = client.get("/app/config.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    # (other parts add their own fields, e.g. "map")
    assert response.get_json().items() >= {"service_worker": True, "gps_good_metres": 50}.items()
    assert b"precacheShell" in client.get("/app/sw.js").data

    for off in (False, "off", "false", "0"):
        pwa_app.config["PWA_SERVICE_WORKER"] = off
        assert client.get("/app/config.json").get_json()["service_worker"] is False, off
    pwa_app.config["PWA_GPS_GOOD_METRES"] = 30
    assert client.get("/app/config.json").get_json()["gps_good_metres"] == 30
    # While off, the worker browsers fetch on their own removes itself and its caches.
    worker = client.get("/app/sw.js")
    assert worker.headers["Service-Worker-Allowed"] == "/"
    body = worker.get_data(as_text=True)
    assert "registration.unregister()" in body and "caches.delete" in body
    assert "precacheShell" not in body
    pwa_app.config["PWA_SERVICE_WORKER"] = "on"
    assert client.get("/app/config.json").get_json()["service_worker"] is True


# ---- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory, demo_db):
    app = make_app(tmp_path_factory.mktemp("phones"), demo_db)
    with LiveServer(app) as server:
        yield server


def db(live):
    return connect(live.app.config["DATABASE_URL"])


def jpeg(tmp_path, name: str, px: int = 320) -> tuple:
    """A JPEG of noise no other test uploads: (path, size)."""
    from PIL import Image

    rng = random.Random(name)
    img = Image.frombytes("RGB", (px, px), bytes(rng.getrandbits(8) for _ in range(px * px * 3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    path = tmp_path / f"{name}.jpg"
    path.write_bytes(buf.getvalue())
    return path


def sha256_of(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def fill_toilet(page, photos):
    """A household toilet that passes, with its photos; until the draft is saved."""
    page.wait_for_selector("[data-field=sanitary]")
    for field, value in (
        ("toilet_type", "household"), ("sanitary", "true"), ("harmless", "true"),
        ("construction", "septic3"), ("in_use", "true"), ("usage_notice", "true"),
        ("phones_posted", "true"), ("manure_emptied", "true"),
    ):  # fmt: skip
        choose(page, field, value)
    for field, photo in zip(("photo_outside", "photo_inside"), photos, strict=False):
        page.set_input_files(f"#f-{field}", str(photo))
        page.wait_for_selector(f"[data-field={field}] .photo img", timeout=15000)
    page.wait_for_function(
        "() => document.querySelector('#saved').textContent.includes('已自动保存')"
    )


def submit(page) -> str:
    page.click("#submit")
    entry = page.locator("#outbox li").first
    entry.wait_for()
    return entry.get_attribute("data-id")


def wait_run(page, reason: str, after: int):
    """Until a sync run for `reason` has started after the first `after` runs, and is over."""
    page.wait_for_function(
        "([reason, after]) => window.villagecheck.sync.history().slice(after)"
        ".some((r) => r.reason === reason)",
        arg=[reason, after],
        timeout=15000,
    )
    wait_sync_idle(page)


def runs(page) -> int:
    return page.evaluate("() => window.villagecheck.sync.history().length")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
def test_in_app_web_views_are_told_to_open_a_browser(browser, live):
    """WeChat's web view: 在浏览器中打开 with how-to before login; MQQBrowser is a browser."""
    context = browser.new_context(
        user_agent=WECHAT, viewport={"width": 360, "height": 740}, locale="zh-CN", is_mobile=True
    )
    page = open_app(context, live)
    page.wait_for_selector("#username")
    notice = page.locator("#inapp")
    assert "在浏览器中打开" in notice.inner_text()
    assert "右上角 ··· → 在浏览器中打开" in notice.inner_text()
    assert "微信" in notice.inner_text()
    shot(page, "p1-wechat-open-in-browser")
    names = page.evaluate(
        "(uas) => uas.map((ua) => { const v = window.villagecheck.caps.inAppView(ua);"
        " return v ? v.zh : null; })",
        list(IN_APP) + BROWSERS,
    )
    assert names == list(IN_APP.values()) + [None] * len(BROWSERS)
    # Dismissed: gone for this visit.
    notice.locator("button").click()
    page.goto(live.url + "/#/login")
    page.wait_for_selector("#username")
    assert page.locator("#inapp").count() == 0
    assert page.errors == []
    context.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
def test_without_a_service_worker_the_app_works_online_and_syncs_on_every_trigger(
    browser, live, tmp_path
):
    """Service workers blocked (as in some web views): log in, the capability summary says so,
    sync runs on open, on return to the foreground, from the button and on `online` (no
    Background Sync anywhere), and an inspection made offline with photos reaches the server
    after the outbox showed its count, age and the photos' upload estimate."""
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        is_mobile=True,
        service_workers="block",
    )
    context.grant_permissions(["geolocation"], origin=live.url)
    context.set_geolocation(YUNYU_POSITION)
    page = open_app(context, live)
    log_in(page, *INSPECTOR)
    assert page.evaluate("() => navigator.serviceWorker.getRegistrations()") == []

    # Open: the app syncs as it opens.
    page.reload()
    page.wait_for_selector("html[data-ready='1']")
    wait_run(page, "open", 0)

    # The capability summary on the settings screen.
    page.goto(live.url + "/#/settings")
    page.wait_for_selector("#caps")
    caps = dict(
        page.eval_on_selector_all(
            "#caps dd", "els => els.map((e) => [e.dataset.cap, e.textContent])"
        )
    )
    assert caps["service_worker"] == "不可用（只能联网使用）"
    assert caps["indexeddb"] == "可用"
    assert caps["blob"] == "Blob（正常）"
    assert caps["cache_storage"] == "可用" and caps["estimate"] == "可用"
    shot(page, "p2-settings-capabilities")

    # Back to the foreground with a stale last sync: it syncs.
    n = runs(page)
    page.evaluate(
        """async () => {
            const old = {at: '2020-01-01T00:00:00Z', ok: true};
            await window.villagecheck.store.setMeta('last_sync', old);
            const visible = {value: 'visible', configurable: true};
            Object.defineProperty(document, 'visibilityState', visible);
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
    )
    wait_run(page, "visible", n)

    # The button.
    page.goto(live.url + "/#/outbox")
    n = runs(page)
    page.click("#sync-now")
    wait_run(page, "manual", n)

    # Offline: an inspection with two photos waits in the outbox with its summary.
    photos = [jpeg(tmp_path, "nosw-a"), jpeg(tmp_path, "nosw-b")]
    context.set_offline(True)
    page.goto(f"{live.url}/#/new/facility/{TOILET_WEI}")
    fill_toilet(page, photos)
    entry_id = submit(page)
    assert page.inner_text("#outbox-summary") == "1 条待同步，最早 刚刚"
    size = sum(p.stat().st_size for p in photos)
    line = page.locator("#outbox-photos")
    assert line.get_attribute("data-bytes") == str(size)
    assert int(line.get_attribute("data-seconds")) == -(-size // (60 * 1024))
    assert "待上传照片 2 张" in line.inner_text() and "60 KB/s" in line.inner_text()
    assert "估计" in line.inner_text()
    # Two days later (still offline): the age says so.
    page.evaluate(
        """async (id) => {
            const s = window.villagecheck.store;
            const e = await s.outboxEntry(id);
            const createdAt = new Date(Date.now() - 2 * 86400e3 - 60e3).toISOString();
            await s.putOutbox({...e, createdAt});
            window.villagecheck.app.rerender();
        }""",
        entry_id,
    )
    page.wait_for_function(
        "() => document.querySelector('#outbox-summary')?.textContent === '1 条待同步，最早 2 天前'"
    )
    shot(page, "p3-outbox-offline-summary")

    # Online again: the `online` event syncs it (no worker, no Background Sync).
    n = runs(page)
    context.set_offline(False)
    page.wait_for_selector(f"#outbox li[data-id='{entry_id}'][data-state=synced]", timeout=30000)
    assert "online" in [
        r["reason"] for r in page.evaluate("() => window.villagecheck.sync.history()")[n:]
    ]
    page.wait_for_function(
        "() => document.querySelector('#outbox-summary')?.textContent === '全部已同步'"
    )
    assert page.locator("#outbox-photos").count() == 0
    store = db(live)
    try:
        row = store.submission(entry_id)
        assert row is not None and row["record_id"] == TOILET_WEI
        for photo in photos:
            assert store.media(sha256_of(photo)) is not None
    finally:
        store.close()
    assert page.errors == []
    context.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
def test_outbox_warns_when_storage_is_low_or_not_persistent(browser, live):
    """estimate() with little room left and persisted() false: both warnings show."""
    context = new_phone(browser, live)
    context.add_init_script(
        """navigator.storage.estimate = async () => ({usage: 40 * 2 ** 20, quota: 100 * 2 ** 20});
        navigator.storage.persisted = async () => false;"""
    )
    page = open_app(context, live)
    log_in(page, *INSPECTOR)
    page.goto(live.url + "/#/outbox")
    page.wait_for_selector("#storage-low")
    assert "手机存储空间不足（剩余约 60 MB）" in page.inner_text("#storage-low")
    assert "清理缓存" in page.inner_text("#storage-not-persistent")
    context.close()


# ---- one phone, with a service worker, for the rest ----------------------------------------------


@pytest.fixture(scope="module")
def phone(browser, live):
    context = new_phone(browser, live)
    page = open_app(context, live)
    log_in(page, *INSPECTOR)
    yield context, page
    context.close()


def gps(page, quality: str):
    page.wait_for_selector(f"#gps[data-quality={quality}]", timeout=15000)
    return page.inner_text("#gps")


def test_registering_a_facility_confirms_a_poor_fix_and_a_neighbour(phone, live):
    """A rough fix asks first; so does a toilet within 30 m of 陈朝光户厕; 100 m away it is
    saved with datum wgs84 and source browser, and the server takes it."""
    context, page = phone
    store = db(live)
    try:
        chen = store.facility(TOILET_CHEN)
    finally:
        store.close()
    at_chen = {"latitude": chen["lat"], "longitude": chen["lon"]}
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    context.set_geolocation({**at_chen, "accuracy": 2000})
    page.goto(f"{live.url}/#/register/{chen['village_code']}")
    page.click("button.choice[data-kind=toilet]")
    page.fill("#facility-name", "村口新厕")
    assert "粗略位置（基站/网络）" in gps(page, "coarse")
    with page.expect_event("dialog"):
        page.click("#save-facility")
    assert len(dialogs) == 1 and "粗略位置" in dialogs[0]

    context.set_geolocation({**at_chen, "accuracy": 5})
    assert "定位精度 ±5 米" in gps(page, "good")
    with page.expect_event("dialog"):
        page.click("#save-facility")
    assert len(dialogs) == 2 and "已经登记了同类设施“陈朝光户厕”（30 米以内）" in dialogs[1], (
        dialogs
    )
    assert page.locator("#save-facility").count() == 1  # still registering

    page.remove_listener("dialog", answer)
    away = {"latitude": chen["lat"] + 0.001, "longitude": chen["lon"], "accuracy": 6}
    context.set_geolocation(away)
    page.wait_for_function(
        "(lat) => document.querySelector('#facility-where').textContent.includes(lat)",
        arg=f"{away['latitude']:.6f}",
    )
    shot(page, "p4-register-good-fix")
    page.click("#save-facility")
    page.wait_for_selector("[data-field=sanitary]")
    item = page.evaluate(
        "async () => (await window.villagecheck.store.outbox())"
        ".find((e) => e.type === 'facility').item"
    )
    assert (item["datum"], item["source"], item["accuracy"]) == ("wgs84", "browser", 6)
    wait_sync_idle(page)
    store = db(live)
    try:
        row = store.facility(item["id"])
        assert row is not None and row["name"] == "村口新厕"
        assert abs(row["lat"] - away["latitude"]) < 1e-6
    finally:
        store.close()


def test_a_form_shows_live_accuracy_and_guidance_when_location_is_refused(phone, live, tmp_path):
    """Good, poor (等待定位) and rough (粗略位置) fixes live on a form; a photo taken on a rough
    fix keeps its accuracy; refused location shows how to turn it on."""
    context, page = phone
    context.set_geolocation(YUNYU_POSITION)
    page.goto(f"{live.url}/#/new/facility/{TOILET_QIN}")
    assert "定位精度 ±8 米" in gps(page, "good")
    context.set_geolocation({**YUNYU_POSITION, "accuracy": 120})
    text = gps(page, "wait")
    assert "等待定位" in text and "±120 米" in text and "50 米以内" in text
    assert "可以先拍照" in text
    context.set_geolocation({**YUNYU_POSITION, "accuracy": 2000})
    assert "粗略位置（基站/网络）：精度 ±2000 米" in gps(page, "coarse")
    shot(page, "p5-form-rough-fix")
    page.set_input_files("#f-photo_outside", str(jpeg(tmp_path, "rough")))
    page.wait_for_selector("[data-field=photo_outside] .photo img", timeout=15000)
    draft_id = page.evaluate("() => location.hash.split('/').pop()")
    page.wait_for_function(
        "async (id) => { const d = await window.villagecheck.store.draft(id);"
        " return d && (d.answers.photo_outside || []).length === 1; }",
        arg=draft_id,
    )
    draft = page.evaluate("(id) => window.villagecheck.store.draft(id)", draft_id)
    assert draft["answers"]["photo_outside"][0]["position"]["accuracy"] == 2000

    context.clear_permissions()
    page.reload()
    page.wait_for_selector("html[data-ready='1']")
    text = gps(page, "denied")
    assert "无法定位" in text
    assert "系统设置 → 位置信息" in text and "浏览器 → 网站设置 → 位置" in text
    shot(page, "p6-form-location-refused")
    context.grant_permissions(["geolocation", "background-sync"], origin=live.url)
    page.evaluate(
        "async (id) => { window.villagecheck.app.onLeave(null);"
        " await window.villagecheck.store.deleteDraft(id); }",
        draft_id,
    )


def wait_ingested(live, sha: str, timeout=30.0):
    """Until the server has processed the photo (its media row exists, its queue row is gone)."""
    deadline = time.monotonic() + timeout
    store = db(live)
    try:
        while time.monotonic() < deadline:
            if store.media(sha) is not None and store.ingest_entry(sha) is None:
                return
            time.sleep(0.05)
    finally:
        store.close()
    raise AssertionError(f"photo {sha} not ingested")


def lose_photo(live, sha: str):
    """The server loses its copy: the file, its display versions and its media row."""
    LocalMediaStore(live.app.config["MEDIA_PATH"]).discard(sha)
    store = db(live)
    try:
        store.q("DELETE FROM media WHERE sha256 = :sha", sha=sha)
        store.q("DELETE FROM ingest_queue WHERE sha256 = :sha", sha=sha)
    finally:
        store.close()


def test_a_photo_the_server_processes_shows_a_label_not_its_message(phone, live, tmp_path):
    """The last PATCH answers 503 `processing` and so does the next question: the outbox shows
    处理中, not the server's message; then it completes and the label goes."""
    context, page = phone
    photo = jpeg(tmp_path, "processing")
    sha = sha256_of(photo)
    held = {"n": 0}

    def still_processing(route):
        request = route.request
        if request.method == "GET" and request.url.endswith(sha) and held["n"] < 1:
            held["n"] += 1
            body = {
                "error": {"code": "processing", "message": "照片已收到，正在处理，请稍后再查询"}
            }
            return route.fulfill(status=503, content_type="application/json", body=json.dumps(body))
        return route.continue_()

    page.route("**/api/v1/media/*", still_processing)
    page.goto(f"{live.url}/#/new/facility/{TOILET_CHEN}")
    fill_toilet(page, [photo, jpeg(tmp_path, "processing-inside")])
    entry_id = submit(page)
    row = f"#outbox li[data-id='{entry_id}']"
    page.wait_for_selector(f"{row} .badge.processing", timeout=20000)
    assert page.inner_text(f"{row} .badge.processing") == "处理中"
    assert "请稍后再查询" not in page.inner_text("main")
    shot(page, "p7-outbox-processing")
    page.wait_for_selector(f"{row}[data-state=synced]", timeout=30000)
    assert page.locator(f"{row} .badge.processing").count() == 0
    page.unroute("**/api/v1/media/*")

    # A run that ended with photos still processing says so in words, not as a failure.
    page.evaluate(
        """async () => {
            await window.villagecheck.store.setMeta('last_sync', {ok: false, code: 'processing',
                message: '照片已收到，正在处理，请稍后再查询', at: new Date().toISOString()});
            window.villagecheck.app.rerender();
        }"""
    )
    page.wait_for_function(
        "() => document.querySelector('#sync-status')?.textContent.includes('服务器正在处理')"
    )
    assert "同步失败" not in page.inner_text("#sync-status")


def test_a_photo_stays_on_the_phone_until_the_server_confirms_it(phone, live, tmp_path):
    """The server takes the last chunk, processes the photo, then loses it before the phone's
    confirming question: the phone still holds the bytes and sends them again."""
    context, page = phone
    photo = jpeg(tmp_path, "lost")
    sha = sha256_of(photo)
    patches = []

    def lose_after_last_chunk(route):
        request = route.request
        if request.method == "PATCH" and request.url.endswith(sha):
            patches.append(int(request.headers["upload-offset"]))
            response = route.fetch()
            if len(patches) == 1:
                assert response.status == 503  # held and queued: not yet confirmed
                wait_ingested(live, sha)
                lose_photo(live, sha)
            return route.fulfill(response=response)
        return route.continue_()

    page.route("**/api/v1/media/*", lose_after_last_chunk)
    page.goto(f"{live.url}/#/new/facility/{TOILET_WEI}")
    fill_toilet(page, [photo, jpeg(tmp_path, "lost-inside")])
    entry_id = submit(page)
    page.wait_for_selector(f"#outbox li[data-id='{entry_id}'][data-state=synced]", timeout=40000)
    page.unroute("**/api/v1/media/*")
    assert patches == [0, 0], "sent once, lost by the server, sent again from the phone's copy"
    with LocalMediaStore(live.app.config["MEDIA_PATH"]).open(sha) as f:
        assert f.read() == photo.read_bytes()
    assert page.evaluate("(sha) => window.villagecheck.store.photoInfo(sha)", sha) is None


def test_the_server_switches_the_service_worker_off(phone, live):
    """PWA_SERVICE_WORKER off: on the next online load the phone unregisters its worker and
    deletes its caches, registers none, and the settings say the server switched it off; on
    again, the next load registers it again."""
    context, page = phone
    page.goto(live.url + "/#/villages")
    wait_service_worker(page)
    live.app.config["PWA_SERVICE_WORKER"] = False
    try:
        page.reload()
        page.wait_for_selector("html[data-ready='1']")
        page.wait_for_function(
            """async () => (await navigator.serviceWorker.getRegistrations()).length === 0
                && !(await caches.keys()).some((n) => n.startsWith('villagecheck-'))"""
        )
        page.goto(live.url + "/#/settings")
        page.wait_for_selector("#caps")
        assert (
            page.inner_text("#caps dd[data-cap=service_worker]") == "已由服务器关闭（只能联网使用）"
        )
        assert page.evaluate("() => navigator.serviceWorker.getRegistrations()") == []
        assert page.evaluate("() => window.villagecheck.store.getMeta('pwa_config')") == {
            "service_worker": False,
            "gps_good_metres": 50,
            "max_photo_edge": 0,  # tests/pwa_helpers.py keeps photos as taken
        }
        # Switched on again: the next load registers it again.
        live.app.config["PWA_SERVICE_WORKER"] = True
        page.reload()
        page.wait_for_selector("html[data-ready='1']")
        wait_service_worker(page)
    finally:
        live.app.config["PWA_SERVICE_WORKER"] = True
