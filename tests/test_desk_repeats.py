"""Repeat groups and form versions on the desk (issue 15): the exports' repeat sheet and long CSV,
the instances on the submission and conflict pages, the versions and their differences under
/desk/admin/forms, and the pure forms/diff.py.

The world: a form `toilet_rooms` published as v1 and v2 (v2 adds `new_score` and, inside the
repeat group 厕所间, `room_kind`; it drops `old_note` and `room_area`; it relabels `room_ok`),
and one submission of each version, written through the storage layer (which stores any
answers JSON), the v1 one with two instances and a photo in its second.
"""

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import date

import pytest
from conftest import YUNYU
from desk_helpers import desk_session
from openpyxl import load_workbook

from forms.diff import describe, diff
from server.exports import repeat_groups
from server.reports import problems_in
from server.supervisor import _flat_answers, field_path_label

FORM = "toilet_rooms"
S1, S2 = "sub-rooms-v1", "sub-rooms-v2"
PHOTO_1, PHOTO_2 = "1" * 64, "2" * 64


def _yes_no(name, zh):
    return {"name": name, "type": "yes_no", "label": {"zh": zh, "en": name}}


V1 = {
    "id": FORM,
    "version": 1,
    "target": "toilet",
    "title": {"zh": "户厕回头看", "en": "Toilet recheck"},
    "fields": [
        _yes_no("toilet_ok", "是否可用"),
        {"name": "old_note", "type": "text", "label": {"zh": "旧备注", "en": "Old note"}},
        {
            "name": "rooms",
            "type": "repeat",
            "label": {"zh": "厕所间", "en": "Toilet rooms"},
            "fields": [
                _yes_no("room_ok", "是否正常"),
                {"name": "room_photo", "type": "photo", "label": {"zh": "照片", "en": "Photo"}},
                {"name": "room_area", "type": "decimal", "label": {"zh": "面积", "en": "Area"}},
            ],
        },
    ],
}
V2 = {
    **V1,
    "version": 2,
    "fields": [
        _yes_no("toilet_ok", "是否可用"),
        {"name": "new_score", "type": "integer", "label": {"zh": "评分", "en": "Score"}},
        {
            "name": "rooms",
            "type": "repeat",
            "label": {"zh": "厕所间", "en": "Toilet rooms"},
            "max_count": 5,
            "fields": [
                _yes_no("room_ok", "能否使用"),
                {"name": "room_photo", "type": "photo", "label": {"zh": "照片", "en": "Photo"}},
                {
                    "name": "room_kind",
                    "type": "select_one",
                    "label": {"zh": "便器类型", "en": "Kind"},
                    "choices": [
                        {"value": "squat", "label": {"zh": "蹲便", "en": "Squat"}},
                        {"value": "seat", "label": {"zh": "坐便", "en": "Seat"}},
                    ],
                },
            ],
        },
    ],
}


def _publish(store, definition):
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False)
    return store.publish_form(
        definition,
        hashlib.sha256(text.encode()).hexdigest(),
        at=f"2026-11-0{definition['version']}T08:00:00+00:00",
    )


def _photo(sha, field):
    return {"field": field, "sha256": sha, "captured_at": "2026-11-20T10:31:05+08:00"}


@pytest.fixture
def world(app, store, facilities):
    facility = facilities[(YUNYU, "toilet")]
    author = store.user(username="inspector")["id"]
    with store.write():
        assert _publish(store, V1) and _publish(store, V2)

    def row(sid, version, answers, observed):
        return {
            "id": sid,
            "form_id": FORM,
            "form_version": version,
            "record_id": facility["id"],
            "record_type": "facility",
            "village_code": YUNYU,
            "author_id": author,
            "device_id": "phone-rooms",
            "clock": f"{1000 + version:013d}-0001-phone-rooms",
            "observed_at": observed,
            "received_at": "2026-11-20T02:00:00+00:00",
            "answers": answers,
            "content_hash": f"hash-{sid}",
            "state": "complete",
        }

    v1 = {
        "toilet_ok": True,
        "old_note": "=cmd",
        "rooms": [
            {"room_ok": True, "room_area": 12.5},
            {"room_ok": False, "room_area": 8, "room_photo": [{"sha256": PHOTO_1}]},
        ],
    }
    v2 = {
        "toilet_ok": False,
        "new_score": 7,
        "rooms": [{"room_ok": True, "room_kind": "seat", "room_photo": [{"sha256": PHOTO_2}]}],
    }
    first = row(S1, 1, v1, "2026-11-18T09:00:00+08:00")
    second = row(S2, 2, v2, "2026-11-19T09:00:00+08:00")
    with store.write():
        store.insert_submissions(
            [
                (first, [_photo(PHOTO_1, "rooms[2].room_photo")]),
                (second, [_photo(PHOTO_2, "rooms[1].room_photo")]),
            ]
        )
    return {"facility": facility}


