"""A facility register from a CSV file: `villagecheck import-facilities FILE.csv --datum gcj02`.

Registers are where GCJ-02 positions come from: facilities picked on AMap or Tencent maps
(GCJ-02) or Baidu's (BD-09). The file, or each row, says which (`datum` / `坐标系` column, or
`--datum`); positions are stored in WGS-84 with that datum and source "register_import". A file
with positions and no datum declared is refused.

Columns (Chinese or English headers, any order; encodings as for villages, see
server/villages_csv.py):

- 村代码 / village (12 digits, a village already imported), 设施类型 / kind (toilet, rubbish,
  fire, zone, or 厕所/户厕/公厕, 垃圾/垃圾收集点, 消防, 片区), 名称 / name;
- optional: 纬度 / lat, 经度 / lon, 坐标系 / datum, 细类 / subtype (the kind's type field, e.g.
  toilet_type `household`), 编号 / id (a UUID; otherwise derived from village, kind and name,
  so importing the same file again adds nothing).

Parsing is pure (`parse_facilities_csv`); the whole file is refused if any row is wrong, with
every error in Chinese with its spreadsheet row number. Facilities already stored (same id) are
left as they are and counted.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import click
from flask.cli import with_appcontext

from sync.clock import Clock, encode

from .villages_csv import (
    CODE_RE,
    DATUM_COLUMN_ALIASES,
    UNDECLARED_ZH,
    _clean,
    _error,
    decode_csv_bytes,
    parse_datum_option,
    parse_row_position,
    read_rows,
)

#: Derives a facility's id from village, kind and name when the file gives none.
ID_NAMESPACE = uuid.UUID("5b0f4b7e-6c55-4d0e-9a55-2f1c0b6a1f11")
IMPORT_DEVICE = "import"
KIND_TYPE_FIELD = {"toilet": "toilet_type", "rubbish": "rubbish_type", "fire": "fire_type",
                   "zone": "zone_type"}  # fmt: skip
KIND_WORDS = {
    "toilet": ("toilet", "厕所", "户厕", "公厕", "卫生厕所", "农村厕所"),
    "rubbish": ("rubbish", "垃圾", "垃圾点", "垃圾收集点", "垃圾池", "垃圾桶", "垃圾屋"),
    "fire": ("fire", "消防", "消防设施", "消防栓", "消火栓"),
    "zone": ("zone", "片区", "区域", "整治片区", "环境整治片区"),
}
_KIND_INDEX = {w: kind for kind, words in KIND_WORDS.items() for w in words}

HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "village": ("village", "village_code", "村代码", "村庄代码", "行政村代码", "代码"),
    "kind": ("kind", "设施类型", "类型", "设施类别"),
    "name": ("name", "名称", "设施名称"),
    "subtype": ("subtype", "细类", "子类型", "具体类型"),
    "id": ("id", "编号", "设施编号"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "long", "longitude", "经度"),
    "datum": DATUM_COLUMN_ALIASES,
}
REQUIRED = ("village", "kind", "name")
LABELS = {
    "village": "村代码 village",
    "kind": "设施类型 kind",
    "name": "名称 name",
    "lat": "纬度 lat",
    "lon": "经度 lon",
}
_ALIAS_INDEX = {
    unicodedata.normalize("NFKC", a).lower(): f
    for f, aliases in HEADER_ALIASES.items()
    for a in aliases
}
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class FacilitiesResult:
    rows: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    undeclared_positions: int = 0


def _key(text: str) -> str:
    key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).strip().lstrip("\ufeff").lower())
    return key if key in _ALIAS_INDEX else re.sub(r"\([^()]*\)$", "", key)


def parse_facilities_csv(
    text: str, *, datum: str | None = None, villages: set[str] | None = None
) -> FacilitiesResult:
    """Rows ready for `insert_facility` (lat/lon in WGS-84) and per-row errors.

    `datum`: the file's datum where a row has none; `villages`: the village codes that exist
    (None: not checked).
    """
    result = FacilitiesResult()
    seen: dict[str, int] = {}
    read_rows(
        text,
        result,
        _map_header,
        lambda record, row_no: _parse_row(record, row_no, datum, villages, seen),
        "文件只有表头，没有设施数据",
    )
    return result


def _map_header(cells: list[str], row_no: int, result: FacilitiesResult) -> dict | None:
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = _clean(cell)
        if not name:
            continue
        target = _ALIAS_INDEX.get(_key(name))
        if target is None:
            result.ignored_columns.append(name)
        elif target in columns:
            result.errors.append(
                _error(
                    row_no,
                    target,
                    "duplicate_column",
                    f"表头中“{name}”列出现了两次",
                    f"column {target} appears twice",
                )  # fmt: skip
            )
        else:
            columns[target] = index
    for required in REQUIRED:
        if required not in columns:
            result.errors.append(
                _error(
                    row_no,
                    required,
                    "missing_column",
                    f"表头缺少“{LABELS[required]}”列",
                    f"the header has no {required} column",
                )  # fmt: skip
            )
    if ("lat" in columns) != ("lon" in columns):
        missing = "lon" if "lat" in columns else "lat"
        result.errors.append(
            _error(
                row_no,
                missing,
                "missing_column",
                f"纬度和经度要一起提供，表头缺少“{LABELS[missing]}”列",
                f"lat and lon go together: the header has no {missing} column",
            )  # fmt: skip
        )
    return None if result.errors else columns


def _parse_row(record, row_no, datum, villages, seen) -> tuple[dict, list[dict]]:
    errors: list[dict] = []

    def err(column, key, zh, en):
        errors.append(_error(row_no, column, key, zh, en))

    village = unicodedata.normalize("NFKC", record.get("village", "")).strip()
    if not CODE_RE.fullmatch(village):
        err("village", "bad_village", f"村代码“{village}”应为12位数字", "village code: 12 digits")
    elif villages is not None and village not in villages:
        err("village", "unknown_village", f"村代码 {village} 不在系统中，请先导入村庄",
            f"village {village} is not imported yet")  # fmt: skip
    raw_kind = unicodedata.normalize("NFKC", record.get("kind", "")).strip().lower()
    kind = _KIND_INDEX.get(raw_kind)
    if kind is None:
        err(
            "kind",
            "bad_kind",
            f"设施类型“{record.get('kind', '')}”无效，只能是厕所、垃圾收集点、消防设施或片区"
            "（toilet、rubbish、fire、zone）",
            "kind must be toilet, rubbish, fire or zone",
        )
    name = record.get("name", "")
    if not name or len(name) > 100:
        err("name", "bad_name", "请填写设施名称（100 字以内）", "name required (at most 100)")
    subtype = record.get("subtype", "")
    if len(subtype) > 64:
        err("subtype", "bad_subtype", "细类不超过 64 个字符", "subtype at most 64 characters")
    fid = record.get("id", "").lower()
    if fid and not _UUID_RE.fullmatch(fid):
        err("id", "bad_id", f"编号“{fid}”不是 UUID", f"id {fid!r} is not a UUID")
    lat, lon, declared, known = parse_row_position(record, datum, err)
    if errors:
        return {}, errors
    fid = fid or str(uuid.uuid5(ID_NAMESPACE, f"{village}|{kind}|{name}"))
    if fid in seen:
        err("id", "duplicate", f"与第{seen[fid]}行是同一个设施（同村、同类型、同名称或同编号）",
            f"same facility as row {seen[fid]}")  # fmt: skip
        return {}, errors
    seen[fid] = row_no
    fields = {KIND_TYPE_FIELD[kind]: subtype} if subtype else {}
    return {
        "id": fid,
        "village_code": village,
        "kind": kind,
        "name": name,
        "lat": lat,
        "lon": lon,
        "datum": declared,
        "position_source": "register_import" if lat is not None else None,
        "fields": fields,
        "_undeclared": lat is not None and not known,
    }, []


def store_facilities(store, rows: list[dict], *, now_ms: int, at: str) -> tuple[int, int]:
    """Insert the facilities not stored yet, in one transaction: (added, already there)."""
    clock = encode(Clock(now_ms, 0, IMPORT_DEVICE))
    existing = {f["id"] for f in store.facilities_by_ids(r["id"] for r in rows)}
    added = 0
    with store.write():
        for row in rows:
            if row["id"] in existing:
                continue
            values = {**row["fields"], "status": "active"}
            store.insert_facility(
                {
                    **{k: v for k, v in row.items() if k != "fields"},
                    "created_clock": clock,
                    "state": {
                        k: {"value": v, "clock": clock, "by": IMPORT_DEVICE}
                        for k, v in values.items()
                    },  # fmt: skip
                },
                at=at,
            )
            added += 1
    return added, len(rows) - added


@click.command("import-facilities")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--datum", help="坐标系 of lat/lon: wgs84, cgcs2000, gcj02 (AMap/Tencent), bd09")
@with_appcontext
def import_facilities(csv_file: Path, datum: str | None):
    """Import a facility register from a CSV file; refused whole if any row is wrong."""
    from .bootstrap import init_db
    from .context import now, now_iso, storage

    store = storage()
    init_db(store, at=now_iso())
    try:
        text = decode_csv_bytes(csv_file.read_bytes())
        option = parse_datum_option(datum)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    villages = {v["code"] for v in store.villages()}
    result = parse_facilities_csv(text, datum=option, villages=villages)
    if result.errors:
        for error in result.errors:
            click.echo(f"第 {error['row']} 行: {error['message_zh']}", err=True)
        raise click.ClickException(f"{len(result.errors)} 处错误，未导入任何设施")
    if result.undeclared_positions:
        raise click.ClickException(f"{UNDECLARED_ZH}；未导入任何设施")
    moment = now()
    added, kept = store_facilities(
        store, result.rows, now_ms=int(moment.timestamp() * 1000), at=now_iso()
    )
    click.echo(f"已导入 {added} 个设施" + (f"，{kept} 个已存在未改动" if kept else ""))
