"""Reports for supervisors and admins: the indicator dashboard and the exports.

Pages (session login, scoped to the viewer's villages `g.villages`):

- `GET /desk/indicators[?month=YYYY-MM]` — indicators per village, township and county against
  their targets, read from the snapshot the `recompute-indicators` job stores (computed live
  for the viewer's villages when there is none yet). `POST /desk/indicators/recompute` (admins)
  recomputes the snapshot now.
- `GET /desk/exports` — links to:
  - `/desk/exports/forms/<form>.csv` and `.xlsx` — one row per submission, Chinese headers from
    the form's labels, photo links to the desk's own photo route `/desk/media/<sha>/1280`, which
    the viewer's desk session opens (scoped like every desk page; a stranger gets the login
    page). Times are in the server's time zone (Asia/Shanghai, +08:00), with the offset in CSV
    and as real date-times in XLSX. Every published version of the form is exported together,
    columns merged by field name (the newest version's order and labels first). A repeat group
    (issue 15) is one column of the submission's row (its number of instances); its instances
    are rows of their own, keyed by submission id and instance number (1-based) with a column
    per inner field, merged by name across versions too: one more XLSX sheet per group, and
    `/desk/exports/forms/<form>.csv?repeat=<group>` as a long-format CSV (file
    `<form>-<group>-….csv`);
  - `/desk/exports/facilities.geojson` — facilities with their current fields;
  - `/desk/exports/villages/<code>/photos.zip` — a village's evidence photos (originals) with a
    manifest CSV.
  Each takes `?month=YYYY-MM` (by the inspection's local date) and the form exports `?village=`.

Everything is streamed: rows come from a database cursor a batch at a time (own connection, one
read transaction), and CSV/GeoJSON/ZIP/XLSX bytes are yielded as they are made (the XLSX by
server/xlsx_stream.py: its sheet XML goes row by row into a ZIP stream, so the first byte of a
100,000-row workbook leaves at once; tests/bench/bench_export.py). File names carry the China
date. CSV files start
with a UTF-8 BOM so Excel opens the Chinese correctly. Text cells starting with = + - @ are
prefixed with ' so a spreadsheet never runs them as formulas.
"""

import csv
import io
import json
import re
import urllib.parse
import zipfile
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from sync.review import STATE_NAMES

from . import indicators, jobs, scheduler
from .context import media_store, now, now_iso, storage
from .overrides import effective_config, viewer_county, villages_with_class
from .storage import connect
from .web import login_required
from .xlsx_stream import Link, text_width, xlsx_stream

bp = Blueprint("reports", __name__)

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
BASE_COLUMNS = (
    "提交编号",
    "乡镇",
    "村名",
    "村代码",
    "检查对象",
    "检查时间",
    "上报时间",
    "填报人",
    "设备",
    "状态",
    "风险分",
    "表单版本",
)
KIND_NAMES = {"toilet": "厕所", "rubbish": "垃圾收运点", "fire": "消防点", "zone": "村庄清洁区域"}
# Column widths (Excel character units) by what a column holds; at least the header's width.
BASE_WIDTHS = (38, 10, 10, 14, 24, 20, 20, 10, 22, 10, 8, 10)
TYPE_WIDTHS = {
    "photo": 60,
    "date": 12,
    "text": 24,
    "select_many": 24,
    "calculate": 16,
    "repeat": 14,
}
#: The first columns of a repeat group's sheet / CSV: one row per instance.
REPEAT_COLUMNS = ("提交编号", "第几项", "村名", "检查对象")
REPEAT_WIDTHS = (38, 8, 10, 24)
CHUNK = 256 * 1024
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def _local_month() -> str:
    return now().astimezone(_zone()).strftime("%Y-%m")


def local_time(value, zone):
    """An ISO time as an aware datetime in `zone` (naive ones are taken as UTC); text if not one."""
    if not isinstance(value, str) or not value:
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(zone)


def _month_arg() -> str | None:
    month = request.args.get("month") or None
    if month is not None and not MONTH.fullmatch(month):
        abort(400, description="月份格式应为 YYYY-MM")
    return month


