"""The admin pages under /desk/admin (issue 13): users, villages, facilities, settings, audit.

Scope. An admin manages the people and villages of their scope (`g.villages`, from the county
or township of their account; an unscoped admin has the whole deployment). A supervisor
manages nothing but sees the people of their township (read-only list). Anything about a user,
village or facility outside the viewer's scope is a 404, as if it did not exist.

Every view runs behind `web.login_required` (a live desk session; every POST carries the CSRF
token) and every change is audited with its actor (`g.user`): the storage methods audit what
they do, and each page action adds one `admin.*` entry naming the actor, so even storage
methods that take no actor (create_user, assign, set_password_hash) leave an entry with one.

Passwords go through `password_hash` below, the one place the pages turn a password into a
hash: `server.auth.hash_password`, which holds the password policy (issue 13, h/auth); its
ValueError (reasons in Chinese) is shown on the page.
"""

import csv
import io
import json
import uuid
from datetime import date, datetime, timedelta

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

from media.datum import DATUMS, to_wgs84
from sync.clock import decode
from sync.merge import Observation

from . import auth, push
from .auth import ROLE_NAMES, ROLES
from .context import now_iso, now_ms, storage
from .overrides import effective_config, viewer_county
from .settings import DEFAULTS
from .villages_csv import (
    COLUMN_LABELS,
    UNDECLARED_ZH,
    decode_csv_bytes,
    parse_datum_option,
    parse_villages_csv,
)
from .web import login_required

bp = Blueprint("admin", __name__, url_prefix="/desk/admin")

ADMIN = ("admin",)
VIEWERS = ("supervisor", "admin")
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 50_000  # a county has a few hundred villages; a zip bomb of a sheet stops here
KIND_NAMES = {"toilet": "厕所", "rubbish": "垃圾点", "extinguisher": "灭火器"}
DATUM_NAMES = {
    "wgs84": "WGS-84（GPS）",
    "cgcs2000": "CGCS2000",
    "gcj02": "GCJ-02（高德/腾讯）",
    "bd09": "BD-09（百度）",
}
AUDIT_PAGE = 200

# Settings an admin may change here: name -> (label, kind, low, high).
SETTINGS = {
    "EVIDENCE_FAR_METRES": ("照片离设施超过（米）即标记", int, 10, 100_000),
    "EVIDENCE_TAKEN_BEFORE_HOURS": ("照片早于检查超过（小时）即标记", int, 1, 24 * 365),
    "EVIDENCE_TAKEN_AFTER_MINUTES": ("照片晚于检查超过（分钟）即标记", int, 1, 24 * 60),
    "EVIDENCE_NEAR_DUPLICATE_BITS": ("相似照片阈值（哈希差异位数）", int, 0, 64),
    "EVIDENCE_REGISTER_UNCERTAINTY_METRES": ("登记位置误差（米）", int, 0, 10_000),
    "TIDINESS_TARGET": ("村庄清洁目标分", int, 0, 100),
    "COUNTY_CLASS": ("县类别（1/2/3，定卫生厕所目标；空为按村庄登记）", int, 1, 3),
}


# -- reading settings (other modules may call this) ------------------------------------------


def setting(name: str, county: str | None = None, *, store=None):
    """The value of one setting as the admin pages left it, else the config value (None for
    admin-only settings never set)."""
    return effective_config(current_app.config, store or storage(), county or "").get(name)


# -- scope -----------------------------------------------------------------------------------


def _county() -> str:
    """The county whose settings the viewer changes: the code of the county their villages are
    in ('' for an unscoped admin, whose settings hold for the whole deployment)."""
    return "" if _unscoped() else viewer_county(g.villages)


def _townships() -> set[str]:
    return {v["township"] for v in storage().villages(g.villages)}


def _unscoped() -> bool:
    return g.user["role"] == "admin" and not (g.user["scope_county"] or g.user["scope_township"])


def _people() -> list[dict]:
    store = storage()
    if _unscoped():
        return store.users()
    return store.users_in(g.villages, townships=_townships(), county=g.user["scope_county"])


