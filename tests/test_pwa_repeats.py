"""Repeat groups, choice_filter, required_message and form versions on the phone (issue 15), in
headless Chromium at 360×740.

One browser, one live server and one page for the module. A second version of the toilet form,
published with the storage's publish function, has a repeat group of toilet rooms, each with its
own photo field. The inspector adds rooms, takes a photo in each, sees the errors of each room and
the form's own required message, watches a choice_filter clear an answer it no longer offers,
removes a room (asked to confirm, its photo gone from the phone), reopens the draft, and sends it:
the server stores the remaining room and its photo as `rooms[1].room_photo`. Then a draft started
with that version is finished after a third version was published and pulled: it opens and is
stored as version 2, while a new inspection takes version 3. Every wait is on a condition.
"""

from datetime import UTC, datetime

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

from forms.compiler import compile_form
from server.bootstrap import definition_sha256
from server.storage import connect

TOILET_CHEN = "f5b19f71-ec7a-48ad-9b2b-a06b6ae12c97"  # 陈朝光户厕, 云屿村
TOILET_WEI = "953a5154-281f-46f5-94a5-054cda2ec003"  # 韦桂芳户厕, 云屿村
TOILET_QIN = "66c164e7-c859-40d2-a844-c762939ae232"  # 覃德明户厕, 云屿村

REQUIRED_USABLE = "请选择这户厕所能不能用"


def label(zh, en):
    return {"zh": zh, "en": en}


def choice(value, zh, en, *, when):
    """A choice offered when the field `usable` has the value `when` (its choice_filter)."""
    return {"value": value, "label": label(zh, en), "properties": {"when": when}}


def toilet_v2():
    """A 回头看 round of the toilet form: a repeat of rooms, each with its own photos."""
    return {
        "id": "toilet",
        "version": 2,
        "target": "toilet",
        "title": label("厕所回头看", "Toilet recheck"),
        "updates": {"last_inspected": "${observed_on}"},
        "fields": [
            {
                "name": "usable",
                "type": "select_one",
                "label": label("能不能用", "Usable"),
                "required": True,
                "required_message": label(REQUIRED_USABLE, "Say whether it can be used"),
                "choices": [
                    {"value": "ok", "label": label("能用", "Yes")},
                    {"value": "broken", "label": label("建了不能用", "Built but unusable")},
                ],
            },
            {
                "name": "fault",
                "type": "select_one",
                "label": label("问题", "Problem"),
                "choice_filter": "when = ${usable}",
                "choices": [
                    choice("no_water", "没有水", "No water", when="broken"),
                    choice("no_door", "没有门", "No door", when="broken"),
                    choice("dirty", "用了不好用", "Poor to use", when="ok"),
                ],
            },
            {
                "name": "rooms",
                "type": "repeat",
                "label": label("厕所间", "Toilet rooms"),
                "max_count": 3,
                "fields": [
                    {
                        "name": "room_no",
                        "type": "calculate",
                        "label": label("编号", "Number"),
                        "calculation": "position(..)",
                    },
                    {
                        "name": "room_note",
                        "type": "note",
                        "label": label("第 ${room_no} 间（总体：${usable}）", "Room ${room_no}"),
                    },
                    {
                        "name": "Room_OK",
                        "type": "yes_no",
                        "label": label("这间能用", "Room usable"),
                        "required": True,
                    },
                    {
                        "name": "room_fault",
                        "type": "select_one",
                        "label": label("这间的问题", "Fault"),
                        "choice_filter": "when = ${usable}",
                        "choices": [
                            choice("no_water", "没有水", "No water", when="broken"),
                            choice("dirty", "不干净", "Dirty", when="ok"),
                        ],
                    },
                    {
                        "name": "room_photo",
                        "type": "photo",
                        "label": label("这间的照片", "Photo"),
                        "max_count": 2,
                    },
                    {
                        "name": "checked_on",
                        "type": "date",
                        "label": label("检查日期", "Checked on"),
                        "default": "today()",
                    },
                ],
            },
        ],
    }


def toilet_v3():
    v3 = toilet_v2()
    v3["version"] = 3
    v3["fields"].insert(1, {"name": "smell", "type": "yes_no", "label": label("有异味", "Smell")})
    v3["fields"] += [
        {"name": "door_count", "type": "integer", "label": label("门的数量", "Doors")},
        {
            "name": "doors",
            "type": "repeat",
            "label": label("门", "Doors"),
            "repeat_count": "${door_count}",
            "fields": [
                {"name": "door_ok", "type": "yes_no", "label": label("门完好", "Door intact")}
            ],
        },
    ]
    return v3


