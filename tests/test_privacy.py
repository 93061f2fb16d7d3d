"""Personal data (issue 13): household names of facilities out of the viewer's scope never
reach them through flags; exports say they hold personal data."""

import io
import urllib.parse

from desk_helpers import desk_session
from openpyxl import load_workbook

from media.checks import near_flag, reuse_flag
from server.evidence import named_flags, visible_flags

NAMES = {"F-MINE": "李四户厕", "F-THEIRS": "张三户厕"}


def _stored(flag, relations, **extra):
    return {
        "code": flag.code,
        "photo": flag.photo,
        "figures": flag.figures,
        "message": flag.message,
        "relations": relations,
        **extra,
    }


def test_flags_never_name_a_household_outside_the_viewers_villages():
    uses = [
        {"submission_id": "s-mine", "facility_id": "F-MINE", "village": "V1"},
        {"submission_id": "s-theirs", "facility_id": "F-THEIRS", "village": "V9"},
    ]
    near = [
        {"sha256": "a" * 64, "facility_id": "F-MINE", "distance": 2, "village": "V1"},
        {"sha256": "b" * 64, "facility_id": "F-THEIRS", "distance": 3, "village": "V9"},
    ]
    stored = [
        _stored(reuse_flag("p" * 64, uses), uses),
        _stored(near_flag("p" * 64, near, 12), near, threshold=12),
    ]
    for flag in stored:  # what the database holds names the other village's facility
        assert "F-THEIRS" in str(flag)
    shown = named_flags(
        visible_flags(stored, villages={"V1"}, readable={"p" * 64}, admin=False), NAMES
    )
    text = str(shown)
    assert "李四户厕" in text  # in scope: named
    assert "张三户厕" not in text and "F-THEIRS" not in text and "s-theirs" not in text
    assert "b" * 64 not in text
    assert all("另一乡镇的记录" in f["message"]["zh"] for f in shown)


def test_exports_say_they_hold_personal_data(client, store):
    desk_session(client, store, "supervisor")
    page = client.get("/desk/exports").get_data(as_text=True)
    assert "导出文件含个人信息" in page and "农户姓名" in page

    csv = client.get("/desk/exports/forms/toilet.csv")
    disposition = csv.headers["Content-Disposition"]
    assert "filename*=UTF-8''" + urllib.parse.quote("含个人信息-toilet-") in disposition
    assert 'filename="personal-data-toilet-' in disposition
    first_line = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()[0]
    assert "个人信息" not in first_line  # the header row stays first: parsers keep working

    xlsx = client.get("/desk/exports/forms/toilet.xlsx")
    assert "含个人信息" in urllib.parse.unquote(xlsx.headers["Content-Disposition"])
    book = load_workbook(io.BytesIO(xlsx.get_data()))
    assert book.sheetnames[1:] == ["说明"]
    notes = [row[0] for row in book["说明"].iter_rows(values_only=True)]
    assert notes[0] == "本文件含个人信息" and any("农户姓名" in n for n in notes)

    geojson = client.get("/desk/exports/facilities.geojson")
    assert "personal-data-facilities" in geojson.headers["Content-Disposition"]
