"""The supervisors' pages under /desk: spot-check queue, a submission, conflicts, monthly tasks.

Every view runs behind `web.login_required` (supervisors and admins, a session with CSRF) and
reads only the villages in `g.villages`; anything outside them is a 404, as if it did not
exist. Decisions use the same rules as the API: sync/review.decide for reviews, and
server/resolve.py (a server observation through push.apply_observation) for conflicts.
"""

import re
from datetime import date, datetime, timedelta, timezone

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
from markupsafe import Markup

from forms import diff as form_diff
from forms.definitions import zh_text
from media.stamp_code import display as code_display
from sync import review

from . import maps, recount
from . import resolve as resolving
from . import stamp as stamps
from .context import media_store, now, now_iso, now_ms, storage
from .evidence import flags_for_desk
from .media_api import stream_file
from .plot import Point, distance_m, position_plot, valid
from .push import clock_ahead_ms
from .web import login_required, safe_next

bp = Blueprint("supervisor", __name__, url_prefix="/desk")

CHINA = timezone(timedelta(hours=8))
PAGE_SIZE = 20
PAGE_MAX = 2**31 - 1
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
VARIANTS = {"320": "320.jpg", "1280": "1280.jpg", "original": None}
CACHE = "private, max-age=31536000, immutable"

FLAG_LABELS = {
    "large_clock_skew": "手机时间偏差大",
    "no_exif": "无拍摄信息",
    "no_location": "无位置信息",
    "far_from_facility": "离设施太远",
    "taken_long_before": "照片拍得过早",
    "taken_after": "拍摄晚于检查",
    "reused_photo": "照片重复使用",
    "near_duplicate": "与其他设施照片相似",
    "edited_by_software": "经修图软件处理",
    "coordinate_system_mismatch": "坐标系不一致",
}
QUEUE_STATES = {
    "pending": ("待审核（含照片未齐）", ["received", "complete"]),
    "complete": ("待审核（照片已齐）", ["complete"]),
    "approved": ("已通过", ["approved"]),
    "rejected": ("已退回", ["rejected"]),
    "reinspection_requested": ("要求复查", ["reinspection_requested"]),
    "all": ("全部", None),
}
DECISION_LABELS = {"approve": "通过", "reject": "退回", "reinspect": "要求复查"}
TASK_STATUS = dict(resolving.TASK_STATUS_CHOICES)
FIGURE_LABELS = {
    "distance_m": "距离（米）",
    "threshold_m": "允许范围（米）",
    "source": "依据",
    "accuracy_m": "定位精度（米）",
    "photo_position": "照片位置",
    "facility_position": "设施位置",
    "skew_minutes": "时间偏差（分钟）",
    "threshold_minutes": "允许（分钟）",
    "taken_at": "拍摄时间",
    "observed_at": "检查时间",
    "hours_before": "早于检查（小时）",
    "threshold_hours": "允许（小时）",
    "minutes_after": "晚于检查（分钟）",
    "count": "其他使用次数",
    "other_uses": "其他使用",
    "facility_ids": "涉及设施",
    "record_names": "涉及记录",
    "min_distance": "最小差异",
    "threshold": "阈值",
    "matches": "相似照片",
    "software": "软件",
    "matched": "匹配",
    "exif_gps": "照片自带 GPS",
    "phone_position": "手机定位",
    "exif_error": "EXIF 错误",
    "other_township_uses": "另一乡镇的记录（条）",
    "withheld": "详情",
}
HIDDEN_FIGURES = {"skew_ms"}
SOURCE_LABELS = {"exif": "照片自带", "phone": "手机记录"}


# -- small helpers ---------------------------------------------------------------------------


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA)


@bp.app_template_filter("desk_time")
def desk_time(value) -> str:
    """An ISO time as Beijing time, "2026-11-20 10:35"."""
    parsed = _parse_time(value)
    return parsed.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if parsed else (value or "—")


def today_china() -> date:
    return now().astimezone(CHINA).date()


def _form_titles() -> dict[str, str]:
    titles = {}
    for definition in storage().forms():  # ordered by id, version: the newest title wins
        titles[definition["id"]] = definition["title"]["zh"]
    return titles