#: Every export holds personal data (household names in facility names, positions, photos:
#: docs/PRIVACY.md): its file name says so (the ASCII fallback too), as do the export page
#: and the XLSX's last sheet (说明; the second unless the form has repeat groups).
PERSONAL_PREFIX = "含个人信息-"
PERSONAL_PREFIX_ASCII = "personal-data-"
PERSONAL_NOTES = [
    "本文件含个人信息",
    "含农户姓名（设施名称）、设施和手机位置、检查人员姓名；照片导出另含农户家中照片。",
    "仅用于农村人居环境检查工作，请妥善保管，不得外传或公开；用完请删除。",
    "导出人和导出时间已记入审计日志。说明见 docs/PRIVACY.md。",
]


def _attachment(name: str) -> dict:
    """The download's name, marked as holding personal data: a UTF-8 name for browsers
    (RFC 6266 filename*) and an ASCII one for the rest."""
    quoted = urllib.parse.quote(PERSONAL_PREFIX + name)
    ascii_name = PERSONAL_PREFIX_ASCII + name.encode("ascii", "replace").decode().replace("?", "_")
    return {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}; filename=\"{ascii_name}\""
    }


# -- the indicator dashboard ----------------------------------------------------------------


@bp.get("/desk/indicators")
@login_required
def indicators_page():
    """Indicators of the viewer's villages, their townships and (if wholly seen) county."""
    month = _month_arg() or _local_month()
    store = storage()
    snapshot = store.indicator_snapshot(month)
    if snapshot:
        facts, computed_at, live = snapshot["data"]["facts"], snapshot["computed_at"], False
    else:
        today = now().astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date().isoformat()
        facts = jobs.indicator_facts(store, month, today=today, villages=g.villages)
        computed_at, live = now_iso(), True
    target = tidiness_target(store, g.villages)
    report = indicators.report(
        villages_with_class(store, current_app.config),
        facts,
        visible=g.villages,
        tidiness_target=target,
    )
    rows = report["townships"] if len(report["townships"]) > 1 else report["villages"]
    return render_template(
        "dashboard.html",
        month=month,
        report=report,
        computed_at=computed_at,
        live=live,
        chart=bar_chart(rows),
        indicators=indicators.INDICATORS,
        targets=indicators.TARGETS,
        tidiness_target=target,
    )


@bp.post("/desk/indicators/recompute")
@login_required(roles=("admin",))
def recompute_indicators():
    """Recompute the month's snapshot now (under the job's lease, logged like a scheduled run)."""
    month = request.form.get("month") or _local_month()
    if not MONTH.fullmatch(month):
        abort(400, description="月份格式应为 YYYY-MM")
    outcome = scheduler.run_job(
        storage(),
        "recompute-indicators",
        clock=now,
        config=current_app.config,
        holder=scheduler.make_holder(f"web:{g.user['username']}:"),
        month=month,
    )
    if not outcome.ran:
        flash("指标正在由另一进程计算，请稍后刷新")
    elif outcome.error:
        flash("指标计算失败，请查看运行记录（villagecheck job-runs）")
    else:
        flash(f"已重新计算 {month} 的指标")
    return redirect(url_for("reports.indicators_page", month=month))


def bar_chart(rows: list[dict], *, width: int = 640) -> dict:
    """Geometry of a plain SVG bar chart of the two toilet rates against their targets."""
    label_w, bar_h, gap, top = 130, 12, 14, 24
    plot_w = width - label_w - 70
    bars, y = [], top
    for row in rows:
        entry = {"label": row["name"], "y": y, "bars": []}
        for i, key in enumerate(("sanitary", "harmless")):
            cell = row["cells"][key]
            value = cell["value"] or 0
            entry["bars"].append(
                {
                    "key": key,
                    "y": y + i * (bar_h + 2),
                    "w": round(plot_w * value, 1),
                    "text": cell["text"],
                    "met": cell["met"],
                    "target_x": None
                    if cell["target"] is None
                    else round(label_w + plot_w * cell["target"], 1),
                }
            )
        bars.append(entry)
        y += 2 * bar_h + 2 + gap
    return {
        "width": width,
        "height": y + 6,
        "label_w": label_w,
        "plot_w": plot_w,
        "bar_h": bar_h,
        "rows": bars,
    }


# -- exports page ---------------------------------------------------------------------------