def _admin(client, store):
    desk_session(client, store, "admin")
    return client


# -- exports ---------------------------------------------------------------------------------


def test_xlsx_has_a_sheet_per_repeat_with_instances_and_merged_columns(client, store, world):
    _admin(client, store)
    response = client.get(f"/desk/exports/forms/{FORM}.xlsx")
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.get_data()))
    assert book.sheetnames == ["户厕回头看", "厕所间", "说明"]
    main = [list(r) for r in book["户厕回头看"].iter_rows(values_only=True)]
    header = main[0]
    # v2's order first, then what only v1 had; the group is one column: its instance count
    assert header[12:] == ["是否可用", "评分", "厕所间（项数）", "旧备注"]
    by_id = {r[0]: r for r in main[1:]}
    assert by_id[S1][12:] == ["是", None, 2, "'=cmd"]
    assert by_id[S2][12:] == ["否", 7, 1, None]

    sheet = book["厕所间"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == [
        *("提交编号", "第几项", "村名", "检查对象"),
        "能否使用",
        "照片",
        "便器类型",
        "面积",
    ]
    name = world["facility"]["name"]
    photo_1 = f"http://localhost/desk/media/{PHOTO_1}/1280"
    photo_2 = f"http://localhost/desk/media/{PHOTO_2}/1280"
    assert rows[1:] == [
        [S1, 1, "云屿村", name, "是", None, None, 12.5],
        [S1, 2, "云屿村", name, "否", photo_1, None, 8],
        [S2, 1, "云屿村", name, "是", photo_2, "坐便", None],
    ]
    assert sheet["F3"].hyperlink.target == photo_1  # photos are links, as top-level ones
    assert sheet["F4"].hyperlink.target == photo_2


def test_long_csv_of_a_repeat_and_its_scope(client, store, world):
    _admin(client, store)
    response = client.get(f"/desk/exports/forms/{FORM}.csv?repeat=rooms&month=2026-11")
    assert response.status_code == 200
    assert "toilet_rooms-rooms-2026-11.csv" in response.headers["Content-Disposition"]
    data = response.get_data().decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(data)))
    assert header[:5] == ["提交编号", "第几项", "村名", "检查对象", "能否使用"]
    assert [(r[0], r[1], r[4], r[7]) for r in rows] == [
        (S1, "1", "是", "12.5"),
        (S1, "2", "否", "8"),
        (S2, "1", "是", ""),
    ]
    _, *none = list(csv.reader(io.StringIO(
        client.get(f"/desk/exports/forms/{FORM}.csv?repeat=rooms&month=2026-10").get_data(
            as_text=True
        ).lstrip("\ufeff")
    )))  # fmt: skip
    assert none == []
    assert client.get(f"/desk/exports/forms/{FORM}.csv?repeat=nope").status_code == 404
    assert client.get("/desk/exports/forms/toilet.csv?repeat=rooms").status_code == 404
    entries = [e for e in store.audit_entries(entity_id=FORM) if e["action"] == "export.csv"]
    assert entries and json.loads(entries[0]["detail"])["repeat"] == "rooms"
    page = client.get("/desk/exports").get_data(as_text=True)
    assert f"/desk/exports/forms/{FORM}.csv?repeat=rooms" in page


def test_repeat_groups_merge_inner_fields_by_name_newest_first():
    groups = repeat_groups([V2, V1])
    assert [g["name"] for g in groups] == ["rooms"]
    assert [f["name"] for f in groups[0]["fields"]] == [
        "room_ok",
        "room_photo",
        "room_kind",
        "room_area",
    ]
    assert groups[0]["fields"][0]["label"]["zh"] == "能否使用"  # the newest label


# -- the desk pages ----------------------------------------------------------------------------