def _user_in_scope(user_id: int) -> dict:
    """The user, if the viewer's scope holds them; 404 otherwise."""
    store = storage()
    user = store.user(id=user_id) if 0 < user_id < 2**63 else None
    if user is None or not (_unscoped() or any(p["id"] == user_id for p in _people())):
        abort(404)
    return user


def _audit(action: str, *, entity=None, entity_id=None, detail=None) -> None:
    storage().audit(
        action,
        at=now_iso(),
        user_id=g.user["id"],
        entity=entity,
        entity_id=entity_id,
        detail=detail,
    )


def _scope_choice(role: str, township: str, county: str) -> tuple[str | None, str | None]:
    """The (township, county) scope a viewer may give; ValueError otherwise."""
    township, county = township.strip() or None, county.strip() or None
    if role in ("inspector", "secretary"):
        return None, None
    if township and township not in _townships():
        raise ValueError("乡镇不在您的管理范围内")
    if not _unscoped():
        if county and county != g.user["scope_county"]:
            raise ValueError("县不在您的管理范围内")
        if role == "admin" and not county and not township:
            county = g.user["scope_county"]
        if not township and not county:
            raise ValueError("请选择乡镇或县范围")
        if g.user["scope_township"] and not township:
            raise ValueError("请选择乡镇")
    return township, county


def _village_choice(codes: list[str]) -> list[str]:
    codes = sorted({c.strip() for c in codes if c.strip()})
    if outside := [c for c in codes if c not in g.villages]:
        raise ValueError(f"这些村不在您的管理范围内: {', '.join(outside)}")
    return codes


# -- users -----------------------------------------------------------------------------------


@bp.get("/")
@login_required(roles=VIEWERS)
def index():
    return redirect(url_for("admin.users"))


@bp.get("/users")
@login_required(roles=VIEWERS)
def users():
    """The people of the viewer's scope; admins also get the form to create one."""
    store = storage()
    villages = store.villages(g.villages)
    return render_template(
        "admin_users.html",
        people=_people(),
        villages=villages,
        townships=sorted(_townships()),
        manage=g.user["role"] == "admin",
        roles=ROLES,
    )


@bp.post("/users")
@login_required(roles=ADMIN)
def create_user():
    store = storage()
    form = request.form
    username = form.get("username", "").strip()
    role = form.get("role", "")
    try:
        if not username or len(username) > 64 or not username.isprintable():
            raise ValueError("请填写用户名（不超过 64 字）")
        if role not in ROLES:
            raise ValueError("请选择角色")
        if store.user(username=username):
            raise ValueError(f"用户 {username} 已存在")
        township, county = _scope_choice(role, form.get("township", ""), form.get("county", ""))
        codes = _village_choice(form.getlist("villages"))
        hashed = auth.hash_password(form.get("password", ""), username=username)
    except ValueError as exc:
        flash(f"未创建：{exc}")
        return redirect(url_for("admin.users"))
    with store.write():
        user_id = store.create_user(
            username=username,
            password_hash=hashed,
            role=role,
            display_name=form.get("display_name", "").strip()[:64] or username,
            at=now_iso(),
            scope_township=township,
            scope_county=county,
            must_change_password=True,  # a password an admin chose
        )
        if codes:
            store.assign(user_id, codes, at=now_iso())
        _audit(
            "admin.user.create",
            entity="user",
            entity_id=str(user_id),
            detail={
                "username": username,
                "role": role,
                "villages": codes,
                "township": township,
                "county": county,
            },
        )
    flash(f"已创建用户 {username}")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.get("/users/<int:user_id>")
@login_required(roles=ADMIN)
def user(user_id: int):
    store = storage()
    person = _user_in_scope(user_id)
    return render_template(
        "admin_user.html",
        person=person,
        assigned=store.assigned_villages(user_id),
        villages=store.villages(g.villages),
        townships=sorted(_townships()),
        tokens=store.tokens_of(user_id),
        devices=store.devices_of(user_id),
        roles=ROLES,
    )