def _forms_by_target() -> dict[str, dict]:
    """The newest form definition for each record kind ("task" for monthly tasks)."""
    return {d["target"]: d for d in storage().forms()}


def _safe_next(target: str | None) -> str | None:
    return safe_next(target, "/desk/")


def _int_arg(name: str, default: int = 1) -> int:
    """A positive whole number from the query, at most PAGE_MAX (SQLite integers are 64-bit)."""
    try:
        return min(PAGE_MAX, max(1, int(request.args.get(name, default))))
    except ValueError:
        return default


def photo_url(sha: str, variant: str) -> str:
    return url_for("supervisor.media", sha=sha, variant=variant)


@bp.app_context_processor
def _desk_globals():
    return {
        "FLAG_LABELS": FLAG_LABELS,
        "STATE_LABELS": review.STATE_NAMES,
        "DECISION_LABELS": DECISION_LABELS,
        "photo_url": photo_url,
        "HIGH_RISK": current_app.config.get("HIGH_RISK_SCORE", 50),
        "desk_has_page": lambda endpoint: endpoint in current_app.view_functions,
    }


# -- the spot-check queue --------------------------------------------------------------------


@bp.get("/queue")
@login_required
def queue():
    """Submissions in the viewer's villages, riskiest first, filterable, a page at a time."""
    store = storage()
    villages = store.villages(g.villages)
    townships = sorted({v["township"] for v in villages})
    titles = _form_titles()
    args = request.args
    chosen = {
        "township": args.get("township") if args.get("township") in townships else "",
        "village": args.get("village") if args.get("village") in g.villages else "",
        "form": args.get("form") if args.get("form") in titles else "",
        "flag": args.get("flag") if args.get("flag") in FLAG_LABELS else "",
        "state": args.get("state") if args.get("state") in QUEUE_STATES else "pending",
        "sampled": "1" if args.get("sampled") == "1" else "",
    }
    page = _int_arg("page")
    rows, total = store.desk_queue(
        g.villages,
        township=chosen["township"] or None,
        village=chosen["village"] or None,
        form=chosen["form"] or None,
        flag=chosen["flag"] or None,
        states=QUEUE_STATES[chosen["state"]][1],
        sampled=bool(chosen["sampled"]),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-total // PAGE_SIZE))
    filters = {k: v for k, v in chosen.items() if v and not (k == "state" and v == "pending")}
    return render_template(
        "queue.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        chosen=chosen,
        filters=filters,
        townships=townships,
        villages=[v for v in villages if chosen["township"] in ("", v["township"])],
        titles=titles,
        states=QUEUE_STATES,
        here=request.full_path.rstrip("?"),
        village_map=(
            maps.desk_map(current_app.config, store.facilities(chosen["village"]))
            if chosen["village"]
            else None
        ),
    )


# -- one submission --------------------------------------------------------------------------


def _submission_in_scope(submission_id: str) -> dict:
    row = storage().submission(submission_id)
    if row is None or row["village_code"] not in g.villages:
        abort(404)
    return row


def _answers(definition: dict | None, answers: dict) -> list[dict]:
    """The answers in form order with their Chinese labels; photos as lists of hashes.

    A repeat group is one entry with its text ("共 2 项") and its numbered `instances`, each
    with its own answers (photos included) in the group's order."""
    out = []
    for field in (definition or {}).get("fields", []):
        name = field["name"]
        if field.get("type") == "note" or name not in answers:
            continue
        value = answers[name]
        spec = resolving.spec_of_form_field(field)
        if field["type"] == "repeat":
            instances = [
                {
                    "number": number,
                    "label": f"{spec['label']} 第{number}项",
                    "answers": _answers({"fields": field.get("fields", [])}, instance),
                }
                for number, instance in enumerate(value if isinstance(value, list) else [], 1)
                if isinstance(instance, dict)
            ]
            out.append(
                {
                    "name": name,
                    "label": spec["label"],
                    "text": f"共 {len(instances)} 项",
                    "instances": instances,
                }
            )
        elif field["type"] == "photo":
            out.append(
                {
                    "name": name,
                    "label": spec["label"],
                    "photos": [
                        p["sha256"]
                        for p in (value if isinstance(value, list) else [])
                        if isinstance(p, dict) and "sha256" in p
                    ],
                }
            )
        else:
            out.append(
                {"name": name, "label": spec["label"], "text": resolving.display_value(spec, value)}
            )
    return out


def _flat_answers(answers: list[dict]) -> list[dict]:
    """Answers side by side: a repeat group's row, then each instance's answers as their own
    rows named by path (rooms[2].room_ok) and labelled "厕所间 第2项 · 是否可用"."""
    out = []
    for a in answers:
        out.append(a)
        for instance in a.get("instances", []):
            for b in instance["answers"]:
                path = f"{a['name']}[{instance['number']}].{b['name']}"
                out.append({**b, "name": path, "label": f"{instance['label']} · {b['label']}"})
    return out


#: A field inside a repeat group's instance, as answers and photos name it: rooms[2].room_photo.
REPEAT_PATH = re.compile(r"(?P<repeat>[^\[\].]+)\[(?P<number>[0-9]{1,6})\]\.(?P<field>[^\[\]]+)")


def field_path_label(definition: dict | None, path: str | None) -> str:
    """The Chinese label of a field path: "厕所间 第2项 · 照片" for rooms[2].room_photo, the
    field's label for a top-level name, the path itself for a name the definition lacks."""
    if not path:
        return ""
    fields = {name: spec for name, (spec, _) in form_diff.fields_of(definition).items()}

    def label(name: str) -> str:
        spec = fields.get(name)
        return zh_text(spec.get("label")) or name if spec else name

    match = REPEAT_PATH.fullmatch(path)
    if match:
        number = int(match["number"])
        return f"{label(match['repeat'])} 第{number}项 · {label(match['field'])}"
    return label(path)


def _reference(record: dict | None, record_type: str, village: dict) -> tuple | None:
    """(lat, lon, label) the photos are measured from: the facility, or the village for tasks."""
    if record_type == "facility" and record and valid(record.get("lat"), record.get("lon")):
        return record["lat"], record["lon"], "设施登记位置"
    if village and valid(village.get("lat"), village.get("lon")):
        return village["lat"], village["lon"], "村庄中心位置"
    return None


def _photo_evidence(photo: dict, ref: tuple | None, number: int) -> dict:
    """What one photo says about where and when it was taken, with distances and a plot."""
    exif = photo.get("exif") or {}
    positions = []
    if valid(exif.get("lat"), exif.get("lon")):
        positions.append(("exif", "照片 GPS（EXIF）", exif["lat"], exif["lon"], None))
    phone = photo.get("position") or {}
    if valid(phone.get("lat"), phone.get("lon")):
        accuracy = phone.get("accuracy")
        accuracy = accuracy if isinstance(accuracy, int | float) else None
        positions.append(("phone", "拍照时手机定位", phone["lat"], phone["lon"], accuracy))
    rows = []
    for kind, label, lat, lon, accuracy in positions:
        metres = distance_m((ref[0], ref[1]), (lat, lon)) if ref else None
        rows.append(
            {
                "kind": kind,
                "label": label,
                "lat": lat,
                "lon": lon,
                "accuracy": accuracy,
                "distance": round(metres) if metres is not None else None,
            }
        )
    points = []
    if ref:
        points.append(Point("facility", ref[0], ref[1], "设施" if "设施" in ref[2] else "村"))
    for row in rows:
        points.append(
            Point(
                row["kind"],
                row["lat"],
                row["lon"],
                "EXIF" if row["kind"] == "exif" else "手机",
                accuracy_m=row["accuracy"],
            )
        )
    plot = position_plot(points, title=f"照片 {number} 的位置") if rows else None
    return {
        **photo,
        "number": number,
        "positions": rows,
        "plot": Markup(plot) if plot else None,
        "taken_at": exif.get("taken_at"),
        "camera": " ".join(x for x in (exif.get("make"), exif.get("model")) if x),
        "software": exif.get("software"),
    }


def _figure_text(key: str, value) -> str:
    if key == "source":
        return SOURCE_LABELS.get(value, str(value))
    if key in ("taken_at", "observed_at"):
        return desk_time(value)
    if key == "withheld":
        return "不予显示（照片属于另一乡镇的记录）"
    if isinstance(value, bool):
        return "有" if value else "无"
    if isinstance(value, dict) and {"lat", "lon"} <= value.keys():
        return f"{value['lat']:.6f}, {value['lon']:.6f}"
    if isinstance(value, dict):
        return "，".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        if all(isinstance(v, str | int | float) for v in value):
            return "、".join(str(v) for v in value) or "—"
        return f"{len(value)} 项"
    return "—" if value is None else str(value)


def _figures(figures: dict) -> list[dict]:
    """A flag's figures as labelled rows; other uses of the same photo become links."""
    out = []
    for key, value in figures.items():
        if key in HIDDEN_FIGURES:
            continue
        row = {"label": FIGURE_LABELS.get(key, key), "text": None, "links": []}
        if key == "other_uses" and isinstance(value, list):
            row["links"] = [
                u["submission_id"] for u in value if isinstance(u, dict) and u.get("submission_id")
            ]
        if not row["links"]:
            row["text"] = _figure_text(key, value)
        out.append(row)
    return out


def _visible_photos(store, photos: list[dict]) -> list[dict]:
    """Photos as this viewer may see them: withheld where not readable in their villages."""
    readable = store.readable_photos((p["sha256"] for p in photos), g.villages)
    return [_withheld(p, readable) for p in photos]


def _withheld(photo: dict, readable) -> dict:
    """A photo the viewer may not read (PROTOCOL, Photos) shows none of its own facts."""
    if photo["sha256"] in readable or not photo["held"]:
        return photo
    return {**photo, "withheld": True, "exif": None, "width": None, "height": None, "size": None}


def _submission_page(submission_id: str, *, error: str | None = None, status: int = 200):
    store = storage()
    row = _submission_in_scope(submission_id)
    definition = store.form_definition(row["form_id"], row["form_version"])
    record = store.record(row["record_type"], row["record_id"])
    village = store.village(row["village_code"])
    ref = _reference(record, row["record_type"], village)
    rows = _visible_photos(store, store.desk_photos([submission_id]))
    photos = [_photo_evidence(p, ref, n) for n, p in enumerate(rows, start=1)]
    ingesting = store.ingest_states(p["sha256"] for p in photos if not p["held"])
    codes = stamps.codes_for(store, submission_id) if row["state"] != "received" else {}
    for p in photos:
        p["field_label"] = field_path_label(definition, p.get("field"))
        p["ingest"] = ingesting.get(p["sha256"])
        code = codes.get(p["sha256"]) if p["held"] and not p.get("withheld") else None
        p["code"] = code_display(code["code"]) if code else None
    flags = flags_for_desk(store, submission_id, g.user, g.villages)
    for flag in flags:
        flag["rows"] = _figures(flag["figures"])
        flag["number"] = next((p["number"] for p in photos if p["sha256"] == flag["photo"]), None)
    history = store.submissions_of_record(row["record_id"])
    reviews = store.desk_reviews(submission_id)
    names = store.desk_user_names([row["author_id"], *(h["author_id"] for h in history)])
    conflicts = store.conflicts(record_id=row["record_id"])
    record_fields = []
    if record:
        order = list((definition or {}).get("updates", {}))
        for name, entry in sorted(
            record["state"].items(),
            key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
        ):
            spec = resolving.field_spec(
                definition, name, [entry["value"]], record_type=row["record_type"]
            )
            record_fields.append((spec["label"], resolving.display_value(spec, entry["value"])))
    return render_template(
        "submission.html",
        s=row,
        definition=definition,
        title=(definition or {}).get("title", {}).get("zh", row["form_id"]),
        record=record,
        record_name=(record or {}).get("name") or ((record or {}).get("title") or {}).get("zh"),
        record_fields=record_fields,
        village=village,
        ref=ref,
        answers=_answers(definition, row["answers"]),
        photos=photos,
        flags=flags,
        history=history,
        replaced_by=store.replaced_by(submission_id),
        names=names,
        reviews=reviews,
        open_conflicts=[c for c in conflicts if not c["resolved_by"]],
        error=error,
        next_url=_safe_next(request.values.get("next")),
        village_map=maps.desk_map(
            current_app.config,
            store.facilities(row["village_code"]),
            highlight=row["record_id"] if row["record_type"] == "facility" else None,
        ),
    ), status


@bp.get("/submissions/<submission_id>")
@login_required
def submission(submission_id: str):
    return _submission_page(submission_id)


@bp.post("/submissions/<submission_id>/review")
@login_required
def review_submission(submission_id: str):
    """Approve, reject or order a re-inspection: the same rule and record as the API's."""
    _submission_in_scope(submission_id)  # 404 outside the viewer's villages
    decision = request.form.get("decision")
    try:
        state, reason = review.decide(decision, request.form.get("reason"))
    except ValueError as exc:
        return _submission_page(submission_id, error=str(exc), status=400)
    recount.decide(
        storage(),
        submission_id,
        decision=decision,
        reason=reason,
        reviewer_id=g.user["id"],
        window_ms=recount.window_ms_of(current_app.config),
        at=now_iso(),
    )
    flash(f"审核完成，状态为“{review.STATE_NAMES[state]}”。作者手机下次同步时会收到。")
    return redirect(
        _safe_next(request.form.get("next"))
        or url_for("supervisor.submission", submission_id=submission_id)
    )


# -- photos ----------------------------------------------------------------------------------


@bp.get("/media/<sha>/<variant>")
@login_required
def media(sha: str, variant: str):
    """A photo of a submission in the viewer's villages: display versions, or the original."""
    if not SHA256.match(sha) or variant not in VARIANTS:
        abort(404)
    if variant == "original" and g.user["role"] not in ("supervisor", "admin"):
        abort(403)
    store = storage()
    if not store.photo_readable(sha, g.villages):
        abort(404)
    etag = f"{sha}-{variant}"
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    elif variant == "original":
        photos = media_store()
        if not photos.has(sha):
            abort(404)
        mimetype = (store.media(sha) or {}).get("mime") or "application/octet-stream"
        store.audit(
            "media.original", at=now_iso(), user_id=g.user["id"], entity="media", entity_id=sha
        )
        response = Response(stream_file(photos.open(sha)), mimetype=mimetype)
        extension = {"image/png": "png", "image/webp": "webp"}.get(mimetype, "jpg")
        response.headers["Content-Disposition"] = f'inline; filename="{sha}.{extension}"'
    else:
        handle = media_store().open_derived(sha, VARIANTS[variant])
        if handle is None:
            abort(404)
        with handle:
            response = Response(handle.read(), mimetype="image/jpeg")
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- stamped photos and their codes (server/stamp.py) -----------------------------------------


@bp.get("/submissions/<submission_id>/stamped/<sha>.jpg")
@login_required
def stamped(submission_id: str, sha: str):
    """The stamped version of a photo of a submission in the viewer's villages (made and kept at
    its first request)."""
    row = _submission_in_scope(submission_id)
    store = storage()
    if (
        not SHA256.match(sha)
        or sha not in store.submission_photo_hashes(submission_id)
        or not store.photo_readable(sha, g.villages)
    ):
        abort(404)
    made = stamps.stamped_jpeg(store, media_store(), row, sha)
    if made is None:
        abort(404)
    jpeg, code = made
    response = Response(jpeg, mimetype="image/jpeg")
    response.set_etag(f"{sha}-stamp-{code}")
    response.headers["Cache-Control"] = "private, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'inline; filename="stamped-{code}.jpg"'
    return response.make_conditional(request)


VERIFY_ANSWERS = {
    "invalid": "校验码无效：未找到对应照片，可能是伪造或被改动",
    "old_key": "这个校验码是用已更换的旧密钥签发的，无法再核验；请联系管理员",
    "limited": "查询太频繁，请一分钟后再试",
}


@bp.get("/verify")
@login_required
def verify():
    """Look a stamp's code up: the photo and record it belongs to, within the viewer's villages.
    Anything else (malformed, unknown, altered, forged, another township's) is one answer."""
    text = request.args.get("code", "")[:64]
    if not text.strip():
        return render_template("verify.html", text="", result=None, answer=None)
    if not stamps.VERIFY_LIMITER.allow(g.user["id"], current_app.config):
        return render_template(
            "verify.html", text=text, result=None, answer=VERIFY_ANSWERS["limited"]
        ), 429
    store = storage()
    result = stamps.look_up(store, text, g.villages)
    uses = []
    for use in result["uses"]:
        submission = store.submission(use["submission_id"])
        record = store.record(submission["record_type"], submission["record_id"]) or {}
        title = record.get("title")
        photo = _visible_photos(
            store,
            [p for p in store.desk_photos([use["submission_id"]]) if p["sha256"] == use["sha256"]][
                :1
            ],
        )
        uses.append(
            {
                **use,
                "submission": submission,
                "record_name": record.get("name")
                or (title.get("zh") if isinstance(title, dict) else title)
                or submission["record_id"],
                "village": store.village(submission["village_code"]) or {},
                "author": store.desk_user_names([submission["author_id"]]).get(
                    submission["author_id"], "—"
                ),
                "form_title": _form_titles().get(submission["form_id"], submission["form_id"]),
                "photo": photo[0] if photo else None,
            }
        )
    if result["status"] == "found":
        store.audit(
            "stamp.verify",
            at=now_iso(),
            user_id=g.user["id"],
            entity="photo_code",
            entity_id=result["code"],
        )
    return render_template(
        "verify.html",
        text=text,
        result=result,
        uses=uses,
        code=code_display(result["code"]) if result["code"] else None,
        answer=None if result["status"] == "found" else VERIFY_ANSWERS[result["status"]],
    ), (200 if result["status"] == "found" else 404)


# -- conflicts -------------------------------------------------------------------------------


def _conflict_in_scope(conflict_id: str) -> dict:
    conflict = storage().desk_conflict(conflict_id)
    if conflict is None or conflict["village_code"] not in g.villages:
        abort(404)
    return conflict


def _spec(conflict: dict, definition: dict | None) -> dict:
    return resolving.field_spec(
        definition,
        conflict["field"],
        [conflict["a_value"], conflict["b_value"]],
        record_type=conflict["record_type"],
    )


def _conflict_definition(store, conflict: dict) -> dict | None:
    """The form side a was reported with, or the newest form for the record's kind."""
    sub_a = store.submission(conflict["a"])
    if sub_a:
        return store.form_definition(sub_a["form_id"], sub_a["form_version"])
    return _forms_by_target().get(conflict["kind"] or "task")


@bp.get("/conflicts")
@login_required
def conflicts():
    """Conflicting reports in the viewer's villages (open ones unless ?show=all)."""
    show_all = request.args.get("show") == "all"
    page = _int_arg("page")
    rows, total = storage().desk_conflicts(
        g.villages, open_only=not show_all, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    forms = _forms_by_target()
    for row in rows:
        spec = _spec(row, forms.get(row["kind"] or "task"))
        row["label"] = spec["label"]
        row["a_text"] = resolving.display_value(spec, row["a_value"])
        row["b_text"] = resolving.display_value(spec, row["b_value"])
    return render_template(
        "conflicts.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        show_all=show_all,
    )


def _side(store, observation_id: str, value, spec: dict, clock: str | None) -> dict:
    sub = store.submission(observation_id)
    side = {
        "id": observation_id,
        "value": value,
        "text": resolving.display_value(spec, value),
        "clock": clock,
        "submission": sub,
    }
    if sub:
        definition = store.form_definition(sub["form_id"], sub["form_version"])
        flat = _flat_answers(_answers(definition, sub["answers"]))
        side["answers"] = {a["name"]: a for a in flat}
        side["order"] = [a["name"] for a in flat]
        side["author"] = store.desk_user_names([sub["author_id"]]).get(sub["author_id"])
        side["photos"] = [
            {**p, "field_label": field_path_label(definition, p.get("field"))}
            for p in _visible_photos(store, store.desk_photos([observation_id]))
        ]
    return side


def _conflict_page(conflict_id: str, *, error=None, status=200):
    store = storage()
    conflict = _conflict_in_scope(conflict_id)
    record = store.record(conflict["record_type"], conflict["record_id"])
    spec = _spec(conflict, _conflict_definition(store, conflict))
    clocks = store.observation_clocks([conflict["a"], conflict["b"]])
    sides = [
        _side(store, conflict["a"], conflict["a_value"], spec, clocks.get(conflict["a"])),
        _side(store, conflict["b"], conflict["b_value"], spec, clocks.get(conflict["b"])),
    ]
    names, labels = [], {}
    for side in sides:
        for name in side.get("order", []):
            if name not in names:
                names.append(name)
                labels[name] = side["answers"][name]["label"]
    current = (record or {}).get("state", {}).get(conflict["field"])
    audit = [
        e for e in store.audit_entries(entity_id=conflict_id) if e["action"] == "conflict.resolve"
    ]
    resolver = None
    if audit:
        who = store.desk_user_names([audit[0]["user_id"]]).get(audit[0]["user_id"])
        resolver = {"who": who, "at": audit[0]["at"]}
    return render_template(
        "conflict.html",
        c=conflict,
        record=record,
        spec=spec,
        sides=sides,
        answer_names=names,
        answer_labels=labels,
        current=current,
        current_text=resolving.display_value(spec, current["value"]) if current else "—",
        resolver=resolver,
        resolved_by_submission=bool(
            conflict["resolved_by"] and store.submission(conflict["resolved_by"])
        ),
        error=error,
        form=request.form if request.method == "POST" else {},
    ), status


@bp.get("/conflicts/<conflict_id>")
@login_required
def conflict(conflict_id: str):
    return _conflict_page(conflict_id)


@bp.post("/conflicts/<conflict_id>/resolve")
@login_required
def resolve_conflict(conflict_id: str):
    """Keep one side's value or enter another: a new server observation that saw both."""
    conflict = _conflict_in_scope(conflict_id)
    choice = request.form.get("choice")
    store = storage()
    try:
        if choice == "a":
            value = conflict["a_value"]
        elif choice == "b":
            value = conflict["b_value"]
        elif choice == "other":
            spec = _spec(conflict, _conflict_definition(store, conflict))
            raw = (
                request.form.getlist("value")
                if spec["type"] == "multi"
                else request.form.get("value", "")
            )
            value = resolving.parse_value(spec, raw)
        else:
            raise resolving.ResolveError("请选择保留哪一个值，或填写新的值")
        resolving.resolve(
            store,
            conflict_id,
            value,
            kept=choice,
            user_id=g.user["id"],
            now_ms=now_ms(),
            now_iso=now_iso(),
            window_ms=int(current_app.config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000),
            ahead_ms=clock_ahead_ms(current_app.config),
            seen=request.form.get("seen") or None,
        )
    except resolving.ResolveError as exc:
        return _conflict_page(conflict_id, error=str(exc), status=400)
    flash(f"冲突已处理：{conflict['record_name']} 的记录已更新，手机下次同步时会收到。")
    return redirect(url_for("supervisor.conflicts"))


# -- every conflict of one record, settled in one form ------------------------------------------


def _record_in_scope(record_id: str) -> tuple[str, dict]:
    """(record type, record) of a facility or task in the viewer's villages, else 404."""
    store = storage()
    for record_type in ("facility", "task"):
        record = store.record(record_type, record_id)
        if record is not None:
            if record["village_code"] not in g.villages:
                abort(404)
            return record_type, record
    abort(404)


def _record_conflicts_page(record_id: str, *, error=None, status=200):
    store = storage()
    record_type, record = _record_in_scope(record_id)
    rows = store.desk_record_conflicts(record_id)
    fields = []
    for field, conflicts in resolving.by_field(rows).items():
        spec = _spec(conflicts[0], _conflict_definition(store, conflicts[0]))
        current = record["state"].get(field)
        fields.append(
            {
                "name": field,
                "label": spec["label"],
                "current": current,
                "current_text": resolving.display_value(spec, current["value"]) if current else "—",
                "choices": [
                    {"key": resolving.choice_key(v), "text": resolving.display_value(spec, v)}
                    for v in resolving.candidates(conflicts)
                ],
                "conflicts": conflicts,
            }
        )
    name = rows[0]["record_name"] if rows else record.get("name") or zh_text(record.get("title"))
    return render_template(
        "record_conflicts.html",
        record=record,
        record_id=record_id,
        record_name=name,
        village_name=rows[0]["village_name"] if rows else "",
        fields=fields,
        error=error,
        form=request.form if request.method == "POST" else {},
    ), status


@bp.get("/records/<record_id>/conflicts")
@login_required
def record_conflicts(record_id: str):
    """Every open conflict of one record, one choice per field, settled in one step."""
    return _record_conflicts_page(record_id)


@bp.post("/records/<record_id>/conflicts")
@login_required
def resolve_record_conflicts(record_id: str):
    """One server observation per conflicting field, all in one transaction."""
    record_type, record = _record_in_scope(record_id)
    form = request.form
    chosen = {k[len("value:") :]: v for k, v in form.items() if k.startswith("value:")}
    seen = {k[len("seen:") :]: v for k, v in form.items() if k.startswith("seen:")}
    try:
        made = resolving.resolve_record(
            storage(),
            record_id,
            record_type,
            chosen,
            user_id=g.user["id"],
            now_ms=now_ms(),
            now_iso=now_iso(),
            window_ms=int(current_app.config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000),
            ahead_ms=clock_ahead_ms(current_app.config),
            seen=seen,
        )
    except resolving.ResolveError as exc:
        return _record_conflicts_page(record_id, error=str(exc), status=400)
    flash(f"已处理 {len(made)} 项不一致的内容，记录已更新，手机下次同步时会收到。")
    return redirect(url_for("supervisor.conflicts"))


# -- monthly tasks ---------------------------------------------------------------------------


def _shift_month(month: str, delta: int) -> str:
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + mon - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@bp.get("/tasks")
@login_required
def tasks():
    """First secretaries' monthly tasks: completion by village, overdue ones highlighted."""
    store = storage()
    today = today_china()
    month = request.args.get("month", "")
    if not MONTH.fullmatch(month):
        month = today.strftime("%Y-%m")
    rows = store.desk_tasks(g.villages, month)
    evidence = {}
    items = store.desk_task_evidence([t["id"] for t in rows])
    missing = set(store.missing_media(i["sha256"] for i in items))
    items = _visible_photos(store, [{**i, "held": i["sha256"] not in missing} for i in items])
    for item in items:
        photos = evidence.setdefault(item["task_id"], [])
        if all(p["sha256"] != item["sha256"] for p in photos):
            photos.append(item)
    villages = []
    for task in rows:
        state = task["state"]
        status = (state.get("status") or {}).get("value") or "not_started"
        done = status == "done"
        task["status"] = status
        task["status_text"] = TASK_STATUS.get(status, status)
        task["completed_on"] = (state.get("completed_on") or {}).get("value")
        task["overdue"] = status == "overdue" or (
            not done and bool(task["due_on"]) and task["due_on"] < today.isoformat()
        )
        task["done"] = done
        task["photos"] = evidence.get(task["id"], [])
        if not villages or villages[-1]["code"] != task["village_code"]:
            villages.append(
                {
                    "code": task["village_code"],
                    "name": task["village_name"],
                    "township": task["township"],
                    "tasks": [],
                }
            )
        villages[-1]["tasks"].append(task)
    for village in villages:
        village["done"] = sum(t["done"] for t in village["tasks"])
        village["overdue"] = sum(t["overdue"] for t in village["tasks"])
        village["total"] = len(village["tasks"])
        village["percent"] = round(100 * village["done"] / village["total"])
    return render_template(
        "tasks_month.html",
        month=month,
        prev_month=_shift_month(month, -1),
        next_month=_shift_month(month, 1),
        villages=villages,
        today=today,
        totals={
            "done": sum(v["done"] for v in villages),
            "total": sum(v["total"] for v in villages),
            "overdue": sum(v["overdue"] for v in villages),
        },
    )


def desk_counts() -> dict:
    """Figures for the landing page."""
    store = storage()
    _, pending = store.desk_queue(g.villages, states=["complete", "received"], limit=0)
    _, conflicts_open = store.desk_conflicts(g.villages, limit=0)
    return {"pending": pending, "conflicts": conflicts_open}


@bp.app_context_processor
def _home_counts():
    return {"desk_counts": desk_counts}