def test_submission_page_shows_numbered_instances_and_photo_labels(client, store, world):
    _admin(client, store)
    html = client.get(f"/desk/submissions/{S1}").get_data(as_text=True)
    assert html.count('class="repeat-instance"') == 2
    second = html[html.index('id="rooms-2"') :]
    second = second[: second.index("</table>")]
    assert "厕所间 第2项" in second
    assert re.search(r"是否正常</th><td>\s*否", second)
    assert re.search(r"面积</th><td>\s*8", second)
    assert PHOTO_1 in second or "照片未上传" in second
    first = html[html.index('id="rooms-1"') :]
    first = first[: first.index("</table>")]
    assert re.search(r"是否正常</th><td>\s*是", first) and "12.5" in first
    assert "照片 1 · 厕所间 第2项 · 照片" in html  # the photo card names its instance
    assert "共 2 项" in html


def test_field_paths_resolve_through_the_definition():
    assert field_path_label(V1, "rooms[2].room_photo") == "厕所间 第2项 · 照片"
    assert field_path_label(V2, "rooms[10].room_ok") == "厕所间 第10项 · 能否使用"
    assert field_path_label(V1, "toilet_ok") == "是否可用"
    assert field_path_label(V1, "gone[1].x") == "gone 第1项 · x"
    assert field_path_label(None, "photo_outside") == "photo_outside"


def test_conflict_sides_and_report_read_instances():
    from server.supervisor import _answers

    flat = _flat_answers(_answers(V1, {"rooms": [{"room_ok": True}, {"room_area": 3}]}))
    assert [(a["name"], a["label"], a.get("text")) for a in flat] == [
        ("rooms", "厕所间", "共 2 项"),
        ("rooms[1].room_ok", "厕所间 第1项 · 是否正常", "是"),
        ("rooms[2].room_area", "厕所间 第2项 · 面积", "3"),
    ]
    found = problems_in({"rooms": [{"room_ok": True}, {"room_ok": False}]}, V1["fields"])
    assert found == ["厕所间 第2项 · 是否正常：否"]


def test_admin_forms_lists_versions_counts_and_differences(client, store, world):
    _admin(client, store)
    html = client.get("/desk/admin/forms").get_data(as_text=True)
    section = html[html.index(f'id="form-{FORM}"') :]
    section = section[: section.index("</section>")]
    v2 = section[section.index('data-version="2"') : section.index('data-version="1"')]
    v1 = section[section.index('data-version="1"') :]
    assert "2026-11-02 16:00" in v2 and "2026-11-01 16:00" in v1  # Beijing time
    assert re.search(r'class="count">1<', v2) and re.search(r'class="count">1<', v1)
    assert "首个版本" in v1
    assert re.findall(r'class="added" data-field="([^"]+)"', v2) == ["new_score", "room_kind"]
    assert re.findall(r'class="removed" data-field="([^"]+)"', v2) == ["old_note", "room_area"]
    assert re.findall(r'class="changed" data-field="([^"]+)"', v2) == ["rooms", "room_ok"]
    assert "新增：便器类型（room_kind，select_one，在“厕所间”内）" in v2
    assert "标签：是否正常 → 能否使用" in v2
    assert "最多项数：（无） → 5" in v2


def test_publishing_never_replaces_an_old_version(store, world):
    with store.write():
        assert not _publish(store, V1)  # the same content again: nothing new
    changed = {**V1, "title": {"zh": "改过的", "en": "changed"}}
    with pytest.raises(ValueError), store.write():
        _publish(store, changed)
    assert store.form_definition(FORM, 1) == V1
    assert [d["version"] for d in store.form_versions(FORM)] == [2, 1]
    with store.write():
        assert _publish(store, {**V2, "version": 3})
    assert [d["version"] for d in store.form_versions(FORM)] == [3, 2, 1]
    assert store.form_definition(FORM, 1) == V1 and store.form_definition(FORM, 2) == V2


# -- forms/diff.py, plain data -------------------------------------------------------------------


def _field(name, type_="text", zh=None, **extra):
    return {"name": name, "type": type_, "label": {"zh": zh or name, "en": name}, **extra}


def _form(*fields):
    return {"id": "f", "version": 1, "fields": list(fields)}


def test_diff_of_identical_forms_is_empty():
    assert diff(V1, V1) == {"added": [], "removed": [], "changed": []}


