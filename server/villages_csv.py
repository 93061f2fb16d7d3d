"""Parsing of the village list for `villagecheck import-villages FILE.csv`.

Pure logic: no database, no files. The caller reads the file, turns the bytes into text with
`decode_csv_bytes`, calls `parse_villages_csv`, and refuses the whole file when `errors` is not
empty (see docs/VILLAGES_CSV.md). Rows with an error are never returned in `rows`.

Positions: a `datum` / `坐标系` column (per row) or the caller's `datum` option (the whole file)
says which coordinate system lat/lon are in (media/datum.py: wgs84, cgcs2000, gcj02 from
AMap/Tencent, bd09 from Baidu); rows come back converted to WGS-84 with that `datum` and
`position_source` "register_import". A row with a position and no datum either way is counted
in `undeclared_positions` (and read as WGS-84): the CLI refuses such a file.

Row numbers are those a spreadsheet (WPS, Excel) shows: the header is row 1, the first village
row 2. Every error carries a stable `error` key, the `column` concerned (or None) and a message
in Chinese and in English.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field

from media.datum import DATUM_LABELS, normalise_datum, to_wgs84

FIELDS = (
    "code", "name", "township", "county", "county_class", "households", "lat", "lon", "datum",
    "position_source",
)  # fmt: skip
REQUIRED_COLUMNS = ("code", "name", "township", "county", "county_class")

DATUM_COLUMN_ALIASES = ("datum", "crs", "坐标系", "坐标系统", "坐标类型")

# Header spellings accepted for each field, compared after `_header_key` normalisation.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "code": (
        "code",
        "village_code",
        "代码",
        "村代码",
        "村庄代码",
        "编码",
        "区划代码",
        "行政区划代码",
    ),
    "name": ("name", "village", "village_name", "村名", "村名称", "村庄名称", "名称", "行政村"),
    "township": ("township", "town", "乡镇", "乡镇名称", "乡/镇", "乡镇(街道)", "镇"),
    "county": ("county", "县", "县名", "县区", "县(区)", "县(市、区)", "县市区"),
    "county_class": ("county_class", "class", "县类别", "类别", "县类", "县分类"),
    "households": ("households", "household_count", "户数", "农户数", "总户数"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "long", "longitude", "经度"),
    "datum": DATUM_COLUMN_ALIASES,
}

COLUMN_LABELS = {
    "code": "代码 code",
    "name": "村名 name",
    "township": "乡镇 township",
    "county": "县 county",
    "county_class": "县类别 county_class",
    "households": "户数 households",
    "lat": "纬度 lat",
    "lon": "经度 lon",
    "datum": "坐标系 datum",
}

CODE_RE = re.compile(r"[0-9]{12}")
_INTEGER_RE = re.compile(r"([+-]?[0-9]+)(?:\.0*)?")  # "203", "203.0" (spreadsheet exports)
_SCIENTIFIC_RE = re.compile(r"[0-9](\.[0-9]+)?e\+?[0-9]+", re.IGNORECASE)
_CLASS_WORDS = {
    "1": 1, "2": 2, "3": 3,
    "一": 1, "二": 2, "三": 3,
    "一类": 1, "二类": 2, "三类": 3,
    "1类": 1, "2类": 2, "3类": 3,
    "一类县": 1, "二类县": 2, "三类县": 3,
    "1类县": 1, "2类县": 2, "3类县": 3,
}  # fmt: skip


@dataclass
class ParseResult:
    rows: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    undeclared_positions: int = 0  # rows with a position but no datum (column or option)

    @property
    def ok(self) -> bool:
        return not self.errors


class CsvDecodeError(ValueError):
    """The bytes are neither UTF-8 (with or without BOM), UTF-16 with BOM, nor GB18030/GBK."""


def decode_csv_bytes(data: bytes) -> str:
    """Turn the bytes of an uploaded CSV into text.

    UTF-8 with or without BOM first (what WPS and Excel's "CSV UTF-8" write), then UTF-16 when
    it starts with a BOM (Excel's "Unicode text"), then GB18030, a superset of GBK/GB2312 (what
    Excel on a Chinese Windows writes for plain "CSV"). A leading BOM is dropped.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CsvDecodeError(_decode_message()) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CsvDecodeError(_decode_message()) from exc


def _decode_message() -> str:
    return (
        "无法识别文件编码，请另存为“CSV UTF-8”或 GBK 编码的 CSV 文件 / "
        "cannot decode the file: save it as CSV UTF-8 or GBK"
    )


def _header_key(text: str) -> str:
    """Normalise a header cell: width-fold, lower-case, no spaces, no trailing unit in brackets."""
    key = unicodedata.normalize("NFKC", text).strip().lstrip("\ufeff").lower()
    key = re.sub(r"\s+", "", key)
    # "户数(户)", "纬度(°)", "纬度(wgs84)": drop a trailing unit, but keep "县(区)" recognisable.
    if key not in _ALIAS_INDEX:
        key = re.sub(r"\([^()]*\)$", "", key)
    return key


_ALIAS_INDEX: dict[str, str] = {}
for _field, _aliases in HEADER_ALIASES.items():
    for _alias in _aliases:
        _ALIAS_INDEX[unicodedata.normalize("NFKC", _alias).lower()] = _field


def _clean(cell: str) -> str:
    return cell.replace("\u3000", " ").strip()


def _numeric(cell: str) -> str:
    """Fold full-width digits and signs (２０３, －1) to ASCII and drop thousands separators."""
    return unicodedata.normalize("NFKC", cell).strip().replace(",", "")


def _error(row: int, column: str | None, key: str, zh: str, en: str) -> dict:
    where_zh = f"第{row}行" if row else "文件"
    where_en = f"row {row}" if row else "file"
    return {
        "row": row,
        "column": column,
        "error": key,
        "message_zh": zh,
        "message_en": en,
        "message": f"{where_zh}：{zh} / {where_en}: {en}",
    }


def _sniff_delimiter(first_line: str) -> str:
    if "\t" in first_line and "," not in first_line:
        return "\t"
    if ";" in first_line and "," not in first_line:
        return ";"
    return ","


def datum_choices_zh() -> str:
    return "、".join(DATUM_LABELS.values())


def parse_datum_option(value: str | None) -> str | None:
    """An import's --datum option as a datum name; ValueError (Chinese) if unknown."""
    if value is None:
        return None
    datum = normalise_datum(value)
    if datum is None:
        raise ValueError(f"坐标系“{value}”无效，只能是：{datum_choices_zh()}")
    return datum


UNDECLARED_ZH = (
    "文件里有经纬度，但没有说明坐标系：请加一列“坐标系”，或导入时用 --datum 指明"
    "（高德、腾讯地图取的点是 gcj02，百度地图是 bd09，GPS 和天地图是 wgs84 或 cgcs2000）"
)


def parse_row_position(record: dict[str, str], option: str | None, err):
    """lat/lon/datum of a row: (lat, lon, datum, declared) in WGS-84, or Nones after `err`."""
    lat, lon = _parse_location(record, err)
    raw = record.get("datum", "")
    datum = option
    if raw:
        datum = normalise_datum(raw)
        if datum is None:
            err(
                "datum",
                "bad_datum",
                f"坐标系“{raw}”无效，只能是：{datum_choices_zh()}",
                f"datum {raw!r} is not one of wgs84, cgcs2000, gcj02, bd09",
            )
            return None, None, None, True
    if lat is None:
        return None, None, None, True
    lat, lon = to_wgs84(lat, lon, datum or "wgs84")
    return lat, lon, datum or "wgs84", datum is not None


def parse_villages_csv(text: str, datum: str | None = None) -> ParseResult:
    """Parse the text of a village list into rows ready to insert and per-row errors.

    Each returned row has every key of FIELDS: code, name, township, county (str),
    county_class (1/2/3), households (int >= 0 or None when blank), lat and lon (WGS-84 floats
    or both None when blank), datum (as declared) and position_source ("register_import"; both
    None without a position). `datum` is the file's datum where a row does not say (see the
    module docstring). Columns not recognised are ignored and listed in `ignored_columns`.
    """
    result = ParseResult()
    seen_codes: dict[str, int] = {}
    read_rows(
        text,
        result,
        _map_header,
        lambda record, row_no: _parse_row(record, row_no, seen_codes, datum),
        "文件只有表头，没有村庄数据",
    )
    return result


def read_rows(text: str, result, map_header, parse_row, no_rows_zh: str) -> None:
    """Read a register CSV into `result` (its rows, errors and undeclared positions): the
    header row is the first non-blank one (`map_header` gives the columns or None, having
    said why in `result`), then each non-blank row goes through `parse_row(record, row_no)`.
    Shared by the village and the facility imports."""
    text = text.lstrip("\ufeff")
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line))
    columns: dict[str, int] | None = None
    for row_no, cells in enumerate(reader, start=1):
        if not any(_clean(c) for c in cells):
            continue  # blank lines, and rows of empty cells that spreadsheets leave at the end
        if columns is None:
            columns = map_header(cells, row_no, result)
            if columns is None:
                return
            continue
        record = {f: _clean(cells[i]) if i < len(cells) else "" for f, i in columns.items()}
        row, errors = parse_row(record, row_no)
        if errors:
            result.errors.extend(errors)
        else:
            result.undeclared_positions += row.pop("_undeclared")
            result.rows.append(row)
    if columns is None:
        result.errors.append(_error(0, None, "empty_file", "文件为空", "the file is empty"))
    elif not result.rows and not result.errors:
        result.errors.append(
            _error(0, None, "no_rows", no_rows_zh, "the file has a header but no rows")
        )