@bp.get("/desk/exports")
@login_required
def exports_page():
    store = storage()
    forms = {}
    for definition in store.forms():
        forms[definition["id"]] = definition  # sorted by version: the newest stays
    repeats = {form_id: repeat_groups(store.form_versions(form_id)) for form_id in forms}
    return render_template(
        "exports.html",
        forms=list(forms.values()),
        repeats={k: v for k, v in repeats.items() if v},
        villages=store.villages(g.villages),
        month=_local_month(),
    )


# -- form submissions: CSV and XLSX -----------------------------------------------------------


def form_columns(versions: list[dict]) -> list[dict]:
    """The fields to export, newest version's order first, then fields only older versions had.

    A repeat group is one column here (its number of instances); its instances go to a sheet
    or a CSV file of their own (repeat_groups)."""
    return _merged(definition["fields"] for definition in versions)


def _merged(field_lists) -> list[dict]:
    """Fields merged by name over versions (given newest first): each name once, notes left out."""
    columns, seen = [], set()
    for fields in field_lists:
        for field in fields:
            if field["type"] == "note" or field["name"] in seen:
                continue
            seen.add(field["name"])
            columns.append(field)
    return columns


def repeat_groups(versions: list[dict]) -> list[dict]:
    """The repeat groups of every version (newest first), each with its inner fields merged by
    name across the versions that have it: [{"name", "label", "fields"}], newest order first."""
    groups: dict[str, dict] = {}
    inner: dict[str, list[list[dict]]] = {}
    for definition in versions:
        for field in definition["fields"]:
            if field["type"] != "repeat":
                continue
            groups.setdefault(field["name"], field)
            inner.setdefault(field["name"], []).append(field.get("fields", []))
    return [
        {
            "name": name,
            "label": (field.get("label") or {}).get("zh") or name,
            "fields": _merged(inner[name]),
        }
        for name, field in groups.items()
    ]


def _label(value, choices: dict):
    return choices.get(value, value)