def test_diff_names_added_removed_and_changed_fields_inside_repeats():
    result = diff(V1, V2)
    assert result["added"] == [
        {"name": "new_score", "type": "integer", "label": "评分", "repeat": None},
        {"name": "room_kind", "type": "select_one", "label": "便器类型", "repeat": "rooms"},
    ]
    assert result["removed"] == [
        {"name": "old_note", "type": "text", "label": "旧备注", "repeat": None},
        {"name": "room_area", "type": "decimal", "label": "面积", "repeat": "rooms"},
    ]
    assert result["changed"] == [
        {
            "name": "rooms",
            "type": "repeat",
            "label": "厕所间",
            "repeat": None,
            "changes": [{"what": "max_count", "old": None, "new": 5}],
        },
        {
            "name": "room_ok",
            "type": "yes_no",
            "label": "能否使用",
            "repeat": "rooms",
            "changes": [
                {
                    "what": "label",
                    "old": {"zh": "是否正常", "en": "room_ok"},
                    "new": {"zh": "能否使用", "en": "room_ok"},
                }
            ],
        },
    ]


def test_diff_sees_each_kind_of_change():
    choices = [{"value": "a", "label": {"zh": "甲"}}, {"value": "b", "label": {"zh": "乙"}}]
    old = _form(
        _field("kind", "select_one", choices=choices, relevant="${x} = 1", required=True),
        _field("n", "integer", constraint=". > 0"),
        _field("total", "calculate", calculation="${n} * 2"),
        _field("moved", "text"),
        _field("r", "repeat", fields=[_field("inner", "text")]),
        _field("pick", "select_one", choices=choices),
    )
    new_choices = [{"value": "b", "label": {"zh": "乙二"}}, {"value": "c", "label": {"zh": "丙"}}]
    new = _form(
        _field("kind", "select_many", choices=new_choices, relevant="${x} = 2"),
        _field("n", "integer", constraint=". >= 0"),
        _field("total", "calculate", calculation="${n} * 3"),
        _field(
            "r",
            "repeat",
            repeat_count="${n}",
            min_count=1,
            fields=[_field("inner", "text", required=True), _field("moved")],
        ),
        _field("pick", "select_one", choices=choices, choice_filter="grade = ${n}"),
    )
    changes = {c["name"]: c["changes"] for c in diff(old, new)["changed"]}
    assert changes["kind"] == [
        {"what": "type", "old": "select_one", "new": "select_many"},
        {"what": "relevant", "old": "${x} = 1", "new": "${x} = 2"},
        {"what": "required", "old": True, "new": False},
        {"what": "choices_added", "values": ["c"]},
        {"what": "choices_removed", "values": ["a"]},
        {"what": "choice_labels", "values": ["b"]},
    ]
    assert changes["n"] == [{"what": "constraint", "old": ". > 0", "new": ". >= 0"}]
    assert changes["total"] == [{"what": "calculation", "old": "${n} * 2", "new": "${n} * 3"}]
    assert changes["inner"] == [{"what": "required", "old": False, "new": True}]
    assert changes["moved"] == [{"what": "repeat", "old": None, "new": "r"}]  # one field moved
    assert changes["r"] == [
        {"what": "min_count", "old": None, "new": 1},
        {"what": "repeat_count", "old": None, "new": "${n}"},
    ]
    assert changes["pick"] == [{"what": "choice_filter", "old": None, "new": "grade = ${n}"}]
    assert set(changes) == {"kind", "n", "total", "inner", "moved", "r", "pick"}
    assert diff(old, new)["added"] == diff(old, new)["removed"] == []
    assert describe(changes["kind"][2]) == "必填：是 → 否"
    assert describe(changes["kind"][3]) == "新增选项：c"


def test_diff_treats_absent_and_empty_alike_and_copes_with_nothing():
    assert diff(_form(_field("a", required=False, relevant="")), _form(_field("a"))) == {
        "added": [],
        "removed": [],
        "changed": [],
    }
    assert diff(None, _form(_field("a")))["added"][0]["name"] == "a"
    assert diff(_form(_field("a")), {})["removed"][0]["name"] == "a"


def test_a_date_answer_in_an_instance_is_a_date_cell():
    from server.exports import cell_value

    field = {"name": "d", "type": "date", "label": {"zh": "日期"}}
    assert cell_value(field, "2026-11-20", str, {}) == date(2026, 11, 20)


def test_sheet_names_are_valid_and_distinct():
    from server.xlsx_stream import sheet_titles

    assert sheet_titles(["厕所间", "厕所间", "a/b:c", "", "说明", "x" * 40]) == [
        "厕所间",
        "厕所间（2）",
        "abc",
        "Sheet4",
        "说明",
        "x" * 31,
    ]


