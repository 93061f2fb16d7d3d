"""Exports that work from the desk: photo links the desk session opens, China times and dates,
and a streamed XLSX with real date-times, widths, a frozen header and hyperlinks."""

import csv
import io
from datetime import date, datetime
from urllib.parse import urlsplit

from conftest import YUNYU, photo, photo_exif, sha, submission, toilet_answers, upload_photo
from desk_helpers import desk_session
from openpyxl import load_workbook
from PIL import Image

from server.xlsx_stream import MAX_HYPERLINKS, Link, xlsx_stream


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(
        out, "JPEG", exif=photo_exif("2026:11:20 09:30:00", lat=24.1, lon=110.2)
    )
    return out.getvalue()


def test_photo_links_in_csv_and_xlsx_open_with_the_desk_session_only(client, app, store, phone,
                                                                    facilities):  # fmt: skip
    data = jpeg()
    digest = sha(data)
    item = submission(
        facilities[(YUNYU, "toilet")]["id"],
        phone.clock(),
        answers=toilet_answers(photo_outside=[photo(digest)]),
        observed_at="2026-11-20T10:00:00+08:00",
    )
    assert phone.push([item]).json["results"][0]["status"] != "invalid"
    assert upload_photo(client, phone.headers, data).status_code == 200
    desk_session(client, store, "supervisor")

    response = client.get("/desk/exports/forms/toilet.csv")
    assert response.headers["Content-Disposition"].endswith('-20261120.csv"')  # China date
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    row = next(r for r in rows if r["提交编号"] == item["id"])
    assert row["检查时间"] == "2026-11-20 10:00:00+08:00"
    assert row["上报时间"].endswith("+08:00")  # stored in UTC, shown in China time
    csv_link = row["外景照片"]

    book = client.get("/desk/exports/forms/toilet.xlsx")
    sheet = load_workbook(io.BytesIO(book.get_data())).active
    header = [c.value for c in sheet[1]]
    line = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == item["id"])
    cell = line[header.index("外景照片")]
    assert cell.hyperlink is not None and cell.hyperlink.target == csv_link == cell.value

    path = urlsplit(csv_link).path
    photo_response = client.get(path)
    assert photo_response.status_code == 200, path
    assert photo_response.mimetype == "image/jpeg"
    assert photo_response.get_data()[:3] == b"\xff\xd8\xff"
    stranger = app.test_client()
    assert stranger.get(path).status_code == 302  # to the login page, no photo
    desk_session(stranger, store, "inspector")
    assert stranger.get(path).status_code == 403  # a phone user is not a desk viewer


def test_xlsx_has_date_times_widths_a_frozen_header_and_hyperlinks(
    client, store, phone, facilities
):
    item = submission(
        facilities[(YUNYU, "toilet")]["id"],
        phone.clock(),
        answers=toilet_answers(photo_outside=[photo("a" * 64)], photo_inside=[photo("b" * 64)]),
        observed_at="2026-11-20T01:00:00+00:00",  # a phone that reports UTC
    )
    assert phone.push([item]).json["results"][0]["status"] != "invalid"
    desk_session(client, store, "supervisor")
    response = client.get("/desk/exports/forms/toilet.xlsx")
    assert response.is_streamed and "Content-Length" not in response.headers
    assert response.headers["Content-Disposition"].endswith('-20261120.xlsx"')
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    header = [c.value for c in sheet[1]]
    assert sheet.freeze_panes == "A2"
    assert all(c.font.b for c in sheet[1])
    row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == item["id"])
    observed = row[header.index("检查时间")]
    assert observed.value == datetime(2026, 11, 20, 9, 0) and observed.is_date  # +08:00 wall time
    assert observed.number_format == "yyyy-mm-dd hh:mm:ss"
    received = row[header.index("上报时间")]
    assert received.value == datetime(2026, 11, 20, 10, 0) and received.is_date  # START +8 h
    photo_cell = row[header.index("外景照片")]
    assert photo_cell.hyperlink.target.endswith("/desk/media/" + "a" * 64 + "/1280")
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["A"] >= 36 and widths["F"] >= 19  # the id and the time fit
    assert widths[sheet.cell(1, header.index("外景照片") + 1).column_letter] >= 50


def test_received_time_is_china_time(client, store, phone, facilities):
    """上报时间 is the server's UTC receipt time shown in +08:00 (START is 2026-11-20 UTC)."""
    item = submission(facilities[(YUNYU, "toilet")]["id"], phone.clock())
    assert phone.push([item]).json["results"][0]["status"] != "invalid"
    received = datetime.fromisoformat(store.submission(item["id"])["received_at"])
    desk_session(client, store, "supervisor")
    rows = list(csv.reader(io.StringIO(client.get("/desk/exports/forms/toilet.csv")
                                       .get_data().decode("utf-8-sig"))))  # fmt: skip
    header, line = rows[0], next(r for r in rows if r[0] == item["id"])
    shown = datetime.fromisoformat(line[header.index("上报时间")])
    assert shown.utcoffset().total_seconds() == 8 * 3600 and shown == received


def test_xlsx_streams_before_the_last_row_is_made_and_reads_back_typed():
    made = []

    def rows():
        yield ["编号", "时间", "日期", "数量", "照片", "备注"]
        for n in range(2000):
            made.append(n)
            yield [
                f"id-{n}",
                datetime(2026, 11, 20, 8, 30, n % 60),
                date(2026, 11, 1 + n % 28),
                n,
                Link([f"http://x/desk/media/{n:064x}/1280"]) if n % 2 else Link(),
                "文本 & <标签>\n第二行",
            ]

    stream = xlsx_stream(rows(), title="测试", widths=[14, 20, 12, 8, 60, 20])
    chunks, made_then = [], []
    for chunk in stream:
        if chunk:
            made_then.append(len(made))
        chunks.append(chunk)
    assert made_then[0] == 0  # the first bytes leave before any row is read
    assert any(0 < n < 2000 for n in made_then), made_then  # the sheet streams as rows come
    assert len(made) == 2000
    book = load_workbook(io.BytesIO(b"".join(chunks)))
    sheet = book["测试"]
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == 2001
    first = [c for c in sheet[2]]
    assert first[1].value == datetime(2026, 11, 20, 8, 30, 0) and first[1].is_date
    assert first[2].value == datetime(2026, 11, 1) and first[2].number_format == "yyyy-mm-dd"
    assert first[3].value == 0 and first[4].value is None
    assert first[5].value == "文本 & <标签>\n第二行"
    linked = sheet["E3"]
    assert linked.hyperlink.target == f"http://x/desk/media/{1:064x}/1280"
    assert sheet.column_dimensions["E"].width == 60


def test_links_past_excels_limit_become_hyperlink_formulas():
    assert MAX_HYPERLINKS == 65_530  # Excel's limit per sheet; 2 here to keep the test fast
    n = 5
    rows = [["照片"], *([Link([f"http://x/{i}"])] for i in range(n))]
    data = b"".join(xlsx_stream(iter(rows), title="t", max_links=2))
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.cell(2, 1).hyperlink.target == "http://x/0"
    last = sheet.cell(n + 1, 1)
    assert last.hyperlink is None and last.value == f'=HYPERLINK("http://x/{n - 1}")'