def _back(user_id: int):
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/role")
@login_required(roles=ADMIN)
def user_role(user_id: int):
    store = storage()
    person = _user_in_scope(user_id)
    role = request.form.get("role", "")
    try:
        if role not in ROLES:
            raise ValueError("请选择角色")
        if person["id"] == g.user["id"]:
            raise ValueError("不能修改自己的角色")
        township, county = _scope_choice(
            role, request.form.get("township", ""), request.form.get("county", "")
        )
    except ValueError as exc:
        flash(f"未修改：{exc}")
        return _back(user_id)
    with store.write():
        store.set_user_role(
            user_id,
            role,
            scope_township=township,
            scope_county=county,
            at=now_iso(),
            by=g.user["id"],
        )
        _audit(
            "admin.user.role",
            entity="user",
            entity_id=str(user_id),
            detail={"role": role, "township": township, "county": county},
        )
    flash(f"已修改角色：{ROLE_NAMES[role]}")
    return _back(user_id)


@bp.post("/users/<int:user_id>/villages")
@login_required(roles=ADMIN)
def user_villages(user_id: int):
    """Set the user's villages within the viewer's scope (others they hold are kept)."""
    store = storage()
    _user_in_scope(user_id)
    try:
        wanted = set(_village_choice(request.form.getlist("villages")))
    except ValueError as exc:
        flash(f"未修改：{exc}")
        return _back(user_id)
    held = set(store.assigned_villages(user_id)) & g.villages
    with store.write():
        if added := wanted - held:
            store.assign(user_id, added, at=now_iso())
        if removed := held - wanted:
            store.unassign(user_id, removed, at=now_iso(), by=g.user["id"])
        _audit(
            "admin.user.villages",
            entity="user",
            entity_id=str(user_id),
            detail={"added": sorted(added), "removed": sorted(removed)},
        )
    flash(f"已更新分配的村：增加 {len(added)} 个，取消 {len(removed)} 个")
    return _back(user_id)


@bp.post("/users/<int:user_id>/password")
@login_required(roles=ADMIN)
def user_password(user_id: int):
    store = storage()
    person = _user_in_scope(user_id)
    keep = request.form.get("keep_tokens") == "1"
    try:
        hashed = auth.hash_password(request.form.get("password", ""), username=person["username"])
    except ValueError as exc:
        flash(f"密码未重置：{exc}")
        return _back(user_id)
    with store.write():
        # an admin's reset: the user chooses their own password at the next login
        store.set_password_hash(user_id, hashed, at=now_iso(), revoke_tokens=not keep)
        _audit(
            "admin.user.password",
            entity="user",
            entity_id=str(user_id),
            detail={"tokens_kept": keep},
        )
    flash("密码已重置" + ("，手机保持登录" if keep else "，该用户的手机需重新登录"))
    return _back(user_id)


@bp.post("/users/<int:user_id>/active")
@login_required(roles=ADMIN)
def user_active(user_id: int):
    store = storage()
    _user_in_scope(user_id)
    active = request.form.get("active") == "1"
    if user_id == g.user["id"] and not active:
        flash("不能停用自己的账号")
        return _back(user_id)
    with store.write():
        revoked = store.set_user_active(user_id, active, at=now_iso(), by=g.user["id"])
        _audit(
            "admin.user.activate" if active else "admin.user.deactivate",
            entity="user",
            entity_id=str(user_id),
            detail={"tokens_revoked": revoked},
        )
    flash("已启用" if active else f"已停用，注销设备登录 {revoked} 个")
    return _back(user_id)


@bp.post("/users/<int:user_id>/tokens/<int:token_id>/revoke")
@login_required(roles=ADMIN)
def user_token_revoke(user_id: int, token_id: int):
    store = storage()
    _user_in_scope(user_id)
    if not 0 < token_id < 2**63:
        abort(404)
    with store.write():
        if not store.revoke_token(token_id, user_id=user_id, by=g.user["id"], at=now_iso()):
            abort(404)
        _audit(
            "admin.token.revoke",
            entity="token",
            entity_id=str(token_id),
            detail={"user_id": user_id},
        )
    flash("已注销该设备登录")
    return _back(user_id)