def _map_header(header: list[str], row_no: int, result: ParseResult) -> dict[str, int] | None:
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = _clean(cell)
        if not name:
            continue
        target = _ALIAS_INDEX.get(_header_key(name))
        if target is None:
            result.ignored_columns.append(name)
            continue
        if target in columns:
            result.errors.append(
                _error(
                    row_no,
                    target,
                    "duplicate_column",
                    f"表头中“{COLUMN_LABELS[target]}”列出现了两次（{name}）",
                    f"column {target} appears twice in the header ({name})",
                )
            )
            continue
        columns[target] = index
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            result.errors.append(
                _error(
                    row_no,
                    required,
                    "missing_column",
                    f"表头缺少“{COLUMN_LABELS[required]}”列",
                    f"the header has no {required} column",
                )
            )
    if ("lat" in columns) != ("lon" in columns):
        missing = "lon" if "lat" in columns else "lat"
        result.errors.append(
            _error(
                row_no,
                missing,
                "missing_column",
                f"纬度和经度要一起提供，表头缺少“{COLUMN_LABELS[missing]}”列",
                f"lat and lon go together: the header has no {missing} column",
            )
        )
    return None if result.errors else columns


def _parse_row(
    record: dict[str, str], row_no: int, seen_codes: dict[str, int], datum: str | None
) -> tuple[dict, list[dict]]:
    errors: list[dict] = []

    def err(column: str | None, key: str, zh: str, en: str) -> None:
        errors.append(_error(row_no, column, key, zh, en))

    # code
    code = _numeric(record.get("code", ""))
    if not code:
        err("code", "missing_code", "缺少村代码", "missing village code")
    elif _SCIENTIFIC_RE.fullmatch(code):
        err(
            "code",
            "bad_code",
            f"村代码“{code}”被表格软件改成了科学计数法，请把该列设为文本后重新填写",
            f"village code {code!r} was turned into scientific notation by the spreadsheet; "
            "format the column as text and enter the codes again",
        )
    elif not CODE_RE.fullmatch(code):
        err(
            "code",
            "bad_code",
            f"村代码“{code}”应为12位数字（统计用区划代码）",
            f"village code {code!r} must be 12 digits",
        )
    elif code in seen_codes:
        err(
            "code",
            "duplicate_code",
            f"村代码 {code} 与第{seen_codes[code]}行重复",
            f"village code {code} already appears in row {seen_codes[code]}",
        )
    else:
        seen_codes[code] = row_no

    # names
    for column, zh_label, en_label in (
        ("name", "村名", "village name"),
        ("township", "乡镇", "township"),
        ("county", "县", "county"),
    ):
        if not record.get(column):
            err(column, f"missing_{column}", f"缺少{zh_label}", f"missing {en_label}")

    # county class
    raw_class = _numeric(record.get("county_class", "")).removesuffix(".0")
    county_class = _CLASS_WORDS.get(raw_class)
    if not raw_class:
        err("county_class", "missing_county_class", "缺少县类别", "missing county class")
    elif county_class is None:
        err(
            "county_class",
            "bad_county_class",
            f"县类别“{raw_class}”无效，只能是 1、2 或 3",
            f"county class {raw_class!r} is not 1, 2 or 3",
        )

    # households
    households: int | None = None
    raw_households = _numeric(record.get("households", ""))
    if raw_households:
        match = _INTEGER_RE.fullmatch(raw_households)
        number = int(match.group(1)) if match else None
        if number is None:
            err(
                "households",
                "bad_households",
                f"户数“{raw_households}”不是整数",
                f"households {raw_households!r} is not a whole number",
            )
        elif number < 0:
            err(
                "households",
                "negative_households",
                f"户数不能为负数（{raw_households}）",
                f"households cannot be negative ({raw_households})",
            )
        else:
            households = number

    # location, converted to WGS-84
    lat, lon, declared, known = parse_row_position(record, datum, err)

    row = {
        "code": code,
        "name": record.get("name", ""),
        "township": record.get("township", ""),
        "county": record.get("county", ""),
        "county_class": county_class,
        "households": households,
        "lat": lat,
        "lon": lon,
        "datum": declared,
        "position_source": "register_import" if lat is not None else None,
        "_undeclared": lat is not None and not known,
    }
    return row, errors


