"""Exports: read every file back, check its scope, and who may download it."""

import csv
import hashlib
import io
import json
import zipfile

import pytest
from conftest import SHILING, YUNYU, photo, submission, toilet_answers
from desk_helpers import desk_session
from openpyxl import load_workbook
from PIL import Image

from media.store import LocalMediaStore
from server.exports import cell_value, form_columns

TONGPU = {YUNYU, "450222101002", "450222101003"}


def login(client, store, username):
    desk_session(client, store, username)


def jpeg(color) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def pushed(make_phone, facilities, app):
    """Three toilet inspections in 云屿村 (two photos held), one in 石岭村."""
    inspector, inspector2 = make_phone("inspector"), make_phone("inspector2")
    media = LocalMediaStore(app.config["MEDIA_PATH"])
    held = []
    for color in ("red", "blue"):
        data = jpeg(color)
        sha = hashlib.sha256(data).hexdigest()
        media.append_chunk(sha, 0, data, len(data))
        held.append((sha, data))
    missing = "f" * 64
    target = facilities[(YUNYU, "toilet")]["id"]
    items = [
        submission(
            target,
            inspector.clock(),
            answers=toilet_answers(
                photo_outside=[photo(held[0][0])],
                photo_inside=[photo(held[1][0])],
                notes='=HYPERLINK("http://evil")',
            ),
        ),
        submission(
            target,
            inspector.clock(),
            answers=toilet_answers(
                photo_outside=[photo(held[0][0])],  # the same photo used again
                photo_inside=[photo(missing)],
                sanitary=False,
                harmless=None,
            ),
        ),
        submission(target, inspector.clock(), answers=toilet_answers(construction="biogas")),
    ]
    assert all(r["status"] != "invalid" for r in inspector.push(items).json["results"])
    other = submission(facilities[(SHILING, "toilet")]["id"], inspector2.clock())
    assert inspector2.push([other]).json["results"][0]["status"] != "invalid"
    return {"ids": [i["id"] for i in items], "other": other["id"], "held": held, "missing": missing}