def publish(live, definition):
    compile_form(definition)  # as the desk and import-xlsform check before publishing
    store = connect(live.app.config["DATABASE_URL"])
    try:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        assert store.publish_form(definition, definition_sha256(definition), at=at)
    finally:
        store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, demo_db):
    app = make_app(tmp_path_factory.mktemp("repeats"), demo_db)
    with LiveServer(app) as server:
        publish(server, toilet_v2())
        yield server


def instance(n, inner=""):
    return f"[data-field=rooms] .instance[data-instance='{n}'] {inner}".strip()


def choose_in(page, n, field, value):
    """Tap a choice of a field inside room n."""
    page.click(instance(n, f"[data-field={field}] .choice[data-value='{value}']"))


def draft_id(page):
    page.wait_for_function("() => location.hash.startsWith('#/inspect/')")
    return page.evaluate("() => location.hash.split('/').pop()")


def send_and_wait(page, sub_id):
    page.click("#submit")
    page.wait_for_selector(".tabs a[data-tab=outbox].active")
    page.wait_for_selector(f"#outbox li[data-id='{sub_id}'][data-state=synced]", timeout=20000)
    wait_sync_idle(page)


def test_repeats_and_versions_on_the_phone(browser, live, tmp_path):
    context, page = logged_in_phone(browser, live, "inspector", "Field-Team1-2026")
    dialogs, accept = [], False

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.on("dialog", answer)
    vc = "window.villagecheck.store"

    # -- a new inspection takes the newest version: rooms as numbered instances --
    go(page, f"/new/facility/{TOILET_CHEN}", "[data-field=rooms] .add-instance")
    sub_id = draft_id(page)
    assert page.is_visible("[data-field=rooms] .repeat-none")
    page.click("[data-field=rooms] .add-instance")
    page.click("[data-field=rooms] .add-instance")
    page.wait_for_selector(instance(2))
    assert page.inner_text(instance(1, ".instance-head strong")) == "第 1 项"
    assert page.inner_text(instance(2, ".instance-head strong")) == "第 2 项"
    assert page.inner_text("[data-field=rooms] .add-instance").endswith("添加一项")
    for n, colour in ((1, (200, 30, 30)), (2, (30, 30, 200))):
        page.set_input_files(f"#f-rooms-{n}-room_photo", jpeg(tmp_path, f"room{n}", colour))
        page.wait_for_selector(instance(n, "[data-field=room_photo] .photo img"))
    choose_in(page, 1, "Room_OK", "true")
    draft = page.evaluate(f"async () => {vc}.draft('{sub_id}')")
    red, blue = (room["room_photo"][0]["sha256"] for room in draft["answers"]["rooms"])
    assert sorted(draft["photos"]) == sorted([red, blue])  # the draft keeps both rooms' photos

    # -- errors per instance, and the form's own required message --
    page.click("#submit")
    page.wait_for_selector(instance(2, "[data-field=Room_OK] .errors:not([hidden])"))
    assert page.inner_text("[data-field=usable] .errors") == REQUIRED_USABLE
    assert page.is_hidden(instance(1, "[data-field=Room_OK] .errors"))
    page.locator(instance(2)).scroll_into_view_if_needed()
    shot(page, "repeats1-rooms-errors")

    # -- choice_filter: only the choices offered; an answer no longer offered is cleared --
    assert page.inner_text(instance(2, "[data-field=room_note]")) == "第 2 间（总体：…）"
    choose(page, "usable", "broken")
    # a label names answers as they are shown (XLSForm's ${} in labels)
    assert page.inner_text(instance(1, "[data-field=room_note]")) == "第 1 间（总体：建了不能用）"
    assert page.is_hidden("[data-field=fault] .choice[data-value=dirty]")
    choose(page, "fault", "no_water")
    choose_in(page, 2, "room_fault", "no_water")  # inside a room, the same filter
    choose(page, "usable", "ok")
    page.wait_for_selector("[data-field=fault] .choice[data-value=no_water]", state="hidden")
    assert page.locator("[data-field=fault] .choice.on").count() == 0
    assert page.is_hidden(instance(2, "[data-field=room_fault] .choice[data-value=no_water]"))
    assert page.locator(instance(2, "[data-field=room_fault] .choice.on")).count() == 0
    assert page.inner_text(instance(2, "[data-field=room_no] .value")) == "2"  # position(..)
    assert "fault" not in page.evaluate(f"async () => ({vc}.draft('{sub_id}'))")["answers"]

    # -- max_count: a third room, then no more; an empty room goes without asking --
    page.click("[data-field=rooms] .add-instance")
    page.wait_for_selector(instance(3))
    assert page.is_disabled("[data-field=rooms] .add-instance")
    assert page.is_visible("[data-field=rooms] .repeat-max")
    page.click(instance(3, ".remove-instance"))
    page.wait_for_selector(instance(3), state="detached")
    assert dialogs == [] and page.is_enabled("[data-field=rooms] .add-instance")

    # -- removing a room with answers asks first; once confirmed its photo leaves the phone --
    page.click(instance(1, ".remove-instance"))
    assert dialogs == ["删除第 1 项？这一项的答案和照片都会删除。"]
    assert page.locator("[data-field=rooms] .instance").count() == 2  # dismissed: kept
    accept = True
    page.click(instance(1, ".remove-instance"))
    page.wait_for_selector(instance(2), state="detached")
    page.wait_for_selector(instance(1, f".photo[data-sha256='{blue}'] img"))
    page.wait_for_function(
        f"async () => !(await {vc}.photoInfo('{red}')) && !(await {vc}.thumbBlob('{red}'))"
    )
    assert page.evaluate(f"async () => ({vc}.draft('{sub_id}'))")["photos"] == [blue]
    assert page.inner_text(instance(1, "[data-field=room_no] .value")) == "1"  # renumbered
    shot(page, "repeats2-room-removed")

    # -- the draft restores its instances and their photos --
    go(page, "/drafts", ".tabs a[data-tab=drafts].active")
    go(page, f"/inspect/{sub_id}", instance(1, f".photo[data-sha256='{blue}'] img"))
    assert page.locator("[data-field=rooms] .instance").count() == 1
    assert page.is_visible("[data-field=usable] .choice.on[data-value=ok]")

    # -- sent: the server stores the room and its photo under rooms[1] --
    choose_in(page, 1, "Room_OK", "false")
    send_and_wait(page, sub_id)
    store = connect(live.app.config["DATABASE_URL"])
    try:
        stored = store.submission(sub_id)
        assert stored["form_version"] == 2
        rooms = stored["answers"]["rooms"]
        assert len(rooms) == 1 and rooms[0]["Room_OK"] is False
        assert rooms[0]["checked_on"] == stored["observed_at"][:10]  # default today()
        assert [p["sha256"] for p in rooms[0]["room_photo"]] == [blue]
        media = store.rows(
            "SELECT field, sha256 FROM submission_media WHERE submission_id = :id", id=sub_id
        )
        assert [(m["field"], m["sha256"]) for m in media] == [("rooms[1].room_photo", blue)]
    finally:
        store.close()
    go(page, f"/outbox/item/{sub_id}", "#item-answers .item-instances")
    assert "第 1 项" in page.inner_text("#item-answers [data-field=rooms]")

    # -- versions: a draft of v2, then v3 is published and pulled --
    go(page, f"/new/facility/{TOILET_WEI}", "[data-field=rooms] .add-instance")
    old_id = draft_id(page)
    choose(page, "usable", "ok")
    page.click("[data-field=rooms] .add-instance")
    choose_in(page, 1, "Room_OK", "true")
    go(page, "/drafts", ".tabs a[data-tab=drafts].active")
    publish(live, toilet_v3())
    assert page.evaluate("async () => (await window.villagecheck.sync.syncNow('test')).ok")
    assert page.evaluate(f"async () => (await {vc}.latestForms()).toilet.version") == 3
    go(page, f"/inspect/{old_id}", "#old-version")  # still the draft's own version
    assert page.locator("[data-field=smell]").count() == 0
    assert page.is_visible(instance(1, "[data-field=Room_OK] .choice.on[data-value=true]"))
    send_and_wait(page, old_id)
    store = connect(live.app.config["DATABASE_URL"])
    try:
        stored = store.submission(old_id)
        assert stored["form_version"] == 2
        assert [room["Room_OK"] for room in stored["answers"]["rooms"]] == [True]
    finally:
        store.close()
    # A new inspection takes the newest version.
    go(page, f"/new/facility/{TOILET_QIN}", "[data-field=smell]")
    assert page.locator("#old-version").count() == 0

    # -- repeat_count: exactly as many instances as it says, none added or removed by hand --
    doors = "[data-field=doors] .instance"
    page.fill("#f-door_count", "2")
    page.wait_for_function(f'() => document.querySelectorAll("{doors}").length === 2')
    assert page.is_hidden("[data-field=doors] .add-instance")
    assert page.is_hidden(f"{doors}[data-instance='1'] .remove-instance")
    page.click(f"{doors}[data-instance='2'] [data-field=door_ok] .choice[data-value=false]")
    page.fill("#f-door_count", "1")
    page.wait_for_function(f'() => document.querySelectorAll("{doors}").length === 1')
    page.fill("#f-door_count", "3")  # the second door comes back as it was
    page.wait_for_function(f'() => document.querySelectorAll("{doors}").length === 3')
    assert page.is_visible(f"{doors}[data-instance='2'] .choice.on[data-value=false]")
    assert page.errors == []
    context.close()