# -- villages --------------------------------------------------------------------------------


def xlsx_to_csv_text(data: bytes) -> str:
    """The first sheet of an XLSX workbook as CSV text, so it goes through the same parser."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a broken or foreign file: zipfile, KeyError, InvalidFileException
        raise ValueError("无法读取该 XLSX 文件") from exc
    try:
        out = io.StringIO()
        writer = csv.writer(out)
        for number, row in enumerate(book.worksheets[0].iter_rows(values_only=True)):
            if number > MAX_IMPORT_ROWS:
                raise ValueError(f"表格行数太多（最多 {MAX_IMPORT_ROWS} 行）")
            writer.writerow(["" if cell is None else _cell_text(cell) for cell in row])
        return out.getvalue()
    finally:
        book.close()


def _cell_text(cell) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    return str(cell)


def _import_scope_errors(rows: list[dict]) -> list[dict]:
    """Rows a scoped admin may not write: another county's villages, or a village code
    already held by another county."""
    if _unscoped():
        return []
    county, errors, store = g.user["scope_county"], [], storage()
    for i, row in enumerate(rows):
        existing = store.village(row["code"])
        inside = county and (row["county"] == county or row["code"].startswith(county))
        if not inside or (existing and existing["code"] not in g.villages):
            errors.append(
                {
                    "row": row.get("_row", i + 2),
                    "column": "county",
                    "message_zh": f"村 {row['code']} 不在您管理的县内",
                }
            )
    return errors


def _parse_upload(text: str, datum: str | None):
    result = parse_villages_csv(text, parse_datum_option(datum))
    errors = list(result.errors)
    if result.undeclared_positions:
        errors.append({"row": 0, "column": "datum", "message_zh": UNDECLARED_ZH})
    if not errors:
        errors = _import_scope_errors(result.rows)
    return result, errors


@bp.route("/villages", methods=["GET", "POST"])
@login_required(roles=ADMIN)
def villages():
    """The villages in scope, and the import: upload → preview (every row's errors, nothing
    written) → confirm (the same text parsed again, written in one transaction)."""
    store = storage()
    preview = None
    if request.method == "POST":
        datum = request.form.get("datum") or None
        if request.form.get("confirm") == "1":
            text = request.form.get("text", "")
        else:
            upload = request.files.get("file")
            data = upload.read(MAX_IMPORT_BYTES + 1) if upload else b""
            try:
                if not data:
                    raise ValueError("请选择文件")
                if len(data) > MAX_IMPORT_BYTES:
                    raise ValueError("文件太大（最多 5 MB）")
                if data[:2] == b"PK":
                    text = xlsx_to_csv_text(data)
                else:
                    text = decode_csv_bytes(data)
            except ValueError as exc:
                flash(f"未导入：{exc}")
                return redirect(url_for("admin.villages"))
        try:
            result, errors = _parse_upload(text, datum)
        except ValueError as exc:
            flash(f"未导入：{exc}")
            return redirect(url_for("admin.villages"))
        if request.form.get("confirm") == "1" and not errors:
            with store.write():
                store.upsert_villages(result.rows, at=now_iso())
                _audit(
                    "admin.village.import",
                    entity="village",
                    detail={
                        "count": len(result.rows),
                        "codes": [r["code"] for r in result.rows][:500],
                    },
                )
            flash(f"已导入 {len(result.rows)} 个村")
            return redirect(url_for("admin.villages"))
        errors = [
            {**e, "column": COLUMN_LABELS.get(e.get("column"), e.get("column"))} for e in errors
        ]
        preview = {"rows": result.rows, "errors": errors, "text": text, "datum": datum or ""}
    return render_template(
        "admin_villages.html",
        villages=store.villages(g.villages),
        preview=preview,
        datums=DATUM_NAMES,
    )


# -- facilities ------------------------------------------------------------------------------


def _facility_in_scope(facility_id: str) -> dict:
    facility = storage().facility(facility_id) if len(facility_id) <= 64 else None
    if facility is None or facility["village_code"] not in g.villages:
        abort(404)
    return facility


def _status(facility: dict) -> str:
    return (facility["state"].get("status") or {}).get("value") or "active"


@bp.get("/facilities")
@login_required(roles=ADMIN)
def facilities():
    store = storage()
    villages = store.villages(g.villages)
    args = request.args
    village = args.get("village") if args.get("village") in g.villages else ""
    kind = args.get("kind") if args.get("kind") in KIND_NAMES else ""
    search = args.get("q", "").strip()[:50]
    rows = []
    for code in [village] if village else sorted(g.villages):
        rows += store.facilities(code)
    rows = [
        {**f, "status": _status(f)}
        for f in rows
        if (not kind or f["kind"] == kind) and (not search or search in (f["name"] or ""))
    ]
    return render_template(
        "admin_facilities.html",
        rows=rows[:500],
        total=len(rows),
        villages=villages,
        names={v["code"]: v["name"] for v in villages},
        chosen={"village": village, "kind": kind, "q": search},
        kinds=KIND_NAMES,
        datums=DATUM_NAMES,
    )


@bp.post("/facilities/<facility_id>")
@login_required(roles=ADMIN)
def facility_edit(facility_id: str):
    """Correct the register: name and position (typed in a datum, stored as WGS-84)."""
    store = storage()
    facility = _facility_in_scope(facility_id)
    form = request.form
    name = form.get("name", "").strip()
    datum = form.get("datum") or "wgs84"
    try:
        if not name or len(name) > 200:
            raise ValueError("请填写名称（不超过 200 字）")
        if datum not in DATUMS:
            raise ValueError("坐标系不正确")
        lat_raw, lon_raw = form.get("lat", "").strip(), form.get("lon", "").strip()
        if lat_raw or lon_raw:
            lat, lon = float(lat_raw), float(lon_raw)
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError("坐标超出范围")
            lat, lon = to_wgs84(lat, lon, datum)
        else:
            lat = lon = None
    except ValueError as exc:
        message = str(exc) if "坐标" in str(exc) or "名称" in str(exc) else "坐标须为数字"
        flash(f"未保存：{message}")
        return redirect(url_for("admin.facilities", village=facility["village_code"]))
    store.set_facility_register(
        facility_id, name=name, lat=lat, lon=lon, datum=datum, at=now_iso(), by=g.user["id"]
    )
    flash(f"已保存 {name}")
    return redirect(url_for("admin.facilities", village=facility["village_code"]))


@bp.post("/facilities/<facility_id>/retire")
@login_required(roles=ADMIN)
def facility_retire(facility_id: str):
    """Retire a facility: a server observation setting `status` to retired (nothing is
    deleted; phones pull it like any other change), having seen the current status."""
    store = storage()
    config = current_app.config
    with store.write():
        store.lock_records([facility_id])
        facility = _facility_in_scope(facility_id)
        if _status(facility) == "retired":
            flash("该设施已撤销")
            return redirect(url_for("admin.facilities", village=facility["village_code"]))
        clock = push.next_server_clock(store, now_ms(), push.clock_ahead_ms(config))
        current = (facility["state"].get("status") or {}).get("clock")
        obs = Observation(
            id=str(uuid.uuid4()),
            record_id=facility_id,
            clock=clock,
            fields={"status": "retired"},
            base={"status": decode(current)} if current else {},
        )
        window_ms = int(config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000)
        push.apply_observation(store, "facility", obs, window_ms, at=now_iso())
        _audit(
            "admin.facility.retire",
            entity="facility",
            entity_id=facility_id,
            detail={"observation": obs.id, "clock": str(clock)},
        )
    flash(f"已撤销 {facility['name']}")
    return redirect(url_for("admin.facilities", village=facility["village_code"]))


# -- settings --------------------------------------------------------------------------------


def _parse_setting(name: str, raw: str):
    label, kind, low, high = SETTINGS[name]
    raw = raw.strip()
    if raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{label}：须为数字") from None
    if not low <= value <= high:
        raise ValueError(f"{label}：须在 {low} 到 {high} 之间")
    return value


@bp.route("/settings", methods=["GET", "POST"])
@login_required(roles=ADMIN)
def settings():
    """Evidence thresholds, county class and targets of the viewer's county (an unscoped
    admin: the deployment's), overriding the config values; every change audited."""
    store = storage()
    county = _county()
    stored = store.admin_settings(county)
    if request.method == "POST":
        changes, errors = {}, []
        for name in SETTINGS:
            if name not in request.form:
                continue
            try:
                value = _parse_setting(name, request.form[name])
            except ValueError as exc:
                errors.append(str(exc))
                continue
            current = stored.get(name, DEFAULTS.get(name))
            if value is None and name not in stored:
                continue
            if value != current:
                changes[name] = value
        if errors:
            for error in errors:
                flash(f"未保存：{error}")
        else:
            with store.write():
                for name, value in changes.items():
                    store.set_admin_setting(
                        name, value, county=county, at=now_iso(), by=g.user["id"]
                    )
            flash(f"已保存 {len(changes)} 项设置" if changes else "没有改动")
        return redirect(url_for("admin.settings"))
    rows = [
        {
            "name": name,
            "label": spec[0],
            "value": stored.get(name),
            "default": current_app.config.get(name),
            "changed": stored.get(name) is not None,
        }
        for name, spec in SETTINGS.items()
    ]
    return render_template("admin_settings.html", rows=rows, county=county)


