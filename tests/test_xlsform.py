"""XLSForm import/export (forms/xlsform.py, `villagecheck import-xlsform` / `export-xlsform`).
Workbooks are built here with openpyxl."""

import io
import zipfile

import openpyxl
import pytest

from forms.definitions import load_builtin
from forms.xlsform import MAX_SURVEY_ROWS, export_xlsform, import_xlsform

ZH, EN = "label::中文 (zh)", "label::English (en)"
SETTINGS = [["form_id", "version", "form_title", "default_language", "target"],
            ["sewage", "1", "污水处理设施", "中文 (zh)", "facility"]]  # fmt: skip


def book(survey, choices=None, settings=SETTINGS) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "survey"
    for row in survey:
        ws.append(row)
    if choices:
        c = wb.create_sheet("choices")
        for row in choices:
            c.append(row)
    if settings:
        s = wb.create_sheet("settings")
        for row in settings:
            s.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


FULL = [
    [
        "type",
        "name",
        ZH,
        EN,
        "hint::中文 (zh)",
        "relevant",
        "required",
        "constraint",
        "constraint_message::中文 (zh)",
        "calculation",
        "default",
        "read_only",
        "appearance",
    ],
    [
        "text",
        "operator",
        "运维单位",
        "Operator",
        "填写全称",
        "",
        "yes",
        "string-length(.) <= 50",
        "太长",
        "",
        "",
        "",
        "multiline",
    ],
    ["integer", "households", "户数", "Households", "", "", "true", ". >= 0", "", "", "10", "", ""],
    [
        "decimal",
        "capacity",
        "处理能力",
        "Capacity",
        "",
        "${households} > 0",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ],
    ["select_one yn", "running", "正常运行", "Running", "", "", "yes", "", "", "", "", "", ""],
    [
        "select_one kind or_other",
        "kind",
        "工艺",
        "Process",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "minimal",
    ],
    ["select_multiple issue", "issues", "问题", "Issues", "", "", "", "", "", "", "odour", "", ""],
    [
        "begin group",
        "details",
        "详细",
        "Details",
        "",
        "${running} = 'no'",
        "",
        "",
        "",
        "",
        "",
        "",
        "field-list",
    ],
    [
        "date",
        "stopped_on",
        "停运日期",
        "Stopped on",
        "",
        "",
        "",
        ". <= today()",
        "",
        "",
        "",
        "",
        "",
    ],
    ["end group", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["datetime", "seen_at", "时间", "Seen at", "", "", "", "", "", "", "", "", ""],
    ["time", "opens", "开放时间", "Opens", "", "", "", "", "", "", "", "", ""],
    ["geopoint", "where", "位置", "Where", "", "", "", "", "", "", "", "", ""],
    ["image", "photo", "照片", "Photo", "", "", "yes", "", "", "", "", "", ""],
    ["note", "tip", "注意安全", "Be careful", "", "", "", "", "", "", "", "", ""],
    [
        "calculate",
        "per_house",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "${capacity} div ${households}",
        "",
        "",
        "",
    ],
    ["acknowledge", "checked", "已核对", "Checked", "", "", "", "", "", "", "", "yes", ""],
]
CHOICES = [
    ["list_name", "name", ZH, EN],
    ["yn", "yes", "是", "Yes"], ["yn", "no", "否", "No"],
    ["kind", "ao", "A/O", "A/O"], ["kind", "wetland", "人工湿地", "Wetland"],
    ["issue", "odour", "异味", "Odour"], ["issue", "overflow", "溢流", "Overflow"],
]  # fmt: skip


def fields(result):
    assert result.ok, [str(e) for e in result.errors]
    return {f["name"]: f for f in result.definition["fields"]}


def test_every_supported_type_and_column():
    r = import_xlsform(book(FULL, CHOICES))
    f = fields(r)
    d = r.definition
    assert (d["id"], d["version"], d["title"], d["target"]) == (
        "sewage", 1, {"zh": "污水处理设施", "en": "污水处理设施"}, "facility")  # fmt: skip
    assert f["operator"] == {
        "name": "operator", "type": "text", "label": {"zh": "运维单位", "en": "Operator"},
        "hint": {"zh": "填写全称", "en": "填写全称"}, "appearance": "multiline", "required": True,
        "constraint": "string-length(.) <= 50", "constraint_message": {"zh": "太长", "en": "太长"},
    }  # fmt: skip
    assert f["households"]["default"] == 10 and f["households"]["type"] == "integer"
    assert f["capacity"]["relevant"] == "${households} > 0"
    assert f["running"]["type"] == "yes_no" and "choices" not in f["running"]
    assert [c["value"] for c in f["kind"]["choices"]] == ["ao", "wetland", "other"]
    assert f["kind_other"]["relevant"] == "selected(${kind}, 'other')"
    assert f["issues"]["type"] == "select_many" and f["issues"]["default"] == ["odour"]
    assert f["details"]["type"] == "note" and f["details"]["appearance"] == "field-list"
    assert f["stopped_on"]["relevant"] == "(${running} = 'no')"
    assert f["seen_at"]["type"] == "datetime" and f["where"]["type"] == "geopoint"
    assert f["opens"]["type"] == "text" and "regex" in f["opens"]["constraint"]
    assert f["photo"]["type"] == "photo" and f["tip"]["type"] == "note"
    assert f["per_house"]["calculation"] == "${capacity} div ${households}"
    assert f["checked"] == {"name": "checked", "type": "yes_no",
                            "label": {"zh": "已核对", "en": "Checked"},
                            "constraint": ". = true()", "read_only": True}  # fmt: skip


def test_languages_and_settings():
    survey = [["type", "name", "label::English (en)", "label::中文 (zh)", "hint::en", "hint::zh"],
              ["text", "a", "Name", "名称", "hint", "提示"]]  # fmt: skip
    settings = [["form_id", "version", "form_title", "title::English (en)", "title::中文 (zh)",
                 "default_language", "target"],
                ["kitchen", "3", "厨房改造", "Kitchen", "厨房改造", "English (en)",
                 "facility"]]  # fmt: skip
    r = import_xlsform(book(survey, settings=settings))
    f = fields(r)
    assert f["a"]["label"] == {"zh": "名称", "en": "Name"}
    assert f["a"]["hint"] == {"zh": "提示", "en": "hint"}
    assert r.definition["version"] == 3
    assert r.definition["title"] == {"zh": "厨房改造", "en": "Kitchen"}


@pytest.mark.parametrize("definition", load_builtin(), ids=lambda d: d["id"])
def test_round_trip_of_builtin_forms(definition):
    r = import_xlsform(export_xlsform(definition))
    assert r.ok, [str(e) for e in r.errors]
    assert r.definition == definition


def errors_of(data):
    r = import_xlsform(data)
    assert not r.ok
    return r.errors


def test_not_an_xlsform():
    (e,) = errors_of(b"hello, not a zip")
    assert "不是 Excel" in e.zh
    (e,) = errors_of(book([["a", "b"], ["1", "2"]]))
    assert e.sheet == "survey" and "不是 XLSForm" in e.zh


def test_formula_cell():
    data = book([["type", "name", ZH], ["text", "a", "=1+1"]], settings=SETTINGS)
    es = errors_of(data)
    assert any(
        e.sheet == "survey" and e.row == 2 and e.column == "C" and "公式" in e.zh for e in es
    )


def test_duplicate_name_unknown_reference_cycle_and_dry_run_lists_all(runner, tmp_path, store):
    survey = [
        ["type", "name", ZH, "relevant", "calculation", "repeat_count", "choice_filter"],
        ["text", "a", "甲", "", "", "", ""],
        ["text", "a", "乙", "", "", "", ""],
        ["begin repeat", "r", "重复", "", "", "", ""],
        ["begin repeat", "r2", "嵌套", "", "", "", ""],
        ["text", "b", "丙", "", "", "3", "x = 1"],
        ["end repeat", "", "", "", "", "", ""],
        ["end repeat", "", "", "", "", "", ""],
        ["select_one nolist", "c", "丁", "", "", "", ""],
        ["bogus", "d", "戊", "", "", "", ""],
    ]
    path = tmp_path / "bad.xlsx"
    path.write_bytes(book(survey))
    result = runner.invoke(args=["import-xlsform", str(path), "--dry-run"])
    assert result.exit_code != 0
    out = result.output
    for text in (
        "第3行 [name]: 字段名 a 重复",
        "第5行 [type]: 重复组不能嵌套（第4行的重复组还没有结束） / a repeat cannot be inside",
        "第6行 [repeat_count]: 只有 begin repeat 行可以写 repeat_count / only a begin repeat",
        "第6行 [choice_filter]: 只有选择题可以写 choice_filter / only a select may",
        "第9行 [type]: 选项表里没有列表",
        "第10行 [type]: 题型 bogus 暂不支持",
        "未发布",
    ):
        assert text in out, out
    assert "暂不支持 / repeat" not in out and "Traceback" not in out

    es = errors_of(book([["type", "name", ZH, "relevant"], ["text", "a", "甲", "${nope}"]]))
    assert (es[0].row, es[0].column) == (2, "relevant") and "nope" in es[0].en
    es = errors_of(book([["type", "name", ZH, "constraint"], ["integer", "a", "甲", "nofn(.)"]]))
    assert (es[0].row, es[0].column) == (2, "constraint") and "unknown function" in es[0].en
    cyc = [["type", "name", "calculation"], ["calculate", "x", "${y} + 1"],
           ["calculate", "y", "${x} + 1"]]  # fmt: skip
    es = errors_of(book(cyc))
    assert any("circular" in e.en or "cycle" in e.en for e in es), [str(e) for e in es]
    assert store.form_versions("sewage") == []


def test_row_limit_and_zip_bomb(tmp_path):
    rows = [["type", "name", ZH]] + [["text", f"q{i}", "问"] for i in range(5000)]
    (e,) = errors_of(book(rows))
    assert str(MAX_SURVEY_ROWS) in e.zh
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"\0" * (60 * 1024 * 1024))
    assert len(bomb.getvalue()) < 1024 * 1024
    (e,) = errors_of(bomb.getvalue())
    assert "太大" in e.zh
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as z:
        for i in range(1001):
            z.writestr(f"x{i}", b"")
    (e,) = errors_of(many.getvalue())
    assert "太多" in e.zh


