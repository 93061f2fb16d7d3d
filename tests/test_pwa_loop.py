"""The field loop on the phone and the PWA polish (issue 12), in headless Chromium at 360×740.

One browser and one live server for the module; two journeys (an inspector's, a secretary's)
check what the user sees: fix and resend pre-fills the answers and photos and links the new
submission to the old one on the server (`replaces`), the 同步 badge and the pinned 被退回
item, the conflict notice (the pull is stubbed with the server's `outcomes`), the item view,
the archive, the install card, the font size, 44 px tap targets, the register form's inline
errors, toasts that keep off the focused input, calculated values with labels, and the
completion date that defaults to today. Every wait is on a condition.
"""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pwa_helpers import (
    LiveServer,
    choose,
    go,
    jpeg,
    logged_in_phone,
    make_app,
    shot,
    wait_sync_idle,
)

from server.storage import connect

TOILET_CHEN = "f5b19f71-ec7a-48ad-9b2b-a06b6ae12c97"  # 陈朝光户厕, 云屿村
TOILET_WEI = "953a5154-281f-46f5-94a5-054cda2ec003"  # 韦桂芳户厕, 云屿村
ZONE_YUNYU = "8622b188-02a5-4071-8ecd-92217f372935"  # 云屿村村庄 (tidiness zone)
YUNYU = "450222101001"
CONFLICT = "与他人报告不一致，待督查确定"
CHINA = timezone(timedelta(hours=8))