# -- the audit log ---------------------------------------------------------------------------


def _audit_filters() -> dict:
    args = request.args
    out = {k: args.get(k, "").strip()[:100] for k in ("actor", "action", "entity")}
    for key in ("since", "until"):
        raw = args.get(key, "").strip()
        try:
            out[key] = date.fromisoformat(raw).isoformat() if raw else ""
        except ValueError:
            out[key] = ""
    return out


def _audit_rows(filters: dict, limit: int) -> list[dict]:
    until = filters["until"]
    if until:  # the whole day, in the stored ISO times (China time, +08:00)
        until = (date.fromisoformat(until) + timedelta(days=1)).isoformat()
    user_ids = None if _unscoped() else [p["id"] for p in _people()] + [g.user["id"]]
    return storage().audit_search(
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        entity=filters["entity"] or None,
        since=filters["since"] or None,
        until=until or None,
        user_ids=user_ids,
        limit=limit,
    )


def _actor(row: dict) -> str:
    if row["actor"]:
        return row["actor"]
    try:
        detail = json.loads(row["detail"] or "{}")
    except ValueError:
        detail = {}
    return (
        f"cli:{detail['os_user']}" if isinstance(detail, dict) and "os_user" in detail else "系统"
    )


@bp.get("/audit")
@login_required(roles=ADMIN)
def audit_log():
    filters = _audit_filters()
    rows = [{**r, "actor_name": _actor(r)} for r in _audit_rows(filters, AUDIT_PAGE)]
    return render_template(
        "admin_audit.html", rows=rows, filters=filters, actions=storage().audit_actions()
    )


@bp.get("/audit.csv")
@login_required(roles=ADMIN)
def audit_csv():
    filters = _audit_filters()
    rows = _audit_rows(filters, 100_000)
    _audit("admin.audit.export", entity="audit", detail={"filters": filters, "rows": len(rows)})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["# 本文件含个人信息（用户名），仅限工作使用 / contains personal data"])
    writer.writerow(["id", "时间", "操作人", "操作", "对象", "对象编号", "详情"])
    for r in rows:
        writer.writerow(
            [
                r["id"],
                r["at"],
                _actor(r),
                r["action"],
                r["entity"] or "",
                r["entity_id"] or "",
                r["detail"] or "",
            ]
        )
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": "attachment; filename=audit.csv",
            "Cache-Control": "no-store",
        },
    )