def _parse_location(record: dict[str, str], err) -> tuple[float | None, float | None]:
    raw = {axis: _numeric(record.get(axis, "")) for axis in ("lat", "lon")}
    if not raw["lat"] and not raw["lon"]:
        return None, None
    if not raw["lat"] or not raw["lon"]:
        missing = "lat" if not raw["lat"] else "lon"
        err(
            missing,
            "incomplete_location",
            "纬度和经度要么都填，要么都不填",
            "give both lat and lon, or neither",
        )
        return None, None
    values: dict[str, float] = {}
    for axis, zh, limit in (("lat", "纬度", 90.0), ("lon", "经度", 180.0)):
        try:
            value = float(raw[axis])
        except ValueError:
            err(
                axis,
                f"bad_{axis}",
                f"{zh}“{raw[axis]}”不是数字（请用小数度数，如 24.7652）",
                f"{axis} {raw[axis]!r} is not a number (use decimal degrees, e.g. 24.7652)",
            )
            continue
        if value != value or not -limit <= value <= limit:  # NaN or out of range
            hint_zh = hint_en = ""
            if axis == "lat" and _swapped(raw):
                hint_zh, hint_en = "，是否把纬度和经度填反了？", "; are lat and lon swapped?"
            err(
                axis,
                f"{axis}_out_of_range",
                f"{zh} {raw[axis]} 超出范围（-{limit:g} 到 {limit:g}）{hint_zh}",
                f"{axis} {raw[axis]} is outside -{limit:g}..{limit:g}{hint_en}",
            )
            continue
        values[axis] = value
    if len(values) != 2:
        return None, None
    return values["lat"], values["lon"]


def _swapped(raw: dict[str, str]) -> bool:
    try:
        return abs(float(raw["lon"])) <= 90 < abs(float(raw["lat"])) <= 180
    except ValueError:
        return False