def read_csv(response):
    data = response.get_data()
    assert data.startswith("\ufeff".encode())  # Excel reads the BOM and opens UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_has_chinese_headers_one_row_per_submission_and_photo_links(client, store, pushed):
    login(client, store, "supervisor")
    response = client.get("/desk/exports/forms/toilet.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header[:4] == ["提交编号", "乡镇", "村名", "村代码"]
    assert "厕所类别" in header and "是卫生厕所" in header and "外景照片" in header
    assert "改厕“回头看”" not in header  # notes are not data
    assert sorted(r[0] for r in rows) == sorted(pushed["ids"])  # not 石岭村's
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    first = by_id[pushed["ids"][0]]
    sha = pushed["held"][0][0]
    assert first["外景照片"] == f"http://localhost/desk/media/{sha}/1280"  # the desk's own route
    assert first["是卫生厕所"] == "是" and first["村名"] == "云屿村" and first["乡镇"] == "桐浦乡"
    assert first["厕所类别"] == "农户家庭厕所（户厕）"
    assert first["备注"] == '\'=HYPERLINK("http://evil")'  # never a formula
    assert by_id[pushed["ids"][1]]["是卫生厕所"] == "否"
    assert by_id[pushed["ids"][2]]["改厕类型"] == "三联通沼气池式"


def test_csv_can_be_narrowed_to_one_village_and_a_month_but_not_outside_the_scope(
    client, store, pushed
):
    login(client, store, "supervisor")
    _, *rows = read_csv(client.get(f"/desk/exports/forms/toilet.csv?village={YUNYU}"))
    assert len(rows) == 3
    _, *rows = read_csv(client.get("/desk/exports/forms/toilet.csv?month=2026-10"))
    assert rows == []
    _, *rows = read_csv(client.get("/desk/exports/forms/toilet.csv?month=2026-11"))
    assert len(rows) == 3
    assert client.get(f"/desk/exports/forms/toilet.csv?village={SHILING}").status_code == 403
    assert client.get("/desk/exports/forms/toilet.csv?month=11-2026").status_code == 400
    assert client.get("/desk/exports/forms/nope.csv").status_code == 404


def test_an_admin_exports_the_whole_county(client, store, pushed):
    login(client, store, "admin")
    _, *rows = read_csv(client.get("/desk/exports/forms/toilet.csv"))
    assert {r[0] for r in rows} == {*pushed["ids"], pushed["other"]}


def test_xlsx_opens_in_openpyxl_with_the_same_rows(client, store, pushed):
    login(client, store, "supervisor")
    response = client.get("/desk/exports/forms/toilet.xlsx")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert response.is_streamed  # no Content-Length: the bytes leave as they are made
    data = response.get_data()
    sheet = load_workbook(io.BytesIO(data)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert sheet.title == "厕所检查"
    assert header[0] == "提交编号" and "厕所类别" in header
    assert sorted(r[0] for r in rows) == sorted(pushed["ids"])
    col = header.index("表单版本")
    assert all(r[col] == 1 for r in rows)  # numbers stay numbers
    notes = header.index("备注")
    assert any(r[notes] == '\'=HYPERLINK("http://evil")' for r in rows)


def test_monthly_task_export_names_the_task(client, store, make_phone):
    phone = make_phone("secretary")
    item = {
        "type": "submission",
        "id": "0b0e5a7e-7a51-4c52-9a45-6b2b6c3f0a11",
        "form": "monthly_task",
        "version": 1,
        "record": f"task-{YUNYU}-2026-11-three_meetings-1",
        "clock": phone.clock(),
        "observed_at": "2026-11-20T10:00:00+08:00",
        "answers": {
            "task_kind": "three_meetings",
            "status": "done",
            "completed_on": "2026-11-19",
            "meetings_held": ["members_meeting", "party_lecture"],
        },
    }
    assert phone.push([item]).json["results"][0]["status"] == "accepted"
    login(client, store, "supervisor")
    header, row = read_csv(client.get("/desk/exports/forms/monthly_task.csv"))
    record = dict(zip(header, row, strict=True))
    assert record["检查对象"] == "三会一课"
    assert record["完成情况"] == "已完成" and record["本月召开的会议"] == "支部党员大会、党课"


def test_geojson_has_one_feature_per_facility_in_scope(client, store, app):
    login(client, store, "supervisor")
    response = client.get("/desk/exports/facilities.geojson")
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    collection = json.loads(response.get_data())
    expected = [f for v in sorted(TONGPU) for f in store.facilities(v)]
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(expected)
    feature = collection["features"][0]
    facility = store.facility(feature["id"])
    assert feature["geometry"] == {
        "type": "Point",
        "coordinates": [facility["lon"], facility["lat"]],
    }
    props = feature["properties"]
    assert props["village_code"] in TONGPU and props["name"] == facility["name"]
    assert props["status"] == facility["state"]["status"]["value"]
    toilets = json.loads(client.get("/desk/exports/facilities.geojson?kind=toilet").get_data())
    assert {f["properties"]["kind"] for f in toilets["features"]} == {"toilet"}
    assert client.get("/desk/exports/facilities.geojson?kind=house").status_code == 400
    login(client, store, "admin")
    everything = json.loads(client.get("/desk/exports/facilities.geojson").get_data())
    assert len(everything["features"]) == sum(
        len(store.facilities(v["code"])) for v in store.villages()
    )


def test_photo_zip_holds_each_photo_once_and_a_manifest_that_matches(client, store, pushed):
    login(client, store, "supervisor")
    response = client.get(f"/desk/exports/villages/{YUNYU}/photos.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    names = set(archive.namelist())
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))
    files = {row["文件"] for row in manifest if row["文件"]}
    assert names == files | {"manifest.csv"}
    assert len(files) == 2  # two photos held, the shared one written once
    for row in manifest:
        if row["文件"]:
            assert hashlib.sha256(archive.read(row["文件"])).hexdigest() == row["sha256"]
    assert {row["sha256"] for row in manifest if not row["文件"]} >= {pushed["missing"]}
    assert all(row["说明"] == "服务器尚未收到该照片" for row in manifest if not row["文件"])
    uses = [row for row in manifest if row["sha256"] == pushed["held"][0][0]]
    assert len(uses) == 2 and uses[0]["文件"] == uses[1]["文件"]
    assert uses[0]["文件"].startswith(
        store.facility(store.submission(uses[0]["提交编号"])["record_id"])["name"]
    )


def test_photo_zip_of_another_township_is_forbidden(client, store, pushed):
    login(client, store, "supervisor")
    assert client.get(f"/desk/exports/villages/{SHILING}/photos.zip").status_code == 403
    assert client.get(f"/desk/exports/villages/{YUNYU}/photos.zip?month=2026-1").status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/desk/exports",
        "/desk/exports/forms/toilet.csv",
        "/desk/exports/forms/toilet.xlsx",
        "/desk/exports/facilities.geojson",
        f"/desk/exports/villages/{YUNYU}/photos.zip",
    ],
)
def test_inspectors_get_403_and_strangers_the_login_page(client, store, url):
    assert client.get(url).status_code == 302
    login(client, store, "inspector")
    assert client.get(url).status_code == 403


def test_the_exports_page_links_the_viewers_villages_and_every_form(client, store):
    login(client, store, "supervisor")
    html = client.get("/desk/exports").get_data(as_text=True)
    for form in ("toilet", "rubbish", "fire", "tidiness", "monthly_task"):
        assert f"/desk/exports/forms/{form}.csv" in html
        assert f"/desk/exports/forms/{form}.xlsx" in html
    assert "/desk/exports/facilities.geojson" in html
    for code in TONGPU:
        assert f"/desk/exports/villages/{code}/photos.zip" in html
    assert SHILING not in html


def test_every_export_is_audited(client, store, pushed):
    login(client, store, "supervisor")
    client.get("/desk/exports/forms/toilet.csv?month=2026-11").get_data()
    client.get(f"/desk/exports/villages/{YUNYU}/photos.zip").get_data()
    actions = [(e["action"], e["entity_id"]) for e in store.audit_entries(limit=5)]
    assert ("export.csv", "toilet") in actions and ("export.photos", YUNYU) in actions


def test_cells_show_labels_and_keep_numbers():
    field = {"name": "x", "type": "select_many", "choices": [{"value": "a", "label": {"zh": "甲"}}]}
    assert cell_value(field, ["a", "b"], str, {}) == "甲、b"
    assert cell_value({"name": "n", "type": "integer"}, 3, str, {}) == 3
    assert cell_value({"name": "y", "type": "yes_no"}, False, str, {}) == "否"
    failed = {"name": "failed_items", "type": "calculate"}
    assert cell_value(failed, ["waterways"], str, {"waterways": "河渠"}) == "河渠"
    older = {"id": "f", "version": 1, "fields": [{"name": "gone", "type": "text"}]}
    newer = {"id": "f", "version": 2, "fields": [{"name": "new", "type": "text"}]}
    assert [f["name"] for f in form_columns([newer, older])] == ["new", "gone"]