def test_cli_publish_new_version_keeps_old_and_export(runner, tmp_path, store):
    path = tmp_path / "s.xlsx"
    path.write_bytes(book(FULL, CHOICES))
    result = runner.invoke(args=["import-xlsform", str(path), "--publish"])
    assert result.exit_code == 0, result.output
    assert "已发布 sewage v1" in result.output
    v2 = [SETTINGS[0], ["sewage", "2", "污水处理设施", "中文 (zh)", "facility"]]
    path.write_bytes(book(FULL[:3], CHOICES, settings=v2))
    assert runner.invoke(args=["import-xlsform", str(path), "--publish"]).exit_code == 0
    assert [d["version"] for d in store.form_versions("sewage")] == [2, 1]
    # the same id and version with other content is refused
    path.write_bytes(book(FULL[:2], CHOICES, settings=v2))
    result = runner.invoke(args=["import-xlsform", str(path), "--publish"])
    assert result.exit_code != 0 and "已发布且内容不同" in result.output
    out = tmp_path / "toilet.xlsx"
    result = runner.invoke(args=["export-xlsform", "toilet", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert import_xlsform(out.read_bytes()).definition == store.form_versions("toilet")[0]


def small_form(version="1", label="名称") -> bytes:
    """A valid one-field XLSForm (tests/test_scope_matrix.py publishes it too)."""
    settings = [SETTINGS[0], ["sewage", version, "污水处理设施", "中文 (zh)", "facility"]]
    return book([["type", "name", ZH], ["text", "a", label]], settings=settings)


def test_desk_upload_preview_publish_and_refusals(client, store):
    import base64
    import re

    from desk_helpers import desk_session

    url = "/desk/admin/forms"
    desk_session(client, store, "supervisor", csrf="t")
    assert client.get(url).status_code == 403
    desk_session(client, store, "admin", csrf="t")
    assert "toilet" in client.get(url).get_data(as_text=True)

    def post(data, **kw):
        return client.post(url, data={"csrf_token": "t", **data}, **kw)

    # a bad file: every error listed, nothing to publish
    bad = book([["type", "name", ZH], ["text", "a", "甲"], ["text", "a", "乙"],
                ["begin repeat", "r", "重复"], ["begin repeat", "r2", "嵌套"],
                ["end repeat", "", ""], ["end repeat", "", ""]])  # fmt: skip
    page = post({"file": (io.BytesIO(bad), "bad.xlsx")}).get_data(as_text=True)
    assert "发现 2 处错误，未发布" in page and "字段名 a 重复" in page and "重复组不能嵌套" in page
    assert "确认发布" not in page
    # a good one: preview shows the fields, publish needs the CSRF token, then is audited
    page = post({"file": (io.BytesIO(small_form()), "ok.xlsx")}).get_data(as_text=True)
    assert "预览：污水处理设施（sewage v1），1 个字段" in page and "<td>a</td>" in page
    carried = re.search(r'name="workbook" value="([^"]+)"', page).group(1)
    assert store.form_versions("sewage") == []
    refused = client.post(url, data={"confirm": "1", "workbook": carried})
    assert refused.status_code in (400, 403) and store.form_versions("sewage") == []
    assert post({"confirm": "1", "workbook": carried}).status_code == 302
    assert [d["version"] for d in store.form_versions("sewage")] == [1]
    entry = store.row("SELECT * FROM audit WHERE action = 'form.publish' ORDER BY seq DESC")
    assert entry["user_id"] == store.user(username="admin")["id"]
    # a tampered carried workbook is checked again; the same version with other content refused
    bad64 = base64.b64encode(bad).decode()
    page = post({"confirm": "1", "workbook": bad64}).get_data(as_text=True)
    assert "未发布" in page
    other = base64.b64encode(small_form(label="别的")).decode()
    page = post({"confirm": "1", "workbook": other}).get_data(as_text=True)
    assert "已发布且内容不同" in page
    two = base64.b64encode(small_form(version="2")).decode()
    assert post({"confirm": "1", "workbook": two}).status_code == 302
    assert [d["version"] for d in store.form_versions("sewage")] == [2, 1]
    assert "v1，v2" in client.get(url).get_data(as_text=True)
    assert post({"confirm": "1", "workbook": "!!"}).status_code == 302
    assert [d["version"] for d in store.form_versions("sewage")] == [2, 1]


# -- repeats, choice_filter, required_message ------------------------------------------------

REPEAT_SURVEY = [
    ["type", "name", ZH, EN, "relevant", "required", "required_message::中文 (zh)",
     "required_message::English (en)", "repeat_count", "choice_filter", "appearance",
     "calculation", "min_count", "max_count"],
    ["integer", "n_rooms", "间数", "Rooms", "", "yes", "请填写间数", "Enter the rooms", "", "", "",
     "", "", ""],
    ["select_one county", "county", "县", "County", "", "", "", "", "", "", "", "", "", ""],
    ["begin group", "", "", "", "${county} != ''", "", "", "", "", "", "", "", "", ""],
    ["begin repeat", "rooms", "厕所间", "Toilet rooms", "${n_rooms} > 0", "", "", "", "${n_rooms}",
     "", "field-list", "", "", ""],
    ["select_one town", "town", "乡镇", "Town", "", "yes", "", "Pick a town", "",
     "county = ${county}", "", "", "", ""],
    ["begin group", "detail", "细节", "Details", "${town} != ''", "", "", "", "", "", "", "", "",
     ""],
    ["text", "room_note", "说明", "Note", "", "", "", "", "", "", "multiline", "", "", ""],
    ["end group", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["calculate", "pos", "", "", "", "", "", "", "", "", "", "position(..)", "", ""],
    ["image", "room_photo", "照片", "Photo", "", "", "", "", "", "", "", "", "", "2"],
    ["select_one yn", "room_ok", "能用", "Usable", "", "", "", "", "", "", "", "", "", ""],
    ["end repeat", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["begin repeat", "visits", "走访", "Visits", "", "yes", "至少走访一户", "Visit one at least",
     "", "", "", "", "1", "5"],
    ["text", "who", "户主", "Head", "", "", "", "", "", "", "", "", "", ""],
    ["end repeat", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["end group", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["calculate", "rooms_seen", "", "", "", "", "", "", "", "", "", "count(${rooms})", "", ""],
]  # fmt: skip
REPEAT_CHOICES = [
    ["list_name", "name", ZH, EN, "county"],
    ["county", "a", "甲县", "A", ""], ["county", "b", "乙县", "B", ""],
    ["town", "t1", "一镇", "T1", "a"], ["town", "t2", "二镇", "T2", "b"],
    ["yn", "yes", "是", "Yes", ""], ["yn", "no", "否", "No", ""],
]  # fmt: skip


def _repeat_form() -> dict:
    r = import_xlsform(book(REPEAT_SURVEY, REPEAT_CHOICES))
    assert r.ok, [str(e) for e in r.errors]
    return r.definition


def test_repeat_choice_filter_and_required_message_are_translated():
    d = _repeat_form()
    top = {f["name"]: f for f in d["fields"]}
    assert list(top) == ["n_rooms", "county", "rooms", "visits", "rooms_seen"]
    assert top["n_rooms"]["required_message"] == {"zh": "请填写间数", "en": "Enter the rooms"}
    assert "properties" not in top["county"]["choices"][0]  # an empty cell is no property
    rooms = top["rooms"]
    inner = {f["name"]: f for f in rooms.pop("fields")}
    assert rooms == {
        "name": "rooms", "type": "repeat", "label": {"zh": "厕所间", "en": "Toilet rooms"},
        "relevant": "(${county} != '') and (${n_rooms} > 0)", "repeat_count": "${n_rooms}",
        "appearance": "field-list",
    }  # fmt: skip
    assert list(inner) == ["town", "detail", "room_note", "pos", "room_photo", "room_ok"]
    assert inner["room_ok"]["type"] == "yes_no"  # exported again with the yes_no list
    assert inner["town"]["choice_filter"] == "county = ${county}"
    assert inner["town"]["choices"] == [
        {"value": "t1", "label": {"zh": "一镇", "en": "T1"}, "properties": {"county": "a"}},
        {"value": "t2", "label": {"zh": "二镇", "en": "T2"}, "properties": {"county": "b"}},
    ]
    # a language missing from required_message falls back to the other one
    assert inner["town"]["required_message"] == {"zh": "Pick a town", "en": "Pick a town"}
    # a group inside a repeat is flattened there: its note, its relevant on what it holds
    # (the group around the repeat went into the repeat's own relevant, not its fields')
    assert inner["detail"]["type"] == "note" and inner["detail"]["relevant"] == "${town} != ''"
    assert inner["room_note"]["relevant"] == "(${town} != '')"
    assert inner["pos"]["calculation"] == "position(..)"
    assert inner["room_photo"]["max_count"] == 2
    visits = top["visits"]
    assert (visits["required"], visits["min_count"], visits["max_count"]) == (True, 1, 5)
    assert visits["required_message"] == {"zh": "至少走访一户", "en": "Visit one at least"}
    assert [f["name"] for f in visits["fields"]] == ["who"]


def test_round_trip_with_a_repeat_a_choice_filter_and_a_required_message():
    d = _repeat_form()
    again = import_xlsform(export_xlsform(d))
    assert again.ok, [str(e) for e in again.errors]
    assert again.definition == d
    # a yes/no list with properties and a choice_filter stays a select, not a yes_no
    d["fields"][1]["choices"] = [
        {"value": "yes", "label": {"zh": "是", "en": "Yes"}, "properties": {"k": "1"}},
        {"value": "no", "label": {"zh": "否", "en": "No"}},
    ]
    d["fields"][1]["choice_filter"] = "k = '1' or name = 'no'"
    again = import_xlsform(export_xlsform(d))
    assert again.ok, [str(e) for e in again.errors]
    assert again.definition == d


def test_repeat_errors_name_sheet_row_and_column():
    survey = [
        ["type", "name", ZH, "repeat_count"],
        ["begin repeat", "outer", "外"],
        ["begin group", "g", "组"],
        ["text", "a", "甲"],
        ["end repeat"],  # row 5 closes the repeat while the group of row 3 is open
        ["end group"],  # row 6: nothing open any more
        ["end repeat"],  # row 7
        ["begin repeat", "open", "没结束", "${x}"],  # row 8: never ended
        ["text", "b", "乙"],
    ]
    choices = [["list_name", "name", ZH, "size::big", "and"], ["l", "x", "叉", "a.png", "1"]]
    es = errors_of(book(survey, choices))
    got = {(e.sheet, e.row, e.column): (e.zh, e.en) for e in es}
    assert "第5行的 end repeat 之前没有结束（组不能跨出重复组）" in got[("survey", 3, "type")][0]
    assert "cannot cross" in got[("survey", 3, "type")][1]
    assert "end group 没有对应的 begin group" in got[("survey", 6, "type")][0]
    assert "end repeat without a begin repeat" in got[("survey", 7, "type")][1]
    assert got[("survey", 8, "type")] == (
        "begin repeat 没有对应的 end repeat",
        "begin repeat without a matching end repeat",
    )
    assert "选项表的这一列不支持" in got[("choices", 1, "size::big")][0]
    assert "property column" in got[("choices", 1, "and")][1]
    for e in es:
        assert e.zh and e.en and e.sheet in ("survey", "choices")


def test_compiler_problems_inside_a_repeat_point_at_the_row():
    survey = [
        ["type", "name", ZH, "required_message", "choice_filter"],
        ["begin repeat", "r", "重复"],
        ["text", "a", "甲", "必填"],  # a required_message without required
        ["select_one l", "s", "选", "", "colour = 'red'"],  # no choice has that property
        ["end repeat"],
    ]
    choices = [["list_name", "name", ZH], ["l", "x", "叉"]]
    es = errors_of(book(survey, choices))
    rows = {(e.row, e.column) for e in es}
    assert (3, "required_message") in rows, [str(e) for e in es]
    assert any(e.row == 4 for e in es), [str(e) for e in es]


def test_cli_publishes_a_form_with_repeats_and_exports_it_again(runner, tmp_path, store):
    path = tmp_path / "rooms.xlsx"
    path.write_bytes(book(REPEAT_SURVEY, REPEAT_CHOICES))
    result = runner.invoke(args=["import-xlsform", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "sewage v1: 5 个字段（另有重复组内 7 个），检查通过" in result.output
    assert store.form_versions("sewage") == []
    result = runner.invoke(args=["import-xlsform", str(path), "--publish"])
    assert result.exit_code == 0 and "已发布 sewage v1" in result.output, result.output
    out = tmp_path / "again.xlsx"
    assert runner.invoke(args=["export-xlsform", "sewage", "-o", str(out)]).exit_code == 0
    assert import_xlsform(out.read_bytes()).definition == _repeat_form()


KOBO_STYLE = [["type", "name", ZH, "constraint"],
              ["start", "start", None, None], ["end", "end", None, None],
              ["today", "today", None, None], ["deviceid", "deviceid", None, None],
              ["username", "username", None, None],
              ["date", "built_on", "建成日期", ". <= ${today}"]]  # fmt: skip


def test_metadata_rows_of_kobo_forms_import_with_a_notice_each(runner, tmp_path, client, store):
    """start/end/today become calculates of the observation time (so ${today} still reads);
    deviceid/username are left out, since the server records the sending account. Each is said,
    on the CLI and on the desk preview: never dropped silently."""
    result = import_xlsform(book(KOBO_STYLE))
    assert result.ok, [str(e) for e in result.errors]
    fields = {f["name"]: f for f in result.definition["fields"]}
    assert list(fields) == ["start", "end", "today", "built_on"]
    assert fields["start"]["calculation"] == "now()" and fields["end"]["type"] == "calculate"
    assert fields["today"]["calculation"] == "today()"
    assert [(n.row, n.column) for n in result.notices] == [(r, "type") for r in (2, 3, 4, 5, 6)]
    assert "记为提交时间" in result.notices[0].zh and "不单独保存" in result.notices[3].zh
    path = tmp_path / "kobo.xlsx"
    path.write_bytes(book(KOBO_STYLE))
    out = runner.invoke(args=["import-xlsform", str(path), "--dry-run"])
    assert out.exit_code == 0 and out.output.count("注意 / note:") == 5, out.output

    from desk_helpers import desk_session

    desk_session(client, store, "admin", csrf="t")
    page = client.post(
        "/desk/admin/forms",
        data={"csrf_token": "t", "file": (io.BytesIO(book(KOBO_STYLE)), "kobo.xlsx")},
    ).get_data(as_text=True)
    assert 'id="notices"' in page and "deviceid 不单独保存" in page and "确认发布" in page


def test_kobo_bookkeeping_and_media_columns_are_read_past_with_one_notice_each():
    survey = [["type", "name", ZH, "$kuid", "media::image", "parameters", "hint"],
              ["select_one kind", "kind", "类型", "k1", "kind.png", "randomize=true", None],
              ["image", "photo", "照片", "k2", None, "max-pixels=1024", "拍清楚"]]  # fmt: skip
    choices = [["list_name", "name", ZH, "$kuid", "$autovalue"],
               ["kind", "a", "甲", "c1", "a"], ["kind", "b", "乙", "c2", "b"]]  # fmt: skip
    result = import_xlsform(book(survey, choices))
    assert result.ok, [str(e) for e in result.errors]
    kind = result.definition["fields"][0]
    assert kind["choices"] == [{"value": "a", "label": {"zh": "甲", "en": "甲"}},
                               {"value": "b", "label": {"zh": "乙", "en": "乙"}}]  # fmt: skip
    assert sorted((n.sheet, n.column) for n in result.notices) == [
        ("choices", "$autovalue"), ("choices", "$kuid"),
        ("survey", "$kuid"), ("survey", "media::image"), ("survey", "parameters"),
    ]  # fmt: skip
    # a column that would change what is asked is still an error
    assert not import_xlsform(book([[*survey[0], "trigger"], [*survey[1], "${x}"]], choices)).ok


@pytest.mark.parametrize(
    ("zh", "en"),
    [("label::中文", "label::English"), ("label::Chinese", "label::英文"),
     ("label::zh_CN", "label::English (en)"), ("label::简体中文", "label::en-US")],
)  # fmt: skip
def test_language_columns_named_as_chinese_workbooks_name_them(zh, en):
    result = import_xlsform(book([["type", "name", zh, en], ["text", "a", "名称", "Name"]]))
    assert result.ok, [str(e) for e in result.errors]
    assert result.definition["fields"][0]["label"] == {"zh": "名称", "en": "Name"}


def test_form_id_and_title_come_from_the_file_name_or_are_made_valid_with_a_notice(
    runner, tmp_path, client, store
):
    """As ODK does, a workbook without settings takes its id (and here its title) from the
    file's name; an id like Toilet-Survey becomes toilet_survey. Each is a notice."""
    survey = [["type", "name", ZH], ["text", "a", "名称"]]
    result = import_xlsform(book(survey, settings=None), "Sewage Check 2024.xlsx")
    assert result.ok, [str(e) for e in result.errors]
    assert result.definition["id"] == "sewage_check_2024"
    assert result.definition["title"] == {"zh": "Sewage Check 2024", "en": "Sewage Check 2024"}
    assert [n.column for n in result.notices] == ["form_id", "form_title"]
    odd = [["form_id", "version", "form_title"], ["Toilet-Survey", "2", "厕所"]]
    assert import_xlsform(book(survey, settings=odd)).definition["id"] == "toilet_survey"
    digits = [["form_id", "version", "form_title"], ["2024", "1", "厕所"]]
    assert import_xlsform(book(survey, settings=digits)).definition["id"] == "form_2024"
    chinese = import_xlsform(book(survey, settings=None), "污水检查.xlsx")
    assert not chinese.ok and chinese.errors[0].column == "form_id"
    assert not import_xlsform(book(survey, settings=None)).ok
    # the CLI passes the file's name
    path = tmp_path / "Kitchen Renovation.xlsx"
    path.write_bytes(book(survey, settings=None))
    out = runner.invoke(args=["import-xlsform", str(path), "--publish"])
    assert out.exit_code == 0 and "已发布 kitchen_renovation v1" in out.output, out.output
    # the desk carries the name from the preview to the publish step
    import re

    from desk_helpers import desk_session

    desk_session(client, store, "admin", csrf="t")
    page = client.post(
        "/desk/admin/forms",
        data={"csrf_token": "t", "file": (io.BytesIO(book(survey, settings=None)), "Sewage.xlsx")},
    ).get_data(as_text=True)
    assert "预览：Sewage（sewage v1）" in page
    carried = re.search(r'name="workbook" value="([^"]+)"', page).group(1)
    name = re.search(r'name="filename" value="([^"]+)"', page).group(1)
    posted = client.post(
        "/desk/admin/forms",
        data={"csrf_token": "t", "confirm": "1", "workbook": carried, "filename": name},
    )
    assert posted.status_code == 302
    assert [d["version"] for d in store.form_versions("sewage")] == [1]


def test_choice_names_as_real_workbooks_write_them_and_one_with_a_space_named_on_its_row():
    survey = [["type", "name", ZH], ["select_one k", "q1", "问题"]]
    good = [["list_name", "name", ZH], ["k", "1", "是"], ["k", "2", "否"], ["k", "卫生", "丙"]]
    result = import_xlsform(book(survey, good))
    assert result.ok, [str(e) for e in result.errors]
    assert [c["value"] for c in result.definition["fields"][0]["choices"]] == ["1", "2", "卫生"]
    bad = [*good, ["k", "none of these", "都不是"]]
    errors = import_xlsform(book(survey, bad)).errors
    assert [(e.sheet, e.row, e.column) for e in errors] == [("choices", 5, "name")]
    assert "不能有空格" in errors[0].zh


def test_field_names_as_kobo_writes_them_import():
    survey = [["type", "name", ZH, "relevant"], ["text", "Name_of_village", "村名", None],
              ["integer", "Q2", "户数", "${Name_of_village} != ''"]]  # fmt: skip
    result = import_xlsform(book(survey))
    assert result.ok, [str(e) for e in result.errors]
    assert [f["name"] for f in result.definition["fields"]] == ["Name_of_village", "Q2"]
    dotted = import_xlsform(book([["type", "name", ZH], ["text", "q.3", "问题"]]))
    assert [(e.row, "letters, digits and _" in e.en) for e in dotted.errors] == [(2, True)]


def test_a_date_defaulting_to_today_imports_and_round_trips():
    survey = [["type", "name", ZH, "default"], ["date", "checked_on", "检查日期", "today()"]]
    result = import_xlsform(book(survey))
    assert result.ok, [str(e) for e in result.errors]
    assert result.definition["fields"][0]["default"] == "today()"
    assert import_xlsform(export_xlsform(result.definition)).definition == result.definition