def cell_value(field: dict, value, photo_url, field_labels: dict):
    """An answer as a spreadsheet shows it (labels for choices, 是/否, links for photos)."""
    if value is None:
        return None
    kind = field["type"]
    choices = {c["value"]: c["label"]["zh"] for c in field.get("choices", [])}
    if kind == "repeat":
        return len(value) if isinstance(value, list) else None
    if kind == "photo":
        photos = value if isinstance(value, list) else []
        shas = [p.get("sha256") for p in photos if isinstance(p, dict)]
        return Link(photo_url(s) for s in shas if isinstance(s, str))
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, bool):
        return "是" if value else "否"
    if kind == "select_one":
        return _label(value, choices)
    if isinstance(value, list):
        return "、".join(str(_label(v, choices or field_labels)) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _safe_text(value):
    """Text a spreadsheet will show as text: no formula trigger, no XML-illegal characters."""
    if isinstance(value, str):
        value = _ILLEGAL_XML.sub("", value)
        if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            value = "'" + value
        return value[:32000]
    return value


def _header(field: dict) -> str:
    label = field["label"]["zh"]
    return f"{label}（项数）" if field["type"] == "repeat" else label


def column_widths(header: list[str], columns: list[dict], base=BASE_WIDTHS) -> list[int]:
    kinds = [*base, *(TYPE_WIDTHS.get(f["type"], 10) for f in columns)]
    return [max(min(60, text_width(h) + 4), w) for h, w in zip(header, kinds, strict=True)]


def _submission_rows(store, form_id, villages, month, photo_url, batch, zone, widths=None):
    """Header, then one list of cell values per submission (a generator).

    Times are aware datetimes in `zone`, date answers `date`s, photos `Link`s. `widths`, a list,
    is filled with the columns' widths when the header is made.
    """
    versions = store.form_versions(form_id)
    columns = form_columns(versions)
    field_labels = {f["name"]: f["label"]["zh"] for f in columns}
    header = [*BASE_COLUMNS, *(_header(f) for f in columns)]
    if widths is not None:
        widths[:] = column_widths(header, columns)
    yield header
    for row in store.iter_export_submissions(form_id, villages, month=month, batch=batch):
        answers = json.loads(row["answers"])
        base = [
            row["id"],
            row["township"],
            row["village_name"],
            row["village_code"],
            row["record_name"],
            local_time(row["observed_at"], zone),
            local_time(row["received_at"], zone),
            row["author"],
            row["device_id"],
            STATE_NAMES.get(row["state"], row["state"]),
            row["risk_score"],
            row["form_version"],
        ]
        values = [cell_value(f, answers.get(f["name"]), photo_url, field_labels) for f in columns]
        yield [_safe_text(v) for v in base + values]


def _repeat_rows(store, form_id, group, villages, month, photo_url, batch, widths=None):
    """Header, then one row per instance of repeat group `group` (from repeat_groups): the
    submission, the instance's number (1-based, as the phone numbers them) and its answers."""
    columns = group["fields"]
    field_labels = {f["name"]: f["label"]["zh"] for f in columns}
    header = [*REPEAT_COLUMNS, *(f["label"]["zh"] for f in columns)]
    if widths is not None:
        widths[:] = column_widths(header, columns, REPEAT_WIDTHS)
    yield header
    for row in store.iter_export_submissions(form_id, villages, month=month, batch=batch):
        instances = json.loads(row["answers"]).get(group["name"])
        if not isinstance(instances, list):
            continue
        for number, instance in enumerate(instances, start=1):
            if not isinstance(instance, dict):
                continue
            base = [row["id"], number, row["village_name"], row["record_name"]]
            values = [
                cell_value(f, instance.get(f["name"]), photo_url, field_labels) for f in columns
            ]
            yield [_safe_text(v) for v in base + values]


def _export_scope():
    """The villages an export covers: the viewer's, or one of them with ?village=."""
    village = request.args.get("village") or None
    if village is None:
        return sorted(g.villages), None
    if village not in g.villages:
        abort(403)
    return [village], village


def _form_or_404(form_id: str) -> None:
    if not storage().form_versions(form_id):
        abort(404)


def _open_reader():
    """A connection of the export's own, so the rows outlive the request's connection."""
    return connect(current_app.config["DATABASE_URL"])


def _photo_url_maker():
    """Links to the desk's photo route: the viewer's session opens them, within its scope."""
    root = request.host_url.rstrip("/")
    return lambda sha: f"{root}/desk/media/{sha}/1280"


def _audit_export(export: str, entity_id: str, **detail) -> None:
    storage().audit(
        f"export.{export}",
        at=now_iso(),
        user_id=g.user["id"],
        entity="export",
        entity_id=entity_id,
        detail={k: v for k, v in detail.items() if v is not None},
    )


def csv_text(value):
    """A cell as CSV text: times with their offset (2026-11-20 10:00:00+08:00), links one a line."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (date, Link)):
        return str(value)
    return value


def csv_stream(rows, *, bom: bool = True):
    """CSV bytes (UTF-8, BOM first, CRLF rows) in chunks of about 64 KB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if bom:
        buffer.write("\ufeff")
    for row in rows:
        writer.writerow([csv_text(v) for v in row])
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _form_export(
    export: str, form_id: str, repeat: str | None = None
) -> tuple[list[str], str | None, str | None]:
    """Check the form, read ?village= and ?month= and log the export: (villages, village, month)."""
    _form_or_404(form_id)
    villages, village = _export_scope()
    month = _month_arg()
    _audit_export(
        export, form_id, village=village, month=month, villages=len(villages), repeat=repeat
    )
    return villages, village, month


def _form_rows(reader, form_id: str, villages: list[str], month: str | None, widths=None):
    """The form's export rows read through `reader`, photo links and batch size fixed now."""
    return _submission_rows(
        reader,
        form_id,
        villages,
        month,
        _photo_url_maker(),
        current_app.config["EXPORT_BATCH_ROWS"],
        _zone(),
        widths,
    )


def _closing(reader, chunks):
    """Yield the chunks inside one read transaction; close the reader however it ends."""
    try:
        with reader.reading():
            yield from chunks
    finally:
        reader.close()


@bp.get("/desk/exports/forms/<form_id>.csv")
@login_required
def export_form_csv(form_id):
    """One row per submission; with ?repeat=NAME, one row per instance of that repeat group
    (a long-format file keyed by submission and instance number)."""
    repeat = request.args.get("repeat") or None
    group = None
    if repeat is not None:
        _form_or_404(form_id)
        groups = {g["name"]: g for g in repeat_groups(storage().form_versions(form_id))}
        if repeat not in groups:
            abort(404, description="表单没有这个重复组")
        group = groups[repeat]
    villages, village, month = _form_export("csv", form_id, repeat=repeat)
    reader = _open_reader()
    if group is None:
        rows = _form_rows(reader, form_id, villages, month)
    else:
        rows = _repeat_rows(
            reader,
            form_id,
            group,
            villages,
            month,
            _photo_url_maker(),
            current_app.config["EXPORT_BATCH_ROWS"],
        )
    stem = form_id if group is None else f"{form_id}-{repeat}"
    return Response(
        _closing(reader, csv_stream(rows)),
        mimetype="text/csv",
        headers=_attachment(_file_name(stem, village, month, "csv")),
    )


def _file_name(stem, village, month, ext) -> str:
    """stem-village-month.ext, or the China date (YYYYMMDD) when there is no month."""
    parts = [stem, village, month or now().astimezone(_zone()).strftime("%Y%m%d")]
    return "-".join(p for p in parts if p) + f".{ext}"


@bp.get("/desk/exports/forms/<form_id>.xlsx")
@login_required
def export_form_xlsx(form_id):
    """The submissions' sheet, then one sheet per repeat group (a row per instance), then notes."""
    villages, village, month = _form_export("xlsx", form_id)
    title = _sheet_title(form_id)
    groups = repeat_groups(storage().form_versions(form_id))
    reader = _open_reader()
    widths: list[int] = []
    rows = _form_rows(reader, form_id, villages, month, widths)
    photo_url, batch = _photo_url_maker(), current_app.config["EXPORT_BATCH_ROWS"]
    sheets = []
    for group in groups:  # generators: each runs its query when its sheet is written
        group_widths: list[int] = []
        group_rows = _repeat_rows(
            reader, form_id, group, villages, month, photo_url, batch, group_widths
        )
        sheets.append((group["label"], group_rows, group_widths))
    return Response(
        _closing(reader, _xlsx_chunks(rows, title, widths, sheets)),
        mimetype=XLSX_MIME,
        headers=_attachment(_file_name(form_id, village, month, "xlsx")),
    )


def _xlsx_chunks(rows, title: str, widths: list[int], sheets=()):
    """The workbook's bytes; the header row (made first) fills in `widths` before the sheet.
    A repeat group's sheet fills in its widths list the same way when its header is made."""
    rows = iter(rows)
    header = next(rows, [])
    yield from xlsx_stream(
        _prepend(header, rows),
        title=title,
        widths=widths or None,
        notes=PERSONAL_NOTES,
        sheets=sheets,
    )


def _prepend(first, rest):
    yield first
    yield from rest


def _sheet_title(form_id: str) -> str:
    versions = storage().form_versions(form_id)
    title = versions[0].get("title", {}).get("zh") if versions else None
    return re.sub(r"[\[\]:*?/\\]", "", title or form_id) or form_id


# -- facilities: GeoJSON ----------------------------------------------------------------------


def geojson_stream(rows):
    """A FeatureCollection, one feature per facility, written as the rows arrive."""
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for row in rows:
        state = json.loads(row["state"])
        fields = {k: v["value"] for k, v in sorted(state.items())}
        geometry = (
            {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
            if row["lat"] is not None and row["lon"] is not None
            else None
        )
        feature = {
            "type": "Feature",
            "id": row["id"],
            "geometry": geometry,
            "properties": {
                **fields,
                "id": row["id"],
                "name": row["name"],
                "kind": row["kind"],
                "kind_name": KIND_NAMES.get(row["kind"], row["kind"]),
                "village_code": row["village_code"],
                "village": row["village_name"],
                "township": row["township"],
            },
        }
        text = json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        yield (text if first else "," + text).encode("utf-8")
        first = False
    yield b"]}"


@bp.get("/desk/exports/facilities.geojson")
@login_required
def export_facilities():
    villages, village = _export_scope()
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KIND_NAMES:
        abort(400, description="设施类型不正确")
    _audit_export("geojson", "facilities", village=village, kind=kind, villages=len(villages))
    reader = _open_reader()
    rows = reader.iter_export_facilities(
        villages, kind=kind, batch=current_app.config["EXPORT_BATCH_ROWS"]
    )
    return Response(
        _closing(reader, geojson_stream(rows)),
        mimetype="application/geo+json",
        headers=_attachment(_file_name("facilities", village, None, "geojson")),
    )


# -- a village's evidence photos: ZIP ---------------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken as they come."""

    def __init__(self):
        self._chunks = []

    def writable(self):
        return True

    def write(self, data):
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


_UNSAFE_NAME = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
MANIFEST_COLUMNS = (
    "文件",
    "sha256",
    "提交编号",
    "表单",
    "检查对象",
    "照片字段",
    "照片题目",
    "拍摄时间",
    "检查时间",
    "填报人",
    "纬度",
    "经度",
    "定位精度（米）",
    "说明",
)


def _zip_time(value) -> tuple:
    try:
        t = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return (1980, 1, 1, 0, 0, 0)
    return t.timetuple()[:6] if t.year >= 1980 else (1980, 1, 1, 0, 0, 0)


def photo_name(row: dict) -> str:
    record = _UNSAFE_NAME.sub("_", row["record_name"] or row["record_id"]).strip(" .") or "记录"
    day = (row["observed_at"] or "")[:10]
    ext = EXTENSIONS.get(row["mime"] or "", ".jpg")
    return f"{record[:60]}/{day}_{row['field']}_{row['sha256'][:12]}{ext}"


def zip_stream(rows, media, *, manifest_name: str = "manifest.csv", label_of=None):
    """A ZIP of the photos (stored, not recompressed: they are JPEGs) and a manifest CSV.

    Each photo is written once even when several submissions use it; the manifest has one row
    per use, naming the file it is in, or why there is none (not uploaded yet). `label_of(row)`
    names the photo's question ("厕所间 第2项 · 照片" for rooms[2].room_photo).
    """
    sink = _Sink()
    written: dict[str, str] = {}
    manifest = [list(MANIFEST_COLUMNS)]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for row in rows:
            sha = row["sha256"]
            position = json.loads(row["position"]) if row["position"] else {}
            note = ""
            if sha not in written and media.has(sha):
                name = photo_name(row)
                info = zipfile.ZipInfo(name, date_time=_zip_time(row["captured_at"]))
                info.compress_type = zipfile.ZIP_STORED
                with media.open(sha) as src, archive.open(info, "w") as dest:
                    while chunk := src.read(CHUNK):
                        dest.write(chunk)
                        yield sink.take()
                written[sha] = name
            elif sha not in written:
                note = "服务器尚未收到该照片"
            manifest.append(
                [
                    written.get(sha, ""),
                    sha,
                    row["submission_id"],
                    row["form_id"],
                    row["record_name"],
                    row["field"],
                    label_of(row) if label_of else "",
                    row["captured_at"],
                    row["observed_at"],
                    row["author"],
                    position.get("lat"),
                    position.get("lon"),
                    position.get("accuracy"),
                    note,
                ]
            )
            yield sink.take()
        info = zipfile.ZipInfo(manifest_name, date_time=datetime.now().timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as dest:
            for chunk in csv_stream([[_safe_text(v) for v in r] for r in manifest]):
                dest.write(chunk)
    yield sink.take()


def _photo_labeller():
    """row -> its photo field's label ("厕所间 第2项 · 照片"), through the definition of the row's
    form version (every published definition read now: a few, and no query mid-stream)."""
    from .supervisor import field_path_label  # imported here: supervisor's peers import us

    definitions = {(d["id"], d["version"]): d for d in storage().forms()}
    return lambda row: field_path_label(
        definitions.get((row["form_id"], row.get("form_version"))), row["field"]
    )


@bp.get("/desk/exports/villages/<code>/photos.zip")
@login_required
def export_village_photos(code):
    if code not in g.villages:
        abort(403)
    month = _month_arg()
    _audit_export("photos", code, month=month)
    reader = _open_reader()
    rows = reader.iter_village_photos(code, month=month)
    return Response(
        _closing(reader, zip_stream(rows, media_store(), label_of=_photo_labeller())),
        mimetype="application/zip",
        headers=_attachment(_file_name(f"photos-{code}", None, month, "zip")),
    )


# The monthly township report lives in its own module, on this blueprint.
def tidiness_target(store, villages) -> float:
    """TIDINESS_TARGET as an admin set it for the viewer's county (else the config's)."""
    county = viewer_county(villages)
    return effective_config(current_app.config, store, county)["TIDINESS_TARGET"]


from . import reports  # noqa: E402,F401