# -- through the phone's push path (forms/compiler.py validates the instances) -------------------

PUSHED_FORM = {
    "id": "toilet_block_desk",
    "version": 1,
    "target": "toilet",
    "title": {"zh": "公厕分间", "en": "Toilet block"},
    "fields": [
        {"name": "block", "type": "text", "label": {"zh": "楼", "en": "Block"}},
        {
            "name": "rooms",
            "type": "repeat",
            "label": {"zh": "厕所间", "en": "Toilet rooms"},
            "fields": [
                {**_yes_no("room_ok", "能用"), "required": True},
                {
                    "name": "room_photo",
                    "type": "photo",
                    "label": {"zh": "照片", "en": "Photo"},
                    "relevant": "${room_ok}",
                },
                {
                    "name": "room_no",
                    "type": "calculate",
                    "label": {"zh": "编号", "en": "No."},
                    "calculation": "concat(${block}, '-', position(..))",
                },
            ],
        },
    ],
    "updates": {"last_inspected": "${observed_on}"},
}


def test_a_pushed_repeat_shows_on_the_desk_and_in_the_export(client, store, phone, facilities):
    from conftest import photo, submission, upload_photo
    from PIL import Image

    with store.write():
        assert store.publish_form(PUSHED_FORM, "sha-desk-block", at="2026-11-20T02:00:00+00:00")
    out = io.BytesIO()
    Image.new("RGB", (16, 12), "green").save(out, "JPEG")
    data = out.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    answers = {
        "block": "B",
        "rooms": [{"room_ok": False}, {"room_ok": True, "room_photo": [photo(digest)]}],
    }
    toilet = facilities[(YUNYU, "toilet")]["id"]
    item = submission(toilet, phone.clock(), form=PUSHED_FORM["id"], answers=answers)
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos", result
    assert upload_photo(client, phone.headers, data).status_code == 200

    _admin(client, store)
    html = client.get(f"/desk/submissions/{item['id']}").get_data(as_text=True)
    second = html[html.index('id="rooms-2"') :]
    second = second[: second.index("</table>")]
    assert f"/desk/media/{digest}/320" in second  # the instance's own photo, held
    assert re.search(r"编号</th><td>\s*B-2", second)
    assert "照片 1 · 厕所间 第2项 · 照片" in html

    book = load_workbook(
        io.BytesIO(client.get(f"/desk/exports/forms/{PUSHED_FORM['id']}.xlsx").data)
    )
    rows = [list(r) for r in book["厕所间"].iter_rows(values_only=True)]
    assert rows[0][4:] == ["能用", "照片", "编号"]
    assert [r[1:2] + r[4:] for r in rows[1:]] == [
        [1, "否", None, "B-1"],
        [2, "是", f"http://localhost/desk/media/{digest}/1280", "B-2"],
    ]

    archive = zipfile.ZipFile(
        io.BytesIO(client.get(f"/desk/exports/villages/{YUNYU}/photos.zip").data)
    )
    manifest = csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig")))
    ours = [r for r in manifest if r["提交编号"] == item["id"]]
    assert [(r["照片字段"], r["照片题目"], r["sha256"]) for r in ours] == [
        ("rooms[2].room_photo", "厕所间 第2项 · 照片", digest)
    ]
    assert archive.read(ours[0]["文件"]) == data


def test_xlsx_stream_writes_several_sheets_each_with_its_own_links():
    from server.xlsx_stream import Link, xlsx_stream

    def rows(tag, n):
        yield ["编号", "链接"]
        for i in range(n):
            yield [i, Link([f"http://x/{tag}/{i}"])]

    widths: list[int] = []
    data = b"".join(
        xlsx_stream(
            rows("a", 2),
            title="主表",
            notes=["说明一行"],
            sheets=[("主表", rows("b", 3), widths), ("第三", rows("c", 1), None)],
        )
    )
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["主表", "主表（2）", "第三", "说明"]
    targets = [
        [c.hyperlink.target for c in next(book[name].iter_cols(min_col=2, min_row=2))]
        for name in book.sheetnames[:3]
    ]
    assert targets == [
        ["http://x/a/0", "http://x/a/1"],
        ["http://x/b/0", "http://x/b/1", "http://x/b/2"],
        ["http://x/c/0"],
    ]
    assert book["说明"]["A1"].value == "说明一行"