# Every visible button, link and tap-able control of a screen, with its height in CSS px.
TAP_TARGETS = """() => [...document.querySelectorAll(
    'button, a[href], label.choice, label.camera, summary, input[type=text], input[type=date]')]
  .filter((el) => el.offsetParent !== null || getComputedStyle(el).position === 'fixed')
  .map((el) => { const r = el.getBoundingClientRect();
    return {h: r.height, w: r.width, what: el.outerHTML.slice(0, 80)}; })
  .filter((t) => t.w > 0)"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, demo_db):
    app = make_app(tmp_path_factory.mktemp("loop"), demo_db)
    with LiveServer(app) as server:
        yield server


def small_targets(page, screen):
    """The tap targets of this screen under 44 px tall."""
    # The tabs at least (the query finds them); a screen may still be drawing its lists.
    page.wait_for_function(f"() => ({TAP_TARGETS})().length >= 4")
    targets = page.evaluate(TAP_TARGETS)
    bad = [t for t in targets if t["h"] < 43.5]
    return [(screen, t) for t in bad]


def outbox_ids(page):
    return page.eval_on_selector_all("#outbox > li", "els => els.map((e) => e.dataset.id)")


def stub_conflicts(page, sub_id, facility):
    """The pull says what the server says of a submission in conflict (`outcomes`, and the
    facility's `conflicts`; tests/test_uncount.py makes them for real): here for a rejected
    item, which the server would not mark, so that one screen shows every notice at once."""

    def handle(route):
        response = route.fetch()
        body = response.json()
        body["outcomes"] = [
            {
                "submission_id": sub_id,
                "state": "rejected",
                "conflict": True,
                "conflict_fields": ["sanitary"],
                "lost_fields": ["sanitary"],
            }
        ]
        body["facilities"] = [*body.get("facilities", []), {**facility, "conflicts": ["sanitary"]}]
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/api/v1/sync/pull*", handle)


def test_inspector_fixes_and_resends_and_the_app_is_polished(browser, live, tmp_path):
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    errors = page.errors
    small = small_targets(page, "villages")

    # -- install card: no beforeinstallprompt in headless Chromium → the how-to, dismissible --
    assert page.is_visible("#install #install-howto")
    shot(page, "loop1-villages-install")
    # Where the browser offers it (Android Chrome), the card has the 添加 button instead.
    page.evaluate(
        """() => { const e = new Event('beforeinstallprompt', {cancelable: true});
          e.prompt = () => { window.prompted = true; };
          e.userChoice = Promise.resolve({outcome: 'dismissed'});
          window.dispatchEvent(e); }"""
    )
    page.wait_for_selector("#install .install-add")
    assert page.locator("#install-howto").count() == 0
    page.click("#install .install-add")
    page.wait_for_function("() => window.prompted === true")
    page.click("#install .install-dismiss")
    page.wait_for_selector("#install", state="detached")
    go(page, "/drafts", ".tabs a[data-tab=drafts].active")
    go(page, "/villages", "main a.row")
    assert page.locator("#install").count() == 0  # dismissed for good

    # -- an inspection with two photos, sent and rejected --
    go(page, f"/new/facility/{TOILET_CHEN}", "[data-field=sanitary]")
    for field, value in (
        ("toilet_type", "household"), ("sanitary", "true"), ("harmless", "true"),
        ("construction", "septic3"), ("in_use", "true"), ("usage_notice", "true"),
        ("phones_posted", "true"), ("manure_emptied", "true"),
    ):  # fmt: skip
        choose(page, field, value)
    for field, colour in (("photo_outside", (200, 30, 30)), ("photo_inside", (30, 30, 200))):
        page.set_input_files(f"#f-{field}", jpeg(tmp_path, field, colour))
        page.wait_for_selector(f"[data-field={field}] .photo img")
    small += small_targets(page, "inspect")
    page.click("#submit")
    old_id = page.locator("#outbox li").first.get_attribute("data-id")
    page.wait_for_selector(f"#outbox li[data-id='{old_id}'][data-state=synced]", timeout=20000)
    photos = page.evaluate(
        f"async () => (await window.villagecheck.store.outboxEntry('{old_id}')).photos"
    )
    assert len(photos) == 2

    token = live.token("supervisor", "Desk-Super-2026")
    status, body = live.api(
        "POST", f"/api/v1/submissions/{old_id}/review",
        {"decision": "reject", "reason": "内部照片看不清"}, token,
    )  # fmt: skip
    assert status == 200, body

    # A newer synced item (it would sit above the rejected one) and one synced 10 days ago.
    facility = page.evaluate(f"() => window.villagecheck.store.facility('{TOILET_CHEN}')")
    page.evaluate(
        """async ([owner, old]) => {
          const s = window.villagecheck.store;
          const now = new Date().toISOString();
          const base = {type: 'submission', owner, record: 'x', recordType: 'facility',
            village: '450222101001', name: '测试', title: {zh: '户厕检查', en: 'Toilet'},
            photos: [], missing: [], errors: null, review: null};
          const item = {form: 'toilet', version: 1, answers: {}, observed_at: now};
          await s.putOutbox({...base, id: 'newer-synced', seq: 900, state: 'synced', item,
            createdAt: now, answeredAt: now});
          await s.putOutbox({...base, id: 'old-synced', seq: 1, state: 'synced', item,
            createdAt: old, answeredAt: old});
        }""",
        [page.evaluate("() => window.villagecheck.app.session.user.id"),
         (datetime.now(UTC) - timedelta(days=10)).isoformat()],
    )  # fmt: skip
    stub_conflicts(page, old_id, facility)
    page.click("#sync-now")
    page.wait_for_selector(f"#outbox li[data-id='{old_id}'][data-state=rejected]", timeout=20000)
    wait_sync_idle(page)
    page.wait_for_selector(f"#outbox li[data-id='{old_id}'] .conflict-note")
    page.unroute("**/api/v1/sync/pull*")

    # -- the badge, the pinned item, the conflict notice, the archive --
    page.wait_for_function("() => document.querySelector('.tabs .fix-count').textContent === '1'")
    ids = outbox_ids(page)
    assert ids[0] == old_id and "newer-synced" in ids and "old-synced" not in ids
    row = page.inner_text(f"#outbox li[data-id='{old_id}']")
    assert CONFLICT in row and "内部照片看不清" in row and "修改后重新提交" in row
    assert page.inner_text("#outbox-archive summary") == "已归档 1 条（已同步超过 7 天）"
    shot(page, "loop2-outbox-rejected-pinned")
    small += small_targets(page, "outbox")

    # -- the item view: labels, values, thumbnails, state --
    page.click(f"#outbox li[data-id='{old_id}'] a.open")
    page.wait_for_selector("#item-answers .item-photos img")
    view = page.inner_text("main")
    assert "是卫生厕所" in view and "改厕类型" in view and "三格化粪池式" in view
    assert "sanitary" not in view and "septic3" not in view
    assert page.locator("#item-answers .item-photos img").count() == 2
    assert "被退回" in page.inner_text("#item-head") and CONFLICT in view
    shot(page, "loop3-item-view")
    small += small_targets(page, "item")

    # -- fix and resend: answers and photos carried over; one thumbnail must be re-fetched --
    page.evaluate(
        """(sha) => new Promise((ok, fail) => {
          const req = indexedDB.open('villagecheck');
          req.onsuccess = () => { const tx = req.result.transaction('thumbs', 'readwrite');
            tx.objectStore('thumbs').delete(sha); tx.oncomplete = () => ok(); tx.onerror = fail; };
        })""",
        photos[1],
    )
    assert page.inner_text("#item-head button.resend") == "修改后重新提交"
    # The facility's own main action is the fix too (the notice is there as well).
    go(page, f"/facility/{TOILET_CHEN}", ".actions button.resend")
    assert page.inner_text("#facility-conflict") == CONFLICT
    page.click(".actions button.resend")
    page.wait_for_selector("#replacing")
    for field, value in (
        ("sanitary", "true"),
        ("construction", "septic3"),
        ("toilet_type", "household"),
    ):
        assert page.is_visible(f"[data-field={field}] .choice.on[data-value='{value}']")
    for sha in photos:
        page.wait_for_selector(f".photo[data-sha256='{sha}'] img")
    shot(page, "loop4-resend-prefilled")
    choose(page, "manure_emptied", "false")
    page.click("#submit")
    page.wait_for_selector(".tabs a[data-tab=outbox].active")
    new_id = page.evaluate(
        f"""async () => (await window.villagecheck.store.outbox())
          .find((e) => e.item && e.item.replaces === '{old_id}').id"""
    )
    wait_sync_idle(page)
    page.wait_for_selector(f"#outbox li[data-id='{new_id}'][data-state=synced]", timeout=20000)
    store = connect(live.app.config["DATABASE_URL"])
    try:
        new = store.submission(new_id)
        assert new["replaces"] == old_id
        assert new["answers"]["manure_emptied"] is False and new["answers"]["sanitary"] is True
        assert sorted(p["sha256"] for f in ("photo_outside", "photo_inside")
                      for p in new["answers"][f]) == sorted(photos)  # fmt: skip
    finally:
        store.close()
    # The old item's button is gone now that its replacement is taken; it is no longer pinned.
    page.wait_for_selector(".tabs a[data-tab=outbox] .fix-count", state="hidden")
    page.wait_for_function(
        f"() => document.querySelector('#outbox > li').dataset.id === '{new_id}'"
    )
    assert "已重新提交（已同步）" in page.inner_text(f"#outbox li[data-id='{old_id}'] .resent")
    assert page.locator(f"#outbox li[data-id='{old_id}'] button.resend").count() == 0
    shot(page, "loop5-resent")

    # -- the facility page says the record waits for a supervisor --
    go(page, f"/facility/{TOILET_CHEN}", "#facility-conflict")
    assert page.inner_text("#facility-conflict") == CONFLICT
    small += small_targets(page, "facility")
    go(page, f"/village/{YUNYU}", "main a.row")
    small += small_targets(page, "village")

    # -- register: inline errors under their fields, gone as each is fixed --
    go(page, f"/register/{YUNYU}", "#save-facility")
    page.click("#save-facility")
    page.wait_for_selector("[data-error=kind]:not([hidden])")
    assert page.is_visible("[data-error=name]")
    shot(page, "loop8-register-inline-errors")
    page.click("button.choice[data-kind=rubbish]")
    page.wait_for_selector("[data-error=kind]", state="hidden")
    assert page.is_visible("[data-error=name]")
    page.fill("#facility-name", "村口垃圾点")
    page.wait_for_selector("[data-error=name]", state="hidden")
    small += small_targets(page, "register")

    # -- a toast never covers the focused input --
    # The name field scrolled down to just above the bottom bar, where toasts go by default.
    page.evaluate("() => document.querySelector('main').style.paddingTop = '900px'")
    page.evaluate("() => document.querySelector('#facility-name').scrollIntoView({block: 'end'})")
    page.evaluate("() => window.scrollBy(0, 90)")
    page.focus("#facility-name")
    overlap = page.evaluate(
        """async () => {
          const { toast } = await import('/app/js/screens/ui.js');
          toast('已保存');
          const a = document.getElementById('toast').getBoundingClientRect();
          const b = document.activeElement.getBoundingClientRect();
          return [a.top < b.bottom && b.top < a.bottom, document.getElementById('toast').className];
        }"""
    )
    assert overlap[0] is False and "high" in overlap[1], overlap
    page.evaluate("() => history.back()")

    # -- a calculated field shows the items' questions, not their keys --
    go(page, f"/new/facility/{ZONE_YUNYU}", "[data-field=no_clutter]")
    choose(page, "no_clutter", "fail")
    calc = page.inner_text("[data-field=failed_items] .value")
    assert calc == "无乱堆乱放", calc

    # -- font size: 特大 makes the text bigger, and stays after a reload --
    go(page, "/settings", "#font-size")
    small += small_targets(page, "settings")
    h2_size = "() => parseFloat(getComputedStyle(document.querySelector('main h2')).fontSize)"
    before = page.evaluate(h2_size)
    page.click("#font-size button[data-size=xlarge]")
    page.wait_for_selector("html[data-font=xlarge]")
    page.reload()
    page.wait_for_selector("html[data-ready='1'][data-font=xlarge]")
    page.wait_for_selector("#font-size button.on[data-size=xlarge]")
    after = page.evaluate(h2_size)
    assert after > before * 1.25, (before, after)
    shot(page, "loop6-settings-xlarge")
    page.click("#font-size button[data-size=normal]")
    page.wait_for_selector("html[data-font=normal]")

    assert small == [], small
    assert errors == []
    context.close()


def test_secretary_completion_date_defaults_to_today(browser, live):
    context, page = logged_in_phone(browser, live, "secretary", "Village-Sec-2026")
    page.click(".tabs a[data-tab=tasks]")
    page.locator("main a.row").first.click()
    page.wait_for_selector("[data-field=status]")
    assert page.is_hidden("[data-field=completed_on]")
    choose(page, "status", "done")
    today = datetime.now(CHINA).date().isoformat()
    page.wait_for_function(f"() => document.querySelector('#f-completed_on').value === '{today}'")
    page.wait_for_function(
        "() => document.querySelector('#saved').textContent.includes('已自动保存')"
    )
    shot(page, "loop7-task-date-today")
    assert page.errors == []
    context.close()
