"""Parsing of the village list imported with `villagecheck import-villages FILE.csv`."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from server.villages_csv import (
    FIELDS,
    CsvDecodeError,
    decode_csv_bytes,
    parse_villages_csv,
)

ROOT = Path(__file__).resolve().parent.parent

ZH_HEADER = "代码,村名,乡镇,县,县类别,户数,纬度,经度"
EN_HEADER = "code,name,township,county,county_class,households,lat,lon"
YUNYU = "450222101001,云屿村,桐浦乡,柳城县,2,203,24.76521,109.30183"
TONGPU = "450222101002,桐浦村,桐浦乡,柳城县,2,318,24.74213,109.30562"

YUNYU_ROW = {
    "code": "450222101001",
    "name": "云屿村",
    "township": "桐浦乡",
    "county": "柳城县",
    "county_class": 2,
    "households": 203,
    "lat": 24.76521,
    "lon": 109.30183,
    "datum": "wgs84",  # undeclared: read as WGS-84 and counted (the CLI refuses such a file)
    "position_source": "register_import",
}
NO_POSITION = {"lat": None, "lon": None, "datum": None, "position_source": None}


def lines(*rows: str) -> str:
    return "\r\n".join(rows) + "\r\n"


def parse_ok(text: str) -> list[dict]:
    result = parse_villages_csv(text)
    assert result.errors == []
    assert result.ok
    return result.rows


def only_error(text: str) -> dict:
    result = parse_villages_csv(text)
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def row_with(**changes: str) -> str:
    cells = dict(zip(EN_HEADER.split(","), YUNYU.split(","), strict=True))
    cells.update(changes)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells.values())
    return buffer.getvalue()


# --- good files ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", [ZH_HEADER, EN_HEADER])
def test_both_header_languages(header):
    rows = parse_ok(lines(header, YUNYU, TONGPU))
    assert rows[0] == YUNYU_ROW
    assert [r["code"] for r in rows] == ["450222101001", "450222101002"]
    assert all(set(r) == set(FIELDS) for r in rows)


def test_mixed_header_languages_and_column_order():
    rows = parse_ok(
        lines(
            "村名,code,经度,纬度,乡镇,County,县类别,Households",
            "云屿村,450222101001,109.30183,24.76521,桐浦乡,柳城县,2,203",
        )
    )
    assert rows == [YUNYU_ROW]


def test_header_variants_with_units_full_width_and_spaces():
    header = "村代码, 村名称 ,乡镇名称,县（区）,县类别,户数（户）,纬度（°）,经度（°）"
    assert parse_ok(lines(header, YUNYU)) == [YUNYU_ROW]


def test_bom_in_text_is_ignored():
    assert parse_ok("\ufeff" + lines(ZH_HEADER, YUNYU)) == [YUNYU_ROW]


def test_utf8_bom_bytes():
    data = lines(ZH_HEADER, YUNYU).encode("utf-8-sig")
    assert parse_ok(decode_csv_bytes(data)) == [YUNYU_ROW]


def test_utf8_bytes_without_bom():
    data = lines(ZH_HEADER, YUNYU).encode("utf-8")
    assert parse_ok(decode_csv_bytes(data)) == [YUNYU_ROW]


def test_gbk_bytes():
    data = lines(ZH_HEADER, YUNYU, TONGPU).encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = parse_ok(decode_csv_bytes(data))
    assert rows[0] == YUNYU_ROW
    assert rows[1]["name"] == "桐浦村"


def test_gb18030_rare_character():
    # 𠮷 is outside GBK but in GB18030
    data = lines(ZH_HEADER, YUNYU.replace("云屿村", "𠮷屿村")).encode("gb18030")
    assert parse_ok(decode_csv_bytes(data))[0]["name"] == "𠮷屿村"


def test_utf16_tab_separated_excel_unicode_text():
    text = lines(ZH_HEADER.replace(",", "\t"), YUNYU.replace(",", "\t"))
    assert parse_ok(decode_csv_bytes(text.encode("utf-16"))) == [YUNYU_ROW]


def test_undecodable_bytes():
    with pytest.raises(CsvDecodeError) as info:
        decode_csv_bytes(b"code,name\n\xff\xff\xff\n")
    assert "UTF-8" in str(info.value) and "编码" in str(info.value)


def test_optional_columns_may_be_absent():
    rows = parse_ok(lines("代码,村名,乡镇,县,县类别", "450222101001,云屿村,桐浦乡,柳城县,2"))
    assert rows == [{**YUNYU_ROW, "households": None, **NO_POSITION}]


def test_optional_cells_may_be_blank():
    rows = parse_ok(lines(ZH_HEADER, row_with(households="", lat="", lon="")))
    assert rows[0]["households"] is None
    assert rows[0]["lat"] is None and rows[0]["lon"] is None


def test_spreadsheet_quirks():
    rows = parse_ok(
        lines(
            ZH_HEADER + ",备注,",
            "４５０２２２１０１００１,　云屿村　,桐浦乡,柳城县,二类,"
            '"1,203",24.76521,109.30183,示范村,',
            "",
            "450222101002,桐浦村,桐浦乡,柳城县,2类,318.0,24.74213,109.30562,,",
            ",,,,,,,,,",
            ",,,,,,,,,",
        )
    )
    assert rows[0] == {**YUNYU_ROW, "households": 1203}
    assert rows[1]["county_class"] == 2 and rows[1]["households"] == 318


def test_unknown_columns_are_reported_as_ignored():
    result = parse_villages_csv(lines(ZH_HEADER + ",备注,联系人", YUNYU + ",示范村,陈朝光"))
    assert result.ok
    assert result.ignored_columns == ["备注", "联系人"]


def test_zero_households_and_edge_coordinates():
    rows = parse_ok(lines(EN_HEADER, row_with(households="0", lat="-90", lon="180")))
    assert rows[0]["households"] == 0
    assert (rows[0]["lat"], rows[0]["lon"]) == (-90.0, 180.0)


def test_quoted_fields():
    rows = parse_ok(lines(EN_HEADER, row_with(name='云屿村（"示范村"）')))
    assert rows[0]["name"] == '云屿村（"示范村"）'


def test_demo_county_round_trips():
    demo = json.loads((ROOT / "server" / "demo" / "county.json").read_text(encoding="utf-8"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(FIELDS))
    writer.writeheader()
    declared = {"datum": "wgs84", "position_source": "register_import"}
    for village in demo["villages"]:
        writer.writerow({k: {**village, **declared}[k] for k in FIELDS})
    result = parse_villages_csv(buffer.getvalue())
    assert result.ok and result.undeclared_positions == 0
    assert result.rows == [{k: {**v, **declared}[k] for k in FIELDS} for v in demo["villages"]]


def test_example_in_docs_parses():
    doc = (ROOT / "docs" / "VILLAGES_CSV.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```csv\n(.*?)```", doc, re.S)
    assert blocks, "docs/VILLAGES_CSV.md has a ```csv example"
    assert len(parse_ok(blocks[0])) >= 3
    for bad in blocks[1:]:
        errors = parse_villages_csv(bad).errors
        assert errors
        for error in errors:
            assert error["message"] in doc, "the documented error output is the real one"


def test_leading_blank_lines_and_tab_separator():
    text = "\r\n\r\n" + lines(ZH_HEADER.replace(",", "\t"), YUNYU.replace(",", "\t"))
    assert parse_ok(text) == [YUNYU_ROW]


# --- errors -------------------------------------------------------------------------------


def assert_bilingual(error: dict) -> None:
    assert re.search(r"[\u4e00-\u9fff]", error["message_zh"])
    assert re.search(r"[a-z]", error["message_en"])
    assert error["message_zh"] in error["message"] and error["message_en"] in error["message"]
    if error["row"]:
        assert f"第{error['row']}行" in error["message"]
        assert f"row {error['row']}" in error["message"]


@pytest.mark.parametrize(
    ("changes", "error", "column"),
    [
        ({"code": ""}, "missing_code", "code"),
        ({"code": "4502221010"}, "bad_code", "code"),
        ({"code": "45022210100A"}, "bad_code", "code"),
        ({"code": "4.50222E+11"}, "bad_code", "code"),
        ({"name": ""}, "missing_name", "name"),
        ({"township": ""}, "missing_township", "township"),
        ({"county": ""}, "missing_county", "county"),
        ({"county_class": ""}, "missing_county_class", "county_class"),
        ({"county_class": "0"}, "bad_county_class", "county_class"),
        ({"county_class": "4"}, "bad_county_class", "county_class"),
        ({"county_class": "2.5"}, "bad_county_class", "county_class"),
        ({"county_class": "四类"}, "bad_county_class", "county_class"),
        ({"households": "-1"}, "negative_households", "households"),
        ({"households": "-203"}, "negative_households", "households"),
        ({"households": "约200"}, "bad_households", "households"),
        ({"households": "203.5"}, "bad_households", "households"),
        ({"households": "inf"}, "bad_households", "households"),
        ({"lat": "90.0001"}, "lat_out_of_range", "lat"),
        ({"lat": "-91"}, "lat_out_of_range", "lat"),
        ({"lat": "nan"}, "lat_out_of_range", "lat"),
        ({"lon": "180.5"}, "lon_out_of_range", "lon"),
        ({"lon": "-200"}, "lon_out_of_range", "lon"),
        ({"lat": "24°45′"}, "bad_lat", "lat"),
        ({"lon": "东经109"}, "bad_lon", "lon"),
        ({"lat": ""}, "incomplete_location", "lat"),
        ({"lon": ""}, "incomplete_location", "lon"),
    ],
)
def test_row_error(changes, error, column):
    result = parse_villages_csv(lines(EN_HEADER, TONGPU, row_with(**changes)))
    assert [e["error"] for e in result.errors] == [error]
    found = result.errors[0]
    assert found["row"] == 3
    assert found["column"] == column
    assert_bilingual(found)
    assert [r["code"] for r in result.rows] == ["450222101002"], "bad row is not returned"


def test_swapped_coordinates_get_a_hint():
    found = only_error(lines(ZH_HEADER, row_with(lat="109.30183", lon="24.76521")))
    assert found["error"] == "lat_out_of_range"
    assert "填反" in found["message_zh"] and "swapped" in found["message_en"]


def test_scientific_notation_code_explains_the_spreadsheet():
    found = only_error(lines(ZH_HEADER, row_with(code="4.50222E+11")))
    assert "科学计数法" in found["message_zh"] and "scientific" in found["message_en"]


def test_duplicate_code_names_the_first_row():
    result = parse_villages_csv(
        lines(ZH_HEADER, YUNYU, TONGPU, YUNYU.replace("云屿村", "云屿二村"))
    )
    assert [r["name"] for r in result.rows] == ["云屿村", "桐浦村"]
    [found] = result.errors
    assert found["error"] == "duplicate_code"
    assert found["row"] == 4
    assert "第2行" in found["message_zh"] and "row 2" in found["message_en"]
    assert_bilingual(found)


def test_duplicate_code_is_found_even_when_the_first_row_had_errors():
    first = row_with(county_class="9")
    result = parse_villages_csv(lines(EN_HEADER, first, YUNYU))
    assert [(e["row"], e["error"]) for e in result.errors] == [
        (2, "bad_county_class"),
        (3, "duplicate_code"),
    ]
    assert result.rows == []


def test_several_errors_in_one_row_are_all_reported():
    bad = row_with(code="", county_class="5", households="-3", lat="95", lon="200")
    result = parse_villages_csv(lines(ZH_HEADER, bad))
    assert [e["error"] for e in result.errors] == [
        "missing_code",
        "bad_county_class",
        "negative_households",
        "lat_out_of_range",
        "lon_out_of_range",
    ]
    assert {e["row"] for e in result.errors} == {2}
    assert result.rows == []


def test_row_numbers_follow_the_spreadsheet_with_blank_lines():
    text = lines(ZH_HEADER, YUNYU, "", "", row_with(code="450222101003", households="-1"))
    [found] = parse_villages_csv(text).errors
    assert found["row"] == 5


def test_short_row_is_missing_its_cells():
    result = parse_villages_csv(lines(ZH_HEADER, "450222101003,下垌村"))
    assert {e["error"] for e in result.errors} == {
        "missing_township",
        "missing_county",
        "missing_county_class",
    }


def test_missing_required_column():
    result = parse_villages_csv(lines("代码,村名,乡镇,户数", "450222101001,云屿村,桐浦乡,203"))
    assert [(e["error"], e["column"]) for e in result.errors] == [
        ("missing_column", "county"),
        ("missing_column", "county_class"),
    ]
    assert all(e["row"] == 1 for e in result.errors)
    assert result.rows == []
    for e in result.errors:
        assert_bilingual(e)


def test_lat_without_lon_column():
    result = parse_villages_csv(lines("代码,村名,乡镇,县,县类别,纬度", YUNYU.rsplit(",", 2)[0]))
    assert [(e["error"], e["column"]) for e in result.errors] == [("missing_column", "lon")]


def test_duplicate_column():
    result = parse_villages_csv(lines(ZH_HEADER + ",code", YUNYU + ",450222101009"))
    assert [(e["error"], e["column"]) for e in result.errors] == [("duplicate_column", "code")]
    assert result.rows == []


@pytest.mark.parametrize("text", ["", "\ufeff", "\r\n\r\n", ",,,\r\n"])
def test_empty_file(text):
    found = only_error(text)
    assert found["error"] == "empty_file"
    assert found["row"] == 0
    assert_bilingual(found)


def test_header_only():
    found = only_error(lines(ZH_HEADER))
    assert found["error"] == "no_rows"
    assert_bilingual(found)
